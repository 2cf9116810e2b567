/* process/comm: the name a process runs by (/proc/self/comm, what ps and
 * pgrep show) after execve: the basename of the path it was run by, not
 * its link's target, truncated to 15 bytes; "exe" when run through
 * /proc/self/exe; and PR_SET_NAME/PR_GET_NAME. */
#include "../common.h"

#include <limits.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define SCRATCH "/tmp/rvisor-difftest-process-comm"

static void show_comm(const char *label)
{
    char buf[64] = {0};
    FILE *f = fopen("/proc/self/comm", "r");
    if (!f || !fgets(buf, sizeof buf, f)) {
        printf("%s: cannot read comm\n", label);
    } else {
        buf[strcspn(buf, "\n")] = 0;
        printf("%s: comm \"%s\"\n", label, buf);
    }
    if (f)
        fclose(f);
    fflush(stdout);
}

/* Runs `path` (this program) as a child that prints its comm. */
static void run_as(const char *path, const char *label)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        execl(path, "argv0-is-not-the-name", "child", label, (char *)NULL);
        printf("%s: execl %s\n", label, errname(errno));
        _exit(1);
    }
    int st;
    waitpid(pid, &st, 0);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "child") == 0) {
        show_comm(argv[2]);
        return 0;
    }
    test_init();
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0) {
        printf("readlink /proc/self/exe: %s\n", errname(errno));
        return 1;
    }
    self[n] = 0;
    if (system("rm -rf " SCRATCH) != 0 || mkdir(SCRATCH, 0755) != 0) {
        printf("scratch dir: %s\n", errname(errno));
        return 1;
    }
    show_ok("symlink renamed", symlink(self, SCRATCH "/renamed"));
    show_ok("symlink long", symlink(self, SCRATCH "/a-very-long-program-name"));
    run_as(SCRATCH "/renamed", "through a link");
    run_as(SCRATCH "/a-very-long-program-name", "long name");
    run_as("/proc/self/exe", "/proc/self/exe");

    show("PR_SET_NAME", prctl(PR_SET_NAME, "set-by-prctl-and-too-long"));
    char name[32] = {0};
    show("PR_GET_NAME", prctl(PR_GET_NAME, name));
    printf("PR_GET_NAME: \"%s\"\n", name);
    show_comm("after PR_SET_NAME");
    if (system("rm -rf " SCRATCH) != 0)
        printf("cleanup failed\n");
    return 0;
}
