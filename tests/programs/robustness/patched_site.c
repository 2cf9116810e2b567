/* robustness/patched_site: makes one `mov $SYS_getppid, %eax; syscall`
 * hot, then prints its first bytes and whether its calls still work. On
 * systrap, rvisor rewrites such a site into a jump to its fast path
 * (ff 24 25 ...: jmp through its site table); elsewhere it stays as it
 * is. A shared mapping of the same code is never rewritten: the write
 * would reach the file. Run only under rvisor. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

extern char hot_site[];

__attribute__((noinline)) static long raw_getppid(void)
{
    long r;
    __asm__ volatile(".globl hot_site\nhot_site: mov $110, %%eax\n syscall"
                     : "=a"(r)
                     :
                     : "rcx", "r11", "memory");
    return r;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    long first = raw_getppid();
    int same = 1;
    for (int i = 0; i < 1000; i++)
        same &= raw_getppid() == first;
    printf("site:");
    for (int i = 0; i < 7; i++)
        printf(" %02x", (unsigned char)hot_site[i]);
    printf("\ncalls agree: %d\n", same);

    /* The same code in a shared, executable mapping of a file. */
    const char *path = argc > 1 ? argv[1] : "/tmp/patched-site-code";
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0700);
    static const uint8_t code[] = {0xb8, 110, 0, 0, 0, 0x0f, 0x05, 0xc3};
    if (fd < 0 || write(fd, code, sizeof code) != sizeof code || ftruncate(fd, 4096) != 0) {
        printf("no scratch file\n");
        return 1;
    }
    uint8_t *shared = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0);
    if (shared == MAP_FAILED) {
        printf("no shared mapping\n");
        return 1;
    }
    long (*fn)(void) = (long (*)(void))shared;
    same = 1;
    for (int i = 0; i < 1000; i++)
        same &= fn() == first;
    uint8_t back[7];
    pread(fd, back, sizeof back, 0);
    printf("shared site unchanged in memory: %d, in the file: %d, calls agree: %d\n",
           memcmp(shared, code, 7) == 0, memcmp(back, code, 7) == 0, same);
    unlink(path);
    return 0;
}
