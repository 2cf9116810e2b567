//! Sockets (gVisor's `pkg/sentry/socket`): the unix domain (`unix.rs`),
//! internet sockets on the sandbox's own loopback (`inet.rs`) and its
//! network device (`netstack.rs`), host internet sockets for `--network
//! host` (`hostinet.rs`), ICMP raw and ping sockets (`icmp.rs`), and
//! NETLINK_ROUTE sockets (`netlink.rs`); /proc/net's files (`procnet.rs`).

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use nix::errno::Errno;

use crate::vfs::{FileStat, VfsResult};

pub mod hostinet;
pub mod icmp;
pub mod inet;
pub mod netlink;
pub mod netstack;
pub mod procnet;
pub mod unix;

/// A host unix socketpair of `stype` for the sentry's own use (the data
/// path of unix connections and of loopback TCP connections).
pub(crate) fn host_socketpair(stype: i32) -> Result<(OwnedFd, OwnedFd), Errno> {
    let mut fds = [0i32; 2];
    // SAFETY: socketpair writes two fds into our array; the type is one
    // the callers chose.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            stype | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } < 0
    {
        return Err(Errno::last());
    }
    // SAFETY: both fds were just created and are ours alone.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sets or clears O_NONBLOCK on a host fd the sentry owns for a socket.
pub(crate) fn set_host_nonblock(fd: RawFd, on: bool) {
    let _ = nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFL(if on {
            nix::fcntl::OFlag::O_NONBLOCK
        } else {
            nix::fcntl::OFlag::empty()
        }),
    );
}

/// getsockname (or, `peer`, getpeername) of a host socket the sentry
/// owns, as the kernel's address bytes.
pub(crate) fn host_socket_name(fd: RawFd, peer: bool) -> Result<Vec<u8>, Errno> {
    let mut buf = [0u8; 128];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: writes at most `len` bytes into our buffer.
    let r = unsafe {
        if peer {
            libc::getpeername(fd, buf.as_mut_ptr().cast(), &mut len)
        } else {
            libc::getsockname(fd, buf.as_mut_ptr().cast(), &mut len)
        }
    };
    Errno::result(r)?;
    Ok(buf[..(len as usize).min(buf.len())].to_vec())
}

/// read(2) of a byte-level socket: a receive with no flags.
pub(crate) fn ops_read(s: &dyn SocketOps, buf: &mut [u8]) -> VfsResult<usize> {
    let r = s.recv(buf.len(), 0)?;
    buf[..r.data.len()].copy_from_slice(&r.data);
    Ok(r.data.len())
}

/// What fstat reports for every socket.
pub(crate) fn socket_stat() -> VfsResult<FileStat> {
    Ok(crate::fsimpl::simple::synthetic_stat(
        0,
        libc::S_IFSOCK | 0o777,
        0,
    ))
}

/// An application's network socket (any family but unix), whichever
/// stack it lives on.
pub enum NetSock {
    /// An internet socket on the sandbox's own stack (`--network sandbox`
    /// and `none`).
    Local(Arc<inet::InetSocket>),
    /// A host internet socket (`--network host`).
    Host(Arc<hostinet::HostInetSocket>),
    /// A socket of the byte-level interface (netlink, ICMP).
    Ops(Arc<dyn SocketOps>),
}

impl NetSock {
    /// Whether the socket is a byte stream (TCP).
    pub fn is_stream(&self) -> bool {
        match self {
            NetSock::Local(s) => s.proto == inet::Proto::Tcp,
            NetSock::Host(h) => h.proto == inet::Proto::Tcp,
            NetSock::Ops(o) => o.stype() == libc::SOCK_STREAM,
        }
    }
}

/// What a receive produced: the bytes, the count the call returns (the
/// full length with MSG_TRUNC), the sender's address and the msg_flags.
pub struct Received {
    pub data: Vec<u8>,
    pub ret: usize,
    pub from: Option<Vec<u8>>,
    pub msg_flags: i32,
}

/// A socket whose calls take and give plain bytes, as gVisor's
/// socket.Socket: the syscall layer copies addresses, data and options in
/// and out; the socket interprets them. Netlink sockets use it.
pub trait SocketOps: Send + Sync {
    fn family(&self) -> i32;
    fn stype(&self) -> i32;
    fn protocol(&self) -> i32;
    fn bind(&self, addr: &[u8]) -> Result<(), Errno>;
    fn connect(&self, _addr: &[u8]) -> Result<(), Errno> {
        Err(Errno::EOPNOTSUPP)
    }
    fn listen(&self, _backlog: i32) -> Result<(), Errno> {
        Err(Errno::EOPNOTSUPP)
    }
    fn local_name(&self) -> Result<Vec<u8>, Errno>;
    fn peer_name(&self) -> Result<Vec<u8>, Errno>;
    /// Sends `data` (to `to`, a raw socket address, if given).
    fn send(&self, data: &[u8], flags: i32, to: Option<&[u8]>) -> Result<usize, Errno>;
    /// Receives at most `len` bytes.
    fn recv(&self, len: usize, flags: i32) -> Result<Received, Errno>;
    fn getsockopt(&self, level: i32, name: i32, room: usize) -> Result<Vec<u8>, Errno>;
    fn setsockopt(&self, level: i32, name: i32, val: &[u8]) -> Result<(), Errno>;
    fn shutdown(&self, _how: i32) -> Result<(), Errno> {
        Err(Errno::EOPNOTSUPP)
    }
}
