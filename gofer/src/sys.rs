//! Thin wrappers around the few host calls that need `unsafe`, so the rest
//! of the crate is safe code. Each wrapper states why its use is sound.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, FcntlArg, OFlag};
use nix::sys::stat::Mode;

/// `openat(2)` returning an owned fd, so it can never leak or be closed twice.
pub(crate) fn openat(dir: BorrowedFd<'_>, name: &CStr, flags: OFlag) -> Result<OwnedFd, Errno> {
    let raw = nix::fcntl::openat(Some(dir.as_raw_fd()), name, flags, Mode::empty())?;
    // SAFETY: openat just returned this fd; nothing else in the process owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// `fstat` of exactly the node `fd` names, never of what a symlink points to
/// (an `O_PATH|O_NOFOLLOW` fd may be a symlink itself).
pub(crate) fn fstat(fd: BorrowedFd<'_>) -> Result<libc::stat, Errno> {
    nix::sys::stat::fstatat(
        Some(fd.as_raw_fd()),
        c"",
        AtFlags::AT_EMPTY_PATH | AtFlags::AT_SYMLINK_NOFOLLOW,
    )
}

/// Takes ownership of an fd the kernel just installed in this process from an
/// `SCM_RIGHTS` message.
pub(crate) fn adopt_received_fd(raw: RawFd) -> OwnedFd {
    // SAFETY: recvmsg installed this fd moments ago and it was handed to us
    // exactly once by the control-message iterator; nothing else owns it.
    unsafe { OwnedFd::from_raw_fd(raw) }
}

/// Takes ownership of an fd inherited from the parent (the socket the CLI
/// passes by number), after checking that it is open at all.
///
/// The caller must guarantee that nothing else in the process owns `raw`;
/// [`crate::run`] documents that contract for its `sock_fd`.
pub(crate) fn adopt_inherited_fd(raw: RawFd) -> Result<OwnedFd, Errno> {
    if raw < 0 {
        return Err(Errno::EBADF);
    }
    nix::fcntl::fcntl(raw, FcntlArg::F_GETFD)?;
    // SAFETY: the fd is open (F_GETFD succeeded) and by `run`'s documented
    // contract the caller transfers its sole ownership to us.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Moves `fd` to a number above stdio (>= 3), close-on-exec, so that
/// pointing stdin/stdout at /dev/null can never clobber it. Needed when the
/// parent started us with some of fds 0-2 closed or passed the socket as one.
pub(crate) fn above_stdio(fd: OwnedFd) -> Result<OwnedFd, Errno> {
    if fd.as_raw_fd() > libc::STDERR_FILENO {
        return Ok(fd);
    }
    let raw = nix::fcntl::fcntl(
        fd.as_raw_fd(),
        FcntlArg::F_DUPFD_CLOEXEC(libc::STDERR_FILENO + 1),
    )?;
    // SAFETY: F_DUPFD_CLOEXEC just created this fd; nothing else owns it.
    let moved = unsafe { OwnedFd::from_raw_fd(raw) };
    drop(fd);
    Ok(moved)
}

/// Whether `fd` is open in this process.
pub(crate) fn is_open(fd: RawFd) -> bool {
    nix::fcntl::fcntl(fd, FcntlArg::F_GETFD).is_ok()
}

/// Closes every fd of the process except those in `keep`.
///
/// This runs once in the gofer process right after confinement, so that no
/// fd inherited from the CLI (which may point outside the rootfs) survives
/// into the serving loop.
pub(crate) fn close_all_fds_except(keep: &[RawFd]) -> Result<(), Errno> {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter_map(|&fd| u32::try_from(fd).ok())
        .collect();
    keep.sort_unstable();
    keep.dedup();
    let mut first: u32 = 0;
    for &fd in &keep {
        if fd > first {
            close_range(first, fd - 1)?;
        }
        first = fd.saturating_add(1);
    }
    close_range(first, u32::MAX)
}

fn close_range(first: u32, last: u32) -> Result<(), Errno> {
    // SAFETY: closing fds cannot violate memory safety by itself. The only
    // hazard is an `OwnedFd` elsewhere in the process whose number we close;
    // `run` documents that the process must own no fds besides the ones it
    // passes in, and it never returns while any of ours are in use.
    let res = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
    Errno::result(res).map(drop)
}
