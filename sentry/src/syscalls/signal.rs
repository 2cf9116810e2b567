//! Signal syscalls. Dispositions and masks are emulated per process; a
//! signal whose action is "terminate" ends the process. Handlers are
//! recorded but not yet run (signal frames come with the process-semantics
//! work).

use nix::errno::Errno;

use super::SysResult;
use crate::kernel::signals::{
    default_action, info_sender, sig_bit, DefaultAction, SigAction, NSIG, SIG_DFL, SI_TKILL,
    SI_USER, UNBLOCKABLE,
};
use crate::kernel::task::Task;
use crate::kernel::{kernel, lock};

fn valid_sig(sig: i32) -> bool {
    (1..NSIG as i32).contains(&sig)
}

pub fn rt_sigaction(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (sig, act, oact, size) = (a[0] as i32, a[1], a[2], a[3]);
    if size != 8 || !valid_sig(sig) {
        return Err(Errno::EINVAL);
    }
    if act != 0 && (sig == libc::SIGKILL || sig == libc::SIGSTOP) {
        return Err(Errno::EINVAL);
    }
    let new = if act != 0 {
        let raw: [u64; 4] = t.read_obj(act)?;
        Some(SigAction {
            handler: raw[0],
            flags: raw[1],
            restorer: raw[2],
            mask: raw[3] & !UNBLOCKABLE,
        })
    } else {
        None
    };
    let mut ss = lock(&t.proc.sig);
    let old = ss.action(sig);
    if oact != 0 {
        t.write_obj(oact, &[old.handler, old.flags, old.restorer, old.mask])?;
    }
    if let Some(n) = new {
        ss.actions[sig as usize] = n;
        // Ignoring a pending signal discards it.
        if n.handler == crate::kernel::signals::SIG_IGN
            || (n.handler == SIG_DFL && default_action(sig) == DefaultAction::Ignore)
        {
            ss.pending &= !sig_bit(sig);
        }
    }
    Ok(0)
}

pub fn rt_sigprocmask(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (how, set, oset, size) = (a[0] as i32, a[1], a[2], a[3]);
    if size != 8 {
        return Err(Errno::EINVAL);
    }
    let new: Option<u64> = if set != 0 {
        Some(t.read_obj(set)?)
    } else {
        None
    };
    let old = {
        let mut ss = lock(&t.thread.sig);
        let old = ss.mask;
        if let Some(n) = new {
            let n = n & !UNBLOCKABLE;
            ss.mask = match how {
                libc::SIG_BLOCK => old | n,
                libc::SIG_UNBLOCK => old & !n,
                libc::SIG_SETMASK => n,
                _ => return Err(Errno::EINVAL),
            };
        }
        old
    };
    if oset != 0 {
        t.write_obj(oset, &old)?;
    }
    // Signals waiting behind the mask are delivered before the task runs on.
    Ok(0)
}

pub fn rt_sigpending(t: &mut Task, a: &[u64; 6]) -> SysResult {
    if a[1] != 8 {
        return Err(Errno::EINVAL);
    }
    let shared = lock(&t.proc.sig).pending;
    let ts = lock(&t.thread.sig);
    let pending = (shared | ts.pending) & ts.mask;
    drop(ts);
    t.write_obj(a[0], &pending)?;
    Ok(0)
}

pub fn sigaltstack(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (ss_addr, old_addr) = (a[0], a[1]);
    let new = if ss_addr != 0 {
        let raw = t.read_bytes(ss_addr, 24)?;
        let sp = u64::from_le_bytes(raw[0..8].try_into().map_err(|_| Errno::EFAULT)?);
        let flags = i32::from_le_bytes(raw[8..12].try_into().map_err(|_| Errno::EFAULT)?);
        let size = u64::from_le_bytes(raw[16..24].try_into().map_err(|_| Errno::EFAULT)?);
        if flags & !(libc::SS_DISABLE | (1 << 31)) != 0 {
            return Err(Errno::EINVAL);
        }
        if flags & libc::SS_DISABLE == 0 && size < libc::MINSIGSTKSZ as u64 {
            return Err(Errno::ENOMEM);
        }
        Some((sp, flags, size))
    } else {
        None
    };
    let mut ss = lock(&t.thread.sig);
    let old = ss.altstack;
    if let Some(n) = new {
        ss.altstack = n;
    }
    drop(ss);
    if old_addr != 0 {
        let mut raw = [0u8; 24];
        raw[0..8].copy_from_slice(&old.0.to_le_bytes());
        raw[8..12].copy_from_slice(&old.1.to_le_bytes());
        raw[16..24].copy_from_slice(&old.2.to_le_bytes());
        t.write_bytes(old_addr, &raw)?;
    }
    Ok(0)
}

/// Sends to one process (pid 1's protection is in `Kernel::send_signal`).
/// A zombie still exists for kill(2): the signal is accepted and dropped.
/// `pid` is the kernel's id of a process the caller can see.
fn signal_one(t: &Task, pid: i32, sig: i32, code: i32) -> Result<(), Errno> {
    let (target, zombie) = kernel().process_or_zombie(pid).ok_or(Errno::ESRCH)?;
    if sig != 0 && !zombie {
        let uid = lock(&t.proc.creds).ruid;
        let from = t.pid_seen_by(&target);
        let info = info_sender(sig, code, from, uid);
        if from_ancestor_namespace(t, &target) && matches!(sig, libc::SIGKILL | libc::SIGSTOP) {
            // SIGKILL and SIGSTOP reach a namespace's init from outside it.
            kernel().send_signal_from_host(&target, sig, info);
        } else {
            kernel().send_signal(&target, sig, info);
        }
    }
    Ok(())
}

/// Whether `target` is a container's pid-namespace init and `t` signals it
/// from the sandbox's namespace, an ancestor of the init's.
fn from_ancestor_namespace(t: &Task, target: &crate::kernel::Process) -> bool {
    target.container_init && target.pidns.is_some() && t.pidns().is_none()
}

pub fn kill(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (pid, sig) = (a[0] as i32, a[1] as i32);
    if !(0..NSIG as i32).contains(&sig) {
        return Err(Errno::EINVAL);
    }
    if pid > 0 {
        signal_one(t, t.pid_from_user(pid)?, sig, SI_USER)?;
        return Ok(0);
    }
    let group = match pid {
        0 | -1 => 0,
        g => t.group_from_user(-g),
    };
    let targets: Vec<i32> = {
        let tree = lock(&kernel().tree);
        let my_pgid = tree.procs.get(&t.pid()).map(|e| e.pgid).unwrap_or(0);
        tree.procs
            .iter()
            .filter(|(_, e)| {
                e.zombie.is_none()
                    && t.sees(&e.proc)
                    && match pid {
                        0 => e.pgid == my_pgid,
                        // Every process but its namespace's init.
                        -1 => {
                            !(e.proc.container_init
                                && crate::kernel::pidns::same(e.proc.pidns.as_ref(), t.pidns()))
                        }
                        _ => e.pgid == group,
                    }
            })
            .map(|(p, _)| *p)
            .collect()
    };
    if targets.is_empty() {
        return Err(Errno::ESRCH);
    }
    // Signal others first, so a fatal signal to ourselves cannot cut the loop short.
    let me = t.pid();
    for p in targets.iter().filter(|p| **p != me) {
        let _ = signal_one(t, *p, sig, SI_USER);
    }
    if targets.contains(&me) {
        let _ = signal_one(t, me, sig, SI_USER);
    }
    Ok(0)
}

/// Finds a thread by tid: (process, thread), for tkill and tgkill.
fn find_thread(
    tid: i32,
) -> Option<(
    std::sync::Arc<crate::kernel::Process>,
    std::sync::Arc<crate::kernel::Thread>,
)> {
    let k = kernel();
    let tree = lock(&k.tree);
    if let Some((p, th)) = tree.threads.get(&tid) {
        return Some((p.clone(), th.clone()));
    }
    let e = tree.procs.get(&tid).filter(|e| e.zombie.is_none())?;
    let th = lock(&e.proc.threads)
        .iter()
        .find(|th| th.tid == tid && !th.is_gone())
        .cloned()?;
    Some((e.proc.clone(), th))
}

/// `tgid` and `tid` as the caller names them.
fn signal_thread(t: &Task, tgid: Option<i32>, tid: i32, sig: i32) -> SysResult {
    let (proc, th) = find_thread(t.pid_from_user(tid)?).ok_or(Errno::ESRCH)?;
    if let Some(g) = tgid {
        if t.pid_from_user(g)? != proc.pid {
            return Err(Errno::ESRCH);
        }
    }
    if sig != 0 {
        let uid = lock(&t.proc.creds).ruid;
        let from = t.pid_seen_by(&proc);
        kernel().send_signal_thread(&proc, &th, sig, info_sender(sig, SI_TKILL, from, uid));
    }
    Ok(0)
}

pub fn tkill(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (tid, sig) = (a[0] as i32, a[1] as i32);
    if tid <= 0 || !(0..NSIG as i32).contains(&sig) {
        return Err(Errno::EINVAL);
    }
    signal_thread(t, None, tid, sig)
}

pub fn tgkill(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (tgid, tid, sig) = (a[0] as i32, a[1] as i32, a[2] as i32);
    if tgid <= 0 || tid <= 0 || !(0..NSIG as i32).contains(&sig) {
        return Err(Errno::EINVAL);
    }
    signal_thread(t, Some(tgid), tid, sig)
}

pub fn rt_sigreturn(t: &mut Task, _a: &[u64; 6]) -> SysResult {
    t.sigreturn()
}

/// Sleeps until a signal the task can take arrives (or a fatal one).
fn wait_for_signal() {
    let ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 20_000_000,
    };
    while !crate::kernel::interrupted() {
        // SAFETY: nanosleep reads a timespec we own; the interrupt signal
        // cuts it short when a signal is sent to this task.
        unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
    }
}

pub fn pause(_t: &mut Task, _a: &[u64; 6]) -> SysResult {
    wait_for_signal();
    Err(Errno::EINTR)
}

pub fn rt_sigsuspend(t: &mut Task, a: &[u64; 6]) -> SysResult {
    if a[1] != 8 {
        return Err(Errno::EINVAL);
    }
    let mask: u64 = t.read_obj(a[0])?;
    {
        let mut ss = lock(&t.thread.sig);
        t.saved_mask = Some(ss.mask);
        ss.mask = mask & !UNBLOCKABLE;
    }
    wait_for_signal();
    Err(Errno::EINTR)
}

/// rt_sigtimedwait (sigwaitinfo, sigtimedwait, sigwait): takes a pending
/// signal of `set` (blocked or not) without running its handler.
pub fn rt_sigtimedwait(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (set_addr, info_addr, ts_addr, size) = (a[0], a[1], a[2], a[3]);
    if size != 8 {
        return Err(Errno::EINVAL);
    }
    let set: u64 = t.read_obj(set_addr)?;
    let set = set & !UNBLOCKABLE;
    let deadline = if ts_addr != 0 {
        let ts: libc::timespec = t.read_obj(ts_addr)?;
        if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
            return Err(Errno::EINVAL);
        }
        Some(
            std::time::Instant::now()
                + std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32),
        )
    } else {
        None
    };
    loop {
        // Thread-directed signals first, then the process's.
        let taken = {
            let mut ss = lock(&t.proc.sig);
            let mut ts = lock(&t.thread.sig);
            let mine = ts.pending & set;
            if mine != 0 {
                let sig = mine.trailing_zeros() as i32 + 1;
                ts.pending &= !sig_bit(sig);
                Some((sig, ts.info[sig as usize]))
            } else if ss.pending & set != 0 {
                let sig = (ss.pending & set).trailing_zeros() as i32 + 1;
                ss.pending &= !sig_bit(sig);
                Some((sig, ss.info[sig as usize]))
            } else {
                None
            }
        };
        if let Some((sig, info)) = taken {
            super::timer::signal_dequeued(&t.proc, &info);
            if info_addr != 0 {
                t.write_bytes(info_addr, &info)?;
            }
            return Ok(sig as u64);
        }
        if crate::kernel::interrupted() {
            return Err(Errno::EINTR);
        }
        if let Some(d) = deadline {
            if std::time::Instant::now() >= d {
                return Err(Errno::EAGAIN);
            }
        }
        let nap = libc::timespec {
            tv_sec: 0,
            tv_nsec: 2_000_000,
        };
        // SAFETY: nanosleep reads a timespec we own; the interrupt signal
        // cuts it short.
        unsafe { libc::nanosleep(&nap, std::ptr::null_mut()) };
    }
}

/// The siginfo a sigqueue caller supplies: Linux lets a process forge only
/// negative si_codes (SI_QUEUE, ...) when signalling another process.
fn queued_info(
    t: &Task,
    target_pid: i32,
    sig: i32,
    addr: u64,
) -> Result<crate::kernel::signals::SigInfo, Errno> {
    let raw = t.read_bytes(addr, 128)?;
    let mut info: crate::kernel::signals::SigInfo = [0u8; 128];
    info.copy_from_slice(&raw);
    let code = i32::from_le_bytes([info[8], info[9], info[10], info[11]]);
    if (code >= 0 || code == SI_TKILL) && target_pid != t.pid() {
        return Err(Errno::EPERM);
    }
    info[0..4].copy_from_slice(&sig.to_le_bytes());
    Ok(info)
}

pub fn rt_sigqueueinfo(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (pid, sig) = (a[0] as i32, a[1] as i32);
    if !(0..NSIG as i32).contains(&sig) {
        return Err(Errno::EINVAL);
    }
    let pid = t.pid_from_user(pid)?;
    let info = queued_info(t, pid, sig, a[2])?;
    let (target, zombie) = kernel().process_or_zombie(pid).ok_or(Errno::ESRCH)?;
    if sig != 0 && !zombie {
        kernel().send_signal(&target, sig, info);
    }
    Ok(0)
}

pub fn rt_tgsigqueueinfo(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (tgid, tid, sig) = (a[0] as i32, a[1] as i32, a[2] as i32);
    if !(0..NSIG as i32).contains(&sig) || tgid <= 0 || tid <= 0 {
        return Err(Errno::EINVAL);
    }
    let (tgid, tid) = (t.pid_from_user(tgid)?, t.pid_from_user(tid)?);
    let info = queued_info(t, tgid, sig, a[3])?;
    let (proc, th) = find_thread(tid).ok_or(Errno::ESRCH)?;
    if proc.pid != tgid {
        return Err(Errno::ESRCH);
    }
    if sig != 0 {
        kernel().send_signal_thread(&proc, &th, sig, info);
    }
    Ok(0)
}
