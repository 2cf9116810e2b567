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

type Table = HashMap<usize, Vec<Lock>>;

fn table() -> &'static (Mutex<Table>, Condvar) {
    static T: OnceLock<(Mutex<Table>, Condvar)> = OnceLock::new();
    T.get_or_init(|| (Mutex::new(HashMap::new()), Condvar::new()))
}

fn lock_table() -> std::sync::MutexGuard<'static, Table> {
    table().0.lock().unwrap_or_else(|p| p.into_inner())
}

fn same_kind(a: Owner, b: Owner) -> bool {
    matches!(a, Owner::Flock(_)) == matches!(b, Owner::Flock(_))
}

fn conflict(locks: &[Lock], owner: Owner, start: u64, end: u64, write: bool) -> Option<Lock> {
    locks
        .iter()
        .find(|l| {
            l.owner != owner
                && same_kind(l.owner, owner)
                && l.start < end
                && start < l.end
                && (write || l.write)
        })
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
    t.get(&file)
        .and_then(|v| conflict(v, owner, start, end, write))
        .map(|l| (l.owner, l.start, l.end, l.write))
}

/// Sets (or with `kind` None, clears) `owner`'s lock on [start, end).
/// With `wait`, blocks until no other owner's lock conflicts; `interrupted`
/// ends the wait with EINTR.
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
        loop {
            let locks = t.entry(file).or_default();
            if conflict(locks, owner, start, end, write).is_none() {
                break;
            }
            if !wait {
                return Err(Errno::EAGAIN);
            }
            if interrupted() {
                return Err(Errno::EINTR);
            }
            t = cv
                .wait_timeout(t, Duration::from_millis(50))
                .map(|r| r.0)
                .unwrap_or_else(|p| p.into_inner().0);
        }
    }
    let locks = t.entry(file).or_default();
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
        kept.push(Lock {
            owner,
            start,
            end,
            write,
        });
    }
    *locks = kept;
    if locks.is_empty() {
        t.remove(&file);
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
            if let Some(locks) = t.get_mut(&f) {
                let before = locks.len();
                locks.retain(|l| l.owner != owner);
                dropped = locks.len() != before;
                if locks.is_empty() {
                    t.remove(&f);
                }
            }
        }
        None => t.retain(|_, locks| {
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
