/* net/udp: UDP over loopback — sendto/recvfrom and the source address,
 * MSG_PEEK, MSG_TRUNC (as a flag and in msg_flags), FIONREAD, empty
 * datagrams, order of a burst, EMSGSIZE, EDESTADDRREQ, connect (default
 * destination, filtering of other senders, ECONNREFUSED from a closed port
 * on the next call, AF_UNSPEC to dissolve it), SO_REUSEADDR, poll,
 * shutdown, sendmmsg/recvmmsg and IPv6.
 *
 * Only loopback addresses are used, and only ports the kernel hands out. */
#include "../common.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
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

/* A bound socket on 127.0.0.1 and a kernel-chosen port. */
static int bound4(void)
{
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = lo4(0);
    MUST(bind(s, (struct sockaddr *)&a, sizeof a));
    return s;
}

static void show_poll(const char *label, int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLOUT};
    int n = poll(&p, 1, 0);
    printf("%s: n=%d%s%s%s%s\n", label, n, p.revents & POLLIN ? " IN" : "",
           p.revents & POLLOUT ? " OUT" : "", p.revents & POLLERR ? " ERR" : "",
           p.revents & POLLHUP ? " HUP" : "");
}

/* Waits up to 5 s for something to read (or an error). */
static void wait_in(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    poll(&p, 1, 5000);
}

static void basics(void)
{
    int a = bound4(), b = bound4();
    struct sockaddr_in tb = lo4(port_of(b));
    show_poll("poll empty", b);
    show("sendto", sendto(a, "ping", 4, 0, (struct sockaddr *)&tb, sizeof tb));
    wait_in(b);
    show_poll("poll with data", b);
    int n = -1;
    ioctl(b, FIONREAD, &n);
    printf("FIONREAD: %d\n", n);
    char buf[128] = {0};
    struct sockaddr_in from;
    socklen_t flen = sizeof from;
    show("recvfrom peek", recvfrom(b, buf, 2, MSG_PEEK, (struct sockaddr *)&from, &flen));
    show("recvfrom", recvfrom(b, buf, sizeof buf - 1, 0, (struct sockaddr *)&from, &flen));
    printf("got %s from %s, len %u, port matches %d\n", buf, inet_ntoa(from.sin_addr),
           (unsigned)flen, ntohs(from.sin_port) == port_of(a));
    show("recv empty nonblocking", recv(b, buf, sizeof buf, MSG_DONTWAIT));

    /* Truncation: the rest of a datagram is gone. */
    sendto(a, "0123456789", 10, 0, (struct sockaddr *)&tb, sizeof tb);
    sendto(a, "abc", 3, 0, (struct sockaddr *)&tb, sizeof tb);
    wait_in(b);
    show("recv 4 of 10", recv(b, buf, 4, 0));
    show("next datagram", recv(b, buf, sizeof buf, 0));
    sendto(a, "0123456789", 10, 0, (struct sockaddr *)&tb, sizeof tb);
    wait_in(b);
    show("recv MSG_TRUNC", recv(b, buf, 4, MSG_TRUNC));
    sendto(a, "0123456789", 10, 0, (struct sockaddr *)&tb, sizeof tb);
    wait_in(b);
    struct iovec iov = {.iov_base = buf, .iov_len = 6};
    struct msghdr mh = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov,
                        .msg_iovlen = 1};
    show("recvmsg short", recvmsg(b, &mh, 0));
    printf("msg_flags TRUNC: %d, namelen %u\n", !!(mh.msg_flags & MSG_TRUNC),
           (unsigned)mh.msg_namelen);

    /* Empty datagrams are datagrams. */
    show("send empty", sendto(a, "", 0, 0, (struct sockaddr *)&tb, sizeof tb));
    wait_in(b);
    show("recv empty", recv(b, buf, sizeof buf, 0));

    /* A burst arrives whole and in order. */
    for (int i = 0; i < 40; i++) {
        char m[8];
        int k = snprintf(m, sizeof m, "m%d", i);
        sendto(a, m, k, 0, (struct sockaddr *)&tb, sizeof tb);
    }
    int inorder = 0;
    for (int i = 0; i < 40; i++) {
        char m[8] = {0}, want[8];
        snprintf(want, sizeof want, "m%d", i);
        wait_in(b);
        if (recv(b, m, sizeof m - 1, MSG_DONTWAIT) > 0 && strcmp(m, want) == 0)
            inorder++;
    }
    printf("burst in order: %d of 40\n", inorder);

    static char big[70000];
    expect_err("sendto 70000 bytes", sendto(a, big, sizeof big, 0, (struct sockaddr *)&tb, sizeof tb));
    show("sendto 65507 bytes", sendto(a, big, 65507, 0, (struct sockaddr *)&tb, sizeof tb));
    wait_in(b);
    show("recv 65507", recv(b, big, sizeof big, 0));
    expect_err("send unconnected", send(a, "x", 1, 0));
    {
        /* A control message whose length runs past the buffer (a sentry
         * once looped forever on it). */
        union {
            char buf[64];
            struct cmsghdr align;
        } ctl;
        memset(&ctl, 0, sizeof ctl);
        struct cmsghdr *c = (struct cmsghdr *)ctl.buf;
        c->cmsg_len = 16;
        c->cmsg_level = IPPROTO_IP;
        c = (struct cmsghdr *)(ctl.buf + 16);
        c->cmsg_len = (size_t)-1;
        struct iovec v = {.iov_base = "x", .iov_len = 1};
        struct msghdr m = {.msg_name = &tb, .msg_namelen = sizeof tb, .msg_iov = &v,
                           .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = 32};
        expect_err("sendmsg with a runaway cmsg_len", sendmsg(a, &m, 0));
    }
    expect_err("getpeername unconnected", getpeername(a, (struct sockaddr *)&from, &flen));
    expect_err("listen", listen(a, 1));
    expect_err("accept", accept(a, NULL, NULL));
    close(a);
    close(b);

    /* An unbound sender gets a port of its own on the first send. */
    int u = socket(AF_INET, SOCK_DGRAM, 0), r = bound4();
    struct sockaddr_in tr = lo4(port_of(r));
    show("unbound sendto", sendto(u, "hi", 2, 0, (struct sockaddr *)&tr, sizeof tr));
    wait_in(r);
    flen = sizeof from;
    show("recvfrom", recvfrom(r, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen));
    printf("autobound sender seen: %d\n", ntohs(from.sin_port) == port_of(u));
    struct sockaddr_in un;
    socklen_t ulen = sizeof un;
    getsockname(u, (struct sockaddr *)&un, &ulen);
    printf("autobound name: %s\n", inet_ntoa(un.sin_addr));
    close(u);
    close(r);
}

static void connected(void)
{
    int a = bound4(), b = bound4(), c = bound4();
    struct sockaddr_in ta = lo4(port_of(a)), tb = lo4(port_of(b));
    char buf[64] = {0};
    show("connect", connect(a, (struct sockaddr *)&tb, sizeof tb));
    show("send", send(a, "one", 3, 0));
    wait_in(b);
    show("recv", recv(b, buf, sizeof buf, 0));
    show("b connects to a", connect(b, (struct sockaddr *)&ta, sizeof ta));
    show("c sends to b", sendto(c, "stranger", 8, 0, (struct sockaddr *)&tb, sizeof tb));
    show("a sends to b", send(a, "two", 3, 0));
    wait_in(b);
    memset(buf, 0, sizeof buf);
    show("b receives", recv(b, buf, sizeof buf, 0));
    printf("b got: %s\n", buf);
    show("b has nothing else", recv(b, buf, sizeof buf, MSG_DONTWAIT));

    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    show("dissolve", connect(a, &unspec, sizeof unspec));
    socklen_t l = sizeof ta;
    expect_err("getpeername after", getpeername(a, (struct sockaddr *)&ta, &l));
    close(a);
    close(b);
    close(c);

    /* A connected socket learns that nobody listens. */
    int gone = bound4();
    struct sockaddr_in tg = lo4(port_of(gone));
    close(gone);
    int d = socket(AF_INET, SOCK_DGRAM, 0);
    show("connect to closed port", connect(d, (struct sockaddr *)&tg, sizeof tg));
    show("first send", send(d, "x", 1, 0));
    wait_in(d);
    show_poll("poll", d);
    expect_err("recv", recv(d, buf, sizeof buf, MSG_DONTWAIT));
    show("SO_ERROR cleared", ({
             int e = -1;
             socklen_t el = sizeof e;
             getsockopt(d, SOL_SOCKET, SO_ERROR, &e, &el);
             e;
         }));
    close(d);

    /* Unconnected, the same send is silently lost. */
    int e = socket(AF_INET, SOCK_DGRAM, 0);
    show("sendto closed port", sendto(e, "x", 1, 0, (struct sockaddr *)&tg, sizeof tg));
    wait_in(e);
    show_poll("poll unconnected", e);
    close(e);

    /* shutdown */
    int f = bound4(), g = bound4();
    struct sockaddr_in tf = lo4(port_of(f));
    expect_err("shutdown unconnected", shutdown(f, SHUT_RD));
    connect(g, (struct sockaddr *)&tf, sizeof tf);
    show("shutdown WR", shutdown(g, SHUT_WR));
    expect_err("send after SHUT_WR", send(g, "x", 1, MSG_NOSIGNAL));
    show("shutdown RD", shutdown(g, SHUT_RD));
    show("recv after SHUT_RD", recv(g, buf, sizeof buf, MSG_DONTWAIT));
    show_poll("poll after shutdown", g);
    close(f);
    close(g);
}

static void reuse_and_mmsg(void)
{
    int one = 1;
    int a = socket(AF_INET, SOCK_DGRAM, 0), b = socket(AF_INET, SOCK_DGRAM, 0);
    setsockopt(a, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(b, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in any = lo4(0);
    MUST(bind(a, (struct sockaddr *)&any, sizeof any));
    struct sockaddr_in same = lo4(port_of(a));
    show("reuseaddr bind", bind(b, (struct sockaddr *)&same, sizeof same));
    int c = socket(AF_INET, SOCK_DGRAM, 0);
    expect_err("plain bind", bind(c, (struct sockaddr *)&same, sizeof same));
    close(a);
    close(b);
    close(c);

    int s = bound4(), r = bound4();
    struct sockaddr_in tr = lo4(port_of(r));
    struct mmsghdr out[3];
    struct iovec oiov[3];
    const char *words[3] = {"alpha", "beta", "gamma"};
    memset(out, 0, sizeof out);
    for (int i = 0; i < 3; i++) {
        oiov[i].iov_base = (void *)words[i];
        oiov[i].iov_len = strlen(words[i]);
        out[i].msg_hdr.msg_iov = &oiov[i];
        out[i].msg_hdr.msg_iovlen = 1;
        out[i].msg_hdr.msg_name = &tr;
        out[i].msg_hdr.msg_namelen = sizeof tr;
    }
    show("sendmmsg", sendmmsg(s, out, 3, 0));
    printf("msg_len: %u %u %u\n", out[0].msg_len, out[1].msg_len, out[2].msg_len);
    struct mmsghdr in[4];
    struct iovec iiov[4];
    char bufs[4][16];
    memset(in, 0, sizeof in);
    memset(bufs, 0, sizeof bufs);
    for (int i = 0; i < 4; i++) {
        iiov[i].iov_base = bufs[i];
        iiov[i].iov_len = sizeof bufs[i] - 1;
        in[i].msg_hdr.msg_iov = &iiov[i];
        in[i].msg_hdr.msg_iovlen = 1;
    }
    wait_in(r);
    int got = 0;
    while (got < 3) {
        int k = recvmmsg(r, in + got, 4 - got, MSG_WAITFORONE, NULL);
        if (k <= 0)
            break;
        got += k;
    }
    printf("recvmmsg: %d: %s %s %s (%u)\n", got, bufs[0], bufs[1], bufs[2], in[2].msg_len);
    show("recvmmsg empty", recvmmsg(r, in, 4, MSG_DONTWAIT, NULL));
    close(s);
    close(r);
}

static void ipv6(void)
{
    int a = socket(AF_INET6, SOCK_DGRAM, 0), b = socket(AF_INET6, SOCK_DGRAM, 0);
    struct sockaddr_in6 lo = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    MUST(bind(a, (struct sockaddr *)&lo, sizeof lo));
    struct sockaddr_in6 any = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT};
    MUST(bind(b, (struct sockaddr *)&any, sizeof any));
    struct sockaddr_in6 tb = lo;
    tb.sin6_port = htons(port_of(b));
    show("v6 sendto", sendto(a, "six", 3, 0, (struct sockaddr *)&tb, sizeof tb));
    wait_in(b);
    char buf[16] = {0}, txt[INET6_ADDRSTRLEN];
    struct sockaddr_in6 from;
    socklen_t flen = sizeof from;
    show("v6 recvfrom", recvfrom(b, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen));
    printf("from %s len %u\n", inet_ntop(AF_INET6, &from.sin6_addr, txt, sizeof txt),
           (unsigned)flen);
    /* The dual-stack socket hears IPv4 too. */
    int v4 = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in t4 = lo4(port_of(b));
    show("v4 sendto dual-stack", sendto(v4, "four", 4, 0, (struct sockaddr *)&t4, sizeof t4));
    wait_in(b);
    flen = sizeof from;
    show("v6 recvfrom", recvfrom(b, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen));
    printf("from %s\n", inet_ntop(AF_INET6, &from.sin6_addr, txt, sizeof txt));
    close(v4);
    close(a);
    close(b);
}

/* SO_RCVTIMEO: a blocking receive gives up with EAGAIN. */
static void timeout(void)
{
    int s = bound4();
    struct timeval tv = {.tv_sec = 0, .tv_usec = 150000};
    MUST(setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char b[8];
    expect_err("recv with SO_RCVTIMEO", recv(s, b, sizeof b, 0));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double waited = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("recv waited 0.15 s: %s\n", waited >= 0.14 ? "yes" : "no");
    close(s);
}

int main(void)
{
    test_init();
    timeout();
    basics();
    connected();
    reuse_and_mmsg();
    ipv6();
    return 0;
}
