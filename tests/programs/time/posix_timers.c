/* time/posix_timers: timer_create/settime/gettime/getoverrun/delete —
 * a one-shot SIGEV_SIGNAL timer whose siginfo carries SI_TIMER and the
 * sigev_value, an absolute-time timer, SIGEV_NONE, a periodic timer whose
 * blocked signal accumulates overruns, SIGEV_THREAD_ID to a thread, a CPU
 * time timer, the old value from settime, and the errors. */
#include "../common.h"

#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>

static volatile sig_atomic_t fired, code, value;

static void on_sig(int s, siginfo_t *si, void *u)
{
    (void)s;
    (void)u;
    fired++;
    code = si->si_code;
    value = si->si_value.sival_int;
}

static volatile pid_t got_tid;
static void on_thread_sig(int s, siginfo_t *si, void *u)
{
    (void)s;
    (void)si;
    (void)u;
    got_tid = (pid_t)syscall(SYS_gettid);
}

static volatile int stop_thread;
static pid_t thread_tid;
static void *thread_main(void *a)
{
    (void)a;
    thread_tid = (pid_t)syscall(SYS_gettid);
    while (!stop_thread)
        usleep(1000);
    return NULL;
}

int main(void)
{
    test_init();
    struct sigaction sa = {.sa_sigaction = on_sig, .sa_flags = SA_SIGINFO};
    sigaction(SIGRTMIN, &sa, NULL);

    struct sigevent ev = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN};
    ev.sigev_value.sival_int = 42;
    timer_t t1;
    show("timer_create", timer_create(CLOCK_MONOTONIC, &ev, &t1));
    struct itimerspec its = {.it_value = {0, 50 * 1000 * 1000}};
    show("timer_settime 50ms", timer_settime(t1, 0, &its, NULL));
    struct itimerspec cur;
    timer_gettime(t1, &cur);
    printf("armed: %d\n", cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec > 0);
    while (!fired)
        pause();
    printf("fired %d code SI_TIMER %d value %d\n", (int)fired, code == SI_TIMER, (int)value);
    timer_gettime(t1, &cur);
    printf("after expiry: %ld.%09ld\n", (long)cur.it_value.tv_sec, cur.it_value.tv_nsec);

    /* absolute expiry on CLOCK_REALTIME */
    timer_t t2;
    ev.sigev_value.sival_int = 7;
    MUST(timer_create(CLOCK_REALTIME, &ev, &t2));
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    its.it_value = now;
    its.it_value.tv_nsec += 30 * 1000 * 1000;
    if (its.it_value.tv_nsec >= 1000000000) {
        its.it_value.tv_sec++;
        its.it_value.tv_nsec -= 1000000000;
    }
    fired = 0;
    show("timer_settime ABSTIME", timer_settime(t2, TIMER_ABSTIME, &its, NULL));
    while (!fired)
        pause();
    printf("absolute fired, value %d\n", (int)value);

    /* SIGEV_NONE: no signal, but time runs */
    struct sigevent none = {.sigev_notify = SIGEV_NONE};
    timer_t t3;
    MUST(timer_create(CLOCK_MONOTONIC, &none, &t3));
    its.it_value.tv_sec = 10;
    its.it_value.tv_nsec = 0;
    its.it_interval.tv_sec = 3;
    MUST(timer_settime(t3, 0, &its, NULL));
    struct itimerspec old;
    its.it_value.tv_sec = 20;
    show("timer_settime with old", timer_settime(t3, 0, &its, &old));
    printf("old value ~10s: %d, old interval %ld\n", old.it_value.tv_sec == 9 || old.it_value.tv_sec == 10,
           (long)old.it_interval.tv_sec);

    /* periodic, signal blocked: overruns accumulate */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGALRM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    struct sigevent alrm = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGALRM};
    timer_t t4;
    MUST(timer_create(CLOCK_MONOTONIC, &alrm, &t4));
    struct itimerspec per = {.it_value = {0, 10 * 1000 * 1000}, .it_interval = {0, 10 * 1000 * 1000}};
    MUST(timer_settime(t4, 0, &per, NULL));
    usleep(200 * 1000);
    siginfo_t si;
    int sig = sigwaitinfo(&set, &si);
    printf("sigwaitinfo %s, overrun in siginfo >= 5: %d, getoverrun >= 5: %d\n",
           sig == SIGALRM ? "SIGALRM" : "?", si.si_overrun >= 5, timer_getoverrun(t4) >= 5);
    show("timer_delete periodic", timer_delete(t4));

    /* SIGEV_THREAD_ID targets one thread */
    pthread_t th;
    pthread_create(&th, NULL, thread_main, NULL);
    while (!thread_tid)
        usleep(1000);
    struct sigaction ta = {.sa_sigaction = on_thread_sig, .sa_flags = SA_SIGINFO};
    sigaction(SIGUSR1, &ta, NULL);
    struct sigevent tev = {.sigev_notify = SIGEV_THREAD_ID, .sigev_signo = SIGUSR1};
    tev._sigev_un._tid = thread_tid;
    timer_t t5;
    show("timer_create THREAD_ID", timer_create(CLOCK_MONOTONIC, &tev, &t5));
    its = (struct itimerspec){.it_value = {0, 20 * 1000 * 1000}};
    MUST(timer_settime(t5, 0, &its, NULL));
    for (int i = 0; i < 200 && !got_tid; i++)
        usleep(5000);
    printf("delivered to the target thread: %d\n", got_tid == thread_tid);
    stop_thread = 1;
    pthread_join(th, NULL);
    tev._sigev_un._tid = 999999;
    timer_t bad;
    expect_err("timer_create THREAD_ID foreign tid", timer_create(CLOCK_MONOTONIC, &tev, &bad));

    /* CPU-time timer */
    timer_t t6;
    ev.sigev_value.sival_int = 9;
    MUST(timer_create(CLOCK_PROCESS_CPUTIME_ID, &ev, &t6));
    its = (struct itimerspec){.it_value = {0, 30 * 1000 * 1000}};
    fired = 0;
    MUST(timer_settime(t6, 0, &its, NULL));
    volatile unsigned long spin = 0;
    while (!fired)
        spin++;
    printf("cpu timer fired, value %d\n", (int)value);

    /* errors */
    timer_t e;
    expect_err("timer_create bad clock", timer_create(99, &ev, &e));
    struct sigevent badsig = {.sigev_notify = SIGEV_SIGNAL, .sigev_signo = 200};
    expect_err("timer_create bad signal", timer_create(CLOCK_MONOTONIC, &badsig, &e));
    its.it_value.tv_nsec = 1000000000;
    expect_err("timer_settime bad nsec", timer_settime(t1, 0, &its, NULL));
    its.it_value.tv_nsec = 0;
    expect_err("timer_settime bad flags", timer_settime(t1, 8, &its, NULL));
    show("timer_delete", timer_delete(t1));
    expect_err("timer_delete again", timer_delete(t1));
    expect_err("timer_gettime deleted", timer_gettime(t1, &cur));
    expect_err("timer_getoverrun deleted", timer_getoverrun(t1));
    return 0;
}
