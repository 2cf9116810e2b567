//! POSIX message queues: mq_open, mq_unlink, mq_timedsend,
//! mq_timedreceive, mq_notify, mq_getsetattr (Linux's ipc/mqueue.c).
//!
//! Queues live in the sentry, named in the sandbox's IPC namespace (which a
//! pod's containers share). A queue descriptor is a file: it is inherited
//! across fork, closed by close, polled like any fd (readable while the
//! queue holds a message), and read() on it gives Linux's status line.
//! Messages come out highest priority first, in order within a priority.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;

use super::file::{get_file, install_fd};
use super::SysResult;
use crate::fsimpl::ready::ReadyFlag;
use crate::kernel::task::Task;
use crate::kernel::{cap, interrupted, kernel, lock, Process};
use crate::vfs::{FileOps, FileStat, OpenFile, VfsResult, NAME_MAX};

/// /proc/sys/fs/mqueue defaults: what a queue gets without attributes,
/// and the most an unprivileged caller may ask for.
const DEFAULT_MAXMSG: i64 = 10;
const DEFAULT_MSGSIZE: i64 = 8192;
/// The ceilings even CAP_SYS_RESOURCE cannot pass (HARD_MSGMAX, and
/// msgsize_max's upper bound).
const HARD_MAXMSG: i64 = 65536;
const HARD_MSGSIZE: i64 = 16 << 20;
const MQ_PRIO_MAX: u32 = 32768;
/// /proc/sys/fs/mqueue/queues_max: each queue holds a host eventfd, so
/// the count is bounded for everyone but CAP_SYS_RESOURCE, as on Linux.
const QUEUES_MAX: usize = 256;
/// si_code of a message-queue notification.
const SI_MESGQ: i32 = -3;
const SIGEV_SIGNAL: i32 = 0;
const SIGEV_NONE: i32 = 1;

/// One queue.
pub struct MessageQueue {
    state: Mutex<QueueState>,
    cv: Condvar,
    /// Set while the queue holds a message (the descriptor's POLLIN).
    readable: ReadyFlag,
    maxmsg: i64,
    msgsize: i64,
    mode: u32,
    uid: u32,
    gid: u32,
}

struct QueueState {
    /// Keyed by (MQ_PRIO_MAX - priority, arrival) so iteration order is
    /// delivery order.
    messages: BTreeMap<(u32, u64), Vec<u8>>,
    arrivals: u64,
    bytes: usize,
    notify: Option<Notify>,
}

/// A process's mq_notify registration.
struct Notify {
    process: Weak<Process>,
    signo: i32,
    value: u64,
    /// SIGEV_NONE: registered, but nothing is sent.
    silent: bool,
}

fn names() -> &'static Mutex<HashMap<Vec<u8>, Arc<MessageQueue>>> {
    static NAMES: OnceLock<Mutex<HashMap<Vec<u8>, Arc<MessageQueue>>>> = OnceLock::new();
    NAMES.get_or_init(Default::default)
}

/// The open descriptor of a queue.
struct QueueFile {
    queue: Arc<MessageQueue>,
}

impl FileOps for QueueFile {
    fn stat(&self) -> VfsResult<FileStat> {
        Ok(FileStat {
            mode: libc::S_IFREG | self.queue.mode,
            uid: self.queue.uid,
            gid: self.queue.gid,
            nlink: 1,
            ..Default::default()
        })
    }

    /// Linux's status line.
    fn read_at(&self, buf: &mut [u8], off: u64) -> VfsResult<usize> {
        let s = lock(&self.queue.state);
        let (signo, pid) = match &s.notify {
            Some(n) if !n.silent => (n.signo, n.process.upgrade().map_or(0, |p| p.pid)),
            Some(n) => (0, n.process.upgrade().map_or(0, |p| p.pid)),
            None => (0, 0),
        };
        let notify = i32::from(s.notify.as_ref().is_some_and(|n| n.silent));
        let text = format!(
            "QSIZE:{:<10} NOTIFY:{:<5} SIGNO:{:<5} NOTIFY_PID:{:<6}\n",
            s.bytes, notify, signo, pid
        );
        let text = text.as_bytes();
        let start = (off as usize).min(text.len());
        let n = buf.len().min(text.len() - start);
        buf[..n].copy_from_slice(&text[start..start + n]);
        Ok(n)
    }

    fn poll_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        Some(self.queue.readable.fd.as_raw_fd())
    }

    fn message_queue(&self) -> Option<Arc<MessageQueue>> {
        Some(self.queue.clone())
    }
}

/// The queue behind `fd`, and whether the descriptor may read and write.
fn queue_of(t: &Task, fd: i32) -> Result<(Arc<OpenFile>, Arc<MessageQueue>), Errno> {
    let file = get_file(t, fd)?;
    let queue = file.ops.message_queue().ok_or(Errno::EBADF)?;
    Ok((file, queue))
}

/// A queue's name as mq_open and mq_unlink take it (glibc has dropped the
/// leading '/'): one path component.
fn read_name(t: &Task, addr: u64) -> Result<Vec<u8>, Errno> {
    let name = t.read_path(addr)?;
    if name.is_empty() {
        return Err(Errno::ENOENT);
    }
    if name.len() > NAME_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    if name.contains(&b'/') || name == b"." || name == b".." {
        return Err(Errno::EACCES);
    }
    Ok(name)
}

/// Whether the caller may open the queue for `acc` (O_RDONLY/WRONLY/RDWR).
fn may_open(t: &Task, q: &MessageQueue, acc: i32) -> bool {
    let c = lock(&t.proc.creds);
    if c.has_cap(cap::DAC_OVERRIDE) {
        return true;
    }
    let bits = if c.euid == q.uid {
        q.mode >> 6
    } else if c.egid == q.gid || c.groups.contains(&q.gid) {
        q.mode >> 3
    } else {
        q.mode
    };
    let want = match acc {
        libc::O_RDONLY => 4,
        libc::O_WRONLY => 2,
        _ => 6,
    };
    bits & want == want
}

pub fn mq_open(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (oflag, mode) = (a[1] as i32, a[2] as u32);
    let name = read_name(t, a[0])?;
    let acc = oflag & libc::O_ACCMODE;
    if acc == libc::O_ACCMODE {
        return Err(Errno::EINVAL);
    }
    let queue = {
        let mut names = lock(names());
        match names.get(&name) {
            Some(_) if oflag & libc::O_CREAT != 0 && oflag & libc::O_EXCL != 0 => {
                return Err(Errno::EEXIST)
            }
            Some(q) => {
                if !may_open(t, q, acc) {
                    return Err(Errno::EACCES);
                }
                q.clone()
            }
            None if oflag & libc::O_CREAT == 0 => return Err(Errno::ENOENT),
            None if names.len() >= QUEUES_MAX
                && !lock(&t.proc.creds).has_cap(cap::SYS_RESOURCE) =>
            {
                return Err(Errno::ENOSPC)
            }
            None => {
                let (maxmsg, msgsize) = create_attrs(t, a[3])?;
                let umask = lock(&t.proc.fs).umask;
                let (uid, gid) = {
                    let c = lock(&t.proc.creds);
                    (c.euid, c.egid)
                };
                let q = Arc::new(MessageQueue {
                    state: Mutex::new(QueueState {
                        messages: BTreeMap::new(),
                        arrivals: 0,
                        bytes: 0,
                        notify: None,
                    }),
                    cv: Condvar::new(),
                    readable: ReadyFlag::new()?,
                    maxmsg,
                    msgsize,
                    mode: mode & 0o777 & !umask,
                    uid,
                    gid,
                });
                names.insert(name.clone(), q.clone());
                q
            }
        }
    };
    let flags = acc | (oflag & libc::O_NONBLOCK);
    let mut display = b"/".to_vec();
    display.extend_from_slice(&name);
    let file = OpenFile::with_display(Arc::new(QueueFile { queue }), display, flags);
    install_fd(t, file, oflag & libc::O_CLOEXEC != 0)
}

/// A new queue's (maxmsg, msgsize): the defaults, or the caller's
/// struct mq_attr within the limits its privilege allows.
fn create_attrs(t: &Task, addr: u64) -> Result<(i64, i64), Errno> {
    if addr == 0 {
        return Ok((DEFAULT_MAXMSG, DEFAULT_MSGSIZE));
    }
    // struct mq_attr { long flags, maxmsg, msgsize, curmsgs, pad[4] }
    let attr = read_attr(t, addr)?;
    let (maxmsg, msgsize) = (attr[1], attr[2]);
    if maxmsg <= 0 || msgsize <= 0 {
        return Err(Errno::EINVAL);
    }
    let privileged = lock(&t.proc.creds).has_cap(cap::SYS_RESOURCE);
    let (max_msgs, max_size) = if privileged {
        (HARD_MAXMSG, HARD_MSGSIZE)
    } else {
        (DEFAULT_MAXMSG, DEFAULT_MSGSIZE)
    };
    if maxmsg > max_msgs || msgsize > max_size {
        return Err(Errno::EINVAL);
    }
    Ok((maxmsg, msgsize))
}

/// struct mq_attr's first four words: flags, maxmsg, msgsize, curmsgs.
fn read_attr(t: &Task, addr: u64) -> Result<[i64; 4], Errno> {
    let raw = t.read_bytes(addr, 32)?;
    let mut out = [0i64; 4];
    for (i, v) in out.iter_mut().enumerate() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&raw[i * 8..i * 8 + 8]);
        *v = i64::from_le_bytes(w);
    }
    Ok(out)
}

pub fn mq_unlink(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let name = read_name(t, a[0])?;
    match lock(names()).remove(&name) {
        Some(_) => Ok(0),
        None => Err(Errno::ENOENT),
    }
}

/// An absolute CLOCK_REALTIME timeout as a deadline (None: wait forever).
fn deadline(t: &Task, addr: u64) -> Result<Option<Instant>, Errno> {
    if addr == 0 {
        return Ok(None);
    }
    let ts: libc::timespec = t.read_obj(addr)?;
    if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
        return Err(Errno::EINVAL);
    }
    let at = UNIX_EPOCH + Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
    let left = at.duration_since(SystemTime::now()).unwrap_or_default();
    Ok(Some(Instant::now() + left))
}

/// Waits on the queue for a change, a signal (EINTR) or the deadline
/// (ETIMEDOUT), in slices so a signal is noticed.
fn wait<'a>(
    q: &'a MessageQueue,
    s: std::sync::MutexGuard<'a, QueueState>,
    until: Option<Instant>,
) -> Result<std::sync::MutexGuard<'a, QueueState>, Errno> {
    if interrupted() {
        return Err(Errno::EINTR);
    }
    let slice = Duration::from_millis(50);
    let dur = match until {
        Some(d) => {
            let now = Instant::now();
            if now >= d {
                return Err(Errno::ETIMEDOUT);
            }
            (d - now).min(slice)
        }
        None => slice,
    };
    Ok(q.cv
        .wait_timeout(s, dur)
        .map(|r| r.0)
        .unwrap_or_else(|p| p.into_inner().0))
}

pub fn mq_timedsend(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (fd, msg, len, prio) = (a[0] as i32, a[1], a[2] as usize, a[3] as u32);
    let (file, q) = queue_of(t, fd)?;
    if !file.writable() {
        return Err(Errno::EBADF);
    }
    if prio >= MQ_PRIO_MAX {
        return Err(Errno::EINVAL);
    }
    let until = deadline(t, a[4])?;
    if len as i64 > q.msgsize {
        return Err(Errno::EMSGSIZE);
    }
    let body = t.read_bytes(msg, len)?;
    let mut s = lock(&q.state);
    while s.messages.len() as i64 >= q.maxmsg {
        if file.flags() & libc::O_NONBLOCK != 0 {
            return Err(Errno::EAGAIN);
        }
        s = wait(&q, s, until)?;
    }
    let was_empty = s.messages.is_empty();
    let key = (MQ_PRIO_MAX - prio, s.arrivals);
    s.arrivals += 1;
    s.bytes += body.len();
    s.messages.insert(key, body);
    q.readable.update(true);
    // A registered process hears of a message arriving in an empty queue
    // (and is then unregistered), as on Linux.
    let notify = if was_empty { s.notify.take() } else { None };
    drop(s);
    q.cv.notify_all();
    if let Some(n) = notify {
        if let (false, Some(p)) = (n.silent, n.process.upgrade()) {
            let mut info = [0u8; 128];
            info[0..4].copy_from_slice(&n.signo.to_le_bytes());
            info[8..12].copy_from_slice(&SI_MESGQ.to_le_bytes());
            info[16..20].copy_from_slice(&t.pid_seen_by(&p).to_le_bytes());
            info[20..24].copy_from_slice(&lock(&t.proc.creds).ruid.to_le_bytes());
            info[24..32].copy_from_slice(&n.value.to_le_bytes());
            kernel().send_signal(&p, n.signo, info);
        }
    }
    Ok(0)
}

pub fn mq_timedreceive(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (fd, buf, len, prio_out) = (a[0] as i32, a[1], a[2] as usize, a[3]);
    let (file, q) = queue_of(t, fd)?;
    if !file.readable() {
        return Err(Errno::EBADF);
    }
    if (len as i64) < q.msgsize {
        return Err(Errno::EMSGSIZE);
    }
    let until = deadline(t, a[4])?;
    let mut s = lock(&q.state);
    let (key, body) = loop {
        if let Some(first) = s.messages.pop_first() {
            break first;
        }
        if file.flags() & libc::O_NONBLOCK != 0 {
            return Err(Errno::EAGAIN);
        }
        s = wait(&q, s, until)?;
    };
    s.bytes -= body.len();
    q.readable.update(!s.messages.is_empty());
    drop(s);
    q.cv.notify_all();
    let n = body.len();
    let written = t.write_bytes(buf, &body).and_then(|()| {
        if prio_out != 0 {
            t.write_obj(prio_out, &(MQ_PRIO_MAX - key.0))?;
        }
        Ok(())
    });
    if let Err(e) = written {
        // Put it back: the message is not lost to a bad buffer.
        let mut s = lock(&q.state);
        s.bytes += body.len();
        s.messages.insert(key, body);
        q.readable.update(true);
        return Err(e);
    }
    Ok(n as u64)
}

pub fn mq_notify(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (_, q) = queue_of(t, a[0] as i32)?;
    let mut s = lock(&q.state);
    let mine = |n: &Notify| {
        n.process
            .upgrade()
            .is_some_and(|p| Arc::ptr_eq(&p, &t.proc))
    };
    if a[1] == 0 {
        // Unregister, if it is ours.
        if s.notify.as_ref().is_some_and(mine) {
            s.notify = None;
        }
        return Ok(0);
    }
    // struct sigevent { sigval value; int signo; int notify; ... }
    let raw = t.read_bytes(a[1], 16)?;
    let word = |o: usize| i32::from_le_bytes([raw[o], raw[o + 1], raw[o + 2], raw[o + 3]]);
    let value = u64::from_le_bytes(raw[0..8].try_into().map_err(|_| Errno::EFAULT)?);
    let (signo, how) = (word(8), word(12));
    let silent = match how {
        SIGEV_NONE => true,
        SIGEV_SIGNAL if (1..crate::kernel::signals::NSIG as i32).contains(&signo) => false,
        _ => return Err(Errno::EINVAL),
    };
    if s.notify
        .as_ref()
        .is_some_and(|n| n.process.strong_count() > 0)
    {
        return Err(Errno::EBUSY);
    }
    s.notify = Some(Notify {
        process: Arc::downgrade(&t.proc),
        signo,
        value,
        silent,
    });
    Ok(0)
}

pub fn mq_getsetattr(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (file, q) = queue_of(t, a[0] as i32)?;
    let new = if a[1] != 0 {
        Some(read_attr(t, a[1])?)
    } else {
        None
    };
    if let Some(n) = new {
        if n[0] & !(libc::O_NONBLOCK as i64) != 0 {
            return Err(Errno::EINVAL);
        }
    }
    if a[2] != 0 {
        let cur = lock(&q.state).messages.len() as i64;
        let flags = (file.flags() & libc::O_NONBLOCK) as i64;
        // struct mq_attr, its reserved words zeroed.
        let mut old = [0u8; 64];
        for (i, v) in [flags, q.maxmsg, q.msgsize, cur].iter().enumerate() {
            old[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        t.write_bytes(a[2], &old)?;
    }
    if let Some(n) = new {
        let keep = file.flags() & !libc::O_NONBLOCK;
        file.set_status_flags(keep | (n[0] as i32 & libc::O_NONBLOCK));
    }
    Ok(0)
}
