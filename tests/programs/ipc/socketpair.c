/*
 * Unix socketpairs: stream echo across fork, EOF after the peer exits,
 * EPIPE on a closed peer, datagram boundaries and truncation, recvmsg,
 * non-blocking reads, SO_TYPE, unsupported families, shutdown.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
    int sv[2];
    printf("socketpair: %d\n", socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    pid_t p = fork();
    if (p == 0) { close(sv[0]); char b[32]; ssize_t n = recv(sv[1], b, sizeof b, 0); send(sv[1], b, n, 0); _exit(0); }
    close(sv[1]);
    send(sv[0], "ping", 4, 0);
    char b[32] = {0};
    ssize_t n = recv(sv[0], b, sizeof b, 0);
    printf("echo: %zd %s\n", n, b);
    waitpid(p, 0, 0);
    n = recv(sv[0], b, sizeof b, MSG_DONTWAIT);
    printf("after peer exit: %zd\n", n);
    signal(SIGPIPE, SIG_IGN);
    n = send(sv[0], "x", 1, 0);
    printf("send to closed peer: %zd %s\n", n, strerror(errno));
    int d[2]; socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, d);
    send(d[0], "ab", 2, 0); send(d[0], "cde", 3, 0);
    n = recv(d[1], b, 1, 0); printf("dgram truncated: %zd\n", n);
    struct msghdr m = {0}; struct iovec iov = {b, sizeof b}; m.msg_iov = &iov; m.msg_iovlen = 1;
    n = recvmsg(d[1], &m, 0); printf("recvmsg: %zd %.3s\n", n, b);
    n = recv(d[1], b, 1, 0); printf("empty nonblock: %zd %s\n", n, strerror(errno));
    int type; socklen_t len = sizeof type; getsockopt(d[0], SOL_SOCKET, SO_TYPE, &type, &len);
    printf("SO_TYPE dgram: %d\n", type == SOCK_DGRAM);
    int r = socketpair(AF_INET, SOCK_STREAM, 0, d);
    printf("inet socketpair: %d %s\n", r, r < 0 ? strerror(errno) : "");
    printf("shutdown: %d\n", shutdown(sv[0], SHUT_WR));
    return 0;
}
