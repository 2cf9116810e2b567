//! POSIX per-process timers: timer_create, timer_settime, timer_gettime,
//! timer_getoverrun, timer_delete (gVisor's `kernel/task_timers`).
//!
//! Each armed timer has a sentry thread that sleeps until the expiry on the
//! timer's clock (wall clocks by condition-variable timeout; CPU clocks,
//! which only advance while the stub runs, by polling every few
//! milliseconds) and then delivers the notification: a process-directed
//! signal (SIGEV_SIGNAL), a signal to one thread (SIGEV_THREAD_ID, what
//! glibc's SIGEV_THREAD is built on) or nothing (SIGEV_NONE). An expiry
//! while the previous signal is still pending counts as an overrun, as on
//! Linux.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::SysResult;
use crate::kernel::signals::sig_bit;
use crate::kernel::task::Task;
use crate::kernel::{kernel, lock, PosixTimer, Process};

const SIGEV_SIGNAL: i32 = 0;
const SIGEV_NONE: i32 = 1;
/// glibc's SIGEV_THREAD; the kernel treats it as SIGEV_SIGNAL.
const SIGEV_THREAD: i32 = 2;
const SIGEV_THREAD_ID: i32 = 4;
const SI_TIMER: i32 = -2;
const TIMER_ABSTIME: u64 = 1;
/// How often a CPU-clock timer checks the clock.
const CPU_POLL: Duration = Duration::from_millis(4);
/// Most timers one process may hold (Linux bounds them by RLIMIT_SIGPENDING).
const MAX_TIMERS: usize = 4096;

fn now_on(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills a timespec we own.
    if unsafe { libc::clock_gettime(clock, &mut ts) } < 0 {
        return Duration::ZERO;
    }
    Duration::new(
        ts.tv_sec.max(0) as u64,
        ts.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

fn is_cpu_clock(clock: libc::clockid_t) -> bool {
    clock < 0
}

fn read_itimerspec(t: &Task, addr: u64) -> Result<(Duration, Duration), Errno> {
    let its: libc::itimerspec = t.read_obj(addr)?;
    let its = [its.it_interval, its.it_value];
    let conv = |ts: &libc::timespec| {
        if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
            Err(Errno::EINVAL)
        } else {
            Ok(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
        }
    };
    // struct itimerspec { it_interval; it_value; }
    Ok((conv(&its[1])?, conv(&its[0])?))
}

fn to_ts(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: d.as_secs() as i64,
        tv_nsec: d.subsec_nanos() as i64,
    }
}

fn itimerspec(interval: Duration, value: Duration) -> libc::itimerspec {
    libc::itimerspec {
        it_interval: to_ts(interval),
        it_value: to_ts(value),
    }
}

pub fn timer_create(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (clock_arg, sevp, id_out) = (a[0] as i32, a[1], a[2]);
    let clock = super::time::host_clock(t, clock_arg)?;
    if matches!(
        clock_arg,
        libc::CLOCK_MONOTONIC_RAW | libc::CLOCK_REALTIME_COARSE | libc::CLOCK_MONOTONIC_COARSE
    ) {
        return Err(Errno::ENOTSUP);
    }
    let (value, signo, notify, tid) = if sevp == 0 {
        (None, libc::SIGALRM, SIGEV_SIGNAL, 0)
    } else {
        // struct sigevent { sigval value; int signo; int notify; int tid; ... }
        let raw = t.read_bytes(sevp, 20)?;
        let word = |o: usize| i32::from_le_bytes([raw[o], raw[o + 1], raw[o + 2], raw[o + 3]]);
        let value = u64::from_le_bytes(raw[0..8].try_into().map_err(|_| Errno::EFAULT)?);
        // SIGEV_THREAD_ID names the thread as the caller's namespace
        // does; the timer keeps the kernel's tid.
        let tid = match word(12) {
            SIGEV_THREAD_ID => t.pid_from_user(word(16)).unwrap_or(0),
            _ => word(16),
        };
        (Some(value), word(8), word(12), tid)
    };
    match notify {
        SIGEV_NONE => {}
        SIGEV_SIGNAL | SIGEV_THREAD | SIGEV_THREAD_ID => {
            if !(1..crate::kernel::signals::NSIG as i32).contains(&signo) {
                return Err(Errno::EINVAL);
            }
            if notify == SIGEV_THREAD_ID {
                let mine = lock(&t.proc.threads)
                    .iter()
                    .any(|th| th.tid == tid && !th.is_gone());
                if !mine {
                    return Err(Errno::EINVAL);
                }
            }
        }
        _ => return Err(Errno::EINVAL),
    }
    let (m, _) = &t.proc.posix_timers;
    let mut timers = lock(m);
    if timers.timers.len() >= MAX_TIMERS {
        return Err(Errno::EAGAIN);
    }
    let id = timers.next_id;
    timers.next_id = timers.next_id.wrapping_add(1).max(0);
    timers.timers.insert(
        id,
        PosixTimer {
            clock,
            notify,
            signo,
            value: value.unwrap_or(id as u64),
            tid,
            deadline: None,
            interval: Duration::ZERO,
            overrun_pending: 0,
            overrun_last: 0,
            generation: 0,
        },
    );
    drop(timers);
    if let Err(e) = t.write_obj(id_out, &id) {
        lock(m).timers.remove(&id);
        return Err(e);
    }
    Ok(0)
}

/// (time left, interval) of a timer.
fn remaining(tm: &PosixTimer) -> (Duration, Duration) {
    let left = match tm.deadline {
        Some(d) => {
            let left = d.saturating_sub(now_on(tm.clock));
            if left.is_zero() {
                Duration::from_nanos(1)
            } else {
                left
            }
        }
        None => Duration::ZERO,
    };
    (left, tm.interval)
}

pub fn timer_gettime(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let id = a[0] as i32;
    let (left, interval) = {
        let timers = lock(&t.proc.posix_timers.0);
        remaining(timers.timers.get(&id).ok_or(Errno::EINVAL)?)
    };
    t.write_obj(a[1], &itimerspec(interval, left))?;
    Ok(0)
}

pub fn timer_getoverrun(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let timers = lock(&t.proc.posix_timers.0);
    let tm = timers.timers.get(&(a[0] as i32)).ok_or(Errno::EINVAL)?;
    Ok(tm.overrun_last.min(i32::MAX as u64))
}

pub fn timer_delete(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (m, cv) = &t.proc.posix_timers;
    lock(m).timers.remove(&(a[0] as i32)).ok_or(Errno::EINVAL)?;
    cv.notify_all();
    Ok(0)
}

pub fn timer_settime(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (id, flags, new_addr, old_addr) = (a[0] as i32, a[1], a[2], a[3]);
    // Linux ignores unknown flag bits.
    if new_addr == 0 {
        return Err(Errno::EINVAL);
    }
    let (value, interval) = read_itimerspec(t, new_addr)?;
    let (m, cv) = &t.proc.posix_timers;
    let (old, generation) = {
        let mut timers = lock(m);
        let tm = timers.timers.get_mut(&id).ok_or(Errno::EINVAL)?;
        let old = remaining(tm);
        tm.generation += 1;
        tm.interval = interval;
        tm.overrun_pending = 0;
        tm.overrun_last = 0;
        tm.deadline = if value.is_zero() {
            None
        } else if flags & TIMER_ABSTIME != 0 {
            Some(value)
        } else {
            Some(now_on(tm.clock) + value)
        };
        (old, (!value.is_zero()).then_some(tm.generation))
    };
    cv.notify_all();
    if let Some(generation) = generation {
        spawn_timer_thread(&t.proc, id, generation);
    }
    if old_addr != 0 {
        t.write_obj(old_addr, &itimerspec(old.1, old.0))?;
    }
    Ok(0)
}

/// The thread that serves one arming of timer `id`; it quits when the
/// timer is re-armed, disarmed or deleted, or the process is gone.
fn spawn_timer_thread(p: &Arc<Process>, id: i32, generation: u64) {
    let weak = Arc::downgrade(p);
    let _ = std::thread::Builder::new()
        .name("posix-timer".into())
        .stack_size(64 * 1024)
        .spawn(move || loop {
            let Some(p) = weak.upgrade() else { return };
            let fire = {
                let (m, cv) = &p.posix_timers;
                let mut timers = lock(m);
                loop {
                    if kernel().process(p.pid).is_none() {
                        return;
                    }
                    let Some(tm) = timers.timers.get_mut(&id) else {
                        return;
                    };
                    if tm.generation != generation {
                        return;
                    }
                    let Some(deadline) = tm.deadline else { return };
                    let now = now_on(tm.clock);
                    if now >= deadline {
                        // Periodic timers catch up: expiries missed while
                        // asleep count as overruns.
                        let mut missed = 0u64;
                        tm.deadline = if tm.interval.is_zero() {
                            None
                        } else {
                            let mut next = deadline + tm.interval;
                            while next <= now {
                                next += tm.interval;
                                missed += 1;
                            }
                            Some(next)
                        };
                        break (
                            tm.notify,
                            tm.signo,
                            tm.tid,
                            tm.value,
                            missed,
                            tm.deadline.is_some(),
                        );
                    }
                    let wait = if is_cpu_clock(tm.clock) {
                        (deadline - now).min(CPU_POLL)
                    } else {
                        (deadline - now).min(Duration::from_secs(1))
                    };
                    timers = cv
                        .wait_timeout(timers, wait)
                        .map(|r| r.0)
                        .unwrap_or_else(|e| e.into_inner().0);
                }
            };
            let (notify, signo, tid, value, missed, again) = fire;
            deliver(&p, id, notify, signo, tid, value, missed);
            if !again {
                return;
            }
            drop(p);
            // Let the next iteration re-take the lock.
            std::thread::sleep(Duration::ZERO);
            let _ = Instant::now();
        });
}

fn deliver(p: &Arc<Process>, id: i32, notify: i32, signo: i32, tid: i32, value: u64, missed: u64) {
    if notify == SIGEV_NONE {
        return;
    }
    let thread = if notify == SIGEV_THREAD_ID {
        lock(&p.threads)
            .iter()
            .find(|th| th.tid == tid && !th.is_gone())
            .cloned()
    } else {
        None
    };
    // Still pending from the last expiry: count an overrun instead, and
    // show it in the queued siginfo (Linux fills it in at dequeue).
    let mut timers = lock(&p.posix_timers.0);
    let Some(tm) = timers.timers.get_mut(&id) else {
        return;
    };
    let patch = |info: &mut [u8; 128], overrun: u64| {
        let same_timer = info[8..12] == SI_TIMER.to_le_bytes() && info[16..20] == id.to_le_bytes();
        if same_timer {
            info[20..24].copy_from_slice(&(overrun.min(i32::MAX as u64) as i32).to_le_bytes());
        }
        same_timer
    };
    let slot = signo as usize;
    let was_pending = match &thread {
        Some(th) => {
            let mut ts = lock(&th.sig);
            let pending = ts.pending & sig_bit(signo) != 0;
            pending
                && ts
                    .info
                    .get_mut(slot)
                    .is_some_and(|i| patch(i, tm.overrun_pending + missed + 1))
        }
        None => {
            let mut ps = lock(&p.sig);
            let pending = ps.pending & sig_bit(signo) != 0;
            pending
                && ps
                    .info
                    .get_mut(slot)
                    .is_some_and(|i| patch(i, tm.overrun_pending + missed + 1))
        }
    };
    if was_pending {
        tm.overrun_pending += missed + 1;
        return;
    }
    tm.overrun_pending = missed;
    let overrun = missed;
    drop(timers);
    let mut info = [0u8; 128];
    info[0..4].copy_from_slice(&signo.to_le_bytes());
    info[8..12].copy_from_slice(&SI_TIMER.to_le_bytes());
    info[16..20].copy_from_slice(&id.to_le_bytes());
    info[20..24].copy_from_slice(&(overrun.min(i32::MAX as u64) as i32).to_le_bytes());
    info[24..32].copy_from_slice(&value.to_le_bytes());
    match thread {
        Some(th) => kernel().send_signal_thread(p, &th, signo, info),
        None => kernel().send_signal(p, signo, info),
    }
}

/// Called after a signal is dequeued (delivered to a handler, taken by
/// sigtimedwait or read from a signalfd), with no signal lock held: a
/// timer's signal sets what timer_getoverrun reports, as Linux's
/// posixtimer_rearm does, so an expiry after the dequeue cannot change the
/// count the application is about to ask for.
pub fn signal_dequeued(p: &Process, info: &[u8; 128]) {
    let i32_at = |o: usize| i32::from_le_bytes([info[o], info[o + 1], info[o + 2], info[o + 3]]);
    if i32_at(8) != SI_TIMER {
        return;
    }
    if let Some(tm) = lock(&p.posix_timers.0).timers.get_mut(&i32_at(16)) {
        tm.overrun_last = i32_at(20).max(0) as u64;
    }
}

/// execve drops the process's timers.
pub fn clear_for_exec(p: &Process) {
    lock(&p.posix_timers.0).timers.clear();
    p.posix_timers.1.notify_all();
}
