//! How application code runs and traps (gVisor's `pkg/sentry/platform`);
//! README.md beside this file compares the platforms and sets out their
//! design.
//!
//! Every application thread runs in a *stub* process, so the host kernel
//! never executes the application's own system calls. The default,
//! `systrap`, runs it untraced under a seccomp filter that turns each
//! system call into a SIGSYS, which the stub's handler hands to the sentry
//! through shared memory. `ptrace` stops it at each system call with
//! `PTRACE_SYSEMU`; the experimental `notif` receives most calls as seccomp
//! user notifications. Memory-management calls are validated by the
//! sentry (see `mm`) and then made by the stub: by systrap's syscall
//! thread, or injected under ptrace at the stub's own `syscall; int3`.

pub mod bpf;
pub mod fd_channel;
pub mod notif;
pub mod ptrace;
pub mod stub_image;
pub mod systrap;

pub use ptrace::{StopEvent, Stub};

use thiserror::Error;

/// Failures of the platform itself (not of the application's syscalls).
#[derive(Debug, Error)]
pub enum PlatformError {
    #[error("creating the stub process: {0}")]
    Spawn(nix::errno::Errno),
    #[error("ptrace {op} on stub {pid}: {errno}")]
    Ptrace {
        op: &'static str,
        pid: i32,
        errno: nix::errno::Errno,
    },
    #[error("stub {pid} stopped unexpectedly: {what}")]
    Unexpected { pid: i32, what: String },
    #[error("stub {pid} is gone")]
    Gone { pid: i32 },
}

/// The host signal the sentry sends its own threads and stub threads to
/// interrupt a wait (a ptrace stop for a stub thread, EINTR for a sentry
/// thread).
pub const INTERRUPT_SIGNAL: i32 = libc::SIGUSR2;

/// Registers of a stopped application thread (x86_64).
pub type Regs = libc::user_regs_struct;
