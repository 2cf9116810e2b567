/* file/attr_rules: who may change a node's times, mode and access flags,
 * as Linux's setattr_prepare and may_open decide — utimes with "now"
 * needs ownership or write permission (EACCES), explicit times ownership
 * (EPERM), two UTIME_OMITs change nothing and look nothing up; chmod by
 * an owner outside the file's group drops set-group-ID; O_NOATIME is the
 * owner's (open and F_SETFL); an O_PATH fd is a location only (EBADF for
 * calls that use the file, not for fstat, fchdir, dup, F_GETFL or an
 * AT_EMPTY_PATH chown). Starts as root, drops to uid/gid 65534 in a
 * child. */
#include "../common.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <utime.h>

#define DIR "/tmp/rvisor-difftest-attr-rules"

static void show_mode(const char *label, const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        printf("%s: stat -1 %s\n", label, errname(errno));
    else
        printf("%s: %04o\n", label, st.st_mode & 07777);
}

static void show_mtime(const char *label, const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        printf("%s: stat -1 %s\n", label, errname(errno));
    else
        printf("%s: %ld.%09ld\n", label, (long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

static void as_nobody(void)
{
    struct timespec now2[2] = {{0, UTIME_NOW}, {0, UTIME_NOW}};
    struct timespec set[2] = {{1000, 0}, {2000, 0}};
    struct timespec omit[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
    struct timespec now_omit[2] = {{0, UTIME_NOW}, {0, UTIME_OMIT}};
    struct timeval tv[2] = {{3000, 0}, {4000, 500}};

    /* times: writable by others, but not ours */
    show("utimensat NULL on a world-writable file", utimensat(AT_FDCWD, DIR "/open", NULL, 0));
    show("utimensat NOW,NOW on it", utimensat(AT_FDCWD, DIR "/open", now2, 0));
    expect_err("utimensat explicit times on it", utimensat(AT_FDCWD, DIR "/open", set, 0));
    expect_err("utimensat NOW,OMIT on it", utimensat(AT_FDCWD, DIR "/open", now_omit, 0));
    expect_err("utimensat NULL on a read-only file", utimensat(AT_FDCWD, DIR "/closed", NULL, 0));
    expect_err("utimes NULL on it", syscall(SYS_utimes, DIR "/closed", NULL));
    expect_err("utime NULL on it", syscall(SYS_utime, DIR "/closed", NULL));
    expect_err("utimes explicit on the writable one", syscall(SYS_utimes, DIR "/open", tv));
    show("OMIT,OMIT on a missing path", utimensat(AT_FDCWD, DIR "/missing", omit, 0));

    /* O_NOATIME is the owner's */
    expect_err("open O_NOATIME of another's file", open(DIR "/open", O_RDONLY | O_NOATIME));
    int fd = open(DIR "/open", O_RDONLY);
    expect_err("F_SETFL O_NOATIME on it", fcntl(fd, F_SETFL, O_NOATIME));
    close(fd);
    fd = open(DIR "/mine-too", O_CREAT | O_RDWR | O_NOATIME, 0640);
    show_ok("create own file O_NOATIME", fd);
    show("F_SETFL O_NOATIME on own", fcntl(fd, F_SETFL, O_NOATIME));
    show_bool("F_GETFL has O_NOATIME", fcntl(fd, F_GETFL) & O_NOATIME);
    close(fd);

    /* set-group-ID from outside the group */
    show("chmod 2755 own file, group not ours", chmod(DIR "/nobody-in-root-group", 02755));
    show_mode("its mode", DIR "/nobody-in-root-group");
    show("chmod 2755 own file in own group", chmod(DIR "/mine-too", 02750));
    show_mode("its mode", DIR "/mine-too");
}

int main(void)
{
    test_init();
    umask(0);
    system("rm -rf " DIR);
    MUST(mkdir(DIR, 0777));
    MUST(close(open(DIR "/open", O_CREAT | O_WRONLY, 0666)));
    MUST(close(open(DIR "/closed", O_CREAT | O_WRONLY, 0644)));
    MUST(close(open(DIR "/nobody-in-root-group", O_CREAT | O_WRONLY, 0644)));
    MUST(chown(DIR "/nobody-in-root-group", 65534, 0));

    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0) {
            printf("cannot drop privileges: %s\n", errname(errno));
            _exit(1);
        }
        as_nobody();
        _exit(0);
    }
    int st;
    waitpid(c, &st, 0);

    /* As root: explicit times land; a NULL path with AT_FDCWD is EFAULT. */
    struct timespec set[2] = {{1000, 5}, {2000, 7}};
    show("utimensat explicit as root", utimensat(AT_FDCWD, DIR "/closed", set, 0));
    show_mtime("mtime", DIR "/closed");
    struct timeval tv[2] = {{3000, 0}, {4000, 500}};
    show("utimes", syscall(SYS_utimes, DIR "/closed", tv));
    show_mtime("mtime", DIR "/closed");
    struct utimbuf ub = {5000, 6000};
    show("utime", syscall(SYS_utime, DIR "/closed", &ub));
    show_mtime("mtime", DIR "/closed");
    int dfd = open(DIR, O_RDONLY | O_DIRECTORY);
    struct timeval tv2[2] = {{7000, 0}, {8000, 1}};
    show("futimesat", syscall(SYS_futimesat, dfd, "closed", tv2));
    show_mtime("mtime", DIR "/closed");
    expect_err("futimesat bad usec", syscall(SYS_futimesat, dfd, "closed",
                                             (struct timeval[2]){{1, 1000000}, {1, 0}}));
    expect_err("utimensat(AT_FDCWD, NULL)", syscall(SYS_utimensat, AT_FDCWD, NULL, NULL, 0));
    expect_err("utimes(NULL)", syscall(SYS_utimes, NULL, tv));
    close(dfd);

    /* An O_PATH fd names a node; it does not open it. */
    int p = open(DIR "/closed", O_PATH);
    MUST(p);
    expect_err("O_PATH: fchmod", fchmod(p, 0600));
    expect_err("O_PATH: fchown", fchown(p, 0, 0));
    expect_err("O_PATH: read", read(p, &st, 1));
    expect_err("O_PATH: fsync", fsync(p));
    expect_err("O_PATH: ioctl FIONREAD", ioctl(p, FIONREAD, &st));
    expect_err("O_PATH: mmap", (long)mmap(NULL, 4096, PROT_READ, MAP_SHARED, p, 0) == -1 ? -1 : 0);
    expect_err("O_PATH: futimens", futimens(p, NULL));
    expect_err("O_PATH: F_SETFL", fcntl(p, F_SETFL, O_NONBLOCK));
    struct stat sb;
    show("O_PATH: fstat", fstat(p, &sb));
    show_bool("O_PATH: F_GETFL has O_PATH", fcntl(p, F_GETFL) & O_PATH);
    int d = dup(p);
    show_ok("O_PATH: dup", d);
    close(d);
    show("O_PATH: fchownat AT_EMPTY_PATH", fchownat(p, "", 0, 0, AT_EMPTY_PATH));
    int pd = open(DIR, O_PATH | O_DIRECTORY);
    show("O_PATH dir: fchdir", fchdir(pd));
    show("O_PATH dir: openat through it", close(openat(pd, "closed", O_RDONLY)));
    close(pd);
    close(p);
    system("rm -rf " DIR);
    return 0;
}
