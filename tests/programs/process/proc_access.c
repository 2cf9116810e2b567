/* process/proc_access: a process's insides under /proc (fd links, cwd,
 * exe, maps) are for those who could ptrace it: a process of another user
 * without CAP_SYS_PTRACE gets EACCES, while its own entries and the target's
 * public ones (status, cmdline) stay readable. Needs to start as root. */
#include "../common.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

static void try_readlink(const char *label, const char *path)
{
    char buf[256];
    ssize_t n = readlink(path, buf, sizeof buf);
    show_ok(label, n);
}

static void try_open(const char *label, const char *path)
{
    int fd = open(path, O_RDONLY);
    show_ok(label, fd);
    if (fd >= 0)
        close(fd);
}

int main(void)
{
    test_init();
    if (geteuid() != 0) {
        printf("FATAL needs root\n");
        return 1;
    }
    int ready[2];
    if (pipe(ready)) {
        printf("FATAL pipe\n");
        return 1;
    }
    fflush(stdout);
    pid_t target = fork();
    if (target == 0) {
        /* Root, holding a file open, waiting to be looked at. */
        int fd = open("/etc/hostname", O_RDONLY);
        if (fd >= 0)
            dup2(fd, 42);
        close(ready[0]);
        if (write(ready[1], "x", 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    char c;
    close(ready[1]);
    if (read(ready[0], &c, 1) != 1) {
        printf("FATAL target\n");
        return 1;
    }
    char path[64];

    /* Root may look. */
    snprintf(path, sizeof path, "/proc/%d/fd/42", target);
    try_readlink("root: readlink target fd", path);
    try_open("root: open through target fd", path);

    fflush(stdout);
    pid_t other = fork();
    if (other == 0) {
        if (setresgid(1000, 1000, 1000) || setresuid(1000, 1000, 1000)) {
            printf("setresuid failed\n");
            _exit(1);
        }
        snprintf(path, sizeof path, "/proc/%d/fd/42", target);
        try_readlink("other user: readlink target fd", path);
        try_open("other user: open through target fd", path);
        snprintf(path, sizeof path, "/proc/%d/cwd", target);
        try_readlink("other user: readlink target cwd", path);
        snprintf(path, sizeof path, "/proc/%d/exe", target);
        try_readlink("other user: readlink target exe", path);
        snprintf(path, sizeof path, "/proc/%d/maps", target);
        try_open("other user: open target maps", path);
        snprintf(path, sizeof path, "/proc/%d/status", target);
        try_open("other user: open target status", path);
        snprintf(path, sizeof path, "/proc/%d/cmdline", target);
        try_open("other user: open target cmdline", path);
        try_readlink("other user: readlink own fd 1", "/proc/self/fd/1");
        try_readlink("other user: readlink own cwd", "/proc/self/cwd");
        try_open("other user: open own maps", "/proc/self/maps");
        _exit(0);
    }
    int status;
    waitpid(other, &status, 0);
    kill(target, SIGKILL);
    waitpid(target, &status, 0);
    printf("end\n");
    return 0;
}
