/* file/io: openat, read, write, close, lseek, pread64, pwrite64, readv,
 * writev, O_APPEND, O_TRUNC, O_EXCL, ftruncate, unlinkat. */
#include "../common.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#define PATH "/tmp/rvisor-difftest-file-io"

static void dump(const char *label, const char *buf, long n)
{
    printf("%s (%ld): \"", label, n);
    for (long i = 0; i < n; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c == '\n')
            printf("\\n");
        else if (c < 32 || c > 126)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
    printf("\"\n");
}

int main(void)
{
    test_init();
    char buf[256];
    long n;

    unlink(PATH);

    /* create + write */
    int fd = openat(AT_FDCWD, PATH, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0644);
    show("openat O_CREAT|O_EXCL fd", fd);
    MUST(fd);
    show("write", write(fd, "hello, world\n", 13));
    show("write 0 bytes", write(fd, "", 0));
    show("lseek SEEK_CUR", lseek(fd, 0, SEEK_CUR));
    show("lseek SEEK_END", lseek(fd, 0, SEEK_END));
    show("lseek SEEK_SET 7", lseek(fd, 7, SEEK_SET));
    n = read(fd, buf, sizeof buf);
    show("read after seek", n);
    if (n > 0)
        dump("data", buf, n);
    show("read at EOF", read(fd, buf, sizeof buf));
    expect_err("lseek negative", lseek(fd, -100, SEEK_SET));
    expect_err("lseek bad whence", lseek(fd, 0, 42));

    /* seeking past EOF and writing leaves a hole of zeros */
    show("lseek past EOF", lseek(fd, 20, SEEK_SET));
    show("write after hole", write(fd, "Z", 1));
    struct stat st;
    MUST(fstat(fd, &st));
    printf("size after hole: %lld\n", (long long)st.st_size);
    n = pread(fd, buf, sizeof buf, 0);
    show("pread whole file", n);
    if (n > 0)
        dump("data", buf, n);

    /* pread/pwrite do not move the offset */
    show("lseek SEEK_SET 0", lseek(fd, 0, SEEK_SET));
    show("pwrite at 0", pwrite(fd, "HELLO", 5, 0));
    show("offset after pwrite", lseek(fd, 0, SEEK_CUR));
    n = pread(fd, buf, 5, 0);
    show("pread 5 at 0", n);
    if (n > 0)
        dump("data", buf, n);
    show("pread past EOF", pread(fd, buf, 10, 1000));
    expect_err("pread negative offset", pread(fd, buf, 10, -1));
    show("raw pread64", syscall(SYS_pread64, fd, buf, 4, 7L));
    dump("data", buf, 4);
    show("raw pwrite64", syscall(SYS_pwrite64, fd, "w", 1, 7L));

    /* writev / readv */
    MUST(ftruncate(fd, 0));
    MUST(lseek(fd, 0, SEEK_SET));
    struct iovec wv[3] = {
        {.iov_base = "abc", .iov_len = 3},
        {.iov_base = "", .iov_len = 0},
        {.iov_base = "defgh\n", .iov_len = 6},
    };
    show("writev", writev(fd, wv, 3));
    MUST(lseek(fd, 0, SEEK_SET));
    char a[2], b[4], c[16];
    memset(c, 0, sizeof c);
    struct iovec rv[3] = {
        {.iov_base = a, .iov_len = sizeof a},
        {.iov_base = b, .iov_len = sizeof b},
        {.iov_base = c, .iov_len = sizeof c},
    };
    n = readv(fd, rv, 3);
    show("readv", n);
    dump("iov0", a, 2);
    dump("iov1", b, 4);
    dump("iov2", c, n > 6 ? n - 6 : 0);
    expect_err("readv negative iovcnt", syscall(SYS_readv, fd, rv, -1));
    show("close", close(fd));
    expect_err("close again", close(fd));
    expect_err("read closed fd", read(fd, buf, 1));
    expect_err("write closed fd", write(fd, buf, 1));

    /* O_APPEND always writes at the end */
    fd = open(PATH, O_WRONLY | O_APPEND);
    show("open O_APPEND fd", fd);
    MUST(fd);
    MUST(lseek(fd, 0, SEEK_SET));
    show("append write", write(fd, "tail\n", 5));
    show("offset after append", lseek(fd, 0, SEEK_CUR));
    expect_err("read on O_WRONLY", read(fd, buf, 1));
    close(fd);

    fd = open(PATH, O_RDONLY);
    MUST(fd);
    n = read(fd, buf, sizeof buf);
    dump("content", buf, n);
    expect_err("write on O_RDONLY", write(fd, "x", 1));
    close(fd);

    /* O_EXCL on an existing file */
    expect_err("open O_CREAT|O_EXCL existing", open(PATH, O_CREAT | O_EXCL | O_WRONLY, 0644));

    /* O_TRUNC */
    fd = open(PATH, O_RDWR | O_TRUNC);
    MUST(fd);
    MUST(fstat(fd, &st));
    printf("size after O_TRUNC: %lld\n", (long long)st.st_size);
    show("read after O_TRUNC", read(fd, buf, sizeof buf));
    close(fd);

    /* a large write and read back in chunks */
    fd = open(PATH, O_RDWR | O_TRUNC);
    MUST(fd);
    static char big[100000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 26);
    long total = 0;
    while (total < (long)sizeof big) {
        n = write(fd, big + total, sizeof big - total);
        if (n <= 0)
            break;
        total += n;
    }
    printf("big write total: %ld\n", total);
    MUST(lseek(fd, 0, SEEK_SET));
    static char back[100000];
    total = 0;
    while ((n = read(fd, back + total, 4096)) > 0)
        total += n;
    printf("big read total: %ld, equal: %s\n", total,
           memcmp(big, back, sizeof big) == 0 ? "yes" : "no");
    close(fd);

    /* reading /dev/null and /dev/zero */
    fd = open("/dev/null", O_RDWR);
    MUST(fd);
    show("read /dev/null", read(fd, buf, sizeof buf));
    show("write /dev/null", write(fd, "discard", 7));
    close(fd);
    fd = open("/dev/zero", O_RDONLY);
    MUST(fd);
    memset(buf, 'x', sizeof buf);
    show("read /dev/zero", read(fd, buf, 64));
    int allzero = 1;
    for (int i = 0; i < 64; i++)
        if (buf[i])
            allzero = 0;
    show_bool("zeros", allzero);
    close(fd);

    show("unlinkat", unlinkat(AT_FDCWD, PATH, 0));
    expect_err("open after unlink", open(PATH, O_RDONLY));
    return 0;
}
