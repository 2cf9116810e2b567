//! The sentry's virtual filesystem: inodes, open file descriptions, mounts
//! and path resolution (gVisor's `pkg/sentry/vfs`).
//!
//! Path walks happen here, one component at a time, with symlinks and `..`
//! resolved by the sentry itself; filesystems (`fsimpl`) only ever see
//! single-component lookups. A [`Location`] keeps the whole chain of
//! directories from the root, so `..` never asks a filesystem anything and
//! can never climb above the sandbox's root.

pub mod file;
pub mod inotify;
pub mod lock;
pub mod path;
pub mod text;

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use nix::errno::Errno;

pub use file::{FileOps, MmapBacking, OpenFile};
pub use gofer::protocol::FileStat;
pub use path::{Location, Resolve};

pub type VfsResult<T> = Result<T, Errno>;

/// Longest path the syscalls accept (Linux's PATH_MAX, with the NUL).
pub const PATH_MAX: usize = 4096;
/// Longest single component (NAME_MAX).
pub const NAME_MAX: usize = 255;
/// Symlinks followed in one resolution before ELOOP (Linux's MAXSYMLINKS).
pub const MAX_SYMLINKS: u32 = 40;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum FileType {
    Regular,
    Directory,
    Symlink,
    CharDev,
    BlockDev,
    Fifo,
    Socket,
}

impl FileType {
    pub fn from_mode(mode: u32) -> FileType {
        match mode & libc::S_IFMT {
            libc::S_IFDIR => FileType::Directory,
            libc::S_IFLNK => FileType::Symlink,
            libc::S_IFCHR => FileType::CharDev,
            libc::S_IFBLK => FileType::BlockDev,
            libc::S_IFIFO => FileType::Fifo,
            libc::S_IFSOCK => FileType::Socket,
            _ => FileType::Regular,
        }
    }

    pub fn mode_bits(self) -> u32 {
        match self {
            FileType::Regular => libc::S_IFREG,
            FileType::Directory => libc::S_IFDIR,
            FileType::Symlink => libc::S_IFLNK,
            FileType::CharDev => libc::S_IFCHR,
            FileType::BlockDev => libc::S_IFBLK,
            FileType::Fifo => libc::S_IFIFO,
            FileType::Socket => libc::S_IFSOCK,
        }
    }

    /// The `d_type` of getdents64.
    pub fn dtype(self) -> u8 {
        match self {
            FileType::Regular => libc::DT_REG,
            FileType::Directory => libc::DT_DIR,
            FileType::Symlink => libc::DT_LNK,
            FileType::CharDev => libc::DT_CHR,
            FileType::BlockDev => libc::DT_BLK,
            FileType::Fifo => libc::DT_FIFO,
            FileType::Socket => libc::DT_SOCK,
        }
    }

    pub fn from_dtype(d: u8) -> FileType {
        match d {
            libc::DT_DIR => FileType::Directory,
            libc::DT_LNK => FileType::Symlink,
            libc::DT_CHR => FileType::CharDev,
            libc::DT_BLK => FileType::BlockDev,
            libc::DT_FIFO => FileType::Fifo,
            libc::DT_SOCK => FileType::Socket,
            _ => FileType::Regular,
        }
    }
}

#[derive(Clone, Debug)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub ino: u64,
    pub ftype: FileType,
}

/// Who creates a file, for the new inode's owner and mode.
#[derive(Clone, Copy, Debug)]
pub struct CreateCtx {
    pub uid: u32,
    pub gid: u32,
    /// CAP_FSETID: keeps a set-group-ID bit the creator's group would lose.
    pub privileged: bool,
}

/// Owner and mode of a node created in directory `dir` (Linux's
/// inode_init_owner): a set-group-ID directory hands down its group (and,
/// to directories, the bit itself); a non-directory keeps S_ISGID only if
/// its creator is in that group or privileged.
pub fn init_owner(dir: &FileStat, mut mode: u32, mut ctx: CreateCtx) -> (u32, CreateCtx) {
    let creator_gid = ctx.gid;
    if dir.mode & libc::S_ISGID != 0 {
        ctx.gid = dir.gid;
        if mode & libc::S_IFMT == libc::S_IFDIR {
            mode |= libc::S_ISGID;
        }
    }
    if mode & libc::S_IFMT != libc::S_IFDIR
        && mode & libc::S_ISGID != 0
        && mode & libc::S_IXGRP != 0
        && ctx.gid != creator_gid
        && !ctx.privileged
    {
        mode &= !libc::S_ISGID;
    }
    (mode, ctx)
}

/// What statfs(2) reports for a filesystem that knows (a gofer mount
/// asks the host); others get synthetic values.
pub use gofer::protocol::FsStat;

/// Attribute changes (chmod, chown, utimensat, truncate): the gofer
/// protocol's own type, so a gofer mount passes them on as they are.
pub use gofer::protocol::SetStat as SetAttr;

/// A filesystem object. Directory operations take single names only.
pub trait Inode: Send + Sync {
    fn stat(&self) -> VfsResult<FileStat>;
    /// The stat a permission check reads, of which only the mode and
    /// owner count (a walk's search permission, the write permission on a
    /// directory an entry is made or removed in, the group a new node
    /// inherits): the node's stat, unless the filesystem can tell those
    /// are unchanged without asking (a watched bind-mounted directory).
    fn access_stat(&self) -> VfsResult<FileStat> {
        self.stat()
    }
    fn file_type(&self) -> FileType;
    fn as_any(&self) -> &dyn Any;

    fn lookup(&self, _name: &[u8]) -> VfsResult<Arc<dyn Inode>> {
        Err(Errno::ENOTDIR)
    }
    /// Entries other than "." and "..".
    fn readdir(&self) -> VfsResult<Vec<DirEntry>> {
        Err(Errno::ENOTDIR)
    }
    fn readlink(&self) -> VfsResult<Vec<u8>> {
        Err(Errno::EINVAL)
    }
    /// A /proc magic link (openat2's RESOLVE_NO_MAGICLINKS refuses them).
    fn is_magic_link(&self) -> bool {
        false
    }
    /// Where a magic link leads, as Linux jumps there rather than walking
    /// its text: the very file an fd names, even deleted or nameless.
    /// None: follow the text.
    fn magic_target(&self) -> Option<Location> {
        None
    }
    /// Opens the inode; `flags` are the open(2) flags already checked by the VFS.
    fn open(&self, flags: i32) -> VfsResult<Arc<dyn FileOps>>;
    fn create(&self, _name: &[u8], _mode: u32, _ctx: CreateCtx) -> VfsResult<Arc<dyn Inode>> {
        Err(Errno::EACCES)
    }
    /// O_TMPFILE: a regular file in this directory's filesystem with no
    /// name; `linkable` unless O_EXCL (then linkat can never name it).
    fn create_tmpfile(
        &self,
        _mode: u32,
        _ctx: CreateCtx,
        _linkable: bool,
    ) -> VfsResult<Arc<dyn Inode>> {
        Err(Errno::EOPNOTSUPP)
    }
    /// mknod of a FIFO, socket or device node (`mode` carries the type).
    fn mknod(&self, _name: &[u8], _mode: u32, _rdev: u64, _ctx: CreateCtx) -> VfsResult<()> {
        Err(Errno::EPERM)
    }
    fn mkdir(&self, _name: &[u8], _mode: u32, _ctx: CreateCtx) -> VfsResult<()> {
        Err(Errno::EACCES)
    }
    fn symlink(&self, _name: &[u8], _target: &[u8], _ctx: CreateCtx) -> VfsResult<()> {
        Err(Errno::EACCES)
    }
    /// Makes `name` a new hard link to `target`.
    fn link(&self, _name: &[u8], _target: &Arc<dyn Inode>) -> VfsResult<()> {
        Err(Errno::EPERM)
    }
    /// Whether the inode has been removed from the tree (a deleted cwd).
    fn unlinked(&self) -> bool {
        false
    }
    fn unlink(&self, _name: &[u8]) -> VfsResult<()> {
        Err(Errno::EACCES)
    }
    fn rmdir(&self, _name: &[u8]) -> VfsResult<()> {
        Err(Errno::EACCES)
    }
    fn rename(&self, _old: &[u8], _new_dir: &Arc<dyn Inode>, _new: &[u8]) -> VfsResult<()> {
        Err(Errno::EXDEV)
    }
    /// renameat2's RENAME_EXCHANGE: `old` here and `new` in `new_dir`
    /// (both existing) swap places. Filesystems that cannot answer EINVAL,
    /// as Linux's do.
    fn exchange(&self, _old: &[u8], _new_dir: &Arc<dyn Inode>, _new: &[u8]) -> VfsResult<()> {
        Err(Errno::EINVAL)
    }
    fn set_attr(&self, _attr: &SetAttr) -> VfsResult<()> {
        Err(Errno::EPERM)
    }
    /// Extended attributes (full names, "user.x"); filesystems without
    /// them answer EOPNOTSUPP.
    fn get_xattr(&self, _name: &[u8]) -> VfsResult<Vec<u8>> {
        Err(Errno::EOPNOTSUPP)
    }
    /// `flags`: XATTR_CREATE / XATTR_REPLACE, already validated.
    fn set_xattr(&self, _name: &[u8], _value: &[u8], _flags: i32) -> VfsResult<()> {
        Err(Errno::EOPNOTSUPP)
    }
    fn list_xattr(&self) -> VfsResult<Vec<Vec<u8>>> {
        Err(Errno::EOPNOTSUPP)
    }
    fn remove_xattr(&self, _name: &[u8]) -> VfsResult<()> {
        Err(Errno::EOPNOTSUPP)
    }
    /// statfs(2) of the filesystem, when it has real figures.
    fn statfs(&self) -> Option<FsStat> {
        None
    }
    /// Whether writes are refused (EROFS) on this inode's filesystem.
    fn read_only(&self) -> bool {
        false
    }
}

/// A mount namespace: a root plus its mount table (one per container of
/// the sandbox). Path resolution lives in `path.rs`; a walk consults the
/// mount table of the namespace its locations lie in, whichever `Vfs` it
/// is called on.
pub struct Vfs {
    /// Changed only by pivot_root.
    root: RwLock<Arc<dyn Inode>>,
    /// Mounted filesystems by absolute path ("/proc"), the last one on
    /// top (a mount over a mount hides it until unmounted). Mount points
    /// are looked up when a walk steps onto them.
    mounts: RwLock<HashMap<Vec<u8>, MountStack>>,
}

/// The filesystems mounted at one path, bottom first.
type MountStack = Vec<Arc<dyn Inode>>;

impl Vfs {
    pub fn new(root: Arc<dyn Inode>) -> Vfs {
        Vfs {
            root: RwLock::new(root),
            mounts: RwLock::new(HashMap::new()),
        }
    }

    /// The namespace's root directory.
    pub fn root(self: &Arc<Self>) -> Location {
        let root = self
            .root
            .read()
            .map(|r| r.clone())
            .unwrap_or_else(|p| p.into_inner().clone());
        Location::root(self.clone(), root)
    }

    /// Mounts `fs` at absolute path `at` (the directory needs not exist in
    /// the underlying filesystem).
    pub fn mount(&self, at: &[u8], fs: Arc<dyn Inode>) {
        let key = normalize_mount_path(at);
        if let Ok(mut m) = self.mounts.write() {
            m.entry(key).or_default().push(fs);
        }
    }

    /// The filesystem on top at `path`, if `path` is a mount point.
    pub fn mount_at(&self, path: &[u8]) -> Option<Arc<dyn Inode>> {
        self.mounts
            .read()
            .ok()
            .and_then(|m| m.get(path).and_then(|s| s.last().cloned()))
    }

    /// Removes the top mount at `path`; false if `path` is no mount point.
    pub fn unmount(&self, path: &[u8]) -> bool {
        let key = normalize_mount_path(path);
        let Ok(mut m) = self.mounts.write() else {
            return false;
        };
        let Some(stack) = m.get_mut(&key) else {
            return false;
        };
        stack.pop();
        if stack.is_empty() {
            m.remove(&key);
        }
        true
    }

    /// Replaces the top mount at `path` (a remount); false if none.
    pub fn replace_mount(&self, path: &[u8], fs: Arc<dyn Inode>) -> bool {
        let key = normalize_mount_path(path);
        let Ok(mut m) = self.mounts.write() else {
            return false;
        };
        match m.get_mut(&key).and_then(|s| s.last_mut()) {
            Some(top) => {
                *top = fs;
                true
            }
            None => false,
        }
    }

    /// Whether some mount point lies strictly below `dir`.
    pub fn has_mount_below(&self, dir: &[u8]) -> bool {
        self.mounts.read().is_ok_and(|m| {
            m.keys()
                .any(|k| k.len() > dir.len() && k.starts_with(dir) && k[dir.len()] == b'/')
        })
    }

    /// A copy of this namespace (unshare(CLONE_NEWNS)): the same
    /// filesystems at the same places; what either mounts or unmounts
    /// later stays its own.
    pub fn copy(&self) -> Arc<Vfs> {
        let root = self
            .root
            .read()
            .map(|r| r.clone())
            .unwrap_or_else(|p| p.into_inner().clone());
        let mounts = self
            .mounts
            .read()
            .map(|m| m.clone())
            .unwrap_or_else(|p| p.into_inner().clone());
        Arc::new(Vfs {
            root: RwLock::new(root),
            mounts: RwLock::new(mounts),
        })
    }

    /// pivot_root(2): the filesystem mounted at `new_root` becomes the
    /// root, and the old root (with the mounts outside `new_root`) is
    /// mounted at `put_old`. Both are absolute paths in this namespace,
    /// `put_old` at or under `new_root`, which must be a mount point other
    /// than the root (EINVAL otherwise).
    pub fn pivot_root(&self, new_root: &[u8], put_old: &[u8]) -> VfsResult<()> {
        let new_root = normalize_mount_path(new_root);
        let put_old = normalize_mount_path(put_old);
        let inside = |p: &[u8], dir: &[u8]| {
            p == dir || (p.starts_with(dir) && p.get(dir.len()) == Some(&b'/'))
        };
        if new_root == b"/" || !inside(&put_old, &new_root) {
            return Err(Errno::EINVAL);
        }
        let mut mounts = self.mounts.write().map_err(|_| Errno::EIO)?;
        let mut root = self.root.write().map_err(|_| Errno::EIO)?;
        let new_fs = mounts
            .get(&new_root)
            .and_then(|s| s.last().cloned())
            .ok_or(Errno::EINVAL)?;
        // Where a path of the old tree lands: under new_root it loses that
        // prefix; elsewhere it moves under put_old (as seen from the new
        // root).
        let rebase = |p: &[u8], under: &[u8]| -> Vec<u8> {
            let mut out = under.to_vec();
            if p != b"/" {
                out.extend_from_slice(p);
            }
            normalize_mount_path(&out)
        };
        let old_at = rebase(&put_old[new_root.len()..], b"/");
        let mut moved: HashMap<Vec<u8>, MountStack> = HashMap::new();
        // The new tree's mounts first: the old tree, mounted at put_old,
        // covers whatever the new tree has there.
        let mut old: Vec<(Vec<u8>, MountStack)> = mounts.drain().collect();
        old.sort_by_key(|(p, _)| !inside(p, &new_root));
        for (path, stack) in old {
            let (key, stack) = if path == new_root {
                // Its top is the new root; what it covered stays where it
                // was in the old tree.
                let mut stack = stack;
                stack.pop();
                if stack.is_empty() {
                    continue;
                }
                (rebase(&path, &old_at), stack)
            } else if inside(&path, &new_root) {
                (normalize_mount_path(&path[new_root.len()..]), stack)
            } else {
                (rebase(&path, &old_at), stack)
            };
            moved.entry(key).or_default().extend(stack);
        }
        // The old root is mounted at put_old, over whatever is there.
        let old_root = std::mem::replace(&mut *root, new_fs);
        moved.entry(old_at).or_default().push(old_root);
        *mounts = moved;
        Ok(())
    }

    pub fn mount_points(&self) -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = self
            .mounts
            .read()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        v.sort();
        v
    }
}

fn normalize_mount_path(p: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in p
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
    {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// Current wall-clock time as (sec, nsec), for new inodes and writes.
pub fn now() -> (i64, i64) {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs() as i64, d.subsec_nanos() as i64)
}

/// A number naming the system call this sentry thread is serving, unique
/// across threads and calls (see [`next_syscall`]): lets a filesystem
/// tell "earlier in this very call" from "some time ago".
pub fn current_syscall() -> u64 {
    SYSCALL_SEQ.with(|c| c.get())
}

/// Called as each system call starts.
pub fn next_syscall() {
    SYSCALL_SEQ.with(|c| {
        let mut v = c.get();
        if v == 0 {
            // Each thread takes a block of 2^40 numbers of its own.
            static BLOCKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
            v = BLOCKS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) << 40;
        }
        c.set(v + 1);
    });
}

thread_local! {
    static SYSCALL_SEQ: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}
