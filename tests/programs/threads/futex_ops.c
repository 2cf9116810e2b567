/* threads/futex_ops: the futex operations beyond WAIT/WAKE — REQUEUE and
 * CMP_REQUEUE moving waiters to a second futex (and EAGAIN when the value
 * changed), WAKE_OP's arithmetic and comparison, WAIT_BITSET/WAKE_BITSET
 * selecting waiters, timeouts, and a process-shared futex in MAP_SHARED
 * memory across fork. */
#include "../common.h"

#include <linux/futex.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

static uint32_t f1, f2;
static volatile int done_count;

static long fx(uint32_t *u, int op, uint32_t val, const void *t, uint32_t *u2, uint32_t v3)
{
    return syscall(SYS_futex, u, op, val, t, u2, v3);
}

static void *waiter(void *arg)
{
    uint32_t bits = (uint32_t)(uintptr_t)arg;
    fx(&f1, FUTEX_WAIT_BITSET_PRIVATE, 0, NULL, NULL, bits);
    __atomic_add_fetch(&done_count, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void settle(void)
{
    usleep(100000);
}

int main(void)
{
    test_init();
    pthread_t th[4];
    /* REQUEUE: wake 1, move the rest to f2, then wake them there */
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, waiter, (void *)(uintptr_t)FUTEX_BITSET_MATCH_ANY);
    settle();
    printf("cmp_requeue with a stale value: %s\n",
           fx(&f1, FUTEX_CMP_REQUEUE_PRIVATE, 1, (void *)2, &f2, 99) < 0 ? errname(errno) : "ok");
    printf("cmp_requeue woke+moved: %ld\n", fx(&f1, FUTEX_CMP_REQUEUE_PRIVATE, 1, (void *)2, &f2, 0));
    settle();
    printf("woken so far: %d\n", done_count);
    printf("wake on f1 finds: %ld\n", fx(&f1, FUTEX_WAKE_PRIVATE, 10, NULL, NULL, 0));
    printf("wake on f2 finds: %ld\n", fx(&f2, FUTEX_WAKE_PRIVATE, 10, NULL, NULL, 0));
    settle();
    printf("woken so far: %d\n", done_count);
    printf("requeue the last one: %ld\n", fx(&f1, FUTEX_REQUEUE_PRIVATE, 0, (void *)5, &f2, 0));
    printf("wake it on f2: %ld\n", fx(&f2, FUTEX_WAKE_PRIVATE, 10, NULL, NULL, 0));
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    printf("all woken: %d\n", done_count);

    /* WAKE_BITSET wakes only matching waiters */
    done_count = 0;
    pthread_create(&th[0], NULL, waiter, (void *)1);
    pthread_create(&th[1], NULL, waiter, (void *)2);
    settle();
    printf("wake bitset 2: %ld\n", fx(&f1, FUTEX_WAKE_BITSET_PRIVATE, 10, NULL, NULL, 2));
    settle();
    printf("woken: %d\n", done_count);
    printf("wake bitset 1: %ld\n", fx(&f1, FUTEX_WAKE_BITSET_PRIVATE, 10, NULL, NULL, 1));
    pthread_join(th[0], NULL);
    pthread_join(th[1], NULL);

    /* WAKE_OP: f2 = f2 + 5, wake on f2 too if the old value was > 3 */
    f2 = 4;
    done_count = 0;
    long r = fx(&f1, FUTEX_WAKE_OP_PRIVATE, 1, (void *)1, &f2, FUTEX_OP(FUTEX_OP_ADD, 5, FUTEX_OP_CMP_GT, 3));
    printf("wake_op: %ld, f2 now %u\n", r, f2);
    r = fx(&f1, FUTEX_WAKE_OP_PRIVATE, 1, (void *)1, &f2, FUTEX_OP(FUTEX_OP_OPARG_SHIFT | FUTEX_OP_OR, 4, FUTEX_OP_CMP_EQ, 0));
    printf("wake_op shift-or: %ld, f2 now %u\n", r, f2);

    /* timeouts and errors */
    struct timespec ts = {0, 20 * 1000 * 1000};
    printf("wait timeout: %s\n", fx(&f1, FUTEX_WAIT_PRIVATE, 0, &ts, NULL, 0) < 0 ? errname(errno) : "ok");
    printf("wait wrong value: %s\n", fx(&f1, FUTEX_WAIT_PRIVATE, 7, &ts, NULL, 0) < 0 ? errname(errno) : "ok");
    printf("wait bitset 0: %s\n", fx(&f1, FUTEX_WAIT_BITSET_PRIVATE, 0, NULL, NULL, 0) < 0 ? errname(errno) : "ok");
    printf("unaligned: %s\n", fx((uint32_t *)((char *)&f1 + 1), FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0) < 0 ? errname(errno) : "ok");

    /* shared futex across fork */
    uint32_t *sh = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    *sh = 0;
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        long w = fx(sh, FUTEX_WAIT, 0, NULL, NULL, 0);
        printf("child woken: %ld value %u\n", w, *sh);
        fflush(stdout);
        _exit(0);
    }
    settle();
    *sh = 1;
    long woke = fx(sh, FUTEX_WAKE, 1, NULL, NULL, 0);
    waitpid(c, NULL, 0);
    printf("wake shared: %ld\n", woke);
    return 0;
}
