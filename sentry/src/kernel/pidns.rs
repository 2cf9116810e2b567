//! Pid namespaces of the containers that join a pod's sandbox (gVisor's
//! `kernel.PIDNamespace`, one level deep).
//!
//! The process tree numbers every task sandbox-wide: the first container
//! (the pod's sandbox container) sees those numbers as they are, and so do
//! the host-side control requests. A container that joined the sandbox
//! with a pid namespace of its own (the CRI's default) gets a
//! `PidNamespace`: its tasks also have a local number, its init is 1, and
//! its processes see only each other. System calls translate at the edge
//! (`ProcessTree::pid_in`, `pid_from`), so everything inside the kernel
//! keeps using sandbox-wide numbers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::{lock, ProcessTree};

/// Linux's default pid_max: local numbers wrap below it.
const PID_MAX: i32 = 32768;
/// Stale numbers (their task reaped) are swept after this many
/// allocations, so a long-running pod's maps stay the size of its tasks.
const SWEEP_EVERY: u32 = 256;

#[derive(Default)]
pub struct PidNamespace {
    ids: Mutex<Ids>,
}

#[derive(Default)]
struct Ids {
    to_global: HashMap<i32, i32>,
    to_local: HashMap<i32, i32>,
    last: i32,
    since_sweep: u32,
}

impl PidNamespace {
    /// A namespace whose number 1 is kept for its container's init
    /// (startContainer hooks run before it, and take 2, 3, ...).
    pub fn new() -> Arc<PidNamespace> {
        let ns = PidNamespace::default();
        lock(&ns.ids).last = 1;
        Arc::new(ns)
    }

    /// Gives the new task `global` its number in this namespace: the
    /// next free one after the last handed out, as Linux allocates; None
    /// when every number is taken (fork's EAGAIN). Called with the tree
    /// locked, before the task is in it.
    pub fn alloc(self: &Arc<Self>, tree: &ProcessTree, global: i32) -> Option<i32> {
        let mut ids = lock(&self.ids);
        ids.since_sweep += 1;
        if ids.since_sweep >= SWEEP_EVERY {
            ids.since_sweep = 0;
            let stale: Vec<i32> = ids
                .to_local
                .keys()
                .copied()
                .filter(|g| !tree.id_in_use(*g, Some(self)))
                .collect();
            for g in stale {
                if let Some(l) = ids.to_local.remove(&g) {
                    ids.to_global.remove(&l);
                }
            }
        }
        let mut local = ids.last;
        let mut found = false;
        for _ in 0..PID_MAX {
            local = if local >= PID_MAX - 1 { 1 } else { local + 1 };
            let taken = ids
                .to_global
                .get(&local)
                .is_some_and(|g| tree.id_in_use(*g, Some(self)));
            if !taken {
                found = true;
                break;
            }
        }
        if !found {
            return None;
        }
        ids.bind(local, global);
        ids.last = local;
        Some(local)
    }

    /// Gives task `global` the number `local` (a container's init: 1).
    pub fn alloc_at(&self, global: i32, local: i32) -> i32 {
        lock(&self.ids).bind(local, global);
        local
    }

    fn local(&self, global: i32) -> Option<i32> {
        lock(&self.ids).to_local.get(&global).copied()
    }

    fn global(&self, local: i32) -> Option<i32> {
        lock(&self.ids).to_global.get(&local).copied()
    }
}

impl Ids {
    /// Makes `local` and `global` name each other, dropping whatever
    /// either named before (a stale pair of a reaped task).
    fn bind(&mut self, local: i32, global: i32) {
        if let Some(old_global) = self.to_global.insert(local, global) {
            if old_global != global {
                self.to_local.remove(&old_global);
            }
        }
        if let Some(old_local) = self.to_local.insert(global, local) {
            if old_local != local {
                self.to_global.remove(&old_local);
            }
        }
    }
}

/// `global`'s number in `ns`, without asking the tree whether it names a
/// live task: for signal senders the caller knows exist, and for process
/// groups and sessions (named by a leader that may have exited). The id
/// itself in the sandbox's namespace, 0 when `ns` has no number for it.
pub fn number_in(ns: Option<&Arc<PidNamespace>>, global: i32) -> i32 {
    match ns {
        None => global,
        Some(n) => n.local(global).unwrap_or(0),
    }
}

/// The sandbox-wide id `ns` names `local` (a process group or session),
/// without the tree: [`number_in`]'s inverse.
pub fn number_from(ns: Option<&Arc<PidNamespace>>, local: i32) -> Option<i32> {
    match ns {
        None => Some(local),
        Some(n) => n.global(local),
    }
}

/// Whether two tasks' namespaces are the same one (None: the sandbox's).
pub fn same(a: Option<&Arc<PidNamespace>>, b: Option<&Arc<PidNamespace>>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        _ => false,
    }
}

impl ProcessTree {
    /// The namespace of task `global` (a process or a thread), if the
    /// task exists.
    fn namespace_of(&self, global: i32) -> Option<Option<&Arc<PidNamespace>>> {
        if let Some(e) = self.procs.get(&global) {
            return Some(e.proc.pidns.as_ref());
        }
        self.threads.get(&global).map(|(p, _)| p.pidns.as_ref())
    }

    /// Whether task `global` exists and lives in `ns`.
    pub fn in_namespace(&self, global: i32, ns: Option<&Arc<PidNamespace>>) -> bool {
        self.namespace_of(global).is_some_and(|n| same(n, ns))
    }

    /// Whether `global` still names something in `ns`: a task, or a
    /// process group or session whose leader may be gone.
    fn id_in_use(&self, global: i32, ns: Option<&Arc<PidNamespace>>) -> bool {
        self.in_namespace(global, ns)
            || self
                .procs
                .values()
                .any(|e| (e.pgid == global || e.sid == global) && same(e.proc.pidns.as_ref(), ns))
    }

    /// Task `global` as a process in namespace `ns` names it: the same
    /// number in the sandbox's namespace (which sees every task), its
    /// local number in a container's, 0 when it is not visible there.
    pub fn pid_in(&self, ns: Option<&Arc<PidNamespace>>, global: i32) -> i32 {
        match ns {
            None => global,
            Some(n) if global > 0 && self.in_namespace(global, ns) => n.local(global).unwrap_or(0),
            Some(_) => 0,
        }
    }

    /// The task a process in namespace `ns` names `local`, by its
    /// sandbox-wide number; None when there is none there.
    pub fn pid_from(&self, ns: Option<&Arc<PidNamespace>>, local: i32) -> Option<i32> {
        match ns {
            None => Some(local),
            Some(n) => n.global(local).filter(|g| self.in_namespace(*g, ns)),
        }
    }
}
