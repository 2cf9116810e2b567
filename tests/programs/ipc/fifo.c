/* ipc/fifo: named pipes and mknod — mkfifo, the open rendezvous (a blocking
 * reader waits for a writer; O_NONBLOCK readers don't, O_NONBLOCK writers
 * without a reader get ENXIO), data through the FIFO between processes,
 * EOF when the writer closes, EPIPE and SIGPIPE without readers, O_RDWR,
 * fstat of both ends; mknod of a device node that reaches the sandbox's
 * own /dev/null; mknod errors; set-group-ID directory inheritance; chown
 * clearing set-user-ID. */
#include "../common.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

#define DIR "/tmp/rvisor-difftest-fifo"

static volatile sig_atomic_t got_pipe;
static void on_pipe(int s) { (void)s; got_pipe = 1; }

int main(void)
{
    test_init();
    umask(022);
    system("rm -rf " DIR);
    MUST(mkdir(DIR, 0755));
    show("mkfifo", mkfifo(DIR "/f", 0644));
    expect_err("mkfifo again", mkfifo(DIR "/f", 0644));
    struct stat st;
    MUST(stat(DIR "/f", &st));
    printf("is fifo %d mode %o\n", S_ISFIFO(st.st_mode), st.st_mode & 0777);

    expect_err("open write nonblock, no reader", open(DIR "/f", O_WRONLY | O_NONBLOCK));
    int r = open(DIR "/f", O_RDONLY | O_NONBLOCK);
    show_ok("open read nonblock", r);
    char buf[64];
    show("read with no writer (EOF)", read(r, buf, sizeof buf));
    int w = open(DIR "/f", O_WRONLY | O_NONBLOCK);
    show_ok("open write nonblock with a reader", w);
    expect_err("read empty with a writer", read(r, buf, sizeof buf));
    MUST(write(w, "abc", 3));
    show("read", read(r, buf, sizeof buf));
    close(w);
    show("read after writer closed (EOF)", read(r, buf, sizeof buf));
    close(r);

    /* blocking rendezvous with a child */
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        usleep(100000);
        int cw = open(DIR "/f", O_WRONLY);
        write(cw, "from child", 10);
        close(cw);
        _exit(0);
    }
    r = open(DIR "/f", O_RDONLY);
    show_ok("blocking open for reading returned", r);
    ssize_t n, total = 0;
    while ((n = read(r, buf + total, sizeof buf - total)) > 0)
        total += n;
    printf("read %zd: %.*s\n", total, (int)total, buf);
    waitpid(c, NULL, 0);
    close(r);

    /* EPIPE and SIGPIPE */
    signal(SIGPIPE, on_pipe);
    int rw = open(DIR "/f", O_RDWR);
    show_ok("open O_RDWR", rw);
    r = open(DIR "/f", O_RDONLY | O_NONBLOCK);
    w = open(DIR "/f", O_WRONLY | O_NONBLOCK);
    close(rw);
    close(r);
    expect_err("write without readers", write(w, "x", 1));
    printf("SIGPIPE %d\n", (int)got_pipe);
    struct stat fs;
    MUST(fstat(w, &fs));
    printf("fstat write end is fifo %d\n", S_ISFIFO(fs.st_mode));
    close(w);

    /* device node: reaches the sandbox's /dev/null */
    show("mknod c 1 3", mknod(DIR "/null", S_IFCHR | 0666, makedev(1, 3)));
    MUST(stat(DIR "/null", &st));
    printf("chr %d major %u minor %u\n", S_ISCHR(st.st_mode), major(st.st_rdev), minor(st.st_rdev));
    int nfd = open(DIR "/null", O_RDWR);
    show("write to it", write(nfd, "gone", 4));
    show("read from it", read(nfd, buf, sizeof buf));
    close(nfd);
    expect_err("mknod directory", mknod(DIR "/d", S_IFDIR | 0755, 0));
    expect_err("mknod bad type", mknod(DIR "/x", 0170000 | 0644, 0));
    show("mknod regular", mknod(DIR "/reg", S_IFREG | 0600, 0));
    show("mknod socket", mknod(DIR "/sock", S_IFSOCK | 0600, 0));
    expect_err("open socket node", open(DIR "/sock", O_RDONLY));

    /* set-group-ID directories */
    MUST(mkdir(DIR "/sgid", 0755));
    MUST(chown(DIR "/sgid", 0, 1234));
    MUST(chmod(DIR "/sgid", 02775));
    MUST(mkdir(DIR "/sgid/sub", 0755));
    MUST(stat(DIR "/sgid/sub", &st));
    printf("subdir gid %u sgid %d\n", st.st_gid, !!(st.st_mode & S_ISGID));
    int fd = open(DIR "/sgid/file", O_CREAT | O_WRONLY, 0644);
    MUST(fstat(fd, &st));
    printf("file gid %u sgid %d\n", st.st_gid, !!(st.st_mode & S_ISGID));
    close(fd);

    /* chown clears set-user-ID (and set-group-ID with group execute) */
    MUST(chmod(DIR "/reg", 06770));
    MUST(chown(DIR "/reg", 0, 0));
    MUST(stat(DIR "/reg", &st));
    printf("after chown mode %o\n", st.st_mode & 07777);
    MUST(chmod(DIR "/reg", 06760));
    MUST(chown(DIR "/reg", -1, -1));
    MUST(stat(DIR "/reg", &st));
    printf("after chown -1 -1 mode %o\n", st.st_mode & 07777);

    system("rm -rf " DIR);
    return 0;
}
