/* file/pivot_root: unshare(CLONE_NEWNS) gives a mount namespace of one's
 * own (mounts made in it are not seen outside, and the other way round);
 * pivot_root(2) in it makes a tmpfs the root with the old root at put_old;
 * umount2 of put_old leaves just the new tree; and pivot_root's EINVAL
 * cases (new_root not a mount point, put_old outside new_root). Each step
 * runs in a child, so the test's own namespace is never changed. */
#include "../common.h"

#include <dirent.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define SCRATCH "/tmp/rvisor-difftest-file-pivot_root"

static int pivot_root_(const char *new_root, const char *put_old)
{
    return (int)syscall(SYS_pivot_root, new_root, put_old);
}

/* Sorted names in a directory, on one line. */
static void list(const char *label, const char *dir)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0) {
        printf("%s: %s\n", label, errname(errno));
        return;
    }
    printf("%s:", label);
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i]->d_name, ".") && strcmp(names[i]->d_name, ".."))
            printf(" %s", names[i]->d_name);
        free(names[i]);
    }
    free(names);
    printf("\n");
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* A mount namespace of its own whose mounts propagate nowhere. */
static int own_namespace(void)
{
    if (unshare(CLONE_NEWNS) != 0) {
        printf("unshare(CLONE_NEWNS): %s\n", errname(errno));
        return -1;
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        printf("make / private: %s\n", errname(errno));
        return -1;
    }
    return 0;
}

static void in_child(void (*body)(void))
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        body();
        fflush(stdout);
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
}

static void isolation(void)
{
    if (own_namespace() != 0)
        return;
    show("mount tmpfs in own namespace", mount("none", SCRATCH "/iso", "tmpfs", 0, "mode=0755"));
    close(open(SCRATCH "/iso/inside", O_CREAT | O_WRONLY, 0644));
    show_bool("own namespace sees its file", exists(SCRATCH "/iso/inside"));
}

static void pivot(void)
{
    if (own_namespace() != 0)
        return;
    /* Everything on a tmpfs of the test's own, whatever /tmp is. */
    show("mount the box", mount("none", SCRATCH "/box", "tmpfs", 0, "mode=0755"));
    mkdir(SCRATCH "/box/plain", 0755);
    mkdir(SCRATCH "/box/plain/old", 0755);
    mkdir(SCRATCH "/box/new", 0755);
    mkdir(SCRATCH "/box/other", 0755);
    expect_err("pivot_root to a plain directory",
               pivot_root_(SCRATCH "/box/plain", SCRATCH "/box/plain/old"));
    show("mount the new root", mount("none", SCRATCH "/box/new", "tmpfs", 0, "mode=0755"));
    mkdir(SCRATCH "/box/new/old", 0755);
    mkdir(SCRATCH "/box/new/etc", 0755);
    close(open(SCRATCH "/box/new/hello", O_CREAT | O_WRONLY, 0644));
    expect_err("put_old outside new_root", pivot_root_(SCRATCH "/box/new", SCRATCH "/box/other"));
    show("chdir new root", chdir(SCRATCH "/box/new"));
    show("pivot_root(\".\", \"old\")", pivot_root_(".", "old"));
    show("chdir /", chdir("/"));
    list("/ after pivot", "/");
    show_bool("old root under /old", exists("/old" SCRATCH "/box/other"));
    show_bool("/hello", exists("/hello"));
    char cwd[256];
    printf("getcwd: %s\n", getcwd(cwd, sizeof cwd) ? cwd : errname(errno));
    show("umount2 /old", umount2("/old", MNT_DETACH));
    list("/old after umount", "/old");
    list("/ at the end", "/");
}

int main(void)
{
    test_init();
    if (system("rm -rf " SCRATCH) != 0 || mkdir(SCRATCH, 0755) != 0) {
        printf("scratch: %s\n", errname(errno));
        return 1;
    }
    mkdir(SCRATCH "/iso", 0755);
    mkdir(SCRATCH "/box", 0755);
    in_child(isolation);
    show_bool("first namespace sees the child's file", exists(SCRATCH "/iso/inside"));
    in_child(pivot);
    list("first namespace's root still has tmp", "/tmp/rvisor-difftest-file-pivot_root");
    if (system("rm -rf " SCRATCH) != 0)
        printf("cleanup failed\n");
    return 0;
}
