//! NETLINK_ROUTE sockets (gVisor's `socket/netlink/route`), enough for
//! getifaddrs(3), if_nameindex(3), glibc's address-family checks and `ip
//! addr`/`ip link`/`ip route` to see the sandbox's network.
//!
//! With the sentry's own network (`sandbox`, `none`) the answers describe
//! the sandbox's loopback: link `lo` (index 1, up) with 127.0.0.1/8 and
//! ::1/128, and the network device the stack took over (its link and
//! IPv4 address; glibc's AI_ADDRCONFIG needs a non-loopback address).
//! Routes: the main table (the device's subnet and default route, ::1)
//! and the local table Linux derives from the addresses; dumps only (no
//! `ip route get`). With `--network host` the requests go to a host route socket in the sentry's network namespace,
//! but only reads: RTM_GET* requests, with their headers checked; every
//! request that would change the host's network is refused (EPERM).

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use nix::errno::Errno;

use super::{set_host_nonblock, Received, SocketOps};
use crate::fsimpl::host::retry_host;
use crate::fsimpl::ready::ReadyFlag;
use crate::kernel::lock;
use crate::vfs::{FileOps, FileStat, VfsResult};

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_MULTI: u16 = 2;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const RTM_GETROUTE: u16 = 26;
/// The request types a host-network relay passes on: RTM_GETLINK,
/// GETADDR, GETROUTE, GETNEIGH, GETRULE, GETQDISC, GETNETCONF.
const HOST_READS: &[u16] = &[18, 22, 26, 30, 34, 38, 82];

const IFLA_ADDRESS: u16 = 1;
const IFLA_BROADCAST: u16 = 2;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_QDISC: u16 = 6;
const IFLA_TXQLEN: u16 = 13;
const IFLA_OPERSTATE: u16 = 16;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_LABEL: u16 = 3;
const IFA_FLAGS: u16 = 8;
const IFA_F_PERMANENT: u8 = 0x80;
const RT_SCOPE_HOST: u8 = 254;
const ARPHRD_LOOPBACK: u16 = 772;
const LO_FLAGS: u32 = (libc::IFF_UP | libc::IFF_LOOPBACK | libc::IFF_RUNNING) as u32 | 0x10000;
/// The most bytes one datagram of a dump carries (glibc reads pages).
const DATAGRAM_MAX: usize = 4096;

/// One netlink message being built.
pub(super) struct Msg(Vec<u8>);

impl Msg {
    pub(super) fn new(typ: u16, flags: u16, seq: u32, pid: u32) -> Msg {
        let mut b = vec![0u8; NLMSG_HDRLEN];
        b[4..6].copy_from_slice(&typ.to_ne_bytes());
        b[6..8].copy_from_slice(&flags.to_ne_bytes());
        b[8..12].copy_from_slice(&seq.to_ne_bytes());
        b[12..16].copy_from_slice(&pid.to_ne_bytes());
        Msg(b)
    }

    pub(super) fn raw(mut self, bytes: &[u8]) -> Msg {
        self.0.extend_from_slice(bytes);
        self
    }

    pub(super) fn attr(mut self, typ: u16, data: &[u8]) -> Msg {
        let len = 4 + data.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&typ.to_ne_bytes());
        self.0.extend_from_slice(data);
        while !self.0.len().is_multiple_of(4) {
            self.0.push(0);
        }
        self
    }

    pub(super) fn done(mut self) -> Vec<u8> {
        let len = self.0.len() as u32;
        self.0[0..4].copy_from_slice(&len.to_ne_bytes());
        self.0
    }
}

/// A parsed request header.
#[derive(Clone, Copy)]
struct Header {
    len: usize,
    typ: u16,
    flags: u16,
    seq: u32,
}

fn parse_header(b: &[u8]) -> Option<Header> {
    if b.len() < NLMSG_HDRLEN {
        return None;
    }
    let len = u32::from_ne_bytes(b[0..4].try_into().ok()?) as usize;
    if len < NLMSG_HDRLEN || len > b.len() {
        return None;
    }
    Some(Header {
        len,
        typ: u16::from_ne_bytes([b[4], b[5]]),
        flags: u16::from_ne_bytes([b[6], b[7]]),
        seq: u32::from_ne_bytes(b[8..12].try_into().ok()?),
    })
}

fn error_msg(h: &Header, request: &[u8], errno: i32, pid: u32) -> Vec<u8> {
    Msg::new(NLMSG_ERROR, 0, h.seq, pid)
        .raw(&(-errno).to_ne_bytes())
        .raw(&request[..NLMSG_HDRLEN])
        .done()
}

fn lo_link(flags: u16, seq: u32, pid: u32) -> Vec<u8> {
    let mut ifinfo = vec![0u8; 16];
    ifinfo[2..4].copy_from_slice(&ARPHRD_LOOPBACK.to_ne_bytes());
    ifinfo[4..8].copy_from_slice(&1i32.to_ne_bytes());
    ifinfo[8..12].copy_from_slice(&LO_FLAGS.to_ne_bytes());
    Msg::new(RTM_NEWLINK, flags, seq, pid)
        .raw(&ifinfo)
        .attr(IFLA_IFNAME, b"lo\0")
        .attr(IFLA_TXQLEN, &1000u32.to_ne_bytes())
        .attr(IFLA_OPERSTATE, &[0])
        .attr(IFLA_MTU, &65536u32.to_ne_bytes())
        .attr(IFLA_QDISC, b"noqueue\0")
        .attr(IFLA_ADDRESS, &[0; 6])
        .attr(IFLA_BROADCAST, &[0; 6])
        .done()
}

/// The network device the sentry's stack took over, as RTM_NEWLINK.
fn device_link(d: &super::netstack::Device, flags: u16, seq: u32, pid: u32) -> Vec<u8> {
    const ARPHRD_ETHER: u16 = 1;
    let up = (libc::IFF_UP | libc::IFF_BROADCAST | libc::IFF_RUNNING | libc::IFF_MULTICAST) as u32
        | 0x10000;
    let mut ifinfo = vec![0u8; 16];
    ifinfo[2..4].copy_from_slice(&ARPHRD_ETHER.to_ne_bytes());
    ifinfo[4..8].copy_from_slice(&d.index.to_ne_bytes());
    ifinfo[8..12].copy_from_slice(&up.to_ne_bytes());
    let mut name = d.name.as_bytes().to_vec();
    name.push(0);
    Msg::new(RTM_NEWLINK, flags, seq, pid)
        .raw(&ifinfo)
        .attr(IFLA_IFNAME, &name)
        .attr(IFLA_TXQLEN, &1000u32.to_ne_bytes())
        .attr(IFLA_OPERSTATE, &[6]) // IF_OPER_UP
        .attr(IFLA_MTU, &(d.mtu as u32).to_ne_bytes())
        .attr(IFLA_QDISC, b"noqueue\0")
        .attr(IFLA_ADDRESS, &d.mac)
        .attr(IFLA_BROADCAST, &[0xff; 6])
        .done()
}

/// The device's IPv4 address, as RTM_NEWADDR.
fn device_addr(d: &super::netstack::Device, flags: u16, seq: u32, pid: u32) -> Vec<u8> {
    let mut ifaddr = vec![libc::AF_INET as u8, d.prefix, IFA_F_PERMANENT, 0];
    ifaddr.extend_from_slice(&(d.index as u32).to_ne_bytes());
    let mut name = d.name.as_bytes().to_vec();
    name.push(0);
    let mask = d.netmask();
    let bcast = (u32::from(d.addr) | !mask).to_be_bytes();
    Msg::new(RTM_NEWADDR, flags, seq, pid)
        .raw(&ifaddr)
        .attr(IFA_ADDRESS, &d.addr.octets())
        .attr(IFA_LOCAL, &d.addr.octets())
        .attr(4, &bcast) // IFA_BROADCAST
        .attr(IFA_LABEL, &name)
        .attr(IFA_FLAGS, &(IFA_F_PERMANENT as u32).to_ne_bytes())
        .done()
}

fn lo_addrs(family: u8, flags: u16, seq: u32, pid: u32) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let ifaddr = |fam: u8, prefix: u8| {
        let mut b = vec![fam, prefix, IFA_F_PERMANENT, RT_SCOPE_HOST];
        b.extend_from_slice(&1u32.to_ne_bytes());
        b
    };
    if family == 0 || family == libc::AF_INET as u8 {
        out.push(
            Msg::new(RTM_NEWADDR, flags, seq, pid)
                .raw(&ifaddr(libc::AF_INET as u8, 8))
                .attr(IFA_ADDRESS, &[127, 0, 0, 1])
                .attr(IFA_LOCAL, &[127, 0, 0, 1])
                .attr(IFA_LABEL, b"lo\0")
                .attr(IFA_FLAGS, &(IFA_F_PERMANENT as u32).to_ne_bytes())
                .done(),
        );
    }
    if family == 0 || family == libc::AF_INET6 as u8 {
        let mut one = [0u8; 16];
        one[15] = 1;
        out.push(
            Msg::new(RTM_NEWADDR, flags, seq, pid)
                .raw(&ifaddr(libc::AF_INET6 as u8, 128))
                .attr(IFA_ADDRESS, &one)
                .attr(IFA_FLAGS, &(IFA_F_PERMANENT as u32).to_ne_bytes())
                .done(),
        );
    }
    out
}

const RTM_NEWROUTE: u16 = 24;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_PREFSRC: u16 = 7;
const RTA_TABLE: u16 = 15;
const RT_TABLE_MAIN: u8 = 254;
const RT_TABLE_LOCAL: u8 = 255;
const RTPROT_KERNEL: u8 = 2;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_SCOPE_LINK: u8 = 253;
const RTN_UNICAST: u8 = 1;
const RTN_LOCAL: u8 = 2;
const RTN_BROADCAST: u8 = 3;

/// One route, as RTM_NEWROUTE describes it.
struct Route {
    family: u8,
    table: u8,
    protocol: u8,
    scope: u8,
    kind: u8,
    dst: Vec<u8>,
    dst_len: u8,
    gateway: Option<Vec<u8>>,
    prefsrc: Option<Vec<u8>>,
    oif: i32,
    priority: Option<u32>,
}

impl Route {
    fn msg(&self, flags: u16, seq: u32, pid: u32) -> Vec<u8> {
        let mut rtm = vec![
            self.family,
            self.dst_len,
            0,
            0,
            self.table,
            self.protocol,
            self.scope,
            self.kind,
        ];
        rtm.extend_from_slice(&0u32.to_ne_bytes());
        let mut m = Msg::new(RTM_NEWROUTE, flags, seq, pid)
            .raw(&rtm)
            .attr(RTA_TABLE, &(self.table as u32).to_ne_bytes());
        if self.dst_len > 0 {
            m = m.attr(RTA_DST, &self.dst);
        }
        if let Some(p) = self.priority {
            m = m.attr(RTA_PRIORITY, &p.to_ne_bytes());
        }
        if let Some(src) = &self.prefsrc {
            m = m.attr(RTA_PREFSRC, src);
        }
        if let Some(gw) = &self.gateway {
            m = m.attr(RTA_GATEWAY, gw);
        }
        m.attr(RTA_OIF, &self.oif.to_ne_bytes()).done()
    }
}

/// The sandbox's routes of `family` (0: all), in Linux's dump order: the
/// main table (the device's subnet and default route; ::1), then the
/// local table (the addresses and broadcasts the kernel adds).
fn routes(family: u8) -> Vec<Route> {
    let dev = super::netstack::stack().map(|ns| &ns.device);
    let v4 = |table, protocol, scope, kind, dst: [u8; 4], dst_len, src: [u8; 4], oif| Route {
        family: libc::AF_INET as u8,
        table,
        protocol,
        scope,
        kind,
        dst: dst.to_vec(),
        dst_len,
        gateway: None,
        prefsrc: Some(src.to_vec()),
        oif,
        priority: None,
    };
    let mut out = Vec::new();
    if family == 0 || family == libc::AF_INET as u8 {
        if let Some(d) = dev {
            let addr = d.addr.octets();
            if let Some(gw) = d.gateway {
                out.push(Route {
                    family: libc::AF_INET as u8,
                    table: RT_TABLE_MAIN,
                    protocol: RTPROT_BOOT,
                    scope: RT_SCOPE_UNIVERSE,
                    kind: RTN_UNICAST,
                    dst: vec![0; 4],
                    dst_len: 0,
                    gateway: Some(gw.octets().to_vec()),
                    prefsrc: None,
                    oif: d.index,
                    priority: None,
                });
            }
            let net = (u32::from(d.addr) & d.netmask()).to_be_bytes();
            out.push(v4(
                RT_TABLE_MAIN,
                RTPROT_KERNEL,
                RT_SCOPE_LINK,
                RTN_UNICAST,
                net,
                d.prefix,
                addr,
                d.index,
            ));
        }
        let lo = [127, 0, 0, 1];
        out.push(v4(
            RT_TABLE_LOCAL,
            RTPROT_KERNEL,
            RT_SCOPE_HOST,
            RTN_LOCAL,
            [127, 0, 0, 0],
            8,
            lo,
            1,
        ));
        out.push(v4(
            RT_TABLE_LOCAL,
            RTPROT_KERNEL,
            RT_SCOPE_HOST,
            RTN_LOCAL,
            lo,
            32,
            lo,
            1,
        ));
        out.push(v4(
            RT_TABLE_LOCAL,
            RTPROT_KERNEL,
            RT_SCOPE_LINK,
            RTN_BROADCAST,
            [127, 255, 255, 255],
            32,
            lo,
            1,
        ));
        if let Some(d) = dev {
            let addr = d.addr.octets();
            let bcast = (u32::from(d.addr) | !d.netmask()).to_be_bytes();
            out.push(v4(
                RT_TABLE_LOCAL,
                RTPROT_KERNEL,
                RT_SCOPE_HOST,
                RTN_LOCAL,
                addr,
                32,
                addr,
                d.index,
            ));
            out.push(v4(
                RT_TABLE_LOCAL,
                RTPROT_KERNEL,
                RT_SCOPE_LINK,
                RTN_BROADCAST,
                bcast,
                32,
                addr,
                d.index,
            ));
        }
    }
    // Each table in address order, as its trie is walked.
    out.sort_by(|a, b| (a.table, &a.dst, a.dst_len).cmp(&(b.table, &b.dst, b.dst_len)));
    if family == 0 || family == libc::AF_INET6 as u8 {
        let mut one = vec![0u8; 16];
        one[15] = 1;
        for (table, kind, priority) in [
            (RT_TABLE_MAIN, RTN_UNICAST, 256),
            (RT_TABLE_LOCAL, RTN_LOCAL, 0),
        ] {
            out.push(Route {
                family: libc::AF_INET6 as u8,
                table,
                protocol: RTPROT_KERNEL,
                scope: RT_SCOPE_UNIVERSE,
                kind,
                dst: one.clone(),
                dst_len: 128,
                gateway: None,
                prefsrc: None,
                oif: 1,
                priority: Some(priority),
            });
        }
    }
    out
}

/// The sandbox's answers to one request: the messages, in order.
fn answer(req: &[u8], h: &Header, pid: u32) -> Vec<Vec<u8>> {
    let dump = h.flags & NLM_F_DUMP == NLM_F_DUMP;
    let multi = if dump { NLM_F_MULTI } else { 0 };
    let done = || {
        Msg::new(NLMSG_DONE, NLM_F_MULTI, h.seq, pid)
            .raw(&0i32.to_ne_bytes())
            .done()
    };
    let body = &req[NLMSG_HDRLEN..h.len];
    let mut out = match h.typ {
        RTM_GETLINK if dump => {
            let mut v = vec![lo_link(multi, h.seq, pid)];
            if let Some(ns) = super::netstack::stack() {
                v.push(device_link(&ns.device, multi, h.seq, pid));
            }
            v.push(done());
            v
        }
        RTM_GETLINK => {
            // By index (ifinfomsg.ifi_index) or by IFLA_IFNAME.
            let index = body
                .get(4..8)
                .and_then(|b| b.try_into().ok())
                .map(i32::from_ne_bytes)
                .unwrap_or(0);
            let by_name = find_attr(body.get(16..).unwrap_or(&[]), IFLA_IFNAME);
            let name = by_name.and_then(|n| n.split(|&c| c == 0).next());
            let dev = super::netstack::stack().map(|ns| &ns.device);
            let is_lo = match (index, name) {
                (1, _) => true,
                (0, Some(n)) => n == b"lo",
                _ => false,
            };
            let is_dev = dev.is_some_and(|d| match (index, name) {
                (0, Some(n)) => n == d.name.as_bytes(),
                (i, _) => i == d.index,
            });
            match dev {
                _ if is_lo => vec![lo_link(0, h.seq, pid)],
                Some(d) if is_dev => vec![device_link(d, 0, h.seq, pid)],
                _ => vec![error_msg(h, req, libc::ENODEV, pid)],
            }
        }
        RTM_GETADDR if dump => {
            let family = body.first().copied().unwrap_or(0);
            let mut v = lo_addrs(family, multi, h.seq, pid);
            if let Some(ns) = super::netstack::stack() {
                if family == 0 || family == libc::AF_INET as u8 {
                    // After lo's IPv4 address, as Linux orders by index.
                    let at = v.len().min(1);
                    v.insert(at, device_addr(&ns.device, multi, h.seq, pid));
                }
            }
            v.push(done());
            v
        }
        RTM_GETROUTE if dump => {
            let family = body.first().copied().unwrap_or(0);
            let mut v: Vec<Vec<u8>> = routes(family)
                .iter()
                .map(|r| r.msg(multi, h.seq, pid))
                .collect();
            v.push(done());
            v
        }
        t if dump && t % 4 == 2 => vec![done()],
        t if t >= 16 && t % 4 != 2 => vec![error_msg(h, req, libc::EPERM, pid)],
        _ => vec![error_msg(h, req, libc::EOPNOTSUPP, pid)],
    };
    if h.flags & NLM_F_ACK != 0 && !out.iter().any(|m| is_error(m)) && !dump {
        out.push(error_msg(h, req, 0, pid));
    }
    out
}

/// Whether a GETLINK or GETADDR request names another network namespace
/// (IFLA_/IFA_TARGET_NETNSID): the host would answer with the sentry's
/// privileges, so the relay refuses it.
fn names_other_netns(req: &[u8], h: &Header) -> bool {
    const IFLA_TARGET_NETNSID: u16 = 46;
    const IFA_TARGET_NETNSID: u16 = 10;
    let (fixed, attr) = match h.typ {
        RTM_GETLINK => (16, IFLA_TARGET_NETNSID),
        RTM_GETADDR => (8, IFA_TARGET_NETNSID),
        _ => return false,
    };
    req.get(NLMSG_HDRLEN + fixed..h.len)
        .is_some_and(|attrs| find_attr(attrs, attr).is_some())
}

fn is_error(m: &[u8]) -> bool {
    m.get(4..6) == Some(&NLMSG_ERROR.to_ne_bytes()[..])
}

fn find_attr(mut attrs: &[u8], typ: u16) -> Option<&[u8]> {
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let t = u16::from_ne_bytes([attrs[2], attrs[3]]);
        if len < 4 || len > attrs.len() {
            return None;
        }
        if t == typ {
            return Some(&attrs[4..len]);
        }
        attrs = &attrs[((len + 3) & !3).min(attrs.len())..];
    }
    None
}

/// sockaddr_nl for `pid`.
fn sockaddr_nl(pid: u32, groups: u32) -> Vec<u8> {
    let mut b = (libc::AF_NETLINK as u16).to_ne_bytes().to_vec();
    b.extend_from_slice(&[0, 0]);
    b.extend_from_slice(&pid.to_ne_bytes());
    b.extend_from_slice(&groups.to_ne_bytes());
    b
}

/// A NETLINK_ROUTE socket.
pub struct RouteSocket {
    /// The port id (nl_pid): the creating process's pid unless bound.
    pid: AtomicU32,
    groups: AtomicU32,
    /// Datagrams of answers waiting to be read (the sentry's network).
    queue: Mutex<VecDeque<Vec<u8>>>,
    ready: ReadyFlag,
    /// The host route socket answers come from (`--network host`).
    host: Option<OwnedFd>,
    nonblocking: AtomicBool,
}

/// A NETLINK_ROUTE socket of the sentry's own, in its network namespace
/// (the host-network relay; the stack's RTM_DELADDR at boot).
pub(super) fn host_route_socket() -> Result<OwnedFd, Errno> {
    // SAFETY: socket(2) with constants; the fd is ours.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if raw < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a fresh fd nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

impl RouteSocket {
    pub fn new(pid: u32, host: bool, nonblocking: bool) -> Result<Arc<Self>, Errno> {
        let host = if host {
            Some(host_route_socket()?)
        } else {
            None
        };
        if let Some(fd) = &host {
            set_host_nonblock(fd.as_raw_fd(), nonblocking);
        }
        Ok(Arc::new(RouteSocket {
            pid: AtomicU32::new(pid),
            groups: AtomicU32::new(0),
            queue: Mutex::new(VecDeque::new()),
            ready: ReadyFlag::new()?,
            host,
            nonblocking: AtomicBool::new(nonblocking),
        }))
    }

    /// Queues answers, packed into datagrams of at most a page.
    fn enqueue(&self, msgs: Vec<Vec<u8>>) {
        let mut q = lock(&self.queue);
        let mut cur: Vec<u8> = Vec::new();
        for m in msgs {
            if !cur.is_empty() && cur.len() + m.len() > DATAGRAM_MAX {
                q.push_back(std::mem::take(&mut cur));
            }
            cur.extend_from_slice(&m);
        }
        if !cur.is_empty() {
            q.push_back(cur);
        }
        self.ready.update(!q.is_empty());
    }
}

impl SocketOps for RouteSocket {
    fn family(&self) -> i32 {
        libc::AF_NETLINK
    }

    fn stype(&self) -> i32 {
        libc::SOCK_RAW
    }

    fn protocol(&self) -> i32 {
        libc::NETLINK_ROUTE
    }

    fn bind(&self, addr: &[u8]) -> Result<(), Errno> {
        if addr.len() < 12 {
            return Err(Errno::EINVAL);
        }
        if u16::from_ne_bytes([addr[0], addr[1]]) as i32 != libc::AF_NETLINK {
            return Err(Errno::EINVAL);
        }
        let pid = u32::from_ne_bytes(addr[4..8].try_into().unwrap_or([0; 4]));
        let groups = u32::from_ne_bytes(addr[8..12].try_into().unwrap_or([0; 4]));
        if let Some(fd) = &self.host {
            // The kernel picks the port id (and no multicast groups: the
            // relay only answers requests); local_name reports it, as the
            // host's replies carry it.
            let nl = sockaddr_nl(0, 0);
            // SAFETY: bind with our own sockaddr_nl.
            Errno::result(unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    nl.as_ptr().cast(),
                    nl.len() as libc::socklen_t,
                )
            })?;
            return Ok(());
        }
        if pid != 0 {
            self.pid.store(pid, Ordering::Relaxed);
        }
        // Multicast groups are accepted; the sandbox's network never
        // changes, so nothing is ever announced on them.
        self.groups.store(groups, Ordering::Relaxed);
        Ok(())
    }

    fn connect(&self, addr: &[u8]) -> Result<(), Errno> {
        if addr.len() < 12 || u16::from_ne_bytes([addr[0], addr[1]]) as i32 != libc::AF_NETLINK {
            return Err(Errno::EINVAL);
        }
        Ok(())
    }

    fn local_name(&self) -> Result<Vec<u8>, Errno> {
        if let Some(fd) = &self.host {
            let mut b = [0u8; 12];
            let mut len = b.len() as libc::socklen_t;
            // SAFETY: writes at most `len` bytes into our buffer.
            Errno::result(unsafe {
                libc::getsockname(fd.as_raw_fd(), b.as_mut_ptr().cast(), &mut len)
            })?;
            return Ok(b.to_vec());
        }
        Ok(sockaddr_nl(
            self.pid.load(Ordering::Relaxed),
            self.groups.load(Ordering::Relaxed),
        ))
    }

    fn peer_name(&self) -> Result<Vec<u8>, Errno> {
        Ok(sockaddr_nl(0, 0))
    }

    fn send(&self, data: &[u8], _flags: i32, to: Option<&[u8]>) -> Result<usize, Errno> {
        if let Some(to) = to {
            if to.len() < 12 || u16::from_ne_bytes([to[0], to[1]]) as i32 != libc::AF_NETLINK {
                return Err(Errno::EINVAL);
            }
        }
        let pid = self.pid.load(Ordering::Relaxed);
        let mut off = 0;
        let mut relay = Vec::new();
        let mut refused = Vec::new();
        while let Some(h) = parse_header(&data[off..]) {
            let req = &data[off..off + h.len];
            if self.host.is_some() {
                if h.flags & NLM_F_REQUEST != 0
                    && HOST_READS.contains(&h.typ)
                    && !names_other_netns(req, &h)
                {
                    relay.extend_from_slice(req);
                    while !relay.len().is_multiple_of(4) {
                        relay.push(0);
                    }
                } else {
                    refused.push(error_msg(&h, req, libc::EPERM, pid));
                }
            } else if h.flags & NLM_F_REQUEST != 0 {
                self.enqueue(answer(req, &h, pid));
            }
            off += (h.len + 3) & !3;
            if off >= data.len() {
                break;
            }
        }
        if let Some(fd) = &self.host {
            if !relay.is_empty() {
                // SAFETY: send from our own buffer to the kernel (nl_pid 0)
                // on the sentry's route socket.
                retry_host(|| {
                    Errno::result(unsafe {
                        libc::send(fd.as_raw_fd(), relay.as_ptr().cast(), relay.len(), 0)
                    })
                })?;
            }
            if !refused.is_empty() {
                self.enqueue(refused);
            }
        }
        Ok(data.len())
    }

    fn recv(&self, len: usize, flags: i32) -> Result<Received, Errno> {
        let nonblocking =
            self.nonblocking.load(Ordering::Relaxed) || flags & libc::MSG_DONTWAIT != 0;
        loop {
            {
                let mut q = lock(&self.queue);
                if let Some(d) = q.front() {
                    let d = if flags & libc::MSG_PEEK != 0 {
                        d.clone()
                    } else {
                        q.pop_front().unwrap_or_default()
                    };
                    self.ready.update(!q.is_empty());
                    return Ok(truncate(d, len, flags));
                }
            }
            if let Some(fd) = &self.host {
                // The reader's own size: the kernel sizes later parts of a
                // dump to the largest buffer it has seen read.
                let mut buf = vec![0u8; len.min(1 << 20)];
                let fl = (flags & (libc::MSG_PEEK | libc::MSG_DONTWAIT | libc::MSG_TRUNC))
                    | if nonblocking { libc::MSG_DONTWAIT } else { 0 };
                // Wait on the host socket or our own queue (refusals).
                let n = retry_host(|| {
                    // SAFETY: recv into our own buffer.
                    Errno::result(unsafe {
                        libc::recv(
                            fd.as_raw_fd(),
                            buf.as_mut_ptr().cast(),
                            buf.len(),
                            fl | libc::MSG_DONTWAIT,
                        )
                    })
                    .map(|n| n as usize)
                });
                match n {
                    Ok(n) => {
                        // With MSG_TRUNC, n is the datagram's full length.
                        let full = n;
                        buf.truncate(n.min(buf.len()));
                        let mut r = truncate(buf, len, flags);
                        if full > r.data.len() {
                            r.msg_flags |= libc::MSG_TRUNC;
                            if flags & libc::MSG_TRUNC != 0 {
                                r.ret = full;
                            }
                        }
                        return Ok(r);
                    }
                    Err(Errno::EAGAIN) if !nonblocking => {
                        let mut p = [
                            libc::pollfd {
                                fd: fd.as_raw_fd(),
                                events: libc::POLLIN,
                                revents: 0,
                            },
                            libc::pollfd {
                                fd: self.ready.fd.as_raw_fd(),
                                events: libc::POLLIN,
                                revents: 0,
                            },
                        ];
                        retry_host(|| {
                            // SAFETY: poll on our own pollfd array.
                            Errno::result(unsafe { libc::poll(p.as_mut_ptr(), 2, -1) })
                        })?;
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            if nonblocking {
                return Err(Errno::EAGAIN);
            }
            self.ready.wait()?;
        }
    }

    fn getsockopt(&self, level: i32, name: i32, _room: usize) -> Result<Vec<u8>, Errno> {
        match (level, name) {
            (libc::SOL_SOCKET, libc::SO_TYPE) => Ok(libc::SOCK_RAW.to_ne_bytes().to_vec()),
            (libc::SOL_SOCKET, libc::SO_DOMAIN) => Ok(libc::AF_NETLINK.to_ne_bytes().to_vec()),
            (libc::SOL_SOCKET, libc::SO_PROTOCOL) => Ok(libc::NETLINK_ROUTE.to_ne_bytes().to_vec()),
            (libc::SOL_SOCKET, libc::SO_RCVBUF | libc::SO_SNDBUF) => {
                Ok(212_992i32.to_ne_bytes().to_vec())
            }
            (libc::SOL_SOCKET, libc::SO_ERROR) => Ok(0i32.to_ne_bytes().to_vec()),
            _ => Err(Errno::ENOPROTOOPT),
        }
    }

    fn setsockopt(&self, level: i32, _name: i32, _val: &[u8]) -> Result<(), Errno> {
        match level {
            // Buffer sizes, and SOL_NETLINK's extended acks, strict
            // checking and memberships: accepted.
            libc::SOL_SOCKET | libc::SOL_NETLINK => Ok(()),
            _ => Err(Errno::ENOPROTOOPT),
        }
    }
}

/// A datagram cut to the caller's room (MSG_TRUNC reports its length).
fn truncate(mut d: Vec<u8>, len: usize, flags: i32) -> Received {
    let full = d.len();
    d.truncate(len);
    Received {
        ret: if flags & libc::MSG_TRUNC != 0 {
            full
        } else {
            d.len()
        },
        msg_flags: if full > d.len() { libc::MSG_TRUNC } else { 0 },
        data: d,
        from: Some(sockaddr_nl(0, 0)),
    }
}

impl FileOps for RouteSocket {
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
        super::socket_stat()
    }

    fn poll_fixed(&self) -> Option<i16> {
        if self.host.is_some() {
            return None;
        }
        let ready = !lock(&self.queue).is_empty();
        Some(
            libc::POLLOUT
                | libc::POLLWRNORM
                | if ready {
                    libc::POLLIN | libc::POLLRDNORM
                } else {
                    0
                },
        )
    }

    fn poll_fd(&self) -> Option<RawFd> {
        match &self.host {
            Some(fd) => Some(fd.as_raw_fd()),
            None => Some(self.ready.fd.as_raw_fd()),
        }
    }

    fn set_nonblocking(&self, on: bool) {
        self.nonblocking.store(on, Ordering::Relaxed);
    }

    fn socket_ops(self: Arc<Self>) -> Option<Arc<dyn SocketOps>> {
        Some(self)
    }
}
