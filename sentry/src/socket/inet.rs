//! Internet sockets (AF_INET, AF_INET6; TCP and UDP) on the sandbox's own
//! loopback (gVisor's `socket/netstack` with its loopback link).
//!
//! Everything an application can see of an internet socket lives here:
//! its addresses, the port table (bind conflicts, SO_REUSEADDR and
//! SO_REUSEPORT, ephemeral ports), listen queues, pending errors
//! (SO_ERROR), options and readiness. No host network stack is involved:
//! between two sockets of one sandbox there is no wire, so there are no
//! segments to build.
//! - A TCP connection is a host unix stream socketpair the sentry creates
//!   and owns, as for unix sockets: bytes, shutdown, EOF, blocking and
//!   readiness are the host's, at the speed of a unix socket.
//! - UDP datagrams are queued in the sentry, with their source address,
//!   up to the receive buffer's size; beyond it they are dropped, as
//!   Linux drops them.
//!
//! Local addresses are the loopback ones (127.0.0.0/8, ::1) and the
//! wildcards. Other destinations have no route (ENETUNREACH) until the
//! sandbox has a network device.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use nix::errno::Errno;

use smoltcp::iface::SocketHandle;

use super::netstack::{self, Wake};
use super::{host_socketpair, set_host_nonblock};
use crate::fsimpl::host::retry_host;
use crate::fsimpl::ready::ReadyFlag;
use crate::kernel::lock;
use crate::vfs::{FileOps, FileStat, VfsResult};

/// Linux's limit on a listen backlog (somaxconn).
const SOMAXCONN: usize = 4096;
/// net.ipv4.ip_local_port_range's default.
const EPHEMERAL: std::ops::RangeInclusive<u16> = 32768..=60999;
/// Largest UDP payloads (65535 less the IPv4 and UDP headers; IPv6's
/// header is not counted in its payload length).
const UDP_MAX_V4: usize = 65507;
const UDP_MAX_V6: usize = 65527;
/// Default buffer sizes Linux reports: net.core.{r,w}mem_default for UDP,
/// tcp_rmem/tcp_wmem's middle values for TCP.
const UDP_BUF_DEFAULT: i32 = 212_992;
const TCP_RCVBUF_DEFAULT: i32 = 131_072;
const TCP_SNDBUF_DEFAULT: i32 = 16_384;
/// net.core.{r,w}mem_max: the most SO_RCVBUF/SO_SNDBUF may ask for (the
/// kernel doubles the request for its bookkeeping).
const BUF_MAX: i32 = 212_992;
/// What one queued datagram costs beyond its payload, so a receive buffer
/// holds about as many small datagrams as Linux's (an skb's truesize).
const DGRAM_OVERHEAD: usize = 768;

/// Which transport a socket speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

/// A socket address as the sentry keeps it: IPv4-mapped IPv6 addresses
/// are stored as IPv4, so one table serves both families.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        v4 => v4,
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback(),
    }
}

/// The source address Linux picks for a local destination: the loopback
/// route's preferred source for 127.0.0.0/8, the address itself otherwise.
fn source_for(dest: IpAddr) -> IpAddr {
    match dest {
        IpAddr::V4(v4) if v4.is_loopback() || v4.is_unspecified() => {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    }
}

/// Parses a sockaddr_in or sockaddr_in6 for a socket of `family`, with
/// Linux's checks in Linux's order: the length, then the family.
/// (AF_UNSPEC, which some calls accept, is the caller's to look for.)
pub fn parse_sockaddr(family: i32, raw: &[u8]) -> Result<SocketAddr, Errno> {
    let (min, want) = if family == libc::AF_INET {
        (16, libc::AF_INET)
    } else {
        // SIN6_LEN_RFC2133: the scope id may be left out.
        (24, libc::AF_INET6)
    };
    if raw.len() < min {
        return Err(Errno::EINVAL);
    }
    if u16::from_le_bytes([raw[0], raw[1]]) as i32 != want {
        return Err(Errno::EAFNOSUPPORT);
    }
    let port = u16::from_be_bytes([raw[2], raw[3]]);
    if family == libc::AF_INET {
        let ip = Ipv4Addr::new(raw[4], raw[5], raw[6], raw[7]);
        return Ok(SocketAddr::new(IpAddr::V4(ip), port));
    }
    let mut o = [0u8; 16];
    o.copy_from_slice(&raw[8..24]);
    Ok(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(o)), port))
}

/// The family field of a socket address (0 if too short to have one).
pub fn sockaddr_family(raw: &[u8]) -> i32 {
    if raw.len() < 2 {
        return -1;
    }
    u16::from_le_bytes([raw[0], raw[1]]) as i32
}

/// The sockaddr bytes for `addr` as a socket of `family` reports it (an
/// IPv6 socket shows IPv4 peers as IPv4-mapped addresses).
pub fn sockaddr_bytes(family: i32, addr: SocketAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(28);
    if family == libc::AF_INET {
        out.extend_from_slice(&(libc::AF_INET as u16).to_le_bytes());
        out.extend_from_slice(&addr.port().to_be_bytes());
        let ip = match addr.ip() {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(v6) => v6.to_ipv4_mapped().unwrap_or(Ipv4Addr::UNSPECIFIED),
        };
        out.extend_from_slice(&ip.octets());
        out.extend_from_slice(&[0; 8]);
    } else {
        out.extend_from_slice(&(libc::AF_INET6 as u16).to_le_bytes());
        out.extend_from_slice(&addr.port().to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        let ip = match addr.ip() {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        out.extend_from_slice(&ip.octets());
        out.extend_from_slice(&0u32.to_le_bytes());
    }
    out
}

/// One socket's claim on a port.
struct Binding {
    ip: IpAddr,
    v6only: bool,
    reuseaddr: bool,
    reuseport: bool,
    uid: u32,
    /// The socket's own listening flag, read without reaching the socket.
    listening: Arc<AtomicBool>,
    /// Identity of the socket (its address while it lives).
    id: usize,
    sock: Weak<InetSocket>,
}

impl Binding {
    /// Whether traffic to `ip` may reach this binding.
    fn covers(&self, ip: IpAddr) -> bool {
        match self.ip {
            IpAddr::V4(v4) if v4.is_unspecified() => ip.is_ipv4(),
            IpAddr::V6(v6) if v6.is_unspecified() => ip.is_ipv6() || !self.v6only,
            mine => mine == ip,
        }
    }

    fn overlaps(&self, other: &Binding) -> bool {
        self.covers(other.ip) || other.covers(self.ip)
    }

    fn alive(&self) -> bool {
        self.sock.strong_count() > 0
    }
}

/// The sandbox's port tables: who holds which TCP and UDP ports.
///
/// Lock order: this table before any socket's state, and no socket is
/// upgraded (so none can be dropped) while it is held; a closed socket's
/// entries are skipped and pruned, not removed by its Drop.
#[derive(Default)]
struct Ports {
    by_port: HashMap<(Proto, u16), Vec<Binding>>,
}

fn ports() -> MutexGuard<'static, Ports> {
    static P: OnceLock<Mutex<Ports>> = OnceLock::new();
    lock(P.get_or_init(|| Mutex::new(Ports::default())))
}

impl Ports {
    fn live(&self, proto: Proto, port: u16) -> impl Iterator<Item = &Binding> {
        self.by_port
            .get(&(proto, port))
            .into_iter()
            .flatten()
            .filter(|b| b.alive())
    }

    /// Whether `new` may not share its port with those already on it
    /// (Linux's inet_csk_bind_conflict and udp_lib_lport_inuse).
    fn conflicts(&self, proto: Proto, port: u16, new: &Binding) -> bool {
        self.live(proto, port).any(|old| {
            if old.id == new.id || !old.overlaps(new) {
                return false;
            }
            if old.reuseport && new.reuseport && old.uid == new.uid {
                return false;
            }
            let listening = old.listening.load(Ordering::Relaxed);
            !(old.reuseaddr && new.reuseaddr && (proto == Proto::Udp || !listening))
        })
    }

    /// Whether another socket overlapping `me` listens on its port
    /// (sockets sharing a port through SO_REUSEADDR may not both listen).
    fn listen_conflict(&self, port: u16, me: &Binding) -> bool {
        self.live(Proto::Tcp, port).any(|o| {
            o.id != me.id
                && o.overlaps(me)
                && !(o.reuseport && me.reuseport && o.uid == me.uid)
                && o.listening.load(Ordering::Relaxed)
        })
    }

    fn insert(&mut self, proto: Proto, port: u16, b: Binding) {
        let list = self.by_port.entry((proto, port)).or_default();
        list.retain(|b| b.alive());
        list.push(b);
    }

    /// A free ephemeral port (one nobody holds at all), starting from a
    /// random point of the range as Linux does.
    fn ephemeral(&self, proto: Proto) -> Result<u16, Errno> {
        // Successive ports, from a random start, as Linux's
        // __inet_hash_connect walks them: a port comes back only after
        // the whole range, so a server that closed first (and holds its
        // end in TIME-WAIT for a minute) never sees a new SYN on an old
        // connection's ports. Random picks repeated within a few hundred
        // connections, and each repeat cost a SYN timeout.
        static NEXT: std::sync::OnceLock<AtomicU32> = std::sync::OnceLock::new();
        let next = NEXT.get_or_init(|| {
            let mut r = [0u8; 4];
            let _ = crate::fsimpl::dev::fill_random(&mut r);
            AtomicU32::new(u32::from_le_bytes(r))
        });
        let span = (EPHEMERAL.end() - EPHEMERAL.start()) as u32 + 1;
        let start = next.fetch_add(1, Ordering::Relaxed) % span;
        (0..span)
            .map(|i| EPHEMERAL.start() + ((start + i) % span) as u16)
            .find(|p| self.live(proto, *p).next().is_none())
            .ok_or(Errno::EADDRINUSE)
    }

    /// The sockets traffic to `dest` may reach, exact addresses first.
    /// The caller picks among them after releasing the table.
    fn candidates(&self, proto: Proto, dest: SocketAddr) -> Vec<Weak<InetSocket>> {
        let mut v: Vec<(bool, Weak<InetSocket>)> = self
            .live(proto, dest.port())
            .filter(|b| b.covers(dest.ip()))
            .map(|b| (b.ip != dest.ip(), b.sock.clone()))
            .collect();
        v.sort_by_key(|(wild, _)| *wild);
        v.into_iter().map(|(_, s)| s).collect()
    }

    fn rebind(&mut self, id: usize, ip: IpAddr) {
        for list in self.by_port.values_mut() {
            list.retain(|b| b.alive());
            for b in list.iter_mut().filter(|b| b.id == id) {
                b.ip = ip;
            }
        }
    }
}

/// The socket that traffic to `dest` reaches, among those `accepts`
/// admits.
fn lookup(
    proto: Proto,
    dest: SocketAddr,
    accepts: impl Fn(&InetSocket) -> bool,
) -> Option<Arc<InetSocket>> {
    let candidates = ports().candidates(proto, dest);
    candidates
        .iter()
        .filter_map(Weak::upgrade)
        .find(|s| accepts(s))
}

/// Options kept per socket and reported back by getsockopt. Boolean ones
/// are stored as 0 or 1, as Linux normalises them.
#[derive(Clone, Debug)]
pub struct Options {
    pub reuseaddr: bool,
    pub reuseport: bool,
    pub v6only: bool,
    pub rcvbuf: i32,
    pub sndbuf: i32,
    /// (level, name) → value for the options that only need remembering.
    pub ints: HashMap<(i32, i32), i32>,
    pub linger: (i32, i32),
    pub rcvtimeo: [u8; 16],
    pub sndtimeo: [u8; 16],
}

/// An integer option whose value is only stored (and which Linux accepts
/// on the socket's protocol), with its default.
pub fn int_option_default(proto: Proto, level: i32, name: i32) -> Option<i32> {
    use libc::*;
    let v = match (level, name) {
        (SOL_SOCKET, SO_KEEPALIVE | SO_BROADCAST | SO_OOBINLINE | SO_DONTROUTE) => 0,
        (SOL_SOCKET, SO_PRIORITY | SO_MARK | SO_PASSCRED | SO_TIMESTAMP | SO_TIMESTAMPNS) => 0,
        (SOL_SOCKET, SO_RCVLOWAT | SO_SNDLOWAT) => 1,
        (SOL_SOCKET, SO_BUSY_POLL | SO_INCOMING_CPU) => 0,
        (IPPROTO_IP, IP_TTL) => 64,
        (IPPROTO_IP, IP_TOS | IP_RECVERR | IP_PKTINFO | IP_RECVTOS | IP_RECVTTL) => 0,
        (IPPROTO_IP, IP_FREEBIND | IP_TRANSPARENT | IP_BIND_ADDRESS_NO_PORT) => 0,
        (IPPROTO_IP, IP_MTU_DISCOVER) => {
            if proto == Proto::Tcp {
                IP_PMTUDISC_WANT
            } else {
                IP_PMTUDISC_DONT
            }
        }
        (IPPROTO_IP, IP_MULTICAST_TTL | IP_MULTICAST_LOOP) => 1,
        (IPPROTO_IPV6, IPV6_UNICAST_HOPS | IPV6_MULTICAST_HOPS) => 64,
        (IPPROTO_IPV6, IPV6_RECVPKTINFO | IPV6_RECVERR | IPV6_TCLASS) => 0,
        (IPPROTO_IPV6, IPV6_MULTICAST_LOOP) => 1,
        (IPPROTO_TCP, _) if proto == Proto::Tcp => match name {
            TCP_NODELAY | TCP_CORK | TCP_DEFER_ACCEPT | TCP_USER_TIMEOUT => 0,
            TCP_QUICKACK => 1,
            TCP_KEEPIDLE => 7200,
            TCP_KEEPINTVL => 75,
            TCP_KEEPCNT => 9,
            TCP_SYNCNT => 6,
            TCP_LINGER2 => 60,
            TCP_WINDOW_CLAMP | TCP_NOTSENT_LOWAT | TCP_FASTOPEN | TCP_FASTOPEN_CONNECT => 0,
            _ => return None,
        },
        (SOL_UDP, UDP_CORK | UDP_SEGMENT | UDP_GRO) if proto == Proto::Udp => 0,
        _ => return None,
    };
    Some(v)
}

/// Options whose value Linux reads back as a boolean.
pub fn is_bool_option(level: i32, name: i32) -> bool {
    use libc::*;
    matches!(
        (level, name),
        (
            SOL_SOCKET,
            SO_KEEPALIVE
                | SO_BROADCAST
                | SO_OOBINLINE
                | SO_DONTROUTE
                | SO_PASSCRED
                | SO_TIMESTAMP
                | SO_TIMESTAMPNS
        ) | (
            IPPROTO_IP,
            IP_RECVERR
                | IP_PKTINFO
                | IP_RECVTOS
                | IP_RECVTTL
                | IP_FREEBIND
                | IP_TRANSPARENT
                | IP_BIND_ADDRESS_NO_PORT
                | IP_MULTICAST_LOOP
        ) | (
            IPPROTO_IPV6,
            IPV6_RECVPKTINFO | IPV6_RECVERR | IPV6_MULTICAST_LOOP
        ) | (IPPROTO_TCP, TCP_NODELAY | TCP_QUICKACK | TCP_CORK)
    )
}

impl Options {
    fn new(proto: Proto) -> Options {
        let (rcvbuf, sndbuf) = match proto {
            Proto::Tcp => (TCP_RCVBUF_DEFAULT, TCP_SNDBUF_DEFAULT),
            Proto::Udp => (UDP_BUF_DEFAULT, UDP_BUF_DEFAULT),
        };
        Options {
            reuseaddr: false,
            reuseport: false,
            v6only: false,
            rcvbuf,
            sndbuf,
            ints: HashMap::new(),
            linger: (0, 0),
            rcvtimeo: [0; 16],
            sndtimeo: [0; 16],
        }
    }

    /// SO_RCVBUF/SO_SNDBUF: Linux doubles the request (for its own
    /// overhead), within [minimum, 2 × net.core.*mem_max].
    pub fn buffer_size(requested: i32, minimum: i32) -> i32 {
        (requested.clamp(0, BUF_MAX) * 2).max(minimum)
    }
}

/// A received datagram and where it came from.
struct Datagram {
    from: SocketAddr,
    data: Vec<u8>,
}

enum State {
    /// Not connected (bound or not).
    Closed,
    Listening {
        backlog: usize,
        queue: VecDeque<Arc<InetSocket>>,
    },
    /// A TCP connection: our end of the host socketpair carrying it.
    Connected { fd: OwnedFd },
    /// A TCP connection over the sandbox's network device (netstack.rs).
    External {
        handle: SocketHandle,
        wake: Arc<Wake>,
    },
}

struct Inner {
    /// Bound (or autobound) local address, canonical.
    local: Option<SocketAddr>,
    /// Connected peer, canonical.
    peer: Option<SocketAddr>,
    state: State,
    /// SO_ERROR: the error a later call or getsockopt collects.
    error: Option<Errno>,
    /// A non-blocking connect answered EINPROGRESS and no connect since
    /// has collected the result.
    connecting: bool,
    /// A connect was refused: the socket stays closed both ways (Linux's
    /// tcp_done sets both shutdown bits) until it connects again.
    refused: bool,
    opts: Options,
    /// UDP: datagrams waiting, and the receive-buffer bytes they use.
    dgrams: VecDeque<Datagram>,
    dgram_bytes: usize,
    /// UDP: shutdown(2) halves (a TCP connection's are the host's).
    shut_rd: bool,
    shut_wr: bool,
    /// UDP: the network device's socket for this port, if any.
    udp_handle: Option<SocketHandle>,
}

pub struct InetSocket {
    /// AF_INET or AF_INET6.
    pub family: i32,
    pub proto: Proto,
    inner: Mutex<Inner>,
    /// Set while a listener has a connection queued, or a UDP socket a
    /// datagram or an error.
    ready: ReadyFlag,
    /// Shared with the port table, which reads it without the socket.
    listening: Arc<AtomicBool>,
    nonblocking: AtomicBool,
    /// The creator's effective uid (SO_REUSEPORT groups share one).
    pub uid: u32,
}

/// What connect(2) did.
#[derive(Debug, PartialEq, Eq)]
pub enum Connected {
    Now,
    /// Non-blocking TCP: the result comes later (EINPROGRESS), as on
    /// Linux even over loopback.
    InProgress,
}

/// What a received datagram or stream read produced.
pub struct Received {
    pub len: usize,
    /// The datagram's full length (MSG_TRUNC), or `len` for a stream.
    pub full_len: usize,
    pub from: Option<SocketAddr>,
}

/// A SO_RCVTIMEO/SO_SNDTIMEO value (a timeval's bytes; zero: none).
fn timeout_of(tv: &[u8; 16]) -> Option<std::time::Duration> {
    let sec = i64::from_le_bytes(tv[..8].try_into().ok()?);
    let usec = i64::from_le_bytes(tv[8..].try_into().ok()?);
    if sec <= 0 && usec <= 0 {
        return None;
    }
    Some(
        std::time::Duration::from_secs(sec.max(0) as u64)
            + std::time::Duration::from_micros(usec.max(0) as u64),
    )
}

/// Gives a connection's host socketpair end the socket's timeouts, so a
/// blocking read or write there ends as Linux's would (EAGAIN, or the
/// bytes moved so far).
fn apply_host_timeouts(fd: RawFd, opts: &Options) {
    for (name, tv) in [
        (libc::SO_RCVTIMEO, &opts.rcvtimeo),
        (libc::SO_SNDTIMEO, &opts.sndtimeo),
    ] {
        // SAFETY: setsockopt with a 16-byte timeval on our own socket.
        unsafe {
            libc::setsockopt(fd, libc::SOL_SOCKET, name, tv.as_ptr().cast(), 16);
        }
    }
}

/// Every internet socket of the sandbox, for /proc/net (`procnet.rs`).
fn registry() -> &'static Mutex<Vec<Weak<InetSocket>>> {
    static ALL: std::sync::OnceLock<Mutex<Vec<Weak<InetSocket>>>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| Mutex::new(Vec::new()))
}

/// The sandbox's internet sockets that are still open, oldest first.
pub fn all_sockets() -> Vec<Arc<InetSocket>> {
    let mut all = lock(registry());
    all.retain(|w| w.strong_count() > 0);
    all.iter().filter_map(Weak::upgrade).collect()
}

/// A socket as /proc/net/{tcp,udp}[6] lists it.
pub struct ProcNetRow {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Linux's TCP state number (TCP_ESTABLISHED = 1 ... TCP_LISTEN = 10);
    /// UDP shows 1 connected, 7 not.
    pub state: u8,
    pub tx_queue: usize,
    pub rx_queue: usize,
    pub uid: u32,
}

impl InetSocket {
    /// This socket's row in /proc/net, if it has one: bound UDP sockets,
    /// and TCP sockets that listen or have a connection (Linux lists its
    /// listening and established hash tables).
    pub fn proc_net_row(&self) -> Option<ProcNetRow> {
        let inner = self.inner();
        let local = inner.local?;
        let remote = inner
            .peer
            .unwrap_or_else(|| SocketAddr::new(self.wildcard(), 0));
        let (state, listen_queue) = match (&inner.state, self.proto) {
            (State::Listening { queue, .. }, _) => (10, queue.len()),
            (State::Connected { .. }, _) => (1, 0),
            (State::External { handle, .. }, _) => (
                netstack::stack().map_or(7, |ns| ns.linux_tcp_state(*handle)),
                0,
            ),
            (State::Closed, Proto::Udp) => (if inner.peer.is_some() { 1 } else { 7 }, 0),
            (State::Closed, Proto::Tcp) => return None,
        };
        let dgram_bytes = inner.dgram_bytes;
        drop(inner);
        let (tx_queue, rx_queue) = match (state, self.proto) {
            // A listener shows its accept queue.
            (10, _) => (0, listen_queue),
            (_, Proto::Tcp) => (self.unsent(), self.unread()),
            (_, Proto::Udp) => (0, dgram_bytes),
        };
        Some(ProcNetRow {
            local,
            remote,
            state,
            tx_queue,
            rx_queue,
            uid: self.uid,
        })
    }

    pub fn new(family: i32, proto: Proto, nonblocking: bool, uid: u32) -> VfsResult<Arc<Self>> {
        let s = Self::new_unlisted(family, proto, nonblocking, uid)?;
        let mut all = lock(registry());
        // Closed sockets leave dead entries: drop them whenever the list
        // has doubled, so a busy server's list stays proportional to its
        // open sockets.
        if all.len() >= all.capacity() {
            all.retain(|w| w.strong_count() > 0);
        }
        all.push(Arc::downgrade(&s));
        Ok(s)
    }

    fn new_unlisted(
        family: i32,
        proto: Proto,
        nonblocking: bool,
        uid: u32,
    ) -> VfsResult<Arc<Self>> {
        Ok(Arc::new(InetSocket {
            family,
            proto,
            inner: Mutex::new(Inner {
                local: None,
                peer: None,
                state: State::Closed,
                error: None,
                connecting: false,
                refused: false,
                opts: Options::new(proto),
                dgrams: VecDeque::new(),
                dgram_bytes: 0,
                shut_rd: false,
                shut_wr: false,
                udp_handle: None,
            }),
            ready: ReadyFlag::new()?,
            listening: Arc::new(AtomicBool::new(false)),
            nonblocking: AtomicBool::new(nonblocking),
            uid,
        }))
    }

    fn id(&self) -> usize {
        self as *const InetSocket as usize
    }

    pub fn stype(&self) -> i32 {
        match self.proto {
            Proto::Tcp => libc::SOCK_STREAM,
            Proto::Udp => libc::SOCK_DGRAM,
        }
    }

    pub fn protocol(&self) -> i32 {
        match self.proto {
            Proto::Tcp => libc::IPPROTO_TCP,
            Proto::Udp => libc::IPPROTO_UDP,
        }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// The unspecified address of this socket's family.
    fn wildcard(&self) -> IpAddr {
        if self.family == libc::AF_INET {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        }
    }

    fn binding(&self, ip: IpAddr, opts: &Options, self_arc: &Arc<InetSocket>) -> Binding {
        Binding {
            ip,
            v6only: self.family == libc::AF_INET6 && opts.v6only,
            reuseaddr: opts.reuseaddr,
            reuseport: opts.reuseport,
            uid: self.uid,
            listening: self.listening.clone(),
            id: self.id(),
            sock: Arc::downgrade(self_arc),
        }
    }

    /// Checks an address against this socket's family: an IPv6-only
    /// socket has no IPv4 addresses (`errno` is the call's answer).
    fn check_family(&self, addr: SocketAddr, opts: &Options, errno: Errno) -> Result<(), Errno> {
        if self.family == libc::AF_INET6 && opts.v6only && addr.is_ipv4() {
            return Err(errno);
        }
        Ok(())
    }

    /// bind(2). `addr` is canonical; `may_bind_low` is
    /// CAP_NET_BIND_SERVICE.
    pub fn bind(self: &Arc<Self>, addr: SocketAddr, may_bind_low: bool) -> Result<(), Errno> {
        let opts = {
            let inner = self.inner();
            if inner.local.is_some() {
                return Err(Errno::EINVAL);
            }
            inner.opts.clone()
        };
        self.check_family(addr, &opts, Errno::EINVAL)?;
        let ip = addr.ip();
        if !ip.is_unspecified() && !is_loopback(ip) && !netstack::is_device_addr(ip) {
            return Err(Errno::EADDRNOTAVAIL);
        }
        if addr.port() != 0 && addr.port() < 1024 && !may_bind_low {
            return Err(Errno::EACCES);
        }
        let mut p = ports();
        let b = self.binding(ip, &opts, self);
        let port = if addr.port() == 0 {
            p.ephemeral(self.proto)?
        } else {
            if p.conflicts(self.proto, addr.port(), &b) {
                return Err(Errno::EADDRINUSE);
            }
            addr.port()
        };
        let mut inner = self.inner();
        if inner.local.is_some() {
            return Err(Errno::EINVAL);
        }
        p.insert(self.proto, port, b);
        inner.local = Some(SocketAddr::new(ip, port));
        drop(inner);
        drop(p);
        // A UDP port on the wildcard or the device's address also takes
        // datagrams from the network device.
        if self.proto == Proto::Udp {
            if let Some(ns) = netstack::stack() {
                let reachable = match ip {
                    IpAddr::V4(v4) => v4.is_unspecified() || netstack::is_device_addr(ip),
                    IpAddr::V6(v6) => v6.is_unspecified() && !opts.v6only,
                };
                if reachable {
                    let h = ns.udp_bind(port, self)?;
                    self.inner().udp_handle = Some(h);
                }
            }
        }
        Ok(())
    }

    /// Binds to an ephemeral port on `ip` if the socket has no address yet
    /// (listen, connect and the first send do this).
    fn autobind(self: &Arc<Self>, ip: IpAddr) -> Result<SocketAddr, Errno> {
        if let Some(a) = self.inner().local {
            return Ok(a);
        }
        match self.bind(SocketAddr::new(ip, 0), true) {
            Ok(()) | Err(Errno::EINVAL) => self.inner().local.ok_or(Errno::EINVAL),
            Err(e) => Err(e),
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.inner()
            .local
            .unwrap_or_else(|| SocketAddr::new(self.wildcard(), 0))
    }

    pub fn peer_addr(&self) -> Result<SocketAddr, Errno> {
        let inner = self.inner();
        match (&inner.state, inner.peer) {
            (State::Connected { .. } | State::External { .. }, Some(p)) => Ok(p),
            (_, Some(p)) if self.proto == Proto::Udp => Ok(p),
            _ => Err(Errno::ENOTCONN),
        }
    }

    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Relaxed)
    }

    pub fn listen(self: &Arc<Self>, backlog: i32) -> Result<(), Errno> {
        if self.proto != Proto::Tcp {
            return Err(Errno::EOPNOTSUPP);
        }
        {
            let inner = self.inner();
            if matches!(
                inner.state,
                State::Connected { .. } | State::External { .. }
            ) || inner.connecting
            {
                return Err(Errno::EINVAL);
            }
        }
        let local = self.autobind(self.wildcard())?;
        let opts = self.inner().opts.clone();
        let me = self.binding(local.ip(), &opts, self);
        if ports().listen_conflict(local.port(), &me) {
            return Err(Errno::EADDRINUSE);
        }
        let backlog = (backlog.max(0) as usize).min(SOMAXCONN);
        let mut inner = self.inner();
        match &mut inner.state {
            State::Listening { backlog: b, .. } => *b = backlog,
            _ => {
                inner.state = State::Listening {
                    backlog,
                    queue: VecDeque::new(),
                }
            }
        }
        self.listening.store(true, Ordering::Relaxed);
        drop(inner);
        // Connections from the network device too, for a listener on the
        // wildcard or the device's address.
        if let Some(ns) = netstack::stack() {
            let ip = local.ip();
            let v4_reachable = match ip {
                IpAddr::V4(v4) => v4.is_unspecified() || netstack::is_device_addr(ip),
                IpAddr::V6(v6) => v6.is_unspecified() && !self.inner().opts.v6only,
            };
            if v4_reachable {
                ns.listen(local.port(), backlog, self)?;
            }
        }
        Ok(())
    }

    /// A connection the network device brought to this listener.
    pub fn accept_external(
        self: &Arc<Self>,
        handle: SocketHandle,
        wake: Arc<Wake>,
        local: SocketAddr,
        remote: SocketAddr,
    ) {
        let Ok(server) = InetSocket::new(self.family, Proto::Tcp, false, self.uid) else {
            return;
        };
        {
            let mut s = server.inner();
            s.local = Some(local);
            s.peer = Some(remote);
            s.state = State::External { handle, wake };
            s.opts = self.inner().opts.clone();
        }
        let mut inner = self.inner();
        // Linux's accept queue holds backlog + 1; a connection beyond it
        // (or after the listener closed) is closed when `server` drops,
        // after this lock: a peer cannot grow the queue without bound.
        if let State::Listening { queue, backlog } = &mut inner.state {
            if queue.len() <= *backlog {
                queue.push_back(server);
                self.ready.update(true);
            }
        }
    }

    /// connect(2) to a canonical address (None: AF_UNSPEC).
    pub fn connect(self: &Arc<Self>, dest: Option<SocketAddr>) -> Result<Connected, Errno> {
        match self.proto {
            Proto::Udp => self.connect_udp(dest).map(|_| Connected::Now),
            Proto::Tcp => self.connect_tcp(dest),
        }
    }

    fn route(&self, dest: SocketAddr) -> Result<SocketAddr, Errno> {
        let ip = dest.ip();
        // Linux treats the unspecified destination as this host.
        if ip.is_unspecified() {
            return Ok(SocketAddr::new(source_for(ip), dest.port()));
        }
        if is_loopback(ip) {
            return Ok(dest);
        }
        if let IpAddr::V4(v4) = ip {
            if v4.is_broadcast() || v4.is_multicast() {
                return Err(Errno::ENETUNREACH);
            }
        }
        // Through the device (IPv4 only, so far).
        if netstack::routable(ip) {
            return Ok(dest);
        }
        Err(Errno::ENETUNREACH)
    }

    fn connect_udp(self: &Arc<Self>, dest: Option<SocketAddr>) -> Result<(), Errno> {
        let Some(dest) = dest else {
            let mut inner = self.inner();
            inner.peer = None;
            return Ok(());
        };
        self.check_family(dest, &self.inner().opts.clone(), Errno::ENETUNREACH)?;
        let dest = self.route(dest)?;
        if dest.port() == 0 {
            // Linux connects, then every send fails; keep it simple.
            return Err(Errno::EINVAL);
        }
        let src = match netstack::stack() {
            Some(ns) if !is_loopback(dest.ip()) && !netstack::is_device_addr(dest.ip()) => {
                IpAddr::V4(ns.device.addr)
            }
            _ => source_for(dest.ip()),
        };
        let local = self.autobind(self.wildcard())?;
        if local.ip().is_unspecified() {
            ports().rebind(self.id(), src);
            self.inner().local = Some(SocketAddr::new(src, local.port()));
        }
        let mut inner = self.inner();
        inner.peer = Some(dest);
        inner.error = None;
        Ok(())
    }

    fn connect_tcp(self: &Arc<Self>, dest: Option<SocketAddr>) -> Result<Connected, Errno> {
        {
            let mut inner = self.inner();
            if inner.connecting {
                // The outcome of an earlier non-blocking connect: the
                // first call after it learns it, later ones see EISCONN.
                inner.connecting = false;
                if let Some(e) = inner.error.take() {
                    self.ready.update(false);
                    return Err(e);
                }
                if matches!(inner.state, State::Connected { .. }) {
                    return Ok(Connected::Now);
                }
                if let State::External { handle, wake } = &inner.state {
                    if let Some(ns) = netstack::stack() {
                        match ns.connect_result(*handle, wake) {
                            None => {
                                inner.connecting = true;
                                return Err(Errno::EALREADY);
                            }
                            Some(Some(e)) => {
                                inner.refused = true;
                                return Err(e);
                            }
                            Some(None) => return Ok(Connected::Now),
                        }
                    }
                }
            }
            match inner.state {
                State::Connected { .. } | State::External { .. } => return Err(Errno::EISCONN),
                State::Listening { .. } => return Err(Errno::EISCONN),
                State::Closed => {}
            }
        }
        let Some(dest) = dest else {
            return Ok(Connected::Now);
        };
        self.check_family(dest, &self.inner().opts.clone(), Errno::ENETUNREACH)?;
        let dest = self.route(dest)?;
        if !is_loopback(dest.ip()) && !netstack::is_device_addr(dest.ip()) {
            return self.connect_external(dest);
        }
        let src = source_for(dest.ip());
        let local = self.autobind(self.wildcard())?;
        let local = if local.ip().is_unspecified() {
            let l = SocketAddr::new(src, local.port());
            ports().rebind(self.id(), src);
            self.inner().local = Some(l);
            l
        } else {
            local
        };
        let nonblocking = self.nonblocking.load(Ordering::Relaxed);
        loop {
            let listener = lookup(Proto::Tcp, dest, |s| s.is_listening());
            let Some(listener) = listener else {
                let mut inner = self.inner();
                inner.refused = true;
                if nonblocking {
                    inner.error = Some(Errno::ECONNREFUSED);
                    inner.connecting = true;
                    return Ok(Connected::InProgress);
                }
                return Err(Errno::ECONNREFUSED);
            };
            match listener.enqueue(self, local, dest, nonblocking)? {
                Some(fd) => {
                    set_host_nonblock(fd.as_raw_fd(), nonblocking);
                    let mut inner = self.inner();
                    apply_host_timeouts(fd.as_raw_fd(), &inner.opts);
                    inner.state = State::Connected { fd };
                    inner.peer = Some(dest);
                    inner.refused = false;
                    if nonblocking {
                        inner.connecting = true;
                        return Ok(Connected::InProgress);
                    }
                    return Ok(Connected::Now);
                }
                // The accept queue is full: Linux's SYN goes unanswered
                // and is sent again; wait for room.
                None => {
                    if crate::kernel::interrupted() {
                        return Err(Errno::EINTR);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
        }
    }

    /// connect(2) through the network device.
    fn connect_external(self: &Arc<Self>, dest: SocketAddr) -> Result<Connected, Errno> {
        let (Some(ns), SocketAddr::V4(remote)) = (netstack::stack(), dest) else {
            return Err(Errno::ENETUNREACH);
        };
        let local = self.autobind(self.wildcard())?;
        let src = IpAddr::V4(ns.device.addr);
        if local.ip().is_unspecified() {
            ports().rebind(self.id(), src);
        }
        let (handle, wake) = ns.connect(local.port(), remote)?;
        {
            let mut inner = self.inner();
            inner.local = Some(SocketAddr::new(src, local.port()));
            inner.peer = Some(dest);
            inner.state = State::External {
                handle,
                wake: wake.clone(),
            };
            inner.refused = false;
        }
        if self.nonblocking.load(Ordering::Relaxed) {
            self.inner().connecting = true;
            return Ok(Connected::InProgress);
        }
        loop {
            match ns.connect_result(handle, &wake) {
                Some(None) => return Ok(Connected::Now),
                Some(Some(e)) => {
                    self.inner().refused = true;
                    return Err(e);
                }
                None => {}
            }
            // Interrupted: the connection goes on, as Linux's does.
            if crate::kernel::interrupted() {
                self.inner().connecting = true;
                return Err(Errno::EINTR);
            }
            let mut p = [
                libc::pollfd {
                    fd: wake.tx.fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: wake.rx.fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: poll on our own pollfd array; 100 ms slices so an
            // interrupt is noticed.
            unsafe { libc::poll(p.as_mut_ptr(), 2, 100) };
        }
    }

    /// The connection over the device, if this is one.
    fn external(&self) -> Option<(SocketHandle, Arc<Wake>)> {
        match &self.inner().state {
            State::External { handle, wake } => Some((*handle, wake.clone())),
            _ => None,
        }
    }

    /// Reads a TCP connection's bytes (either kind of connection).
    pub fn stream_read(
        &self,
        buf: &mut [u8],
        flags: i32,
        nonblocking: bool,
    ) -> Result<usize, Errno> {
        if let Some((h, wake)) = self.external() {
            let ns = netstack::stack().ok_or(Errno::ENOTCONN)?;
            let peek = flags & libc::MSG_PEEK != 0;
            let deadline = self.rcv_deadline();
            let mut done = 0;
            loop {
                match ns.recv(h, &mut buf[done..], peek) {
                    Ok(0) => return Ok(done),
                    Ok(n) => {
                        done += n;
                        if flags & libc::MSG_WAITALL == 0 || done == buf.len() || peek {
                            return Ok(done);
                        }
                    }
                    Err(Errno::EAGAIN) if done > 0 && flags & libc::MSG_WAITALL == 0 => {
                        return Ok(done)
                    }
                    Err(Errno::EAGAIN) if !nonblocking && flags & libc::MSG_DONTWAIT == 0 => {
                        if let Err(e) = wake.rx.wait_until(deadline) {
                            return if done > 0 { Ok(done) } else { Err(e) };
                        }
                    }
                    Err(_) if done > 0 => return Ok(done),
                    Err(e) => return Err(e),
                }
            }
        }
        let fd = self.stream_fd().ok_or(Errno::ENOTCONN)?;
        let mut fl = flags & (libc::MSG_DONTWAIT | libc::MSG_PEEK | libc::MSG_WAITALL);
        if nonblocking {
            fl |= libc::MSG_DONTWAIT;
        }
        retry_host(|| {
            // SAFETY: recv into the caller's buffer on a socket the sentry
            // owns.
            Errno::result(unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), fl) })
                .map(|n| n as usize)
        })
    }

    /// Writes to a TCP connection (either kind); EPIPE when there is none.
    pub fn stream_write(&self, data: &[u8], flags: i32, nonblocking: bool) -> Result<usize, Errno> {
        if let Some(e) = self.take_error() {
            return Err(e);
        }
        if let Some((h, wake)) = self.external() {
            let ns = netstack::stack().ok_or(Errno::EPIPE)?;
            let deadline = self.snd_deadline();
            let mut done = 0;
            while done < data.len() {
                match ns.send(h, &data[done..]) {
                    Ok(n) => done += n,
                    Err(Errno::EAGAIN) if done > 0 && nonblocking => return Ok(done),
                    Err(Errno::EAGAIN) if !nonblocking && flags & libc::MSG_DONTWAIT == 0 => {
                        if let Err(e) = wake.tx.wait_until(deadline) {
                            return if done > 0 { Ok(done) } else { Err(e) };
                        }
                    }
                    Err(_) if done > 0 => return Ok(done),
                    Err(e) => return Err(e),
                }
            }
            return Ok(done);
        }
        let fd = self.stream_fd().ok_or(Errno::EPIPE)?;
        let mut fl = (flags & (libc::MSG_DONTWAIT | libc::MSG_MORE)) | libc::MSG_NOSIGNAL;
        if nonblocking {
            fl |= libc::MSG_DONTWAIT;
        }
        retry_host(|| {
            // SAFETY: send from the caller's buffer on a socket the sentry
            // owns.
            Errno::result(unsafe { libc::send(fd, data.as_ptr().cast(), data.len(), fl) })
                .map(|n| n as usize)
        })
    }

    /// Queues a connection from `client` (at `from`) to `to` on this
    /// listener, and returns the client's end of it; None while the queue
    /// is full (a non-blocking client is admitted anyway, as its SYN
    /// would be retried until it is).
    fn enqueue(
        self: &Arc<Self>,
        client: &InetSocket,
        from: SocketAddr,
        to: SocketAddr,
        force: bool,
    ) -> Result<Option<OwnedFd>, Errno> {
        let mut inner = self.inner();
        let opts = inner.opts.clone();
        let State::Listening { backlog, queue } = &mut inner.state else {
            return Err(Errno::ECONNREFUSED);
        };
        // Linux admits backlog + 1 pending connections.
        if queue.len() > *backlog && !force {
            return Ok(None);
        }
        let (mine, theirs) = host_socketpair(libc::SOCK_STREAM)?;
        let server = InetSocket::new(self.family, Proto::Tcp, false, self.uid)?;
        {
            let mut s = server.inner();
            s.local = Some(to);
            s.peer = Some(from);
            // An accepted socket inherits the listener's options.
            apply_host_timeouts(theirs.as_raw_fd(), &opts);
            s.state = State::Connected { fd: theirs };
            s.opts = opts;
        }
        let _ = client;
        queue.push_back(server);
        self.ready.update(true);
        Ok(Some(mine))
    }

    /// accept(2): the next queued connection.
    pub fn accept(&self) -> Result<Arc<InetSocket>, Errno> {
        let deadline = self.rcv_deadline();
        loop {
            {
                let mut inner = self.inner();
                let State::Listening { queue, .. } = &mut inner.state else {
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
            self.ready.wait_until(deadline)?;
        }
    }

    /// The host fd a TCP connection's bytes travel on.
    pub fn stream_fd(&self) -> Option<RawFd> {
        match &self.inner().state {
            State::Connected { fd } => Some(fd.as_raw_fd()),
            _ => None,
        }
    }

    /// Takes the pending error (SO_ERROR, or the next call's failure).
    pub fn take_error(&self) -> Option<Errno> {
        let mut inner = self.inner();
        if inner.error.is_none() && inner.connecting {
            if let (State::External { handle, wake }, Some(ns)) = (&inner.state, netstack::stack())
            {
                if let Some(Some(e)) = ns.connect_result(*handle, wake) {
                    inner.connecting = false;
                    inner.refused = true;
                    return Some(e);
                }
            }
        }
        let e = inner.error.take();
        if e.is_some() && self.proto == Proto::Udp {
            self.ready.update(!inner.dgrams.is_empty());
        }
        e
    }

    pub fn options(&self) -> Options {
        self.inner().opts.clone()
    }

    pub fn set_options(
        &self,
        f: impl FnOnce(&mut Options) -> Result<(), Errno>,
    ) -> Result<(), Errno> {
        let mut inner = self.inner();
        f(&mut inner.opts)?;
        if let State::Connected { fd } = &inner.state {
            apply_host_timeouts(fd.as_raw_fd(), &inner.opts);
        }
        Ok(())
    }

    /// When a blocking receive (or accept) gives up: SO_RCVTIMEO from now.
    fn rcv_deadline(&self) -> Option<std::time::Instant> {
        // A time too far to represent is forever, as on Linux.
        timeout_of(&self.inner().opts.rcvtimeo)
            .and_then(|d| std::time::Instant::now().checked_add(d))
    }

    /// When a blocking send gives up: SO_SNDTIMEO from now.
    fn snd_deadline(&self) -> Option<std::time::Instant> {
        timeout_of(&self.inner().opts.sndtimeo)
            .and_then(|d| std::time::Instant::now().checked_add(d))
    }

    pub fn is_bound(&self) -> bool {
        self.inner().local.is_some()
    }

    /// Sends a datagram (UDP), to `to` or to the connected peer.
    pub fn send_dgram(
        self: &Arc<Self>,
        data: &[u8],
        to: Option<SocketAddr>,
    ) -> Result<usize, Errno> {
        if let Some(e) = self.take_error() {
            return Err(e);
        }
        let max = if self.family == libc::AF_INET {
            UDP_MAX_V4
        } else {
            UDP_MAX_V6
        };
        if data.len() > max {
            return Err(Errno::EMSGSIZE);
        }
        let (peer, shut_wr, opts) = {
            let inner = self.inner();
            (inner.peer, inner.shut_wr, inner.opts.clone())
        };
        if shut_wr {
            return Err(Errno::EPIPE);
        }
        let connected = to.is_none();
        let dest = match to.or(peer) {
            Some(d) => d,
            None => return Err(Errno::EDESTADDRREQ),
        };
        self.check_family(dest, &opts, Errno::ENETUNREACH)?;
        if dest.port() == 0 {
            return Err(Errno::EINVAL);
        }
        let dest = self.route(dest)?;
        let local = self.autobind(self.wildcard())?;
        if let (Some(ns), SocketAddr::V4(remote)) = (netstack::stack(), dest) {
            if !is_loopback(dest.ip()) && !netstack::is_device_addr(dest.ip()) {
                // A socket bound to a loopback address has no way out.
                let h = self.inner().udp_handle.ok_or(Errno::EINVAL)?;
                ns.udp_send(h, data, remote)?;
                return Ok(data.len());
            }
        }
        let from = if local.ip().is_unspecified() {
            SocketAddr::new(source_for(dest.ip()), local.port())
        } else {
            local
        };
        let target = lookup(Proto::Udp, dest, |s| {
            let i = s.inner();
            i.peer.is_none_or(|p| p == from) && !i.shut_rd
        });
        match target {
            Some(t) => t.deliver(from, data),
            // Linux's loopback answers with ICMP port unreachable, which a
            // connected socket reports on its next call.
            None if connected => {
                let mut inner = self.inner();
                inner.error = Some(Errno::ECONNREFUSED);
                self.ready.update(true);
            }
            None => {}
        }
        Ok(data.len())
    }

    pub(super) fn deliver(&self, from: SocketAddr, data: &[u8]) {
        let mut inner = self.inner();
        // A connected socket hears only its peer.
        if inner.peer.is_some_and(|p| p != from) || inner.shut_rd {
            return;
        }
        let cost = data.len() + DGRAM_OVERHEAD;
        // Linux takes a datagram while the queue is below the buffer.
        if inner.dgram_bytes >= inner.opts.rcvbuf as usize {
            return;
        }
        inner.dgram_bytes += cost;
        inner.dgrams.push_back(Datagram {
            from,
            data: data.to_vec(),
        });
        self.ready.update(true);
    }

    /// Receives one datagram into `buf` (UDP).
    pub fn recv_dgram(&self, buf: &mut [u8], flags: i32) -> Result<Received, Errno> {
        let deadline = self.rcv_deadline();
        loop {
            {
                let mut inner = self.inner();
                if let Some(e) = inner.error.take() {
                    self.ready.update(!inner.dgrams.is_empty());
                    return Err(e);
                }
                let peek = flags & libc::MSG_PEEK != 0;
                let got = if peek {
                    inner.dgrams.front().map(|d| (d.from, d.data.clone()))
                } else {
                    inner.dgrams.pop_front().map(|d| (d.from, d.data))
                };
                if let Some((from, data)) = got {
                    if !peek {
                        inner.dgram_bytes = inner
                            .dgram_bytes
                            .saturating_sub(data.len() + DGRAM_OVERHEAD);
                    }
                    self.ready.update(!inner.dgrams.is_empty());
                    let n = data.len().min(buf.len());
                    buf[..n].copy_from_slice(&data[..n]);
                    return Ok(Received {
                        len: n,
                        full_len: data.len(),
                        from: Some(from),
                    });
                }
                // After SHUT_RD Linux still answers a non-blocking receive
                // with EAGAIN; a blocking one returns at once, empty.
                let nonblocking =
                    self.nonblocking.load(Ordering::Relaxed) || flags & libc::MSG_DONTWAIT != 0;
                if inner.shut_rd && !nonblocking {
                    return Ok(Received {
                        len: 0,
                        full_len: 0,
                        from: None,
                    });
                }
            }
            if self.nonblocking.load(Ordering::Relaxed) || flags & libc::MSG_DONTWAIT != 0 {
                return Err(Errno::EAGAIN);
            }
            self.ready.wait_until(deadline)?;
        }
    }

    /// shutdown(2).
    pub fn shutdown(&self, how: i32) -> Result<(), Errno> {
        let mut inner = self.inner();
        match &inner.state {
            State::Connected { fd } => {
                // SAFETY: shutdown of a socket the sentry owns.
                if unsafe { libc::shutdown(fd.as_raw_fd(), how) } < 0 {
                    return Err(Errno::last());
                }
                Ok(())
            }
            State::External { handle, .. } => {
                if how != libc::SHUT_RD {
                    if let Some(ns) = netstack::stack() {
                        ns.shutdown_write(*handle);
                    }
                }
                Ok(())
            }
            State::Listening { .. } if how != libc::SHUT_WR => {
                // Linux stops listening: queued connections are reset.
                inner.state = State::Closed;
                self.listening.store(false, Ordering::Relaxed);
                if let (Some(ns), Some(l)) = (netstack::stack(), inner.local) {
                    ns.unlisten(l.port(), self as *const InetSocket);
                }
                self.ready.update(false);
                Ok(())
            }
            _ if self.proto == Proto::Udp => {
                if inner.peer.is_none() {
                    return Err(Errno::ENOTCONN);
                }
                if how != libc::SHUT_WR {
                    inner.shut_rd = true;
                    self.ready.update(true);
                }
                if how != libc::SHUT_RD {
                    inner.shut_wr = true;
                }
                Ok(())
            }
            _ => Err(Errno::ENOTCONN),
        }
    }

    pub fn nonblocking(&self) -> bool {
        self.nonblocking.load(Ordering::Relaxed)
    }

    /// Bytes waiting to be read (FIONREAD): a stream's unread bytes, or
    /// the size of the next datagram.
    fn unread(&self) -> usize {
        let inner = self.inner();
        match &inner.state {
            State::Connected { fd } => {
                let mut n: libc::c_int = 0;
                // SAFETY: FIONREAD writes one int into our own variable.
                if unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) } < 0 {
                    return 0;
                }
                n.max(0) as usize
            }
            State::External { handle, .. } => netstack::stack().map_or(0, |ns| ns.unread(*handle)),
            _ => inner.dgrams.front().map_or(0, |d| d.data.len()),
        }
    }

    /// Bytes sent but not yet acknowledged (SIOCOUTQ). Over loopback
    /// Linux acknowledges what reaches the peer's receive queue at once,
    /// read or not, so a sandbox connection has none outstanding (the
    /// host socketpair's own figure counts buffer overhead, not bytes).
    pub fn unsent(&self) -> usize {
        match &self.inner().state {
            State::Connected { .. } => 0,
            State::External { handle, .. } => netstack::stack().map_or(0, |ns| ns.unsent(*handle)),
            _ => 0,
        }
    }
}

impl Drop for InetSocket {
    fn drop(&mut self) {
        let Some(ns) = netstack::stack() else { return };
        let inner = match self.inner.get_mut() {
            Ok(i) => i,
            Err(p) => p.into_inner(),
        };
        if let State::External { handle, .. } = &inner.state {
            ns.close(*handle);
        }
        if let Some(h) = inner.udp_handle {
            ns.udp_close(h);
        }
        if let Some(l) = inner.local {
            ns.unlisten(l.port(), self as *const InetSocket);
        }
    }
}

impl FileOps for InetSocket {
    fn seekable(&self) -> bool {
        false
    }

    fn read_at(&self, buf: &mut [u8], _off: u64) -> VfsResult<usize> {
        if self.proto == Proto::Udp {
            return self.recv_dgram(buf, 0).map(|r| r.len);
        }
        if let Some(e) = self.take_error() {
            return Err(e);
        }
        self.stream_read(buf, 0, self.nonblocking.load(Ordering::Relaxed))
    }

    fn write_at(&self, buf: &[u8], _off: u64) -> VfsResult<usize> {
        if self.proto == Proto::Udp {
            return Err(Errno::EDESTADDRREQ);
        }
        // Linux's tcp_sendmsg on a socket that is not connected: EPIPE.
        self.stream_write(buf, 0, self.nonblocking.load(Ordering::Relaxed))
    }

    fn stat(&self) -> VfsResult<FileStat> {
        super::socket_stat()
    }

    fn host_fd(&self) -> Option<RawFd> {
        self.stream_fd()
    }

    fn poll_fd(&self) -> Option<RawFd> {
        if let Some((_, wake)) = self.external() {
            return Some(wake.rx.fd.as_raw_fd());
        }
        self.stream_fd().or(Some(self.ready.fd.as_raw_fd()))
    }

    fn poll_fd_out(&self) -> Option<RawFd> {
        self.external().map(|(_, wake)| wake.tx.fd.as_raw_fd())
    }

    fn poll_fixed(&self) -> Option<i16> {
        let inner = self.inner();
        let err = if inner.error.is_some() {
            libc::POLLERR
        } else {
            0
        };
        match (&inner.state, self.proto) {
            (State::Connected { .. }, _) => None,
            (State::External { handle, wake }, _) => {
                let (h, w) = (*handle, wake.clone());
                drop(inner);
                netstack::stack().map(|ns| ns.poll_mask(h, &w))
            }
            (State::Listening { queue, .. }, _) => Some(if queue.is_empty() {
                0
            } else {
                libc::POLLIN | libc::POLLRDNORM
            }),
            // A TCP socket that is not connected: Linux's tcp_poll says
            // writable and hung up; a refused connect adds the error and
            // the closed read side.
            (State::Closed, Proto::Tcp) => {
                let mut m = libc::POLLOUT | libc::POLLWRNORM | libc::POLLHUP | err;
                if inner.refused {
                    m |= libc::POLLIN | libc::POLLRDNORM | libc::POLLRDHUP;
                }
                Some(m)
            }
            (State::Closed, Proto::Udp) => {
                let mut m = libc::POLLOUT | libc::POLLWRNORM | err;
                if !inner.dgrams.is_empty() {
                    m |= libc::POLLIN | libc::POLLRDNORM;
                }
                if inner.shut_rd {
                    m |= libc::POLLIN | libc::POLLRDNORM | libc::POLLRDHUP;
                }
                if inner.shut_rd && inner.shut_wr {
                    m |= libc::POLLHUP;
                }
                Some(m)
            }
        }
    }

    fn set_nonblocking(&self, on: bool) {
        self.nonblocking.store(on, Ordering::Relaxed);
        if let State::Connected { fd } = &self.inner().state {
            set_host_nonblock(fd.as_raw_fd(), on);
        }
    }

    fn readable_bytes(&self) -> Option<usize> {
        Some(self.unread())
    }

    fn inet_socket(self: Arc<Self>) -> Option<Arc<InetSocket>> {
        Some(self)
    }
}
