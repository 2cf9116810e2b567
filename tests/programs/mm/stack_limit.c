/* The main thread's stack follows RLIMIT_STACK as set before execve:
 * a program re-executed with a 64 MiB limit recurses 32 MiB deep, and
 * one with a 1 MiB limit still starts and uses most of it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline)) static long depth(long n) {
    volatile char frame[4096];
    for (int i = 0; i < 4096; i += 256) frame[i] = (char)n;
    if (n == 0) return 0;
    long below = depth(n - 1);
    return below + 1 + (frame[256] & 0);
}

int main(int argc, char **argv) {
    if (argc > 1) {
        struct rlimit r;
        getrlimit(RLIMIT_STACK, &r);
        long kib = atol(argv[1]);
        /* Leave a quarter of the limit for the arguments and libc. */
        long frames = kib * 3 / 4 / 4;
        long v = depth(frames);
        printf("limit %ld KiB: recursed %ld frames of 4 KiB: %s\n", (long)(r.rlim_cur / 1024),
               frames, v == frames ? "ok" : "?");
        return 0;
    }
    const char *sizes[] = {"65536", "1024"};
    for (int i = 0; i < 2; i++) {
        fflush(stdout);
        pid_t p = fork();
        if (p == 0) {
            struct rlimit r = {atol(sizes[i]) * 1024, RLIM_INFINITY};
            if (setrlimit(RLIMIT_STACK, &r) != 0) {
                perror("setrlimit");
                _exit(1);
            }
            execl("/proc/self/exe", argv[0], sizes[i], (char *)NULL);
            perror("exec");
            _exit(1);
        }
        int status;
        waitpid(p, &status, 0);
        printf("child %d: exit %d\n", i, WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status));
    }
    return 0;
}
