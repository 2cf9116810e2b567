/* file/stat: fstat, newfstatat (fstatat/lstat), statx, readlinkat,
 * faccessat, faccessat2, symlinkat, linkat, fchmod, /proc/self/exe. */
#include "../common.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>

#define DIR "/tmp/rvisor-difftest-file-stat"

static const char *ftype(mode_t m)
{
    switch (m & S_IFMT) {
    case S_IFREG: return "regular";
    case S_IFDIR: return "directory";
    case S_IFLNK: return "symlink";
    case S_IFCHR: return "chardev";
    case S_IFBLK: return "blockdev";
    case S_IFIFO: return "fifo";
    case S_IFSOCK: return "socket";
    }
    return "unknown";
}

static void print_stat(const char *label, const struct stat *st, int with_nlink)
{
    printf("%s: type=%s perm=%04o", label, ftype(st->st_mode), (unsigned)(st->st_mode & 07777));
    /* a directory's size is filesystem-specific */
    if (!S_ISDIR(st->st_mode))
        printf(" size=%lld", (long long)st->st_size);
    if (with_nlink)
        printf(" nlink=%lu", (unsigned long)st->st_nlink);
    printf(" uid_is_euid=%s gid_is_egid=%s\n", st->st_uid == geteuid() ? "yes" : "no",
           st->st_gid == getegid() ? "yes" : "no");
}

static void rmrf(void)
{
    unlink(DIR "/file");
    unlink(DIR "/hardlink");
    unlink(DIR "/link");
    unlink(DIR "/dangling");
    unlink(DIR "/exec");
    rmdir(DIR "/sub");
    rmdir(DIR);
}

static void faccess2(const char *label, const char *path, int mode, int flags)
{
    long r = syscall(SYS_faccessat2, AT_FDCWD, path, mode, flags);
    if (r < 0)
        printf("%s: -1 %s\n", label, errname(errno));
    else
        printf("%s: 0\n", label);
}

static void faccess(const char *label, const char *path, int mode)
{
    long r = syscall(SYS_faccessat, AT_FDCWD, path, mode);
    if (r < 0)
        printf("%s: -1 %s\n", label, errname(errno));
    else
        printf("%s: 0\n", label);
}

int main(int argc, char **argv)
{
    (void)argc;
    test_init();
    umask(022);
    rmrf();

    MUST(mkdir(DIR, 0755));
    MUST(mkdir(DIR "/sub", 0750));
    int fd = open(DIR "/file", O_CREAT | O_RDWR, 0640);
    MUST(fd);
    MUST(write(fd, "0123456789", 10));

    struct stat st, st2, lst;
    show("fstat", fstat(fd, &st));
    print_stat("fstat file", &st, 1);
    show("newfstatat", fstatat(AT_FDCWD, DIR "/file", &st2, 0));
    print_stat("fstatat file", &st2, 1);
    show_bool("same ino/dev as fstat", st.st_ino == st2.st_ino && st.st_dev == st2.st_dev);
    show_bool("mtime set", st.st_mtime > 0);

    /* relative to a directory fd */
    int dfd = open(DIR, O_RDONLY | O_DIRECTORY);
    MUST(dfd);
    show("fstatat dirfd-relative", fstatat(dfd, "file", &st2, 0));
    show_bool("dirfd-relative same ino", st.st_ino == st2.st_ino);
    show("fstatat AT_EMPTY_PATH", fstatat(fd, "", &st2, AT_EMPTY_PATH));
    show_bool("AT_EMPTY_PATH same ino", st.st_ino == st2.st_ino);
    expect_err("fstatat empty path without AT_EMPTY_PATH", fstatat(fd, "", &st2, 0));
    expect_err("fstatat bad flags", fstatat(AT_FDCWD, DIR, &st2, 0x40000000));
    show("fstat dir", fstat(dfd, &st2));
    print_stat("dir", &st2, 0);
    show("stat sub", stat(DIR "/sub", &st2));
    print_stat("sub", &st2, 0);

    /* hard link */
    show("linkat", linkat(AT_FDCWD, DIR "/file", AT_FDCWD, DIR "/hardlink", 0));
    MUST(fstat(fd, &st));
    printf("nlink after link: %lu\n", (unsigned long)st.st_nlink);
    MUST(stat(DIR "/hardlink", &st2));
    show_bool("hardlink same ino", st.st_ino == st2.st_ino);
    expect_err("linkat existing target", linkat(AT_FDCWD, DIR "/file", AT_FDCWD, DIR "/hardlink", 0));

    /* symlinks */
    show("symlinkat", symlinkat("file", dfd, "link"));
    show("symlinkat dangling", symlinkat("does-not-exist", AT_FDCWD, DIR "/dangling"));
    show("lstat link", lstat(DIR "/link", &lst));
    print_stat("lstat link", &lst, 0);
    show("stat via link", stat(DIR "/link", &st2));
    print_stat("stat via link", &st2, 0);
    show_bool("link resolves to file", st2.st_ino == st.st_ino);
    show("fstatat AT_SYMLINK_NOFOLLOW", fstatat(AT_FDCWD, DIR "/link", &st2, AT_SYMLINK_NOFOLLOW));
    printf("nofollow type: %s\n", ftype(st2.st_mode));
    expect_err("stat dangling", stat(DIR "/dangling", &st2));
    show("lstat dangling", lstat(DIR "/dangling", &st2));

    char buf[PATH_MAX];
    long n = readlinkat(dfd, "link", buf, sizeof buf);
    show("readlinkat", n);
    if (n >= 0)
        printf("target: %.*s\n", (int)n, buf);
    n = readlinkat(AT_FDCWD, DIR "/dangling", buf, 4);
    show("readlinkat truncated", n);
    if (n >= 0)
        printf("truncated: %.*s\n", (int)n, buf);
    expect_err("readlinkat on regular file", readlinkat(AT_FDCWD, DIR "/file", buf, sizeof buf));
    expect_err("readlinkat missing", readlinkat(AT_FDCWD, DIR "/missing", buf, sizeof buf));
    expect_err("readlink zero size", syscall(SYS_readlinkat, AT_FDCWD, DIR "/link", buf, 0));

    n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n >= 0) {
        buf[n] = 0;
        show_bool("/proc/self/exe is argv[0]", strcmp(buf, argv[0]) == 0);
    } else {
        printf("readlink /proc/self/exe: %s\n", errname(errno));
    }

    /* statx */
    struct statx sx;
    show("statx", statx(AT_FDCWD, DIR "/file", 0, STATX_BASIC_STATS, &sx));
    show_bool("statx basic mask", (sx.stx_mask & STATX_BASIC_STATS) == STATX_BASIC_STATS);
    printf("statx: size=%llu perm=%04o type=%s nlink=%u\n", (unsigned long long)sx.stx_size,
           (unsigned)(sx.stx_mode & 07777), ftype(sx.stx_mode), (unsigned)sx.stx_nlink);
    MUST(fstat(fd, &st));
    show_bool("statx ino matches fstat", sx.stx_ino == st.st_ino);
    show_bool("statx dev matches fstat",
              makedev(sx.stx_dev_major, sx.stx_dev_minor) == st.st_dev);
    show_bool("statx mtime matches fstat", (long long)sx.stx_mtime.tv_sec == (long long)st.st_mtime);
    show("statx AT_EMPTY_PATH", statx(fd, "", AT_EMPTY_PATH, STATX_SIZE, &sx));
    printf("statx fd size=%llu\n", (unsigned long long)sx.stx_size);
    show("statx nofollow", statx(AT_FDCWD, DIR "/link", AT_SYMLINK_NOFOLLOW, STATX_TYPE, &sx));
    printf("statx nofollow type=%s\n", ftype(sx.stx_mode));
    expect_err("statx missing", statx(AT_FDCWD, DIR "/missing", 0, STATX_BASIC_STATS, &sx));
    expect_err("statx reserved mask bit", statx(AT_FDCWD, DIR "/file", 0, 0x80000000U, &sx));

    /* access checks (the program runs as root natively) */
    show("fchmod 0600", fchmod(fd, 0600));
    MUST(fstat(fd, &st));
    printf("perm after fchmod: %04o\n", (unsigned)(st.st_mode & 07777));
    int efd = open(DIR "/exec", O_CREAT | O_WRONLY, 0755);
    MUST(efd);
    close(efd);
    faccess("faccessat F_OK file", DIR "/file", F_OK);
    faccess("faccessat R_OK|W_OK file", DIR "/file", R_OK | W_OK);
    faccess("faccessat X_OK non-exec file", DIR "/file", X_OK);
    faccess("faccessat X_OK exec file", DIR "/exec", X_OK);
    faccess("faccessat X_OK dir", DIR "/sub", X_OK);
    faccess("faccessat missing", DIR "/missing", F_OK);
    faccess("faccessat /etc/passwd R_OK", "/etc/passwd", R_OK);
    faccess("faccessat /bin/sh X_OK", "/bin/sh", X_OK);
    faccess("faccessat ENOTDIR", "/etc/passwd/x", F_OK);
    faccess("faccessat bad mode", DIR "/file", 0x80);
    faccess2("faccessat2 F_OK", DIR "/file", F_OK, 0);
    faccess2("faccessat2 AT_EACCESS R_OK", DIR "/file", R_OK, AT_EACCESS);
    faccess2("faccessat2 X_OK non-exec", DIR "/file", X_OK, AT_EACCESS);
    faccess2("faccessat2 nofollow dangling", DIR "/dangling", F_OK, AT_SYMLINK_NOFOLLOW);
    faccess2("faccessat2 follow dangling", DIR "/dangling", F_OK, 0);
    faccess2("faccessat2 bad flags", DIR "/file", F_OK, 0x1);
    show("access() libc", access(DIR "/file", R_OK));

    /* character devices */
    show("stat /dev/null", stat("/dev/null", &st2));
    printf("/dev/null: type=%s rdev=%u:%u\n", ftype(st2.st_mode), major(st2.st_rdev),
           minor(st2.st_rdev));
    show("stat /dev/zero", stat("/dev/zero", &st2));
    printf("/dev/zero: type=%s rdev=%u:%u\n", ftype(st2.st_mode), major(st2.st_rdev),
           minor(st2.st_rdev));

    close(fd);
    close(dfd);
    rmrf();
    expect_err("stat after cleanup", stat(DIR, &st2));
    return 0;
}
