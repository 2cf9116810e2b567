/* file/errors: the error paths of the file syscalls — ENOENT, ENOTDIR,
 * EBADF, EISDIR, ELOOP, ENAMETOOLONG, EEXIST, EFAULT, EINVAL, ESPIPE... */
#include "../common.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#define DIR_ "/tmp/rvisor-difftest-file-errors"

static void cleanup(void)
{
    unlink(DIR_ "/loop-a");
    unlink(DIR_ "/loop-b");
    unlink(DIR_ "/self");
    unlink(DIR_ "/link-to-file");
    unlink(DIR_ "/link-to-dir");
    unlink(DIR_ "/file");
    rmdir(DIR_ "/dir");
    rmdir(DIR_);
}

int main(void)
{
    test_init();
    umask(022);
    cleanup();
    MUST(mkdir(DIR_, 0755));
    MUST(mkdir(DIR_ "/dir", 0755));
    int fd = open(DIR_ "/file", O_CREAT | O_WRONLY, 0644);
    MUST(fd);
    MUST(write(fd, "x", 1));
    close(fd);
    MUST(symlink("loop-b", DIR_ "/loop-a"));
    MUST(symlink("loop-a", DIR_ "/loop-b"));
    MUST(symlink("self", DIR_ "/self"));
    MUST(symlink("file", DIR_ "/link-to-file"));
    MUST(symlink("dir", DIR_ "/link-to-dir"));

    struct stat st;
    char buf[64];

    /* ENOENT */
    expect_err("open missing", open(DIR_ "/missing", O_RDONLY));
    expect_err("open missing dir component", open(DIR_ "/nodir/file", O_RDONLY));
    expect_err("open empty path", open("", O_RDONLY));
    expect_err("stat missing", stat("/nonexistent-rvisor-path", &st));
    expect_err("unlink missing", unlink(DIR_ "/missing"));
    expect_err("O_CREAT in missing dir", open(DIR_ "/nodir/new", O_CREAT | O_WRONLY, 0644));

    /* ENOTDIR */
    expect_err("file as directory", open(DIR_ "/file/x", O_RDONLY));
    expect_err("stat file as directory", stat("/etc/passwd/", &st));
    expect_err("O_DIRECTORY on file", open(DIR_ "/file", O_RDONLY | O_DIRECTORY));
    expect_err("openat relative to a file fd", ({
                   int f = open(DIR_ "/file", O_RDONLY);
                   int r = openat(f, "x", O_RDONLY);
                   int e = errno;
                   close(f);
                   errno = e;
                   r;
               }));
    expect_err("mkdir under file", mkdir(DIR_ "/file/sub", 0755));

    /* EBADF */
    expect_err("read fd -1", read(-1, buf, 1));
    expect_err("write fd 999", write(999, "x", 1));
    expect_err("fstat fd 999", fstat(999, &st));
    expect_err("close fd 999", close(999));
    expect_err("lseek fd 999", lseek(999, 0, SEEK_SET));
    expect_err("openat bad dirfd", openat(999, "x", O_RDONLY));
    show("openat bad dirfd absolute path", ({
             int r = openat(999, "/dev/null", O_RDONLY);
             if (r >= 0)
                 close(r);
             r < 0 ? r : 0;
         }));
    expect_err("fstatat bad dirfd", fstatat(999, "x", &st, 0));
    expect_err("getdents64 fd -1", syscall(SYS_getdents64, -1, buf, sizeof buf));

    /* EISDIR */
    expect_err("open dir O_WRONLY", open(DIR_ "/dir", O_WRONLY));
    expect_err("open dir O_RDWR", open(DIR_ "/dir", O_RDWR));
    expect_err("open /tmp O_WRONLY|O_CREAT", open("/tmp", O_WRONLY | O_CREAT, 0644));
    fd = open(DIR_ "/dir", O_RDONLY);
    show_ok("open dir O_RDONLY", fd);
    expect_err("read a directory", read(fd, buf, sizeof buf));
    close(fd);
    expect_err("unlink a directory", unlink(DIR_ "/dir"));

    /* ELOOP */
    expect_err("open symlink loop", open(DIR_ "/loop-a", O_RDONLY));
    expect_err("stat symlink loop", stat(DIR_ "/loop-a", &st));
    expect_err("open self loop", open(DIR_ "/self", O_RDONLY));
    show("lstat symlink loop", lstat(DIR_ "/loop-a", &st));
    expect_err("O_NOFOLLOW on symlink", open(DIR_ "/link-to-file", O_RDONLY | O_NOFOLLOW));
    expect_err("loop as directory component", open(DIR_ "/loop-a/x", O_RDONLY));
    fd = open(DIR_ "/link-to-dir/", O_RDONLY | O_NOFOLLOW);
    show_ok("O_NOFOLLOW with trailing slash follows", fd);
    if (fd >= 0)
        close(fd);
    fd = open(DIR_ "/link-to-file", O_PATH | O_NOFOLLOW);
    show_ok("O_PATH|O_NOFOLLOW on symlink", fd);
    if (fd >= 0)
        close(fd);
    expect_err("O_CREAT|O_EXCL on symlink", open(DIR_ "/link-to-file", O_CREAT | O_EXCL | O_WRONLY, 0644));

    /* ENAMETOOLONG */
    char longname[400];
    memset(longname, 'n', sizeof longname);
    memcpy(longname, "/tmp/", 5);
    longname[sizeof longname - 1] = 0;
    expect_err("component > NAME_MAX", open(longname, O_RDONLY));
    expect_err("mkdir component > NAME_MAX", mkdir(longname, 0755));
    static char longpath[PATH_MAX + 100];
    size_t off = 0;
    while (off + 3 < sizeof longpath - 1) {
        memcpy(longpath + off, "/aa", 3);
        off += 3;
    }
    longpath[off] = 0;
    expect_err("path > PATH_MAX", open(longpath, O_RDONLY));
    expect_err("stat path > PATH_MAX", stat(longpath, &st));
    char name255[256 + 16];
    strcpy(name255, "/tmp/");
    memset(name255 + 5, 'm', 255);
    name255[5 + 255] = 0;
    expect_err("255-char name that does not exist", open(name255, O_RDONLY));

    /* EEXIST */
    expect_err("mkdir existing", mkdir(DIR_ "/dir", 0755));
    expect_err("symlink existing", symlink("x", DIR_ "/file"));
    expect_err("O_CREAT|O_EXCL existing", open(DIR_ "/file", O_CREAT | O_EXCL | O_RDWR, 0644));

    /* EFAULT (raw syscalls: glibc's fortify attributes reject these at
     * compile time) */
    fd = open("/dev/zero", O_RDONLY);
    MUST(fd);
    expect_err("read into NULL", syscall(SYS_read, fd, NULL, 16));
    expect_err("read into bad pointer", syscall(SYS_read, fd, (void *)16, 16));
    close(fd);
    expect_err("open NULL path", syscall(SYS_openat, AT_FDCWD, NULL, O_RDONLY));
    expect_err("stat bad buffer", syscall(SYS_newfstatat, AT_FDCWD, "/", (void *)8, 0));
    int ep[2];
    MUST(pipe(ep));
    expect_err("write to pipe from bad pointer", syscall(SYS_write, ep[1], (void *)16, 16));
    expect_err("writev bad iovec", syscall(SYS_writev, ep[1], (void *)16, 1));
    close(ep[0]);
    close(ep[1]);

    /* EINVAL */
    expect_err("open bad O_TMPFILE (no write)", open("/tmp", O_TMPFILE | O_RDONLY, 0600));
    fd = open("/dev/null", O_RDONLY);
    MUST(fd);
    expect_err("lseek bad whence", lseek(fd, 0, 99));
    close(fd);
    expect_err("readlink non-symlink", readlink(DIR_ "/file", buf, sizeof buf));
    expect_err("unlinkat bad flag", unlinkat(AT_FDCWD, DIR_ "/file", 0x4));

    /* ESPIPE */
    int p[2];
    MUST(pipe(p));
    expect_err("lseek pipe", lseek(p[0], 0, SEEK_CUR));
    expect_err("pread pipe", pread(p[0], buf, 1, 0));
    expect_err("pwrite pipe", pwrite(p[1], "x", 1, 0));
    close(p[0]);
    close(p[1]);

    /* ENOTEMPTY / EBUSY-free removal */
    expect_err("rmdir non-empty", rmdir(DIR_));
    expect_err("rmdir /", rmdir("/"));

    cleanup();
    expect_err("cleaned up", stat(DIR_, &st));
    return 0;
}
