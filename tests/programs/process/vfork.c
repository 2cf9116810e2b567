/* process/vfork: what a vfork child does to its parent's address space
 * is the parent's (a mapping it makes shows in the parent's
 * /proc/self/maps and stays usable; an mprotect it makes holds for the
 * parent), SIGKILL ends a child spinning without system calls while the
 * parent waits, and a signal to the parent does not end its wait early: it
 * resumes only after the child has exited, then runs the handler. */
#include "../common.h"

#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

static volatile sig_atomic_t got_usr1;

static void on_usr1(int sig)
{
    (void)sig;
    got_usr1 = 1;
}

/* Whether an address lies in one of the lines of /proc/self/maps. */
static int mapped(void *p)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return -1;
    char line[512];
    int found = 0;
    uintptr_t a = (uintptr_t)p;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && a >= lo && a < hi)
            found = 1;
    }
    fclose(f);
    return found;
}

static void report(const char *label, int status)
{
    if (WIFEXITED(status))
        printf("%s: exited %d\n", label, WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        printf("%s: killed by %s\n", label, sigabbrev_np(WTERMSIG(status)));
}

int main(void)
{
    test_init();

    /* 1. A mapping made by the child belongs to the parent afterwards. */
    static char *volatile made;
    fflush(stdout);
    pid_t pid = vfork();
    if (pid == 0) {
        char *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p != MAP_FAILED)
            p[0] = 'v';
        made = p;
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    report("mmap child", status);
    if (made == MAP_FAILED || made == NULL) {
        printf("FATAL child mmap\n");
        return 1;
    }
    printf("child's mapping in parent's maps: %d\n", mapped(made));
    printf("child's byte: %c\n", made[0]);
    made[4096] = 'w';
    show("parent munmaps it", munmap(made, 8192));
    printf("after munmap in maps: %d\n", mapped(made));

    /* 2. mprotect by the child holds for the parent. */
    char *ro = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ro[0] = 'x';
    fflush(stdout);
    pid = vfork();
    if (pid == 0) {
        mprotect(ro, 4096, PROT_READ);
        _exit(0);
    }
    waitpid(pid, &status, 0);
    fflush(stdout);
    pid_t writer = fork();
    if (writer == 0) {
        ro[0] = 'y'; /* must fault: the page is read-only now */
        _exit(0);
    }
    waitpid(writer, &status, 0);
    report("write to page the vfork child made read-only", status);

    /* 3. SIGKILL reaches a vfork child that never makes a system call. */
    int fds[2];
    if (pipe(fds)) {
        printf("FATAL pipe\n");
        return 1;
    }
    fflush(stdout);
    pid_t killer = fork();
    if (killer == 0) {
        pid_t victim;
        close(fds[1]);
        if (read(fds[0], &victim, sizeof victim) == sizeof victim) {
            struct timespec ts = {0, 50 * 1000 * 1000};
            nanosleep(&ts, NULL);
            kill(victim, SIGKILL);
        }
        _exit(0);
    }
    close(fds[0]);
    pid = vfork();
    if (pid == 0) {
        pid_t me = getpid();
        if (write(fds[1], &me, sizeof me) != sizeof me)
            _exit(3);
        for (;;)
            __asm__ volatile("" ::: "memory");
    }
    close(fds[1]);
    waitpid(pid, &status, 0);
    report("spinning vfork child", status);
    waitpid(killer, &status, 0);

    /* 4. A signal to the waiting parent waits for the child. */
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    static volatile int child_done;
    pid_t parent = getpid();
    fflush(stdout);
    pid_t sender = fork();
    if (sender == 0) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
        kill(parent, SIGUSR1);
        _exit(0);
    }
    pid = vfork();
    if (pid == 0) {
        struct timespec ts = {0, 300 * 1000 * 1000};
        nanosleep(&ts, NULL);
        child_done = 1;
        _exit(0);
    }
    printf("parent resumed after child finished: %d\n", child_done);
    waitpid(pid, &status, 0);
    report("sleeping vfork child", status);
    waitpid(sender, &status, 0);
    printf("handler ran: %d\n", (int)got_usr1);

    printf("end\n");
    return 0;
}
