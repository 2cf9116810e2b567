//! The sentry's own TCP/IP stack on the container's network device
//! (`--network sandbox`, gVisor's netstack), built on smoltcp.
//!
//! At boot, in a network namespace the spec names by path (a CNI netns),
//! the sentry finds the interface that carries an IPv4 address, takes the
//! address off the host's interface (so the host kernel neither answers
//! ARP for it nor resets connections it does not know, as runsc does) and
//! exchanges raw Ethernet frames with that interface over an AF_PACKET
//! socket. Addresses, prefix, gateway and MTU are what CNI configured.
//!
//! One network thread polls the interface: it moves frames, runs TCP's
//! timers, hands established connections to listening sockets, and keeps
//! each socket's readiness flags (host eventfds the application's blocking
//! calls and polls wait on). Application calls lock the stack briefly and
//! kick the thread when they queued something to send.
//!
//! So far: TCP, UDP and ICMP over IPv4, with fragmentation and
//! reassembly (the stack answers echo requests
//! to the device's address itself; the ICMP packets it receives go to
//! the application's ICMP sockets, `icmp.rs`). IPv6 beyond loopback is
//! not carried yet.
//!
//! Locking: the stack's lock is taken last. While it is held no socket's
//! own lock is taken and no application socket is dropped (its Drop locks
//! the stack): the network thread hands connections and datagrams over
//! after unlocking.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use nix::errno::Errno;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::socket::{raw, tcp, udp};
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpEndpoint, IpProtocol, IpVersion,
};

use super::inet::InetSocket;
use crate::fsimpl::ready::ReadyFlag;
use crate::kernel::lock;

/// Each connection's buffers, each way (window scaling lets TCP use them).
const TCP_BUFFER: usize = 256 * 1024;
/// Listening sockets kept open per listener (smoltcp's listener takes one
/// connection; a fresh one replaces it when it does).
const MAX_PENDING_LISTENERS: usize = 8;
/// A UDP socket's buffers: payload bytes and datagrams, each way.
const UDP_BUFFER: usize = 256 * 1024;
const UDP_DATAGRAMS: usize = 128;
/// The ICMP raw socket's buffers: bytes and packets, each way.
const ICMP_BUFFER: usize = 64 * 1024;
const ICMP_PACKETS: usize = 64;

/// The interface the stack attaches to, as CNI configured it.
#[derive(Clone, Debug)]
pub struct Device {
    pub name: String,
    pub index: i32,
    pub mac: [u8; 6],
    pub addr: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub mtu: usize,
}

/// Readiness flags of one TCP socket, kept by the network thread.
pub struct Wake {
    /// Data, end of stream, or the connection's end.
    pub rx: ReadyFlag,
    /// Room to send, or the connection's end.
    pub tx: ReadyFlag,
    /// The connection reached ESTABLISHED at least once (a connect that
    /// ends in CLOSED before it was refused).
    pub established: AtomicBool,
}

struct Listener {
    owner: Weak<InetSocket>,
    handles: Vec<SocketHandle>,
}

/// The interface's frames, over an AF_PACKET socket bound to it.
struct PacketDevice {
    fd: OwnedFd,
    /// Largest frame: the interface's MTU and the Ethernet header.
    frame: usize,
    /// Where frames are received. Room for 64 KiB: a veth peer's TCP
    /// hands the interface segments of up to 64 KiB (its own offload),
    /// which reach a packet socket whole; cut to the MTU they were lost,
    /// and a download from a peer crawled on retransmissions.
    rx_buf: Vec<u8>,
    /// Set when a receive found nothing: no more tries until the next
    /// round (`Netstack::pump`), so sending a burst of segments does not
    /// cost a failed recv(2) each.
    rx_idle: bool,
    /// Frames to send, handed to the host in one sendmmsg(2) (`flush`).
    tx: TxQueue,
    rx_bytes: u64,
    rx_frames: u64,
}

/// Frames on their way out, and the count of all that went.
#[derive(Default)]
struct TxQueue {
    frames: Vec<Vec<u8>>,
    bytes: u64,
    count: u64,
}

/// Frames queued before they are sent anyway.
const TX_BATCH: usize = 64;

struct RxFrame(Vec<u8>);

struct TxFrame<'a> {
    queue: &'a mut TxQueue,
    fd: RawFd,
}

impl phy::RxToken for RxFrame {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxFrame<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0u8; len];
        let r = f(&mut buf);
        self.queue.bytes += buf.len() as u64;
        self.queue.count += 1;
        self.queue.frames.push(buf);
        if self.queue.frames.len() >= TX_BATCH {
            send_frames(self.fd, &mut self.queue.frames);
        }
        r
    }
}

/// Sends `frames` on packet socket `fd` and empties the queue; a frame
/// the host cannot take is dropped, as a wire would drop it.
fn send_frames(fd: RawFd, frames: &mut Vec<Vec<u8>>) {
    let mut iovs: Vec<libc::iovec> = frames
        .iter_mut()
        .map(|f| libc::iovec {
            iov_base: f.as_mut_ptr().cast(),
            iov_len: f.len(),
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iovs
        .iter_mut()
        .map(|iov| {
            // SAFETY: an all-zero mmsghdr is valid; we point it at one iovec.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = iov;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    let mut done = 0;
    while done < msgs.len() {
        // SAFETY: sendmmsg of our own messages, each pointing at a frame
        // that lives until the queue is cleared below.
        let n = unsafe {
            libc::sendmmsg(
                fd,
                msgs[done..].as_mut_ptr(),
                (msgs.len() - done) as u32,
                libc::MSG_DONTWAIT,
            )
        };
        if n <= 0 {
            // Full or failing: skip the frame that failed.
            done += 1;
        } else {
            done += n as usize;
        }
    }
    frames.clear();
}

impl PacketDevice {
    fn flush(&mut self) {
        if !self.tx.frames.is_empty() {
            send_frames(self.fd.as_raw_fd(), &mut self.tx.frames);
        }
    }
}

impl phy::Device for PacketDevice {
    type RxToken<'a> = RxFrame;
    type TxToken<'a> = TxFrame<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(RxFrame, TxFrame<'_>)> {
        if self.rx_idle {
            return None;
        }
        // SAFETY: recv into our own buffer from our own socket.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                self.rx_buf.as_mut_ptr().cast(),
                self.rx_buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if n <= 0 {
            self.rx_idle = true;
            return None;
        }
        let buf = self.rx_buf.get(..n as usize)?.to_vec();
        self.rx_frames += 1;
        self.rx_bytes += n as u64;
        let fd = self.fd.as_raw_fd();
        Some((
            RxFrame(buf),
            TxFrame {
                queue: &mut self.tx,
                fd,
            },
        ))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxFrame<'_>> {
        let fd = self.fd.as_raw_fd();
        Some(TxFrame {
            queue: &mut self.tx,
            fd,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        c.max_transmission_unit = self.frame;
        // Frames from a veth or bridge may carry checksums the host left
        // to offload (never filled in): trust the host for what it
        // delivers, as gVisor's fdbased endpoint does, and compute ours.
        c.checksum.ipv4 = phy::Checksum::Tx;
        c.checksum.tcp = phy::Checksum::Tx;
        c.checksum.udp = phy::Checksum::Tx;
        c.checksum.icmpv4 = phy::Checksum::Tx;
        c
    }
}

/// Opens a packet socket on interface `index` taking every protocol.
fn packet_socket(index: i32) -> Result<OwnedFd, Errno> {
    let eth_p_all = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: socket(2) with constants; the fd is ours.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            eth_p_all as i32,
        )
    };
    if raw < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a fresh fd nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: an all-zero sockaddr_ll is valid; we fill in ours.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = eth_p_all;
    sll.sll_ifindex = index;
    // SAFETY: bind with our own sockaddr_ll.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(fd)
}

struct Inner {
    iface: Interface,
    device: PacketDevice,
    sockets: SocketSet<'static>,
    wakes: HashMap<SocketHandle, Arc<Wake>>,
    /// By local port.
    listeners: HashMap<u16, Listener>,
    /// Closed by the application; removed once TCP is done with them.
    closing: Vec<SocketHandle>,
    /// UDP sockets, and the application socket their datagrams go to.
    udp: HashMap<SocketHandle, Weak<InetSocket>>,
    /// The raw socket that sends the application's ICMP packets and
    /// receives every ICMP packet for `icmp::deliver`.
    icmp: SocketHandle,
}

/// What the network thread hands to application sockets once it has
/// unlocked the stack.
/// A connection a listening socket took, for its owner.
struct Accepted {
    owner: Arc<InetSocket>,
    handle: SocketHandle,
    wake: Arc<Wake>,
    local: SocketAddr,
    remote: SocketAddr,
}

#[derive(Default)]
struct Handover {
    accepted: Vec<Accepted>,
    datagrams: Vec<(Arc<InetSocket>, SocketAddr, Vec<u8>)>,
    /// ICMP packets, whole, for the ICMP sockets.
    icmp: Vec<Vec<u8>>,
    /// Upgraded on the way; dropped unlocked too.
    keep: Vec<Arc<InetSocket>>,
}

pub struct Netstack {
    inner: Mutex<Inner>,
    /// Written to wake the network thread (something to send).
    kick: ReadyFlag,
    /// When the network thread wakes next at the latest (smoltcp
    /// milliseconds).
    sleep_until: std::sync::atomic::AtomicU64,
    device_fd: RawFd,
    pub device: Device,
}

static STACK: OnceLock<Arc<Netstack>> = OnceLock::new();

/// The stack, if the sandbox has a device.
pub fn stack() -> Option<&'static Arc<Netstack>> {
    STACK.get()
}

/// Whether `ip` is one of the device's addresses.
pub fn is_device_addr(ip: std::net::IpAddr) -> bool {
    matches!((stack(), ip), (Some(s), std::net::IpAddr::V4(v4)) if v4 == s.device.addr)
}

/// Whether the device has a route to `ip`: on its subnet, or through a
/// default gateway (Linux answers ENETUNREACH otherwise, at once).
pub fn routable(ip: std::net::IpAddr) -> bool {
    let (Some(s), std::net::IpAddr::V4(v4)) = (stack(), ip) else {
        return false;
    };
    let d = &s.device;
    let mask = d.netmask();
    (u32::from(v4) & mask) == (u32::from(d.addr) & mask) || d.gateway.is_some()
}

impl Device {
    /// The subnet mask of the device's address, in host order.
    pub fn netmask(&self) -> u32 {
        u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0)
    }
}

fn tcp_socket() -> tcp::Socket<'static> {
    let mut s = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
        tcp::SocketBuffer::new(vec![0; TCP_BUFFER]),
    );
    s.set_nagle_enabled(false);
    s
}

fn new_wake() -> Result<Arc<Wake>, Errno> {
    Ok(Arc::new(Wake {
        rx: ReadyFlag::new()?,
        tx: ReadyFlag::new()?,
        established: AtomicBool::new(false),
    }))
}

/// Finds the network namespace's device: the first interface other than
/// lo with an IPv4 address (ioctls on a socket in the sentry's namespace),
/// and the default gateway (/proc/net/route, read before the sentry
/// gives up the host's filesystem).
pub fn discover() -> Option<Device> {
    // SAFETY: socket(2) with constants; closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    let mut reqs = vec![[0u8; 40]; 32];
    let mut conf = [0u8; 16];
    conf[0..4].copy_from_slice(&((reqs.len() * 40) as i32).to_ne_bytes());
    conf[8..16].copy_from_slice(&(reqs.as_mut_ptr() as u64).to_ne_bytes());
    // SAFETY: SIOCGIFCONF fills our ifconf and at most its length of our
    // ifreq array.
    let ok = unsafe { libc::ioctl(fd, libc::SIOCGIFCONF, conf.as_mut_ptr()) } == 0;
    let n = i32::from_ne_bytes([conf[0], conf[1], conf[2], conf[3]]).max(0) as usize / 40;
    let mut found = None;
    for req in reqs.iter().take(if ok { n } else { 0 }) {
        let end = req[..16].iter().position(|&c| c == 0).unwrap_or(16);
        let name = String::from_utf8_lossy(&req[..end]).into_owned();
        if name == "lo" {
            continue;
        }
        let addr = Ipv4Addr::new(req[20], req[21], req[22], req[23]);
        let mut r = *req;
        let ask = |r: &mut [u8; 40], cmd| {
            // SAFETY: these requests read and write one ifreq, our own.
            unsafe { libc::ioctl(fd, cmd, r.as_mut_ptr()) == 0 }
        };
        if !ask(&mut r, libc::SIOCGIFNETMASK) {
            continue;
        }
        let mask = u32::from_be_bytes([r[20], r[21], r[22], r[23]]);
        let mut h = *req;
        if !ask(&mut h, libc::SIOCGIFHWADDR) {
            continue;
        }
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&h[18..24]);
        let mut x = *req;
        if !ask(&mut x, libc::SIOCGIFINDEX) {
            continue;
        }
        let index = i32::from_ne_bytes([x[16], x[17], x[18], x[19]]);
        let mut m = *req;
        let mtu = if ask(&mut m, libc::SIOCGIFMTU) {
            i32::from_ne_bytes([m[16], m[17], m[18], m[19]]).max(576) as usize
        } else {
            1500
        };
        found = Some(Device {
            mtu,
            gateway: default_gateway(&name),
            name,
            index,
            mac,
            addr,
            prefix: mask.count_ones() as u8,
        });
        break;
    }
    // SAFETY: our own fd.
    unsafe { libc::close(fd) };
    found
}

/// The default route's gateway through `dev`, from /proc/net/route.
fn default_gateway(dev: &str) -> Option<Ipv4Addr> {
    let table = std::fs::read_to_string("/proc/net/route").ok()?;
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 3 || f[0] != dev || f[1] != "00000000" {
            return None;
        }
        let gw = u32::from_str_radix(f[2], 16).ok()?;
        // /proc/net/route prints the address in host (little-endian) order.
        Some(Ipv4Addr::from(gw.swap_bytes()))
    })
}

/// Takes the device's IPv4 address off the host's interface (RTM_DELADDR
/// on a route socket), so that the host's stack leaves its traffic to us.
fn take_address(dev: &Device) -> Result<(), Errno> {
    const RTM_DELADDR: u16 = 21;
    const NLM_F_REQUEST_ACK: u16 = 1 | 4;
    const IFA_LOCAL: u16 = 2;
    let fd = super::netlink::host_route_socket()?;
    let mut ifaddr = vec![libc::AF_INET as u8, dev.prefix, 0, 0];
    ifaddr.extend_from_slice(&(dev.index as u32).to_ne_bytes());
    let msg = super::netlink::Msg::new(RTM_DELADDR, NLM_F_REQUEST_ACK, 1, 0)
        .raw(&ifaddr)
        .attr(IFA_LOCAL, &dev.addr.octets())
        .done();
    // SAFETY: send and recv with our own buffers on our own socket.
    let r = unsafe { libc::send(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
    let mut ack = [0u8; 256];
    let got = if r < 0 {
        -1
    } else {
        // SAFETY: as above.
        unsafe { libc::recv(fd.as_raw_fd(), ack.as_mut_ptr().cast(), ack.len(), 0) }
    };
    if got < 20 {
        return Err(Errno::EIO);
    }
    let err = i32::from_ne_bytes([ack[16], ack[17], ack[18], ack[19]]);
    if err != 0 {
        return Err(Errno::from_raw(-err));
    }
    Ok(())
}

/// Attaches the stack to `dev` and starts its network thread.
pub fn start(dev: Device) -> Result<(), String> {
    let mut device = PacketDevice {
        fd: packet_socket(dev.index)
            .map_err(|e| format!("opening a packet socket on {}: {e}", dev.name))?,
        frame: dev.mtu + 14,
        // A 64 KiB IP packet, its Ethernet header and a VLAN tag.
        rx_buf: vec![0; 65535 + 18],
        rx_idle: false,
        tx: TxQueue::default(),
        rx_bytes: 0,
        rx_frames: 0,
    };
    take_address(&dev).map_err(|e| format!("taking {} off {}: {e}", dev.addr, dev.name))?;
    let config = Config::new(HardwareAddress::Ethernet(EthernetAddress(dev.mac)));
    let mut iface = Interface::new(config, &mut device, Instant::now());
    iface.update_ip_addrs(|a| {
        let _ = a.push(IpCidr::new(IpAddress::Ipv4(dev.addr), dev.prefix));
    });
    if let Some(gw) = dev.gateway {
        let _ = iface.routes_mut().add_default_ipv4_route(gw);
    }
    let device_fd = device.fd.as_raw_fd();
    let mut sockets = SocketSet::new(Vec::new());
    let icmp = sockets.add(raw::Socket::new(
        IpVersion::Ipv4,
        IpProtocol::Icmp,
        raw::PacketBuffer::new(
            vec![raw::PacketMetadata::EMPTY; ICMP_PACKETS],
            vec![0; ICMP_BUFFER],
        ),
        raw::PacketBuffer::new(
            vec![raw::PacketMetadata::EMPTY; ICMP_PACKETS],
            vec![0; ICMP_BUFFER],
        ),
    ));
    let stack = Arc::new(Netstack {
        inner: Mutex::new(Inner {
            iface,
            device,
            sockets,
            wakes: HashMap::new(),
            listeners: HashMap::new(),
            closing: Vec::new(),
            udp: HashMap::new(),
            icmp,
        }),
        kick: ReadyFlag::new().map_err(|e| format!("eventfd: {e}"))?,
        sleep_until: std::sync::atomic::AtomicU64::new(0),
        device_fd,
        device: dev,
    });
    if STACK.set(stack.clone()).is_err() {
        return Err("the network stack was started twice".into());
    }
    std::thread::Builder::new()
        .name("netstack".into())
        .spawn(move || stack.run())
        .map_err(|e| format!("starting the network thread: {e}"))?;
    Ok(())
}

fn endpoint(a: SocketAddrV4) -> IpEndpoint {
    IpEndpoint::new(IpAddress::Ipv4(*a.ip()), a.port())
}

impl Netstack {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    fn kick(&self) {
        self.kick.update(true);
    }

    /// The network thread.
    fn run(&self) {
        loop {
            let (delay, handover) = {
                let mut g = self.inner();
                self.kick.update(false);
                let now = Instant::now();
                g.device.rx_idle = false;
                Self::pump(&mut g, now, true);
                let mut handover = Handover::default();
                self.hand_over(&mut g, &mut handover);
                self.drain_udp(&mut g, &mut handover);
                let icmp = g.icmp;
                let raw_icmp = g.sockets.get_mut::<raw::Socket>(icmp);
                while let Ok(p) = raw_icmp.recv() {
                    handover.icmp.push(p.to_vec());
                }
                self.update_wakes(&mut g);
                let Inner { iface, sockets, .. } = &mut *g;
                let delay = iface.poll_delay(Instant::now(), sockets);
                let ms = delay.map_or(100, |d| d.total_millis().min(100));
                self.sleep_until
                    .store(now.total_millis() as u64 + ms, Ordering::Relaxed);
                (delay, handover)
            };
            for a in handover.accepted {
                a.owner.accept_external(a.handle, a.wake, a.local, a.remote);
            }
            for (sock, from, data) in handover.datagrams {
                sock.deliver(from, &data);
            }
            for p in handover.icmp {
                super::icmp::deliver(&p);
            }
            drop(handover.keep);
            let ms = delay.map_or(100, |d| d.total_millis().min(100) as i32);
            let mut p = [
                libc::pollfd {
                    fd: self.device_fd,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.kick.fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: poll on our own pollfd array.
            unsafe { libc::poll(p.as_mut_ptr(), 2, ms) };
        }
    }

    /// Runs the stack until it has nothing more to do at once: smoltcp
    /// sends one segment per socket per poll, so a burst takes a poll per
    /// segment (without sleeping in between), and frames go out together
    /// at the end. `ingress`: take received frames too (the network
    /// thread); application threads only send.
    fn pump(g: &mut Inner, now: Instant, ingress: bool) {
        let Inner {
            iface,
            device,
            sockets,
            ..
        } = g;
        for _ in 0..1024 {
            if ingress {
                iface.poll(now, device, sockets);
            } else {
                iface.poll_egress(now, device, sockets);
            }
            if iface.poll_delay(now, sockets) != Some(smoltcp::time::Duration::ZERO) {
                break;
            }
        }
        device.flush();
    }

    /// Sends what the application just queued from its own thread, as
    /// Linux sends in the caller's context, instead of waking the network
    /// thread for it (a cross-CPU wake-up per send); the thread is woken
    /// only if a timer now falls before it would wake anyway.
    fn send_now(&self, mut g: MutexGuard<'_, Inner>) {
        let now = Instant::now();
        Self::pump(&mut g, now, false);
        self.update_wakes(&mut g);
        let Inner { iface, sockets, .. } = &mut *g;
        let due = iface
            .poll_delay(now, sockets)
            .map(|d| now.total_millis() as u64 + d.total_millis());
        drop(g);
        if due.is_some_and(|t| t < self.sleep_until.load(Ordering::Relaxed)) {
            self.kick();
        }
    }

    /// Gives each listener the connections its listening sockets took,
    /// and opens fresh listening sockets in their place.
    fn hand_over(&self, g: &mut Inner, out: &mut Handover) {
        let ports: Vec<u16> = g.listeners.keys().copied().collect();
        for port in ports {
            let Some(l) = g.listeners.get(&port) else {
                continue;
            };
            let mut done = Vec::new();
            for h in &l.handles {
                let s = g.sockets.get::<tcp::Socket>(*h);
                if s.state() != tcp::State::Listen && s.state() != tcp::State::SynReceived {
                    done.push(*h);
                }
            }
            if done.is_empty() {
                continue;
            }
            let owner = l.owner.upgrade();
            for h in done {
                let fresh = {
                    let mut s = tcp_socket();
                    let _ = s.listen(port);
                    g.sockets.add(s)
                };
                if let Some(l) = g.listeners.get_mut(&port) {
                    l.handles.retain(|x| *x != h);
                    l.handles.push(fresh);
                }
                let (local, remote, state) = {
                    let s = g.sockets.get::<tcp::Socket>(h);
                    (s.local_endpoint(), s.remote_endpoint(), s.state())
                };
                let (Some(owner), Some(local), Some(remote), true) = (
                    owner.as_ref(),
                    local,
                    remote,
                    matches!(state, tcp::State::Established | tcp::State::CloseWait),
                ) else {
                    g.sockets.get_mut::<tcp::Socket>(h).abort();
                    g.closing.push(h);
                    continue;
                };
                let Ok(wake) = new_wake() else {
                    g.sockets.get_mut::<tcp::Socket>(h).abort();
                    g.closing.push(h);
                    continue;
                };
                wake.established.store(true, Ordering::Relaxed);
                g.wakes.insert(h, wake.clone());
                let to = |e: IpEndpoint| match e.addr {
                    IpAddress::Ipv4(a) => SocketAddr::V4(SocketAddrV4::new(a, e.port)),
                };
                out.accepted.push(Accepted {
                    owner: owner.clone(),
                    handle: h,
                    wake,
                    local: to(local),
                    remote: to(remote),
                });
            }
            if let Some(o) = owner {
                out.keep.push(o);
            }
        }
    }

    /// Takes the datagrams the UDP sockets received, for their owners.
    fn drain_udp(&self, g: &mut Inner, out: &mut Handover) {
        let Inner { sockets, udp, .. } = g;
        for (h, owner) in udp.iter() {
            let s = sockets.get_mut::<udp::Socket>(*h);
            if !s.can_recv() {
                continue;
            }
            let Some(owner) = owner.upgrade() else {
                continue;
            };
            while let Ok((data, meta)) = s.recv() {
                let IpAddress::Ipv4(a) = meta.endpoint.addr;
                let from = SocketAddr::V4(SocketAddrV4::new(a, meta.endpoint.port));
                out.datagrams.push((owner.clone(), from, data.to_vec()));
            }
            out.keep.push(owner);
        }
    }

    /// Opens a UDP socket on `port` whose datagrams go to `owner`.
    pub fn udp_bind(&self, port: u16, owner: &Arc<InetSocket>) -> Result<SocketHandle, Errno> {
        let mut s = udp::Socket::new(
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; UDP_DATAGRAMS],
                vec![0; UDP_BUFFER],
            ),
            udp::PacketBuffer::new(
                vec![udp::PacketMetadata::EMPTY; UDP_DATAGRAMS],
                vec![0; UDP_BUFFER],
            ),
        );
        s.bind(port).map_err(|_| Errno::EADDRINUSE)?;
        let mut g = self.inner();
        let h = g.sockets.add(s);
        g.udp.insert(h, Arc::downgrade(owner));
        Ok(h)
    }

    /// Sends one datagram; a full send buffer drops it, as a full
    /// device queue does.
    pub fn udp_send(&self, h: SocketHandle, data: &[u8], to: SocketAddrV4) -> Result<(), Errno> {
        let mut g = self.inner();
        match g
            .sockets
            .get_mut::<udp::Socket>(h)
            .send_slice(data, endpoint(to))
        {
            Ok(()) | Err(udp::SendError::BufferFull) => {}
            Err(udp::SendError::Unaddressable) => return Err(Errno::EINVAL),
        }
        self.send_now(g);
        Ok(())
    }

    /// Sends a whole IPv4 ICMP packet an application's ICMP socket built.
    /// A full queue drops it, as a full device queue does; one larger
    /// than the device's MTU is EMSGSIZE (ICMP is not fragmented yet).
    pub fn icmp_send(&self, packet: &[u8]) -> Result<(), Errno> {
        if packet.len() > self.device.mtu {
            return Err(Errno::EMSGSIZE);
        }
        let mut g = self.inner();
        let icmp = g.icmp;
        let _ = g.sockets.get_mut::<raw::Socket>(icmp).send_slice(packet);
        self.send_now(g);
        Ok(())
    }

    pub fn udp_close(&self, h: SocketHandle) {
        let mut g = self.inner();
        if g.udp.remove(&h).is_some() {
            g.sockets.remove(h);
        }
    }

    fn update_wakes(&self, g: &mut Inner) {
        let Inner {
            sockets,
            wakes,
            closing,
            ..
        } = g;
        for (h, w) in wakes.iter() {
            let s = sockets.get::<tcp::Socket>(*h);
            let state = s.state();
            let ended = matches!(state, tcp::State::Closed | tcp::State::TimeWait);
            if state == tcp::State::Established {
                w.established.store(true, Ordering::Relaxed);
            }
            let connecting = matches!(state, tcp::State::SynSent | tcp::State::SynReceived);
            w.rx.update(s.can_recv() || (!s.may_recv() && !connecting) || ended);
            w.tx.update((s.can_send() && !connecting) || ended || (!s.may_send() && !connecting));
        }
        // Sockets the application closed go once TCP has finished.
        closing.retain(|h| {
            let gone = matches!(
                sockets.get::<tcp::Socket>(*h).state(),
                tcp::State::Closed | tcp::State::TimeWait
            );
            if gone {
                sockets.remove(*h);
            }
            !gone
        });
    }

    /// Starts a connection from local port `port` to `remote`.
    pub fn connect(
        &self,
        port: u16,
        remote: SocketAddrV4,
    ) -> Result<(SocketHandle, Arc<Wake>), Errno> {
        let wake = new_wake()?;
        let mut g = self.inner();
        let mut s = tcp_socket();
        let Inner { iface, .. } = &mut *g;
        s.connect(iface.context(), endpoint(remote), port)
            .map_err(|_| Errno::EADDRNOTAVAIL)?;
        let h = g.sockets.add(s);
        g.wakes.insert(h, wake.clone());
        self.send_now(g);
        Ok((h, wake))
    }

    /// Listens on `port` for `owner`.
    pub fn listen(&self, port: u16, backlog: usize, owner: &Arc<InetSocket>) -> Result<(), Errno> {
        let mut g = self.inner();
        if g.listeners.contains_key(&port) {
            return Ok(());
        }
        let mut handles = Vec::new();
        for _ in 0..(backlog + 1).clamp(1, MAX_PENDING_LISTENERS) {
            let mut s = tcp_socket();
            s.listen(port).map_err(|_| Errno::EADDRINUSE)?;
            handles.push(g.sockets.add(s));
        }
        g.listeners.insert(
            port,
            Listener {
                owner: Arc::downgrade(owner),
                handles,
            },
        );
        Ok(())
    }

    /// Stops listening on `port`, if `owner` (a socket's address) is the
    /// socket that listens there.
    pub fn unlisten(&self, port: u16, owner: *const InetSocket) {
        let mut g = self.inner();
        if g.listeners
            .get(&port)
            .is_some_and(|l| l.owner.as_ptr() == owner)
        {
            if let Some(l) = g.listeners.remove(&port) {
                for h in l.handles {
                    g.sockets.remove(h);
                }
            }
        }
    }

    /// Sends what fits; EAGAIN when nothing does.
    pub fn send(&self, h: SocketHandle, data: &[u8]) -> Result<usize, Errno> {
        let mut g = self.inner();
        let s = g.sockets.get_mut::<tcp::Socket>(h);
        // Still connecting: the caller waits for the handshake, as Linux.
        if matches!(s.state(), tcp::State::SynSent | tcp::State::SynReceived) {
            return Err(Errno::EAGAIN);
        }
        if !s.may_send() {
            return Err(if s.state() == tcp::State::Closed {
                Errno::ECONNRESET
            } else {
                Errno::EPIPE
            });
        }
        let n = s.send_slice(data).map_err(|_| Errno::EPIPE)?;
        if n == 0 {
            return Err(Errno::EAGAIN);
        }
        self.send_now(g);
        Ok(n)
    }

    /// Receives what is there: Ok(0) at the end of the stream; EAGAIN
    /// while nothing is.
    pub fn recv(&self, h: SocketHandle, buf: &mut [u8], peek: bool) -> Result<usize, Errno> {
        let mut g = self.inner();
        let s = g.sockets.get_mut::<tcp::Socket>(h);
        if s.can_recv() {
            let n = if peek {
                s.peek_slice(buf).map_err(|_| Errno::ECONNRESET)?
            } else {
                s.recv_slice(buf).map_err(|_| Errno::ECONNRESET)?
            };
            // A read opens the window: tell the peer if it matters now.
            self.send_now(g);
            return Ok(n);
        }
        if !s.may_recv() && !matches!(s.state(), tcp::State::SynSent | tcp::State::SynReceived) {
            return Ok(0);
        }
        Err(Errno::EAGAIN)
    }

    /// readiness bits of a connection (poll).
    pub fn poll_mask(&self, h: SocketHandle, wake: &Wake) -> i16 {
        let g = self.inner();
        let s = g.sockets.get::<tcp::Socket>(h);
        let state = s.state();
        let connecting = matches!(state, tcp::State::SynSent | tcp::State::SynReceived);
        let mut m = 0;
        if s.can_recv() {
            m |= libc::POLLIN | libc::POLLRDNORM;
        }
        if !connecting && !s.may_recv() {
            m |= libc::POLLIN | libc::POLLRDNORM | libc::POLLRDHUP;
        }
        // Linux reports a shut-down send side as writable (the write
        // fails at once).
        if !connecting && (s.can_send() || !s.may_send()) {
            m |= libc::POLLOUT | libc::POLLWRNORM;
        }
        if state == tcp::State::Closed {
            m |= libc::POLLHUP | libc::POLLOUT | libc::POLLIN | libc::POLLRDHUP;
            if !wake.established.load(Ordering::Relaxed) {
                m |= libc::POLLERR;
            }
        }
        m
    }

    /// The state of a connect in progress: None while it is, Some(error)
    /// once it ended (None inside: connected).
    pub fn connect_result(&self, h: SocketHandle, wake: &Wake) -> Option<Option<Errno>> {
        let g = self.inner();
        match g.sockets.get::<tcp::Socket>(h).state() {
            tcp::State::SynSent | tcp::State::SynReceived => None,
            tcp::State::Closed if !wake.established.load(Ordering::Relaxed) => {
                Some(Some(Errno::ECONNREFUSED))
            }
            _ => Some(None),
        }
    }

    pub fn unread(&self, h: SocketHandle) -> usize {
        self.inner().sockets.get::<tcp::Socket>(h).recv_queue()
    }

    /// The connection's state as Linux numbers it (/proc/net/tcp).
    pub fn linux_tcp_state(&self, h: SocketHandle) -> u8 {
        use tcp::State::*;
        match self.inner().sockets.get::<tcp::Socket>(h).state() {
            Established => 1,
            SynSent => 2,
            SynReceived => 3,
            FinWait1 => 4,
            FinWait2 => 5,
            TimeWait => 6,
            Closed => 7,
            CloseWait => 8,
            LastAck => 9,
            Listen => 10,
            Closing => 11,
        }
    }

    /// The device's traffic so far: (rx bytes, rx frames, tx bytes, tx
    /// frames), for /proc/net/dev.
    pub fn counters(&self) -> [u64; 4] {
        let g = self.inner();
        let d = &g.device;
        [d.rx_bytes, d.rx_frames, d.tx.bytes, d.tx.count]
    }

    pub fn unsent(&self, h: SocketHandle) -> usize {
        self.inner().sockets.get::<tcp::Socket>(h).send_queue()
    }

    /// shutdown(SHUT_WR): a FIN after the queued data.
    pub fn shutdown_write(&self, h: SocketHandle) {
        let mut g = self.inner();
        g.sockets.get_mut::<tcp::Socket>(h).close();
        self.send_now(g);
    }

    /// The application closed its last reference: FIN (or RST if data it
    /// never read is waiting, as Linux), then forget the socket.
    pub fn close(&self, h: SocketHandle) {
        let mut g = self.inner();
        g.wakes.remove(&h);
        let s = g.sockets.get_mut::<tcp::Socket>(h);
        if s.recv_queue() > 0 {
            s.abort();
        } else {
            s.close();
        }
        g.closing.push(h);
        self.send_now(g);
    }
}
