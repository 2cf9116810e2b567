//! Clocks and sleeps. The sentry reads the host clocks for the application;
//! with the vDSO most clock reads never trap at all.

use std::time::Duration;

use nix::errno::Errno;

use super::SysResult;
use crate::kernel::interrupted;
use crate::kernel::task::{pod_zeroed, Task};

/// The host clock to read for an application clock id.
pub(super) fn host_clock(t: &Task, clk: i32) -> Result<libc::clockid_t, Errno> {
    match clk {
        libc::CLOCK_REALTIME
        | libc::CLOCK_MONOTONIC
        | libc::CLOCK_MONOTONIC_RAW
        | libc::CLOCK_REALTIME_COARSE
        | libc::CLOCK_MONOTONIC_COARSE
        | libc::CLOCK_BOOTTIME
        | libc::CLOCK_TAI => Ok(clk),
        libc::CLOCK_REALTIME_ALARM => Ok(libc::CLOCK_REALTIME),
        libc::CLOCK_BOOTTIME_ALARM => Ok(libc::CLOCK_BOOTTIME),
        libc::CLOCK_PROCESS_CPUTIME_ID | libc::CLOCK_THREAD_CPUTIME_ID => {
            // The stub's own CPU clock: (~pid << 3) | CPUCLOCK_SCHED.
            // Each task has its own single-threaded stub, so the stub's
            // process clock is also the thread's (a host thread clock of
            // another process would be EINVAL).
            let pid = t.proc.stub_tgid.load(std::sync::atomic::Ordering::SeqCst);
            Ok(((!pid) << 3) | 2)
        }
        // A CPU clock id built with MAKE_PROCESS_CPUCLOCK/THREAD_CPUCLOCK
        // (what glibc passes): ~pid << 3 | type, pid 0 meaning the caller.
        c if c < 0 => {
            let pid = !(c >> 3);
            let kind = c & 3;
            if kind == 3 {
                return Err(Errno::EINVAL);
            }
            let pid = if pid == 0 {
                0
            } else {
                t.pid_from_user(pid).map_err(|_| Errno::EINVAL)?
            };
            let proc = if pid == 0 {
                t.proc.clone()
            } else if c & 4 != 0 {
                // A thread clock of another thread: that thread's process.
                let tree = crate::kernel::lock(&crate::kernel::kernel().tree);
                match tree.threads.get(&pid) {
                    Some((p, _)) if p.pid == t.proc.pid => p.clone(),
                    _ if pid == t.proc.pid => t.proc.clone(),
                    _ => return Err(Errno::EINVAL),
                }
            } else {
                crate::kernel::kernel().process(pid).ok_or(Errno::EINVAL)?
            };
            let stub = proc.stub_tgid.load(std::sync::atomic::Ordering::SeqCst);
            // Every kind reads the scheduler clock of the stub: the sentry
            // does not split user and system time per clock.
            Ok(((!stub) << 3) | 2)
        }
        _ => Err(Errno::EINVAL),
    }
}

fn read_clock(id: libc::clockid_t) -> Result<libc::timespec, Errno> {
    let mut ts: libc::timespec = pod_zeroed();
    // SAFETY: clock_gettime writes one timespec we own.
    if unsafe { libc::clock_gettime(id, &mut ts) } < 0 {
        return Err(Errno::last());
    }
    Ok(ts)
}

pub fn clock_gettime(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let ts = read_clock(host_clock(t, a[0] as i32)?)?;
    t.write_obj(a[1], &ts)?;
    Ok(0)
}

pub fn clock_getres(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let id = host_clock(t, a[0] as i32)?;
    if a[1] != 0 {
        let mut ts: libc::timespec = pod_zeroed();
        // SAFETY: clock_getres writes one timespec we own.
        if unsafe { libc::clock_getres(id, &mut ts) } < 0 {
            return Err(Errno::last());
        }
        t.write_obj(a[1], &ts)?;
    }
    Ok(0)
}

pub fn gettimeofday(t: &mut Task, a: &[u64; 6]) -> SysResult {
    if a[0] != 0 {
        let ts = read_clock(libc::CLOCK_REALTIME)?;
        let tv = libc::timeval {
            tv_sec: ts.tv_sec,
            tv_usec: ts.tv_nsec / 1000,
        };
        t.write_obj(a[0], &tv)?;
    }
    if a[1] != 0 {
        t.write_obj(a[1], &[0i32, 0i32])?;
    }
    Ok(0)
}

pub fn time(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let now = read_clock(libc::CLOCK_REALTIME)?.tv_sec;
    if a[0] != 0 {
        t.write_obj(a[0], &now)?;
    }
    Ok(now as u64)
}

fn read_timespec(t: &Task, addr: u64) -> Result<libc::timespec, Errno> {
    let ts: libc::timespec = t.read_obj(addr)?;
    if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
        return Err(Errno::EINVAL);
    }
    Ok(ts)
}

/// Sleeps on the host until `deadline` of clock `id`, giving up with EINTR
/// when the process is being killed.
fn sleep_until(id: libc::clockid_t, deadline: &libc::timespec) -> Result<(), Errno> {
    loop {
        // SAFETY: clock_nanosleep reads a timespec we own.
        let r = unsafe {
            libc::clock_nanosleep(id, libc::TIMER_ABSTIME, deadline, std::ptr::null_mut())
        };
        match r {
            0 => return Ok(()),
            libc::EINTR if interrupted() => return Err(Errno::EINTR),
            libc::EINTR => continue,
            e => return Err(Errno::from_raw(e)),
        }
    }
}

fn add(ts: &libc::timespec, d: &libc::timespec) -> libc::timespec {
    let mut sec = ts.tv_sec.saturating_add(d.tv_sec);
    let mut nsec = ts.tv_nsec + d.tv_nsec;
    if nsec >= 1_000_000_000 {
        nsec -= 1_000_000_000;
        sec = sec.saturating_add(1);
    }
    libc::timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    }
}

/// Time left until `deadline` on clock `id` (zero if passed).
fn remaining(id: libc::clockid_t, deadline: &libc::timespec) -> libc::timespec {
    let now = read_clock(id).unwrap_or(*deadline);
    let mut sec = deadline.tv_sec - now.tv_sec;
    let mut nsec = deadline.tv_nsec - now.tv_nsec;
    if nsec < 0 {
        nsec += 1_000_000_000;
        sec -= 1;
    }
    if sec < 0 {
        return libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
    }
    libc::timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    }
}

/// A relative sleep interrupted by a signal reports the time left in
/// `rem`, as Linux does.
fn sleep_relative(t: &Task, id: libc::clockid_t, deadline: &libc::timespec, rem: u64) -> SysResult {
    match sleep_until(id, deadline) {
        Err(Errno::EINTR) if rem != 0 => {
            t.write_obj(rem, &remaining(id, deadline))?;
            Err(Errno::EINTR)
        }
        r => r.map(|_| 0),
    }
}

pub fn nanosleep(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let req = read_timespec(t, a[0])?;
    let start = read_clock(libc::CLOCK_MONOTONIC)?;
    sleep_relative(t, libc::CLOCK_MONOTONIC, &add(&start, &req), a[1])
}

pub fn clock_nanosleep(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (clk, flags, req_addr) = (a[0] as i32, a[1] as i32, a[2]);
    if clk == libc::CLOCK_THREAD_CPUTIME_ID {
        return Err(Errno::EINVAL);
    }
    if flags & !libc::TIMER_ABSTIME != 0 {
        return Err(Errno::EINVAL);
    }
    let id = host_clock(t, clk)?;
    if clk == libc::CLOCK_PROCESS_CPUTIME_ID {
        return Err(Errno::ENOTSUP);
    }
    let req = read_timespec(t, req_addr)?;
    if flags & libc::TIMER_ABSTIME != 0 {
        sleep_until(id, &req)?;
        return Ok(0);
    }
    let deadline = add(&read_clock(id)?, &req);
    sleep_relative(t, id, &deadline, a[3])
}

// ---- interval timers ----------------------------------------------------------

use std::sync::Arc;
use std::time::Instant;

use crate::kernel::{kernel, lock as klock, ITimer, Process};

fn to_timeval(d: Duration) -> libc::timeval {
    libc::timeval {
        tv_sec: d.as_secs() as i64,
        tv_usec: d.subsec_micros() as i64,
    }
}

fn from_timeval(tv: &libc::timeval) -> Result<Duration, Errno> {
    if tv.tv_sec < 0 || !(0..1_000_000).contains(&tv.tv_usec) {
        return Err(Errno::EINVAL);
    }
    Ok(Duration::new(tv.tv_sec as u64, tv.tv_usec as u32 * 1000))
}

/// (time left, interval) of ITIMER_REAL.
fn current_itimer(p: &Process) -> (Duration, Duration) {
    let it = *klock(&p.itimer_real.0);
    let left = it
        .deadline
        .map(|d| d.saturating_duration_since(Instant::now()))
        .unwrap_or_default();
    // A timer that is due reports a tiny remainder rather than "disarmed".
    let left = if it.deadline.is_some() && left.is_zero() {
        Duration::from_micros(1)
    } else {
        left
    };
    (left, it.interval)
}

/// Arms ITIMER_REAL; a sentry thread sends SIGALRM at each expiry until the
/// timer is re-armed, disarmed, or the process is gone.
fn arm_itimer(p: &Arc<Process>, value: Duration, interval: Duration) {
    let generation = {
        let mut it = klock(&p.itimer_real.0);
        it.generation += 1;
        it.deadline = (!value.is_zero()).then(|| Instant::now() + value);
        it.interval = interval;
        it.generation
    };
    p.itimer_real.1.notify_all();
    if value.is_zero() {
        return;
    }
    let weak = Arc::downgrade(p);
    let _ = std::thread::Builder::new()
        .name("itimer".into())
        .stack_size(64 * 1024)
        .spawn(move || loop {
            let Some(p) = weak.upgrade() else { return };
            let mut it: std::sync::MutexGuard<'_, ITimer> = klock(&p.itimer_real.0);
            loop {
                if it.generation != generation || kernel().process(p.pid).is_none() {
                    return;
                }
                let Some(d) = it.deadline else { return };
                let now = Instant::now();
                if now >= d {
                    break;
                }
                it = p
                    .itimer_real
                    .1
                    .wait_timeout(it, d - now)
                    .map(|r| r.0)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
            it.deadline = (!it.interval.is_zero()).then(|| Instant::now() + it.interval);
            let again = it.deadline.is_some();
            drop(it);
            let info = crate::kernel::signals::info_sender(
                libc::SIGALRM,
                crate::kernel::signals::SI_KERNEL,
                0,
                0,
            );
            kernel().send_signal(&p, libc::SIGALRM, info);
            if !again {
                return;
            }
        });
}

pub fn alarm(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (left, _) = current_itimer(&t.proc);
    arm_itimer(
        &t.proc,
        Duration::from_secs(a[0] as u32 as u64),
        Duration::ZERO,
    );
    // Seconds left, rounded (Linux rounds to nearest, and never reports 0
    // for a pending alarm).
    let secs = left.as_secs() + u64::from(left.subsec_micros() >= 500_000);
    Ok(if secs == 0 && !left.is_zero() {
        1
    } else {
        secs
    })
}

pub fn getitimer(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let which = a[0] as i32;
    let (left, interval) = match which {
        libc::ITIMER_REAL => current_itimer(&t.proc),
        libc::ITIMER_VIRTUAL | libc::ITIMER_PROF => cpu_itimer(&t.proc, which),
        _ => return Err(Errno::EINVAL),
    };
    let v = libc::itimerval {
        it_interval: to_timeval(interval),
        it_value: to_timeval(left),
    };
    t.write_obj(a[1], &v)?;
    Ok(0)
}

pub fn setitimer(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (which, new_addr, old_addr) = (a[0] as i32, a[1], a[2]);
    if !matches!(
        which,
        libc::ITIMER_REAL | libc::ITIMER_VIRTUAL | libc::ITIMER_PROF
    ) {
        return Err(Errno::EINVAL);
    }
    let new: Option<libc::itimerval> = if new_addr != 0 {
        Some(t.read_obj(new_addr)?)
    } else {
        None
    };
    let (value, interval) = match &new {
        Some(v) => (from_timeval(&v.it_value)?, from_timeval(&v.it_interval)?),
        None => (Duration::ZERO, Duration::ZERO),
    };
    if which != libc::ITIMER_REAL {
        let (left, old_interval) = cpu_itimer(&t.proc, which);
        if old_addr != 0 {
            let v = libc::itimerval {
                it_interval: to_timeval(old_interval),
                it_value: to_timeval(left),
            };
            t.write_obj(old_addr, &v)?;
        }
        let idx = if which == libc::ITIMER_VIRTUAL { 0 } else { 1 };
        let now = t.proc.cpu_ns();
        let expiry = if value.is_zero() {
            0
        } else {
            now + value.as_nanos() as u64
        };
        klock(&t.proc.cpu_timers)[idx] = (expiry, interval.as_nanos() as u64);
        if expiry != 0 {
            start_cpu_watcher();
        }
        return Ok(0);
    }
    let (left, old_interval) = current_itimer(&t.proc);
    if old_addr != 0 {
        let v = libc::itimerval {
            it_interval: to_timeval(old_interval),
            it_value: to_timeval(left),
        };
        t.write_obj(old_addr, &v)?;
    }
    arm_itimer(&t.proc, value, interval);
    Ok(0)
}

/// (time left, interval) of ITIMER_VIRTUAL or ITIMER_PROF. Both count the
/// stub's CPU time (user and system: the host clock the sentry can read).
fn cpu_itimer(p: &Process, which: i32) -> (Duration, Duration) {
    let idx = if which == libc::ITIMER_VIRTUAL { 0 } else { 1 };
    let (expiry, interval) = klock(&p.cpu_timers)[idx];
    if expiry == 0 {
        return (Duration::ZERO, Duration::from_nanos(interval));
    }
    let left = expiry.saturating_sub(p.cpu_ns()).max(1000);
    (Duration::from_nanos(left), Duration::from_nanos(interval))
}

/// One sentry thread watches CPU time for every process: it fires
/// ITIMER_VIRTUAL (SIGVTALRM) and ITIMER_PROF (SIGPROF), and enforces
/// RLIMIT_CPU (SIGXCPU each second past the soft limit, SIGKILL at the hard
/// one). It polls every 10 ms, the kernel's tick granularity for these.
pub fn start_cpu_watcher() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        let _ = std::thread::Builder::new()
            .name("cpu-timers".into())
            .stack_size(128 * 1024)
            .spawn(|| loop {
                std::thread::sleep(Duration::from_millis(10));
                for p in kernel().live_processes() {
                    check_cpu_time(&p);
                }
            });
    });
}

fn check_cpu_time(p: &Arc<Process>) {
    let lim = p.rlimit(libc::RLIMIT_CPU);
    let armed = klock(&p.cpu_timers).iter().any(|(e, _)| *e != 0);
    if !armed && lim.rlim_cur == libc::RLIM64_INFINITY {
        return;
    }
    let now = p.cpu_ns();
    let mut fire = Vec::new();
    {
        let mut timers = klock(&p.cpu_timers);
        for (i, (expiry, interval)) in timers.iter_mut().enumerate() {
            if *expiry != 0 && now >= *expiry {
                fire.push(if i == 0 {
                    libc::SIGVTALRM
                } else {
                    libc::SIGPROF
                });
                *expiry = if *interval != 0 { now + *interval } else { 0 };
            }
        }
    }
    let secs = now / 1_000_000_000;
    if lim.rlim_max != libc::RLIM64_INFINITY && secs >= lim.rlim_max {
        fire.push(libc::SIGKILL);
    } else if lim.rlim_cur != libc::RLIM64_INFINITY && secs >= lim.rlim_cur {
        let last = p.cpu_limit_sent.load(std::sync::atomic::Ordering::SeqCst);
        if last < secs + 1 {
            p.cpu_limit_sent
                .store(secs + 1, std::sync::atomic::Ordering::SeqCst);
            fire.push(libc::SIGXCPU);
        }
    }
    for sig in fire {
        let info =
            crate::kernel::signals::info_sender(sig, crate::kernel::signals::SI_KERNEL, 0, 0);
        kernel().send_signal(p, sig, info);
    }
}
