/*
 * Hammers the sentry with random syscall numbers and hostile arguments.
 * Run it ONLY inside rvisor: natively it would act on the host.
 *
 * The parent (the container's init) forks children one after another; each
 * child makes random calls until it dies or finishes. A child that blocks
 * is killed after a deadline. Whatever the children do to themselves, the
 * sentry must answer every call and keep running: the parent prints
 * "fuzz done" at the end.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t rng;
static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static char buf[65536] __attribute__((aligned(4096)));

static long arg(void) {
    switch (next() % 12) {
    case 0: return 0;
    case 1: return -1;
    case 2: return 1 + (long)(next() % 64);
    case 3: return 4096;
    case 4: return (long)(next() % 65536);
    case 5: return (long)buf;
    case 6: return (long)buf + (long)(next() % sizeof(buf));
    case 7: return (long)(next() | 1) << 62;
    case 8: return 0x7e0000000000L + (long)(next() % 0x1000000) * 0x10000; /* where the stub may be */
    case 9: return (long)"/tmp/fuzz";
    case 10: return (long)next();
    default: return -(long)(next() % 4096);
    }
}

static int excluded(long nr) {
    switch (nr) {
    case SYS_exit: case SYS_exit_group:           /* ends the child early */
    case SYS_fork: case SYS_vfork: case SYS_clone: case SYS_clone3:
    case SYS_execve: case SYS_execveat:           /* would leave the fuzzer */
    case SYS_rt_sigreturn:
        return 1;
    }
    return 0;
}

static void child(int calls) {
    /* Keep the garbage the child writes off the test's output. */
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    for (int i = 0; i < calls; i++) {
        long nr = (long)(next() % 480);
        if (excluded(nr))
            continue;
        /* Refill the buffer with something path- and struct-like now and then. */
        if (next() % 16 == 0) {
            for (size_t j = 0; j < sizeof(buf); j += 8)
                memcpy(buf + j, (char[]){'/', 't', 'm', 'p', '/', 'a', 0, (char)next()}, 8);
        }
        syscall(nr, arg(), arg(), arg(), arg(), arg(), arg());
    }
    _exit(0);
}

int main(int argc, char **argv) {
    rng = argc > 1 ? strtoull(argv[1], NULL, 0) : 42;
    if (rng == 0)
        rng = 42;
    int children = argc > 2 ? atoi(argv[2]) : 40;
    int calls = argc > 3 ? atoi(argv[3]) : 1500;
    int died = 0, killed = 0;
    for (int c = 0; c < children; c++) {
        /* splitmix64, so every child gets an unrelated sequence */
        uint64_t seed = next() + 0x9e3779b97f4a7c15ULL * (uint64_t)(c + 1);
        seed = (seed ^ (seed >> 30)) * 0xbf58476d1ce4e5b9ULL;
        seed = (seed ^ (seed >> 27)) * 0x94d049bb133111ebULL;
        seed ^= seed >> 31;
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            rng = seed ? seed : 1;
            child(calls);
        }
        struct timespec start, now;
        clock_gettime(CLOCK_MONOTONIC, &start);
        int status;
        for (;;) {
            pid_t r = waitpid(pid, &status, WNOHANG);
            if (r == pid)
                break;
            clock_gettime(CLOCK_MONOTONIC, &now);
            long ms_waited = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
            if (ms_waited >= 300) {
                kill(pid, SIGKILL);
                waitpid(pid, &status, 0);
                killed++;
                break;
            }
            struct timespec ms = {0, 5 * 1000 * 1000};
            nanosleep(&ms, NULL);
        }
        if (WIFSIGNALED(status))
            died++;
    }
    printf("fuzz done: %d children, %d died by a signal, %d killed after blocking\n", children, died, killed);
    return 0;
}
