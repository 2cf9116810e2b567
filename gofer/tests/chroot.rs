//! `gofer::run` end to end: the test re-executes its own binary as the gofer
//! in a fresh mount namespace (unshare(CLONE_NEWNS) between fork and exec,
//! where the child is still single-threaded), and checks from this side that
//! nothing outside the root can be reached.
//!
//! Re-exec instead of a bare fork: after fork in a multi-threaded test
//! harness, allocation could deadlock, and unshare(CLONE_NEWNS) is refused
//! in a process whose threads share their fs_struct.

mod common;

use std::collections::HashSet;
use std::io::Read;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{symlink, MetadataExt};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use common::TempDir;
use gofer::client::{socketpair, GoferClient};
use gofer::protocol::ROOT_HANDLE;
use gofer::GoferConfig;
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, FdFlag};
use nix::sched::CloneFlags;
use nix::sys::statvfs::FsFlags;

const CHILD_ROOT_ENV: &str = "RVISOR_GOFER_TEST_CHILD_ROOT";
const CHILD_SOCK_ENV: &str = "RVISOR_GOFER_TEST_CHILD_SOCK";

/// The gofer side: a no-op in a normal test run; the real work when the
/// parent test re-executes this binary with the environment set.
#[test]
fn gofer_child_entry() {
    let Ok(root) = std::env::var(CHILD_ROOT_ENV) else {
        return;
    };
    let sock_fd: RawFd = std::env::var(CHILD_SOCK_ENV).unwrap().parse().unwrap();
    let res = gofer::run(GoferConfig {
        root: root.into(),
        sock_fd,
        read_only: true,
    });
    let code = match res {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("gofer child: {e}");
            1
        }
    };
    std::process::exit(code);
}

/// Kills and reaps the gofer if the test fails half-way.
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn run_confines_the_gofer_to_its_root() {
    confinement_scenario(false);
}

/// The CLI might hand the socket over as a stdio number; redirecting stdio
/// to /dev/null must not clobber it.
#[test]
fn run_works_with_the_socket_on_stdin() {
    confinement_scenario(true);
}

fn confinement_scenario(sock_on_stdin: bool) {
    let base = TempDir::new("chroot");
    let root = base.path().join("root");
    std::fs::create_dir(&root).unwrap();
    // Outside the root: must stay unreachable.
    std::fs::write(base.path().join("secret.txt"), b"secret").unwrap();
    // Inside the root.
    std::fs::write(root.join("hello.txt"), b"inside").unwrap();
    std::fs::create_dir(root.join("sub")).unwrap();
    symlink("../secret.txt", root.join("escape")).unwrap();
    symlink("/etc/passwd", root.join("abs")).unwrap();
    symlink("../..", root.join("updir")).unwrap();
    symlink("/", root.join("slash")).unwrap();

    let (sentry, gofer_end) = socketpair().unwrap();
    let gofer_raw = gofer_end.as_raw_fd();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "gofer_child_entry",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ROOT_ENV, &root)
    .env(
        CHILD_SOCK_ENV,
        if sock_on_stdin {
            "0".to_string()
        } else {
            gofer_raw.to_string()
        },
    )
    .stdin(Stdio::null())
    .stdout(Stdio::null());
    // SAFETY: the closure runs between fork and exec and only makes raw
    // syscalls (unshare, fcntl, dup2), which are async-signal-safe; it
    // allocates nothing and touches no locks. It runs after Command has set
    // up stdio, so the dup2 onto fd 0 sticks.
    unsafe {
        cmd.pre_exec(move || {
            nix::sched::unshare(CloneFlags::CLONE_NEWNS)?;
            if sock_on_stdin {
                nix::unistd::dup2(gofer_raw, 0)?;
            } else {
                nix::fcntl::fcntl(gofer_raw, FcntlArg::F_SETFD(FdFlag::empty()))?;
            }
            Ok(())
        });
    }
    let mut guard = ChildGuard(Some(cmd.spawn().unwrap()));
    drop(gofer_end);
    let pid = guard.0.as_ref().unwrap().id();

    let c = GoferClient::connect(sentry).unwrap();

    // Every inherited fd besides stdio, the socket, the root and
    // /proc/self/fd was closed (checked before any walk adds handle fds).
    let fds: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| std::fs::read_link(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(fds.len(), 6, "gofer holds {fds:?}");

    // The root handle is the temp root, not the host's "/".
    let meta = std::fs::metadata(&root).unwrap();
    let st = c.root_stat().unwrap();
    assert_eq!((st.dev, st.ino), (meta.dev(), meta.ino()));
    let host_root = std::fs::metadata("/").unwrap();
    assert_ne!((st.dev, st.ino), (host_root.dev(), host_root.ino()));

    // "..", absolute names and multi-component names never leave the root.
    let (sub, _) = c.walk(ROOT_HANDLE, b"sub").unwrap();
    for dir in [ROOT_HANDLE, sub] {
        for name in [
            &b".."[..],
            b"../secret.txt",
            b"/etc",
            b"/etc/passwd",
            b"/",
            b".",
        ] {
            assert_eq!(c.walk(dir, name), Err(Errno::EINVAL), "{name:?}");
        }
    }
    // The host has /etc; the root has none. secret.txt lives one level up.
    assert_eq!(c.walk(ROOT_HANDLE, b"etc"), Err(Errno::ENOENT));
    assert_eq!(c.walk(ROOT_HANDLE, b"secret.txt"), Err(Errno::ENOENT));

    // Symlinks are handed back raw and are dead ends for walk and open.
    for (name, target) in [
        ("escape", &b"../secret.txt"[..]),
        ("abs", b"/etc/passwd"),
        ("updir", b"../.."),
        ("slash", b"/"),
    ] {
        let (link, st) = c.walk(ROOT_HANDLE, name.as_bytes()).unwrap();
        assert!(st.is_symlink(), "{name}");
        assert_eq!(c.readlink(link).unwrap(), target, "{name}");
        assert_eq!(c.walk(link, b"etc"), Err(Errno::ENOTDIR), "{name}");
        assert_eq!(c.walk(link, b"secret.txt"), Err(Errno::ENOTDIR), "{name}");
        assert_eq!(
            c.open(link, libc::O_RDONLY).map(drop),
            Err(Errno::ELOOP),
            "{name}"
        );
        assert_eq!(c.getdents(link).map(drop), Err(Errno::ENOTDIR), "{name}");
        c.close(link);
    }

    // The root lists exactly what we put there.
    let names: HashSet<Vec<u8>> = c
        .getdents(ROOT_HANDLE)
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    let expected: HashSet<Vec<u8>> = ["hello.txt", "sub", "escape", "abs", "updir", "slash"]
        .iter()
        .map(|n| n.as_bytes().to_vec())
        .collect();
    assert_eq!(names, expected);

    // Files inside are served.
    let (hello, _) = c.walk(ROOT_HANDLE, b"hello.txt").unwrap();
    let mut s = String::new();
    std::fs::File::from(c.open(hello, libc::O_RDONLY).unwrap())
        .read_to_string(&mut s)
        .unwrap();
    assert_eq!(s, "inside");
    assert_eq!(c.open(hello, libc::O_RDWR).map(drop), Err(Errno::EROFS));

    // Directories are never opened for reading through Open...
    assert_eq!(
        c.open(ROOT_HANDLE, libc::O_RDONLY | libc::O_DIRECTORY)
            .map(drop),
        Err(Errno::EISDIR)
    );
    // ... but a walk donates their O_PATH fds (directfs), and `..` from
    // one never leaves the root, however often it is taken: the gofer
    // pivot_rooted into the root, so the root is the top of the mount
    // namespace those fds live in. (With only a chroot, `..` from an fd
    // reaches the whole host.)
    let sub_fd = c.walk_open(ROOT_HANDLE, b"sub").unwrap().path_fd.unwrap();
    let root_id = (meta.dev(), meta.ino());
    let at = |dir: RawFd, name: &str| -> nix::Result<(u64, u64)> {
        let st =
            nix::sys::stat::fstatat(Some(dir), name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)?;
        Ok((st.st_dev, st.st_ino))
    };
    let sub = sub_fd.as_raw_fd();
    assert_eq!(at(sub, ".."), Ok(root_id));
    for up in ["../..", "../../..", "../../../../../../.."] {
        assert_eq!(at(sub, up), Ok(root_id), "{up}");
    }
    assert_eq!(at(sub, "../../secret.txt"), Err(Errno::ENOENT));
    assert_eq!(at(sub, "../../../etc/passwd"), Err(Errno::ENOENT));
    assert_eq!(at(sub, "../hello.txt").map(|_| ()), Ok(()));
    // The root is a read-only bind mount, so even a donated fd reopened
    // through /proc could not write.
    let ffd = c.open(hello, libc::O_RDONLY).unwrap();
    let vfs = nix::sys::statvfs::fstatvfs(&ffd).unwrap();
    assert!(
        vfs.flags().contains(FsFlags::ST_RDONLY),
        "root mount is not read-only"
    );
    let reopen = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{}", ffd.as_raw_fd()));
    assert_eq!(reopen.unwrap_err().raw_os_error(), Some(libc::EROFS));
    // ... while the host's view of the same directory stays writable: the
    // remount happened only in the gofer's mount namespace.
    std::fs::write(base.path().join("still-writable"), b"").unwrap();
    std::fs::write(root.join("host-side"), b"").unwrap();
    std::fs::remove_file(root.join("host-side")).unwrap();

    // Hanging up ends the gofer cleanly.
    drop(c);
    let status = guard.0.take().unwrap().wait().unwrap();
    assert!(status.success(), "gofer exited with {status}");
}
