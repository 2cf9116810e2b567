/* Micro-benchmarks of system-call paths, run natively and inside each
 * runtime by benches/syscalls.rs. Prints "name ns_per_op" per line: the
 * best of 5 rounds (least disturbed by the machine's other work). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

typedef void (*op_fn)(long n);

/* Through libc's wrapper, as programs call it (`mov $SYS_getppid, %eax;
 * syscall`, a site systrap patches once it is hot); syscall(2)'s generic
 * wrapper takes the number in a register and is never patched. */
static void op_getppid(long n) {
    for (long i = 0; i < n; i++)
        getppid();
}

static void op_stat(long n) {
    struct stat st;
    for (long i = 0; i < n; i++)
        stat("/bin/sh", &st);
}

static void op_open_read_close(long n) {
    char buf[64];
    for (long i = 0; i < n; i++) {
        int fd = open("/etc/passwd", O_RDONLY);
        if (fd >= 0) {
            if (read(fd, buf, sizeof buf) < 0) abort();
            close(fd);
        }
    }
}

/* n = number of 64 KiB chunks through a pipe to a child. */
static void op_pipe_64k(long n) {
    int p[2];
    if (pipe(p)) abort();
    static char buf[65536];
    pid_t c = fork();
    if (c == 0) {
        close(p[1]);
        while (read(p[0], buf, sizeof buf) > 0) {
        }
        _exit(0);
    }
    close(p[0]);
    for (long i = 0; i < n; i++) {
        size_t off = 0;
        while (off < sizeof buf) {
            ssize_t w = write(p[1], buf + off, sizeof buf - off);
            if (w <= 0) abort();
            off += w;
        }
    }
    close(p[1]);
    waitpid(c, NULL, 0);
}

static void op_fork_exec_wait(long n) {
    for (long i = 0; i < n; i++) {
        pid_t c = fork();
        if (c == 0) {
            execl("/bin/true", "true", (char *)NULL);
            _exit(127);
        }
        waitpid(c, NULL, 0);
    }
}

static void op_mmap_touch_munmap(long n) {
    for (long i = 0; i < n; i++) {
        size_t len = 16 * 4096;
        char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) abort();
        for (size_t off = 0; off < len; off += 4096)
            p[off] = 1;
        munmap(p, len);
    }
}

static void *thread_nop(void *a) { return a; }

static void op_thread_create_join(long n) {
    for (long i = 0; i < n; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, thread_nop, NULL)) abort();
        pthread_join(t, NULL);
    }
}

static volatile uint32_t ping_word;
static long ping_rounds;

static void *ponger(void *a) {
    for (long i = 0; i < ping_rounds; i++) {
        while (__atomic_load_n(&ping_word, __ATOMIC_ACQUIRE) != 1)
            syscall(SYS_futex, &ping_word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
        __atomic_store_n(&ping_word, 0, __ATOMIC_RELEASE);
        syscall(SYS_futex, &ping_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    }
    return a;
}

/* One op = one round trip between two threads over a futex. */
static void op_futex_pingpong(long n) {
    pthread_t t;
    ping_word = 0;
    ping_rounds = n;
    if (pthread_create(&t, NULL, ponger, NULL)) abort();
    for (long i = 0; i < n; i++) {
        __atomic_store_n(&ping_word, 1, __ATOMIC_RELEASE);
        syscall(SYS_futex, &ping_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
        while (__atomic_load_n(&ping_word, __ATOMIC_ACQUIRE) != 0)
            syscall(SYS_futex, &ping_word, FUTEX_WAIT_PRIVATE, 1, NULL, NULL, 0);
    }
    pthread_join(t, NULL);
}

struct op {
    const char *name;
    op_fn fn;
    long n;
};

int main(int argc, char **argv) {
    double scale = argc > 1 ? atof(argv[1]) : 1.0;
    struct op ops[] = {
        {"getppid", op_getppid, 20000},
        {"stat", op_stat, 5000},
        {"open+read+close", op_open_read_close, 3000},
        {"pipe 64KiB", op_pipe_64k, 500},
        {"fork+exec+wait", op_fork_exec_wait, 30},
        {"mmap+touch 16 pages+munmap", op_mmap_touch_munmap, 1000},
        {"thread create+join", op_thread_create_join, 200},
        {"futex ping-pong", op_futex_pingpong, 2000},
    };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        long n = (long)(ops[i].n * scale);
        if (n < 1) n = 1;
        double best = 1e30;
        for (int round = 0; round < 5; round++) {
            double t0 = now_ns();
            ops[i].fn(n);
            double per = (now_ns() - t0) / n;
            if (per < best) best = per;
        }
        printf("%s\t%.0f\n", ops[i].name, best);
        fflush(stdout);
    }
    return 0;
}
