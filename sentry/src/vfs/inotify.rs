//! inotify (gVisor's `vfs/inotify.go`): watches on inodes and the event
//! queues of inotify instances. The syscall layer reports what happened to
//! which inode ([`file_event`], [`child_event`]); this module fans it out to
//! the watches. With no watch anywhere, reporting costs one atomic load.

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use nix::errno::Errno;

use super::{FileOps, FileStat, FileType, Inode, Location, VfsResult};
use crate::fsimpl::ready::ReadyFlag;
use crate::kernel::lock;

pub const IN_ACCESS: u32 = 0x1;
pub const IN_MODIFY: u32 = 0x2;
pub const IN_ATTRIB: u32 = 0x4;
pub const IN_CLOSE_WRITE: u32 = 0x8;
pub const IN_CLOSE_NOWRITE: u32 = 0x10;
pub const IN_OPEN: u32 = 0x20;
pub const IN_MOVED_FROM: u32 = 0x40;
pub const IN_MOVED_TO: u32 = 0x80;
pub const IN_CREATE: u32 = 0x100;
pub const IN_DELETE: u32 = 0x200;
pub const IN_DELETE_SELF: u32 = 0x400;
pub const IN_MOVE_SELF: u32 = 0x800;
pub const IN_Q_OVERFLOW: u32 = 0x4000;
pub const IN_IGNORED: u32 = 0x8000;
pub const IN_ONLYDIR: u32 = 0x0100_0000;
pub const IN_DONT_FOLLOW: u32 = 0x0200_0000;
pub const IN_EXCL_UNLINK: u32 = 0x0400_0000;
pub const IN_MASK_CREATE: u32 = 0x1000_0000;
pub const IN_MASK_ADD: u32 = 0x2000_0000;
pub const IN_ISDIR: u32 = 0x4000_0000;
pub const IN_ONESHOT: u32 = 0x8000_0000;
pub const IN_ALL_EVENTS: u32 = 0xfff;
/// Events a directory watch also gets for its children (with their name).
const CHILD_EVENTS: u32 =
    IN_ACCESS | IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_CLOSE_NOWRITE | IN_OPEN;
/// Linux's default max_queued_events.
const MAX_QUEUED: usize = 16384;

struct Watch {
    wd: i32,
    mask: u32,
    instance: Weak<Inotify>,
}

type Key = usize;

fn key_of(inode: &Arc<dyn Inode>) -> Key {
    Arc::as_ptr(inode) as *const () as usize
}

/// Watches by inode, and how many exist (the fast path's check).
fn watches() -> std::sync::MutexGuard<'static, HashMap<Key, Vec<Watch>>> {
    static W: OnceLock<Mutex<HashMap<Key, Vec<Watch>>>> = OnceLock::new();
    lock(W.get_or_init(|| Mutex::new(HashMap::new())))
}
static WATCH_COUNT: AtomicUsize = AtomicUsize::new(0);
static NEXT_COOKIE: AtomicU32 = AtomicU32::new(1);

#[derive(Clone, PartialEq, Eq)]
struct Event {
    wd: i32,
    mask: u32,
    cookie: u32,
    name: Vec<u8>,
}

impl Event {
    fn size(&self) -> usize {
        16 + padded(&self.name)
    }
}

/// Name length with its NUL, rounded up to 16 bytes, as Linux pads it.
fn padded(name: &[u8]) -> usize {
    if name.is_empty() {
        0
    } else {
        (name.len() + 1).div_ceil(16) * 16
    }
}

struct InstanceState {
    queue: VecDeque<Event>,
    /// wd -> (inode key, the inode, kept alive while watched).
    watches: HashMap<i32, (Key, Arc<dyn Inode>)>,
    next_wd: i32,
}

pub struct Inotify {
    state: Mutex<InstanceState>,
    ready: ReadyFlag,
    nonblocking: AtomicBool,
    me: Weak<Inotify>,
}

impl Inotify {
    pub fn new(nonblocking: bool) -> VfsResult<Arc<Inotify>> {
        let ready = ReadyFlag::new()?;
        Ok(Arc::new_cyclic(|me| Inotify {
            state: Mutex::new(InstanceState {
                queue: VecDeque::new(),
                watches: HashMap::new(),
                next_wd: 1,
            }),
            ready,
            nonblocking: AtomicBool::new(nonblocking),
            me: me.clone(),
        }))
    }

    fn push(&self, ev: Event) {
        let mut st = lock(&self.state);
        if st.queue.back() == Some(&ev) {
            return; // Linux merges identical consecutive events.
        }
        if st.queue.len() >= MAX_QUEUED {
            let overflow = Event {
                wd: -1,
                mask: IN_Q_OVERFLOW,
                cookie: 0,
                name: Vec::new(),
            };
            if st.queue.back() != Some(&overflow) {
                st.queue.push_back(overflow);
            }
        } else {
            st.queue.push_back(ev);
        }
        self.ready.update(true);
    }

    /// inotify_add_watch on `inode`; returns the watch descriptor.
    pub fn add_watch(&self, inode: &Arc<dyn Inode>, mask: u32) -> VfsResult<i32> {
        let key = key_of(inode);
        let events = mask & (IN_ALL_EVENTS | IN_ONESHOT | IN_EXCL_UNLINK);
        let mut st = lock(&self.state);
        let mut all = watches();
        let list = all.entry(key).or_default();
        if let Some(w) = list.iter_mut().find(|w| w.instance.ptr_eq(&self.me)) {
            if mask & IN_MASK_CREATE != 0 {
                return Err(Errno::EEXIST);
            }
            w.mask = if mask & IN_MASK_ADD != 0 {
                w.mask | events
            } else {
                events
            };
            return Ok(w.wd);
        }
        let wd = st.next_wd;
        st.next_wd += 1;
        list.push(Watch {
            wd,
            mask: events,
            instance: self.me.clone(),
        });
        WATCH_COUNT.fetch_add(1, Ordering::SeqCst);
        st.watches.insert(wd, (key, inode.clone()));
        Ok(wd)
    }

    /// inotify_rm_watch: the watch goes and IN_IGNORED is queued.
    pub fn rm_watch(&self, wd: i32) -> VfsResult<()> {
        let key = {
            let mut st = lock(&self.state);
            st.watches.remove(&wd).ok_or(Errno::EINVAL)?.0
        };
        remove_watch(key, &self.me);
        self.push(Event {
            wd,
            mask: IN_IGNORED,
            cookie: 0,
            name: Vec::new(),
        });
        Ok(())
    }

    pub fn queued_bytes(&self) -> usize {
        lock(&self.state).queue.iter().map(Event::size).sum()
    }
}

fn remove_watch(key: Key, instance: &Weak<Inotify>) {
    let mut all = watches();
    if let Some(list) = all.get_mut(&key) {
        let before = list.len();
        list.retain(|w| !w.instance.ptr_eq(instance));
        WATCH_COUNT.fetch_sub(before - list.len(), Ordering::SeqCst);
        if list.is_empty() {
            all.remove(&key);
        }
    }
}

impl Drop for Inotify {
    fn drop(&mut self) {
        let keys: Vec<Key> = self
            .state
            .get_mut()
            .map(|s| s.watches.values().map(|(k, _)| *k).collect())
            .unwrap_or_default();
        for k in keys {
            remove_watch(k, &self.me);
        }
    }
}

/// Queues `mask` for every watch on `inode` that wants it (`name` set for
/// a directory's child).
fn deliver(inode: &Arc<dyn Inode>, mask: u32, name: &[u8], cookie: u32) {
    let key = key_of(inode);
    let mut hits: Vec<(Arc<Inotify>, i32, bool)> = Vec::new();
    {
        let mut all = watches();
        let Some(list) = all.get_mut(&key) else {
            return;
        };
        let wanted = mask & IN_ALL_EVENTS;
        for w in list.iter() {
            if w.mask & wanted == 0 {
                continue;
            }
            if let Some(i) = w.instance.upgrade() {
                hits.push((i, w.wd, w.mask & IN_ONESHOT != 0));
            }
        }
    }
    for (inst, wd, oneshot) in hits {
        inst.push(Event {
            wd,
            mask,
            cookie,
            name: name.to_vec(),
        });
        if oneshot {
            let _ = inst.rm_watch(wd);
        }
    }
}

fn active() -> bool {
    WATCH_COUNT.load(Ordering::Relaxed) != 0
}

fn dir_bit(inode: &Arc<dyn Inode>) -> u32 {
    if inode.file_type() == FileType::Directory {
        IN_ISDIR
    } else {
        0
    }
}

/// Something happened to the file at `loc` (opened, read, written, closed,
/// its attributes changed): its own watches hear it, and its directory's
/// watches hear it with its name.
pub fn file_event(loc: &Location, mask: u32) {
    if !active() {
        return;
    }
    let inode = loc.inode();
    let mask = mask | dir_bit(inode);
    // The directory hears first, as Linux's fsnotify_parent orders it.
    if !loc.is_root() && mask & CHILD_EVENTS != 0 {
        deliver(loc.parent().inode(), mask, loc.name(), 0);
    }
    deliver(inode, mask, b"", 0);
}

/// Something happened to `inode` reached without a path (fchmod, ...).
pub fn inode_event(inode: &Arc<dyn Inode>, mask: u32) {
    if !active() {
        return;
    }
    deliver(inode, mask | dir_bit(inode), b"", 0);
}

/// An entry `name` of directory `dir` was created or deleted (`child` is the
/// node, for IN_ISDIR).
pub fn child_event(dir: &Arc<dyn Inode>, name: &[u8], mask: u32, child: Option<&Arc<dyn Inode>>) {
    if !active() {
        return;
    }
    let isdir = child.map(dir_bit).unwrap_or(0);
    deliver(dir, mask | isdir, name, 0);
}

/// The inode lost its last link: IN_DELETE_SELF, then its watches go.
pub fn deleted(inode: &Arc<dyn Inode>) {
    if !active() {
        return;
    }
    deliver(inode, IN_DELETE_SELF, b"", 0);
    let key = key_of(inode);
    let gone: Vec<Watch> = watches().remove(&key).unwrap_or_default();
    WATCH_COUNT.fetch_sub(gone.len(), Ordering::SeqCst);
    for w in gone {
        if let Some(i) = w.instance.upgrade() {
            lock(&i.state).watches.remove(&w.wd);
            i.push(Event {
                wd: w.wd,
                mask: IN_IGNORED,
                cookie: 0,
                name: Vec::new(),
            });
        }
    }
}

/// A rename: MOVED_FROM/MOVED_TO with one cookie, MOVE_SELF on the node.
pub fn moved(
    old_dir: &Arc<dyn Inode>,
    old: &[u8],
    new_dir: &Arc<dyn Inode>,
    new: &[u8],
    node: &Arc<dyn Inode>,
) {
    if !active() {
        return;
    }
    let cookie = NEXT_COOKIE.fetch_add(1, Ordering::Relaxed);
    let isdir = dir_bit(node);
    deliver(old_dir, IN_MOVED_FROM | isdir, old, cookie);
    deliver(new_dir, IN_MOVED_TO | isdir, new, cookie);
    deliver(node, IN_MOVE_SELF, b"", 0);
}

impl FileOps for Inotify {
    fn seekable(&self) -> bool {
        false
    }

    fn read_at(&self, buf: &mut [u8], _off: u64) -> VfsResult<usize> {
        loop {
            {
                let mut st = lock(&self.state);
                if let Some(first) = st.queue.front() {
                    if first.size() > buf.len() {
                        return Err(Errno::EINVAL);
                    }
                    let mut done = 0;
                    while let Some(ev) = st.queue.front() {
                        let size = ev.size();
                        if done + size > buf.len() {
                            break;
                        }
                        let b = &mut buf[done..done + size];
                        b.fill(0);
                        b[0..4].copy_from_slice(&ev.wd.to_le_bytes());
                        b[4..8].copy_from_slice(&ev.mask.to_le_bytes());
                        b[8..12].copy_from_slice(&ev.cookie.to_le_bytes());
                        b[12..16].copy_from_slice(&(padded(&ev.name) as u32).to_le_bytes());
                        b[16..16 + ev.name.len()].copy_from_slice(&ev.name);
                        done += size;
                        st.queue.pop_front();
                    }
                    self.ready.update(!st.queue.is_empty());
                    return Ok(done);
                }
            }
            if self.nonblocking.load(Ordering::Relaxed) {
                return Err(Errno::EAGAIN);
            }
            self.ready.wait()?;
        }
    }

    fn stat(&self) -> VfsResult<FileStat> {
        Ok(crate::fsimpl::simple::synthetic_stat(0, 0o600, 0))
    }

    fn poll_fd(&self) -> Option<RawFd> {
        Some(self.ready.fd.as_raw_fd())
    }

    fn set_nonblocking(&self, on: bool) {
        self.nonblocking.store(on, Ordering::Relaxed);
    }

    fn inotify(self: Arc<Self>) -> Option<Arc<Inotify>> {
        Some(self)
    }

    fn readable_bytes(&self) -> Option<usize> {
        Some(self.queued_bytes())
    }
}
