//! The rvisor gofer.
//!
//! The sentry has no view of the host filesystem. The gofer is a separate,
//! chrooted process that serves the container's root filesystem to it over a
//! unix `SOCK_SEQPACKET` socket: it walks one path component at a time, never
//! following symlinks (the sentry resolves symlinks and `..` itself), and
//! donates real host fds for opened files so the sentry does I/O on them
//! directly. See `README.md` for the protocol and the safety rules.

pub mod client;
mod nodes;
pub mod protocol;
pub mod server;
mod sys;

/// Calls on a node through its own fd (an empty path, `AT_EMPTY_PATH`),
/// which the sentry makes itself too on the fds the gofer donated
/// (its directfs): one implementation for both sides.
pub mod node_calls {
    pub use crate::sys::{chown_node, fs_stat, set_times};
}

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::MsFlags;
use nix::sys::statvfs::FsFlags;
use tracing::{error, info, warn};

pub use server::ServerError;

/// What the `rvisor gofer` subcommand passes to [`run`].
#[derive(Clone, Debug)]
pub struct GoferConfig {
    /// The container's root filesystem on the host.
    pub root: PathBuf,
    /// The gofer end of the socket to the sentry, inherited by number.
    pub sock_fd: RawFd,
    /// Remount the root read-only and refuse writable opens.
    pub read_only: bool,
}

/// Why the gofer could not confine itself or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum GoferError {
    #[error("socket fd {fd} is unusable: {source}")]
    BadSocket { fd: RawFd, source: Errno },
    #[error("root path {0:?} contains a NUL byte")]
    BadRoot(PathBuf),
    #[error("{what}: {source}")]
    Confine { what: &'static str, source: Errno },
    #[error(transparent)]
    Serve(#[from] ServerError),
}

fn confine_err(what: &'static str) -> impl FnOnce(Errno) -> GoferError {
    move |source| GoferError::Confine { what, source }
}

/// Opens `path` relative to the current root/cwd, returning an owned fd.
fn open_path(path: &[u8], flags: OFlag) -> Result<OwnedFd, Errno> {
    let path = CString::new(path).map_err(|_| Errno::EINVAL)?;
    let cwd = libc::AT_FDCWD;
    // SAFETY: AT_FDCWD is a valid "fd" for the *at calls for the whole life
    // of the process and is never closed.
    let cwd = unsafe { std::os::fd::BorrowedFd::borrow_raw(cwd) };
    sys::openat(cwd, &path, flags)
}

/// Mount flags of `path` that a read-only bind remount must repeat: the
/// kernel refuses (EPERM) to clear "locked" flags such as nosuid/nodev that
/// an outer namespace set.
fn locked_mount_flags(path: &Path) -> Result<MsFlags, Errno> {
    let flags = nix::sys::statvfs::statvfs(path)?.flags();
    let mut out = MsFlags::empty();
    for (st, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if flags.contains(st) {
            out |= ms;
        }
    }
    Ok(out)
}

/// Points stdin and stdout at /dev/null, and stderr too if it is closed, so
/// that no fd the gofer opens later can land on 0-2 and receive stray output.
/// Every fd the caller keeps must already be above stdio (see
/// [`sys::above_stdio`]).
fn redirect_stdio() -> Result<(), Errno> {
    let devnull =
        open_path(b"/dev/null", OFlag::O_RDWR | OFlag::O_CLOEXEC).and_then(sys::above_stdio)?;
    let mut targets = vec![libc::STDIN_FILENO, libc::STDOUT_FILENO];
    if !sys::is_open(libc::STDERR_FILENO) {
        targets.push(libc::STDERR_FILENO);
    }
    for target in targets {
        // dup2 clears FD_CLOEXEC on the target, which is what stdio wants.
        nix::unistd::dup2(devnull.as_raw_fd(), target)?;
    }
    Ok(())
}

/// Lets the gofer hold as many fds as the host allows: it keeps an
/// `O_PATH` fd open for as many of the nodes the sentry holds as a quarter
/// of this limit allows (see `nodes`), and reopens the others on use.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    if nr_open.is_some_and(|n| setrlimit(Resource::RLIMIT_NOFILE, n, n).is_ok()) {
        return;
    }
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// Confines the process to the root and serves the sentry on `sock_fd`.
///
/// Must run in a process the CLI started in a fresh mount namespace (after
/// `unshare(CLONE_NEWNS)`), as root. Steps, in order:
/// 1. make all mounts `MS_PRIVATE|MS_REC`, so nothing below propagates back
///    to the host;
/// 2. open `/proc/self/fd` (`O_PATH|O_DIRECTORY`) *before* the chroot: the
///    server reopens `O_PATH` fds through it;
/// 3. point stdin and stdout at `/dev/null` (stderr is kept for logs, or
///    also pointed at `/dev/null` if it is closed);
/// 4. when `root != "/"`, bind-mount the root onto itself and, if
///    `read_only`, remount that bind read-only, so even a reopen through
///    `/proc/<pid>/fd` of a donated fd cannot write;
/// 5. chdir into the root, make it the namespace's root with `pivot_root`
///    and detach the old one (so `..` from any fd the gofer donates stops
///    there), chroot, and open `"."` `O_PATH` as the root handle;
/// 6. close every fd except the socket, the two fds above and stderr.
///
/// Ownership of `sock_fd` passes to this function, and the process must not
/// hold any other `OwnedFd` it means to use afterwards: step 6 closes them.
pub fn run(config: GoferConfig) -> Result<(), GoferError> {
    // Before the chroot, while /proc/sys is reachable.
    raise_fd_limit();
    // Moved above stdio first: the socket may arrive as fd 0, 1 or 2, which
    // redirect_stdio below overwrites.
    let sock = sys::adopt_inherited_fd(config.sock_fd)
        .and_then(sys::above_stdio)
        .map_err(|source| GoferError::BadSocket {
            fd: config.sock_fd,
            source,
        })?;
    if config.root.as_os_str().as_bytes().contains(&0) {
        return Err(GoferError::BadRoot(config.root));
    }

    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(confine_err("making mounts private"))?;

    let proc_self_fd = open_path(
        b"/proc/self/fd",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
    )
    .and_then(sys::above_stdio)
    .map_err(confine_err("opening /proc/self/fd"))?;

    redirect_stdio().map_err(confine_err("pointing stdio at /dev/null"))?;

    // A file (a bind-mounted /etc/hosts, say) is served from its parent
    // directory, but only the file itself is reachable: walks from a
    // non-directory fail with ENOTDIR.
    let file_root = std::fs::metadata(&config.root)
        .map(|m| !m.is_dir())
        .unwrap_or(false);
    let (root_dir, file_name) = if file_root {
        let parent = config.root.parent().unwrap_or(Path::new("/")).to_path_buf();
        let name = config
            .root
            .file_name()
            .map(|n| n.as_bytes().to_vec())
            .ok_or_else(|| GoferError::BadRoot(config.root.clone()))?;
        (parent, Some(name))
    } else {
        (config.root.clone(), None)
    };
    let root = root_dir.as_path();
    if root != Path::new("/") {
        nix::mount::mount(
            Some(root),
            root,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(confine_err("bind-mounting the root onto itself"))?;
        // nodev: no fd of this tree, the gofer's or the sentry's (which
        // opens files by name itself, see the sentry's fsimpl/directfs.rs),
        // can ever open a host device, even one the host swaps in under
        // a name the sandbox knew as a regular file.
        let keep =
            locked_mount_flags(root).map_err(confine_err("reading the root's mount flags"))?;
        let read_only = if config.read_only {
            MsFlags::MS_RDONLY
        } else {
            MsFlags::empty()
        };
        nix::mount::mount(
            None::<&str>,
            root,
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_NODEV | read_only | keep,
            None::<&str>,
        )
        .map_err(confine_err("remounting the root nodev"))?;
        // The submounts an rbind brought along, too.
        if let Err(e) = sys::set_nodev_recursive(root) {
            warn!(error = %e, "gofer: submounts of the served tree keep device nodes");
        }
    }

    nix::unistd::chdir(root).map_err(confine_err("chdir into the root"))?;
    if root != Path::new("/") {
        // pivot_root, not just chroot: the sentry walks donated directory
        // fds itself (directfs), and `..` from a directory fd stops only
        // at the root of its mount namespace, never at a chroot. With the
        // old root detached, this namespace holds the served tree alone.
        nix::unistd::pivot_root(".", ".").map_err(confine_err("pivot_root into the root"))?;
        nix::mount::umount2(".", nix::mount::MntFlags::MNT_DETACH)
            .map_err(confine_err("detaching the old root"))?;
    }
    nix::unistd::chroot(".").map_err(confine_err("chroot"))?;
    nix::unistd::chdir("/").map_err(confine_err("chdir to the new root"))?;
    let root_fd = match &file_name {
        None => open_path(b".", OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC),
        Some(name) => open_path(name, OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC),
    }
    .map_err(confine_err("opening the root"))?;

    sys::close_all_fds_except(&[
        libc::STDIN_FILENO,
        libc::STDOUT_FILENO,
        libc::STDERR_FILENO,
        sock.as_raw_fd(),
        root_fd.as_raw_fd(),
        proc_self_fd.as_raw_fd(),
    ])
    .map_err(confine_err("closing inherited fds"))?;

    // The sentry applies the container's umask itself; the modes it sends
    // are the final ones.
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    info!(root = %config.root.display(), read_only = config.read_only, sock = sock.as_fd().as_raw_fd(), "gofer: serving");
    server::serve(
        sock,
        root_fd,
        proc_self_fd,
        server::ServeOptions {
            read_only: config.read_only,
        },
    )
    .inspect_err(|e| error!(error = %e, "gofer: serving failed"))
    .map_err(GoferError::from)
}
