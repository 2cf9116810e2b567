//! Files backed by a host fd the sentry holds: files the gofer donated,
//! sentry-owned pipes, and the container's stdio.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use nix::errno::Errno;

use crate::vfs::{FileOps, FileStat, VfsResult};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum HostKind {
    /// A regular file or directory the gofer opened: positional I/O.
    File,
    /// A pipe end created by the sentry.
    Pipe,
    /// Anything else inherited as stdio (terminal, pipe, /dev/null, file).
    Stdio,
    /// An eventfd or timerfd the sentry created for the application.
    Event,
}

pub struct HostFile {
    /// Shared when several open files of a gofer file read through the
    /// one read-only fd its walk brought: their offsets are the sentry's
    /// (positional I/O), so sharing the host description is invisible.
    fd: Arc<OwnedFd>,
    kind: HostKind,
    tty: bool,
    seekable: bool,
}

impl HostFile {
    pub fn new(fd: OwnedFd, kind: HostKind) -> HostFile {
        HostFile::shared(Arc::new(fd), kind)
    }

    /// A file on a host fd other open files may use too (see [`HostFile::fd`]).
    pub fn shared(fd: Arc<OwnedFd>, kind: HostKind) -> HostFile {
        // A gofer file is a regular file (the gofer's devices never get
        // here): no ioctl to ask, on every open.
        // SAFETY: isatty only inspects the fd we own.
        let tty = kind != HostKind::File && unsafe { libc::isatty(fd.as_raw_fd()) } == 1;
        let seekable = match kind {
            HostKind::File => true,
            HostKind::Pipe | HostKind::Event => false,
            HostKind::Stdio => {
                !tty && nix::unistd::lseek(fd.as_raw_fd(), 0, nix::unistd::Whence::SeekCur).is_ok()
            }
        };
        HostFile {
            fd,
            kind,
            tty,
            seekable,
        }
    }
}

impl FileOps for HostFile {
    fn seekable(&self) -> bool {
        self.seekable
    }

    fn read_at(&self, buf: &mut [u8], off: u64) -> VfsResult<usize> {
        let fd = self.fd.as_raw_fd();
        if self.seekable {
            retry_host(|| nix::sys::uio::pread(&self.fd, buf, off as i64))
        } else {
            retry_host(|| nix::unistd::read(fd, buf))
        }
    }

    fn write_at(&self, buf: &[u8], off: u64) -> VfsResult<usize> {
        // A gofer file opened read-only answers EBADF from the host; the
        // sentry has checked the description's access mode before.
        if self.seekable {
            retry_host(|| nix::sys::uio::pwrite(&self.fd, buf, off as i64))
        } else {
            retry_host(|| nix::unistd::write(&self.fd, buf))
        }
    }

    fn host_offset(&self) -> bool {
        self.kind == HostKind::Stdio
    }

    fn mmap_backing(&self) -> VfsResult<Option<crate::vfs::MmapBacking>> {
        if self.kind != HostKind::File {
            return Ok(None);
        }
        // The host itself refuses a writable shared mapping of an fd the
        // gofer donated read-only.
        let st = nix::sys::stat::fstat(self.fd.as_raw_fd())?;
        Ok(Some(crate::vfs::MmapBacking {
            fd: self.fd.as_raw_fd(),
            id: (1 << 63) | ((st.st_dev as u64) << 40) ^ st.st_ino as u64,
            file: Some(self.fd.clone()),
        }))
    }

    fn append(&self, buf: &[u8]) -> VfsResult<(usize, u64)> {
        if self.kind != HostKind::File {
            let end = self.size()?;
            let n = self.write_at(buf, end)?;
            return Ok((n, end + n as u64));
        }
        // The gofer opened the file with O_APPEND (the sentry asks for it
        // whenever the application does), so the host appends atomically,
        // also against writers outside the sandbox, whatever offset pwrite
        // names. The new offset is the end after our write.
        let n = retry_host(|| nix::sys::uio::pwrite(&self.fd, buf, 0))?;
        let end = self.size()?;
        Ok((n, end))
    }

    fn truncate(&self, size: u64) -> VfsResult<()> {
        if self.kind != HostKind::File {
            return Err(Errno::EINVAL);
        }
        let size = i64::try_from(size).map_err(|_| Errno::EFBIG)?;
        retry_host(|| nix::unistd::ftruncate(&self.fd, size))
    }

    fn fallocate(&self, mode: i32, off: u64, len: u64) -> VfsResult<()> {
        if self.kind != HostKind::File {
            return Err(Errno::ENODEV);
        }
        let off = i64::try_from(off).map_err(|_| Errno::EFBIG)?;
        let len = i64::try_from(len).map_err(|_| Errno::EFBIG)?;
        retry_host(|| {
            nix::fcntl::fallocate(
                self.fd.as_raw_fd(),
                nix::fcntl::FallocateFlags::from_bits_retain(mode),
                off,
                len,
            )
        })
    }

    fn fsync(&self, data_only: bool) -> VfsResult<()> {
        if self.kind != HostKind::File {
            return Ok(());
        }
        if data_only {
            retry_host(|| nix::unistd::fdatasync(self.fd.as_raw_fd()))
        } else {
            retry_host(|| nix::unistd::fsync(self.fd.as_raw_fd()))
        }
    }

    fn read_stream(&self, buf: &mut [u8]) -> VfsResult<usize> {
        retry_host(|| nix::unistd::read(self.fd.as_raw_fd(), buf))
    }

    fn write_stream(&self, buf: &[u8]) -> VfsResult<usize> {
        retry_host(|| nix::unistd::write(&self.fd, buf))
    }

    fn host_lseek(&self, off: i64, whence: i32) -> VfsResult<u64> {
        let whence = match whence {
            libc::SEEK_SET => nix::unistd::Whence::SeekSet,
            libc::SEEK_CUR => nix::unistd::Whence::SeekCur,
            libc::SEEK_END => nix::unistd::Whence::SeekEnd,
            _ => return Err(Errno::EINVAL),
        };
        Ok(nix::unistd::lseek(self.fd.as_raw_fd(), off, whence)? as u64)
    }

    fn stat(&self) -> VfsResult<FileStat> {
        let st = nix::sys::stat::fstat(self.fd.as_raw_fd())?;
        Ok(stat_from_host(&st))
    }

    fn host_fd(&self) -> Option<RawFd> {
        Some(self.fd.as_raw_fd())
    }

    fn is_dir(&self) -> bool {
        false
    }

    fn is_tty(&self) -> bool {
        self.tty
    }

    fn is_pipe(&self) -> bool {
        self.kind == HostKind::Pipe || (self.kind == HostKind::Stdio && !self.seekable && !self.tty)
    }

    fn poll_fd(&self) -> Option<RawFd> {
        // Regular files are always ready; everything else asks the host.
        (self.kind != HostKind::File).then(|| self.fd.as_raw_fd())
    }

    fn host_kind(&self) -> Option<HostKind> {
        Some(self.kind)
    }
}

pub fn stat_from_host(st: &libc::stat) -> FileStat {
    FileStat {
        dev: st.st_dev,
        ino: st.st_ino,
        mode: st.st_mode,
        nlink: st.st_nlink,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: st.st_rdev,
        size: st.st_size,
        blksize: st.st_blksize,
        blocks: st.st_blocks,
        atime_sec: st.st_atime,
        atime_nsec: st.st_atime_nsec,
        mtime_sec: st.st_mtime,
        mtime_nsec: st.st_mtime_nsec,
        ctime_sec: st.st_ctime,
        ctime_nsec: st.st_ctime_nsec,
    }
}

/// Retries a host call cut short by the sentry's interrupt signal unless
/// the task now has a signal to take (then EINTR goes up).
pub fn retry_host<T>(mut f: impl FnMut() -> Result<T, Errno>) -> Result<T, Errno> {
    loop {
        match f() {
            Err(Errno::EINTR) if !crate::kernel::interrupted() => continue,
            other => return other,
        }
    }
}
