/* mm/file_bytes: system calls read what the application sees in memory
 * mapped from files, whatever happened to it since.
 *
 * The sentry reads read-only file mappings (the program's own .rodata and
 * text, libraries, a file the program maps) back from the file rather than
 * from the process (mm::mirror). Each case here changes such memory the
 * way programs can, then hands it to write(2) on a pipe and prints what
 * arrived: an mprotect that makes it writable and a store, an mprotect that
 * takes reading away, madvise(DONTNEED) on a private copy, mremap, munmap
 * and MAP_FIXED over it, the end of the file, and fork. */
#include "../common.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define PG 4096UL

static int pipefd[2];

/* Rodata of our own image, each on a page of its own so that changing one's
 * protection leaves the others (and the code) alone. */
static const char msg_plain[] __attribute__((aligned(4096))) = "a string literal in .rodata";
static const char msg_patched[] __attribute__((aligned(4096))) = "rodata, soon written over";
static const char msg_hidden[] __attribute__((aligned(4096))) = "rodata behind PROT_NONE";
static const char msg_child[] __attribute__((aligned(4096))) = "rodata read in a fork";

/* write(2) `len` bytes at `p` into the pipe; print what came out, or the
 * error. */
static void show_write(const char *label, const void *p, size_t len)
{
    char buf[256];
    ssize_t n = write(pipefd[1], p, len);
    if (n < 0) {
        printf("%s: write: %s\n", label, errname(errno));
        return;
    }
    ssize_t got = read(pipefd[0], buf, sizeof buf);
    printf("%s: %zd bytes: \"", label, got);
    for (ssize_t i = 0; i < got; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c >= 32 && c < 127 && c != '"' && c != '\\')
            putchar(c);
        else
            printf("\\x%02x", c);
    }
    printf("\"\n");
}

static uintptr_t page_of(const void *p)
{
    return (uintptr_t)p & ~(PG - 1);
}

int main(void)
{
    test_init();
    MUST(pipe(pipefd));

    /* The program's own read-only data. */
    show_write("literal", msg_plain, sizeof msg_plain - 1);

    /* Made writable and changed: the page is a private copy now. */
    show_ok("mprotect rodata RW",
            mprotect((void *)page_of(msg_patched), PG, PROT_READ | PROT_WRITE));
    ((volatile char *)msg_patched)[0] = 'R';
    memcpy((char *)msg_patched + 8, "now", 3);
    show_ok("mprotect rodata back to R", mprotect((void *)page_of(msg_patched), PG, PROT_READ));
    show_write("rewritten literal", msg_patched, sizeof msg_patched - 1);

    /* Not readable: EFAULT, as the host gives; readable again: the bytes. */
    show_ok("mprotect rodata NONE", mprotect((void *)page_of(msg_hidden), PG, PROT_NONE));
    show_write("unreadable literal", msg_hidden, sizeof msg_hidden - 1);
    show_ok("mprotect rodata R", mprotect((void *)page_of(msg_hidden), PG, PROT_READ));
    show_write("readable again", msg_hidden, sizeof msg_hidden - 1);

    /* Code: the first bytes of a libc function, compared with read(2) of a
     * private copy. */
    unsigned char code[16];
    memcpy(code, (const void *)&getppid, sizeof code);
    char cbuf[16];
    MUST(write(pipefd[1], (const void *)&getppid, sizeof code));
    MUST(read(pipefd[0], cbuf, sizeof cbuf));
    show_bool("write() of libc code gives the bytes in memory", memcmp(code, cbuf, sizeof code) == 0);

    /* Our executable, mapped read-only with a page past its end. */
    int fd = open("/proc/self/exe", O_RDONLY);
    MUST(fd);
    struct stat st;
    MUST(fstat(fd, &st));
    size_t span = (st.st_size + PG - 1) & ~(PG - 1);
    char *exe = mmap(NULL, span + PG, PROT_READ, MAP_PRIVATE, fd, 0);
    MUST(exe == MAP_FAILED ? -1 : 0);
    show_write("mapped exe head", exe + 1, 3);
    show_write("a page past the file's end", exe + span, 8);
    /* The file's last bytes, up to its end (a write crossing into the
     * page past it stops there, as a partial write). */
    char *last = exe + st.st_size - 4;
    char want[4];
    memcpy(want, last, 4);
    char got4[4];
    MUST(write(pipefd[1], last, 4));
    MUST(read(pipefd[0], got4, 4));
    show_bool("last bytes of the file", memcmp(want, got4, 4) == 0);

    /* A private copy of the head page, then dropped: the file's bytes again. */
    show_ok("mprotect exe RW", mprotect(exe, PG, PROT_READ | PROT_WRITE));
    memcpy(exe + 1, "FLE", 3);
    show_write("written exe head", exe + 1, 3);
    show_ok("madvise DONTNEED", madvise(exe, PG, MADV_DONTNEED));
    show_write("exe head after DONTNEED", exe + 1, 3);
    show_ok("mprotect exe R", mprotect(exe, PG, PROT_READ));

    /* Moved: the new address has the bytes, the old one is gone. */
    char *dest = mmap(NULL, 2 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    MUST(dest == MAP_FAILED ? -1 : 0);
    char *moved = mremap(exe + PG, PG, PG, MREMAP_MAYMOVE | MREMAP_FIXED, dest);
    MUST(moved == MAP_FAILED ? -1 : 0);
    show_bool("mremap went where asked", moved == dest);
    char expect[8];
    MUST(pread(fd, expect, 8, PG));
    char moved_got[8];
    MUST(write(pipefd[1], moved, 8));
    MUST(read(pipefd[0], moved_got, 8));
    show_bool("moved page has the file's bytes", memcmp(expect, moved_got, 8) == 0);
    show_write("old address after mremap", exe + PG, 8);

    /* Anonymous memory placed over part of it: zeros. */
    char *over = mmap(exe + 2 * PG, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                      -1, 0);
    MUST(over == MAP_FAILED ? -1 : 0);
    show_write("anonymous memory over the mapping", over, 4);

    /* Unmapped: EFAULT. */
    MUST(munmap(exe, PG));
    show_write("unmapped", exe, 4);

    /* A fork reads its parent's mappings. */
    fflush(stdout);
    pid_t pid = fork();
    MUST(pid);
    if (pid == 0) {
        show_write("child: literal", msg_child, sizeof msg_child - 1);
        show_write("child: rewritten literal", msg_patched, sizeof msg_patched - 1);
        show_write("child: unmapped", exe, 4);
        fflush(stdout);
        _exit(0);
    }
    int status;
    MUST(waitpid(pid, &status, 0));
    show_bool("child exited 0", WIFEXITED(status) && WEXITSTATUS(status) == 0);
    printf("done\n");
    return 0;
}
