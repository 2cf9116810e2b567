/* process/wait: fork + wait4 with exit codes, WIFEXITED/WEXITSTATUS,
 * a child killed by SIGTERM/SIGKILL (WIFSIGNALED/WTERMSIG), vfork + _exit,
 * execve (of /bin/echo, /usr/bin/env with a chosen environment, and failing
 * execs), WNOHANG, waiting for any child, ECHILD, exit_group from a child. */
#include "../common.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static void describe(const char *label, int status)
{
    if (WIFEXITED(status))
        printf("%s: exited, status %d\n", label, WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        printf("%s: killed by signal %d (%s)\n", label, WTERMSIG(status), sigabbrev_np(WTERMSIG(status)));
    else if (WIFSTOPPED(status))
        printf("%s: stopped by signal %d\n", label, WSTOPSIG(status));
    else
        printf("%s: unknown status %#x\n", label, status);
}

static pid_t spawn_exit(int code)
{
    fflush(stdout);
    pid_t p = fork();
    if (p == 0)
        _exit(code);
    return p;
}

int main(void)
{
    test_init();
    int status;
    struct rusage ru;

    expect_err("wait4 with no children", wait4(-1, &status, 0, NULL));
    expect_err("waitpid with no children", waitpid(-1, &status, WNOHANG));

    /* exit codes 0..3 via wait4 on the specific pid */
    for (int code = 0; code <= 3; code++) {
        pid_t p = spawn_exit(code);
        MUST(p);
        pid_t w = wait4(p, &status, 0, &ru);
        char label[64];
        snprintf(label, sizeof label, "child exit(%d)", code);
        show_bool(label, w == p && WIFEXITED(status) && WEXITSTATUS(status) == code);
        describe(label, status);
    }

    /* exit status is truncated to 8 bits */
    pid_t p = spawn_exit(256 + 7);
    MUST(wait4(p, &status, 0, NULL));
    describe("child _exit(263)", status);

    /* exit_group from a child */
    fflush(stdout);
    p = fork();
    MUST(p);
    if (p == 0) {
        syscall(SYS_exit_group, 42);
        _exit(1);
    }
    MUST(wait4(p, &status, 0, NULL));
    describe("child exit_group(42)", status);

    /* reaping several children with wait4(-1) */
    int seen = 0;
    for (int i = 0; i < 5; i++)
        MUST(spawn_exit(10 + i));
    for (int i = 0; i < 5; i++) {
        pid_t w = wait4(-1, &status, 0, NULL);
        if (w > 0 && WIFEXITED(status))
            seen |= 1 << (WEXITSTATUS(status) - 10);
    }
    printf("reaped exit codes 10..14 with wait4(-1): %s\n", seen == 0x1f ? "all" : "missing");
    expect_err("wait4 after reaping all", wait4(-1, &status, 0, NULL));
    expect_err("wait4 on a non-child pid", wait4(0x3fffffff, &status, 0, NULL));
    expect_err("wait4 bad options", wait4(-1, &status, 0x4000000, NULL));

    /* WNOHANG on a running child, then SIGTERM */
    int sync[2];
    MUST(pipe(sync));
    fflush(stdout);
    p = fork();
    MUST(p);
    if (p == 0) {
        close(sync[0]);
        if (write(sync[1], "r", 1) != 1)
            _exit(2);
        for (;;)
            pause();
    }
    close(sync[1]);
    char c;
    MUST(read(sync[0], &c, 1));
    close(sync[0]);
    show("waitpid WNOHANG on running child", waitpid(p, &status, WNOHANG));
    show("kill SIGTERM", kill(p, SIGTERM));
    show_bool("wait4 returns the child", wait4(p, &status, 0, NULL) == p);
    describe("child after SIGTERM", status);
    show_bool("WIFSIGNALED && WTERMSIG == SIGTERM", WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);

    /* SIGKILL, sent before the child even ran */
    fflush(stdout);
    p = fork();
    MUST(p);
    if (p == 0) {
        for (;;)
            pause();
    }
    show("kill SIGKILL", kill(p, SIGKILL));
    MUST(waitpid(p, &status, 0));
    describe("child after SIGKILL", status);

    /* a child that kills itself */
    fflush(stdout);
    p = fork();
    MUST(p);
    if (p == 0) {
        kill(getpid(), SIGUSR1);
        _exit(0);
    }
    MUST(waitpid(p, &status, 0));
    describe("child kill(self, SIGUSR1)", status);

    /* vfork + _exit */
    fflush(stdout);
    p = vfork();
    if (p == 0)
        _exit(5);
    MUST(p);
    MUST(waitpid(p, &status, 0));
    describe("vfork child _exit(5)", status);

    /* vfork + execve */
    fflush(stdout);
    p = vfork();
    if (p == 0) {
        char *argv[] = {"echo", "hello", "from", "vfork+execve", NULL};
        execve("/bin/echo", argv, (char *[]){NULL});
        _exit(127);
    }
    MUST(waitpid(p, &status, 0));
    describe("vfork+execve /bin/echo", status);

    /* fork + execve of /bin/echo */
    fflush(stdout);
    p = fork();
    MUST(p);
    if (p == 0) {
        char *argv[] = {"echo", "hello", "from", "execve", NULL};
        execve("/bin/echo", argv, (char *[]){"PATH=/bin:/usr/bin", NULL});
        _exit(127);
    }
    MUST(waitpid(p, &status, 0));
    describe("execve /bin/echo", status);

    /* execve passes exactly the environment given */
    fflush(stdout);
    p = fork();
    MUST(p);
    if (p == 0) {
        char *argv[] = {"env", NULL};
        char *envp[] = {"RVISOR_A=1", "RVISOR_B=two words", "EMPTY=", NULL};
        execve("/usr/bin/env", argv, envp);
        _exit(127);
    }
    MUST(waitpid(p, &status, 0));
    describe("execve /usr/bin/env", status);

    /* exit status of an exec'd program */
    fflush(stdout);
    p = fork();
    MUST(p);
    if (p == 0) {
        char *argv[] = {"false", NULL};
        execve("/bin/false", argv, (char *[]){NULL});
        _exit(127);
    }
    MUST(waitpid(p, &status, 0));
    describe("execve /bin/false", status);

    /* failing execve: the error is seen by the child, which reports it */
    const char *bad[] = {"/nonexistent/program", "/etc/passwd", "/tmp", "/etc/passwd/x"};
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int ep[2];
        MUST(pipe(ep));
        fflush(stdout);
        p = fork();
        MUST(p);
        if (p == 0) {
            close(ep[0]);
            char *argv[] = {(char *)bad[i], NULL};
            execve(bad[i], argv, (char *[]){NULL});
            int e = errno;
            if (write(ep[1], &e, sizeof e) != sizeof e)
                _exit(2);
            _exit(126);
        }
        close(ep[1]);
        int e = 0;
        long n = read(ep[0], &e, sizeof e);
        close(ep[0]);
        MUST(waitpid(p, &status, 0));
        printf("execve %s: %s, ", bad[i], n == sizeof e ? errname(e) : "no error reported");
        describe("child", status);
    }

    /* a grandchild is not ours to wait for */
    fflush(stdout);
    p = fork();
    MUST(p);
    if (p == 0) {
        pid_t g = fork();
        if (g == 0)
            _exit(9);
        int st;
        if (waitpid(g, &st, 0) != g)
            _exit(1);
        _exit(WEXITSTATUS(st) == 9 ? 0 : 1);
    }
    MUST(waitpid(p, &status, 0));
    describe("child that reaped its own child", status);
    expect_err("nothing left to wait for", waitpid(-1, &status, 0));
    printf("done\n");
    return 0;
}
