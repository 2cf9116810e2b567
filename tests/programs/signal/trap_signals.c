/* signal/trap_signals: the signals a trap-based platform uses for itself
 * (SIGSYS, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP) stay the
 * application's own. Its handlers run for those signals when it sends
 * them to itself (a forged seccomp siginfo included) and when its own code
 * faults; without a handler they kill it, ignored they do nothing, as on
 * Linux. The vsyscall page works as natively too. Prints what it saw, to
 * compare with a native run. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static sigjmp_buf back;
static volatile int got_sig, got_code, got_self, got_syscall;
static volatile unsigned got_arch;
static volatile uintptr_t got_addr;

static void on_signal(int sig, siginfo_t *si, void *ctx)
{
    (void)ctx;
    got_sig = sig;
    got_code = si->si_code;
    got_self = si->si_pid == getpid();
    got_addr = (uintptr_t)si->si_addr;
    if (sig == SIGSYS) {
        got_syscall = si->si_syscall;
        got_arch = si->si_arch;
    }
}

static void on_fault(int sig, siginfo_t *si, void *ctx)
{
    on_signal(sig, si, ctx);
    siglongjmp(back, 1);
}

static void handle(int sig, void (*fn)(int, siginfo_t *, void *))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = fn;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(sig, &sa, NULL);
}

static void reset(void)
{
    got_sig = got_code = got_self = got_syscall = 0;
    got_arch = 0;
    got_addr = 0;
}

/* Runs `fn` in a child with default dispositions; reports how it ended. */
static void in_child(const char *what, void (*fn)(void))
{
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        fn();
        _exit(0);
    }
    int st;
    waitpid(p, &st, 0);
    if (WIFSIGNALED(st))
        printf("%s: killed by signal %d\n", what, WTERMSIG(st));
    else
        printf("%s: exited %d\n", what, WEXITSTATUS(st));
}

static void kill_self_sigsys(void) { kill(getpid(), SIGSYS); }
static void null_write(void) { *(volatile int *)(uintptr_t)8 = 1; }
static void ignored_sigsys(void)
{
    signal(SIGSYS, SIG_IGN);
    kill(getpid(), SIGSYS);
    printf("  ignored SIGSYS: still running\n");
    fflush(stdout);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);

    handle(SIGSYS, on_signal);
    reset();
    kill(getpid(), SIGSYS);
    printf("kill SIGSYS: sig %d code %d from self %d\n", got_sig, got_code, got_self);

    /* A siginfo that looks like the kernel's seccomp trap. */
    siginfo_t si;
    memset(&si, 0, sizeof si);
    si.si_signo = SIGSYS;
    si.si_code = 1; /* SYS_SECCOMP */
    si.si_call_addr = (void *)0x1234;
    si.si_syscall = SYS_getpid;
    si.si_arch = 0xC000003E;
    reset();
    long r = syscall(SYS_rt_sigqueueinfo, getpid(), SIGSYS, &si);
    printf("forged seccomp siginfo: rt_sigqueueinfo %ld, sig %d code %d syscall %d arch %#x "
           "addr %#lx\n",
           r, got_sig, got_code, got_syscall, got_arch, (unsigned long)got_addr);

    handle(SIGSEGV, on_signal);
    reset();
    syscall(SYS_tgkill, getpid(), gettid(), SIGSEGV);
    printf("tgkill SIGSEGV: sig %d code %d\n", got_sig, got_code);

    handle(SIGSEGV, on_fault);
    reset();
    if (!sigsetjmp(back, 1))
        null_write();
    printf("write to address 8: sig %d code %d addr %#lx\n", got_sig, got_code,
           (unsigned long)got_addr);

    handle(SIGTRAP, on_fault);
    reset();
    if (!sigsetjmp(back, 1))
        __asm__ volatile("int3");
    printf("int3: sig %d code %d\n", got_sig, got_code);

    handle(SIGILL, on_fault);
    reset();
    if (!sigsetjmp(back, 1))
        __asm__ volatile("ud2");
    printf("ud2: sig %d code %d\n", got_sig, got_code);

    handle(SIGFPE, on_fault);
    reset();
    if (!sigsetjmp(back, 1))
        __asm__ volatile("xor %%ecx, %%ecx\n\tmov $1, %%eax\n\tcdq\n\tidiv %%ecx"
                         : : : "eax", "ecx", "edx");
    printf("divide by zero: sig %d code %d\n", got_sig, got_code);

    /* The vsyscall page's gettimeofday (emulated by Linux in xonly mode). */
    struct timeval tv = {0, 0};
    long (*vgtod)(struct timeval *, void *) = (void *)0xffffffffff600000UL;
    reset();
    long vr = -1;
    handle(SIGSEGV, on_fault);
    if (!sigsetjmp(back, 1))
        vr = vgtod(&tv, NULL);
    printf("vsyscall gettimeofday: %ld, time set %d, sig %d\n", vr, tv.tv_sec > 1000000000,
           got_sig);

    signal(SIGSYS, SIG_DFL);
    signal(SIGSEGV, SIG_DFL);
    in_child("kill SIGSYS without a handler", kill_self_sigsys);
    in_child("fault without a handler", null_write);
    in_child("ignored SIGSYS", ignored_sigsys);
    printf("end\n");
    return 0;
}
