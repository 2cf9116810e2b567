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
use std::sync::{Arc, Condvar, Mutex};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::kernel::task::ExecWait;
use crate::kernel::{self, kernel, lock};

/// Largest message either side accepts.
pub const MAX_MESSAGE: usize = 1 << 20;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
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
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 67]);
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

/// Starts serving the listening socket `fd` on a thread of its own.
/// `started` says whether the init runs without waiting for `start`.
pub fn serve(fd: i32, started: bool, hooks: Vec<crate::StartHook>) -> Arc<StartGate> {
    let gate = StartGate::new(started);
    let hooks = Arc::new(hooks);
    // SAFETY: the CLI handed the sentry this listening socket for its sole use.
    let listener = UnixListener::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let g = gate.clone();
    let spawned = std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(stream) => {
                        let g = g.clone();
                        let hooks = hooks.clone();
                        let _ = std::thread::Builder::new()
                            .name("control-conn".into())
                            .spawn(move || serve_connection(stream, &g, &hooks));
                    }
                    Err(e) => {
                        tracing::warn!("control socket accept: {e}");
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("starting the control server: {e}");
    }
    gate
}

fn serve_connection(mut stream: UnixStream, gate: &StartGate, hooks: &[crate::StartHook]) {
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(10)));
    let reply = match recv_with_fds::<ControlRequest>(&mut stream) {
        Ok((req, fds)) => {
            tracing::debug!("control request {req:?}");
            if matches!(req, ControlRequest::Wait { .. }) {
                // Waits last as long as the process.
                let _ = stream.set_read_timeout(None);
            }
            handle(req, fds, gate, hooks)
        }
        Err(e) => ControlReply::Error(e.to_string()),
    };
    let _ = write_message(&mut stream, &reply);
    // After a failed startContainer hook: the reply is out, now end.
    gate.set(Gate::Failing, Gate::Killed(libc::SIGKILL));
}

/// Signals that do nothing to a process that has not run yet (their
/// default action is to ignore, or to continue).
fn harmless_before_start(sig: i32) -> bool {
    matches!(
        sig,
        libc::SIGCHLD | libc::SIGCONT | libc::SIGURG | libc::SIGWINCH
    )
}

fn handle(
    req: ControlRequest,
    fds: Vec<OwnedFd>,
    gate: &StartGate,
    hooks: &[crate::StartHook],
) -> ControlReply {
    match req {
        ControlRequest::Start { state } => {
            if gate.get() == Gate::Waiting {
                // startContainer hooks run before the init; a failure ends
                // the container (runtime spec, lifecycle step 7).
                for (i, h) in hooks.iter().enumerate() {
                    if let Err(e) = run_start_hook(h, &state) {
                        gate.set(Gate::Waiting, Gate::Failing);
                        return ControlReply::Error(format!(
                            "error running startContainer hook #{i}: {e}"
                        ));
                    }
                }
            }
            if gate.set(Gate::Waiting, Gate::Started) {
                // Answer once the init exists, as runc's start returns after
                // the process is running: a `state` or second `start` right
                // after must not find a started container without a pid 1.
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                while !lock(&kernel().tree).procs.contains_key(&1)
                    && std::time::Instant::now() < deadline
                {
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
                ControlReply::Done
            } else {
                ControlReply::Error(format!(
                    "cannot start a container that is {}",
                    status(gate).name()
                ))
            }
        }
        ControlRequest::Signal { signo, all } => {
            if !(1..kernel::signals::NSIG as i32).contains(&signo) {
                return ControlReply::Error(format!("invalid signal {signo}"));
            }
            match gate.get() {
                Gate::Waiting => {
                    if !harmless_before_start(signo) && signo != libc::SIGSTOP {
                        gate.set(Gate::Waiting, Gate::Killed(signo));
                    }
                    ControlReply::Done
                }
                Gate::Killed(_) | Gate::Failing => {
                    ControlReply::Error("container is not running".into())
                }
                Gate::Started => signal_from_host(
                    signo,
                    |pid| all || pid == 1,
                    || "container is not running".into(),
                ),
            }
        }
        ControlRequest::SignalProcess { pid, signo } => {
            if !(1..kernel::signals::NSIG as i32).contains(&signo) {
                return ControlReply::Error(format!("invalid signal {signo}"));
            }
            signal_from_host(signo, |p| p == pid, || format!("no such process: {pid}"))
        }
        ControlRequest::State => ControlReply::State {
            status: status(gate),
        },
        ControlRequest::Processes => ControlReply::Processes(processes()),
        ControlRequest::Exec { process } => {
            if status(gate) != ContainerStatus::Running {
                return ControlReply::Error(
                    "cannot exec in a stopped or not started container".into(),
                );
            }
            exec(&process, fds)
        }
        ControlRequest::Wait { pid } => match crate::kernel::task::wait_exec_process(pid, None) {
            ExecWait::Exited(status) => ControlReply::Exited { status },
            _ => ControlReply::Error(format!("no exec'd process {pid} to wait for")),
        },
    }
}

/// Runs one startContainer hook in the sandbox with `state` on its stdin
/// and the sentry's stderr, within its timeout.
fn run_start_hook(h: &crate::StartHook, state: &str) -> Result<(), String> {
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
    let proc = spawn_process(&h.process, vec![Some(r), out, err])?;
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

/// Starts a parentless process in the sandbox (exec, startContainer
/// hooks) with `stdio` as its fds 0, 1, 2, ...
fn spawn_process(
    spec: &crate::ProcessSpec,
    stdio: Vec<Option<OwnedFd>>,
) -> Result<Arc<crate::kernel::Process>, String> {
    let p = crate::prepare_process(kernel(), spec, stdio).map_err(|e| e.to_string())?;
    crate::kernel::task::start_exec_process(p.fs, p.creds, p.rlimits, p.fds, p.path, p.argv, p.envp)
        .map_err(|e| format!("starting the process: {e}"))
}

fn exec(spec: &crate::ProcessSpec, fds: Vec<OwnedFd>) -> ControlReply {
    let mut stdio: Vec<Option<OwnedFd>> = fds.into_iter().map(Some).collect();
    if stdio.len() < 3 {
        stdio.resize_with(3, || None);
    }
    match spawn_process(spec, stdio) {
        Ok(proc) => ControlReply::Exec { pid: proc.pid },
        Err(e) => ControlReply::Error(e),
    }
}

fn status(gate: &StartGate) -> ContainerStatus {
    match gate.get() {
        Gate::Waiting => ContainerStatus::Created,
        Gate::Killed(_) | Gate::Failing => ContainerStatus::Stopped,
        Gate::Started => {
            let k = kernel();
            let tree = lock(&k.tree);
            match tree.procs.get(&1) {
                Some(e) if e.zombie.is_none() => ContainerStatus::Running,
                _ => ContainerStatus::Stopped,
            }
        }
    }
}

/// A signal from outside the sandbox: SI_USER from pid 0 (the sender is in
/// an ancestor pid namespace), uid 0.
/// Sends `signo` from outside the sandbox to every live process whose pid
/// is `wanted`; `if_none` says why, when there is none. The siginfo holds
/// si_signo only (si_code SI_USER, si_pid 0, as for a sender in an
/// ancestor pid namespace).
fn signal_from_host(
    signo: i32,
    wanted: impl Fn(i32) -> bool,
    if_none: impl FnOnce() -> String,
) -> ControlReply {
    let k = kernel();
    let targets: Vec<_> = {
        let tree = lock(&k.tree);
        tree.procs
            .iter()
            .filter(|(pid, e)| e.zombie.is_none() && wanted(**pid))
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

fn processes() -> Vec<ProcessInfo> {
    let k = kernel();
    let tree = lock(&k.tree);
    tree.procs
        .iter()
        .filter(|(_, e)| e.zombie.is_none())
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
        assert_eq!(back, req);

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
