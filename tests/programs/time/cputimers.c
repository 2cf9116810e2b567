/*
 * CPU-time timers: ITIMER_VIRTUAL and ITIMER_PROF fire while the process
 * computes (SIGVTALRM, SIGPROF), getitimer reports them armed, and
 * RLIMIT_CPU sends SIGXCPU at the soft limit (default action: the process
 * dies, reported to the parent).
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t vt, prof;
static void on_vt(int s) { (void)s; vt++; }
static void on_prof(int s) { (void)s; prof++; }

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    signal(SIGVTALRM, on_vt);
    signal(SIGPROF, on_prof);
    struct itimerval v = {{0, 20000}, {0, 20000}};
    setitimer(ITIMER_VIRTUAL, &v, NULL);
    setitimer(ITIMER_PROF, &v, NULL);
    struct itimerval cur;
    getitimer(ITIMER_VIRTUAL, &cur);
    printf("virtual armed: %d interval %ld us\n", cur.it_value.tv_usec > 0 || cur.it_value.tv_sec > 0, (long)cur.it_interval.tv_usec);
    volatile unsigned long x = 0;
    while (vt < 3 || prof < 3)
        x++;
    struct itimerval zero = {{0, 0}, {0, 0}};
    setitimer(ITIMER_VIRTUAL, &zero, NULL);
    setitimer(ITIMER_PROF, &zero, NULL);
    getitimer(ITIMER_VIRTUAL, &cur);
    printf("fired: virtual>=3 %d prof>=3 %d; disarmed %d\n", vt >= 3, prof >= 3, cur.it_value.tv_sec == 0 && cur.it_value.tv_usec == 0);

    pid_t pid = fork();
    if (pid == 0) {
        struct rlimit r = {1, 5};
        setrlimit(RLIMIT_CPU, &r);
        for (volatile unsigned long i = 0;; i++)
            ;
    }
    int st;
    waitpid(pid, &st, 0);
    printf("RLIMIT_CPU: %s %d\n", WIFSIGNALED(st) ? "killed by" : "exited", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    return 0;
}
