//! The OCI lifecycle commands (create, start, state, kill, delete, list,
//! ps), with runc's behaviour and messages: containerd's runc shim and
//! conmon drive rvisor exactly as they drive runc.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use sentry::control::{ContainerStatus, ControlReply, ControlRequest};
use sentry::ProcessSpec;

use crate::cgroups::{self, Cgroup};
use crate::cli::{
    CreateArgs, DeleteArgs, EventsArgs, ExecArgs, ExecWaitArgs, GlobalOpts, IdArg, KillArgs,
    ListArgs, ListFormat, PsArgs, UpdateArgs,
};
use crate::container::{self, ContainerDir, HostProcess, Record};
use crate::{bundle, hooks, logging, sandbox};

use super::{join, terminal};

/// How long `create` waits for the sandbox to come up.
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `delete` waits for a killed sandbox to go away.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

pub fn create(g: &GlobalOpts, a: CreateArgs) -> Result<i32> {
    logging::init(g.debug_log.as_deref(), "rvisor", g.debug)?;
    container::validate_id(&a.id)?;
    // Take the preserved fds before anything else opens a file.
    let preserved = take_preserved_fds(a.preserve_fds)?;
    let bundle_dir = a
        .bundle
        .canonicalize()
        .with_context(|| format!("bundle {}", a.bundle.display()))?;
    let mut b = bundle::load(&bundle_dir)?;
    b.boot.overlay = g.overlay.into();
    b.boot.network = g.network.into();
    let console = match (b.terminal, &a.console_socket) {
        (true, None) => {
            bail!("cannot allocate tty if rvisor will detach without setting console socket")
        }
        (false, Some(_)) => {
            bail!("cannot use console socket if rvisor will not detach or allocate tty")
        }
        (true, Some(path)) => Some(path.clone()),
        (false, None) => None,
    };
    let dir = ContainerDir::create(&g.root, &a.id)?;
    let made = match join::sandbox_to_join(g, &b, &a.id) {
        Some(sandbox) => console
            .as_deref()
            .map(open_console)
            .transpose()
            .and_then(|tty| {
                join::create_joined(g, &a, &dir, &bundle_dir, b, tty, preserved, &sandbox)
            }),
        None => create_in(g, &a, &dir, &bundle_dir, b, console.as_deref(), preserved),
    };
    match made {
        Ok(()) => Ok(0),
        Err(e) => {
            let _ = dir.remove();
            Err(e)
        }
    }
}

fn create_in(
    g: &GlobalOpts,
    a: &CreateArgs,
    dir: &ContainerDir,
    bundle_dir: &Path,
    b: bundle::Bundle,
    console: Option<&Path>,
    preserved: Vec<OwnedFd>,
) -> Result<()> {
    let listener = UnixListener::bind(dir.short_path(container::CONTROL_SOCKET))
        .context("creating the control socket")?;
    let stdio = match console {
        Some(path) => Some(open_console(path)?),
        None => None,
    };
    let process = b.boot.process.clone();
    let (ready_r, ready_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("creating the ready pipe")?;
    let exit_file = std::fs::File::create(dir.path.join(container::EXIT_STATUS))
        .context("creating the exit status file")?;
    let cgroup = Cgroup::create(
        &cgroups::container_path(b.cgroups_path.as_deref(), &a.id),
        b.resources.as_ref(),
    )?;
    let sb = match sandbox::start_sandbox(
        g,
        &b.rootfs,
        b.boot,
        &b.binds,
        sandbox::Launch::Detached {
            listener: OwnedFd::from(listener),
            stdio,
            ready: ready_w,
            exit_file: exit_file.into(),
            preserved,
        },
        &cgroup.procs_files(),
    ) {
        Ok(sb) => sb,
        Err(e) => {
            cgroup.destroy();
            return Err(e);
        }
    };
    let finished = (|| -> Result<()> {
        // Our own child, so /proc/PID/stat is there; a record that could
        // not identify it would make the container look stopped forever.
        let sentry = HostProcess::of(sb.sentry.id() as i32)
            .with_context(|| format!("cannot identify the sandbox process {}", sb.sentry.id()))?;
        let record = Record {
            id: a.id.clone(),
            bundle: bundle_dir.to_path_buf(),
            rootfs: b.rootfs.clone(),
            created: container::now_rfc3339(),
            owner: String::new(),
            sentry,
            gofers: sb
                .gofers
                .iter()
                .filter_map(|c| HostProcess::of(c.id() as i32))
                .collect(),
            annotations: b.annotations.clone(),
            hooks: b.hooks.clone(),
            process,
            cgroup: Some(cgroup.clone()),
            sandbox: None,
            init_waiter: None,
        };
        wait_ready(ready_r)?;
        if let Some(adj) = b.oom_score_adj {
            // The whole sandbox is the container for the OOM killer.
            for p in std::iter::once(&record.sentry).chain(record.gofers.iter()) {
                std::fs::write(format!("/proc/{}/oom_score_adj", p.pid), adj.to_string())
                    .with_context(|| {
                        format!("setting oomScoreAdj {adj} (lowering it needs CAP_SYS_RESOURCE)")
                    })?;
            }
        }
        dir.save(&record)?;
        if let Some(pid_file) = &a.pid_file {
            write_pid_file(pid_file, record.sentry.pid)?;
        }
        // The runtime spec's state while create runs is "creating".
        let state = container::hook_state(&record, "creating");
        if let Some(h) = &b.hooks {
            hooks::run_all("prestart", h.prestart().as_ref(), &state)?;
            hooks::run_all("createRuntime", h.create_runtime().as_ref(), &state)?;
            hooks::run_all("createContainer", h.create_container().as_ref(), &state)?;
        }
        Ok(())
    })();
    if let Err(e) = finished {
        sb.kill();
        cgroup.destroy();
        return Err(e);
    }
    // The sandbox outlives us: its processes are re-parented to our
    // parent's subreaper (conmon, the containerd shim) or to init.
    Ok(())
}

/// `--preserve-fds N`: our fds 3..3+N, moved out of the way (and the
/// originals made close-on-exec, so gofers and hooks do not inherit them).
fn take_preserved_fds(n: u32) -> Result<Vec<OwnedFd>> {
    if n > MAX_PRESERVED_FDS {
        bail!("--preserve-fds {n}: at most {MAX_PRESERVED_FDS}");
    }
    let mut v = Vec::new();
    for fd in 3..3 + n as i32 {
        let dup = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))
            .with_context(|| format!("--preserve-fds: fd {fd} is not open"))?;
        let _ = nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        );
        // SAFETY: F_DUPFD_CLOEXEC made this fd for us alone.
        v.push(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(dup) });
    }
    Ok(v)
}

/// The most fds `--preserve-fds` passes (they travel with exec's request).
const MAX_PRESERVED_FDS: u32 = 64;

/// Waits for the sentry's "ready" (or its boot error).
fn wait_ready(r: OwnedFd) -> Result<()> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut f = std::fs::File::from(r);
    let deadline = Instant::now() + BOOT_TIMEOUT;
    let mut msg = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("the sandbox did not come up within {BOOT_TIMEOUT:?}");
        }
        let mut fds = [PollFd::new(std::os::fd::AsFd::as_fd(&f), PollFlags::POLLIN)];
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(e) => return Err(e).context("waiting for the sandbox"),
        }
        let mut buf = [0u8; 4096];
        let n = f.read(&mut buf).context("reading the ready pipe")?;
        if n == 0 {
            break;
        }
        msg.extend_from_slice(&buf[..n]);
        if msg == b"ready" {
            return Ok(());
        }
    }
    let msg = String::from_utf8_lossy(&msg);
    match msg.strip_prefix("error: ") {
        Some(e) => bail!("{e}"),
        None => bail!("the sandbox exited before it was ready"),
    }
}

/// Writes the pid file atomically, as runc does (conmon reads it at once).
pub(super) fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_extension("rvisor-tmp");
    std::fs::write(&tmp, pid.to_string())
        .with_context(|| format!("writing pid file {}", path.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing pid file {}", path.display()))
}

/// Makes the container's terminal: a host pty whose master goes to the
/// console socket (SCM_RIGHTS, as runc sends it) and whose slave becomes
/// the sentry's stdio.
fn open_console(socket: &Path) -> Result<OwnedFd> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let pty = nix::pty::openpty(None, None).context("allocating a pty")?;
    let stream = UnixStream::connect(socket)
        .with_context(|| format!("connecting to console socket {}", socket.display()))?;
    let name = nix::unistd::ttyname(&pty.slave)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "/dev/ptmx".into());
    let fds = [pty.master.as_raw_fd()];
    let iov = [std::io::IoSlice::new(name.as_bytes())];
    sendmsg::<()>(
        stream.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .context("sending the pty master to the console socket")?;
    Ok(pty.slave)
}

pub fn start(g: &GlobalOpts, a: IdArg) -> Result<i32> {
    logging::init(g.debug_log.as_deref(), "rvisor", g.debug)?;
    let dir = ContainerDir::open(&g.root, &a.id)?;
    let record = dir.load()?;
    match dir.status(&record) {
        ContainerStatus::Created => {}
        ContainerStatus::Running => bail!("cannot start an already running container"),
        ContainerStatus::Paused => bail!("cannot start a container in the paused state"),
        ContainerStatus::Stopped => bail!("cannot start a container that has stopped"),
    }
    let state = serde_json::to_string(&container::hook_state(&record, "created"))?;
    match dir.request_unbounded(&ControlRequest::Start { state })? {
        ControlReply::Done => {}
        ControlReply::Error(e) => bail!("{e}"),
        other => bail!("unexpected reply from the sandbox: {other:?}"),
    }
    if let Some(h) = &record.hooks {
        let state = container::hook_state(&record, "running");
        hooks::run_all_warning_only(g, "poststart", h.poststart().as_ref(), &state);
    }
    Ok(0)
}

pub fn state(g: &GlobalOpts, a: IdArg) -> Result<i32> {
    let dir = ContainerDir::open(&g.root, &a.id)?;
    let record = dir.load()?;
    let status = dir.status(&record);
    let text = serde_json::to_string_pretty(&container::oci_state(&record, status))?;
    println!("{text}");
    Ok(0)
}

/// Parses a signal as runc does: a number, or a name with or without SIG
/// (RTMIN+N and RTMAX-N included).
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        bail!("invalid signal: {s}");
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let rt = |base: i32, rest: &str, sign: i32| -> Option<i32> {
        let n = if rest.is_empty() {
            0
        } else {
            rest.parse::<i32>().ok()?
        };
        let v = base + sign * n;
        (34..=64).contains(&v).then_some(v)
    };
    let found = if let Some(rest) = name.strip_prefix("RTMIN") {
        rest.strip_prefix('+').map_or_else(
            || if rest.is_empty() { rt(34, "", 1) } else { None },
            |r| rt(34, r, 1),
        )
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        rest.strip_prefix('-').map_or_else(
            || if rest.is_empty() { rt(64, "", 1) } else { None },
            |r| rt(64, r, -1),
        )
    } else {
        match name {
            "IOT" => Some(libc::SIGIOT),
            "POLL" => Some(libc::SIGPOLL),
            "CLD" => Some(libc::SIGCHLD),
            _ => (1..32).find(|&n| {
                syscall_tables::signal_name(n).and_then(|full| full.strip_prefix("SIG"))
                    == Some(name)
            }),
        }
    };
    found.ok_or_else(|| anyhow!("invalid signal: {s}"))
}

pub fn kill(g: &GlobalOpts, a: KillArgs) -> Result<i32> {
    logging::init(g.debug_log.as_deref(), "rvisor", g.debug)?;
    let signo = parse_signal(&a.signal)?;
    let dir = ContainerDir::open(&g.root, &a.id)?;
    let record = dir.load()?;
    match dir.status(&record) {
        ContainerStatus::Stopped => bail!("container not running"),
        // A frozen sentry cannot take requests; SIGKILL still ends it (the
        // thaw lets the kill land).
        ContainerStatus::Paused if signo == libc::SIGKILL && a.pid.is_none() => {
            kill_sentry(&record)?;
            return Ok(0);
        }
        ContainerStatus::Paused => {
            bail!("container is paused: resume it to deliver signal {signo}")
        }
        _ => {}
    }
    let request = match a.pid {
        Some(pid) => ControlRequest::SignalProcess { pid, signo },
        None => ControlRequest::Signal { signo, all: a.all },
    };
    let sent = dir.request(&request);
    match sent {
        Ok(ControlReply::Done) => Ok(0),
        Ok(ControlReply::Error(e)) => bail!("{e}"),
        Ok(other) => bail!("unexpected reply from the sandbox: {other:?}"),
        // The sentry does not answer: SIGKILL still ends the sandbox (as
        // pid 1 of its namespace, it takes every stub with it).
        Err(_) if signo == libc::SIGKILL && a.pid.is_none() && record.sandbox.is_none() => {
            record.sentry.kill(libc::SIGKILL);
            Ok(0)
        }
        Err(e) => Err(e),
    }
}

pub fn delete(g: &GlobalOpts, a: DeleteArgs) -> Result<i32> {
    logging::init(g.debug_log.as_deref(), "rvisor", g.debug)?;
    let dir = match ContainerDir::open(&g.root, &a.id) {
        Ok(d) => d,
        // runc: deleting a container that is gone is not an error with --force.
        Err(_) if a.force && container::validate_id(&a.id).is_ok() => return Ok(0),
        Err(e) => return Err(e),
    };
    // A record that cannot be read is a half-created container: with or
    // without --force, its directory can only be removed.
    let record = match dir.load() {
        Ok(r) => r,
        Err(e) if a.force => {
            tracing::warn!("{e:#}; removing the state directory");
            dir.remove()?;
            return Ok(0);
        }
        Err(e) => return Err(e),
    };
    let status = dir.status(&record);
    if matches!(status, ContainerStatus::Running | ContainerStatus::Paused) && !a.force {
        bail!(
            "cannot delete container {} that is not stopped: {}",
            a.id,
            status.name()
        );
    }
    if record.sandbox.is_some() {
        join::destroy_joined(&dir, &record);
    } else {
        destroy(&record);
    }
    if let Some(h) = &record.hooks {
        let state = container::hook_state(&record, "stopped");
        hooks::run_all_warning_only(g, "poststop", h.poststop().as_ref(), &state);
    }
    dir.remove()?;
    Ok(0)
}

/// Kills the sandbox's processes and waits until they are gone.
fn destroy(record: &Record) {
    if let Err(e) = kill_sentry(record) {
        tracing::warn!("thawing the sandbox to let it die: {e:#}");
    }
    let deadline = Instant::now() + KILL_TIMEOUT;
    while record.sentry.alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    // Gofers exit when the sentry's sockets close; make sure.
    for g in &record.gofers {
        g.kill(libc::SIGKILL);
    }
    if let Some(cg) = &record.cgroup {
        cg.destroy();
    }
}

/// SIGKILLs the sentry (which takes every stub with it). A frozen sandbox
/// cannot die, so a paused one is thawed after the signal is sent.
fn kill_sentry(record: &Record) -> Result<()> {
    record.sentry.kill(libc::SIGKILL);
    match &record.cgroup {
        Some(cg) if cg.frozen() => cg.set_frozen(false),
        _ => Ok(()),
    }
}

pub fn list(g: &GlobalOpts, a: ListArgs) -> Result<i32> {
    let mut rows = Vec::new();
    for id in container::list_ids(&g.root)? {
        let Ok(dir) = ContainerDir::open(&g.root, &id) else {
            continue;
        };
        let Ok(record) = dir.load() else { continue };
        let status = dir.status(&record);
        rows.push(container::oci_state(&record, status));
    }
    let mut out = std::io::stdout().lock();
    if a.quiet {
        for r in &rows {
            writeln!(out, "{}", r.id)?;
        }
        return Ok(0);
    }
    match a.format {
        ListFormat::Json if rows.is_empty() => writeln!(out, "null")?,
        ListFormat::Json => writeln!(out, "{}", serde_json::to_string(&rows)?)?,
        ListFormat::Table => {
            writeln!(
                out,
                "{:<12}{:<12}{:<12}{:<12}{:<33}OWNER",
                "ID", "PID", "STATUS", "BUNDLE", "CREATED"
            )?;
            for r in &rows {
                let owner = if r.owner.is_empty() { "root" } else { &r.owner };
                writeln!(
                    out,
                    "{:<12}{:<12}{:<12}{:<12}{:<33}{owner}",
                    r.id,
                    r.pid.to_string(),
                    r.status,
                    r.bundle.display().to_string(),
                    r.created,
                )?;
            }
        }
    }
    Ok(0)
}

pub fn ps(g: &GlobalOpts, a: PsArgs) -> Result<i32> {
    let dir = ContainerDir::open(&g.root, &a.id)?;
    let record = dir.load()?;
    if dir.status(&record) == ContainerStatus::Stopped {
        bail!("container not running");
    }
    let procs = match dir.request(&ControlRequest::Processes)? {
        ControlReply::Processes(p) => p,
        ControlReply::Error(e) => bail!("{e}"),
        other => bail!("unexpected reply from the sandbox: {other:?}"),
    };
    let mut out = std::io::stdout().lock();
    match a.format {
        ListFormat::Json => {
            let pids: Vec<i32> = procs.iter().map(|p| p.pid).collect();
            writeln!(out, "{}", serde_json::to_string(&pids)?)?;
        }
        ListFormat::Table => {
            writeln!(out, "{:<10}{:>6}{:>6} CMD", "UID", "PID", "PPID")?;
            for p in procs {
                writeln!(out, "{:<10}{:>6}{:>6} {}", p.uid, p.pid, p.ppid, p.cmd)?;
            }
        }
    }
    Ok(0)
}

/// The process `exec` starts: --process's, or the init's settings with
/// COMMAND and the flags applied (as runc builds it).
fn exec_process(a: &ExecArgs, record: &Record) -> Result<(ProcessSpec, bool)> {
    if let Some(path) = &a.process {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let p: oci_spec::runtime::Process =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        return Ok((bundle::process_spec(&p)?, p.terminal().unwrap_or(false)));
    }
    if a.command.is_empty() {
        bail!("exec needs a COMMAND or --process");
    }
    let mut p = record.process.clone();
    p.argv = a.command.clone();
    p.env.extend(a.env.iter().cloned());
    if let Some(cwd) = &a.cwd {
        p.cwd = cwd.clone();
    }
    if let Some(user) = &a.user {
        let (uid, gid) = match user.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (user.as_str(), None),
        };
        p.uid = uid
            .parse()
            .map_err(|_| anyhow!("--user {user:?}: only numeric UID[:GID] is supported"))?;
        if let Some(g) = gid {
            p.gid = g
                .parse()
                .map_err(|_| anyhow!("--user {user:?}: only numeric UID[:GID] is supported"))?;
        }
    }
    if !a.additional_gids.is_empty() {
        p.additional_gids = a.additional_gids.clone();
    }
    Ok((p, a.tty))
}

pub fn exec(g: &GlobalOpts, a: ExecArgs) -> Result<i32> {
    logging::init(g.debug_log.as_deref(), "rvisor", g.debug)?;
    let preserved = take_preserved_fds(a.preserve_fds)?;
    let dir = ContainerDir::open(&g.root, &a.id)?;
    let record = dir.load()?;
    match dir.status(&record) {
        ContainerStatus::Running => {}
        ContainerStatus::Paused => bail!("exec failed: cannot exec in a paused container"),
        _ => bail!("exec failed: cannot exec in a stopped container"),
    }
    let (process, terminal) = exec_process(&a, &record)?;
    let console = match (terminal, &a.console_socket) {
        (true, Some(path)) => Some(open_console(path)?),
        (true, None) if a.detach => {
            bail!("cannot allocate tty if rvisor will detach without setting console socket")
        }
        (true, None) => bail!("exec --tty without --console-socket is not supported yet"),
        (false, Some(_)) => bail!("cannot use console socket if rvisor will not allocate tty"),
        (false, None) => None,
    };
    let mut stdio = join::stdio(console.as_ref())?;
    stdio.extend(preserved);
    let raw: Vec<_> = stdio.iter().map(|f| f.as_raw_fd()).collect();
    let pid = match dir.request_with_fds(&ControlRequest::Exec { process }, &raw)? {
        ControlReply::Exec { pid } => pid,
        ControlReply::Error(e) => bail!("exec failed: {e}"),
        other => bail!("unexpected reply from the sandbox: {other:?}"),
    };
    drop(stdio);
    if let Some(path) = &a.internal_pid_file {
        write_pid_file(path, pid)?;
    }
    if a.detach {
        let pid_arg = pid.to_string();
        // The waiter holds the terminal for the process (see `terminal`).
        let child = terminal::spawn_waiter(g, &["exec-wait", &a.id, &pid_arg], console)
            .context("starting the exec waiter")?;
        if let Some(pid_file) = &a.pid_file {
            write_pid_file(pid_file, child.id() as i32)?;
        }
        return Ok(0);
    }
    // In the foreground we wait; the terminal is the client's to close.
    drop(console);
    if let Some(pid_file) = &a.pid_file {
        write_pid_file(pid_file, std::process::id() as i32)?;
    }
    let dir = dir.unlock()?;
    let status = wait_exec(g, &dir, pid)?;
    sandbox::exit_like(status)
}

/// Waits for exec'd process `pid`; a sandbox that goes away first counts
/// as SIGKILL (its processes died with it), and is logged as such.
fn wait_exec(g: &GlobalOpts, dir: &container::UnlockedDir, pid: i32) -> Result<i32> {
    let mut s = dir.connect()?;
    sentry::control::write_message(&mut s, &ControlRequest::Wait { pid })?;
    match sentry::control::read_message::<ControlReply>(&mut s) {
        Ok(ControlReply::Exited { status }) => Ok(status),
        Ok(ControlReply::Error(e)) => bail!("{e}"),
        Ok(other) => bail!("unexpected reply from the sandbox: {other:?}"),
        Err(e) => {
            let msg = format!(
                "the sandbox did not answer the wait for process {pid} ({e}); \
                 reporting it killed"
            );
            tracing::warn!("{msg}");
            logging::write_log(g, "warning", &msg);
            Ok(libc::SIGKILL)
        }
    }
}

pub fn exec_wait(g: &GlobalOpts, a: ExecWaitArgs) -> Result<i32> {
    terminal::forward_signals(g.root.clone(), a.id.clone(), Some(a.pid));
    let dir = ContainerDir::open(&g.root, &a.id)?.unlock()?;
    let status = wait_exec(g, &dir, a.pid)?;
    sandbox::exit_like(status)
}

/// The container's cgroup, or why there is none.
fn cgroup_of(record: &Record) -> Result<&Cgroup> {
    if let Some(sandbox) = &record.sandbox {
        bail!(
            "container {} runs in the sandbox of {sandbox} and has no cgroup of its own; \
             use {sandbox}'s",
            record.id
        );
    }
    record
        .cgroup
        .as_ref()
        .ok_or_else(|| anyhow!("container has no cgroup (created by an older rvisor)"))
}

pub fn pause(g: &GlobalOpts, a: IdArg, freeze: bool) -> Result<i32> {
    logging::init(g.debug_log.as_deref(), "rvisor", g.debug)?;
    let dir = ContainerDir::open(&g.root, &a.id)?;
    let record = dir.load()?;
    let status = dir.status(&record);
    match (freeze, status) {
        (true, ContainerStatus::Running) | (false, ContainerStatus::Paused) => {}
        (false, _) => bail!("container not paused"),
        (true, _) => bail!("container not running"),
    }
    cgroup_of(&record)?.set_frozen(freeze)?;
    Ok(0)
}

/// "5s", "500ms", "1m", or plain seconds.
fn parse_interval(s: &str) -> Result<Duration> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| (&s[..i], &s[i..]));
    let n: f64 = num.parse().map_err(|_| anyhow!("invalid interval {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("invalid interval {s:?}"),
    };
    if secs <= 0.0 || !secs.is_finite() {
        bail!("interval must be greater than 0");
    }
    Ok(Duration::from_secs_f64(secs))
}

pub fn events(g: &GlobalOpts, a: EventsArgs) -> Result<i32> {
    let interval = parse_interval(&a.interval)?;
    let record = {
        // Locked only while checking; the stream must not block others.
        let dir = ContainerDir::open(&g.root, &a.id)?;
        let record = dir.load()?;
        if dir.status(&record) == ContainerStatus::Stopped {
            bail!("container with id {} is not running", a.id);
        }
        record
    };
    let event = |kind: &str, data: serde_json::Value| serde_json::json!({ "type": kind, "id": a.id, "data": data });
    if record.sandbox.is_some() {
        return joined_events(g, &a, &record, interval, event);
    }
    let cg = cgroup_of(&record)?;
    if a.stats {
        println!("{}", event("stats", cg.stats()));
        return Ok(0);
    }
    let mut ooms = cg.stats()["memory"]["oom_kill"].as_u64().unwrap_or(0);
    let mut last_stats = Instant::now() - interval;
    let mut out = std::io::stdout().lock();
    loop {
        // An OOM kill often ends the sandbox itself, and its cgroup outlives
        // it until `delete`: so the counter gets one last look after the
        // sentry is gone.
        let alive = record.sentry.alive();
        let stats = cg.stats();
        let now_ooms = stats["memory"]["oom_kill"].as_u64().unwrap_or(0);
        if now_ooms > ooms {
            ooms = now_ooms;
            writeln!(out, "{}", event("oom", serde_json::Value::Null))?;
        }
        if !alive {
            break;
        }
        if last_stats.elapsed() >= interval {
            last_stats = Instant::now();
            writeln!(out, "{}", event("stats", stats))?;
        }
        out.flush()?;
        std::thread::sleep(interval.min(Duration::from_millis(200)));
    }
    Ok(0)
}

/// `events` of a container that joined a sandbox: stats from the sentry
/// (once with --stats, else every interval while it runs). Its OOM kills
/// are the pod's, reported on the sandbox container.
fn joined_events(
    g: &GlobalOpts,
    a: &EventsArgs,
    record: &Record,
    interval: Duration,
    event: impl Fn(&str, serde_json::Value) -> serde_json::Value,
) -> Result<i32> {
    if a.stats {
        println!("{}", event("stats", join::stats(g, record)?));
        return Ok(0);
    }
    let mut out = std::io::stdout().lock();
    let mut last = Instant::now() - interval;
    while record.init_process().alive() {
        if last.elapsed() >= interval {
            last = Instant::now();
            if let Ok(stats) = join::stats(g, record) {
                writeln!(out, "{}", event("stats", stats))?;
                out.flush()?;
            }
        }
        std::thread::sleep(interval.min(Duration::from_millis(200)));
    }
    Ok(0)
}

pub fn update(g: &GlobalOpts, a: UpdateArgs) -> Result<i32> {
    logging::init(g.debug_log.as_deref(), "rvisor", g.debug)?;
    let dir = ContainerDir::open(&g.root, &a.id)?;
    let record = dir.load()?;
    if dir.status(&record) == ContainerStatus::Stopped {
        bail!("container not running");
    }
    let mut res: serde_json::Value = match &a.resources {
        Some(path) => {
            let text = if path.as_os_str() == "-" {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s)?;
                s
            } else {
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?
            };
            serde_json::from_str(&text).context("parsing the resources JSON")?
        }
        None => serde_json::json!({}),
    };
    let mut set = |section: &str, key: &str, v: serde_json::Value| {
        if !res[section].is_object() {
            res[section] = serde_json::json!({});
        }
        res[section][key] = v;
    };
    if let Some(v) = a.memory {
        set("memory", "limit", v.into());
    }
    if let Some(v) = a.memory_reservation {
        set("memory", "reservation", v.into());
    }
    if let Some(v) = a.memory_swap {
        set("memory", "swap", v.into());
    }
    if let Some(v) = a.cpu_share {
        set("cpu", "shares", v.into());
    }
    if let Some(v) = a.cpu_period {
        set("cpu", "period", v.into());
    }
    if let Some(v) = a.cpu_quota {
        set("cpu", "quota", v.into());
    }
    if let Some(v) = &a.cpuset_cpus {
        set("cpu", "cpus", v.clone().into());
    }
    if let Some(v) = &a.cpuset_mems {
        set("cpu", "mems", v.clone().into());
    }
    if let Some(v) = a.pids_limit {
        set("pids", "limit", v.into());
    }
    let resources: oci_spec::runtime::LinuxResources =
        serde_json::from_value(res).context("invalid resources")?;
    cgroup_of(&record)?.apply(&resources)?;
    Ok(0)
}

pub fn wait(g: &GlobalOpts, a: IdArg) -> Result<i32> {
    // The lock is not held while waiting: other commands must go on.
    let record = ContainerDir::open(&g.root, &a.id)?.load()?;
    while record.init_process().alive() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let dir = ContainerDir::open(&g.root, &a.id)?;
    let status = dir
        .exit_status()
        .ok_or_else(|| anyhow!("the sandbox ended without reporting an exit status"))?;
    Ok(sandbox::exit_code(status))
}
