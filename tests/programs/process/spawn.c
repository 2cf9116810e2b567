/* process/spawn: vfork and posix_spawn share the parent's memory until the
 * child execs or exits, as on Linux: a vfork child's stores are seen by
 * the parent, posix_spawn reports the child's exec failure (glibc reads it
 * from the shared memory), file actions and exit statuses come through,
 * the child's fd table stays its own, and hundreds of spawns in a row
 * work. */
#include "../common.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

extern char **environ;

static void spawn_and_report(const char *label, const char *path, char *const argv[],
                             const posix_spawn_file_actions_t *fa)
{
    pid_t pid;
    int r = posix_spawn(&pid, path, fa, NULL, argv, environ);
    if (r != 0) {
        printf("%s: posix_spawn %s\n", label, errname(r));
        return;
    }
    int status;
    if (waitpid(pid, &status, 0) != pid) {
        printf("%s: waitpid %s\n", label, errname(errno));
        return;
    }
    if (WIFEXITED(status))
        printf("%s: exited %d\n", label, WEXITSTATUS(status));
    else
        printf("%s: signalled %d\n", label, WTERMSIG(status));
}

int main(void)
{
    test_init();

    volatile int shared = 0;
    fflush(stdout);
    pid_t c = vfork();
    if (c == 0) {
        shared = 42;
        _exit(7);
    }
    int status;
    waitpid(c, &status, 0);
    printf("vfork: child's store seen %d, exit %d\n", shared, WEXITSTATUS(status));

    volatile int exec_errno = 0;
    c = vfork();
    if (c == 0) {
        execl("/no/such/program", "x", (char *)NULL);
        exec_errno = errno;
        _exit(127);
    }
    waitpid(c, &status, 0);
    printf("vfork+exec failure: errno %s, exit %d\n", errname(exec_errno), WEXITSTATUS(status));

    /* The child's fd table is its own: closing stdin there leaves ours. */
    c = vfork();
    if (c == 0) {
        close(0);
        _exit(0);
    }
    waitpid(c, &status, 0);
    printf("parent's fd 0 after the child closed its own: %s\n",
           fcntl(0, F_GETFD) >= 0 ? "open" : "closed");

    char *nx[] = {"/no/such/program", NULL};
    spawn_and_report("spawn missing", "/no/such/program", nx, NULL);
    char *tr[] = {"true", NULL};
    spawn_and_report("spawn true", "/bin/true", tr, NULL);
    char *sh[] = {"sh", "-c", "exit 3", NULL};
    spawn_and_report("spawn sh exit 3", "/bin/sh", sh, NULL);
    char *kill_self[] = {"sh", "-c", "kill -TERM $$", NULL};
    spawn_and_report("spawn sh killed", "/bin/sh", kill_self, NULL);

    /* File actions: the child's stdout goes to a pipe we read. */
    int p[2];
    if (pipe(p) != 0)
        return 1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_addclose(&fa, p[0]);
    char *echo[] = {"sh", "-c", "echo through the pipe", NULL};
    fflush(stdout);
    spawn_and_report("spawn with dup2", "/bin/sh", echo, &fa);
    close(p[1]);
    char buf[64] = {0};
    ssize_t n = read(p[0], buf, sizeof buf - 1);
    printf("pipe gave %zd bytes: %s", n, buf);
    close(p[0]);
    posix_spawn_file_actions_destroy(&fa);
    /* A file action that fails is the spawn's error. */
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 3, "/no/such/dir/file", O_RDONLY, 0);
    spawn_and_report("spawn failing open", "/bin/true", tr, &fa);
    posix_spawn_file_actions_destroy(&fa);

    int ok = 0;
    for (int i = 0; i < 300; i++) {
        pid_t pid;
        if (posix_spawn(&pid, "/bin/true", NULL, NULL, tr, environ) == 0 &&
            waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0)
            ok++;
    }
    printf("300 spawns in a row: %d ok\n", ok);
    return 0;
}
