//! Socket syscalls. Unix-domain sockets (socketpair, and named sockets
//! bound to a path or an abstract name, with SCM_RIGHTS) are implemented in
//! `socket/unix.rs`; internet sockets (AF_INET, AF_INET6) in
//! `socket/inet.rs`, with their halves of these calls in `inet.rs`.
//! Netlink and packet sockets answer EAFNOSUPPORT.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use nix::errno::Errno;

use super::file::{get_file, get_file_raw, install_fd};
use super::fs::{check_access, ctx, current_umask, may_write, resolve_at, resolve_parent_at};
use super::inet;
use super::{arg_fd, SysResult};
use crate::fsimpl::host::retry_host;
use crate::kernel::signals::{info_sender, SI_USER};
use crate::kernel::task::Task;
use crate::kernel::{kernel, lock};
use crate::socket::unix::{Ucred, UnixAddr, UnixSocket};
use crate::socket::NetSock;
use crate::vfs::{FileOps, FileType, OpenFile};

const MAX_IO: usize = 1 << 20;
/// sizeof(struct sockaddr_un).
const SOCKADDR_UN_LEN: u64 = 110;
/// Most fds one SCM_RIGHTS message may carry (SCM_MAX_FD).
const SCM_MAX_FD: usize = 253;

const SEND_FLAGS: i32 =
    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL | libc::MSG_MORE | libc::MSG_EOR | libc::MSG_CONFIRM;
const RECV_FLAGS: i32 = libc::MSG_DONTWAIT
    | libc::MSG_PEEK
    | libc::MSG_WAITALL
    | libc::MSG_TRUNC
    | libc::MSG_CMSG_CLOEXEC;

fn creds_of(t: &Task) -> Ucred {
    let c = lock(&t.proc.creds);
    Ucred {
        pid: t.pid(),
        uid: c.euid,
        gid: c.egid,
    }
}

fn next_ino() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1_000_000);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

pub(super) fn install_socket(t: &Task, s: Arc<dyn FileOps>, flags: i32) -> SysResult {
    let status = libc::O_RDWR | (flags & libc::SOCK_NONBLOCK);
    let f = OpenFile::with_display(s, format!("socket:[{}]", next_ino()).into_bytes(), status);
    install_fd(t, f, flags & libc::SOCK_CLOEXEC != 0)
}

fn unix_type(typ: i32) -> Result<i32, Errno> {
    if typ & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC | 0xf) != 0 {
        return Err(Errno::EINVAL);
    }
    match typ & 0xf {
        t @ (libc::SOCK_STREAM | libc::SOCK_DGRAM | libc::SOCK_SEQPACKET) => Ok(t),
        _ => Err(Errno::ESOCKTNOSUPPORT),
    }
}

pub fn socket(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (domain, typ, proto) = (a[0] as i32, a[1] as i32, a[2] as i32);
    if domain == libc::AF_INET || domain == libc::AF_INET6 {
        return inet::socket(t, domain, typ, proto);
    }
    if domain == libc::AF_NETLINK {
        return inet::netlink_socket(t, typ, proto);
    }
    if domain != libc::AF_UNIX {
        if domain == libc::AF_PACKET {
            kernel().log_unimplemented(
                libc::SYS_socket as u64 | (domain as u64) << 32,
                "socket (network families)",
            );
        }
        return Err(Errno::EAFNOSUPPORT);
    }
    let stype = unix_type(typ)?;
    if proto != 0 && proto != libc::PF_UNIX {
        return Err(Errno::EPROTONOSUPPORT);
    }
    let s = UnixSocket::new(stype, typ & libc::SOCK_NONBLOCK != 0, creds_of(t))?;
    install_socket(t, s, typ)
}

pub fn socketpair(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (domain, typ, proto, sv) = (a[0] as i32, a[1] as i32, a[2] as i32, a[3]);
    if domain == libc::AF_INET || domain == libc::AF_INET6 {
        return Err(Errno::EOPNOTSUPP); // as Linux: inet has no socketpair
    }
    if domain != libc::AF_UNIX {
        return Err(Errno::EAFNOSUPPORT);
    }
    let stype = unix_type(typ)?;
    if proto != 0 && proto != libc::PF_UNIX {
        return Err(Errno::EPROTONOSUPPORT);
    }
    let (x, y) = UnixSocket::pair(stype, typ & libc::SOCK_NONBLOCK != 0, creds_of(t))?;
    let f0 = install_socket(t, x, typ)? as i32;
    let f1 = match install_socket(t, y, typ) {
        Ok(f) => f as i32,
        Err(e) => {
            let _ = lock(&t.proc.fds).remove(f0);
            return Err(e);
        }
    };
    super::file::write_fd_pair(t, sv, f0, f1)
}

/// The socket behind an application fd (ENOTSOCK otherwise).
enum Sock {
    Unix(Arc<UnixSocket>),
    Inet(NetSock),
}

fn sock(t: &Task, fd: i32) -> Result<(Arc<OpenFile>, Sock), Errno> {
    let f = get_file(t, fd)?;
    if let Some(s) = f.ops.clone().unix_socket() {
        return Ok((f, Sock::Unix(s)));
    }
    if let Some(s) = f.ops.clone().inet_socket() {
        return Ok((f, Sock::Inet(NetSock::Local(s))));
    }
    if let Some(s) = f.ops.clone().host_inet_socket() {
        return Ok((f, Sock::Inet(NetSock::Host(s))));
    }
    let s = f.ops.clone().socket_ops().ok_or(Errno::ENOTSOCK)?;
    Ok((f, Sock::Inet(NetSock::Ops(s))))
}

/// Every handler starts here: the unix socket to work on, or the whole
/// call handed to `inet.rs` for an internet socket.
macro_rules! unix_or_inet {
    ($t:expr, $fd:expr, |$f:ident, $s:ident| $inet:expr) => {
        match sock($t, $fd)? {
            (f, Sock::Unix(s)) => (f, s),
            ($f, Sock::Inet($s)) => {
                let _ = &$f;
                return $inet;
            }
        }
    };
}

fn read_addr(t: &Task, addr: u64, len: u64) -> Result<UnixAddr, Errno> {
    if !(2..=SOCKADDR_UN_LEN).contains(&len) {
        return Err(Errno::EINVAL);
    }
    UnixAddr::parse(&t.read_bytes(addr, len as usize)?)
}

/// Writes a socket address and its length, truncated to the caller's room.
pub(super) fn write_addr(t: &Task, addr: u64, lenp: u64, bytes: &[u8]) -> Result<(), Errno> {
    if addr == 0 || lenp == 0 {
        return Ok(());
    }
    let have: u32 = t.read_obj(lenp)?;
    if (have as i32) < 0 {
        return Err(Errno::EINVAL);
    }
    t.write_bytes(addr, &bytes[..(have as usize).min(bytes.len())])?;
    t.write_obj(lenp, &(bytes.len() as u32))?;
    Ok(())
}

pub fn bind(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (_f, s) = unix_or_inet!(t, arg_fd(a[0]), |f, s| inet::bind(t, &s, a[1], a[2]));
    let addr = read_addr(t, a[1], a[2])?;
    match &addr {
        UnixAddr::Unnamed => s.autobind()?,
        UnixAddr::Abstract(_) => s.bind(addr, None)?,
        UnixAddr::Path(p) => {
            if s.local_addr() != UnixAddr::Unnamed {
                return Err(Errno::EINVAL);
            }
            let (parent, name) = resolve_parent_at(t, libc::AT_FDCWD, p)?;
            if name.is_empty()
                || name == b"."
                || name == b".."
                || kernel().vfs.step(&parent, &name).is_ok()
            {
                return Err(Errno::EADDRINUSE);
            }
            may_write(t, parent.inode())?;
            let mode = libc::S_IFSOCK | (0o777 & !current_umask(t));
            parent.inode().mknod(&name, mode, 0, ctx(t))?;
            let node = kernel().vfs.step(&parent, &name)?.inode().clone();
            if let Err(e) = s.bind(addr.clone(), Some(node)) {
                let _ = parent.inode().unlink(&name);
                return Err(e);
            }
        }
    }
    Ok(0)
}

pub fn listen(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (_f, s) = unix_or_inet!(t, arg_fd(a[0]), |f, s| inet::listen(&s, a[1] as i32));
    s.listen(a[1] as i32)?;
    Ok(0)
}

/// Finds the socket an address names, checking the socket file as Linux
/// does (it must be a socket the caller may write).
fn find_target(t: &Task, addr: &UnixAddr) -> Result<Arc<UnixSocket>, Errno> {
    match addr {
        UnixAddr::Path(p) => {
            let loc = resolve_at(t, libc::AT_FDCWD, p, true, false)?;
            let node = loc.inode().clone();
            if node.file_type() != FileType::Socket {
                return Err(Errno::ECONNREFUSED);
            }
            check_access(&lock(&t.proc.creds), &node.stat()?, 2, false)?;
            UnixSocket::lookup(addr, Some(&node))
        }
        UnixAddr::Abstract(_) => UnixSocket::lookup(addr, None),
        UnixAddr::Unnamed => Err(Errno::EINVAL),
    }
}

pub fn connect(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (_f, s) = unix_or_inet!(t, arg_fd(a[0]), |f, s| inet::connect(t, &s, a[1], a[2]));
    let addr = read_addr(t, a[1], a[2])?;
    let target = find_target(t, &addr)?;
    s.connect(&target, addr)?;
    Ok(0)
}

fn do_accept(t: &Task, fd: i32, addr: u64, lenp: u64, flags: i32) -> SysResult {
    if flags & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let (_f, s) = unix_or_inet!(t, fd, |f, s| inet::accept(t, &s, addr, lenp, flags));
    if s.stype == libc::SOCK_DGRAM {
        return Err(Errno::EOPNOTSUPP);
    }
    let conn = s.accept()?;
    if flags & libc::SOCK_NONBLOCK != 0 {
        crate::vfs::FileOps::set_nonblocking(&*conn, true);
    }
    let peer = conn.peer_addr().unwrap_or(UnixAddr::Unnamed).to_bytes();
    let nfd = install_socket(t, conn, flags)?;
    if let Err(e) = write_addr(t, addr, lenp, &peer) {
        let _ = lock(&t.proc.fds).remove(nfd as i32);
        return Err(e);
    }
    Ok(nfd)
}

pub fn accept(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_accept(t, arg_fd(a[0]), a[1], a[2], 0)
}

pub fn accept4(t: &mut Task, a: &[u64; 6]) -> SysResult {
    do_accept(t, arg_fd(a[0]), a[1], a[2], a[3] as i32)
}

pub fn getsockname(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (_f, s) = unix_or_inet!(t, arg_fd(a[0]), |f, s| inet::getsockname(t, &s, a[1], a[2]));
    write_addr(t, a[1], a[2], &s.local_addr().to_bytes())?;
    Ok(0)
}

pub fn getpeername(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (_f, s) = unix_or_inet!(t, arg_fd(a[0]), |f, s| inet::getpeername(t, &s, a[1], a[2]));
    write_addr(t, a[1], a[2], &s.peer_addr()?.to_bytes())?;
    Ok(0)
}

pub(super) fn raise_sigpipe(t: &Task) {
    let uid = lock(&t.proc.creds).ruid;
    kernel().send_signal_thread(
        &t.proc,
        &t.thread,
        libc::SIGPIPE,
        info_sender(libc::SIGPIPE, SI_USER, t.pid_to_user(t.pid()), uid),
    );
}

/// Sends `data` on a socket (to `to` for unconnected datagram sockets).
fn do_send(
    t: &Task,
    f: &OpenFile,
    s: &UnixSocket,
    data: &[u8],
    flags: i32,
    to: Option<UnixAddr>,
) -> SysResult {
    if flags & !SEND_FLAGS != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    let inbox;
    let h = match to {
        Some(addr) if s.stype == libc::SOCK_DGRAM => {
            let target = find_target(t, &addr)?;
            if target.stype != s.stype {
                return Err(Errno::EPROTOTYPE);
            }
            inbox = target.dgram_inbox().ok_or(Errno::ECONNREFUSED)?;
            std::os::fd::AsRawFd::as_raw_fd(&*inbox)
        }
        Some(_) => {
            return Err(if s.send_fd().is_some() {
                Errno::EISCONN
            } else {
                Errno::EOPNOTSUPP
            })
        }
        None => s.send_fd().ok_or(Errno::ENOTCONN)?,
    };
    let mut fl = flags | libc::MSG_NOSIGNAL;
    if f.flags() & libc::O_NONBLOCK != 0 {
        fl |= libc::MSG_DONTWAIT;
    }
    // SAFETY: send from our own buffer on a socket the sentry owns.
    let r = retry_host(|| {
        Errno::result(unsafe { libc::send(h, data.as_ptr().cast(), data.len(), fl) })
            .map(|n| n as usize)
    });
    if r == Err(Errno::EPIPE) && flags & libc::MSG_NOSIGNAL == 0 {
        raise_sigpipe(t);
    }
    Ok(r? as u64)
}

fn do_recv(
    f: &OpenFile,
    s: &UnixSocket,
    len: usize,
    flags: i32,
) -> Result<(Vec<u8>, usize), Errno> {
    if flags & !RECV_FLAGS != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    let h = s.recv_fd().ok_or_else(|| s.unconnected_read_error())?;
    let mut fl = flags & !libc::MSG_CMSG_CLOEXEC;
    if f.flags() & libc::O_NONBLOCK != 0 {
        fl |= libc::MSG_DONTWAIT;
    }
    let mut buf = vec![0u8; len.min(MAX_IO)];
    // SAFETY: recv into our own buffer on a socket the sentry owns.
    let n = retry_host(|| {
        Errno::result(unsafe { libc::recv(h, buf.as_mut_ptr().cast(), buf.len(), fl) })
            .map(|n| n as usize)
    })?;
    Ok((buf, n))
}

pub fn sendto(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (fd, buf, len, flags, addr, alen) =
        (arg_fd(a[0]), a[1], a[2] as usize, a[3] as i32, a[4], a[5]);
    let (f, s) = unix_or_inet!(t, fd, |f, s| {
        let to = (addr != 0).then_some((addr, alen));
        if !s.is_stream() {
            let data = t.read_bytes(buf, len.min(MAX_IO))?;
            return inet::send(t, &f, &s, &data, flags, to);
        }
        send_stream(t, &f, &s, buf, len, flags, to)
    });
    let to = if addr != 0 {
        Some(read_addr(t, addr, alen)?)
    } else {
        None
    };
    let data = t.read_bytes(buf, len.min(MAX_IO))?;
    do_send(t, &f, &s, &data, flags, to)
}

/// A send on an internet stream socket: all of it is moved unless the
/// send would block (non-blocking), times out (SO_SNDTIMEO) or fails, as
/// Linux's tcp_sendmsg; the sentry takes it a chunk at a time.
fn send_stream(
    t: &Task,
    f: &OpenFile,
    s: &NetSock,
    buf: u64,
    len: usize,
    flags: i32,
    to: Option<(u64, u64)>,
) -> SysResult {
    let mut done = 0usize;
    loop {
        let want = (len - done).min(MAX_IO);
        let data = match t.read_bytes(buf + done as u64, want) {
            Ok(d) => d,
            Err(_) if done > 0 => return Ok(done as u64),
            Err(e) => return Err(e),
        };
        // Once some bytes went, a broken connection ends the call with
        // their count and no SIGPIPE, as Linux's tcp_sendmsg.
        let fl = if done > 0 {
            flags | libc::MSG_NOSIGNAL
        } else {
            flags
        };
        match inet::send(t, f, s, &data, fl, to) {
            Ok(n) => {
                done += n as usize;
                if (n as usize) < want || done >= len {
                    return Ok(done as u64);
                }
            }
            Err(_) if done > 0 => return Ok(done as u64),
            Err(e) => return Err(e),
        }
    }
}

pub fn recvfrom(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (fd, buf, len, flags, addr, addrlen) =
        (arg_fd(a[0]), a[1], a[2] as usize, a[3] as i32, a[4], a[5]);
    let (f, s) = unix_or_inet!(t, fd, |f, s| {
        let r = inet::recv(&f, &s, len, flags)?;
        t.write_bytes(buf, &r.data)?;
        match &r.from {
            Some(from) => write_addr(t, addr, addrlen, from)?,
            // A stream has no source address to give: the length is 0.
            None if addr != 0 && addrlen != 0 => t.write_obj(addrlen, &0u32)?,
            None => {}
        }
        Ok(r.ret as u64)
    });
    let (data, n) = do_recv(&f, &s, len, flags)?;
    t.write_bytes(buf, &data[..n.min(data.len())])?;
    if n > 0 && flags & libc::MSG_PEEK == 0 {
        drop(s.take_rights());
    }
    let from = s.peer_addr().unwrap_or(UnixAddr::Unnamed);
    write_addr(t, addr, addrlen, &from.to_bytes())?;
    Ok(n as u64)
}

/// struct msghdr, as the application laid it out.
pub(super) struct MsgHeader {
    pub name: u64,
    pub namelen: u64,
    pub iov: u64,
    pub iovlen: u64,
    pub control: u64,
    pub controllen: u64,
}

fn read_msghdr(t: &Task, addr: u64) -> Result<MsgHeader, Errno> {
    let raw = t.read_bytes(addr, 56)?;
    let g = |o: usize| u64::from_le_bytes(raw[o..o + 8].try_into().unwrap_or([0; 8]));
    Ok(MsgHeader {
        name: g(0),
        namelen: g(8) & 0xffff_ffff,
        iov: g(16),
        iovlen: g(24),
        control: g(32),
        controllen: g(40),
    })
}

/// Gathers a message's data from its iovecs.
fn gather(t: &Task, msg: &MsgHeader) -> Result<Vec<u8>, Errno> {
    let mut data = Vec::new();
    for (base, len) in iovecs(t, msg.iov, msg.iovlen)? {
        let len = (len as usize).min(MAX_IO - data.len());
        data.extend_from_slice(&t.read_bytes(base, len)?);
    }
    Ok(data)
}

/// Scatters received bytes over a message's iovecs.
fn scatter(t: &Task, iovs: &[(u64, u64)], data: &[u8]) -> Result<(), Errno> {
    let mut left = data;
    for (base, len) in iovs {
        if left.is_empty() {
            break;
        }
        let k = (*len as usize).min(left.len());
        t.write_bytes(*base, &left[..k])?;
        left = &left[k..];
    }
    Ok(())
}

/// The iovec array of a msghdr (msg_iovlen over IOV_MAX is EMSGSIZE).
fn iovecs(t: &Task, iov: u64, n: u64) -> Result<Vec<(u64, u64)>, Errno> {
    if n > 1024 {
        return Err(Errno::EMSGSIZE);
    }
    super::file::read_iovecs(t, iov, n)
}

/// A msghdr's control buffer, read from the application (ENOBUFS past
/// 64 KiB, as Linux's limit on optmem).
pub(super) fn read_control(t: &Task, control: u64, len: u64) -> Result<Vec<u8>, Errno> {
    if len > 64 * 1024 {
        return Err(Errno::ENOBUFS);
    }
    t.read_bytes(control, len as usize)
}

/// One control message: its level, type and data.
pub(super) struct Cmsg<'a> {
    pub level: i32,
    pub typ: i32,
    pub data: &'a [u8],
}

/// The control messages of a buffer, in order; a malformed one is EINVAL
/// where it stands (as Linux's for_each_cmsghdr with CMSG_OK).
pub(super) fn cmsgs(raw: &[u8]) -> impl Iterator<Item = Result<Cmsg<'_>, Errno>> {
    let mut off = 0usize;
    std::iter::from_fn(move || {
        if off + 16 > raw.len() {
            return None;
        }
        let word = |o: usize| {
            raw[o..o + 4]
                .try_into()
                .map(i32::from_le_bytes)
                .unwrap_or(0)
        };
        let clen = u64::from_le_bytes(raw[off..off + 8].try_into().unwrap_or([0; 8])) as usize;
        // (clen comes from the application: compare without overflowing)
        if clen < 16 || clen > raw.len() - off {
            off = raw.len();
            return Some(Err(Errno::EINVAL));
        }
        let m = Cmsg {
            level: word(off + 8),
            typ: word(off + 12),
            data: &raw[off + 16..off + clen],
        };
        off += (clen + 7) & !7;
        Some(Ok(m))
    })
}

/// The files an SCM_RIGHTS control message names.
fn control_rights(t: &Task, control: u64, len: u64) -> Result<Vec<Arc<OpenFile>>, Errno> {
    let raw = read_control(t, control, len)?;
    let mut files = Vec::new();
    for m in cmsgs(&raw) {
        let m = m?;
        if m.level != libc::SOL_SOCKET {
            return Err(Errno::EINVAL);
        }
        match m.typ {
            libc::SCM_RIGHTS => {
                for c in m.data.chunks_exact(4) {
                    let fd = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                    // (O_PATH fds travel too.)
                    files.push(get_file_raw(t, fd)?);
                }
                if files.len() > SCM_MAX_FD {
                    return Err(Errno::EINVAL);
                }
            }
            // Credentials are the sender's own; nothing to forward yet.
            libc::SCM_CREDENTIALS => {}
            _ => return Err(Errno::EINVAL),
        }
    }
    Ok(files)
}

pub fn sendmsg(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (fd, msg, flags) = (arg_fd(a[0]), a[1], a[2] as i32);
    let m = read_msghdr(t, msg)?;
    let (f, s) = unix_or_inet!(t, fd, |f, s| {
        inet::check_control(t, &m)?;
        let data = gather(t, &m)?;
        let to = (m.name != 0 && m.namelen != 0).then_some((m.name, m.namelen));
        inet::send(t, &f, &s, &data, flags, to)
    });
    let to = if m.name != 0 && m.namelen != 0 {
        Some(read_addr(t, m.name, m.namelen)?)
    } else {
        None
    };
    let rights = if m.control != 0 && m.controllen != 0 {
        control_rights(t, m.control, m.controllen)?
    } else {
        Vec::new()
    };
    if !rights.is_empty() && s.send_fd().is_none() {
        kernel().log_unimplemented(
            libc::SYS_sendmsg as u64 | 1 << 32,
            "SCM_RIGHTS on an unconnected socket",
        );
        return Err(Errno::EOPNOTSUPP);
    }
    let data = gather(t, &m)?;
    // The files travel beside the data: queue them first so a receiver
    // that gets the bytes finds them.
    if !rights.is_empty() {
        s.send_rights(rights)?;
    }
    do_send(t, &f, &s, &data, flags, to)
}

pub fn recvmsg(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (fd, msg, flags) = (arg_fd(a[0]), a[1], a[2] as i32);
    let m = read_msghdr(t, msg)?;
    let iovs = iovecs(t, m.iov, m.iovlen)?;
    let total: u64 = iovs.iter().map(|v| v.1).sum();
    let (f, s) = unix_or_inet!(t, fd, |f, s| {
        let r = inet::recv(&f, &s, total as usize, flags)?;
        scatter(t, &iovs, &r.data)?;
        let from_len = match (&r.from, m.name) {
            (Some(from), name) if name != 0 => {
                let k = (m.namelen as usize).min(from.len());
                t.write_bytes(name, &from[..k])?;
                from.len()
            }
            _ => 0,
        };
        t.write_obj(msg + 8, &(from_len as u32))?;
        t.write_obj(msg + 40, &0u64)?;
        t.write_obj(msg + 48, &(r.msg_flags as u32))?;
        Ok(r.ret as u64)
    });
    let (data, n) = do_recv(&f, &s, total as usize, flags)?;
    scatter(t, &iovs, &data[..n.min(data.len())])?;
    let (name, namelen, control, controllen) = (m.name, m.namelen, m.control, m.controllen);
    if name != 0 {
        let from = s.peer_addr().unwrap_or(UnixAddr::Unnamed).to_bytes();
        let k = (namelen as usize).min(from.len());
        t.write_bytes(name, &from[..k])?;
        t.write_obj(msg + 8, &(from.len() as u32))?;
    }
    let mut msg_flags = 0u32;
    let mut written = 0usize;
    if n > 0 && flags & libc::MSG_PEEK == 0 {
        if let Some(files) = s.take_rights() {
            let room = if control == 0 { 0 } else { controllen as usize };
            let fit = room.saturating_sub(16) / 4;
            if fit < files.len() {
                msg_flags |= libc::MSG_CTRUNC as u32;
            }
            let cloexec = flags & libc::MSG_CMSG_CLOEXEC != 0;
            let mut fds = Vec::new();
            for file in files.into_iter().take(fit) {
                fds.push(install_fd(t, file, cloexec)? as i32);
            }
            if !fds.is_empty() {
                let clen = 16 + 4 * fds.len();
                let mut c = Vec::with_capacity(clen);
                c.extend_from_slice(&(clen as u64).to_le_bytes());
                c.extend_from_slice(&libc::SOL_SOCKET.to_le_bytes());
                c.extend_from_slice(&libc::SCM_RIGHTS.to_le_bytes());
                for fd in &fds {
                    c.extend_from_slice(&fd.to_le_bytes());
                }
                t.write_bytes(control, &c)?;
                written = (clen + 7) & !7;
                written = written.min(room);
            }
        }
    }
    t.write_obj(msg + 40, &(written as u64))?;
    t.write_obj(msg + 48, &msg_flags)?;
    Ok(n as u64)
}

pub fn shutdown(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let how = a[1] as i32;
    let (_f, s) = unix_or_inet!(t, arg_fd(a[0]), |f, s| {
        if !matches!(how, libc::SHUT_RD | libc::SHUT_WR | libc::SHUT_RDWR) {
            return Err(Errno::EINVAL);
        }
        inet::shutdown(&s, how)
    });
    if !matches!(how, libc::SHUT_RD | libc::SHUT_WR | libc::SHUT_RDWR) {
        return Err(Errno::EINVAL);
    }
    let h = s.recv_fd().or(s.send_fd()).ok_or(Errno::ENOTCONN)?;
    // SAFETY: shutdown of a socket the sentry owns.
    if unsafe { libc::shutdown(h, how) } < 0 {
        return Err(Errno::last());
    }
    Ok(0)
}

/// Buffer-size style options answered from (or applied to) the host socket.
fn host_int_option(name: i32) -> bool {
    matches!(
        name,
        libc::SO_RCVBUF | libc::SO_SNDBUF | libc::SO_RCVLOWAT | libc::SO_SNDLOWAT
    )
}

pub fn getsockopt(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (fd, level, name, val, lenp) = (arg_fd(a[0]), a[1] as i32, a[2] as i32, a[3], a[4]);
    let (_f, s) = unix_or_inet!(t, fd, |f, s| inet::getsockopt(
        t, &s, level, name, val, lenp
    ));
    if level != libc::SOL_SOCKET {
        return Err(Errno::EOPNOTSUPP);
    }
    let have: u32 = t.read_obj(lenp)?;
    if (have as i32) < 0 {
        return Err(Errno::EINVAL);
    }
    let bytes: Vec<u8> = match name {
        libc::SO_PEERCRED => {
            let c = s.peer_cred();
            // The peer's pid as the caller's pid namespace names it.
            let mut b = t.pid_to_user(c.pid).to_le_bytes().to_vec();
            b.extend_from_slice(&c.uid.to_le_bytes());
            b.extend_from_slice(&c.gid.to_le_bytes());
            b
        }
        libc::SO_TYPE => s.stype.to_le_bytes().to_vec(),
        libc::SO_DOMAIN => libc::AF_UNIX.to_le_bytes().to_vec(),
        libc::SO_PROTOCOL | libc::SO_ERROR | libc::SO_PASSCRED => 0i32.to_le_bytes().to_vec(),
        libc::SO_ACCEPTCONN => (s.is_listening() as i32).to_le_bytes().to_vec(),
        n if host_int_option(n) => {
            let mut v: i32 = if n == libc::SO_RCVLOWAT || n == libc::SO_SNDLOWAT {
                1
            } else {
                212_992
            };
            if let Some(h) = s.recv_fd().or(s.send_fd()) {
                let mut len: libc::socklen_t = 4;
                // SAFETY: an int option of a socket the sentry owns, into
                // our own variable.
                unsafe { libc::getsockopt(h, level, n, (&mut v as *mut i32).cast(), &mut len) };
            }
            v.to_le_bytes().to_vec()
        }
        _ => return Err(Errno::ENOPROTOOPT),
    };
    t.write_bytes(val, &bytes[..(have as usize).min(bytes.len())])?;
    t.write_obj(lenp, &(bytes.len().min(have as usize) as u32))?;
    Ok(0)
}

pub fn setsockopt(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (fd, level, name, val, len) = (arg_fd(a[0]), a[1] as i32, a[2] as i32, a[3], a[4]);
    let (_f, s) = unix_or_inet!(t, fd, |f, s| inet::setsockopt(t, &s, level, name, val, len));
    if level != libc::SOL_SOCKET {
        return Err(Errno::ENOPROTOOPT);
    }
    if len < 4 {
        return Err(Errno::EINVAL);
    }
    let v: i32 = t.read_obj(val)?;
    match name {
        libc::SO_PASSCRED => Ok(0),
        n if host_int_option(n) => {
            if let Some(h) = s.recv_fd().or(s.send_fd()) {
                // SAFETY: a validated int option from our own variable.
                if unsafe { libc::setsockopt(h, level, n, (&v as *const i32).cast(), 4) } < 0 {
                    return Err(Errno::last());
                }
            }
            Ok(0)
        }
        _ => Err(Errno::ENOPROTOOPT),
    }
}

/// sizeof(struct mmsghdr): a msghdr and the count of bytes moved.
const MMSGHDR_LEN: u64 = 64;
/// UIO_MAXIOV: the most messages one call moves.
const MMSG_MAX: u64 = 1024;

/// sendmmsg(2): sendmsg over each message until one fails; the count sent
/// is the result unless the first one failed.
pub fn sendmmsg(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (fd, vec, vlen, flags) = (a[0], a[1], a[2].min(MMSG_MAX), a[3]);
    let mut done = 0u64;
    while done < vlen {
        let hdr = vec + done * MMSGHDR_LEN;
        match sendmsg(t, &[fd, hdr, flags, 0, 0, 0]) {
            Ok(n) => t.write_obj(hdr + 56, &(n as u32))?,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
        done += 1;
    }
    Ok(done)
}

/// recvmmsg(2): recvmsg into each message; MSG_WAITFORONE makes every
/// receive after the first non-blocking. The timeout is checked between
/// messages, as Linux does.
pub fn recvmmsg(t: &mut Task, a: &[u64; 6]) -> SysResult {
    let (fd, vec, vlen, flags, timeout) = (a[0], a[1], a[2].min(MMSG_MAX), a[3] as i32, a[4]);
    let deadline = if timeout != 0 {
        let ts: libc::timespec = t.read_obj(timeout)?;
        if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
            return Err(Errno::EINVAL);
        }
        // A timeout too far to represent is no deadline at all.
        std::time::Instant::now().checked_add(std::time::Duration::new(
            ts.tv_sec as u64,
            ts.tv_nsec as u32,
        ))
    } else {
        None
    };
    let mut done = 0u64;
    let mut fl = flags & !libc::MSG_WAITFORONE;
    while done < vlen {
        let hdr = vec + done * MMSGHDR_LEN;
        match recvmsg(t, &[fd, hdr, fl as u64, 0, 0, 0]) {
            Ok(n) => t.write_obj(hdr + 56, &(n as u32))?,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
        done += 1;
        if flags & libc::MSG_WAITFORONE != 0 {
            fl |= libc::MSG_DONTWAIT;
        }
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            break;
        }
    }
    Ok(done)
}
