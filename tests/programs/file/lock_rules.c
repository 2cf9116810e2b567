/* file/lock_rules: what F_GETLK reports when another process holds
 * several locks (the one that starts first, as Linux keeps an owner's
 * locks in order), that adjacent locks of one type merge into one, and
 * F_SETLKW's deadlock detection (EDEADLK instead of two processes waiting
 * for each other forever). */
#include "../common.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#define PATH "/tmp/rvisor-difftest-lock-rules"

static int setlk(int fd, int cmd, short type, off_t start, off_t len)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    return fcntl(fd, cmd, &fl);
}

static void getlk(int fd, const char *label, short type, off_t start, off_t len, pid_t holder)
{
    struct flock q = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
    if (fcntl(fd, F_GETLK, &q) < 0) {
        printf("%s: -1 %s\n", label, errname(errno));
        return;
    }
    printf("%s: %s start=%ld len=%ld holder=%s\n", label,
           q.l_type == F_WRLCK ? "WR" : q.l_type == F_RDLCK ? "RD" : "UN", (long)q.l_start,
           (long)q.l_len, q.l_type == F_UNLCK ? "-" : q.l_pid == holder ? "parent" : "other");
}

int main(void)
{
    test_init();
    unlink(PATH);
    int fd = open(PATH, O_RDWR | O_CREAT, 0644);
    MUST(fd);
    MUST(write(fd, "0123456789abcdefghij", 20));
    pid_t parent = getpid();
    show("write-lock 10..15", setlk(fd, F_SETLK, F_WRLCK, 10, 5));
    show("read-lock 1..6", setlk(fd, F_SETLK, F_RDLCK, 1, 5));
    show("read-lock 6..8 (adjacent)", setlk(fd, F_SETLK, F_RDLCK, 6, 2));
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        int cfd = open(PATH, O_RDWR);
        getlk(cfd, "whole file", F_WRLCK, 0, 0, parent);
        getlk(cfd, "from 8", F_WRLCK, 8, 0, parent);
        getlk(cfd, "from 15", F_WRLCK, 15, 0, parent);
        getlk(cfd, "read over the read locks", F_RDLCK, 0, 9, parent);
        _exit(0);
    }
    waitpid(c, NULL, 0);
    show("unlock all", setlk(fd, F_SETLK, F_UNLCK, 0, 0));

    /* Deadlock: the parent holds 0..1 and waits for 1..2, which the child
     * holds; the child then asks for 0..1. */
    int go[2], held[2];
    MUST(pipe(go));
    MUST(pipe(held));
    show("parent locks 0..1", setlk(fd, F_SETLK, F_WRLCK, 0, 1));
    fflush(stdout);
    c = fork();
    if (c == 0) {
        int cfd = open(PATH, O_RDWR);
        char x;
        show("child locks 1..2", setlk(cfd, F_SETLK, F_WRLCK, 1, 1));
        MUST(write(held[1], "h", 1));
        MUST(read(go[0], &x, 1));
        /* By now the parent waits for 1..2 (give it time to block). */
        usleep(200 * 1000);
        int r = setlk(cfd, F_SETLKW, F_WRLCK, 0, 1);
        if (r < 0)
            printf("child waits for 0..1: %s\n", errname(errno));
        else
            printf("child waits for 0..1: got it\n");
        fflush(stdout);
        _exit(0);
    }
    char x;
    MUST(read(held[0], &x, 1));
    MUST(write(go[1], "g", 1));
    alarm(10);
    int r = setlk(fd, F_SETLKW, F_WRLCK, 1, 1);
    printf("parent waits for 1..2: %s\n", r < 0 ? errname(errno) : "got it");
    waitpid(c, NULL, 0);
    unlink(PATH);
    return 0;
}
