/* process/signals: rt_sigprocmask set/get round trips, rt_sigaction set/get
 * of SIG_IGN/SIG_DFL, pending blocked signals (rt_sigpending), ignored
 * signals being discarded, and the EINVAL paths. No handler is ever run. */
#include "../common.h"

#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static void print_set(const char *label, const sigset_t *s)
{
    printf("%s:", label);
    int any = 0;
    for (int sig = 1; sig < 32; sig++) {
        if (sigismember(s, sig)) {
            printf(" %s", sigabbrev_np(sig));
            any = 1;
        }
    }
    printf("%s\n", any ? "" : " (empty)");
}

static const char *disp(void (*h)(int))
{
    if (h == SIG_IGN)
        return "SIG_IGN";
    if (h == SIG_DFL)
        return "SIG_DFL";
    return "handler";
}

int main(void)
{
    test_init();
    sigset_t set, old, cur;

    /* start from a known mask */
    sigemptyset(&set);
    show("sigprocmask SETMASK empty", sigprocmask(SIG_SETMASK, &set, NULL));

    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGTERM);
    show("SIG_BLOCK USR1 TERM", sigprocmask(SIG_BLOCK, &set, &old));
    print_set("old mask", &old);
    MUST(sigprocmask(SIG_SETMASK, NULL, &cur));
    print_set("current mask", &cur);

    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    show("SIG_BLOCK USR2", sigprocmask(SIG_BLOCK, &set, NULL));
    MUST(sigprocmask(SIG_BLOCK, NULL, &cur));
    print_set("current mask", &cur);

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    show("SIG_UNBLOCK TERM", sigprocmask(SIG_UNBLOCK, &set, &old));
    print_set("old mask", &old);
    MUST(sigprocmask(SIG_SETMASK, NULL, &cur));
    print_set("current mask", &cur);

    /* SIGKILL and SIGSTOP cannot be blocked: silently dropped */
    sigfillset(&set);
    show("SIG_SETMASK full", sigprocmask(SIG_SETMASK, &set, NULL));
    MUST(sigprocmask(SIG_SETMASK, NULL, &cur));
    printf("full mask: KILL blocked=%d STOP blocked=%d HUP blocked=%d CHLD blocked=%d\n",
           sigismember(&cur, SIGKILL), sigismember(&cur, SIGSTOP), sigismember(&cur, SIGHUP),
           sigismember(&cur, SIGCHLD));

    /* raw syscall checks */
    unsigned long raw = 0, rawold = 0;
    show("raw rt_sigprocmask SETMASK 0", syscall(SYS_rt_sigprocmask, SIG_SETMASK, &raw, NULL, 8));
    raw = 1UL << (SIGINT - 1);
    show("raw rt_sigprocmask BLOCK INT", syscall(SYS_rt_sigprocmask, SIG_BLOCK, &raw, &rawold, 8));
    printf("raw old mask: %#lx\n", rawold);
    show("raw rt_sigprocmask get", syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, &rawold, 8));
    printf("raw current mask: %#lx\n", rawold);
    expect_err("rt_sigprocmask bad sigsetsize", syscall(SYS_rt_sigprocmask, SIG_BLOCK, &raw, NULL, 4));
    expect_err("rt_sigprocmask bad how", syscall(SYS_rt_sigprocmask, 99, &raw, NULL, 8));
    expect_err("rt_sigprocmask bad pointer", syscall(SYS_rt_sigprocmask, SIG_BLOCK, (void *)8, NULL, 8));
    raw = 0;
    MUST(syscall(SYS_rt_sigprocmask, SIG_SETMASK, &raw, NULL, 8));

    /* rt_sigaction round trips */
    struct sigaction sa, got;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGHUP);
    sa.sa_flags = SA_RESTART;
    show("sigaction USR2 SIG_IGN", sigaction(SIGUSR2, &sa, NULL));
    memset(&got, 0xff, sizeof got);
    show("sigaction USR2 get", sigaction(SIGUSR2, NULL, &got));
    printf("USR2 disposition: %s, SA_RESTART: %s, mask has HUP: %s\n", disp(got.sa_handler),
           (got.sa_flags & SA_RESTART) ? "yes" : "no", sigismember(&got.sa_mask, SIGHUP) ? "yes" : "no");
    sa.sa_handler = SIG_DFL;
    sa.sa_flags = 0;
    sigemptyset(&sa.sa_mask);
    show("sigaction USR2 SIG_DFL (old returned)", sigaction(SIGUSR2, &sa, &got));
    printf("previous USR2 disposition: %s\n", disp(got.sa_handler));
    MUST(sigaction(SIGUSR2, NULL, &got));
    printf("USR2 disposition now: %s\n", disp(got.sa_handler));
    MUST(sigaction(SIGRTMIN + 2, NULL, &got));
    printf("SIGRTMIN+2 default disposition: %s\n", disp(got.sa_handler));

    sa.sa_handler = SIG_IGN;
    expect_err("sigaction SIGKILL", sigaction(SIGKILL, &sa, NULL));
    expect_err("sigaction SIGSTOP", sigaction(SIGSTOP, &sa, NULL));
    show("sigaction get SIGKILL", sigaction(SIGKILL, NULL, &got));
    expect_err("sigaction signal 0", syscall(SYS_rt_sigaction, 0, NULL, &got, 8));
    expect_err("sigaction signal 65", syscall(SYS_rt_sigaction, 65, NULL, &got, 8));
    expect_err("rt_sigaction bad sigsetsize", syscall(SYS_rt_sigaction, SIGUSR1, NULL, &got, 16));

    /* a blocked signal stays pending; ignoring it discards it */
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    MUST(sigprocmask(SIG_BLOCK, &set, NULL));
    show("kill(self, USR1) while blocked", kill(getpid(), SIGUSR1));
    sigset_t pend;
    show("sigpending", sigpending(&pend));
    print_set("pending", &pend);
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    MUST(sigaction(SIGUSR1, &sa, NULL));
    MUST(sigpending(&pend));
    print_set("pending after SIG_IGN", &pend);
    MUST(sigprocmask(SIG_UNBLOCK, &set, NULL));
    printf("survived unblocking an ignored signal\n");

    /* an ignored signal sent while unblocked is simply dropped */
    show("kill(self, USR1) while ignored", kill(getpid(), SIGUSR1));
    show("raise(USR1) while ignored", raise(SIGUSR1));
    printf("still running\n");
    sa.sa_handler = SIG_DFL;
    MUST(sigaction(SIGUSR1, &sa, NULL));

    /* SIGCHLD's default action is to ignore: a child's exit does not kill us */
    fflush(stdout);
    pid_t p = fork();
    MUST(p);
    if (p == 0)
        _exit(0);
    int status;
    MUST(waitpid(p, &status, 0));
    printf("survived SIGCHLD\n");

    /* the mask and dispositions are inherited over fork; SIG_IGN survives exec */
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    MUST(sigprocmask(SIG_BLOCK, &set, NULL));
    sa.sa_handler = SIG_IGN;
    MUST(sigaction(SIGHUP, &sa, NULL));
    fflush(stdout);
    p = fork();
    MUST(p);
    if (p == 0) {
        sigset_t m;
        struct sigaction a;
        sigprocmask(SIG_SETMASK, NULL, &m);
        sigaction(SIGHUP, NULL, &a);
        _exit((sigismember(&m, SIGUSR2) ? 1 : 0) | (a.sa_handler == SIG_IGN ? 2 : 0));
    }
    MUST(waitpid(p, &status, 0));
    printf("child inherited mask: %s, SIG_IGN: %s\n", (WEXITSTATUS(status) & 1) ? "yes" : "no",
           (WEXITSTATUS(status) & 2) ? "yes" : "no");

    /* a default-action signal blocked in the child stays pending, then kills it on unblock */
    fflush(stdout);
    p = fork();
    MUST(p);
    if (p == 0) {
        sigset_t t;
        sigemptyset(&t);
        sigaddset(&t, SIGTERM);
        sigprocmask(SIG_BLOCK, &t, NULL);
        kill(getpid(), SIGTERM);
        sigset_t pd;
        sigpending(&pd);
        if (!sigismember(&pd, SIGTERM))
            _exit(3);
        sigprocmask(SIG_UNBLOCK, &t, NULL);
        _exit(4);
    }
    MUST(waitpid(p, &status, 0));
    if (WIFSIGNALED(status))
        printf("child with pending SIGTERM: killed by %s on unblock\n", sigabbrev_np(WTERMSIG(status)));
    else
        printf("child with pending SIGTERM: exited %d\n", WEXITSTATUS(status));
    printf("done\n");
    return 0;
}
