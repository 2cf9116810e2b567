//! System V IPC syscalls: msgget/msgsnd/msgrcv/msgctl, semget/semop/
//! semtimedop/semctl, shmget/shmat/shmdt/shmctl. The objects live in
//! `kernel/ipc.rs`; this module copies arguments and results.

use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::SysResult;
use crate::kernel::ipc::{
    self, namespace, now_secs, Caller, Message, IPC_NOWAIT, MSGMAX, MSGMNB, SEMAEM, SEMMSL, SEMOPM,
    SEMVMX, SHMALL, SHMMAX, SHMMIN, SHMMNI, SHM_DEST, SHM_LOCKED,
};
use crate::kernel::lock;
use crate::kernel::task::Task;
use crate::mm::{self, PAGE_SIZE};

const IPC_RMID: i32 = 0;
const IPC_SET: i32 = 1;
const IPC_STAT: i32 = 2;
const IPC_INFO: i32 = 3;
/// glibc ors this into every *ctl command (the 64-bit structures).
const IPC_64: i32 = 0x100;

const MSG_STAT: i32 = 11;
const MSG_INFO: i32 = 12;
const MSG_STAT_ANY: i32 = 13;
const MSG_NOERROR: i32 = 0o10000;
const MSG_EXCEPT: i32 = 0o20000;
const MSG_COPY: i32 = 0o40000;

const GETPID: i32 = 11;
const GETVAL: i32 = 12;
const GETALL: i32 = 13;
const GETNCNT: i32 = 14;
const GETZCNT: i32 = 15;
const SETVAL: i32 = 16;
const SETALL: i32 = 17;
const SEM_STAT: i32 = 18;
const SEM_INFO: i32 = 19;
const SEM_STAT_ANY: i32 = 20;
const SEM_UNDO: i16 = 0x1000;

const SHM_LOCK: i32 = 11;
const SHM_UNLOCK: i32 = 12;
const SHM_STAT: i32 = 13;
const SHM_INFO: i32 = 14;
const SHM_STAT_ANY: i32 = 15;
const SHM_RDONLY: i32 = 0o10000;
const SHM_RND: i32 = 0o20000;
const SHM_REMAP: i32 = 0o40000;
const SHM_EXEC: i32 = 0o100000;

fn caller(t: &Task) -> Caller {
    let c = lock(&t.proc.creds);
    Caller {
        pid: t.pid(),
        euid: c.euid,
        egid: c.egid,
        privileged: c.has_cap(crate::kernel::cap::IPC_OWNER),
    }
}

fn put_i64(b: &mut [u8], off: usize, v: i64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}

fn put_i32(b: &mut [u8], off: usize, v: i32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

/// An array of C ints (struct msginfo, struct seminfo).
fn int_array(vals: &[i32]) -> Vec<u8> {
    vals.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The slot-addressed *_STAT commands check read permission unless _ANY.
fn stat_allowed(perm: &ipc::Perm, c: &Caller, any: bool) -> Result<(), Errno> {
    if any || perm.allows(c, 0o4) {
        Ok(())
    } else {
        Err(Errno::EACCES)
    }
}

// ---------------------------------------------------------------- messages

pub fn msgget(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let c = caller(t);
    Ok(namespace().msgget(a[0] as i32, a[1] as i32, &c)? as u64)
}

pub fn msgsnd(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (id, msgp, size, flags) = (a[0] as i32, a[1], a[2] as i64, a[3] as i32);
    if size < 0 || size as usize > MSGMAX || id < 0 {
        return Err(Errno::EINVAL);
    }
    let mtype: i64 = t.read_obj(msgp)?;
    if mtype < 1 {
        return Err(Errno::EINVAL);
    }
    let text = t.read_bytes(msgp + 8, size as usize)?;
    let c = caller(t);
    let mut ns = namespace();
    let mut waited = false;
    loop {
        // Gone before we slept: a bad id; gone while we slept: removed.
        let q = ns
            .queues
            .get_mut(id)
            .map_err(|e| if waited { Errno::EIDRM } else { e })?;
        if !q.perm.allows(&c, 0o2) {
            return Err(Errno::EACCES);
        }
        if q.bytes + size as u64 <= q.max_bytes && q.messages.len() < q.max_bytes as usize {
            q.bytes += size as u64;
            q.messages.push_back(Message { mtype, text });
            q.stime = now_secs();
            q.lspid = c.pid;
            drop(ns);
            ipc::notify();
            return Ok(0);
        }
        if flags & IPC_NOWAIT != 0 {
            return Err(Errno::EAGAIN);
        }
        let (g, r) = ipc::wait(ns, None);
        ns = g;
        waited = true;
        r.map_err(|e| if e == Errno::EAGAIN { Errno::EINTR } else { e })?;
    }
}

/// Which queued message a msgrcv with `msgtyp` takes.
fn pick(messages: &std::collections::VecDeque<Message>, msgtyp: i64, flags: i32) -> Option<usize> {
    if flags & MSG_COPY != 0 {
        return (msgtyp >= 0 && (msgtyp as usize) < messages.len()).then_some(msgtyp as usize);
    }
    if msgtyp == 0 {
        return (!messages.is_empty()).then_some(0);
    }
    if msgtyp > 0 {
        return messages.iter().position(|m| {
            if flags & MSG_EXCEPT != 0 {
                m.mtype != msgtyp
            } else {
                m.mtype == msgtyp
            }
        });
    }
    let limit = msgtyp.saturating_neg();
    let mut best: Option<(usize, i64)> = None;
    for (i, m) in messages.iter().enumerate() {
        if m.mtype <= limit && best.is_none_or(|(_, t)| m.mtype < t) {
            best = Some((i, m.mtype));
        }
    }
    best.map(|(i, _)| i)
}

pub fn msgrcv(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (id, msgp, size, msgtyp, flags) =
        (a[0] as i32, a[1], a[2] as i64, a[3] as i64, a[4] as i32);
    if size < 0 || id < 0 {
        return Err(Errno::EINVAL);
    }
    if flags & MSG_COPY != 0 && (flags & IPC_NOWAIT == 0 || flags & MSG_EXCEPT != 0) {
        return Err(Errno::EINVAL);
    }
    let c = caller(t);
    let mut ns = namespace();
    let mut waited = false;
    let msg = loop {
        let q = ns
            .queues
            .get_mut(id)
            .map_err(|e| if waited { Errno::EIDRM } else { e })?;
        if !q.perm.allows(&c, 0o4) {
            return Err(Errno::EACCES);
        }
        if let Some(i) = pick(&q.messages, msgtyp, flags) {
            let len = q.messages[i].text.len();
            if len > size as usize && flags & MSG_NOERROR == 0 {
                return Err(Errno::E2BIG);
            }
            if flags & MSG_COPY != 0 {
                let m = &q.messages[i];
                break Message {
                    mtype: m.mtype,
                    text: m.text.clone(),
                };
            }
            let Some(m) = q.messages.remove(i) else {
                return Err(Errno::EIO);
            };
            q.bytes -= m.text.len() as u64;
            q.rtime = now_secs();
            q.lrpid = c.pid;
            break m;
        }
        if flags & IPC_NOWAIT != 0 {
            return Err(Errno::ENOMSG);
        }
        let (g, r) = ipc::wait(ns, None);
        ns = g;
        waited = true;
        r.map_err(|e| if e == Errno::EAGAIN { Errno::EINTR } else { e })?;
    };
    drop(ns);
    ipc::notify();
    let n = msg.text.len().min(size as usize);
    t.write_obj(msgp, &msg.mtype)?;
    t.write_bytes(msgp + 8, &msg.text[..n])?;
    Ok(n as u64)
}

pub fn msgctl(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (id, cmd, buf) = (a[0] as i32, (a[1] as i32) & !IPC_64, a[2]);
    let c = caller(t);
    let mut ns = namespace();
    match cmd {
        IPC_INFO | MSG_INFO => {
            let (used, msgs, bytes) = ns.queues.iter().fold((0, 0, 0u64), |(n, m, b), q| {
                (n + 1, m + q.messages.len() as i32, b + q.bytes)
            });
            // struct msginfo: msgpool msgmap msgmax msgmnb msgmni msgssz msgtql msgseg
            let vals: [i32; 8] = if cmd == MSG_INFO {
                [
                    used,
                    msgs,
                    MSGMAX as i32,
                    MSGMNB as i32,
                    32000,
                    16,
                    bytes as i32,
                    0xffff,
                ]
            } else {
                [
                    32000 * 16 / 1024,
                    16384 * 4,
                    MSGMAX as i32,
                    MSGMNB as i32,
                    32000,
                    16,
                    16384 * 4,
                    0xffff,
                ]
            };
            let highest = ns.queues.highest_slot();
            drop(ns);
            t.write_bytes(buf, &int_array(&vals))?;
            Ok(highest as u64)
        }
        IPC_STAT | MSG_STAT | MSG_STAT_ANY => {
            let id = ns.queues.stat_id(id, cmd == IPC_STAT)?;
            let q = ns.queues.get(id)?;
            stat_allowed(&q.perm, &c, cmd == MSG_STAT_ANY)?;
            let mut b = [0u8; 120];
            b[..48].copy_from_slice(&q.perm.to_bytes());
            put_i64(&mut b, 48, q.stime);
            put_i64(&mut b, 56, q.rtime);
            put_i64(&mut b, 64, q.ctime);
            put_i64(&mut b, 72, q.bytes as i64);
            put_i64(&mut b, 80, q.messages.len() as i64);
            put_i64(&mut b, 88, q.max_bytes as i64);
            put_i32(&mut b, 96, q.lspid);
            put_i32(&mut b, 100, q.lrpid);
            drop(ns);
            t.write_bytes(buf, &b)?;
            Ok(if cmd == IPC_STAT { 0 } else { id as u64 })
        }
        IPC_SET => {
            let b = t.read_bytes(buf, 120)?;
            let q = ns.queues.get_mut(id)?;
            if !q.perm.owned_by(&c) {
                return Err(Errno::EPERM);
            }
            let qbytes = u64::from_le_bytes(b[88..96].try_into().map_err(|_| Errno::EFAULT)?);
            if qbytes > MSGMNB && !c.privileged {
                return Err(Errno::EPERM);
            }
            q.perm.set_from(&b);
            q.max_bytes = qbytes;
            q.ctime = now_secs();
            drop(ns);
            ipc::notify();
            Ok(0)
        }
        IPC_RMID => {
            let q = ns.queues.get(id)?;
            if !q.perm.owned_by(&c) {
                return Err(Errno::EPERM);
            }
            ns.queues.remove(id);
            drop(ns);
            ipc::notify();
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}

// -------------------------------------------------------------- semaphores

pub fn semget(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let c = caller(t);
    Ok(namespace().semget(a[0] as i32, a[1] as i32, a[2] as i32, &c)? as u64)
}

pub fn semop(t: &mut Task, a: &[u64; 6]) -> SysResult {
    semtimedop_common(t, a[0] as i32, a[1], a[2], None)
}

pub fn semtimedop(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let timeout = if a[3] == 0 {
        None
    } else {
        let ts: libc::timespec = t.read_obj(a[3])?;
        if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
            return Err(Errno::EINVAL);
        }
        Some(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    };
    semtimedop_common(t, a[0] as i32, a[1], a[2], timeout)
}

fn semtimedop_common(
    t: &mut Task,
    id: i32,
    sops_addr: u64,
    nsops: u64,
    timeout: Option<Duration>,
) -> SysResult {
    if nsops == 0 || id < 0 {
        return Err(Errno::EINVAL);
    }
    if nsops as usize > SEMOPM {
        return Err(Errno::E2BIG);
    }
    // struct sembuf { unsigned short sem_num; short sem_op; short sem_flg; }
    let raw = t.read_bytes(sops_addr, nsops as usize * 6)?;
    let ops: Vec<(u16, i16, i16)> = raw
        .chunks_exact(6)
        .map(|c| {
            (
                u16::from_le_bytes([c[0], c[1]]),
                i16::from_le_bytes([c[2], c[3]]),
                i16::from_le_bytes([c[4], c[5]]),
            )
        })
        .collect();
    let deadline = timeout.map(|d| Instant::now() + d);
    let c = caller(t);
    let alter = ops.iter().any(|o| o.1 != 0);
    let mut ns = namespace();
    let mut waiting_on: Option<(usize, bool)> = None;
    let result = loop {
        let set = match ns.sems.get_mut(id) {
            Ok(s) => s,
            Err(_) => {
                break Err(if waiting_on.is_some() {
                    Errno::EIDRM
                } else {
                    Errno::EINVAL
                })
            }
        };
        if let Some((n, zero)) = waiting_on.take() {
            if let Some(s) = set.sems.get_mut(n) {
                if zero {
                    s.zcnt = s.zcnt.saturating_sub(1);
                } else {
                    s.ncnt = s.ncnt.saturating_sub(1);
                }
            }
        }
        if ops.iter().any(|o| o.0 as usize >= set.sems.len()) {
            break Err(Errno::EFBIG);
        }
        if !set.perm.allows(&c, if alter { 0o2 } else { 0o4 }) {
            break Err(Errno::EACCES);
        }
        // Try the whole array atomically on a copy.
        let mut vals: Vec<i32> = set.sems.iter().map(|s| s.val).collect();
        let mut blocked: Option<(usize, bool, i16)> = None;
        let mut err = None;
        for &(num, op, flg) in &ops {
            let v = &mut vals[num as usize];
            if op > 0 {
                if *v + op as i32 > SEMVMX {
                    err = Some(Errno::ERANGE);
                    break;
                }
                *v += op as i32;
            } else if op < 0 {
                if *v + (op as i32) < 0 {
                    blocked = Some((num as usize, false, flg));
                    break;
                }
                *v += op as i32;
            } else if *v != 0 {
                blocked = Some((num as usize, true, flg));
                break;
            }
        }
        if let Some(e) = err {
            break Err(e);
        }
        match blocked {
            None => {
                for (s, v) in set.sems.iter_mut().zip(&vals) {
                    s.val = *v;
                }
                for &(num, _, _) in &ops {
                    set.sems[num as usize].pid = c.pid;
                }
                set.otime = now_secs();
                // SEM_UNDO: remember the opposite adjustment.
                let undo_ops: Vec<(u16, i16)> = ops
                    .iter()
                    .filter(|o| o.2 & SEM_UNDO != 0 && o.1 != 0)
                    .map(|o| (o.0, o.1))
                    .collect();
                if !undo_ops.is_empty() {
                    let n = set.sems.len();
                    let adj = ns.undo.entry((c.pid, id)).or_insert_with(|| vec![0; n]);
                    for (num, op) in undo_ops {
                        if let Some(x) = adj.get_mut(num as usize) {
                            *x = (*x - op as i32).clamp(-SEMAEM, SEMAEM);
                        }
                    }
                }
                break Ok(0);
            }
            Some((num, zero, flg)) => {
                if flg & IPC_NOWAIT as i16 != 0 {
                    break Err(Errno::EAGAIN);
                }
                if zero {
                    set.sems[num].zcnt += 1;
                } else {
                    set.sems[num].ncnt += 1;
                }
                waiting_on = Some((num, zero));
                let (g, r) = ipc::wait(ns, deadline);
                ns = g;
                if let Err(e) = r {
                    if let Ok(set) = ns.sems.get_mut(id) {
                        if let Some(s) = set.sems.get_mut(num) {
                            if zero {
                                s.zcnt = s.zcnt.saturating_sub(1);
                            } else {
                                s.ncnt = s.ncnt.saturating_sub(1);
                            }
                        }
                    }
                    break Err(e);
                }
            }
        }
    };
    drop(ns);
    if result.is_ok() {
        ipc::notify();
    }
    result
}

pub fn semctl(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (id, num, cmd, arg) = (a[0] as i32, a[1] as i32, (a[2] as i32) & !IPC_64, a[3]);
    let c = caller(t);
    let mut ns = namespace();
    match cmd {
        IPC_INFO | SEM_INFO => {
            let (sets, total) = ns
                .sems
                .iter()
                .fold((0, 0), |(n, t), s| (n + 1, t + s.sems.len() as i32));
            // struct seminfo: semmap semmni semmns semmnu semmsl semopm semume semusz semvmx semaem
            let vals: [i32; 10] = [
                1024000000,
                32000,
                1024000000,
                1024000000,
                SEMMSL as i32,
                SEMOPM as i32,
                SEMOPM as i32,
                if cmd == SEM_INFO { sets } else { 16 },
                SEMVMX,
                if cmd == SEM_INFO { total } else { SEMAEM },
            ];
            let highest = ns.sems.highest_slot();
            drop(ns);
            t.write_bytes(arg, &int_array(&vals))?;
            Ok(highest as u64)
        }
        IPC_STAT | SEM_STAT | SEM_STAT_ANY => {
            let id = ns.sems.stat_id(id, cmd == IPC_STAT)?;
            let s = ns.sems.get(id)?;
            stat_allowed(&s.perm, &c, cmd == SEM_STAT_ANY)?;
            let mut b = [0u8; 104];
            b[..48].copy_from_slice(&s.perm.to_bytes());
            put_i64(&mut b, 48, s.otime);
            put_i64(&mut b, 64, s.ctime);
            put_i64(&mut b, 80, s.sems.len() as i64);
            drop(ns);
            t.write_bytes(arg, &b)?;
            Ok(if cmd == IPC_STAT { 0 } else { id as u64 })
        }
        IPC_SET => {
            let b = t.read_bytes(arg, 104)?;
            let s = ns.sems.get_mut(id)?;
            if !s.perm.owned_by(&c) {
                return Err(Errno::EPERM);
            }
            s.perm.set_from(&b);
            s.ctime = now_secs();
            Ok(0)
        }
        IPC_RMID => {
            let s = ns.sems.get(id)?;
            if !s.perm.owned_by(&c) {
                return Err(Errno::EPERM);
            }
            ns.sems.remove(id);
            ns.undo.retain(|k, _| k.1 != id);
            drop(ns);
            ipc::notify();
            Ok(0)
        }
        GETVAL | GETPID | GETNCNT | GETZCNT => {
            let s = ns.sems.get(id)?;
            if !s.perm.allows(&c, 0o4) {
                return Err(Errno::EACCES);
            }
            let sem = s
                .sems
                .get(usize::try_from(num).map_err(|_| Errno::EINVAL)?)
                .ok_or(Errno::EINVAL)?;
            Ok(match cmd {
                GETVAL => sem.val as u64,
                GETPID => sem.pid as u64,
                GETNCNT => sem.ncnt as u64,
                _ => sem.zcnt as u64,
            })
        }
        GETALL => {
            let s = ns.sems.get(id)?;
            if !s.perm.allows(&c, 0o4) {
                return Err(Errno::EACCES);
            }
            let vals: Vec<u8> = s
                .sems
                .iter()
                .flat_map(|x| (x.val as u16).to_le_bytes())
                .collect();
            drop(ns);
            t.write_bytes(arg, &vals)?;
            Ok(0)
        }
        SETVAL => {
            let val = arg as i32;
            let s = ns.sems.get_mut(id)?;
            if !s.perm.allows(&c, 0o2) {
                return Err(Errno::EACCES);
            }
            let n = usize::try_from(num).map_err(|_| Errno::EINVAL)?;
            if n >= s.sems.len() {
                return Err(Errno::EINVAL);
            }
            if !(0..=SEMVMX).contains(&val) {
                return Err(Errno::ERANGE);
            }
            s.sems[n].val = val;
            s.sems[n].pid = c.pid;
            s.ctime = now_secs();
            for (k, adj) in ns.undo.iter_mut() {
                if k.1 == id {
                    if let Some(x) = adj.get_mut(n) {
                        *x = 0;
                    }
                }
            }
            drop(ns);
            ipc::notify();
            Ok(0)
        }
        SETALL => {
            let n = ns.sems.get(id)?.sems.len();
            drop(ns);
            let raw = t.read_bytes(arg, n * 2)?;
            let vals: Vec<u16> = raw
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            let mut ns = namespace();
            let s = ns.sems.get_mut(id)?;
            if !s.perm.allows(&c, 0o2) {
                return Err(Errno::EACCES);
            }
            if vals.iter().any(|v| *v as i32 > SEMVMX) {
                return Err(Errno::ERANGE);
            }
            for (sem, v) in s.sems.iter_mut().zip(vals) {
                sem.val = v as i32;
                sem.pid = c.pid;
            }
            s.ctime = now_secs();
            ns.undo.retain(|k, _| k.1 != id);
            drop(ns);
            ipc::notify();
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}

// ----------------------------------------------------------- shared memory

pub fn shmget(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let c = caller(t);
    Ok(namespace().shmget(a[0] as i32, a[1], a[2] as i32, &c)? as u64)
}

pub fn shmat(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (id, addr, flags) = (a[0] as i32, a[1], a[2] as i32);
    let mut at = addr;
    if !at.is_multiple_of(PAGE_SIZE) {
        if flags & SHM_RND == 0 {
            return Err(Errno::EINVAL);
        }
        at = mm::page_down(at);
    }
    if flags & SHM_REMAP != 0 && addr == 0 {
        return Err(Errno::EINVAL);
    }
    let c = caller(t);
    let (fd, size, mem_id) = {
        let mut ns = namespace();
        let s = ns.shms.get_mut(id)?;
        let want = if flags & SHM_RDONLY != 0 { 0o4 } else { 0o6 };
        if !s.perm.allows(&c, want) {
            return Err(Errno::EACCES);
        }
        // The memfd stays open while we map it: count the attach first.
        s.nattch += 1;
        (
            s.memfd.try_clone().map_err(|_| Errno::ENOMEM)?,
            s.size,
            s.mem_id,
        )
    };
    let len = mm::page_up(size).ok_or(Errno::EINVAL)?;
    let mut prot = libc::PROT_READ;
    if flags & SHM_RDONLY == 0 {
        prot |= libc::PROT_WRITE;
    }
    if flags & SHM_EXEC != 0 {
        prot |= libc::PROT_EXEC;
    }
    let mut map_flags = libc::MAP_SHARED;
    if at != 0 {
        map_flags |= if flags & SHM_REMAP != 0 {
            libc::MAP_FIXED
        } else {
            libc::MAP_FIXED_NOREPLACE
        };
        if at.checked_add(len).is_none_or(|e| e > mm::TASK_SIZE) || mm::overlaps_stub(at, len) {
            namespace().shm_detached(id, c.pid);
            return Err(Errno::EINVAL);
        }
    }
    let mapped = mm::host_map_fd(
        &mut t.stub,
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        at,
        len,
        prot,
        map_flags,
        0,
    );
    let start = match mapped {
        Ok(s) => s,
        Err(e) => {
            namespace().shm_detached(id, c.pid);
            return Err(if e == Errno::EEXIST { Errno::EINVAL } else { e });
        }
    };
    // SHM_REMAP may have replaced mirrored memory.
    t.mirror().unmapped(start, len);
    {
        let mut ns = namespace();
        if let Ok(s) = ns.shms.get_mut(id) {
            s.atime = now_secs();
            s.lpid = c.pid;
        }
    }
    let key = namespace().shms.get(id).map(|s| s.perm.key).unwrap_or(0);
    let mm_ref = t.proc.mm();
    let mut m = lock(&mm_ref);
    m.vmas
        .insert(start, len, prot, true, 0, mm::vma::VmaName::SysV { key });
    m.add_shared(mm::SharedRegion {
        start,
        len,
        id: mem_id,
        offset: 0,
        may_write: flags & SHM_RDONLY == 0,
    });
    m.shm.0.push(mm::ShmAttach {
        start,
        len,
        shmid: id,
    });
    Ok(start)
}

pub fn shmdt(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let addr = a[0];
    if !addr.is_multiple_of(PAGE_SIZE) {
        return Err(Errno::EINVAL);
    }
    let found = lock(&t.proc.mm())
        .shm
        .0
        .iter()
        .find(|x| x.start == addr)
        .copied()
        .ok_or(Errno::EINVAL)?;
    mm::host_munmap(&mut t.stub, found.start, found.len)?;
    let mm_ref = t.proc.mm();
    let mut m = lock(&mm_ref);
    m.forget(found.start, found.len);
    m.vmas.unmap(found.start, found.len);
    Ok(0)
}

pub fn shmctl(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (id, cmd, buf) = (a[0] as i32, (a[1] as i32) & !IPC_64, a[2]);
    let c = caller(t);
    let mut ns = namespace();
    match cmd {
        IPC_INFO => {
            // struct shminfo64: shmmax shmmin shmmni shmseg shmall + 4 unused
            let mut b = [0u8; 72];
            let vals = [SHMMAX, SHMMIN, SHMMNI as u64, SHMMNI as u64, SHMALL];
            for (i, v) in vals.iter().enumerate() {
                put_i64(&mut b, i * 8, *v as i64);
            }
            let highest = ns.shms.highest_slot();
            drop(ns);
            t.write_bytes(buf, &b)?;
            Ok(highest as u64)
        }
        SHM_INFO => {
            // struct shm_info: used_ids, shm_tot, shm_rss, shm_swp, 2 unused
            let mut b = [0u8; 48];
            let pages: u64 = ns.shms.iter().map(|s| s.size.div_ceil(PAGE_SIZE)).sum();
            // Resident pages: what the memfds hold.
            let rss: u64 = ns
                .shms
                .iter()
                .map(|s| {
                    nix::sys::stat::fstat(s.fd())
                        .map(|st| st.st_blocks as u64 * 512 / PAGE_SIZE)
                        .unwrap_or(0)
                })
                .sum();
            put_i32(&mut b, 0, ns.shms.len() as i32);
            put_i64(&mut b, 8, pages as i64);
            put_i64(&mut b, 16, rss as i64);
            let highest = ns.shms.highest_slot();
            drop(ns);
            t.write_bytes(buf, &b)?;
            Ok(highest as u64)
        }
        IPC_STAT | SHM_STAT | SHM_STAT_ANY => {
            let id = ns.shms.stat_id(id, cmd == IPC_STAT)?;
            let s = ns.shms.get(id)?;
            stat_allowed(&s.perm, &c, cmd == SHM_STAT_ANY)?;
            let mut b = [0u8; 112];
            b[..48].copy_from_slice(&s.perm.to_bytes());
            put_i64(&mut b, 48, s.size as i64);
            put_i64(&mut b, 56, s.atime);
            put_i64(&mut b, 64, s.dtime);
            put_i64(&mut b, 72, s.ctime);
            put_i32(&mut b, 80, s.cpid);
            put_i32(&mut b, 84, s.lpid);
            put_i64(&mut b, 88, s.nattch as i64);
            drop(ns);
            t.write_bytes(buf, &b)?;
            Ok(if cmd == IPC_STAT { 0 } else { id as u64 })
        }
        IPC_SET => {
            let b = t.read_bytes(buf, 112)?;
            let s = ns.shms.get_mut(id)?;
            if !s.perm.owned_by(&c) {
                return Err(Errno::EPERM);
            }
            s.perm.set_from(&b);
            s.ctime = now_secs();
            Ok(0)
        }
        IPC_RMID => {
            let s = ns.shms.get_mut(id)?;
            if !s.perm.owned_by(&c) {
                return Err(Errno::EPERM);
            }
            if s.nattch == 0 {
                ns.shms.remove(id);
            } else {
                s.perm.mode |= SHM_DEST;
                s.perm.key = 0;
                ns.shms.unkey(id);
            }
            Ok(0)
        }
        SHM_LOCK | SHM_UNLOCK => {
            let s = ns.shms.get_mut(id)?;
            if !c.privileged && !s.perm.owned_by(&c) {
                return Err(Errno::EPERM);
            }
            // Recorded (IPC_STAT shows it); nothing is pinned in host RAM.
            if cmd == SHM_LOCK {
                s.perm.mode |= SHM_LOCKED;
            } else {
                s.perm.mode &= !SHM_LOCKED;
            }
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}
