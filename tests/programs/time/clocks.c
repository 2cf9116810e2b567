/* time/clocks: clock_gettime (vDSO via libc and raw syscall), gettimeofday,
 * time(), clock_getres, nanosleep / clock_nanosleep durations. Prints
 * booleans only, never times. */
#include "../common.h"

#include <stdint.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>

static int64_t ns(const struct timespec *t)
{
    return (int64_t)t->tv_sec * 1000000000LL + t->tv_nsec;
}

static int valid(const struct timespec *t)
{
    return t->tv_nsec >= 0 && t->tv_nsec < 1000000000L;
}

static int raw_gettime(clockid_t id, struct timespec *t)
{
    return (int)syscall(SYS_clock_gettime, id, t);
}

int main(void)
{
    test_init();
    struct timespec rt, rt2, mono, prev, cur;
    struct timeval tv;

    /* REALTIME vs gettimeofday vs time() agree within a second */
    show("clock_gettime REALTIME", clock_gettime(CLOCK_REALTIME, &rt));
    show("gettimeofday", gettimeofday(&tv, NULL));
    show_bool("REALTIME valid", valid(&rt));
    show_bool("REALTIME after 2020", rt.tv_sec > 1577836800);
    int64_t d = (int64_t)tv.tv_sec * 1000000 + tv.tv_usec - ns(&rt) / 1000;
    show_bool("gettimeofday within 1s of REALTIME", d > -1000000 && d < 1000000);
    show_bool("tv_usec valid", tv.tv_usec >= 0 && tv.tv_usec < 1000000);
    time_t t = time(NULL);
    show_bool("time() within 1s of REALTIME", t - rt.tv_sec >= -1 && t - rt.tv_sec <= 1);
    show("raw clock_gettime REALTIME", raw_gettime(CLOCK_REALTIME, &rt2));
    show_bool("raw REALTIME within 1s of libc", ns(&rt2) - ns(&rt) < 1000000000LL && ns(&rt2) >= ns(&rt) - 1000000000LL);
    struct timeval rtv;
    show("raw gettimeofday", syscall(SYS_gettimeofday, &rtv, NULL));
    show_bool("raw gettimeofday within 1s", rtv.tv_sec - tv.tv_sec <= 1 && rtv.tv_sec >= tv.tv_sec);
    time_t rawt = 0;
    show_bool("raw time() within 1s", labs((long)(syscall(SYS_time, &rawt) - t)) <= 1 && labs((long)(rawt - t)) <= 1);

    /* MONOTONIC never goes backwards: libc (vDSO) and raw syscall, interleaved */
    const clockid_t mono_clocks[] = {CLOCK_MONOTONIC, CLOCK_MONOTONIC_RAW, CLOCK_BOOTTIME,
                                     CLOCK_MONOTONIC_COARSE};
    const char *names[] = {"MONOTONIC", "MONOTONIC_RAW", "BOOTTIME", "MONOTONIC_COARSE"};
    for (unsigned c = 0; c < 4; c++) {
        int ok = 1, raw_ok = 1, all_valid = 1;
        MUST(clock_gettime(mono_clocks[c], &prev));
        for (int i = 0; i < 1000; i++) {
            if (clock_gettime(mono_clocks[c], &cur) != 0)
                ok = 0;
            if (ns(&cur) < ns(&prev))
                ok = 0;
            if (!valid(&cur))
                all_valid = 0;
            prev = cur;
            if (raw_gettime(mono_clocks[c], &cur) != 0)
                raw_ok = 0;
            if (ns(&cur) < ns(&prev))
                raw_ok = 0;
            prev = cur;
        }
        printf("%s non-decreasing over 1000 libc calls: %s, raw: %s, valid: %s\n", names[c],
               ok ? "yes" : "no", raw_ok ? "yes" : "no", all_valid ? "yes" : "no");
    }
    MUST(clock_gettime(CLOCK_MONOTONIC, &mono));
    show_bool("MONOTONIC positive", ns(&mono) > 0);

    /* CPU-time clocks */
    struct timespec cpu1, cpu2;
    show("clock_gettime PROCESS_CPUTIME_ID", clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu1));
    volatile unsigned long spin = 0;
    for (unsigned long i = 0; i < 20000000UL; i++)
        spin += i;
    show("clock_gettime THREAD_CPUTIME_ID", clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu2));
    MUST(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu2));
    show_bool("process CPU time advanced", ns(&cpu2) > ns(&cpu1));

    /* resolution */
    struct timespec res;
    show("clock_getres REALTIME", clock_getres(CLOCK_REALTIME, &res));
    show_bool("REALTIME resolution <= 1ms", res.tv_sec == 0 && res.tv_nsec > 0 && res.tv_nsec <= 1000000);
    show("clock_getres MONOTONIC", clock_getres(CLOCK_MONOTONIC, &res));
    show_bool("MONOTONIC resolution <= 1ms", res.tv_sec == 0 && res.tv_nsec > 0 && res.tv_nsec <= 1000000);
    show("raw clock_getres MONOTONIC", syscall(SYS_clock_getres, CLOCK_MONOTONIC, &res));

    /* bad clocks and pointers */
    expect_err("clock_gettime bad clock", raw_gettime(12345, &cur));
    expect_err("clock_gettime bad pointer", syscall(SYS_clock_gettime, CLOCK_MONOTONIC, (void *)8));
    expect_err("clock_getres bad clock", syscall(SYS_clock_getres, 12345, &res));

    /* nanosleep: 20 ms takes at least 20 ms and well under 2 s */
    struct timespec req = {0, 20 * 1000000L}, a, b;
    MUST(clock_gettime(CLOCK_MONOTONIC, &a));
    show("nanosleep 20ms", nanosleep(&req, NULL));
    MUST(clock_gettime(CLOCK_MONOTONIC, &b));
    int64_t el = ns(&b) - ns(&a);
    show_bool("nanosleep slept >= 20ms", el >= 20000000LL);
    show_bool("nanosleep slept < 2s", el < 2000000000LL);

    MUST(clock_gettime(CLOCK_MONOTONIC, &a));
    show("raw nanosleep 20ms", syscall(SYS_nanosleep, &req, NULL));
    MUST(clock_gettime(CLOCK_MONOTONIC, &b));
    el = ns(&b) - ns(&a);
    show_bool("raw nanosleep within [20ms, 2s)", el >= 20000000LL && el < 2000000000LL);

    MUST(clock_gettime(CLOCK_MONOTONIC, &a));
    int r = clock_nanosleep(CLOCK_MONOTONIC, 0, &req, NULL);
    printf("clock_nanosleep relative: %s\n", r == 0 ? "0" : errname(r));
    MUST(clock_gettime(CLOCK_MONOTONIC, &b));
    el = ns(&b) - ns(&a);
    show_bool("clock_nanosleep relative within [20ms, 2s)", el >= 20000000LL && el < 2000000000LL);

    /* absolute deadline 20 ms from now */
    MUST(clock_gettime(CLOCK_MONOTONIC, &a));
    struct timespec dl = a;
    dl.tv_nsec += 20000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &dl, NULL);
    printf("clock_nanosleep TIMER_ABSTIME: %s\n", r == 0 ? "0" : errname(r));
    MUST(clock_gettime(CLOCK_MONOTONIC, &b));
    show_bool("woke at or after the deadline", ns(&b) >= ns(&dl));
    show_bool("absolute sleep < 2s", ns(&b) - ns(&a) < 2000000000LL);

    /* a deadline in the past returns at once */
    MUST(clock_gettime(CLOCK_MONOTONIC, &a));
    struct timespec past = {a.tv_sec - 10, 0};
    r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &past, NULL);
    MUST(clock_gettime(CLOCK_MONOTONIC, &b));
    printf("clock_nanosleep past deadline: %s, quick: %s\n", r == 0 ? "0" : errname(r),
           ns(&b) - ns(&a) < 500000000LL ? "yes" : "no");

    /* REALTIME relative sleep, zero sleep, invalid requests */
    r = clock_nanosleep(CLOCK_REALTIME, 0, &req, NULL);
    printf("clock_nanosleep REALTIME: %s\n", r == 0 ? "0" : errname(r));
    struct timespec zero = {0, 0};
    show("nanosleep 0", nanosleep(&zero, NULL));
    struct timespec badns = {0, 1000000000L};
    expect_err("nanosleep tv_nsec = 1e9", nanosleep(&badns, NULL));
    struct timespec negs = {-1, 0};
    expect_err("nanosleep negative", nanosleep(&negs, NULL));
    r = clock_nanosleep(12345, 0, &req, NULL);
    printf("clock_nanosleep bad clock: %s\n", r == 0 ? "0" : errname(r));
    r = clock_nanosleep(CLOCK_THREAD_CPUTIME_ID, 0, &req, NULL);
    printf("clock_nanosleep THREAD_CPUTIME_ID: %s\n", r == 0 ? "0" : errname(r));
    expect_err("nanosleep bad pointer", syscall(SYS_nanosleep, (void *)8, NULL));

    /* REALTIME moved forward across the sleeps */
    MUST(clock_gettime(CLOCK_REALTIME, &rt2));
    show_bool("REALTIME advanced", ns(&rt2) > ns(&rt));
    printf("done\n");
    return 0;
}
