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

/// A close-on-exec duplicate of `fd` (to donate while keeping ours).
pub(crate) fn dup(fd: &OwnedFd) -> Result<OwnedFd, Errno> {
    fd.try_clone()
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EMFILE)))
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

/// `openat(2)` with a creation mode (for `O_CREAT|O_EXCL`).
pub(crate) fn openat_create(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: OFlag,
    mode: u32,
) -> Result<OwnedFd, Errno> {
    let raw = nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        name,
        flags,
        Mode::from_bits_retain(mode),
    )?;
    // SAFETY: openat just returned this fd; nothing else in the process owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// `fchownat(fd, "", uid, gid, AT_EMPTY_PATH)`: changes the owner of exactly
/// the node `fd` names (a symlink itself, never its target). `None` keeps.
pub fn chown_node(fd: BorrowedFd<'_>, uid: Option<u32>, gid: Option<u32>) -> Result<(), Errno> {
    nix::unistd::fchownat(
        Some(fd.as_raw_fd()),
        c"",
        uid.map(nix::unistd::Uid::from_raw),
        gid.map(nix::unistd::Gid::from_raw),
        AtFlags::AT_EMPTY_PATH,
    )
}

/// `utimensat(fd, "", times, AT_EMPTY_PATH)`: sets the times of exactly the
/// node `fd` names. Each time is `(sec, nsec)`; `UTIME_OMIT` keeps one.
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
    // SAFETY: the path is a valid empty C string, `times` is an array of
    // two initialised timespecs that outlives the call, and the fd is
    // borrowed for the call's duration.
    let r = unsafe {
        libc::utimensat(
            fd.as_raw_fd(),
            c"".as_ptr(),
            times.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Errno::result(r).map(drop)
}

/// `fstatfs` (works on `O_PATH` fds).
pub(crate) fn fstatfs(fd: BorrowedFd<'_>) -> Result<libc::statfs, Errno> {
    let mut st = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: `st` is a writable statfs-sized buffer; the kernel fills it
    // completely on success, and we read it only then.
    let r = unsafe { libc::fstatfs(fd.as_raw_fd(), st.as_mut_ptr()) };
    Errno::result(r)?;
    // SAFETY: fstatfs succeeded, so the struct is initialised.
    Ok(unsafe { st.assume_init() })
}

/// statfs(2) of the filesystem holding the node `fd` is open on, as the
/// protocol carries it (an `O_PATH` fd will do).
pub fn fs_stat(fd: BorrowedFd<'_>) -> Result<crate::protocol::FsStat, Errno> {
    let st = fstatfs(fd)?;
    // libc's statfs hides f_flags; statvfs has them as ST_* bits.
    let flags = nix::sys::statvfs::fstatvfs(fd)?.flags().bits();
    #[allow(clippy::useless_conversion, clippy::unnecessary_cast)]
    Ok(crate::protocol::FsStat {
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

/// `fgetxattr`: the value of `name`, sized by a first probing call.
pub(crate) fn fgetxattr(fd: BorrowedFd<'_>, name: &CStr) -> Result<Vec<u8>, Errno> {
    loop {
        // SAFETY: a NULL buffer of size 0 asks only for the value's size.
        let size =
            unsafe { libc::fgetxattr(fd.as_raw_fd(), name.as_ptr(), std::ptr::null_mut(), 0) };
        let size = usize::try_from(Errno::result(size)?).map_err(|_| Errno::EIO)?;
        let mut buf = vec![0u8; size];
        // SAFETY: `buf` is writable for `buf.len()` bytes for the whole call.
        let got = unsafe {
            libc::fgetxattr(
                fd.as_raw_fd(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        match Errno::result(got) {
            Ok(n) => {
                buf.truncate(usize::try_from(n).map_err(|_| Errno::EIO)?);
                return Ok(buf);
            }
            // The value grew between the two calls: ask again.
            Err(Errno::ERANGE) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `fsetxattr`.
pub(crate) fn fsetxattr(
    fd: BorrowedFd<'_>,
    name: &CStr,
    value: &[u8],
    flags: i32,
) -> Result<(), Errno> {
    // SAFETY: `value` is readable for its length for the whole call.
    let r = unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    };
    Errno::result(r).map(drop)
}

/// `flistxattr`: the names, each without its NUL.
pub(crate) fn flistxattr(fd: BorrowedFd<'_>) -> Result<Vec<Vec<u8>>, Errno> {
    loop {
        // SAFETY: a NULL buffer of size 0 asks only for the list's size.
        let size = unsafe { libc::flistxattr(fd.as_raw_fd(), std::ptr::null_mut(), 0) };
        let size = usize::try_from(Errno::result(size)?).map_err(|_| Errno::EIO)?;
        let mut buf = vec![0u8; size];
        // SAFETY: `buf` is writable for `buf.len()` bytes for the whole call.
        let got = unsafe { libc::flistxattr(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match Errno::result(got) {
            Ok(n) => {
                buf.truncate(usize::try_from(n).map_err(|_| Errno::EIO)?);
                return Ok(buf
                    .split(|&b| b == 0)
                    .filter(|n| !n.is_empty())
                    .map(<[u8]>::to_vec)
                    .collect());
            }
            Err(Errno::ERANGE) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `fremovexattr`.
pub(crate) fn fremovexattr(fd: BorrowedFd<'_>, name: &CStr) -> Result<(), Errno> {
    // SAFETY: `name` is a valid C string for the whole call.
    let r = unsafe { libc::fremovexattr(fd.as_raw_fd(), name.as_ptr()) };
    Errno::result(r).map(drop)
}

/// `mount_setattr(path, AT_RECURSIVE, MOUNT_ATTR_NODEV)` (Linux 5.12): no
/// mount at or below `path` lets a device node be opened.
pub(crate) fn set_nodev_recursive(path: &std::path::Path) -> Result<(), Errno> {
    use std::os::unix::ffi::OsStrExt;
    // struct mount_attr (include/uapi/linux/mount.h).
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const MOUNT_ATTR_NODEV: u64 = 0x4;
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_NODEV,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: the path is a valid C string and `attr` a struct mount_attr
    // of the size passed; both are only read for the duration of the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(r).map(drop)
}
