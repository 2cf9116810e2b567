/* misc/sysinfo: getrandom, /dev/urandom, prlimit64/getrlimit/setrlimit,
 * sysinfo. Prints booleans, never values that differ between runs. */
#include "../common.h"

#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>

int main(void)
{
    test_init();

    /* getrandom */
    unsigned char a[64], b[64];
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    show("getrandom 64", getrandom(a, sizeof a, 0));
    show("getrandom 64 again", getrandom(b, sizeof b, 0));
    show_bool("two calls differ", memcmp(a, b, sizeof a) != 0);
    int nonzero = 0;
    for (unsigned i = 0; i < sizeof a; i++)
        if (a[i])
            nonzero++;
    show_bool("not all zero", nonzero > 0);
    show("getrandom GRND_NONBLOCK 16", getrandom(a, 16, GRND_NONBLOCK));
    show("getrandom GRND_RANDOM 16", getrandom(a, 16, GRND_RANDOM));
    show("getrandom 0 bytes", getrandom(a, 0, 0));
    static unsigned char big[1 << 20];
    long got = getrandom(big, sizeof big, 0);
    show_bool("getrandom 1 MiB returns > 0 bytes", got > 0);
    expect_err("getrandom bad flags", syscall(SYS_getrandom, a, 16, 0x1000));
    expect_err("getrandom bad pointer", syscall(SYS_getrandom, (void *)8, 16, 0));

    /* /dev/urandom agrees in spirit */
    FILE *f = fopen("/dev/urandom", "r");
    show_bool("open /dev/urandom", f != NULL);
    if (f) {
        size_t n = fread(a, 1, 32, f);
        printf("read /dev/urandom: %zu bytes\n", n);
        fclose(f);
    }

    /* prlimit64 / getrlimit */
    struct rlimit rl, rl2;
    show("prlimit get NOFILE", prlimit(0, RLIMIT_NOFILE, NULL, &rl));
    show_bool("NOFILE soft <= hard", rl.rlim_cur <= rl.rlim_max);
    show_bool("NOFILE soft >= 3", rl.rlim_cur >= 3);
    show("getrlimit NOFILE", getrlimit(RLIMIT_NOFILE, &rl2));
    show_bool("getrlimit == prlimit", rl.rlim_cur == rl2.rlim_cur && rl.rlim_max == rl2.rlim_max);
    show("raw prlimit64 self pid", syscall(SYS_prlimit64, getpid(), RLIMIT_NOFILE, NULL, &rl2));
    show_bool("raw prlimit64 agrees", rl.rlim_cur == rl2.rlim_cur);
    struct rlimit lower = {rl.rlim_cur > 64 ? 64 : rl.rlim_cur, rl.rlim_max};
    struct rlimit oldl;
    show("prlimit set NOFILE soft 64", prlimit(0, RLIMIT_NOFILE, &lower, &oldl));
    show_bool("old value returned", oldl.rlim_cur == rl.rlim_cur && oldl.rlim_max == rl.rlim_max);
    MUST(getrlimit(RLIMIT_NOFILE, &rl2));
    printf("NOFILE soft now: %llu\n", (unsigned long long)rl2.rlim_cur);
    struct rlimit bad = {rl.rlim_max, rl.rlim_max > 0 ? rl.rlim_max - 1 : 0};
    expect_err("setrlimit soft > hard", setrlimit(RLIMIT_NOFILE, &bad));
    MUST(setrlimit(RLIMIT_NOFILE, &rl));
    MUST(getrlimit(RLIMIT_NOFILE, &rl2));
    show_bool("restored", rl2.rlim_cur == rl.rlim_cur);
    expect_err("getrlimit bad resource", syscall(SYS_getrlimit, 999, &rl2));
    expect_err("prlimit missing pid", syscall(SYS_prlimit64, 0x3fffffff, RLIMIT_NOFILE, NULL, &rl2));
    const int res[] = {RLIMIT_STACK, RLIMIT_AS, RLIMIT_CORE, RLIMIT_DATA, RLIMIT_NPROC, RLIMIT_CPU};
    const char *rn[] = {"STACK", "AS", "CORE", "DATA", "NPROC", "CPU"};
    for (int i = 0; i < 6; i++) {
        MUST(getrlimit(res[i], &rl2));
        printf("%s soft <= hard: %s\n", rn[i],
               (rl2.rlim_cur <= rl2.rlim_max) ? "yes" : "no");
    }

    /* sysinfo */
    struct sysinfo si;
    show("sysinfo", sysinfo(&si));
    show_bool("totalram > 0", si.totalram > 0);
    show_bool("mem_unit > 0", si.mem_unit > 0);
    show_bool("freeram <= totalram", si.freeram <= si.totalram);
    show_bool("procs > 0", si.procs > 0);
    show_bool("uptime >= 0", si.uptime >= 0);
    expect_err("sysinfo bad pointer", syscall(SYS_sysinfo, (void *)8));
    long nproc = sysconf(_SC_NPROCESSORS_ONLN);
    show_bool("online CPUs >= 1", nproc >= 1);
    long pages = sysconf(_SC_PHYS_PAGES);
    show_bool("physical pages > 0", pages > 0);

    printf("done\n");
    return 0;
}
