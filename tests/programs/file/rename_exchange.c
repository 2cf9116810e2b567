/* file/rename_exchange: renameat2's flags — RENAME_EXCHANGE swaps two
 * existing names atomically (files, a file and a directory, across
 * directories), refuses a missing name (ENOENT), a directory swapped
 * below itself (EINVAL) and RENAME_NOREPLACE alongside it (EINVAL);
 * RENAME_NOREPLACE alone refuses an existing target (EEXIST). Works in
 * the directory given as argv[1] (default /tmp). */
#include "../common.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/syscall.h>

static const char *base;
static char pbuf[4][512];

static const char *at(int i, const char *rel)
{
    snprintf(pbuf[i], sizeof pbuf[i], "%s/%s", base, rel);
    return pbuf[i];
}

static long rn2(const char *a, const char *b, unsigned flags)
{
    return syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, flags);
}

static void cat(const char *label, const char *path)
{
    char buf[64] = {0};
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        printf("%s: -1 %s\n", label, errname(errno));
        return;
    }
    long n = read(fd, buf, sizeof buf - 1);
    close(fd);
    printf("%s: %s (%ld bytes)\n", label, buf, n);
}

static void kind(const char *label, const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        printf("%s: -1 %s\n", label, errname(errno));
    else
        printf("%s: %s\n", label, S_ISDIR(st.st_mode) ? "directory" : S_ISREG(st.st_mode) ? "file" : "other");
}

static void put(const char *path, const char *text)
{
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    MUST(fd);
    MUST(write(fd, text, strlen(text)));
    close(fd);
}

int main(int argc, char **argv)
{
    test_init();
    char dir[400];
    snprintf(dir, sizeof dir, "%s/rvisor-difftest-rename-exchange", argc > 1 ? argv[1] : "/tmp");
    base = dir;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    system(cmd);
    MUST(mkdir(dir, 0755));
    MUST(mkdir(at(0, "sub"), 0755));
    MUST(mkdir(at(0, "sub/inner"), 0755));
    put(at(0, "a"), "alpha");
    put(at(0, "b"), "bravo");
    put(at(0, "sub/c"), "charlie");

    show("exchange a and b", rn2(at(0, "a"), at(1, "b"), RENAME_EXCHANGE));
    cat("a", at(0, "a"));
    cat("b", at(0, "b"));
    show("exchange a and sub/c", rn2(at(0, "a"), at(1, "sub/c"), RENAME_EXCHANGE));
    cat("a", at(0, "a"));
    cat("sub/c", at(0, "sub/c"));
    show("exchange file b and directory sub", rn2(at(0, "b"), at(1, "sub"), RENAME_EXCHANGE));
    kind("b", at(0, "b"));
    kind("sub", at(0, "sub"));
    cat("b/c (the directory moved)", at(0, "b/c"));
    cat("sub (the file moved)", at(0, "sub"));
    expect_err("exchange with a missing name", rn2(at(0, "a"), at(1, "missing"), RENAME_EXCHANGE));
    expect_err("exchange a missing name", rn2(at(0, "missing"), at(1, "a"), RENAME_EXCHANGE));
    expect_err("exchange a directory with its own child", rn2(at(0, "b"), at(1, "b/inner"), RENAME_EXCHANGE));
    expect_err("exchange a child with its directory", rn2(at(0, "b/inner"), at(1, "b"), RENAME_EXCHANGE));
    expect_err("EXCHANGE|NOREPLACE", rn2(at(0, "a"), at(1, "sub"), RENAME_EXCHANGE | RENAME_NOREPLACE));
    expect_err("NOREPLACE onto an existing name", rn2(at(0, "a"), at(1, "sub"), RENAME_NOREPLACE));
    show("NOREPLACE onto a free name", rn2(at(0, "a"), at(1, "d"), RENAME_NOREPLACE));
    cat("d", at(0, "d"));
    show("exchange a name with itself", rn2(at(0, "d"), at(1, "d"), RENAME_EXCHANGE));
    expect_err("unknown flag", rn2(at(0, "d"), at(1, "e"), 1u << 7));
    system(cmd);
    return 0;
}
