/* process/fork_signals: fork while signals keep arriving. Linux restarts
 * a fork that a signal interrupts once the handler has run, with or
 * without SA_RESTART (ERESTARTNOINTR): the program never sees EINTR. A
 * 1 ms interval timer interrupts a parent with 32 MiB of touched memory
 * (so each fork takes a while) through 100 forks. */
#include "../common.h"

#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/wait.h>

static volatile sig_atomic_t ticks;

static void on_alrm(int sig)
{
    (void)sig;
    ticks++;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    size_t len = 32 << 20;
    char *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return 1;
    memset(mem, 1, len);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alrm; /* no SA_RESTART */
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval itv = {{0, 1000}, {0, 1000}};
    setitimer(ITIMER_REAL, &itv, NULL);
    int failed = 0, eintr = 0, bad_child = 0;
    for (int i = 0; i < 100; i++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(mem[i * 4096] == 1 ? 7 : 8);
        if (pid < 0) {
            failed++;
            if (errno == EINTR)
                eintr++;
            continue;
        }
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 7)
            bad_child++;
    }
    struct itimerval zero = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &zero, NULL);
    printf("forks failed: %d (EINTR: %d), children that saw wrong memory: %d\n", failed, eintr,
           bad_child);
    printf("timer ticked: %s\n", ticks > 0 ? "yes" : "no");
    return 0;
}
