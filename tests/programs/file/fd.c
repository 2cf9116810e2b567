/* file/fd: dup, dup2, dup3, fcntl (F_GETFD/F_SETFD/F_GETFL/F_SETFL/F_DUPFD/
 * F_DUPFD_CLOEXEC/F_CREATED_QUERY), ioctl (ENOTTY on a regular file, FIONREAD on a pipe),
 * pipe2, umask, close_range-free fd bookkeeping. */
#include "../common.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>

#define PATH "/tmp/rvisor-difftest-file-fd"
#define PATH2 "/tmp/rvisor-difftest-file-fd-umask"

static void flags(const char *label, int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0) {
        printf("%s F_GETFL: %s\n", label, errname(errno));
        return;
    }
    const char *acc = (fl & O_ACCMODE) == O_RDONLY ? "O_RDONLY"
                      : (fl & O_ACCMODE) == O_WRONLY ? "O_WRONLY"
                      : (fl & O_ACCMODE) == O_RDWR   ? "O_RDWR"
                                                     : "O_ACCMODE?";
    printf("%s F_GETFL: %s%s%s\n", label, acc, fl & O_APPEND ? "|O_APPEND" : "",
           fl & O_NONBLOCK ? "|O_NONBLOCK" : "");
}

static void cloexec(const char *label, int fd)
{
    int r = fcntl(fd, F_GETFD);
    if (r < 0)
        printf("%s F_GETFD: %s\n", label, errname(errno));
    else
        printf("%s F_GETFD: %s\n", label, (r & FD_CLOEXEC) ? "FD_CLOEXEC" : "0");
}

int main(void)
{
    test_init();
    mode_t old = umask(022);
    (void)old;
    unlink(PATH);
    unlink(PATH2);

    int fd = open(PATH, O_CREAT | O_RDWR | O_TRUNC, 0644);
    show("open fd", fd);
    MUST(fd);
    flags("open O_RDWR", fd);
    cloexec("open", fd);

    /* dup: lowest free descriptor, shared offset and flags */
    int d1 = dup(fd);
    show("dup", d1);
    cloexec("dup", d1);
    MUST(write(fd, "abcdef", 6));
    show("offset seen through dup", lseek(d1, 0, SEEK_CUR));
    MUST(lseek(d1, 2, SEEK_SET));
    show("offset seen through original", lseek(fd, 0, SEEK_CUR));
    show("dup2 to 10", dup2(fd, 10));
    show("dup2 to itself", dup2(fd, fd));
    expect_err("dup2 bad oldfd", dup2(99, 11));
    expect_err("dup bad fd", dup(99));
    show("dup3 O_CLOEXEC to 12", dup3(fd, 12, O_CLOEXEC));
    cloexec("dup3 O_CLOEXEC", 12);
    show("dup3 to 13", dup3(fd, 13, 0));
    cloexec("dup3 0", 13);
    expect_err("dup3 same fd", dup3(fd, fd, 0));
    expect_err("dup3 bad flags", dup3(fd, 14, O_APPEND));
    /* dup2 over an open descriptor closes it first */
    show("dup2 over open fd", dup2(d1, 13));
    show("close 10", close(10));
    show("dup lowest again", dup(fd));

    /* fcntl */
    show("F_SETFD FD_CLOEXEC", fcntl(fd, F_SETFD, FD_CLOEXEC));
    cloexec("after F_SETFD", fd);
    cloexec("dup unaffected", d1);
    show("F_SETFD 0", fcntl(fd, F_SETFD, 0));
    cloexec("after F_SETFD 0", fd);
    show("F_DUPFD min 20", fcntl(fd, F_DUPFD, 20));
    cloexec("F_DUPFD", 20);
    show("F_DUPFD min 20 again", fcntl(fd, F_DUPFD, 20));
    show("F_DUPFD_CLOEXEC min 30", fcntl(fd, F_DUPFD_CLOEXEC, 30));
    cloexec("F_DUPFD_CLOEXEC", 30);
    expect_err("F_DUPFD negative", fcntl(fd, F_DUPFD, -1));
    expect_err("F_DUPFD huge", fcntl(fd, F_DUPFD, 1 << 30));
    expect_err("F_GETFD bad fd", fcntl(99, F_GETFD));
    expect_err("fcntl bad cmd", fcntl(fd, 0x7fff));
    show("F_SETFL O_APPEND|O_NONBLOCK", fcntl(fd, F_SETFL, O_APPEND | O_NONBLOCK));
    flags("after F_SETFL", fd);
    flags("dup shares status flags", d1);
    show("F_SETFL 0", fcntl(fd, F_SETFL, 0));
    flags("after F_SETFL 0", fd);
    int ro = open(PATH, O_RDONLY);
    MUST(ro);
    flags("O_RDONLY", ro);
    show("F_SETFL cannot change access mode", fcntl(ro, F_SETFL, O_RDWR));
    flags("still", ro);
    close(ro);
    int wo = open(PATH, O_WRONLY | O_APPEND);
    MUST(wo);
    flags("O_WRONLY|O_APPEND", wo);
    close(wo);

    /* ioctl on a regular file */
    struct termios t;
    expect_err("ioctl TCGETS regular file", ioctl(fd, TCGETS, &t));
    expect_err("isatty regular file", isatty(fd) ? 0 : -1);
    expect_err("ioctl bad fd", ioctl(99, TCGETS, &t));
    int nread = -1;
    show("ioctl FIONREAD regular file", ioctl(fd, FIONREAD, &nread));
    printf("FIONREAD regular file bytes: %d\n", nread);
    int nb = 1;
    show("ioctl FIONBIO", ioctl(fd, FIONBIO, &nb));
    flags("after FIONBIO", fd);
    show("ioctl FIOCLEX", ioctl(fd, FIOCLEX));
    cloexec("after FIOCLEX", fd);
    show("ioctl FIONCLEX", ioctl(fd, FIONCLEX));
    cloexec("after FIONCLEX", fd);

    /* pipe2 */
    signal(SIGPIPE, SIG_IGN);
    int p[2];
    show("pipe2 O_CLOEXEC", pipe2(p, O_CLOEXEC));
    printf("pipe fds: %d %d\n", p[0], p[1]);
    cloexec("pipe read end", p[0]);
    cloexec("pipe write end", p[1]);
    flags("pipe read end", p[0]);
    flags("pipe write end", p[1]);
    show("write pipe", write(p[1], "hello", 5));
    nread = -1;
    show("ioctl FIONREAD pipe", ioctl(p[0], FIONREAD, &nread));
    printf("FIONREAD pipe bytes: %d\n", nread);
    char buf[64];
    long n = read(p[0], buf, sizeof buf);
    show("read pipe", n);
    printf("pipe data: %.*s\n", (int)(n > 0 ? n : 0), buf);
    expect_err("lseek on pipe", lseek(p[0], 0, SEEK_SET));
    expect_err("write to read end", write(p[0], "x", 1));
    expect_err("ioctl TCGETS pipe", ioctl(p[0], TCGETS, &t));
    show("fstat pipe", fstat(p[0], &(struct stat){0}));
    struct stat st;
    MUST(fstat(p[0], &st));
    show_bool("pipe is S_IFIFO", S_ISFIFO(st.st_mode));
    show("close write end", close(p[1]));
    show("read at EOF", read(p[0], buf, sizeof buf));
    close(p[0]);

    show("pipe2 O_NONBLOCK", pipe2(p, O_NONBLOCK));
    flags("nonblocking pipe", p[0]);
    expect_err("read empty nonblocking pipe", read(p[0], buf, sizeof buf));
    show("close read end", close(p[0]));
    expect_err("write with no reader", write(p[1], "x", 1));
    close(p[1]);
    expect_err("pipe2 bad flags", pipe2(p, O_APPEND));
    show("raw pipe2 flags 0", syscall(SYS_pipe2, p, 0));
    printf("pipe fds: %d %d\n", p[0], p[1]);
    close(p[0]);
    close(p[1]);

    /* a pipe survives fork-free round trip of 64 KiB */
    MUST(pipe2(p, 0));
    static char big[65536];
    memset(big, 'q', sizeof big);
    long total = 0;
    MUST(fcntl(p[1], F_SETFL, O_NONBLOCK));
    while (total < (long)sizeof big) {
        n = write(p[1], big + total, sizeof big - total);
        if (n <= 0)
            break;
        total += n;
    }
    printf("pipe buffered bytes: %ld\n", total);
    expect_err("write full nonblocking pipe", write(p[1], "x", 1));
    long got = 0;
    while (got < total && (n = read(p[0], big, sizeof big)) > 0)
        got += n;
    printf("pipe drained bytes: %ld\n", got);
    close(p[0]);
    close(p[1]);

    /* umask */
    show("umask(027) returns previous", umask(027));
    show("umask(027) again", umask(027));
    int uf = open(PATH2, O_CREAT | O_WRONLY, 0666);
    MUST(uf);
    MUST(fstat(uf, &st));
    printf("created with 0666 under umask 027: %04o\n", (unsigned)(st.st_mode & 07777));
    close(uf);
    unlink(PATH2);
    show("umask restore", umask(022));

    /* close everything we opened; closing twice fails */
    int to_close[] = {fd, d1, 12, 13, 20, 21, 30};
    for (unsigned i = 0; i < sizeof to_close / sizeof to_close[0]; i++) {
        char label[32];
        snprintf(label, sizeof label, "close %d", to_close[i]);
        show(label, close(to_close[i]));
    }
    show("close lowest dup", close(5));
    expect_err("close 30 again", close(30));
    expect_err("close -1", close(-1));
    int last = open("/dev/null", O_RDONLY);
    show("next fd is lowest free", last);
    close(last);

    /* F_CREATED_QUERY (Linux 6.12): did the open that made this
     * description create the file? Shared by dups; 0 for O_PATH. */
    unlink(PATH);
    int made = open(PATH, O_CREAT | O_RDWR, 0600);
    MUST(made);
    show("F_CREATED_QUERY after creating", fcntl(made, 1028, 0));
    int made_dup = dup(made);
    show("F_CREATED_QUERY of its dup", fcntl(made_dup, 1028, 0));
    int again = open(PATH, O_CREAT | O_RDWR, 0600);
    show("F_CREATED_QUERY of an existing file", fcntl(again, 1028, 0));
    int path_fd = open(PATH, O_PATH);
    show("F_CREATED_QUERY of an O_PATH fd", fcntl(path_fd, 1028, 0));
    int tmp = open("/tmp", O_TMPFILE | O_RDWR, 0600);
    show("F_CREATED_QUERY of an O_TMPFILE", tmp < 0 ? -2 : fcntl(tmp, 1028, 0));
    close(made);
    close(made_dup);
    close(again);
    close(path_fd);
    if (tmp >= 0)
        close(tmp);

    unlink(PATH);
    return 0;
}
