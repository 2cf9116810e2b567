/* ipc/unix_sockets: named unix-domain sockets — a stream server and a
 * forked client over a path and over an abstract name, getsockname and
 * getpeername, SO_PEERCRED, SO_ACCEPTCONN, poll on a listener, nonblocking
 * accept, EADDRINUSE, ECONNREFUSED, ENOENT, EPROTOTYPE, seqpacket record
 * boundaries, datagrams to a bound name, and SCM_RIGHTS passing a pipe and
 * a file between processes. */
#include "../common.h"

#include <fcntl.h>
#include <stddef.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

/* Where the sockets live; argv[1] overrides it (tests/writethrough.rs runs
 * this in a bind-mounted volume). */
static const char *dir = "/tmp/rvisor-difftest-unix";

/* dir + name, in one of a few rotating buffers. */
static const char *at(const char *name)
{
    static char bufs[4][256];
    static int next;
    char *b = bufs[next++ % 4];
    snprintf(b, 256, "%s%s", dir, name);
    return b;
}

static void remove_dir(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    system(cmd);
}

static volatile sig_atomic_t got_sigpipe;
static void on_sigpipe(int s) { (void)s; got_sigpipe++; }

static socklen_t path_addr(struct sockaddr_un *a, const char *p)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    strcpy(a->sun_path, p);
    return offsetof(struct sockaddr_un, sun_path) + strlen(p) + 1;
}

static socklen_t abstract_addr(struct sockaddr_un *a, const char *name)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    memcpy(a->sun_path + 1, name, strlen(name));
    return offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name);
}

static void echo_server_once(int l)
{
    int c = accept(l, NULL, NULL);
    char buf[64];
    ssize_t n = read(c, buf, sizeof buf);
    if (n > 0)
        write(c, buf, n);
    close(c);
}

static void client(struct sockaddr_un *a, socklen_t len, const char *msg)
{
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(s, (struct sockaddr *)a, len) < 0) {
        printf("connect: %s\n", errname(errno));
        return;
    }
    struct ucred cr;
    socklen_t cl = sizeof cr;
    getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cr, &cl);
    write(s, msg, strlen(msg));
    char buf[64] = {0};
    read(s, buf, sizeof buf - 1);
    /* printed once the server is done, so the output order is fixed */
    printf("client: peer is my parent %d, uid %u\n", cr.pid == getppid(), cr.uid);
    printf("client: echoed %s\n", buf);
    close(s);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        dir = argv[1];
    test_init();
    remove_dir();
    MUST(mkdir(dir, 0755));
    struct sockaddr_un a;
    socklen_t alen = path_addr(&a, at("/sock"));
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    show("bind path", bind(l, (struct sockaddr *)&a, alen));
    struct stat st;
    MUST(stat(at("/sock"), &st));
    printf("socket file: %d\n", S_ISSOCK(st.st_mode));
    int l2 = socket(AF_UNIX, SOCK_STREAM, 0);
    expect_err("bind the same path again", bind(l2, (struct sockaddr *)&a, alen));
    expect_err("connect before listen", connect(l2, (struct sockaddr *)&a, alen));
    show("listen", listen(l, 5));
    int on = 0;
    socklen_t ol = sizeof on;
    getsockopt(l, SOL_SOCKET, SO_ACCEPTCONN, &on, &ol);
    printf("SO_ACCEPTCONN %d\n", on);
    fcntl(l, F_SETFL, O_NONBLOCK);
    expect_err("nonblocking accept, nobody waiting", accept(l, NULL, NULL));
    fcntl(l, F_SETFL, 0);
    struct sockaddr_un got;
    socklen_t gl = sizeof got;
    MUST(getsockname(l, (struct sockaddr *)&got, &gl));
    printf("getsockname: %s (len ok %d)\n", got.sun_path, gl == alen);

    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        client(&a, alen, "over a path");
        _exit(0);
    }
    struct pollfd p = {.fd = l, .events = POLLIN};
    show("poll listener", poll(&p, 1, 5000));
    struct sockaddr_un peer;
    socklen_t pl = sizeof peer;
    int conn = accept(l, (struct sockaddr *)&peer, &pl);
    show_ok("accept", conn);
    printf("peer address is unnamed: %d\n", pl == sizeof(sa_family_t));
    struct ucred cr;
    socklen_t cl = sizeof cr;
    getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cr, &cl);
    printf("server: peer is my child %d\n", cr.pid == c);
    char buf[64];
    ssize_t n = read(conn, buf, sizeof buf);
    write(conn, buf, n);
    close(conn);
    waitpid(c, NULL, 0);

    /* abstract name */
    int la = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    socklen_t ablen = abstract_addr(&a, "rvisor-difftest-abstract");
    show("bind abstract", bind(la, (struct sockaddr *)&a, ablen));
    MUST(listen(la, 1));
    fflush(stdout);
    c = fork();
    if (c == 0) {
        client(&a, ablen, "over an abstract name");
        _exit(0);
    }
    echo_server_once(la);
    waitpid(c, NULL, 0);
    close(la);
    int lc = socket(AF_UNIX, SOCK_STREAM, 0);
    expect_err("connect to a closed abstract name", connect(lc, (struct sockaddr *)&a, ablen));
    alen = path_addr(&a, at("/missing"));
    expect_err("connect to a missing path", connect(lc, (struct sockaddr *)&a, alen));
    alen = path_addr(&a, dir);
    expect_err("connect to a directory", connect(lc, (struct sockaddr *)&a, alen));
    alen = path_addr(&a, at("/sock"));
    int d = socket(AF_UNIX, SOCK_DGRAM, 0);
    expect_err("datagram connect to a stream listener", connect(d, (struct sockaddr *)&a, alen));
    expect_err("listen on a datagram socket", listen(d, 1));

    /* listen needs a name; bind with only the family picks an abstract one */
    int lu = socket(AF_UNIX, SOCK_STREAM, 0);
    expect_err("listen unbound", listen(lu, 1));
    struct sockaddr_un fam = {.sun_family = AF_UNIX};
    show("autobind", bind(lu, (struct sockaddr *)&fam, sizeof(sa_family_t)));
    MUST(listen(lu, 1));
    gl = sizeof got;
    getsockname(lu, (struct sockaddr *)&got, &gl);
    printf("autobind: abstract %d, name length %d\n", got.sun_path[0] == 0, (int)(gl - sizeof(sa_family_t) - 1));

    /* seqpacket keeps record boundaries */
    int sp[2];
    MUST(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp));
    write(sp[0], "first", 5);
    write(sp[0], "second", 6);
    n = read(sp[1], buf, sizeof buf);
    printf("seqpacket read 1: %zd\n", n);
    n = read(sp[1], buf, 3);
    printf("seqpacket read 2 (truncated): %zd\n", n);

    /* datagrams to a bound name */
    int rx = socket(AF_UNIX, SOCK_DGRAM, 0);
    alen = path_addr(&a, at("/dgram"));
    MUST(bind(rx, (struct sockaddr *)&a, alen));
    int tx = socket(AF_UNIX, SOCK_DGRAM, 0);
    show("sendto a bound name", sendto(tx, "dg1", 3, 0, (struct sockaddr *)&a, alen));
    MUST(connect(tx, (struct sockaddr *)&a, alen));
    show("send after connect", send(tx, "dg2!", 4, 0));
    n = recv(rx, buf, sizeof buf, 0);
    printf("recv %zd %.*s\n", n, (int)n, buf);
    n = recv(rx, buf, sizeof buf, 0);
    printf("recv %zd %.*s\n", n, (int)n, buf);
    expect_err("send on an unconnected datagram socket", send(d, "x", 1, 0));

    /* SCM_RIGHTS: pass a pipe's write end and a file to a child */
    int pair[2];
    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, pair));
    int pp[2];
    MUST(pipe(pp));
    int file = open(at("/passed"), O_CREAT | O_RDWR | O_TRUNC, 0644);
    write(file, "file contents", 13);
    fflush(stdout);
    c = fork();
    if (c == 0) {
        close(pair[0]);
        char b;
        char cbuf[CMSG_SPACE(2 * sizeof(int))];
        struct iovec io = {.iov_base = &b, .iov_len = 1};
        struct msghdr m = {.msg_iov = &io, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
        ssize_t r = recvmsg(pair[1], &m, MSG_CMSG_CLOEXEC);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
        if (r != 1 || !cm || cm->cmsg_type != SCM_RIGHTS) {
            printf("child: no rights (%zd)\n", r);
            _exit(1);
        }
        int fds[2];
        memcpy(fds, CMSG_DATA(cm), sizeof fds);
        printf("child: got 2 fds, cloexec %d\n", (fcntl(fds[0], F_GETFD) & FD_CLOEXEC) != 0);
        write(fds[0], "via passed pipe", 15);
        char fb[32] = {0};
        pread(fds[1], fb, sizeof fb - 1, 0);
        printf("child: passed file reads \"%s\"\n", fb);
        fflush(stdout);
        _exit(0);
    }
    close(pair[1]);
    char cbuf[CMSG_SPACE(2 * sizeof(int))];
    memset(cbuf, 0, sizeof cbuf);
    struct iovec io = {.iov_base = "x", .iov_len = 1};
    struct msghdr m = {.msg_iov = &io, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(2 * sizeof(int));
    int send_fds[2] = {pp[1], file};
    memcpy(CMSG_DATA(cm), send_fds, sizeof send_fds);
    /* Reported after the child is done: the child prints as soon as the
     * message arrives, and the two would race for stdout. */
    long sent = sendmsg(pair[0], &m, 0);
    int sent_errno = errno;
    close(pp[1]);
    waitpid(c, NULL, 0);
    errno = sent_errno;
    show("sendmsg SCM_RIGHTS", sent);
    n = read(pp[0], buf, sizeof buf);
    printf("parent reads the pipe: %.*s\n", (int)n, buf);
    int bad = 999;
    memcpy(CMSG_DATA(cm), &bad, sizeof bad);
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    m.msg_controllen = CMSG_SPACE(sizeof(int));
    expect_err("sendmsg SCM_RIGHTS with a bad fd", sendmsg(pair[0], &m, 0));

    /* FIONREAD, then a write to a closed peer: EPIPE and SIGPIPE */
    int sp2[2];
    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, sp2));
    write(sp2[0], "12345", 5);
    int avail = -1;
    show("FIONREAD", ioctl(sp2[1], FIONREAD, &avail) < 0 ? -1 : avail);
    close(sp2[1]);
    signal(SIGPIPE, on_sigpipe);
    expect_err("write to a closed peer", write(sp2[0], "x", 1));
    printf("SIGPIPE raised: %d\n", (int)got_sigpipe);
    expect_err("send MSG_NOSIGNAL to a closed peer", send(sp2[0], "x", 1, MSG_NOSIGNAL));
    printf("SIGPIPE count still 1: %d\n", got_sigpipe == 1);

    remove_dir();
    return 0;
}
