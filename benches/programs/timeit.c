/* Runs commands and prints the median wall time of each, for the
 * application-level rows of benches/suite.rs (python3 startup, compiling
 * a small C program), measured inside the container so the container's
 * own start does not count:
 *
 *   timeit NAME RUNS CMD ARGS... [-- NAME RUNS CMD ARGS...]...
 *
 * prints "NAME\tmedian_ns" per command; a command that fails ends the
 * program with status 1. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int i = 1;
    while (i + 2 < argc) {
        const char *name = argv[i];
        int runs = atoi(argv[i + 1]);
        char **cmd = &argv[i + 2];
        int end = i + 2;
        while (end < argc && strcmp(argv[end], "--") != 0)
            end++;
        argv[end < argc ? end : argc] = NULL;
        if (runs < 1 || runs > 1000)
            return 2;
        double t[1000];
        for (int r = 0; r < runs; r++) {
            double t0 = now_ns();
            pid_t pid = fork();
            if (pid == 0) {
                execv(cmd[0], cmd);
                _exit(127);
            }
            int status;
            if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
                WEXITSTATUS(status) != 0) {
                fprintf(stderr, "timeit: %s failed\n", cmd[0]);
                return 1;
            }
            t[r] = now_ns() - t0;
        }
        qsort(t, runs, sizeof t[0], cmp);
        printf("%s\t%.0f\n", name, t[runs / 2]);
        fflush(stdout);
        i = end + 1;
    }
    return 0;
}
