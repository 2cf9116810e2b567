/* file/openat2: struct open_how checks (size, unknown bits, mode without
 * O_CREAT, BENEATH with IN_ROOT) and each RESOLVE_* restriction: BENEATH
 * (absolute names and links, .. above the start), IN_ROOT (re-rooted
 * absolute names, clamped ..), NO_SYMLINKS, NO_MAGICLINKS (/proc fd and exe
 * links, while /proc/self stays plain), NO_XDEV (stepping onto /proc),
 * CACHED with O_CREAT; plus O_CREAT through a dangling symlink with open,
 * and with BENEATH and IN_ROOT when the link's target climbs out. */
#include "../common.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#define DIR_ "/tmp/rvisor-difftest-file-openat2"

static long oa2(int dirfd, const char *path, uint64_t flags, uint64_t mode, uint64_t resolve)
{
    struct open_how how = {.flags = flags, .mode = mode, .resolve = resolve};
    return syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

/* Opens and closes, printing ok or the errno. */
static void try_open(const char *label, int dirfd, const char *path, uint64_t flags,
                     uint64_t resolve)
{
    long fd = oa2(dirfd, path, flags, 0, resolve);
    show_ok(label, fd);
    if (fd >= 0)
        close(fd);
}

int main(void)
{
    test_init();
    system("rm -rf " DIR_);
    if (mkdir(DIR_, 0755) || mkdir(DIR_ "/d", 0755)) {
        printf("FATAL mkdir\n");
        return 1;
    }
    int f = open(DIR_ "/d/f", O_CREAT | O_WRONLY, 0644);
    close(f);
    symlink("/etc/passwd", DIR_ "/abs");
    symlink("d/f", DIR_ "/rel");
    symlink("../rvisor-difftest-file-openat2/d/f", DIR_ "/up");
    symlink("/d/f", DIR_ "/rooted");
    int dir = open(DIR_, O_PATH | O_DIRECTORY);

    /* struct checks */
    struct {
        struct open_how how;
        uint64_t extra;
    } big = {{.flags = O_RDONLY}, 0};
    show_ok("size 32, zero tail", syscall(SYS_openat2, dir, "d/f", &big, sizeof big));
    big.extra = 1;
    expect_err("size 32, nonzero tail", syscall(SYS_openat2, dir, "d/f", &big, sizeof big));
    expect_err("size 16", syscall(SYS_openat2, dir, "d/f", &big, 16));
    expect_err("unknown flag", oa2(dir, "d/f", 1ULL << 40, 0, 0));
    expect_err("mode without O_CREAT", oa2(dir, "d/f", O_RDONLY, 0644, 0));
    expect_err("mode beyond 07777", oa2(dir, "new", O_CREAT | O_WRONLY, 010000, 0));
    expect_err("unknown resolve bit", oa2(dir, "d/f", O_RDONLY, 0, 0x1000));
    expect_err("BENEATH|IN_ROOT", oa2(dir, "d/f", O_RDONLY, 0, RESOLVE_BENEATH | RESOLVE_IN_ROOT));
    expect_err("O_PATH|O_RDWR", oa2(dir, "d/f", O_PATH | O_RDWR, 0, 0));
    expect_err("CACHED|O_CREAT", oa2(dir, "new", O_CREAT | O_WRONLY, 0600, RESOLVE_CACHED));

    /* RESOLVE_BENEATH */
    try_open("beneath d/f", dir, "d/f", O_RDONLY, RESOLVE_BENEATH);
    try_open("beneath d/../d/f", dir, "d/../d/f", O_RDONLY, RESOLVE_BENEATH);
    try_open("beneath rel", dir, "rel", O_RDONLY, RESOLVE_BENEATH);
    try_open("beneath ../", dir, "../rvisor-difftest-file-openat2/d/f", O_RDONLY, RESOLVE_BENEATH);
    try_open("beneath absolute", dir, "/etc/passwd", O_RDONLY, RESOLVE_BENEATH);
    try_open("beneath abs link", dir, "abs", O_RDONLY, RESOLVE_BENEATH);
    try_open("beneath up link", dir, "up", O_RDONLY, RESOLVE_BENEATH);
    try_open("beneath abs link nofollow path", dir, "abs", O_PATH | O_NOFOLLOW, RESOLVE_BENEATH);

    /* RESOLVE_IN_ROOT */
    try_open("in_root /d/f", dir, "/d/f", O_RDONLY, RESOLVE_IN_ROOT);
    try_open("in_root ../../d/f", dir, "../../d/f", O_RDONLY, RESOLVE_IN_ROOT);
    try_open("in_root rooted link", dir, "rooted", O_RDONLY, RESOLVE_IN_ROOT);
    try_open("in_root abs link", dir, "abs", O_RDONLY, RESOLVE_IN_ROOT);
    try_open("in_root /etc/passwd", dir, "/etc/passwd", O_RDONLY, RESOLVE_IN_ROOT);

    /* RESOLVE_NO_SYMLINKS */
    try_open("no_symlinks d/f", dir, "d/f", O_RDONLY, RESOLVE_NO_SYMLINKS);
    try_open("no_symlinks rel", dir, "rel", O_RDONLY, RESOLVE_NO_SYMLINKS);
    try_open("no_symlinks rel O_PATH|O_NOFOLLOW", dir, "rel", O_PATH | O_NOFOLLOW,
             RESOLVE_NO_SYMLINKS);
    try_open("no_symlinks rel O_NOFOLLOW", dir, "rel", O_RDONLY | O_NOFOLLOW,
             RESOLVE_NO_SYMLINKS);

    /* RESOLVE_NO_MAGICLINKS */
    char fdpath[64];
    int keep = open(DIR_ "/d/f", O_RDONLY);
    snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", keep);
    try_open("plain fd link", AT_FDCWD, fdpath, O_RDONLY, 0);
    try_open("no_magiclinks fd link", AT_FDCWD, fdpath, O_RDONLY, RESOLVE_NO_MAGICLINKS);
    try_open("no_magiclinks /proc/self/status", AT_FDCWD, "/proc/self/status", O_RDONLY,
             RESOLVE_NO_MAGICLINKS);
    try_open("no_magiclinks /proc/self/cwd", AT_FDCWD, "/proc/self/cwd", O_RDONLY | O_DIRECTORY,
             RESOLVE_NO_MAGICLINKS);
    try_open("no_magiclinks fd link O_PATH|O_NOFOLLOW", AT_FDCWD, fdpath, O_PATH | O_NOFOLLOW,
             RESOLVE_NO_MAGICLINKS);
    close(keep);

    /* RESOLVE_NO_XDEV */
    int root = open("/", O_PATH | O_DIRECTORY);
    try_open("no_xdev proc/self/status from /", root, "proc/self/status", O_RDONLY,
             RESOLVE_NO_XDEV);
    try_open("no_xdev d/f", dir, "d/f", O_RDONLY, RESOLVE_NO_XDEV);
    int proc = open("/proc", O_PATH | O_DIRECTORY);
    try_open("no_xdev .. out of /proc", proc, "..", O_PATH, RESOLVE_NO_XDEV);
    try_open("no_xdev absolute from /proc", proc, "/proc/self/status", O_RDONLY,
             RESOLVE_NO_XDEV);
    /* A magic link from /proc to a file on another mount. */
    int target = open(DIR_ "/d/f", O_RDONLY);
    char link[64];
    snprintf(link, sizeof link, "self/fd/%d", target);
    try_open("no_xdev magic link jump out of /proc", proc, link, O_RDONLY, RESOLVE_NO_XDEV);
    try_open("magic link jump out of /proc", proc, link, O_RDONLY, 0);
    close(target);
    close(proc);
    close(root);

    /* creating through openat2, and through a dangling symlink */
    long fd = oa2(dir, "created", O_CREAT | O_EXCL | O_WRONLY, 0600, RESOLVE_BENEATH);
    show_ok("create beneath", fd);
    if (fd >= 0) {
        struct stat st;
        fstat(fd, &st);
        printf("created mode %o\n", st.st_mode & 07777);
        close(fd);
    }
    symlink("target-made-through-link", DIR_ "/dangling");
    fd = open(DIR_ "/dangling", O_CREAT | O_WRONLY, 0644);
    show_ok("open O_CREAT via dangling link", fd);
    if (fd >= 0)
        close(fd);
    struct stat st;
    show("target exists", stat(DIR_ "/target-made-through-link", &st));
    expect_err("O_EXCL via dangling link", open(DIR_ "/dangling", O_CREAT | O_EXCL | O_WRONLY, 0644));

    /* A dangling link whose target climbs through a directory link: the
     * create must stay under BENEATH's floor and IN_ROOT's root. */
    mkdir(DIR_ "/d/sub", 0755);
    symlink("..", DIR_ "/d/up");
    symlink("up/escaped", DIR_ "/d/climb");
    symlink("sub/inside", DIR_ "/d/down");
    int dird = open(DIR_ "/d", O_PATH | O_DIRECTORY);
    try_open("beneath O_CREAT via link climbing out", dird, "climb", O_CREAT | O_WRONLY,
             RESOLVE_BENEATH);
    show("escaped file exists", stat(DIR_ "/escaped", &st));
    try_open("beneath O_CREAT via link staying in", dird, "down", O_CREAT | O_WRONLY,
             RESOLVE_BENEATH);
    show("inside file exists", stat(DIR_ "/d/sub/inside", &st));
    try_open("in_root O_CREAT via link climbing out", dird, "climb", O_CREAT | O_WRONLY,
             RESOLVE_IN_ROOT);
    show("clamped file exists", stat(DIR_ "/d/escaped", &st));
    show("escaped file exists", stat(DIR_ "/escaped", &st));
    close(dird);

    close(dir);
    system("rm -rf " DIR_);
    printf("end\n");
    return 0;
}
