//! The seccomp filter every application thread runs under on systrap.
//!
//! Default action: SECCOMP_RET_TRAP, so every system call becomes a SIGSYS
//! the stub's handler hands to the sentry. The only calls the host runs are
//! the handler's own: futex wait and wake, rt_sigreturn, and exit (when the
//! sentry ends the thread), and only from the stub's code. An application
//! that jumps there with its own registers can at most wait or wake on a
//! futex in its own memory, return from a signal frame it made (its own
//! registers), or end its own thread.
//!
//! The syscall thread runs under a filter of its own
//! ([`syscall_thread_filter`]), which every application thread inherits
//! under the one above: it lets the stub's code make only the calls the
//! sentry asks of it, and traps everything else.

use crate::platform::bpf::{
    data_arg_hi, data_arg_lo, fprog_image, jump, stmt, AUDIT_ARCH_X86_64, DATA_ARCH, DATA_IP_HI,
    DATA_IP_LO, DATA_NR, JEQ_K, JGE_K, JGT_K, LD_W_ABS, RET_K, SECCOMP_RET_ALLOW, SECCOMP_RET_TRAP,
};
use crate::platform::stub_image::{stub_base, systrap_code_addr, SYSTRAP_CODE_MAX};

const DATA_ARG1_LO: u32 = data_arg_lo(1);
const DATA_ARG1_HI: u32 = data_arg_hi(1);

/// The application filter (see the module comment).
pub fn filter() -> Vec<libc::sock_filter> {
    let code = systrap_code_addr();
    let code_lo = code as u32;
    let code_end_lo = (code + SYSTRAP_CODE_MAX) as u32;
    let code_hi = (code >> 32) as u32;
    // Indices: TRAP is the last instruction, ALLOW the one before it.
    let f = vec![
        /* 0 */ stmt(LD_W_ABS, DATA_ARCH),
        /* 1 */ jump(JEQ_K, AUDIT_ARCH_X86_64, 0, 19), // -> 21 TRAP
        /* 2 */ stmt(LD_W_ABS, DATA_IP_HI),
        /* 3 */ jump(JEQ_K, code_hi, 0, 17),
        /* 4 */ stmt(LD_W_ABS, DATA_IP_LO),
        /* 5 */ jump(JGE_K, code_lo, 0, 15),
        /* 6 */ jump(JGT_K, code_end_lo, 14, 0),
        /* 7 */ stmt(LD_W_ABS, DATA_NR),
        /* 8 */ jump(JEQ_K, libc::SYS_rt_sigreturn as u32, 11, 0), // -> 20 ALLOW
        /* 9 */ jump(JEQ_K, libc::SYS_exit as u32, 10, 0),
        /* 10 */ jump(JEQ_K, libc::SYS_sched_yield as u32, 9, 0),
        /* 11 */ jump(JEQ_K, libc::SYS_futex as u32, 0, 9),
        // futex: only FUTEX_WAIT and FUTEX_WAKE (shared), nothing that
        // could take a lock, requeue or touch a second address.
        /* 12 */
        stmt(LD_W_ABS, DATA_ARG1_HI),
        /* 13 */ jump(JEQ_K, 0, 0, 7),
        /* 14 */ stmt(LD_W_ABS, DATA_ARG1_LO),
        /* 15 */ jump(JEQ_K, libc::FUTEX_WAIT as u32, 4, 0),
        /* 16 */ jump(JEQ_K, libc::FUTEX_WAKE as u32, 3, 0),
        /* 17 */ stmt(RET_K, SECCOMP_RET_TRAP),
        /* 18 */ stmt(RET_K, SECCOMP_RET_TRAP),
        /* 19 */ stmt(RET_K, SECCOMP_RET_TRAP),
        /* 20 */ stmt(RET_K, SECCOMP_RET_ALLOW),
        /* 21 */ stmt(RET_K, SECCOMP_RET_TRAP),
    ];
    f
}

/// What the syscall thread runs for the sentry (the calls `Stub::inject`
/// and the mm code make, clone and fork, the fd channel's recvmsg and
/// close), and what its start-up and the trap handler need.
const SYSCALL_THREAD_CALLS: &[i64] = &[
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mprotect,
    libc::SYS_mremap,
    libc::SYS_madvise,
    libc::SYS_mincore,
    libc::SYS_clone,
    libc::SYS_recvmsg,
    libc::SYS_close,
    libc::SYS_getrusage,
    libc::SYS_futex,
    libc::SYS_pause,
    libc::SYS_exit,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_sigaltstack,
    libc::SYS_seccomp,
    libc::SYS_sched_yield,
    // Patching a system call site (see `Sites`): every thread of the
    // process serialises its instruction stream.
    libc::SYS_membarrier,
    // A forked process makes its own region (`make_region`).
    libc::SYS_memfd_create,
    libc::SYS_ftruncate,
];

/// The syscall thread's filter: from the stub's code page, the calls in
/// `SYSCALL_THREAD_CALLS`; everything else traps (a SIGSYS the syscall
/// thread blocks, which kills its process; for application threads the
/// filter above decides first).
pub fn syscall_thread_filter() -> Vec<libc::sock_filter> {
    let page_lo = stub_base() as u32;
    let page_end_lo = (stub_base() + 0xfff) as u32;
    let page_hi = (stub_base() >> 32) as u32;
    let n = SYSCALL_THREAD_CALLS.len() as u8;
    // Laid out as [8 checks][n list entries][TRAP][ALLOW]: TRAP is at
    // 8 + n, and a jump from index i lands at i + 1 + offset.
    let mut f = vec![
        /* 0 */ stmt(LD_W_ABS, DATA_ARCH),
        /* 1 */ jump(JEQ_K, AUDIT_ARCH_X86_64, 0, 6 + n),
        /* 2 */ stmt(LD_W_ABS, DATA_IP_HI),
        /* 3 */ jump(JEQ_K, page_hi, 0, 4 + n),
        /* 4 */ stmt(LD_W_ABS, DATA_IP_LO),
        /* 5 */ jump(JGE_K, page_lo, 0, 2 + n),
        /* 6 */ jump(JGT_K, page_end_lo, 1 + n, 0),
        /* 7 */ stmt(LD_W_ABS, DATA_NR),
    ];
    for (i, nr) in SYSCALL_THREAD_CALLS.iter().enumerate() {
        // Entry i jumps over the rest of the list and the TRAP to ALLOW.
        let to_allow = n - i as u8;
        f.push(jump(JEQ_K, *nr as u32, to_allow, 0));
    }
    f.push(stmt(RET_K, SECCOMP_RET_TRAP));
    f.push(stmt(RET_K, SECCOMP_RET_ALLOW));
    f
}

/// The filter as it sits in the stub at `at`: a `struct sock_fprog`
/// pointing at the instructions right after it.
pub fn filter_image(at: u64) -> Vec<u8> {
    fprog_image(&filter(), at)
}

/// [`syscall_thread_filter`] as it sits in the stub at `at`.
pub fn syscall_thread_filter_image(at: u64) -> Vec<u8> {
    fprog_image(&syscall_thread_filter(), at)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::platform::bpf::run as run_filter;

    fn run(nr: u32, arch: u32, ip: u64, arg1: u64) -> u32 {
        run_filter(&filter(), nr, arch, ip, arg1)
    }

    #[test]
    fn only_the_handlers_calls_from_the_stub_are_allowed() {
        let stub = systrap_code_addr() + 0x10;
        let x86 = AUDIT_ARCH_X86_64;
        let futex = libc::SYS_futex as u32;
        assert_eq!(run(futex, x86, stub, 0), SECCOMP_RET_ALLOW);
        assert_eq!(run(futex, x86, stub, 1), SECCOMP_RET_ALLOW);
        assert_eq!(run(futex, x86, stub, 1 << 32), SECCOMP_RET_TRAP);
        assert_eq!(run(futex, x86, stub, 128), SECCOMP_RET_TRAP);
        assert_eq!(run(futex, x86, stub, 6), SECCOMP_RET_TRAP);
        assert_eq!(run(15, x86, stub, 0), SECCOMP_RET_ALLOW);
        assert_eq!(run(60, x86, stub, 0), SECCOMP_RET_ALLOW);
        assert_eq!(run(24, x86, stub, 0), SECCOMP_RET_ALLOW);
        assert_eq!(run(9, x86, stub, 0), SECCOMP_RET_TRAP);
        // The same calls from anywhere else trap.
        assert_eq!(run(futex, x86, 0x40_1000, 0), SECCOMP_RET_TRAP);
        assert_eq!(run(15, x86, 0x40_1000, 0), SECCOMP_RET_TRAP);
        assert_eq!(run(15, x86, stub + (1 << 32), 0), SECCOMP_RET_TRAP);
        assert_eq!(run(15, x86, systrap_code_addr() - 1, 0), SECCOMP_RET_TRAP);
        assert_eq!(
            run(15, x86, systrap_code_addr() + 0x2000, 0),
            SECCOMP_RET_TRAP
        );
        // Another ABI always traps.
        assert_eq!(run(15, 0x4000_0003, stub, 0), SECCOMP_RET_TRAP);
    }

    #[test]
    fn the_syscall_thread_may_make_only_the_sentrys_calls() {
        let f = syscall_thread_filter();
        let x86 = AUDIT_ARCH_X86_64;
        let code = stub_base() + 0x82;
        for nr in SYSCALL_THREAD_CALLS {
            assert_eq!(
                run_filter(&f, *nr as u32, x86, code, 0),
                SECCOMP_RET_ALLOW,
                "{nr}"
            );
        }
        for nr in [
            libc::SYS_execve,
            libc::SYS_openat,
            libc::SYS_ptrace,
            libc::SYS_kill,
        ] {
            assert_eq!(
                run_filter(&f, nr as u32, x86, code, 0),
                SECCOMP_RET_TRAP,
                "{nr}"
            );
        }
        // Only from the stub's code page.
        let nr = libc::SYS_mmap as u32;
        assert_eq!(run_filter(&f, nr, x86, 0x40_1000, 0), SECCOMP_RET_TRAP);
        assert_eq!(
            run_filter(&f, nr, x86, stub_base() + 0x1000, 0),
            SECCOMP_RET_TRAP
        );
        assert_eq!(
            run_filter(&f, nr, x86, stub_base() - 1, 0),
            SECCOMP_RET_TRAP
        );
        assert_eq!(run_filter(&f, nr, 0x4000_0003, code, 0), SECCOMP_RET_TRAP);
    }
}
