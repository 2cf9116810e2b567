//! Open file descriptions: what an fd table entry points to.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use nix::errno::Errno;

use super::{DirEntry, FileStat, Inode, Location, VfsResult};

/// Operations of an open file. Seekable files implement `read_at`/`write_at`
/// (the description owns the offset); streams (pipes, terminals, devices)
/// ignore offsets.
pub trait FileOps: Send + Sync {
    /// Whether the description has a file offset (lseek works).
    fn seekable(&self) -> bool {
        true
    }
    fn read_at(&self, _buf: &mut [u8], _off: u64) -> VfsResult<usize> {
        Err(Errno::EINVAL)
    }
    fn write_at(&self, _buf: &[u8], _off: u64) -> VfsResult<usize> {
        Err(Errno::EINVAL)
    }
    /// Whether the file offset lives in a host open file description shared
    /// with processes outside the sandbox (the container's stdio): then
    /// read/write/lseek use the host's offset, never the sentry's.
    fn host_offset(&self) -> bool {
        false
    }
    /// read(2) for streams and host-offset files.
    fn read_stream(&self, buf: &mut [u8]) -> VfsResult<usize> {
        self.read_at(buf, 0)
    }
    /// write(2) for streams and host-offset files.
    fn write_stream(&self, buf: &[u8]) -> VfsResult<usize> {
        self.write_at(buf, 0)
    }
    /// lseek(2) for host-offset files.
    fn host_lseek(&self, _off: i64, _whence: i32) -> VfsResult<u64> {
        Err(Errno::ESPIPE)
    }
    /// Appends atomically; returns bytes written and the new end.
    fn append(&self, buf: &[u8]) -> VfsResult<(usize, u64)> {
        let end = self.size()?;
        let n = self.write_at(buf, end)?;
        Ok((n, end + n as u64))
    }
    fn size(&self) -> VfsResult<u64> {
        Ok(self.stat()?.size.max(0) as u64)
    }
    fn stat(&self) -> VfsResult<FileStat>;
    fn truncate(&self, _size: u64) -> VfsResult<()> {
        Err(Errno::EINVAL)
    }
    /// fsync(2) / fdatasync(2): files whose data reaches a host file push
    /// it to the disk; in-memory ones have nothing to do.
    fn fsync(&self, _data_only: bool) -> VfsResult<()> {
        Ok(())
    }
    /// fallocate(2): `mode` already validated by the syscall.
    fn fallocate(&self, _mode: i32, _off: u64, _len: u64) -> VfsResult<()> {
        Err(Errno::EOPNOTSUPP)
    }
    /// The host fd behind this file, when there is one (pipes, stdio,
    /// gofer-donated files), for the few operations done on it directly.
    fn host_fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }
    /// Whether this is a directory (read gives EISDIR, getdents works).
    fn is_dir(&self) -> bool {
        false
    }
    /// The host fd to poll for readiness; None means always ready (regular
    /// files, devices), as on Linux.
    fn poll_fd(&self) -> Option<std::os::fd::RawFd> {
        None
    }
    /// What kind of host object backs this file, if any.
    fn host_kind(&self) -> Option<crate::fsimpl::host::HostKind> {
        None
    }
    /// The epoll instance behind an epoll fd.
    fn as_epoll(&self) -> Option<&crate::kernel::epoll::EpollFile> {
        None
    }
    /// A terminal the sentry may answer termios ioctls for.
    fn is_tty(&self) -> bool {
        false
    }
    /// A host fd the file's pages can be mapped from directly (gofer files,
    /// in-memory files once moved into a memfd). None: a private mapping
    /// gets a copy of the bytes and a shared writable one is refused.
    fn mmap_backing(&self) -> VfsResult<Option<MmapBacking>> {
        Ok(None)
    }
    /// O_NONBLOCK changed (fcntl F_SETFL, FIONBIO) on a file that blocks
    /// in the sentry rather than on a host fd.
    fn set_nonblocking(&self, _on: bool) {}
    /// The unix socket behind this file.
    fn unix_socket(
        self: std::sync::Arc<Self>,
    ) -> Option<std::sync::Arc<crate::socket::unix::UnixSocket>> {
        None
    }
    /// The internet socket behind this file.
    fn inet_socket(
        self: std::sync::Arc<Self>,
    ) -> Option<std::sync::Arc<crate::socket::inet::InetSocket>> {
        None
    }
    /// The host internet socket behind this file (`--network host`).
    fn host_inet_socket(
        self: std::sync::Arc<Self>,
    ) -> Option<std::sync::Arc<crate::socket::hostinet::HostInetSocket>> {
        None
    }
    /// A socket of the byte-level socket interface (netlink).
    fn socket_ops(
        self: std::sync::Arc<Self>,
    ) -> Option<std::sync::Arc<dyn crate::socket::SocketOps>> {
        None
    }
    /// With `poll_fixed`: a second wake-up fd, for a caller waiting to
    /// write.
    fn poll_fd_out(&self) -> Option<std::os::fd::RawFd> {
        None
    }
    /// Readiness the sentry knows without a host poll (revents for every
    /// event); `poll_fd`, when given too, is then only a wake-up: it turns
    /// readable when this answer may have changed.
    fn poll_fixed(&self) -> Option<i16> {
        None
    }
    /// The inotify instance behind this file.
    fn inotify(self: std::sync::Arc<Self>) -> Option<std::sync::Arc<super::inotify::Inotify>> {
        None
    }
    /// FIONREAD for files that know it themselves (inotify).
    fn readable_bytes(&self) -> Option<usize> {
        None
    }
    /// The signalfd behind this file (signalfd4 on an existing fd).
    fn as_signalfd(&self) -> Option<&crate::syscalls::SignalFd> {
        None
    }
    /// The pseudo-terminal behind this file, for terminal ioctls.
    fn terminal(&self) -> Option<crate::fsimpl::devpts::TerminalEnd<'_>> {
        None
    }
    /// Whether a failing write with EPIPE should raise SIGPIPE.
    fn is_pipe(&self) -> bool {
        false
    }
    /// The POSIX message queue behind a queue descriptor.
    fn message_queue(&self) -> Option<Arc<crate::syscalls::MessageQueue>> {
        None
    }
}

/// Where a file's pages come from for mmap.
#[derive(Clone, Debug)]
pub struct MmapBacking {
    /// Host fd, valid while the file is open.
    pub fd: std::os::fd::RawFd,
    /// Identity of the underlying memory, so that every process mapping
    /// the file agrees on shared futex keys.
    pub id: u64,
    /// The host file itself, when the sentry may keep it to read mapped
    /// bytes back from it (see `mm::mirror`).
    pub file: Option<std::sync::Arc<std::os::fd::OwnedFd>>,
}

/// An open file description, shared by dup'd fds and across fork.
pub struct OpenFile {
    pub ops: Arc<dyn FileOps>,
    /// Where the file was opened, for fchdir, *at() calls and /proc links.
    pub location: Option<Location>,
    /// What /proc/PID/fd/N shows, when there is no location ("pipe:[N]").
    pub display: Vec<u8>,
    /// Access mode and status flags (O_APPEND, O_NONBLOCK, ...).
    flags: AtomicI32,
    pub offset: Mutex<u64>,
    /// getdents snapshot, taken at the first call and dropped on rewind.
    pub dir_entries: Mutex<Option<Vec<DirEntry>>>,
    /// A regular file opened for writing is not executable meanwhile.
    writer: Mutex<Option<super::text::Writer>>,
    /// The open that made this description created the file
    /// (fcntl F_CREATED_QUERY).
    created: std::sync::atomic::AtomicBool,
}

impl OpenFile {
    pub fn new(ops: Arc<dyn FileOps>, location: Option<Location>, flags: i32) -> Arc<OpenFile> {
        Arc::new(OpenFile {
            ops,
            location,
            display: Vec::new(),
            flags: AtomicI32::new(
                flags
                    & !(libc::O_CLOEXEC
                        | libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_TRUNC
                        | libc::O_NOCTTY),
            ),
            offset: Mutex::new(0),
            dir_entries: Mutex::new(None),
            writer: Mutex::new(None),
            created: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Notes that the open that made this description created the file.
    pub fn mark_created(&self) {
        self.created
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the open that made this description created the file.
    pub fn created(&self) -> bool {
        self.created.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Marks the file as open for writing while this description lives
    /// (execve of it is then ETXTBSY).
    pub fn hold_for_writing(&self, inode: &Arc<dyn super::Inode>) {
        *self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(super::text::writer(inode));
    }

    pub fn with_display(ops: Arc<dyn FileOps>, display: Vec<u8>, flags: i32) -> Arc<OpenFile> {
        Arc::new(OpenFile {
            ops,
            location: None,
            display,
            flags: AtomicI32::new(flags & !libc::O_CLOEXEC),
            offset: Mutex::new(0),
            dir_entries: Mutex::new(None),
            writer: Mutex::new(None),
            created: std::sync::atomic::AtomicBool::new(false),
        })
    }

    pub fn flags(&self) -> i32 {
        self.flags.load(Ordering::Relaxed)
    }

    pub fn set_status_flags(&self, new: i32) {
        const CHANGEABLE: i32 =
            libc::O_APPEND | libc::O_NONBLOCK | libc::O_ASYNC | libc::O_DIRECT | libc::O_NOATIME;
        let old = self.flags();
        self.flags
            .store((old & !CHANGEABLE) | (new & CHANGEABLE), Ordering::Relaxed);
    }

    pub fn readable(&self) -> bool {
        let acc = self.flags() & libc::O_ACCMODE;
        (acc == libc::O_RDONLY || acc == libc::O_RDWR) && self.flags() & libc::O_PATH == 0
    }

    pub fn writable(&self) -> bool {
        let acc = self.flags() & libc::O_ACCMODE;
        (acc == libc::O_WRONLY || acc == libc::O_RDWR) && self.flags() & libc::O_PATH == 0
    }

    pub fn inode(&self) -> Option<&Arc<dyn Inode>> {
        self.location.as_ref().map(|l| l.inode())
    }

    /// fstat: the inode's current attributes when the file has one (the
    /// open file may predate a chmod or a copy-up), else the file's own.
    pub fn stat(&self) -> VfsResult<FileStat> {
        match &self.location {
            Some(l) => l.inode().stat(),
            None => self.ops.stat(),
        }
    }

    /// What /proc/PID/fd/N points to.
    pub fn proc_link(&self) -> Vec<u8> {
        match &self.location {
            Some(l) => l.path(),
            None => self.display.clone(),
        }
    }

    /// read(2) at the description's offset.
    pub fn read(&self, buf: &mut [u8]) -> VfsResult<usize> {
        if self.ops.is_dir() {
            return Err(Errno::EISDIR);
        }
        if !self.ops.seekable() || self.ops.host_offset() {
            return self.ops.read_stream(buf);
        }
        let mut off = self.offset.lock().map_err(|_| Errno::EIO)?;
        let n = self.ops.read_at(buf, *off)?;
        *off += n as u64;
        Ok(n)
    }

    /// write(2) at the description's offset (or the end with O_APPEND).
    pub fn write(&self, buf: &[u8]) -> VfsResult<usize> {
        if !self.ops.seekable() || self.ops.host_offset() {
            return self.ops.write_stream(buf);
        }
        let mut off = self.offset.lock().map_err(|_| Errno::EIO)?;
        if self.flags() & libc::O_APPEND != 0 {
            let (n, end) = self.ops.append(buf)?;
            *off = end;
            return Ok(n);
        }
        let n = self.ops.write_at(buf, *off)?;
        *off += n as u64;
        Ok(n)
    }
}

impl OpenFile {
    /// Identity of the locked object: the inode when there is one.
    pub fn lock_key(&self) -> usize {
        match &self.location {
            Some(l) => std::sync::Arc::as_ptr(l.inode()) as *const () as usize,
            None => std::sync::Arc::as_ptr(&self.ops) as *const () as usize,
        }
    }

    /// Identity of this open file description (OFD and flock locks).
    pub fn description_id(&self) -> usize {
        self as *const OpenFile as usize
    }
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        if let Some(loc) = &self.location {
            if self.flags() & libc::O_PATH == 0 {
                let ev = if self.writable() {
                    super::inotify::IN_CLOSE_WRITE
                } else {
                    super::inotify::IN_CLOSE_NOWRITE
                };
                super::inotify::file_event(loc, ev);
            }
        }
        // OFD and flock locks go with the last reference to the description.
        let key = self.lock_key();
        super::lock::release(
            Some(key),
            super::lock::Owner::Description(self.description_id()),
        );
        super::lock::release(Some(key), super::lock::Owner::Flock(self.description_id()));
    }
}
