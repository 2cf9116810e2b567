/*
 * Waiting on fds and time: poll, ppoll, select, pselect, epoll (level and
 * oneshot, data, EPOLL_CTL_MOD/DEL, closed fds), eventfd (counter and
 * semaphore modes), timerfd (one-shot and periodic), alarm and setitimer
 * delivering SIGALRM, and poll interrupted by a signal (EINTR).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t alarms;
static void on_alrm(int s) { (void)s; alarms++; }

static const char *en(int e) {
    switch (e) {
    case 0: return "ok";
    case EINTR: return "EINTR";
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    case EEXIST: return "EEXIST";
    case ENOENT: return "ENOENT";
    case EPERM: return "EPERM";
    case EAGAIN: return "EAGAIN";
    default: return "other";
    }
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    int p[2];
    pipe(p);
    struct pollfd pf[3] = {{p[0], POLLIN, 0}, {p[1], POLLOUT, 0}, {-1, POLLIN, 0}};
    int n = poll(pf, 3, 0);
    printf("poll empty pipe: n=%d r=%#x w=%#x neg=%#x\n", n, pf[0].revents, pf[1].revents, pf[2].revents);
    write(p[1], "ab", 2);
    n = poll(pf, 2, 1000);
    printf("poll after write: n=%d r=%#x\n", n, pf[0].revents);
    struct pollfd bad = {999, POLLIN, 0};
    n = poll(&bad, 1, 0);
    printf("poll bad fd: n=%d revents=%#x\n", n, bad.revents);
    struct timespec ts = {0, 20 * 1000 * 1000};
    char c[2];
    read(p[0], c, 2);
    n = ppoll(pf, 1, &ts, NULL);
    printf("ppoll timeout: n=%d\n", n);

    fd_set r, w;
    FD_ZERO(&r);
    FD_ZERO(&w);
    FD_SET(p[0], &r);
    FD_SET(p[1], &w);
    struct timeval tv = {0, 10000};
    n = select(p[1] + 1, &r, &w, NULL, &tv);
    printf("select: n=%d readable=%d writable=%d\n", n, FD_ISSET(p[0], &r), FD_ISSET(p[1], &w));
    FD_ZERO(&r);
    FD_SET(p[0], &r);
    struct timespec pts = {0, 10 * 1000 * 1000};
    n = pselect(p[0] + 1, &r, NULL, NULL, &pts, NULL);
    printf("pselect timeout: n=%d\n", n);

    /* epoll */
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 42};
    printf("epoll_ctl add: %s\n", en(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) ? errno : 0));
    printf("epoll_ctl add again: %s\n", en(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) ? errno : 0));
    printf("epoll_ctl mod missing: %s\n", en(epoll_ctl(ep, EPOLL_CTL_MOD, p[1], &ev) ? errno : 0));
    printf("epoll_ctl on itself: %s\n", en(epoll_ctl(ep, EPOLL_CTL_ADD, ep, &ev) ? errno : 0));
    struct epoll_event out[4];
    n = epoll_wait(ep, out, 4, 10);
    printf("epoll_wait empty: %d\n", n);
    write(p[1], "x", 1);
    n = epoll_wait(ep, out, 4, 1000);
    printf("epoll_wait: %d events=%#x data=%llu\n", n, n > 0 ? out[0].events : 0, n > 0 ? (unsigned long long)out[0].data.u64 : 0ULL);
    n = epoll_wait(ep, out, 4, 0);
    printf("epoll level-triggered again: %d\n", n);
    ev.events = EPOLLIN | EPOLLONESHOT;
    ev.data.u64 = 7;
    epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev);
    n = epoll_wait(ep, out, 4, 0);
    int n2 = epoll_wait(ep, out, 4, 0);
    printf("oneshot: first=%d second=%d\n", n, n2);
    printf("epoll_ctl del: %s\n", en(epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL) ? errno : 0));
    printf("epoll_wait bad maxevents: %s\n", en(epoll_wait(ep, out, 0, 0) < 0 ? errno : 0));

    /* eventfd */
    int efd = eventfd(3, 0);
    uint64_t v = 0;
    read(efd, &v, 8);
    printf("eventfd read: %llu\n", (unsigned long long)v);
    v = 5;
    write(efd, &v, 8);
    write(efd, &v, 8);
    read(efd, &v, 8);
    printf("eventfd sum: %llu\n", (unsigned long long)v);
    int sfd = eventfd(2, EFD_SEMAPHORE | EFD_NONBLOCK);
    read(sfd, &v, 8);
    uint64_t v2 = 0;
    read(sfd, &v2, 8);
    ssize_t rr = read(sfd, &v2, 8);
    printf("semaphore: %llu then %s\n", (unsigned long long)v, rr < 0 ? en(errno) : "data");
    ev.events = EPOLLIN;
    epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev);
    v = 1;
    write(efd, &v, 8);
    printf("epoll sees eventfd: %d\n", epoll_wait(ep, out, 4, 1000));

    /* timerfd */
    int tfd = timerfd_create(CLOCK_MONOTONIC, 0);
    struct itimerspec its = {{0, 10 * 1000 * 1000}, {0, 10 * 1000 * 1000}};
    timerfd_settime(tfd, 0, &its, NULL);
    uint64_t exp = 0;
    read(tfd, &exp, 8);
    printf("timerfd expired: %s\n", exp >= 1 ? "yes" : "no");
    struct itimerspec cur;
    timerfd_gettime(tfd, &cur);
    printf("timerfd periodic interval ms: %ld\n", cur.it_interval.tv_nsec / 1000000);
    printf("timerfd bad clock: %s\n", en(timerfd_create(12345, 0) < 0 ? errno : 0));

    /* alarm and setitimer */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alrm;
    sigaction(SIGALRM, &sa, NULL);
    printf("alarm returns: %u\n", alarm(5));
    printf("alarm again returns: %u\n", alarm(0));
    struct itimerval itv = {{0, 20000}, {0, 20000}};
    setitimer(ITIMER_REAL, &itv, NULL);
    while (alarms < 3)
        pause();
    struct itimerval zero = {{0, 0}, {0, 0}}, old;
    setitimer(ITIMER_REAL, &zero, &old);
    printf("setitimer fired 3 times, old interval us: %ld\n", (long)old.it_interval.tv_usec);
    getitimer(ITIMER_REAL, &old);
    printf("disarmed: %ld %ld\n", (long)old.it_value.tv_sec, (long)old.it_value.tv_usec);

    /* poll interrupted by a signal with a handler */
    itv.it_interval.tv_usec = 0;
    itv.it_value.tv_usec = 30000;
    setitimer(ITIMER_REAL, &itv, NULL);
    pf[0].fd = p[0];
    pf[0].events = POLLIN;
    read(p[0], c, 1);
    n = poll(pf, 1, 5000);
    printf("poll interrupted: n=%d %s\n", n, n < 0 ? en(errno) : "");
    return 0;
}
