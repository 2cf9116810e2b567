//! The gofer's serving loop.
//!
//! The server holds one `O_PATH` fd per handle and answers one request at a
//! time. Everything it receives is treated as hostile: names are checked to be
//! single path components, symlinks are never followed, only regular files
//! and directories are ever opened, and a malformed message is answered with
//! `EINVAL` instead of ending the connection.

use std::ffi::{CString, OsString};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::sync::Arc;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, MsgFlags};
use tracing::{debug, error, warn};

use crate::nodes::NodeTable;
use crate::protocol::{
    decode_request, encode_response, Dirent, FileStat, Handle, Owner, Request, Response, SetStat,
    MAX_MESSAGE, PROTOCOL_VERSION, ROOT_HANDLE,
};
use crate::sys;

/// How the server treats the filesystem.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Refuse every request that could modify the tree (`EROFS`): the
    /// rootfs under an in-memory overlay, and read-only bind mounts.
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
    let mut state = State::new(root, proc_self_fd, opts).map_err(ServerError::Root)?;
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
                Vec::new(),
            )
        } else if flags.contains(MsgFlags::MSG_TRUNC) {
            warn!("gofer: oversized message");
            (
                Response::Error {
                    errno: Errno::EINVAL as i32,
                },
                Vec::new(),
            )
        } else if flags.contains(MsgFlags::MSG_CTRUNC) {
            // The peer sent fds or credentials; the kernel discarded them
            // because we gave no control buffer. Nothing legitimate does that.
            warn!("gofer: message with unexpected ancillary data");
            (
                Response::Error {
                    errno: Errno::EINVAL as i32,
                },
                Vec::new(),
            )
        } else {
            match buf.get(..len).map(decode_request) {
                Some(Ok(msg)) => {
                    state.forget(&msg.close);
                    state.handle(msg.request)
                }
                Some(Err(e)) => {
                    warn!(error = %e, "gofer: malformed request");
                    (
                        Response::Error {
                            errno: Errno::EINVAL as i32,
                        },
                        Vec::new(),
                    )
                }
                None => (
                    Response::Error {
                        errno: Errno::EINVAL as i32,
                    },
                    Vec::new(),
                ),
            }
        };
        match send_reply(sock.as_fd(), &reply.0, &reply.1) {
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
    let mut spin = crate::client::Spin::new();
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        // No control buffer: any fds a peer sends are released by the kernel
        // instead of being installed here, and MSG_CTRUNC tells us about it.
        match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            None,
            MsgFlags::MSG_CMSG_CLOEXEC | spin.flags(),
        ) {
            Ok(msg) => return Ok((msg.bytes, msg.flags)),
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) if spin.again() => continue,
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

fn send_reply(sock: BorrowedFd<'_>, resp: &Response, fds: &[OwnedFd]) -> Result<(), Errno> {
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
    let raw_fds: Vec<std::os::fd::RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let rights = [ControlMessage::ScmRights(&raw_fds)];
    let cmsgs: &[ControlMessage<'_>] = if raw_fds.is_empty() { &[] } else { &rights };
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

/// The only xattr namespace served: `trusted.*` and `security.*` values on
/// host files would mean something to the host kernel (file capabilities,
/// LSM labels), and the sandbox's root is not the host's.
const USER_XATTR_PREFIX: &[u8] = b"user.";
/// Linux's XATTR_NAME_MAX and XATTR_SIZE_MAX.
const XATTR_NAME_MAX: usize = 255;
const XATTR_SIZE_MAX: usize = 65536;

/// Validates an xattr name: `user.` namespace only (others: EOPNOTSUPP,
/// as a filesystem without that namespace answers).
fn check_xattr_name(name: &[u8]) -> Result<CString, Errno> {
    if name.len() > XATTR_NAME_MAX {
        return Err(Errno::ERANGE);
    }
    if !name.starts_with(USER_XATTR_PREFIX) || name.len() == USER_XATTR_PREFIX.len() {
        return Err(Errno::EOPNOTSUPP);
    }
    CString::new(name).map_err(|_| Errno::EINVAL)
}

/// The name of `fd` in `/proc/self/fd`, for reopening, linking or
/// chmod'ing exactly the inode it holds.
fn fd_name(fd: BorrowedFd<'_>) -> Result<CString, Errno> {
    CString::new(fd.as_raw_fd().to_string()).map_err(|_| Errno::EINVAL)
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
    nodes: NodeTable,
    proc_self_fd: OwnedFd,
    opts: ServeOptions,
}

/// How many node fds a server keeps open: a quarter of the process's fd
/// limit (several servers share it, and requests open files too).
fn node_fd_budget() -> usize {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft);
    (soft / 4).clamp(64, 1 << 18) as usize
}

impl State {
    fn new(root: OwnedFd, proc_self_fd: OwnedFd, opts: ServeOptions) -> Result<State, Errno> {
        Ok(State {
            nodes: NodeTable::new(ROOT_HANDLE, root, node_fd_budget())?,
            proc_self_fd,
            opts,
        })
    }

    fn handle(&mut self, req: Request) -> (Response, Vec<OwnedFd>) {
        let what = request_name(&req);
        let result = match req {
            Request::Version { version } => {
                if version == PROTOCOL_VERSION {
                    Ok((
                        Response::Version {
                            version: PROTOCOL_VERSION,
                        },
                        Vec::new(),
                    ))
                } else {
                    warn!(version, "gofer: peer speaks another protocol version");
                    Err(Errno::EPROTONOSUPPORT)
                }
            }
            Request::Walk { dir, name } => self.walk(dir, &name).map(|r| (r, Vec::new())),
            Request::WalkOpen { dir, name } => self.walk_open(dir, &name),
            Request::Stat { node } => self.stat(node).map(|r| (r, Vec::new())),
            Request::NodeFd { node } => self.node_fd(node).map(|fd| (Response::Opened, vec![fd])),
            Request::Open { node, flags } => self
                .open(node, flags)
                .map(|fd| (Response::Opened, vec![fd])),
            Request::ReadLink { node } => self.readlink(node).map(|r| (r, Vec::new())),
            Request::Getdents { node, offset } => {
                self.getdents(node, offset).map(|r| (r, Vec::new()))
            }
            Request::Close { node } => self.close(node).map(|r| (r, Vec::new())),
            Request::StatFs { node } => self.statfs(node).map(|r| (r, Vec::new())),
            Request::GetXattr { node, name } => {
                self.get_xattr(node, &name).map(|r| (r, Vec::new()))
            }
            Request::ListXattr { node } => self.list_xattr(node).map(|r| (r, Vec::new())),
            write => {
                if self.opts.read_only {
                    Err(Errno::EROFS)
                } else {
                    self.handle_write(write)
                }
            }
        };
        result.unwrap_or_else(|errno| {
            debug!(request = what, %errno, "gofer: request failed");
            (
                Response::Error {
                    errno: errno as i32,
                },
                Vec::new(),
            )
        })
    }

    /// Requests that change the tree; never reached on a read-only mount.
    fn handle_write(&mut self, req: Request) -> Result<(Response, Vec<OwnedFd>), Errno> {
        match req {
            Request::Create {
                dir,
                name,
                flags,
                mode,
                owner,
            } => self
                .create(dir, &name, flags, mode, owner)
                .map(|(r, fd)| (r, vec![fd])),
            Request::CreateTmpfile {
                dir,
                flags,
                mode,
                owner,
            } => self
                .create_tmpfile(dir, flags, mode, owner)
                .map(|(r, fd)| (r, vec![fd])),
            Request::Mkdir {
                dir,
                name,
                mode,
                owner,
            } => self.mkdir(dir, &name, mode, owner).map(|r| (r, Vec::new())),
            Request::Mknod {
                dir,
                name,
                mode,
                owner,
            } => self.mknod(dir, &name, mode, owner).map(|r| (r, Vec::new())),
            Request::Symlink {
                dir,
                name,
                target,
                owner,
            } => self
                .symlink(dir, &name, &target, owner)
                .map(|r| (r, Vec::new())),
            Request::Link { dir, name, target } => {
                self.link(dir, &name, target).map(|r| (r, Vec::new()))
            }
            Request::Unlink {
                dir,
                name,
                remove_dir,
            } => self.unlink(dir, &name, remove_dir).map(|r| (r, Vec::new())),
            Request::Rename {
                old_dir,
                old_name,
                new_dir,
                new_name,
                flags,
            } => self
                .rename(old_dir, &old_name, new_dir, &new_name, flags)
                .map(|r| (r, Vec::new())),
            Request::SetStat { node, attr } => self.set_stat(node, &attr).map(|r| (r, Vec::new())),
            Request::SetXattr {
                node,
                name,
                value,
                flags,
            } => self
                .set_xattr(node, &name, &value, flags)
                .map(|r| (r, Vec::new())),
            Request::RemoveXattr { node, name } => {
                self.remove_xattr(node, &name).map(|r| (r, Vec::new()))
            }
            // Everything else was answered by `handle`.
            _ => Err(Errno::EINVAL),
        }
    }

    /// The node's `O_PATH` fd (reopened if the budget closed it; see
    /// `nodes`).
    fn node(&mut self, handle: Handle) -> Result<Arc<OwnedFd>, Errno> {
        self.nodes.get(handle)
    }

    /// The fd of `dir`, checked to be a directory.
    fn dir(&mut self, dir: Handle) -> Result<Arc<OwnedFd>, Errno> {
        let fd = self.node(dir)?;
        if file_type(&sys::fstat(fd.as_fd())?) != libc::S_IFDIR {
            return Err(Errno::ENOTDIR);
        }
        Ok(fd)
    }

    /// Gives `fd` (an `O_PATH` fd) a new handle; `origin`, its directory
    /// and name, lets it be walked to again (None keeps it open).
    fn insert_node(
        &mut self,
        fd: OwnedFd,
        origin: Option<(Handle, CString)>,
    ) -> Result<Response, Errno> {
        let stat = FileStat::from_host(&sys::fstat(fd.as_fd())?);
        let handle = self.nodes.insert(fd, origin)?;
        Ok(Response::Node { handle, stat })
    }

    /// Walks to `name` (never following it) and gives it a handle.
    fn walk_fd(&self, dir: BorrowedFd<'_>, name: &CString) -> Result<OwnedFd, Errno> {
        sys::openat(
            dir,
            name,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        )
    }

    fn walk(&mut self, dir: Handle, name: &[u8]) -> Result<Response, Errno> {
        let name = check_name(name)?;
        let dir_fd = self.dir(dir)?;
        let fd = self.walk_fd(dir_fd.as_fd(), &name)?;
        self.insert_node(fd, Some((dir, name)))
    }

    /// A copy of the node's `O_PATH` fd, for the sentry (directfs; safe
    /// because `..` from it stops at the root we pivot_rooted into).
    fn node_fd(&mut self, node: Handle) -> Result<OwnedFd, Errno> {
        sys::dup(&*self.node(node)?)
    }

    fn walk_open(&mut self, dir: Handle, name: &[u8]) -> Result<(Response, Vec<OwnedFd>), Errno> {
        let name = check_name(name)?;
        let dir_fd = self.dir(dir)?;
        let fd = self.walk_fd(dir_fd.as_fd(), &name)?;
        let mut fds = vec![sys::dup(&fd)?];
        if file_type(&sys::fstat(fd.as_fd())?) == libc::S_IFREG {
            fds.push(self.reopen(
                fd.as_fd(),
                OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
            )?);
        }
        Ok((self.insert_node(fd, Some((dir, name)))?, fds))
    }

    /// Walks to a node just made in `dir` and gives it `owner`. The node is
    /// chowned through its own `O_PATH` fd, so if something swapped the
    /// name in between, only that (never followed) node changes owner.
    fn adopt_new(
        &mut self,
        dir: Handle,
        name: &CString,
        owner: Owner,
        mode: u32,
    ) -> Result<Response, Errno> {
        let dir_fd = self.dir(dir)?;
        let fd = self.walk_fd(dir_fd.as_fd(), name)?;
        self.give_owner(fd.as_fd(), owner, mode)?;
        self.insert_node(fd, Some((dir, name.clone())))
    }

    /// Chowns a node just made with `mode`. The host clears a regular
    /// file's set-user-ID and set-group-ID bits on chown, so they are set
    /// again afterwards (as Linux's own create leaves them).
    fn give_owner(&self, fd: BorrowedFd<'_>, owner: Owner, mode: u32) -> Result<(), Errno> {
        sys::chown_node(fd, Some(owner.uid), Some(owner.gid))?;
        if mode & (libc::S_ISUID | libc::S_ISGID) != 0 {
            // Not a symlink (those are made with no mode): through the
            // magic link, this is exactly the node `fd` pins.
            nix::sys::stat::fchmodat(
                Some(self.proc_self_fd.as_raw_fd()),
                fd_name(fd)?.as_c_str(),
                nix::sys::stat::Mode::from_bits_retain(mode & 0o7777),
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )?;
        }
        Ok(())
    }

    fn create(
        &mut self,
        dir: Handle,
        name: &[u8],
        flags: i32,
        mode: u32,
        owner: Owner,
    ) -> Result<(Response, OwnedFd), Errno> {
        let name = check_name(name)?;
        let open_flags = check_open_flags(flags, false)?;
        let dir_fd = self.dir(dir)?;
        // O_EXCL never follows a symlink, and never opens an existing file.
        let file = sys::openat_create(
            dir_fd.as_fd(),
            &name,
            open_flags | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW,
            mode & 0o7777,
        )?;
        self.adopt_open_file(file, owner, mode)
    }

    /// Gives a file just created and opened `owner`, and a handle naming
    /// its inode whatever happens to its name afterwards; returns the
    /// reply and the open fd to donate.
    fn adopt_open_file(
        &mut self,
        file: OwnedFd,
        owner: Owner,
        mode: u32,
    ) -> Result<(Response, OwnedFd), Errno> {
        self.give_owner(file.as_fd(), owner, mode)?;
        let node = sys::openat(
            self.proc_self_fd.as_fd(),
            &fd_name(file.as_fd())?,
            OFlag::O_PATH | OFlag::O_CLOEXEC,
        )?;
        Ok((self.insert_node(node, None)?, file))
    }

    fn create_tmpfile(
        &mut self,
        dir: Handle,
        flags: i32,
        mode: u32,
        owner: Owner,
    ) -> Result<(Response, OwnedFd), Errno> {
        let exclusive = flags & libc::O_EXCL != 0;
        let accmode = flags & libc::O_ACCMODE;
        if accmode != libc::O_WRONLY && accmode != libc::O_RDWR {
            return Err(Errno::EINVAL);
        }
        let open_flags = check_open_flags(flags & !libc::O_EXCL, false)?;
        let mut all = open_flags | OFlag::O_TMPFILE;
        if exclusive {
            all |= OFlag::O_EXCL;
        }
        // A nameless file: nothing to follow, nothing to collide with.
        let dir_fd = self.dir(dir)?;
        let file = sys::openat_create(dir_fd.as_fd(), c".", all, mode & 0o7777)?;
        self.adopt_open_file(file, owner, mode)
    }

    fn mkdir(
        &mut self,
        dir: Handle,
        name: &[u8],
        mode: u32,
        owner: Owner,
    ) -> Result<Response, Errno> {
        let name = check_name(name)?;
        nix::sys::stat::mkdirat(
            Some(self.dir(dir)?.as_raw_fd()),
            name.as_c_str(),
            nix::sys::stat::Mode::from_bits_retain(mode & 0o7777),
        )?;
        // Directories keep set-ID bits across chown; S_ISGID comes from
        // the parent only, as mkdir(2) does.
        self.adopt_new(dir, &name, owner, 0)
    }

    fn mknod(
        &mut self,
        dir: Handle,
        name: &[u8],
        mode: u32,
        owner: Owner,
    ) -> Result<Response, Errno> {
        use nix::sys::stat::{Mode, SFlag};
        let name = check_name(name)?;
        let kind = match mode & libc::S_IFMT {
            libc::S_IFIFO => SFlag::S_IFIFO,
            libc::S_IFSOCK => SFlag::S_IFSOCK,
            0 | libc::S_IFREG => SFlag::S_IFREG,
            // Device nodes would reach host hardware.
            _ => return Err(Errno::EPERM),
        };
        nix::sys::stat::mknodat(
            Some(self.dir(dir)?.as_raw_fd()),
            name.as_c_str(),
            kind,
            Mode::from_bits_retain(mode & 0o7777),
            0,
        )?;
        self.adopt_new(dir, &name, owner, mode)
    }

    fn symlink(
        &mut self,
        dir: Handle,
        name: &[u8],
        target: &[u8],
        owner: Owner,
    ) -> Result<Response, Errno> {
        let name = check_name(name)?;
        if target.is_empty() {
            return Err(Errno::ENOENT);
        }
        if target.len() >= libc::PATH_MAX as usize {
            return Err(Errno::ENAMETOOLONG);
        }
        // The target is stored, never resolved here: the sentry resolves
        // symlinks inside its own root.
        let target = CString::new(target).map_err(|_| Errno::EINVAL)?;
        nix::unistd::symlinkat(
            target.as_c_str(),
            Some(self.dir(dir)?.as_raw_fd()),
            name.as_c_str(),
        )?;
        self.adopt_new(dir, &name, owner, 0)
    }

    fn link(&mut self, dir: Handle, name: &[u8], target: Handle) -> Result<Response, Errno> {
        let name = check_name(name)?;
        let target_fd = self.node(target)?;
        if file_type(&sys::fstat(target_fd.as_fd())?) == libc::S_IFDIR {
            return Err(Errno::EPERM);
        }
        // Through /proc/self/fd: links exactly the inode the handle pins
        // (linkat with AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH).
        let target_name = fd_name(target_fd.as_fd())?;
        nix::unistd::linkat(
            Some(self.proc_self_fd.as_raw_fd()),
            target_name.as_c_str(),
            Some(self.dir(dir)?.as_raw_fd()),
            name.as_c_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_FOLLOW,
        )?;
        let dir_fd = self.dir(dir)?;
        let fd = self.walk_fd(dir_fd.as_fd(), &name)?;
        self.insert_node(fd, Some((dir, name)))
    }

    fn unlink(&mut self, dir: Handle, name: &[u8], remove_dir: bool) -> Result<Response, Errno> {
        let name = check_name(name)?;
        let how = if remove_dir {
            nix::unistd::UnlinkatFlags::RemoveDir
        } else {
            nix::unistd::UnlinkatFlags::NoRemoveDir
        };
        let dir_fd = self.dir(dir)?;
        self.nodes.pin_named(dir, &name);
        nix::unistd::unlinkat(Some(dir_fd.as_raw_fd()), name.as_c_str(), how)?;
        Ok(Response::Ok)
    }

    fn rename(
        &mut self,
        old_dir: Handle,
        old_name: &[u8],
        new_dir: Handle,
        new_name: &[u8],
        flags: u32,
    ) -> Result<Response, Errno> {
        let old_name = check_name(old_name)?;
        let new_name = check_name(new_name)?;
        // RENAME_WHITEOUT makes a device node; unknown bits are refused.
        if flags & !(libc::RENAME_NOREPLACE | libc::RENAME_EXCHANGE) != 0 {
            return Err(Errno::EINVAL);
        }
        let old_fd = self.dir(old_dir)?;
        let new_fd = self.dir(new_dir)?;
        let exchange = flags & libc::RENAME_EXCHANGE != 0;
        if !exchange {
            // Whatever the new name held loses it.
            self.nodes.pin_named(new_dir, &new_name);
        }
        nix::fcntl::renameat2(
            Some(old_fd.as_raw_fd()),
            old_name.as_c_str(),
            Some(new_fd.as_raw_fd()),
            new_name.as_c_str(),
            nix::fcntl::RenameFlags::from_bits_retain(flags),
        )?;
        self.nodes
            .renamed((old_dir, old_name), (new_dir, new_name), exchange);
        Ok(Response::Ok)
    }

    fn set_stat(&mut self, node: Handle, attr: &SetStat) -> Result<Response, Errno> {
        let node_fd = self.node(node)?;
        let fd = node_fd.as_fd();
        let st = sys::fstat(fd)?;
        let ftype = file_type(&st);
        if attr.size.is_some() {
            match ftype {
                libc::S_IFREG => {}
                libc::S_IFDIR => return Err(Errno::EISDIR),
                _ => return Err(Errno::EINVAL),
            }
        }
        if attr.mode.is_some() && ftype == libc::S_IFLNK {
            // Linux has no lchmod.
            return Err(Errno::EOPNOTSUPP);
        }
        // Linux's order in notify_change: owner, then mode (chown clears
        // set-ID bits, a chmod after it may set them again), size, times.
        if attr.uid.is_some() || attr.gid.is_some() {
            sys::chown_node(fd, attr.uid, attr.gid)?;
        }
        if let Some(mode) = attr.mode {
            let name = fd_name(fd)?;
            // Through the magic link: the node is not a symlink (checked
            // above), so this is the inode the handle pins.
            nix::sys::stat::fchmodat(
                Some(self.proc_self_fd.as_raw_fd()),
                name.as_c_str(),
                nix::sys::stat::Mode::from_bits_retain(mode & 0o7777),
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )?;
        }
        if let Some(size) = attr.size {
            let size = i64::try_from(size).map_err(|_| Errno::EFBIG)?;
            let file = self.reopen(fd, OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
            nix::unistd::ftruncate(file, size)?;
        }
        if attr.atime.is_some() || attr.mtime.is_some() {
            let omit = (0, libc::UTIME_OMIT);
            sys::set_times(fd, attr.atime.unwrap_or(omit), attr.mtime.unwrap_or(omit))?;
        }
        Ok(Response::Stat(FileStat::from_host(&sys::fstat(fd)?)))
    }

    fn statfs(&mut self, node: Handle) -> Result<Response, Errno> {
        let node_fd = self.node(node)?;
        Ok(Response::StatFs(sys::fs_stat(node_fd.as_fd())?))
    }

    /// An fd xattr calls can use on the node: regular files and
    /// directories only (user xattrs exist on nothing else).
    fn xattr_fd(&mut self, node: Handle) -> Result<OwnedFd, Errno> {
        let node_fd = self.node(node)?;
        let fd = node_fd.as_fd();
        let flags = match file_type(&sys::fstat(fd)?) {
            libc::S_IFDIR => OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            libc::S_IFREG => OFlag::O_RDONLY | OFlag::O_NONBLOCK,
            _ => return Err(Errno::EPERM),
        };
        self.reopen(fd, flags | OFlag::O_CLOEXEC)
    }

    fn get_xattr(&mut self, node: Handle, name: &[u8]) -> Result<Response, Errno> {
        let name = check_xattr_name(name)?;
        let fd = self.xattr_fd(node)?;
        Ok(Response::Xattr(sys::fgetxattr(fd.as_fd(), &name)?))
    }

    fn list_xattr(&mut self, node: Handle) -> Result<Response, Errno> {
        let fd = match self.xattr_fd(node) {
            Ok(fd) => fd,
            // Nothing to list on symlinks, FIFOs, sockets.
            Err(Errno::EPERM) => return Ok(Response::XattrNames(Vec::new())),
            Err(e) => return Err(e),
        };
        let names = sys::flistxattr(fd.as_fd())?
            .into_iter()
            .filter(|n| n.starts_with(USER_XATTR_PREFIX))
            .collect();
        Ok(Response::XattrNames(names))
    }

    fn set_xattr(
        &mut self,
        node: Handle,
        name: &[u8],
        value: &[u8],
        flags: i32,
    ) -> Result<Response, Errno> {
        let name = check_xattr_name(name)?;
        if flags & !(libc::XATTR_CREATE | libc::XATTR_REPLACE) != 0 {
            return Err(Errno::EINVAL);
        }
        if value.len() > XATTR_SIZE_MAX {
            return Err(Errno::E2BIG);
        }
        let fd = self.xattr_fd(node)?;
        sys::fsetxattr(fd.as_fd(), &name, value, flags)?;
        Ok(Response::Ok)
    }

    fn remove_xattr(&mut self, node: Handle, name: &[u8]) -> Result<Response, Errno> {
        let name = check_xattr_name(name)?;
        let fd = self.xattr_fd(node)?;
        sys::fremovexattr(fd.as_fd(), &name)?;
        Ok(Response::Ok)
    }

    fn stat(&mut self, node: Handle) -> Result<Response, Errno> {
        let st = sys::fstat(self.node(node)?.as_fd())?;
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
        let name = fd_name(node)?;
        let fd = sys::openat(self.proc_self_fd.as_fd(), &name, flags)?;
        // Belt and braces: the magic link must have led to the same inode.
        let opened = sys::fstat(fd.as_fd())?;
        if opened.st_dev != st.st_dev || opened.st_ino != st.st_ino {
            error!("gofer: /proc/self/fd reopen reached a different inode");
            return Err(Errno::EIO);
        }
        Ok(fd)
    }

    fn open(&mut self, node: Handle, flags: i32) -> Result<OwnedFd, Errno> {
        let node_fd = self.node(node)?;
        let node = node_fd.as_fd();
        let flags = check_open_flags(flags, self.opts.read_only)?;
        // Only regular files: the sentry reads directories through
        // Getdents, and a directory fd in its hands could reach `..` above
        // the tree this gofer serves.
        match file_type(&sys::fstat(node)?) {
            libc::S_IFREG => {}
            libc::S_IFDIR => return Err(Errno::EISDIR),
            // As an O_NOFOLLOW open of it would answer.
            libc::S_IFLNK => return Err(Errno::ELOOP),
            // FIFOs, sockets and devices are the sentry's own business.
            _ => return Err(Errno::EPERM),
        }
        self.reopen(node, flags)
    }

    fn readlink(&mut self, node: Handle) -> Result<Response, Errno> {
        let node_fd = self.node(node)?;
        let fd = node_fd.as_fd();
        if file_type(&sys::fstat(fd)?) != libc::S_IFLNK {
            return Err(Errno::EINVAL);
        }
        let target: OsString = nix::fcntl::readlinkat(Some(fd.as_raw_fd()), c"")?;
        Ok(Response::Link(target.into_vec()))
    }

    fn getdents(&mut self, node: Handle, offset: u64) -> Result<Response, Errno> {
        let node_fd = self.node(node)?;
        let fd = node_fd.as_fd();
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
                    d_type: crate::protocol::dirent_type(entry.file_type()),
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

    /// Drops the handles a message asks to close, ignoring unknown ones.
    fn forget(&mut self, handles: &[Handle]) {
        for &h in handles {
            if h != ROOT_HANDLE {
                self.nodes.remove(h);
            }
        }
    }

    fn close(&mut self, node: Handle) -> Result<Response, Errno> {
        if node == ROOT_HANDLE {
            return Ok(Response::Ok);
        }
        if self.nodes.remove(node) {
            Ok(Response::Ok)
        } else {
            Err(Errno::EBADF)
        }
    }
}

fn request_name(req: &Request) -> &'static str {
    match req {
        Request::Version { .. } => "version",
        Request::Walk { .. } => "walk",
        Request::WalkOpen { .. } => "walk-open",
        Request::Stat { .. } => "stat",
        Request::NodeFd { .. } => "node-fd",
        Request::Open { .. } => "open",
        Request::ReadLink { .. } => "readlink",
        Request::Getdents { .. } => "getdents",
        Request::Close { .. } => "close",
        Request::Create { .. } => "create",
        Request::CreateTmpfile { .. } => "create-tmpfile",
        Request::Mkdir { .. } => "mkdir",
        Request::Mknod { .. } => "mknod",
        Request::Symlink { .. } => "symlink",
        Request::Link { .. } => "link",
        Request::Unlink { .. } => "unlink",
        Request::Rename { .. } => "rename",
        Request::SetStat { .. } => "setstat",
        Request::StatFs { .. } => "statfs",
        Request::GetXattr { .. } => "getxattr",
        Request::SetXattr { .. } => "setxattr",
        Request::ListXattr { .. } => "listxattr",
        Request::RemoveXattr { .. } => "removexattr",
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
