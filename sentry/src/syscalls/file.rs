//! File descriptor I/O: read/write families, dup, fcntl, ioctl, pipes,
//! getdents64.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use nix::errno::Errno;

use super::{arg_fd, SysResult};
use crate::fsimpl::host::{HostFile, HostKind};
use crate::kernel::task::Task;
use crate::kernel::{kernel, lock};
use crate::vfs::{DirEntry, FileType, OpenFile};

/// Largest single transfer, as Linux's MAX_RW_COUNT.
const MAX_RW: u64 = 0x7fff_f000;
/// Bytes moved per chunk between a file and application memory.
const CHUNK: usize = 1 << 20;

/// The open file at `fd`, for a call that uses it (Linux's fdget): an
/// `O_PATH` fd is only a location, EBADF here.
pub fn get_file(t: &Task, fd: i32) -> Result<Arc<OpenFile>, Errno> {
    let f = get_file_raw(t, fd)?;
    if f.flags() & libc::O_PATH != 0 {
        return Err(Errno::EBADF);
    }
    Ok(f)
}

/// The open file at `fd`, `O_PATH` ones included (Linux's fdget_raw): for
/// calls that only need its location or the fd itself (the *at calls'
/// dirfd, fstat, fchdir, dup, close, some fcntls, SCM_RIGHTS).
pub fn get_file_raw(t: &Task, fd: i32) -> Result<Arc<OpenFile>, Errno> {
    lock(&t.proc.fds).get(fd)
}

pub fn install_fd(t: &Task, file: Arc<OpenFile>, cloexec: bool) -> SysResult {
    let limit = t.proc.nofile_limit();
    Ok(lock(&t.proc.fds).alloc(file, cloexec, 0, limit)? as u64)
}

/// A write that hit a closed pipe or socket raises SIGPIPE, as Linux does.
fn check_epipe(t: &Task, file: &OpenFile, r: Result<usize, Errno>) -> Result<usize, Errno> {
    if r == Err(Errno::EPIPE)
        && (file.ops.is_pipe()
            || file.ops.clone().unix_socket().is_some()
            || file.ops.clone().inet_socket().is_some()
            || file.ops.clone().host_inet_socket().is_some())
    {
        let uid = lock(&t.proc.creds).ruid;
        kernel().send_signal(
            &t.proc,
            libc::SIGPIPE,
            crate::kernel::signals::info_sender(
                libc::SIGPIPE,
                crate::kernel::signals::SI_USER,
                t.pid_to_user(t.pid()),
                uid,
            ),
        );
    }
    r
}

/// Reads into application memory at `buf` from `read` (one call per chunk;
/// stops at a short read, as a single read(2) would return it).
fn read_into(
    t: &Task,
    buf: u64,
    count: u64,
    mut read: impl FnMut(&mut [u8], u64) -> Result<usize, Errno>,
) -> SysResult {
    let count = count.min(MAX_RW) as usize;
    let mut tmp = vec![0u8; count.min(CHUNK)];
    let mut done = 0usize;
    while done < count {
        let want = (count - done).min(CHUNK);
        let n = match read(&mut tmp[..want], done as u64) {
            Ok(n) => n,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        };
        if n == 0 {
            break;
        }
        t.write_bytes(buf + done as u64, &tmp[..n])?;
        done += n;
        if n < want {
            break;
        }
    }
    Ok(done as u64)
}

pub fn read(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let f = get_file(t, arg_fd(a[0]))?;
    if !f.readable() {
        return Err(Errno::EBADF);
    }
    if f.ops.is_dir() {
        return Err(Errno::EISDIR);
    }
    let seekable = f.ops.seekable();
    let stream = !seekable || f.ops.host_offset();
    // A file's bytes go straight into mirrored memory (one copy, as on
    // Linux). Only for reads that cannot block for long: the mirror stays
    // locked meanwhile.
    let direct = if stream {
        None
    } else {
        let count = a[2].min(MAX_RW) as usize;
        t.mirror()
            .with_slice(a[1], count, libc::PROT_WRITE, |b| f.read(b))
    };
    let r = match direct {
        Some(r) => r.map(|n| n as u64),
        None => read_into(t, a[1], a[2], |b, done| {
            if !stream || done == 0 {
                f.read(b)
            } else {
                Ok(0)
            }
        }),
    };
    if matches!(r, Ok(n) if n > 0) {
        if let Some(loc) = &f.location {
            crate::vfs::inotify::file_event(loc, crate::vfs::inotify::IN_ACCESS);
        }
    }
    r
}

pub fn pread64(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let f = get_file(t, arg_fd(a[0]))?;
    if !f.readable() {
        return Err(Errno::EBADF);
    }
    if f.ops.is_dir() {
        return Err(Errno::EISDIR);
    }
    if !f.ops.seekable() {
        return Err(Errno::ESPIPE);
    }
    let off = a[3] as i64;
    if off < 0 {
        return Err(Errno::EINVAL);
    }
    read_into(t, a[1], a[2], |b, done| f.ops.read_at(b, off as u64 + done))
}

/// RLIMIT_FSIZE, if the process has one.
pub fn fsize_limit(t: &Task) -> Option<u64> {
    let cur = t.proc.rlimit(libc::RLIMIT_FSIZE).rlim_cur;
    (cur != libc::RLIM_INFINITY).then_some(cur)
}

/// Growing a file to `end` past RLIMIT_FSIZE: SIGXFSZ and EFBIG.
pub fn check_fsize(t: &Task, end: u64) -> Result<(), Errno> {
    match fsize_limit(t) {
        Some(limit) if end > limit => {
            let uid = lock(&t.proc.creds).ruid;
            kernel().send_signal(
                &t.proc,
                libc::SIGXFSZ,
                crate::kernel::signals::info_sender(
                    libc::SIGXFSZ,
                    0x80,
                    t.pid_to_user(t.pid()),
                    uid,
                ),
            );
            Err(Errno::EFBIG)
        }
        _ => Ok(()),
    }
}

fn write_common(t: &Task, f: &OpenFile, buf: u64, count: u64, off: Option<u64>) -> SysResult {
    let r = write_inner(t, f, buf, count, off);
    if matches!(r, Ok(n) if n > 0) {
        if let Some(loc) = &f.location {
            crate::vfs::inotify::file_event(loc, crate::vfs::inotify::IN_MODIFY);
        }
    }
    r
}

fn write_inner(t: &Task, f: &OpenFile, buf: u64, count: u64, off: Option<u64>) -> SysResult {
    let mut count = count.min(MAX_RW) as usize;
    // RLIMIT_FSIZE binds regular files: a write starting at the limit fails,
    // one crossing it is cut short.
    if let Some(limit) = fsize_limit(t) {
        if f.ops.seekable() && !f.ops.host_offset() && !f.ops.is_dir() && count > 0 {
            let start = if f.flags() & libc::O_APPEND != 0 {
                f.ops.size()?
            } else {
                match off {
                    Some(o) => o,
                    None => *f.offset.lock().map_err(|_| Errno::EIO)?,
                }
            };
            if start >= limit {
                return check_fsize(t, start + 1).map(|_| 0);
            }
            count = count.min((limit - start) as usize);
        }
    }
    // A host file's bytes go to it straight from mirrored memory (one
    // copy, as on Linux), as reads come into it. Only host files: the
    // mirror stays locked meanwhile, so not pipes or sockets, which may
    // block, nor the sentry's own files, whose growth may copy the whole
    // file (MemFile's stored data).
    let direct = f.ops.host_kind() == Some(crate::fsimpl::host::HostKind::File);
    let mut done = 0usize;
    while done < count || count == 0 {
        let want = (count - done).min(CHUNK);
        let write = |data: &[u8]| match off {
            // Linux's pwrite on an O_APPEND file appends anyway.
            Some(_) if f.flags() & libc::O_APPEND != 0 => f.ops.append(data).map(|(n, _)| n),
            Some(o) => f.ops.write_at(data, o + done as u64),
            None => f.write(data),
        };
        let from_mirror = if direct && want > 0 {
            t.mirror()
                .with_slice(buf + done as u64, want, libc::PROT_READ, |data| write(data))
        } else {
            None
        };
        let r = match from_mirror {
            Some(r) => r,
            None => write(&t.read_bytes(buf + done as u64, want)?),
        };
        let n = match check_epipe(t, f, r) {
            Ok(n) => n,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        };
        done += n;
        if n < want || count == 0 {
            break;
        }
    }
    Ok(done as u64)
}

pub fn write(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let f = get_file(t, arg_fd(a[0]))?;
    if !f.writable() {
        return Err(Errno::EBADF);
    }
    write_common(t, &f, a[1], a[2], None)
}

pub fn pwrite64(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let f = get_file(t, arg_fd(a[0]))?;
    if !f.writable() {
        return Err(Errno::EBADF);
    }
    if !f.ops.seekable() {
        return Err(Errno::ESPIPE);
    }
    let off = a[3] as i64;
    if off < 0 {
        return Err(Errno::EINVAL);
    }
    write_common(t, &f, a[1], a[2], Some(off as u64))
}

pub fn read_iovecs(t: &Task, iov: u64, cnt: u64) -> Result<Vec<(u64, u64)>, Errno> {
    if cnt > 1024 {
        return Err(Errno::EINVAL);
    }
    let mut out = Vec::with_capacity(cnt as usize);
    let mut total: u64 = 0;
    for i in 0..cnt {
        let v: libc::iovec = t.read_obj(iov + i * 16)?;
        let len = v.iov_len as u64;
        total = total.checked_add(len).ok_or(Errno::EINVAL)?;
        if total > isize::MAX as u64 {
            return Err(Errno::EINVAL);
        }
        out.push((v.iov_base as u64, len));
    }
    Ok(out)
}

pub fn readv(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let f = get_file(t, arg_fd(a[0]))?;
    if !f.readable() {
        return Err(Errno::EBADF);
    }
    if f.ops.is_dir() {
        return Err(Errno::EISDIR);
    }
    let iovs = read_iovecs(t, a[1], a[2])?;
    let total: u64 = iovs.iter().map(|v| v.1).sum::<u64>().min(MAX_RW);
    let mut tmp = vec![0u8; (total as usize).min(CHUNK * 4)];
    let n = f.read(&mut tmp)?;
    let mut left = &tmp[..n];
    for (base, len) in iovs {
        if left.is_empty() {
            break;
        }
        let k = (len as usize).min(left.len());
        t.write_bytes(base, &left[..k])?;
        left = &left[k..];
    }
    Ok(n as u64)
}

pub fn writev(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let f = get_file(t, arg_fd(a[0]))?;
    if !f.writable() {
        return Err(Errno::EBADF);
    }
    let iovs = read_iovecs(t, a[1], a[2])?;
    let mut data = Vec::new();
    for (base, len) in iovs {
        let len = (len as usize).min(MAX_RW as usize - data.len());
        data.extend_from_slice(&t.read_bytes(base, len)?);
    }
    let n = check_epipe(t, &f, f.write(&data))?;
    Ok(n as u64)
}

pub fn close(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let entry = lock(&t.proc.fds).remove(arg_fd(a[0]))?;
    // Closing any fd of a file drops the process's POSIX locks on it.
    crate::vfs::lock::release(
        Some(entry.file.lock_key()),
        crate::vfs::lock::Owner::Process(t.pid()),
    );
    drop(entry);
    Ok(0)
}

pub fn close_range(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (first, last, flags) = (a[0] as u32, a[1] as u32, a[2] as u32);
    if first > last || flags & !(libc::CLOSE_RANGE_CLOEXEC | libc::CLOSE_RANGE_UNSHARE) != 0 {
        return Err(Errno::EINVAL);
    }
    let mut fds = lock(&t.proc.fds);
    let mut doomed = Vec::new();
    for fd in fds.fds() {
        let u = fd as u32;
        if u >= first && u <= last {
            if flags & libc::CLOSE_RANGE_CLOEXEC != 0 {
                let _ = fds.set_cloexec(fd, true);
            } else if let Ok(e) = fds.remove(fd) {
                doomed.push(e);
            }
        }
    }
    drop(fds);
    drop(doomed);
    Ok(0)
}

pub fn lseek(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let f = get_file(t, arg_fd(a[0]))?;
    let off = a[1] as i64;
    if !f.ops.seekable() {
        return Err(Errno::ESPIPE);
    }
    if f.ops.host_offset() {
        return f.ops.host_lseek(off, a[2] as i32);
    }
    let mut cur = f.offset.lock().map_err(|_| Errno::EIO)?;
    let whence = a[2] as i32;
    if whence == libc::SEEK_DATA || whence == libc::SEEK_HOLE {
        let new = seek_data_or_hole(&f, off, whence)?;
        *cur = new;
        return Ok(new);
    }
    let base: i64 = match whence {
        libc::SEEK_SET => 0,
        libc::SEEK_CUR => *cur as i64,
        libc::SEEK_END => f.ops.size()? as i64,
        _ => return Err(Errno::EINVAL),
    };
    let new = base.checked_add(off).ok_or(Errno::EOVERFLOW)?;
    if new < 0 {
        return Err(Errno::EINVAL);
    }
    *cur = new as u64;
    if f.ops.is_dir() && new == 0 {
        *lock(&f.dir_entries) = None;
    }
    Ok(new as u64)
}

/// SEEK_DATA and SEEK_HOLE: a host file's layout comes from the host (its
/// own fd: the sentry's I/O on it is positional, so the host offset this
/// moves is nobody's); other files are data from start to end, as Linux's
/// generic answer for filesystems that do not track holes.
fn seek_data_or_hole(f: &OpenFile, off: i64, whence: i32) -> Result<u64, Errno> {
    if f.ops.is_dir() {
        return Err(Errno::EINVAL);
    }
    if off < 0 {
        return Err(Errno::ENXIO);
    }
    if f.ops.host_kind() == Some(crate::fsimpl::host::HostKind::File) {
        if let Some(fd) = f.ops.host_fd() {
            // SAFETY: lseek on an fd the file owns; integers only.
            let r = unsafe { libc::lseek(fd, off, whence) };
            return Errno::result(r).map(|o| o as u64);
        }
    }
    let size = f.ops.size()?;
    if off as u64 >= size {
        return Err(Errno::ENXIO);
    }
    Ok(if whence == libc::SEEK_DATA {
        off as u64
    } else {
        size
    })
}

pub fn dup(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let f = get_file_raw(t, arg_fd(a[0]))?;
    install_fd(t, f, false)
}

fn dup_to(t: &Task, old: i32, new: i32, cloexec: bool) -> SysResult {
    if new < 0 || new as u64 >= t.proc.nofile_limit() {
        return Err(Errno::EBADF);
    }
    let mut fds = lock(&t.proc.fds);
    let f = fds.get(old)?;
    let replaced = fds.install(new, f, cloexec);
    drop(fds);
    drop(replaced);
    Ok(new as u64)
}

pub fn dup2(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (old, new) = (arg_fd(a[0]), arg_fd(a[1]));
    if old == new {
        get_file_raw(t, old)?;
        return Ok(new as u64);
    }
    dup_to(t, old, new, false)
}

pub fn dup3(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (old, new, flags) = (arg_fd(a[0]), arg_fd(a[1]), a[2] as i32);
    if old == new || flags & !libc::O_CLOEXEC != 0 {
        return Err(Errno::EINVAL);
    }
    dup_to(t, old, new, flags & libc::O_CLOEXEC != 0)
}

/// A terminal request that fills `N` bytes (TCGETS, TCGETA), made on the
/// sentry's own host terminal fd.
fn host_tty_get<const N: usize>(hfd: i32, req: libc::Ioctl) -> Result<[u8; N], Errno> {
    let mut out = [0u8; N];
    // SAFETY: the callers pair each request with the size it fills, and
    // the buffer is ours.
    if unsafe { libc::ioctl(hfd, req, out.as_mut_ptr()) } < 0 {
        return Err(Errno::last());
    }
    Ok(out)
}

/// F_LINUX_SPECIFIC_BASE + 4.
const F_CREATED_QUERY: i32 = 1028;

pub fn fcntl(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let fd = arg_fd(a[0]);
    let cmd = a[1] as i32;
    let f = get_file_raw(t, fd)?;
    // An O_PATH fd has flags and can be duplicated, nothing more.
    let fd_only = matches!(
        cmd,
        libc::F_DUPFD
            | libc::F_DUPFD_CLOEXEC
            | libc::F_GETFD
            | libc::F_SETFD
            | libc::F_GETFL
            | F_CREATED_QUERY
    );
    if f.flags() & libc::O_PATH != 0 && !fd_only {
        return Err(Errno::EBADF);
    }
    match cmd {
        libc::F_DUPFD | libc::F_DUPFD_CLOEXEC => {
            let min = a[2] as i64;
            if min < 0 || min as u64 >= t.proc.nofile_limit() {
                return Err(Errno::EINVAL);
            }
            let limit = t.proc.nofile_limit();
            Ok(lock(&t.proc.fds).alloc(f, cmd == libc::F_DUPFD_CLOEXEC, min as i32, limit)? as u64)
        }
        // Whether the open that made this description created the file
        // (Linux 6.12); its argument is ignored.
        F_CREATED_QUERY => Ok(u64::from(f.created())),
        libc::F_GETFD => Ok(if lock(&t.proc.fds).entry(fd)?.cloexec {
            libc::FD_CLOEXEC as u64
        } else {
            0
        }),
        libc::F_SETFD => {
            lock(&t.proc.fds).set_cloexec(fd, a[2] as i32 & libc::FD_CLOEXEC != 0)?;
            Ok(0)
        }
        libc::F_GETFL => Ok(f.flags() as u64),
        libc::F_SETFL => {
            let new = a[2] as i32;
            // O_NOATIME: the owner's or CAP_FOWNER's only, as at open.
            if new & libc::O_NOATIME != 0
                && f.flags() & libc::O_NOATIME == 0
                && !super::fs::is_owner_or_fowner(t, &f.stat()?)
            {
                return Err(Errno::EPERM);
            }
            f.set_status_flags(new);
            f.ops.set_nonblocking(new & libc::O_NONBLOCK != 0);
            if let Some(hfd) = f.ops.host_fd() {
                // Host objects the sentry owns for this description (pipes,
                // eventfd, timerfd) carry its O_NONBLOCK; unix sockets set
                // theirs in set_nonblocking.
                let owned = matches!(
                    f.ops.host_kind(),
                    Some(crate::fsimpl::host::HostKind::Pipe)
                        | Some(crate::fsimpl::host::HostKind::Event)
                );
                if owned {
                    // Sentry-owned pipes: the host fd is this description's own.
                    let _ = nix::fcntl::fcntl(
                        hfd,
                        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::from_bits_truncate(
                            new & libc::O_NONBLOCK,
                        )),
                    );
                }
            }
            Ok(0)
        }
        libc::F_GETLK
        | libc::F_OFD_GETLK
        | libc::F_SETLK
        | libc::F_SETLKW
        | libc::F_OFD_SETLK
        | libc::F_OFD_SETLKW => record_lock(t, &f, cmd, a[2]),
        libc::F_GETPIPE_SZ | libc::F_SETPIPE_SZ if f.ops.is_pipe() => pipe_size(t, &f, cmd, a[2]),
        // (Linux: not a pipe, EBADF.)
        libc::F_GETPIPE_SZ | libc::F_SETPIPE_SZ => Err(Errno::EBADF),
        _ => Err(Errno::EINVAL),
    }
}

/// F_GETPIPE_SZ and F_SETPIPE_SZ: the pipe's buffer is the host pipe's,
/// sized by the host after Linux's checks against the sandbox's
/// credentials (a size rounds up to a power-of-two number of pages; past
/// pipe-max-size needs CAP_SYS_RESOURCE; the data already in the pipe
/// must fit, else EBUSY, which the host reports).
fn pipe_size(t: &Task, f: &OpenFile, cmd: i32, arg: u64) -> SysResult {
    let host = f
        .ops
        .host_fd()
        .filter(|_| f.ops.host_kind() == Some(crate::fsimpl::host::HostKind::Pipe));
    if cmd == libc::F_GETPIPE_SZ {
        return match host {
            // SAFETY: F_GETPIPE_SZ on a pipe the sentry owns; no pointers.
            Some(fd) => {
                Errno::result(unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) }).map(|n| n as u64)
            }
            None => Ok(65536),
        };
    }
    let arg = arg as u32 as u64;
    if arg > 1 << 31 {
        return Err(Errno::EINVAL);
    }
    let page = crate::mm::PAGE_SIZE;
    let size = (arg.div_ceil(page).max(1)).next_power_of_two() * page;
    if size > 1 << 31 {
        return Err(Errno::EINVAL);
    }
    if size > u64::from(crate::fsimpl::pipe::PIPE_MAX_SIZE)
        && !lock(&t.proc.creds).has_cap(crate::kernel::cap::SYS_RESOURCE)
    {
        return Err(Errno::EPERM);
    }
    match host {
        // SAFETY: F_SETPIPE_SZ on a pipe the sentry owns; no pointers.
        Some(fd) => Errno::result(unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, size as i32) })
            .map(|n| n as u64),
        None => Ok(size),
    }
}

/// sizeof(struct termios) as the kernel's TCGETS/TCSETS use it.
const KERNEL_TERMIOS_SIZE: usize = 36;
/// sizeof(struct termio) (TCGETA/TCSETA), padding byte included: Linux
/// copies the whole struct both ways, the padding zeroed.
const TERMIO_SIZE: usize = 18;
const TCGETA: u64 = 0x5405;
const TCSETA: u64 = 0x5406;
const TCSETAW: u64 = 0x5407;
const TCSETAF: u64 = 0x5408;
const TCGETS: u64 = 0x5401;
const TCSETS: u64 = 0x5402;
const TCSETSW: u64 = 0x5403;
const TCSETSF: u64 = 0x5404;
const TIOCGPGRP: u64 = 0x540f;
const TIOCSPGRP: u64 = 0x5410;
const TIOCGWINSZ: u64 = 0x5413;
const TIOCSWINSZ: u64 = 0x5414;
const FIONREAD: u64 = 0x541b;
const SIOCOUTQ: u64 = 0x5411;
const FIONBIO: u64 = 0x5421;
const FIONCLEX: u64 = 0x5450;
const FIOCLEX: u64 = 0x5451;

/// linux/fs.h's FS_IOC_GETFLAGS and FS_IOC_SETFLAGS (_IOR/_IOW('f', 1/2, long)).
const FS_IOC_GETFLAGS: u64 = 0x8008_6601;
const FS_IOC_SETFLAGS: u64 = 0x4008_6602;

pub fn ioctl(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let fd = arg_fd(a[0]);
    let f = get_file(t, fd)?;
    let (cmd, arg) = (a[1] & 0xffff_ffff, a[2]);
    if cmd != FIOCLEX && cmd != FIONCLEX && cmd != FIONBIO {
        if let Some(end) = f.ops.terminal() {
            return super::tty::ioctl(t, end, cmd, arg);
        }
    }
    if let Some(r) = super::inet::interface_ioctl(t, &f, cmd, arg) {
        return r;
    }
    match cmd {
        FIOCLEX | FIONCLEX => {
            lock(&t.proc.fds).set_cloexec(fd, cmd == FIOCLEX)?;
            return Ok(0);
        }
        FIONBIO => {
            let on: i32 = t.read_obj(arg)?;
            let fl = f.flags();
            f.set_status_flags(if on != 0 {
                fl | libc::O_NONBLOCK
            } else {
                fl & !libc::O_NONBLOCK
            });
            f.ops.set_nonblocking(on != 0);
            return Ok(0);
        }
        FIONREAD if f.ops.readable_bytes().is_some() => {
            let n = f.ops.readable_bytes().unwrap_or(0).min(i32::MAX as usize) as i32;
            t.write_obj(arg, &n)?;
            return Ok(0);
        }
        FIONREAD => {
            let n: i32 =
                if let (true, Some(hfd)) = (f.ops.is_pipe() || f.ops.is_tty(), f.ops.host_fd()) {
                    let mut v: libc::c_int = 0;
                    // SAFETY: FIONREAD writes one int into our own variable.
                    if unsafe { libc::ioctl(hfd, libc::FIONREAD, &mut v) } < 0 {
                        return Err(Errno::last());
                    }
                    v
                } else if f.ops.seekable() && !f.ops.is_dir() {
                    let off = *f.offset.lock().map_err(|_| Errno::EIO)?;
                    f.ops.size()?.saturating_sub(off).min(i32::MAX as u64) as i32
                } else {
                    return Err(Errno::ENOTTY);
                };
            t.write_obj(arg, &n)?;
            return Ok(0);
        }
        // SIOCOUTQ (TIOCOUTQ's number): bytes the peer has not taken.
        SIOCOUTQ if f.ops.clone().inet_socket().is_some() => {
            let n = f
                .ops
                .clone()
                .inet_socket()
                .map_or(0, |s| s.unsent())
                .min(i32::MAX as usize) as i32;
            t.write_obj(arg, &n)?;
            return Ok(0);
        }
        FS_IOC_GETFLAGS if f.location.is_some() && !f.ops.is_tty() => {
            // A gofer file's are its host file's (lsattr); the sandbox's
            // own filesystems keep none.
            let mut flags: libc::c_long = 0;
            if let (Some(crate::fsimpl::host::HostKind::File), Some(hfd)) =
                (f.ops.host_kind(), f.ops.host_fd())
            {
                // SAFETY: FS_IOC_GETFLAGS writes one long into our variable.
                if unsafe { libc::ioctl(hfd, FS_IOC_GETFLAGS, &mut flags) } < 0 {
                    return Err(Errno::last());
                }
            }
            // Linux copies an int, whatever the ioctl number says.
            t.write_obj(arg, &(flags as i32))?;
            return Ok(0);
        }
        // Setting attributes such as immutable would act on host files.
        FS_IOC_SETFLAGS if f.location.is_some() && !f.ops.is_tty() => {
            return Err(Errno::EOPNOTSUPP);
        }
        _ => {}
    }
    if !f.ops.is_tty() {
        return Err(Errno::ENOTTY);
    }
    let hfd = f.ops.host_fd().ok_or(Errno::ENOTTY)?;
    // Terminal requests answered on the sentry's own terminal fd, with
    // buffers the sentry owns and validated sizes.
    match cmd {
        // The kernel's struct termios (36 bytes), not glibc's larger one;
        // the System V struct termio (18 bytes).
        TCGETS => {
            let tio = host_tty_get::<KERNEL_TERMIOS_SIZE>(hfd, libc::TCGETS)?;
            t.write_bytes(arg, &tio)?;
            Ok(0)
        }
        TCGETA => {
            let tio = host_tty_get::<TERMIO_SIZE>(hfd, libc::TCGETA)?;
            t.write_bytes(arg, &tio)?;
            Ok(0)
        }
        TCSETS | TCSETSW | TCSETSF | TCSETA | TCSETAW | TCSETAF => {
            let (req, size) = match cmd {
                TCSETS => (libc::TCSETS, KERNEL_TERMIOS_SIZE),
                TCSETSW => (libc::TCSETSW, KERNEL_TERMIOS_SIZE),
                TCSETSF => (libc::TCSETSF, KERNEL_TERMIOS_SIZE),
                TCSETA => (libc::TCSETA, TERMIO_SIZE),
                TCSETAW => (libc::TCSETAW, TERMIO_SIZE),
                _ => (libc::TCSETAF, TERMIO_SIZE),
            };
            let tio = t.read_bytes(arg, size)?;
            // SAFETY: the request reads `size` bytes, all in `tio`, which
            // we own.
            if unsafe { libc::ioctl(hfd, req, tio.as_ptr()) } < 0 {
                return Err(Errno::last());
            }
            Ok(0)
        }
        TIOCGWINSZ => {
            let mut ws: libc::winsize = crate::kernel::task::pod_zeroed();
            // SAFETY: fills a winsize we own.
            if unsafe { libc::ioctl(hfd, libc::TIOCGWINSZ, &mut ws) } < 0 {
                return Err(Errno::last());
            }
            t.write_obj(arg, &ws)?;
            Ok(0)
        }
        TIOCSWINSZ => {
            let ws: libc::winsize = t.read_obj(arg)?;
            // SAFETY: reads a winsize we own.
            if unsafe { libc::ioctl(hfd, libc::TIOCSWINSZ, &ws) } < 0 {
                return Err(Errno::last());
            }
            Ok(0)
        }
        // The host terminal's foreground group is the sandbox's to keep:
        // the host only knows the sentry, which forwards the terminal's
        // signals to this group (see `host_tty_signals` in lib.rs).
        TIOCGPGRP => {
            let k = kernel();
            let pgid = match k.host_tty_foreground(host_tty_id(hfd)) {
                Some(pg) => pg,
                None => lock(&k.tree)
                    .procs
                    .get(&t.pid())
                    .map(|e| e.pgid)
                    .unwrap_or(t.pid()),
            };
            t.write_obj(arg, &t.group_to_user(pgid))?;
            Ok(0)
        }
        TIOCSPGRP => {
            let pg: i32 = t.read_obj(arg)?;
            let pg = if pg > 0 { t.group_from_user(pg) } else { pg };
            let k = kernel();
            let exists = lock(&k.tree)
                .procs
                .values()
                .any(|e| e.pgid == pg && e.zombie.is_none());
            if pg <= 0 {
                return Err(Errno::EINVAL);
            }
            if !exists {
                return Err(Errno::EPERM);
            }
            k.set_host_tty_foreground(host_tty_id(hfd), pg);
            Ok(0)
        }
        _ => Err(Errno::ENOTTY),
    }
}

/// A host terminal's identity: its device number.
pub fn host_tty_id(hfd: i32) -> u64 {
    nix::sys::stat::fstat(hfd).map_or(0, |st| st.st_rdev)
}

fn make_pipe(t: &mut Task, fds_addr: u64, flags: i32) -> SysResult {
    if flags & !(libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_DIRECT) != 0 {
        return Err(Errno::EINVAL);
    }
    let mut raw = [0i32; 2];
    // SAFETY: pipe2 writes two fds into our array; the flags are validated.
    if unsafe {
        libc::pipe2(
            raw.as_mut_ptr(),
            libc::O_CLOEXEC | (flags & (libc::O_NONBLOCK | libc::O_DIRECT)),
        )
    } < 0
    {
        return Err(Errno::last());
    }
    // SAFETY: the fds were just created and are owned by nobody else.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(raw[0]), OwnedFd::from_raw_fd(raw[1])) };
    let ino = nix::sys::stat::fstat(r.as_raw_fd())
        .map(|s| s.st_ino)
        .unwrap_or(0);
    let display = format!("pipe:[{ino}]").into_bytes();
    let status = flags & libc::O_NONBLOCK;
    let rf = OpenFile::with_display(
        Arc::new(HostFile::new(r, HostKind::Pipe)),
        display.clone(),
        libc::O_RDONLY | status,
    );
    let wf = OpenFile::with_display(
        Arc::new(HostFile::new(w, HostKind::Pipe)),
        display,
        libc::O_WRONLY | status,
    );
    let cloexec = flags & libc::O_CLOEXEC != 0;
    let limit = t.proc.nofile_limit();
    let mut fds = lock(&t.proc.fds);
    let rfd = fds.alloc(rf, cloexec, 0, limit)?;
    let wfd = match fds.alloc(wf, cloexec, 0, limit) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = fds.remove(rfd);
            return Err(e);
        }
    };
    drop(fds);
    write_fd_pair(t, fds_addr, rfd, wfd)
}

/// Writes a new fd pair (pipe, socketpair) to the application; if that
/// fails the fds are taken back, as Linux does.
pub fn write_fd_pair(t: &Task, addr: u64, a: i32, b: i32) -> SysResult {
    if let Err(e) = t.write_obj(addr, &[a, b]) {
        let mut fds = lock(&t.proc.fds);
        let _ = fds.remove(a);
        let _ = fds.remove(b);
        return Err(e);
    }
    Ok(0)
}

pub fn pipe(t: &mut Task, a: &[u64; 6]) -> SysResult {
    make_pipe(t, a[0], 0)
}

pub fn pipe2(t: &mut Task, a: &[u64; 6]) -> SysResult {
    make_pipe(t, a[0], a[1] as i32)
}

pub fn fsync(t: &mut Task, a: &[u64; 6]) -> SysResult {
    syncable(t, arg_fd(a[0]))?.ops.fsync(false)?;
    Ok(0)
}

pub fn fdatasync(t: &mut Task, a: &[u64; 6]) -> SysResult {
    syncable(t, arg_fd(a[0]))?.ops.fsync(true)?;
    Ok(0)
}

/// A file fsync can act on: Linux's pipes, sockets, character devices and
/// anonymous inodes (eventfd, epoll...) have no fsync (EINVAL).
fn syncable(t: &Task, fd: i32) -> Result<Arc<OpenFile>, Errno> {
    let f = get_file(t, fd)?;
    let kind = f.stat()?.mode & libc::S_IFMT;
    if !matches!(kind, libc::S_IFREG | libc::S_IFDIR | libc::S_IFBLK) {
        return Err(Errno::EINVAL);
    }
    Ok(f)
}

/// sync(2): Linux's never fails. The data of gofer files is in the host's
/// page cache already; fsync and syncfs make it durable.
pub fn sync(_t: &mut Task, _a: &[u64; 6]) -> SysResult {
    Ok(0)
}

/// syncfs(2): the host filesystem holding a gofer file is synced; the
/// sandbox's in-memory filesystems have nothing to do.
pub fn syncfs(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let f = get_file(t, arg_fd(a[0]))?;
    if f.ops.host_kind() == Some(crate::fsimpl::host::HostKind::File) {
        if let Some(fd) = f.ops.host_fd() {
            // SAFETY: syncfs only reads the fd number, which the file owns.
            let r = unsafe { libc::syncfs(fd) };
            Errno::result(r)?;
        }
    }
    Ok(0)
}

/// sync_file_range(2): Linux's argument checks, then the host's call on a
/// gofer file.
pub fn sync_file_range(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (off, len, flags) = (a[1] as i64, a[2] as i64, a[3] as u32);
    let all = libc::SYNC_FILE_RANGE_WAIT_BEFORE
        | libc::SYNC_FILE_RANGE_WRITE
        | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    if flags & !all != 0 {
        return Err(Errno::EINVAL);
    }
    let f = get_file(t, arg_fd(a[0]))?;
    if off < 0 || len < 0 || off.checked_add(len).is_none() {
        return Err(Errno::EINVAL);
    }
    // Only files, directories, symlinks and block devices have ranges.
    let kind = f.stat()?.mode & libc::S_IFMT;
    if !matches!(
        kind,
        libc::S_IFREG | libc::S_IFDIR | libc::S_IFLNK | libc::S_IFBLK
    ) {
        return Err(Errno::ESPIPE);
    }
    if f.ops.host_kind() == Some(crate::fsimpl::host::HostKind::File) {
        if let Some(fd) = f.ops.host_fd() {
            // SAFETY: plain integer arguments on an fd the file owns.
            let r = unsafe { libc::sync_file_range(fd, off, len, flags) };
            Errno::result(r)?;
        }
    }
    Ok(0)
}

pub fn getdents64(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let f = get_file(t, arg_fd(a[0]))?;
    let loc = match (&f.location, f.ops.is_dir()) {
        (Some(l), true) => l.clone(),
        _ => return Err(Errno::ENOTDIR),
    };
    let count = (a[2] as usize).min(1 << 20);
    let mut snap = lock(&f.dir_entries);
    if snap.is_none() {
        let me = loc.inode().stat()?.ino;
        let parent = loc.parent().inode().stat().map(|s| s.ino).unwrap_or(me);
        let mut v = vec![
            DirEntry {
                name: b".".to_vec(),
                ino: me,
                ftype: FileType::Directory,
            },
            DirEntry {
                name: b"..".to_vec(),
                ino: parent,
                ftype: FileType::Directory,
            },
        ];
        v.extend(loc.inode().readdir()?);
        *snap = Some(v);
    }
    let entries = snap.as_ref().ok_or(Errno::EIO)?;
    let mut off = f.offset.lock().map_err(|_| Errno::EIO)?;
    let mut out = Vec::with_capacity(count.min(65536));
    let mut idx = *off as usize;
    while idx < entries.len() {
        let e = &entries[idx];
        let reclen = (19 + e.name.len() + 1 + 7) & !7;
        if out.len() + reclen > count {
            break;
        }
        out.extend_from_slice(&e.ino.to_le_bytes());
        out.extend_from_slice(&((idx + 1) as i64).to_le_bytes());
        out.extend_from_slice(&(reclen as u16).to_le_bytes());
        out.push(e.ftype.dtype());
        out.extend_from_slice(&e.name);
        out.resize(out.len() + (reclen - 19 - e.name.len()), 0);
        idx += 1;
    }
    if out.is_empty() && idx < entries.len() {
        return Err(Errno::EINVAL);
    }
    t.write_bytes(a[1], &out)?;
    *off = idx as u64;
    Ok(out.len() as u64)
}

/// fcntl record locks (POSIX and OFD). `struct flock` is
/// { l_type: i16, l_whence: i16, l_start: i64, l_len: i64, l_pid: i32 }.
fn record_lock(t: &Task, f: &Arc<OpenFile>, cmd: i32, addr: u64) -> SysResult {
    use crate::vfs::lock::{self, Owner};
    let raw = t.read_bytes(addr, 32)?;
    let typ = i16::from_le_bytes([raw[0], raw[1]]) as i32;
    let whence = i16::from_le_bytes([raw[2], raw[3]]) as i32;
    let l_start = i64::from_le_bytes(raw[8..16].try_into().map_err(|_| Errno::EFAULT)?);
    let l_len = i64::from_le_bytes(raw[16..24].try_into().map_err(|_| Errno::EFAULT)?);
    let ofd = matches!(
        cmd,
        libc::F_OFD_GETLK | libc::F_OFD_SETLK | libc::F_OFD_SETLKW
    );
    if ofd && i32::from_le_bytes([raw[24], raw[25], raw[26], raw[27]]) != 0 {
        return Err(Errno::EINVAL);
    }
    let base: i64 = match whence {
        libc::SEEK_SET => 0,
        libc::SEEK_CUR => *f.offset.lock().map_err(|_| Errno::EIO)? as i64,
        libc::SEEK_END => f.ops.size()? as i64,
        _ => return Err(Errno::EINVAL),
    };
    let mut start = base.checked_add(l_start).ok_or(Errno::EOVERFLOW)?;
    let mut end: i64 = if l_len == 0 {
        i64::MAX
    } else {
        start.checked_add(l_len).ok_or(Errno::EOVERFLOW)?
    };
    if l_len < 0 {
        (start, end) = (end, start);
    }
    if start < 0 {
        return Err(Errno::EINVAL);
    }
    let (start, end) = (
        start as u64,
        if end == i64::MAX {
            u64::MAX
        } else {
            end as u64
        },
    );
    let owner = if ofd {
        Owner::Description(f.description_id())
    } else {
        Owner::Process(t.pid())
    };
    let key = f.lock_key();
    let kind = match typ {
        libc::F_RDLCK => Some(false),
        libc::F_WRLCK => Some(true),
        libc::F_UNLCK => None,
        _ => return Err(Errno::EINVAL),
    };
    if matches!(cmd, libc::F_GETLK | libc::F_OFD_GETLK) {
        let Some(write) = kind else {
            return Err(Errno::EINVAL);
        };
        let mut out = raw.clone();
        match lock::test(key, owner, start, end, write) {
            None => out[0..2].copy_from_slice(&(libc::F_UNLCK as i16).to_le_bytes()),
            Some((holder, s, e, w)) => {
                let ty = if w { libc::F_WRLCK } else { libc::F_RDLCK } as i16;
                out[0..2].copy_from_slice(&ty.to_le_bytes());
                out[2..4].copy_from_slice(&(libc::SEEK_SET as i16).to_le_bytes());
                out[8..16].copy_from_slice(&(s as i64).to_le_bytes());
                let len = if e == u64::MAX { 0 } else { (e - s) as i64 };
                out[16..24].copy_from_slice(&len.to_le_bytes());
                let pid = match holder {
                    Owner::Process(p) => t.pid_to_user(p),
                    _ => -1,
                };
                out[24..28].copy_from_slice(&pid.to_le_bytes());
            }
        }
        t.write_bytes(addr, &out)?;
        return Ok(0);
    }
    match kind {
        Some(false) if !f.readable() => return Err(Errno::EBADF),
        Some(true) if !f.writable() => return Err(Errno::EBADF),
        _ => {}
    }
    let wait = matches!(cmd, libc::F_SETLKW | libc::F_OFD_SETLKW);
    lock::set(
        key,
        owner,
        start,
        end,
        kind,
        wait,
        &crate::kernel::interrupted,
    )?;
    Ok(0)
}

pub fn flock(t: &mut Task, a: &[u64; 6]) -> SysResult {
    use crate::vfs::lock::{self, Owner};
    let f = get_file(t, arg_fd(a[0]))?;
    let op = a[1] as i32;
    if op & 32 != 0 {
        // LOCK_MAND: obsolete; Linux accepts it and does nothing.
        return Ok(0);
    }
    let kind = match op & !libc::LOCK_NB {
        libc::LOCK_SH => Some(false),
        libc::LOCK_EX => Some(true),
        libc::LOCK_UN => None,
        _ => return Err(Errno::EINVAL),
    };
    if f.flags() & libc::O_PATH != 0 {
        return Err(Errno::EBADF);
    }
    let owner = Owner::Flock(f.description_id());
    lock::set(
        f.lock_key(),
        owner,
        0,
        u64::MAX,
        kind,
        op & libc::LOCK_NB == 0,
        &crate::kernel::interrupted,
    )
    .map_err(|e| {
        if e == Errno::EAGAIN {
            Errno::EWOULDBLOCK
        } else {
            e
        }
    })?;
    Ok(0)
}

/// preadv/pwritev(2) and their -v2 forms (flags must be 0): positional
/// vector I/O.
fn pv_offset(a: &[u64; 6]) -> Result<u64, Errno> {
    // pos_l / pos_h: x86_64 passes the whole offset in pos_l.
    let off = a[3] as i64;
    if off < 0 {
        return Err(Errno::EINVAL);
    }
    Ok(off as u64)
}

fn do_preadv(t: &mut Task, a: &[u64; 6]) -> SysResult {
    // Linux's order: no positional I/O (ESPIPE), then access (EBADF), then
    // the file itself (EISDIR).
    let f = get_file(t, arg_fd(a[0]))?;
    if !f.ops.seekable() {
        return Err(Errno::ESPIPE);
    }
    if !f.readable() {
        return Err(Errno::EBADF);
    }
    let off = pv_offset(a)?;
    let iovs = read_iovecs(t, a[1], a[2])?;
    if f.ops.is_dir() {
        return Err(Errno::EISDIR);
    }
    let mut done = 0u64;
    for (base, len) in iovs {
        let mut buf = vec![0u8; (len as usize).min(CHUNK)];
        let n = f.ops.read_at(&mut buf, off + done)?;
        t.write_bytes(base, &buf[..n])?;
        done += n as u64;
        if n < buf.len() {
            break;
        }
    }
    Ok(done)
}

fn do_pwritev(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let f = get_file(t, arg_fd(a[0]))?;
    if !f.ops.seekable() {
        return Err(Errno::ESPIPE);
    }
    if !f.writable() {
        return Err(Errno::EBADF);
    }
    let off = pv_offset(a)?;
    let mut data = Vec::new();
    for (base, len) in read_iovecs(t, a[1], a[2])? {
        let len = (len as usize).min(MAX_RW as usize - data.len());
        data.extend_from_slice(&t.read_bytes(base, len)?);
    }
    let n = if f.flags() & libc::O_APPEND != 0 {
        f.ops.append(&data)?.0
    } else {
        f.ops.write_at(&data, off)?
    };
    Ok(n as u64)
}

pub fn preadv(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_preadv(t, a)
}

pub fn pwritev(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_pwritev(t, a)
}

pub fn preadv2(t: &mut Task, a: &[u64; 6]) -> SysResult {
    if a[5] != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    if a[3] as i64 == -1 {
        return readv(t, a);
    }
    do_preadv(t, a)
}

pub fn pwritev2(t: &mut Task, a: &[u64; 6]) -> SysResult {
    if a[5] != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    if a[3] as i64 == -1 {
        return writev(t, a);
    }
    do_pwritev(t, a)
}

/// memfd_create: an anonymous in-memory file (a tmpfs file with no name).
pub fn memfd_create(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let flags = a[1] as u32;
    if flags & !(libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) != 0 {
        return Err(Errno::EINVAL);
    }
    let name = t.read_cstr(a[0], 249).map_err(|e| {
        if e == Errno::ENAMETOOLONG {
            Errno::EINVAL
        } else {
            e
        }
    })?;
    let dir = crate::fsimpl::overlay::OverlayFs::tmpfs(0o700);
    let ctx = {
        let c = lock(&t.proc.creds);
        crate::vfs::CreateCtx {
            uid: c.euid,
            gid: c.egid,
            privileged: c.has_cap(crate::kernel::cap::FSETID),
        }
    };
    use crate::vfs::Inode;
    let node = dir.create(b"memfd", 0o777, ctx)?;
    let ops = node.open(libc::O_RDWR)?;
    dir.unlink(b"memfd")?;
    let mut display = b"/memfd:".to_vec();
    display.extend_from_slice(&name);
    display.extend_from_slice(b" (deleted)");
    let file = OpenFile::with_display(ops, display, libc::O_RDWR);
    install_fd(t, file, flags & libc::MFD_CLOEXEC != 0)
}

/// Moves up to `count` bytes from `input` to `output` through the sentry
/// (sendfile, splice, copy_file_range). `in_off`/`out_off` are explicit
/// offsets (None: the descriptions' own offsets). Stops at EOF or a short
/// write; the first error is returned only if nothing moved.
fn transfer(
    input: &OpenFile,
    output: &OpenFile,
    mut in_off: Option<u64>,
    mut out_off: Option<u64>,
    count: u64,
) -> Result<(u64, Option<u64>, Option<u64>), Errno> {
    let mut buf = vec![0u8; (count as usize).min(CHUNK)];
    let mut done = 0u64;
    while done < count {
        let want = ((count - done) as usize).min(buf.len());
        let r = match in_off {
            Some(o) => input.ops.read_at(&mut buf[..want], o),
            None => input.read(&mut buf[..want]),
        };
        let n = match r {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        };
        let w = match out_off {
            Some(o) => output.ops.write_at(&buf[..n], o),
            None => output.write(&buf[..n]),
        };
        let m = match w {
            Ok(m) => m,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        };
        done += m as u64;
        in_off = in_off.map(|o| o + m as u64);
        out_off = out_off.map(|o| o + m as u64);
        if m < n {
            break;
        }
    }
    Ok((done, in_off, out_off))
}

/// splice/copy_file_range: a transfer with optional offset pointers that
/// are read before and updated after.
fn transfer_at(
    t: &Task,
    input: &OpenFile,
    output: &OpenFile,
    (in_addr, out_addr): (u64, u64),
    len: u64,
) -> SysResult {
    let (ioff, ooff) = (read_off(t, in_addr)?, read_off(t, out_addr)?);
    let (n, ni, no) = transfer(input, output, ioff, ooff, len.min(MAX_RW))?;
    if let Some(o) = ni.filter(|_| in_addr != 0) {
        t.write_obj(in_addr, &(o as i64))?;
    }
    if let Some(o) = no.filter(|_| out_addr != 0) {
        t.write_obj(out_addr, &(o as i64))?;
    }
    Ok(n)
}

fn read_off(t: &Task, addr: u64) -> Result<Option<u64>, Errno> {
    if addr == 0 {
        return Ok(None);
    }
    let o: i64 = t.read_obj(addr)?;
    if o < 0 {
        return Err(Errno::EINVAL);
    }
    Ok(Some(o as u64))
}

fn io_pair(t: &Task, out_fd: i32, in_fd: i32) -> Result<(Arc<OpenFile>, Arc<OpenFile>), Errno> {
    let input = get_file(t, in_fd)?;
    let output = get_file(t, out_fd)?;
    if !input.readable() || !output.writable() {
        return Err(Errno::EBADF);
    }
    // A directory has no data to move (Linux: no splice_read, EINVAL).
    if input.ops.is_dir() || output.ops.is_dir() {
        return Err(Errno::EINVAL);
    }
    Ok((input, output))
}

pub fn sendfile(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (out_fd, in_fd, off_addr, count) = (arg_fd(a[0]), arg_fd(a[1]), a[2], a[3]);
    let (input, output) = io_pair(t, out_fd, in_fd)?;
    if !input.ops.seekable() {
        return Err(Errno::EINVAL);
    }
    if output.flags() & libc::O_APPEND != 0 {
        return Err(Errno::EINVAL);
    }
    let off = read_off(t, off_addr)?;
    let (n, new_off, _) = transfer(&input, &output, off, None, count.min(MAX_RW))?;
    if let Some(o) = new_off.filter(|_| off_addr != 0) {
        t.write_obj(off_addr, &(o as i64))?;
    }
    Ok(n)
}

pub fn splice(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (in_fd, in_addr, out_fd, out_addr, len, flags) =
        (arg_fd(a[0]), a[1], arg_fd(a[2]), a[3], a[4], a[5] as u32);
    check_splice_flags(flags)?;
    let (input, output) = io_pair(t, out_fd, in_fd)?;
    // One end must be a pipe; pipes take no offsets.
    if !input.ops.is_pipe() && !output.ops.is_pipe() {
        return Err(Errno::EINVAL);
    }
    if (input.ops.is_pipe() && in_addr != 0) || (output.ops.is_pipe() && out_addr != 0) {
        return Err(Errno::ESPIPE);
    }
    // Into a file opened O_APPEND, or a pipe into itself: Linux refuses.
    if !output.ops.is_pipe() && output.flags() & libc::O_APPEND != 0 {
        return Err(Errno::EINVAL);
    }
    if same_pipe(&input, &output) {
        return Err(Errno::EINVAL);
    }
    // Only files, pipes, sockets and devices move data through splice
    // (eventfd, timerfd, epoll... have no splice_read or splice_write):
    // refused before a read from an empty pipe could block.
    let splices = |f: &OpenFile| {
        f.stat().is_ok_and(|st| {
            matches!(
                st.mode & libc::S_IFMT,
                libc::S_IFREG | libc::S_IFIFO | libc::S_IFSOCK | libc::S_IFCHR
            )
        })
    };
    if !splices(&input) || !splices(&output) {
        return Err(Errno::EINVAL);
    }
    transfer_at(t, &input, &output, (in_addr, out_addr), len)
}

/// Whether both files are ends of one pipe (each end is its own host fd
/// of the same host pipe).
fn same_pipe(a: &OpenFile, b: &OpenFile) -> bool {
    if !a.ops.is_pipe() || !b.ops.is_pipe() {
        return false;
    }
    match (a.stat(), b.stat()) {
        (Ok(x), Ok(y)) => (x.dev, x.ino) == (y.dev, y.ino),
        _ => false,
    }
}

/// splice, tee and vmsplice accept these flags only (EINVAL otherwise).
fn check_splice_flags(flags: u32) -> Result<(), Errno> {
    let known =
        libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MORE | libc::SPLICE_F_GIFT;
    if flags & !known != 0 {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// tee(2): both ends are pipes the sentry holds as host pipes, so the
/// host duplicates the bytes itself (none are consumed).
pub fn tee(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (in_fd, out_fd, len, flags) = (arg_fd(a[0]), arg_fd(a[1]), a[2] as usize, a[3] as u32);
    check_splice_flags(flags)?;
    let (input, output) = io_pair(t, out_fd, in_fd)?;
    let (Some(from), Some(to)) = (input.ops.host_fd(), output.ops.host_fd()) else {
        return Err(Errno::EINVAL);
    };
    if !input.ops.is_pipe() || !output.ops.is_pipe() {
        return Err(Errno::EINVAL);
    }
    if from == to || same_pipe(&input, &output) {
        return Err(Errno::EINVAL);
    }
    let nonblock = flags & libc::SPLICE_F_NONBLOCK != 0
        || input.flags() & libc::O_NONBLOCK != 0
        || output.flags() & libc::O_NONBLOCK != 0;
    let host_flags = if nonblock { libc::SPLICE_F_NONBLOCK } else { 0 };
    let n = crate::fsimpl::host::retry_host(|| {
        // SAFETY: two pipe fds the sentry owns and plain integers.
        let r = unsafe { libc::tee(from, to, len, host_flags) };
        Errno::result(r)
    })?;
    Ok(n as u64)
}

const PAGE: usize = 4096;

/// vmsplice(2): into a pipe's write end it is writev, out of a read end
/// readv (the sentry copies; there are no pages to gift).
pub fn vmsplice(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let flags = a[3] as u32;
    check_splice_flags(flags)?;
    let f = get_file(t, arg_fd(a[0]))?;
    if !f.ops.is_pipe() {
        return Err(Errno::EBADF);
    }
    let args = [a[0], a[1], a[2], 0, 0, 0];
    if !f.writable() {
        return readv(t, &args);
    }
    // Into a pipe, Linux splices what fits and returns (waiting only while
    // the pipe is full), unlike a write, which waits to write it all.
    let Some(hfd) = f.ops.host_fd() else {
        return writev(t, &args);
    };
    let nonblock = flags & libc::SPLICE_F_NONBLOCK != 0 || f.flags() & libc::O_NONBLOCK != 0;
    // Linux puts each user page's part of the iovec in a pipe slot of its
    // own; the pipe has cap/4096 slots, one per queued page.
    let free_slots = loop {
        let cap = nix::fcntl::fcntl(hfd, nix::fcntl::FcntlArg::F_GETPIPE_SZ)?;
        let mut queued: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int into our own variable.
        if unsafe { libc::ioctl(hfd, libc::FIONREAD, &mut queued) } < 0 {
            return Err(Errno::last());
        }
        let used = (queued.max(0) as usize).div_ceil(PAGE);
        let free = (cap.max(0) as usize / PAGE).saturating_sub(used);
        if free > 0 {
            break free;
        }
        if nonblock {
            return Err(Errno::EAGAIN);
        }
        // SAFETY: the host fd outlives this call (the file holds it).
        let bfd = unsafe { std::os::fd::BorrowedFd::borrow_raw(hfd) };
        let mut pfd = [nix::poll::PollFd::new(bfd, nix::poll::PollFlags::POLLOUT)];
        crate::fsimpl::host::retry_host(|| {
            nix::poll::poll(&mut pfd, nix::poll::PollTimeout::NONE)
        })?;
    };
    let mut data = Vec::new();
    let mut slots = free_slots;
    'iovs: for (base, len) in read_iovecs(t, a[1], a[2])? {
        let (mut at, end) = (base, base.saturating_add(len));
        while at < end {
            if slots == 0 {
                break 'iovs;
            }
            let page_end = (at / PAGE as u64 + 1) * PAGE as u64;
            let piece = page_end.min(end) - at;
            data.extend_from_slice(&t.read_bytes(at, piece as usize)?);
            slots -= 1;
            at += piece;
        }
    }
    let n = check_epipe(t, &f, f.write(&data))?;
    Ok(n as u64)
}

pub fn copy_file_range(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (in_fd, in_addr, out_fd, out_addr, len, flags) =
        (arg_fd(a[0]), a[1], arg_fd(a[2]), a[3], a[4], a[5]);
    if flags != 0 {
        return Err(Errno::EINVAL);
    }
    let (input, output) = io_pair(t, out_fd, in_fd)?;
    if !input.ops.seekable()
        || !output.ops.seekable()
        || input.ops.is_pipe()
        || output.ops.is_pipe()
    {
        return Err(Errno::EINVAL);
    }
    if output.flags() & libc::O_APPEND != 0 {
        return Err(Errno::EBADF);
    }
    transfer_at(t, &input, &output, (in_addr, out_addr), len)
}

/// posix_fadvise: advice is only a hint; validated like Linux and ignored.
pub fn fadvise64(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let f = get_file(t, arg_fd(a[0]))?;
    if f.flags() & libc::O_PATH != 0 {
        return Err(Errno::EBADF);
    }
    if f.ops.is_pipe() || !f.ops.seekable() {
        return Err(Errno::ESPIPE);
    }
    if (a[2] as i64) < 0 || !(0..=5).contains(&(a[3] as i32)) {
        return Err(Errno::EINVAL);
    }
    Ok(0)
}

/// readahead: a hint too; Linux wants a readable regular file.
pub fn readahead(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let f = get_file(t, arg_fd(a[0]))?;
    if !f.readable() {
        return Err(Errno::EBADF);
    }
    if f.ops.stat()?.mode & libc::S_IFMT != libc::S_IFREG {
        return Err(Errno::EINVAL);
    }
    Ok(0)
}
