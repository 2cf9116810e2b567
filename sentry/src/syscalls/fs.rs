//! Path-based syscalls: open, stat, access, readlink, cwd, directory and
//! metadata changes. Every path is resolved by the sentry's VFS.

use std::sync::Arc;

use nix::errno::Errno;

use super::file::{get_file, get_file_raw, install_fd};
use super::{arg_fd, SysResult};
use crate::kernel::cap;
use crate::kernel::task::{pod_zeroed, Task};
use crate::kernel::{kernel, lock, Credentials};
use crate::vfs::inotify as notify;
use crate::vfs::{
    CreateCtx, FileOps, FileStat, FileType, Inode, Location, OpenFile, Resolve, SetAttr, VfsResult,
};

const AT_FDCWD: i32 = libc::AT_FDCWD;

/// The directory a *at() call starts from.
fn start_dir(t: &Task, dirfd: i32) -> Result<Location, Errno> {
    if dirfd == AT_FDCWD {
        return Ok(lock(&t.proc.fs).cwd.clone());
    }
    let f = get_file_raw(t, dirfd)?;
    let loc = f.location.clone().ok_or(Errno::ENOTDIR)?;
    if loc.inode().file_type() != FileType::Directory {
        return Err(Errno::ENOTDIR);
    }
    Ok(loc)
}

/// Resolves (dirfd, path). An empty path refers to dirfd itself when
/// `empty_ok` (AT_EMPTY_PATH).
pub(super) fn resolve_at(
    t: &Task,
    dirfd: i32,
    path: &[u8],
    follow: bool,
    empty_ok: bool,
) -> Result<Location, Errno> {
    if path.is_empty() {
        if !empty_ok {
            return Err(Errno::ENOENT);
        }
        if dirfd == AT_FDCWD {
            return Ok(lock(&t.proc.fs).cwd.clone());
        }
        return get_file_raw(t, dirfd)?.location.clone().ok_or(Errno::EBADF);
    }
    let root = lock(&t.proc.fs).root.clone();
    let start = if path.first() == Some(&b'/') {
        root.clone()
    } else {
        start_dir(t, dirfd)?
    };
    kernel().vfs.resolve(&root, &start, path, follow)
}

pub(super) fn resolve_parent_at(
    t: &Task,
    dirfd: i32,
    path: &[u8],
) -> Result<(Location, Vec<u8>), Errno> {
    let root = lock(&t.proc.fs).root.clone();
    let start = if path.first() == Some(&b'/') {
        root.clone()
    } else {
        start_dir(t, dirfd)?
    };
    kernel().vfs.resolve_parent(&root, &start, path)
}

pub(super) fn ctx(t: &Task) -> CreateCtx {
    let c = lock(&t.proc.creds);
    CreateCtx {
        uid: c.euid,
        gid: c.egid,
        privileged: c.has_cap(cap::FSETID),
    }
}

pub(super) fn current_umask(t: &Task) -> u32 {
    lock(&t.proc.fs).umask
}

/// Permission check against the emulated credentials (`mask` of R_OK=4,
/// W_OK=2, X_OK=1), as Linux's generic_permission: the mode bits first,
/// then CAP_DAC_OVERRIDE (anything, but execute only with some x bit) and
/// CAP_DAC_READ_SEARCH (reading files, reading and searching directories).
/// `use_real` is access(2): the real ids, and capabilities only for a real
/// uid of 0 (its permitted set), as faccessat overrides the credentials.
pub fn check_access(
    c: &Credentials,
    st: &FileStat,
    mask: u32,
    use_real: bool,
) -> Result<(), Errno> {
    let (who, gid, caps) = if use_real {
        let caps = if c.ruid == 0 { c.caps.permitted } else { 0 };
        (c.ruid, c.rgid, caps)
    } else {
        (c.euid, c.egid, c.caps.effective)
    };
    let has = |n: u32| caps & (1u64 << n) != 0;
    let mode = st.mode;
    let bits = if who == st.uid {
        (mode >> 6) & 7
    } else if gid == st.gid || c.groups.contains(&st.gid) {
        (mode >> 3) & 7
    } else {
        mode & 7
    };
    if bits & mask == mask {
        return Ok(());
    }
    let is_dir = mode & libc::S_IFMT == libc::S_IFDIR;
    if has(cap::DAC_OVERRIDE) && (is_dir || mask & 1 == 0 || mode & 0o111 != 0) {
        return Ok(());
    }
    if has(cap::DAC_READ_SEARCH) && mask & 2 == 0 && (is_dir || mask & 1 == 0) {
        return Ok(());
    }
    Err(Errno::EACCES)
}

/// The sticky-bit rule (Linux's may_delete): in a sticky directory only the
/// file's owner, the directory's owner or a privileged caller may remove
/// or rename an entry.
fn sticky_ok(t: &Task, dir: &Arc<dyn Inode>, victim: &Arc<dyn Inode>) -> Result<(), Errno> {
    let (euid, fowner) = {
        let c = lock(&t.proc.creds);
        (c.euid, c.has_cap(cap::FOWNER))
    };
    if fowner {
        return Ok(());
    }
    // The directory's mode and owner are all that is read of it.
    let d = dir.access_stat()?;
    if d.mode & libc::S_ISVTX == 0 || d.uid == euid || victim.stat()?.uid == euid {
        return Ok(());
    }
    Err(Errno::EPERM)
}

pub(super) fn may_write(t: &Task, inode: &Arc<dyn Inode>) -> Result<(), Errno> {
    if inode.read_only() {
        return Err(Errno::EROFS);
    }
    // Mode and owner are all that is read (see `Inode::access_stat`).
    let st = inode.access_stat()?;
    check_access(&lock(&t.proc.creds), &st, 2, false)
}

/// Open description of an O_PATH fd: no I/O, only a location.
struct PathFile {
    stat: FileStat,
    dir: bool,
}

impl FileOps for PathFile {
    fn stat(&self) -> VfsResult<FileStat> {
        Ok(self.stat.clone())
    }
    fn is_dir(&self) -> bool {
        self.dir
    }
}

/// Where a walk under `how` starts: the task's root and the starting
/// directory. RESOLVE_BENEATH and RESOLVE_IN_ROOT always start at `dirfd`
/// (the walk refuses or re-roots absolute paths itself).
fn walk_origin(
    t: &Task,
    dirfd: i32,
    path: &[u8],
    how: Resolve,
) -> Result<(Location, Location), Errno> {
    let root = lock(&t.proc.fs).root.clone();
    let start = if path.first() == Some(&b'/') && !how.beneath && !how.in_root {
        root.clone()
    } else {
        start_dir(t, dirfd)?
    };
    Ok((root, start))
}

/// O_TMPFILE: a nameless regular file in the directory `path` names, which
/// linkat can name later unless O_EXCL.
fn open_tmpfile(
    t: &mut Task,
    root: &Location,
    start: &Location,
    path: &[u8],
    flags: i32,
    mode: u32,
    how: Resolve,
) -> SysResult {
    if flags & libc::O_ACCMODE == libc::O_RDONLY || flags & libc::O_CREAT != 0 {
        return Err(Errno::EINVAL);
    }
    let dir = kernel().vfs.resolve_with(root, start, path, true, how)?;
    if dir.inode().file_type() != FileType::Directory {
        return Err(Errno::ENOTDIR);
    }
    // Write and search on the directory, as Linux's vfs_tmpfile asks.
    may_write(t, dir.inode())?;
    check_access(&lock(&t.proc.creds), &dir.inode().stat()?, 1, false)?;
    let m = mode & 0o7777 & !current_umask(t);
    let linkable = flags & libc::O_EXCL == 0;
    let node = dir.inode().create_tmpfile(m, ctx(t), linkable)?;
    let flags = flags & !(libc::O_TMPFILE | libc::O_EXCL);
    let ops = node.open(flags)?;
    let ino = node.stat()?.ino;
    let loc = dir.with_child(format!("#{ino}").as_bytes(), node);
    let file = OpenFile::new(ops, Some(loc), flags);
    install_fd(t, file, flags & libc::O_CLOEXEC != 0)
}

fn do_open(t: &mut Task, dirfd: i32, path_addr: u64, flags: i32, mode: u32) -> SysResult {
    do_open_how(t, dirfd, path_addr, flags, mode, Resolve::default())
}

fn do_open_how(
    t: &mut Task,
    dirfd: i32,
    path_addr: u64,
    flags: i32,
    mode: u32,
    how: Resolve,
) -> SysResult {
    let path = t.read_path(path_addr)?;
    let follow = flags & libc::O_NOFOLLOW == 0;
    let acc = flags & libc::O_ACCMODE;
    if acc == 3 {
        return Err(Errno::EINVAL);
    }
    let mut created_now = false;
    let (root, start) = walk_origin(t, dirfd, &path, how)?;
    if flags & libc::O_TMPFILE == libc::O_TMPFILE {
        return open_tmpfile(t, &root, &start, &path, flags, mode, how);
    }
    // The root absolute names (and absolute link targets) start from.
    let walk_root = if how.in_root {
        start.clone()
    } else {
        root.clone()
    };
    let loc = if flags & libc::O_CREAT != 0 && flags & libc::O_PATH == 0 {
        let (mut parent, mut name) = kernel()
            .vfs
            .resolve_parent_with(&root, &start, &path, how)?;
        let mut hops = 0;
        let mut races = 0;
        loop {
            if name.is_empty() || name == b"." || name == b".." {
                return Err(Errno::EISDIR);
            }
            match kernel().vfs.step(&parent, &name) {
                Ok(loc) => {
                    if flags & libc::O_EXCL != 0 {
                        return Err(Errno::EEXIST);
                    }
                    if loc.inode().file_type() != FileType::Symlink {
                        break loc;
                    }
                    if follow && !how.no_magiclinks {
                        if let Some(jump) = loc.inode().magic_target() {
                            if how.no_xdev
                                && kernel().vfs.mount_of(&jump) != kernel().vfs.mount_of(&parent)
                            {
                                return Err(Errno::EXDEV);
                            }
                            break jump;
                        }
                    }
                    if !follow
                        || how.no_symlinks
                        || (how.no_magiclinks && loc.inode().is_magic_link())
                    {
                        return Err(Errno::ELOOP);
                    }
                    // Follow the link one hop and create its target if it
                    // does not exist, as Linux does for a dangling link.
                    hops += 1;
                    if hops > crate::vfs::MAX_SYMLINKS {
                        return Err(Errno::ELOOP);
                    }
                    let target = loc.inode().readlink()?;
                    let from = if target.first() == Some(&b'/') {
                        walk_root.clone()
                    } else {
                        parent.clone()
                    };
                    // The target is walked from where the link lies, but
                    // RESOLVE_BENEATH's floor stays the starting directory
                    // and RESOLVE_IN_ROOT's root stays `walk_root`.
                    let hop = Resolve {
                        in_root: false,
                        ..how
                    };
                    (parent, name) = kernel().vfs.resolve_parent_below(
                        &walk_root,
                        how.beneath.then_some(&start),
                        &from,
                        &target,
                        hop,
                    )?;
                }
                Err(Errno::ENOENT) => {
                    may_write(t, parent.inode())?;
                    let m = mode & 0o7777 & !current_umask(t);
                    match parent.inode().create(&name, m, ctx(t)) {
                        Ok(node) => {
                            notify::child_event(
                                parent.inode(),
                                &name,
                                notify::IN_CREATE,
                                Some(&node),
                            );
                            created_now = true;
                            // The file this call made, whatever holds the
                            // name by now (as Linux opens the dentry it
                            // created); nothing is mounted where nothing
                            // was found.
                            break parent.with_child(&name, node);
                        }
                        // Someone outside the sandbox (a shared volume) made
                        // it since our lookup: open theirs, as Linux would
                        // (a few times: a host that keeps making and removing
                        // the name must not hold the call forever).
                        Err(Errno::EEXIST) if flags & libc::O_EXCL == 0 && races < 64 => {
                            races += 1;
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    } else {
        kernel()
            .vfs
            .resolve_with(&root, &start, &path, follow, how)?
    };
    let inode = loc.inode().clone();
    let ftype = inode.file_type();
    if flags & libc::O_PATH != 0 {
        let ops = Arc::new(PathFile {
            stat: inode.stat()?,
            dir: ftype == FileType::Directory,
        });
        let file = OpenFile::new(
            ops,
            Some(loc),
            flags & (libc::O_PATH | libc::O_NOFOLLOW | libc::O_DIRECTORY),
        );
        return install_fd(t, file, flags & libc::O_CLOEXEC != 0);
    }
    if ftype == FileType::Symlink {
        return Err(Errno::ELOOP);
    }
    if flags & libc::O_DIRECTORY != 0 && ftype != FileType::Directory {
        return Err(Errno::ENOTDIR);
    }
    let writing = acc != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
    if ftype == FileType::Directory && (acc != libc::O_RDONLY || flags & libc::O_CREAT != 0) {
        return Err(Errno::EISDIR);
    }
    let st = inode.stat()?;
    {
        let creds = lock(&t.proc.creds);
        let mut mask = 0;
        if acc == libc::O_RDONLY || acc == libc::O_RDWR {
            mask |= 4;
        }
        if acc == libc::O_WRONLY || acc == libc::O_RDWR {
            mask |= 2;
        }
        // A file just created by this open is accessible whatever its mode.
        let just_created = flags & libc::O_CREAT != 0 && st.size == 0 && creds.euid == st.uid;
        if !just_created {
            check_access(&creds, &st, mask, false)?;
        }
        // O_NOATIME: the owner's or CAP_FOWNER's only (Linux's may_open).
        if flags & libc::O_NOATIME != 0 && creds.euid != st.uid && !creds.has_cap(cap::FOWNER) {
            return Err(Errno::EPERM);
        }
    }
    if writing && ftype == FileType::Regular && inode.read_only() {
        return Err(Errno::EROFS);
    }
    if writing && crate::vfs::text::busy(&inode) {
        return Err(Errno::ETXTBSY);
    }
    let ops = inode.open(flags)?;
    notify::file_event(&loc, notify::IN_OPEN);
    if flags & libc::O_TRUNC != 0 && writing && !created_now {
        notify::file_event(&loc, notify::IN_MODIFY);
    }
    let file = OpenFile::new(ops, Some(loc), flags);
    if created_now {
        file.mark_created();
    }
    if acc != libc::O_RDONLY && ftype == FileType::Regular {
        file.hold_for_writing(&inode);
    }
    install_fd(t, file, flags & libc::O_CLOEXEC != 0)
}

pub fn open(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_open(t, AT_FDCWD, a[0], a[1] as i32, a[2] as u32)
}

pub fn openat(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_open(t, arg_fd(a[0]), a[1], a[2] as i32, a[3] as u32)
}

/// openat2's `struct open_how`: flags, mode, resolve (24 bytes in its
/// first version; larger structs must be zero beyond what we know).
const OPEN_HOW_SIZE_VER0: usize = 24;

/// Every open flag Linux knows (VALID_OPEN_FLAGS); openat2 refuses others.
const VALID_OPEN_FLAGS: u64 = (libc::O_ACCMODE
    | libc::O_CREAT
    | libc::O_EXCL
    | libc::O_NOCTTY
    | libc::O_TRUNC
    | libc::O_APPEND
    | libc::O_NONBLOCK
    | libc::O_DSYNC
    | libc::O_ASYNC
    | libc::O_DIRECT
    | 0o100000 // the kernel's O_LARGEFILE
    | libc::O_DIRECTORY
    | libc::O_NOFOLLOW
    | libc::O_NOATIME
    | libc::O_CLOEXEC
    | libc::O_PATH
    | libc::O_TMPFILE
    | libc::O_SYNC) as u64;

const RESOLVE_NO_XDEV: u64 = 0x01;
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
const RESOLVE_BENEATH: u64 = 0x08;
const RESOLVE_IN_ROOT: u64 = 0x10;
const RESOLVE_CACHED: u64 = 0x20;

/// openat2(dirfd, path, how, size): open with strict flag checks and the
/// RESOLVE_* restrictions on the walk.
pub fn openat2(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let size = a[3] as usize;
    if size < OPEN_HOW_SIZE_VER0 {
        return Err(Errno::EINVAL);
    }
    if size > 4096 {
        return Err(Errno::E2BIG);
    }
    let raw = t.read_bytes(a[2], size)?;
    if raw[OPEN_HOW_SIZE_VER0..].iter().any(|&b| b != 0) {
        return Err(Errno::E2BIG);
    }
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&raw[i * 8..i * 8 + 8]);
        u64::from_ne_bytes(b)
    };
    let (flags, mode, resolve) = (word(0), word(1), word(2));
    if flags & !VALID_OPEN_FLAGS != 0 || flags & libc::O_ACCMODE as u64 == 3 {
        return Err(Errno::EINVAL);
    }
    let creating = flags & (libc::O_CREAT as u64) != 0
        || flags & libc::O_TMPFILE as u64 == libc::O_TMPFILE as u64;
    if mode & !0o7777 != 0 || (mode != 0 && !creating) {
        return Err(Errno::EINVAL);
    }
    let all = RESOLVE_NO_XDEV
        | RESOLVE_NO_MAGICLINKS
        | RESOLVE_NO_SYMLINKS
        | RESOLVE_BENEATH
        | RESOLVE_IN_ROOT
        | RESOLVE_CACHED;
    if resolve & !all != 0
        || resolve & (RESOLVE_BENEATH | RESOLVE_IN_ROOT) == (RESOLVE_BENEATH | RESOLVE_IN_ROOT)
    {
        return Err(Errno::EINVAL);
    }
    if flags & libc::O_PATH as u64 != 0 {
        let with_path =
            (libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC) as u64;
        if flags & !with_path != 0 {
            return Err(Errno::EINVAL);
        }
    }
    // Nothing here blocks on I/O a cached lookup would avoid, except
    // creating and truncating, which Linux refuses under RESOLVE_CACHED.
    if resolve & RESOLVE_CACHED != 0
        && flags & (libc::O_CREAT | libc::O_TRUNC | libc::O_TMPFILE) as u64 != 0
    {
        return Err(Errno::EAGAIN);
    }
    let beneath = resolve & RESOLVE_BENEATH != 0;
    let in_root = resolve & RESOLVE_IN_ROOT != 0;
    let how = Resolve {
        no_xdev: resolve & RESOLVE_NO_XDEV != 0,
        // Both also refuse magic links, as on Linux.
        no_magiclinks: resolve & RESOLVE_NO_MAGICLINKS != 0 || beneath || in_root,
        no_symlinks: resolve & RESOLVE_NO_SYMLINKS != 0,
        beneath,
        in_root,
    };
    do_open_how(t, arg_fd(a[0]), a[1], flags as i32, mode as u32, how)
}

pub fn creat(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_open(
        t,
        AT_FDCWD,
        a[0],
        libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC,
        a[1] as u32,
    )
}

// ---- stat family ------------------------------------------------------------

pub fn to_libc_stat(s: &FileStat) -> libc::stat {
    let mut st: libc::stat = pod_zeroed();
    st.st_dev = s.dev;
    st.st_ino = s.ino;
    st.st_nlink = s.nlink;
    st.st_mode = s.mode;
    st.st_uid = s.uid;
    st.st_gid = s.gid;
    st.st_rdev = s.rdev;
    st.st_size = s.size;
    st.st_blksize = s.blksize;
    st.st_blocks = s.blocks;
    st.st_atime = s.atime_sec;
    st.st_atime_nsec = s.atime_nsec;
    st.st_mtime = s.mtime_sec;
    st.st_mtime_nsec = s.mtime_nsec;
    st.st_ctime = s.ctime_sec;
    st.st_ctime_nsec = s.ctime_nsec;
    st
}

fn write_stat(t: &Task, addr: u64, s: &FileStat) -> SysResult {
    t.write_obj(addr, &to_libc_stat(s))?;
    Ok(0)
}

fn stat_path(t: &mut Task, dirfd: i32, path_addr: u64, buf: u64, flags: i32) -> SysResult {
    if flags & !(libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH | libc::AT_NO_AUTOMOUNT) != 0 {
        return Err(Errno::EINVAL);
    }
    let path = t.read_path(path_addr)?;
    if path.is_empty() && flags & libc::AT_EMPTY_PATH != 0 && dirfd != AT_FDCWD {
        let f = get_file_raw(t, dirfd)?;
        return write_stat(t, buf, &f.stat()?);
    }
    let loc = resolve_at(
        t,
        dirfd,
        &path,
        flags & libc::AT_SYMLINK_NOFOLLOW == 0,
        flags & libc::AT_EMPTY_PATH != 0,
    )?;
    write_stat(t, buf, &loc.inode().stat()?)
}

pub fn stat(t: &mut Task, a: &[u64; 6]) -> SysResult {
    stat_path(t, AT_FDCWD, a[0], a[1], 0)
}

pub fn lstat(t: &mut Task, a: &[u64; 6]) -> SysResult {
    stat_path(t, AT_FDCWD, a[0], a[1], libc::AT_SYMLINK_NOFOLLOW)
}

pub fn newfstatat(t: &mut Task, a: &[u64; 6]) -> SysResult {
    stat_path(t, arg_fd(a[0]), a[1], a[2], a[3] as i32)
}

pub fn fstat(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let f = get_file_raw(t, arg_fd(a[0]))?;
    write_stat(t, a[1], &f.stat()?)
}

pub fn statx(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (dirfd, path_addr, flags, mask, buf) = (arg_fd(a[0]), a[1], a[2] as i32, a[3] as u32, a[4]);
    if mask & 0x8000_0000 != 0 {
        // STATX__RESERVED
        return Err(Errno::EINVAL);
    }
    let allowed = libc::AT_SYMLINK_NOFOLLOW
        | libc::AT_EMPTY_PATH
        | libc::AT_NO_AUTOMOUNT
        | libc::AT_STATX_SYNC_TYPE;
    if flags & !allowed != 0 || flags & libc::AT_STATX_SYNC_TYPE == libc::AT_STATX_SYNC_TYPE {
        return Err(Errno::EINVAL);
    }
    let path = t.read_path(path_addr)?;
    let s = if path.is_empty() && flags & libc::AT_EMPTY_PATH != 0 && dirfd != AT_FDCWD {
        get_file_raw(t, dirfd)?.stat()?
    } else {
        resolve_at(
            t,
            dirfd,
            &path,
            flags & libc::AT_SYMLINK_NOFOLLOW == 0,
            flags & libc::AT_EMPTY_PATH != 0,
        )?
        .inode()
        .stat()?
    };
    let mut x: libc::statx = pod_zeroed();
    x.stx_mask = libc::STATX_BASIC_STATS;
    x.stx_blksize = s.blksize as u32;
    x.stx_nlink = s.nlink as u32;
    x.stx_uid = s.uid;
    x.stx_gid = s.gid;
    x.stx_mode = s.mode as u16;
    x.stx_ino = s.ino;
    x.stx_size = s.size as u64;
    x.stx_blocks = s.blocks as u64;
    x.stx_atime.tv_sec = s.atime_sec;
    x.stx_atime.tv_nsec = s.atime_nsec as u32;
    x.stx_mtime.tv_sec = s.mtime_sec;
    x.stx_mtime.tv_nsec = s.mtime_nsec as u32;
    x.stx_ctime.tv_sec = s.ctime_sec;
    x.stx_ctime.tv_nsec = s.ctime_nsec as u32;
    x.stx_rdev_major = libc::major(s.rdev);
    x.stx_rdev_minor = libc::minor(s.rdev);
    x.stx_dev_major = libc::major(s.dev);
    x.stx_dev_minor = libc::minor(s.dev);
    t.write_obj(buf, &x)?;
    Ok(0)
}

/// The kernel's `struct statfs` on 64-bit targets. libc's hides f_flags
/// inside a private spare array, so the sentry spells it out.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct KernelStatfs {
    f_type: i64,
    f_bsize: i64,
    f_blocks: u64,
    f_bfree: u64,
    f_bavail: u64,
    f_files: u64,
    f_ffree: u64,
    f_fsid: [i32; 2],
    f_namelen: i64,
    f_frsize: i64,
    f_flags: i64,
    f_spare: [i64; 4],
}
// SAFETY: a repr(C) struct of integers with no padding (all 8-byte fields
// but the two i32s of f_fsid, which fill one 8-byte slot).
unsafe impl crate::kernel::task::Pod for KernelStatfs {}
const _: () = assert!(std::mem::size_of::<KernelStatfs>() == std::mem::size_of::<libc::statfs>());

/// ST_VALID: Linux sets it in every f_flags.
const ST_VALID: i64 = 0x20;

fn write_statfs(t: &Task, buf: u64, inode: &Arc<dyn Inode>) -> SysResult {
    let read_only = if inode.read_only() {
        libc::ST_RDONLY as i64
    } else {
        0
    };
    let s = match inode.statfs() {
        Some(fs) => KernelStatfs {
            f_type: fs.fs_type,
            f_bsize: fs.block_size,
            f_blocks: fs.blocks,
            f_bfree: fs.blocks_free,
            f_bavail: fs.blocks_available,
            f_files: fs.files,
            f_ffree: fs.files_free,
            f_namelen: fs.name_max,
            f_frsize: fs.fragment_size,
            // The host's mount flags, with read-only as the sandbox sees it.
            f_flags: (fs.flags & !(libc::ST_RDONLY as i64)) | ST_VALID | read_only,
            ..Default::default()
        },
        None => {
            let in_memory = inode.as_any().type_id()
                == std::any::TypeId::of::<crate::fsimpl::overlay::OvNode>();
            KernelStatfs {
                f_type: if in_memory {
                    0x0102_1994 // TMPFS_MAGIC: the upper layer lives in memory
                } else {
                    0x9fa0 // PROC_SUPER_MAGIC and friends
                },
                f_bsize: 4096,
                f_blocks: 1 << 20,
                f_bfree: 1 << 19,
                f_bavail: 1 << 19,
                f_files: 1 << 20,
                f_ffree: 1 << 19,
                f_namelen: 255,
                f_frsize: 4096,
                f_flags: ST_VALID | read_only,
                ..Default::default()
            }
        }
    };
    t.write_obj(buf, &s)?;
    Ok(0)
}

pub fn statfs(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let path = t.read_path(a[0])?;
    let loc = resolve_at(t, AT_FDCWD, &path, true, false)?;
    write_statfs(t, a[1], loc.inode())
}

pub fn fstatfs(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let f = get_file_raw(t, arg_fd(a[0]))?;
    match &f.location {
        Some(l) => write_statfs(t, a[1], l.inode()),
        None => {
            let s = KernelStatfs {
                f_type: 0x5049_5045, // PIPEFS_MAGIC
                f_bsize: 4096,
                f_namelen: 255,
                f_flags: ST_VALID,
                ..Default::default()
            };
            t.write_obj(a[1], &s)?;
            Ok(0)
        }
    }
}

// ---- access, readlink, cwd -----------------------------------------------------

fn do_access(t: &mut Task, dirfd: i32, path_addr: u64, mode: u32, flags: i32) -> SysResult {
    if mode & !7 != 0
        || flags & !(libc::AT_EACCESS | libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH) != 0
    {
        return Err(Errno::EINVAL);
    }
    let path = t.read_path(path_addr)?;
    let loc = resolve_at(
        t,
        dirfd,
        &path,
        flags & libc::AT_SYMLINK_NOFOLLOW == 0,
        flags & libc::AT_EMPTY_PATH != 0,
    )?;
    if mode == 0 {
        return Ok(0);
    }
    let inode = loc.inode();
    if mode & 2 != 0 && inode.read_only() && inode.file_type() != FileType::CharDev {
        return Err(Errno::EROFS);
    }
    let st = inode.stat()?;
    check_access(
        &lock(&t.proc.creds),
        &st,
        mode,
        flags & libc::AT_EACCESS == 0,
    )?;
    Ok(0)
}

pub fn access(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_access(t, AT_FDCWD, a[0], a[1] as u32, 0)
}

pub fn faccessat(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_access(t, arg_fd(a[0]), a[1], a[2] as u32, 0)
}

pub fn faccessat2(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_access(t, arg_fd(a[0]), a[1], a[2] as u32, a[3] as i32)
}

fn do_readlink(t: &mut Task, dirfd: i32, path_addr: u64, buf: u64, size: u64) -> SysResult {
    if (size as i64) <= 0 {
        return Err(Errno::EINVAL);
    }
    let path = t.read_path(path_addr)?;
    // An empty path names dirfd itself (a symlink opened O_PATH|O_NOFOLLOW);
    // from the cwd it names nothing (ENOENT, as Linux).
    if path.is_empty() && dirfd == AT_FDCWD {
        return Err(Errno::ENOENT);
    }
    let loc = resolve_at(t, dirfd, &path, false, true)?;
    let target = loc.inode().readlink()?;
    let n = target.len().min(size as usize);
    t.write_bytes(buf, &target[..n])?;
    Ok(n as u64)
}

pub fn readlink(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_readlink(t, AT_FDCWD, a[0], a[1], a[2])
}

pub fn readlinkat(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_readlink(t, arg_fd(a[0]), a[1], a[2], a[3])
}

pub fn getcwd(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let cwd = lock(&t.proc.fs).cwd.clone();
    if cwd.unlinked() {
        return Err(Errno::ENOENT);
    }
    let mut p = cwd.path();
    p.push(0);
    if (a[1] as usize) < p.len() {
        return Err(Errno::ERANGE);
    }
    t.write_bytes(a[0], &p)?;
    Ok(p.len() as u64)
}

fn set_cwd(t: &Task, loc: Location) -> SysResult {
    if loc.inode().file_type() != FileType::Directory {
        return Err(Errno::ENOTDIR);
    }
    let st = loc.inode().stat()?;
    check_access(&lock(&t.proc.creds), &st, 1, false)?;
    lock(&t.proc.fs).cwd = loc;
    Ok(0)
}

pub fn chdir(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let path = t.read_path(a[0])?;
    let loc = resolve_at(t, AT_FDCWD, &path, true, false)?;
    set_cwd(t, loc)
}

pub fn fchdir(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let f = get_file_raw(t, arg_fd(a[0]))?;
    let loc = f.location.clone().ok_or(Errno::ENOTDIR)?;
    set_cwd(t, loc)
}

pub fn umask(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let mut fs = lock(&t.proc.fs);
    let old = fs.umask;
    fs.umask = a[0] as u32 & 0o777;
    Ok(old as u64)
}

// ---- namespace changes -------------------------------------------------------------

/// chroot: the process's root becomes `path` (CAP_SYS_CHROOT). Lookups
/// never climb above it; the sandbox's own root stays the outer bound.
pub fn chroot(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let path = t.read_path(a[0])?;
    let loc = resolve_at(t, AT_FDCWD, &path, true, false)?;
    if loc.inode().file_type() != FileType::Directory {
        return Err(Errno::ENOTDIR);
    }
    let st = loc.inode().stat()?;
    let creds = lock(&t.proc.creds).clone();
    check_access(&creds, &st, 1, false)?;
    if !creds.has_cap(cap::SYS_CHROOT) {
        return Err(Errno::EPERM);
    }
    lock(&t.proc.fs).root = loc;
    Ok(0)
}

/// The parent directory and name of an entry about to be made (mkdir,
/// mknod): the name must be free (EEXIST) and the directory writable.
fn new_entry(t: &Task, dirfd: i32, path_addr: u64) -> Result<(Location, Vec<u8>), Errno> {
    let path = t.read_path(path_addr)?;
    let (parent, name) = resolve_parent_at(t, dirfd, &path)?;
    if name.is_empty() || name == b"." || name == b".." {
        return Err(Errno::EEXIST);
    }
    if kernel().vfs.step(&parent, &name).is_ok() {
        return Err(Errno::EEXIST);
    }
    may_write(t, parent.inode())?;
    Ok((parent, name))
}

fn do_mkdir(t: &mut Task, dirfd: i32, path_addr: u64, mode: u32) -> SysResult {
    let (parent, name) = new_entry(t, dirfd, path_addr)?;
    let m = mode & 0o7777 & !current_umask(t);
    parent.inode().mkdir(&name, m, ctx(t))?;
    created(&parent, &name);
    Ok(0)
}

/// mknod: FIFOs, socket nodes, regular files, and (privileged) device
/// nodes, which reach only the sandbox's own devices.
fn do_mknod(t: &mut Task, dirfd: i32, path_addr: u64, mode: u32, dev: u64) -> SysResult {
    let kind = mode & libc::S_IFMT;
    match kind {
        0 | libc::S_IFREG | libc::S_IFIFO | libc::S_IFSOCK | libc::S_IFCHR | libc::S_IFBLK => {}
        libc::S_IFDIR => return Err(Errno::EPERM),
        _ => return Err(Errno::EINVAL),
    }
    let (parent, name) = new_entry(t, dirfd, path_addr)?;
    let perm = mode & 0o7777 & !current_umask(t);
    match kind {
        0 | libc::S_IFREG => {
            parent.inode().create(&name, perm, ctx(t))?;
        }
        libc::S_IFIFO | libc::S_IFSOCK => parent.inode().mknod(&name, kind | perm, 0, ctx(t))?,
        _ => {
            // CAP_MKNOD. The node only names a device: opening it reaches
            // the sandbox's own device of that number, if there is one.
            if !lock(&t.proc.creds).has_cap(cap::MKNOD) {
                return Err(Errno::EPERM);
            }
            parent.inode().mknod(&name, kind | perm, dev, ctx(t))?
        }
    }
    created(&parent, &name);
    Ok(0)
}

pub fn mknod(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_mknod(t, AT_FDCWD, a[0], a[1] as u32, a[2] & 0xffff_ffff)
}

pub fn mknodat(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_mknod(t, arg_fd(a[0]), a[1], a[2] as u32, a[3] & 0xffff_ffff)
}

pub fn mkdir(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_mkdir(t, AT_FDCWD, a[0], a[1] as u32)
}

pub fn mkdirat(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_mkdir(t, arg_fd(a[0]), a[1], a[2] as u32)
}

fn do_unlink(t: &mut Task, dirfd: i32, path_addr: u64, flags: i32) -> SysResult {
    if flags & !libc::AT_REMOVEDIR != 0 {
        return Err(Errno::EINVAL);
    }
    let path = t.read_path(path_addr)?;
    let (parent, name) = resolve_parent_at(t, dirfd, &path)?;
    let rmdir = flags & libc::AT_REMOVEDIR != 0;
    if rmdir {
        if name == b"." {
            return Err(Errno::EINVAL);
        }
        if name.is_empty() {
            return Err(Errno::EBUSY);
        }
        if name == b".." {
            return Err(Errno::ENOTEMPTY);
        }
    } else if name.is_empty() || name == b"." || name == b".." {
        return Err(Errno::EISDIR);
    }
    let target = kernel().vfs.step(&parent, &name)?;
    if target.ns().mount_at(&target.path()).is_some() {
        return Err(Errno::EBUSY);
    }
    if !rmdir && path.last() == Some(&b'/') {
        return Err(if target.inode().file_type() == FileType::Directory {
            Errno::EISDIR
        } else {
            Errno::ENOTDIR
        });
    }
    may_write(t, parent.inode())?;
    sticky_ok(t, parent.inode(), target.inode())?;
    if rmdir {
        parent.inode().rmdir(&name)?;
    } else {
        parent.inode().unlink(&name)?;
    }
    // Linux's order: the node's own events, then the directory's.
    if !rmdir {
        // The link count changed.
        notify::inode_event(target.inode(), notify::IN_ATTRIB);
    }
    if rmdir || target.inode().unlinked() {
        notify::deleted(target.inode());
    }
    notify::child_event(
        parent.inode(),
        &name,
        notify::IN_DELETE,
        Some(target.inode()),
    );
    Ok(0)
}

pub fn unlink(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_unlink(t, AT_FDCWD, a[0], 0)
}

pub fn rmdir(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_unlink(t, AT_FDCWD, a[0], libc::AT_REMOVEDIR)
}

pub fn unlinkat(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_unlink(t, arg_fd(a[0]), a[1], a[2] as i32)
}

fn do_rename(
    t: &mut Task,
    olddir: i32,
    old_addr: u64,
    newdir: i32,
    new_addr: u64,
    flags: u32,
) -> SysResult {
    let exchange = flags & libc::RENAME_EXCHANGE != 0;
    if flags & !(libc::RENAME_NOREPLACE | libc::RENAME_EXCHANGE) != 0
        || (exchange && flags & libc::RENAME_NOREPLACE != 0)
    {
        return Err(Errno::EINVAL);
    }
    let old = t.read_path(old_addr)?;
    let new = t.read_path(new_addr)?;
    let (op, oname) = resolve_parent_at(t, olddir, &old)?;
    let (np, nname) = resolve_parent_at(t, newdir, &new)?;
    for n in [&oname, &nname] {
        if n.is_empty() || n.as_slice() == b"." || n.as_slice() == b".." {
            return Err(Errno::EBUSY);
        }
    }
    let src = kernel().vfs.step(&op, &oname)?;
    // A directory cannot move below itself.
    if src.inode().file_type() == FileType::Directory && np.is_within(&src) {
        return Err(Errno::EINVAL);
    }
    if exchange {
        return exchange_names(t, (&op, &oname), (&np, &nname), &src);
    }
    if flags & libc::RENAME_NOREPLACE != 0 && kernel().vfs.step(&np, &nname).is_ok() {
        return Err(Errno::EEXIST);
    }
    may_write(t, op.inode())?;
    may_write(t, np.inode())?;
    sticky_ok(t, op.inode(), src.inode())?;
    let victim = kernel().vfs.step(&np, &nname).ok();
    if let Some(v) = &victim {
        sticky_ok(t, np.inode(), v.inode())?;
    }
    op.inode().rename(&oname, np.inode(), &nname)?;
    notify::moved(op.inode(), &oname, np.inode(), &nname, src.inode());
    if let Some(v) = victim {
        if !Arc::ptr_eq(v.inode(), src.inode()) && v.inode().unlinked() {
            notify::deleted(v.inode());
        }
    }
    Ok(0)
}

/// renameat2's RENAME_EXCHANGE: both names must exist; neither directory
/// may end up below itself; each is a rename for permissions and events.
fn exchange_names(
    t: &Task,
    (op, oname): (&Location, &[u8]),
    (np, nname): (&Location, &[u8]),
    src: &Location,
) -> SysResult {
    let dst = kernel().vfs.step(np, nname)?;
    if dst.inode().file_type() == FileType::Directory && op.is_within(&dst) {
        return Err(Errno::EINVAL);
    }
    may_write(t, op.inode())?;
    may_write(t, np.inode())?;
    sticky_ok(t, op.inode(), src.inode())?;
    sticky_ok(t, np.inode(), dst.inode())?;
    op.inode().exchange(oname, np.inode(), nname)?;
    notify::moved(op.inode(), oname, np.inode(), nname, src.inode());
    notify::moved(np.inode(), nname, op.inode(), oname, dst.inode());
    Ok(0)
}

pub fn rename(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_rename(t, AT_FDCWD, a[0], AT_FDCWD, a[1], 0)
}

pub fn renameat(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_rename(t, arg_fd(a[0]), a[1], arg_fd(a[2]), a[3], 0)
}

pub fn renameat2(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_rename(t, arg_fd(a[0]), a[1], arg_fd(a[2]), a[3], a[4] as u32)
}

fn do_symlink(t: &mut Task, target_addr: u64, dirfd: i32, path_addr: u64) -> SysResult {
    let target = t.read_path(target_addr)?;
    if target.is_empty() {
        return Err(Errno::ENOENT);
    }
    let path = t.read_path(path_addr)?;
    let (parent, name) = resolve_parent_at(t, dirfd, &path)?;
    if name.is_empty() || name == b"." || name == b".." || kernel().vfs.step(&parent, &name).is_ok()
    {
        return Err(Errno::EEXIST);
    }
    may_write(t, parent.inode())?;
    parent.inode().symlink(&name, &target, ctx(t))?;
    created(&parent, &name);
    Ok(0)
}

pub fn symlink(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_symlink(t, a[0], AT_FDCWD, a[1])
}

pub fn symlinkat(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_symlink(t, a[0], arg_fd(a[1]), a[2])
}

// ---- attributes ------------------------------------------------------------------

/// The caller owns the node or has CAP_FOWNER (Linux's
/// inode_owner_or_capable), on a writable mount: EROFS comes first, as
/// Linux takes the mount's write access before any permission check.
fn owner_or_root(t: &Task, inode: &Arc<dyn Inode>) -> Result<(), Errno> {
    if inode.read_only() {
        return Err(Errno::EROFS);
    }
    if !is_owner_or_fowner(t, &inode.stat()?) {
        return Err(Errno::EPERM);
    }
    Ok(())
}

pub(super) fn is_owner_or_fowner(t: &Task, st: &FileStat) -> bool {
    let c = lock(&t.proc.creds);
    c.euid == st.uid || c.has_cap(cap::FOWNER)
}

/// chmod's change: a caller outside the node's group without CAP_FSETID
/// cannot set its set-group-ID bit (Linux's setattr_prepare drops it).
fn change_mode(t: &Task, target: &Target, mode: u32) -> SysResult {
    owner_or_root(t, target)?;
    let st = target.stat()?;
    let mut mode = mode & 0o7777;
    if mode & libc::S_ISGID != 0 {
        let c = lock(&t.proc.creds);
        let in_group = c.egid == st.gid || c.groups.contains(&st.gid);
        if !in_group && !c.has_cap(cap::FSETID) {
            mode &= !libc::S_ISGID;
        }
    }
    target.set_attr(&SetAttr {
        mode: Some(mode),
        ..Default::default()
    })?;
    target.event(notify::IN_ATTRIB);
    Ok(0)
}

/// IN_CREATE for a new entry of `parent`.
fn created(parent: &Location, name: &[u8]) {
    if let Ok(loc) = kernel().vfs.step(parent, name) {
        notify::child_event(parent.inode(), name, notify::IN_CREATE, Some(loc.inode()));
    }
}

/// The object an attribute call acts on: its inode, and where it was
/// found (for inotify's events on the parent directory).
struct Target {
    inode: Arc<dyn Inode>,
    loc: Option<Location>,
}

impl std::ops::Deref for Target {
    type Target = Arc<dyn Inode>;
    fn deref(&self) -> &Arc<dyn Inode> {
        &self.inode
    }
}

impl Target {
    fn of_file(f: &OpenFile) -> Result<Target, Errno> {
        Ok(Target {
            inode: f.inode().cloned().ok_or(Errno::EBADF)?,
            loc: f.location.clone(),
        })
    }

    /// IN_ATTRIB (or another event) for the target and its directory.
    fn event(&self, mask: u32) {
        match &self.loc {
            Some(l) => notify::file_event(l, mask),
            None => notify::inode_event(&self.inode, mask),
        }
    }
}

fn fd_or_path(
    t: &Task,
    dirfd: i32,
    path_addr: u64,
    follow: bool,
    empty_ok: bool,
) -> Result<Target, Errno> {
    let path = t.read_path(path_addr)?;
    if path.is_empty() && empty_ok && dirfd != AT_FDCWD {
        return Target::of_file(&*get_file_raw(t, dirfd)?);
    }
    let loc = resolve_at(t, dirfd, &path, follow, empty_ok)?;
    Ok(Target {
        inode: loc.inode().clone(),
        loc: Some(loc),
    })
}

fn fd_inode(t: &Task, fd: i32) -> Result<Target, Errno> {
    Target::of_file(&*get_file(t, fd)?)
}

pub fn chmod(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let i = fd_or_path(t, AT_FDCWD, a[0], true, false)?;
    change_mode(t, &i, a[1] as u32)
}

pub fn fchmod(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let i = fd_inode(t, arg_fd(a[0]))?;
    change_mode(t, &i, a[1] as u32)
}

pub fn fchmodat(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let i = fd_or_path(t, arg_fd(a[0]), a[1], true, false)?;
    change_mode(t, &i, a[2] as u32)
}

/// fchmodat2: fchmodat with flags. A symlink has no mode of its own
/// (EOPNOTSUPP with AT_SYMLINK_NOFOLLOW).
pub fn fchmodat2(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let flags = a[3] as i32;
    if flags & !(libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
    let empty_ok = flags & libc::AT_EMPTY_PATH != 0;
    let i = fd_or_path(t, arg_fd(a[0]), a[1], follow, empty_ok)?;
    if !follow && i.file_type() == FileType::Symlink {
        return Err(Errno::EOPNOTSUPP);
    }
    change_mode(t, &i, a[2] as u32)
}

/// chown: Linux's rules (chown_ok/chgrp_ok) — only a privileged caller
/// gives a file away; its owner may change the group to one of its own —
/// and a non-directory loses set-user-ID, and set-group-ID when group
/// execute is set, as notify_change does.
fn do_chown(t: &Task, target: &Target, uid: u64, gid: u64) -> SysResult {
    let inode: &Arc<dyn Inode> = target;
    let conv = |v: u64| {
        if v as u32 == u32::MAX {
            None
        } else {
            Some(v as u32)
        }
    };
    let (uid, gid) = (conv(uid), conv(gid));
    if inode.read_only() {
        return Err(Errno::EROFS);
    }
    let st = inode.stat()?;
    let (euid, egid, groups, chown_cap) = {
        let c = lock(&t.proc.creds);
        (c.euid, c.egid, c.groups.clone(), c.has_cap(cap::CHOWN))
    };
    if !chown_cap {
        let uid_ok = uid.is_none_or(|u| u == st.uid && euid == st.uid);
        let gid_ok =
            gid.is_none_or(|g| euid == st.uid && (g == st.gid || g == egid || groups.contains(&g)));
        if !uid_ok || !gid_ok {
            return Err(Errno::EPERM);
        }
    }
    let mut attr = SetAttr {
        uid,
        gid,
        ..Default::default()
    };
    if st.mode & libc::S_IFMT != libc::S_IFDIR {
        let mut mode = st.mode & 0o7777;
        mode &= !libc::S_ISUID;
        if mode & libc::S_IXGRP != 0 {
            mode &= !libc::S_ISGID;
        }
        if mode != st.mode & 0o7777 {
            attr.mode = Some(mode);
        }
    }
    inode.set_attr(&attr)?;
    target.event(notify::IN_ATTRIB);
    Ok(0)
}

pub fn chown(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let i = fd_or_path(t, AT_FDCWD, a[0], true, false)?;
    do_chown(t, &i, a[1], a[2])
}

pub fn lchown(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let i = fd_or_path(t, AT_FDCWD, a[0], false, false)?;
    do_chown(t, &i, a[1], a[2])
}

pub fn fchown(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let i = fd_inode(t, arg_fd(a[0]))?;
    do_chown(t, &i, a[1], a[2])
}

pub fn fchownat(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let flags = a[4] as i32;
    if flags & !(libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let i = fd_or_path(
        t,
        arg_fd(a[0]),
        a[1],
        flags & libc::AT_SYMLINK_NOFOLLOW == 0,
        flags & libc::AT_EMPTY_PATH != 0,
    )?;
    do_chown(t, &i, a[2], a[3])
}

/// New access and modification times: each a time, `UTIME_NOW` or
/// `UTIME_OMIT` in its nanoseconds; None for "both now".
type Times = Option<[(i64, i64); 2]>;

pub fn utimensat(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (dirfd, path_addr, times, flags) = (arg_fd(a[0]), a[1], a[2], a[3] as i32);
    if flags & !(libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let times: Times = if times == 0 {
        None
    } else {
        let ts: [libc::timespec; 2] = [t.read_obj(times)?, t.read_obj(times + 16)?];
        for x in &ts {
            let valid = (0..1_000_000_000).contains(&x.tv_nsec)
                || x.tv_nsec == libc::UTIME_NOW
                || x.tv_nsec == libc::UTIME_OMIT;
            if !valid {
                return Err(Errno::EINVAL);
            }
        }
        Some([(ts[0].tv_sec, ts[0].tv_nsec), (ts[1].tv_sec, ts[1].tv_nsec)])
    };
    // Nothing to change: done before the path is even looked up, as Linux.
    if times.is_some_and(|ts| ts.iter().all(|x| x.1 == libc::UTIME_OMIT)) {
        return Ok(0);
    }
    let target = if path_addr == 0 {
        // (NULL names dirfd; with AT_FDCWD, Linux reads the NULL path.)
        if dirfd == AT_FDCWD {
            return Err(Errno::EFAULT);
        }
        fd_inode(t, dirfd)?
    } else {
        fd_or_path(
            t,
            dirfd,
            path_addr,
            flags & libc::AT_SYMLINK_NOFOLLOW == 0,
            flags & libc::AT_EMPTY_PATH != 0,
        )?
    };
    set_times(t, &target, times)
}

/// utimes(2) and futimesat(2): times as two `struct timeval`s (NULL: now).
fn timevals(t: &Task, addr: u64) -> Result<Times, Errno> {
    if addr == 0 {
        return Ok(None);
    }
    let tv: [libc::timeval; 2] = [t.read_obj(addr)?, t.read_obj(addr + 16)?];
    let mut out = [(0, 0); 2];
    for (o, x) in out.iter_mut().zip(&tv) {
        if !(0..1_000_000).contains(&x.tv_usec) {
            return Err(Errno::EINVAL);
        }
        *o = (x.tv_sec, x.tv_usec * 1000);
    }
    Ok(Some(out))
}

pub fn utimes(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let times = timevals(t, a[1])?;
    let target = fd_or_path(t, AT_FDCWD, a[0], true, false)?;
    set_times(t, &target, times)
}

pub fn futimesat(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let times = timevals(t, a[2])?;
    let target = if a[1] == 0 {
        if arg_fd(a[0]) == AT_FDCWD {
            return Err(Errno::EFAULT);
        }
        fd_inode(t, arg_fd(a[0]))?
    } else {
        fd_or_path(t, arg_fd(a[0]), a[1], true, false)?
    };
    set_times(t, &target, times)
}

/// utime(2): times as a `struct utimbuf` (whole seconds; NULL: now).
pub fn utime(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let times = if a[1] == 0 {
        None
    } else {
        // struct utimbuf: two time_t.
        let times: [i64; 2] = [t.read_obj(a[1])?, t.read_obj(a[1] + 8)?];
        Some([(times[0], 0), (times[1], 0)])
    };
    let target = fd_or_path(t, AT_FDCWD, a[0], true, false)?;
    set_times(t, &target, times)
}

/// Linux's vfs_utimes: EROFS first; setting both times to now needs
/// ownership, CAP_FOWNER or write permission (EACCES), setting any other
/// way ownership or CAP_FOWNER (EPERM).
fn set_times(t: &Task, target: &Target, times: Times) -> SysResult {
    let times = times.filter(|ts| !ts.iter().all(|x| x.1 == libc::UTIME_NOW));
    if target.read_only() {
        return Err(Errno::EROFS);
    }
    let st = target.stat()?;
    if !is_owner_or_fowner(t, &st) {
        match times {
            None => check_access(&lock(&t.proc.creds), &st, 2, false)?,
            Some(_) => return Err(Errno::EPERM),
        }
    }
    let now = crate::vfs::now();
    let conv = |x: (i64, i64)| match x.1 {
        libc::UTIME_NOW => Some(now),
        libc::UTIME_OMIT => None,
        _ => Some(x),
    };
    let (atime, mtime) = match times {
        None => (Some(now), Some(now)),
        Some([at, mt]) => (conv(at), conv(mt)),
    };
    target.set_attr(&SetAttr {
        atime,
        mtime,
        ..Default::default()
    })?;
    target.event(notify::IN_ATTRIB);
    Ok(0)
}

pub fn truncate(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let len = a[1] as i64;
    if len < 0 {
        return Err(Errno::EINVAL);
    }
    let path = t.read_path(a[0])?;
    let loc = resolve_at(t, AT_FDCWD, &path, true, false)?;
    let inode = loc.inode();
    if inode.file_type() == FileType::Directory {
        return Err(Errno::EISDIR);
    }
    may_write(t, inode)?;
    if crate::vfs::text::busy(inode) {
        return Err(Errno::ETXTBSY);
    }
    super::file::check_fsize(t, len as u64)?;
    inode.set_attr(&SetAttr {
        size: Some(len as u64),
        ..Default::default()
    })?;
    notify::file_event(&loc, notify::IN_MODIFY);
    Ok(0)
}

pub fn ftruncate(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let len = a[1] as i64;
    if len < 0 {
        return Err(Errno::EINVAL);
    }
    let f = get_file(t, arg_fd(a[0]))?;
    if !f.writable() || f.ops.is_dir() {
        return Err(Errno::EINVAL);
    }
    super::file::check_fsize(t, len as u64)?;
    f.ops.truncate(len as u64)?;
    if let Some(loc) = &f.location {
        notify::file_event(loc, notify::IN_MODIFY);
    }
    Ok(0)
}

fn do_link(
    t: &mut Task,
    olddir: i32,
    old_addr: u64,
    newdir: i32,
    new_addr: u64,
    flags: i32,
) -> SysResult {
    if flags & !(libc::AT_SYMLINK_FOLLOW | libc::AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let old = t.read_path(old_addr)?;
    let new = t.read_path(new_addr)?;
    let src = resolve_at(
        t,
        olddir,
        &old,
        flags & libc::AT_SYMLINK_FOLLOW != 0,
        flags & libc::AT_EMPTY_PATH != 0,
    )?;
    if src.inode().file_type() == FileType::Directory {
        return Err(Errno::EPERM);
    }
    let (parent, name) = resolve_parent_at(t, newdir, &new)?;
    if name.is_empty() || name == b"." || name == b".." || kernel().vfs.step(&parent, &name).is_ok()
    {
        return Err(Errno::EEXIST);
    }
    may_write(t, parent.inode())?;
    parent.inode().link(&name, src.inode())?;
    notify::inode_event(src.inode(), notify::IN_ATTRIB);
    created(&parent, &name);
    Ok(0)
}

pub fn link(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_link(t, AT_FDCWD, a[0], AT_FDCWD, a[1], 0)
}

pub fn linkat(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_link(t, arg_fd(a[0]), a[1], arg_fd(a[2]), a[3], a[4] as i32)
}

pub fn fallocate(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (fd, mode, off, len) = (arg_fd(a[0]), a[1] as i32, a[2] as i64, a[3] as i64);
    let f = get_file(t, fd)?;
    if off < 0 || len <= 0 {
        return Err(Errno::EINVAL);
    }
    let known = libc::FALLOC_FL_KEEP_SIZE | libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_ZERO_RANGE;
    if mode & !known != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    // Punching a hole must keep the size, as on Linux.
    if mode & libc::FALLOC_FL_PUNCH_HOLE != 0
        && (mode & libc::FALLOC_FL_KEEP_SIZE == 0 || mode & libc::FALLOC_FL_ZERO_RANGE != 0)
    {
        return Err(Errno::EOPNOTSUPP);
    }
    if !f.writable() {
        return Err(Errno::EBADF);
    }
    if f.ops.is_pipe() {
        return Err(Errno::ESPIPE);
    }
    if f.ops.is_dir() {
        return Err(Errno::EISDIR);
    }
    if off.checked_add(len).is_none() {
        return Err(Errno::EFBIG);
    }
    f.ops.fallocate(mode, off as u64, len as u64)?;
    Ok(0)
}
