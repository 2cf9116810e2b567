/*
 * Threads: pthread_create/join with results, mutex + condition variable
 * (futex wait/wake between threads), atomics, gettid != getpid in threads,
 * thread-directed signals (pthread_kill) with per-thread masks, the main
 * thread exiting first (pthread_exit), exit() from a thread while others
 * block, and execve from a thread (the other threads vanish).
 * Sub-cases that end a process run in forked children.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static atomic_int counter;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int ready, go;
static atomic_int tid_differs;

static void *worker(void *arg) {
    long id = (long)arg;
    if (syscall(SYS_gettid) != getpid())
        atomic_fetch_add(&tid_differs, 1);
    pthread_mutex_lock(&mu);
    ready++;
    pthread_cond_broadcast(&cv);
    while (!go)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < 20000; i++)
        atomic_fetch_add(&counter, 1);
    return (void *)(id * 10);
}

static volatile sig_atomic_t usr1_in;
static pthread_t target;
static void on_usr1(int s) {
    (void)s;
    usr1_in = pthread_equal(pthread_self(), target) ? 1 : 2;
}
static void *sig_target(void *a) {
    (void)a;
    sigset_t none;
    sigemptyset(&none);
    pthread_sigmask(SIG_SETMASK, &none, NULL);
    while (!usr1_in)
        usleep(1000);
    return NULL;
}

static void *late(void *a) {
    (void)a;
    usleep(50 * 1000);
    printf("late thread still running after main's pthread_exit\n");
    fflush(stdout);
    return NULL;
}
static void *blocker(void *a) {
    (void)a;
    pause();
    return NULL;
}
static void *exiter(void *a) {
    (void)a;
    usleep(20 * 1000);
    exit(7);
}
static void *execer(void *a) {
    (void)a;
    usleep(20 * 1000);
    execl("/bin/echo", "echo", "exec from a thread", (char *)NULL);
    return NULL;
}

static void run_child(const char *what, void (*fn)(void)) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        fn();
        _exit(99);
    }
    int st;
    waitpid(pid, &st, 0);
    printf("%s: %s %d\n", what, WIFEXITED(st) ? "exit" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}

static void main_exits_first(void) {
    pthread_t t;
    pthread_create(&t, NULL, late, NULL);
    pthread_exit(NULL);
}
static void exit_from_thread(void) {
    pthread_t t;
    pthread_create(&t, NULL, blocker, NULL);
    pthread_create(&t, NULL, exiter, NULL);
    pause();
}
static void exec_from_thread(void) {
    pthread_t t;
    pthread_create(&t, NULL, blocker, NULL);
    pthread_create(&t, NULL, execer, NULL);
    pause();
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    pthread_t t[6];
    for (long i = 0; i < 6; i++)
        pthread_create(&t[i], NULL, worker, (void *)i);
    pthread_mutex_lock(&mu);
    while (ready < 6)
        pthread_cond_wait(&cv, &mu);
    go = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    long sum = 0;
    for (int i = 0; i < 6; i++) {
        void *r;
        pthread_join(t[i], &r);
        sum += (long)r;
    }
    printf("counter=%d joined sum=%ld threads with their own tid=%d\n", atomic_load(&counter), sum,
           atomic_load(&tid_differs));

    /* pthread_kill reaches the chosen thread; main blocks the signal */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &s, NULL);
    pthread_create(&target, NULL, sig_target, NULL);
    usleep(10 * 1000);
    pthread_kill(target, SIGUSR1);
    pthread_join(target, NULL);
    printf("pthread_kill handled in the target thread: %s\n", usr1_in == 1 ? "yes" : "no");
    /* a process-directed signal goes to a thread that does not block it */
    usr1_in = 0;
    pthread_create(&target, NULL, sig_target, NULL);
    usleep(10 * 1000);
    kill(getpid(), SIGUSR1);
    pthread_join(target, NULL);
    printf("kill() handled by the unblocking thread: %s\n", usr1_in == 1 ? "yes" : "no");

    run_child("main thread exits first", main_exits_first);
    run_child("exit() from a thread", exit_from_thread);
    run_child("execve from a thread", exec_from_thread);
    return 0;
}
