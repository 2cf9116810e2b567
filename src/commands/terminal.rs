//! Terminal signals for processes that run in a sandbox with a terminal
//! of their own (`exec --tty`, and the init of a container that joined a
//! pod's sandbox). The host's line discipline sends ^C, ^\, ^Z, window
//! changes and hangups to the session that has the terminal as its
//! controlling terminal; the process in the sandbox is not a host process,
//! so the host process that stands for it (the exec or init waiter)
//! takes the terminal and forwards those signals to the sentry, which
//! delivers them to the terminal's foreground group in the sandbox.

use std::os::fd::RawFd;
use std::path::PathBuf;

use nix::sys::signal::{SigSet, Signal};
use sentry::control::{ControlReply, ControlRequest};

use crate::container::ContainerDir;

const SIGNALS: [Signal; 5] = [
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTSTP,
    Signal::SIGWINCH,
    Signal::SIGHUP,
];

/// Makes `fd` (a terminal) the caller's controlling terminal, in a new
/// session. A terminal that is already another session's stays so: the
/// process then just gets no terminal signals, as before.
///
/// # Safety
/// Only for use in `pre_exec` (async-signal-safe syscalls only).
pub unsafe fn take_terminal(fd: RawFd) -> std::io::Result<()> {
    libc::setsid();
    libc::ioctl(fd, libc::TIOCSCTTY, 0);
    Ok(())
}

/// Starts a waiter (`rvisor --root ROOT ARGS...`, a host process that
/// stands for a process in the sandbox and exits as it does) in a session
/// of its own, so the client's terminal signals never reach it. With
/// `tty`, that terminal is its stdin and controlling terminal, whose
/// signals it forwards (see [`forward_signals`]).
pub fn spawn_waiter(
    g: &crate::cli::GlobalOpts,
    args: &[&str],
    tty: Option<std::os::fd::OwnedFd>,
) -> std::io::Result<std::process::Child> {
    use std::process::{Command, Stdio};
    let mut waiter = Command::new("/proc/self/exe");
    waiter.arg("--root").arg(&g.root);
    // Its stdout and stderr go nowhere: what goes wrong goes to the
    // caller's --log (containerd's), as the caller's own errors do.
    if let Some(log) = &g.log {
        waiter.arg("--log").arg(log);
        if matches!(g.log_format, crate::cli::LogFormat::Json) {
            waiter.args(["--log-format", "json"]);
        }
    }
    waiter
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let has_tty = tty.is_some();
    match tty {
        Some(tty) => waiter.stdin(tty),
        None => waiter.stdin(Stdio::null()),
    };
    // SAFETY: setsid and ioctl are async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut waiter, move || {
            if has_tty {
                take_terminal(0)
            } else {
                libc::setsid();
                Ok(())
            }
        });
    }
    waiter.spawn()
}

/// In a waiter whose stdin is its controlling terminal: forwards that
/// terminal's signals to process `pid` of container `id` (None: its
/// init). Call before any other thread starts, so all inherit the mask.
pub fn forward_signals(root: PathBuf, id: String, pid: Option<i32>) {
    // SAFETY: isatty only inspects our fd 0.
    if unsafe { libc::isatty(0) } != 1 {
        return;
    }
    let set = SigSet::from_iter(SIGNALS);
    if let Err(e) = set.thread_block() {
        tracing::warn!("blocking terminal signals: {e}");
        return;
    }
    let tty = nix::sys::stat::fstat(0).map_or(0, |st| st.st_rdev);
    let spawned = std::thread::Builder::new()
        .name("terminal-signals".into())
        .spawn(move || loop {
            let Ok(sig) = set.wait() else { return };
            let request = ControlRequest::TerminalSignal {
                signo: sig as i32,
                tty,
                pid,
            };
            let sent = ContainerDir::open(&root, &id)
                .and_then(|d| d.unlock())
                .and_then(|d| d.connect())
                .and_then(|mut s| {
                    sentry::control::write_message(&mut s, &request)?;
                    Ok(sentry::control::read_message::<ControlReply>(&mut s)?)
                });
            if let Err(e) = sent {
                tracing::debug!("forwarding {sig}: {e:#}");
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("starting the terminal signal thread: {e}");
    }
}
