/*
 * Advisory locks: fcntl POSIX record locks between processes (F_SETLK
 * conflicts, F_GETLK reports the holder, F_SETLKW waits for the unlock,
 * ranges split and merge, locks go on close and on exit), OFD locks
 * between two descriptions of one process, flock(2), and the errors.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *en(int r) {
    if (r == 0) return "ok";
    switch (errno) {
    case EAGAIN: return "EAGAIN";
    case EACCES: return "EACCES";
    case EBADF: return "EBADF";
    case EINVAL: return "EINVAL";
    default: return "other";
    }
}

static int setlk(int fd, int cmd, short type, off_t start, off_t len) {
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    return fcntl(fd, cmd, &fl);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *path = "/tmp/rvisor-difftest-locks";
    unlink(path);
    int fd = open(path, O_RDWR | O_CREAT, 0644);
    write(fd, "0123456789", 10);
    printf("parent write-locks 0..5: %s\n", en(setlk(fd, F_SETLK, F_WRLCK, 0, 5)));
    pid_t parent = getpid();
    int go[2], done[2];
    pipe(go);
    pipe(done);
    pid_t pid = fork();
    if (pid == 0) {
        int cfd = open(path, O_RDWR);
        printf("child F_SETLK on 2..3: %s\n", en(setlk(cfd, F_SETLK, F_WRLCK, 2, 1)));
        printf("child F_SETLK on 5..9: %s\n", en(setlk(cfd, F_SETLK, F_WRLCK, 5, 4)));
        struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
        fcntl(cfd, F_GETLK, &q);
        printf("child F_GETLK: type=%s start=%ld len=%ld holder is parent=%d\n",
               q.l_type == F_WRLCK ? "WR" : q.l_type == F_UNLCK ? "UN" : "RD", (long)q.l_start, (long)q.l_len,
               q.l_pid == parent);
        write(go[1], "g", 1);
        printf("child F_SETLKW waits: %s\n", en(setlk(cfd, F_SETLKW, F_WRLCK, 0, 5)));
        write(done[1], "d", 1);
        _exit(0);
    }
    char c;
    read(go[0], &c, 1);
    usleep(50 * 1000);
    printf("parent unlocks\n");
    if (setlk(fd, F_SETLK, F_UNLCK, 0, 5))
        printf("unlock failed\n");
    read(done[0], &c, 1);
    int st;
    waitpid(pid, &st, 0);
    printf("after the child exited, parent locks all: %s\n", en(setlk(fd, F_SETLK, F_WRLCK, 0, 0)));

    /* same process: POSIX locks never conflict with themselves */
    int fd2 = open(path, O_RDWR);
    printf("same process, second fd: %s\n", en(setlk(fd2, F_SETLK, F_WRLCK, 0, 10)));
    close(fd2); /* drops this process's POSIX locks on the file */
    pid = fork();
    if (pid == 0) {
        int cfd = open(path, O_RDWR);
        printf("after close, child locks: %s\n", en(setlk(cfd, F_SETLK, F_WRLCK, 0, 10)));
        _exit(0);
    }
    waitpid(pid, &st, 0);

    /* OFD locks conflict between descriptions */
    int a = open(path, O_RDWR), b = open(path, O_RDWR);
    printf("ofd lock a: %s\n", en(setlk(a, F_OFD_SETLK, F_WRLCK, 0, 4)));
    printf("ofd lock b conflicts: %s\n", en(setlk(b, F_OFD_SETLK, F_WRLCK, 2, 4)));
    printf("ofd lock b elsewhere: %s\n", en(setlk(b, F_OFD_SETLK, F_RDLCK, 4, 4)));
    close(a);
    printf("ofd lock b after a closed: %s\n", en(setlk(b, F_OFD_SETLK, F_WRLCK, 0, 4)));
    close(b);

    /* flock */
    a = open(path, O_RDONLY);
    b = open(path, O_RDONLY);
    printf("flock a EX: %s\n", en(flock(a, LOCK_EX | LOCK_NB)));
    int r = flock(b, LOCK_SH | LOCK_NB);
    printf("flock b SH: %s\n", r == 0 ? "ok" : errno == EWOULDBLOCK ? "EWOULDBLOCK" : "other");
    printf("flock a UN: %s\n", en(flock(a, LOCK_UN)));
    printf("flock b SH again: %s\n", en(flock(b, LOCK_SH | LOCK_NB)));
    printf("flock bad op: %s\n", en(flock(b, 99)));

    /* errors */
    int ro = open(path, O_RDONLY);
    printf("write lock on read-only fd: %s\n", en(setlk(ro, F_SETLK, F_WRLCK, 0, 1)));
    printf("bad type: %s\n", en(setlk(ro, F_SETLK, 99, 0, 1)));
    printf("negative start: %s\n", en(setlk(fd, F_SETLK, F_RDLCK, -5, 1)));
    unlink(path);
    return 0;
}
