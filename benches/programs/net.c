/* Network micro-benchmarks over 127.0.0.1, both ends in one container:
 * run natively and inside each runtime by benches/net.rs. Prints
 * "name\tns_per_op" per line, the best of 3 rounds.
 *   tcp_rr       a 1-byte request and its 1-byte answer (a round trip)
 *   tcp_64k      64 KiB streamed from one process to another
 *   tcp_connect  connect + accept + close of one connection
 *   udp_rr       a 1-byte datagram and its answer
 * SCALE (argv[1]) multiplies the iteration counts. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
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

/* The round trip and streaming benchmarks: a child echoes or drains. */
static double tcp(long n, size_t size, int echo)
{
    struct sockaddr_in a;
    int l = listener(&a);
    pid_t pid = fork();
    if (pid == 0) {
        int s = accept(l, NULL, NULL);
        static char buf[65536];
        for (long i = 0; i < n; i++) {
            full(s, buf, size, 0);
            if (echo)
                full(s, buf, size, 1);
        }
        if (!echo)
            full(s, buf, 1, 1);
        _exit(0);
    }
    int c = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c, (struct sockaddr *)&a, sizeof a) < 0)
        die("connect");
    static char buf[65536];
    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        full(c, buf, size, 1);
        if (echo)
            full(c, buf, size, 0);
    }
    if (!echo)
        full(c, buf, 1, 0);
    double t = now_ns() - t0;
    waitpid(pid, NULL, 0);
    close(c);
    close(l);
    return t / n;
}

static double tcp_connect(long n)
{
    struct sockaddr_in a;
    int l = listener(&a);
    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(c, (struct sockaddr *)&a, sizeof a) < 0)
            die("connect");
        int s = accept(l, NULL, NULL);
        close(s);
        close(c);
    }
    double t = now_ns() - t0;
    close(l);
    return t / n;
}

static double udp_rr(long n)
{
    int srv = socket(AF_INET, SOCK_DGRAM, 0), cli = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(srv, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(srv, (struct sockaddr *)&a, &len) < 0 ||
        connect(cli, (struct sockaddr *)&a, sizeof a) < 0)
        die("udp setup");
    pid_t pid = fork();
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
    char b = 'x';
    double t0 = now_ns();
    for (long i = 0; i < n; i++)
        if (send(cli, &b, 1, 0) != 1 || recv(cli, &b, 1, 0) != 1)
            die("udp rr");
    double t = now_ns() - t0;
    waitpid(pid, NULL, 0);
    return t / n;
}

int main(int argc, char **argv)
{
    double scale = argc > 1 ? atof(argv[1]) : 1.0;
    long rr = 5000 * scale, stream = 4000 * scale, conns = 500 * scale;
    double best[4] = {1e30, 1e30, 1e30, 1e30};
    for (int round = 0; round < 3; round++) {
        double v[4] = {tcp(rr, 1, 1), tcp(stream, 65536, 0), tcp_connect(conns), udp_rr(rr)};
        for (int i = 0; i < 4; i++)
            if (v[i] < best[i])
                best[i] = v[i];
    }
    printf("tcp_rr\t%.0f\ntcp_64k\t%.0f\ntcp_connect\t%.0f\nudp_rr\t%.0f\n", best[0], best[1],
           best[2], best[3]);
    return 0;
}
