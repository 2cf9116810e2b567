/* robustness/stub_jump: an application that knows where the stub's code
 * lives (the sentry's `syscall; int3` injection sequence at the stub's
 * base + 0x80, found as stub_base.h says) jumps there with registers it crafted, hoping the host runs its
 * system call unchecked. Each attempt must stay inside the sandbox: the
 * call is emulated like any other (getpid gives the sandbox's pid, mkdir
 * lands in the sandbox's filesystem), and the `int3` after it is the
 * application's own SIGTRAP. Prints what it saw; run only under rvisor. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "stub_base.h"

static uintptr_t stub_syscall;

static sigjmp_buf back;
static volatile long result;

static void on_trap(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    (void)si;
    ucontext_t *uc = ctx;
    result = uc->uc_mcontext.gregs[REG_RAX];
    siglongjmp(back, 1);
}

/* Jumps to the stub's syscall instruction with rax = nr and the given
 * arguments; returns what rax held at the int3 after it. */
static long stub_call(long nr, long a0, long a1, long a2)
{
    if (sigsetjmp(back, 1))
        return result;
    register long rax __asm__("rax") = nr;
    register long rdi __asm__("rdi") = a0;
    register long rsi __asm__("rsi") = a1;
    register long rdx __asm__("rdx") = a2;
    __asm__ volatile("jmp *%4" : : "r"(rax), "r"(rdi), "r"(rsi), "r"(rdx), "r"(stub_syscall)
                     : "memory");
    return -9999; /* not reached */
}

int main(int argc, char **argv)
{
    const char *marker = argc > 1 ? argv[1] : "/tmp/rvisor-stub-jump-marker";
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction sa = {0};
    sa.sa_sigaction = on_trap;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGTRAP, &sa, NULL);
    sigaction(SIGSEGV, &sa, NULL);
    uintptr_t base = find_stub_base();
    if (!base) {
        printf("no stub found\n");
        return 1;
    }
    stub_syscall = base + 0x80;

    long pid = stub_call(SYS_getpid, 0, 0, 0);
    printf("getpid through the stub matches getpid: %d\n", pid == getpid());
    long r = stub_call(SYS_mkdirat, AT_FDCWD, (long)marker, 0755);
    struct stat st;
    printf("mkdirat through the stub: %ld, visible inside: %d\n", r, stat(marker, &st) == 0);
    /* Unmapping the stub's own page is refused like any mapping of it. */
    r = stub_call(SYS_munmap, (long)base + 0x1000, 4096, 0);
    printf("munmap of the stub through the stub: %ld\n", r);
    printf("end\n");
    return 0;
}
