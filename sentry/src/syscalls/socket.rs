//! Sockets. So far only unix-domain socketpair(2): a host socketpair the
//! sentry owns (like its pipes), with send/recv families on it. Named and
//! network sockets come with the networking work; socket(2) answers
//! EAFNOSUPPORT as a kernel without those families would.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use nix::errno::Errno;

use super::file::{get_file, install_fd};
use super::{arg_fd, SysResult};
use crate::fsimpl::host::{retry_host, HostFile, HostKind};
use crate::kernel::signals::{info_sender, SI_USER};
use crate::kernel::task::Task;
use crate::kernel::{kernel, lock};
use crate::vfs::OpenFile;

const MAX_IO: usize = 1 << 20;

pub fn socketpair(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (domain, typ, proto, sv) = (a[0] as i32, a[1] as i32, a[2] as i32, a[3]);
    if domain == libc::AF_INET || domain == libc::AF_INET6 {
        return Err(Errno::EOPNOTSUPP); // as Linux: inet has no socketpair
    }
    if domain != libc::AF_UNIX {
        return Err(Errno::EAFNOSUPPORT);
    }
    let base = typ & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC);
    if !matches!(
        base,
        libc::SOCK_STREAM | libc::SOCK_DGRAM | libc::SOCK_SEQPACKET
    ) {
        return Err(Errno::EINVAL);
    }
    if proto != 0 {
        return Err(Errno::EPROTONOSUPPORT);
    }
    let mut fds = [0i32; 2];
    // SAFETY: socketpair writes two fds into our array; the type is validated.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            base | (typ & libc::SOCK_NONBLOCK) | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } < 0
    {
        return Err(Errno::last());
    }
    // SAFETY: both fds were just created and are ours alone.
    let (x, y) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let status = libc::O_RDWR
        | if typ & libc::SOCK_NONBLOCK != 0 {
            libc::O_NONBLOCK
        } else {
            0
        };
    let ino = nix::sys::stat::fstat(fds[0]).map(|s| s.st_ino).unwrap_or(0);
    let mk = |fd| {
        OpenFile::with_display(
            Arc::new(HostFile::new(fd, HostKind::Socket)),
            format!("socket:[{ino}]").into_bytes(),
            status,
        )
    };
    let cloexec = typ & libc::SOCK_CLOEXEC != 0;
    let f0 = install_fd(t, mk(x), cloexec)? as i32;
    let f1 = match install_fd(t, mk(y), cloexec) {
        Ok(f) => f as i32,
        Err(e) => {
            let _ = lock(&t.proc.fds).remove(f0);
            return Err(e);
        }
    };
    if let Err(e) = t.write_obj(sv, &[f0, f1]) {
        let mut fds = lock(&t.proc.fds);
        let _ = fds.remove(f0);
        let _ = fds.remove(f1);
        return Err(e);
    }
    Ok(0)
}

/// The host socket behind an application fd (ENOTSOCK otherwise).
fn socket_fd(t: &Task, fd: i32) -> Result<(Arc<OpenFile>, RawFd), Errno> {
    let f = get_file(t, fd)?;
    if f.ops.host_kind() != Some(HostKind::Socket) {
        return Err(Errno::ENOTSOCK);
    }
    let h = f.ops.host_fd().ok_or(Errno::ENOTSOCK)?;
    Ok((f, h))
}

const SEND_FLAGS: i32 =
    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL | libc::MSG_MORE | libc::MSG_EOR | libc::MSG_CONFIRM;
const RECV_FLAGS: i32 = libc::MSG_DONTWAIT
    | libc::MSG_PEEK
    | libc::MSG_WAITALL
    | libc::MSG_TRUNC
    | libc::MSG_CMSG_CLOEXEC;

fn nonblock(f: &OpenFile, flags: i32) -> i32 {
    if f.flags() & libc::O_NONBLOCK != 0 {
        flags | libc::MSG_DONTWAIT
    } else {
        flags
    }
}

fn do_send(t: &Task, fd: i32, data: &[u8], flags: i32) -> SysResult {
    if flags & !SEND_FLAGS != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    let (f, h) = socket_fd(t, fd)?;
    let fl = nonblock(&f, flags) | libc::MSG_NOSIGNAL;
    // SAFETY: send from our own buffer on the sentry's socket.
    let r = retry_host(|| {
        Errno::result(unsafe { libc::send(h, data.as_ptr().cast(), data.len(), fl) })
            .map(|n| n as usize)
    });
    if r == Err(Errno::EPIPE) && flags & libc::MSG_NOSIGNAL == 0 {
        let uid = lock(&t.proc.creds).ruid;
        kernel().send_signal_thread(
            &t.proc,
            &t.thread,
            libc::SIGPIPE,
            info_sender(libc::SIGPIPE, SI_USER, t.pid(), uid),
        );
    }
    Ok(r? as u64)
}

fn do_recv(t: &Task, fd: i32, len: usize, flags: i32) -> Result<(Vec<u8>, usize), Errno> {
    if flags & !RECV_FLAGS != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    let (f, h) = socket_fd(t, fd)?;
    let fl = nonblock(&f, flags & !libc::MSG_CMSG_CLOEXEC);
    let mut buf = vec![0u8; len.min(MAX_IO)];
    // SAFETY: recv into our own buffer on the sentry's socket.
    let n = retry_host(|| {
        Errno::result(unsafe { libc::recv(h, buf.as_mut_ptr().cast(), buf.len(), fl) })
            .map(|n| n as usize)
    })?;
    Ok((buf, n))
}

/// The address of an unnamed unix socket: just the family.
fn write_unnamed(t: &Task, addr: u64, addrlen: u64) -> Result<(), Errno> {
    if addr == 0 || addrlen == 0 {
        return Ok(());
    }
    let have: u32 = t.read_obj(addrlen)?;
    let fam = (libc::AF_UNIX as u16).to_le_bytes();
    t.write_bytes(addr, &fam[..(have as usize).min(2)])?;
    t.write_obj(addrlen, &2u32)?;
    Ok(())
}

pub fn sendto(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (fd, buf, len, flags, addr) = (arg_fd(a[0]), a[1], a[2] as usize, a[3] as i32, a[4]);
    if addr != 0 {
        socket_fd(t, fd)?;
        return Err(Errno::EISCONN);
    }
    let data = t.read_bytes(buf, len.min(MAX_IO))?;
    do_send(t, fd, &data, flags)
}

pub fn recvfrom(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (fd, buf, len, flags, addr, addrlen) =
        (arg_fd(a[0]), a[1], a[2] as usize, a[3] as i32, a[4], a[5]);
    let (data, n) = do_recv(t, fd, len, flags)?;
    t.write_bytes(buf, &data[..n.min(data.len())])?;
    write_unnamed(t, addr, addrlen)?;
    Ok(n as u64)
}

/// struct msghdr: name, namelen, iov, iovlen, control, controllen, flags.
fn read_msghdr(t: &Task, addr: u64) -> Result<[u64; 7], Errno> {
    let raw = t.read_bytes(addr, 56)?;
    let g = |o: usize| u64::from_le_bytes(raw[o..o + 8].try_into().unwrap_or([0; 8]));
    Ok([
        g(0),
        g(8) & 0xffff_ffff,
        g(16),
        g(24),
        g(32),
        g(40),
        g(48) & 0xffff_ffff,
    ])
}

/// The iovec array of a msghdr (msg_iovlen over IOV_MAX is EMSGSIZE).
fn iovecs(t: &Task, iov: u64, n: u64) -> Result<Vec<(u64, u64)>, Errno> {
    if n > 1024 {
        return Err(Errno::EMSGSIZE);
    }
    super::file::read_iovecs(t, iov, n)
}

pub fn sendmsg(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (fd, msg, flags) = (arg_fd(a[0]), a[1], a[2] as i32);
    let [name, _, iov, iovlen, _, controllen, _] = read_msghdr(t, msg)?;
    socket_fd(t, fd)?;
    if name != 0 {
        return Err(Errno::EISCONN);
    }
    if controllen != 0 {
        // Passing fds or credentials needs the sentry's own unix sockets.
        kernel().log_unimplemented(
            libc::SYS_sendmsg as u64 | 1 << 32,
            "sendmsg with control messages",
        );
        return Err(Errno::EOPNOTSUPP);
    }
    let mut data = Vec::new();
    for (base, len) in iovecs(t, iov, iovlen)? {
        let len = (len as usize).min(MAX_IO - data.len());
        data.extend_from_slice(&t.read_bytes(base, len)?);
    }
    do_send(t, fd, &data, flags)
}

pub fn recvmsg(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (fd, msg, flags) = (arg_fd(a[0]), a[1], a[2] as i32);
    let [name, namelen, iov, iovlen, _, _, _] = read_msghdr(t, msg)?;
    let iovs = iovecs(t, iov, iovlen)?;
    let total: u64 = iovs.iter().map(|v| v.1).sum();
    let (data, n) = do_recv(t, fd, total as usize, flags)?;
    let mut left = &data[..n.min(data.len())];
    for (base, len) in iovs {
        if left.is_empty() {
            break;
        }
        let k = (len as usize).min(left.len());
        t.write_bytes(base, &left[..k])?;
        left = &left[k..];
    }
    if name != 0 && namelen >= 2 {
        t.write_bytes(name, &(libc::AF_UNIX as u16).to_le_bytes())?;
        t.write_obj(msg + 8, &2u32)?;
    }
    // No control data; msg_flags: truncation is reported by the host count.
    t.write_obj(msg + 40, &0u64)?;
    t.write_obj(msg + 48, &0u32)?;
    Ok(n as u64)
}

pub fn shutdown(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (_f, h) = socket_fd(t, arg_fd(a[0]))?;
    let how = a[1] as i32;
    if !matches!(how, libc::SHUT_RD | libc::SHUT_WR | libc::SHUT_RDWR) {
        return Err(Errno::EINVAL);
    }
    // SAFETY: shutdown of the sentry's own socket.
    if unsafe { libc::shutdown(h, how) } < 0 {
        return Err(Errno::last());
    }
    Ok(0)
}

pub fn getsockname(t: &mut Task, a: &[u64; 6]) -> SysResult {
    socket_fd(t, arg_fd(a[0]))?;
    write_unnamed(t, a[1], a[2])?;
    Ok(0)
}

/// Socket options the sentry answers from (or applies to) its own socket.
fn option_allowed(level: i32, name: i32) -> bool {
    level == libc::SOL_SOCKET
        && matches!(
            name,
            libc::SO_TYPE
                | libc::SO_DOMAIN
                | libc::SO_PROTOCOL
                | libc::SO_ERROR
                | libc::SO_RCVBUF
                | libc::SO_SNDBUF
                | libc::SO_ACCEPTCONN
                | libc::SO_RCVLOWAT
                | libc::SO_SNDLOWAT
        )
}

pub fn getsockopt(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (fd, level, name, val, lenp) = (arg_fd(a[0]), a[1] as i32, a[2] as i32, a[3], a[4]);
    let (_f, h) = socket_fd(t, fd)?;
    if !option_allowed(level, name) {
        return Err(Errno::ENOPROTOOPT);
    }
    let have: u32 = t.read_obj(lenp)?;
    let mut v: i32 = 0;
    let mut len: libc::socklen_t = 4;
    // SAFETY: getsockopt of an int option into our own variable.
    if unsafe { libc::getsockopt(h, level, name, (&mut v as *mut i32).cast(), &mut len) } < 0 {
        return Err(Errno::last());
    }
    let bytes = v.to_le_bytes();
    t.write_bytes(val, &bytes[..(have as usize).min(4)])?;
    t.write_obj(lenp, &4u32)?;
    Ok(0)
}

pub fn setsockopt(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (fd, level, name, val, len) = (arg_fd(a[0]), a[1] as i32, a[2] as i32, a[3], a[4]);
    let (_f, h) = socket_fd(t, fd)?;
    if !option_allowed(level, name)
        || matches!(
            name,
            libc::SO_TYPE
                | libc::SO_DOMAIN
                | libc::SO_PROTOCOL
                | libc::SO_ERROR
                | libc::SO_ACCEPTCONN
        )
    {
        return Err(Errno::ENOPROTOOPT);
    }
    if len < 4 {
        return Err(Errno::EINVAL);
    }
    let v: i32 = t.read_obj(val)?;
    // SAFETY: setsockopt of a validated int option from our own variable.
    if unsafe { libc::setsockopt(h, level, name, (&v as *const i32).cast(), 4) } < 0 {
        return Err(Errno::last());
    }
    Ok(0)
}
