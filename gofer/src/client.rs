//! The sentry's side of the gofer protocol.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::{Mutex, PoisonError};

use nix::errno::Errno;
use nix::sys::socket::{
    getsockopt, recvmsg, sendmsg, setsockopt, sockopt, AddressFamily, ControlMessageOwned,
    MsgFlags, SockFlag, SockType,
};
use tracing::{error, warn};

use crate::protocol::{
    decode_response, encode_request, Dirent, FileStat, FsStat, Handle, Owner, Request,
    RequestMessage, Response, SetStat, MAX_MESSAGE, PROTOCOL_VERSION, ROOT_HANDLE,
};
use crate::sys;

/// Why [`GoferClient::connect`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("gofer socket: {0}")]
    Socket(#[source] Errno),
    #[error("gofer refused the handshake: {0}")]
    Refused(#[source] Errno),
    #[error("gofer speaks protocol version {theirs}, we speak {ours}")]
    VersionMismatch { ours: u32, theirs: u32 },
    #[error("gofer sent an unexpected reply to the handshake")]
    UnexpectedResponse,
}

/// Space for the fds one reply may carry. A correct gofer sends at most one;
/// room for a few more means stray extras are received (and closed) rather
/// than truncated away.
const MAX_FDS_PER_REPLY: usize = 8;

/// What [`GoferClient::walk_open`] gives: the node's handle and stat, its
/// `O_PATH` fd and, for a regular file, a read-only fd.
#[derive(Debug)]
pub struct WalkedNode {
    pub handle: Handle,
    pub stat: FileStat,
    pub path_fd: Option<OwnedFd>,
    pub read_fd: Option<OwnedFd>,
}

/// Room the kernel needs in the send buffer for one [`MAX_MESSAGE`] message:
/// a unix datagram larger than `sk_sndbuf - 32` fails with `EMSGSIZE`, and
/// the default buffer (`wmem_default`, ~208 KiB) is smaller than that.
const WANTED_SNDBUF: usize = MAX_MESSAGE + 64 * 1024;

/// Checks that `sock` is a `SOCK_SEQPACKET` socket and grows its send buffer
/// so that a [`MAX_MESSAGE`]-byte message can be sent at all.
pub(crate) fn ensure_send_buffer(sock: BorrowedFd<'_>) -> Result<(), Errno> {
    if getsockopt(&sock, sockopt::SockType)? != SockType::SeqPacket {
        return Err(Errno::EPROTOTYPE);
    }
    if getsockopt(&sock, sockopt::SndBuf)? >= WANTED_SNDBUF {
        return Ok(());
    }
    setsockopt(&sock, sockopt::SndBuf, &WANTED_SNDBUF)?;
    if getsockopt(&sock, sockopt::SndBuf)? < WANTED_SNDBUF {
        // wmem_max is low; root may exceed it. Failing that, only unusually
        // large messages are affected, so carry on.
        if let Err(e) = setsockopt(&sock, sockopt::SndBufForce, &WANTED_SNDBUF) {
            warn!(error = %e, "gofer socket: cannot grow the send buffer");
        }
    }
    Ok(())
}

/// A connected `SOCK_SEQPACKET|SOCK_CLOEXEC` socketpair (sentry end, gofer end).
pub fn socketpair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (a, b) = nix::sys::socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    ensure_send_buffer(a.as_fd())?;
    ensure_send_buffer(b.as_fd())?;
    Ok((a, b))
}

/// The sentry's connection to its gofer.
///
/// Thread-safe: the sentry calls it from many threads (one request/response
/// at a time under an internal Mutex).
pub struct GoferClient {
    conn: Mutex<Conn>,
}

/// Handles dropped since the last request, forgotten along with the next
/// one (see [`crate::protocol::RequestMessage`]).
const MAX_PENDING_CLOSES: usize = 4096;

struct Conn {
    sock: OwnedFd,
    /// Reused receive buffer of [`MAX_MESSAGE`] bytes.
    buf: Vec<u8>,
    /// Handles to close with the next request.
    pending_close: Vec<Handle>,
    /// Set once a request/response exchange failed half-way: requests and
    /// replies could then be out of step, so every later call fails with EIO.
    broken: bool,
}

impl std::fmt::Debug for GoferClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoferClient").finish_non_exhaustive()
    }
}

impl Conn {
    fn exchange(&mut self, request: &[u8]) -> Result<(Response, Vec<OwnedFd>), Errno> {
        let iov = [IoSlice::new(request)];
        loop {
            match sendmsg::<()>(
                self.sock.as_raw_fd(),
                &iov,
                &[],
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(_) => break,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e),
            }
        }
        let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS_PER_REPLY]);
        let mut spin = Spin::new();
        let (len, flags, fds) = loop {
            let mut iov = [IoSliceMut::new(&mut self.buf)];
            match recvmsg::<()>(
                self.sock.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC | spin.flags(),
            ) {
                Ok(msg) => {
                    let mut fds = Vec::new();
                    // cmsgs() refuses to iterate a truncated control buffer;
                    // with room for MAX_FDS_PER_REPLY that means a broken gofer.
                    for c in msg.cmsgs()? {
                        if let ControlMessageOwned::ScmRights(raw) = c {
                            fds.extend(raw.into_iter().map(sys::adopt_received_fd));
                        }
                    }
                    break (msg.bytes, msg.flags, fds);
                }
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) if spin.again() => continue,
                Err(e) => return Err(e),
            }
        };
        if len == 0 {
            // The gofer never sends empty replies: it has gone away.
            return Err(Errno::ECONNRESET);
        }
        if flags.contains(MsgFlags::MSG_TRUNC) {
            return Err(Errno::EMSGSIZE);
        }
        let bytes = self.buf.get(..len).ok_or(Errno::EMSGSIZE)?;
        let resp = decode_response(bytes).map_err(|e| {
            error!(error = %e, "gofer client: malformed reply");
            Errno::EBADMSG
        })?;
        Ok((resp, fds))
    }
}

/// How long a receiver polls its socket before sleeping in `recvmsg`.
///
/// The sentry and the gofer are different processes, usually on different
/// CPUs; a wake-up across CPUs costs tens of microseconds here, several
/// times the work of a request. Requests come in bursts (a path walk, an
/// untar), so each side polls for a moment first: the gofer after each
/// reply for the next request, the sentry for the reply it awaits.
const SPIN_NANOS: u64 = 60_000;

/// Bounded polling before a blocking receive (see [`SPIN_NANOS`]).
pub(crate) struct Spin {
    deadline: Option<std::time::Instant>,
}

impl Spin {
    pub(crate) fn new() -> Spin {
        Spin {
            deadline: Some(std::time::Instant::now() + std::time::Duration::from_nanos(SPIN_NANOS)),
        }
    }

    /// `MSG_DONTWAIT` while polling, nothing once it is time to sleep.
    pub(crate) fn flags(&self) -> MsgFlags {
        if self.deadline.is_some() {
            MsgFlags::MSG_DONTWAIT
        } else {
            MsgFlags::empty()
        }
    }

    /// After an `EAGAIN`: whether to try again (always; the last try
    /// blocks).
    pub(crate) fn again(&mut self) -> bool {
        match self.deadline {
            Some(d) if std::time::Instant::now() < d => std::hint::spin_loop(),
            Some(_) => self.deadline = None,
            None => return false,
        }
        true
    }
}

/// The errno a gofer `Error` reply stands for; nonsense values become EIO.
fn reply_errno(errno: i32) -> Errno {
    match Errno::from_raw(errno) {
        Errno::UnknownErrno => Errno::EIO,
        e => e,
    }
}

/// A reply that does not fit the request: a protocol bug, reported as EIO.
fn unexpected(what: &str, resp: &Response) -> Errno {
    match resp {
        Response::Error { errno } => reply_errno(*errno),
        other => {
            error!(request = what, reply = ?other, "gofer client: unexpected reply");
            Errno::EIO
        }
    }
}

impl GoferClient {
    /// Takes the connected socket and performs the version handshake.
    pub fn connect(sock: OwnedFd) -> Result<GoferClient, ClientError> {
        ensure_send_buffer(sock.as_fd()).map_err(ClientError::Socket)?;
        let client = GoferClient {
            conn: Mutex::new(Conn {
                sock,
                buf: vec![0u8; MAX_MESSAGE],
                pending_close: Vec::new(),
                broken: false,
            }),
        };
        match client.call(&Request::Version {
            version: PROTOCOL_VERSION,
        }) {
            Ok((Response::Version { version }, _)) if version == PROTOCOL_VERSION => Ok(client),
            Ok((Response::Version { version }, _)) => Err(ClientError::VersionMismatch {
                ours: PROTOCOL_VERSION,
                theirs: version,
            }),
            Ok((Response::Error { errno }, _)) => Err(ClientError::Refused(reply_errno(errno))),
            Ok(_) => Err(ClientError::UnexpectedResponse),
            Err(e) => Err(ClientError::Socket(e)),
        }
    }

    /// One request/response exchange. Transport failures poison the
    /// connection (see [`Conn::broken`]) and surface as EIO.
    fn call(&self, req: &Request) -> Result<(Response, Vec<OwnedFd>), Errno> {
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        if conn.broken {
            return Err(Errno::EIO);
        }
        let msg = RequestMessage {
            close: std::mem::take(&mut conn.pending_close),
            request: req.clone(),
        };
        let bytes = encode_request(&msg).map_err(|e| {
            warn!(error = %e, "gofer client: cannot encode request");
            conn.pending_close = msg.close.clone();
            Errno::EINVAL
        })?;
        conn.exchange(&bytes).map_err(|e| {
            error!(error = %e, "gofer client: connection to the gofer failed");
            conn.broken = true;
            Errno::EIO
        })
    }

    /// Stat of [`ROOT_HANDLE`].
    pub fn root_stat(&self) -> Result<FileStat, Errno> {
        self.stat(ROOT_HANDLE)
    }

    /// Looks up one path component in directory `dir` without following
    /// symlinks; the caller owns the new handle and should [`close`] it.
    ///
    /// [`close`]: GoferClient::close
    pub fn walk(&self, dir: Handle, name: &[u8]) -> Result<(Handle, FileStat), Errno> {
        match self.call(&Request::Walk {
            dir,
            name: name.to_vec(),
        })? {
            (Response::Node { handle, stat }, _) => Ok((handle, stat)),
            (other, _) => Err(unexpected("walk", &other)),
        }
    }

    /// As [`walk`](GoferClient::walk), plus the node's `O_PATH` fd and,
    /// when the node is a regular file, a read-only open fd of it.
    pub fn walk_open(&self, dir: Handle, name: &[u8]) -> Result<WalkedNode, Errno> {
        match self.call(&Request::WalkOpen {
            dir,
            name: name.to_vec(),
        })? {
            (Response::Node { handle, stat }, fds) => {
                let want = if stat.is_file() { 2 } else { 1 };
                if fds.len() != want {
                    error!("gofer client: WalkOpen reply with {} fds", fds.len());
                    self.close_later(handle);
                    return Err(Errno::EIO);
                }
                let mut fds = fds.into_iter();
                Ok(WalkedNode {
                    handle,
                    stat,
                    path_fd: fds.next(),
                    read_fd: fds.next(),
                })
            }
            (other, _) => Err(unexpected("walk", &other)),
        }
    }

    pub fn stat(&self, node: Handle) -> Result<FileStat, Errno> {
        match self.call(&Request::Stat { node })? {
            (Response::Stat(stat), _) => Ok(stat),
            (other, _) => Err(unexpected("stat", &other)),
        }
    }

    /// The node's own `O_PATH` host fd.
    pub fn node_fd(&self, node: Handle) -> Result<OwnedFd, Errno> {
        match self.call(&Request::NodeFd { node })? {
            (Response::Opened, fds) => fds.into_iter().next().ok_or_else(|| {
                error!("gofer client: NodeFd reply without an fd");
                Errno::EIO
            }),
            (other, _) => Err(unexpected("node-fd", &other)),
        }
    }

    /// Opens a regular file or directory; the returned fd is a real host fd.
    pub fn open(&self, node: Handle, flags: i32) -> Result<OwnedFd, Errno> {
        match self.call(&Request::Open { node, flags })? {
            // Any fds beyond the first are dropped (closed) here.
            (Response::Opened, fds) => fds.into_iter().next().ok_or_else(|| {
                error!("gofer client: Opened reply without an fd");
                Errno::EIO
            }),
            (other, _) => Err(unexpected("open", &other)),
        }
    }

    /// The raw target of a symlink node.
    pub fn readlink(&self, node: Handle) -> Result<Vec<u8>, Errno> {
        match self.call(&Request::ReadLink { node })? {
            (Response::Link(target), _) => Ok(target),
            (other, _) => Err(unexpected("readlink", &other)),
        }
    }

    /// All entries except "." and "..", following next_offset pages until the end.
    pub fn getdents(&self, node: Handle) -> Result<Vec<Dirent>, Errno> {
        let mut all = Vec::new();
        let mut offset = 0u64;
        loop {
            match self.call(&Request::Getdents { node, offset })? {
                (
                    Response::Dirents {
                        entries,
                        next_offset,
                    },
                    _,
                ) => {
                    all.extend(
                        entries
                            .into_iter()
                            .filter(|d| d.name != b"." && d.name != b".."),
                    );
                    match next_offset {
                        None => return Ok(all),
                        // A gofer that does not move forward would loop us forever.
                        Some(next) if next <= offset => {
                            error!(offset, next, "gofer client: getdents made no progress");
                            return Err(Errno::EIO);
                        }
                        Some(next) => offset = next,
                    }
                }
                (other, _) => return Err(unexpected("getdents", &other)),
            }
        }
    }

    /// Creates and opens a regular file exclusively; the new node's handle,
    /// its stat, and the open host fd.
    pub fn create(
        &self,
        dir: Handle,
        name: &[u8],
        flags: i32,
        mode: u32,
        owner: Owner,
    ) -> Result<(Handle, FileStat, OwnedFd), Errno> {
        self.node_with_fd(
            "create",
            &Request::Create {
                dir,
                name: name.to_vec(),
                flags,
                mode,
                owner,
            },
        )
    }

    /// Creates and opens a nameless file in `dir` (see
    /// [`Request::CreateTmpfile`]).
    pub fn create_tmpfile(
        &self,
        dir: Handle,
        flags: i32,
        mode: u32,
        owner: Owner,
    ) -> Result<(Handle, FileStat, OwnedFd), Errno> {
        self.node_with_fd(
            "create-tmpfile",
            &Request::CreateTmpfile {
                dir,
                flags,
                mode,
                owner,
            },
        )
    }

    /// A `Node` reply that must carry the node's open fd.
    fn node_with_fd(
        &self,
        what: &str,
        req: &Request,
    ) -> Result<(Handle, FileStat, OwnedFd), Errno> {
        match self.call(req)? {
            (Response::Node { handle, stat }, fds) => match fds.into_iter().next() {
                Some(fd) => Ok((handle, stat, fd)),
                None => {
                    error!(request = what, "gofer client: reply without an fd");
                    self.close_later(handle);
                    Err(Errno::EIO)
                }
            },
            (other, _) => Err(unexpected(what, &other)),
        }
    }

    fn node_reply(&self, what: &str, req: &Request) -> Result<(Handle, FileStat), Errno> {
        match self.call(req)? {
            (Response::Node { handle, stat }, _) => Ok((handle, stat)),
            (other, _) => Err(unexpected(what, &other)),
        }
    }

    fn ok_reply(&self, what: &str, req: &Request) -> Result<(), Errno> {
        match self.call(req)? {
            (Response::Ok, _) => Ok(()),
            (other, _) => Err(unexpected(what, &other)),
        }
    }

    pub fn mkdir(
        &self,
        dir: Handle,
        name: &[u8],
        mode: u32,
        owner: Owner,
    ) -> Result<(Handle, FileStat), Errno> {
        self.node_reply(
            "mkdir",
            &Request::Mkdir {
                dir,
                name: name.to_vec(),
                mode,
                owner,
            },
        )
    }

    pub fn mknod(
        &self,
        dir: Handle,
        name: &[u8],
        mode: u32,
        owner: Owner,
    ) -> Result<(Handle, FileStat), Errno> {
        self.node_reply(
            "mknod",
            &Request::Mknod {
                dir,
                name: name.to_vec(),
                mode,
                owner,
            },
        )
    }

    pub fn symlink(
        &self,
        dir: Handle,
        name: &[u8],
        target: &[u8],
        owner: Owner,
    ) -> Result<(Handle, FileStat), Errno> {
        self.node_reply(
            "symlink",
            &Request::Symlink {
                dir,
                name: name.to_vec(),
                target: target.to_vec(),
                owner,
            },
        )
    }

    pub fn link(
        &self,
        dir: Handle,
        name: &[u8],
        target: Handle,
    ) -> Result<(Handle, FileStat), Errno> {
        self.node_reply(
            "link",
            &Request::Link {
                dir,
                name: name.to_vec(),
                target,
            },
        )
    }

    pub fn unlink(&self, dir: Handle, name: &[u8], remove_dir: bool) -> Result<(), Errno> {
        self.ok_reply(
            "unlink",
            &Request::Unlink {
                dir,
                name: name.to_vec(),
                remove_dir,
            },
        )
    }

    pub fn rename(
        &self,
        old_dir: Handle,
        old_name: &[u8],
        new_dir: Handle,
        new_name: &[u8],
        flags: u32,
    ) -> Result<(), Errno> {
        self.ok_reply(
            "rename",
            &Request::Rename {
                old_dir,
                old_name: old_name.to_vec(),
                new_dir,
                new_name: new_name.to_vec(),
                flags,
            },
        )
    }

    /// Applies `attr`; the node's stat afterwards.
    pub fn set_stat(&self, node: Handle, attr: SetStat) -> Result<FileStat, Errno> {
        match self.call(&Request::SetStat { node, attr })? {
            (Response::Stat(stat), _) => Ok(stat),
            (other, _) => Err(unexpected("setstat", &other)),
        }
    }

    pub fn statfs(&self, node: Handle) -> Result<FsStat, Errno> {
        match self.call(&Request::StatFs { node })? {
            (Response::StatFs(st), _) => Ok(st),
            (other, _) => Err(unexpected("statfs", &other)),
        }
    }

    pub fn get_xattr(&self, node: Handle, name: &[u8]) -> Result<Vec<u8>, Errno> {
        match self.call(&Request::GetXattr {
            node,
            name: name.to_vec(),
        })? {
            (Response::Xattr(value), _) => Ok(value),
            (other, _) => Err(unexpected("getxattr", &other)),
        }
    }

    pub fn set_xattr(
        &self,
        node: Handle,
        name: &[u8],
        value: &[u8],
        flags: i32,
    ) -> Result<(), Errno> {
        self.ok_reply(
            "setxattr",
            &Request::SetXattr {
                node,
                name: name.to_vec(),
                value: value.to_vec(),
                flags,
            },
        )
    }

    pub fn list_xattr(&self, node: Handle) -> Result<Vec<Vec<u8>>, Errno> {
        match self.call(&Request::ListXattr { node })? {
            (Response::XattrNames(names), _) => Ok(names),
            (other, _) => Err(unexpected("listxattr", &other)),
        }
    }

    pub fn remove_xattr(&self, node: Handle, name: &[u8]) -> Result<(), Errno> {
        self.ok_reply(
            "removexattr",
            &Request::RemoveXattr {
                node,
                name: name.to_vec(),
            },
        )
    }

    /// Forgets a handle along with the next request (no round trip of its
    /// own). Until then the gofer keeps the node open, which keeps a
    /// deleted file's blocks in use a little longer.
    pub fn close_later(&self, node: Handle) {
        if node == ROOT_HANDLE {
            return;
        }
        let flush = {
            let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
            conn.pending_close.push(node);
            conn.pending_close.len() >= MAX_PENDING_CLOSES
        };
        if flush {
            // Any request carries the closes; a cheap one.
            let _ = self.call(&Request::Stat { node: ROOT_HANDLE });
        }
    }

    /// Forgets a handle. Best effort, never fails loudly.
    pub fn close(&self, node: Handle) {
        match self.call(&Request::Close { node }) {
            Ok((Response::Ok, _)) => {}
            Ok((other, _)) => tracing::debug!(node, reply = ?other, "gofer client: close refused"),
            Err(e) => tracing::debug!(node, error = %e, "gofer client: close failed"),
        }
    }
}
