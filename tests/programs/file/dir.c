/* file/dir: mkdirat, getdents64 (raw, small buffers), getcwd, chdir, fchdir,
 * renameat, unlinkat(AT_REMOVEDIR), rmdir, opendir/readdir (libc). */
#include "../common.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#define DIR_ "/tmp/rvisor-difftest-file-dir"

struct linux_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

static const char *dtype(unsigned char t)
{
    switch (t) {
    case DT_REG: return "reg";
    case DT_DIR: return "dir";
    case DT_LNK: return "lnk";
    case DT_CHR: return "chr";
    case DT_FIFO: return "fifo";
    case DT_UNKNOWN: return "unknown";
    }
    return "other";
}

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* List a directory with raw getdents64 using a buffer of `bufsz` bytes;
 * print the entries sorted by name (readdir order is filesystem-specific). */
static void list_raw(const char *path, size_t bufsz)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        printf("open %s: %s\n", path, errname(errno));
        return;
    }
    char *buf = malloc(bufsz);
    char *names[512];
    int count = 0, calls = 0, ino_ok = 1;
    for (;;) {
        long n = syscall(SYS_getdents64, fd, buf, bufsz);
        if (n < 0) {
            printf("getdents64(%zu): %s\n", bufsz, errname(errno));
            break;
        }
        if (n == 0)
            break;
        calls++;
        for (long off = 0; off < n;) {
            struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + off);
            if (d->d_ino == 0)
                ino_ok = 0;
            char *e = malloc(strlen(d->d_name) + 16);
            sprintf(e, "%s:%s", d->d_name, dtype(d->d_type));
            if (count < 512)
                names[count++] = e;
            off += d->d_reclen;
        }
    }
    qsort(names, count, sizeof names[0], cmp);
    printf("%s (buf %zu): %d entries, nonzero inodes: %s, multiple calls: %s\n", path, bufsz,
           count, ino_ok ? "yes" : "no", calls > 1 ? "yes" : "no");
    for (int i = 0; i < count; i++) {
        printf("  %s\n", names[i]);
        free(names[i]);
    }
    free(buf);
    close(fd);
}

static void cleanup(void)
{
    char p[256];
    for (int i = 0; i < 40; i++) {
        snprintf(p, sizeof p, DIR_ "/many/entry-%02d", i);
        unlink(p);
    }
    rmdir(DIR_ "/many");
    unlink(DIR_ "/a/file");
    unlink(DIR_ "/a/renamed");
    unlink(DIR_ "/a/link");
    rmdir(DIR_ "/a/b/c");
    rmdir(DIR_ "/a/b");
    rmdir(DIR_ "/a/moved");
    rmdir(DIR_ "/a");
    rmdir(DIR_);
}

static void pcwd(const char *label)
{
    char buf[PATH_MAX];
    if (getcwd(buf, sizeof buf))
        printf("%s: %s\n", label, buf);
    else
        printf("%s: %s\n", label, errname(errno));
}

int main(void)
{
    test_init();
    umask(022);
    cleanup();

    show("mkdir", mkdir(DIR_, 0755));
    expect_err("mkdir existing", mkdir(DIR_, 0755));
    int dfd = open(DIR_, O_RDONLY | O_DIRECTORY);
    MUST(dfd);
    show("mkdirat a", mkdirat(dfd, "a", 0755));
    show("mkdirat a/b", mkdirat(dfd, "a/b", 0700));
    show("mkdirat a/b/c", mkdirat(AT_FDCWD, DIR_ "/a/b/c", 0755));
    expect_err("mkdirat missing parent", mkdirat(dfd, "x/y", 0755));
    int fd = openat(dfd, "a/file", O_CREAT | O_WRONLY, 0644);
    MUST(fd);
    MUST(write(fd, "data\n", 5));
    close(fd);
    MUST(symlinkat("file", dfd, "a/link"));

    list_raw(DIR_ "/a", 4096);
    list_raw(DIR_ "/a", 64); /* forces several getdents64 calls */

    /* getdents64 edge cases */
    char tiny[8];
    fd = open(DIR_ "/a", O_RDONLY | O_DIRECTORY);
    expect_err("getdents64 buffer too small", syscall(SYS_getdents64, fd, tiny, sizeof tiny));
    close(fd);
    fd = open(DIR_ "/a/file", O_RDONLY);
    char big[1024];
    expect_err("getdents64 on a file", syscall(SYS_getdents64, fd, big, sizeof big));
    close(fd);
    expect_err("getdents64 bad fd", syscall(SYS_getdents64, 999, big, sizeof big));

    /* many entries */
    MUST(mkdir(DIR_ "/many", 0755));
    char p[256];
    for (int i = 0; i < 40; i++) {
        snprintf(p, sizeof p, DIR_ "/many/entry-%02d", i);
        fd = open(p, O_CREAT | O_WRONLY, 0644);
        MUST(fd);
        close(fd);
    }
    list_raw(DIR_ "/many", 256);

    /* rewinding a directory with lseek and reading it again via libc */
    DIR *d = opendir(DIR_ "/many");
    int first = 0, second = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        first++;
    rewinddir(d);
    while ((de = readdir(d)))
        second++;
    printf("readdir count: %d, after rewind: %d\n", first, second);
    closedir(d);

    /* the root directory (the host's, seen through the sandbox) */
    list_raw("/", 32768);

    /* cwd */
    show("chdir", chdir(DIR_ "/a/b"));
    pcwd("cwd");
    show("chdir ..", chdir(".."));
    pcwd("cwd");
    show("chdir relative", chdir("b/c"));
    pcwd("cwd");
    show("fchdir", fchdir(dfd));
    pcwd("cwd after fchdir");
    struct stat st;
    show("stat relative to cwd", stat("a/file", &st));
    expect_err("chdir missing", chdir(DIR_ "/nope"));
    expect_err("chdir file", chdir(DIR_ "/a/file"));
    fd = open(DIR_ "/a/file", O_RDONLY);
    expect_err("fchdir file", fchdir(fd));
    close(fd);
    expect_err("fchdir bad fd", fchdir(-1));
    char small[4];
    errno = 0;
    char *r = getcwd(small, sizeof small);
    printf("getcwd small buffer: %s %s\n", r ? "ok" : "NULL", errname(errno));
    show("raw getcwd length", syscall(SYS_getcwd, big, sizeof big));
    show("chdir /", chdir("/"));
    pcwd("cwd");
    show("chdir /tmp/../tmp/.", chdir("/tmp/../tmp/."));
    pcwd("cwd");

    /* renames */
    show("renameat file", renameat(dfd, "a/file", dfd, "a/renamed"));
    expect_err("stat old name", stat(DIR_ "/a/file", &st));
    show("stat new name", stat(DIR_ "/a/renamed", &st));
    printf("renamed size: %lld\n", (long long)st.st_size);
    show("rename dir", rename(DIR_ "/a/b", DIR_ "/a/moved"));
    show("stat moved/c", stat(DIR_ "/a/moved/c", &st));
    expect_err("rename dir into itself", rename(DIR_ "/a", DIR_ "/a/moved/c/x"));
    expect_err("rename missing", rename(DIR_ "/a/none", DIR_ "/a/none2"));
    expect_err("rename dir over file", rename(DIR_ "/a/moved", DIR_ "/a/renamed"));

    /* removal */
    expect_err("rmdir non-empty", rmdir(DIR_ "/a/moved"));
    expect_err("rmdir file", rmdir(DIR_ "/a/renamed"));
    expect_err("unlink dir", unlink(DIR_ "/a/moved"));
    expect_err("rmdir .", rmdir(DIR_ "/a/moved/c/."));
    show("unlinkat AT_REMOVEDIR", unlinkat(dfd, "a/moved/c", AT_REMOVEDIR));
    show("rmdir", rmdir(DIR_ "/a/moved"));
    expect_err("rmdir again", rmdir(DIR_ "/a/moved"));

    /* an open directory that is removed */
    MUST(mkdir(DIR_ "/a/gone", 0755));
    MUST(chdir(DIR_ "/a/gone"));
    MUST(rmdir(DIR_ "/a/gone"));
    errno = 0;
    r = getcwd(big, sizeof big);
    printf("getcwd of removed dir: %s %s\n", r ? "ok" : "NULL", errname(errno));
    expect_err("raw getcwd of removed dir", syscall(SYS_getcwd, big, sizeof big));
    expect_err("create in removed cwd", open("f", O_CREAT | O_WRONLY, 0644));
    MUST(chdir("/"));

    close(dfd);
    cleanup();
    expect_err("stat after cleanup", stat(DIR_, &st));
    return 0;
}
