//! How application code runs and traps (gVisor's `pkg/sentry/platform`);
//! README.md beside this file compares the platforms and sets out the
//! systrap design still to build.
//!
//! The default, ptrace, runs every application thread in a *stub* process
//! that is stopped at each system call with `PTRACE_SYSEMU`, so the host
//! kernel never executes the application's own system calls. The
//! experimental `notif` platform receives most calls as seccomp user
//! notifications instead. Memory-management calls are *injected* into the
//! stub by the sentry after validation (see `mm`), at the stub's own
//! `syscall; int3` sequence.

pub mod fd_channel;
pub mod notif;
pub mod ptrace;
pub mod stub_image;

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
