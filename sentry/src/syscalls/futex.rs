//! Futexes: waiters sleep on a sentry condition variable, keyed by (process,
//! address). With one task per process so far, a wait ends by a wake from
//! the same process, a timeout or a fatal signal; threads and shared-memory
//! futexes (keyed by memory object) come with the process-semantics work.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::SysResult;
use crate::kernel::task::Task;
use crate::kernel::{interrupted, lock};

const FUTEX_WAIT: i32 = 0;
const FUTEX_WAKE: i32 = 1;
const FUTEX_WAIT_BITSET: i32 = 9;
const FUTEX_WAKE_BITSET: i32 = 10;
const FUTEX_PRIVATE_FLAG: i32 = 128;
const FUTEX_CLOCK_REALTIME: i32 = 256;

#[derive(Default)]
struct Queue {
    /// Bitsets of the current waiters and a generation bumped per wake.
    waiters: Vec<(u64, u32)>,
    woken: Vec<u64>,
    next_id: u64,
}

/// A futex's identity: (process, address) for private futexes and plain
/// memory; (-memory id, offset) for shared anonymous memory, which forked
/// processes see at the same id.
type Key = (i64, u64);

fn key_of(t: &Task, uaddr: u64, op: i32) -> Key {
    if op & FUTEX_PRIVATE_FLAG == 0 {
        if let Some((id, off)) = lock(&t.proc.mm).shared_key(uaddr) {
            return (-(id as i64), off);
        }
    }
    (t.pid() as i64, uaddr)
}

fn table() -> &'static (Mutex<HashMap<Key, Queue>>, Condvar) {
    static T: OnceLock<(Mutex<HashMap<Key, Queue>>, Condvar)> = OnceLock::new();
    T.get_or_init(|| (Mutex::new(HashMap::new()), Condvar::new()))
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

pub fn futex(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (uaddr, op, val, timeout, _uaddr2, val3) =
        (a[0], a[1] as i32, a[2] as u32, a[3], a[4], a[5] as u32);
    if uaddr % 4 != 0 {
        return Err(Errno::EINVAL);
    }
    let cmd = op & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
    let key = key_of(t, uaddr, op);
    match cmd {
        FUTEX_WAIT | FUTEX_WAIT_BITSET => {
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
            let (m, cv) = table();
            let mut tab = lock(m);
            let cur: u32 = t.read_obj(uaddr)?;
            if cur != val {
                return Err(Errno::EAGAIN);
            }
            let q = tab.entry(key).or_default();
            let id = q.next_id;
            q.next_id += 1;
            q.waiters.push((id, bitset));
            loop {
                if let Some(q) = tab.get_mut(&key) {
                    if let Some(i) = q.woken.iter().position(|w| *w == id) {
                        q.woken.swap_remove(i);
                        return Ok(0);
                    }
                }
                let remove = |tab: &mut HashMap<Key, Queue>| {
                    if let Some(q) = tab.get_mut(&key) {
                        q.waiters.retain(|(w, _)| *w != id);
                    }
                };
                if interrupted() {
                    remove(&mut tab);
                    return Err(Errno::EINTR);
                }
                let wait = match deadline {
                    Some(d) => {
                        let now = Instant::now();
                        if now >= d {
                            remove(&mut tab);
                            return Err(Errno::ETIMEDOUT);
                        }
                        (d - now).min(Duration::from_millis(100))
                    }
                    None => Duration::from_millis(100),
                };
                tab = cv
                    .wait_timeout(tab, wait)
                    .map(|r| r.0)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
        }
        FUTEX_WAKE | FUTEX_WAKE_BITSET => {
            let bitset = if cmd == FUTEX_WAKE { u32::MAX } else { val3 };
            if bitset == 0 {
                return Err(Errno::EINVAL);
            }
            let (m, cv) = table();
            let mut tab = lock(m);
            let Some(q) = tab.get_mut(&key) else {
                return Ok(0);
            };
            let mut n = 0u32;
            let mut i = 0;
            while i < q.waiters.len() && n < val {
                if q.waiters[i].1 & bitset != 0 {
                    let (id, _) = q.waiters.remove(i);
                    q.woken.push(id);
                    n += 1;
                } else {
                    i += 1;
                }
            }
            if q.waiters.is_empty() && q.woken.is_empty() {
                tab.remove(&key);
            }
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
    let mut tab = lock(m);
    if let Some(q) = tab.get_mut(&key) {
        let k = (n as usize).min(q.waiters.len());
        let woken: Vec<u64> = q.waiters.drain(..k).map(|(id, _)| id).collect();
        q.woken.extend(woken);
    }
    cv.notify_all();
}
