/*
 * Job control: SIGSTOP/SIGTSTP stop a child (WUNTRACED, waitid WSTOPPED,
 * SIGCHLD with CLD_STOPPED), SIGCONT resumes it (WCONTINUED, CLD_CONTINUED),
 * a stopped child still dies of SIGKILL, SA_NOCLDSTOP silences stop
 * notifications, and a stopped child does not run until continued.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t last_code, n_chld;
static void on_chld(int s, siginfo_t *si, void *u) {
    (void)s;
    (void)u;
    last_code = si->si_code;
    n_chld++;
}

static void describe(const char *what, int st) {
    if (WIFSTOPPED(st))
        printf("%s: stopped by %d\n", what, WSTOPSIG(st));
    else if (WIFCONTINUED(st))
        printf("%s: continued\n", what);
    else if (WIFSIGNALED(st))
        printf("%s: killed by %d\n", what, WTERMSIG(st));
    else
        printf("%s: exited %d\n", what, WEXITSTATUS(st));
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_chld;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGCHLD, &sa, NULL);

    int p[2];
    pipe(p);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        for (int i = 0;; i++) {
            write(p[1], "t", 1);
            usleep(5000);
        }
    }
    close(p[1]);
    char c;
    read(p[0], &c, 1);
    int st;
    kill(pid, SIGSTOP);
    waitpid(pid, &st, WUNTRACED);
    describe("after SIGSTOP", st);
    usleep(20000);
    printf("sigchld code stopped: %d\n", last_code == CLD_STOPPED);
    /* stays stopped for a while */
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL);
    kill(pid, SIGCONT);
    waitpid(pid, &st, WCONTINUED);
    describe("after SIGCONT", st);
    usleep(20000);
    printf("sigchld code continued: %d\n", last_code == CLD_CONTINUED);
    printf("wnohang with nothing new: %d\n", waitpid(pid, &st, WNOHANG | WUNTRACED | WCONTINUED));
    kill(pid, SIGTSTP);
    siginfo_t si;
    memset(&si, 0, sizeof si);
    waitid(P_PID, pid, &si, WSTOPPED);
    printf("waitid WSTOPPED: code=%s status=%d\n", si.si_code == CLD_STOPPED ? "CLD_STOPPED" : "other", si.si_status);
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    describe("stopped child sent SIGKILL", st);
    close(p[0]);

    /* SA_NOCLDSTOP: no SIGCHLD for stops */
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    n_chld = 0;
    pid = fork();
    if (pid == 0) {
        raise(SIGSTOP);
        _exit(4);
    }
    waitpid(pid, &st, WUNTRACED);
    describe("child stopped itself", st);
    printf("sigchld with SA_NOCLDSTOP: %d\n", (int)n_chld);
    kill(pid, SIGCONT);
    waitpid(pid, &st, 0);
    describe("continued child", st);
    return 0;
}
