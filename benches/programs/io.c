/* File-system costs on a directory the harness provides (a host directory
 * natively, a writable bind mount of one in a container):
 *
 *     io DIR MIB TAR...
 *
 * creates 10,000 files and times getdents over them and a stat of each,
 * writes MIB MiB sequentially (1 MiB writes; then fsync, timed apart;
 * best of two) and reads them back (best of three), and times TAR (a
 * command line, run with DIR/untar as its cwd). Prints
 * "name<TAB>nanoseconds" per line: per operation for the small ones, the
 * whole run for the large ones. Best of several rounds where a round is
 * cheap. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FILES 10000

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void report(const char *name, double ns) {
    printf("%s\t%.0f\n", name, ns);
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: io DIR MIB TAR...\n");
        return 2;
    }
    const char *dir = argv[1];
    long mib = atol(argv[2]);
    char path[4096];

    snprintf(path, sizeof path, "%s/many", dir);
    if (mkdir(path, 0755) != 0) die("mkdir many");
    double t0 = now_ns();
    for (int i = 0; i < FILES; i++) {
        snprintf(path, sizeof path, "%s/many/file-%05d", dir, i);
        int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);
        if (fd < 0) die("create");
        close(fd);
    }
    report("create 10,000 files (per file)", (now_ns() - t0) / FILES);

    double best = 1e30;
    for (int round = 0; round < 5; round++) {
        snprintf(path, sizeof path, "%s/many", dir);
        t0 = now_ns();
        DIR *d = opendir(path);
        if (!d) die("opendir");
        int n = 0;
        while (readdir(d)) n++;
        closedir(d);
        double t = now_ns() - t0;
        if (n != FILES + 2) {
            fprintf(stderr, "readdir saw %d entries\n", n);
            return 1;
        }
        if (t < best) best = t;
    }
    report("getdents of 10,000 entries (whole dir)", best);

    best = 1e30;
    for (int round = 0; round < 3; round++) {
        struct stat st;
        t0 = now_ns();
        for (int i = 0; i < FILES; i++) {
            snprintf(path, sizeof path, "%s/many/file-%05d", dir, i);
            if (stat(path, &st) != 0) die("stat");
        }
        double t = (now_ns() - t0) / FILES;
        if (t < best) best = t;
    }
    report("stat of one of 10,000 files", best);

    static char buf[1 << 20];
    memset(buf, 0x5a, sizeof buf);
    snprintf(path, sizeof path, "%s/big", dir);
    /* Best of three rounds: on a VM the same write takes from 0.16 to
     * 0.7 s by what the host's disk is doing (the writeback of the
     * runtime before, dirty-page throttling), and the fsync, timed apart,
     * from 0.4 to 3.3 s. */
    double best_write = 1e30, best_fsync = 1e30;
    for (int round = 0; round < 3; round++) {
        int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
        if (fd < 0) die("open big");
        t0 = now_ns();
        for (long i = 0; i < mib; i++)
            if (write(fd, buf, sizeof buf) != sizeof buf) die("write");
        double t = now_ns() - t0;
        if (t < best_write) best_write = t;
        t0 = now_ns();
        if (fsync(fd) != 0) die("fsync");
        t = now_ns() - t0;
        if (t < best_fsync) best_fsync = t;
        close(fd);
    }
    report("sequential write (whole file)", best_write);
    report("fsync of it", best_fsync);

    best = 1e30;
    for (int round = 0; round < 3; round++) {
        int fd = open(path, O_RDONLY);
        if (fd < 0) die("open big");
        t0 = now_ns();
        long total = 0;
        for (;;) {
            ssize_t n = read(fd, buf, sizeof buf);
            if (n < 0) die("read");
            if (n == 0) break;
            total += n;
        }
        double t = now_ns() - t0;
        if (t < best) best = t;
        close(fd);
        if (total != mib << 20) {
            fprintf(stderr, "read %ld bytes\n", total);
            return 1;
        }
    }
    report("sequential read (whole file)", best);

    snprintf(path, sizeof path, "%s/untar", dir);
    if (mkdir(path, 0755) != 0) die("mkdir untar");
    t0 = now_ns();
    pid_t pid = fork();
    if (pid == 0) {
        if (chdir(path) != 0) die("chdir untar");
        execv(argv[3], argv + 3);
        die("exec tar");
    }
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "tar failed (status %d)\n", status);
        return 1;
    }
    report("untar (whole tree)", now_ns() - t0);
    return 0;
}
