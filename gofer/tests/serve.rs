//! The server over a real socketpair, without chroot: `serve` takes fds, so
//! the tests hand it an O_PATH fd of a temp tree and this process's
//! /proc/self/fd. Runs as root against the real kernel.

mod common;

use std::collections::HashSet;
use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use common::{o_path_dir, proc_self_fd, TempDir};
use gofer::client::{socketpair, GoferClient};
use gofer::protocol::{
    decode_response, encode_request, Handle, Request, Response, MAX_MESSAGE, PROTOCOL_VERSION,
    ROOT_HANDLE,
};
use gofer::server::{serve, ServeOptions, ServerError};
use nix::errno::Errno;
use nix::sys::socket::{recvmsg, send, MsgFlags};
use nix::sys::stat::{Mode, SFlag};

const BIG_DIR_ENTRIES: usize = 5000;
const LONG_DIR_ENTRIES: usize = 1500;

/// The tree every test serves; the two large directories only for the tests
/// that page through them (creating 6500 files takes a while).
fn build_tree(root: &Path, big_dirs: bool) {
    std::fs::write(root.join("file.txt"), b"hello gofer\n").unwrap();
    std::fs::create_dir_all(root.join("a/b/c")).unwrap();
    std::fs::write(root.join("a/b/c/deep.txt"), b"deep content").unwrap();
    symlink("/etc/passwd", root.join("etc-link")).unwrap();
    symlink("../../..", root.join("up-link")).unwrap();
    symlink("a", root.join("dir-link")).unwrap();
    symlink("loop2", root.join("loop1")).unwrap();
    symlink("loop1", root.join("loop2")).unwrap();
    nix::unistd::mkfifo(&root.join("fifo"), Mode::from_bits_truncate(0o644)).unwrap();
    nix::sys::stat::mknod(
        &root.join("null-dev"),
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    drop(std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap());
    std::fs::create_dir(root.join("empty")).unwrap();
    if !big_dirs {
        return;
    }
    std::fs::create_dir(root.join("big")).unwrap();
    for i in 0..BIG_DIR_ENTRIES {
        std::fs::File::create(root.join(format!("big/entry-{i:05}"))).unwrap();
    }
    // Long names, so that paging by encoded size kicks in before the count.
    std::fs::create_dir(root.join("long")).unwrap();
    for i in 0..LONG_DIR_ENTRIES {
        let name = format!("{i:05}-{}", "n".repeat(240));
        std::fs::File::create(root.join("long").join(name)).unwrap();
    }
}

struct Harness {
    tree: TempDir,
    server: Option<JoinHandle<Result<(), ServerError>>>,
}

impl Harness {
    /// Builds the tree and starts a server; returns the sentry's end of the
    /// socket, not yet handshaken.
    fn raw(read_only: bool) -> (Harness, OwnedFd) {
        Harness::raw_with(read_only, false)
    }

    fn raw_with(read_only: bool, big_dirs: bool) -> (Harness, OwnedFd) {
        let tree = TempDir::new("serve");
        build_tree(tree.path(), big_dirs);
        let (sentry, gofer_end) = socketpair().unwrap();
        let root = o_path_dir(tree.path());
        let proc = proc_self_fd();
        let server =
            std::thread::spawn(move || serve(gofer_end, root, proc, ServeOptions { read_only }));
        (
            Harness {
                tree,
                server: Some(server),
            },
            sentry,
        )
    }

    fn start(read_only: bool) -> (Harness, GoferClient) {
        let (h, sentry) = Harness::raw(read_only);
        (h, GoferClient::connect(sentry).unwrap())
    }

    fn path(&self, rel: &str) -> std::path::PathBuf {
        self.tree.path().join(rel)
    }

    /// Waits for the server to stop (the client must be gone by now) and
    /// checks it stopped cleanly.
    fn finish(mut self) {
        let server = self.server.take().unwrap();
        server.join().unwrap().unwrap();
    }
}

fn walk_path(c: &GoferClient, path: &str) -> Result<Handle, Errno> {
    let mut h = ROOT_HANDLE;
    for comp in path.split('/') {
        h = c.walk(h, comp.as_bytes())?.0;
    }
    Ok(h)
}

#[test]
fn walk_and_stat_nested_components() {
    let (h, c) = Harness::start(true);
    let root_meta = std::fs::metadata(h.tree.path()).unwrap();
    let root = c.root_stat().unwrap();
    assert_eq!((root.dev, root.ino), (root_meta.dev(), root_meta.ino()));
    assert!(root.is_dir());

    let mut dir = ROOT_HANDLE;
    let mut rel = std::path::PathBuf::new();
    for comp in ["a", "b", "c", "deep.txt"] {
        rel.push(comp);
        let (handle, st) = c.walk(dir, comp.as_bytes()).unwrap();
        assert_ne!(handle, ROOT_HANDLE);
        let meta = std::fs::symlink_metadata(h.tree.path().join(&rel)).unwrap();
        assert_eq!(st.ino, meta.ino());
        assert_eq!(st.dev, meta.dev());
        assert_eq!(st.mode, meta.mode());
        assert_eq!(st.size, meta.size() as i64);
        assert_eq!(st.nlink, meta.nlink());
        assert_eq!(st.mtime_sec, meta.mtime());
        assert_eq!(st.mtime_nsec, meta.mtime_nsec());
        assert_eq!(c.stat(handle).unwrap(), st);
        dir = handle;
    }
    assert!(c.stat(dir).unwrap().is_file());
    // A regular file is no directory to walk in.
    assert_eq!(c.walk(dir, b"x"), Err(Errno::ENOTDIR));
    assert_eq!(c.walk(ROOT_HANDLE, b"missing"), Err(Errno::ENOENT));
    drop(c);
    h.finish();
}

#[test]
fn symlinks_are_never_followed() {
    let (h, c) = Harness::start(true);
    let (link, st) = c.walk(ROOT_HANDLE, b"etc-link").unwrap();
    assert!(st.is_symlink());
    assert_eq!(st.size, "/etc/passwd".len() as i64);
    assert_eq!(c.readlink(link).unwrap(), b"/etc/passwd");
    // Walking *through* a symlink is refused; so is opening it.
    assert_eq!(c.walk(link, b"passwd"), Err(Errno::ENOTDIR));
    assert_eq!(c.open(link, libc::O_RDONLY).map(drop), Err(Errno::ELOOP));
    assert_eq!(c.getdents(link), Err(Errno::ENOTDIR));

    let (up, _) = c.walk(ROOT_HANDLE, b"up-link").unwrap();
    assert_eq!(c.readlink(up).unwrap(), b"../../..");
    assert_eq!(c.walk(up, b"etc"), Err(Errno::ENOTDIR));
    assert_eq!(
        c.open(up, libc::O_RDONLY | libc::O_DIRECTORY).map(drop),
        Err(Errno::ELOOP)
    );

    let (dl, _) = c.walk(ROOT_HANDLE, b"dir-link").unwrap();
    assert_eq!(c.walk(dl, b"b"), Err(Errno::ENOTDIR));

    let (l1, _) = c.walk(ROOT_HANDLE, b"loop1").unwrap();
    assert_eq!(c.readlink(l1).unwrap(), b"loop2");
    assert_eq!(c.open(l1, libc::O_RDONLY).map(drop), Err(Errno::ELOOP));
    assert_eq!(c.walk(l1, b"x"), Err(Errno::ENOTDIR));

    // readlink of a non-symlink.
    let (f, _) = c.walk(ROOT_HANDLE, b"file.txt").unwrap();
    assert_eq!(c.readlink(f), Err(Errno::EINVAL));
    assert_eq!(c.readlink(ROOT_HANDLE), Err(Errno::EINVAL));
    drop(c);
    h.finish();
}

#[test]
fn bad_names_are_rejected() {
    let (h, c) = Harness::start(true);
    let (a, _) = c.walk(ROOT_HANDLE, b"a").unwrap();
    for dir in [ROOT_HANDLE, a] {
        for name in [
            &b".."[..],
            b".",
            b"a/b",
            b"",
            b"/",
            b"/etc",
            b"x\0y",
            b"../a",
        ] {
            assert_eq!(c.walk(dir, name), Err(Errno::EINVAL), "name {name:?}");
        }
        assert_eq!(c.walk(dir, &[b'x'; 256]), Err(Errno::ENAMETOOLONG));
        // 255 bytes is a legal (if absent) name.
        assert_eq!(c.walk(dir, &[b'x'; 255]), Err(Errno::ENOENT));
    }
    drop(c);
    h.finish();
}

#[test]
fn open_donates_a_working_fd() {
    let (h, c) = Harness::start(true);
    let (f, _) = c.walk(ROOT_HANDLE, b"file.txt").unwrap();
    let fd = c.open(f, libc::O_RDONLY).unwrap();
    let flags = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap();
    assert_ne!(
        flags & libc::FD_CLOEXEC,
        0,
        "donated fd must arrive close-on-exec"
    );
    let mut content = String::new();
    std::fs::File::from(fd)
        .read_to_string(&mut content)
        .unwrap();
    assert_eq!(content, "hello gofer\n");

    // Twice, with the kernel's O_LARGEFILE bit and O_NOFOLLOW: still fine.
    let fd = c
        .open(f, libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .unwrap();
    let mut file = std::fs::File::from(fd);
    let mut buf = [0u8; 5];
    file.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello");
    // Read-only really means the fd cannot write.
    assert!(file.write_all(b"x").is_err());

    let deep = walk_path(&c, "a/b/c/deep.txt").unwrap();
    let mut s = String::new();
    std::fs::File::from(c.open(deep, libc::O_RDONLY).unwrap())
        .read_to_string(&mut s)
        .unwrap();
    assert_eq!(s, "deep content");

    // Directories are never donated; a file with O_DIRECTORY is no dir.
    assert_eq!(
        c.open(ROOT_HANDLE, libc::O_RDONLY | libc::O_DIRECTORY)
            .map(drop),
        Err(Errno::EISDIR)
    );
    assert_eq!(
        c.open(f, libc::O_RDONLY | libc::O_DIRECTORY).map(drop),
        Err(Errno::ENOTDIR)
    );
    drop(c);
    h.finish();
}

#[test]
fn write_opens_are_refused_when_read_only() {
    let (h, c) = Harness::start(true);
    let (f, _) = c.walk(ROOT_HANDLE, b"file.txt").unwrap();
    for flags in [
        libc::O_WRONLY,
        libc::O_RDWR,
        libc::O_RDONLY | libc::O_CREAT,
        libc::O_RDONLY | libc::O_TRUNC,
        libc::O_WRONLY | libc::O_APPEND,
        libc::O_RDWR | libc::O_TMPFILE,
    ] {
        assert_eq!(
            c.open(f, flags).map(drop),
            Err(Errno::EROFS),
            "flags {flags:#o}"
        );
        assert_eq!(
            c.open(ROOT_HANDLE, flags).map(drop),
            Err(Errno::EROFS),
            "flags {flags:#o}"
        );
    }
    for flags in [
        libc::O_PATH,
        libc::O_RDONLY | libc::O_EXCL,
        libc::O_ACCMODE,
        libc::O_RDONLY | libc::O_SYNC,
    ] {
        assert_eq!(
            c.open(f, flags).map(drop),
            Err(Errno::EINVAL),
            "flags {flags:#o}"
        );
    }
    assert_eq!(std::fs::read(h.path("file.txt")).unwrap(), b"hello gofer\n");
    drop(c);
    h.finish();
}

#[test]
fn writable_server_allows_write_opens() {
    let (h, c) = Harness::start(false);
    let (f, _) = c.walk(ROOT_HANDLE, b"file.txt").unwrap();
    let fd = c.open(f, libc::O_WRONLY | libc::O_TRUNC).unwrap();
    std::fs::File::from(fd).write_all(b"rewritten").unwrap();
    assert_eq!(std::fs::read(h.path("file.txt")).unwrap(), b"rewritten");
    // Creating through Open makes no sense: there is no name.
    assert_eq!(
        c.open(f, libc::O_WRONLY | libc::O_CREAT).map(drop),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        c.open(ROOT_HANDLE, libc::O_RDWR).map(drop),
        Err(Errno::EISDIR)
    );
    drop(c);
    h.finish();
}

/// Runs `f` on another thread and fails the test if it does not finish in
/// time, so a blocking open shows up as a failure rather than a hang.
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .expect("call blocked")
}

#[test]
fn special_files_are_refused_without_blocking() {
    let (h, c) = Harness::start(true);
    let c = Arc::new(c);
    for (name, dtype) in [
        ("fifo", libc::S_IFIFO),
        ("null-dev", libc::S_IFCHR),
        ("sock", libc::S_IFSOCK),
    ] {
        let (node, st) = c.walk(ROOT_HANDLE, name.as_bytes()).unwrap();
        assert_eq!(st.file_type(), dtype);
        let c2 = Arc::clone(&c);
        let res = within(10, move || c2.open(node, libc::O_RDONLY).map(drop));
        assert_eq!(res, Err(Errno::EPERM), "{name}");
        let c2 = Arc::clone(&c);
        let res = within(10, move || {
            c2.open(node, libc::O_RDONLY | libc::O_NONBLOCK).map(drop)
        });
        assert_eq!(res, Err(Errno::EPERM), "{name}");
    }
    drop(c);
    h.finish();
}

#[test]
fn getdents_returns_every_entry_exactly_once() {
    let (h, sock) = Harness::raw_with(true, true);
    let c = GoferClient::connect(sock).unwrap();
    for (dir, count) in [("big", BIG_DIR_ENTRIES), ("long", LONG_DIR_ENTRIES)] {
        let (node, _) = c.walk(ROOT_HANDLE, dir.as_bytes()).unwrap();
        let entries = c.getdents(node).unwrap();
        assert_eq!(entries.len(), count, "{dir}");
        let names: HashSet<Vec<u8>> = entries.iter().map(|d| d.name.clone()).collect();
        assert_eq!(names.len(), count, "{dir}: duplicates");
        let expected: HashSet<Vec<u8>> = std::fs::read_dir(h.path(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_encoded_bytes())
            .collect();
        assert_eq!(names, expected, "{dir}");
        for d in &entries {
            assert_eq!(d.d_type, libc::DT_REG);
            assert_ne!(d.ino, 0);
        }
    }
    let (empty, _) = c.walk(ROOT_HANDLE, b"empty").unwrap();
    assert_eq!(c.getdents(empty).unwrap(), vec![]);

    let root: std::collections::HashMap<Vec<u8>, u8> = c
        .getdents(ROOT_HANDLE)
        .unwrap()
        .into_iter()
        .map(|d| (d.name, d.d_type))
        .collect();
    assert!(!root.contains_key(&b"."[..]) && !root.contains_key(&b".."[..]));
    assert_eq!(root.get(&b"etc-link"[..]), Some(&libc::DT_LNK));
    assert_eq!(root.get(&b"a"[..]), Some(&libc::DT_DIR));
    assert_eq!(root.get(&b"fifo"[..]), Some(&libc::DT_FIFO));
    assert_eq!(root.get(&b"file.txt"[..]), Some(&libc::DT_REG));

    let (f, _) = c.walk(ROOT_HANDLE, b"file.txt").unwrap();
    assert_eq!(c.getdents(f), Err(Errno::ENOTDIR));
    drop(c);
    h.finish();
}

#[test]
fn unknown_and_closed_handles_are_ebadf_and_never_reused() {
    let (h, c) = Harness::start(true);
    const BOGUS: Handle = 0xdead_beef;
    assert_eq!(c.stat(BOGUS), Err(Errno::EBADF));
    assert_eq!(c.walk(BOGUS, b"a"), Err(Errno::EBADF));
    assert_eq!(c.open(BOGUS, libc::O_RDONLY).map(drop), Err(Errno::EBADF));
    assert_eq!(c.readlink(BOGUS), Err(Errno::EBADF));
    assert_eq!(c.getdents(BOGUS), Err(Errno::EBADF));
    c.close(BOGUS); // quietly

    let (first, _) = c.walk(ROOT_HANDLE, b"a").unwrap();
    let (second, _) = c.walk(ROOT_HANDLE, b"a").unwrap();
    assert_ne!(first, second);
    c.close(first);
    assert_eq!(c.stat(first), Err(Errno::EBADF));
    let (third, _) = c.walk(ROOT_HANDLE, b"a").unwrap();
    assert!(third > second && third != first);
    assert!(c.stat(second).is_ok());

    // Closing the root is ignored.
    c.close(ROOT_HANDLE);
    assert!(c.root_stat().is_ok());
    drop(c);
    h.finish();
}

fn raw_send(sock: &OwnedFd, bytes: &[u8]) {
    send(sock.as_raw_fd(), bytes, MsgFlags::MSG_NOSIGNAL).unwrap();
}

/// Receives one reply, checks it is one whole message, and returns it
/// decoded with the number of fds attached.
fn raw_recv(sock: &OwnedFd) -> (Response, usize) {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut cmsg = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .unwrap();
    assert!(!msg.flags.contains(MsgFlags::MSG_TRUNC));
    let mut nfds = 0;
    for c in msg.cmsgs().unwrap() {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                nfds += 1;
                nix::unistd::close(fd).unwrap();
            }
        }
    }
    let len = msg.bytes;
    (decode_response(&buf[..len]).unwrap(), nfds)
}

fn roundtrip(sock: &OwnedFd, req: &Request) -> (Response, usize) {
    raw_send(sock, &encode_request(&req.clone().into()).unwrap());
    raw_recv(sock)
}

const EINVAL_REPLY: Response = Response::Error {
    errno: libc::EINVAL,
};

#[test]
fn garbage_gets_an_error_and_serving_continues() {
    let (h, sock) = Harness::raw(true);
    // Works before the handshake too, and the handshake works after garbage.
    raw_send(&sock, &[0xff; 64]);
    assert_eq!(raw_recv(&sock).0, EINVAL_REPLY);

    let valid = encode_request(
        &Request::Walk {
            dir: ROOT_HANDLE,
            name: b"file.txt".to_vec(),
        }
        .into(),
    )
    .unwrap();
    // Truncated.
    for cut in 1..valid.len() {
        raw_send(&sock, &valid[..cut]);
        assert_eq!(raw_recv(&sock).0, EINVAL_REPLY, "cut at {cut}");
    }
    // Trailing bytes.
    let mut trailing = valid.clone();
    trailing.extend_from_slice(b"junk");
    raw_send(&sock, &trailing);
    assert_eq!(raw_recv(&sock).0, EINVAL_REPLY);
    // Unknown variant.
    raw_send(&sock, &[200, 0]);
    assert_eq!(raw_recv(&sock).0, EINVAL_REPLY);
    // Declared name length far beyond the message.
    raw_send(&sock, &[1, 0, 0xff, 0xff, 0xff, 0x7f, b'a']);
    assert_eq!(raw_recv(&sock).0, EINVAL_REPLY);
    // Empty message: not end-of-stream while we are still connected.
    raw_send(&sock, &[]);
    assert_eq!(raw_recv(&sock).0, EINVAL_REPLY);
    // Exactly MAX_MESSAGE bytes arrives whole but is not a valid request;
    // one byte more is truncated by the kernel. Both get EINVAL.
    raw_send(&sock, &vec![0x01; MAX_MESSAGE]);
    assert_eq!(raw_recv(&sock).0, EINVAL_REPLY);
    raw_send(&sock, &vec![0x01; MAX_MESSAGE + 1]);
    assert_eq!(raw_recv(&sock).0, EINVAL_REPLY);
    raw_send(&sock, &vec![0x00; MAX_MESSAGE + 4096]);
    assert_eq!(raw_recv(&sock).0, EINVAL_REPLY);

    // fds smuggled to the gofer are discarded and the message refused.
    let extra = proc_self_fd();
    let fds = [extra.as_raw_fd()];
    let iov = [std::io::IoSlice::new(&valid)];
    nix::sys::socket::sendmsg::<()>(
        sock.as_raw_fd(),
        &iov,
        &[nix::sys::socket::ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .unwrap();
    assert_eq!(raw_recv(&sock).0, EINVAL_REPLY);

    // Random noise: exactly one decodable reply per message, whatever it is.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..2000usize {
        let len = 1 + i % 300;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        raw_send(&sock, &bytes);
        let _ = raw_recv(&sock);
    }

    // Still serving, and a real client can take over the connection.
    assert_eq!(
        roundtrip(
            &sock,
            &Request::Version {
                version: PROTOCOL_VERSION
            }
        )
        .0,
        Response::Version {
            version: PROTOCOL_VERSION
        }
    );
    assert_eq!(
        roundtrip(
            &sock,
            &Request::Version {
                version: PROTOCOL_VERSION + 1
            }
        )
        .0,
        Response::Error {
            errno: libc::EPROTONOSUPPORT
        }
    );
    let c = GoferClient::connect(sock).unwrap();
    let (f, _) = c.walk(ROOT_HANDLE, b"file.txt").unwrap();
    let mut s = String::new();
    std::fs::File::from(c.open(f, libc::O_RDONLY).unwrap())
        .read_to_string(&mut s)
        .unwrap();
    assert_eq!(s, "hello gofer\n");
    drop(c);
    h.finish();
}

#[test]
fn getdents_pages_fit_in_one_message() {
    let (h, sock) = Harness::raw_with(true, true);
    for (dir, count) in [("big", BIG_DIR_ENTRIES), ("long", LONG_DIR_ENTRIES)] {
        let Response::Node { handle, .. } = roundtrip(
            &sock,
            &Request::Walk {
                dir: ROOT_HANDLE,
                name: dir.as_bytes().to_vec(),
            },
        )
        .0
        else {
            panic!("walk failed")
        };
        let mut offset = 0;
        let mut total = 0;
        let mut pages = 0;
        loop {
            let (resp, nfds) = roundtrip(
                &sock,
                &Request::Getdents {
                    node: handle,
                    offset,
                },
            );
            assert_eq!(nfds, 0);
            let Response::Dirents {
                entries,
                next_offset,
            } = resp
            else {
                panic!("getdents failed: {resp:?}")
            };
            assert!(entries.len() <= 2048);
            pages += 1;
            total += entries.len();
            match next_offset {
                Some(next) => {
                    assert_eq!(next, offset + entries.len() as u64);
                    offset = next;
                }
                None => break,
            }
        }
        assert_eq!(total, count);
        assert!(pages >= 2, "{dir}: expected several pages, got {pages}");
        // Past the end is simply empty.
        let (resp, _) = roundtrip(
            &sock,
            &Request::Getdents {
                node: handle,
                offset: 1 << 40,
            },
        );
        assert_eq!(
            resp,
            Response::Dirents {
                entries: vec![],
                next_offset: None
            }
        );
    }
    // Open attaches exactly one fd; errors attach none.
    let Response::Node { handle, .. } = roundtrip(
        &sock,
        &Request::Walk {
            dir: ROOT_HANDLE,
            name: b"file.txt".to_vec(),
        },
    )
    .0
    else {
        panic!("walk failed")
    };
    assert_eq!(
        roundtrip(
            &sock,
            &Request::Open {
                node: handle,
                flags: libc::O_RDONLY
            }
        ),
        (Response::Opened, 1)
    );
    assert_eq!(
        roundtrip(
            &sock,
            &Request::Open {
                node: handle,
                flags: libc::O_RDWR
            }
        ),
        (Response::Error { errno: libc::EROFS }, 0)
    );
    drop(sock);
    h.finish();
}

#[test]
fn client_is_usable_from_many_threads() {
    let (h, c) = Harness::start(true);
    let c = Arc::new(c);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let c = Arc::clone(&c);
            std::thread::spawn(move || {
                for i in 0..200 {
                    let deep = walk_path(&c, "a/b/c/deep.txt").unwrap();
                    assert_eq!(c.stat(deep).unwrap().size, 12);
                    if (t + i) % 10 == 0 {
                        let mut s = String::new();
                        std::fs::File::from(c.open(deep, libc::O_RDONLY).unwrap())
                            .read_to_string(&mut s)
                            .unwrap();
                        assert_eq!(s, "deep content");
                    }
                    c.close(deep);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    drop(c);
    h.finish();
}

#[test]
fn serve_rejects_a_root_that_is_neither_directory_nor_file() {
    let tree = TempDir::new("badroot");
    nix::unistd::mkfifo(
        &tree.path().join("f"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let (_sentry, gofer_end) = socketpair().unwrap();
    let root = common::open_owned(&tree.path().join("f"), nix::fcntl::OFlag::O_PATH);
    let res = serve(
        gofer_end,
        root,
        proc_self_fd(),
        ServeOptions { read_only: true },
    );
    assert!(matches!(res, Err(ServerError::RootNotDirectory)), "{res:?}");
}

/// A file bind mount: the root is the file; it can be read, and nothing
/// can be walked from it.
#[test]
fn a_file_root_serves_only_that_file() {
    let tree = TempDir::new("fileroot");
    std::fs::write(tree.path().join("hosts"), b"10.0.0.1 h\n").unwrap();
    std::fs::write(tree.path().join("secret"), b"no").unwrap();
    let (sentry, gofer_end) = socketpair().unwrap();
    let root = common::open_owned(&tree.path().join("hosts"), nix::fcntl::OFlag::O_PATH);
    let proc = proc_self_fd();
    let server =
        std::thread::spawn(move || serve(gofer_end, root, proc, ServeOptions { read_only: true }));
    let c = GoferClient::connect(sentry).unwrap();
    assert_eq!(c.root_stat().unwrap().size, 11);
    assert_eq!(c.walk(ROOT_HANDLE, b"secret").unwrap_err(), Errno::ENOTDIR);
    assert_eq!(c.walk(ROOT_HANDLE, b"..").unwrap_err(), Errno::EINVAL);
    let fd = c.open(ROOT_HANDLE, libc::O_RDONLY).unwrap();
    let mut buf = [0u8; 32];
    let n = nix::unistd::read(fd.as_raw_fd(), &mut buf).unwrap();
    assert_eq!(&buf[..n], b"10.0.0.1 h\n");
    drop(c);
    server.join().unwrap().unwrap();
}

#[test]
fn serve_returns_ok_when_the_peer_hangs_up() {
    let (h, sock) = Harness::raw(true);
    assert_eq!(roundtrip(&sock, &Request::Stat { node: ROOT_HANDLE }).1, 0);
    drop(sock);
    h.finish();
}

#[test]
fn client_reports_eio_once_the_gofer_is_gone() {
    let (sentry, gofer_end) = socketpair().unwrap();
    let tree = TempDir::new("gone");
    let root = o_path_dir(tree.path());
    let server = std::thread::spawn(move || {
        // Serve only the handshake, then vanish.
        let (s2, g2) = (gofer_end, root);
        let mut buf = vec![0u8; 64];
        let n =
            nix::sys::socket::recv(s2.as_fd().as_raw_fd(), &mut buf, MsgFlags::empty()).unwrap();
        assert!(n > 0);
        let reply = gofer::protocol::encode_response(&Response::Version {
            version: PROTOCOL_VERSION,
        })
        .unwrap();
        send(s2.as_raw_fd(), &reply, MsgFlags::empty()).unwrap();
        drop((s2, g2));
    });
    let c = GoferClient::connect(sentry).unwrap();
    server.join().unwrap();
    assert_eq!(c.root_stat(), Err(Errno::EIO));
    assert_eq!(c.walk(ROOT_HANDLE, b"a"), Err(Errno::EIO));
    c.close(1);
}
