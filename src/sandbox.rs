//! Starting a sandbox: the gofer, then the sentry in fresh namespaces,
//! both re-executed from /proc/self/exe (the runsc pattern).

use std::ffi::CString;
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
    v.push(
        match g.platform {
            crate::cli::Platform::Notif => "--platform=notif",
            crate::cli::Platform::Systrap => "--platform=systrap",
            crate::cli::Platform::Ptrace => "--platform=ptrace",
        }
        .into(),
    );
    v
}

/// Starts a gofer serving `root` (a directory, or a single file for a file
/// bind mount). Returns it and the sentry's end of its socket.
fn spawn_gofer(
    g: &GlobalOpts,
    root: &Path,
    read_only: bool,
    log_name: &str,
    foreground: bool,
    cgroup_procs: &[CString],
) -> Result<(std::process::Child, OwnedFd)> {
    let cgroup_procs = cgroup_procs.to_vec();
    let (sentry_end, gofer_end) =
        gofer::client::socketpair().context("creating the gofer socket")?;
    let gofer_fd = gofer_end.as_raw_fd();
    let mut gofer_cmd = Command::new("/proc/self/exe");
    gofer_cmd
        .arg0("rvisor-gofer")
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
    match &g.debug_log {
        Some(dir) => {
            gofer_cmd.stderr(crate::logging::open_log(dir, log_name)?);
        }
        // A detached gofer must not hold the container's stderr open.
        None if !foreground => {
            gofer_cmd.stderr(Stdio::null());
        }
        None => {}
    }
    // SAFETY: pre_exec runs between fork and exec; we only call
    // async-signal-safe syscalls (dup2, fcntl, unshare, prctl).
    unsafe {
        gofer_cmd.pre_exec(move || {
            place_fd(gofer_fd, 3)?;
            join_cgroups(&cgroup_procs)?;
            nix::sched::unshare(CloneFlags::CLONE_NEWNS).map_err(std::io::Error::from)?;
            // A foreground gofer dies with the CLI; a detached one exits
            // when the sentry closes its socket.
            if foreground {
                libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                );
            }
            Ok(())
        });
    }
    let gofer = gofer_cmd
        .spawn()
        .with_context(|| format!("starting the gofer for {}", root.display()))?;
    drop(gofer_end);
    Ok((gofer, sentry_end))
}

/// Joins the cgroups whose `cgroup.procs` files are given, so a process
/// is inside them before it runs anything.
///
/// # Safety
/// Only for use in `pre_exec` (async-signal-safe syscalls only).
unsafe fn join_cgroups(files: &[CString]) -> std::io::Result<()> {
    for f in files {
        let fd = libc::open(f.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let n = libc::write(fd, b"0".as_ptr().cast(), 1);
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if n != 1 {
            return Err(err);
        }
    }
    Ok(())
}

/// Where the sentry finds its first bind-mount gofer socket (then 7, 8...).
const FIRST_BIND_FD: RawFd = 6;
/// Where the sentry finds its control socket.
const CONTROL_FD: RawFd = 5;

/// How the sandbox's processes relate to the CLI that starts them.
pub enum Launch {
    /// `run` and `do`: the CLI waits for the sandbox, which dies with it,
    /// and reads the init's wait status from a pipe.
    Foreground,
    /// `create`: the sandbox outlives the CLI, serves `listener` (the
    /// control socket) and waits for `start`; the sentry exits with the
    /// init's exit code (128+N for a signal). `stdio`, if given (a
    /// terminal), replaces the CLI's stdin, stdout and stderr. The sentry
    /// reports on `ready` when it is set up or why it failed.
    Detached {
        listener: OwnedFd,
        stdio: Option<OwnedFd>,
        /// Gets "ready", or "error: ..." if boot fails.
        ready: OwnedFd,
        /// Gets the init's wait status when the sentry ends (for `wait`).
        exit_file: OwnedFd,
        /// `--preserve-fds`: become the init's fds 3, 4, ...
        preserved: Vec<OwnedFd>,
    },
}

/// A started sandbox: the sentry (pid 1 of its pid namespace) and gofers.
pub struct Sandbox {
    pub sentry: std::process::Child,
    pub gofers: Vec<std::process::Child>,
    /// Foreground only: where the sentry writes the init's wait status.
    status: Option<OwnedFd>,
}

impl Sandbox {
    /// Kills a sandbox that failed to come up.
    pub fn kill(self) {
        kill_all(std::iter::once(self.sentry).chain(self.gofers));
    }
}

/// Kills and reaps children that are no longer wanted.
pub fn kill_all(children: impl IntoIterator<Item = std::process::Child>) {
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// The `--overlay self` filestore: an unnamed file (O_TMPFILE) in the
/// rootfs directory, so the container's writes take disk space on the
/// filesystem that holds its image, never a name in it, and vanish with
/// the sandbox.
pub fn create_filestore(rootfs: &Path) -> Result<OwnedFd> {
    let fd = nix::fcntl::open(
        rootfs,
        // O_EXCL: no linkat through /proc can ever give it a name.
        nix::fcntl::OFlag::O_TMPFILE
            | nix::fcntl::OFlag::O_EXCL
            | nix::fcntl::OFlag::O_RDWR
            | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .with_context(|| {
        format!(
            "--overlay self: creating the filestore in {} (the rootfs's filesystem must be \
             writable and support O_TMPFILE)",
            rootfs.display()
        )
    })?;
    // SAFETY: open just returned this fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The sandbox cgroup's memory usage file (v2's memory.current, or v1's
/// memory.usage_in_bytes beside the memory controller's cgroup.procs), for
/// the container's cgroup view.
fn open_memory_usage(cgroup_procs: &[CString]) -> Option<OwnedFd> {
    cgroup_procs.iter().find_map(|procs| {
        use std::os::unix::ffi::OsStrExt;
        let dir = Path::new(std::ffi::OsStr::from_bytes(procs.as_bytes())).parent()?;
        ["memory.current", "memory.usage_in_bytes"]
            .iter()
            .find_map(|f| std::fs::File::open(dir.join(f)).ok())
            .map(OwnedFd::from)
    })
}

/// Starts the gofers of one container: one for its rootfs, one per bind
/// mount (each confined to that source), pushing them onto `gofers`.
/// Returns the sentry's ends of their sockets: the rootfs's, then the
/// binds' in order.
pub fn start_gofers(
    g: &GlobalOpts,
    rootfs: &Path,
    boot: &sentry::BootConfig,
    binds: &[crate::bundle::BindSource],
    foreground: bool,
    cgroup_procs: &[CString],
    gofers: &mut Vec<std::process::Child>,
) -> Result<(OwnedFd, Vec<OwnedFd>)> {
    // The rootfs gofer refuses writes unless they are meant to reach the
    // rootfs, so a compromised sentry cannot change an image it only reads.
    let read_only = boot.root_readonly || boot.overlay != sentry::RootOverlay::None;
    let (gofer, sentry_end) = spawn_gofer(g, rootfs, read_only, "gofer", foreground, cgroup_procs)?;
    gofers.push(gofer);
    let mut bind_fds = Vec::new();
    for (i, b) in binds.iter().enumerate() {
        let (child, end) = spawn_gofer(
            g,
            &b.source,
            b.read_only,
            &format!("gofer-mount{i}"),
            foreground,
            cgroup_procs,
        )?;
        gofers.push(child);
        bind_fds.push(end);
    }
    Ok((sentry_end, bind_fds))
}

/// Starts the gofers and the sentry. `binds` are the spec's bind mounts,
/// each served by its own gofer confined to that source.
pub fn start_sandbox(
    g: &GlobalOpts,
    rootfs: &Path,
    mut boot: sentry::BootConfig,
    binds: &[crate::bundle::BindSource],
    launch: Launch,
    cgroup_procs: &[CString],
) -> Result<Sandbox> {
    let foreground = matches!(launch, Launch::Foreground);
    let mut gofers = Vec::new();
    let filestore = if boot.overlay == sentry::RootOverlay::SelfBacked && !boot.root_readonly {
        // `rvisor do` runs on the host's own root, whose filesystem is not
        // the place for scratch data: its filestore goes with temp files.
        let store_dir = if rootfs == Path::new("/") {
            std::env::temp_dir()
        } else {
            rootfs.to_path_buf()
        };
        match create_filestore(&store_dir) {
            Ok(fd) => Some(high_fd(&fd)?),
            Err(e) => {
                // Nothing is lost: the same overlay, in memory.
                tracing::warn!("{e:#}; keeping the container's rootfs writes in memory instead");
                boot.overlay = sentry::RootOverlay::Memory;
                None
            }
        }
    } else {
        None
    };
    let (sentry_end, bind_fds) = match start_gofers(
        g,
        rootfs,
        &boot,
        binds,
        foreground,
        cgroup_procs,
        &mut gofers,
    ) {
        Ok(v) => v,
        Err(e) => {
            kill_all(gofers);
            return Err(e);
        }
    };
    // The sentry's ends, moved far above the fds they will become.
    let bind_fds = bind_fds.iter().map(high_fd).collect::<Result<Vec<_>>>()?;
    for (i, b) in binds.iter().enumerate() {
        if let Some(m) = boot.mounts.get_mut(b.mount) {
            m.kind = sentry::MountKind::Bind {
                gofer_fd: FIRST_BIND_FD + i as RawFd,
                read_only: b.read_only,
            };
        }
    }
    let bind_raw: Vec<RawFd> = bind_fds.iter().map(|f| f.as_raw_fd()).collect();

    // The next child (the sentry) becomes pid 1 of a new pid namespace, so
    // the stubs it creates live and die with it. Later children of the CLI
    // (hooks) go back to the CLI's own namespace.
    let own_pid_ns =
        std::fs::File::open("/proc/self/ns/pid").context("opening our pid namespace")?;
    nix::sched::unshare(CloneFlags::CLONE_NEWPID)
        .context("creating the sandbox's pid namespace")?;
    let _restore = scopeguard_pid_ns(own_pid_ns);
    let (status_r, status_w) = if foreground {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("status pipe")?;
        (Some(r), Some(w))
    } else {
        (None, None)
    };
    let (control, stdio, ready, exit_file, preserved) = match launch {
        Launch::Foreground => (None, None, None, None, Vec::new()),
        Launch::Detached {
            listener,
            stdio,
            ready,
            exit_file,
            preserved,
        } => (
            Some(high_fd(&listener)?),
            stdio,
            Some(high_fd(&ready)?),
            Some(high_fd(&exit_file)?),
            preserved.iter().map(high_fd).collect::<Result<Vec<_>>>()?,
        ),
    };
    let preserved_raw: Vec<RawFd> = preserved.iter().map(|f| f.as_raw_fd()).collect();
    let preserved_base = FIRST_BIND_FD + binds.len() as RawFd + 1;
    boot.preserved_fds = (0..preserved_raw.len() as RawFd)
        .map(|i| preserved_base + i)
        .collect();
    let filestore_raw = filestore.as_ref().map(|f| f.as_raw_fd());
    let filestore_target = preserved_base + preserved_raw.len() as RawFd;
    boot.filestore_fd = filestore_raw.map(|_| filestore_target);
    let usage = open_memory_usage(cgroup_procs)
        .map(|f| high_fd(&f))
        .transpose()?;
    let usage_raw = usage.as_ref().map(|f| f.as_raw_fd());
    let usage_target = filestore_target + 1;
    boot.cgroup_usage_fd = usage_raw.map(|_| usage_target);
    let exit_raw = exit_file.as_ref().map(|f| f.as_raw_fd());
    let exit_target = FIRST_BIND_FD + binds.len() as RawFd;
    let ready_raw = ready.as_ref().map(|f| f.as_raw_fd());
    let control_raw = control.as_ref().map(|f| f.as_raw_fd());
    let status_raw = status_w.as_ref().map(|f| f.as_raw_fd());
    boot.gofer_fd = 3;
    boot.control_fd = control_raw.map(|_| CONTROL_FD);
    boot.wait_for_start = !foreground;
    let config = serde_json::to_string(&boot)?;
    let mut sentry_cmd = Command::new("/proc/self/exe");
    sentry_cmd
        .arg0("rvisor-sentry")
        .args(global_args(g))
        .arg("boot")
        .arg("--config")
        .arg(config);
    if status_raw.is_some() {
        sentry_cmd.arg("--status-fd").arg("4");
    }
    if ready_raw.is_some() {
        sentry_cmd.arg("--ready-fd").arg("4");
    }
    if exit_raw.is_some() {
        sentry_cmd.arg("--exit-fd").arg(exit_target.to_string());
    }
    if let Some(tty) = &stdio {
        sentry_cmd
            .stdin(tty.try_clone()?)
            .stdout(tty.try_clone()?)
            .stderr(tty.try_clone()?);
    }
    let sentry_fd = sentry_end.as_raw_fd();
    let sentry_cgroups = cgroup_procs.to_vec();
    // The network namespace the sentry lives in: the spec's, by path, for
    // host networking and for the sentry's own stack (which takes over its
    // device); the host's only for host networking when the spec shares
    // it; otherwise a new, empty one.
    let netns = match (boot.network, &boot.network_namespace) {
        (sentry::NetworkMode::Host, sentry::NetworkNamespace::Inherit) => None,
        (
            sentry::NetworkMode::Host | sentry::NetworkMode::Sandbox,
            sentry::NetworkNamespace::Path(p),
        ) => {
            Some(Some(std::fs::File::open(p).with_context(|| {
                format!("opening the network namespace {p}")
            })?))
        }
        _ => Some(None),
    };
    let join_netns = netns
        .as_ref()
        .and_then(|n| n.as_ref().map(|f| f.as_raw_fd()));
    let new_netns = matches!(netns, Some(None));
    let has_tty = stdio.is_some();
    // SAFETY: as above.
    unsafe {
        sentry_cmd.pre_exec(move || {
            // First: the fds placed below may land on this one's number.
            if let Some(fd) = join_netns {
                if libc::setns(fd, libc::CLONE_NEWNET) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            place_fd(sentry_fd, 3)?;
            join_cgroups(&sentry_cgroups)?;
            if let Some(fd) = status_raw.or(ready_raw) {
                place_fd(fd, 4)?;
            }
            if let Some(fd) = control_raw {
                place_fd(fd, CONTROL_FD)?;
            }
            for (i, fd) in bind_raw.iter().enumerate() {
                place_fd(*fd, FIRST_BIND_FD + i as RawFd)?;
            }
            if let Some(fd) = exit_raw {
                place_fd(fd, exit_target)?;
            }
            for (i, fd) in preserved_raw.iter().enumerate() {
                place_fd(*fd, preserved_base + i as RawFd)?;
            }
            if let Some(fd) = filestore_raw {
                place_fd(fd, filestore_target)?;
            }
            if let Some(fd) = usage_raw {
                place_fd(fd, usage_target)?;
            }
            let mut ns =
                CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS;
            if new_netns {
                ns |= CloneFlags::CLONE_NEWNET;
            }
            nix::sched::unshare(ns).map_err(std::io::Error::from)?;
            if new_netns {
                // A new namespace's lo is down; runc brings it up, and
                // host networking's 127.0.0.1 needs it.
                loopback_up();
            }
            if foreground {
                libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                );
            } else {
                // Detached: a session of its own, so the client's terminal
                // signals and hangups do not reach it. With a terminal of
                // its own (the console), the sentry leads that terminal's
                // session and forwards its signals to the sandbox.
                libc::setsid();
                if has_tty {
                    libc::ioctl(0, libc::TIOCSCTTY, 0);
                }
            }
            Ok(())
        });
    }
    let spawned = sentry_cmd.spawn();
    drop(netns);
    drop(sentry_end);
    drop(bind_fds);
    drop(status_w);
    drop(control);
    drop(ready);
    drop(exit_file);
    drop(preserved);
    match spawned {
        Ok(sentry) => Ok(Sandbox {
            sentry,
            gofers,
            status: status_r,
        }),
        Err(e) => {
            kill_all(gofers);
            Err(e).context("starting the sentry")
        }
    }
}

/// Sets `lo` up in the calling thread's network namespace. Called between
/// fork and exec: only system calls, on a stack buffer.
fn loopback_up() {
    // SAFETY: socket/ioctl/close on our own fd and ifreq-sized buffer.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return;
        }
        let mut req = [0u8; 40];
        req[..2].copy_from_slice(b"lo");
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, req.as_mut_ptr()) == 0 {
            let flags = i16::from_ne_bytes([req[16], req[17]]) | libc::IFF_UP as i16;
            req[16..18].copy_from_slice(&flags.to_ne_bytes());
            libc::ioctl(fd, libc::SIOCSIFFLAGS, req.as_mut_ptr());
        }
        libc::close(fd);
    }
}

/// Puts the CLI's later children back into the CLI's own pid namespace
/// when dropped.
fn scopeguard_pid_ns(ns: std::fs::File) -> impl Drop {
    struct Restore(std::fs::File);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Err(e) = nix::sched::setns(&self.0, CloneFlags::CLONE_NEWPID) {
                tracing::warn!("returning to our pid namespace: {e}");
            }
        }
    }
    Restore(ns)
}

/// Duplicates `fd` above the range the sentry's fixed fds use, so placing
/// those cannot clobber it.
fn high_fd(fd: &OwnedFd) -> Result<OwnedFd> {
    let high = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(100))
        .context("moving a sandbox fd")?;
    // SAFETY: F_DUPFD_CLOEXEC just created this fd for us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(high) })
}

/// Runs a sandbox to completion in the foreground and returns the
/// container init's wait status.
pub fn run_sandbox(
    g: &GlobalOpts,
    rootfs: &Path,
    boot: sentry::BootConfig,
    binds: &[crate::bundle::BindSource],
    cgroup_procs: &[CString],
) -> Result<i32> {
    let mut sb = start_sandbox(g, rootfs, boot, binds, Launch::Foreground, cgroup_procs)?;
    let sentry_exit = sb.sentry.wait().context("waiting for the sentry")?;
    let mut buf = Vec::new();
    if let Some(r) = sb.status.take() {
        let _ = std::fs::File::from(r).read_to_end(&mut buf);
    }
    // The gofers exit when the sentry's ends of their sockets close.
    for mut c in sb.gofers {
        let _ = c.wait();
    }
    if buf.len() == 4 {
        return Ok(i32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]));
    }
    bail!("the sandbox failed before the container exited ({sentry_exit})")
}

/// A wait status as an exit code, the way conmon and containerd's shim
/// report it: the code, or 128+N for a fatal signal N.
pub fn exit_code(status: i32) -> i32 {
    if status & 0x7f == 0 {
        (status >> 8) & 0xff
    } else {
        128 + (status & 0x7f)
    }
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
