/*
 * Hot system call sites: the same libc wrappers called thousands of times
 * (on systrap, rvisor rewrites such sites to skip the signal; their calls
 * must behave exactly as the first ones did). Covers what the rewritten
 * path must keep: every register and the FP state across a call, signals
 * arriving while threads hammer the same sites, a handler interrupting a
 * blocked call (EINTR, SA_RESTART, and restart_syscall after nanosleep),
 * fork and exec after the rewrite, and a program that sets its own gs base.
 */
#include "../common.h"

#include <asm/prctl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>

#define WARM 200

/* SSE rounding control (MXCSR bits 13-14), without libm. */
enum { ROUND_NEAREST = 0, ROUND_DOWN = 1, ROUND_UP = 2, ROUND_ZERO = 3 };

static void set_round(unsigned mode)
{
    unsigned csr;
    __asm__ volatile("stmxcsr %0" : "=m"(csr));
    csr = (csr & ~0x6000u) | (mode << 13);
    __asm__ volatile("ldmxcsr %0" : : "m"(csr));
}

static unsigned get_round(void)
{
    unsigned csr;
    __asm__ volatile("stmxcsr %0" : "=m"(csr));
    return (csr >> 13) & 3;
}

static atomic_int stop;
static atomic_long handled;

static void on_usr1(int sig)
{
    (void)sig;
    /* A handler that changes the FP environment: sigreturn restores it. */
    set_round(ROUND_ZERO);
    volatile double x = 1.0 / 3.0;
    (void)x;
    atomic_fetch_add(&handled, 1);
}

/* Registers a syscall must keep (all but rax, rcx, r11), checked around a
 * raw `mov $SYS_getppid, %eax; syscall` with a value in every other one. */
uint64_t hot_regs_out[12];

static int registers_survive(void)
{
    __asm__ volatile(
        "sub $128, %%rsp\n push %%rbp\n"
        "mov $0x1111, %%rbx\n mov $0x2222, %%rdx\n mov $0x3333, %%rsi\n"
        "mov $0x4444, %%rdi\n mov $0x5555, %%r8\n mov $0x6666, %%r9\n"
        "mov $0x7777, %%r10\n mov $0x8888, %%r12\n mov $0x9999, %%r13\n"
        "mov $0xaaaa, %%r14\n mov $0xbbbb, %%r15\n mov $0xcccc, %%rbp\n"
        "mov $110, %%eax\n syscall\n"
        "mov %%rbx, hot_regs_out+0(%%rip)\n mov %%rdx, hot_regs_out+8(%%rip)\n"
        "mov %%rsi, hot_regs_out+16(%%rip)\n mov %%rdi, hot_regs_out+24(%%rip)\n"
        "mov %%r8, hot_regs_out+32(%%rip)\n mov %%r9, hot_regs_out+40(%%rip)\n"
        "mov %%r10, hot_regs_out+48(%%rip)\n mov %%r12, hot_regs_out+56(%%rip)\n"
        "mov %%r13, hot_regs_out+64(%%rip)\n mov %%r14, hot_regs_out+72(%%rip)\n"
        "mov %%r15, hot_regs_out+80(%%rip)\n mov %%rbp, hot_regs_out+88(%%rip)\n"
        "pop %%rbp\n add $128, %%rsp\n"
        :
        :
        : "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13",
          "r14", "r15", "memory");
    const uint64_t want[12] = {0x1111, 0x2222, 0x3333, 0x4444, 0x5555, 0x6666,
                               0x7777, 0x8888, 0x9999, 0xaaaa, 0xbbbb, 0xcccc};
    for (int i = 0; i < 12; i++)
        if (hot_regs_out[i] != want[i])
            return 0;
    return 1;
}

static void *hammer(void *arg)
{
    long calls = 0, bad = 0;
    pid_t ppid = getppid();
    double acc = 0.1 * (long)(intptr_t)arg;
    while (!atomic_load(&stop)) {
        double before = acc;
        if (getppid() != ppid)
            bad++;
        /* The FP registers live across the call. */
        acc = before * 1.0000001 + 0.5;
        if (acc != before * 1.0000001 + 0.5)
            bad++;
        calls++;
    }
    return (void *)(intptr_t)(bad == 0 && calls > 0);
}

static void on_alarm(int sig)
{
    (void)sig;
    atomic_fetch_add(&handled, 1);
}

static void set_handler(int sig, void (*fn)(int), int flags)
{
    struct sigaction sa = {0};
    sa.sa_handler = fn;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

static void arm(long usec)
{
    struct itimerval it = {{0, 0}, {0, usec}};
    setitimer(ITIMER_REAL, &it, NULL);
}

int main(void)
{
    test_init();
    pid_t ppid = getppid();

    /* 1. Warm the sites up, then check registers and FP state around them. */
    int regs_ok = 1;
    for (int i = 0; i < WARM; i++)
        regs_ok &= registers_survive();
    printf("registers kept across a hot call: %s\n", regs_ok ? "yes" : "no");

    set_round(ROUND_UP);
    volatile double third = 1.0;
    int fp_ok = 1;
    for (int i = 0; i < WARM; i++) {
        if (getppid() != ppid)
            fp_ok = 0;
        if (get_round() != ROUND_UP)
            fp_ok = 0;
    }
    third = third / 3.0;
    set_round(ROUND_NEAREST);
    printf("rounding mode kept across hot calls: %s (1/3 rounded up: %.17g)\n",
           fp_ok ? "yes" : "no", third);

    /* 2. Four threads on the same hot site while signals keep arriving. */
    set_handler(SIGUSR1, on_usr1, SA_RESTART);
    pthread_t t[4];
    for (long i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, hammer, (void *)(intptr_t)(i + 1));
    for (int i = 0; i < 400; i++) {
        pthread_kill(t[i % 4], SIGUSR1);
        if (i % 50 == 0)
            usleep(1000);
    }
    usleep(20000);
    atomic_store(&stop, 1);
    int threads_ok = 1;
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        threads_ok &= (intptr_t)r == 1;
    }
    printf("threads under signals: %s, handlers ran: %s, rounding after: %s\n",
           threads_ok ? "ok" : "wrong", atomic_load(&handled) > 0 ? "yes" : "no",
           get_round() == ROUND_NEAREST ? "to nearest" : "changed");

    /* 3. A blocking call on a hot site, interrupted by a handler. */
    int p[2];
    if (pipe(p) != 0)
        return 1;
    char c;
    for (int i = 0; i < WARM; i++) {
        if (write(p[1], "x", 1) != 1 || read(p[0], &c, 1) != 1)
            return 1;
    }
    set_handler(SIGALRM, on_alarm, 0);
    atomic_store(&handled, 0);
    arm(20000);
    ssize_t n = read(p[0], &c, 1);
    printf("blocked read interrupted: %zd %s, handler ran: %ld\n", n,
           n < 0 ? errname(errno) : "", atomic_load(&handled));
    set_handler(SIGALRM, on_alarm, SA_RESTART);
    arm(20000);
    pid_t writer = fork();
    if (writer == 0) {
        usleep(100000);
        if (write(p[1], "y", 1) != 1)
            _exit(1);
        _exit(0);
    }
    n = read(p[0], &c, 1);
    waitpid(writer, NULL, 0);
    printf("restarted read: %zd '%c', handlers ran: %ld\n", n, n == 1 ? c : '?',
           atomic_load(&handled));

    /* nanosleep, interrupted, comes back through restart_syscall. */
    struct timespec tiny = {0, 1000};
    for (int i = 0; i < WARM; i++)
        nanosleep(&tiny, NULL);
    arm(10000);
    struct timespec nap = {0, 60 * 1000 * 1000};
    int r = clock_nanosleep(CLOCK_MONOTONIC, 0, &nap, NULL);
    printf("clock_nanosleep across a SA_RESTART handler: %d, handlers ran: %ld\n", r,
           atomic_load(&handled));

    /* 4. fork after the rewrite: the child inherits the patched code. */
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        pid_t me = getpid();
        int ok = 1;
        for (int i = 0; i < WARM; i++)
            ok &= getppid() != me && registers_survive();
        printf("child: hot calls %s\n", ok ? "ok" : "wrong");
        fflush(stdout);
        execl("/bin/echo", "echo", "child: exec after hot calls works", (char *)NULL);
        _exit(127);
    }
    int status;
    waitpid(child, &status, 0);
    printf("child exited %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);

    /* 5. The program's own gs base, then the same hot sites. */
    static uint64_t gsdata[4] = {0x1234};
    long g = syscall(SYS_arch_prctl, ARCH_SET_GS, (unsigned long)gsdata);
    uint64_t seen = 0, via_gs = 0;
    syscall(SYS_arch_prctl, ARCH_GET_GS, &seen);
    int gs_ok = 1;
    for (int i = 0; i < WARM; i++)
        gs_ok &= getppid() == ppid && registers_survive();
    __asm__ volatile("mov %%gs:0, %0" : "=r"(via_gs));
    printf("own gs base: set %ld, read back %s, %%gs:0 = %#lx, hot calls after: %s\n", g,
           seen == (uint64_t)gsdata ? "same" : "different", (unsigned long)via_gs,
           gs_ok ? "ok" : "wrong");
    return 0;
}
