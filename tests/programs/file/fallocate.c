/*
 * fallocate: growing a file, FALLOC_FL_KEEP_SIZE, punching holes and
 * zeroing ranges, and the errors (bad lengths, unsupported mode
 * combinations, read-only fds, pipes).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void show(const char *what, int r) {
    printf("%s: %s\n", what, r == 0 ? "ok" : strerror(errno));
}

static long size_of(int fd) {
    struct stat st;
    fstat(fd, &st);
    return (long)st.st_size;
}

int main(void) {
    const char *p = "/tmp/rvisor-difftest-fallocate";
    unlink(p);
    int fd = open(p, O_RDWR | O_CREAT, 0644);
    show("allocate 8192", fallocate(fd, 0, 0, 8192));
    printf("size %ld\n", size_of(fd));
    pwrite(fd, "abcdefgh", 8, 0);
    show("keep size", fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 100000));
    printf("size %ld\n", size_of(fd));
    show("punch hole", fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 2, 3));
    char b[9] = {0};
    pread(fd, b, 8, 0);
    for (int i = 0; i < 8; i++)
        putchar(b[i] ? b[i] : '.');
    putchar('\n');
    show("zero range past the end", fallocate(fd, FALLOC_FL_ZERO_RANGE, 8000, 1000));
    printf("size %ld\n", size_of(fd));
    show("zero length", fallocate(fd, 0, 0, 0));
    show("negative offset", fallocate(fd, 0, -1, 10));
    show("punch without keep size", fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 1));
    int ro = open(p, O_RDONLY);
    show("read-only fd", fallocate(ro, 0, 0, 1));
    int pp[2];
    pipe(pp);
    show("pipe", fallocate(pp[1], 0, 0, 1));
    unlink(p);
    return 0;
}
