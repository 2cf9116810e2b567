/* time/sleep_rem: a signal handler interrupting nanosleep and a relative
 * clock_nanosleep gives EINTR and the time left in `rem`; an absolute
 * clock_nanosleep leaves `rem` alone. */
#include "../common.h"

#include <signal.h>
#include <sys/time.h>
#include <time.h>

static void on_alarm(int s) { (void)s; }

static void arm(void)
{
    struct itimerval it = {.it_value = {0, 100000}};
    setitimer(ITIMER_REAL, &it, NULL);
}

int main(void)
{
    test_init();
    struct sigaction sa = {.sa_handler = on_alarm}; /* no SA_RESTART */
    sigaction(SIGALRM, &sa, NULL);
    struct timespec req = {2, 0}, rem = {-1, -1};
    arm();
    int r = nanosleep(&req, &rem);
    printf("nanosleep: %s, rem between 1.5 and 2 s: %d\n", r < 0 ? errname(errno) : "ok",
           rem.tv_sec == 1 && rem.tv_nsec > 500000000);
    rem = (struct timespec){-1, -1};
    arm();
    r = clock_nanosleep(CLOCK_MONOTONIC, 0, &req, &rem);
    printf("clock_nanosleep relative: %s, rem between 1.5 and 2 s: %d\n", r ? errname(r) : "ok",
           rem.tv_sec == 1 && rem.tv_nsec > 500000000);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    now.tv_sec += 2;
    rem = (struct timespec){-1, -1};
    arm();
    r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &now, &rem);
    printf("clock_nanosleep absolute: %s, rem untouched: %d\n", r ? errname(r) : "ok", rem.tv_sec == -1);
    return 0;
}
