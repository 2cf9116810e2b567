//! The shim's one reaper of child processes.
//!
//! The shim is a child subreaper, so besides the `rvisor` commands it runs
//! it also inherits the processes those leave behind: the sentry of each
//! container (whose exit status is the init's) and the waiter of each
//! detached exec. One thread reaps them all and hands each exit status to
//! whoever watches that pid.
//!
//! Spawning holds [`SPAWN_LOCK`] and the reaper takes it before it reaps,
//! so a child is always registered before its exit can be collected (and
//! std's own wait on a child whose exec failed never races us). Processes
//! we learn of later (from a pid file) may already be gone: their exits
//! wait in a small table until someone asks.

use std::collections::HashMap;
use std::process::{Child, Command};
use std::sync::{Arc, Condvar, LazyLock, Mutex};

use crate::lock;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// The exit of one process, as containerd reports it: the exit code, or
/// 128 + the signal that killed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub status: i32,
    pub at: std::time::SystemTime,
}

/// One watched pid's exit, filled in by the reaper.
#[derive(Default)]
pub struct ExitSlot {
    exit: Mutex<Option<Exit>>,
    cond: Condvar,
}

impl ExitSlot {
    fn set(&self, exit: Exit) {
        *lock(&self.exit) = Some(exit);
        self.cond.notify_all();
    }

    /// The exit, if the process has exited.
    pub fn get(&self) -> Option<Exit> {
        *lock(&self.exit)
    }

    /// Blocks until the process exits.
    pub fn wait(&self) -> Exit {
        let mut g = lock(&self.exit);
        loop {
            if let Some(e) = *g {
                return e;
            }
            g = self.cond.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Blocks until the process exits or `timeout` passes.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Exit> {
        let deadline = Instant::now() + timeout;
        let mut g = lock(&self.exit);
        loop {
            if let Some(e) = *g {
                return Some(e);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            g = self
                .cond
                .wait_timeout(g, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// Exits of pids nobody watched yet; bounded so that a stream of unknown
/// orphans cannot grow it without end.
const UNCLAIMED_MAX: usize = 1024;

#[derive(Default)]
struct Table {
    watched: HashMap<i32, Arc<ExitSlot>>,
    unclaimed: HashMap<i32, Exit>,
}

static TABLE: LazyLock<Mutex<Table>> = LazyLock::new(Mutex::default);
static SPAWN_LOCK: Mutex<()> = Mutex::new(());

static STARTED: std::sync::Once = std::sync::Once::new();

/// Starts the reaper thread, once, before the first child is spawned.
fn ensure_started() {
    STARTED.call_once(|| {
        if let Err(e) = std::thread::Builder::new()
            .name("reaper".into())
            .spawn(reap_forever)
        {
            log::error!("cannot start the reaper thread: {e}");
        }
    });
}

fn reap_forever() {
    loop {
        // Wait, without reaping, until some child has exited; ECHILD means
        // none is left for now, so poll for new ones.
        match waitid(
            Id::All,
            WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT | WaitPidFlag::__WALL,
        ) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
        }
        let _spawning = lock(&SPAWN_LOCK);
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL)) {
                Ok(WaitStatus::Exited(pid, code)) => record(pid.as_raw(), code),
                Ok(WaitStatus::Signaled(pid, sig, _)) => record(pid.as_raw(), 128 + sig as i32),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}

fn record(pid: i32, status: i32) {
    let exit = Exit {
        status,
        at: std::time::SystemTime::now(),
    };
    let mut t = lock(&TABLE);
    if let Some(slot) = t.watched.remove(&pid) {
        slot.set(exit);
        return;
    }
    if t.unclaimed.len() >= UNCLAIMED_MAX {
        // The oldest entries are the least likely to be asked for.
        if let Some(oldest) = t
            .unclaimed
            .iter()
            .min_by_key(|(_, e)| e.at)
            .map(|(p, _)| *p)
        {
            t.unclaimed.remove(&oldest);
        }
    }
    t.unclaimed.insert(pid, exit);
}

/// Watches `pid`, a process that is (or was) our child: the slot fills
/// when it exits, or at once if it already has.
pub fn watch(pid: i32) -> Arc<ExitSlot> {
    ensure_started();
    // The reaper records an exit under SPAWN_LOCK right after it reaps:
    // without the lock, a pid reaped but not yet recorded would be
    // neither unclaimed nor our child, and reported killed (an exec that
    // printed its output and exited 0 showed as 137).
    let _spawning = lock(&SPAWN_LOCK);
    let slot = Arc::new(ExitSlot::default());
    let mut t = lock(&TABLE);
    if let Some(exit) = t.unclaimed.remove(&pid) {
        slot.set(exit);
    } else if !pid_is_child(pid) {
        // Neither ours nor reaped by us: it ended before it was reparented
        // to us (or never was our descendant). Report it as killed.
        slot.set(Exit {
            status: 128 + libc::SIGKILL,
            at: std::time::SystemTime::now(),
        });
    } else {
        t.watched.insert(pid, slot.clone());
    }
    slot
}

/// Whether `pid` is a live (or zombie) child of ours.
fn pid_is_child(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The ppid is the second field after the parenthesised command name.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(1))
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id())
}

/// Spawns `cmd` and watches it.
pub fn spawn(cmd: &mut Command) -> std::io::Result<(Child, Arc<ExitSlot>)> {
    ensure_started();
    let _spawning = lock(&SPAWN_LOCK);
    let child = cmd.spawn()?;
    let slot = Arc::new(ExitSlot::default());
    lock(&TABLE).watched.insert(child.id() as i32, slot.clone());
    Ok((child, slot))
}

/// Sends `signal` to `pid` unless it has already been reaped (so a reused
/// pid is never hit).
pub fn kill_if_unreaped(pid: i32, slot: &ExitSlot, signal: nix::sys::signal::Signal) {
    let _spawning = lock(&SPAWN_LOCK);
    if slot.get().is_none() {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), signal);
    }
}
