//! Containers that join a pod's sandbox (design §1): a CRI app container
//! runs in the sentry its pod's sandbox container started, with a rootfs,
//! mounts, stdio and control socket of its own, and the sandbox's IPC,
//! UTS and (so far) pid namespace.
//!
//! `create` starts gofers for the container's rootfs and bind mounts and
//! hands their sockets to the sentry (`CreateContainer` on the sandbox's
//! control socket), with a listening socket in the container's own state
//! directory: every later command (`start`, `state`, `kill`, `exec`, `ps`)
//! talks to that socket and so reaches only this container. The init is
//! not a host process, so a small host process stands for it: it waits
//! for the init's exit (`WaitInit`) and exits the same way. Its pid is
//! what `--pid-file` gets, for containerd's shim and conmon to wait on.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;

use anyhow::{bail, Context, Result};
use sentry::control::{ContainerStatus, ControlReply, ControlRequest};

use crate::cli::{CreateArgs, GlobalOpts, IdArg};
use crate::container::{self, ContainerDir, HostProcess, Record};
use crate::{bundle, hooks, sandbox};

/// CRI annotations (containerd's, then CRI-O's) naming a container's kind
/// and its pod's sandbox.
const CONTAINER_TYPE: [&str; 2] = [
    "io.kubernetes.cri.container-type",
    "io.kubernetes.cri-o.ContainerType",
];
const SANDBOX_ID: [&str; 2] = [
    "io.kubernetes.cri.sandbox-id",
    "io.kubernetes.cri-o.SandboxID",
];

/// The sandbox a container should join: the one its annotations name, for
/// an app container (type `container`) whose sandbox rvisor runs under
/// the same `--root`. None means the container gets a sandbox of its own.
pub fn sandbox_to_join(g: &GlobalOpts, b: &bundle::Bundle, id: &str) -> Option<String> {
    let get = |keys: &[&str; 2]| keys.iter().find_map(|k| b.annotations.get(*k));
    if get(&CONTAINER_TYPE).map(String::as_str) != Some("container") {
        return None;
    }
    let sandbox = get(&SANDBOX_ID)?;
    if sandbox == id || container::validate_id(sandbox).is_err() {
        return None;
    }
    if !g.root.join(sandbox).exists() {
        tracing::warn!(
            "container {id}: its pod's sandbox {sandbox} is not an rvisor container here; \
             giving it a sandbox of its own"
        );
        return None;
    }
    Some(sandbox.clone())
}

/// `create` for a container joining sandbox `sandbox_id`. `dir` is the
/// new container's (locked) state directory.
#[allow(clippy::too_many_arguments)]
pub fn create_joined(
    g: &GlobalOpts,
    a: &CreateArgs,
    dir: &ContainerDir,
    bundle_dir: &Path,
    mut b: bundle::Bundle,
    console: Option<OwnedFd>,
    preserved: Vec<OwnedFd>,
    sandbox_id: &str,
) -> Result<()> {
    let sandbox_dir = ContainerDir::open(&g.root, sandbox_id)
        .with_context(|| format!("the pod's sandbox {sandbox_id}"))?;
    let sandbox = sandbox_dir.load()?;
    if sandbox.sandbox.is_some() {
        bail!("{sandbox_id} joined a sandbox itself; a container can only join a pod's sandbox");
    }
    match sandbox_dir.status(&sandbox) {
        ContainerStatus::Running | ContainerStatus::Created => {}
        s => bail!("the pod's sandbox {sandbox_id} is {}", s.name()),
    }
    // The gofers are the pod's: they count against the sandbox's cgroup.
    let cgroup_procs = sandbox
        .cgroup
        .as_ref()
        .map(|c| c.procs_files())
        .unwrap_or_default();
    let mut gofers = Vec::new();
    let made = (|| -> Result<HostProcess> {
        let (root_end, bind_ends) = sandbox::start_gofers(
            g,
            &b.rootfs,
            &b.boot,
            &b.binds,
            false,
            &cgroup_procs,
            &mut gofers,
        )?;
        let listener = UnixListener::bind(dir.short_path(container::CONTROL_SOCKET))
            .context("creating the control socket")?;
        // The fds travel with the request; the config names them by index.
        let mut fds: Vec<OwnedFd> = stdio(console.as_ref())?;
        let index = |fds: &mut Vec<OwnedFd>, fd: OwnedFd| -> i32 {
            fds.push(fd);
            fds.len() as i32 - 1
        };
        b.boot.gofer_fd = index(&mut fds, root_end);
        for (bind, end) in b.binds.iter().zip(bind_ends) {
            let i = index(&mut fds, end);
            if let Some(m) = b.boot.mounts.get_mut(bind.mount) {
                m.kind = sentry::MountKind::Bind {
                    gofer_fd: i,
                    read_only: bind.read_only,
                };
            }
        }
        b.boot.preserved_fds = preserved.into_iter().map(|f| index(&mut fds, f)).collect();
        if b.boot.overlay == sentry::RootOverlay::SelfBacked && !b.boot.root_readonly {
            match sandbox::create_filestore(&b.rootfs) {
                Ok(f) => b.boot.filestore_fd = Some(index(&mut fds, f)),
                Err(e) => {
                    tracing::warn!("{e:#}; keeping the container's rootfs writes in memory");
                    b.boot.overlay = sentry::RootOverlay::Memory;
                }
            }
        }
        b.boot.control_fd = Some(index(&mut fds, OwnedFd::from(listener)));
        b.boot.cgroup_usage_fd = None;
        let raw: Vec<_> = fds.iter().map(|f| f.as_raw_fd()).collect();
        let request = ControlRequest::CreateContainer {
            config: Box::new(b.boot.clone()),
        };
        match sandbox_dir.request_with_fds(&request, &raw)? {
            ControlReply::Done => {}
            ControlReply::Error(e) => bail!("{e}"),
            other => bail!("unexpected reply from the sandbox: {other:?}"),
        }
        // From here a failure must also end the container in the sentry.
        // The init waiter holds the terminal for the init (see `terminal`).
        spawn_init_waiter(g, &a.id, console).inspect_err(|_| {
            let _ = dir.request(&ControlRequest::Destroy);
        })
    })();
    let waiter = match made {
        Ok(w) => w,
        Err(e) => {
            sandbox::kill_all(gofers);
            return Err(e);
        }
    };
    let record = Record {
        id: a.id.clone(),
        bundle: bundle_dir.to_path_buf(),
        rootfs: b.rootfs.clone(),
        created: container::now_rfc3339(),
        owner: String::new(),
        sentry: sandbox.sentry,
        gofers: gofers
            .iter()
            .filter_map(|c| HostProcess::of(c.id() as i32))
            .collect(),
        annotations: b.annotations.clone(),
        hooks: b.hooks.clone(),
        process: b.boot.process.clone(),
        cgroup: None,
        sandbox: Some(sandbox_id.to_string()),
        init_waiter: Some(waiter),
    };
    let finished = (|| -> Result<()> {
        dir.save(&record)?;
        if let Some(pid_file) = &a.pid_file {
            super::lifecycle::write_pid_file(pid_file, waiter.pid)?;
        }
        let state = container::hook_state(&record, "creating");
        if let Some(h) = &b.hooks {
            hooks::run_all("prestart", h.prestart().as_ref(), &state)?;
            hooks::run_all("createRuntime", h.create_runtime().as_ref(), &state)?;
            hooks::run_all("createContainer", h.create_container().as_ref(), &state)?;
        }
        Ok(())
    })();
    if let Err(e) = finished {
        destroy_joined(dir, &record);
        return Err(e);
    }
    Ok(())
}

/// Stdio for a process started in the sandbox: the terminal, or ours (a
/// closed one as /dev/null).
pub(super) fn stdio(console: Option<&OwnedFd>) -> Result<Vec<OwnedFd>> {
    let mut v = Vec::new();
    for fd in 0..3 {
        let f = match console {
            Some(tty) => tty.try_clone()?,
            None => match nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3)) {
                // SAFETY: F_DUPFD_CLOEXEC made this fd for us alone.
                Ok(n) => unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(n) },
                Err(_) => std::fs::File::open("/dev/null")?.into(),
            },
        };
        v.push(f);
    }
    Ok(v)
}

/// Starts the host process that stands for the container's init (see the
/// module's notes), in a session of its own so the client's terminal
/// signals do not reach it; with `tty`, that terminal is its controlling
/// one and its signals go on to the init.
fn spawn_init_waiter(g: &GlobalOpts, id: &str, tty: Option<OwnedFd>) -> Result<HostProcess> {
    let child = super::terminal::spawn_waiter(g, &["init-wait", id], tty)
        .context("starting the init waiter")?;
    HostProcess::of(child.id() as i32)
        .with_context(|| format!("cannot identify the init waiter {}", child.id()))
}

/// `init-wait ID`: waits for a joined container's init and exits as it
/// did (SIGKILL if the sandbox goes away first), leaving the status in the
/// state directory for `rvisor wait`.
pub fn init_wait(g: &GlobalOpts, a: IdArg) -> Result<i32> {
    super::terminal::forward_signals(g.root.clone(), a.id.clone(), None);
    let dir = ContainerDir::open(&g.root, &a.id)?.unlock()?;
    let mut s = dir.connect()?;
    sentry::control::write_message(&mut s, &ControlRequest::WaitInit)?;
    let status = match sentry::control::read_message::<ControlReply>(&mut s) {
        Ok(ControlReply::Exited { status }) => status,
        Ok(ControlReply::Error(e)) => bail!("{e}"),
        Ok(other) => bail!("unexpected reply from the sandbox: {other:?}"),
        Err(_) => libc::SIGKILL,
    };
    let _ = std::fs::write(
        g.root.join(&a.id).join(container::EXIT_STATUS),
        status.to_string(),
    );
    sandbox::exit_like(status)
}

/// Ends a joined container: its processes in the sandbox, its gofers, its
/// init's stand-in. The sandbox and its other containers go on.
pub fn destroy_joined(dir: &ContainerDir, record: &Record) {
    if record.sentry.alive() {
        if let Err(e) = dir.request(&ControlRequest::Destroy) {
            tracing::warn!("ending container {} in its sandbox: {e:#}", record.id);
        }
    }
    for g in &record.gofers {
        g.kill(libc::SIGKILL);
    }
    if let Some(w) = &record.init_waiter {
        // It exits once the sentry answers its wait; make sure.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while w.alive() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        w.kill(libc::SIGKILL);
    }
}

/// runc's `events --stats` data for a joined container, which has no
/// cgroup of its own: CPU and process count from the sentry's accounting,
/// memory as the proportional set size of the stubs running its address
/// spaces (read from the host's /proc; the sentry cannot see it).
pub fn stats(g: &GlobalOpts, record: &Record) -> Result<serde_json::Value> {
    let dir = ContainerDir::open(&g.root, &record.id)?;
    let usage = match dir.request(&ControlRequest::Usage)? {
        ControlReply::Usage(u) => u,
        ControlReply::Error(e) => bail!("{e}"),
        other => bail!("unexpected reply from the sandbox: {other:?}"),
    };
    let host = host_pids(record.sentry.pid);
    let memory: u64 = usage
        .host_pids
        .iter()
        .filter_map(|p| host.get(p))
        .map(|p| pss_bytes(*p))
        .sum();
    Ok(serde_json::json!({
        "cpu": { "usage": { "total": usage.cpu_ns } },
        "memory": {
            "usage": { "usage": memory, "max": 0, "limit": 0 },
            "oom_kill": 0,
        },
        "pids": { "current": usage.pids, "limit": 0 },
    }))
}

/// The sandbox's processes by their pid in its pid namespace (the
/// sentry's numbering of its stubs) -> their pid on the host.
fn host_pids(sentry: i32) -> std::collections::HashMap<i32, i32> {
    let mut map = std::collections::HashMap::new();
    let Ok(ns) = std::fs::read_link(format!("/proc/{sentry}/ns/pid")) else {
        return map;
    };
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if std::fs::read_link(e.path().join("ns/pid")).ok().as_ref() != Some(&ns) {
            continue;
        }
        let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
        let inner = status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|p| p.parse().ok());
        if let Some(inner) = inner {
            map.insert(inner, pid);
        }
    }
    map
}

/// A host process's proportional set size, in bytes.
fn pss_bytes(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
