/* Network micro-benchmarks, run natively and inside each runtime by
 * benches/net.rs. Prints "name\tns_per_op" per line, the best of 3 rounds.
 *   tcp_rr       a 1-byte request and its 1-byte answer (a round trip)
 *   tcp_64k      64 KiB streamed from one process to another
 *   tcp_64k_down 64 KiB streamed the other way (the far end sends)
 *   tcp_connect  connect + accept + close of one connection
 *   udp_rr       a 1-byte datagram and its answer
 *
 *   net SCALE            both ends in this container, over 127.0.0.1
 *   net SCALE PEER_IP    this end only, against `net --serve` at PEER_IP
 *                        (across a veth pair)
 *   net --serve          the far end: TCP on port 7001 (each connection
 *                        says what it measures), connect-and-close on 7002,
 *                        UDP echo on 7003; runs until killed
 * SCALE multiplies the iteration counts. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static int listener(struct sockaddr_in *a)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    a->sin_family = AF_INET;
    a->sin_port = 0;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof *a;
    if (l < 0 || bind(l, (struct sockaddr *)a, sizeof *a) < 0 || listen(l, 128) < 0 ||
        getsockname(l, (struct sockaddr *)a, &len) < 0)
        die("listener");
    return l;
}

static void full(int fd, char *buf, size_t n, int writing)
{
    size_t off = 0;
    while (off < n) {
        ssize_t r = writing ? write(fd, buf + off, n - off) : read(fd, buf + off, n - off);
        if (r <= 0)
            die(writing ? "write" : "read");
        off += r;
    }
}

/* What a TCP connection measures, sent first by the client. */
enum mode { DRAIN, ECHO, SEND };
struct request {
    long n;
    long size;
    long mode;
};

/* The far end of a round-trip or streaming connection: echo each message,
 * drain them all then say done, or send them. */
static void serve_conn(int s)
{
    struct request r;
    static char buf[65536];
    full(s, (char *)&r, sizeof r, 0);
    if (r.size < 1 || r.size > (long)sizeof buf)
        _exit(1);
    for (long i = 0; i < r.n; i++) {
        if (r.mode != SEND)
            full(s, buf, r.size, 0);
        if (r.mode != DRAIN)
            full(s, buf, r.size, 1);
    }
    if (r.mode == DRAIN)
        full(s, buf, 1, 1);
    _exit(0);
}

static int connect_to(const struct sockaddr_in *a)
{
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0 || connect(c, (const struct sockaddr *)a, sizeof *a) < 0)
        die("connect");
    return c;
}

/* The round trip and streaming benchmarks: the far end (a child here, or
 * the peer's server at port 7001) echoes or drains. */
static double tcp(const struct in_addr *peer, long n, size_t size, enum mode mode)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(7001)};
    int l = -1;
    pid_t pid = -1;
    if (peer) {
        a.sin_addr = *peer;
    } else {
        l = listener(&a);
        pid = fork();
        if (pid == 0)
            serve_conn(accept(l, NULL, NULL));
    }
    int c = connect_to(&a);
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct request r = {.n = n, .size = size, .mode = mode};
    full(c, (char *)&r, sizeof r, 1);
    static char buf[65536];
    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        if (mode != SEND)
            full(c, buf, size, 1);
        if (mode != DRAIN)
            full(c, buf, size, 0);
    }
    if (mode == DRAIN)
        full(c, buf, 1, 0);
    double t = now_ns() - t0;
    if (pid > 0)
        waitpid(pid, NULL, 0);
    close(c);
    if (l >= 0)
        close(l);
    return t / n;
}

static double tcp_connect(const struct in_addr *peer, long n)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(7002)};
    int l = -1;
    if (peer)
        a.sin_addr = *peer;
    else
        l = listener(&a);
    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        int c = connect_to(&a);
        if (l >= 0) /* (the peer's server accepts and closes its own) */
            close(accept(l, NULL, NULL));
        close(c);
    }
    double t = now_ns() - t0;
    if (l >= 0)
        close(l);
    return t / n;
}

static double udp_rr(const struct in_addr *peer, long n)
{
    int cli = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(7003)};
    pid_t pid = -1;
    if (peer) {
        a.sin_addr = *peer;
    } else {
        int srv = socket(AF_INET, SOCK_DGRAM, 0);
        a.sin_port = 0;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (bind(srv, (struct sockaddr *)&a, sizeof a) < 0 ||
            getsockname(srv, (struct sockaddr *)&a, &len) < 0)
            die("udp setup");
        pid = fork();
        if (pid == 0) {
            char b;
            struct sockaddr_in from;
            for (long i = 0; i < n; i++) {
                socklen_t fl = sizeof from;
                if (recvfrom(srv, &b, 1, 0, (struct sockaddr *)&from, &fl) != 1 ||
                    sendto(srv, &b, 1, 0, (struct sockaddr *)&from, fl) != 1)
                    _exit(1);
            }
            _exit(0);
        }
        close(srv);
    }
    if (connect(cli, (struct sockaddr *)&a, sizeof a) < 0)
        die("udp connect");
    char b = 'x';
    double t0 = now_ns();
    for (long i = 0; i < n; i++)
        if (send(cli, &b, 1, 0) != 1 || recv(cli, &b, 1, 0) != 1)
            die("udp rr");
    double t = now_ns() - t0;
    if (pid > 0)
        waitpid(pid, NULL, 0);
    close(cli);
    return t / n;
}

/* A listening TCP socket on every address, port `port`. */
static int listen_any(int port)
{
    int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(l, (struct sockaddr *)&a, sizeof a) < 0 || listen(l, 128) < 0)
        die("serve: listen");
    return l;
}

/* The far end for a client in another network namespace: one process per
 * port, all killed with this one. */
static int serve(void)
{
    signal(SIGCHLD, SIG_IGN);
    int rr = listen_any(7001), conn = listen_any(7002);
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(7003)};
    if (bind(udp, (struct sockaddr *)&a, sizeof a) < 0)
        die("serve: udp");
    if (fork() == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        for (;;) {
            int s = accept(conn, NULL, NULL);
            if (s >= 0)
                close(s);
        }
    }
    if (fork() == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        char b;
        struct sockaddr_in from;
        for (;;) {
            socklen_t fl = sizeof from;
            if (recvfrom(udp, &b, 1, 0, (struct sockaddr *)&from, &fl) == 1)
                sendto(udp, &b, 1, 0, (struct sockaddr *)&from, fl);
        }
    }
    printf("serving\n");
    fflush(stdout);
    for (;;) {
        int s = accept(rr, NULL, NULL);
        if (s < 0)
            continue;
        if (fork() == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            int one = 1;
            setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            serve_conn(s);
        }
        close(s);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--serve") == 0)
        return serve();
    double scale = argc > 1 ? atof(argv[1]) : 1.0;
    struct in_addr peer_addr, *peer = NULL;
    if (argc > 2) {
        if (inet_pton(AF_INET, argv[2], &peer_addr) != 1)
            die("peer address");
        peer = &peer_addr;
    }
    long rr = 5000 * scale, stream = 4000 * scale, conns = 500 * scale;
    double best[5] = {1e30, 1e30, 1e30, 1e30, 1e30};
    for (int round = 0; round < 3; round++) {
        double v[5] = {tcp(peer, rr, 1, ECHO), tcp(peer, stream, 65536, DRAIN),
                       tcp(peer, stream, 65536, SEND), tcp_connect(peer, conns),
                       udp_rr(peer, rr)};
        for (int i = 0; i < 5; i++)
            if (v[i] < best[i])
                best[i] = v[i];
    }
    printf("tcp_rr\t%.0f\ntcp_64k\t%.0f\ntcp_64k_down\t%.0f\ntcp_connect\t%.0f\nudp_rr\t%.0f\n",
           best[0], best[1], best[2], best[3], best[4]);
    return 0;
}
