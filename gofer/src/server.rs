//! The gofer's serving loop.
//!
//! The server holds one `O_PATH` fd per handle and answers one request at a
//! time. Everything it receives is treated as hostile: names are checked to be
//! single path components, symlinks are never followed, only regular files
//! and directories are ever opened, and a malformed message is answered with
//! `EINVAL` instead of ending the connection.

use std::collections::HashMap;
use std::ffi::{CString, OsString};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, MsgFlags};
use tracing::{debug, error, warn};

use crate::protocol::{
    decode_request, encode_response, Dirent, FileStat, Handle, Request, Response, MAX_MESSAGE,
    PROTOCOL_VERSION, ROOT_HANDLE,
};
use crate::sys;

/// How the server treats the filesystem.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Refuse every open that could modify a file (`EROFS`). The first
    /// version of rvisor always sets this: writes go to the sentry's overlay.
    pub read_only: bool,
}

/// Why serving stopped other than by the peer closing the socket.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("receiving a request: {0}")]
    Recv(#[source] Errno),
    #[error("sending a reply: {0}")]
    Send(#[source] Errno),
    #[error("setting up the socket: {0}")]
    Socket(#[source] Errno),
    #[error("the root fd is not a directory")]
    RootNotDirectory,
    #[error("checking the root fd: {0}")]
    Root(#[source] Errno),
}

/// Longest name one path component may have on Linux.
const NAME_MAX: usize = 255;
/// Most entries one `Dirents` reply carries.
const MAX_DIRENTS_PER_PAGE: usize = 2048;
/// Budget for the encoded entries of one `Dirents` reply, well under
/// [`MAX_MESSAGE`] so the reply always fits whatever the names are.
const MAX_DIRENTS_BYTES: usize = 200 * 1024;
/// Upper bound of the encoded size of a `Dirent` besides its name bytes:
/// varint ino (10) + d_type (1) + varint name length (at most 3 here).
const DIRENT_OVERHEAD: usize = 16;

/// The kernel's `O_LARGEFILE` bit. glibc's headers define `O_LARGEFILE` as 0
/// on 64-bit targets, but a guest calling `open` directly may still set the
/// kernel's bit, which is harmless and must be accepted.
#[cfg(target_arch = "x86_64")]
const KERNEL_O_LARGEFILE: i32 = 0o100000;
#[cfg(target_arch = "aarch64")]
const KERNEL_O_LARGEFILE: i32 = 0o400000;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const KERNEL_O_LARGEFILE: i32 = libc::O_LARGEFILE;

/// `O_TMPFILE` without the `O_DIRECTORY` bit it includes.
const O_TMPFILE_ONLY: i32 = libc::O_TMPFILE & !libc::O_DIRECTORY;

/// Flags an `Open` may carry besides the access mode. `O_NOFOLLOW` is
/// accepted but not passed on: the node is never a symlink by the time we
/// open it, and on the `/proc/self/fd/N` reopen it would refuse the magic
/// link itself.
const ALLOWED_OPEN_FLAGS: i32 = libc::O_DIRECTORY
    | libc::O_NONBLOCK
    | libc::O_LARGEFILE
    | KERNEL_O_LARGEFILE
    | libc::O_NOATIME
    | libc::O_CLOEXEC
    | libc::O_NOCTTY
    | libc::O_NOFOLLOW;

/// Flags that are only allowed when not read-only.
const WRITE_FLAGS: i32 = libc::O_TRUNC | libc::O_APPEND;

/// Serves requests until the peer closes the socket (returns Ok) or an
/// unrecoverable socket error.
///
/// A malformed message gets an `Error{EINVAL}` reply (never a panic) and
/// serving continues. `root` is an `O_PATH` fd of the root directory (handle
/// [`ROOT_HANDLE`]); `proc_self_fd` is an `O_PATH|O_DIRECTORY` fd of
/// `/proc/self/fd`, used to turn `O_PATH` fds into real open files.
pub fn serve(
    sock: OwnedFd,
    root: OwnedFd,
    proc_self_fd: OwnedFd,
    opts: ServeOptions,
) -> Result<(), ServerError> {
    // The root is a directory, or a single file (a file bind mount).
    let root_stat = sys::fstat(root.as_fd()).map_err(ServerError::Root)?;
    if !matches!(
        root_stat.st_mode & libc::S_IFMT,
        libc::S_IFDIR | libc::S_IFREG
    ) {
        return Err(ServerError::RootNotDirectory);
    }
    crate::client::ensure_send_buffer(sock.as_fd()).map_err(ServerError::Socket)?;
    let mut state = State::new(root, proc_self_fd, opts);
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let (len, flags) = match recv_request(sock.as_fd(), &mut buf) {
            Ok(got) => got,
            Err(Errno::ECONNRESET) => return Ok(()),
            Err(e) => {
                error!(error = %e, "gofer: receiving a request failed");
                return Err(ServerError::Recv(e));
            }
        };
        let reply = if len == 0 {
            // SEQPACKET reports end-of-stream and an empty message alike.
            if peer_hung_up(sock.as_fd()) {
                return Ok(());
            }
            warn!("gofer: empty message");
            (
                Response::Error {
                    errno: Errno::EINVAL as i32,
                },
                None,
            )
        } else if flags.contains(MsgFlags::MSG_TRUNC) {
            warn!("gofer: oversized message");
            (
                Response::Error {
                    errno: Errno::EINVAL as i32,
                },
                None,
            )
        } else if flags.contains(MsgFlags::MSG_CTRUNC) {
            // The peer sent fds or credentials; the kernel discarded them
            // because we gave no control buffer. Nothing legitimate does that.
            warn!("gofer: message with unexpected ancillary data");
            (
                Response::Error {
                    errno: Errno::EINVAL as i32,
                },
                None,
            )
        } else {
            match buf.get(..len).map(decode_request) {
                Some(Ok(req)) => state.handle(req),
                Some(Err(e)) => {
                    warn!(error = %e, "gofer: malformed request");
                    (
                        Response::Error {
                            errno: Errno::EINVAL as i32,
                        },
                        None,
                    )
                }
                None => (
                    Response::Error {
                        errno: Errno::EINVAL as i32,
                    },
                    None,
                ),
            }
        };
        match send_reply(sock.as_fd(), &reply.0, reply.1.as_ref()) {
            Ok(()) => {}
            Err(Errno::EPIPE | Errno::ECONNRESET | Errno::ENOTCONN) => return Ok(()),
            Err(e) => {
                error!(error = %e, "gofer: sending a reply failed");
                return Err(ServerError::Send(e));
            }
        }
        // The donated fd (if any) is dropped here: the sentry has its own copy.
    }
}

fn recv_request(sock: BorrowedFd<'_>, buf: &mut [u8]) -> Result<(usize, MsgFlags), Errno> {
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        // No control buffer: any fds a peer sends are released by the kernel
        // instead of being installed here, and MSG_CTRUNC tells us about it.
        match recvmsg::<()>(sock.as_raw_fd(), &mut iov, None, MsgFlags::MSG_CMSG_CLOEXEC) {
            Ok(msg) => return Ok((msg.bytes, msg.flags)),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Whether the peer has closed its end; called after a zero-length read.
fn peer_hung_up(sock: BorrowedFd<'_>) -> bool {
    // nix has no name for POLLRDHUP.
    let rdhup = PollFlags::from_bits_retain(libc::POLLRDHUP);
    let mut fds = [PollFd::new(sock, PollFlags::POLLIN | rdhup)];
    match nix::poll::poll(&mut fds, PollTimeout::ZERO) {
        Ok(_) => fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | rdhup)),
        // If we cannot even poll the socket, stop rather than spin.
        Err(_) => true,
    }
}

fn send_reply(sock: BorrowedFd<'_>, resp: &Response, fd: Option<&OwnedFd>) -> Result<(), Errno> {
    let bytes = match encode_response(resp) {
        Ok(bytes) => bytes,
        Err(e) => {
            // Cannot happen for replies we build (they are bounded), but if
            // it does, say so to the peer rather than dying.
            error!(error = %e, "gofer: encoding a reply failed");
            encode_response(&Response::Error {
                errno: Errno::EIO as i32,
            })
            .map_err(|_| Errno::EIO)?
        }
    };
    let raw_fds;
    let cmsgs: &[ControlMessage<'_>] = match fd {
        Some(fd) => {
            raw_fds = [fd.as_raw_fd()];
            &[ControlMessage::ScmRights(&raw_fds)]
        }
        None => &[],
    };
    let iov = [IoSlice::new(&bytes)];
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Validates one path component from the sentry.
fn check_name(name: &[u8]) -> Result<CString, Errno> {
    if name.len() > NAME_MAX {
        return Err(Errno::ENAMETOOLONG);
    }
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
        return Err(Errno::EINVAL);
    }
    CString::new(name).map_err(|_| Errno::EINVAL)
}

fn file_type(st: &libc::stat) -> u32 {
    st.st_mode & libc::S_IFMT
}

/// What one `Open` will pass to the host, after validating the sentry's flags.
fn check_open_flags(flags: i32, read_only: bool) -> Result<OFlag, Errno> {
    let accmode = flags & libc::O_ACCMODE;
    let wants_write = accmode == libc::O_WRONLY
        || accmode == libc::O_RDWR
        || flags & (libc::O_CREAT | WRITE_FLAGS | O_TMPFILE_ONLY) != 0;
    if read_only && wants_write {
        return Err(Errno::EROFS);
    }
    if accmode == libc::O_ACCMODE {
        return Err(Errno::EINVAL);
    }
    let mut allowed = ALLOWED_OPEN_FLAGS | libc::O_ACCMODE;
    if !read_only {
        allowed |= WRITE_FLAGS;
    }
    // O_CREAT, O_EXCL, O_TMPFILE, O_PATH, ... make no sense for reopening an
    // existing node, and unknown bits are refused rather than passed on.
    if flags & !allowed != 0 {
        return Err(Errno::EINVAL);
    }
    let flags = (flags & !libc::O_NOFOLLOW) | libc::O_CLOEXEC | libc::O_NOCTTY;
    Ok(OFlag::from_bits_retain(flags))
}

struct State {
    nodes: HashMap<Handle, OwnedFd>,
    next_handle: Handle,
    proc_self_fd: OwnedFd,
    opts: ServeOptions,
}

impl State {
    fn new(root: OwnedFd, proc_self_fd: OwnedFd, opts: ServeOptions) -> State {
        let mut nodes = HashMap::new();
        nodes.insert(ROOT_HANDLE, root);
        State {
            nodes,
            next_handle: ROOT_HANDLE + 1,
            proc_self_fd,
            opts,
        }
    }

    fn handle(&mut self, req: Request) -> (Response, Option<OwnedFd>) {
        let what = request_name(&req);
        let result = match req {
            Request::Version { version } => {
                if version == PROTOCOL_VERSION {
                    Ok((
                        Response::Version {
                            version: PROTOCOL_VERSION,
                        },
                        None,
                    ))
                } else {
                    warn!(version, "gofer: peer speaks another protocol version");
                    Err(Errno::EPROTONOSUPPORT)
                }
            }
            Request::Walk { dir, name } => self.walk(dir, &name).map(|r| (r, None)),
            Request::Stat { node } => self.stat(node).map(|r| (r, None)),
            Request::Open { node, flags } => self
                .open(node, flags)
                .map(|fd| (Response::Opened, Some(fd))),
            Request::ReadLink { node } => self.readlink(node).map(|r| (r, None)),
            Request::Getdents { node, offset } => self.getdents(node, offset).map(|r| (r, None)),
            Request::Close { node } => self.close(node).map(|r| (r, None)),
        };
        result.unwrap_or_else(|errno| {
            debug!(request = what, %errno, "gofer: request failed");
            (
                Response::Error {
                    errno: errno as i32,
                },
                None,
            )
        })
    }

    fn node(&self, handle: Handle) -> Result<BorrowedFd<'_>, Errno> {
        self.nodes
            .get(&handle)
            .map(|fd| fd.as_fd())
            .ok_or(Errno::EBADF)
    }

    fn walk(&mut self, dir: Handle, name: &[u8]) -> Result<Response, Errno> {
        let name = check_name(name)?;
        let dir_fd = self.node(dir)?;
        if file_type(&sys::fstat(dir_fd)?) != libc::S_IFDIR {
            return Err(Errno::ENOTDIR);
        }
        let fd = sys::openat(
            dir_fd,
            &name,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        )?;
        let stat = FileStat::from_host(&sys::fstat(fd.as_fd())?);
        let handle = self.next_handle;
        self.next_handle = handle.checked_add(1).ok_or(Errno::EMFILE)?;
        self.nodes.insert(handle, fd);
        Ok(Response::Node { handle, stat })
    }

    fn stat(&self, node: Handle) -> Result<Response, Errno> {
        let st = sys::fstat(self.node(node)?)?;
        Ok(Response::Stat(FileStat::from_host(&st)))
    }

    /// Turns the node's `O_PATH` fd into a real open file description by
    /// opening `/proc/self/fd/<n>`; the inode is pinned by the `O_PATH` fd,
    /// so the type checked here is the type that gets opened.
    fn reopen(&self, node: BorrowedFd<'_>, flags: OFlag) -> Result<OwnedFd, Errno> {
        let st = sys::fstat(node)?;
        match file_type(&st) {
            libc::S_IFREG | libc::S_IFDIR => {}
            libc::S_IFLNK => return Err(Errno::ELOOP),
            // Devices, FIFOs and sockets: opening them can block, reach host
            // hardware, or talk to host services.
            _ => return Err(Errno::EPERM),
        }
        if flags.contains(OFlag::O_DIRECTORY) && file_type(&st) != libc::S_IFDIR {
            return Err(Errno::ENOTDIR);
        }
        let name = CString::new(node.as_raw_fd().to_string()).map_err(|_| Errno::EINVAL)?;
        let fd = sys::openat(self.proc_self_fd.as_fd(), &name, flags)?;
        // Belt and braces: the magic link must have led to the same inode.
        let opened = sys::fstat(fd.as_fd())?;
        if opened.st_dev != st.st_dev || opened.st_ino != st.st_ino {
            error!("gofer: /proc/self/fd reopen reached a different inode");
            return Err(Errno::EIO);
        }
        Ok(fd)
    }

    fn open(&self, node: Handle, flags: i32) -> Result<OwnedFd, Errno> {
        let node = self.node(node)?;
        let flags = check_open_flags(flags, self.opts.read_only)?;
        self.reopen(node, flags)
    }

    fn readlink(&self, node: Handle) -> Result<Response, Errno> {
        let fd = self.node(node)?;
        if file_type(&sys::fstat(fd)?) != libc::S_IFLNK {
            return Err(Errno::EINVAL);
        }
        let target: OsString = nix::fcntl::readlinkat(Some(fd.as_raw_fd()), c"")?;
        Ok(Response::Link(target.into_vec()))
    }

    fn getdents(&self, node: Handle, offset: u64) -> Result<Response, Errno> {
        let fd = self.node(node)?;
        if file_type(&sys::fstat(fd)?) != libc::S_IFDIR {
            return Err(Errno::ENOTDIR);
        }
        let dir_fd = self.reopen(fd, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)?;
        let mut dir = Dir::from(dir_fd)?;
        let mut entries = Vec::new();
        let mut bytes = 0usize;
        let mut index: u64 = 0;
        let mut next_offset = None;
        for entry in dir.iter() {
            let entry = entry?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            if index >= offset {
                if entries.len() >= MAX_DIRENTS_PER_PAGE
                    || bytes + DIRENT_OVERHEAD + name.len() > MAX_DIRENTS_BYTES
                {
                    next_offset = Some(index);
                    break;
                }
                bytes += DIRENT_OVERHEAD + name.len();
                entries.push(Dirent {
                    ino: entry.ino(),
                    d_type: d_type(entry.file_type()),
                    name: name.to_vec(),
                });
            }
            index += 1;
        }
        Ok(Response::Dirents {
            entries,
            next_offset,
        })
    }

    fn close(&mut self, node: Handle) -> Result<Response, Errno> {
        if node == ROOT_HANDLE {
            return Ok(Response::Ok);
        }
        self.nodes
            .remove(&node)
            .map(|_| Response::Ok)
            .ok_or(Errno::EBADF)
    }
}

fn d_type(t: Option<nix::dir::Type>) -> u8 {
    use nix::dir::Type;
    match t {
        Some(Type::Fifo) => libc::DT_FIFO,
        Some(Type::CharacterDevice) => libc::DT_CHR,
        Some(Type::Directory) => libc::DT_DIR,
        Some(Type::BlockDevice) => libc::DT_BLK,
        Some(Type::File) => libc::DT_REG,
        Some(Type::Symlink) => libc::DT_LNK,
        Some(Type::Socket) => libc::DT_SOCK,
        None => libc::DT_UNKNOWN,
    }
}

fn request_name(req: &Request) -> &'static str {
    match req {
        Request::Version { .. } => "version",
        Request::Walk { .. } => "walk",
        Request::Stat { .. } => "stat",
        Request::Open { .. } => "open",
        Request::ReadLink { .. } => "readlink",
        Request::Getdents { .. } => "getdents",
        Request::Close { .. } => "close",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_single_components() {
        assert_eq!(check_name(b""), Err(Errno::EINVAL));
        assert_eq!(check_name(b"."), Err(Errno::EINVAL));
        assert_eq!(check_name(b".."), Err(Errno::EINVAL));
        assert_eq!(check_name(b"a/b"), Err(Errno::EINVAL));
        assert_eq!(check_name(b"/"), Err(Errno::EINVAL));
        assert_eq!(check_name(b"a\0b"), Err(Errno::EINVAL));
        assert_eq!(check_name(&[b'x'; 256]), Err(Errno::ENAMETOOLONG));
        assert!(check_name(&[b'x'; 255]).is_ok());
        assert!(check_name(b"...").is_ok());
        assert!(check_name(b".hidden").is_ok());
    }

    #[test]
    fn open_flags_read_only() {
        for f in [
            libc::O_WRONLY,
            libc::O_RDWR,
            libc::O_CREAT,
            libc::O_TRUNC,
            libc::O_APPEND,
            libc::O_TMPFILE | libc::O_RDWR,
            libc::O_RDONLY | libc::O_TMPFILE,
        ] {
            assert_eq!(check_open_flags(f, true), Err(Errno::EROFS), "flags {f:#o}");
        }
        for f in [
            libc::O_PATH,
            libc::O_EXCL,
            libc::O_ACCMODE,
            libc::O_DIRECT,
            libc::O_ASYNC,
            1 << 30,
        ] {
            assert_eq!(
                check_open_flags(f, true),
                Err(Errno::EINVAL),
                "flags {f:#o}"
            );
        }
        let ok = check_open_flags(
            libc::O_RDONLY
                | libc::O_DIRECTORY
                | libc::O_NONBLOCK
                | KERNEL_O_LARGEFILE
                | libc::O_NOFOLLOW,
            true,
        )
        .unwrap();
        assert!(!ok.contains(OFlag::O_NOFOLLOW));
        assert!(ok.contains(OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_DIRECTORY));
    }

    #[test]
    fn open_flags_writable() {
        assert!(check_open_flags(libc::O_RDWR | libc::O_TRUNC, false).is_ok());
        assert!(check_open_flags(libc::O_WRONLY | libc::O_APPEND, false).is_ok());
        assert_eq!(
            check_open_flags(libc::O_WRONLY | libc::O_CREAT, false),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            check_open_flags(libc::O_TMPFILE | libc::O_RDWR, false),
            Err(Errno::EINVAL)
        );
    }
}
