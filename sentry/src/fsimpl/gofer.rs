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
//! A walk also brings the node's own `O_PATH` host fd and, for a regular
//! file, a read-only host fd of it (while the sandbox holds fewer than
//! [`host_fd_budget`] of them). This is gVisor's directfs, read side:
//! - a stat is an `fstat` of one of them, with no round trip to the gofer
//!   (the host, or another sandbox sharing a volume, may change a node at
//!   any time, so a bind mount's nodes are never answered from a cache);
//! - every read-only open of a regular file shares its read fd;
//! - a lookup in a bind-mounted directory is a single-component
//!   `fstatat(dir_fd, name, AT_SYMLINK_NOFOLLOW)`: a miss answers ENOENT
//!   and a hit on a live inode returns it, both without the gofer, which
//!   is asked only for nodes the sandbox has not met yet;
//! - a directory is listed on the host, through `openat(dir_fd, ".")`.
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
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use gofer::client::GoferClient;
use gofer::protocol::{Handle, Owner, ROOT_HANDLE};
use nix::errno::Errno;

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

/// How many walk fds the sentry keeps at most: a quarter of its fd limit,
/// so the application's own files (which also live in the sentry's fd
/// table) never run short. Past it, walks fall back to plain handles.
fn host_fd_budget() -> usize {
    static BUDGET: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BUDGET.get_or_init(|| {
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map(|(soft, _)| (soft / 4).min(1 << 20) as usize)
            .unwrap_or(256)
    })
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
            if live.handle != handle {
                self.client.close_later(handle);
            }
            *live.lock_stat() = stat;
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
        HOST_FDS.fetch_add(fds.count(), Ordering::Relaxed);
        let node = Arc::new(GoferInode {
            fs: self.clone(),
            handle,
            ftype: FileType::from_mode(stat.mode),
            stat: Mutex::new(stat),
            link: Mutex::new(None),
            fresh_fd: Mutex::new(None),
            seen_in: std::sync::atomic::AtomicU64::new(u64::MAX),
            path_fd: fds.path.map(OnceLock::from).unwrap_or_default(),
            read_fd: fds
                .read
                .map(|fd| OnceLock::from(Arc::new(fd)))
                .unwrap_or_default(),
            children: Mutex::new(HashMap::new()),
        });
        // Dead entries go when the map would grow, keeping it bounded by
        // the number of live inodes (times two).
        if nodes.len() >= 64 && nodes.len().is_power_of_two() {
            nodes.retain(|_, w| w.strong_count() > 0);
        }
        nodes.insert(key, Arc::downgrade(&node));
        node
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
        let seen = node.lock_stat().clone();
        let same = seen.mode & libc::S_IFMT == st.st_mode & libc::S_IFMT
            && seen.ctime_sec == st.st_ctime
            && seen.ctime_nsec == st.st_ctime_nsec;
        same.then_some(node)
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
    handle: Handle,
    ftype: FileType,
    /// The stat from the last walk or change (see the module notes).
    stat: Mutex<FileStat>,
    link: Mutex<Option<Vec<u8>>>,
    /// The fd a create just opened, for the open that follows it.
    fresh_fd: Mutex<Option<OwnedFd>>,
    /// The system call (`vfs::current_syscall`) in which a direct lookup
    /// last read its stat from the host: a stat in the same call uses it.
    seen_in: std::sync::atomic::AtomicU64,
    /// The node's own `O_PATH` host fd, from its walk.
    /// (Set once: by the walk that made the inode, or by a later walk
    /// when the first came without fds, past the budget.)
    path_fd: OnceLock<OwnedFd>,
    /// A regular file's read-only host fd, from its walk.
    read_fd: OnceLock<Arc<OwnedFd>>,
    /// A directory's entries as walked, misses as `None` (only with
    /// [`Caching::Immutable`]).
    children: Mutex<HashMap<Vec<u8>, Option<Arc<GoferInode>>>>,
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
        self.fs.client.close_later(self.handle);
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
    fn lock_stat(&self) -> MutexGuard<'_, FileStat> {
        self.stat
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn client(&self) -> &GoferClient {
        &self.fs.client
    }

    /// One walk through the gofer.
    fn walk(&self, name: &[u8]) -> VfsResult<Arc<GoferInode>> {
        if HOST_FDS.load(Ordering::Relaxed) < host_fd_budget() {
            let walked = self.client().walk_open(self.handle, name)?;
            let fds = NodeFds {
                path: walked.path_fd,
                read: walked.read_fd,
            };
            return Ok(self.fs.adopt(walked.handle, walked.stat, fds));
        }
        let (handle, stat) = self.client().walk(self.handle, name)?;
        Ok(self.fs.adopt(handle, stat, NodeFds::default()))
    }

    /// A host fd of this very node, if it holds one.
    fn host_fd(&self) -> Option<std::os::fd::RawFd> {
        self.read_fd
            .get()
            .map(|fd| &**fd)
            .or(self.path_fd.get())
            .map(AsRawFd::as_raw_fd)
    }

    /// A lookup on a tree the host may change: every answer comes from the
    /// host at the time of the call. Nodes walked here are kept alive for
    /// a while ([`KEPT`]), so that the next lookup's `fstatat` finds them
    /// live; a name is never answered without that check.
    fn lookup_revalidating(&self, name: &[u8]) -> VfsResult<Arc<GoferInode>> {
        if let Some(found) = self.lookup_direct(name) {
            return found;
        }
        let node = self.walk(name)?;
        if self.path_fd.get().is_some() {
            keep_alive(&node);
        }
        Ok(node)
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
        *node.lock_stat() = super::host::stat_from_host(&st);
        node.seen_in
            .store(crate::vfs::current_syscall(), Ordering::Relaxed);
        Some(Ok(node))
    }

    fn check_writable(&self) -> VfsResult<()> {
        if self.fs.writable {
            Ok(())
        } else {
            Err(Errno::EROFS)
        }
    }

    /// Owner of a node created in this directory by `ctx`.
    fn new_owner(&self, mode: u32, ctx: CreateCtx) -> VfsResult<(u32, Owner)> {
        let (mode, ctx) = init_owner(&self.stat()?, mode, ctx);
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
}

impl Inode for GoferInode {
    fn stat(&self) -> VfsResult<FileStat> {
        // A regular file's size may change under an immutable tree too
        // (`rvisor do` over the host's root, reading a growing log), so
        // regular files are always asked; other nodes of such a tree keep
        // the stat of their walk, as every node of a frozen one does.
        let fd = match self.fs.caching {
            Caching::Revalidate => self.host_fd(),
            Caching::Immutable => self.read_fd.get().map(|fd| fd.as_raw_fd()),
            Caching::Frozen => None,
        };
        // (0: not in a system call, when nothing counts as this call.)
        let now = crate::vfs::current_syscall();
        let seen_now = now != 0 && self.seen_in.load(Ordering::Relaxed) == now;
        if let Some(fd) = fd {
            // A directory stat'ed or looked up on the host earlier in this
            // same system call (a walk checks each directory's permissions,
            // after its lookup): as fresh. Not a file: the call may have
            // changed it since (open's O_TRUNC).
            if self.ftype == FileType::Directory && seen_now {
                return Ok(self.lock_stat().clone());
            }
            let st = nix::sys::stat::fstat(fd)?;
            let st = super::host::stat_from_host(&st);
            *self.lock_stat() = st.clone();
            self.seen_in.store(now, Ordering::Relaxed);
            return Ok(st);
        }
        // Looked up on the host earlier in this same system call (the
        // stat(2) of a path): as fresh as asking the gofer now would be.
        if seen_now {
            return Ok(self.lock_stat().clone());
        }
        if self.fs.writable {
            let st = self.client().stat(self.handle)?;
            *self.lock_stat() = st.clone();
            return Ok(st);
        }
        Ok(self.lock_stat().clone())
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
        let ents = self.client().getdents(self.handle)?;
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
        let l = self.client().readlink(self.handle)?;
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
            self.check_writable()?;
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
        let pass = libc::O_ACCMODE | libc::O_NONBLOCK | libc::O_APPEND | libc::O_TRUNC;
        let fd = self.client().open(self.handle, flags & pass)?;
        Ok(Arc::new(HostFile::new(fd, HostKind::File)))
    }

    fn create(&self, name: &[u8], mode: u32, ctx: CreateCtx) -> VfsResult<Arc<dyn Inode>> {
        self.check_writable()?;
        let (mode, owner) = self.new_owner(libc::S_IFREG | (mode & 0o7777), ctx)?;
        let (handle, stat, fd) =
            self.client()
                .create(self.handle, name, libc::O_RDWR, mode & 0o7777, owner)?;
        let node = self.fs.adopt(handle, stat, NodeFds::default());
        *node.fresh_fd.lock().map_err(|_| Errno::EIO)? = Some(fd);
        Ok(node)
    }

    fn create_tmpfile(
        &self,
        mode: u32,
        ctx: CreateCtx,
        linkable: bool,
    ) -> VfsResult<Arc<dyn Inode>> {
        self.check_writable()?;
        let (mode, owner) = self.new_owner(libc::S_IFREG | (mode & 0o7777), ctx)?;
        let flags = libc::O_RDWR | if linkable { 0 } else { libc::O_EXCL };
        let (handle, stat, fd) =
            self.client()
                .create_tmpfile(self.handle, flags, mode & 0o7777, owner)?;
        let node = self.fs.adopt(handle, stat, NodeFds::default());
        *node.fresh_fd.lock().map_err(|_| Errno::EIO)? = Some(fd);
        Ok(node)
    }

    fn mknod(&self, name: &[u8], mode: u32, _rdev: u64, ctx: CreateCtx) -> VfsResult<()> {
        self.check_writable()?;
        let (mode, owner) = self.new_owner(mode, ctx)?;
        let (handle, stat) = self.client().mknod(self.handle, name, mode, owner)?;
        drop(self.fs.adopt(handle, stat, NodeFds::default()));
        Ok(())
    }

    fn mkdir(&self, name: &[u8], mode: u32, ctx: CreateCtx) -> VfsResult<()> {
        self.check_writable()?;
        let (mode, owner) = self.new_owner(libc::S_IFDIR | (mode & 0o7777), ctx)?;
        let (handle, stat) = self
            .client()
            .mkdir(self.handle, name, mode & 0o7777, owner)?;
        drop(self.fs.adopt(handle, stat, NodeFds::default()));
        Ok(())
    }

    fn symlink(&self, name: &[u8], target: &[u8], ctx: CreateCtx) -> VfsResult<()> {
        self.check_writable()?;
        let (_, owner) = self.new_owner(libc::S_IFLNK | 0o777, ctx)?;
        let (handle, stat) = self.client().symlink(self.handle, name, target, owner)?;
        drop(self.fs.adopt(handle, stat, NodeFds::default()));
        Ok(())
    }

    fn link(&self, name: &[u8], target: &Arc<dyn Inode>) -> VfsResult<()> {
        self.check_writable()?;
        let target = self.same_fs(target)?;
        let (handle, stat) = self.client().link(self.handle, name, target.handle)?;
        drop(self.fs.adopt(handle, stat, NodeFds::default()));
        Ok(())
    }

    fn unlinked(&self) -> bool {
        self.stat().is_ok_and(|st| st.nlink == 0)
    }

    fn unlink(&self, name: &[u8]) -> VfsResult<()> {
        self.check_writable()?;
        self.client().unlink(self.handle, name, false)?;
        Ok(())
    }

    fn rmdir(&self, name: &[u8]) -> VfsResult<()> {
        self.check_writable()?;
        self.client().unlink(self.handle, name, true)?;
        Ok(())
    }

    fn rename(&self, old: &[u8], new_dir: &Arc<dyn Inode>, new: &[u8]) -> VfsResult<()> {
        self.check_writable()?;
        let new_dir = self.same_fs(new_dir)?;
        self.client()
            .rename(self.handle, old, new_dir.handle, new, 0)
    }

    fn set_attr(&self, attr: &SetAttr) -> VfsResult<()> {
        self.check_writable()?;
        let st = self.client().set_stat(self.handle, *attr)?;
        *self.lock_stat() = st;
        Ok(())
    }

    fn get_xattr(&self, name: &[u8]) -> VfsResult<Vec<u8>> {
        self.client().get_xattr(self.handle, name)
    }

    fn set_xattr(&self, name: &[u8], value: &[u8], flags: i32) -> VfsResult<()> {
        self.check_writable()?;
        self.client().set_xattr(self.handle, name, value, flags)
    }

    fn list_xattr(&self) -> VfsResult<Vec<Vec<u8>>> {
        self.client().list_xattr(self.handle)
    }

    fn remove_xattr(&self, name: &[u8]) -> VfsResult<()> {
        self.check_writable()?;
        self.client().remove_xattr(self.handle, name)
    }

    fn statfs(&self) -> Option<FsStat> {
        self.client().statfs(self.handle).ok()
    }

    fn read_only(&self) -> bool {
        !self.fs.writable
    }
}
