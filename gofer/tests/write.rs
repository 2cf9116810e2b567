//! The gofer's write requests over a real socketpair, checked from the
//! host side: what each request changes on disk, that a read-only server
//! changes nothing, and that hostile names, symlinks swapped in and
//! namespaces the host kernel gives meaning to are refused. Runs as root.

mod common;

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use common::{o_path_dir, proc_self_fd, TempDir};
use gofer::client::{socketpair, GoferClient};
use gofer::protocol::{Handle, Owner, SetStat, ROOT_HANDLE};
use gofer::server::{serve, ServeOptions, ServerError};
use nix::errno::Errno;

struct Served {
    tree: TempDir,
    client: Option<GoferClient>,
    server: Option<JoinHandle<Result<(), ServerError>>>,
}

impl Served {
    fn start(read_only: bool) -> Served {
        let tree = TempDir::new("write");
        std::fs::create_dir(tree.path().join("dir")).unwrap();
        std::fs::write(tree.path().join("file"), b"original").unwrap();
        // A directory outside the served root, which nothing may touch.
        let outside = tree.path().with_extension("outside");
        let _ = std::fs::remove_dir_all(&outside);
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret"), b"host secret").unwrap();
        let root_dir = tree.path().join("root");
        std::fs::create_dir(&root_dir).unwrap();
        for name in ["dir", "file"] {
            std::fs::rename(tree.path().join(name), root_dir.join(name)).unwrap();
        }
        symlink(&outside, root_dir.join("out-link")).unwrap();
        symlink(outside.join("secret"), root_dir.join("secret-link")).unwrap();
        let (sentry, gofer_end) = socketpair().unwrap();
        let root = o_path_dir(&root_dir);
        let proc = proc_self_fd();
        let server =
            std::thread::spawn(move || serve(gofer_end, root, proc, ServeOptions { read_only }));
        Served {
            tree,
            client: Some(GoferClient::connect(sentry).unwrap()),
            server: Some(server),
        }
    }

    fn c(&self) -> &GoferClient {
        self.client.as_ref().unwrap()
    }

    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.tree.path().join("root").join(rel)
    }

    fn outside(&self) -> std::path::PathBuf {
        self.tree.path().with_extension("outside")
    }

    fn walk(&self, name: &str) -> Result<Handle, Errno> {
        self.c().walk(ROOT_HANDLE, name.as_bytes()).map(|(h, _)| h)
    }

    /// The directory outside the root is exactly as the test made it.
    fn assert_outside_untouched(&self) {
        let mut names: Vec<_> = std::fs::read_dir(self.outside())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, vec![std::ffi::OsString::from("secret")]);
        assert_eq!(
            std::fs::read(self.outside().join("secret")).unwrap(),
            b"host secret"
        );
        let md = std::fs::metadata(self.outside().join("secret")).unwrap();
        assert_eq!(md.uid(), 0);
        assert_eq!(md.nlink(), 1);
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        drop(self.client.take());
        if let Some(s) = self.server.take() {
            let r = s.join();
            if !std::thread::panicking() {
                r.unwrap().unwrap();
            }
        }
        let _ = std::fs::remove_dir_all(self.outside());
    }
}

const USER: Owner = Owner {
    uid: 1000,
    gid: 1001,
};

#[test]
fn create_opens_an_exclusive_new_file_with_owner_and_mode() {
    let s = Served::start(false);
    let (h, stat, fd) = s
        .c()
        .create(ROOT_HANDLE, b"new", libc::O_RDWR, 0o640, USER)
        .unwrap();
    let mut f = std::fs::File::from(fd);
    f.write_all(b"written by the sandbox").unwrap();
    let md = std::fs::metadata(s.path("new")).unwrap();
    assert_eq!(
        (md.uid(), md.gid(), md.mode() & 0o7777),
        (1000, 1001, 0o640)
    );
    assert_eq!(stat.ino, md.ino());
    assert_eq!(
        std::fs::read(s.path("new")).unwrap(),
        b"written by the sandbox"
    );
    assert_eq!(s.c().stat(h).unwrap().size, 22);
    // Exclusive: an existing name, a symlink (even one pointing outside),
    // or a dangling one is never opened or followed.
    for name in ["new", "file", "secret-link", "out-link"] {
        assert_eq!(
            s.c()
                .create(ROOT_HANDLE, name.as_bytes(), libc::O_RDWR, 0o600, USER)
                .err(),
            Some(Errno::EEXIST),
            "{name}"
        );
    }
    // Set-ID bits survive the chown to the new owner, as with Linux's own
    // create by that owner (the host clears them on chown).
    drop(
        s.c()
            .create(ROOT_HANDLE, b"setid", libc::O_RDWR, 0o6755, USER)
            .unwrap(),
    );
    s.c()
        .mknod(ROOT_HANDLE, b"setid-node", libc::S_IFREG | 0o4750, USER)
        .unwrap();
    for name in ["setid", "setid-node"] {
        let md = std::fs::metadata(s.path(name)).unwrap();
        let want = if name == "setid" { 0o6755 } else { 0o4750 };
        assert_eq!((md.uid(), md.mode() & 0o7777), (1000, want), "{name}");
    }
    symlink(s.outside().join("planted"), s.path("dangling")).unwrap();
    assert_eq!(
        s.c()
            .create(ROOT_HANDLE, b"dangling", libc::O_WRONLY, 0o600, USER)
            .err(),
        Some(Errno::EEXIST)
    );
    s.assert_outside_untouched();
}

#[test]
fn directory_operations_change_the_host_tree() {
    let s = Served::start(false);
    let dir = s.walk("dir").unwrap();
    let (sub, st) = s.c().mkdir(dir, b"sub", 0o2750, USER).unwrap();
    assert!(st.is_dir());
    let md = std::fs::metadata(s.path("dir/sub")).unwrap();
    // As mkdir(2): S_ISGID comes only from a set-group-ID parent.
    assert_eq!(
        (md.uid(), md.gid(), md.mode() & 0o7777),
        (1000, 1001, 0o750)
    );
    let (_, st) = s.c().symlink(sub, b"l", b"../../file", USER).unwrap();
    assert!(st.is_symlink());
    assert_eq!(
        std::fs::read_link(s.path("dir/sub/l")).unwrap(),
        Path::new("../../file")
    );
    assert_eq!(
        std::fs::symlink_metadata(s.path("dir/sub/l"))
            .unwrap()
            .uid(),
        1000
    );
    let file = s.walk("file").unwrap();
    s.c().link(sub, b"hard", file).unwrap();
    assert_eq!(std::fs::metadata(s.path("file")).unwrap().nlink(), 2);
    let (_, st) = s
        .c()
        .mknod(sub, b"fifo", libc::S_IFIFO | 0o600, USER)
        .unwrap();
    assert_eq!(st.file_type(), libc::S_IFIFO);
    s.c()
        .rename(sub, b"hard", ROOT_HANDLE, b"moved", 0)
        .unwrap();
    assert!(s.path("moved").exists());
    assert_eq!(
        s.c()
            .rename(
                ROOT_HANDLE,
                b"moved",
                ROOT_HANDLE,
                b"file",
                libc::RENAME_NOREPLACE
            )
            .err(),
        Some(Errno::EEXIST)
    );
    std::fs::write(s.path("other"), b"other").unwrap();
    s.c()
        .rename(
            ROOT_HANDLE,
            b"other",
            ROOT_HANDLE,
            b"file",
            libc::RENAME_EXCHANGE,
        )
        .unwrap();
    assert_eq!(std::fs::read(s.path("file")).unwrap(), b"other");
    assert_eq!(std::fs::read(s.path("other")).unwrap(), b"original");
    assert_eq!(
        s.c().unlink(ROOT_HANDLE, b"dir", false).err(),
        Some(Errno::EISDIR)
    );
    assert_eq!(
        s.c().unlink(dir, b"sub", true).err(),
        Some(Errno::ENOTEMPTY)
    );
    for name in [&b"l"[..], b"fifo"] {
        s.c().unlink(sub, name, false).unwrap();
    }
    s.c().unlink(dir, b"sub", true).unwrap();
    assert!(!s.path("dir/sub").exists());
    s.c().unlink(ROOT_HANDLE, b"moved", false).unwrap();
    s.assert_outside_untouched();
}

#[test]
fn set_stat_changes_mode_owner_size_and_times() {
    let s = Served::start(false);
    let file = s.walk("file").unwrap();
    let st = s
        .c()
        .set_stat(
            file,
            SetStat {
                uid: Some(7),
                gid: Some(8),
                mode: Some(0o4711),
                size: Some(3),
                atime: Some((1_000_000_000, 5)),
                mtime: Some((1_000_000_001, 6)),
            },
        )
        .unwrap();
    let md = std::fs::metadata(s.path("file")).unwrap();
    assert_eq!(
        (md.uid(), md.gid(), md.mode() & 0o7777, md.len()),
        (7, 8, 0o4711, 3)
    );
    assert_eq!((md.atime(), md.atime_nsec()), (1_000_000_000, 5));
    assert_eq!((md.mtime(), md.mtime_nsec()), (1_000_000_001, 6));
    assert_eq!(st.mode & 0o7777, 0o4711);
    assert_eq!(st.size, 3);
    // A symlink's owner changes, never its target's; it has no mode.
    let link = s.walk("secret-link").unwrap();
    s.c()
        .set_stat(
            link,
            SetStat {
                uid: Some(1234),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        std::fs::symlink_metadata(s.path("secret-link"))
            .unwrap()
            .uid(),
        1234
    );
    for attr in [
        SetStat {
            mode: Some(0o777),
            ..Default::default()
        },
        SetStat {
            size: Some(0),
            ..Default::default()
        },
    ] {
        assert!(s.c().set_stat(link, attr).is_err());
    }
    let dir = s.walk("dir").unwrap();
    assert_eq!(
        s.c()
            .set_stat(
                dir,
                SetStat {
                    size: Some(0),
                    ..Default::default()
                }
            )
            .err(),
        Some(Errno::EISDIR)
    );
    s.assert_outside_untouched();
}

#[test]
fn hostile_names_and_device_nodes_are_refused() {
    let s = Served::start(false);
    let bad: [&[u8]; 6] = [b"", b".", b"..", b"a/b", b"../escape", b"nul\0byte"];
    for name in bad {
        assert_eq!(
            s.c()
                .create(ROOT_HANDLE, name, libc::O_RDWR, 0o600, USER)
                .err(),
            Some(Errno::EINVAL),
            "create {name:?}"
        );
        assert_eq!(
            s.c().mkdir(ROOT_HANDLE, name, 0o700, USER).err(),
            Some(Errno::EINVAL)
        );
        assert_eq!(
            s.c().unlink(ROOT_HANDLE, name, false).err(),
            Some(Errno::EINVAL)
        );
        assert_eq!(
            s.c()
                .rename(ROOT_HANDLE, b"file", ROOT_HANDLE, name, 0)
                .err(),
            Some(Errno::EINVAL)
        );
    }
    for kind in [libc::S_IFCHR, libc::S_IFBLK] {
        assert_eq!(
            s.c().mknod(ROOT_HANDLE, b"dev", kind | 0o666, USER).err(),
            Some(Errno::EPERM)
        );
    }
    // RENAME_WHITEOUT would make a device node.
    assert_eq!(
        s.c()
            .rename(
                ROOT_HANDLE,
                b"file",
                ROOT_HANDLE,
                b"x",
                libc::RENAME_WHITEOUT
            )
            .err(),
        Some(Errno::EINVAL)
    );
    // A symlink to a directory outside is a node, never a directory to
    // create in, walk through or remove from.
    let link = s.walk("out-link").unwrap();
    assert_eq!(
        s.c()
            .create(link, b"planted", libc::O_RDWR, 0o600, USER)
            .err(),
        Some(Errno::ENOTDIR)
    );
    assert_eq!(
        s.c().mkdir(link, b"planted", 0o700, USER).err(),
        Some(Errno::ENOTDIR)
    );
    assert_eq!(
        s.c().unlink(link, b"secret", false).err(),
        Some(Errno::ENOTDIR)
    );
    assert_eq!(
        s.c()
            .rename(link, b"secret", ROOT_HANDLE, b"stolen", 0)
            .err(),
        Some(Errno::ENOTDIR)
    );
    // Setting a symlink's size or xattrs would follow it.
    let secret = s.walk("secret-link").unwrap();
    assert!(s.c().set_xattr(secret, b"user.x", b"v", 0).is_err());
    assert!(s
        .c()
        .set_stat(
            secret,
            SetStat {
                size: Some(0),
                ..Default::default()
            }
        )
        .is_err());
    s.assert_outside_untouched();
}

#[test]
fn only_user_xattrs_are_served() {
    let s = Served::start(false);
    let file = s.walk("file").unwrap();
    s.c()
        .set_xattr(file, b"user.origin", b"sandbox", libc::XATTR_CREATE)
        .unwrap();
    assert_eq!(
        s.c()
            .set_xattr(file, b"user.origin", b"again", libc::XATTR_CREATE)
            .err(),
        Some(Errno::EEXIST)
    );
    assert_eq!(s.c().get_xattr(file, b"user.origin").unwrap(), b"sandbox");
    assert_eq!(
        s.c().list_xattr(file).unwrap(),
        vec![b"user.origin".to_vec()]
    );
    // file capabilities and LSM labels mean something to the host kernel.
    for name in [
        &b"security.capability"[..],
        b"trusted.overlay.opaque",
        b"system.posix_acl_access",
    ] {
        assert_eq!(
            s.c().set_xattr(file, name, b"\x01", 0).err(),
            Some(Errno::EOPNOTSUPP),
            "{name:?}"
        );
    }
    s.c().remove_xattr(file, b"user.origin").unwrap();
    assert_eq!(
        s.c().get_xattr(file, b"user.origin").err(),
        Some(Errno::ENODATA)
    );
}

#[test]
fn a_read_only_server_changes_nothing() {
    let s = Served::start(true);
    let file = s.walk("file").unwrap();
    let dir = s.walk("dir").unwrap();
    let errs = [
        s.c()
            .create(ROOT_HANDLE, b"n", libc::O_RDWR, 0o600, USER)
            .map(drop)
            .err(),
        s.c().mkdir(dir, b"n", 0o700, USER).map(drop).err(),
        s.c()
            .mknod(dir, b"n", libc::S_IFIFO | 0o600, USER)
            .map(drop)
            .err(),
        s.c().symlink(dir, b"n", b"x", USER).map(drop).err(),
        s.c().link(dir, b"n", file).map(drop).err(),
        s.c().unlink(ROOT_HANDLE, b"file", false).err(),
        s.c().rename(ROOT_HANDLE, b"file", dir, b"n", 0).err(),
        s.c()
            .set_stat(
                file,
                SetStat {
                    mode: Some(0o777),
                    ..Default::default()
                },
            )
            .map(drop)
            .err(),
        s.c().set_xattr(file, b"user.x", b"v", 0).err(),
        s.c().remove_xattr(file, b"user.x").err(),
    ];
    for (i, e) in errs.into_iter().enumerate() {
        assert_eq!(e, Some(Errno::EROFS), "request {i}");
    }
    assert_eq!(std::fs::read(s.path("file")).unwrap(), b"original");
    assert_eq!(std::fs::read_dir(s.path("dir")).unwrap().count(), 0);
    // Reading still works, statfs included.
    assert!(s.c().statfs(ROOT_HANDLE).unwrap().blocks > 0);
}

/// A host process swaps a directory for a symlink to the outside, over and
/// over, while the sandbox creates files in it through a handle it walked
/// to before: every file lands inside the root (or the request fails),
/// never outside.
#[test]
fn a_directory_swapped_for_a_symlink_mid_flight_leads_nowhere() {
    let s = Served::start(false);
    std::fs::create_dir(s.path("race")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        let race = s.path("race");
        let parked = s.path("race-parked");
        let outside = s.outside();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if std::fs::rename(&race, &parked).is_ok() {
                    let _ = symlink(&outside, &race);
                    let _ = std::fs::remove_file(&race);
                    let _ = std::fs::rename(&parked, &race);
                }
            }
        })
    };
    // The directory is in place for only a short part of each swap, so on a
    // loaded machine 400 tries can all miss it: go on (for a bounded time)
    // until at least one create has landed, so the test always covers both
    // the race and the successful path.
    let mut made = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    for i in 0.. {
        if (i >= 400 && made > 0) || std::time::Instant::now() > deadline {
            break;
        }
        // A fresh walk each time: sometimes it meets the symlink.
        let Ok(h) = s.walk("race") else { continue };
        let name = format!("f{i}");
        match s.c().create(h, name.as_bytes(), libc::O_RDWR, 0o600, USER) {
            Ok((_, _, fd)) => {
                drop(fd);
                made += 1;
            }
            Err(Errno::ENOTDIR) => {}
            Err(e) => panic!("create {name}: {e}"),
        }
        let _ = s.c().mkdir(h, format!("d{i}").as_bytes(), 0o700, USER);
        let _ = s.c().symlink(h, format!("l{i}").as_bytes(), b"/", USER);
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    assert!(made > 0, "no create ever succeeded");
    s.assert_outside_untouched();
}

#[test]
fn donated_fds_write_and_append_on_the_host_file() {
    let s = Served::start(false);
    let file = s.walk("file").unwrap();
    let fd: OwnedFd = s.c().open(file, libc::O_WRONLY | libc::O_APPEND).unwrap();
    std::fs::File::from(fd).write_all(b"+more").unwrap();
    let fd = s.c().open(file, libc::O_RDONLY).unwrap();
    let mut text = String::new();
    std::fs::File::from(fd).read_to_string(&mut text).unwrap();
    assert_eq!(text, "original+more");
    let fd = s.c().open(file, libc::O_RDWR | libc::O_TRUNC).unwrap();
    drop(fd);
    assert_eq!(std::fs::metadata(s.path("file")).unwrap().len(), 0);
    assert_eq!(
        std::fs::metadata(s.path("file"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o644
    );
}

/// `WalkOpen` brings every node's own `O_PATH` fd (the inode the handle
/// names, which can be neither read nor written) and, for a regular file
/// only, a read-only fd of it. (That `..` from a donated directory fd
/// stays inside the root is `gofer::run`'s part: tests/chroot.rs.)
#[test]
fn walk_open_donates_path_fds_and_read_only_fds_for_regular_files() {
    use std::os::fd::AsRawFd;
    let s = Served::start(false);
    let walked = s.c().walk_open(ROOT_HANDLE, b"file").unwrap();
    let (h, stat) = (walked.handle, walked.stat);
    let fd = walked.read_fd.expect("a regular file comes with a read fd");
    let path_fd = walked.path_fd.expect("every node comes with an O_PATH fd");
    for f in [&fd, &path_fd] {
        let st = nix::sys::stat::fstat(f.as_raw_fd()).unwrap();
        assert_eq!(
            (st.st_ino, stat.ino),
            (stat.ino, s.c().stat(h).unwrap().ino)
        );
    }
    let flags = nix::fcntl::fcntl(path_fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL).unwrap();
    assert_ne!(flags & libc::O_PATH, 0, "the node fd must be O_PATH");
    let mut path_file = std::fs::File::from(path_fd);
    assert!(path_file.read(&mut [0u8; 4]).is_err());
    assert!(path_file.write_all(b"x").is_err());
    let mut text = String::new();
    let mut f = std::fs::File::from(fd);
    f.read_to_string(&mut text).unwrap();
    assert_eq!(text, "original");
    assert!(f.write_all(b"x").is_err(), "the walk fd must be read-only");
    nix::unistd::mkfifo(
        &s.path("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    for name in ["dir", "out-link", "secret-link", "fifo"] {
        let walked = s.c().walk_open(ROOT_HANDLE, name.as_bytes()).unwrap();
        assert!(walked.read_fd.is_none(), "{name} came with a read fd");
        let path_fd = walked.path_fd.expect("an O_PATH fd");
        // The node itself, never what a symlink points to.
        let st = nix::sys::stat::fstat(path_fd.as_raw_fd()).unwrap();
        let host = std::fs::symlink_metadata(s.path(name)).unwrap();
        assert_eq!(st.st_ino, host.ino(), "{name}");
    }
    assert_eq!(
        s.c().walk_open(ROOT_HANDLE, b"..").err(),
        Some(Errno::EINVAL)
    );
    // Open donates regular files only.
    let dir = s.walk("dir").unwrap();
    assert_eq!(s.c().open(dir, libc::O_RDONLY).err(), Some(Errno::EISDIR));
    let fifo = s.walk("fifo").unwrap();
    assert_eq!(
        s.c().open(fifo, libc::O_RDONLY | libc::O_NONBLOCK).err(),
        Some(Errno::EPERM)
    );
}

/// `CreateTmpfile`: a nameless file in the directory (invisible on the
/// host until linked), owned as asked; `Link` names it; with O_EXCL it can
/// never be named; a read-only server refuses it.
#[test]
fn tmpfiles_are_nameless_until_linked() {
    let s = Served::start(false);
    let dir = s.walk("dir").unwrap();
    let (h, stat, fd) = s
        .c()
        .create_tmpfile(dir, libc::O_RDWR, 0o640, USER)
        .unwrap();
    assert_eq!((stat.nlink, stat.uid, stat.mode & 0o7777), (0, 1000, 0o640));
    std::fs::File::from(fd).write_all(b"nameless").unwrap();
    assert_eq!(std::fs::read_dir(s.path("dir")).unwrap().count(), 0);
    s.c().link(dir, b"named", h).unwrap();
    assert_eq!(std::fs::read(s.path("dir/named")).unwrap(), b"nameless");
    let (h, _, _) = s
        .c()
        .create_tmpfile(dir, libc::O_WRONLY | libc::O_EXCL, 0o600, USER)
        .unwrap();
    assert_eq!(s.c().link(dir, b"never", h).err(), Some(Errno::ENOENT));
    assert_eq!(
        s.c().create_tmpfile(dir, libc::O_RDONLY, 0o600, USER).err(),
        Some(Errno::EINVAL)
    );
    let ro = Served::start(true);
    assert_eq!(
        ro.c()
            .create_tmpfile(ROOT_HANDLE, libc::O_RDWR, 0o600, USER)
            .err(),
        Some(Errno::EROFS)
    );
}
