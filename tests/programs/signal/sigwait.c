/*
 * Synchronous signal waits: sigwaitinfo takes a blocked signal with its
 * siginfo, sigtimedwait times out with EAGAIN, sigwait, a pending signal is
 * taken at once, and a signal outside the set with a handler interrupts
 * the wait (EINTR).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void noop(int s) { (void)s; }

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        usleep(30000);
        kill(parent, SIGUSR1);
        _exit(0);
    }
    siginfo_t si;
    int r = sigwaitinfo(&set, &si);
    printf("sigwaitinfo: %s from child=%d code_user=%d\n", r == SIGUSR1 ? "SIGUSR1" : "other", si.si_pid == pid, si.si_code == SI_USER);
    waitpid(pid, NULL, 0);

    struct timespec ts = {0, 30 * 1000 * 1000};
    r = sigtimedwait(&set, &si, &ts);
    printf("sigtimedwait timeout: %d %s\n", r, r < 0 ? strerror(errno) : "");

    raise(SIGUSR2);
    int sig = 0;
    r = sigwait(&set, &sig);
    printf("sigwait pending: %d %s\n", r, sig == SIGUSR2 ? "SIGUSR2" : "other");

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = noop;
    sigaction(SIGALRM, &sa, NULL);
    pid = fork();
    if (pid == 0) {
        usleep(30000);
        kill(parent, SIGALRM);
        _exit(0);
    }
    r = sigwaitinfo(&set, &si);
    printf("interrupted by a handled signal: %d %s\n", r, r < 0 ? strerror(errno) : "");
    waitpid(pid, NULL, 0);
    return 0;
}
