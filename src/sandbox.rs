//! Starting a sandbox: the gofer, then the sentry in fresh namespaces,
//! both re-executed from /proc/self/exe (the runsc pattern).

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use nix::sched::CloneFlags;

use crate::cli::GlobalOpts;

/// Moves `fd` to `target` in a child between fork and exec, clearing
/// close-on-exec so the next program inherits it.
///
/// # Safety
/// Only for use in `pre_exec` (async-signal-safe syscalls only).
unsafe fn place_fd(fd: RawFd, target: RawFd) -> std::io::Result<()> {
    if fd == target {
        if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    } else if libc::dup2(fd, target) < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

fn global_args(g: &GlobalOpts) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(d) = &g.debug_log {
        v.push("--debug-log".to_string());
        v.push(d.display().to_string());
    }
    if g.strace {
        v.push("--strace".into());
    }
    if g.debug {
        v.push("--debug".into());
    }
    v
}

/// Starts a gofer serving `root` (a directory, or a single file for a file
/// bind mount). Returns it and the sentry's end of its socket.
fn spawn_gofer(
    g: &GlobalOpts,
    root: &Path,
    read_only: bool,
    log_name: &str,
) -> Result<(std::process::Child, OwnedFd)> {
    let (sentry_end, gofer_end) =
        gofer::client::socketpair().context("creating the gofer socket")?;
    let gofer_fd = gofer_end.as_raw_fd();
    let mut gofer_cmd = Command::new("/proc/self/exe");
    gofer_cmd
        .args(global_args(g))
        .arg("gofer")
        .arg("--rootfs")
        .arg(root)
        .arg("--sock-fd")
        .arg("3")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    if read_only {
        gofer_cmd.arg("--read-only");
    }
    if let Some(dir) = &g.debug_log {
        gofer_cmd.stderr(crate::logging::open_log(dir, log_name)?);
    }
    // SAFETY: pre_exec runs between fork and exec; we only call
    // async-signal-safe syscalls (dup2, fcntl, unshare, prctl).
    unsafe {
        gofer_cmd.pre_exec(move || {
            place_fd(gofer_fd, 3)?;
            nix::sched::unshare(CloneFlags::CLONE_NEWNS).map_err(std::io::Error::from)?;
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
            Ok(())
        });
    }
    let gofer = gofer_cmd
        .spawn()
        .with_context(|| format!("starting the gofer for {}", root.display()))?;
    drop(gofer_end);
    Ok((gofer, sentry_end))
}

/// Where the sentry finds its first bind-mount gofer socket (then 6, 7...).
const FIRST_BIND_FD: RawFd = 5;

/// Runs a sandbox to completion and returns the container init's wait
/// status. `binds` are the spec's bind mounts, each served by its own
/// gofer confined to that source.
pub fn run_sandbox(
    g: &GlobalOpts,
    rootfs: &Path,
    read_only: bool,
    mut boot: sentry::BootConfig,
    binds: &[crate::bundle::BindSource],
) -> Result<i32> {
    let (mut gofer, sentry_end) = spawn_gofer(g, rootfs, read_only, "gofer")?;
    let mut bind_gofers = Vec::new();
    // The sentry's ends, moved far above the fds they will become.
    let mut bind_fds: Vec<OwnedFd> = Vec::new();
    for (i, b) in binds.iter().enumerate() {
        let (child, end) = spawn_gofer(g, &b.source, b.read_only, &format!("gofer-mount{i}"))?;
        bind_gofers.push(child);
        let high = nix::fcntl::fcntl(end.as_raw_fd(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(100))
            .context("moving a gofer socket")?;
        // SAFETY: F_DUPFD_CLOEXEC just created this fd for us alone.
        bind_fds.push(unsafe { OwnedFd::from_raw_fd(high) });
        let target = FIRST_BIND_FD + i as RawFd;
        if let Some(m) = boot.mounts.get_mut(b.mount) {
            m.kind = sentry::MountKind::Bind {
                gofer_fd: target,
                read_only: b.read_only,
            };
        }
    }
    let bind_raw: Vec<RawFd> = bind_fds.iter().map(|f| f.as_raw_fd()).collect();

    // The next child (the sentry) becomes pid 1 of a new pid namespace, so
    // the stubs it creates live and die with it.
    nix::sched::unshare(CloneFlags::CLONE_NEWPID)
        .context("creating the sandbox's pid namespace")?;
    let (status_r, status_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("status pipe")?;
    let sentry_fd = sentry_end.as_raw_fd();
    let status_fd = status_w.as_raw_fd();
    boot.gofer_fd = 3;
    let config = serde_json::to_string(&boot)?;
    let mut sentry_cmd = Command::new("/proc/self/exe");
    sentry_cmd
        .args(global_args(g))
        .arg("boot")
        .arg("--config")
        .arg(config)
        .arg("--status-fd")
        .arg("4");
    // SAFETY: as above.
    unsafe {
        sentry_cmd.pre_exec(move || {
            place_fd(sentry_fd, 3)?;
            place_fd(status_fd, 4)?;
            for (i, fd) in bind_raw.iter().enumerate() {
                place_fd(*fd, FIRST_BIND_FD + i as RawFd)?;
            }
            let ns = CloneFlags::CLONE_NEWNS
                | CloneFlags::CLONE_NEWIPC
                | CloneFlags::CLONE_NEWUTS
                | CloneFlags::CLONE_NEWNET;
            nix::sched::unshare(ns).map_err(std::io::Error::from)?;
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
            Ok(())
        });
    }
    let spawned = sentry_cmd.spawn();
    drop(sentry_end);
    drop(bind_fds);
    drop(status_w);
    let mut sentry = match spawned {
        Ok(c) => c,
        Err(e) => {
            for mut g in std::iter::once(gofer).chain(bind_gofers) {
                let _ = g.kill();
                let _ = g.wait();
            }
            return Err(e).context("starting the sentry");
        }
    };
    let sentry_exit = sentry.wait().context("waiting for the sentry")?;
    let mut buf = Vec::new();
    let _ = std::fs::File::from(status_r).read_to_end(&mut buf);
    // The gofers exit when the sentry's ends of their sockets close.
    let _ = gofer.wait();
    for mut g in bind_gofers {
        let _ = g.wait();
    }
    if buf.len() == 4 {
        return Ok(i32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]));
    }
    bail!("the sandbox failed before the container exited ({sentry_exit})")
}

/// Exits the way the container did: with its exit code, or killed by the
/// same signal (core dumps off), so a parent's wait sees the same status.
pub fn exit_like(status: i32) -> ! {
    if status & 0x7f == 0 {
        std::process::exit((status >> 8) & 0xff);
    }
    let sig = status & 0x7f;
    // SAFETY: resetting our own signal state right before dying.
    unsafe {
        let r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &r);
        libc::signal(sig, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::kill(libc::getpid(), sig);
    }
    std::process::exit(128 + sig);
}

/// Reads a raw fd number given on the command line into an owned fd.
pub fn owned_fd(fd: i32) -> Result<OwnedFd> {
    if nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).is_err() {
        bail!("fd {fd} is not open");
    }
    // SAFETY: the parent handed us this fd for our exclusive use.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
