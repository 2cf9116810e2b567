//! Clocks and sleeps. The sentry reads the host clocks for the application;
//! with the vDSO most clock reads never trap at all.

use std::time::Duration;

use nix::errno::Errno;

use super::SysResult;
use crate::kernel::interrupted;
use crate::kernel::task::{pod_zeroed, Task};

/// The host clock to read for an application clock id.
fn host_clock(t: &Task, clk: i32) -> Result<libc::clockid_t, Errno> {
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

pub fn nanosleep(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let req = read_timespec(t, a[0])?;
    let start = read_clock(libc::CLOCK_MONOTONIC)?;
    sleep_until(libc::CLOCK_MONOTONIC, &add(&start, &req))?;
    Ok(0)
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
    let deadline = if flags & libc::TIMER_ABSTIME != 0 {
        req
    } else {
        add(&read_clock(id)?, &req)
    };
    sleep_until(id, &deadline)?;
    let _ = Duration::ZERO;
    Ok(0)
}
