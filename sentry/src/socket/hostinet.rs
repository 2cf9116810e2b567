//! Internet sockets of `--network host` (gVisor's `socket/hostinet`): each
//! application socket is a host socket the sentry opens in the sandbox's
//! network namespace (the container's, or the host's when the spec shares
//! it), for trusted programs that need the host stack's speed or reach.
//!
//! The sentry makes every host call itself, from its own buffers: socket
//! addresses are parsed and rebuilt (only AF_INET/AF_INET6 ones of the
//! socket's family pass), message flags and socket options come from
//! allowlists, control messages are not forwarded, and privileged choices
//! (ports below 1024) are checked against the application's emulated
//! capabilities, not the sentry's.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use nix::errno::Errno;

use super::inet::{parse_sockaddr, Proto};
use super::set_host_nonblock;
use crate::fsimpl::host::retry_host;
use crate::vfs::{FileOps, FileStat, VfsResult};

/// Message flags a send may carry to the host.
pub const SEND_FLAGS: i32 = libc::MSG_DONTWAIT
    | libc::MSG_NOSIGNAL
    | libc::MSG_MORE
    | libc::MSG_EOR
    | libc::MSG_CONFIRM
    | libc::MSG_DONTROUTE
    | libc::MSG_OOB;
/// Message flags a receive may carry to the host.
pub const RECV_FLAGS: i32 =
    libc::MSG_DONTWAIT | libc::MSG_PEEK | libc::MSG_WAITALL | libc::MSG_TRUNC | libc::MSG_OOB;

/// The longest option value passed either way.
const OPTION_MAX: usize = 256;

pub struct HostInetSocket {
    /// AF_INET or AF_INET6.
    pub family: i32,
    pub proto: Proto,
    fd: OwnedFd,
    nonblocking: AtomicBool,
}

/// Whether an option may be read or set on the host socket, and the size
/// of its value (None: an int). Everything else is ENOPROTOOPT.
fn allowed_option(level: i32, name: i32) -> Option<Option<usize>> {
    use libc::*;
    let int = Some(None);
    match (level, name) {
        (
            SOL_SOCKET,
            SO_REUSEADDR | SO_REUSEPORT | SO_KEEPALIVE | SO_BROADCAST | SO_RCVBUF | SO_SNDBUF
            | SO_RCVLOWAT | SO_SNDLOWAT | SO_ERROR | SO_TYPE | SO_DOMAIN | SO_PROTOCOL
            | SO_ACCEPTCONN | SO_OOBINLINE | SO_PRIORITY | SO_DONTROUTE | SO_TIMESTAMP
            | SO_TIMESTAMPNS,
        ) => int,
        (SOL_SOCKET, SO_LINGER) => Some(Some(8)),
        (SOL_SOCKET, SO_RCVTIMEO | SO_SNDTIMEO) => Some(Some(16)),
        (
            IPPROTO_TCP,
            TCP_NODELAY | TCP_MAXSEG | TCP_CORK | TCP_KEEPIDLE | TCP_KEEPINTVL | TCP_KEEPCNT
            | TCP_SYNCNT | TCP_LINGER2 | TCP_DEFER_ACCEPT | TCP_WINDOW_CLAMP | TCP_QUICKACK
            | TCP_USER_TIMEOUT | TCP_NOTSENT_LOWAT | TCP_FASTOPEN | TCP_FASTOPEN_CONNECT,
        ) => int,
        (IPPROTO_TCP, TCP_INFO) => Some(Some(232)),
        (IPPROTO_TCP, TCP_CONGESTION) => Some(Some(16)),
        (
            IPPROTO_IP,
            IP_TTL
            | IP_TOS
            | IP_RECVERR
            | IP_PKTINFO
            | IP_RECVTOS
            | IP_RECVTTL
            | IP_MTU_DISCOVER
            | IP_MTU
            | IP_FREEBIND
            | IP_BIND_ADDRESS_NO_PORT
            | IP_MULTICAST_TTL
            | IP_MULTICAST_LOOP,
        ) => int,
        (
            IPPROTO_IPV6,
            IPV6_V6ONLY | IPV6_UNICAST_HOPS | IPV6_MULTICAST_HOPS | IPV6_MULTICAST_LOOP
            | IPV6_RECVPKTINFO | IPV6_TCLASS | IPV6_MTU | IPV6_RECVERR,
        ) => int,
        (SOL_UDP, UDP_CORK | UDP_SEGMENT | UDP_GRO) => int,
        _ => None,
    }
}

impl HostInetSocket {
    pub fn new(family: i32, proto: Proto, nonblocking: bool) -> Result<Arc<Self>, Errno> {
        let (typ, protocol) = match proto {
            Proto::Tcp => (libc::SOCK_STREAM, libc::IPPROTO_TCP),
            Proto::Udp => (libc::SOCK_DGRAM, libc::IPPROTO_UDP),
        };
        // SAFETY: socket(2) with validated constants; the fd is ours.
        let raw = unsafe { libc::socket(family, typ | libc::SOCK_CLOEXEC, protocol) };
        if raw < 0 {
            return Err(Errno::last());
        }
        // SAFETY: `raw` is a fresh fd nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Self::from_fd(fd, family, proto, nonblocking))
    }

    fn from_fd(fd: OwnedFd, family: i32, proto: Proto, nonblocking: bool) -> Arc<Self> {
        set_host_nonblock(fd.as_raw_fd(), nonblocking);
        Arc::new(HostInetSocket {
            family,
            proto,
            fd,
            nonblocking: AtomicBool::new(nonblocking),
        })
    }

    fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Rebuilds an application's socket address for the host: validated
    /// as Linux would, then laid out afresh (an IPv6 scope id is kept, as
    /// link-local addresses need it).
    pub fn host_sockaddr(&self, raw: &[u8]) -> Result<Vec<u8>, Errno> {
        let addr = parse_sockaddr(self.family, raw)?;
        let mut out = super::inet::sockaddr_bytes(self.family, addr);
        if self.family == libc::AF_INET6 && raw.len() >= 28 {
            out[24..28].copy_from_slice(&raw[24..28]);
        }
        Ok(out)
    }

    fn call_addr(
        &self,
        f: unsafe extern "C" fn(i32, *const libc::sockaddr, libc::socklen_t) -> i32,
        addr: &[u8],
    ) -> Result<(), Errno> {
        retry_host(|| {
            // SAFETY: the address is our own buffer of the length given.
            Errno::result(unsafe {
                f(
                    self.raw(),
                    addr.as_ptr().cast(),
                    addr.len() as libc::socklen_t,
                )
            })
            .map(drop)
        })
    }

    pub fn bind(&self, addr: &[u8]) -> Result<(), Errno> {
        self.call_addr(libc::bind, addr)
    }

    pub fn connect(&self, addr: &[u8]) -> Result<(), Errno> {
        self.call_addr(libc::connect, addr)
    }

    pub fn listen(&self, backlog: i32) -> Result<(), Errno> {
        // SAFETY: listen on the sentry's own socket.
        Errno::result(unsafe { libc::listen(self.raw(), backlog) }).map(drop)
    }

    /// accept(2): the new socket, and its peer's address bytes.
    pub fn accept(&self, nonblocking: bool) -> Result<(Arc<Self>, Vec<u8>), Errno> {
        let mut buf = [0u8; 128];
        let mut len = buf.len() as libc::socklen_t;
        let raw = retry_host(|| {
            // SAFETY: accept4 writes at most `len` bytes into our buffer.
            Errno::result(unsafe {
                libc::accept4(
                    self.raw(),
                    buf.as_mut_ptr().cast(),
                    &mut len,
                    libc::SOCK_CLOEXEC,
                )
            })
        })?;
        // SAFETY: a fresh fd from accept4, ours alone.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let s = Self::from_fd(fd, self.family, self.proto, nonblocking);
        Ok((s, buf[..(len as usize).min(buf.len())].to_vec()))
    }

    pub fn local_name(&self) -> Result<Vec<u8>, Errno> {
        super::host_socket_name(self.raw(), false)
    }

    pub fn peer_name(&self) -> Result<Vec<u8>, Errno> {
        super::host_socket_name(self.raw(), true)
    }

    /// sendto(2) from our buffer; `to` already rebuilt by `host_sockaddr`.
    pub fn send(&self, data: &[u8], flags: i32, to: Option<&[u8]>) -> Result<usize, Errno> {
        let fl = (flags & SEND_FLAGS) | libc::MSG_NOSIGNAL;
        retry_host(|| {
            let (ap, al) = match to {
                Some(a) => (a.as_ptr().cast(), a.len() as libc::socklen_t),
                None => (std::ptr::null(), 0),
            };
            // SAFETY: data and address are our own buffers.
            Errno::result(unsafe {
                libc::sendto(self.raw(), data.as_ptr().cast(), data.len(), fl, ap, al)
            })
            .map(|n| n as usize)
        })
    }

    /// recvfrom(2) into our buffer: (count, source address bytes, whether
    /// a datagram was truncated).
    pub fn recv(&self, buf: &mut [u8], flags: i32) -> Result<(usize, Vec<u8>, bool), Errno> {
        let fl = flags & RECV_FLAGS;
        let mut from = [0u8; 128];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: an all-zero msghdr is valid; we fill in our buffers.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = from.as_mut_ptr().cast();
        msg.msg_namelen = from.len() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        let n = retry_host(|| {
            msg.msg_namelen = from.len() as libc::socklen_t;
            // SAFETY: recvmsg writes into the buffers msg points at, all
            // ours and alive for the call.
            Errno::result(unsafe { libc::recvmsg(self.raw(), &mut msg, fl) }).map(|n| n as usize)
        })?;
        let alen = (msg.msg_namelen as usize).min(from.len());
        Ok((
            n,
            from[..alen].to_vec(),
            msg.msg_flags & libc::MSG_TRUNC != 0,
        ))
    }

    pub fn shutdown(&self, how: i32) -> Result<(), Errno> {
        // SAFETY: shutdown of the sentry's own socket.
        Errno::result(unsafe { libc::shutdown(self.raw(), how) }).map(drop)
    }

    /// getsockopt(2) of an allowlisted option: its value bytes.
    pub fn getsockopt(&self, level: i32, name: i32, room: usize) -> Result<Vec<u8>, Errno> {
        let Some(size) = allowed_option(level, name) else {
            return Err(Errno::ENOPROTOOPT);
        };
        let mut buf = vec![0u8; size.unwrap_or(4).max(room.min(OPTION_MAX))];
        let mut len = buf.len() as libc::socklen_t;
        // SAFETY: writes at most `len` bytes into our buffer.
        Errno::result(unsafe {
            libc::getsockopt(self.raw(), level, name, buf.as_mut_ptr().cast(), &mut len)
        })?;
        buf.truncate(len as usize);
        Ok(buf)
    }

    /// setsockopt(2) of an allowlisted option from the caller's bytes.
    /// The host checks privileges against the sentry, not the
    /// application: options only a privileged caller may set are refused
    /// here (`net_admin`: the application's own CAP_NET_ADMIN).
    pub fn setsockopt(
        &self,
        level: i32,
        name: i32,
        val: &[u8],
        net_admin: bool,
    ) -> Result<(), Errno> {
        if allowed_option(level, name).is_none() || val.len() > OPTION_MAX {
            return Err(Errno::ENOPROTOOPT);
        }
        // Choosing a congestion control module could make the host load
        // one by a name the application picks.
        if (level, name) == (libc::IPPROTO_TCP, libc::TCP_CONGESTION) {
            return Err(Errno::EPERM);
        }
        if (level, name) == (libc::SOL_SOCKET, libc::SO_PRIORITY) && !net_admin {
            let v = val
                .get(..4)
                .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
            if !(0..=6).contains(&v) {
                return Err(Errno::EPERM);
            }
        }
        // SAFETY: reads `val.len()` bytes from our buffer.
        Errno::result(unsafe {
            libc::setsockopt(
                self.raw(),
                level,
                name,
                val.as_ptr().cast(),
                val.len() as libc::socklen_t,
            )
        })
        .map(drop)
    }

    /// An int ioctl (FIONREAD, SIOCOUTQ) on the host socket.
    pub fn int_ioctl(&self, req: u64) -> Result<i32, Errno> {
        let mut v: libc::c_int = 0;
        // SAFETY: these requests write one int into our variable.
        Errno::result(unsafe { libc::ioctl(self.raw(), req as _, &mut v) })?;
        Ok(v)
    }
}

impl FileOps for HostInetSocket {
    fn seekable(&self) -> bool {
        false
    }

    fn read_at(&self, buf: &mut [u8], _off: u64) -> VfsResult<usize> {
        retry_host(|| nix::unistd::read(self.raw(), buf))
    }

    fn write_at(&self, buf: &[u8], _off: u64) -> VfsResult<usize> {
        self.send(buf, 0, None)
    }

    fn stat(&self) -> VfsResult<FileStat> {
        super::socket_stat()
    }

    fn host_fd(&self) -> Option<RawFd> {
        Some(self.raw())
    }

    fn poll_fd(&self) -> Option<RawFd> {
        Some(self.raw())
    }

    fn set_nonblocking(&self, on: bool) {
        self.nonblocking.store(on, Ordering::Relaxed);
        set_host_nonblock(self.raw(), on);
    }

    fn readable_bytes(&self) -> Option<usize> {
        self.int_ioctl(libc::FIONREAD)
            .ok()
            .map(|n| n.max(0) as usize)
    }

    fn host_inet_socket(self: Arc<Self>) -> Option<Arc<HostInetSocket>> {
        Some(self)
    }
}
