/* net/tcp: TCP over loopback — socket options and their defaults, bind
 * (EINVAL twice, EADDRINUSE, SO_REUSEADDR against a listener,
 * EADDRNOTAVAIL, EACCES-free port 0), listen's autobind, blocking and
 * non-blocking connect (EINPROGRESS, then SO_ERROR; ECONNREFUSED both
 * ways), accept4 and the addresses each end reports, poll on fresh,
 * listening, connected and refused sockets, send/recv with MSG_PEEK and
 * FIONREAD, shutdown's EOF, EPIPE on an unconnected socket, a 1 MiB
 * transfer between processes, and IPv6 (::1, a dual-stack listener seeing
 * an IPv4 client as ::ffff:127.0.0.1, IPV6_V6ONLY).
 *
 * Only loopback addresses are used, and only ports the kernel hands out. */
#include "../common.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <limits.h>
#include <time.h>

static struct sockaddr_in lo4(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static int port_of(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    MUST(getsockname(fd, (struct sockaddr *)&ss, &len));
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* Prints an address without its port (ports are the kernel's choice). */
static void show_addr(const char *label, const struct sockaddr *sa, socklen_t len)
{
    char buf[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, buf, sizeof buf);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, buf, sizeof buf);
    printf("%s: family %s len %u addr %s\n", label,
           sa->sa_family == AF_INET ? "AF_INET" : sa->sa_family == AF_INET6 ? "AF_INET6" : "?",
           (unsigned)len, buf);
}

static void show_name(const char *label, int fd, int peer)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int r = peer ? getpeername(fd, (struct sockaddr *)&ss, &len)
                 : getsockname(fd, (struct sockaddr *)&ss, &len);
    if (r < 0) {
        printf("%s: -1 %s\n", label, errname(errno));
        return;
    }
    show_addr(label, (struct sockaddr *)&ss, len);
}

static int getint(int fd, int level, int name)
{
    int v = -12345;
    socklen_t len = sizeof v;
    if (getsockopt(fd, level, name, &v, &len) < 0)
        return -errno;
    return v;
}

static void show_opt(const char *label, int fd, int level, int name)
{
    int v = getint(fd, level, name);
    if (v < 0 && v > -200)
        printf("%s = -1 %s\n", label, errname(-v));
    else
        printf("%s = %d\n", label, v);
}

static void show_poll(const char *label, int fd, short events)
{
    struct pollfd p = {.fd = fd, .events = events};
    int n = poll(&p, 1, 0);
    printf("%s: n=%d%s%s%s%s%s\n", label, n, p.revents & POLLIN ? " IN" : "",
           p.revents & POLLOUT ? " OUT" : "", p.revents & POLLERR ? " ERR" : "",
           p.revents & POLLHUP ? " HUP" : "", p.revents & POLLRDHUP ? " RDHUP" : "");
}

/* Waits (up to 5 s) until fd is writable or failed. */
static void wait_out(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    poll(&p, 1, 5000);
}

/* A port nobody listens on: bound, then released. */
static int closed_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = lo4(0);
    MUST(bind(s, (struct sockaddr *)&a, sizeof a));
    int p = port_of(s);
    close(s);
    return p;
}

static void options(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    MUST(s);
    show_opt("SO_TYPE", s, SOL_SOCKET, SO_TYPE);
    show_opt("SO_DOMAIN", s, SOL_SOCKET, SO_DOMAIN);
    show_opt("SO_PROTOCOL", s, SOL_SOCKET, SO_PROTOCOL);
    show_opt("SO_ERROR", s, SOL_SOCKET, SO_ERROR);
    show_opt("SO_ACCEPTCONN", s, SOL_SOCKET, SO_ACCEPTCONN);
    show_opt("SO_REUSEADDR", s, SOL_SOCKET, SO_REUSEADDR);
    show_opt("SO_KEEPALIVE", s, SOL_SOCKET, SO_KEEPALIVE);
    show_opt("TCP_NODELAY", s, IPPROTO_TCP, TCP_NODELAY);
    show_opt("TCP_KEEPIDLE", s, IPPROTO_TCP, TCP_KEEPIDLE);
    show_opt("TCP_KEEPINTVL", s, IPPROTO_TCP, TCP_KEEPINTVL);
    show_opt("TCP_KEEPCNT", s, IPPROTO_TCP, TCP_KEEPCNT);
    show_opt("TCP_MAXSEG", s, IPPROTO_TCP, TCP_MAXSEG);
    show_opt("IP_TTL", s, IPPROTO_IP, IP_TTL);
    show_opt("IPV6_V6ONLY on AF_INET", s, IPPROTO_IPV6, IPV6_V6ONLY);
    int five = 5, zero = 0;
    show("set SO_REUSEADDR 5", setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &five, sizeof five));
    show_opt("SO_REUSEADDR", s, SOL_SOCKET, SO_REUSEADDR);
    show("set TCP_NODELAY 5", setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &five, sizeof five));
    show_opt("TCP_NODELAY", s, IPPROTO_TCP, TCP_NODELAY);
    show("set TCP_KEEPIDLE 0", setsockopt(s, IPPROTO_TCP, TCP_KEEPIDLE, &zero, sizeof zero));
    int ttl = 7;
    show("set IP_TTL 7", setsockopt(s, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl));
    show_opt("IP_TTL", s, IPPROTO_IP, IP_TTL);
    show("set IP_TTL 0", setsockopt(s, IPPROTO_IP, IP_TTL, &zero, sizeof zero));
    struct linger l = {1, 3};
    show("set SO_LINGER", setsockopt(s, SOL_SOCKET, SO_LINGER, &l, sizeof l));
    struct linger got = {0, 0};
    socklen_t len = sizeof got;
    show("get SO_LINGER", getsockopt(s, SOL_SOCKET, SO_LINGER, &got, &len));
    printf("linger: %d %d len %u\n", got.l_onoff, got.l_linger, (unsigned)len);
    show("set short", setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &five, 2));
    show("unknown level", setsockopt(s, 9999, 1, &five, sizeof five));
    char cc[16] = {0};
    len = sizeof cc;
    show("TCP_CONGESTION", getsockopt(s, IPPROTO_TCP, TCP_CONGESTION, cc, &len));
    show_poll("poll fresh", s, POLLIN | POLLOUT);
    close(s);

    show_ok("socket SOCK_SEQPACKET", socket(AF_INET, SOCK_SEQPACKET, 0));
    expect_err("socket STREAM/UDP", socket(AF_INET, SOCK_STREAM, IPPROTO_UDP));
    expect_err("socket bad flags", socket(AF_INET, SOCK_STREAM | 0x100000, 0));
    expect_err("socketpair AF_INET", socketpair(AF_INET, SOCK_STREAM, 0, (int[2]){0, 0}));
}

static void binding(void)
{
    int a = socket(AF_INET, SOCK_STREAM, 0), b = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in any = lo4(0);
    show("bind 127.0.0.1:0", bind(a, (struct sockaddr *)&any, sizeof any));
    show_bool("port assigned", port_of(a) >= 1024);
    show_name("getsockname", a, 0);
    expect_err("bind again", bind(a, (struct sockaddr *)&any, sizeof any));
    struct sockaddr_in same = lo4(port_of(a));
    expect_err("bind taken port", bind(b, (struct sockaddr *)&same, sizeof same));
    struct sockaddr_in wild = same;
    wild.sin_addr.s_addr = htonl(INADDR_ANY);
    expect_err("bind wildcard over it", bind(b, (struct sockaddr *)&wild, sizeof wild));
    expect_err("bind short", bind(b, (struct sockaddr *)&any, 8));
    struct sockaddr_in6 six = {.sin6_family = AF_INET6};
    expect_err("bind AF_INET6 addr", bind(b, (struct sockaddr *)&six, sizeof six));
    struct sockaddr_in far = lo4(0);
    inet_pton(AF_INET, "192.0.2.1", &far.sin_addr);
    expect_err("bind foreign address", bind(b, (struct sockaddr *)&far, sizeof far));
    struct sockaddr_in other = lo4(0);
    inet_pton(AF_INET, "127.0.0.2", &other.sin_addr);
    show("bind 127.0.0.2:0", bind(b, (struct sockaddr *)&other, sizeof other));
    show_name("getsockname 127.0.0.2", b, 0);
    close(b);

    /* SO_REUSEADDR lets two sockets share a port until one listens. */
    int one = 1;
    int c = socket(AF_INET, SOCK_STREAM, 0), d = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(c, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(d, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    MUST(bind(c, (struct sockaddr *)&any, sizeof any));
    struct sockaddr_in cs = lo4(port_of(c));
    show("reuseaddr bind", bind(d, (struct sockaddr *)&cs, sizeof cs));
    show("listen first", listen(c, 4));
    expect_err("listen second", listen(d, 4));
    int e = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(e, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    expect_err("reuseaddr bind on a listener", bind(e, (struct sockaddr *)&cs, sizeof cs));
    close(c);
    close(d);
    close(e);
    close(a);

    /* listen without bind picks a port on the wildcard address. */
    int f = socket(AF_INET, SOCK_STREAM, 0);
    show("listen unbound", listen(f, 1));
    show_bool("listen autobound", port_of(f) >= 1024);
    show_name("autobound name", f, 0);
    show_opt("SO_ACCEPTCONN", f, SOL_SOCKET, SO_ACCEPTCONN);
    show("listen again", listen(f, 8));
    close(f);
}

static void connection(void)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = lo4(0);
    MUST(bind(l, (struct sockaddr *)&a, sizeof a));
    MUST(listen(l, 8));
    show_poll("poll idle listener", l, POLLIN | POLLOUT);
    fcntl(l, F_SETFL, O_NONBLOCK);
    expect_err("accept empty", accept(l, NULL, NULL));
    fcntl(l, F_SETFL, 0);

    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = lo4(port_of(l));
    show("connect", connect(c, (struct sockaddr *)&to, sizeof to));
    expect_err("connect again", connect(c, (struct sockaddr *)&to, sizeof to));
    show_name("client name", c, 0);
    show_name("client peer", c, 1);
    show_bool("client port differs", port_of(c) != port_of(l));
    show_poll("poll listener with a connection", l, POLLIN | POLLOUT);

    struct sockaddr_in from;
    socklen_t flen = sizeof from;
    int s = accept4(l, (struct sockaddr *)&from, &flen, SOCK_CLOEXEC);
    show_ok("accept4", s);
    show_addr("accepted from", (struct sockaddr *)&from, flen);
    show_bool("from is the client", ntohs(from.sin_port) == port_of(c));
    show_name("server side name", s, 0);
    show_bool("server side port", port_of(s) == port_of(l));
    printf("FD_CLOEXEC: %d\n", fcntl(s, F_GETFD) & FD_CLOEXEC);
    show_poll("poll connected", c, POLLIN | POLLOUT);

    show("send", send(c, "hello", 5, 0));
    char buf[64] = {0};
    struct pollfd p = {.fd = s, .events = POLLIN};
    poll(&p, 1, 5000);
    int n = -1;
    ioctl(s, FIONREAD, &n);
    printf("FIONREAD: %d\n", n);
    show("recv peek", recv(s, buf, 3, MSG_PEEK));
    show("recv", recv(s, buf, sizeof buf - 1, 0));
    printf("got: %s\n", buf);
    show("recv nonblocking", recv(s, buf, sizeof buf, MSG_DONTWAIT));
    if (errno == EAGAIN)
        printf("(EAGAIN as expected)\n");
    struct sockaddr_in sender;
    socklen_t slen = sizeof sender;
    show("write back", write(s, "world", 5));
    show("recvfrom", recvfrom(c, buf, sizeof buf, 0, (struct sockaddr *)&sender, &slen));
    printf("recvfrom addrlen: %u\n", (unsigned)slen);
    show("shutdown WR", shutdown(c, SHUT_WR));
    show("server reads EOF", recv(s, buf, sizeof buf, 0));
    show_poll("poll after peer shutdown", s, POLLIN | POLLOUT | POLLRDHUP);
    show("server still writes", send(s, "x", 1, 0));
    show("client reads", recv(c, buf, sizeof buf, 0));
    expect_err("shutdown bad how", shutdown(c, 7));
    close(s);
    show("client reads EOF", recv(c, buf, sizeof buf, 0));
    close(c);

    /* A megabyte from a child process, checksummed. */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int cc = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(cc, (struct sockaddr *)&to, sizeof to) < 0)
            _exit(1);
        static char chunk[65536];
        for (int i = 0; i < (int)sizeof chunk; i++)
            chunk[i] = (char)(i * 7);
        for (int k = 0; k < 16; k++) {
            size_t off = 0;
            while (off < sizeof chunk) {
                ssize_t w = write(cc, chunk + off, sizeof chunk - off);
                if (w <= 0)
                    _exit(2);
                off += w;
            }
        }
        _exit(0);
    }
    int t = accept(l, NULL, NULL);
    MUST(t);
    unsigned long total = 0, sum = 0;
    static char rb[30000];
    for (;;) {
        ssize_t r = read(t, rb, sizeof rb);
        if (r <= 0)
            break;
        for (ssize_t i = 0; i < r; i++)
            sum = sum * 31 + (unsigned char)rb[i];
        total += r;
    }
    int st;
    waitpid(pid, &st, 0);
    printf("transfer: %lu bytes, sum %lx, child %d\n", total, sum, WEXITSTATUS(st));
    close(t);
    close(l);
}

static void refused(void)
{
    int port = closed_port();
    struct sockaddr_in to = lo4(port);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    expect_err("connect closed port", connect(c, (struct sockaddr *)&to, sizeof to));
    show_opt("SO_ERROR after", c, SOL_SOCKET, SO_ERROR);
    close(c);

    int n = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    expect_err("nonblocking connect closed port", connect(n, (struct sockaddr *)&to, sizeof to));
    wait_out(n);
    show_poll("poll refused", n, POLLIN | POLLOUT);
    show_opt("SO_ERROR", n, SOL_SOCKET, SO_ERROR);
    show_opt("SO_ERROR again", n, SOL_SOCKET, SO_ERROR);
    show_poll("poll after SO_ERROR", n, POLLIN | POLLOUT);
    close(n);

    n = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    expect_err("nonblocking connect closed port", connect(n, (struct sockaddr *)&to, sizeof to));
    wait_out(n);
    expect_err("connect collects the error", connect(n, (struct sockaddr *)&to, sizeof to));
    close(n);

    /* A non-blocking connect to a listener completes in the background. */
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = lo4(0);
    MUST(bind(l, (struct sockaddr *)&a, sizeof a));
    MUST(listen(l, 8));
    struct sockaddr_in lt = lo4(port_of(l));
    n = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    expect_err("nonblocking connect", connect(n, (struct sockaddr *)&lt, sizeof lt));
    wait_out(n);
    show_poll("poll connected", n, POLLOUT);
    show_opt("SO_ERROR", n, SOL_SOCKET, SO_ERROR);
    show("connect after completion", connect(n, (struct sockaddr *)&lt, sizeof lt));
    expect_err("connect once more", connect(n, (struct sockaddr *)&lt, sizeof lt));
    close(n);
    close(l);

    /* Unconnected sockets. */
    int u = socket(AF_INET, SOCK_STREAM, 0);
    char b[4];
    expect_err("send unconnected", send(u, "x", 1, MSG_NOSIGNAL));
    expect_err("recv unconnected", recv(u, b, sizeof b, 0));
    show_name("getpeername unconnected", u, 1);
    expect_err("shutdown unconnected", shutdown(u, SHUT_RDWR));
    expect_err("connect short addr", connect(u, (struct sockaddr *)&to, 4));
    struct sockaddr_in6 six = {.sin6_family = AF_INET6};
    expect_err("connect AF_INET6 addr", connect(u, (struct sockaddr *)&six, sizeof six));
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    show("connect AF_UNSPEC", connect(u, &unspec, sizeof unspec));
    signal(SIGPIPE, SIG_IGN);
    expect_err("write unconnected", write(u, "x", 1));
    close(u);
}

static void ipv6(void)
{
    int l = socket(AF_INET6, SOCK_STREAM, 0);
    MUST(l);
    show_opt("IPV6_V6ONLY", l, IPPROTO_IPV6, IPV6_V6ONLY);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    show("bind ::1", bind(l, (struct sockaddr *)&a, sizeof a));
    show_name("v6 name", l, 0);
    MUST(listen(l, 4));
    struct sockaddr_in v4 = lo4(port_of(l));
    int c4 = socket(AF_INET, SOCK_STREAM, 0);
    expect_err("v4 client to ::1 listener", connect(c4, (struct sockaddr *)&v4, sizeof v4));
    close(c4);
    struct sockaddr_in6 to = a;
    to.sin6_port = htons(port_of(l));
    int c6 = socket(AF_INET6, SOCK_STREAM, 0);
    show("v6 connect", connect(c6, (struct sockaddr *)&to, sizeof to));
    show_name("v6 client peer", c6, 1);
    int s = accept(l, NULL, NULL);
    show_ok("v6 accept", s);
    show_name("v6 accepted peer", s, 1);
    close(s);
    close(c6);
    close(l);

    /* A dual-stack listener on :: takes IPv4 clients. */
    int d = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 any = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT};
    MUST(bind(d, (struct sockaddr *)&any, sizeof any));
    MUST(listen(d, 4));
    struct sockaddr_in dv4 = lo4(port_of(d));
    c4 = socket(AF_INET, SOCK_STREAM, 0);
    show("v4 client to dual-stack", connect(c4, (struct sockaddr *)&dv4, sizeof dv4));
    s = accept(d, NULL, NULL);
    show_name("dual-stack sees", s, 1);
    show_name("dual-stack local", s, 0);
    close(s);
    close(c4);
    int v4only = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in w = lo4(port_of(d));
    w.sin_addr.s_addr = htonl(INADDR_ANY);
    expect_err("v4 bind on dual-stack port", bind(v4only, (struct sockaddr *)&w, sizeof w));
    close(v4only);
    close(d);

    /* IPV6_V6ONLY: no IPv4 at all. */
    int o = socket(AF_INET6, SOCK_STREAM, 0);
    int one = 1;
    show("set IPV6_V6ONLY", setsockopt(o, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one));
    MUST(bind(o, (struct sockaddr *)&any, sizeof any));
    show("set IPV6_V6ONLY after bind", setsockopt(o, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one));
    MUST(listen(o, 4));
    struct sockaddr_in ov4 = lo4(port_of(o));
    c4 = socket(AF_INET, SOCK_STREAM, 0);
    expect_err("v4 client to v6only", connect(c4, (struct sockaddr *)&ov4, sizeof ov4));
    close(c4);
    close(o);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* SO_RCVTIMEO and SO_SNDTIMEO: a blocking accept, recv or send gives up
 * with EAGAIN (or the bytes moved so far) once the time has passed; an
 * accepted socket inherits the listener's. */
static void timeouts(void)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = lo4(0);
    MUST(bind(l, (struct sockaddr *)&a, sizeof a));
    MUST(listen(l, 8));
    /* A time too long to represent means forever. */
    struct timeval forever = {.tv_sec = LONG_MAX, .tv_usec = 0};
    show("SO_RCVTIMEO of LONG_MAX s",
         setsockopt(l, SOL_SOCKET, SO_RCVTIMEO, &forever, sizeof forever));
    fcntl(l, F_SETFL, O_NONBLOCK);
    expect_err("non-blocking accept with it", accept(l, NULL, NULL));
    fcntl(l, F_SETFL, 0);
    struct timeval tv = {.tv_sec = 0, .tv_usec = 150000};
    MUST(setsockopt(l, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    double t0 = now_s();
    expect_err("accept with SO_RCVTIMEO", accept(l, NULL, NULL));
    show_bool("accept waited 0.15 s", now_s() - t0 >= 0.14);

    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = lo4(port_of(l));
    MUST(connect(c, (struct sockaddr *)&to, sizeof to));
    int s = accept(l, NULL, NULL);
    show_ok("accept", s);
    struct timeval back = {0};
    socklen_t len = sizeof back;
    MUST(getsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &back, &len));
    /* Linux keeps it in jiffies: 0.15 s may read back a little longer. */
    printf("accepted socket inherits SO_RCVTIMEO: %s\n",
           back.tv_sec == 0 && back.tv_usec >= 150000 && back.tv_usec < 160000 ? "yes" : "no");
    char buf[16];
    t0 = now_s();
    expect_err("recv on the accepted socket", recv(s, buf, sizeof buf, 0));
    show_bool("recv waited 0.15 s", now_s() - t0 >= 0.14);

    MUST(setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    MUST(send(s, "ab", 2, 0));
    show("recv with data waiting", recv(c, buf, sizeof buf, 0));
    t0 = now_s();
    expect_err("recv with SO_RCVTIMEO", recv(c, buf, sizeof buf, 0));
    show_bool("recv waited 0.15 s", now_s() - t0 >= 0.14);

    /* A send larger than both buffers: part of it, then the time runs out. */
    MUST(setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv));
    size_t big = 64 << 20;
    char *data = calloc(1, big);
    t0 = now_s();
    ssize_t n = send(c, data, big, 0);
    show_bool("send moved part of it", n > 0 && (size_t)n < big);
    show_bool("send waited 0.15 s", now_s() - t0 >= 0.14);
    free(data);
    close(c);
    close(s);
    close(l);
}

int main(void)
{
    test_init();
    options();
    binding();
    connection();
    refused();
    ipv6();
    timeouts();
    return 0;
}
