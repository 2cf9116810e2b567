//! ICMP sockets over IPv4 (gVisor's netstack ICMP endpoints): raw
//! `SOCK_RAW`/`IPPROTO_ICMP` sockets, which need CAP_NET_RAW and see
//! whole IP packets, and ping sockets (`SOCK_DGRAM`/`IPPROTO_ICMP`),
//! which send echo requests under an identifier of their own and receive
//! the matching replies, for the groups `net.ipv4.ping_group_range`
//! admits. `ping` uses one or the other.
//!
//! With the sentry's network, an echo request to a local address
//! (127.0.0.0/8, or the device's) is answered here, as Linux's loopback
//! and icmp_echo would; anything else leaves through the network device
//! the stack took over (`netstack::Netstack::icmp_send`), and every ICMP
//! packet the device receives is offered to every socket (`deliver`).
//! The stack itself answers echo requests to the device's address, so the
//! sandbox answers pings as a Linux host does. With `--network host` the
//! socket is a host ICMP socket, with addresses rebuilt and options from
//! an allowlist.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::{set_host_nonblock, socket_stat, Received, SocketOps};
use crate::fsimpl::host::retry_host;
use crate::fsimpl::ready::ReadyFlag;
use crate::kernel::lock;
use crate::vfs::{FileOps, FileStat, VfsResult};

const ICMP_ECHOREPLY: u8 = 0;
const ICMP_ECHO: u8 = 8;
const IPV4_HEADER: usize = 20;
const ICMP_HEADER: usize = 8;
/// SOL_RAW's ICMP_FILTER (linux/icmp.h).
const ICMP_FILTER: i32 = 1;
/// Linux's default SO_RCVBUF / SO_SNDBUF (net.core.rmem_default), which
/// is also the most a socket may ask for (net.core.rmem_max).
const DEFAULT_BUF: i32 = 212_992;
/// What each queued packet is charged beyond its bytes (an skb's size).
const PACKET_OVERHEAD: usize = 768;
/// The largest IPv4 packet.
const IP_MAX: usize = 65_535;
/// Message flags a send may carry.
const SEND_FLAGS: i32 =
    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL | libc::MSG_CONFIRM | libc::MSG_DONTROUTE;
/// Message flags a receive may carry.
const RECV_FLAGS: i32 =
    libc::MSG_DONTWAIT | libc::MSG_PEEK | libc::MSG_TRUNC | libc::MSG_CMSG_CLOEXEC;

/// Which ICMP socket it is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// SOCK_RAW: sends ICMP messages (or whole packets with IP_HDRINCL),
    /// receives every ICMP packet with its IP header.
    Raw,
    /// SOCK_DGRAM: sends echo requests, receives their replies, without
    /// IP headers.
    Ping,
}

struct Inner {
    /// The local address bound, if any.
    bound: Option<Ipv4Addr>,
    /// A ping socket's identifier (its "port"); 0 until bound.
    ident: u16,
    /// The connected peer and the port given with it.
    peer: Option<(Ipv4Addr, u16)>,
    /// Received (sender, bytes): whole packets for raw sockets, ICMP
    /// messages for ping sockets.
    queue: VecDeque<(Ipv4Addr, Vec<u8>)>,
    queued: usize,
    rcvbuf: i32,
    sndbuf: i32,
    ttl: Option<u8>,
    tos: u8,
    hdrincl: bool,
    /// ICMP_FILTER: types (below 32) a raw socket does not want.
    filter: u32,
    rcvtimeo: Option<Duration>,
    shut_rd: bool,
    /// Accepted options with no effect here, read back as set.
    other: Vec<((i32, i32), i32)>,
}

pub struct IcmpSocket {
    pub kind: Kind,
    /// With `--network host`: the host ICMP socket.
    host: Option<OwnedFd>,
    inner: Mutex<Inner>,
    ready: ReadyFlag,
    nonblocking: AtomicBool,
}

/// The sentry's ICMP sockets, which `deliver` offers packets to.
fn sockets() -> &'static Mutex<Vec<Weak<IcmpSocket>>> {
    static SOCKETS: OnceLock<Mutex<Vec<Weak<IcmpSocket>>>> = OnceLock::new();
    SOCKETS.get_or_init(|| Mutex::new(Vec::new()))
}

/// The IP identification of the next packet the sandbox sends.
fn next_ip_id() -> u16 {
    static ID: AtomicU16 = AtomicU16::new(1);
    ID.fetch_add(1, Ordering::Relaxed)
}

/// The Internet checksum (RFC 1071) of `b`.
pub fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = b.chunks_exact(2);
    for c in &mut chunks {
        sum += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [last] = chunks.remainder() {
        sum += (*last as u32) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 packet of protocol ICMP from `src` to `dst` around `icmp`.
/// `df`: the don't-fragment bit, which Linux's path-MTU discovery sets on
/// what sockets send and its ICMP replies go without.
fn ipv4_packet(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, tos: u8, df: bool, icmp: &[u8]) -> Vec<u8> {
    let total = (IPV4_HEADER + icmp.len()) as u16;
    let mut p = Vec::with_capacity(total as usize);
    p.extend_from_slice(&[0x45, tos]);
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&next_ip_id().to_be_bytes());
    p.extend_from_slice(&[
        if df { 0x40 } else { 0 },
        0,
        ttl,
        libc::IPPROTO_ICMP as u8,
        0,
        0,
    ]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let sum = checksum(&p);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p.extend_from_slice(icmp);
    p
}

/// The parts of an IPv4 ICMP packet `deliver` needs.
struct Parsed<'a> {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    icmp: &'a [u8],
    /// The packet's length, header included.
    total: usize,
}

fn parse_ipv4(p: &[u8]) -> Option<Parsed<'_>> {
    if p.len() < IPV4_HEADER || p[0] >> 4 != 4 {
        return None;
    }
    let ihl = (p[0] & 0xf) as usize * 4;
    let total = u16::from_be_bytes([p[2], p[3]]) as usize;
    if ihl < IPV4_HEADER || total < ihl || total > p.len() || p[9] != libc::IPPROTO_ICMP as u8 {
        return None;
    }
    Some(Parsed {
        src: Ipv4Addr::new(p[12], p[13], p[14], p[15]),
        dst: Ipv4Addr::new(p[16], p[17], p[18], p[19]),
        icmp: &p[ihl..total],
        total,
    })
}

/// Whether `ip` is an address of the sandbox itself, reached over its
/// loopback.
fn is_local(ip: Ipv4Addr) -> bool {
    ip.is_loopback() || ip.is_unspecified() || super::netstack::is_device_addr(ip.into())
}

/// Offers an IPv4 ICMP packet the sandbox received to every ICMP socket.
pub fn deliver(packet: &[u8]) {
    let Some(p) = parse_ipv4(packet) else {
        return;
    };
    if p.icmp.len() < ICMP_HEADER {
        return;
    }
    let live: Vec<Arc<IcmpSocket>> = {
        let mut all = lock(sockets());
        all.retain(|w| w.strong_count() > 0);
        all.iter().filter_map(Weak::upgrade).collect()
    };
    for s in live {
        s.offer(&p, packet);
    }
}

/// Loops a packet the sandbox sent to one of its own addresses back in,
/// and answers it if it is an echo request, as Linux's icmp_echo does.
fn loop_back(packet: &[u8]) {
    deliver(packet);
    let Some(p) = parse_ipv4(packet) else {
        return;
    };
    if p.icmp.len() < ICMP_HEADER || p.icmp[0] != ICMP_ECHO || checksum(p.icmp) != 0 {
        return;
    }
    let mut reply = p.icmp.to_vec();
    reply[0] = ICMP_ECHOREPLY;
    reply[2..4].copy_from_slice(&[0, 0]);
    let sum = checksum(&reply);
    reply[2..4].copy_from_slice(&sum.to_be_bytes());
    // The reply comes from the address the request went to (Linux's
    // icmp_reply), or 127.0.0.1 for 0.0.0.0.
    let from = if p.dst.is_unspecified() {
        Ipv4Addr::LOCALHOST
    } else {
        p.dst
    };
    deliver(&ipv4_packet(from, p.src, 64, 0, false, &reply));
}

/// A socket address the caller gave: AF_INET, at least 16 bytes.
fn parse_addr(raw: &[u8]) -> Result<(Ipv4Addr, u16), Errno> {
    if raw.len() < 16 {
        return Err(Errno::EINVAL);
    }
    if super::inet::sockaddr_family(raw) != libc::AF_INET {
        return Err(Errno::EAFNOSUPPORT);
    }
    Ok((
        Ipv4Addr::new(raw[4], raw[5], raw[6], raw[7]),
        u16::from_be_bytes([raw[2], raw[3]]),
    ))
}

fn sockaddr_in(ip: Ipv4Addr, port: u16) -> Vec<u8> {
    super::inet::sockaddr_bytes(libc::AF_INET, (ip, port).into())
}

fn int_of(val: &[u8]) -> Result<i32, Errno> {
    match val.len() {
        0 => Err(Errno::EINVAL),
        // Linux reads a single byte as the value for IP options.
        1..=3 => Ok(val[0] as i32),
        _ => Ok(i32::from_ne_bytes([val[0], val[1], val[2], val[3]])),
    }
}

fn timeval_of(val: &[u8]) -> Result<Option<Duration>, Errno> {
    if val.len() < 16 {
        return Err(Errno::EINVAL);
    }
    let sec = i64::from_ne_bytes(val[0..8].try_into().map_err(|_| Errno::EINVAL)?);
    let usec = i64::from_ne_bytes(val[8..16].try_into().map_err(|_| Errno::EINVAL)?);
    if !(0..1_000_000).contains(&usec) {
        return Err(Errno::EDOM);
    }
    if sec < 0 || (sec == 0 && usec == 0) {
        return Ok(None);
    }
    Ok(Some(
        Duration::from_secs(sec as u64) + Duration::from_micros(usec as u64),
    ))
}

fn timeval_bytes(d: Option<Duration>) -> Vec<u8> {
    let d = d.unwrap_or_default();
    let mut v = (d.as_secs() as i64).to_ne_bytes().to_vec();
    v.extend_from_slice(&(d.subsec_micros() as i64).to_ne_bytes());
    v
}

/// Options a host ICMP socket (`--network host`) may read or set, all
/// ints. IP_HDRINCL is one (raw sockets only): what the application then
/// sends is checked to be an IPv4 ICMP packet (`check_hdrincl`), so it
/// can do no more than a runc container with CAP_NET_RAW.
fn host_option_allowed(level: i32, name: i32) -> bool {
    use libc::*;
    matches!(
        (level, name),
        (
            SOL_SOCKET,
            SO_RCVBUF
                | SO_SNDBUF
                | SO_BROADCAST
                | SO_ERROR
                | SO_TYPE
                | SO_DOMAIN
                | SO_PROTOCOL
                | SO_REUSEADDR
                | SO_PRIORITY
                | SO_DONTROUTE
        ) | (
            IPPROTO_IP,
            IP_TTL | IP_TOS | IP_RECVERR | IP_RECVTTL | IP_MTU_DISCOVER | IP_MULTICAST_TTL
        ) | (SOL_RAW, ICMP_FILTER)
            | (IPPROTO_IP, IP_HDRINCL)
    )
}

/// A packet with its IP header (IP_HDRINCL) must be IPv4 and ICMP: Linux
/// would send any protocol the header names.
fn check_hdrincl(data: &[u8]) -> Result<(), Errno> {
    if data.len() < IPV4_HEADER || data.len() > IP_MAX {
        return Err(Errno::EINVAL);
    }
    let ihl = (data[0] & 0xf) as usize * 4;
    if data[0] >> 4 != 4 || ihl < IPV4_HEADER || ihl > data.len() {
        return Err(Errno::EINVAL);
    }
    if data[9] != libc::IPPROTO_ICMP as u8 {
        return Err(Errno::EPROTONOSUPPORT);
    }
    Ok(())
}

impl IcmpSocket {
    /// A new ICMP socket: on the sentry's stack, or (`host`) a host one.
    pub fn new(kind: Kind, host: bool, nonblocking: bool) -> Result<Arc<Self>, Errno> {
        let host = if host {
            let typ = match kind {
                Kind::Raw => libc::SOCK_RAW,
                Kind::Ping => libc::SOCK_DGRAM,
            };
            // SAFETY: socket(2) with constants; the fd is ours.
            let raw = unsafe {
                libc::socket(libc::AF_INET, typ | libc::SOCK_CLOEXEC, libc::IPPROTO_ICMP)
            };
            if raw < 0 {
                return Err(Errno::last());
            }
            // SAFETY: a fresh fd nobody else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            set_host_nonblock(fd.as_raw_fd(), nonblocking);
            Some(fd)
        } else {
            None
        };
        let s = Arc::new(IcmpSocket {
            kind,
            inner: Mutex::new(Inner {
                bound: None,
                ident: 0,
                peer: None,
                queue: VecDeque::new(),
                queued: 0,
                rcvbuf: DEFAULT_BUF,
                sndbuf: DEFAULT_BUF,
                ttl: None,
                tos: 0,
                hdrincl: false,
                filter: 0,
                rcvtimeo: None,
                shut_rd: false,
                other: Vec::new(),
            }),
            ready: ReadyFlag::new()?,
            nonblocking: AtomicBool::new(nonblocking),
            host,
        });
        if s.host.is_none() {
            let mut all = lock(sockets());
            if all.len() >= all.capacity() {
                all.retain(|w| w.strong_count() > 0);
            }
            all.push(Arc::downgrade(&s));
        }
        Ok(s)
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// Queues `p` if this socket wants it.
    fn offer(&self, p: &Parsed<'_>, packet: &[u8]) {
        let mut g = self.inner();
        if g.shut_rd || g.bound.is_some_and(|b| !b.is_unspecified() && b != p.dst) {
            return;
        }
        if g.peer.is_some_and(|(peer, _)| peer != p.src) {
            return;
        }
        let typ = p.icmp[0];
        let bytes = match self.kind {
            Kind::Raw => {
                if typ < 32 && g.filter & (1 << typ) != 0 {
                    return;
                }
                packet[..p.total].to_vec()
            }
            Kind::Ping => {
                let ident = u16::from_be_bytes([p.icmp[4], p.icmp[5]]);
                if typ != ICMP_ECHOREPLY || g.ident == 0 || ident != g.ident {
                    return;
                }
                p.icmp.to_vec()
            }
        };
        // As Linux's sock_queue_rcv_skb: room while under the buffer size,
        // each packet charged its bytes and a buffer's overhead.
        if g.queued >= g.rcvbuf.max(0) as usize {
            return;
        }
        g.queued += bytes.len() + PACKET_OVERHEAD;
        g.queue.push_back((p.src, bytes));
        self.ready.update(true);
    }

    /// The address a packet to `dst` leaves from, or ENETUNREACH.
    fn source_for(&self, g: &Inner, dst: Ipv4Addr) -> Result<Ipv4Addr, Errno> {
        if let Some(b) = g.bound.filter(|b| !b.is_unspecified()) {
            return Ok(b);
        }
        if dst.is_loopback() || dst.is_unspecified() {
            return Ok(Ipv4Addr::LOCALHOST);
        }
        match super::netstack::stack() {
            Some(ns) if is_local(dst) || super::netstack::routable(dst.into()) => {
                Ok(ns.device.addr)
            }
            _ => Err(Errno::ENETUNREACH),
        }
    }

    /// A ping socket's identifier, chosen now if it has none (as Linux's
    /// ping_get_port for an unbound socket).
    fn ensure_ident(&self, g: &mut Inner) -> Result<(), Errno> {
        if g.ident != 0 {
            return Ok(());
        }
        g.ident = claim_ident(0)?;
        Ok(())
    }

    fn send_sandbox(&self, data: &[u8], to: Option<&[u8]>) -> Result<usize, Errno> {
        let mut g = self.inner();
        let dst = match to {
            // Linux's raw_sendmsg takes AF_UNSPEC as AF_INET, for old
            // programs; ping sockets want AF_INET.
            Some(raw) if self.kind == Kind::Raw && super::inet::sockaddr_family(raw) == 0 => {
                let mut fixed = raw.to_vec();
                fixed[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
                parse_addr(&fixed)?.0
            }
            Some(raw) => parse_addr(raw)?.0,
            None => g.peer.ok_or(Errno::EDESTADDRREQ)?.0,
        };
        let packet = match self.kind {
            Kind::Raw if g.hdrincl => {
                // The application wrote the IP header: Linux fills in the
                // length, the checksum, an ID and a source left zero.
                check_hdrincl(data)?;
                let mut p = data.to_vec();
                let ihl = (p[0] & 0xf) as usize * 4;
                let len = p.len() as u16;
                p[2..4].copy_from_slice(&len.to_be_bytes());
                if p[4..6] == [0, 0] {
                    p[4..6].copy_from_slice(&next_ip_id().to_be_bytes());
                }
                if p[12..16] == [0; 4] {
                    let src = self.source_for(&g, Ipv4Addr::new(p[16], p[17], p[18], p[19]))?;
                    p[12..16].copy_from_slice(&src.octets());
                }
                p[10..12].copy_from_slice(&[0, 0]);
                let sum = checksum(&p[..ihl]);
                p[10..12].copy_from_slice(&sum.to_be_bytes());
                p
            }
            Kind::Raw => {
                if data.len() > IP_MAX - IPV4_HEADER {
                    return Err(Errno::EMSGSIZE);
                }
                let src = self.source_for(&g, dst)?;
                ipv4_packet(src, dst, g.ttl.unwrap_or(64), g.tos, true, data)
            }
            Kind::Ping => {
                // Linux's ping_v4_sendmsg: an echo request, at least its
                // header; the socket's identifier and the checksum are the
                // kernel's.
                if data.len() < ICMP_HEADER || data.len() > IP_MAX - IPV4_HEADER {
                    return Err(if data.len() < ICMP_HEADER {
                        Errno::EINVAL
                    } else {
                        Errno::EMSGSIZE
                    });
                }
                if data[0] != ICMP_ECHO || data[1] != 0 {
                    return Err(Errno::EINVAL);
                }
                let src = self.source_for(&g, dst)?;
                self.ensure_ident(&mut g)?;
                let mut icmp = data.to_vec();
                icmp[2..4].copy_from_slice(&[0, 0]);
                icmp[4..6].copy_from_slice(&g.ident.to_be_bytes());
                let sum = checksum(&icmp);
                icmp[2..4].copy_from_slice(&sum.to_be_bytes());
                ipv4_packet(src, dst, g.ttl.unwrap_or(64), g.tos, true, &icmp)
            }
        };
        drop(g);
        let Some(p) = parse_ipv4(&packet) else {
            return Err(Errno::EINVAL);
        };
        if is_local(p.dst) {
            loop_back(&packet);
        } else {
            let ns = super::netstack::stack().ok_or(Errno::ENETUNREACH)?;
            ns.icmp_send(&packet)?;
        }
        Ok(data.len())
    }

    fn recv_sandbox(&self, len: usize, flags: i32) -> Result<Received, Errno> {
        let deadline = self
            .inner()
            .rcvtimeo
            .and_then(|d| Instant::now().checked_add(d));
        loop {
            {
                let mut g = self.inner();
                let item = if flags & libc::MSG_PEEK != 0 {
                    g.queue.front().cloned()
                } else {
                    let it = g.queue.pop_front();
                    if let Some((_, d)) = &it {
                        g.queued = g.queued.saturating_sub(d.len() + PACKET_OVERHEAD);
                    }
                    it
                };
                let empty = g.queue.is_empty();
                if let Some((from, data)) = item {
                    if empty {
                        self.ready.update(false);
                    }
                    let full = data.len();
                    let mut data = data;
                    data.truncate(len);
                    return Ok(Received {
                        ret: if flags & libc::MSG_TRUNC != 0 {
                            full
                        } else {
                            data.len()
                        },
                        msg_flags: if full > data.len() {
                            libc::MSG_TRUNC
                        } else {
                            0
                        },
                        data,
                        // Linux's ping and raw sockets give port 0.
                        from: Some(sockaddr_in(from, 0)),
                    });
                }
                if g.shut_rd {
                    return Ok(Received {
                        data: Vec::new(),
                        ret: 0,
                        from: None,
                        msg_flags: 0,
                    });
                }
            }
            if self.nonblocking.load(Ordering::Relaxed) || flags & libc::MSG_DONTWAIT != 0 {
                return Err(Errno::EAGAIN);
            }
            self.ready.wait_until(deadline)?;
        }
    }

    fn host_fd(&self) -> Option<RawFd> {
        self.host.as_ref().map(|f| f.as_raw_fd())
    }
}

/// The identifiers ping sockets hold (their "ports").
fn idents() -> &'static Mutex<std::collections::HashSet<u16>> {
    static IDENTS: OnceLock<Mutex<std::collections::HashSet<u16>>> = OnceLock::new();
    IDENTS.get_or_init(|| Mutex::new(std::collections::HashSet::new()))
}

/// Claims identifier `want`, or (0) any free one, as Linux's
/// ping_get_port does: EADDRINUSE if another ping socket holds it.
fn claim_ident(want: u16) -> Result<u16, Errno> {
    static NEXT: AtomicU16 = AtomicU16::new(1);
    let mut held = lock(idents());
    if want != 0 {
        return if held.insert(want) {
            Ok(want)
        } else {
            Err(Errno::EADDRINUSE)
        };
    }
    for _ in 0..=u16::MAX {
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        if id != 0 && held.insert(id) {
            return Ok(id);
        }
    }
    Err(Errno::EAGAIN)
}

impl Drop for IcmpSocket {
    fn drop(&mut self) {
        let ident = lock(&self.inner).ident;
        if ident != 0 {
            lock(idents()).remove(&ident);
        }
    }
}

impl SocketOps for IcmpSocket {
    fn family(&self) -> i32 {
        libc::AF_INET
    }

    fn stype(&self) -> i32 {
        match self.kind {
            Kind::Raw => libc::SOCK_RAW,
            Kind::Ping => libc::SOCK_DGRAM,
        }
    }

    fn protocol(&self) -> i32 {
        libc::IPPROTO_ICMP
    }

    fn bind(&self, addr: &[u8]) -> Result<(), Errno> {
        let (ip, port) = parse_addr(addr)?;
        if let Some(fd) = self.host_fd() {
            let a = sockaddr_in(ip, port);
            // SAFETY: bind with an address we built, of its length.
            return Errno::result(unsafe {
                libc::bind(fd, a.as_ptr().cast(), a.len() as libc::socklen_t)
            })
            .map(drop);
        }
        if !is_local(ip) {
            return Err(Errno::EADDRNOTAVAIL);
        }
        let mut g = self.inner();
        if self.kind == Kind::Ping {
            if g.ident != 0 {
                return Err(Errno::EINVAL);
            }
            g.ident = claim_ident(port)?;
        }
        g.bound = Some(ip);
        Ok(())
    }

    fn connect(&self, addr: &[u8]) -> Result<(), Errno> {
        if let Some(fd) = self.host_fd() {
            let a = if super::inet::sockaddr_family(addr) == libc::AF_UNSPEC {
                addr[..2].to_vec()
            } else {
                let (ip, port) = parse_addr(addr)?;
                sockaddr_in(ip, port)
            };
            // SAFETY: connect with an address we built, of its length.
            return Errno::result(unsafe {
                libc::connect(fd, a.as_ptr().cast(), a.len() as libc::socklen_t)
            })
            .map(drop);
        }
        if super::inet::sockaddr_family(addr) == libc::AF_UNSPEC {
            self.inner().peer = None;
            return Ok(());
        }
        let (ip, port) = parse_addr(addr)?;
        let mut g = self.inner();
        self.source_for(&g, ip)?;
        if self.kind == Kind::Ping {
            self.ensure_ident(&mut g)?;
        }
        g.peer = Some((ip, port));
        Ok(())
    }

    fn local_name(&self) -> Result<Vec<u8>, Errno> {
        if let Some(fd) = self.host_fd() {
            return super::host_socket_name(fd, false);
        }
        let g = self.inner();
        let port = match self.kind {
            Kind::Ping => g.ident,
            // Linux's inet_create: a raw socket's "port" is its protocol.
            Kind::Raw => libc::IPPROTO_ICMP as u16,
        };
        Ok(sockaddr_in(g.bound.unwrap_or(Ipv4Addr::UNSPECIFIED), port))
    }

    fn peer_name(&self) -> Result<Vec<u8>, Errno> {
        if let Some(fd) = self.host_fd() {
            return super::host_socket_name(fd, true);
        }
        // Linux's inet_getname: connected means a peer port, which ICMP
        // sockets are seldom given.
        match self.inner().peer {
            Some((ip, port)) if port != 0 => Ok(sockaddr_in(ip, port)),
            _ => Err(Errno::ENOTCONN),
        }
    }

    fn send(&self, data: &[u8], flags: i32, to: Option<&[u8]>) -> Result<usize, Errno> {
        if flags & !SEND_FLAGS != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        let Some(fd) = self.host_fd() else {
            return self.send_sandbox(data, to);
        };
        let dest = match to {
            Some(raw) => {
                let (ip, port) = parse_addr(raw)?;
                Some(sockaddr_in(ip, port))
            }
            None => None,
        };
        // Held over the send: IP_HDRINCL cannot be turned on between the
        // check and the host's send (setsockopt takes the same lock).
        let g = self.inner();
        if self.kind == Kind::Raw && g.hdrincl {
            check_hdrincl(data)?;
        }
        let mut fl = flags | libc::MSG_NOSIGNAL;
        if self.nonblocking.load(Ordering::Relaxed) {
            fl |= libc::MSG_DONTWAIT;
        }
        retry_host(|| {
            let (ptr, len) = match &dest {
                Some(a) => (a.as_ptr().cast(), a.len() as libc::socklen_t),
                None => (std::ptr::null(), 0),
            };
            // SAFETY: sendto from the caller's bytes to an address we
            // built, on our own socket.
            Errno::result(unsafe {
                libc::sendto(fd, data.as_ptr().cast(), data.len(), fl, ptr, len)
            })
            .map(|n| n as usize)
        })
    }

    fn recv(&self, len: usize, flags: i32) -> Result<Received, Errno> {
        let flags = flags & !libc::MSG_CMSG_CLOEXEC;
        if flags & !RECV_FLAGS != 0 {
            return Err(Errno::EOPNOTSUPP);
        }
        let Some(fd) = self.host_fd() else {
            return self.recv_sandbox(len, flags);
        };
        let mut buf = vec![0u8; len];
        let mut from: libc::sockaddr_in = pod_zeroed_sockaddr();
        let mut flen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let mut fl = flags;
        if self.nonblocking.load(Ordering::Relaxed) {
            fl |= libc::MSG_DONTWAIT;
        }
        let n = retry_host(|| {
            flen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            // SAFETY: recvfrom into our buffer and address, sized as given.
            Errno::result(unsafe {
                libc::recvfrom(
                    fd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    fl | libc::MSG_TRUNC,
                    (&mut from as *mut libc::sockaddr_in).cast(),
                    &mut flen,
                )
            })
            .map(|n| n as usize)
        })?;
        let full = n;
        buf.truncate(n.min(len));
        let ip = Ipv4Addr::from(u32::from_be(from.sin_addr.s_addr));
        Ok(Received {
            ret: if flags & libc::MSG_TRUNC != 0 {
                full
            } else {
                buf.len()
            },
            msg_flags: if full > buf.len() { libc::MSG_TRUNC } else { 0 },
            data: buf,
            from: (flen > 0).then(|| sockaddr_in(ip, u16::from_be(from.sin_port))),
        })
    }

    fn getsockopt(&self, level: i32, name: i32, room: usize) -> Result<Vec<u8>, Errno> {
        if let Some(fd) = self.host_fd() {
            if !host_option_allowed(level, name) {
                return Err(Errno::ENOPROTOOPT);
            }
            let mut v = [0u8; 4];
            let mut len = v.len() as libc::socklen_t;
            // SAFETY: getsockopt into our 4-byte buffer.
            Errno::result(unsafe {
                libc::getsockopt(fd, level, name, v.as_mut_ptr().cast(), &mut len)
            })?;
            return Ok(v[..len as usize].to_vec());
        }
        let int = |v: i32| Ok(v.to_ne_bytes().to_vec());
        let g = self.inner();
        match (level, name) {
            (libc::SOL_SOCKET, libc::SO_TYPE) => int(self.stype()),
            (libc::SOL_SOCKET, libc::SO_DOMAIN) => int(libc::AF_INET),
            (libc::SOL_SOCKET, libc::SO_PROTOCOL) => int(libc::IPPROTO_ICMP),
            (libc::SOL_SOCKET, libc::SO_ERROR) => int(0),
            (libc::SOL_SOCKET, libc::SO_RCVBUF) => int(g.rcvbuf),
            (libc::SOL_SOCKET, libc::SO_SNDBUF) => int(g.sndbuf),
            (libc::SOL_SOCKET, libc::SO_ACCEPTCONN) => int(0),
            (libc::SOL_SOCKET, libc::SO_RCVTIMEO) => Ok(timeval_bytes(g.rcvtimeo)),
            (libc::IPPROTO_IP, libc::IP_TTL) => int(g.ttl.unwrap_or(64) as i32),
            (libc::IPPROTO_IP, libc::IP_TOS) => int(g.tos as i32),
            (libc::IPPROTO_IP, libc::IP_HDRINCL) if self.kind == Kind::Raw => int(g.hdrincl as i32),
            (libc::SOL_RAW, ICMP_FILTER) if self.kind == Kind::Raw => {
                let b = g.filter.to_ne_bytes();
                Ok(b[..room.min(4)].to_vec())
            }
            (libc::SOL_RAW, _) => Err(Errno::EOPNOTSUPP),
            (l, n) => match g.other.iter().find(|(k, _)| *k == (l, n)) {
                Some((_, v)) => int(*v),
                None => Err(Errno::ENOPROTOOPT),
            },
        }
    }

    fn setsockopt(&self, level: i32, name: i32, val: &[u8]) -> Result<(), Errno> {
        if let Some(fd) = self.host_fd() {
            if !host_option_allowed(level, name) {
                return Err(Errno::ENOPROTOOPT);
            }
            // The lock makes the host's flag and ours change together, as
            // a send sees them (see `send`).
            let mut g = self.inner();
            if (level, name) == (libc::IPPROTO_IP, libc::IP_HDRINCL) {
                if self.kind != Kind::Raw {
                    return Err(Errno::ENOPROTOOPT);
                }
                let on = int_of(val)? != 0;
                // SAFETY: setsockopt of an int on our own socket.
                Errno::result(unsafe {
                    libc::setsockopt(
                        fd,
                        level,
                        name,
                        (&(on as libc::c_int) as *const libc::c_int).cast(),
                        std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                    )
                })?;
                g.hdrincl = on;
                return Ok(());
            }
            drop(g);
            // SAFETY: setsockopt from the caller's bytes on our socket;
            // the option is an allowlisted int-sized one.
            return Errno::result(unsafe {
                libc::setsockopt(
                    fd,
                    level,
                    name,
                    val.as_ptr().cast(),
                    val.len().min(4) as libc::socklen_t,
                )
            })
            .map(drop);
        }
        let mut g = self.inner();
        match (level, name) {
            (libc::SOL_SOCKET, libc::SO_RCVBUF | libc::SO_SNDBUF) => {
                // Linux caps the value at net.core.rmem_max/wmem_max, then
                // doubles it, within its minimum.
                let v = int_of(val)?.clamp(0, DEFAULT_BUF) * 2;
                if name == libc::SO_RCVBUF {
                    g.rcvbuf = v.max(2304);
                } else {
                    g.sndbuf = v.max(4608);
                }
            }
            (libc::SOL_SOCKET, libc::SO_RCVTIMEO) => g.rcvtimeo = timeval_of(val)?,
            (libc::SOL_SOCKET, libc::SO_TYPE | libc::SO_DOMAIN | libc::SO_PROTOCOL)
            | (libc::SOL_SOCKET, libc::SO_ERROR | libc::SO_ACCEPTCONN) => {
                return Err(Errno::ENOPROTOOPT)
            }
            (libc::IPPROTO_IP, libc::IP_TTL) => {
                let v = int_of(val)?;
                g.ttl = match v {
                    -1 => None,
                    1..=255 => Some(v as u8),
                    _ => return Err(Errno::EINVAL),
                };
            }
            (libc::IPPROTO_IP, libc::IP_TOS) => g.tos = int_of(val)? as u8,
            (libc::IPPROTO_IP, libc::IP_HDRINCL) => {
                if self.kind != Kind::Raw {
                    return Err(Errno::ENOPROTOOPT);
                }
                g.hdrincl = int_of(val)? != 0;
            }
            (libc::SOL_RAW, ICMP_FILTER) => {
                if self.kind != Kind::Raw {
                    return Err(Errno::EOPNOTSUPP);
                }
                // Linux copies what it is given, up to the filter's size,
                // over the filter's first bytes.
                let mut f = g.filter.to_ne_bytes();
                let n = val.len().min(4);
                f[..n].copy_from_slice(&val[..n]);
                g.filter = u32::from_ne_bytes(f);
            }
            (libc::SOL_RAW, _) => return Err(Errno::EOPNOTSUPP),
            // Options with no effect on this socket, kept to be read back
            // (SO_BROADCAST, SO_TIMESTAMP, IP_RECVERR, IP_RECVTTL...).
            (libc::SOL_SOCKET | libc::IPPROTO_IP, n) => {
                let v = int_of(val)?;
                g.other.retain(|(k, _)| *k != (level, n));
                g.other.push(((level, n), v));
            }
            _ => return Err(Errno::ENOPROTOOPT),
        }
        Ok(())
    }

    fn shutdown(&self, how: i32) -> Result<(), Errno> {
        if let Some(fd) = self.host_fd() {
            // SAFETY: shutdown of our own socket.
            return Errno::result(unsafe { libc::shutdown(fd, how) }).map(drop);
        }
        let mut g = self.inner();
        // Linux's inet_shutdown: a datagram socket must be connected.
        if g.peer.is_none() {
            return Err(Errno::ENOTCONN);
        }
        match how {
            libc::SHUT_RD | libc::SHUT_RDWR => {
                g.shut_rd = true;
                self.ready.update(true);
            }
            libc::SHUT_WR => {}
            _ => return Err(Errno::EINVAL),
        }
        Ok(())
    }
}

fn pod_zeroed_sockaddr() -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain data; all zeroes is a valid value.
    unsafe { std::mem::zeroed() }
}

impl FileOps for IcmpSocket {
    fn seekable(&self) -> bool {
        false
    }

    fn read_at(&self, buf: &mut [u8], _off: u64) -> VfsResult<usize> {
        super::ops_read(self, buf)
    }

    fn write_at(&self, buf: &[u8], _off: u64) -> VfsResult<usize> {
        self.send(buf, 0, None)
    }

    fn stat(&self) -> VfsResult<FileStat> {
        socket_stat()
    }

    fn poll_fixed(&self) -> Option<i16> {
        if self.host.is_some() {
            return None;
        }
        let g = self.inner();
        let mut m = libc::POLLOUT | libc::POLLWRNORM;
        if !g.queue.is_empty() || g.shut_rd {
            m |= libc::POLLIN | libc::POLLRDNORM;
        }
        Some(m)
    }

    fn poll_fd(&self) -> Option<RawFd> {
        self.host_fd().or(Some(self.ready.fd.as_raw_fd()))
    }

    fn set_nonblocking(&self, on: bool) {
        self.nonblocking.store(on, Ordering::Relaxed);
        if let Some(fd) = self.host_fd() {
            set_host_nonblock(fd, on);
        }
    }

    fn readable_bytes(&self) -> Option<usize> {
        Some(self.inner().queue.front().map_or(0, |(_, d)| d.len()))
    }

    fn socket_ops(self: Arc<Self>) -> Option<Arc<dyn SocketOps>> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_a_packet_with_its_checksum_is_zero() {
        let p = ipv4_packet(
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 2),
            64,
            0,
            true,
            &[8, 0, 0, 0, 1, 2, 0, 1, 0xab],
        );
        assert_eq!(checksum(&p[..IPV4_HEADER]), 0);
        let parsed = parse_ipv4(&p).expect("parses");
        assert_eq!(parsed.icmp.len(), 9);
        assert_eq!(parsed.dst, Ipv4Addr::new(10, 0, 0, 2));
    }

    #[test]
    fn truncated_or_foreign_packets_are_not_parsed() {
        assert!(parse_ipv4(&[0x45; 10]).is_none());
        let mut p = ipv4_packet(
            Ipv4Addr::LOCALHOST,
            Ipv4Addr::LOCALHOST,
            64,
            0,
            true,
            &[0; 8],
        );
        p[2..4].copy_from_slice(&1000u16.to_be_bytes());
        assert!(parse_ipv4(&p).is_none());
        p[2..4].copy_from_slice(&28u16.to_be_bytes());
        p[9] = 17;
        assert!(parse_ipv4(&p).is_none());
    }
}
