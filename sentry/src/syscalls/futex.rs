//! Futexes (gVisor's `kernel/futex`): waiters sleep on one sentry condition
//! variable, queued per key. A key is (process, address) for private
//! futexes and plain memory, and (memory identity, offset) for shared
//! memory (MAP_SHARED anonymous or file mappings, SysV segments), so
//! processes sharing the memory meet on the same queue.
//!
//! WAIT/WAIT_BITSET, WAKE/WAKE_BITSET, REQUEUE, CMP_REQUEUE and WAKE_OP are
//! implemented; PI futexes and futex_waitv are not (ENOSYS, logged).

use std::collections::{HashMap, HashSet};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::SysResult;
use crate::kernel::task::Task;
use crate::kernel::{interrupted, lock};

const FUTEX_WAIT: i32 = 0;
const FUTEX_WAKE: i32 = 1;
const FUTEX_REQUEUE: i32 = 3;
const FUTEX_CMP_REQUEUE: i32 = 4;
const FUTEX_WAKE_OP: i32 = 5;
const FUTEX_WAIT_BITSET: i32 = 9;
const FUTEX_WAKE_BITSET: i32 = 10;
const FUTEX_PRIVATE_FLAG: i32 = 128;
const FUTEX_CLOCK_REALTIME: i32 = 256;

/// A futex's identity (see the module comment).
type Key = (i64, u64);

#[derive(Default)]
struct Table {
    /// Waiters per key, in arrival order: (waiter id, bitset).
    queues: HashMap<Key, Vec<(u64, u32)>>,
    /// Waiters woken but not yet returned.
    woken: HashSet<u64>,
    next_id: u64,
}

impl Table {
    /// Wakes up to `n` waiters of `key` whose bitset matches.
    fn wake(&mut self, key: Key, n: u32, bitset: u32) -> u32 {
        let Some(q) = self.queues.get_mut(&key) else {
            return 0;
        };
        let mut woken = 0u32;
        let mut i = 0;
        while i < q.len() && woken < n {
            if q[i].1 & bitset != 0 {
                let (id, _) = q.remove(i);
                self.woken.insert(id);
                woken += 1;
            } else {
                i += 1;
            }
        }
        if q.is_empty() {
            self.queues.remove(&key);
        }
        woken
    }

    fn forget(&mut self, key_hint: Key, id: u64) {
        // The waiter may have been requeued: look everywhere if needed.
        if let Some(q) = self.queues.get_mut(&key_hint) {
            if let Some(i) = q.iter().position(|w| w.0 == id) {
                q.remove(i);
                if q.is_empty() {
                    self.queues.remove(&key_hint);
                }
                return;
            }
        }
        for q in self.queues.values_mut() {
            q.retain(|w| w.0 != id);
        }
        self.queues.retain(|_, q| !q.is_empty());
    }
}

fn key_of(t: &Task, uaddr: u64, op: i32) -> Key {
    if op & FUTEX_PRIVATE_FLAG == 0 {
        if let Some((id, off)) = lock(&t.proc.mm()).shared_key(uaddr) {
            return (-(id as i64), off);
        }
    }
    (t.pid() as i64, uaddr)
}

fn table() -> &'static (Mutex<Table>, Condvar) {
    static T: OnceLock<(Mutex<Table>, Condvar)> = OnceLock::new();
    T.get_or_init(|| (Mutex::new(Table::default()), Condvar::new()))
}

fn now_on(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills a timespec we own.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

fn wait(
    t: &mut Task,
    uaddr: u64,
    op: i32,
    cmd: i32,
    val: u32,
    timeout: u64,
    val3: u32,
) -> SysResult {
    let bitset = if cmd == FUTEX_WAIT { u32::MAX } else { val3 };
    if bitset == 0 {
        return Err(Errno::EINVAL);
    }
    // Deadline: relative for FUTEX_WAIT, absolute for WAIT_BITSET.
    let deadline = if timeout != 0 {
        let ts: libc::timespec = t.read_obj(timeout)?;
        if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
            return Err(Errno::EINVAL);
        }
        let d = Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
        let rel = if cmd == FUTEX_WAIT {
            d
        } else {
            let clock = if op & FUTEX_CLOCK_REALTIME != 0 {
                libc::CLOCK_REALTIME
            } else {
                libc::CLOCK_MONOTONIC
            };
            d.saturating_sub(now_on(clock))
        };
        Some(Instant::now() + rel)
    } else {
        None
    };
    let key = key_of(t, uaddr, op);
    let (m, cv) = table();
    let mut tab = lock(m);
    let cur: u32 = t.read_obj(uaddr)?;
    if cur != val {
        return Err(Errno::EAGAIN);
    }
    let id = tab.next_id;
    tab.next_id += 1;
    tab.queues.entry(key).or_default().push((id, bitset));
    loop {
        if tab.woken.remove(&id) {
            return Ok(0);
        }
        if interrupted() {
            tab.forget(key, id);
            return Err(Errno::EINTR);
        }
        let nap = match deadline {
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    tab.forget(key, id);
                    return Err(Errno::ETIMEDOUT);
                }
                (d - now).min(Duration::from_millis(100))
            }
            None => Duration::from_millis(100),
        };
        tab = cv
            .wait_timeout(tab, nap)
            .map(|r| r.0)
            .unwrap_or_else(|p| p.into_inner().0);
    }
}

/// FUTEX_WAKE_OP's operation on the word at uaddr2; returns whether its
/// comparison on the old value holds.
fn wake_op_apply(t: &Task, uaddr2: u64, encoded: u32) -> Result<bool, Errno> {
    let op = (encoded >> 28) & 0xf;
    let cmp = (encoded >> 24) & 0xf;
    let sext12 = |v: u32| ((v << 20) as i32) >> 20;
    let mut oparg = sext12((encoded >> 12) & 0xfff);
    let cmparg = sext12(encoded & 0xfff);
    if op & 8 != 0 {
        // FUTEX_OP_OPARG_SHIFT
        oparg = 1i32.wrapping_shl((oparg & 31) as u32);
    }
    let old: i32 = t.read_obj(uaddr2)?;
    let new = match op & 7 {
        0 => oparg,
        1 => old.wrapping_add(oparg),
        2 => old | oparg,
        3 => old & !oparg,
        4 => old ^ oparg,
        _ => return Err(Errno::ENOSYS),
    };
    // Not atomic against the application's own threads on other CPUs:
    // the sentry reads and writes through the stub's memory.
    t.write_obj(uaddr2, &new)?;
    Ok(match cmp {
        0 => old == cmparg,
        1 => old != cmparg,
        2 => old < cmparg,
        3 => old <= cmparg,
        4 => old > cmparg,
        5 => old >= cmparg,
        _ => return Err(Errno::ENOSYS),
    })
}

pub fn futex(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (uaddr, op, val, timeout, uaddr2, val3) =
        (a[0], a[1] as i32, a[2] as u32, a[3], a[4], a[5] as u32);
    if uaddr % 4 != 0 {
        return Err(Errno::EINVAL);
    }
    let cmd = op & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
    if op & FUTEX_CLOCK_REALTIME != 0 && !matches!(cmd, FUTEX_WAIT | FUTEX_WAIT_BITSET) {
        return Err(Errno::ENOSYS);
    }
    match cmd {
        FUTEX_WAIT | FUTEX_WAIT_BITSET => wait(t, uaddr, op, cmd, val, timeout, val3),
        FUTEX_WAKE | FUTEX_WAKE_BITSET => {
            let bitset = if cmd == FUTEX_WAKE { u32::MAX } else { val3 };
            if bitset == 0 {
                return Err(Errno::EINVAL);
            }
            let key = key_of(t, uaddr, op);
            let (m, cv) = table();
            let n = lock(m).wake(key, val, bitset);
            cv.notify_all();
            Ok(n as u64)
        }
        FUTEX_REQUEUE | FUTEX_CMP_REQUEUE => {
            // The "timeout" argument carries the requeue count.
            let (nr_wake, nr_requeue) = (val as i32, timeout as i32);
            if nr_wake < 0 || nr_requeue < 0 || uaddr2 % 4 != 0 {
                return Err(Errno::EINVAL);
            }
            let (k1, k2) = (key_of(t, uaddr, op), key_of(t, uaddr2, op));
            let (m, cv) = table();
            let mut tab = lock(m);
            if cmd == FUTEX_CMP_REQUEUE {
                let cur: u32 = t.read_obj(uaddr)?;
                if cur != val3 {
                    return Err(Errno::EAGAIN);
                }
            }
            let woken = tab.wake(k1, nr_wake as u32, u32::MAX);
            let mut moved = Vec::new();
            if k1 != k2 {
                if let Some(q) = tab.queues.get_mut(&k1) {
                    let k = (nr_requeue as usize).min(q.len());
                    moved = q.drain(..k).collect();
                    if q.is_empty() {
                        tab.queues.remove(&k1);
                    }
                }
            }
            let requeued = moved.len();
            if !moved.is_empty() {
                tab.queues.entry(k2).or_default().extend(moved);
            }
            drop(tab);
            cv.notify_all();
            Ok(woken as u64 + requeued as u64)
        }
        FUTEX_WAKE_OP => {
            if uaddr2 % 4 != 0 {
                return Err(Errno::EINVAL);
            }
            let (k1, k2) = (key_of(t, uaddr, op), key_of(t, uaddr2, op));
            let (m, cv) = table();
            let mut tab = lock(m);
            let hit = wake_op_apply(t, uaddr2, val3)?;
            let mut n = tab.wake(k1, val, u32::MAX);
            if hit {
                n += tab.wake(k2, timeout as u32, u32::MAX);
            }
            drop(tab);
            cv.notify_all();
            Ok(n as u64)
        }
        _ => {
            crate::kernel::kernel().log_unimplemented(
                libc::SYS_futex as u64 | (cmd as u64) << 32,
                "futex (this operation)",
            );
            Err(Errno::ENOSYS)
        }
    }
}

/// Wakes up to `n` waiters on (process, address): thread exit's
/// CLONE_CHILD_CLEARTID wake.
pub fn wake(t: &Task, addr: u64, n: u32) {
    let key = key_of(t, addr, 0);
    let (m, cv) = table();
    lock(m).wake(key, n, u32::MAX);
    cv.notify_all();
}
