/*
 * Signal handlers: delivery and frames (SA_SIGINFO, siginfo fields),
 * masks during and after a handler, SA_NODEFER, SA_RESETHAND, SA_ONSTACK
 * with sigaltstack, SA_RESTART against EINTR on a blocking pipe read,
 * SIGCHLD on child exit, a SIGSEGV handler escaping with siglongjmp,
 * sigsuspend and pause, and FP/SSE state surviving a handler.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t hits, depth, max_depth;
static volatile int info_ok, got_sig, code_user;
static volatile uintptr_t handler_sp;

static void on_usr1(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    hits++;
    got_sig = sig;
    info_ok = si->si_signo == sig && si->si_pid == getpid() && si->si_uid == getuid();
    code_user = si->si_code;
    int local;
    handler_sp = (uintptr_t)&local;
}

static void nested(int sig) {
    (void)sig;
    depth++;
    if (depth > max_depth)
        max_depth = depth;
    if (depth < 3)
        raise(SIGUSR2);
    depth--;
}

static void print_mask_has(const char *what, int sig) {
    sigset_t cur;
    sigprocmask(SIG_BLOCK, NULL, &cur);
    printf("%s: %s\n", what, sigismember(&cur, sig) ? "blocked" : "unblocked");
}

static volatile int in_handler_blocked;
static void check_mask(int sig) {
    sigset_t cur;
    sigprocmask(SIG_BLOCK, NULL, &cur);
    in_handler_blocked = sigismember(&cur, sig) && sigismember(&cur, SIGTERM);
}

static sigjmp_buf jb;
static volatile uintptr_t fault_addr;
static void on_segv(int sig, siginfo_t *si, void *uc) {
    (void)sig;
    (void)uc;
    fault_addr = (uintptr_t)si->si_addr;
    siglongjmp(jb, 1);
}

static volatile int chld_hits, chld_code, chld_status;
static void on_chld(int sig, siginfo_t *si, void *uc) {
    (void)sig;
    (void)uc;
    chld_hits++;
    chld_code = si->si_code;
    chld_status = si->si_status;
}

static void noop(int sig) { (void)sig; }

static volatile double fp_in_handler;
static void fp_handler(int sig) {
    (void)sig;
    volatile double x = 1.0;
    for (int i = 0; i < 100; i++)
        x = x * 1.5 + 0.25;
    fp_in_handler = x;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);

    /* SA_SIGINFO, raise, siginfo */
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, NULL);
    raise(SIGUSR1);
    printf("usr1 hits=%d sig=%d info_ok=%d code_is_tkill=%d\n", hits, got_sig, info_ok, code_user == SI_TKILL);
    kill(getpid(), SIGUSR1);
    printf("kill: hits=%d code_is_user=%d\n", hits, code_user == SI_USER);

    /* the signal is blocked inside its handler, plus sa_mask */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = check_mask;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaction(SIGHUP, &sa, NULL);
    raise(SIGHUP);
    printf("in handler: signal and sa_mask blocked=%d\n", in_handler_blocked);
    print_mask_has("after handler SIGHUP", SIGHUP);

    /* SA_NODEFER lets it nest */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = nested;
    sa.sa_flags = SA_NODEFER;
    sigaction(SIGUSR2, &sa, NULL);
    raise(SIGUSR2);
    printf("nodefer max depth=%d\n", max_depth);

    /* SA_RESETHAND: the second raise takes the default (ignored here: SIGWINCH) */
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO | SA_RESETHAND;
    hits = 0;
    sigaction(SIGWINCH, &sa, NULL);
    raise(SIGWINCH);
    raise(SIGWINCH);
    struct sigaction now;
    sigaction(SIGWINCH, NULL, &now);
    printf("resethand hits=%d handler reset=%d\n", hits, now.sa_handler == SIG_DFL);

    /* a blocked signal stays pending and runs on unblock */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, &old);
    hits = 0;
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, NULL);
    raise(SIGUSR1);
    sigset_t pend;
    sigpending(&pend);
    printf("blocked: hits=%d pending=%d\n", hits, sigismember(&pend, SIGUSR1));
    sigprocmask(SIG_SETMASK, &old, NULL);
    printf("unblocked: hits=%d\n", hits);

    /* SA_ONSTACK with sigaltstack */
    static char alt[65536];
    stack_t ss = {.ss_sp = alt, .ss_size = sizeof alt, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigaction(SIGUSR1, &sa, NULL);
    raise(SIGUSR1);
    printf("onstack: handler ran on the alternate stack=%d\n",
           handler_sp >= (uintptr_t)alt && handler_sp < (uintptr_t)alt + sizeof alt);
    /* an 8 KiB alternate stack (the classic SIGSTKSZ) holds a frame */
    static char small_alt[8192];
    stack_t small = {.ss_sp = small_alt, .ss_size = sizeof small_alt, .ss_flags = 0};
    sigaltstack(&small, NULL);
    raise(SIGUSR1);
    printf("8 KiB alternate stack: handler ran there=%d\n",
           handler_sp >= (uintptr_t)small_alt && handler_sp < (uintptr_t)small_alt + sizeof small_alt);
    sigaltstack(&ss, NULL);
    stack_t cur;
    sigaltstack(NULL, &cur);
    printf("altstack size=%zu flags=%d\n", cur.ss_size, cur.ss_flags);

    /* SIGSEGV handler + siglongjmp */
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    if (sigsetjmp(jb, 1) == 0) {
        *(volatile int *)(uintptr_t)0x1230 = 1;
        printf("no fault?\n");
    } else {
        printf("segv caught at %#lx\n", (unsigned long)fault_addr);
    }
    print_mask_has("after siglongjmp SIGSEGV", SIGSEGV);

    /* SIGCHLD */
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_chld;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGCHLD, &sa, NULL);
    pid_t pid = fork();
    if (pid == 0)
        _exit(5);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    printf("sigchld hits=%d code_exited=%d status=%d\n", chld_hits, chld_code == CLD_EXITED, chld_status);

    /* SA_RESTART vs EINTR on a blocking read */
    for (int restart = 0; restart < 2; restart++) {
        int p[2];
        pipe(p);
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = noop;
        sa.sa_flags = restart ? SA_RESTART : 0;
        sigaction(SIGALRM, &sa, NULL);
        pid_t parent = getpid();
        pid = fork();
        if (pid == 0) {
            usleep(100 * 1000);
            kill(parent, SIGALRM);
            usleep(100 * 1000);
            write(p[1], "x", 1);
            _exit(0);
        }
        char c;
        ssize_t n = read(p[0], &c, 1);
        printf("read with%s SA_RESTART: %zd %s\n", restart ? "" : "out", n, n < 0 ? strerror(errno) : "data");
        waitpid(pid, &status, 0);
        close(p[0]);
        close(p[1]);
    }

    /* sigsuspend */
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, &old);
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_usr1;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, NULL);
    hits = 0;
    pid = fork();
    if (pid == 0) {
        usleep(50 * 1000);
        kill(getppid(), SIGUSR1);
        _exit(0);
    }
    sigset_t wait_mask;
    sigemptyset(&wait_mask);
    int r = sigsuspend(&wait_mask);
    printf("sigsuspend=%d %s hits=%d\n", r, strerror(errno), hits);
    print_mask_has("after sigsuspend SIGUSR1", SIGUSR1);
    waitpid(pid, &status, 0);
    sigprocmask(SIG_SETMASK, &old, NULL);

    /* FP state survives a handler that computes */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fp_handler;
    sigaction(SIGUSR2, &sa, NULL);
    volatile double a = 3.25, b = 0;
    for (int i = 0; i < 10; i++) {
        b += a * i;
        raise(SIGUSR2);
    }
    printf("fp: b=%.2f handler=%.3e\n", b, fp_in_handler);

    /* pause */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = noop;
    sigaction(SIGALRM, &sa, NULL);
    pid_t parent = getpid();
    pid = fork();
    if (pid == 0) {
        usleep(50 * 1000);
        kill(parent, SIGALRM);
        _exit(0);
    }
    r = pause();
    printf("pause=%d %s\n", r, strerror(errno));
    waitpid(pid, &status, 0);
    return 0;
}
