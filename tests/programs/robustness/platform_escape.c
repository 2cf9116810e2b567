/* robustness/platform_escape: an application that knows how the platform
 * works tries to get a host system call past the sentry, or to break the
 * sentry through the memory the stub shares with it. Every attempt must
 * end harmlessly: the attempt's process gets an error or a signal, and the
 * sandbox (this process, the sentry) goes on. Run only under rvisor, on
 * every platform; prints what it saw.
 *
 * The addresses are the stub's (sentry/src/platform/stub_image.rs and
 * systrap/layout.rs), found as stub_base.h says: its code page and, on systrap, the
 * shared region after it (a read-only request page, then one slot per
 * thread: hand-over word, trap frame). On ptrace the region is not
 * mapped, so writes to it fault; the outcome printed is the same. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "stub_base.h"

static uintptr_t stub_base;
#define STUB_BASE stub_base
#define REGION (STUB_BASE + 0x10000UL)
#define SLOT_SIZE 0x8000UL
#define SLOT(i) (REGION + SLOT_SIZE * ((i) + 1))
/* systrap's table of patched system call sites (systrap/layout.rs): a
 * pointer to the fast path's entry, then one per site. */
#define SITES 0x60000UL

static const char *marker_dir;

static void quit_on_signal(int sig) { _exit(100 + sig); }

/* In a child: any fault or a 2-second alarm ends the attempt. */
static void guard(void)
{
    int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGFPE, SIGSYS, SIGALRM};
    for (unsigned i = 0; i < sizeof sigs / sizeof *sigs; i++)
        signal(sigs[i], quit_on_signal);
    alarm(2);
}

/* Runs `fn(arg)` in a guarded child; returns 1 once it ended, by itself
 * (an exit or a signal) or, if it still runs after 3 seconds (it may well
 * have blocked its signals and gone to sleep), killed by its parent. */
static int attempt(void (*fn)(uintptr_t), uintptr_t arg)
{
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        guard();
        fn(arg);
        _exit(0);
    }
    int st;
    for (int i = 0; i < 300; i++) {
        pid_t w = waitpid(p, &st, WNOHANG);
        if (w == p)
            return WIFEXITED(st) || WIFSIGNALED(st);
        if (w < 0)
            return 0;
        usleep(10000);
    }
    kill(p, SIGKILL);
    return waitpid(p, &st, 0) == p && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
}

/* Jumps to `site` (a `syscall` instruction in the stub) with registers
 * asking for mkdirat(AT_FDCWD, marker, 0755) and the rest pointing at
 * nothing useful. */
static void jump_to(uintptr_t site)
{
    char path[256];
    snprintf(path, sizeof path, "%s/site-%lx", marker_dir, (unsigned long)(site - STUB_BASE));
    register long rax __asm__("rax") = SYS_mkdirat;
    register long rdi __asm__("rdi") = AT_FDCWD;
    register long rsi __asm__("rsi") = (long)path;
    register long rdx __asm__("rdx") = 0755;
    register long r8 __asm__("r8") = 0x1000;
    register long r15 __asm__("r15") = (long)REGION;
    __asm__ volatile("jmp *%6"
                     :
                     : "r"(rax), "r"(rdi), "r"(rsi), "r"(rdx), "r"(r8), "r"(r15), "r"(site)
                     : "memory");
}

static void write_request_page(uintptr_t unused)
{
    (void)unused;
    *(volatile uint32_t *)REGION = 12345;
    _exit(0); /* not reached on either platform */
}

/* Claims, for every slot, that its thread trapped with a frame outside
 * its stack, then makes a system call. */
static void forge_contexts(uintptr_t unused)
{
    (void)unused;
    for (int i = 0; i < 4; i++) {
        volatile uint64_t *ctx = (volatile uint64_t *)SLOT(i);
        ctx[3] = 0x1000;          /* siginfo */
        ctx[4] = 0xdeadbeef000UL; /* ucontext */
        *(volatile uint32_t *)ctx = 2; /* "trapped" */
    }
    getppid();
}

static volatile int racing = 1;

/* Rewrites every word of the first slots' trap frames while they are in
 * use: the threads' saved registers change under the sentry. */
static void *scribble(void *unused)
{
    (void)unused;
    uint64_t x = 0x9e3779b97f4a7c15UL;
    while (racing) {
        for (int i = 0; i < 3; i++) {
            volatile uint64_t *frame = (volatile uint64_t *)(SLOT(i) + 0x7000);
            for (int w = 0; w < 0x1000 / 8; w++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                frame[w] = x;
            }
        }
    }
    return NULL;
}

static void race_frames(uintptr_t unused)
{
    (void)unused;
    pthread_t t;
    pthread_create(&t, NULL, scribble, NULL);
    for (int i = 0; i < 20000; i++) {
        char buf[64];
        int fd = open("/proc/self/stat", O_RDONLY);
        if (fd >= 0) {
            read(fd, buf, sizeof buf);
            close(fd);
        }
    }
    racing = 0;
    pthread_join(t, NULL);
}

/* A `mov $SYS_getppid, %eax; syscall` hot enough to be patched. */
static long raw_getppid(void)
{
    long r;
    __asm__ volatile("mov $110, %%eax\n syscall" : "=a"(r) : : "rcx", "r11", "memory");
    return r;
}

static void warm_up(void)
{
    for (int i = 0; i < 100; i++)
        raw_getppid();
}

/* Enters the fast path directly with a site index the sentry never gave
 * out (`arg`), then with a stack pointer into nothing. */
static void jump_to_fast_path(uintptr_t index)
{
    warm_up();
    uintptr_t entry = *(volatile uintptr_t *)SITES; /* faults on ptrace */
    __asm__ volatile("mov %0, %%rcx\n mov $0x10, %%rsp\n jmp *%1"
                     :
                     : "r"(index), "r"(entry)
                     : "rcx", "memory");
}

static void write_site_table(uintptr_t unused)
{
    (void)unused;
    warm_up();
    *(volatile uint64_t *)(SITES + 8) = (uint64_t)(uintptr_t)jump_to_fast_path;
    raw_getppid();
}

/* Points gs at another thread's slot (or at nothing) and calls through a
 * patched site: the fast path then saves into memory that is not its own. */
static void *spin_calls(void *unused)
{
    (void)unused;
    while (racing)
        raw_getppid();
    return NULL;
}

static void borrow_gs(uintptr_t target)
{
    warm_up();
    pthread_t t;
    pthread_create(&t, NULL, spin_calls, NULL);
    usleep(10000);
    __asm__ volatile("wrgsbase %0" : : "r"((uint64_t)target) : "memory");
    for (int i = 0; i < 1000; i++)
        raw_getppid();
    racing = 0;
    pthread_join(t, NULL);
}

/* Rewrites the fast path's words of the first slots (event kind, site
 * index, saved registers, FP area) while threads make patched calls. */
static void *scribble_fast(void *unused)
{
    (void)unused;
    uint64_t x = 0x2545f4914f6cdd1dUL;
    while (racing) {
        for (int i = 0; i < 3; i++) {
            volatile uint64_t *ctx = (volatile uint64_t *)SLOT(i);
            for (int w = 7; w < 0x600 / 8; w++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ctx[w] = (w < 12) ? (x & 7) : x;
            }
        }
    }
    return NULL;
}

static void race_fast_path(uintptr_t unused)
{
    (void)unused;
    warm_up();
    pthread_t t[3];
    pthread_create(&t[0], NULL, scribble_fast, NULL);
    pthread_create(&t[1], NULL, spin_calls, NULL);
    pthread_create(&t[2], NULL, spin_calls, NULL);
    for (int i = 0; i < 20000; i++)
        raw_getppid();
    racing = 0;
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
}

static void do_sysenter(uintptr_t unused)
{
    (void)unused;
    __asm__ volatile("sysenter" ::: "memory");
}

/* Prints whether a call failed, and with what. */
static void report(const char *what, int failed)
{
    printf("%s fails: %d (%s)\n", what, failed, failed ? strerror(errno) : "-");
}

int main(int argc, char **argv)
{
    marker_dir = argc > 1 ? argv[1] : "/tmp";
    setvbuf(stdout, NULL, _IOLBF, 0);
    stub_base = find_stub_base();
    printf("found the stub: %d\n", stub_base != 0);
    if (!stub_base)
        return 1;

    /* Every `syscall` instruction in the stub's code page. */
    const uint8_t *page = (const uint8_t *)STUB_BASE;
    int sites = 0, ended = 0;
    for (int off = 0; off + 1 < 0x1000; off++) {
        if (page[off] == 0x0f && page[off + 1] == 0x05) {
            sites++;
            ended += attempt(jump_to, STUB_BASE + off);
        }
    }
    printf("jumps to the stub's syscall instructions: %d, each ended: %d\n", sites > 0,
           ended == sites);

    printf("write to the request page ended: %d\n", attempt(write_request_page, 0));
    printf("forged trap contexts ended: %d\n", attempt(forge_contexts, 0));
    printf("racing trapped registers ended: %d\n", attempt(race_frames, 0));
    printf("sysenter ended: %d\n", attempt(do_sysenter, 0));
    printf("fast path entered with a bad site ended: %d\n",
           attempt(jump_to_fast_path, 9999) & attempt(jump_to_fast_path, 1));
    printf("write to the site table ended: %d\n", attempt(write_site_table, 0));
    printf("gs on another slot ended: %d\n",
           attempt(borrow_gs, SLOT(1)) & attempt(borrow_gs, 0x1000));
    printf("racing the fast path's context ended: %d\n", attempt(race_fast_path, 0));

    /* The stub's range is refused to every memory call. */
    int rc = munmap((void *)REGION, 4096);
    report("munmap of the region", rc == -1);
    rc = mprotect((void *)REGION, 4096, PROT_READ | PROT_WRITE);
    report("mprotect of the region", rc == -1);
    report("mremap of a slot", mremap((void *)SLOT(0), 4096, 8192, 0) == MAP_FAILED);
    report("mmap over the region",
           mmap((void *)REGION, 4096, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED);
    rc = madvise((void *)SLOT(0), 4096, MADV_DONTNEED);
    report("madvise of a slot", rc == -1);
    report("munmap of the site table", munmap((void *)SITES, 4096) == -1);
    report("mprotect of the site table",
           mprotect((void *)SITES, 4096, PROT_READ | PROT_WRITE) == -1);
    report("mmap over the site table",
           mmap((void *)SITES, 4096, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED);

    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory");
    printf("int $0x80 getpid fails: %d\n", r < 0);

    /* The sandbox is intact: this process still makes system calls. */
    printf("still here: %d\n", getpid() == 1);
    printf("end\n");
    return 0;
}
