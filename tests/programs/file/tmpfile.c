/* file/tmpfile: O_TMPFILE (a nameless file: nlink 0, mode, data), naming it
 * with linkat through /proc/self/fd, O_EXCL making it unlinkable, the
 * flag checks (read-only, O_CREAT, not a directory), and /proc/self/fd
 * magic links that reach a file by what the fd holds, not by name: a
 * deleted file and a renamed one. */
#include "../common.h"

#include <fcntl.h>
#include <sys/stat.h>

#define DIR_ "/tmp/rvisor-difftest-file-tmpfile"

static void fdpath(char *buf, size_t n, int fd)
{
    snprintf(buf, n, "/proc/self/fd/%d", fd);
}

int main(void)
{
    test_init();
    system("rm -rf " DIR_);
    if (mkdir(DIR_, 0755) != 0) {
        printf("FATAL mkdir\n");
        return 1;
    }
    char p[64], buf[32];
    struct stat st;
    int fd = open(DIR_, O_TMPFILE | O_RDWR, 0640);
    show_ok("O_TMPFILE", fd);
    write(fd, "tmp data", 8);
    fstat(fd, &st);
    printf("nlink %ld mode %o size %ld\n", (long)st.st_nlink, st.st_mode & 07777,
           (long)st.st_size);
    fdpath(p, sizeof p, fd);
    show("linkat via /proc/self/fd", linkat(AT_FDCWD, p, AT_FDCWD, DIR_ "/named", AT_SYMLINK_FOLLOW));
    fstat(fd, &st);
    printf("nlink after linkat %ld\n", (long)st.st_nlink);
    memset(buf, 0, sizeof buf);
    int named = open(DIR_ "/named", O_RDONLY);
    read(named, buf, sizeof buf - 1);
    printf("named content: %s\n", buf);
    close(named);
    expect_err("linkat again to an existing name",
               linkat(AT_FDCWD, p, AT_FDCWD, DIR_ "/named", AT_SYMLINK_FOLLOW));
    close(fd);

    int ex = open(DIR_, O_TMPFILE | O_WRONLY | O_EXCL, 0600);
    fdpath(p, sizeof p, ex);
    expect_err("linkat of O_EXCL tmpfile", linkat(AT_FDCWD, p, AT_FDCWD, DIR_ "/never", AT_SYMLINK_FOLLOW));
    close(ex);
    expect_err("O_TMPFILE read-only", open(DIR_, O_TMPFILE | O_RDONLY, 0600));
    expect_err("O_TMPFILE|O_CREAT", open(DIR_, O_TMPFILE | O_RDWR | O_CREAT, 0600));
    expect_err("O_TMPFILE on a file", open(DIR_ "/named", O_TMPFILE | O_RDWR, 0600));
    expect_err("O_TMPFILE missing dir", open(DIR_ "/nope", O_TMPFILE | O_RDWR, 0600));

    /* Magic links follow the fd, not the name. */
    int f = open(DIR_ "/victim", O_CREAT | O_RDWR, 0644);
    write(f, "still here", 10);
    fdpath(p, sizeof p, f);
    rename(DIR_ "/victim", DIR_ "/renamed");
    memset(buf, 0, sizeof buf);
    int again = open(p, O_RDONLY);
    read(again, buf, sizeof buf - 1);
    printf("reopened after rename: %s\n", buf);
    close(again);
    unlink(DIR_ "/renamed");
    memset(buf, 0, sizeof buf);
    again = open(p, O_RDONLY);
    show_ok("reopen after unlink", again);
    read(again, buf, sizeof buf - 1);
    printf("reopened after unlink: %s\n", buf);
    close(again);
    close(f);
    system("rm -rf " DIR_);
    return 0;
}
