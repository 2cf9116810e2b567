/*
 * Positional vector I/O (preadv, pwritev, preadv2/pwritev2 with offset -1
 * meaning "current offset") and memfd_create files (read, write, seek,
 * fstat, ftruncate, the /proc/self/fd link, bad flags).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

int main(void) {
    const char *p = "/tmp/rvisor-difftest-vectored";
    unlink(p);
    int fd = open(p, O_RDWR | O_CREAT, 0644);
    struct iovec w[2] = {{"hello ", 6}, {"world", 5}};
    printf("pwritev at 4: %zd\n", pwritev(fd, w, 2, 4));
    char a[5] = {0}, b[20] = {0};
    struct iovec r[2] = {{a, 4}, {b, 19}};
    ssize_t n = preadv(fd, r, 2, 0);
    printf("preadv: %zd [%d %d %d %d] %s\n", n, a[0], a[1], a[2], a[3], b);
    printf("offset untouched: %ld\n", (long)lseek(fd, 0, SEEK_CUR));
    struct iovec one = {"XY", 2};
    n = pwritev2(fd, &one, 1, -1, 0);
    printf("pwritev2 at -1: %zd, offset now %ld\n", n, (long)lseek(fd, 0, SEEK_CUR));
    n = preadv2(fd, r, 2, 0, 0x40000000);
    printf("preadv2 bad flags: %zd %s\n", n, strerror(errno));
    int pp[2];
    pipe(pp);
    n = preadv(pp[0], r, 2, 0);
    printf("preadv on a pipe: %zd %s\n", n, strerror(errno));
    unlink(p);

    int m = memfd_create("rvisor-test", MFD_CLOEXEC);
    printf("memfd: %s\n", m >= 0 ? "ok" : strerror(errno));
    write(m, "memory", 6);
    lseek(m, 0, SEEK_SET);
    char c[8] = {0};
    read(m, c, 6);
    struct stat st;
    fstat(m, &st);
    printf("memfd read back: %s size=%ld regular=%d\n", c, (long)st.st_size, S_ISREG(st.st_mode));
    ftruncate(m, 4096);
    fstat(m, &st);
    printf("after ftruncate: %ld\n", (long)st.st_size);
    char link[64] = {0}, path[32];
    snprintf(path, sizeof path, "/proc/self/fd/%d", m);
    readlink(path, link, sizeof link - 1);
    printf("link: %s\n", link);
    int bad = memfd_create("x", 0x100);
    printf("memfd bad flags: %d %s\n", bad, strerror(errno));
    return 0;
}
