/* file/inotify: inotify events for changes made by the program itself —
 * create, open, modify, close, attrib, access, moves with a shared cookie,
 * delete and delete-self with IN_IGNORED, a directory watch naming its
 * children, IN_ONESHOT, IN_MASK_ADD/IN_MASK_CREATE, rm_watch, FIONREAD,
 * nonblocking reads and poll, and the errors. */
#include "../common.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#define DIR "/tmp/rvisor-difftest-inotify"

static const char *names(uint32_t m)
{
    static char b[256];
    b[0] = 0;
    static const struct { uint32_t bit; const char *n; } t[] = {
        {IN_ACCESS, "ACCESS"}, {IN_MODIFY, "MODIFY"}, {IN_ATTRIB, "ATTRIB"},
        {IN_CLOSE_WRITE, "CLOSE_WRITE"}, {IN_CLOSE_NOWRITE, "CLOSE_NOWRITE"}, {IN_OPEN, "OPEN"},
        {IN_MOVED_FROM, "MOVED_FROM"}, {IN_MOVED_TO, "MOVED_TO"}, {IN_CREATE, "CREATE"},
        {IN_DELETE, "DELETE"}, {IN_DELETE_SELF, "DELETE_SELF"}, {IN_MOVE_SELF, "MOVE_SELF"},
        {IN_IGNORED, "IGNORED"}, {IN_ISDIR, "ISDIR"}, {IN_Q_OVERFLOW, "OVERFLOW"}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (m & t[i].bit) {
            strcat(b, b[0] ? "|" : "");
            strcat(b, t[i].n);
        }
    return b;
}

static int wd_dir, wd_file;

static void drain(int fd, const char *label)
{
    char buf[4096] __attribute__((aligned(8)));
    printf("-- %s\n", label);
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
        printf("   (%s)\n", errname(errno));
        return;
    }
    uint32_t first_cookie = 0;
    for (char *p = buf; p < buf + n;) {
        struct inotify_event *e = (struct inotify_event *)p;
        const char *who = e->wd == wd_dir ? "dir" : e->wd == wd_file ? "file" : "other";
        if (e->cookie && !first_cookie)
            first_cookie = e->cookie;
        printf("   %s %s %s%s\n", who, names(e->mask), e->len ? e->name : "",
               e->cookie ? (e->cookie == first_cookie ? " (cookie A)" : " (cookie B)") : "");
        p += sizeof *e + e->len;
    }
}

int main(void)
{
    test_init();
    system("rm -rf " DIR);
    MUST(mkdir(DIR, 0755));
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    show_ok("inotify_init1", fd);
    wd_dir = inotify_add_watch(fd, DIR, IN_ALL_EVENTS);
    show_ok("watch dir", wd_dir);
    char b[16];
    expect_err("read with nothing queued", read(fd, b, sizeof b));

    int f = open(DIR "/a", O_CREAT | O_WRONLY, 0644);
    write(f, "hello", 5);
    close(f);
    drain(fd, "create, write, close");

    wd_file = inotify_add_watch(fd, DIR "/a", IN_ALL_EVENTS);
    f = open(DIR "/a", O_RDONLY);
    read(f, b, sizeof b);
    close(f);
    chmod(DIR "/a", 0600);
    int n = -1;
    ioctl(fd, FIONREAD, &n);
    printf("FIONREAD > 0: %d\n", n > 0);
    drain(fd, "open, read, close, chmod (file and dir watches)");

    rename(DIR "/a", DIR "/b");
    mkdir(DIR "/sub", 0755);
    truncate(DIR "/b", 2);
    drain(fd, "rename, mkdir, truncate");

    unlink(DIR "/b");
    rmdir(DIR "/sub");
    drain(fd, "unlink, rmdir");

    /* oneshot: one event, then the watch is gone */
    close(open(DIR "/c", O_CREAT | O_WRONLY, 0644));
    drain(fd, "create c");
    int wd_c = inotify_add_watch(fd, DIR "/c", IN_ATTRIB | IN_ONESHOT);
    chmod(DIR "/c", 0600);
    chmod(DIR "/c", 0644);
    inotify_rm_watch(fd, wd_dir);
    drain(fd, "oneshot attrib twice, then rm_watch on the dir");
    expect_err("rm_watch of the spent oneshot", inotify_rm_watch(fd, wd_c));
    int w2 = inotify_add_watch(fd, DIR "/c", IN_MODIFY);
    expect_err("IN_MASK_CREATE on a watched file", inotify_add_watch(fd, DIR "/c", IN_MODIFY | IN_MASK_CREATE));
    int w3 = inotify_add_watch(fd, DIR "/c", IN_ATTRIB | IN_MASK_ADD);
    printf("same watch updated: %d\n", w2 == w3);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    show("poll idle", poll(&p, 1, 0));
    chmod(DIR "/c", 0600);
    show("poll after chmod", poll(&p, 1, 0));

    expect_err("add_watch with no events", inotify_add_watch(fd, DIR "/c", 0));
    expect_err("add_watch missing path", inotify_add_watch(fd, DIR "/missing", IN_MODIFY));
    expect_err("IN_ONLYDIR on a file", inotify_add_watch(fd, DIR "/c", IN_MODIFY | IN_ONLYDIR));
    expect_err("add_watch on a non-inotify fd", inotify_add_watch(0, DIR, IN_MODIFY));
    expect_err("rm_watch unknown", inotify_rm_watch(fd, 999));
    expect_err("inotify_init1 bad flags", inotify_init1(0x10));
    system("rm -rf " DIR);
    return 0;
}
