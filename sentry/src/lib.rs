//! The rvisor sentry: a user-space implementation of the Linux system call
//! interface. Application code runs in stub processes on the ptrace
//! platform; every syscall it makes is emulated here, and files come from
//! the gofer. See docs/architecture.md for the layers.

pub mod control;
pub mod fsimpl;
pub mod kernel;
pub mod loader;
pub mod mm;
pub mod platform;
pub mod socket;
pub mod syscalls;
pub mod vfs;

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use nix::errno::Errno;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use fsimpl::gofer::Caching;
use fsimpl::host::{HostFile, HostKind};
use fsimpl::overlay::OverlayFs;
use kernel::fd_table::FdTable;
use kernel::{Credentials, FsContext, Kernel, KernelConfig, RLIM_NLIMITS};
use vfs::{FileType, Inode, OpenFile, Vfs};

/// Filesystems the sentry can mount at a spec mount's destination.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum MountKind {
    Proc,
    Dev,
    Sys,
    Tmpfs {
        mode: u32,
    },
    /// The sandbox's pseudo-terminals (/dev/pts).
    Devpts,
    /// A read-only cgroup v2 view of the sandbox's own cgroup.
    Cgroup,
    /// A bind mount served by its own gofer on `gofer_fd`. `read_only`
    /// mounts refuse writes; writes to writable ones reach the source.
    Bind {
        gofer_fd: i32,
        read_only: bool,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MountSpec {
    pub destination: String,
    pub kind: MountKind,
}

/// Everything the sentry needs to start a container, passed by the CLI.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BootConfig {
    /// The container's init.
    pub process: ProcessSpec,
    pub hostname: String,
    pub mounts: Vec<MountSpec>,
    /// The sentry's end of the gofer socket.
    pub gofer_fd: i32,
    /// A listening control socket to serve (see `control`), if any.
    #[serde(default)]
    pub control_fd: Option<i32>,
    /// Wait for a `Start` request on the control socket before running
    /// the init (`rvisor create`); otherwise run it at once.
    #[serde(default)]
    pub wait_for_start: bool,
    /// The spec's seccomp profile, enforced on every application syscall.
    #[serde(default)]
    pub seccomp: Option<kernel::seccomp::SeccompProfile>,
    /// `--preserve-fds`: sentry fds that become the init's fds 3, 4, ...
    #[serde(default)]
    pub preserved_fds: Vec<i32>,
    /// The spec's startContainer hooks.
    #[serde(default)]
    pub start_hooks: Vec<StartHook>,
    /// linux.maskedPaths: hidden behind /dev/null (files) or an empty
    /// read-only directory, as runc masks them.
    #[serde(default)]
    pub masked_paths: Vec<String>,
    /// linux.readonlyPaths: made read-only views of themselves.
    #[serde(default)]
    pub readonly_paths: Vec<String>,
    /// root.readonly: the container may not write its rootfs.
    #[serde(default)]
    pub root_readonly: bool,
    /// The rootfs is a live host tree (`rvisor do` over the host's root),
    /// whose files the host may write while the container runs, rather
    /// than an image that stays as it is.
    #[serde(default)]
    pub root_is_live: bool,
    /// Where the container's writes to its rootfs go.
    #[serde(default)]
    pub overlay: RootOverlay,
    /// `--overlay self`: an empty file, open read-write, on the rootfs's
    /// filesystem, holding the upper layer's file contents.
    #[serde(default)]
    pub filestore_fd: Option<i32>,
    /// linux.resources, as the cgroup view shows them.
    #[serde(default)]
    pub cgroup_limits: fsimpl::cgroupfs::CgroupLimits,
    /// The host cgroup's memory usage file, open read-only, for the cgroup
    /// view's memory.current.
    #[serde(default)]
    pub cgroup_usage_fd: Option<i32>,
    /// For a container joining a sandbox: whether it has a pid namespace
    /// of its own (the spec asks for a new one), or shares the sandbox's.
    #[serde(default)]
    pub own_pid_namespace: bool,
    /// What internet sockets are (`--network`).
    #[serde(default)]
    pub network: NetworkMode,
    /// The host network namespace the sentry runs in (the CLI enters it
    /// before starting the sentry).
    #[serde(default)]
    pub network_namespace: NetworkNamespace,
    /// The spec's network sysctls the sentry's stack honours.
    #[serde(default)]
    pub net_sysctls: NetSysctls,
}

/// Network sysctls (linux.sysctl in the spec) the sentry emulates; each
/// defaults to Linux's value in a new network namespace.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct NetSysctls {
    /// net.ipv4.ping_group_range: the groups allowed ping sockets
    /// (Linux's default "1 0" admits none).
    pub ping_group_range: (u32, u32),
}

impl Default for NetSysctls {
    fn default() -> Self {
        NetSysctls {
            ping_group_range: (1, 0),
        }
    }
}

/// `--network`, as runsc's: what an application's internet sockets are.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum NetworkMode {
    /// The sentry's own stack: the sandbox's loopback, and the network
    /// namespace's device when the spec names one by path.
    #[default]
    Sandbox,
    /// Host sockets the sentry opens in its network namespace.
    Host,
    /// Loopback only.
    None,
}

/// Which host network namespace the sentry lives in.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum NetworkNamespace {
    /// A new, empty one (only `lo`, down): the spec asks for a network
    /// namespace without a path, or the sandbox needs none of the host's.
    #[default]
    New,
    /// The one at this path (`linux.namespaces[].path`, e.g. a CNI netns).
    Path(String),
    /// The CLI's own (the spec has no network namespace: host networking).
    Inherit,
}

/// Where writes to the rootfs go (`--overlay`, as runsc's `--overlay2`).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum RootOverlay {
    /// An upper layer in the sentry's memory; the rootfs on the host is
    /// never changed (and its gofer serves it read-only).
    #[default]
    Memory,
    /// No overlay: writes reach the rootfs directory through the gofer, as
    /// with runc (what `podman commit` and `docker cp` expect).
    None,
    /// As `Memory`, but file contents live in a filestore file on the
    /// rootfs's own filesystem, so they do not pin the host's memory
    /// (runsc's `--overlay2=root:self`).
    SelfBacked,
}

#[derive(Debug, Error)]
pub enum BootError {
    #[error("creating the stub image: {0}")]
    StubImage(std::io::Error),
    #[error("connecting to the gofer: {0}")]
    Gofer(String),
    #[error("confining the sentry ({what}): {errno}")]
    Confine { what: &'static str, errno: Errno },
    #[error("the container's cwd {cwd:?}: {errno}")]
    Cwd { cwd: String, errno: Errno },
    #[error("no command given")]
    NoCommand,
    #[error("unable to start container process: exec: {cmd:?}: {reason}")]
    Exec { cmd: String, reason: String },
    #[error("wait_for_start needs a control socket")]
    NoControlSocket,
    #[error("starting the first task: {0}")]
    Task(std::io::Error),
}

/// Output for --strace.
pub type StraceSink = Box<dyn Write + Send>;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Boots the sandbox kernel, runs the container's init to completion and
/// returns its wait status. Call in a fresh mount namespace: the sentry
/// pivots into an empty, read-only tmpfs before running any application code.
///
/// `on_ready` runs once the sandbox is set up and, with `wait_for_start`,
/// about to wait for `start`: everything that can fail before the init
/// runs has been checked.
pub fn boot(
    cfg: BootConfig,
    strace: Option<StraceSink>,
    on_ready: impl FnOnce(),
) -> Result<i32, BootError> {
    if cfg.process.argv.is_empty() {
        return Err(BootError::NoCommand);
    }
    // A detached sandbox with a terminal is the session leader of that
    // terminal: its signals come to the sentry, to be forwarded. Block them
    // before any thread starts so every thread inherits the mask.
    // SAFETY: isatty only inspects our own fd 0.
    let host_tty = cfg.wait_for_start && unsafe { libc::isatty(0) } == 1;
    if host_tty {
        block_terminal_signals();
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    mm::init_vdso_layout(&std::fs::read_to_string("/proc/self/maps").unwrap_or_default());
    // The sentry holds host fds for the application's pipes, sockets and
    // mapped files: let it use as many as the host allows, so the
    // application meets its own RLIMIT_NOFILE first.
    {
        use nix::sys::resource::{getrlimit, setrlimit, Resource};
        let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok());
        let raised = nr_open.is_some_and(|n| setrlimit(Resource::RLIMIT_NOFILE, n, n).is_ok());
        if !raised {
            if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
                let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
            }
        }
    }
    // The sentry creates files on gofer mounts itself (fsimpl/directfs.rs)
    // with the modes the container's umask already shaped.
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    let stub_image = platform::stub_image::StubImage::create().map_err(BootError::StubImage)?;
    // SAFETY: the CLI handed the sentry these fds (the gofers' sockets,
    // the filestore, the cgroup usage file) for its sole use; each is
    // taken once.
    let vfs = build_mount_ns(&cfg, None, &mut |fd| {
        Some(unsafe { OwnedFd::from_raw_fd(fd) })
    })?;
    let mut stdio = take_stdio();
    for &fd in &cfg.preserved_fds {
        // SAFETY: the CLI handed us these fds for the init alone; one that
        // is not open is skipped.
        let open = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).is_ok();
        stdio.push(open.then(|| unsafe { OwnedFd::from_raw_fd(fd) }));
    }
    // `--network sandbox` in the container's own network namespace: the
    // sentry's stack takes over its device (before the host's filesystem,
    // and /proc/net/route with it, is given up).
    if cfg.network == NetworkMode::Sandbox
        && matches!(cfg.network_namespace, NetworkNamespace::Path(_))
    {
        match socket::netstack::discover() {
            Some(dev) => {
                let what = format!("{} {}/{}", dev.name, dev.addr, dev.prefix);
                match socket::netstack::start(dev) {
                    Ok(()) => tracing::info!("network: the sandbox's stack has {what}"),
                    Err(e) => tracing::warn!("network: loopback only: {e}"),
                }
            }
            None => tracing::info!("network: no device with an IPv4 address; loopback only"),
        }
    }
    if cfg.network == NetworkMode::Host {
        socket::procnet::open_host_files();
    }
    confine()?;
    let k = Kernel::install(
        vfs,
        stub_image,
        KernelConfig {
            hostname: cfg.hostname.clone(),
            network: cfg.network,
            ping_group_range: cfg.net_sysctls.ping_group_range,
            strace,
        },
        cpuinfo,
    );

    if let Some(p) = cfg.seccomp.clone() {
        kernel::seccomp::install(p);
    }
    if host_tty {
        host_tty_signals();
    }
    let prepared = prepare_process(k, &k.vfs, &cfg.process, stdio)?;
    if cfg.wait_for_start && cfg.control_fd.is_none() {
        return Err(BootError::NoControlSocket);
    }
    let gate = cfg
        .control_fd
        .map(|fd| control::serve(fd, !cfg.wait_for_start, cfg.start_hooks.clone()));
    on_ready();
    if let Some(gate) = gate {
        if let control::StartOutcome::Killed(sig) = gate.wait() {
            return Ok(sig);
        }
    }
    let p = prepared;
    kernel::task::start_init_process(p.fs, p.creds, p.rlimits, p.fds, p.path, p.argv, p.envp)
        .map_err(BootError::Task)?;
    let status = kernel::task::wait_for_init();
    // Like a pid namespace whose init died: everything else is killed.
    for p in k.live_processes() {
        k.kill_process(&p, libc::SIGKILL);
    }
    Ok(status)
}

/// Builds a container's mount namespace: its rootfs from the gofer on
/// `cfg.gofer_fd` (with the overlay `cfg` asks for), /proc, /dev, /sys,
/// the spec's mounts, then its read-only and masked paths. `take` turns
/// the fd numbers in `cfg` into the fds themselves (the sentry's own at
/// boot; those donated with the request for a container joining later).
pub(crate) fn build_mount_ns(
    cfg: &BootConfig,
    pidns: Option<Arc<kernel::pidns::PidNamespace>>,
    take: &mut dyn FnMut(i32) -> Option<OwnedFd>,
) -> Result<Arc<Vfs>, BootError> {
    let missing = |what: &str| BootError::Gofer(format!("no fd for {what}"));
    let sock = take(cfg.gofer_fd).ok_or_else(|| missing("the rootfs gofer"))?;
    let client =
        gofer::client::GoferClient::connect(sock).map_err(|e| BootError::Gofer(e.to_string()))?;
    let writable_root = cfg.overlay == RootOverlay::None && !cfg.root_readonly;
    // The image does not change under a running container: its walks
    // are remembered (as the in-memory overlay remembers them anyway), and
    // so are its attributes, but for the files of a live host tree.
    let caching = if cfg.root_is_live {
        Caching::Immutable
    } else {
        Caching::Frozen
    };
    let lower = fsimpl::gofer::GoferFs::mount(client, writable_root, caching)
        .map_err(|e| BootError::Gofer(e.to_string()))?;
    // root.readonly: the gofer's tree bare (writes give EROFS); so is
    // --overlay=none (writes reach the rootfs through the gofer);
    // otherwise an in-memory upper layer keeps the container's writes.
    let root: Arc<dyn Inode> = if cfg.root_readonly || cfg.overlay == RootOverlay::None {
        lower
    } else {
        let store = cfg
            .filestore_fd
            .and_then(&mut *take)
            .map(fsimpl::file_data::Filestore::new);
        OverlayFs::over(lower, store).map_err(|e| BootError::Gofer(e.to_string()))?
    };
    let vfs = Arc::new(Vfs::new(root));
    let mut cgroup_usage = cfg.cgroup_usage_fd.and_then(&mut *take);
    vfs.mount(b"/proc", fsimpl::proc::new_procfs(pidns.clone()));
    vfs.mount(b"/dev", fsimpl::dev::new_devfs());
    vfs.mount(b"/sys", Arc::new(fsimpl::simple::StaticDir::new(0o555)));
    for m in &cfg.mounts {
        let fs: Arc<dyn Inode> = match m.kind {
            MountKind::Proc => fsimpl::proc::new_procfs(pidns.clone()),
            MountKind::Dev => fsimpl::dev::new_devfs(),
            MountKind::Sys => Arc::new(fsimpl::simple::StaticDir::new(0o555)),
            MountKind::Tmpfs { mode } => OverlayFs::tmpfs(mode),
            MountKind::Devpts => fsimpl::devpts::PtsDir::new(),
            MountKind::Cgroup => fsimpl::readonly::ReadOnlyView::of(
                fsimpl::cgroupfs::new_cgroupfs(&cfg.cgroup_limits, cgroup_usage.take()),
            ),
            MountKind::Bind {
                gofer_fd,
                read_only,
            } => {
                let sock = take(gofer_fd).ok_or_else(|| missing(&m.destination))?;
                let client = gofer::client::GoferClient::connect(sock)
                    .map_err(|e| BootError::Gofer(format!("{}: {e}", m.destination)))?;
                // Writes to a writable bind reach its source, as with runc.
                fsimpl::gofer::GoferFs::mount(client, !read_only, Caching::Revalidate)
                    .map_err(|e| BootError::Gofer(format!("{}: {e}", m.destination)))?
            }
        };
        vfs.mount(m.destination.as_bytes(), fs);
    }
    // runc's order: read-only paths first, masks over them.
    readonly_paths(&vfs, &cfg.readonly_paths);
    mask_paths(&vfs, &cfg.masked_paths);
    Ok(vfs)
}

/// What a process started from outside the sandbox (the init, or one
/// `rvisor exec` adds) runs and runs as.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProcessSpec {
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: u32,
    /// (resource, soft, hard) overrides of the host's limits.
    pub rlimits: Vec<(u32, u64, u64)>,
    /// The spec's capability sets as bit masks (effective, permitted,
    /// inheritable, bounding, ambient); None gives Linux's defaults for
    /// the uid.
    #[serde(default)]
    pub capabilities: Option<[u64; 5]>,
    #[serde(default)]
    pub no_new_privileges: bool,
    /// The program to run, when it is not `argv[0]` looked up on PATH
    /// (hooks name theirs).
    #[serde(default)]
    pub path: Option<String>,
}

/// A startContainer hook: run inside the sandbox, with the container's
/// state on stdin, when `start` arrives and before the init runs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StartHook {
    pub process: ProcessSpec,
    pub timeout_secs: Option<u64>,
}

/// A process ready to start: everything resolved and checked.
pub(crate) struct PreparedProcess {
    pub fs: FsContext,
    pub creds: Credentials,
    pub rlimits: [libc::rlimit64; RLIM_NLIMITS],
    pub fds: FdTable,
    pub path: Vec<u8>,
    pub argv: Vec<Vec<u8>>,
    pub envp: Vec<Vec<u8>>,
}

/// Resolves `spec`'s cwd and command in the sandbox and builds its
/// credentials, limits and fd table (the host fds `stdio` become 0, 1, 2).
pub(crate) fn prepare_process(
    k: &Kernel,
    ns: &Arc<Vfs>,
    spec: &ProcessSpec,
    stdio: Vec<Option<OwnedFd>>,
) -> Result<PreparedProcess, BootError> {
    if spec.argv.is_empty() {
        return Err(BootError::NoCommand);
    }
    let root_loc = ns.root();
    make_cwd(ns, spec.cwd.as_bytes());
    let cwd = k
        .vfs
        .resolve(&root_loc, &root_loc, spec.cwd.as_bytes(), true)
        .and_then(|l| {
            if l.inode().file_type() == FileType::Directory {
                Ok(l)
            } else {
                Err(Errno::ENOTDIR)
            }
        })
        .map_err(|errno| BootError::Cwd {
            cwd: spec.cwd.clone(),
            errno,
        })?;
    let fs = FsContext {
        root: root_loc.clone(),
        cwd,
        umask: spec.umask & 0o777,
    };
    let creds = Credentials {
        ruid: spec.uid,
        euid: spec.uid,
        suid: spec.uid,
        rgid: spec.gid,
        egid: spec.gid,
        sgid: spec.gid,
        groups: spec.additional_gids.clone(),
        caps: match spec.capabilities {
            Some([effective, permitted, inheritable, bounding, ambient]) => kernel::Capabilities {
                effective,
                permitted,
                inheritable,
                bounding,
                ambient,
                keep_caps: false,
                no_new_privs: spec.no_new_privileges,
            },
            None => kernel::Capabilities {
                no_new_privs: spec.no_new_privileges,
                ..kernel::Capabilities::for_uid(spec.uid)
            },
        },
    };
    let mut rlimits = [libc::rlimit64 {
        rlim_cur: 0,
        rlim_max: 0,
    }; RLIM_NLIMITS];
    for (i, r) in rlimits.iter_mut().enumerate() {
        // SAFETY: getrlimit64 fills a struct we own.
        unsafe { libc::getrlimit64(i as _, r) };
    }
    for (res, soft, hard) in &spec.rlimits {
        if let Some(r) = rlimits.get_mut(*res as usize) {
            *r = libc::rlimit64 {
                rlim_cur: *soft,
                rlim_max: *hard,
            };
        }
    }
    let mut fds = FdTable::default();
    for (i, fd) in stdio.into_iter().enumerate() {
        if let Some(fd) = fd {
            let acc = match nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL) {
                Ok(fl) => fl & (libc::O_ACCMODE | libc::O_APPEND),
                Err(_) => libc::O_RDWR,
            };
            let file = OpenFile::with_display(
                Arc::new(HostFile::new(fd, HostKind::Stdio)),
                format!("host:[{i}]").into_bytes(),
                acc,
            );
            fds.install(i as i32, file, false);
        }
    }
    let argv: Vec<Vec<u8>> = spec.argv.iter().map(|s| s.as_bytes().to_vec()).collect();
    let envp: Vec<Vec<u8>> = spec.env.iter().map(|s| s.as_bytes().to_vec()).collect();
    // The command must exist and be executable now, so `create` and `exec`
    // fail as runc's do, with runc's message.
    let cmd = spec.path.as_deref().map(str::as_bytes).unwrap_or(&argv[0]);
    let path = resolve_command(k, &fs, cmd, &spec.env).map_err(|reason| BootError::Exec {
        cmd: String::from_utf8_lossy(cmd).into_owned(),
        reason,
    })?;
    Ok(PreparedProcess {
        fs,
        creds,
        rlimits,
        fds,
        path,
        argv,
        envp,
    })
}

/// Covers each masked path that exists: a file with the sandbox's
/// /dev/null, a directory with an empty read-only one. Paths that do not
/// exist are left alone (runc skips them too).
/// linux.readonlyPaths: each existing path becomes a read-only view of
/// itself, as runc remounts it read-only (missing paths are skipped).
fn readonly_paths(vfs: &Arc<Vfs>, paths: &[String]) {
    let root = vfs.root();
    for p in paths {
        let Ok(loc) = vfs.resolve(&root, &root, p.as_bytes(), true) else {
            continue;
        };
        let view = fsimpl::readonly::ReadOnlyView::of(loc.inode().clone());
        vfs.mount(&loc.path(), view);
    }
}

fn mask_paths(vfs: &Arc<Vfs>, paths: &[String]) {
    let root = vfs.root();
    for p in paths {
        let Ok(loc) = vfs.resolve(&root, &root, p.as_bytes(), true) else {
            continue;
        };
        let cover: Arc<dyn Inode> = if loc.inode().file_type() == FileType::Directory {
            Arc::new(fsimpl::simple::StaticDir::new(0o555))
        } else {
            fsimpl::dev::DevNode::new(fsimpl::dev::DevKind::Null)
        };
        vfs.mount(p.as_bytes(), cover);
    }
}

/// The host terminal's job-control signals.
const TERMINAL_SIGNALS: [i32; 5] = [
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTSTP,
    libc::SIGWINCH,
    libc::SIGHUP,
];

fn terminal_sigset() -> nix::sys::signal::SigSet {
    let mut set = nix::sys::signal::SigSet::empty();
    for s in TERMINAL_SIGNALS {
        if let Ok(sig) = nix::sys::signal::Signal::try_from(s) {
            set.add(sig);
        }
    }
    set
}

fn block_terminal_signals() {
    if let Err(e) = terminal_sigset().thread_block() {
        tracing::warn!("blocking terminal signals: {e}");
    }
}

/// Forwards what the host terminal sends the sentry (^C, ^\, ^Z, window
/// changes, hangup) to the sandbox's foreground process group of that
/// terminal, as the kernel's line discipline would.
fn host_tty_signals() {
    let tty = syscalls::host_tty_id(0);
    let spawned = std::thread::Builder::new()
        .name("host-tty-signals".into())
        .spawn(move || {
            let set = terminal_sigset();
            loop {
                match set.wait() {
                    Ok(sig) => {
                        let k = kernel::kernel();
                        let group = k.host_tty_foreground(tty).unwrap_or(1);
                        k.signal_process_group(group, sig as i32);
                    }
                    Err(e) => {
                        tracing::warn!("waiting for terminal signals: {e}");
                        return;
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("starting the terminal signal thread: {e}");
    }
}

/// Creates a missing cwd (mode 0755, owned by root), as runc does; in
/// the sandbox's own filesystem view, so the image on the host is never
/// touched. Failures are left for the cwd check to report.
fn make_cwd(ns: &Arc<Vfs>, cwd: &[u8]) {
    let root = ns.root();
    let mut path = Vec::new();
    for comp in cwd.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        let parent = match ns.resolve(
            &root,
            &root,
            if path.is_empty() { b"/" } else { &path },
            true,
        ) {
            Ok(p) => p,
            Err(_) => return,
        };
        path.push(b'/');
        path.extend_from_slice(comp);
        match ns.resolve(&root, &root, &path, true) {
            Ok(_) => continue,
            Err(Errno::ENOENT) => {
                let ctx = vfs::CreateCtx {
                    uid: 0,
                    gid: 0,
                    privileged: true,
                };
                if parent.inode().mkdir(comp, 0o755, ctx).is_err() {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

/// Duplicates the sentry's stdio for the container (fds 0-2 may be closed).
fn take_stdio() -> Vec<Option<OwnedFd>> {
    (0..3)
        .map(|fd| {
            nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))
                .ok()
                // SAFETY: F_DUPFD_CLOEXEC returned a new fd that only we own.
                .map(|n| unsafe { OwnedFd::from_raw_fd(n) })
        })
        .collect()
}

/// Finds the program to run: a path with a slash as is, else the first
/// executable regular file along the container's PATH (as runc does). The
/// error is runc's wording of why it cannot be run.
fn resolve_command(
    k: &Kernel,
    fs: &FsContext,
    cmd: &[u8],
    env: &[String],
) -> Result<Vec<u8>, String> {
    let executable = |path: &[u8]| -> Result<(), Errno> {
        let loc = k.vfs.resolve(&fs.root, &fs.cwd, path, true)?;
        let st = loc.inode().stat()?;
        if loc.inode().file_type() == FileType::Regular && st.mode & 0o111 != 0 {
            Ok(())
        } else {
            Err(Errno::EACCES)
        }
    };
    if cmd.contains(&b'/') {
        let shown = String::from_utf8_lossy(cmd);
        return match executable(cmd) {
            Ok(()) => Ok(cmd.to_vec()),
            Err(Errno::EACCES) => Err("permission denied".into()),
            Err(e) => Err(format!("stat {shown}: {}", errno_text(e))),
        };
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let mut cand = dir.as_bytes().to_vec();
        cand.push(b'/');
        cand.extend_from_slice(cmd);
        if executable(&cand).is_ok() {
            return Ok(cand);
        }
    }
    Err("executable file not found in $PATH".into())
}

/// An errno as Go's syscall package words it (what runc prints).
fn errno_text(e: Errno) -> String {
    let s = e.desc();
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Gives up the host filesystem: pivot_root into an empty tmpfs, made
/// read-only, in the sentry's own mount namespace.
fn confine() -> Result<(), BootError> {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    let err = |what: &'static str| move |errno: Errno| BootError::Confine { what, errno };
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(err("make / private"))?;
    mount(
        Some("rvisor-sentry"),
        "/tmp",
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("size=64k,mode=0555"),
    )
    .map_err(err("mount empty tmpfs"))?;
    nix::unistd::chdir("/tmp").map_err(err("chdir"))?;
    nix::unistd::pivot_root(".", ".").map_err(err("pivot_root"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(err("detach old root"))?;
    nix::unistd::chdir("/").map_err(err("chdir /"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(err("remount read-only"))?;
    Ok(())
}
