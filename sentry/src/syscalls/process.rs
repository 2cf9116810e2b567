//! Process syscalls: ids, fork/exec/exit/wait, limits, scheduling hints.

use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;

use super::SysResult;
use crate::kernel::task::{exit_status, Task};
use crate::kernel::{interrupted, kernel, lock, Process, Rusage, RLIM_NLIMITS};

pub fn getpid(t: &mut Task, _a: &[u64; 6]) -> SysResult {
    Ok(t.pid_to_user(t.pid()) as u64)
}

pub fn gettid(t: &mut Task, _a: &[u64; 6]) -> SysResult {
    Ok(t.pid_to_user(t.tid()) as u64)
}

pub fn getppid(t: &mut Task, _a: &[u64; 6]) -> SysResult {
    let tree = lock(&kernel().tree);
    let ppid = tree.procs.get(&t.pid()).map(|e| e.ppid).unwrap_or(0);
    Ok(tree.pid_in(t.pidns(), ppid) as u64)
}

pub fn getuid(t: &mut Task, _a: &[u64; 6]) -> SysResult {
    Ok(lock(&t.proc.creds).ruid as u64)
}
pub fn geteuid(t: &mut Task, _a: &[u64; 6]) -> SysResult {
    Ok(lock(&t.proc.creds).euid as u64)
}
pub fn getgid(t: &mut Task, _a: &[u64; 6]) -> SysResult {
    Ok(lock(&t.proc.creds).rgid as u64)
}
pub fn getegid(t: &mut Task, _a: &[u64; 6]) -> SysResult {
    Ok(lock(&t.proc.creds).egid as u64)
}

fn write_three(t: &Task, addrs: &[u64], vals: [u32; 3]) -> SysResult {
    for (addr, v) in addrs.iter().zip(vals) {
        t.write_obj(*addr, &v)?;
    }
    Ok(0)
}

pub fn getresuid(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let c = lock(&t.proc.creds).clone();
    write_three(t, &a[..3], [c.ruid, c.euid, c.suid])
}

pub fn getresgid(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let c = lock(&t.proc.creds).clone();
    write_three(t, &a[..3], [c.rgid, c.egid, c.sgid])
}

pub fn getgroups(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let size = a[0] as i32;
    let groups = lock(&t.proc.creds).groups.clone();
    if size < 0 {
        return Err(Errno::EINVAL);
    }
    if size == 0 {
        return Ok(groups.len() as u64);
    }
    if (size as usize) < groups.len() {
        return Err(Errno::EINVAL);
    }
    let bytes: Vec<u8> = groups.iter().flat_map(|g| g.to_le_bytes()).collect();
    t.write_bytes(a[1], &bytes)?;
    Ok(groups.len() as u64)
}

pub fn getpgrp(t: &mut Task, _a: &[u64; 6]) -> SysResult {
    let tree = lock(&kernel().tree);
    let pgid = tree.procs.get(&t.pid()).map(|e| e.pgid).unwrap_or(0);
    Ok(crate::kernel::pidns::number_in(t.pidns(), pgid) as u64)
}

/// A pid argument where 0 means the caller, by its kernel id.
fn target_pid(t: &Task, pid: i32) -> Result<i32, Errno> {
    match pid {
        0 => Ok(t.pid()),
        p if p < 0 => Err(Errno::ESRCH),
        p => t.pid_from_user(p),
    }
}

pub fn getpgid(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let pid = target_pid(t, a[0] as i32)?;
    let tree = lock(&kernel().tree);
    let pgid = tree.procs.get(&pid).map(|e| e.pgid).ok_or(Errno::ESRCH)?;
    Ok(crate::kernel::pidns::number_in(t.pidns(), pgid) as u64)
}

pub fn getsid(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let pid = target_pid(t, a[0] as i32)?;
    let tree = lock(&kernel().tree);
    let sid = tree.procs.get(&pid).map(|e| e.sid).ok_or(Errno::ESRCH)?;
    Ok(crate::kernel::pidns::number_in(t.pidns(), sid) as u64)
}

pub fn setpgid(t: &mut Task, a: &[u64; 6]) -> SysResult {
    if (a[1] as i32) < 0 {
        return Err(Errno::EINVAL);
    }
    let pid = target_pid(t, a[0] as i32)?;
    let pgid = match a[1] as i32 {
        0 => 0,
        g => t.group_from_user(g),
    };
    let mut tree = lock(&kernel().tree);
    let me = t.pid();
    let my_sid = tree.procs.get(&me).map(|e| e.sid).ok_or(Errno::ESRCH)?;
    let e = tree.procs.get(&pid).ok_or(Errno::ESRCH)?;
    if pid != me && e.ppid != me {
        return Err(Errno::ESRCH);
    }
    if e.sid != my_sid {
        return Err(Errno::EPERM);
    }
    if e.sid == pid {
        return Err(Errno::EPERM);
    }
    let new = if pgid == 0 { pid } else { pgid };
    if new != pid
        && !tree
            .procs
            .values()
            .any(|p| p.pgid == new && p.sid == my_sid && p.zombie.is_none())
    {
        return Err(Errno::EPERM);
    }
    if let Some(e) = tree.procs.get_mut(&pid) {
        e.pgid = new;
    }
    Ok(0)
}

pub fn setsid(t: &mut Task, _a: &[u64; 6]) -> SysResult {
    let mut tree = lock(&kernel().tree);
    let me = t.pid();
    if tree.procs.values().any(|p| p.pgid == me) {
        return Err(Errno::EPERM);
    }
    let e = tree.procs.get_mut(&me).ok_or(Errno::ESRCH)?;
    e.sid = me;
    e.pgid = me;
    Ok(tree.pid_in(t.pidns(), me) as u64)
}

const THREAD_FLAGS: u64 = (libc::CLONE_THREAD | libc::CLONE_SIGHAND) as u64;
const NS_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u64;

pub fn clone(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (flags, stack, ptid, ctid, tls) = (a[0], a[1], a[2], a[3], a[4]);
    if flags & NS_FLAGS != 0 {
        return Err(Errno::EPERM);
    }
    let vm = flags & libc::CLONE_VM as u64 != 0;
    let vfork = flags & libc::CLONE_VFORK as u64 != 0;
    if flags & libc::CLONE_THREAD as u64 != 0 {
        // Threads need a shared address space and signal handlers (Linux's EINVAL).
        if !vm || flags & libc::CLONE_SIGHAND as u64 == 0 {
            return Err(Errno::EINVAL);
        }
        return t.clone_thread(flags, stack, ptid, ctid, tls);
    }
    if flags & THREAD_FLAGS != 0 || (vm && !vfork) {
        // CLONE_SIGHAND without a thread, or CLONE_VM sharing between
        // processes: not supported yet.
        kernel().log_unimplemented(
            libc::SYS_clone as u64 | 1 << 32,
            "clone (shared memory between processes)",
        );
        return Err(Errno::ENOSYS);
    }
    t.fork(flags, stack, ptid, ctid, tls)
}

pub fn fork(t: &mut Task, _a: &[u64; 6]) -> SysResult {
    t.fork(libc::SIGCHLD as u64, 0, 0, 0, 0)
}

/// vfork: CLONE_VM|CLONE_VFORK, as on Linux (the child shares the
/// parent's memory until it execs or exits).
pub fn vfork(t: &mut Task, _a: &[u64; 6]) -> SysResult {
    t.fork(
        (libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD) as u64,
        0,
        0,
        0,
        0,
    )
}

pub fn execve(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let path = t.read_path(a[0])?;
    let argv = t.read_str_array(a[1])?;
    let envp = t.read_str_array(a[2])?;
    t.execve(&path, argv, envp)?;
    Ok(0)
}

pub fn exit(t: &mut Task, a: &[u64; 6]) -> SysResult {
    t.exit = Some(exit_status(a[0] as i32));
    t.thread_exit = true;
    Ok(0)
}

pub fn exit_group(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let status = exit_status(a[0] as i32);
    t.exit = Some(status);
    lock(&t.proc.group_exit).get_or_insert(status);
    let others = lock(&t.proc.threads)
        .iter()
        .any(|th| !th.is_gone() && !std::sync::Arc::ptr_eq(th, &t.thread));
    if others {
        kernel().stop_all_threads(&t.proc);
    }
    Ok(0)
}

/// Which children a wait call is about.
enum Which {
    Any,
    Pid(i32),
    Pgid(i32),
}

/// Finds (and unless `keep`, reaps) a zombie child matching `which`.
/// Returns Ok(None) when matching children exist but none has exited yet.
/// What a wait asks about (WEXITED, WUNTRACED/WSTOPPED, WCONTINUED).
#[derive(Clone, Copy)]
struct Events {
    exited: bool,
    stopped: bool,
    continued: bool,
}

/// One reported child: pid, wait(2) status, usage, and waitid's si_code
/// and si_status.
type Found = (i32, i32, Rusage, i32, i32);

fn wait_common(
    t: &Task,
    which: Which,
    ev: Events,
    nohang: bool,
    keep: bool,
) -> Result<Option<Found>, Errno> {
    let k = kernel();
    let me = t.pid();
    let mut tree = lock(&k.tree);
    loop {
        let my_pgid = tree.procs.get(&me).map(|e| e.pgid).unwrap_or(0);
        let children: Vec<i32> = tree
            .procs
            .get(&me)
            .map(|e| e.children.iter().copied().collect())
            .unwrap_or_default();
        let matching: Vec<i32> = children
            .into_iter()
            .filter(|c| match which {
                Which::Any => true,
                Which::Pid(p) => *c == p,
                Which::Pgid(g) => tree
                    .procs
                    .get(c)
                    .map(|e| e.pgid == if g == 0 { my_pgid } else { g })
                    .unwrap_or(false),
            })
            .collect();
        if matching.is_empty() {
            return Err(Errno::ECHILD);
        }
        // Job-control events first, as Linux reports them.
        for c in &matching {
            let Some(e) = tree.procs.get_mut(c) else {
                continue;
            };
            if e.zombie.is_some() {
                continue;
            }
            if ev.stopped {
                if let Some(sig) = e.stop_report {
                    if !keep {
                        e.stop_report = None;
                    }
                    let c = tree.pid_in(t.pidns(), *c);
                    return Ok(Some((c, (sig << 8) | 0x7f, Rusage::default(), 5, sig)));
                }
            }
            if ev.continued && e.continue_report {
                if !keep {
                    e.continue_report = false;
                }
                let c = tree.pid_in(t.pidns(), *c);
                return Ok(Some((c, 0xffff, Rusage::default(), 6, libc::SIGCONT)));
            }
        }
        let exited = if ev.exited {
            matching
                .iter()
                .find_map(|c| tree.procs.get(c).and_then(|e| e.zombie.map(|s| (*c, s))))
        } else {
            None
        };
        if let Some((pid, status)) = exited {
            // As the parent names it, while the child is still in the tree.
            let local = tree.pid_in(t.pidns(), pid);
            let mut total = Rusage::default();
            if let Some(e) = tree.procs.get(&pid) {
                total = *lock(&e.proc.rusage_self);
                total.add(&lock(&e.proc.rusage_children));
            }
            if !keep {
                tree.procs.remove(&pid);
                lock(&t.proc.rusage_children).add(&total);
                if let Some(e) = tree.procs.get_mut(&me) {
                    e.children.remove(&pid);
                }
            }
            let (code, st) = crate::kernel::signals::child_code(status);
            return Ok(Some((local, status, total, code, st)));
        }
        if nohang {
            return Ok(None);
        }
        if interrupted() {
            return Err(Errno::EINTR);
        }
        tree = k
            .tree_cv
            .wait_timeout(tree, Duration::from_millis(100))
            .map(|r| r.0)
            .unwrap_or_else(|p| p.into_inner().0);
    }
}

pub fn wait4(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (pid, wstatus, options, rusage) = (a[0] as i32, a[1], a[2] as i32, a[3]);
    let allowed = libc::WNOHANG
        | libc::WUNTRACED
        | libc::WCONTINUED
        | libc::__WALL
        | libc::__WCLONE
        | libc::__WNOTHREAD;
    if options & !allowed != 0 {
        return Err(Errno::EINVAL);
    }
    let which = match pid {
        -1 => Which::Any,
        0 => Which::Pgid(0),
        p if p < -1 => Which::Pgid(t.group_from_user(-p)),
        p => Which::Pid(t.pid_from_user(p).unwrap_or(i32::MIN)),
    };
    let ev = Events {
        exited: true,
        stopped: options & libc::WUNTRACED != 0,
        continued: options & libc::WCONTINUED != 0,
    };
    match wait_common(t, which, ev, options & libc::WNOHANG != 0, false)? {
        None => Ok(0),
        Some((child, status, usage, _, _)) => {
            if wstatus != 0 {
                t.write_obj(wstatus, &status)?;
            }
            if rusage != 0 {
                // The reaped child's usage was just added to ours; report it
                // alone.
                t.write_obj(rusage, &usage.to_host())?;
            }
            Ok(child as u64)
        }
    }
}

pub fn waitid(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (idtype, id, infop, options) = (a[0] as u32, a[1] as i32, a[2], a[3] as i32);
    let allowed = libc::WNOHANG
        | libc::WEXITED
        | libc::WSTOPPED
        | libc::WCONTINUED
        | libc::WNOWAIT
        | libc::__WALL
        | libc::__WCLONE
        | libc::__WNOTHREAD;
    if options & !allowed != 0 || options & (libc::WEXITED | libc::WSTOPPED | libc::WCONTINUED) == 0
    {
        return Err(Errno::EINVAL);
    }
    let which = match idtype {
        libc::P_ALL => Which::Any,
        libc::P_PID => Which::Pid(t.pid_from_user(id).unwrap_or(i32::MIN)),
        libc::P_PGID if id == 0 => Which::Pgid(0),
        libc::P_PGID => Which::Pgid(t.group_from_user(id)),
        _ => return Err(Errno::EINVAL),
    };
    let ev = Events {
        exited: options & libc::WEXITED != 0,
        stopped: options & libc::WSTOPPED != 0,
        continued: options & libc::WCONTINUED != 0,
    };
    let found = wait_common(
        t,
        which,
        ev,
        options & libc::WNOHANG != 0,
        options & libc::WNOWAIT != 0,
    )?;
    if infop != 0 {
        let mut info = [0u8; 128];
        if let Some((pid, _, _, code, st)) = found {
            info[0..4].copy_from_slice(&libc::SIGCHLD.to_le_bytes());
            info[8..12].copy_from_slice(&code.to_le_bytes());
            info[16..20].copy_from_slice(&pid.to_le_bytes());
            info[20..24].copy_from_slice(&lock(&t.proc.creds).ruid.to_le_bytes());
            info[24..28].copy_from_slice(&st.to_le_bytes());
        }
        t.write_bytes(infop, &info)?;
    }
    Ok(0)
}

pub fn set_tid_address(t: &mut Task, a: &[u64; 6]) -> SysResult {
    t.clear_child_tid = a[0];
    Ok(t.pid_to_user(t.tid()) as u64)
}

pub fn set_robust_list(t: &mut Task, a: &[u64; 6]) -> SysResult {
    if a[1] != 24 {
        return Err(Errno::EINVAL);
    }
    t.robust_list = (a[0], a[1]);
    Ok(0)
}

const ARCH_SET_GS: u64 = 0x1001;
const ARCH_SET_FS: u64 = 0x1002;
const ARCH_GET_FS: u64 = 0x1003;
const ARCH_GET_GS: u64 = 0x1004;

pub fn arch_prctl(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (code, addr) = (a[0], a[1]);
    match code {
        ARCH_SET_FS | ARCH_SET_GS => {
            if addr >= crate::mm::TASK_SIZE {
                return Err(Errno::EPERM);
            }
            if code == ARCH_SET_FS {
                t.regs.fs_base = addr;
            } else {
                t.regs.gs_base = addr;
            }
            Ok(0)
        }
        ARCH_GET_FS => {
            t.write_obj(addr, &t.regs.fs_base)?;
            Ok(0)
        }
        ARCH_GET_GS => {
            t.write_obj(addr, &t.regs.gs_base)?;
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}

pub fn prctl(t: &mut Task, a: &[u64; 6]) -> SysResult {
    match a[0] as i32 {
        libc::PR_SET_NAME => {
            let mut name = t.read_cstr(a[1], 4096).or_else(|e| {
                if e == Errno::ENAMETOOLONG {
                    Ok(Vec::new())
                } else {
                    Err(e)
                }
            })?;
            name.truncate(15);
            lock(&t.proc.exe).comm = name;
            Ok(0)
        }
        libc::PR_GET_NAME => {
            let mut name = lock(&t.proc.exe).comm.clone();
            name.resize(16, 0);
            t.write_bytes(a[1], &name)?;
            Ok(0)
        }
        libc::PR_SET_PDEATHSIG => {
            if a[1] > 64 {
                return Err(Errno::EINVAL);
            }
            t.proc
                .pdeathsig
                .store(a[1] as i32, std::sync::atomic::Ordering::Relaxed);
            Ok(0)
        }
        libc::PR_GET_PDEATHSIG => {
            let sig = t.proc.pdeathsig.load(std::sync::atomic::Ordering::Relaxed);
            t.write_obj(a[1], &sig)?;
            Ok(0)
        }
        libc::PR_GET_DUMPABLE => Ok(1),
        libc::PR_SET_DUMPABLE => {
            if a[1] > 1 {
                return Err(Errno::EINVAL);
            }
            Ok(0)
        }
        libc::PR_SET_NO_NEW_PRIVS => {
            if a[1] != 1 || a[2] != 0 || a[3] != 0 || a[4] != 0 {
                return Err(Errno::EINVAL);
            }
            lock(&t.proc.creds).caps.no_new_privs = true;
            Ok(0)
        }
        libc::PR_GET_NO_NEW_PRIVS => {
            if a[1] != 0 || a[2] != 0 || a[3] != 0 || a[4] != 0 {
                return Err(Errno::EINVAL);
            }
            Ok(lock(&t.proc.creds).caps.no_new_privs as u64)
        }
        libc::PR_SET_CHILD_SUBREAPER => {
            t.proc
                .child_subreaper
                .store(a[1] != 0, std::sync::atomic::Ordering::Relaxed);
            Ok(0)
        }
        libc::PR_SET_TIMERSLACK => {
            let v = if a[1] == 0 {
                crate::kernel::DEFAULT_TIMER_SLACK_NS
            } else {
                a[1]
            };
            t.proc
                .timer_slack_ns
                .store(v, std::sync::atomic::Ordering::Relaxed);
            Ok(0)
        }
        libc::PR_GET_TIMERSLACK => Ok(t
            .proc
            .timer_slack_ns
            .load(std::sync::atomic::Ordering::Relaxed)),
        libc::PR_GET_SECUREBITS => Ok(0),
        libc::PR_SET_SECUREBITS => {
            if lock(&t.proc.creds).caps.effective & (1 << 8) == 0 {
                return Err(Errno::EPERM);
            }
            Ok(0)
        }
        libc::PR_SET_TIMING => {
            if a[1] != 0 {
                return Err(Errno::EINVAL);
            }
            Ok(0)
        }
        libc::PR_GET_TIMING => Ok(0),
        libc::PR_SET_THP_DISABLE => {
            if a[2] != 0 || a[3] != 0 || a[4] != 0 {
                return Err(Errno::EINVAL);
            }
            Ok(0)
        }
        libc::PR_GET_THP_DISABLE => {
            if a[1] != 0 || a[2] != 0 || a[3] != 0 || a[4] != 0 {
                return Err(Errno::EINVAL);
            }
            Ok(0)
        }
        libc::PR_GET_SPECULATION_CTRL => {
            if a[2] != 0 || a[3] != 0 || a[4] != 0 {
                return Err(Errno::EINVAL);
            }
            match a[1] {
                // PR_SPEC_STORE_BYPASS, PR_SPEC_INDIRECT_BRANCH,
                // PR_SPEC_L1D_FLUSH: not controllable per task here.
                0..=2 => Ok(0),
                _ => Err(Errno::ENODEV),
            }
        }
        libc::PR_SET_SECCOMP => {
            // Seccomp filters for the application are not applied yet:
            // report the checks Linux makes first, then EINVAL.
            match a[1] {
                1 => Err(Errno::EINVAL),
                2 => {
                    t.read_bytes(a[2], 16)?;
                    let c = lock(&t.proc.creds).caps;
                    if !c.no_new_privs && c.effective & (1 << 21) == 0 {
                        return Err(Errno::EACCES);
                    }
                    kernel().log_unimplemented(
                        libc::SYS_prctl as u64 | 1 << 32,
                        "prctl(PR_SET_SECCOMP)",
                    );
                    Err(Errno::EINVAL)
                }
                _ => Err(Errno::EINVAL),
            }
        }
        libc::PR_GET_CHILD_SUBREAPER => {
            let on = t
                .proc
                .child_subreaper
                .load(std::sync::atomic::Ordering::Relaxed) as i32;
            t.write_obj(a[1], &on)?;
            Ok(0)
        }
        libc::PR_CAPBSET_READ => {
            if a[1] > crate::kernel::CAP_LAST_CAP as u64 {
                return Err(Errno::EINVAL);
            }
            Ok((lock(&t.proc.creds).caps.bounding >> a[1]) & 1)
        }
        libc::PR_CAPBSET_DROP => {
            if a[1] > crate::kernel::CAP_LAST_CAP as u64 {
                return Err(Errno::EINVAL);
            }
            let mut c = lock(&t.proc.creds);
            if c.caps.effective & (1 << 8) == 0 {
                return Err(Errno::EPERM);
            }
            c.caps.bounding &= !(1u64 << a[1]);
            Ok(0)
        }
        libc::PR_GET_KEEPCAPS => Ok(lock(&t.proc.creds).caps.keep_caps as u64),
        libc::PR_SET_KEEPCAPS => {
            if a[1] > 1 {
                return Err(Errno::EINVAL);
            }
            lock(&t.proc.creds).caps.keep_caps = a[1] == 1;
            Ok(0)
        }
        libc::PR_CAP_AMBIENT => {
            let mut c = lock(&t.proc.creds);
            let cap = a[2];
            match a[1] as i32 {
                libc::PR_CAP_AMBIENT_IS_SET => {
                    if cap > crate::kernel::CAP_LAST_CAP as u64 {
                        return Err(Errno::EINVAL);
                    }
                    Ok((c.caps.ambient >> cap) & 1)
                }
                libc::PR_CAP_AMBIENT_RAISE | libc::PR_CAP_AMBIENT_LOWER => {
                    if cap > crate::kernel::CAP_LAST_CAP as u64 || a[3] != 0 || a[4] != 0 {
                        return Err(Errno::EINVAL);
                    }
                    let bit = 1u64 << cap;
                    if a[1] as i32 == libc::PR_CAP_AMBIENT_RAISE {
                        if c.caps.permitted & bit == 0 || c.caps.inheritable & bit == 0 {
                            return Err(Errno::EPERM);
                        }
                        c.caps.ambient |= bit;
                    } else {
                        c.caps.ambient &= !bit;
                    }
                    Ok(0)
                }
                libc::PR_CAP_AMBIENT_CLEAR_ALL => {
                    if a[2] != 0 || a[3] != 0 || a[4] != 0 {
                        return Err(Errno::EINVAL);
                    }
                    c.caps.ambient = 0;
                    Ok(0)
                }
                _ => Err(Errno::EINVAL),
            }
        }
        _ => Err(Errno::EINVAL),
    }
}

pub fn sched_getaffinity(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let len = a[1] as usize;
    if len < 8 || !len.is_multiple_of(8) {
        return Err(Errno::EINVAL);
    }
    check_sched_target(t, a[0] as i32)?;
    let n = kernel().cpu_count.min(64);
    let mask: u64 = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
    t.write_obj(a[2], &mask)?;
    Ok(8)
}

pub fn sched_setaffinity(t: &mut Task, a: &[u64; 6]) -> SysResult {
    check_sched_target(t, a[0] as i32)?;
    let _: u64 = t.read_obj(a[2])?;
    Ok(0)
}

pub fn sched_yield(_t: &mut Task, _a: &[u64; 6]) -> SysResult {
    std::thread::yield_now();
    Ok(0)
}

pub fn getcpu(t: &mut Task, a: &[u64; 6]) -> SysResult {
    for addr in [a[0], a[1]] {
        if addr != 0 {
            t.write_obj(addr, &0u32)?;
        }
    }
    Ok(0)
}

fn rlimit_target(t: &Task, pid: i32) -> Result<std::sync::Arc<crate::kernel::Process>, Errno> {
    let pid = target_pid(t, pid)?;
    if pid == t.pid() {
        return Ok(t.proc.clone());
    }
    kernel().process(pid).ok_or(Errno::ESRCH)
}

fn do_prlimit(t: &Task, pid: i32, res: u32, new: u64, old: u64) -> SysResult {
    if res as usize >= RLIM_NLIMITS {
        return Err(Errno::EINVAL);
    }
    let target = rlimit_target(t, pid)?;
    let new_lim: Option<libc::rlimit64> = if new != 0 {
        Some(t.read_obj(new)?)
    } else {
        None
    };
    let mut lims = lock(&target.rlimits);
    let cur = lims[res as usize];
    if let Some(n) = new_lim {
        if n.rlim_cur > n.rlim_max {
            return Err(Errno::EINVAL);
        }
        if n.rlim_max > cur.rlim_max
            && !lock(&t.proc.creds).has_cap(crate::kernel::cap::SYS_RESOURCE)
        {
            return Err(Errno::EPERM);
        }
        if res == libc::RLIMIT_NOFILE && n.rlim_max > 1 << 20 {
            return Err(Errno::EPERM);
        }
    }
    if old != 0 {
        t.write_obj(old, &cur)?;
    }
    if let Some(n) = new_lim {
        lims[res as usize] = n;
        if res == libc::RLIMIT_CPU && n.rlim_cur != libc::RLIM64_INFINITY {
            super::time::start_cpu_watcher();
        }
    }
    Ok(0)
}

pub fn prlimit64(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_prlimit(t, a[0] as i32, a[1] as u32, a[2], a[3])
}

pub fn getrlimit(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_prlimit(t, 0, a[0] as u32, 0, a[1])
}

pub fn setrlimit(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_prlimit(t, 0, a[0] as u32, a[1], 0)
}

pub fn getrusage(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let who = a[0] as i32;
    if who != libc::RUSAGE_SELF && who != libc::RUSAGE_CHILDREN && who != libc::RUSAGE_THREAD {
        return Err(Errno::EINVAL);
    }
    let r = if who == libc::RUSAGE_CHILDREN {
        *lock(&t.proc.rusage_children)
    } else {
        t.rusage_now()
    };
    t.write_obj(a[1], &r.to_host())?;
    Ok(0)
}

pub fn times(t: &mut Task, a: &[u64; 6]) -> SysResult {
    if a[0] != 0 {
        let me = t.rusage_now();
        let ch = *lock(&t.proc.rusage_children);
        let ticks = |us: i64| us / 10_000;
        let tms = libc::tms {
            tms_utime: ticks(me.utime_us),
            tms_stime: ticks(me.stime_us),
            tms_cutime: ticks(ch.utime_us),
            tms_cstime: ticks(ch.stime_us),
        };
        t.write_obj(a[0], &tms)?;
    }
    Ok((kernel().boot.elapsed().as_millis() / 10) as u64)
}

fn check_sched_target(t: &Task, pid: i32) -> Result<(), Errno> {
    if pid < 0 {
        return Err(Errno::EINVAL);
    }
    let pid = target_pid(t, pid)?;
    if pid != t.pid() && kernel().process(pid).is_none() {
        return Err(Errno::ESRCH);
    }
    Ok(())
}

pub fn sched_getscheduler(t: &mut Task, a: &[u64; 6]) -> SysResult {
    check_sched_target(t, a[0] as i32)?;
    Ok(libc::SCHED_OTHER as u64)
}

pub fn sched_getparam(t: &mut Task, a: &[u64; 6]) -> SysResult {
    check_sched_target(t, a[0] as i32)?;
    if a[1] == 0 {
        return Err(Errno::EINVAL);
    }
    t.write_obj(a[1], &0i32)?;
    Ok(0)
}

pub fn sched_setscheduler(t: &mut Task, a: &[u64; 6]) -> SysResult {
    check_sched_target(t, a[0] as i32)?;
    if a[2] == 0 {
        return Err(Errno::EINVAL);
    }
    let prio: i32 = t.read_obj(a[2])?;
    match a[1] as i32 & !libc::SCHED_RESET_ON_FORK {
        libc::SCHED_OTHER | libc::SCHED_BATCH | libc::SCHED_IDLE if prio == 0 => Ok(0),
        libc::SCHED_OTHER | libc::SCHED_BATCH | libc::SCHED_IDLE => Err(Errno::EINVAL),
        libc::SCHED_FIFO | libc::SCHED_RR => Err(Errno::EPERM),
        _ => Err(Errno::EINVAL),
    }
}

pub fn sched_get_priority_max(_t: &mut Task, a: &[u64; 6]) -> SysResult {
    match a[0] as i32 {
        libc::SCHED_FIFO | libc::SCHED_RR => Ok(99),
        libc::SCHED_OTHER | libc::SCHED_BATCH | libc::SCHED_IDLE => Ok(0),
        _ => Err(Errno::EINVAL),
    }
}

pub fn sched_get_priority_min(_t: &mut Task, a: &[u64; 6]) -> SysResult {
    match a[0] as i32 {
        libc::SCHED_FIFO | libc::SCHED_RR => Ok(1),
        libc::SCHED_OTHER | libc::SCHED_BATCH | libc::SCHED_IDLE => Ok(0),
        _ => Err(Errno::EINVAL),
    }
}

/// clone3: the same as clone, with its arguments in a struct
/// { flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size,
/// tls, set_tid, set_tid_size, cgroup }.
pub fn clone3(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (addr, size) = (a[0], a[1] as usize);
    if size > 4096 {
        return Err(Errno::E2BIG);
    }
    if size < 64 {
        return Err(Errno::EINVAL);
    }
    let raw = t.read_bytes(addr, size)?;
    // A newer struct than we know is fine only if the extra fields are zero.
    if raw.len() > 88 && raw[88..].iter().any(|b| *b != 0) {
        return Err(Errno::E2BIG);
    }
    let field = |i: usize| {
        raw.get(i * 8..i * 8 + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
            .unwrap_or(0)
    };
    let (flags, _pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls) = (
        field(0),
        field(1),
        field(2),
        field(3),
        field(4),
        field(5),
        field(6),
        field(7),
    );
    if field(8) != 0 || field(9) != 0 || field(10) != 0 {
        // set_tid and cgroups are not supported.
        return Err(Errno::EINVAL);
    }
    if flags & (libc::CLONE_PIDFD as u64 | 0xff) != 0 || exit_signal > 64 {
        kernel().log_unimplemented(
            libc::SYS_clone3 as u64 | 1 << 32,
            "clone3 (pidfd or bad flags)",
        );
        return Err(Errno::EINVAL);
    }
    if (stack == 0) != (stack_size == 0) {
        return Err(Errno::EINVAL);
    }
    let sp = if stack != 0 {
        stack.checked_add(stack_size).ok_or(Errno::EINVAL)?
    } else {
        0
    };
    clone(t, &[flags | exit_signal, sp, parent_tid, child_tid, tls, 0])
}

/// Processes a getpriority/setpriority `which`/`who` pair names.
fn priority_targets(t: &Task, which: i32, who: i32) -> Result<Vec<Arc<Process>>, Errno> {
    let who = match which as u32 {
        libc::PRIO_PROCESS if who > 0 => t.pid_from_user(who)?,
        libc::PRIO_PGRP if who > 0 => t.group_from_user(who),
        _ => who,
    };
    let tree = lock(&kernel().tree);
    // Only what the caller's namespace holds.
    let live = tree
        .procs
        .values()
        .filter(|e| e.zombie.is_none() && t.sees(&e.proc));
    let found: Vec<Arc<Process>> = match which as u32 {
        libc::PRIO_PROCESS => {
            let pid = if who == 0 { t.pid() } else { who };
            live.filter(|e| e.proc.pid == pid)
                .map(|e| e.proc.clone())
                .collect()
        }
        libc::PRIO_PGRP => {
            let pg = if who == 0 {
                tree.procs.get(&t.pid()).map(|e| e.pgid).unwrap_or(0)
            } else {
                who
            };
            live.filter(|e| e.pgid == pg)
                .map(|e| e.proc.clone())
                .collect()
        }
        libc::PRIO_USER => {
            let uid = if who == 0 {
                lock(&t.proc.creds).ruid
            } else {
                who as u32
            };
            live.filter(|e| lock(&e.proc.creds).ruid == uid)
                .map(|e| e.proc.clone())
                .collect()
        }
        _ => return Err(Errno::EINVAL),
    };
    if found.is_empty() {
        return Err(Errno::ESRCH);
    }
    Ok(found)
}

/// getpriority: the raw syscall returns 20 - nice of the highest-priority
/// (lowest nice) target.
pub fn getpriority(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let targets = priority_targets(t, a[0] as i32, a[1] as i32)?;
    let best = targets
        .iter()
        .map(|p| p.nice.load(std::sync::atomic::Ordering::Relaxed))
        .min()
        .unwrap_or(0);
    Ok((20 - best) as u64)
}

/// setpriority: lowering the nice value needs privilege (CAP_SYS_NICE);
/// changing another user's process needs a matching uid.
pub fn setpriority(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let targets = priority_targets(t, a[0] as i32, a[1] as i32)?;
    let nice = (a[2] as i32).clamp(-20, 19);
    let (euid, privileged) = {
        let c = lock(&t.proc.creds);
        (c.euid, c.has_cap(crate::kernel::cap::SYS_NICE))
    };
    let mut result = Ok(0);
    for p in targets {
        let (owner_r, owner_e) = {
            let c = lock(&p.creds);
            (c.ruid, c.euid)
        };
        if !privileged && euid != owner_r && euid != owner_e {
            result = Err(Errno::EPERM);
            continue;
        }
        let cur = p.nice.load(std::sync::atomic::Ordering::Relaxed);
        if nice < cur && !privileged {
            result = Err(Errno::EACCES);
            continue;
        }
        p.nice.store(nice, std::sync::atomic::Ordering::Relaxed);
    }
    result
}
