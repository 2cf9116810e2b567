/* threads/fp_inherit: a new thread and a forked or vforked child start
 * with their creator's floating-point control state, as on Linux: the SSE
 * rounding mode and flush-to-zero bit in MXCSR, and the x87 rounding mode
 * in its control word. Prints what each sees. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xmmintrin.h>

static const char *const modes[] = {"to nearest", "downward", "upward", "toward zero"};

static void report(const char *who)
{
    unsigned short cw;
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    unsigned csr = _mm_getcsr();
    volatile float tiny = 1e-38f;
    volatile float tinier = tiny * 1e-3f; /* a denormal, or 0 with FTZ */
    printf("%s: SSE rounding %s, x87 rounding %s, flush to zero: %d, denormal kept: %d\n", who,
           modes[(csr >> 13) & 3], modes[(cw >> 10) & 3], (csr & _MM_FLUSH_ZERO_ON) != 0,
           tinier != 0.0f);
    fflush(stdout);
}

static void *thread_main(void *arg)
{
    report((const char *)arg);
    return NULL;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    report("main, default");
    _mm_setcsr((_mm_getcsr() & ~(3u << 13)) | (2u << 13) | _MM_FLUSH_ZERO_ON);
    unsigned short cw;
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    cw = (cw & ~(3u << 10)) | (1u << 10);
    __asm__ volatile("fldcw %0" : : "m"(cw));
    report("main, changed");
    pthread_t t;
    pthread_create(&t, NULL, thread_main, "new thread");
    pthread_join(t, NULL);
    pid_t p = fork();
    if (p == 0) {
        report("forked child");
        _exit(0);
    }
    waitpid(p, NULL, 0);
    p = vfork();
    if (p == 0) {
        report("vfork child");
        _exit(0);
    }
    waitpid(p, NULL, 0);
    printf("end\n");
    return 0;
}
