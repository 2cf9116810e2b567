/*
 * In-kernel copies: sendfile (with and without an offset pointer),
 * copy_file_range (offsets, file offsets moving), splice between files and
 * pipes, and their errors.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/sendfile.h>
#include <unistd.h>

static void dump(const char *what, int fd) {
    char b[64] = {0};
    pread(fd, b, sizeof b - 1, 0);
    printf("%s: [%s]\n", what, b);
}

int main(void) {
    const char *src = "/tmp/rvisor-difftest-xfer-src", *dst = "/tmp/rvisor-difftest-xfer-dst";
    unlink(src);
    unlink(dst);
    int in = open(src, O_RDWR | O_CREAT, 0644);
    write(in, "0123456789abcdef", 16);
    int out = open(dst, O_RDWR | O_CREAT | O_TRUNC, 0644);

    lseek(in, 0, SEEK_SET);
    ssize_t n = sendfile(out, in, NULL, 4);
    printf("sendfile: %zd, in offset %ld\n", n, (long)lseek(in, 0, SEEK_CUR));
    off_t off = 10;
    n = sendfile(out, in, &off, 100);
    printf("sendfile at 10: %zd, off %ld, in offset %ld\n", n, (long)off, (long)lseek(in, 0, SEEK_CUR));
    dump("dst", out);

    loff_t a = 2, b = 0;
    ftruncate(out, 0);
    n = copy_file_range(in, &a, out, &b, 5, 0);
    printf("copy_file_range: %zd a=%ld b=%ld\n", n, (long)a, (long)b);
    dump("dst", out);
    n = copy_file_range(in, NULL, out, NULL, 3, 0);
    printf("copy_file_range with file offsets: %zd in=%ld out=%ld\n", n, (long)lseek(in, 0, SEEK_CUR),
           (long)lseek(out, 0, SEEK_CUR));
    n = copy_file_range(in, NULL, out, NULL, 3, 1);
    printf("copy_file_range flags: %zd %s\n", n, strerror(errno));

    int p[2];
    pipe(p);
    loff_t s = 6;
    n = splice(in, &s, p[1], NULL, 4, 0);
    printf("splice file->pipe: %zd s=%ld\n", n, (long)s);
    lseek(out, 0, SEEK_SET);
    ftruncate(out, 0);
    n = splice(p[0], NULL, out, NULL, 4, 0);
    printf("splice pipe->file: %zd\n", n);
    dump("dst", out);
    n = splice(in, NULL, out, NULL, 4, 0);
    printf("splice without a pipe: %zd %s\n", n, strerror(errno));
    loff_t bad = 0;
    n = splice(p[0], &bad, out, NULL, 1, 0);
    printf("splice offset on a pipe: %zd %s\n", n, strerror(errno));

    int app = open(dst, O_WRONLY | O_APPEND);
    n = sendfile(app, in, NULL, 1);
    printf("sendfile to O_APPEND: %zd %s\n", n, strerror(errno));
    unlink(src);
    unlink(dst);
    return 0;
}
