//! Advisory file locks: POSIX record locks (fcntl F_SETLK, owned by a
//! process), open-file-description locks (F_OFD_SETLK) and flock(2) locks
//! (both owned by an open file description). One table for the sandbox,
//! keyed by the locked file's identity.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::Duration;

use nix::errno::Errno;

/// Who holds a lock.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Owner {
    /// A process (POSIX record locks).
    Process(i32),
    /// An open file description (OFD record locks).
    Description(usize),
    /// flock(2) locks of an open file description: a separate namespace.
    Flock(usize),
}

#[derive(Clone, Copy, Debug)]
struct Lock {
    owner: Owner,
    start: u64,
    /// Exclusive end; u64::MAX means "to the end of the file, and beyond".
    end: u64,
    write: bool,
}

#[derive(Default)]
struct Table {
    /// Each file's locks; an owner's locks on a file never overlap, and
    /// adjacent ones of the same type are one lock (as Linux merges them).
    files: HashMap<usize, Vec<Lock>>,
    /// Processes blocked in F_SETLKW, and the process they wait for (for
    /// deadlock detection).
    waiting: HashMap<i32, i32>,
}

fn table() -> &'static (Mutex<Table>, Condvar) {
    static T: OnceLock<(Mutex<Table>, Condvar)> = OnceLock::new();
    T.get_or_init(|| (Mutex::new(Table::default()), Condvar::new()))
}

fn lock_table() -> std::sync::MutexGuard<'static, Table> {
    table().0.lock().unwrap_or_else(|p| p.into_inner())
}

/// Linux's posix_locks_deadlock: whether `me`, about to wait for a lock
/// `holder` has, is what `holder` (or whoever it waits for, up to ten
/// steps) already waits for. Only process-owned (POSIX) locks count.
fn would_deadlock(waiting: &HashMap<i32, i32>, me: Owner, holder: Owner) -> bool {
    let (Owner::Process(me), Owner::Process(mut next)) = (me, holder) else {
        return false;
    };
    for _ in 0..10 {
        if next == me {
            return true;
        }
        match waiting.get(&next) {
            Some(&n) => next = n,
            None => return false,
        }
    }
    false
}

fn same_kind(a: Owner, b: Owner) -> bool {
    matches!(a, Owner::Flock(_)) == matches!(b, Owner::Flock(_))
}

/// The conflicting lock that starts first (what Linux's F_GETLK reports
/// of a single other owner's locks, which it keeps in order).
fn conflict(locks: &[Lock], owner: Owner, start: u64, end: u64, write: bool) -> Option<Lock> {
    locks
        .iter()
        .filter(|l| {
            l.owner != owner
                && same_kind(l.owner, owner)
                && l.start < end
                && start < l.end
                && (write || l.write)
        })
        .min_by_key(|l| l.start)
        .copied()
}

/// The first lock that would block [start, end) (F_GETLK); its owner,
/// range and type.
pub fn test(
    file: usize,
    owner: Owner,
    start: u64,
    end: u64,
    write: bool,
) -> Option<(Owner, u64, u64, bool)> {
    let t = lock_table();
    t.files
        .get(&file)
        .and_then(|v| conflict(v, owner, start, end, write))
        .map(|l| (l.owner, l.start, l.end, l.write))
}

/// Sets (or with `kind` None, clears) `owner`'s lock on [start, end).
/// With `wait`, blocks until no other owner's lock conflicts; `interrupted`
/// ends the wait with EINTR, and a wait that would close a cycle of
/// processes waiting for each other fails with EDEADLK.
pub fn set(
    file: usize,
    owner: Owner,
    start: u64,
    end: u64,
    kind: Option<bool>,
    wait: bool,
    interrupted: &dyn Fn() -> bool,
) -> Result<(), Errno> {
    let (_, cv) = table();
    let mut t = lock_table();
    if let Some(write) = kind {
        let waited = loop {
            let locks = t.files.entry(file).or_default();
            let Some(blocker) = conflict(locks, owner, start, end, write) else {
                break Ok(());
            };
            if !wait {
                break Err(Errno::EAGAIN);
            }
            if interrupted() {
                break Err(Errno::EINTR);
            }
            if would_deadlock(&t.waiting, owner, blocker.owner) {
                break Err(Errno::EDEADLK);
            }
            if let (Owner::Process(me), Owner::Process(them)) = (owner, blocker.owner) {
                t.waiting.insert(me, them);
            }
            t = cv
                .wait_timeout(t, Duration::from_millis(50))
                .map(|r| r.0)
                .unwrap_or_else(|p| p.into_inner().0);
        };
        if let Owner::Process(me) = owner {
            t.waiting.remove(&me);
        }
        if let Err(e) = waited {
            if t.files.get(&file).is_some_and(Vec::is_empty) {
                t.files.remove(&file);
            }
            return Err(e);
        }
    }
    let locks = t.files.entry(file).or_default();
    // Carve [start, end) out of the owner's existing locks, then add.
    let mut kept = Vec::with_capacity(locks.len() + 1);
    for l in locks.drain(..) {
        if l.owner != owner || l.end <= start || end <= l.start {
            kept.push(l);
            continue;
        }
        if l.start < start {
            kept.push(Lock { end: start, ..l });
        }
        if end < l.end {
            kept.push(Lock { start: end, ..l });
        }
    }
    if let Some(write) = kind {
        // Merged with the owner's adjacent locks of the same type.
        let (mut start, mut end) = (start, end);
        kept.retain(|l| {
            let touches =
                l.owner == owner && l.write == write && (l.end == start || l.start == end);
            if touches {
                start = start.min(l.start);
                end = end.max(l.end);
            }
            !touches
        });
        kept.push(Lock {
            owner,
            start,
            end,
            write,
        });
    }
    *locks = kept;
    if locks.is_empty() {
        t.files.remove(&file);
    }
    cv.notify_all();
    Ok(())
}

/// Drops every lock of `owner` on `file` (None: on every file).
pub fn release(file: Option<usize>, owner: Owner) {
    let (_, cv) = table();
    let mut t = lock_table();
    let mut dropped = false;
    match file {
        // Every close comes here: one lookup, and no wake-up (a futex
        // call) unless a lock went.
        Some(f) => {
            if let Some(locks) = t.files.get_mut(&f) {
                let before = locks.len();
                locks.retain(|l| l.owner != owner);
                dropped = locks.len() != before;
                if locks.is_empty() {
                    t.files.remove(&f);
                }
            }
        }
        None => t.files.retain(|_, locks| {
            let before = locks.len();
            locks.retain(|l| l.owner != owner);
            dropped |= locks.len() != before;
            !locks.is_empty()
        }),
    }
    if dropped {
        cv.notify_all();
    }
}
