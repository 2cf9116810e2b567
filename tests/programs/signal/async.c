/*
 * Signals that arrive while the program is busy in its own code (no
 * syscall in flight): SIGCHLD from exiting children and SIGUSR1 from a
 * sibling, caught by handlers, must leave every register and the FP state
 * of the interrupted computation intact.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t chld, usr1;
static void on_chld(int s) {
    (void)s;
    chld++;
    /* clobber what we can: the handler's own FP and integer work */
    volatile double d = 1.0;
    for (int i = 0; i < 50; i++)
        d = d * 1.0001 + 0.5;
}
static void on_usr1(int s) {
    (void)s;
    usr1++;
}

static uint64_t crunch(uint64_t seed, int rounds) {
    uint64_t *buf = malloc(4096 * sizeof *buf);
    double acc = 0;
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < 4096; i++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            buf[i] = seed ^ (seed >> 29);
            acc += (double)(buf[i] & 0xffff) / 65536.0;
        }
        free(buf);
        buf = malloc((4096 + (r % 7)) * sizeof *buf);
    }
    free(buf);
    return seed ^ (uint64_t)acc;
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_chld;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGCHLD, &sa, NULL);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    pid_t parent = getpid();
    pid_t pinger = fork();
    if (pinger == 0) {
        for (int i = 0; i < 200; i++) {
            kill(parent, SIGUSR1);
            usleep(500);
        }
        _exit(0);
    }
    for (int i = 0; i < 40; i++) {
        if (fork() == 0)
            _exit(0);
    }
    uint64_t total = 0;
    for (int i = 0; i < 60; i++)
        total += crunch(i + 1, 20);
    while (wait(NULL) > 0)
        ;
    printf("checksum %llx\n", (unsigned long long)total);
    printf("handlers ran: sigchld=%s sigusr1=%s\n", chld > 0 ? "yes" : "no", usr1 > 0 ? "yes" : "no");
    return 0;
}
