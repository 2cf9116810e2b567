//! Unix-domain sockets (gVisor's `socket/unix`): socketpair, and named
//! sockets bound to a path in the sandbox's VFS or to an abstract name.
//!
//! Data moves over host socketpairs the sentry creates and owns, so reads,
//! writes, message boundaries (SOCK_SEQPACKET, SOCK_DGRAM), shutdown and
//! readiness are the host kernel's; everything about *names* is the
//! sentry's: which socket a path or abstract name reaches, the listen
//! queue, peer credentials (the emulated ones, not the sentry's) and
//! passed file descriptors (SCM_RIGHTS carries the sandbox's own open
//! files, queued beside the data).
//!
//! A stream or seqpacket connection is one host socketpair: connect()
//! makes it, keeps one end and queues a server socket holding the other
//! on the listener; accept() takes it. A bound datagram socket owns a
//! host datagram socketpair: it receives on one end, and anyone sending to
//! its name writes into the other.

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use nix::errno::Errno;

use super::{host_socketpair, set_host_nonblock};
use crate::fsimpl::host::retry_host;
use crate::fsimpl::ready::ReadyFlag;
use crate::kernel::lock;
use crate::vfs::{FileOps, FileStat, Inode, OpenFile, VfsResult};

/// Linux's limit on a listen backlog (somaxconn).
pub const SOMAXCONN: usize = 4096;

/// A unix socket address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum UnixAddr {
    Unnamed,
    /// A filesystem path (as given, without the trailing NUL).
    Path(Vec<u8>),
    /// An abstract name (without the leading NUL).
    Abstract(Vec<u8>),
}

impl UnixAddr {
    /// Parses a sockaddr_un of `len` bytes.
    pub fn parse(raw: &[u8]) -> Result<UnixAddr, Errno> {
        if raw.len() < 2 {
            return Err(Errno::EINVAL);
        }
        if u16::from_le_bytes([raw[0], raw[1]]) != libc::AF_UNIX as u16 {
            return Err(Errno::EINVAL);
        }
        let path = &raw[2..];
        if path.is_empty() {
            return Ok(UnixAddr::Unnamed);
        }
        if path[0] == 0 {
            return Ok(UnixAddr::Abstract(path[1..].to_vec()));
        }
        let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
        Ok(UnixAddr::Path(path[..end].to_vec()))
    }

    /// The sockaddr_un bytes getsockname/accept report.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = (libc::AF_UNIX as u16).to_le_bytes().to_vec();
        match self {
            UnixAddr::Unnamed => {}
            UnixAddr::Path(p) => {
                out.extend_from_slice(p);
                out.push(0);
            }
            UnixAddr::Abstract(n) => {
                out.push(0);
                out.extend_from_slice(n);
            }
        }
        out
    }
}

/// Credentials of a socket's creator, for SO_PEERCRED.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ucred {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
}

/// Files passed with SCM_RIGHTS, waiting for the receiver.
type PassedFiles = Vec<Arc<OpenFile>>;

/// One direction's queue of passed files, shared by both ends.
#[derive(Default)]
pub struct RightsQueue {
    queue: Mutex<VecDeque<PassedFiles>>,
}

enum State {
    /// Fresh (or bound, for stream sockets not yet listening).
    Idle,
    Listening {
        backlog: usize,
        queue: VecDeque<Arc<UnixSocket>>,
    },
    /// A stream or seqpacket connection, or a socketpair end.
    Connected {
        fd: OwnedFd,
        peer: Ucred,
        /// Files the peer sent us / we send the peer.
        inbox: Arc<RightsQueue>,
        outbox: Arc<RightsQueue>,
    },
}

pub struct UnixSocket {
    pub stype: i32,
    state: Mutex<State>,
    local: Mutex<UnixAddr>,
    peer_addr: Mutex<UnixAddr>,
    /// Datagram sockets: where peers write to reach us (bound), and where
    /// we read.
    dgram_rx: Mutex<Option<(OwnedFd, Arc<OwnedFd>)>>,
    /// Datagram sockets: the destination connect() chose.
    dgram_target: Mutex<Option<Arc<OwnedFd>>>,
    /// Listeners: a connection is waiting.
    ready: ReadyFlag,
    nonblocking: AtomicBool,
    pub creds: Ucred,
}

/// What a bound name leads to.
#[derive(Clone, PartialEq, Eq, Hash)]
enum BindKey {
    /// Identity of the socket node's inode.
    Node(usize),
    Abstract(Vec<u8>),
}

/// The socket node is held, not just referenced: a gofer mount's inode
/// lives only while someone holds it (and only a live one keeps its host
/// inode, and so its identity, pinned), so connect finds the very inode
/// bind made.
type Bindings = HashMap<BindKey, (Option<Arc<dyn Inode>>, Weak<UnixSocket>)>;

fn bindings() -> std::sync::MutexGuard<'static, Bindings> {
    static B: OnceLock<Mutex<Bindings>> = OnceLock::new();
    lock(B.get_or_init(|| Mutex::new(HashMap::new())))
}

fn node_key(inode: &Arc<dyn Inode>) -> BindKey {
    BindKey::Node(Arc::as_ptr(inode) as *const () as usize)
}

impl UnixSocket {
    pub fn new(stype: i32, nonblocking: bool, creds: Ucred) -> Result<Arc<UnixSocket>, Errno> {
        Ok(Arc::new(UnixSocket {
            stype,
            state: Mutex::new(State::Idle),
            local: Mutex::new(UnixAddr::Unnamed),
            peer_addr: Mutex::new(UnixAddr::Unnamed),
            dgram_rx: Mutex::new(None),
            dgram_target: Mutex::new(None),
            ready: ReadyFlag::new()?,
            nonblocking: AtomicBool::new(nonblocking),
            creds,
        }))
    }

    fn connected(
        stype: i32,
        fd: OwnedFd,
        nonblocking: bool,
        creds: Ucred,
        peer: Ucred,
        inbox: Arc<RightsQueue>,
        outbox: Arc<RightsQueue>,
    ) -> Result<Arc<UnixSocket>, Errno> {
        set_host_nonblock(fd.as_raw_fd(), nonblocking);
        let s = UnixSocket::new(stype, nonblocking, creds)?;
        *lock(&s.state) = State::Connected {
            fd,
            peer,
            inbox,
            outbox,
        };
        Ok(s)
    }

    /// socketpair(2): two connected sockets.
    pub fn pair(
        stype: i32,
        nonblocking: bool,
        creds: Ucred,
    ) -> Result<(Arc<UnixSocket>, Arc<UnixSocket>), Errno> {
        let (x, y) = host_socketpair(stype)?;
        let (ab, ba) = (
            Arc::new(RightsQueue::default()),
            Arc::new(RightsQueue::default()),
        );
        let a = UnixSocket::connected(stype, x, nonblocking, creds, creds, ba.clone(), ab.clone())?;
        let b = UnixSocket::connected(stype, y, nonblocking, creds, creds, ab, ba)?;
        Ok((a, b))
    }

    pub fn local_addr(&self) -> UnixAddr {
        lock(&self.local).clone()
    }

    pub fn peer_addr(&self) -> Result<UnixAddr, Errno> {
        let connected = matches!(*lock(&self.state), State::Connected { .. })
            || lock(&self.dgram_target).is_some();
        if !connected {
            return Err(Errno::ENOTCONN);
        }
        Ok(lock(&self.peer_addr).clone())
    }

    /// What a read of a socket with no peer yet says: a datagram socket
    /// has nothing yet, a stream one is not connected (EINVAL, as Linux's
    /// unix_stream_read_generic), a seqpacket one ENOTCONN.
    pub fn unconnected_read_error(&self) -> Errno {
        match self.stype {
            libc::SOCK_DGRAM => Errno::EAGAIN,
            libc::SOCK_STREAM => Errno::EINVAL,
            _ => Errno::ENOTCONN,
        }
    }

    pub fn peer_cred(&self) -> Ucred {
        match &*lock(&self.state) {
            State::Connected { peer, .. } => *peer,
            // Linux reports "nobody" for a socket with no peer.
            _ => Ucred {
                pid: 0,
                uid: u32::MAX,
                gid: u32::MAX,
            },
        }
    }

    pub fn is_listening(&self) -> bool {
        matches!(*lock(&self.state), State::Listening { .. })
    }

    /// The host fd data is sent on, if any.
    pub fn send_fd(&self) -> Option<RawFd> {
        if let State::Connected { fd, .. } = &*lock(&self.state) {
            return Some(fd.as_raw_fd());
        }
        lock(&self.dgram_target).as_ref().map(|t| t.as_raw_fd())
    }

    /// Where senders write to reach this (bound datagram) socket.
    pub fn dgram_inbox(&self) -> Option<Arc<OwnedFd>> {
        lock(&self.dgram_rx).as_ref().map(|(_, tx)| tx.clone())
    }

    /// The host fd data is received on, if any.
    pub fn recv_fd(&self) -> Option<RawFd> {
        if let State::Connected { fd, .. } = &*lock(&self.state) {
            return Some(fd.as_raw_fd());
        }
        lock(&self.dgram_rx).as_ref().map(|(rx, _)| rx.as_raw_fd())
    }

    /// bind(2). `node` is the socket file just created for a path name
    /// (the syscall layer makes it, with the caller's umask).
    pub fn bind(
        self: &Arc<UnixSocket>,
        addr: UnixAddr,
        node: Option<Arc<dyn Inode>>,
    ) -> Result<(), Errno> {
        let mut local = lock(&self.local);
        if *local != UnixAddr::Unnamed {
            return Err(Errno::EINVAL);
        }
        let key = match (&addr, &node) {
            (UnixAddr::Abstract(n), _) => BindKey::Abstract(n.clone()),
            (UnixAddr::Path(_), Some(node)) => node_key(node),
            _ => return Err(Errno::EINVAL),
        };
        {
            let mut b = bindings();
            b.retain(|_, (_, s)| s.strong_count() > 0);
            if b.contains_key(&key) {
                return Err(Errno::EADDRINUSE);
            }
            b.insert(key, (node.clone(), Arc::downgrade(self)));
        }
        if self.stype == libc::SOCK_DGRAM {
            let (rx, tx) = host_socketpair(libc::SOCK_DGRAM)?;
            set_host_nonblock(rx.as_raw_fd(), self.nonblocking.load(Ordering::Relaxed));
            *lock(&self.dgram_rx) = Some((rx, Arc::new(tx)));
        }
        *local = addr;
        Ok(())
    }

    /// Autobind (bind with only the address family): a fresh abstract
    /// name of five hex digits, as Linux picks.
    pub fn autobind(self: &Arc<UnixSocket>) -> Result<(), Errno> {
        if *lock(&self.local) != UnixAddr::Unnamed {
            return Ok(());
        }
        for _ in 0..0x10_0000 {
            let mut r = [0u8; 4];
            let _ = crate::fsimpl::dev::fill_random(&mut r);
            let name = format!("{:05x}", u32::from_le_bytes(r) & 0xfffff).into_bytes();
            match self.bind(UnixAddr::Abstract(name), None) {
                Err(Errno::EADDRINUSE) => continue,
                other => return other,
            }
        }
        Err(Errno::ENOSPC)
    }

    pub fn listen(self: &Arc<UnixSocket>, backlog: i32) -> Result<(), Errno> {
        if self.stype == libc::SOCK_DGRAM {
            return Err(Errno::EOPNOTSUPP);
        }
        if *lock(&self.local) == UnixAddr::Unnamed {
            return Err(Errno::EINVAL);
        }
        let backlog = (backlog.max(0) as usize).min(SOMAXCONN);
        let mut st = lock(&self.state);
        match &mut *st {
            State::Idle => {
                *st = State::Listening {
                    backlog,
                    queue: VecDeque::new(),
                };
                Ok(())
            }
            State::Listening { backlog: b, .. } => {
                *b = backlog;
                Ok(())
            }
            State::Connected { .. } => Err(Errno::EINVAL),
        }
    }

    /// Finds the socket a name reaches (ECONNREFUSED if nobody listens).
    pub fn lookup(
        addr: &UnixAddr,
        node: Option<&Arc<dyn Inode>>,
    ) -> Result<Arc<UnixSocket>, Errno> {
        let key = match (addr, node) {
            (UnixAddr::Abstract(n), _) => BindKey::Abstract(n.clone()),
            (UnixAddr::Path(_), Some(node)) => node_key(node),
            _ => return Err(Errno::ECONNREFUSED),
        };
        let b = bindings();
        let (bound_node, sock) = b.get(&key).ok_or(Errno::ECONNREFUSED)?;
        if let (Some(bound), Some(node)) = (bound_node, node) {
            // The same node (not a new one at a recycled address).
            if !Arc::ptr_eq(bound, node) {
                return Err(Errno::ECONNREFUSED);
            }
        }
        sock.upgrade().ok_or(Errno::ECONNREFUSED)
    }

    /// connect(2) to `target` (already looked up).
    pub fn connect(
        self: &Arc<UnixSocket>,
        target: &Arc<UnixSocket>,
        target_addr: UnixAddr,
    ) -> Result<(), Errno> {
        if target.stype != self.stype {
            return Err(Errno::EPROTOTYPE);
        }
        if self.stype == libc::SOCK_DGRAM {
            let tx = lock(&target.dgram_rx)
                .as_ref()
                .map(|(_, tx)| tx.clone())
                .ok_or(Errno::ECONNREFUSED)?;
            *lock(&self.dgram_target) = Some(tx);
            *lock(&self.peer_addr) = target_addr;
            return Ok(());
        }
        match &*lock(&self.state) {
            State::Connected { .. } => return Err(Errno::EISCONN),
            State::Listening { .. } => return Err(Errno::EINVAL),
            State::Idle => {}
        }
        loop {
            {
                let mut tst = lock(&target.state);
                let State::Listening { backlog, queue } = &mut *tst else {
                    return Err(Errno::ECONNREFUSED);
                };
                // Linux admits backlog + 1 pending connections.
                if queue.len() <= *backlog {
                    let (mine, theirs) = host_socketpair(self.stype)?;
                    let (to_server, to_client) = (
                        Arc::new(RightsQueue::default()),
                        Arc::new(RightsQueue::default()),
                    );
                    let server = UnixSocket::connected(
                        self.stype,
                        theirs,
                        false,
                        target.creds,
                        self.creds,
                        to_server.clone(),
                        to_client.clone(),
                    )?;
                    *lock(&server.local) = target.local_addr();
                    *lock(&server.peer_addr) = self.local_addr();
                    queue.push_back(server);
                    target.ready.update(true);
                    set_host_nonblock(mine.as_raw_fd(), self.nonblocking.load(Ordering::Relaxed));
                    *lock(&self.state) = State::Connected {
                        fd: mine,
                        peer: target.creds,
                        inbox: to_client,
                        outbox: to_server,
                    };
                    *lock(&self.peer_addr) = target_addr;
                    return Ok(());
                }
            }
            if self.nonblocking.load(Ordering::Relaxed) {
                return Err(Errno::EAGAIN);
            }
            if crate::kernel::interrupted() {
                return Err(Errno::EINTR);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// accept(2): the next queued connection.
    pub fn accept(&self) -> Result<Arc<UnixSocket>, Errno> {
        loop {
            {
                let mut st = lock(&self.state);
                let State::Listening { queue, .. } = &mut *st else {
                    return Err(Errno::EINVAL);
                };
                if let Some(s) = queue.pop_front() {
                    self.ready.update(!queue.is_empty());
                    return Ok(s);
                }
            }
            if self.nonblocking.load(Ordering::Relaxed) {
                return Err(Errno::EAGAIN);
            }
            self.ready.wait()?;
        }
    }

    /// Queues files for the peer (SCM_RIGHTS); they go with the next data.
    pub fn send_rights(&self, files: PassedFiles) -> Result<(), Errno> {
        match &*lock(&self.state) {
            State::Connected { outbox, .. } => {
                lock(&outbox.queue).push_back(files);
                Ok(())
            }
            _ => Err(Errno::EOPNOTSUPP),
        }
    }

    /// Takes the files that arrived with the data just received.
    pub fn take_rights(&self) -> Option<PassedFiles> {
        match &*lock(&self.state) {
            State::Connected { inbox, .. } => lock(&inbox.queue).pop_front(),
            _ => None,
        }
    }

    pub fn nonblocking(&self) -> bool {
        self.nonblocking.load(Ordering::Relaxed)
    }
}

impl FileOps for UnixSocket {
    fn seekable(&self) -> bool {
        false
    }

    fn read_at(&self, buf: &mut [u8], _off: u64) -> VfsResult<usize> {
        let fd = self
            .recv_fd()
            .ok_or_else(|| self.unconnected_read_error())?;
        let n = retry_host(|| nix::unistd::read(fd, buf))?;
        // Files sent with this data are dropped by a plain read, as Linux
        // discards ancillary data nobody asked for.
        if n > 0 {
            drop(self.take_rights());
        }
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], _off: u64) -> VfsResult<usize> {
        let fd = self.send_fd().ok_or(Errno::ENOTCONN)?;
        retry_host(|| {
            // SAFETY: send from our own buffer on the sentry's socket;
            // MSG_NOSIGNAL: the caller raises SIGPIPE for the application.
            Errno::result(unsafe {
                libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL)
            })
            .map(|n| n as usize)
        })
    }

    fn stat(&self) -> VfsResult<FileStat> {
        super::socket_stat()
    }

    fn host_fd(&self) -> Option<RawFd> {
        self.recv_fd()
    }

    fn poll_fd(&self) -> Option<RawFd> {
        if self.is_listening() {
            return Some(self.ready.fd.as_raw_fd());
        }
        self.recv_fd().or(Some(self.ready.fd.as_raw_fd()))
    }

    fn set_nonblocking(&self, on: bool) {
        self.nonblocking.store(on, Ordering::Relaxed);
        if let State::Connected { fd, .. } = &*lock(&self.state) {
            set_host_nonblock(fd.as_raw_fd(), on);
        }
        if let Some((rx, _)) = &*lock(&self.dgram_rx) {
            set_host_nonblock(rx.as_raw_fd(), on);
        }
    }

    fn readable_bytes(&self) -> Option<usize> {
        let fd = self.recv_fd()?;
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int into our own variable.
        if unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) } < 0 {
            return Some(0);
        }
        Some(n.max(0) as usize)
    }

    fn unix_socket(self: Arc<Self>) -> Option<Arc<UnixSocket>> {
        Some(self)
    }
}
