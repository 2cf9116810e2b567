//! The code systrap adds to every stub: the trap handler, the syscall
//! thread's loop and a new thread's start-up sequence.
//!
//! It is assembled into the sentry's own binary (between two symbols) and
//! copied from there into the stub image, so it must be position
//! independent and self-contained: it touches no memory but the region of
//! `layout` (found from its own stack pointer or from `r15`) and makes only
//! raw system calls. It never uses the application's stack.

use super::layout::*;
use crate::platform::stub_image::{STUB_BASE, SYSTRAP_FPROG_ADDR, SYSTRAP_THREAD_FPROG_ADDR};

std::arch::global_asm!(
    ".pushsection .text.rvisor_systrap,\"ax\",@progbits",
    ".balign 16",
    ".globl rvisor_systrap_code_start",
    "rvisor_systrap_code_start:",
    // The signal return trampoline (sa_restorer).
    ".globl rvisor_systrap_restorer",
    "rvisor_systrap_restorer:",
    ".Lrestorer:",
    "    mov eax, {SYS_rt_sigreturn}",
    "    syscall",
    "    ud2",
    // The trap handler: rdi = signo, rsi = siginfo, rdx = ucontext, on
    // the slot's alternate stack. (Counters live in r9 and rbx: `syscall`
    // clobbers rcx and r11.) Posts the event, waits for the sentry,
    // then returns through the (possibly rewritten) frame.
    ".balign 16",
    ".globl rvisor_systrap_handler",
    "rvisor_systrap_handler:",
    ".Lhandler:",
    "    mov r8, rsp",
    "    and r8, -{SLOT_SIZE}",
    "    mov dword ptr [r8 + {CTX_SIGNO}], edi",
    "    mov qword ptr [r8 + {CTX_SIGINFO}], rsi",
    "    mov qword ptr [r8 + {CTX_UCONTEXT}], rdx",
    "    rdfsbase rax",
    "    mov qword ptr [r8 + {CTX_FSBASE}], rax",
    "    rdgsbase rax",
    "    mov qword ptr [r8 + {CTX_GSBASE}], rax",
    "    mov eax, {STATE_EVENT}",
    "    xchg dword ptr [r8 + {CTX_STATE}], eax",
    "    cmp dword ptr [r8 + {CTX_SENTRY_WAITING}], 0",
    "    je 2f",
    "    mov eax, {SYS_futex}",
    "    lea rdi, [r8 + {CTX_STATE}]",
    "    mov esi, {FUTEX_WAKE}",
    "    mov edx, 1",
    "    syscall",
    "2:",
    "    mov r9d, dword ptr [r8 + {CTX_SPIN}]",
    "3:",
    "    mov eax, dword ptr [r8 + {CTX_STATE}]",
    "    cmp eax, {STATE_EVENT}",
    "    jne 5f",
    "    test r9d, r9d",
    "    jz 4f",
    "    dec r9d",
    "    pause",
    // Every 256 polls, give the CPU away in case the sentry thread waits
    // for it (both on one CPU).
    "    test r9d, 255",
    "    jnz 3b",
    "    mov eax, {SYS_sched_yield}",
    "    syscall",
    "    jmp 3b",
    "4:",
    "    mov dword ptr [r8 + {CTX_STUB_WAITING}], 1",
    "    mfence",
    "    mov eax, dword ptr [r8 + {CTX_STATE}]",
    "    cmp eax, {STATE_EVENT}",
    "    jne 6f",
    "    mov eax, {SYS_futex}",
    "    lea rdi, [r8 + {CTX_STATE}]",
    "    xor esi, esi",
    "    mov edx, {STATE_EVENT}",
    "    xor r10d, r10d",
    "    syscall",
    "6:",
    "    mov dword ptr [r8 + {CTX_STUB_WAITING}], 0",
    "    xor r9d, r9d",
    "    jmp 3b",
    "5:",
    "    cmp eax, {STATE_EXIT}",
    "    je 7f",
    "    mov rax, qword ptr [r8 + {CTX_FSBASE}]",
    "    wrfsbase rax",
    "    mov rax, qword ptr [r8 + {CTX_GSBASE}]",
    "    wrgsbase rax",
    // To sa_restorer, whose address the kernel put on top of the frame.
    "    ret",
    "7:",
    "    mov eax, {SYS_exit}",
    "    xor edi, edi",
    "    syscall",
    "    ud2",
    // The syscall thread starts here, on a stack in the response page
    // (never the application's): it blocks every signal, so none is ever
    // delivered to it (process-wide ones go to application threads), and
    // a fresh process's (r14d = 1) installs the trap handler and the
    // syscall thread's filter, which its forks and threads inherit.
    ".balign 16",
    ".globl rvisor_systrap_syscall_thread",
    "rvisor_systrap_syscall_thread:",
    "    push -1",
    "    mov eax, {SYS_rt_sigprocmask}",
    "    mov edi, {SIG_SETMASK}",
    "    mov rsi, rsp",
    "    xor edx, edx",
    "    mov r10d, 8",
    "    syscall",
    "    pop rax",
    "    test r14d, r14d",
    "    jz 1f",
    // A fresh process: the trap handler for every signal systrap takes
    // (a struct kernel_sigaction on the stack: handler, flags, restorer,
    // mask), the code page sealed (mseal, Linux 6.10+; ENOSYS before is
    // fine), then the syscall thread's filter.
    "    sub rsp, 32",
    "    lea rax, [rip + .Lhandler]",
    "    mov qword ptr [rsp], rax",
    "    mov eax, {SA_FLAGS}",
    "    mov qword ptr [rsp + 8], rax",
    "    lea rax, [rip + .Lrestorer]",
    "    mov qword ptr [rsp + 16], rax",
    "    mov qword ptr [rsp + 24], -1",
    ".irp sig, {SIGSYS}, {SIGSEGV}, {SIGBUS}, {SIGFPE}, {SIGILL}, {SIGTRAP}, {INTERRUPT}",
    "    mov eax, {SYS_rt_sigaction}",
    "    mov edi, \\sig",
    "    mov rsi, rsp",
    "    xor edx, edx",
    "    mov r10d, 8",
    "    syscall",
    "    test rax, rax",
    "    jnz 9f",
    ".endr",
    "    add rsp, 32",
    "    mov eax, {SYS_mseal}",
    "    movabs rdi, {STUB_BASE}",
    "    mov esi, 4096",
    "    xor edx, edx",
    "    syscall",
    "    mov eax, {SYS_seccomp}",
    "    mov edi, {SECCOMP_SET_MODE_FILTER}",
    "    xor esi, esi",
    "    movabs rdx, {THREAD_FPROG}",
    "    syscall",
    "    test rax, rax",
    "    jnz 9f",
    // The loop: r15 = region base, r12d = last request served. Runs each
    // request; a clone child (rax = 0) goes on by kind.
    "1:",
    "    mov ebx, dword ptr [r15 + {RESP_SPIN}]",
    "8:",
    "    mov eax, dword ptr [r15 + {REQ_SEQ}]",
    "    cmp eax, r12d",
    "    jne 2f",
    // Poll a while for the next request (they come in bursts: a program
    // starting up maps memory again and again), then sleep.
    "    test ebx, ebx",
    "    jz 7f",
    "    dec ebx",
    "    pause",
    "    test ebx, 255",
    "    jnz 8b",
    "    mov eax, {SYS_sched_yield}",
    "    syscall",
    "    jmp 8b",
    "7:",
    "    mov eax, {SYS_futex}",
    "    lea rdi, [r15 + {REQ_SEQ}]",
    "    xor esi, esi",
    "    mov edx, r12d",
    "    xor r10d, r10d",
    "    syscall",
    "    xor ebx, ebx",
    "    jmp 8b",
    "2:",
    "    mov r12d, eax",
    "    mov r13d, dword ptr [r15 + {REQ_KIND}]",
    "    mov rax, qword ptr [r15 + {REQ_NR}]",
    "    mov rdi, qword ptr [r15 + {REQ_ARGS}]",
    "    mov rsi, qword ptr [r15 + {REQ_ARGS} + 8]",
    "    mov rdx, qword ptr [r15 + {REQ_ARGS} + 16]",
    "    mov r10, qword ptr [r15 + {REQ_ARGS} + 24]",
    "    mov r8, qword ptr [r15 + {REQ_ARGS} + 32]",
    "    mov r9, qword ptr [r15 + {REQ_ARGS} + 40]",
    "    syscall",
    "    test rax, rax",
    "    jnz 3f",
    "    cmp r13d, {KIND_THREAD}",
    "    je .Lthread_entry",
    "    cmp r13d, {KIND_FORK}",
    "    je .Lfork_entry",
    "3:",
    "    mov qword ptr [r15 + {RESP_RESULT}], rax",
    "    mov eax, r12d",
    "    xchg dword ptr [r15 + {RESP_SEQ}], eax",
    "    cmp dword ptr [r15 + {RESP_SENTRY_WAITING}], 0",
    "    je 1b",
    "    mov eax, {SYS_futex}",
    "    lea rdi, [r15 + {RESP_SEQ}]",
    "    mov esi, {FUTEX_WAKE}",
    "    mov edx, 1",
    "    syscall",
    "    jmp 1b",
    // A forked child (a copy of the syscall thread) parks until the sentry
    // gives it a region of its own and sends it to the loop.
    ".globl rvisor_systrap_fork_entry",
    "rvisor_systrap_fork_entry:",
    ".Lfork_entry:",
    "    mov eax, {SYS_pause}",
    "    syscall",
    "    jmp .Lfork_entry",
    // A new thread, on its slot's start-up stack: unblock signals, take
    // the slot's alternate stack, install the application filter, and
    // trap into the handler, where the sentry gives it its registers.
    ".balign 16",
    ".globl rvisor_systrap_thread_entry",
    "rvisor_systrap_thread_entry:",
    ".Lthread_entry:",
    "    mov rbx, rsp",
    "    and rbx, -{SLOT_SIZE}",
    "    push 0",
    "    mov eax, {SYS_rt_sigprocmask}",
    "    mov edi, {SIG_SETMASK}",
    "    mov rsi, rsp",
    "    xor edx, edx",
    "    mov r10d, 8",
    "    syscall",
    "    test rax, rax",
    "    jnz 9f",
    "    sub rsp, 24",
    "    lea rax, [rbx + {ALTSTACK}]",
    "    mov qword ptr [rsp], rax",
    "    mov qword ptr [rsp + 8], 0",
    "    mov qword ptr [rsp + 16], {ALTSTACK_SIZE}",
    "    mov eax, {SYS_sigaltstack}",
    "    mov rdi, rsp",
    "    xor esi, esi",
    "    syscall",
    "    test rax, rax",
    "    jnz 9f",
    "    mov eax, {SYS_seccomp}",
    "    mov edi, {SECCOMP_SET_MODE_FILTER}",
    "    xor esi, esi",
    "    movabs rdx, {FPROG}",
    "    syscall",
    "    test rax, rax",
    "    jnz 9f",
    "    mov eax, {START_NR}",
    "    syscall",
    "    ud2",
    "9:",
    "    mov eax, {SYS_exit}",
    "    mov edi, 1",
    "    syscall",
    "    ud2",
    ".globl rvisor_systrap_code_end",
    "rvisor_systrap_code_end:",
    ".popsection",
    SYS_rt_sigreturn = const libc::SYS_rt_sigreturn,
    SYS_futex = const libc::SYS_futex,
    SYS_exit = const libc::SYS_exit,
    SYS_pause = const libc::SYS_pause,
    SYS_rt_sigprocmask = const libc::SYS_rt_sigprocmask,
    SYS_sigaltstack = const libc::SYS_sigaltstack,
    SYS_seccomp = const libc::SYS_seccomp,
    SYS_sched_yield = const libc::SYS_sched_yield,
    SYS_rt_sigaction = const libc::SYS_rt_sigaction,
    SYS_mseal = const 462,
    STUB_BASE = const STUB_BASE,
    SA_FLAGS = const (libc::SA_SIGINFO | libc::SA_ONSTACK | 0x0400_0000),
    SIGSYS = const libc::SIGSYS,
    SIGSEGV = const libc::SIGSEGV,
    SIGBUS = const libc::SIGBUS,
    SIGFPE = const libc::SIGFPE,
    SIGILL = const libc::SIGILL,
    SIGTRAP = const libc::SIGTRAP,
    INTERRUPT = const crate::platform::INTERRUPT_SIGNAL,
    FUTEX_WAKE = const libc::FUTEX_WAKE,
    SIG_SETMASK = const libc::SIG_SETMASK,
    SECCOMP_SET_MODE_FILTER = const 1,
    SLOT_SIZE = const SLOT_SIZE,
    CTX_STATE = const CTX_STATE,
    CTX_SENTRY_WAITING = const CTX_SENTRY_WAITING,
    CTX_STUB_WAITING = const CTX_STUB_WAITING,
    CTX_SPIN = const CTX_SPIN,
    CTX_SIGNO = const CTX_SIGNO,
    CTX_SIGINFO = const CTX_SIGINFO,
    CTX_UCONTEXT = const CTX_UCONTEXT,
    CTX_FSBASE = const CTX_FSBASE,
    CTX_GSBASE = const CTX_GSBASE,
    STATE_EVENT = const STATE_EVENT,
    STATE_EXIT = const STATE_EXIT,
    REQ_SEQ = const REQ_SEQ,
    REQ_KIND = const REQ_KIND,
    REQ_NR = const REQ_NR,
    REQ_ARGS = const REQ_ARGS,
    RESP_SEQ = const RESP_SEQ,
    RESP_SENTRY_WAITING = const RESP_SENTRY_WAITING,
    RESP_RESULT = const RESP_RESULT,
    RESP_SPIN = const RESP_SPIN,
    KIND_THREAD = const KIND_THREAD,
    KIND_FORK = const KIND_FORK,
    ALTSTACK = const ALTSTACK,
    ALTSTACK_SIZE = const ALTSTACK_SIZE,
    FPROG = const SYSTRAP_FPROG_ADDR,
    THREAD_FPROG = const SYSTRAP_THREAD_FPROG_ADDR,
    START_NR = const START_NR,
);

extern "C" {
    static rvisor_systrap_code_start: u8;
    static rvisor_systrap_code_end: u8;
    static rvisor_systrap_restorer: u8;
    static rvisor_systrap_handler: u8;
    static rvisor_systrap_syscall_thread: u8;
    static rvisor_systrap_fork_entry: u8;
    static rvisor_systrap_thread_entry: u8;
}

/// Offsets of the entry points from the start of the code.
#[derive(Clone, Copy, Debug)]
pub struct Entries {
    pub restorer: u64,
    pub handler: u64,
    pub syscall_thread: u64,
    pub fork_entry: u64,
    pub thread_entry: u64,
}

/// The code's bytes and its entry points.
pub fn code() -> (&'static [u8], Entries) {
    // SAFETY: the symbols are labels of the global_asm! block above, in
    // one section in this order; we only take their addresses and read
    // the bytes between the first and the last, which are code the linker
    // placed there (readable, as .text is).
    unsafe {
        let start = std::ptr::addr_of!(rvisor_systrap_code_start);
        let end = std::ptr::addr_of!(rvisor_systrap_code_end);
        let len = end as usize - start as usize;
        let off = |p: *const u8| (p as usize - start as usize) as u64;
        let entries = Entries {
            restorer: off(std::ptr::addr_of!(rvisor_systrap_restorer)),
            handler: off(std::ptr::addr_of!(rvisor_systrap_handler)),
            syscall_thread: off(std::ptr::addr_of!(rvisor_systrap_syscall_thread)),
            fork_entry: off(std::ptr::addr_of!(rvisor_systrap_fork_entry)),
            thread_entry: off(std::ptr::addr_of!(rvisor_systrap_thread_entry)),
        };
        (std::slice::from_raw_parts(start, len), entries)
    }
}
