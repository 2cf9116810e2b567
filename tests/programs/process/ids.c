/* process/ids: getpid == gettid, getppid of a forked child == parent's pid,
 * the get*id family, process groups, uname (sysname/machine only: nodename
 * and release differ in a sandbox by design), kill(pid, 0) existence checks. */
#include "../common.h"

#include <signal.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>

int main(void)
{
    test_init();

    pid_t pid = getpid();
    show_bool("getpid == gettid", pid == (pid_t)syscall(SYS_gettid));
    show_bool("raw getpid == libc getpid", syscall(SYS_getpid) == pid);
    show_bool("pid positive", pid > 0);
    show_bool("getppid non-negative", getppid() >= 0);

    uid_t r, e, s;
    gid_t gr, ge, gs;
    printf("getuid=%u geteuid=%u getgid=%u getegid=%u\n", getuid(), geteuid(), getgid(), getegid());
    show("getresuid", getresuid(&r, &e, &s));
    printf("resuid: %u %u %u\n", r, e, s);
    show("getresgid", getresgid(&gr, &ge, &gs));
    printf("resgid: %u %u %u\n", gr, ge, gs);
    show_bool("getuid == ruid", getuid() == r);
    show_bool("getgid == rgid", getgid() == gr);
    expect_err("getresuid bad pointer", syscall(SYS_getresuid, (void *)8, (void *)8, (void *)8));
    /* setting to the current ids is always allowed */
    show("setresuid same ids", setresuid(-1, -1, -1));
    show("setgid same", setgid(getgid()));
    show("setuid same", setuid(getuid()));

    /* process group / session relations (values are pid-dependent) */
    show_bool("getpgrp == getpgid(0)", getpgrp() == getpgid(0));
    show_bool("getsid(0) == getsid(self)", getsid(0) == getsid(pid));
    expect_err("getpgid of missing pid", getpgid(0x3fffffff));

    /* fork: the child's parent is us, its pid differs, its tid == pid */
    int fds[2];
    MUST(pipe(fds));
    fflush(stdout);
    pid_t child = fork();
    MUST(child);
    if (child == 0) {
        close(fds[0]);
        char res[4];
        res[0] = getppid() == pid ? 'y' : 'n';
        res[1] = getpid() != pid ? 'y' : 'n';
        res[2] = getpid() == (pid_t)syscall(SYS_gettid) ? 'y' : 'n';
        res[3] = getpgrp() == getpgid(pid) ? 'y' : 'n';
        if (write(fds[1], res, 4) != 4)
            _exit(2);
        _exit(0);
    }
    close(fds[1]);
    char res[4] = {0};
    long n = read(fds[0], res, 4);
    close(fds[0]);
    show("read child results", n);
    printf("child: getppid == parent pid: %s\n", res[0] == 'y' ? "yes" : "no");
    printf("child: pid differs from parent: %s\n", res[1] == 'y' ? "yes" : "no");
    printf("child: getpid == gettid: %s\n", res[2] == 'y' ? "yes" : "no");
    printf("child: same process group: %s\n", res[3] == 'y' ? "yes" : "no");
    show_bool("fork returned the child's pid (positive)", child > 0 && child != pid);
    show("kill(self, 0)", kill(pid, 0));
    show("kill(child, 0) before reaping", kill(child, 0));
    int status;
    show_bool("waitpid returns child pid", waitpid(child, &status, 0) == child);
    printf("child status: exited=%d code=%d\n", WIFEXITED(status), WEXITSTATUS(status));
    expect_err("kill(child, 0) after reaping", kill(child, 0));
    expect_err("kill(missing pid, 0)", kill(0x3fffffff, 0));
    expect_err("kill bad signal", kill(pid, 1000));
    show("kill(0, 0) own group", kill(0, 0));

    /* uname */
    struct utsname u;
    show("uname", uname(&u));
    printf("sysname: %s\n", u.sysname);
    printf("machine: %s\n", u.machine);
    show_bool("nodename non-empty", u.nodename[0] != 0);
    show_bool("release non-empty", u.release[0] != 0);
    show_bool("release starts with a digit", u.release[0] >= '0' && u.release[0] <= '9');
    expect_err("uname bad pointer", syscall(SYS_uname, (void *)8));
    return 0;
}
