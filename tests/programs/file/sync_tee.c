/* file/sync_tee: sync, syncfs, sync_file_range (argument checks, pipes),
 * tee between pipes (bytes duplicated, none consumed; EAGAIN when empty
 * and non-blocking; EINVAL for non-pipes), vmsplice into and out of a pipe,
 * fchmodat2 (flags, symlinks, AT_EMPTY_PATH), FS_IOC_GETFLAGS. */
#include "../common.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif

#define DIR_ "/tmp/rvisor-difftest-file-sync-tee"

int main(void)
{
    test_init();
    system("rm -rf " DIR_);
    if (mkdir(DIR_, 0755) != 0) {
        printf("FATAL mkdir\n");
        return 1;
    }
    int f = open(DIR_ "/f", O_CREAT | O_RDWR, 0644);
    if (f < 0 || write(f, "data", 4) != 4) {
        printf("FATAL create\n");
        return 1;
    }
    sync();
    printf("sync: done\n");
    show("syncfs file", syscall(SYS_syncfs, f));
    expect_err("syncfs bad fd", syscall(SYS_syncfs, 999));
    show("sync_file_range file", sync_file_range(f, 0, 0, SYNC_FILE_RANGE_WRITE));
    expect_err("sync_file_range bad flags", sync_file_range(f, 0, 0, 0x100));
    expect_err("sync_file_range negative offset", sync_file_range(f, -1, 0, 0));
    int p[2], q[2];
    if (pipe(p) || pipe(q))
        return 1;
    expect_err("sync_file_range pipe", sync_file_range(p[0], 0, 0, 0));

    /* tee */
    expect_err("tee empty nonblock", tee(p[0], q[1], 16, SPLICE_F_NONBLOCK));
    write(p[1], "hello", 5);
    show("tee 16", tee(p[0], q[1], 16, 0));
    char buf[32] = {0};
    show("read teed copy", read(q[0], buf, sizeof buf));
    printf("copy: %s\n", buf);
    memset(buf, 0, sizeof buf);
    show("read original", read(p[0], buf, sizeof buf));
    printf("original: %s\n", buf);
    expect_err("tee file to pipe", tee(f, q[1], 4, 0));
    expect_err("tee same pipe", tee(p[0], p[1], 4, SPLICE_F_NONBLOCK));
    expect_err("tee bad flags", tee(p[0], q[1], 4, 0x100));

    /* vmsplice */
    struct iovec iov[2] = {{"two ", 4}, {"parts", 5}};
    show("vmsplice into pipe", vmsplice(p[1], iov, 2, 0));
    memset(buf, 0, sizeof buf);
    show("read it", read(p[0], buf, sizeof buf));
    printf("got: %s\n", buf);
    expect_err("vmsplice regular file", vmsplice(f, iov, 2, 0));
    /* More than the pipe holds: what fits is spliced, nothing waits. */
    /* Page-aligned plus 100 bytes: each user page takes a pipe slot. */
    static char big[101 * 1024] __attribute__((aligned(4096)));
    struct iovec bigv = {big + 100, 100 * 1024};
    show("vmsplice 100 KiB into an empty pipe", vmsplice(p[1], &bigv, 1, 0));
    expect_err("vmsplice into a full pipe, nonblocking", vmsplice(p[1], &bigv, 1, SPLICE_F_NONBLOCK));
    static char drain[100 * 1024];
    show("drain", read(p[0], drain, sizeof drain));
    write(p[1], "back out", 8);
    char out[16] = {0};
    struct iovec rd = {out, sizeof out};
    show("vmsplice out of pipe", vmsplice(p[0], &rd, 1, 0));
    printf("vmspliced out: %s\n", out);

    /* fchmodat2 */
    symlink("f", DIR_ "/l");
    show("fchmodat2 file", syscall(SYS_fchmodat2, AT_FDCWD, DIR_ "/f", 0600, 0));
    show("fchmodat2 through link", syscall(SYS_fchmodat2, AT_FDCWD, DIR_ "/l", 0640, 0));
    expect_err("fchmodat2 link nofollow",
               syscall(SYS_fchmodat2, AT_FDCWD, DIR_ "/l", 0600, AT_SYMLINK_NOFOLLOW));
    expect_err("fchmodat2 bad flags", syscall(SYS_fchmodat2, AT_FDCWD, DIR_ "/f", 0600, 0x1));
    show("fchmodat2 empty path", syscall(SYS_fchmodat2, f, "", 0604, AT_EMPTY_PATH));
    expect_err("fchmodat2 empty path without flag", syscall(SYS_fchmodat2, f, "", 0604, 0));
    /* FS_IOC_GETFLAGS: the value is the filesystem's; a pipe has none. */
    int attr = -1;
    show_ok("FS_IOC_GETFLAGS file", ioctl(f, FS_IOC_GETFLAGS, &attr));
    expect_err("FS_IOC_GETFLAGS pipe", ioctl(p[0], FS_IOC_GETFLAGS, &attr));
    struct stat st;
    stat(DIR_ "/f", &st);
    printf("final mode %o\n", st.st_mode & 07777);
    close(f);
    system("rm -rf " DIR_);
    return 0;
}
