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
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

/// chown, utimes and statfs of a node through its own fd: the gofer's.
pub use gofer::node_calls::{chown_node as chown, fs_stat, set_times};
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

/// The attributes of the node `fd` is open on, by the `fstat` system call
/// itself: glibc's `fstat` is `fstatat(fd, "", AT_EMPTY_PATH)`, which
/// makes the kernel read and check the empty path first (a tenth of the
/// call, on every stat of a volume file).
pub fn stat(fd: BorrowedFd<'_>) -> Result<libc::stat, Errno> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes one struct stat, for which `st` has room, and
    // reads nothing of ours.
    let r = unsafe { libc::syscall(libc::SYS_fstat, fd.as_raw_fd(), st.as_mut_ptr()) };
    Errno::result(r)?;
    // SAFETY: the call succeeded, so the kernel filled all of `st` in.
    Ok(unsafe { st.assume_init() })
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

/// Opens `name` in `dir` with `flags` only as the regular file `id`
/// (device, inode), which the caller found there: on a nodev mount (a
/// device the host swapped in could not be opened at all), non-blocking
/// and without taking a terminal (nor could a FIFO block the sentry), and
/// checked again on the open fd (the name may have changed meanwhile).
/// O_NONBLOCK stays set on the fd.
pub fn reopen_regular(
    dir: BorrowedFd<'_>,
    name: &CStr,
    id: (u64, u64),
    flags: OFlag,
) -> Option<OwnedFd> {
    if !nodev(dir) {
        return None;
    }
    let file = open_node(dir, name, flags | OFlag::O_NONBLOCK | OFlag::O_NOCTTY, 0).ok()?;
    let same = stat(file.as_fd())
        .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG && (st.st_dev, st.st_ino) == id);
    same.then_some(file)
}

/// Whether the mount `fd` lies on refuses device nodes (nodev): opens by
/// name there can reach no host device.
pub fn nodev(fd: BorrowedFd<'_>) -> bool {
    nix::sys::statvfs::fstatvfs(fd)
        .is_ok_and(|st| st.flags().contains(nix::sys::statvfs::FsFlags::ST_NODEV))
}
