//! The sentry's own host calls on a gofer mount (gVisor's directfs): thin
//! wrappers that change the tree through the fds the gofer donated,
//! without a round trip to it.
//!
//! Every call names at most one path component, relative to a donated
//! directory fd, and never follows a symlink in it (`O_NOFOLLOW`,
//! `AT_SYMLINK_NOFOLLOW`, or calls that act on the last component itself:
//! mkdirat, symlinkat, unlinkat, renameat2); calls on a node itself go
//! through its own fd with an empty path (`AT_EMPTY_PATH`). Names are
//! checked by the caller (`single_component`), so nothing here can reach
//! outside the directory it is given, whatever the host does to the tree
//! meanwhile: the directory fd pins its inode, and the gofer's
//! `pivot_root` keeps even a rename of it inside the mount.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

/// Creates and opens a new regular file `name` in `dir`, read-write. With
/// `O_EXCL`, an existing name (a symlink too) is EEXIST.
pub fn create_file(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> Result<OwnedFd, Errno> {
    open_node(
        dir,
        name,
        OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL,
        mode,
    )
}

/// `openat(dir, name, flags | O_NOFOLLOW | O_CLOEXEC, mode)`: a symlink
/// at `name` is never followed (ELOOP, or the link itself with O_PATH).
pub fn open_node(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: OFlag,
    mode: u32,
) -> Result<OwnedFd, Errno> {
    let raw = nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        name,
        flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_retain(mode),
    )?;
    // SAFETY: openat just returned this fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// An `O_PATH` fd of exactly the node `fd` is open on (`open_tree` with an
/// empty path, which clones no mount and walks nowhere).
pub fn path_fd_of(fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    // SAFETY: open_tree reads only the empty C string and returns a new
    // fd or -1; no memory of ours is written.
    let raw = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            fd.as_raw_fd(),
            c"".as_ptr(),
            (libc::AT_EMPTY_PATH as libc::c_uint) | libc::OPEN_TREE_CLOEXEC,
        )
    };
    if raw < 0 {
        return Err(Errno::last());
    }
    let raw = i32::try_from(raw).map_err(|_| Errno::EBADF)?;
    // SAFETY: the kernel just returned this fd; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

pub fn mkdir(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> Result<(), Errno> {
    nix::sys::stat::mkdirat(Some(dir.as_raw_fd()), name, Mode::from_bits_retain(mode))
}

pub fn symlink(target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> Result<(), Errno> {
    nix::unistd::symlinkat(target, Some(dir.as_raw_fd()), name)
}

pub fn unlink(dir: BorrowedFd<'_>, name: &CStr, remove_dir: bool) -> Result<(), Errno> {
    let how = if remove_dir {
        nix::unistd::UnlinkatFlags::RemoveDir
    } else {
        nix::unistd::UnlinkatFlags::NoRemoveDir
    };
    nix::unistd::unlinkat(Some(dir.as_raw_fd()), name, how)
}

/// renameat2 with `flags` (0 or RENAME_EXCHANGE).
pub fn rename(
    old_dir: BorrowedFd<'_>,
    old: &CStr,
    new_dir: BorrowedFd<'_>,
    new: &CStr,
    flags: u32,
) -> Result<(), Errno> {
    nix::fcntl::renameat2(
        Some(old_dir.as_raw_fd()),
        old,
        Some(new_dir.as_raw_fd()),
        new,
        nix::fcntl::RenameFlags::from_bits_retain(flags),
    )
}

/// The attributes of `name` in `dir`, not following a symlink.
pub fn stat_at(dir: BorrowedFd<'_>, name: &CStr) -> Result<libc::stat, Errno> {
    nix::sys::stat::fstatat(
        Some(dir.as_raw_fd()),
        name,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
}

pub fn stat(fd: BorrowedFd<'_>) -> Result<libc::stat, Errno> {
    nix::sys::stat::fstat(fd.as_raw_fd())
}

/// Changes the owner of exactly the node `fd` is open on (a symlink's
/// own, for an `O_PATH` fd of one).
pub fn chown(fd: BorrowedFd<'_>, uid: Option<u32>, gid: Option<u32>) -> Result<(), Errno> {
    nix::unistd::fchownat(
        Some(fd.as_raw_fd()),
        c"",
        uid.map(nix::unistd::Uid::from_raw),
        gid.map(nix::unistd::Gid::from_raw),
        nix::fcntl::AtFlags::AT_EMPTY_PATH,
    )
}

/// Changes the mode of exactly the node `fd` is open on (`fchmodat2` with
/// an empty path, Linux 6.6; ENOSYS or EINVAL before it). A symlink's is
/// EOPNOTSUPP, as lchmod's.
pub fn chmod(fd: BorrowedFd<'_>, mode: u32) -> Result<(), Errno> {
    // SAFETY: fchmodat2 reads only the empty C string; no memory of ours
    // is written.
    let r = unsafe {
        libc::syscall(
            libc::SYS_fchmodat2,
            fd.as_raw_fd(),
            c"".as_ptr(),
            mode & 0o7777,
            libc::AT_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Sets the times of exactly the node `fd` is open on. Each time is
/// `(sec, nsec)`; `UTIME_OMIT` keeps one, `UTIME_NOW` takes the host's.
pub fn set_times(fd: BorrowedFd<'_>, atime: (i64, i64), mtime: (i64, i64)) -> Result<(), Errno> {
    let times = [
        libc::timespec {
            tv_sec: atime.0,
            tv_nsec: atime.1,
        },
        libc::timespec {
            tv_sec: mtime.0,
            tv_nsec: mtime.1,
        },
    ];
    // SAFETY: the path is a valid empty C string and `times` an array of
    // two timespecs, both read only for the duration of the call.
    let r = unsafe {
        libc::utimensat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            times.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Whether the mount `fd` lies on refuses device nodes (nodev): opens by
/// name there can reach no host device.
pub fn nodev(fd: BorrowedFd<'_>) -> bool {
    nix::sys::statvfs::fstatvfs(fd)
        .is_ok_and(|st| st.flags().contains(nix::sys::statvfs::FsFlags::ST_NODEV))
}

/// statfs(2) of the filesystem holding the node `fd` is open on (an
/// `O_PATH` fd will do).
pub fn statfs(fd: BorrowedFd<'_>) -> Option<crate::vfs::FsStat> {
    let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: fstatfs fills the struct it is given; read only on success.
    let st = unsafe {
        if libc::fstatfs(fd.as_raw_fd(), st.as_mut_ptr()) < 0 {
            return None;
        }
        st.assume_init()
    };
    // libc's statfs hides f_flags; statvfs has them as ST_* bits.
    let flags = nix::sys::statvfs::fstatvfs(fd).ok()?.flags().bits();
    #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
    Some(crate::vfs::FsStat {
        fs_type: st.f_type as i64,
        block_size: st.f_bsize as i64,
        blocks: st.f_blocks as u64,
        blocks_free: st.f_bfree as u64,
        blocks_available: st.f_bavail as u64,
        files: st.f_files as u64,
        files_free: st.f_ffree as u64,
        name_max: st.f_namelen as i64,
        fragment_size: st.f_frsize as i64,
        flags: flags as i64,
    })
}
