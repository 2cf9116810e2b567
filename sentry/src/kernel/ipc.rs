//! System V IPC objects (gVisor's `kernel/ipc`, `kernel/msgqueue`,
//! `kernel/semaphore`, `kernel/shm`): message queues, semaphore sets and
//! shared memory segments, one namespace per sandbox.
//!
//! Everything lives in the sentry. Shared memory segments are memfds the
//! sentry owns and maps into stubs (like in-memory files); queues and
//! semaphores are plain data guarded by one lock, with one condition
//! variable that blocked senders, receivers and semop callers wait on.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::{interrupted, lock};

pub const IPC_PRIVATE: i32 = 0;
pub const IPC_CREAT: i32 = 0o1000;
pub const IPC_EXCL: i32 = 0o2000;
pub const IPC_NOWAIT: i32 = 0o4000;

// Limits (Linux's defaults).
pub const MSGMAX: usize = 8192;
pub const MSGMNB: u64 = 16384;
pub const MSGMNI: usize = 32000;
pub const SEMMSL: usize = 32000;
pub const SEMMNI: usize = 32000;
pub const SEMOPM: usize = 500;
pub const SEMVMX: i32 = 32767;
pub const SEMAEM: i32 = SEMVMX;
pub const SHMMNI: usize = 4096;
pub const SHMMIN: u64 = 1;
pub const SHMMAX: u64 = u64::MAX - (1 << 24);
pub const SHMALL: u64 = u64::MAX - (1 << 24);
/// A segment marked for removal (IPC_RMID while attached).
pub const SHM_DEST: u32 = 0o1000;
/// A segment locked with SHM_LOCK.
pub const SHM_LOCKED: u32 = 0o2000;
/// How ids are formed: sequence number * SEQ_MULTIPLIER + slot.
const SEQ_MULTIPLIER: i32 = 32768;

/// Who is asking: for permission checks and ownership.
#[derive(Clone, Copy, Debug)]
pub struct Caller {
    pub pid: i32,
    pub euid: u32,
    pub egid: u32,
    pub privileged: bool,
}

/// struct ipc64_perm.
#[derive(Clone, Copy, Debug, Default)]
pub struct Perm {
    pub key: i32,
    pub uid: u32,
    pub gid: u32,
    pub cuid: u32,
    pub cgid: u32,
    pub mode: u32,
    pub seq: u16,
}

impl Perm {
    fn new(key: i32, mode: u32, seq: u16, c: &Caller) -> Perm {
        Perm {
            key,
            uid: c.euid,
            gid: c.egid,
            cuid: c.euid,
            cgid: c.egid,
            mode: mode & 0o777,
            seq,
        }
    }

    /// ipcperms(): `want` is 0o4 (read) and/or 0o2 (write/alter) bits.
    pub fn allows(&self, c: &Caller, want: u32) -> bool {
        if c.privileged {
            return true;
        }
        let granted = if c.euid == self.cuid || c.euid == self.uid {
            self.mode >> 6
        } else if c.egid == self.cgid || c.egid == self.gid {
            self.mode >> 3
        } else {
            self.mode
        };
        want & !granted & 0o7 == 0
    }

    /// Owner or creator (or privileged): may IPC_SET and IPC_RMID.
    pub fn owned_by(&self, c: &Caller) -> bool {
        c.privileged || c.euid == self.uid || c.euid == self.cuid
    }

    pub fn to_bytes(self) -> [u8; 48] {
        let mut b = [0u8; 48];
        b[0..4].copy_from_slice(&self.key.to_le_bytes());
        b[4..8].copy_from_slice(&self.uid.to_le_bytes());
        b[8..12].copy_from_slice(&self.gid.to_le_bytes());
        b[12..16].copy_from_slice(&self.cuid.to_le_bytes());
        b[16..20].copy_from_slice(&self.cgid.to_le_bytes());
        b[20..22].copy_from_slice(&(self.mode as u16).to_le_bytes());
        b[24..26].copy_from_slice(&self.seq.to_le_bytes());
        b
    }

    /// IPC_SET: uid, gid and the permission bits of mode.
    pub fn set_from(&mut self, b: &[u8]) {
        let word = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        self.uid = word(4);
        self.gid = word(8);
        let mode = u16::from_le_bytes([b[20], b[21]]) as u32;
        self.mode = (self.mode & !0o777) | (mode & 0o777);
    }
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A table of objects of one kind, with key lookup and id allocation.
pub struct Registry<T> {
    slots: BTreeMap<i32, (u16, T)>,
    keys: HashMap<i32, i32>,
    next_seq: u16,
    max: usize,
}

impl<T> Registry<T> {
    fn new(max: usize) -> Registry<T> {
        Registry {
            slots: BTreeMap::new(),
            keys: HashMap::new(),
            next_seq: 0,
            max,
        }
    }

    fn id_of(slot: i32, seq: u16) -> i32 {
        seq as i32 * SEQ_MULTIPLIER + slot
    }

    /// The object with `id` (EINVAL if none: a stale id or never made).
    pub fn get(&self, id: i32) -> Result<&T, Errno> {
        if id < 0 {
            return Err(Errno::EINVAL);
        }
        match self.slots.get(&(id % SEQ_MULTIPLIER)) {
            Some((seq, obj)) if Self::id_of(id % SEQ_MULTIPLIER, *seq) == id => Ok(obj),
            _ => Err(Errno::EINVAL),
        }
    }

    pub fn get_mut(&mut self, id: i32) -> Result<&mut T, Errno> {
        if id < 0 {
            return Err(Errno::EINVAL);
        }
        match self.slots.get_mut(&(id % SEQ_MULTIPLIER)) {
            Some((seq, obj)) if Self::id_of(id % SEQ_MULTIPLIER, *seq) == id => Ok(obj),
            _ => Err(Errno::EINVAL),
        }
    }

    /// The *get(2) protocol: find by key or create with `make`.
    fn get_or_create(
        &mut self,
        key: i32,
        flags: i32,
        perm_of: impl Fn(&T) -> &Perm,
        check: impl FnOnce(&T) -> Result<(), Errno>,
        make: impl FnOnce(Perm) -> Result<T, Errno>,
        c: &Caller,
    ) -> Result<i32, Errno> {
        if key != IPC_PRIVATE {
            if let Some(&id) = self.keys.get(&key) {
                if flags & IPC_CREAT != 0 && flags & IPC_EXCL != 0 {
                    return Err(Errno::EEXIST);
                }
                let obj = self.get(id)?;
                let want =
                    ((flags as u32 & 0o777) >> 6) | ((flags as u32 & 0o777) >> 3) | flags as u32;
                if !perm_of(obj).allows(c, want & 0o7) {
                    return Err(Errno::EACCES);
                }
                check(obj)?;
                return Ok(id);
            }
            if flags & IPC_CREAT == 0 {
                return Err(Errno::ENOENT);
            }
        }
        if self.slots.len() >= self.max {
            return Err(Errno::ENOSPC);
        }
        let slot = (0..self.max as i32)
            .find(|s| !self.slots.contains_key(s))
            .ok_or(Errno::ENOSPC)?;
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1) % (i16::MAX as u16);
        let obj = make(Perm::new(key, flags as u32, seq, c))?;
        self.slots.insert(slot, (seq, obj));
        let id = Self::id_of(slot, seq);
        if key != IPC_PRIVATE {
            self.keys.insert(key, id);
        }
        Ok(id)
    }

    pub fn remove(&mut self, id: i32) -> Option<T> {
        let slot = id % SEQ_MULTIPLIER;
        let (_, obj) = self.slots.remove(&slot)?;
        self.keys.retain(|_, v| *v != id);
        Some(obj)
    }

    /// Forgets the key (a removed-but-attached segment).
    pub fn unkey(&mut self, id: i32) {
        self.keys.retain(|_, v| *v != id);
    }

    /// Highest slot in use (what IPC_INFO/*_INFO return; 0 when empty).
    pub fn highest_slot(&self) -> i32 {
        self.slots.keys().next_back().copied().unwrap_or(0)
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The id IPC_STAT (`is_id`) or a slot-addressed *_STAT command names.
    pub fn stat_id(&self, id_or_slot: i32, is_id: bool) -> Result<i32, Errno> {
        if is_id {
            Ok(id_or_slot)
        } else {
            self.id_at(id_or_slot)
        }
    }

    /// The id of the object in `slot` (the *_STAT commands take a slot).
    pub fn id_at(&self, slot: i32) -> Result<i32, Errno> {
        self.slots
            .get(&slot)
            .map(|(seq, _)| Self::id_of(slot, *seq))
            .ok_or(Errno::EINVAL)
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.slots.values().map(|(_, o)| o)
    }

    /// (id, object) pairs, for /proc/sysvipc.
    pub fn iter_ids(&self) -> impl Iterator<Item = (i32, &T)> {
        self.slots
            .iter()
            .map(|(slot, (seq, o))| (Self::id_of(*slot, *seq), o))
    }
}

// ---- message queues ----

pub struct Message {
    pub mtype: i64,
    pub text: Vec<u8>,
}

pub struct MsgQueue {
    pub perm: Perm,
    pub messages: VecDeque<Message>,
    pub bytes: u64,
    pub max_bytes: u64,
    pub stime: i64,
    pub rtime: i64,
    pub ctime: i64,
    pub lspid: i32,
    pub lrpid: i32,
    /// Bumped on removal, so sleepers notice (EIDRM).
    pub removed: bool,
}

// ---- semaphores ----

#[derive(Clone, Copy, Default)]
pub struct Sem {
    pub val: i32,
    pub pid: i32,
    pub ncnt: u32,
    pub zcnt: u32,
}

pub struct SemSet {
    pub perm: Perm,
    pub sems: Vec<Sem>,
    pub otime: i64,
    pub ctime: i64,
}

// ---- shared memory ----

pub struct ShmSegment {
    pub perm: Perm,
    pub size: u64,
    pub memfd: OwnedFd,
    /// Identity for shared futex keys.
    pub mem_id: u64,
    pub atime: i64,
    pub dtime: i64,
    pub ctime: i64,
    pub cpid: i32,
    pub lpid: i32,
    pub nattch: u64,
}

impl ShmSegment {
    pub fn fd(&self) -> RawFd {
        self.memfd.as_raw_fd()
    }
}

pub struct IpcNamespace {
    pub queues: Registry<MsgQueue>,
    pub sems: Registry<SemSet>,
    pub shms: Registry<ShmSegment>,
    /// SEM_UNDO adjustments: (pid, semaphore set id) -> per-semaphore adjust.
    pub undo: HashMap<(i32, i32), Vec<i32>>,
}

fn state() -> &'static (Mutex<IpcNamespace>, Condvar) {
    static NS: OnceLock<(Mutex<IpcNamespace>, Condvar)> = OnceLock::new();
    NS.get_or_init(|| {
        (
            Mutex::new(IpcNamespace {
                queues: Registry::new(MSGMNI),
                sems: Registry::new(SEMMNI),
                shms: Registry::new(SHMMNI),
                undo: HashMap::new(),
            }),
            Condvar::new(),
        )
    })
}

pub fn namespace() -> MutexGuard<'static, IpcNamespace> {
    lock(&state().0)
}

/// Wakes every IPC sleeper to re-check its condition.
pub fn notify() {
    state().1.notify_all();
}

/// Sleeps until notified, a signal is pending (EINTR) or `deadline`
/// passes (EAGAIN, as semtimedop reports a timeout). The guard is
/// released while asleep.
pub fn wait(
    guard: MutexGuard<'static, IpcNamespace>,
    deadline: Option<Instant>,
) -> (MutexGuard<'static, IpcNamespace>, Result<(), Errno>) {
    if interrupted() {
        return (guard, Err(Errno::EINTR));
    }
    let slice = Duration::from_millis(50);
    let dur = match deadline {
        Some(d) => {
            let now = Instant::now();
            if now >= d {
                return (guard, Err(Errno::EAGAIN));
            }
            (d - now).min(slice)
        }
        None => slice,
    };
    let g = state()
        .1
        .wait_timeout(guard, dur)
        .map(|r| r.0)
        .unwrap_or_else(|p| p.into_inner().0);
    (g, Ok(()))
}

impl IpcNamespace {
    pub fn msgget(&mut self, key: i32, flags: i32, c: &Caller) -> Result<i32, Errno> {
        self.queues.get_or_create(
            key,
            flags,
            |q| &q.perm,
            |_| Ok(()),
            |perm| {
                Ok(MsgQueue {
                    perm,
                    messages: VecDeque::new(),
                    bytes: 0,
                    max_bytes: MSGMNB,
                    stime: 0,
                    rtime: 0,
                    ctime: now_secs(),
                    lspid: 0,
                    lrpid: 0,
                    removed: false,
                })
            },
            c,
        )
    }

    pub fn semget(&mut self, key: i32, nsems: i32, flags: i32, c: &Caller) -> Result<i32, Errno> {
        if nsems < 0 || nsems as usize > SEMMSL {
            return Err(Errno::EINVAL);
        }
        self.sems.get_or_create(
            key,
            flags,
            |s| &s.perm,
            |s| {
                if nsems as usize > s.sems.len() {
                    Err(Errno::EINVAL)
                } else {
                    Ok(())
                }
            },
            |perm| {
                if nsems == 0 {
                    return Err(Errno::EINVAL);
                }
                Ok(SemSet {
                    perm,
                    sems: vec![Sem::default(); nsems as usize],
                    otime: 0,
                    ctime: now_secs(),
                })
            },
            c,
        )
    }

    pub fn shmget(&mut self, key: i32, size: u64, flags: i32, c: &Caller) -> Result<i32, Errno> {
        let huge = 0o4000; // SHM_HUGETLB: we have no huge pages to give.
        if flags & huge != 0 {
            return Err(Errno::EPERM);
        }
        self.shms.get_or_create(
            key,
            flags,
            |s| &s.perm,
            |s| {
                if size > s.size {
                    Err(Errno::EINVAL)
                } else {
                    Ok(())
                }
            },
            |perm| {
                if !(SHMMIN..=SHMMAX).contains(&size) {
                    return Err(Errno::EINVAL);
                }
                let memfd = nix::sys::memfd::memfd_create(
                    c"rvisor-sysv-shm",
                    nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC,
                )
                .map_err(|_| Errno::ENOMEM)?;
                let pages = size.div_ceil(4096) * 4096;
                nix::unistd::ftruncate(&memfd, pages as i64).map_err(|_| Errno::ENOMEM)?;
                Ok(ShmSegment {
                    perm,
                    size,
                    memfd,
                    mem_id: crate::mm::new_memory_id(),
                    atime: 0,
                    dtime: 0,
                    ctime: now_secs(),
                    cpid: c.pid,
                    lpid: 0,
                    nattch: 0,
                })
            },
            c,
        )
    }

    /// A segment lost an attachment; it goes once removed and unattached.
    pub fn shm_detached(&mut self, id: i32, pid: i32) {
        let gone = match self.shms.get_mut(id) {
            Ok(s) => {
                s.nattch = s.nattch.saturating_sub(1);
                s.dtime = now_secs();
                s.lpid = pid;
                s.nattch == 0 && s.perm.mode & SHM_DEST != 0
            }
            Err(_) => false,
        };
        if gone {
            self.shms.remove(id);
        }
    }

    /// A fork copied an attachment.
    pub fn shm_attached(&mut self, id: i32) {
        if let Ok(s) = self.shms.get_mut(id) {
            s.nattch += 1;
        }
    }
}

/// A process exited: apply its SEM_UNDO adjustments.
pub fn process_exited(pid: i32) {
    let mut ns = namespace();
    let keys: Vec<(i32, i32)> = ns.undo.keys().filter(|k| k.0 == pid).copied().collect();
    if keys.is_empty() {
        return;
    }
    for k in keys {
        let Some(adj) = ns.undo.remove(&k) else {
            continue;
        };
        if let Ok(set) = ns.sems.get_mut(k.1) {
            for (sem, a) in set.sems.iter_mut().zip(adj) {
                sem.val = (sem.val + a).clamp(0, SEMVMX);
                if a != 0 {
                    sem.pid = pid;
                }
            }
        }
    }
    drop(ns);
    notify();
}

/// /proc/sysvipc/shm.
pub fn proc_shm() -> String {
    let ns = namespace();
    let mut out = String::from("       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid      atime      dtime      ctime                   rss                  swap\n");
    for (id, s) in ns.shms.iter_ids() {
        let p = &s.perm;
        out.push_str(&format!(
            "{:>10} {:>10}  {:>4o} {:>21} {:>5} {:>5}  {:>5} {:>5} {:>5} {:>5} {:>5} {:>10} {:>10} {:>10} {:>21} {:>21}\n",
            p.key, id, p.mode, s.size, s.cpid, s.lpid, s.nattch, p.uid, p.gid, p.cuid, p.cgid,
            s.atime, s.dtime, s.ctime, 0, 0
        ));
    }
    out
}

/// /proc/sysvipc/msg.
pub fn proc_msg() -> String {
    let ns = namespace();
    let mut out = String::from("       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid  cgid      stime      rtime      ctime\n");
    for (id, q) in ns.queues.iter_ids() {
        let p = &q.perm;
        out.push_str(&format!(
            "{:>10} {:>10}  {:>4o}  {:>10} {:>10} {:>5} {:>5} {:>5} {:>5} {:>5} {:>5} {:>10} {:>10} {:>10}\n",
            p.key, id, p.mode, q.bytes, q.messages.len(), q.lspid, q.lrpid, p.uid, p.gid,
            p.cuid, p.cgid, q.stime, q.rtime, q.ctime
        ));
    }
    out
}

/// /proc/sysvipc/sem.
pub fn proc_sem() -> String {
    let ns = namespace();
    let mut out = String::from(
        "       key      semid perms      nsems   uid   gid  cuid  cgid      otime      ctime\n",
    );
    for (id, s) in ns.sems.iter_ids() {
        let p = &s.perm;
        out.push_str(&format!(
            "{:>10} {:>10}  {:>4o} {:>10} {:>5} {:>5} {:>5} {:>5} {:>10} {:>10}\n",
            p.key,
            id,
            p.mode,
            s.sems.len(),
            p.uid,
            p.gid,
            p.cuid,
            p.cgid,
            s.otime,
            s.ctime
        ));
    }
    out
}
