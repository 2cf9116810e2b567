/* signal/signalfd: signalfd and signalfd4 — reading blocked signals as
 * records (SI_USER with the sender's pid, sigqueue's value, SIGCHLD with
 * the child's status), EAGAIN when nothing is pending, poll and epoll
 * readiness, changing the mask on an existing fd, and the errors. */
#include "../common.h"

#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>

int main(void)
{
    test_init();
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGRTMIN);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    show_ok("signalfd", fd);
    struct signalfd_siginfo si;
    expect_err("read with nothing pending", read(fd, &si, sizeof si));
    expect_err("read into a short buffer", read(fd, &si, 10));
    struct pollfd p = {.fd = fd, .events = POLLIN};
    show("poll idle", poll(&p, 1, 0));

    kill(getpid(), SIGUSR1);
    show("poll after kill", poll(&p, 1, 1000));
    show("read", read(fd, &si, sizeof si));
    printf("signo %s code SI_USER %d pid is mine %d\n", strsignal(si.ssi_signo), si.ssi_code == SI_USER,
           si.ssi_pid == (unsigned)getpid());

    union sigval v = {.sival_int = 77};
    sigqueue(getpid(), SIGRTMIN, v);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    struct epoll_event out;
    show("epoll_wait", epoll_wait(ep, &out, 1, 1000));
    show("read", read(fd, &si, sizeof si));
    printf("SIGRTMIN %d code SI_QUEUE %d int %d\n", si.ssi_signo == (unsigned)SIGRTMIN,
           si.ssi_code == SI_QUEUE, si.ssi_int);

    fflush(stdout);
    pid_t c = fork();
    if (c == 0)
        _exit(5);
    show("poll for SIGCHLD", poll(&p, 1, 2000));
    show("read", read(fd, &si, sizeof si));
    printf("SIGCHLD %d code CLD_EXITED %d status %d pid matches %d\n", si.ssi_signo == SIGCHLD,
           si.ssi_code == CLD_EXITED, si.ssi_status, si.ssi_pid == (unsigned)c);
    waitpid(c, NULL, 0);

    /* two pending signals in one read */
    kill(getpid(), SIGUSR1);
    sigqueue(getpid(), SIGRTMIN, v);
    struct signalfd_siginfo two[2];
    show("read two records", read(fd, two, sizeof two));

    /* new mask on the same fd: SIGUSR1 no longer read */
    sigset_t only_rt;
    sigemptyset(&only_rt);
    sigaddset(&only_rt, SIGRTMIN);
    show("signalfd update returns the fd", signalfd(fd, &only_rt, 0) == fd);
    kill(getpid(), SIGUSR1);
    expect_err("read SIGUSR1 outside the mask", read(fd, &si, sizeof si));
    sigset_t pend;
    sigpending(&pend);
    printf("SIGUSR1 still pending: %d\n", sigismember(&pend, SIGUSR1));

    expect_err("signalfd bad flags", signalfd(-1, &set, 0x1234));
    expect_err("signalfd on a pipe", signalfd(ep, &set, 0));
    expect_err("signalfd4 bad size", syscall(SYS_signalfd4, -1, &set, 4, 0));
    return 0;
}
