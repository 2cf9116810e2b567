//! The sentry's control socket: how `rvisor start`, `kill`, `state`, `ps`
//! and `exec` reach a sandbox that `rvisor create` left running (runsc's
//! `urpc` control server plays this part in gVisor).
//!
//! The CLI binds a unix stream socket in the container's state directory
//! and hands the listening fd to the sentry. Each connection carries one
//! request and one reply, each a little-endian u32 length followed by that
//! many bytes of JSON. Everything read here comes from a client on the
//! host, so a malformed or oversized message only gets an error reply.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::kernel::pidns::PidNamespace;
use crate::kernel::task::ExecWait;
use crate::kernel::{self, kernel, lock, ProcEntry};
use crate::vfs::Vfs;

/// Largest message either side accepts.
pub const MAX_MESSAGE: usize = 1 << 20;
/// Most fds one request carries: stdio, 64 preserved fds, and a joining
/// container's gofer sockets, filestore and listener.
pub const MAX_FDS: usize = 253;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ControlRequest {
    /// Run the container's init: a sandbox made by `rvisor create` waits
    /// for this. `state` is the OCI state the startContainer hooks read.
    Start { state: String },
    /// Send a signal, from outside the sandbox, to the container's init or
    /// (`all`) to every process in it.
    Signal { signo: i32, all: bool },
    /// Send a signal, from outside the sandbox, to one process by its
    /// sandbox pid (an exec'd process, as `rvisor kill --pid`).
    SignalProcess { pid: i32, signo: i32 },
    /// Where the container is in its life.
    State,
    /// The sandbox's processes, for `rvisor ps`.
    Processes,
    /// Start another process in the sandbox (`rvisor exec`). The message
    /// carries fds (SCM_RIGHTS) that become its fds 0, 1, 2 (stdio) and 3,
    /// 4, ... (`--preserve-fds`).
    Exec { process: crate::ProcessSpec },
    /// Wait for an exec'd process to exit.
    Wait { pid: i32 },
    /// Add a container to this sandbox: a pod's app container joining the
    /// sentry its sandbox container started. `config` is what boot would
    /// take, its fd numbers being indexes into the fds sent with the
    /// request: 0, 1, 2 the init's stdio, then the rootfs gofer's socket,
    /// the bind mounts' gofers, the preserved fds, and (`control_fd`) the
    /// listening socket the new container's commands come in on.
    CreateContainer { config: Box<crate::BootConfig> },
    /// Wait for the container's init to exit (what the host process that
    /// stands for a joined container's init waits on).
    WaitInit,
    /// End a joined container: kill its processes, drop its mounts and
    /// stop serving its socket. The sandbox goes on.
    Destroy,
    /// The container's resource use, for `events --stats` of a container
    /// that has no cgroup of its own (one that joined a sandbox).
    Usage,
    /// A signal a host terminal raised (^C, ^\, ^Z, a window change, a
    /// hangup) at the host process that holds it as its controlling
    /// terminal on behalf of a process in the sandbox: delivered to that
    /// terminal's foreground process group in the sandbox, as the line
    /// discipline would. `tty` is the terminal's device number; `pid` the
    /// sandbox process the terminal was given to (None: the container's
    /// init), whose group is the foreground one until the sandbox sets
    /// another with TIOCSPGRP.
    TerminalSignal {
        signo: i32,
        tty: u64,
        pid: Option<i32>,
    },
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ContainerStatus {
    Created,
    Running,
    /// Frozen by `rvisor pause` (the CLI sees this from the cgroup; a
    /// frozen sentry cannot answer).
    Paused,
    Stopped,
}

impl ContainerStatus {
    /// The OCI state's name for it.
    pub fn name(self) -> &'static str {
        match self {
            ContainerStatus::Created => "created",
            ContainerStatus::Running => "running",
            ContainerStatus::Paused => "paused",
            ContainerStatus::Stopped => "stopped",
        }
    }
}

/// One process as `rvisor ps` shows it (pids are the sandbox's own).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: i32,
    pub ppid: i32,
    pub uid: u32,
    pub cmd: String,
}

/// What a container's processes have used, as the sentry accounts it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContainerUsage {
    /// CPU time of its live processes (all their images) and of the
    /// children they reaped, in ns.
    pub cpu_ns: u64,
    /// Its live processes.
    pub pids: u64,
    /// The host processes (stubs) running its address spaces, for the
    /// host to read their memory use.
    pub host_pids: Vec<i32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum ControlReply {
    Done,
    State {
        status: ContainerStatus,
    },
    Processes(Vec<ProcessInfo>),
    /// The exec'd process's pid in the sandbox.
    Exec {
        pid: i32,
    },
    /// Its wait status.
    Exited {
        status: i32,
    },
    Usage(ContainerUsage),
    Error(String),
}

#[derive(Debug, Error)]
pub enum ControlError {
    #[error("control socket I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("control message of {0} bytes is larger than {MAX_MESSAGE}")]
    TooLarge(usize),
    #[error("malformed control message: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("a control message carried more than {MAX_FDS} fds")]
    TooManyFds,
}

/// Writes one length-prefixed JSON message.
pub fn write_message<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<(), ControlError> {
    let body = serde_json::to_vec(msg)?;
    if body.len() > MAX_MESSAGE {
        return Err(ControlError::TooLarge(body.len()));
    }
    w.write_all(&(body.len() as u32).to_le_bytes())?;
    w.write_all(&body)?;
    w.flush()?;
    Ok(())
}

/// Reads one length-prefixed JSON message.
pub fn read_message<T: DeserializeOwned>(r: &mut impl Read) -> Result<T, ControlError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_MESSAGE {
        return Err(ControlError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(serde_json::from_slice(&body)?)
}

/// Sends one request with `fds` attached (SCM_RIGHTS on its first bytes).
pub fn send_with_fds<T: Serialize>(
    s: &mut UnixStream,
    msg: &T,
    fds: &[std::os::fd::RawFd],
) -> Result<(), ControlError> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    use std::os::fd::AsRawFd;
    let mut buf = Vec::new();
    write_message(&mut buf, msg)?;
    let iov = [std::io::IoSlice::new(&buf)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let sent = sendmsg::<()>(
        s.as_raw_fd(),
        &iov,
        if fds.is_empty() { &[] } else { &cmsg },
        MsgFlags::empty(),
        None,
    )
    .map_err(std::io::Error::from)?;
    s.write_all(&buf[sent..])?;
    Ok(())
}

/// Reads one request and any fds that came with it (stdio and up to 64
/// preserved fds).
fn recv_with_fds<T: DeserializeOwned>(
    s: &mut UnixStream,
) -> Result<(T, Vec<OwnedFd>), ControlError> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::AsRawFd;
    let mut len = [0u8; 4];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; MAX_FDS]);
    let (got, fds) = {
        let mut iov = [std::io::IoSliceMut::new(&mut len)];
        let msg = recvmsg::<()>(
            s.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(std::io::Error::from)?;
        let mut fds = Vec::new();
        for c in msg.cmsgs().map_err(std::io::Error::from)? {
            if let ControlMessageOwned::ScmRights(rs) = c {
                for r in rs {
                    // SAFETY: the kernel just installed these fds for us.
                    fds.push(unsafe { OwnedFd::from_raw_fd(r) });
                }
            }
        }
        // Some fds did not fit (those that did close with `fds`).
        if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
            return Err(ControlError::TooManyFds);
        }
        (msg.bytes, fds)
    };
    if got == 0 {
        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
    }
    s.read_exact(&mut len[got..])?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_MESSAGE {
        return Err(ControlError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    Ok((serde_json::from_slice(&body)?, fds))
}

/// What the sentry does before the container's init runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    Waiting,
    Started,
    /// Killed by this signal before it started.
    Killed(i32),
    /// A startContainer hook failed: the sentry ends once the client has
    /// been told why.
    Failing,
}

/// The created → running transition, shared by the boot thread and the
/// control server.
pub struct StartGate {
    state: Mutex<Gate>,
    cv: Condvar,
}

/// How waiting for `start` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    Start,
    /// The container was signalled before it started; the sentry exits as
    /// if its init had died of this signal.
    Killed(i32),
}

impl StartGate {
    fn new(open: bool) -> Arc<Self> {
        Arc::new(StartGate {
            state: Mutex::new(if open { Gate::Started } else { Gate::Waiting }),
            cv: Condvar::new(),
        })
    }

    /// Blocks until `start` or a fatal signal arrives.
    pub fn wait(&self) -> StartOutcome {
        let mut g = lock(&self.state);
        loop {
            match *g {
                Gate::Started => return StartOutcome::Start,
                Gate::Killed(sig) => return StartOutcome::Killed(sig),
                Gate::Waiting | Gate::Failing => {
                    g = self.cv.wait(g).unwrap_or_else(|e| e.into_inner())
                }
            }
        }
    }

    fn get(&self) -> Gate {
        *lock(&self.state)
    }

    fn set(&self, from: Gate, to: Gate) -> bool {
        let mut g = lock(&self.state);
        if *g != from {
            return false;
        }
        *g = to;
        self.cv.notify_all();
        true
    }
}

/// One container of the sandbox as its control socket serves it.
struct ContainerCtl {
    /// `Process::container` of its processes (0: the first container).
    index: u32,
    gate: Arc<StartGate>,
    hooks: Vec<crate::StartHook>,
    /// Its mount namespace: where its execs and hooks run.
    ns: Arc<Vfs>,
    /// Its pid namespace, if it has one of its own.
    pidns: Option<Arc<PidNamespace>>,
    /// The CPU time `Usage` last reported: the counter never goes back
    /// when a process (and its time) leaves the tree.
    cpu_reported: std::sync::atomic::AtomicU64,
    /// Set for a container that joined the sandbox after the first.
    joined: Option<Joined>,
}

/// What a joined container has beyond the first's: its init is not the
/// sentry's own child, so its life is tracked here.
struct Joined {
    /// The init, resolved at create and started at start.
    prepared: Mutex<Option<crate::PreparedProcess>>,
    life: Mutex<JoinedLife>,
    cv: Condvar,
    /// Set by Destroy: it starts nothing more, and its socket is no longer
    /// served.
    destroyed: AtomicBool,
}

#[derive(Default)]
struct JoinedLife {
    init_pid: Option<i32>,
    /// The init's wait status, once it exited (or the container was
    /// killed before it started, or destroyed).
    exit: Option<i32>,
}

impl Joined {
    fn set_exit(&self, status: i32) {
        let mut life = lock(&self.life);
        if life.exit.is_none() {
            life.exit = Some(status);
        }
        self.cv.notify_all();
    }
}

/// Numbers for containers that join the sandbox.
static NEXT_CONTAINER: AtomicU32 = AtomicU32::new(1);

/// Starts serving the first container's listening socket `fd` on a
/// thread of its own. `started` says whether the init runs without
/// waiting for `start`.
pub fn serve(fd: i32, started: bool, hooks: Vec<crate::StartHook>) -> Arc<StartGate> {
    let gate = StartGate::new(started);
    // SAFETY: the CLI handed the sentry this listening socket for its sole use.
    let listener = UnixListener::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let ctl = Arc::new(ContainerCtl {
        index: 0,
        gate: gate.clone(),
        hooks,
        ns: kernel().vfs.clone(),
        pidns: None,
        cpu_reported: Default::default(),
        joined: None,
    });
    if let Err(e) = serve_listener(listener, ctl) {
        tracing::error!("{e}");
    }
    gate
}

fn serve_listener(listener: UnixListener, ctl: Arc<ContainerCtl>) -> Result<(), String> {
    // Polled, not blocked on, so a destroyed container's loop notices and
    // ends (accepted connections are blocking: accept4 does not inherit
    // O_NONBLOCK).
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("control socket: {e}"))?;
    std::thread::Builder::new()
        .name(format!("control-{}", ctl.index))
        .spawn(move || {
            use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
            use std::os::fd::AsFd;
            while !ctl.destroyed() {
                let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
                match poll(&mut fds, PollTimeout::from(500u16)) {
                    Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!("control socket poll: {e}");
                        std::thread::sleep(std::time::Duration::from_millis(10));
                        continue;
                    }
                }
                match listener.accept() {
                    Ok((stream, _)) => serve_in_thread(stream, &ctl),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => {
                        tracing::warn!("control socket accept: {e}");
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                }
            }
        })
        .map(|_| ())
        .map_err(|e| format!("starting the control server: {e}"))
}

impl ContainerCtl {
    fn destroyed(&self) -> bool {
        self.joined
            .as_ref()
            .is_some_and(|j| j.destroyed.load(Ordering::SeqCst))
    }

    /// Whether `e` is one of this container's live processes.
    fn owns(&self, e: &ProcEntry) -> bool {
        e.zombie.is_none() && e.proc.container == self.index
    }

    /// Its init's sandbox pid, once started.
    fn init_pid(&self) -> Option<i32> {
        match &self.joined {
            None => Some(1),
            Some(j) => lock(&j.life).init_pid,
        }
    }
}

/// Serves a control connection on a thread of its own (a wait lasts as
/// long as its process). A thread that cannot be made (the sandbox's
/// cgroup at its pids limit) is tried again for a while; a connection
/// dropped without a reply would read, to a waiter, as its process killed.
fn serve_in_thread(stream: UnixStream, ctl: &Arc<ContainerCtl>) {
    let slot = Arc::new(Mutex::new(Some(stream)));
    for attempt in 0..50 {
        let (slot2, ctl2) = (slot.clone(), ctl.clone());
        let spawned = std::thread::Builder::new()
            .name("control-conn".into())
            .spawn(move || {
                if let Some(stream) = lock(&slot2).take() {
                    serve_connection(stream, &ctl2);
                }
            });
        match spawned {
            Ok(_) => return,
            Err(e) => {
                if attempt == 0 {
                    tracing::warn!("control connection: no thread for it yet: {e}");
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
    let left = lock(&slot).take();
    if let Some(mut stream) = left {
        tracing::error!("control connection: no thread for it; refused");
        let _ = write_message(
            &mut stream,
            &ControlReply::Error("the sandbox cannot make a thread to serve this".into()),
        );
    }
}

fn serve_connection(mut stream: UnixStream, ctl: &Arc<ContainerCtl>) {
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    let reply = match recv_with_fds::<ControlRequest>(&mut stream) {
        Ok((req, fds)) => {
            tracing::debug!("control request for container {}: {req:?}", ctl.index);
            if matches!(req, ControlRequest::Wait { .. } | ControlRequest::WaitInit) {
                // Waits last as long as the process.
                let _ = stream.set_read_timeout(None);
            }
            handle(req, fds, ctl)
        }
        Err(e) => ControlReply::Error(e.to_string()),
    };
    let _ = write_message(&mut stream, &reply);
    // After a failed startContainer hook: the reply is out, now end.
    if ctl.gate.set(Gate::Failing, Gate::Killed(libc::SIGKILL)) {
        if let Some(j) = &ctl.joined {
            j.set_exit(libc::SIGKILL);
        }
    }
}

/// Signals that do nothing to a process that has not run yet (their
/// default action is to ignore, or to continue).
fn harmless_before_start(sig: i32) -> bool {
    matches!(
        sig,
        libc::SIGCHLD | libc::SIGCONT | libc::SIGURG | libc::SIGWINCH
    )
}

fn handle(req: ControlRequest, fds: Vec<OwnedFd>, ctl: &Arc<ContainerCtl>) -> ControlReply {
    let gate = &ctl.gate;
    if ctl.destroyed()
        && matches!(
            req,
            ControlRequest::Start { .. }
                | ControlRequest::Exec { .. }
                | ControlRequest::CreateContainer { .. }
        )
    {
        return ControlReply::Error("the container was deleted".into());
    }
    match req {
        ControlRequest::Start { state } => {
            if gate.get() == Gate::Waiting {
                // startContainer hooks run before the init; a failure ends
                // the container (runtime spec, lifecycle step 7).
                for (i, h) in ctl.hooks.iter().enumerate() {
                    if let Err(e) = run_start_hook(ctl, h, &state) {
                        gate.set(Gate::Waiting, Gate::Failing);
                        return ControlReply::Error(format!(
                            "error running startContainer hook #{i}: {e}"
                        ));
                    }
                }
            }
            if !gate.set(Gate::Waiting, Gate::Started) {
                return ControlReply::Error(format!(
                    "cannot start a container that is {}",
                    status(ctl).name()
                ));
            }
            match &ctl.joined {
                Some(_) => start_joined(ctl),
                None => {
                    // Answer once the init exists, as runc's start returns
                    // after the process is running: a `state` or second
                    // `start` right after must not find a started
                    // container without a pid 1.
                    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                    while !lock(&kernel().tree).procs.contains_key(&1)
                        && std::time::Instant::now() < deadline
                    {
                        std::thread::sleep(std::time::Duration::from_micros(200));
                    }
                    ControlReply::Done
                }
            }
        }
        ControlRequest::Signal { signo, all } => {
            if !(1..kernel::signals::NSIG as i32).contains(&signo) {
                return ControlReply::Error(format!("invalid signal {signo}"));
            }
            match gate.get() {
                Gate::Waiting => {
                    if !harmless_before_start(signo)
                        && signo != libc::SIGSTOP
                        && gate.set(Gate::Waiting, Gate::Killed(signo))
                    {
                        if let Some(j) = &ctl.joined {
                            j.set_exit(signo);
                        }
                    }
                    ControlReply::Done
                }
                Gate::Killed(_) | Gate::Failing => {
                    ControlReply::Error("container is not running".into())
                }
                Gate::Started => {
                    let init = ctl.init_pid();
                    signal_from_host(
                        signo,
                        |pid, e| ctl.owns(e) && (all || Some(pid) == init),
                        || "container is not running".into(),
                    )
                }
            }
        }
        ControlRequest::SignalProcess { pid, signo } => {
            if !(1..kernel::signals::NSIG as i32).contains(&signo) {
                return ControlReply::Error(format!("invalid signal {signo}"));
            }
            signal_from_host(
                signo,
                |p, e| p == pid && ctl.owns(e),
                || format!("no such process: {pid}"),
            )
        }
        ControlRequest::State => ControlReply::State {
            status: status(ctl),
        },
        ControlRequest::Processes => ControlReply::Processes(processes(ctl)),
        ControlRequest::Exec { process } => {
            if status(ctl) != ContainerStatus::Running {
                return ControlReply::Error(
                    "cannot exec in a stopped or not started container".into(),
                );
            }
            exec(ctl, &process, fds)
        }
        ControlRequest::Wait { pid } => match crate::kernel::task::wait_exec_process(pid, None) {
            ExecWait::Exited(status) => ControlReply::Exited { status },
            _ => ControlReply::Error(format!("no exec'd process {pid} to wait for")),
        },
        ControlRequest::CreateContainer { config } => match create_joined(*config, fds) {
            Ok(()) => ControlReply::Done,
            Err(e) => ControlReply::Error(e),
        },
        ControlRequest::WaitInit => match &ctl.joined {
            Some(j) => {
                let mut life = lock(&j.life);
                loop {
                    if let Some(status) = life.exit {
                        return ControlReply::Exited { status };
                    }
                    life = j.cv.wait(life).unwrap_or_else(|p| p.into_inner());
                }
            }
            None => {
                ControlReply::Error("the sandbox's own init is the sentry's to wait for".into())
            }
        },
        ControlRequest::Usage => ControlReply::Usage(usage(ctl)),
        ControlRequest::TerminalSignal { signo, tty, pid } => {
            if !(1..kernel::signals::NSIG as i32).contains(&signo) {
                return ControlReply::Error(format!("invalid signal {signo}"));
            }
            let k = kernel();
            let group = k.host_tty_foreground(tty).or_else(|| {
                let pid = pid.or_else(|| ctl.init_pid())?;
                let tree = lock(&k.tree);
                tree.procs.get(&pid).filter(|e| ctl.owns(e)).map(|e| e.pgid)
            });
            match group {
                Some(pgid) => {
                    k.signal_process_group(pgid, signo);
                    ControlReply::Done
                }
                None => ControlReply::Error("no process of this terminal is running".into()),
            }
        }
        ControlRequest::Destroy => match &ctl.joined {
            Some(j) => {
                destroy_joined(ctl, j);
                ControlReply::Done
            }
            None => {
                ControlReply::Error("the sandbox's first container ends with the sandbox".into())
            }
        },
    }
}

/// Adds a container to the sandbox (see [`ControlRequest::CreateContainer`]):
/// its mount namespace from the donated gofer sockets, its init resolved
/// (so a missing command fails `create`, as with runc), and its own
/// control socket served.
fn create_joined(config: crate::BootConfig, fds: Vec<OwnedFd>) -> Result<(), String> {
    let mut fds: Vec<Option<OwnedFd>> = fds.into_iter().map(Some).collect();
    let mut take = |i: i32| {
        usize::try_from(i)
            .ok()
            .and_then(|i| fds.get_mut(i))
            .and_then(Option::take)
    };
    let listener = config
        .control_fd
        .and_then(&mut take)
        .ok_or("no control socket for the new container")?;
    if config.seccomp.is_some() {
        // The sentry enforces one profile for the whole sandbox.
        tracing::warn!(
            "a joined container's seccomp profile is not enforced apart from the sandbox's"
        );
    }
    // The CRI's default: a pid namespace per container (a pod that shares
    // one names the sandbox's, and gets its numbering).
    let pidns = config.own_pid_namespace.then(PidNamespace::new);
    let ns = crate::build_mount_ns(&config, pidns.clone(), &mut take).map_err(|e| e.to_string())?;
    let mut stdio: Vec<Option<OwnedFd>> = (0..3).map(&mut take).collect();
    stdio.extend(config.preserved_fds.iter().map(|&i| take(i)));
    let k = kernel();
    let prepared =
        crate::prepare_process(k, &ns, &config.process, stdio).map_err(|e| e.to_string())?;
    let listener = UnixListener::from(listener);
    let ctl = Arc::new(ContainerCtl {
        index: NEXT_CONTAINER.fetch_add(1, Ordering::SeqCst),
        gate: StartGate::new(false),
        hooks: config.start_hooks.clone(),
        ns,
        pidns,
        cpu_reported: Default::default(),
        joined: Some(Joined {
            prepared: Mutex::new(Some(prepared)),
            life: Mutex::new(JoinedLife::default()),
            cv: Condvar::new(),
            destroyed: AtomicBool::new(false),
        }),
    });
    serve_listener(listener, ctl)
}

/// Runs a joined container's init, and watches it: when it exits, the
/// rest of its container dies with it (as a pid namespace's processes die
/// with its init).
fn start_joined(ctl: &Arc<ContainerCtl>) -> ControlReply {
    let Some(j) = &ctl.joined else {
        return ControlReply::Error("not a joined container".into());
    };
    let Some(p) = lock(&j.prepared).take() else {
        return ControlReply::Error("the container's init was already started".into());
    };
    let index = ctl.index;
    let pid = match start_in(ctl, p, true) {
        Ok(proc) => proc.pid,
        Err(e) => {
            j.set_exit(127 << 8);
            return ControlReply::Error(format!("starting the container's init: {e}"));
        }
    };
    lock(&j.life).init_pid = Some(pid);
    let watched = ctl.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("init-{index}"))
        .spawn(move || {
            let status = match crate::kernel::task::wait_exec_process(pid, None) {
                ExecWait::Exited(s) => s,
                _ => libc::SIGKILL,
            };
            kill_container(index);
            if let Some(j) = &watched.joined {
                j.set_exit(status);
            }
        });
    match spawned {
        Ok(_) => ControlReply::Done,
        Err(e) => ControlReply::Error(format!("watching the container's init: {e}")),
    }
}

/// Starts `p` without a parent in the container (its init, or not).
fn start_in(
    ctl: &ContainerCtl,
    p: crate::PreparedProcess,
    init: bool,
) -> std::io::Result<Arc<crate::kernel::Process>> {
    crate::kernel::task::start_exec_process(
        ctl.index,
        init,
        ctl.pidns.clone(),
        p.fs,
        p.creds,
        p.rlimits,
        p.fds,
        p.path,
        p.argv,
        p.envp,
    )
}

/// SIGKILLs every live process of container `index`, again and again
/// until none is left (a victim may fork as it dies), for at most 5 s.
fn kill_container(index: u32) {
    let k = kernel();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let victims: Vec<_> = k
            .live_processes()
            .into_iter()
            .filter(|p| p.container == index)
            .collect();
        if victims.is_empty() {
            return;
        }
        if std::time::Instant::now() >= deadline {
            tracing::warn!("container {index}: processes outlived SIGKILL");
            return;
        }
        for p in victims {
            k.kill_process(&p, libc::SIGKILL);
        }
        let tree = lock(&k.tree);
        let _ = k
            .tree_cv
            .wait_timeout(tree, std::time::Duration::from_millis(20));
    }
}

/// Ends a joined container: its processes are killed and gone when this
/// returns, its socket is no longer served, and with its last reference
/// its mounts (and so its gofers' sockets) go.
fn destroy_joined(ctl: &ContainerCtl, j: &Joined) {
    // From here on it starts nothing (Start and Exec refuse), so killing
    // until none is left ends it, even if a victim forks as it dies.
    j.destroyed.store(true, Ordering::SeqCst);
    ctl.gate.set(Gate::Waiting, Gate::Killed(libc::SIGKILL));
    lock(&j.prepared).take();
    kill_container(ctl.index);
    j.set_exit(libc::SIGKILL);
    // Its accept loop sees `destroyed` and ends, dropping the socket and,
    // with the last reference, the container's mounts.
}

/// Runs one startContainer hook in the container with `state` on its
/// stdin and the sentry's stderr, within its timeout.
fn run_start_hook(ctl: &ContainerCtl, h: &crate::StartHook, state: &str) -> Result<(), String> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| e.to_string())?;
    // The state is far smaller than a pipe's buffer.
    std::fs::File::from(w)
        .write_all(state.as_bytes())
        .map_err(|e| e.to_string())?;
    let err = nix::unistd::dup(2)
        .ok()
        // SAFETY: dup just made this fd for us alone.
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
    let out = err.as_ref().and_then(|e| e.try_clone().ok());
    let proc = spawn_process(ctl, &h.process, vec![Some(r), out, err])?;
    let deadline = h
        .timeout_secs
        .filter(|t| *t > 0)
        .map(|t| std::time::Instant::now() + std::time::Duration::from_secs(t));
    match crate::kernel::task::wait_exec_process(proc.pid, deadline) {
        ExecWait::Exited(0) => Ok(()),
        ExecWait::Exited(s) if s & 0x7f == 0 => Err(format!("exit status {}", (s >> 8) & 0xff)),
        ExecWait::Exited(s) => Err(format!("killed by signal {}", s & 0x7f)),
        ExecWait::TimedOut => {
            kernel().kill_process(&proc, libc::SIGKILL);
            Err("timed out".into())
        }
        ExecWait::Unknown => Err("the hook's process vanished".into()),
    }
}

/// Starts a parentless process in the container (exec, startContainer
/// hooks) with `stdio` as its fds 0, 1, 2, ...
fn spawn_process(
    ctl: &ContainerCtl,
    spec: &crate::ProcessSpec,
    stdio: Vec<Option<OwnedFd>>,
) -> Result<Arc<crate::kernel::Process>, String> {
    let p = crate::prepare_process(kernel(), &ctl.ns, spec, stdio).map_err(|e| e.to_string())?;
    start_in(ctl, p, false).map_err(|e| format!("starting the process: {e}"))
}

fn exec(ctl: &ContainerCtl, spec: &crate::ProcessSpec, fds: Vec<OwnedFd>) -> ControlReply {
    let mut stdio: Vec<Option<OwnedFd>> = fds.into_iter().map(Some).collect();
    if stdio.len() < 3 {
        stdio.resize_with(3, || None);
    }
    match spawn_process(ctl, spec, stdio) {
        Ok(proc) => ControlReply::Exec { pid: proc.pid },
        Err(e) => ControlReply::Error(e),
    }
}

fn status(ctl: &ContainerCtl) -> ContainerStatus {
    match ctl.gate.get() {
        Gate::Waiting => ContainerStatus::Created,
        Gate::Killed(_) | Gate::Failing => ContainerStatus::Stopped,
        Gate::Started => match &ctl.joined {
            Some(j) if lock(&j.life).exit.is_some() => ContainerStatus::Stopped,
            Some(_) => ContainerStatus::Running,
            None => {
                let k = kernel();
                let tree = lock(&k.tree);
                match tree.procs.get(&1) {
                    Some(e) if e.zombie.is_none() => ContainerStatus::Running,
                    _ => ContainerStatus::Stopped,
                }
            }
        },
    }
}

/// Sends `signo` from outside the sandbox to every live process `wanted`
/// picks (by pid and tree entry); `if_none` says why, when there is none.
/// The siginfo holds si_signo only (si_code SI_USER, si_pid 0, as for a
/// sender in an ancestor pid namespace).
fn signal_from_host(
    signo: i32,
    wanted: impl Fn(i32, &ProcEntry) -> bool,
    if_none: impl FnOnce() -> String,
) -> ControlReply {
    let k = kernel();
    let targets: Vec<_> = {
        let tree = lock(&k.tree);
        tree.procs
            .iter()
            .filter(|(pid, e)| e.zombie.is_none() && wanted(**pid, e))
            .map(|(_, e)| e.proc.clone())
            .collect()
    };
    if targets.is_empty() {
        return ControlReply::Error(if_none());
    }
    let mut info = [0u8; 128];
    info[0..4].copy_from_slice(&signo.to_le_bytes());
    for p in targets {
        k.send_signal_from_host(&p, signo, info);
    }
    ControlReply::Done
}

/// The container's resource use (see [`ContainerUsage`]).
fn usage(ctl: &ContainerCtl) -> ContainerUsage {
    let procs: Vec<_> = kernel()
        .live_processes()
        .into_iter()
        .filter(|p| p.container == ctl.index)
        .collect();
    let mut u = ContainerUsage {
        pids: procs.len() as u64,
        ..Default::default()
    };
    let mut cpu_ns = 0;
    for p in &procs {
        let earlier = *lock(&p.rusage_self);
        let reaped = *lock(&p.rusage_children);
        let us = earlier.utime_us + earlier.stime_us + reaped.utime_us + reaped.stime_us;
        cpu_ns += us.max(0) as u64 * 1000;
        // A vfork child runs on its parent's stub: counted there.
        if p.vm_guest.load(Ordering::SeqCst) {
            continue;
        }
        cpu_ns += p.cpu_ns();
        let host = p.stub_tgid.load(Ordering::SeqCst);
        if host > 0 && !u.host_pids.contains(&host) {
            u.host_pids.push(host);
        }
    }
    let before = ctl.cpu_reported.fetch_max(cpu_ns, Ordering::SeqCst);
    u.cpu_ns = before.max(cpu_ns);
    u
}

/// The container's live processes.
fn processes(ctl: &ContainerCtl) -> Vec<ProcessInfo> {
    let k = kernel();
    let tree = lock(&k.tree);
    tree.procs
        .iter()
        .filter(|(_, e)| ctl.owns(e))
        .map(|(pid, e)| {
            let exe = lock(&e.proc.exe);
            let cmd = exe
                .argv
                .iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ");
            ProcessInfo {
                pid: *pid,
                ppid: e.ppid,
                uid: lock(&e.proc.creds).ruid,
                cmd,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_bad_input_is_an_error() {
        let mut buf = Vec::new();
        let req = ControlRequest::Start {
            state: "{\"status\":\"created\"}".into(),
        };
        write_message(&mut buf, &req).expect("write");
        let back: ControlRequest = read_message(&mut buf.as_slice()).expect("read");
        assert_eq!(format!("{back:?}"), format!("{req:?}"));

        let huge = (MAX_MESSAGE as u32 + 1).to_le_bytes();
        assert!(matches!(
            read_message::<ControlRequest>(&mut huge.as_slice()),
            Err(ControlError::TooLarge(_))
        ));
        let mut junk = 5u32.to_le_bytes().to_vec();
        junk.extend_from_slice(b"{{{{{");
        assert!(matches!(
            read_message::<ControlRequest>(&mut junk.as_slice()),
            Err(ControlError::Malformed(_))
        ));
        let short = 10u32.to_le_bytes();
        assert!(matches!(
            read_message::<ControlRequest>(&mut short.as_slice()),
            Err(ControlError::Io(_))
        ));
    }
}
