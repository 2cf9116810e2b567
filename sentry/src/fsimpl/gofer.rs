//! The gofer filesystem: nodes of the container's rootfs and bind mounts,
//! reached only through the gofer (walks, creates, renames...) and the host
//! fds it donates (opens; all I/O then happens on those fds directly).
//!
//! One [`GoferFs`] per gofer connection keeps an identity map from host
//! `(dev, ino)` to the live [`GoferInode`], so every walk to the same file
//! yields the same inode: locks, FIFOs, bound unix sockets and inotify
//! watches key on inode identity. The map is exact: while an inode lives,
//! the gofer holds an `O_PATH` fd on its host inode, which therefore cannot
//! be freed and its number reused.
//!
//! The rootfs ([`Caching::Immutable`]) remembers every walk, misses too;
//! bind mounts ([`Caching::Revalidate`]) revalidate every lookup.
//!
//! A walk also brings the node's own host fd: a regular file's read-only
//! fd, another node's `O_PATH` fd (while the sandbox holds fewer than
//! [`host_fd_budget`] of them). This is gVisor's directfs, read side:
//! - a stat is an `fstat` of it, with no round trip to the gofer
//!   (the host, or another sandbox sharing a volume, may change a node at
//!   any time, so a bind mount's nodes are never answered from a cache);
//! - every read-only open of a regular file shares its read fd;
//! - a lookup in a bind-mounted directory is a single-component
//!   `fstatat(dir_fd, name, AT_SYMLINK_NOFOLLOW)`: a miss answers ENOENT
//!   and a hit on a live inode returns it, both without the gofer, which
//!   is asked only for nodes the sandbox has not met yet;
//! - a directory that has not changed since it answered a name gives the
//!   same answer again: one the sentry watches with fanotify
//!   (`dir_watch.rs`) without asking the host at all, and the mode its
//!   search permission check reads as well; another if its ctime is the
//!   same (every change of an entry sets it), for the price of its own
//!   `fstat` (see `recall_name` for when a ctime can be trusted);
//! - a directory is listed on the host, through `openat(dir_fd, ".")`.
//!
//! The write side too, on writable mounts (`directfs.rs`): the sentry
//! creates files, directories and symlinks, changes owners, modes and
//! times, and reopens files it has met for writing, with its own host
//! calls on those fds. A node it makes has no gofer handle until it needs
//! one (an xattr, a hard link, a truncate by path): the gofer then walks
//! to it from its origin, the directory and name it was last reached by,
//! and the inode found there must be this one. Unlinks and renames are
//! the sentry's own too, except of nodes the gofer holds a handle for:
//! those go through the gofer, which keeps its handles true
//! (gofer/src/nodes.rs). Only single components are ever named, with
//! symlinks never followed, and the gofer mounts its tree nodev.
//!
//! The sentry never resolves a path on these fds: names are single
//! components checked here (no `/`, never `.` or `..`), and the gofer
//! pivot_roots into the tree it serves, so even `..` from a donated
//! directory fd could not leave it.
//!
//! Without fds (past the budget), a node's stat on a writable mount asks
//! the gofer, and on a read-only one keeps the stat of its walk.

use std::any::Any;
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use gofer::client::GoferClient;
use gofer::protocol::{Handle, Owner, ROOT_HANDLE};
use nix::errno::Errno;

use super::dir_watch::{DirMark, DirWatch};
use super::directfs;
use super::host::{HostFile, HostKind};
use super::pipe::Fifo;
use crate::vfs::{
    init_owner, CreateCtx, DirEntry, FileOps, FileStat, FileType, FsStat, Inode, SetAttr, VfsResult,
};

/// One gofer connection: a mount's tree.
/// How far the sentry may trust what it has seen of a gofer's tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caching {
    /// The host may change the tree at any time (bind mounts, which a
    /// host process or another container may share): every walk asks.
    Revalidate,
    /// The tree's names never change under the sandbox (a read-only root
    /// the host may still write into: `rvisor do` over the host's own):
    /// each directory remembers its entries, misses included, so a path
    /// walked once costs no round trip again; a regular file's attributes
    /// are asked at every stat (a log the host appends to grows).
    Immutable,
    /// Nothing in the tree changes under the sandbox (an image's rootfs,
    /// read-only or under the sandbox's overlay): names are remembered as
    /// for `Immutable`, and every node's attributes as its walk found them.
    Frozen,
}

/// Remembered misses per directory before they are forgotten (a program
/// probing many names must not grow the sentry without bound).
const MAX_NEGATIVE_ENTRIES: usize = 4096;

/// Nodes of [`Caching::Revalidate`] trees kept alive after their last
/// user is gone, newest last, so that a later direct lookup finds them
/// live (see `lookup_revalidating`): at most [`MAX_KEPT`], the oldest go
/// first (closing their fds, if they hold any: fds are budgeted apart).
static KEPT: Mutex<std::collections::VecDeque<Arc<GoferInode>>> =
    Mutex::new(std::collections::VecDeque::new());

/// How many nodes [`KEPT`] holds (each a few hundred bytes, and a gofer
/// handle).
const MAX_KEPT: usize = 16384;

fn keep_alive(node: &Arc<GoferInode>) {
    let evicted = {
        let mut kept = KEPT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        kept.push_back(node.clone());
        if kept.len() > MAX_KEPT {
            kept.pop_front()
        } else {
            None
        }
    };
    // Dropped outside the lock: the last reference's drop closes fds and
    // queues the gofer handle's close.
    drop(evicted);
}

/// Host fds held by gofer inodes (node and read fds), across all mounts.
static HOST_FDS: AtomicUsize = AtomicUsize::new(0);

/// How many walk fds the sentry keeps at most: half of its fd limit as
/// long as that leaves [`APPLICATION_FDS`] for the application's own
/// files (which also live in the sentry's fd table), and a quarter at
/// least. Past it, walks fall back to plain handles.
fn host_fd_budget() -> usize {
    static BUDGET: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BUDGET.get_or_init(|| {
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map(|(soft, _)| fd_budget_of(soft))
            .unwrap_or(256)
    })
}

/// Host fds the walk budget leaves to the application's files, at least
/// (unless the limit is so low that a quarter of it is more).
const APPLICATION_FDS: u64 = 8192;

fn fd_budget_of(limit: u64) -> usize {
    let half = (limit / 2).min(limit.saturating_sub(APPLICATION_FDS));
    half.max(limit / 4).min(1 << 20) as usize
}

pub struct GoferFs {
    client: GoferClient,
    writable: bool,
    caching: Caching,
    /// Live inodes by host `(dev, ino)`.
    nodes: Mutex<HashMap<(u64, u64), Weak<GoferInode>>>,
    /// FIFOs in this tree, by host `(dev, ino)`: the pipe buffer lives in
    /// the sentry while an end is open, as Linux keeps it in the inode.
    fifos: Mutex<HashMap<(u64, u64), Weak<Fifo>>>,
    /// See [`GoferFs::lock_names`].
    names: Mutex<()>,
    /// Whether directories' ctimes can be trusted, by host device (see
    /// [`GoferFs::changes_show`]).
    change_devices: Mutex<HashMap<u64, bool>>,
}

impl GoferFs {
    /// The root of the tree the gofer on `client` serves. `writable`: the
    /// gofer accepts changes and the sentry offers them (always with
    /// [`Caching::Revalidate`]).
    pub fn mount(
        client: GoferClient,
        writable: bool,
        caching: Caching,
    ) -> VfsResult<Arc<GoferInode>> {
        let stat = client.root_stat()?;
        let caching = if writable {
            Caching::Revalidate
        } else {
            caching
        };
        let fs = Arc::new(GoferFs {
            client,
            writable,
            caching,
            nodes: Mutex::new(HashMap::new()),
            fifos: Mutex::new(HashMap::new()),
            names: Mutex::new(()),
            change_devices: Mutex::new(HashMap::new()),
        });
        // The root's own fd, for direct lookups in it (none past the budget).
        let path = if HOST_FDS.load(Ordering::Relaxed) < host_fd_budget() {
            fs.client.node_fd(ROOT_HANDLE).ok()
        } else {
            None
        };
        Ok(fs.adopt(ROOT_HANDLE, stat, NodeFds { path, read: None }))
    }

    fn lock_nodes(&self) -> MutexGuard<'_, HashMap<(u64, u64), Weak<GoferInode>>> {
        self.nodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The inode for a handle the gofer just gave us: the live one for the
    /// same host inode if there is one (the new handle is then given back),
    /// or a new one.
    fn adopt(self: &Arc<Self>, handle: Handle, stat: FileStat, fds: NodeFds) -> Arc<GoferInode> {
        let key = (stat.dev, stat.ino);
        let mut nodes = self.lock_nodes();
        if let Some(live) = nodes.get(&key).and_then(Weak::upgrade) {
            // A node the sentry made itself has no handle until it needs
            // one: this walk's is it.
            if live.handle.get_or_init(|| handle) != &handle {
                self.client.close_later(handle);
            }
            live.set_stat(stat);
            // A node met without fds (made by a create, or walked past the
            // budget) takes this walk's.
            if let Some(fd) = fds.path {
                if live.path_fd.set(fd).is_ok() {
                    HOST_FDS.fetch_add(1, Ordering::Relaxed);
                }
            }
            if let Some(fd) = fds.read {
                if live.read_fd.set(Arc::new(fd)).is_ok() {
                    HOST_FDS.fetch_add(1, Ordering::Relaxed);
                }
            }
            return live;
        }
        let node = self.new_node(Some(handle), stat, fds);
        Self::insert_node(&mut nodes, key, &node);
        node
    }

    /// The inode for a node the sentry itself just made on the host
    /// (`fds.path` its `O_PATH` fd): always a new one, since the host
    /// inode is new. A live inode with the same number (possible only
    /// for one that holds no fd to pin its own) is of a file since freed.
    fn adopt_made(self: &Arc<Self>, stat: FileStat, fds: NodeFds) -> Arc<GoferInode> {
        let key = (stat.dev, stat.ino);
        let node = self.new_node(None, stat, fds);
        Self::insert_node(&mut self.lock_nodes(), key, &node);
        node
    }

    fn new_node(
        self: &Arc<Self>,
        handle: Option<Handle>,
        stat: FileStat,
        fds: NodeFds,
    ) -> Arc<GoferInode> {
        HOST_FDS.fetch_add(fds.count(), Ordering::Relaxed);
        Arc::new_cyclic(|me| GoferInode {
            fs: self.clone(),
            handle: handle.map(OnceLock::from).unwrap_or_default(),
            me: me.clone(),
            origin: Mutex::new(None),
            ftype: FileType::from_mode(stat.mode),
            stat: Mutex::new(Known {
                stat,
                read_in: NOT_READ,
                settled: false,
                generation: None,
            }),
            link: Mutex::new(None),
            fresh_fd: Mutex::new(None),
            path_fd: fds.path.map(OnceLock::from).unwrap_or_default(),
            read_fd: fds
                .read
                .map(|fd| OnceLock::from(Arc::new(fd)))
                .unwrap_or_default(),
            children: Mutex::new(HashMap::new()),
            answers: Mutex::new(AnswerState::Empty),
            changes_show: OnceLock::new(),
            dir_mark: OnceLock::new(),
        })
    }

    fn insert_node(
        nodes: &mut HashMap<(u64, u64), Weak<GoferInode>>,
        key: (u64, u64),
        node: &Arc<GoferInode>,
    ) {
        // Dead entries go when the map would grow, keeping it bounded by
        // the number of live inodes (times two).
        if nodes.len() >= 64 && nodes.len().is_power_of_two() {
            nodes.retain(|_, w| w.strong_count() > 0);
        }
        nodes.insert(key, Arc::downgrade(node));
    }

    /// Whether the gofer holds a handle for the live inode `st` describes.
    /// Such a node is unlinked and renamed through the gofer, which then
    /// keeps its handle true (gofer/src/nodes.rs); the sentry changes the
    /// names of the others itself.
    fn gofer_knows(&self, st: &libc::stat) -> bool {
        // (The node is let go after the map's lock: a last reference's
        // drop may talk to the gofer.)
        let node = self.live(st);
        node.is_some_and(|n| n.handle.get().is_some())
    }

    /// The live inode for host `st`, by number alone.
    fn live(&self, st: &libc::stat) -> Option<Arc<GoferInode>> {
        let nodes = self.lock_nodes();
        nodes.get(&(st.st_dev, st.st_ino)).and_then(Weak::upgrade)
    }

    /// Serialises the sentry's own changes to names in this tree, as the
    /// single-threaded gofer did: between a mkdir and the open of what it
    /// made, no other thread of the sandbox may put something else there.
    fn lock_names(&self) -> MutexGuard<'_, ()> {
        self.names
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The live inode the host's `st` describes. Exact when the inode
    /// holds a host fd of its own: that fd pins the host inode, so its
    /// number cannot have been freed and given to another file. Without
    /// one, the inode must also have the same type and change time as
    /// when last seen: a file that took a freed number was made later,
    /// so its ctime differs (a legitimate change of the old file's
    /// attributes changes it too; the gofer is then asked again).
    fn live_match(&self, st: &libc::stat) -> Option<Arc<GoferInode>> {
        let node = self
            .lock_nodes()
            .get(&(st.st_dev, st.st_ino))
            .and_then(Weak::upgrade)?;
        if node.host_fd().is_some() {
            return Some(node);
        }
        let seen = node.known_stat();
        let same = seen.mode & libc::S_IFMT == st.st_mode & libc::S_IFMT
            && seen.ctime_sec == st.st_ctime
            && seen.ctime_nsec == st.st_ctime_nsec;
        same.then_some(node)
    }

    /// Whether every change of a directory's entries on host device `dev`
    /// (where `dir_fd` lies) shows: this kernel's VFS makes it, raising
    /// fanotify events and stamping the directory's ctime. The local disk
    /// filesystems and tmpfs qualify. procfs, sysfs and cgroupfs make and
    /// drop entries with neither; network and FUSE filesystems are changed
    /// by others, and report times from another clock, or cached, or
    /// fixed; overlayfs is changed beneath, through its layers. Their
    /// directories are asked about every name. Asked once per device (an
    /// rbind brings the submounts of other filesystems).
    fn changes_show(&self, dev: u64, dir_fd: std::os::fd::BorrowedFd<'_>) -> bool {
        let mut devices = self
            .change_devices
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(&trusted) = devices.get(&dev) {
            return trusted;
        }
        let Ok(fs) = nix::sys::statfs::fstatfs(dir_fd) else {
            return false;
        };
        let trusted = [
            nix::sys::statfs::EXT4_SUPER_MAGIC,
            nix::sys::statfs::XFS_SUPER_MAGIC,
            nix::sys::statfs::BTRFS_SUPER_MAGIC,
            nix::sys::statfs::TMPFS_MAGIC,
            nix::sys::statfs::F2FS_SUPER_MAGIC,
        ]
        .contains(&fs.filesystem_type());
        devices.insert(dev, trusted);
        trusted
    }

    fn fifo(&self, stat: &FileStat) -> VfsResult<Arc<Fifo>> {
        let mut fifos = self
            .fifos
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (stat.dev, stat.ino);
        if let Some(f) = fifos.get(&key).and_then(Weak::upgrade) {
            return Ok(f);
        }
        fifos.retain(|_, w| w.strong_count() > 0);
        let f = Fifo::new()?;
        fifos.insert(key, Arc::downgrade(&f));
        Ok(f)
    }
}

pub struct GoferInode {
    fs: Arc<GoferFs>,
    /// The gofer's handle for the node. A node the sentry made itself
    /// (directfs) gets one only when something needs the gofer.
    handle: OnceLock<Handle>,
    me: Weak<GoferInode>,
    /// On a writable mount: the directory and name the node was last
    /// reached by, where the sentry may open it again itself or walk the
    /// gofer to it for a handle. A hint only: the host may have renamed
    /// it since, so whatever is found there must be this very inode.
    origin: Mutex<Option<(Arc<GoferInode>, Vec<u8>)>>,
    ftype: FileType,
    /// The stat from the last walk or change (see the module notes).
    stat: Mutex<Known>,
    link: Mutex<Option<Vec<u8>>>,
    /// The fd a create just opened, for the open that follows it.
    fresh_fd: Mutex<Option<OwnedFd>>,
    /// The node's own `O_PATH` host fd, from its walk.
    /// (Set once: by the walk that made the inode, or by a later walk
    /// when the first came without fds, past the budget.)
    path_fd: OnceLock<OwnedFd>,
    /// A regular file's read-only host fd, from its walk.
    read_fd: OnceLock<Arc<OwnedFd>>,
    /// A directory's entries as walked, misses as `None` (only with
    /// [`Caching::Immutable`]).
    children: Mutex<HashMap<Vec<u8>, Option<Arc<GoferInode>>>>,
    /// A directory's answers since its last change (only with
    /// [`Caching::Revalidate`]; see [`GoferInode::recall_name`]).
    answers: Mutex<AnswerState>,
    /// Whether this directory's changes show ([`GoferFs::changes_show`]).
    changes_show: OnceLock<bool>,
    /// A bind-mounted directory's fanotify mark, made at its first lookup
    /// (None: it cannot be watched; see `dir_watch`).
    dir_mark: OnceLock<Option<Arc<DirMark>>>,
}

/// The names a bind-mounted directory was asked for since it last
/// changed, and what they were: a live inode (weakly held: the answer
/// must not keep its fds open) or no entry. Valid while the directory's
/// ctime on the host is `ctime`: every change of an entry in a directory
/// (a create, unlink, rename in or out, link) sets its ctime to the
/// current time, on the filesystems [`GoferFs::changes_show`] admits.
struct Answers {
    since: Since,
    /// The realtime clock's lead over the monotonic one when these answers
    /// began: a realtime clock set back since could stamp a later change
    /// with the very ctime of [`Since::Ctime`], and drops them.
    lead: i128,
    names: HashMap<Vec<u8>, Option<Weak<GoferInode>>>,
}

/// What tells that a directory has not changed since it gave answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Since {
    /// Its fanotify mark's entries generation ([`DirMark::entries`]).
    Generation(u64),
    /// Its ctime on the host, when it cannot be watched.
    Ctime((i64, i64)),
}

impl Answers {
    fn new(since: Since, lead: i128) -> Answers {
        Answers {
            since,
            lead,
            names: HashMap::new(),
        }
    }

    /// Whether these answers still hold for a directory now in state
    /// `since`, with the realtime clock's lead now `lead`.
    fn hold(&self, since: Since, lead: i128) -> bool {
        self.since == since
            && (matches!(since, Since::Generation(_)) || self.lead - lead < CLOCK_SET_BACK_NS)
    }

    fn insert(&mut self, name: &[u8], answer: Option<Weak<GoferInode>>) {
        if self.names.len() >= MAX_ANSWERS {
            ANSWERS_HELD.fetch_sub(self.names.len(), Ordering::Relaxed);
            self.names.clear();
        }
        if ANSWERS_HELD.load(Ordering::Relaxed) >= MAX_ANSWERS_HELD {
            return;
        }
        if self.names.insert(name.to_vec(), answer).is_none() {
            ANSWERS_HELD.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn forget(&mut self, name: &[u8]) {
        if self.names.remove(name).is_some() {
            ANSWERS_HELD.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Answers {
    fn drop(&mut self) {
        ANSWERS_HELD.fetch_sub(self.names.len(), Ordering::Relaxed);
    }
}

/// What a directory keeps of its answers.
enum AnswerState {
    /// Nothing (yet).
    Empty,
    /// It changed too recently for its ctime to be [`settled`]: asking for
    /// it again before this clock reading would be no use.
    Unsettled {
        until: i128,
    },
    Kept(Answers),
}

/// What a directory's [`Answers`] say of a name.
enum Recalled {
    /// The answer it gave since it last changed.
    Known(VfsResult<Arc<GoferInode>>),
    /// None: the answer the host gives now may be remembered if the
    /// directory is still in this state (None: not at all).
    Unknown(Option<Since>),
}

/// Answers one directory remembers before it forgets them all.
const MAX_ANSWERS: usize = 1 << 15;

/// Answers all directories remember together, at most (each a name and a
/// weak pointer, which keeps a dead inode's allocation: ~0.5 KiB).
const MAX_ANSWERS_HELD: usize = 1 << 17;

/// Answers all directories remember now.
static ANSWERS_HELD: AtomicUsize = AtomicUsize::new(0);

/// By how much the realtime clock may have been set back (relative to
/// the monotonic clock, which slewing moves alike) before a directory's
/// answers are dropped.
const CLOCK_SET_BACK_NS: i128 = 1_000_000;

/// The realtime clock's lead over the monotonic one, in nanoseconds.
fn realtime_lead() -> i128 {
    let ns = |id| {
        nix::time::clock_gettime(id)
            .map(|t| i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec()))
            .unwrap_or(0)
    };
    ns(nix::time::ClockId::CLOCK_REALTIME_COARSE) - ns(nix::time::ClockId::CLOCK_MONOTONIC_COARSE)
}

/// The clock the host's filesystems stamp changes with (Linux's
/// `current_time`: the coarse realtime clock, or a finer reading of the
/// same clock, never an earlier one), in nanoseconds.
fn change_clock() -> i128 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME_COARSE)
        .map(|t| i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec()))
        .unwrap_or(0)
}

/// Whether a ctime the host returned after [`change_clock`] read `clock`
/// is settled: old enough that any later change of the node stamps a
/// different one. A change made after `clock` was read is stamped no
/// earlier than `clock`, truncated to the filesystem's granularity,
/// which is not known here: a ctime with nanoseconds must be 10 ms older
/// than the clock (every fine-grained filesystem's granularity is finer,
/// and the coarse clock's ticks too), one without must be 2 s older (FAT
/// and whole-second filesystems). Otherwise two changes within one tick
/// could leave the same ctime, as git's "racy" index entries.
fn settled(ctime: (i64, i64), clock: i128) -> bool {
    settles_at(ctime) < clock
}

/// The clock reading past which `ctime` is [`settled`].
fn settles_at(ctime: (i64, i64)) -> i128 {
    let stamped = i128::from(ctime.0) * 1_000_000_000 + i128::from(ctime.1);
    let margin = if ctime.1 != 0 {
        10_000_000
    } else {
        2_000_000_000
    };
    stamped + margin
}

/// What the sentry knows of a node's attributes, read and written as one.
struct Known {
    stat: FileStat,
    /// The system call (`vfs::current_syscall`) in which `stat` was read
    /// from the host: a stat later in the same call may use it, unless
    /// the call changed the tree since ([`GoferInode::begin_change`]).
    read_in: u64,
    /// Whether `stat`'s ctime is [`settled`].
    settled: bool,
    /// For a watched directory: its mark's attrs generation
    /// ([`DirMark::attrs`]) before `stat` was read; `stat`'s mode and
    /// owner hold while that is current.
    generation: Option<u64>,
}

/// `Known::read_in` of a stat not read from the host in any call.
const NOT_READ: u64 = u64::MAX;

thread_local! {
    /// The last system call of this sentry thread that changed a gofer
    /// tree: stats it read before the change are no longer fresh for it.
    /// (Per thread, as system call numbers are: another thread's change
    /// must not clear this call's mark.)
    static CHANGED_IN: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    /// The last system call of this sentry thread that read the
    /// [`DirWatch`] queue.
    static SYNCED_IN: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// The host fds a walk brought for a node.
#[derive(Default)]
struct NodeFds {
    path: Option<OwnedFd>,
    read: Option<OwnedFd>,
}

impl NodeFds {
    fn count(&self) -> usize {
        usize::from(self.path.is_some()) + usize::from(self.read.is_some())
    }
}

impl Drop for GoferInode {
    fn drop(&mut self) {
        let held =
            usize::from(self.path_fd.get().is_some()) + usize::from(self.read_fd.get().is_some());
        HOST_FDS.fetch_sub(held, Ordering::Relaxed);
        if let Some(&handle) = self.handle.get() {
            self.fs.client.close_later(handle);
        }
        if let (Some(Some(mark)), Some(fd)) = (self.dir_mark.take(), self.path_fd.get()) {
            // (A mark exists only if the watch does: no group is made here.)
            if let Some(watch) = DirWatch::get() {
                watch.release(fd.as_fd(), mark);
            }
        }
        // The chain of origins is let go one link at a time: dropping a
        // deep directory nest recursively would overflow the stack.
        let mut next = self
            .origin
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        while let Some((parent, _)) = next {
            next = match Arc::try_unwrap(parent) {
                Ok(mut last) => last
                    .origin
                    .get_mut()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take(),
                Err(_) => None,
            };
        }
    }
}

/// Whether `name` is one path component the host may look up relative to
/// a directory fd: not empty, no `/` or NUL, not `.` or `..` (the VFS
/// walks those itself).
fn single_component(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != b"."
        && name != b".."
        && !name.contains(&b'/')
        && !name.contains(&0)
}

impl GoferInode {
    fn lock_stat(&self) -> MutexGuard<'_, Known> {
        self.stat
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The node's last known stat, however old.
    fn known_stat(&self) -> FileStat {
        self.lock_stat().stat.clone()
    }

    /// Replaces the node's stat with one not read from the host now.
    fn set_stat(&self, stat: FileStat) {
        *self.lock_stat() = Known {
            stat,
            read_in: NOT_READ,
            settled: false,
            generation: None,
        };
    }

    /// Replaces the node's stat with one the host just returned, after
    /// [`change_clock`] read `clock`; says whether its ctime is settled.
    /// `generation`: for a watched directory, its mark's attrs generation
    /// before the host was asked (`access_stat`), if known. Stat and
    /// generation are kept as one: a stat another thread read earlier
    /// must never pass for one read under this generation.
    fn set_host_stat(&self, stat: FileStat, clock: i128, generation: Option<u64>) -> bool {
        let settled = settled((stat.ctime_sec, stat.ctime_nsec), clock);
        *self.lock_stat() = Known {
            stat,
            read_in: crate::vfs::current_syscall(),
            settled,
            generation,
        };
        settled
    }

    /// Reads the node's stat from the host through `fd`, its own, and
    /// keeps it (`generation` as for `set_host_stat`); with whether its
    /// ctime is settled (only a directory's ever is: `recall_name` trusts
    /// no other).
    fn read_host_stat(
        &self,
        fd: std::os::fd::BorrowedFd<'_>,
        generation: Option<u64>,
    ) -> VfsResult<(FileStat, bool)> {
        let clock = if self.ftype == FileType::Directory {
            change_clock()
        } else {
            0
        };
        let st = super::host::stat_from_host(&directfs::stat(fd)?);
        let settled = self.set_host_stat(st.clone(), clock, generation);
        Ok((st, settled))
    }

    /// The node's stat, and whether its ctime is settled, if it was read
    /// from the host earlier in this same system call, which has changed
    /// nothing in any tree since: as fresh as asking the host again.
    fn stat_read_now(&self) -> Option<(FileStat, bool)> {
        // (0: not in a system call, when nothing counts as this call.)
        let now = crate::vfs::current_syscall();
        if now == 0 || CHANGED_IN.with(std::cell::Cell::get) == now {
            return None;
        }
        let known = self.lock_stat();
        (known.read_in == now).then(|| (known.stat.clone(), known.settled))
    }

    fn client(&self) -> &GoferClient {
        &self.fs.client
    }

    /// The gofer's handle for this node. One the sentry made itself has
    /// none yet: the gofer walks to it from its origin, which must still
    /// name this very inode (else ESTALE, as for a handle the host
    /// removed).
    fn handle(&self) -> VfsResult<Handle> {
        if let Some(&handle) = self.handle.get() {
            return Ok(handle);
        }
        // Ancestors the sentry made too may lack handles: from the nearest
        // one that has one down to here, each is walked to in turn (a
        // loop, not a recursion: a directory nest may be deep).
        let mut lacking = Vec::new();
        let mut up = self.origin_parent();
        while let Some(p) = up {
            if p.handle.get().is_some() {
                break;
            }
            up = p.origin_parent();
            lacking.push(p);
        }
        for node in lacking.iter().rev() {
            node.handle_from_origin()?;
        }
        self.handle_from_origin()
    }

    fn origin_parent(&self) -> Option<Arc<GoferInode>> {
        self.origin
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map(|(p, _)| p.clone())
    }

    /// A handle by a gofer walk from the origin, whose directory has one.
    fn handle_from_origin(&self) -> VfsResult<Handle> {
        if let Some(&handle) = self.handle.get() {
            return Ok(handle);
        }
        let origin = self
            .origin
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let (parent, name) = origin.ok_or(Errno::ESTALE)?;
        let dir = *parent.handle.get().ok_or(Errno::ESTALE)?;
        let (handle, stat) = match self.client().walk(dir, &name) {
            Ok(walked) => walked,
            Err(Errno::ENOENT) => return Err(Errno::ESTALE),
            Err(e) => return Err(e),
        };
        let me = self.known_stat();
        if (stat.dev, stat.ino) != (me.dev, me.ino) {
            self.client().close_later(handle);
            return Err(Errno::ESTALE);
        }
        if self.handle.get_or_init(|| handle) != &handle {
            self.client().close_later(handle);
        }
        Ok(handle)
    }

    /// Remembers where `node` was reached from this directory (writable
    /// mounts only: the sentry opens and changes nodes there itself).
    fn set_origin(&self, node: &GoferInode, name: &[u8]) {
        if !self.fs.writable {
            return;
        }
        if let Some(me) = self.me.upgrade() {
            *node
                .origin
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((me, name.to_vec()));
        }
    }

    /// One walk through the gofer.
    fn walk(&self, name: &[u8]) -> VfsResult<Arc<GoferInode>> {
        let dir = self.handle()?;
        let node = if HOST_FDS.load(Ordering::Relaxed) < host_fd_budget() {
            let walked = self.client().walk_open(dir, name)?;
            // A regular file's read fd serves everything its O_PATH fd
            // would (stats and attribute changes go through either with
            // AT_EMPTY_PATH; names are only looked up in directories):
            // one fd per file, not two, so that the budget covers twice
            // as many.
            let path = match walked.read_fd {
                Some(_) => None,
                None => walked.path_fd,
            };
            let fds = NodeFds {
                path,
                read: walked.read_fd,
            };
            self.fs.adopt(walked.handle, walked.stat, fds)
        } else {
            let (handle, stat) = self.client().walk(dir, name)?;
            self.fs.adopt(handle, stat, NodeFds::default())
        };
        self.set_origin(&node, name);
        Ok(node)
    }

    /// A host fd of this very node, if it holds one.
    fn host_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.read_fd
            .get()
            .map(|fd| &**fd)
            .or(self.path_fd.get())
            .map(AsFd::as_fd)
    }

    /// A lookup on a tree the host may change: every answer comes from the
    /// host at the time of the call. Nodes walked here are kept alive for
    /// a while ([`KEPT`]), so that the next lookup's `fstatat` finds them
    /// live; a name is never answered without that check.
    fn lookup_revalidating(&self, name: &[u8]) -> VfsResult<Arc<GoferInode>> {
        let since = match self.recall_name(name) {
            Recalled::Known(found) => return found,
            Recalled::Unknown(since) => since,
        };
        let found = match self.lookup_direct(name) {
            Some(found) => found,
            None => self.walk(name).inspect(|node| {
                if self.path_fd.get().is_some() {
                    keep_alive(node);
                }
            }),
        };
        if let Some(since) = since {
            self.remember_name(since, name, &found);
        }
        found
    }

    /// The directory's entries read on the host, through a reopen of its
    /// own fd (`openat(fd, ".")`, which walks nowhere), as the gofer would
    /// read them; None when only the gofer can.
    fn readdir_direct(&self) -> Option<Vec<DirEntry>> {
        let fd = self.path_fd.get()?;
        if self.ftype != FileType::Directory {
            return None;
        }
        let flags = nix::fcntl::OFlag::O_RDONLY
            | nix::fcntl::OFlag::O_DIRECTORY
            | nix::fcntl::OFlag::O_NOFOLLOW
            | nix::fcntl::OFlag::O_CLOEXEC;
        let mut dir = nix::dir::Dir::openat(
            Some(fd.as_raw_fd()),
            c".",
            flags,
            nix::sys::stat::Mode::empty(),
        )
        .ok()?;
        let mut out = Vec::new();
        for entry in dir.iter() {
            let entry = entry.ok()?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            out.push(DirEntry {
                name: name.to_vec(),
                ino: entry.ino(),
                ftype: FileType::from_dtype(gofer::protocol::dirent_type(entry.file_type())),
            });
        }
        Some(out)
    }

    /// Looks `name` up in this directory on the host, through its own fd
    /// (directfs): `Some(Err(ENOENT))` for a miss, `Some(Ok(node))` when
    /// the name is a live inode's, `None` when only the gofer can tell
    /// (a node the sandbox has not met, no fd, an odd name or error).
    fn lookup_direct(&self, name: &[u8]) -> Option<VfsResult<Arc<GoferInode>>> {
        let dir = self.path_fd.get()?;
        if self.ftype != FileType::Directory || !single_component(name) {
            return None;
        }
        let cname = std::ffi::CString::new(name).ok()?;
        let clock = change_clock();
        let st = match nix::sys::stat::fstatat(
            Some(dir.as_raw_fd()),
            cname.as_c_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) => st,
            Err(Errno::ENOENT) => return Some(Err(Errno::ENOENT)),
            Err(_) => return None,
        };
        let node = self.fs.live_match(&st)?;
        node.set_host_stat(super::host::stat_from_host(&st), clock, None);
        self.note_reached(&node, name);
        Some(Ok(node))
    }

    /// Notes that `node` was reached as `name` in this directory, for
    /// its later reopens (on a writable mount).
    fn note_reached(&self, node: &Arc<GoferInode>, name: &[u8]) {
        if !self.fs.writable {
            return;
        }
        let moved = node
            .origin
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .is_none_or(|(p, n)| !std::ptr::eq(&**p, self) || n != name);
        if moved {
            self.set_origin(node, name);
        }
    }

    /// What this directory answered for `name` since it last changed on
    /// the host, if that is known; otherwise, the state of the directory
    /// under which the answer found now may be remembered
    /// (`remember_name`). A name is never trusted without the directory's
    /// word that none of its entries changed since:
    /// - a directory watched by fanotify ([`DirWatch`]) gives it with its
    ///   mark's generation, after the queue has been read: no host call
    ///   but one `epoll_wait` per system call;
    /// - another gives it with its ctime: its own stat, read in this call
    ///   (a walk reads it anyway: its lookup in its parent, or the search
    ///   permission check) or now, has the ctime of those answers, which
    ///   was [`settled`].
    ///
    /// This is what lets a walk through a bind mount cost less than an
    /// `fstatat` by name per directory.
    fn recall_name(&self, name: &[u8]) -> Recalled {
        let Some(fd) = self.path_fd.get() else {
            return Recalled::Unknown(None);
        };
        if self.ftype != FileType::Directory || !single_component(name) {
            return Recalled::Unknown(None);
        }
        if let Some(mark) = self.watched(fd.as_fd()) {
            return self.recall_since(Since::Generation(mark.entries()), 0, name);
        }
        if !self.shows_changes(fd.as_fd()) {
            return Recalled::Unknown(None);
        }
        let (stat, settled_now) = match self.stat_read_now() {
            Some(known) => known,
            None => {
                if let AnswerState::Unsettled { until } = *self.lock_answers() {
                    if change_clock() < until {
                        return Recalled::Unknown(None);
                    }
                }
                match self.read_host_stat(fd.as_fd(), None) {
                    Ok(known) => known,
                    Err(_) => return Recalled::Unknown(None),
                }
            }
        };
        let ctime = (stat.ctime_sec, stat.ctime_nsec);
        if !settled_now {
            *self.lock_answers() = AnswerState::Unsettled {
                until: settles_at(ctime),
            };
            return Recalled::Unknown(None);
        }
        self.recall_since(Since::Ctime(ctime), realtime_lead(), name)
    }

    /// The answer for `name` kept under `since`, the directory's state
    /// now, if any; otherwise starts keeping answers under it.
    fn recall_since(&self, since: Since, lead: i128, name: &[u8]) -> Recalled {
        let mut answers = self.lock_answers();
        match &mut *answers {
            AnswerState::Kept(known) if known.hold(since, lead) => match known.names.get(name) {
                Some(None) => return Recalled::Known(Err(Errno::ENOENT)),
                Some(Some(node)) => {
                    // Only a node with its own fd: its stat asks the
                    // host. A dead one's answer goes.
                    match node.upgrade().filter(|n| n.host_fd().is_some()) {
                        Some(node) => {
                            drop(answers);
                            self.note_reached(&node, name);
                            return Recalled::Known(Ok(node));
                        }
                        None => known.forget(name),
                    }
                }
                None => {}
            },
            _ => *answers = AnswerState::Kept(Answers::new(since, lead)),
        }
        Recalled::Unknown(Some(since))
    }

    /// This directory's fanotify mark, made at its first lookup, if it is
    /// watched; the queue read in this system call (again, if the call
    /// changed a tree since), so its generation is current.
    fn watched(&self, fd: std::os::fd::BorrowedFd<'_>) -> Option<&Arc<DirMark>> {
        let watch = DirWatch::get()?;
        let mark = self
            .dir_mark
            .get_or_init(|| {
                let seen = self.known_stat();
                self.shows_changes(fd)
                    .then(|| watch.mark(fd, (seen.dev, seen.ino)))
                    .flatten()
            })
            .as_ref()?;
        let now = crate::vfs::current_syscall();
        let synced = SYNCED_IN.with(std::cell::Cell::get);
        if now == 0 || synced != now || CHANGED_IN.with(std::cell::Cell::get) == now {
            watch.sync();
            SYNCED_IN.with(|c| c.set(now));
        }
        Some(mark)
    }

    /// Whether this directory's changes show ([`GoferFs::changes_show`]),
    /// asked once (its device never changes).
    fn shows_changes(&self, fd: std::os::fd::BorrowedFd<'_>) -> bool {
        *self
            .changes_show
            .get_or_init(|| self.fs.changes_show(self.known_stat().dev, fd))
    }

    fn lock_answers(&self) -> MutexGuard<'_, AnswerState> {
        self.answers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Remembers what the host answered for `name`, if the directory is
    /// still in the state `recall_name` saw before the lookup.
    fn remember_name(&self, since: Since, name: &[u8], found: &VfsResult<Arc<GoferInode>>) {
        let answer = match found {
            Ok(node) if node.host_fd().is_some() => Some(Arc::downgrade(node)),
            Err(Errno::ENOENT) => None,
            _ => return,
        };
        if let AnswerState::Kept(known) = &mut *self.lock_answers() {
            if known.since == since {
                known.insert(name, answer);
            }
        }
    }

    /// Checks that the mount takes changes, and notes that this system
    /// call makes one: stats of its earlier lookups are no longer fresh
    /// for it (an unlink's victim, a truncated file).
    fn begin_change(&self) -> VfsResult<()> {
        if !self.fs.writable {
            return Err(Errno::EROFS);
        }
        CHANGED_IN.with(|c| c.set(crate::vfs::current_syscall()));
        Ok(())
    }

    /// Owner of a node created in this directory by `ctx` (from the
    /// directory's mode and group: `access_stat` is enough).
    fn new_owner(&self, mode: u32, ctx: CreateCtx) -> VfsResult<(u32, Owner)> {
        let (mode, ctx) = init_owner(&self.access_stat()?, mode, ctx);
        Ok((
            mode,
            Owner {
                uid: ctx.uid,
                gid: ctx.gid,
            },
        ))
    }

    /// Another inode of the same mount (hard links and renames cannot
    /// cross mounts: EXDEV).
    fn same_fs<'a>(&self, other: &'a Arc<dyn Inode>) -> VfsResult<&'a GoferInode> {
        match other.as_any().downcast_ref::<GoferInode>() {
            Some(g) if Arc::ptr_eq(&g.fs, &self.fs) => Ok(g),
            _ => Err(Errno::EXDEV),
        }
    }

    // Directfs, write side: the sentry changes a writable mount itself,
    // through the fds the gofer donated (fsimpl/directfs.rs). Each `*_direct`
    // returns None where only the gofer can do it (no fd, past the fd
    // budget, a host refusal the gofer might not meet), and the caller then
    // asks the gofer.

    /// This directory's own host fd and `name` as a C string, for a change
    /// the sentry makes itself in it.
    fn direct_dir(&self, name: &[u8]) -> Option<(std::os::fd::BorrowedFd<'_>, CString)> {
        if !self.fs.writable || self.ftype != FileType::Directory || !single_component(name) {
            return None;
        }
        let fd = self.path_fd.get()?;
        Some((fd.as_fd(), CString::new(name).ok()?))
    }

    /// Creates regular file `name`, opened read-write (kept as the node's
    /// `fresh_fd`).
    fn create_direct(
        &self,
        name: &[u8],
        mode: u32,
        owner: Owner,
    ) -> Option<VfsResult<Arc<GoferInode>>> {
        let (dir, cname) = self.direct_dir(name)?;
        if !fd_room() {
            return None;
        }
        let _names = self.fs.lock_names();
        let file = match directfs::create_file(dir, &cname, mode & 0o7777) {
            Ok(file) => file,
            Err(e) if gofer_may_differ(e) => return None,
            Err(e) => return Some(Err(e)),
        };
        // The node's own O_PATH fd, for later changes; without one (a host
        // without open_tree) the node is reached through its origin.
        let path = directfs::path_fd_of(file.as_fd()).ok();
        let node = self.own_made(
            name,
            Made::File {
                file: file.as_fd(),
                path,
            },
            owner,
            mode,
        );
        Some(node.inspect(|node| {
            *node
                .fresh_fd
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(file);
        }))
    }

    /// Makes directory `name`.
    fn mkdir_direct(&self, name: &[u8], mode: u32, owner: Owner) -> Option<VfsResult<()>> {
        let (dir, cname) = self.direct_dir(name)?;
        if !fd_room() {
            return None;
        }
        let _names = self.fs.lock_names();
        match directfs::mkdir(dir, &cname, mode & 0o7777) {
            Ok(()) => {}
            Err(e) if gofer_may_differ(e) => return None,
            Err(e) => return Some(Err(e)),
        }
        let flags = nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY;
        let path = match directfs::open_node(dir, &cname, flags, 0) {
            Ok(path) => path,
            Err(e) => return Some(Err(e)),
        };
        // Set-ID bits of a directory come from its parent alone (the host
        // saw to that), as mkdir(2) ignores them in the mode: none to set.
        Some(self.own_made(name, Made::Node(path), owner, 0).map(drop))
    }

    /// Makes symlink `name` to `target`.
    fn symlink_direct(&self, name: &[u8], target: &[u8], owner: Owner) -> Option<VfsResult<()>> {
        let (dir, cname) = self.direct_dir(name)?;
        let target = CString::new(target).ok()?;
        if !fd_room() {
            return None;
        }
        let _names = self.fs.lock_names();
        match directfs::symlink(&target, dir, &cname) {
            Ok(()) => {}
            Err(e) if gofer_may_differ(e) => return None,
            Err(e) => return Some(Err(e)),
        }
        let Ok(path) = directfs::open_node(dir, &cname, nix::fcntl::OFlag::O_PATH, 0) else {
            return Some(Ok(()));
        };
        match directfs::stat(path.as_fd()) {
            Ok(st) if st.st_mode & libc::S_IFMT == libc::S_IFLNK => {}
            _ => return Some(Ok(())),
        }
        Some(self.own_made(name, Made::Node(path), owner, 0).map(drop))
    }

    /// Gives a node the sentry just made its owner, and the set-ID bits of
    /// `mode` the owner change cleared (only a regular file's, through its
    /// read-write fd), as the gofer would; then an inode, reached from
    /// here. A node already known (the host put something else at the
    /// name since) is left alone.
    fn own_made(
        &self,
        name: &[u8],
        made: Made<'_>,
        owner: Owner,
        mode: u32,
    ) -> VfsResult<Arc<GoferInode>> {
        let fd = match &made {
            Made::File { file, .. } => *file,
            Made::Node(path) => path.as_fd(),
        };
        let mut st = directfs::stat(fd)?;
        if let Some(known) = self.fs.live(&st) {
            return Ok(known);
        }
        if (st.st_uid, st.st_gid) != (owner.uid, owner.gid) {
            directfs::chown(fd, Some(owner.uid), Some(owner.gid))?;
            st = directfs::stat(fd)?;
        }
        if mode & (libc::S_ISUID | libc::S_ISGID) != 0 && st.st_mode & 0o7777 != mode & 0o7777 {
            nix::sys::stat::fchmod(
                fd.as_raw_fd(),
                nix::sys::stat::Mode::from_bits_retain(mode & 0o7777),
            )?;
            st = directfs::stat(fd)?;
        }
        let stat = super::host::stat_from_host(&st);
        let path = match made {
            Made::File { path, .. } => path,
            Made::Node(path) => Some(path),
        };
        let fds = NodeFds { path, read: None };
        let node = self.fs.adopt_made(stat, fds);
        self.set_origin(&node, name);
        // Kept, as walked nodes are, so that the next lookup of the name
        // finds it live.
        keep_alive(&node);
        Ok(node)
    }

    /// Removes `name`, unless the gofer holds a handle on what it names.
    fn unlink_direct(&self, name: &[u8], remove_dir: bool) -> Option<VfsResult<()>> {
        let (dir, cname) = self.direct_dir(name)?;
        let _names = self.fs.lock_names();
        if let Ok(st) = directfs::stat_at(dir, &cname) {
            if self.fs.gofer_knows(&st) {
                return None;
            }
            keep_readable(&self.fs, dir, &cname, &st);
        }
        match directfs::unlink(dir, &cname, remove_dir) {
            Err(e) if gofer_may_differ(e) => None,
            done => Some(done),
        }
    }

    /// Renames `old` here to `new` in `new_dir`, unless the gofer holds a
    /// handle on either node.
    fn rename_direct(
        &self,
        old: &[u8],
        new_dir: &GoferInode,
        new: &[u8],
        flags: u32,
    ) -> Option<VfsResult<()>> {
        let (odir, oname) = self.direct_dir(old)?;
        let (ndir, nname) = new_dir.direct_dir(new)?;
        let _names = self.fs.lock_names();
        // (A missing source: the gofer answers.)
        let src = directfs::stat_at(odir, &oname).ok()?;
        if self.fs.gofer_knows(&src) {
            return None;
        }
        let victim = directfs::stat_at(ndir, &nname).ok();
        if victim.as_ref().is_some_and(|v| self.fs.gofer_knows(v)) {
            return None;
        }
        if let Some(v) = victim
            .as_ref()
            .filter(|_| flags & libc::RENAME_EXCHANGE == 0)
        {
            keep_readable(&self.fs, ndir, &nname, v);
        }
        match directfs::rename(odir, &oname, ndir, &nname, flags) {
            Ok(()) => {}
            Err(e) if gofer_may_differ(e) => return None,
            Err(e) => return Some(Err(e)),
        }
        if let Some(moved) = self.fs.live(&src) {
            new_dir.set_origin(&moved, new);
        }
        if flags & libc::RENAME_EXCHANGE != 0 {
            if let Some(moved) = victim.and_then(|v| self.fs.live(&v)) {
                self.set_origin(&moved, old);
            }
        }
        Some(Ok(()))
    }

    /// Changes this node's owner, mode and times through its own fd (a
    /// size change needs a writable fd: the gofer's).
    fn set_attr_direct(&self, attr: &SetAttr) -> Option<VfsResult<()>> {
        if !self.fs.writable || attr.size.is_some() {
            return None;
        }
        let fd = self.host_fd()?;
        if attr.mode.is_some() && self.ftype == FileType::Symlink {
            // Linux has no lchmod.
            return Some(Err(Errno::EOPNOTSUPP));
        }
        // Linux's order in notify_change: owner, then mode (chown clears
        // set-ID bits, a chmod after it may set them again), times. Every
        // step sets a value, so the gofer may redo them all.
        let steps = || -> Result<(), Errno> {
            if attr.uid.is_some() || attr.gid.is_some() {
                directfs::chown(fd, attr.uid, attr.gid)?;
            }
            if let Some(mode) = attr.mode {
                directfs::chmod(fd, mode)?;
            }
            if attr.atime.is_some() || attr.mtime.is_some() {
                let omit = (0, libc::UTIME_OMIT);
                directfs::set_times(fd, attr.atime.unwrap_or(omit), attr.mtime.unwrap_or(omit))?;
            }
            Ok(())
        };
        match steps() {
            Ok(()) => {}
            Err(e) if gofer_may_differ(e) => return None,
            Err(e) => return Some(Err(e)),
        }
        Some(directfs::stat(fd).map(|st| {
            self.set_stat(super::host::stat_from_host(&st));
        }))
    }

    /// Opens this regular file again at its origin, itself: the node
    /// found there must be this very inode. O_TRUNC is applied after that
    /// check, never to another file.
    fn open_direct(&self, flags: i32) -> Option<VfsResult<OwnedFd>> {
        if !self.fs.writable || self.ftype != FileType::Regular {
            return None;
        }
        let (parent, name) = self
            .origin
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()?;
        let (dir, cname) = parent.direct_dir(&name)?;
        if flags & libc::O_TRUNC != 0 && flags & libc::O_ACCMODE == libc::O_RDONLY {
            return None;
        }
        // The origin is a hint: whatever holds the name now must be this
        // very regular file, checked before the open (so that nothing else,
        // a FIFO or a device the host put there, is opened at all) and
        // after it (reopen_regular).
        let me = self.known_stat();
        let id = (me.dev, me.ino);
        let found = directfs::stat_at(dir, &cname).ok()?;
        if found.st_mode & libc::S_IFMT != libc::S_IFREG || (found.st_dev, found.st_ino) != id {
            return None;
        }
        let pass = libc::O_ACCMODE | libc::O_APPEND;
        let oflags = nix::fcntl::OFlag::from_bits_truncate(flags & pass);
        let file = directfs::reopen_regular(dir, &cname, id, oflags)?;
        if flags & libc::O_NONBLOCK == 0 {
            let blocking = nix::fcntl::OFlag::from_bits_truncate(flags & pass);
            if let Err(e) =
                nix::fcntl::fcntl(file.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(blocking))
            {
                return Some(Err(e));
            }
        }
        if flags & libc::O_TRUNC != 0 {
            if let Err(e) = nix::unistd::ftruncate(&file, 0) {
                return Some(Err(e));
            }
        }
        Some(Ok(file))
    }
}

/// Before the sentry itself takes away the name of a live regular file
/// (`st`, at `name` in `dir`) that has no gofer handle: gives the node a
/// read fd of its own, so that the sandbox can still open it read-only
/// after (through /proc/self/fd/N, as Linux allows for an unlinked file);
/// without a handle or a name nothing else could reach it again.
fn keep_readable(fs: &GoferFs, dir: std::os::fd::BorrowedFd<'_>, name: &CStr, st: &libc::stat) {
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return;
    }
    let Some(node) = fs.live(st) else {
        return;
    };
    if node.handle.get().is_some() || node.read_fd.get().is_some() || !fd_room() {
        return;
    }
    let id = (st.st_dev, st.st_ino);
    let Some(fd) = directfs::reopen_regular(dir, name, id, nix::fcntl::OFlag::O_RDONLY) else {
        return;
    };
    if node.read_fd.set(Arc::new(fd)).is_ok() {
        HOST_FDS.fetch_add(1, Ordering::Relaxed);
    }
}

/// A node the sentry just made, as `own_made` takes it.
enum Made<'a> {
    /// A regular file: its read-write fd, and its `O_PATH` fd to keep
    /// (None where the host has no open_tree).
    File {
        file: std::os::fd::BorrowedFd<'a>,
        path: Option<OwnedFd>,
    },
    /// A directory or symlink: its `O_PATH` fd, kept.
    Node(OwnedFd),
}

/// Room for one more node fd in the budget, making some by letting the
/// oldest kept nodes go if need be.
fn fd_room() -> bool {
    if HOST_FDS.load(Ordering::Relaxed) < host_fd_budget() {
        return true;
    }
    let shed: Vec<_> = {
        let mut kept = KEPT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = kept.len().min(64);
        kept.drain(..n).collect()
    };
    // Dropped outside the lock (see keep_alive).
    drop(shed);
    HOST_FDS.load(Ordering::Relaxed) < host_fd_budget()
}

/// Whether the gofer might succeed where the sentry's own host call
/// failed: a refusal of the sentry (privilege, a host too old for the
/// call) rather than an answer about the tree, which the gofer would get
/// too.
fn gofer_may_differ(e: Errno) -> bool {
    matches!(
        e,
        Errno::EPERM | Errno::EACCES | Errno::ENOSYS | Errno::EINVAL | Errno::EBADF
    )
}

impl Inode for GoferInode {
    fn stat(&self) -> VfsResult<FileStat> {
        // A regular file's size may change under an immutable tree too
        // (`rvisor do` over the host's root, reading a growing log), so
        // regular files are always asked; other nodes of such a tree keep
        // the stat of their walk, as every node of a frozen one does.
        let fd = match self.fs.caching {
            Caching::Revalidate => self.host_fd(),
            Caching::Immutable => self.read_fd.get().map(|fd| fd.as_fd()),
            Caching::Frozen => None,
        };
        // A node stat'ed or looked up on the host earlier in this same
        // system call, which has changed nothing in the tree since: as
        // fresh as asking again. A walk checks each directory's
        // permissions right after its lookup, and stat(2) of a path asks
        // for what its last lookup just saw.
        let read_now = self.stat_read_now();
        if let Some(fd) = fd {
            if let Some((st, _)) = read_now {
                return Ok(st);
            }
            return self.read_host_stat(fd, None).map(|(st, _)| st);
        }
        // Looked up on the host earlier in this same system call (the
        // stat(2) of a path): as fresh as asking the gofer now would be.
        if let Some((st, _)) = read_now {
            return Ok(st);
        }
        if self.fs.writable {
            let st = self.client().stat(self.handle()?)?;
            self.set_stat(st.clone());
            return Ok(st);
        }
        Ok(self.known_stat())
    }

    /// A watched directory's mode and owner change only with an event
    /// (`FAN_ATTRIB`): its stat read since its mark's attrs generation
    /// last moved holds for them, without asking the host. (Its entries
    /// changing moves its mtime, size and link count, not those.)
    fn access_stat(&self) -> VfsResult<FileStat> {
        let fd = match self.path_fd.get() {
            Some(fd)
                if self.fs.caching == Caching::Revalidate && self.ftype == FileType::Directory =>
            {
                fd
            }
            _ => return self.stat(),
        };
        let Some(mark) = self.watched(fd.as_fd()) else {
            return self.stat();
        };
        let generation = mark.attrs();
        {
            let known = self.lock_stat();
            if known.generation == Some(generation) {
                return Ok(known.stat.clone());
            }
        }
        let (st, _) = self.read_host_stat(fd.as_fd(), Some(generation))?;
        Ok(st)
    }

    fn file_type(&self) -> FileType {
        self.ftype
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn lookup(&self, name: &[u8]) -> VfsResult<Arc<dyn Inode>> {
        if self.fs.caching == Caching::Revalidate {
            return Ok(self.lookup_revalidating(name)?);
        }
        let mut children = self
            .children
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match children.get(name) {
            Some(Some(node)) => return Ok(node.clone()),
            Some(None) => return Err(Errno::ENOENT),
            None => {}
        }
        match self.walk(name) {
            Ok(node) => {
                children.insert(name.to_vec(), Some(node.clone()));
                Ok(node)
            }
            Err(Errno::ENOENT) => {
                if children.len() >= MAX_NEGATIVE_ENTRIES {
                    children.retain(|_, c| c.is_some());
                }
                children.insert(name.to_vec(), None);
                Err(Errno::ENOENT)
            }
            Err(e) => Err(e),
        }
    }

    fn readdir(&self) -> VfsResult<Vec<DirEntry>> {
        if let Some(ents) = self.readdir_direct() {
            return Ok(ents);
        }
        let ents = self.client().getdents(self.handle()?)?;
        Ok(ents
            .into_iter()
            .map(|e| DirEntry {
                name: e.name,
                ino: e.ino,
                ftype: FileType::from_dtype(e.d_type),
            })
            .collect())
    }

    fn readlink(&self) -> VfsResult<Vec<u8>> {
        if self.ftype != FileType::Symlink {
            return Err(Errno::EINVAL);
        }
        let mut cached = self.link.lock().map_err(|_| Errno::EIO)?;
        if let Some(l) = cached.as_ref() {
            return Ok(l.clone());
        }
        // Through the link's own fd when it has one (an empty path names
        // the link itself), else through the gofer.
        let l = match self.path_fd.get() {
            Some(fd) => nix::fcntl::readlinkat(Some(fd.as_raw_fd()), c"")
                .map(std::os::unix::ffi::OsStringExt::into_vec)
                .or_else(|_| self.client().readlink(self.handle()?))?,
            None => self.client().readlink(self.handle()?)?,
        };
        *cached = Some(l.clone());
        Ok(l)
    }

    fn open(&self, flags: i32) -> VfsResult<Arc<dyn FileOps>> {
        match self.ftype {
            // Directories are read through readdir.
            FileType::Directory => {
                return Ok(Arc::new(super::simple::DirFile { stat: self.stat()? }))
            }
            FileType::Regular => {}
            FileType::Symlink => return Err(Errno::ELOOP),
            FileType::Fifo => {
                let stat = self.stat()?;
                return self.fs.fifo(&stat)?.open(flags, stat);
            }
            FileType::Socket => return Err(Errno::ENXIO),
            // Device nodes in the image reach only the sandbox's own devices.
            FileType::CharDev | FileType::BlockDev => {
                return super::dev::open_by_number(self.stat()?.rdev, flags);
            }
        }
        let acc = flags & libc::O_ACCMODE;
        let writing = acc != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
        if writing {
            self.begin_change()?;
        }
        if !writing {
            if let Some(fd) = self.read_fd.get() {
                return Ok(Arc::new(HostFile::shared(fd.clone(), HostKind::File)));
            }
        }
        // The create that made this file opened it read-write already; the
        // first open after it takes that fd, or drops it when it needs
        // flags of its own.
        let fresh = self.fresh_fd.lock().map_err(|_| Errno::EIO)?.take();
        if let Some(fd) = fresh {
            if flags & (libc::O_APPEND | libc::O_TRUNC) == 0 {
                return Ok(Arc::new(HostFile::new(fd, HostKind::File)));
            }
        }
        let fd = match self.open_direct(flags) {
            Some(opened) => opened?,
            None => {
                let pass = libc::O_ACCMODE | libc::O_NONBLOCK | libc::O_APPEND | libc::O_TRUNC;
                self.client().open(self.handle()?, flags & pass)?
            }
        };
        Ok(Arc::new(HostFile::new(fd, HostKind::File)))
    }

    fn create(&self, name: &[u8], mode: u32, ctx: CreateCtx) -> VfsResult<Arc<dyn Inode>> {
        self.begin_change()?;
        let (mode, owner) = self.new_owner(libc::S_IFREG | (mode & 0o7777), ctx)?;
        if let Some(made) = self.create_direct(name, mode, owner) {
            return Ok(made?);
        }
        let (handle, stat, fd) =
            self.client()
                .create(self.handle()?, name, libc::O_RDWR, mode & 0o7777, owner)?;
        let node = self.fs.adopt(handle, stat, NodeFds::default());
        self.set_origin(&node, name);
        *node.fresh_fd.lock().map_err(|_| Errno::EIO)? = Some(fd);
        Ok(node)
    }

    fn create_tmpfile(
        &self,
        mode: u32,
        ctx: CreateCtx,
        linkable: bool,
    ) -> VfsResult<Arc<dyn Inode>> {
        self.begin_change()?;
        let (mode, owner) = self.new_owner(libc::S_IFREG | (mode & 0o7777), ctx)?;
        let flags = libc::O_RDWR | if linkable { 0 } else { libc::O_EXCL };
        let (handle, stat, fd) =
            self.client()
                .create_tmpfile(self.handle()?, flags, mode & 0o7777, owner)?;
        let node = self.fs.adopt(handle, stat, NodeFds::default());
        *node.fresh_fd.lock().map_err(|_| Errno::EIO)? = Some(fd);
        Ok(node)
    }

    fn mknod(&self, name: &[u8], mode: u32, _rdev: u64, ctx: CreateCtx) -> VfsResult<()> {
        self.begin_change()?;
        let (mode, owner) = self.new_owner(mode, ctx)?;
        let (handle, stat) = self.client().mknod(self.handle()?, name, mode, owner)?;
        drop(self.fs.adopt(handle, stat, NodeFds::default()));
        Ok(())
    }

    fn mkdir(&self, name: &[u8], mode: u32, ctx: CreateCtx) -> VfsResult<()> {
        self.begin_change()?;
        let (mode, owner) = self.new_owner(libc::S_IFDIR | (mode & 0o7777), ctx)?;
        if let Some(made) = self.mkdir_direct(name, mode, owner) {
            return made;
        }
        let (handle, stat) = self
            .client()
            .mkdir(self.handle()?, name, mode & 0o7777, owner)?;
        drop(self.fs.adopt(handle, stat, NodeFds::default()));
        Ok(())
    }

    fn symlink(&self, name: &[u8], target: &[u8], ctx: CreateCtx) -> VfsResult<()> {
        self.begin_change()?;
        let (_, owner) = self.new_owner(libc::S_IFLNK | 0o777, ctx)?;
        if let Some(made) = self.symlink_direct(name, target, owner) {
            return made;
        }
        let (handle, stat) = self.client().symlink(self.handle()?, name, target, owner)?;
        drop(self.fs.adopt(handle, stat, NodeFds::default()));
        Ok(())
    }

    fn link(&self, name: &[u8], target: &Arc<dyn Inode>) -> VfsResult<()> {
        self.begin_change()?;
        let target = self.same_fs(target)?;
        let (handle, stat) = self.client().link(self.handle()?, name, target.handle()?)?;
        drop(self.fs.adopt(handle, stat, NodeFds::default()));
        Ok(())
    }

    fn unlinked(&self) -> bool {
        self.stat().is_ok_and(|st| st.nlink == 0)
    }

    fn unlink(&self, name: &[u8]) -> VfsResult<()> {
        self.begin_change()?;
        if let Some(done) = self.unlink_direct(name, false) {
            return done;
        }
        self.client().unlink(self.handle()?, name, false)?;
        Ok(())
    }

    fn rmdir(&self, name: &[u8]) -> VfsResult<()> {
        self.begin_change()?;
        if let Some(done) = self.unlink_direct(name, true) {
            return done;
        }
        self.client().unlink(self.handle()?, name, true)?;
        Ok(())
    }

    fn rename(&self, old: &[u8], new_dir: &Arc<dyn Inode>, new: &[u8]) -> VfsResult<()> {
        self.begin_change()?;
        let new_dir = self.same_fs(new_dir)?;
        if let Some(done) = self.rename_direct(old, new_dir, new, 0) {
            return done;
        }
        self.client()
            .rename(self.handle()?, old, new_dir.handle()?, new, 0)
    }

    fn exchange(&self, old: &[u8], new_dir: &Arc<dyn Inode>, new: &[u8]) -> VfsResult<()> {
        self.begin_change()?;
        let new_dir = self.same_fs(new_dir)?;
        let flags = libc::RENAME_EXCHANGE;
        if let Some(done) = self.rename_direct(old, new_dir, new, flags) {
            return done;
        }
        self.client()
            .rename(self.handle()?, old, new_dir.handle()?, new, flags)
    }

    fn set_attr(&self, attr: &SetAttr) -> VfsResult<()> {
        self.begin_change()?;
        if let Some(done) = self.set_attr_direct(attr) {
            return done;
        }
        let st = self.client().set_stat(self.handle()?, *attr)?;
        self.set_stat(st);
        Ok(())
    }

    fn get_xattr(&self, name: &[u8]) -> VfsResult<Vec<u8>> {
        self.client().get_xattr(self.handle()?, name)
    }

    fn set_xattr(&self, name: &[u8], value: &[u8], flags: i32) -> VfsResult<()> {
        self.begin_change()?;
        self.client().set_xattr(self.handle()?, name, value, flags)
    }

    fn list_xattr(&self) -> VfsResult<Vec<Vec<u8>>> {
        self.client().list_xattr(self.handle()?)
    }

    fn remove_xattr(&self, name: &[u8]) -> VfsResult<()> {
        self.begin_change()?;
        self.client().remove_xattr(self.handle()?, name)
    }

    fn statfs(&self) -> Option<FsStat> {
        if let Some(fd) = self.host_fd() {
            if let Ok(st) = directfs::fs_stat(fd) {
                return Some(st);
            }
        }
        self.client().statfs(self.handle().ok()?).ok()
    }

    fn read_only(&self) -> bool {
        !self.fs.writable
    }
}

#[cfg(test)]
mod tests {
    use super::fd_budget_of;

    #[test]
    fn walk_fd_budget_leaves_the_application_its_share() {
        // Half, when 8192 fds remain for the application's files...
        assert_eq!(fd_budget_of(20_000), 10_000);
        assert_eq!(fd_budget_of(1 << 20), 1 << 19);
        // ...fewer, so that they do...
        assert_eq!(fd_budget_of(12_000), 12_000 - 8192);
        // ...but a quarter of a low limit at least.
        assert_eq!(fd_budget_of(1024), 256);
    }
}
