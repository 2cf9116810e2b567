/* net/icmp: raw ICMP sockets over loopback, as ping uses them. Echo
 * requests to 127.0.0.1 and 127.0.0.2 and their replies (a raw socket
 * sees its own request looped back, then the answer), the IP header it
 * receives, ICMP_FILTER, connect and send without an address, IP_HDRINCL,
 * MSG_TRUNC and MSG_PEEK, poll, the errors of bad addresses, and EPERM
 * without CAP_NET_RAW.
 *
 * Raw sockets see every ICMP packet of the network namespace: only
 * packets carrying this run's random identifier are printed. Ping sockets
 * (SOCK_DGRAM) depend on net.ipv4.ping_group_range and are tested in
 * tests/net.rs, where the test sets it. */
#include "../common.h"

#include <arpa/inet.h>
#include <linux/capability.h>
#include <linux/icmp.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static unsigned short ident;

static struct sockaddr_in addr4(const char *ip)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

static unsigned short csum(const void *p, size_t n)
{
    const unsigned char *b = p;
    unsigned long sum = 0;
    for (size_t i = 0; i + 1 < n; i += 2)
        sum += (b[i] << 8) | b[i + 1];
    if (n & 1)
        sum += b[n - 1] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return htons(~sum & 0xffff);
}

/* An echo request: header plus "rvisor-<seq>". */
static size_t echo(unsigned char *buf, int seq)
{
    struct icmphdr *h = (struct icmphdr *)buf;
    memset(h, 0, sizeof *h);
    h->type = ICMP_ECHO;
    h->un.echo.id = htons(ident);
    h->un.echo.sequence = htons(seq);
    int n = sprintf((char *)buf + sizeof *h, "rvisor-%d", seq);
    size_t len = sizeof *h + n;
    h->checksum = csum(buf, len);
    return len;
}

/* Receives up to `want` packets of this run (5 s at most), printing each. */
static void receive(int s, int want, const char *label)
{
    for (int got = 0; got < want;) {
        struct pollfd p = {.fd = s, .events = POLLIN};
        if (poll(&p, 1, 5000) != 1) {
            printf("%s: timed out after %d\n", label, got);
            return;
        }
        unsigned char buf[2048];
        struct sockaddr_in from;
        socklen_t flen = sizeof from;
        ssize_t n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen);
        if (n < 0) {
            printf("%s: recvfrom -1 %s\n", label, errname(errno));
            return;
        }
        struct iphdr *ip = (struct iphdr *)buf;
        size_t ihl = ip->ihl * 4;
        if ((size_t)n < ihl + sizeof(struct icmphdr))
            continue;
        struct icmphdr *h = (struct icmphdr *)(buf + ihl);
        if ((h->type != ICMP_ECHO && h->type != ICMP_ECHOREPLY) || ntohs(h->un.echo.id) != ident)
            continue;
        got++;
        char src[INET_ADDRSTRLEN], dst[INET_ADDRSTRLEN], froms[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &ip->saddr, src, sizeof src);
        inet_ntop(AF_INET, &ip->daddr, dst, sizeof dst);
        inet_ntop(AF_INET, &from.sin_addr, froms, sizeof froms);
        printf("%s: %s seq=%d len=%zd ip(v%d ihl=%zu tot=%d ttl=%d proto=%d %s->%s hdrsum %s) "
               "icmp sum %s payload=%.*s from=%s:%d flen=%u\n",
               label, h->type == ICMP_ECHO ? "request" : "reply", ntohs(h->un.echo.sequence), n,
               ip->version, ihl, ntohs(ip->tot_len), ip->ttl, ip->protocol, src, dst,
               csum(ip, ihl) == 0 ? "ok" : "bad", csum(h, n - ihl) == 0 ? "ok" : "bad",
               (int)(n - ihl - sizeof *h), (char *)(h + 1), froms, ntohs(from.sin_port), flen);
    }
}

static int raw_socket(void)
{
    int s = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    if (s < 0) {
        printf("socket(SOCK_RAW, IPPROTO_ICMP): -1 %s\n", errname(errno));
        exit(1);
    }
    return s;
}

static void basics(void)
{
    int s = raw_socket();
    int v;
    socklen_t len = sizeof v;
    getsockopt(s, SOL_SOCKET, SO_TYPE, &v, &len);
    printf("SO_TYPE raw: %d\n", v == SOCK_RAW);
    len = sizeof v;
    getsockopt(s, SOL_SOCKET, SO_PROTOCOL, &v, &len);
    printf("SO_PROTOCOL: %d\n", v);
    struct sockaddr_in name;
    socklen_t nlen = sizeof name;
    MUST(getsockname(s, (struct sockaddr *)&name, &nlen));
    printf("getsockname: port %d len %u\n", ntohs(name.sin_port), nlen);
    nlen = sizeof name;
    expect_err("getpeername unconnected", getpeername(s, (struct sockaddr *)&name, &nlen));
    struct pollfd p = {.fd = s, .events = POLLIN | POLLOUT};
    int ready = poll(&p, 1, 0);
    printf("poll fresh: %d%s%s\n", ready, p.revents & POLLIN ? " IN" : "",
           p.revents & POLLOUT ? " OUT" : "");
    unsigned char b[64];
    expect_err("recv MSG_DONTWAIT empty", recv(s, b, sizeof b, MSG_DONTWAIT));

    for (int seq = 1; seq <= 2; seq++) {
        size_t n = echo(b, seq);
        struct sockaddr_in a = addr4(seq == 1 ? "127.0.0.1" : "127.0.0.2");
        show("sendto echo", sendto(s, b, n, 0, (struct sockaddr *)&a, sizeof a));
        receive(s, 2, "loopback");
    }
    close(s);
}

static void filter(void)
{
    int s = raw_socket();
    uint32_t mask = 1u << ICMP_ECHO;
    show("ICMP_FILTER set", setsockopt(s, SOL_RAW, ICMP_FILTER, &mask, sizeof mask));
    uint32_t back = 0;
    socklen_t len = sizeof back;
    show("ICMP_FILTER get", getsockopt(s, SOL_RAW, ICMP_FILTER, &back, &len));
    printf("filter reads back: %d len %u\n", back == mask, len);
    uint16_t low = 0;
    show("ICMP_FILTER 2 bytes", setsockopt(s, SOL_RAW, ICMP_FILTER, &low, sizeof low));
    len = sizeof back;
    getsockopt(s, SOL_RAW, ICMP_FILTER, &back, &len);
    printf("filter after 2 bytes: %#x\n", back);
    len = 2;
    show("ICMP_FILTER get 2 bytes", getsockopt(s, SOL_RAW, ICMP_FILTER, &back, &len));
    printf("len %u\n", len);
    show("ICMP_FILTER set again", setsockopt(s, SOL_RAW, ICMP_FILTER, &mask, sizeof mask));
    unsigned char b[64];
    size_t n = echo(b, 3);
    struct sockaddr_in a = addr4("127.0.0.1");
    show("sendto echo", sendto(s, b, n, 0, (struct sockaddr *)&a, sizeof a));
    receive(s, 1, "filtered");
    struct pollfd p = {.fd = s, .events = POLLIN};
    printf("nothing more: %d\n", poll(&p, 1, 200));
    close(s);
}

static void connected(void)
{
    int s = raw_socket();
    unsigned char b[64];
    size_t n = echo(b, 4);
    expect_err("send unconnected", send(s, b, n, 0));
    struct sockaddr_in a = addr4("127.0.0.1");
    show("connect", connect(s, (struct sockaddr *)&a, sizeof a));
    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;
    expect_err("getpeername (no port)", getpeername(s, (struct sockaddr *)&peer, &plen));
    show("send connected", send(s, b, n, 0));
    receive(s, 2, "connected");

    /* MSG_PEEK then MSG_TRUNC on the next exchange. */
    n = echo(b, 5);
    show("write connected", write(s, b, n));
    struct pollfd p = {.fd = s, .events = POLLIN};
    poll(&p, 1, 5000);
    unsigned char small[8];
    ssize_t peeked = recv(s, small, sizeof small, MSG_PEEK);
    ssize_t whole = recv(s, small, sizeof small, MSG_PEEK | MSG_TRUNC);
    printf("peek: %zd, with MSG_TRUNC: %zd\n", peeked, whole);
    struct msghdr m = {0};
    struct iovec iov = {.iov_base = small, .iov_len = sizeof small};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    ssize_t r = recvmsg(s, &m, 0);
    printf("recvmsg small: %zd msg_flags TRUNC %d\n", r, !!(m.msg_flags & MSG_TRUNC));
    receive(s, 1, "after trunc");
    close(s);
}

static void errors(void)
{
    int s = raw_socket();
    unsigned char b[64];
    size_t n = echo(b, 6);
    struct sockaddr_in a = addr4("127.0.0.1");
    expect_err("sendto short address", sendto(s, b, n, 0, (struct sockaddr *)&a, 8));
    struct sockaddr_in6 six = {.sin6_family = AF_INET6};
    expect_err("sendto AF_INET6 address",
               sendto(s, b, n, 0, (struct sockaddr *)&six, sizeof six));
    int ttl = 0;
    expect_err("IP_TTL 0", setsockopt(s, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl));
    ttl = 7;
    show("IP_TTL 7", setsockopt(s, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl));
    int back = 0;
    socklen_t len = sizeof back;
    getsockopt(s, IPPROTO_IP, IP_TTL, &back, &len);
    printf("IP_TTL reads %d\n", back);
    close(s);
}

/* IP_HDRINCL: the application writes the IP header; the kernel fills in
 * the total length, checksum and a zero source. */
static void hdrincl(void)
{
    int s = raw_socket();
    int one = 1;
    show("IP_HDRINCL", setsockopt(s, IPPROTO_IP, IP_HDRINCL, &one, sizeof one));
    unsigned char b[128];
    struct iphdr *ip = (struct iphdr *)b;
    memset(ip, 0, sizeof *ip);
    ip->version = 4;
    ip->ihl = 5;
    ip->ttl = 33;
    ip->protocol = IPPROTO_ICMP;
    inet_pton(AF_INET, "127.0.0.1", &ip->daddr);
    size_t n = echo(b + sizeof *ip, 7);
    struct sockaddr_in a = addr4("127.0.0.1");
    show("sendto with header", sendto(s, b, sizeof *ip + n, 0, (struct sockaddr *)&a, sizeof a));
    receive(s, 2, "hdrincl");
    close(s);
}

static void without_cap_net_raw(void)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
        struct __user_cap_data_struct data[2] = {{0}};
        if (syscall(SYS_capset, &hdr, data) < 0)
            printf("capset: %s\n", errname(errno));
        expect_err("raw socket without CAP_NET_RAW", socket(AF_INET, SOCK_RAW, IPPROTO_ICMP));
        fflush(stdout);
        _exit(0);
    }
    waitpid(pid, NULL, 0);
}

int main(void)
{
    test_init();
    if (getrandom(&ident, sizeof ident, 0) != sizeof ident)
        ident = getpid();
    basics();
    filter();
    connected();
    errors();
    hdrincl();
    without_cap_net_raw();
    return 0;
}
