/* file/io_rules: Linux's answers to I/O calls on files that cannot take
 * them: fsync/fdatasync on a pipe, socket or eventfd (EINVAL),
 * sync_file_range on a character device (ESPIPE), splice into an
 * O_APPEND file, from a pipe into itself or into an eventfd (EINVAL, not
 * a wait on the empty pipe), from a directory (EINVAL); reads of an
 * unconnected unix stream socket (EINVAL) and seqpacket one (ENOTCONN);
 * readlink of an empty path (ENOENT); msync over a hole (ENOMEM); mmap of
 * a closed fd (EBADF before anything else is checked), and of an unknown
 * flag with MAP_SHARED_VALIDATE (EOPNOTSUPP); SEEK_DATA/SEEK_HOLE; pipe
 * buffer sizes; ETXTBSY for writers of a running program's file. */
#include "../common.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <sys/mman.h>
#include <sys/socket.h>

#define FILE_PATH "/tmp/rvisor-difftest-io-rules"

#define TEXT_COPY "/tmp/rvisor-difftest-io-rules-text"

/* A running program's file: ETXTBSY to writers until the program ends. */
static void text_busy(void)
{
    char buf[65536];
    int in = open("/proc/self/exe", O_RDONLY), out;
    MUST(in);
    unlink(TEXT_COPY);
    MUST(out = open(TEXT_COPY, O_CREAT | O_WRONLY, 0755));
    long n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        MUST(write(out, buf, n));
    close(in);
    close(out);
    /* Open for writing (even by this process alone): not runnable. */
    int w = open(TEXT_COPY, O_WRONLY);
    MUST(w);
    fflush(stdout);
    pid_t e = fork();
    if (e == 0) {
        execl(TEXT_COPY, TEXT_COPY, "wait", (char *)NULL);
        printf("exec a program open for writing: %s\n", errname(errno));
        fflush(stdout);
        _exit(0);
    }
    waitpid(e, NULL, 0);
    close(w);
    int ready[2], stop[2];
    /* close-on-exec: the program keeps only its fds 3 and 4 (dup2 clears
     * the flag on them), so it sees EOF on 4 once we close our end. */
    MUST(pipe2(ready, O_CLOEXEC));
    MUST(pipe2(stop, O_CLOEXEC));
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        dup2(ready[1], 3);
        dup2(stop[0], 4);
        execl(TEXT_COPY, TEXT_COPY, "wait", (char *)NULL);
        _exit(127);
    }
    close(ready[1]);
    close(stop[0]);
    char x;
    MUST(read(ready[0], &x, 1));
    expect_err("open a running program O_WRONLY", open(TEXT_COPY, O_WRONLY));
    expect_err("open it O_RDONLY|O_TRUNC", open(TEXT_COPY, O_RDONLY | O_TRUNC));
    expect_err("truncate it", truncate(TEXT_COPY, 0));
    int r = open(TEXT_COPY, O_RDONLY);
    show_ok("open it O_RDONLY", r);
    close(r);
    close(stop[1]);
    waitpid(c, NULL, 0);
    r = open(TEXT_COPY, O_WRONLY);
    show_ok("open it O_WRONLY once it ended", r);
    close(r);
    unlink(TEXT_COPY);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "wait") == 0) {
        /* The copy, run by text_busy: say it runs, wait to be told to end. */
        char x;
        if (write(3, "r", 1) != 1 || read(4, &x, 1) < 0)
            return 1;
        return 0;
    }
    test_init();
    text_busy();
    int p[2], q[2];
    MUST(pipe(p));
    MUST(pipe(q));
    int sv[2];
    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    int ev = eventfd(0, 0);
    MUST(ev);
    int null = open("/dev/null", O_RDWR);
    MUST(null);
    unlink(FILE_PATH);
    int f = open(FILE_PATH, O_RDWR | O_CREAT, 0644);
    MUST(f);
    MUST(write(f, "hello", 5));
    int app = open(FILE_PATH, O_WRONLY | O_APPEND);
    MUST(app);
    int dir = open("/tmp", O_RDONLY | O_DIRECTORY);
    MUST(dir);

    expect_err("fsync a pipe", fsync(p[1]));
    expect_err("fdatasync a socket", fdatasync(sv[0]));
    expect_err("fsync an eventfd", fsync(ev));
    show("fsync a file", fsync(f));
    show("fsync a directory", fsync(dir));
    expect_err("sync_file_range /dev/null", sync_file_range(null, 0, 1, SYNC_FILE_RANGE_WRITE));
    expect_err("sync_file_range a pipe", sync_file_range(p[0], 0, 1, SYNC_FILE_RANGE_WRITE));
    expect_err("sync_file_range bad flags", sync_file_range(f, 0, 1, 8));
    show("sync_file_range a file", sync_file_range(f, 0, 1, SYNC_FILE_RANGE_WRITE));

    MUST(write(p[1], "abc", 3));
    expect_err("splice pipe -> O_APPEND file", splice(p[0], NULL, app, NULL, 3, 0));
    expect_err("splice pipe -> same pipe", splice(p[0], NULL, p[1], NULL, 1, 0));
    expect_err("splice empty pipe -> eventfd", splice(q[0], NULL, ev, NULL, 1, 0));
    expect_err("splice eventfd -> pipe", splice(ev, NULL, q[1], NULL, 1, 0));
    expect_err("splice directory -> pipe", splice(dir, NULL, q[1], NULL, 1, 0));
    expect_err("splice file -> file", splice(f, NULL, app, NULL, 1, 0));
    expect_err("tee pipe -> same pipe", tee(p[0], p[1], 1, 0));
    show("splice pipe -> pipe", splice(p[0], NULL, q[1], NULL, 3, 0));

    char b[4];
    int us = socket(AF_UNIX, SOCK_STREAM, 0);
    expect_err("read an unconnected unix stream socket", read(us, b, 1));
    expect_err("recv from it", recv(us, b, 1, MSG_DONTWAIT));
    int sp = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    expect_err("read an unconnected seqpacket socket", read(sp, b, 1));

    char link[64];
    expect_err("readlink(\"\")", readlink("", link, sizeof link));

    char *m = mmap(NULL, 3 * 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    MUST(m == MAP_FAILED ? -1 : 0);
    MUST(munmap(m + 4096, 4096));
    expect_err("msync over a hole", msync(m, 3 * 4096, MS_SYNC));
    show("msync of a mapped page", msync(m, 4096, MS_SYNC));
    expect_err("msync MS_SYNC|MS_ASYNC", msync(m, 4096, MS_SYNC | MS_ASYNC));
    int closed = dup(f);
    close(closed);
    expect_err("mmap a closed fd", (long)mmap(NULL, 4096, PROT_READ, MAP_SHARED, closed, 0) == -1 ? -1 : 0);
    expect_err("mmap a closed fd, length 0",
               (long)mmap(NULL, 0, PROT_READ, MAP_SHARED, closed, 0) == -1 ? -1 : 0);
    expect_err("mmap MAP_SHARED_VALIDATE with an unknown flag",
               (long)mmap(NULL, 4096, PROT_READ, MAP_SHARED_VALIDATE | (1 << 10), f, 0) == -1
                   ? -1 : 0);

    /* SEEK_DATA / SEEK_HOLE on a file without holes */
    show("SEEK_DATA from 0", lseek(f, 0, SEEK_DATA));
    show("SEEK_HOLE from 0", lseek(f, 0, SEEK_HOLE));
    show("SEEK_DATA from 3", lseek(f, 3, SEEK_DATA));
    expect_err("SEEK_DATA at the end", lseek(f, 5, SEEK_DATA));
    expect_err("SEEK_HOLE past the end", lseek(f, 9, SEEK_HOLE));
    expect_err("SEEK_DATA on a pipe", lseek(p[0], 0, SEEK_DATA));

    /* pipe sizes: rounded up to a power-of-two number of pages */
    show("F_SETPIPE_SZ 100000", fcntl(q[1], F_SETPIPE_SZ, 100000));
    show("F_GETPIPE_SZ", fcntl(q[0], F_GETPIPE_SZ));
    show("F_SETPIPE_SZ 1", fcntl(q[1], F_SETPIPE_SZ, 1));
    expect_err("F_SETPIPE_SZ past 2^31", fcntl(q[1], F_SETPIPE_SZ, (1u << 31) + 1));
    expect_err("F_SETPIPE_SZ on a file", fcntl(f, F_SETPIPE_SZ, 4096));
    unlink(FILE_PATH);
    return 0;
}
