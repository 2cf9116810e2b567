//! The internet-socket halves of the socket syscalls (`socket.rs` reads
//! the arguments and sends AF_INET and AF_INET6 sockets here): copying
//! addresses, data and options between the application and the socket
//! objects of `socket/inet.rs` (the sandbox's loopback) or
//! `socket/hostinet.rs` (`--network host`).

use std::net::SocketAddr;
use std::sync::Arc;

use nix::errno::Errno;

use super::socket::{cmsgs, install_socket, raise_sigpipe, read_control, MsgHeader};
use super::SysResult;
use crate::kernel::task::Task;
use crate::kernel::{cap, kernel, lock};
use crate::socket::hostinet::HostInetSocket;
use crate::socket::icmp::{IcmpSocket, Kind as IcmpKind};
use crate::socket::inet::{
    canonical, int_option_default, is_bool_option, parse_sockaddr, sockaddr_bytes, sockaddr_family,
    Connected, InetSocket, Options, Proto,
};
use crate::socket::netlink::RouteSocket;
use crate::socket::{NetSock, Received};
use crate::vfs::OpenFile;
use crate::NetworkMode;

/// sizeof(struct sockaddr_storage): the longest address a call reads.
const SOCKADDR_MAX: u64 = 128;
const MAX_IO: usize = 1 << 20;
/// Linux's SOCK_MIN_RCVBUF / SOCK_MIN_SNDBUF on x86_64.
const MIN_RCVBUF: i32 = 2304;
const MIN_SNDBUF: i32 = 4608;
/// TCP_INFO's tcpi_state values.
const TCP_ESTABLISHED: u8 = 1;
const TCP_CLOSE: u8 = 7;
const TCP_LISTEN: u8 = 10;

const SEND_FLAGS: i32 = libc::MSG_DONTWAIT
    | libc::MSG_NOSIGNAL
    | libc::MSG_MORE
    | libc::MSG_EOR
    | libc::MSG_CONFIRM
    | libc::MSG_DONTROUTE;
const RECV_FLAGS: i32 = libc::MSG_DONTWAIT
    | libc::MSG_PEEK
    | libc::MSG_WAITALL
    | libc::MSG_TRUNC
    | libc::MSG_CMSG_CLOEXEC
    | libc::MSG_ERRQUEUE;

/// socket(2) for AF_INET and AF_INET6.
pub fn socket(t: &Task, domain: i32, typ: i32, protocol: i32) -> SysResult {
    if typ & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC | 0xf) != 0 {
        return Err(Errno::EINVAL);
    }
    let proto = match (typ & 0xf, protocol) {
        (libc::SOCK_STREAM, 0 | libc::IPPROTO_TCP) => Proto::Tcp,
        (libc::SOCK_DGRAM, 0 | libc::IPPROTO_UDP) => Proto::Udp,
        (libc::SOCK_DGRAM, libc::IPPROTO_ICMP | libc::IPPROTO_ICMPV6) => {
            // Ping sockets: Linux admits only the groups in
            // net.ipv4.ping_group_range (empty unless the spec's sysctls
            // widen it).
            if !may_ping(t) {
                return Err(Errno::EACCES);
            }
            return icmp_socket(t, domain, typ, protocol, IcmpKind::Ping);
        }
        (libc::SOCK_RAW, _) => {
            if !lock(&t.proc.creds).has_cap(cap::NET_RAW) {
                return Err(Errno::EPERM);
            }
            return icmp_socket(t, domain, typ, protocol, IcmpKind::Raw);
        }
        (libc::SOCK_STREAM | libc::SOCK_DGRAM, _) => return Err(Errno::EPROTONOSUPPORT),
        _ => return Err(Errno::ESOCKTNOSUPPORT),
    };
    let nonblocking = typ & libc::SOCK_NONBLOCK != 0;
    if kernel().network == NetworkMode::Host {
        let s = HostInetSocket::new(domain, proto, nonblocking)?;
        return install_socket(t, s, typ);
    }
    let uid = lock(&t.proc.creds).euid;
    let s = InetSocket::new(domain, proto, nonblocking, uid)?;
    install_socket(t, s, typ)
}

/// Whether the caller's groups fall in net.ipv4.ping_group_range, as
/// Linux's ping_init_sock checks.
fn may_ping(t: &Task) -> bool {
    let (lo, hi) = kernel().ping_group_range;
    let creds = lock(&t.proc.creds);
    std::iter::once(creds.egid)
        .chain(creds.groups.iter().copied())
        .any(|g| (lo..=hi).contains(&g))
}

/// An ICMP socket over IPv4 (`socket/icmp.rs`); other raw protocols and
/// ICMPv6 are not carried yet.
fn icmp_socket(t: &Task, domain: i32, typ: i32, protocol: i32, kind: IcmpKind) -> SysResult {
    if domain != libc::AF_INET || protocol != libc::IPPROTO_ICMP {
        kernel().log_unimplemented(
            libc::SYS_socket as u64 | (domain as u64) << 32 | (protocol as u64) << 40,
            &format!("socket (raw or ping socket, family {domain} protocol {protocol})"),
        );
        return Err(Errno::EPROTONOSUPPORT);
    }
    let host = kernel().network == NetworkMode::Host;
    let s = IcmpSocket::new(kind, host, typ & libc::SOCK_NONBLOCK != 0)?;
    install_socket(t, s, typ)
}

/// socket(2) for AF_NETLINK: NETLINK_ROUTE only.
pub fn netlink_socket(t: &Task, typ: i32, protocol: i32) -> SysResult {
    if typ & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC | 0xf) != 0 {
        return Err(Errno::EINVAL);
    }
    if !matches!(typ & 0xf, libc::SOCK_RAW | libc::SOCK_DGRAM) {
        return Err(Errno::ESOCKTNOSUPPORT);
    }
    if protocol != libc::NETLINK_ROUTE {
        kernel().log_unimplemented(
            libc::SYS_socket as u64 | (libc::AF_NETLINK as u64) << 32 | (protocol as u64) << 40,
            &format!("socket (netlink protocol {protocol})"),
        );
        return Err(Errno::EPROTONOSUPPORT);
    }
    let host = kernel().network == NetworkMode::Host;
    let pid = t.pid_to_user(t.pid()) as u32;
    let s = RouteSocket::new(pid, host, typ & libc::SOCK_NONBLOCK != 0)?;
    install_socket(t, s, typ)
}

fn read_sockaddr(t: &Task, addr: u64, len: u64) -> Result<Vec<u8>, Errno> {
    if len > SOCKADDR_MAX || (len as i32) < 0 {
        return Err(Errno::EINVAL);
    }
    t.read_bytes(addr, len as usize)
}

/// An address the caller gave, canonical (IPv4-mapped becomes IPv4).
fn read_inet_addr(t: &Task, s: &InetSocket, addr: u64, len: u64) -> Result<SocketAddr, Errno> {
    let raw = read_sockaddr(t, addr, len)?;
    Ok(canonical(parse_sockaddr(s.family, &raw)?))
}

fn write_addr(t: &Task, addr: u64, lenp: u64, bytes: &[u8]) -> Result<(), Errno> {
    super::socket::write_addr(t, addr, lenp, bytes)
}

/// Ports below this need CAP_NET_BIND_SERVICE
/// (net.ipv4.ip_unprivileged_port_start).
const UNPRIVILEGED_PORT_START: u16 = 1024;

pub fn bind(t: &Task, s: &NetSock, addr: u64, len: u64) -> SysResult {
    let raw = read_sockaddr(t, addr, len)?;
    let may_bind_low = lock(&t.proc.creds).has_cap(cap::NET_BIND_SERVICE);
    let s = match s {
        NetSock::Local(s) => s,
        NetSock::Ops(o) => {
            o.bind(&raw)?;
            return Ok(0);
        }
        NetSock::Host(h) => {
            let host_addr = h.host_sockaddr(&raw)?;
            let port = u16::from_be_bytes([host_addr[2], host_addr[3]]);
            if port != 0 && port < UNPRIVILEGED_PORT_START && !may_bind_low {
                return Err(Errno::EACCES);
            }
            h.bind(&host_addr)?;
            return Ok(0);
        }
    };
    let parsed = match parse_sockaddr(s.family, &raw) {
        // Linux's compatibility rule: an IPv4 socket may be bound with
        // AF_UNSPEC if the address is INADDR_ANY.
        Err(Errno::EAFNOSUPPORT)
            if s.family == libc::AF_INET
                && sockaddr_family(&raw) == libc::AF_UNSPEC
                && raw[4..8] == [0; 4] =>
        {
            let port = u16::from_be_bytes([raw[2], raw[3]]);
            SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), port)
        }
        other => other?,
    };
    s.bind(canonical(parsed), may_bind_low)?;
    Ok(0)
}

pub fn listen(s: &NetSock, backlog: i32) -> SysResult {
    match s {
        NetSock::Local(s) => s.listen(backlog)?,
        NetSock::Host(h) => h.listen(backlog.min(4096))?,
        NetSock::Ops(o) => o.listen(backlog)?,
    }
    Ok(0)
}

pub fn connect(t: &Task, s: &NetSock, addr: u64, len: u64) -> SysResult {
    let raw = read_sockaddr(t, addr, len)?;
    if raw.len() < 2 {
        return Err(Errno::EINVAL);
    }
    let s = match s {
        NetSock::Local(s) => s,
        NetSock::Ops(o) => {
            o.connect(&raw)?;
            return Ok(0);
        }
        NetSock::Host(h) => {
            let host_addr = if sockaddr_family(&raw) == libc::AF_UNSPEC {
                raw[..2].to_vec()
            } else {
                h.host_sockaddr(&raw)?
            };
            h.connect(&host_addr)?;
            return Ok(0);
        }
    };
    let dest = if sockaddr_family(&raw) == libc::AF_UNSPEC {
        None
    } else {
        Some(canonical(parse_sockaddr(s.family, &raw)?))
    };
    match s.connect(dest)? {
        Connected::Now => Ok(0),
        Connected::InProgress => Err(Errno::EINPROGRESS),
    }
}

pub fn accept(t: &Task, s: &NetSock, addr: u64, lenp: u64, flags: i32) -> SysResult {
    let nonblocking = flags & libc::SOCK_NONBLOCK != 0;
    let (conn, peer): (Arc<dyn crate::vfs::FileOps>, Vec<u8>) = match s {
        NetSock::Local(s) => {
            if s.proto != Proto::Tcp {
                return Err(Errno::EOPNOTSUPP);
            }
            let conn = s.accept()?;
            if nonblocking {
                crate::vfs::FileOps::set_nonblocking(&*conn, true);
            }
            let peer = sockaddr_bytes(s.family, conn.peer_addr()?);
            (conn, peer)
        }
        NetSock::Host(h) => {
            let (conn, peer) = h.accept(nonblocking)?;
            (conn, peer)
        }
        NetSock::Ops(_) => return Err(Errno::EOPNOTSUPP),
    };
    let nfd = install_socket(t, conn, flags)?;
    if let Err(e) = write_addr(t, addr, lenp, &peer) {
        let _ = lock(&t.proc.fds).remove(nfd as i32);
        return Err(e);
    }
    Ok(nfd)
}

pub fn getsockname(t: &Task, s: &NetSock, addr: u64, lenp: u64) -> SysResult {
    let bytes = match s {
        NetSock::Local(s) => sockaddr_bytes(s.family, s.local_addr()),
        NetSock::Host(h) => h.local_name()?,
        NetSock::Ops(o) => o.local_name()?,
    };
    write_addr(t, addr, lenp, &bytes)?;
    Ok(0)
}

pub fn getpeername(t: &Task, s: &NetSock, addr: u64, lenp: u64) -> SysResult {
    let bytes = match s {
        NetSock::Local(s) => sockaddr_bytes(s.family, s.peer_addr()?),
        NetSock::Host(h) => h.peer_name()?,
        NetSock::Ops(o) => o.peer_name()?,
    };
    write_addr(t, addr, lenp, &bytes)?;
    Ok(0)
}

/// Sends `data`: a TCP connection ignores a destination, as Linux does.
pub fn send(
    t: &Task,
    f: &OpenFile,
    s: &NetSock,
    data: &[u8],
    flags: i32,
    to: Option<(u64, u64)>,
) -> SysResult {
    let s = match s {
        NetSock::Local(s) => s,
        NetSock::Ops(o) => {
            let dest = match to {
                Some((addr, len)) => Some(read_sockaddr(t, addr, len)?),
                None => None,
            };
            return Ok(o.send(data, flags, dest.as_deref())? as u64);
        }
        NetSock::Host(h) => {
            if flags & !crate::socket::hostinet::SEND_FLAGS != 0 {
                return Err(Errno::EOPNOTSUPP);
            }
            let dest = match to {
                Some((addr, len)) => Some(h.host_sockaddr(&read_sockaddr(t, addr, len)?)?),
                None => None,
            };
            let mut fl = flags;
            if f.flags() & libc::O_NONBLOCK != 0 {
                fl |= libc::MSG_DONTWAIT;
            }
            let r = h.send(data, fl, dest.as_deref());
            if r == Err(Errno::EPIPE) && flags & libc::MSG_NOSIGNAL == 0 {
                raise_sigpipe(t);
            }
            return Ok(r? as u64);
        }
    };
    if flags & !SEND_FLAGS != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    let r = match s.proto {
        Proto::Udp => {
            let dest = match to {
                Some((addr, len)) => Some(read_inet_addr(t, s, addr, len)?),
                None => None,
            };
            s.send_dgram(data, dest)
        }
        Proto::Tcp => send_stream(f, s, data, flags),
    };
    if r == Err(Errno::EPIPE) && flags & libc::MSG_NOSIGNAL == 0 {
        raise_sigpipe(t);
    }
    Ok(r? as u64)
}

fn send_stream(f: &OpenFile, s: &InetSocket, data: &[u8], flags: i32) -> Result<usize, Errno> {
    s.stream_write(data, flags, f.flags() & libc::O_NONBLOCK != 0)
}

pub fn recv(f: &OpenFile, s: &NetSock, len: usize, flags: i32) -> Result<Received, Errno> {
    let s = match s {
        NetSock::Local(s) => s,
        NetSock::Ops(o) => {
            let mut fl = flags & !libc::MSG_CMSG_CLOEXEC;
            if f.flags() & libc::O_NONBLOCK != 0 {
                fl |= libc::MSG_DONTWAIT;
            }
            return o.recv(len.min(MAX_IO), fl);
        }
        NetSock::Host(h) => {
            if flags & !(crate::socket::hostinet::RECV_FLAGS | libc::MSG_CMSG_CLOEXEC) != 0 {
                return Err(Errno::EOPNOTSUPP);
            }
            let mut fl = flags;
            if f.flags() & libc::O_NONBLOCK != 0 {
                fl |= libc::MSG_DONTWAIT;
            }
            let mut buf = vec![0u8; len.min(MAX_IO)];
            let (n, from, truncated) = h.recv(&mut buf, fl)?;
            buf.truncate(n.min(buf.len()));
            if h.proto == Proto::Tcp && flags & libc::MSG_TRUNC != 0 {
                buf.clear();
            }
            return Ok(Received {
                data: buf,
                ret: n,
                from: (!from.is_empty()).then_some(from),
                msg_flags: if truncated { libc::MSG_TRUNC } else { 0 },
            });
        }
    };
    if flags & !RECV_FLAGS != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    if flags & libc::MSG_ERRQUEUE != 0 {
        // Nothing ever queues extended errors here.
        return Err(Errno::EAGAIN);
    }
    let mut buf = vec![0u8; len.min(MAX_IO)];
    match s.proto {
        Proto::Udp => {
            let mut fl = flags;
            if f.flags() & libc::O_NONBLOCK != 0 {
                fl |= libc::MSG_DONTWAIT;
            }
            let r = s.recv_dgram(&mut buf, fl)?;
            buf.truncate(r.len);
            let truncated = r.full_len > r.len;
            Ok(Received {
                data: buf,
                ret: if flags & libc::MSG_TRUNC != 0 {
                    r.full_len
                } else {
                    r.len
                },
                from: r.from.map(|a| sockaddr_bytes(s.family, a)),
                msg_flags: if truncated { libc::MSG_TRUNC } else { 0 },
            })
        }
        Proto::Tcp => {
            if let Some(e) = s.take_error() {
                return Err(e);
            }
            let n = s.stream_read(&mut buf, flags, f.flags() & libc::O_NONBLOCK != 0)?;
            buf.truncate(n);
            // TCP's MSG_TRUNC discards the bytes instead of copying them.
            if flags & libc::MSG_TRUNC != 0 {
                buf.clear();
            }
            Ok(Received {
                data: buf,
                ret: n,
                from: None,
                msg_flags: 0,
            })
        }
    }
}

/// Checks the control messages of a sendmsg on an internet socket: IP
/// level ones are accepted (and have no effect on loopback); passing
/// files or credentials is for unix sockets only.
pub fn check_control(t: &Task, msg: &MsgHeader) -> Result<(), Errno> {
    if msg.control == 0 || msg.controllen == 0 {
        return Ok(());
    }
    let raw = read_control(t, msg.control, msg.controllen)?;
    for m in cmsgs(&raw) {
        if m?.level == libc::SOL_SOCKET {
            return Err(Errno::EINVAL);
        }
    }
    Ok(())
}

pub fn shutdown(s: &NetSock, how: i32) -> SysResult {
    match s {
        NetSock::Local(s) => s.shutdown(how)?,
        NetSock::Host(h) => h.shutdown(how)?,
        NetSock::Ops(o) => o.shutdown(how)?,
    }
    Ok(0)
}

fn int_bytes(v: i32) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

/// struct tcp_info with what loopback knows: the state, and zeros.
fn tcp_info(s: &InetSocket) -> Vec<u8> {
    let mut b = vec![0u8; 232];
    b[0] = if s.is_listening() {
        TCP_LISTEN
    } else if s.stream_fd().is_some() {
        TCP_ESTABLISHED
    } else {
        TCP_CLOSE
    };
    b
}

pub fn getsockopt(t: &Task, s: &NetSock, level: i32, name: i32, val: u64, lenp: u64) -> SysResult {
    let have: u32 = t.read_obj(lenp)?;
    if (have as i32) < 0 {
        return Err(Errno::EINVAL);
    }
    let s = match s {
        NetSock::Local(s) => s,
        NetSock::Ops(o) => {
            let bytes = o.getsockopt(level, name, have as usize)?;
            let n = (have as usize).min(bytes.len());
            t.write_bytes(val, &bytes[..n])?;
            t.write_obj(lenp, &(n as u32))?;
            return Ok(0);
        }
        NetSock::Host(h) => {
            let bytes = h.getsockopt(level, name, have as usize).inspect_err(|e| {
                if *e == Errno::ENOPROTOOPT {
                    log_option(level, name, "getsockopt");
                }
            })?;
            let n = (have as usize).min(bytes.len());
            t.write_bytes(val, &bytes[..n])?;
            t.write_obj(lenp, &(n as u32))?;
            return Ok(0);
        }
    };
    let o = s.options();
    let v6 = s.family == libc::AF_INET6;
    let bytes: Vec<u8> = match (level, name) {
        (libc::SOL_SOCKET, libc::SO_TYPE) => int_bytes(s.stype()),
        (libc::SOL_SOCKET, libc::SO_DOMAIN) => int_bytes(s.family),
        (libc::SOL_SOCKET, libc::SO_PROTOCOL) => int_bytes(s.protocol()),
        (libc::SOL_SOCKET, libc::SO_ERROR) => int_bytes(s.take_error().map_or(0, |e| e as i32)),
        (libc::SOL_SOCKET, libc::SO_ACCEPTCONN) => int_bytes(s.is_listening() as i32),
        (libc::SOL_SOCKET, libc::SO_REUSEADDR) => int_bytes(o.reuseaddr as i32),
        (libc::SOL_SOCKET, libc::SO_REUSEPORT) => int_bytes(o.reuseport as i32),
        (libc::SOL_SOCKET, libc::SO_RCVBUF) => int_bytes(o.rcvbuf),
        (libc::SOL_SOCKET, libc::SO_SNDBUF) => int_bytes(o.sndbuf),
        (libc::SOL_SOCKET, libc::SO_LINGER) => {
            let mut b = int_bytes(o.linger.0);
            b.extend_from_slice(&o.linger.1.to_le_bytes());
            b
        }
        (libc::SOL_SOCKET, libc::SO_RCVTIMEO) => o.rcvtimeo.to_vec(),
        (libc::SOL_SOCKET, libc::SO_SNDTIMEO) => o.sndtimeo.to_vec(),
        (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY) if v6 => int_bytes(o.v6only as i32),
        (libc::IPPROTO_IPV6, _) if !v6 => return Err(Errno::EOPNOTSUPP),
        (libc::IPPROTO_TCP, libc::TCP_INFO) if s.proto == Proto::Tcp => tcp_info(s),
        (libc::IPPROTO_TCP, libc::TCP_MAXSEG) if s.proto == Proto::Tcp => {
            // Loopback's MTU (65536) less the IP and TCP headers and the
            // timestamp option; 536 before a connection exists.
            int_bytes(if s.stream_fd().is_some() { 65483 } else { 536 })
        }
        (libc::IPPROTO_TCP, libc::TCP_CONGESTION) if s.proto == Proto::Tcp => {
            let mut b = b"cubic".to_vec();
            b.resize(16, 0);
            b
        }
        (libc::IPPROTO_IP, libc::IP_MTU) | (libc::IPPROTO_IPV6, libc::IPV6_MTU) => {
            if s.peer_addr().is_err() {
                return Err(Errno::ENOTCONN);
            }
            int_bytes(65536)
        }
        _ => match int_option_default(s.proto, level, name) {
            Some(d) => int_bytes(o.ints.get(&(level, name)).copied().unwrap_or(d)),
            None => {
                log_option(level, name, "getsockopt");
                // An IPv4 socket's ip_getsockopt answers an unknown level
                // with EOPNOTSUPP; everything else is ENOPROTOOPT.
                let known = matches!(
                    level,
                    libc::SOL_SOCKET | libc::IPPROTO_IP | libc::IPPROTO_TCP | libc::SOL_UDP
                );
                let tcp_level_on_udp = level == libc::IPPROTO_TCP && s.proto == Proto::Udp;
                let udp_level_on_tcp = level == libc::SOL_UDP && s.proto == Proto::Tcp;
                if !v6 && (!known || tcp_level_on_udp || udp_level_on_tcp) {
                    return Err(Errno::EOPNOTSUPP);
                }
                return Err(Errno::ENOPROTOOPT);
            }
        },
    };
    let n = (have as usize).min(bytes.len());
    t.write_bytes(val, &bytes[..n])?;
    t.write_obj(lenp, &(n as u32))?;
    Ok(0)
}

/// Logs an option nobody implemented, once per (level, name).
fn log_option(level: i32, name: i32, call: &str) {
    let key = libc::SYS_setsockopt as u64 | (level as u64 & 0xffff) << 32 | (name as u64) << 48;
    kernel().log_unimplemented(key, &format!("{call} level {level} option {name}"));
}

pub fn setsockopt(t: &Task, s: &NetSock, level: i32, name: i32, val: u64, len: u64) -> SysResult {
    let s = match s {
        NetSock::Local(s) => s,
        NetSock::Ops(o) => {
            if (len as i32) < 0 {
                return Err(Errno::EINVAL);
            }
            o.setsockopt(level, name, &t.read_bytes(val, (len as usize).min(256))?)?;
            return Ok(0);
        }
        NetSock::Host(h) => {
            if (len as i32) < 0 {
                return Err(Errno::EINVAL);
            }
            let bytes = t.read_bytes(val, (len as usize).min(256))?;
            let net_admin = lock(&t.proc.creds).has_cap(cap::NET_ADMIN);
            h.setsockopt(level, name, &bytes, net_admin)
                .inspect_err(|e| {
                    if *e == Errno::ENOPROTOOPT {
                        log_option(level, name, "setsockopt");
                    }
                })?;
            return Ok(0);
        }
    };
    let v6 = s.family == libc::AF_INET6;
    // The options that take a structure.
    match (level, name) {
        (libc::SOL_SOCKET, libc::SO_LINGER) => {
            if len < 8 {
                return Err(Errno::EINVAL);
            }
            let l: [i32; 2] = t.read_obj(val)?;
            s.set_options(|o| {
                o.linger = ((l[0] != 0) as i32, l[1].max(0));
                Ok(())
            })?;
            return Ok(0);
        }
        (libc::SOL_SOCKET, libc::SO_RCVTIMEO | libc::SO_SNDTIMEO) => {
            if len < 16 {
                return Err(Errno::EINVAL);
            }
            let tv: [i64; 2] = t.read_obj(val)?;
            if tv[1] < 0 || tv[1] >= 1_000_000 {
                return Err(Errno::EDOM);
            }
            let mut b = [0u8; 16];
            // A negative time means "forever", which reads back as zero.
            if tv[0] >= 0 {
                b[..8].copy_from_slice(&tv[0].to_le_bytes());
                b[8..].copy_from_slice(&tv[1].to_le_bytes());
            }
            s.set_options(|o| {
                if name == libc::SO_RCVTIMEO {
                    o.rcvtimeo = b;
                } else {
                    o.sndtimeo = b;
                }
                Ok(())
            })?;
            return Ok(0);
        }
        (libc::IPPROTO_TCP, libc::TCP_CONGESTION) if s.proto == Proto::Tcp => {
            let raw = t.read_bytes(val, (len as usize).min(16))?;
            let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
            return match &raw[..end] {
                b"cubic" | b"reno" => Ok(0),
                _ => Err(Errno::ENOENT),
            };
        }
        (libc::SOL_SOCKET, libc::SO_BINDTODEVICE) => {
            let raw = t.read_bytes(val, (len as usize).min(16))?;
            let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
            return match &raw[..end] {
                b"" | b"lo" => Ok(0),
                _ => Err(Errno::ENODEV),
            };
        }
        _ => {}
    }
    if len < 4 {
        return Err(Errno::EINVAL);
    }
    let v: i32 = t.read_obj(val)?;
    match (level, name) {
        (libc::SOL_SOCKET, libc::SO_REUSEADDR) => s.set_options(|o| {
            o.reuseaddr = v != 0;
            Ok(())
        })?,
        (libc::SOL_SOCKET, libc::SO_REUSEPORT) => s.set_options(|o| {
            o.reuseport = v != 0;
            Ok(())
        })?,
        (libc::SOL_SOCKET, libc::SO_RCVBUF | libc::SO_RCVBUFFORCE) => s.set_options(|o| {
            o.rcvbuf = Options::buffer_size(v, MIN_RCVBUF);
            Ok(())
        })?,
        (libc::SOL_SOCKET, libc::SO_SNDBUF | libc::SO_SNDBUFFORCE) => s.set_options(|o| {
            o.sndbuf = Options::buffer_size(v, MIN_SNDBUF);
            Ok(())
        })?,
        // Fixed once the socket has a port.
        (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY) if v6 && s.is_bound() => return Err(Errno::EINVAL),
        (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY) if v6 => s.set_options(|o| {
            o.v6only = v != 0;
            Ok(())
        })?,
        (libc::IPPROTO_IPV6, _) if !v6 => return Err(Errno::ENOPROTOOPT),
        (libc::IPPROTO_IP, libc::IP_TTL) if !(1..=255).contains(&v) && v != -1 => {
            return Err(Errno::EINVAL)
        }
        (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE | libc::TCP_KEEPINTVL)
            if !(1..=32767).contains(&v) =>
        {
            return Err(Errno::EINVAL)
        }
        (libc::IPPROTO_TCP, libc::TCP_KEEPCNT) if !(1..=127).contains(&v) => {
            return Err(Errno::EINVAL)
        }
        _ => {
            let Some(default) = int_option_default(s.proto, level, name) else {
                log_option(level, name, "setsockopt");
                return Err(Errno::ENOPROTOOPT);
            };
            let stored = if is_bool_option(level, name) {
                (v != 0) as i32
            } else if (level, name) == (libc::IPPROTO_IP, libc::IP_TTL) && v == -1 {
                default
            } else {
                v
            };
            s.set_options(|o| {
                o.ints.insert((level, name), stored);
                Ok(())
            })?;
        }
    }
    Ok(0)
}

/// The interface ioctls (netdevice(7)) every socket answers: read-only
/// questions about the network's interfaces. None: not one of them.
pub fn interface_ioctl(t: &Task, f: &Arc<OpenFile>, cmd: u64, arg: u64) -> Option<SysResult> {
    const SIOCGIFNAME: u64 = 0x8910;
    const SIOCGIFCONF: u64 = 0x8912;
    const SIOCGIFFLAGS: u64 = 0x8913;
    const SIOCGIFADDR: u64 = 0x8915;
    const SIOCGIFNETMASK: u64 = 0x891b;
    const SIOCGIFMTU: u64 = 0x8921;
    const SIOCGIFHWADDR: u64 = 0x8927;
    const SIOCGIFINDEX: u64 = 0x8933;
    if !matches!(
        cmd,
        SIOCGIFNAME
            | SIOCGIFCONF
            | SIOCGIFFLAGS
            | SIOCGIFADDR
            | SIOCGIFNETMASK
            | SIOCGIFMTU
            | SIOCGIFHWADDR
            | SIOCGIFINDEX
    ) {
        return None;
    }
    // (Asked only for these commands: finding out costs a few probes.)
    let is_socket = f.ops.clone().unix_socket().is_some()
        || f.ops.clone().inet_socket().is_some()
        || f.ops.clone().host_inet_socket().is_some()
        || f.ops.clone().socket_ops().is_some();
    if !is_socket {
        return None;
    }
    Some(if kernel().network == NetworkMode::Host {
        host_interface_ioctl(t, cmd, arg)
    } else {
        loopback_interface_ioctl(t, cmd, arg)
    })
}

/// sizeof(struct ifreq) and sizeof(struct ifconf).
const IFREQ_LEN: usize = 40;
const IFCONF_LEN: usize = 16;

fn sockaddr_in_bytes(ip: [u8; 4]) -> Vec<u8> {
    sockaddr_bytes(libc::AF_INET, SocketAddr::from((ip, 0)))
}

/// One interface of the sentry's network, as the ioctls describe it.
struct Iface {
    name: Vec<u8>,
    index: i32,
    flags: i16,
    addr: [u8; 4],
    mask: [u8; 4],
    mtu: i32,
    /// (ARPHRD type, hardware address)
    hw: (u16, [u8; 6]),
}

/// `lo`, and the network device the sentry's stack took over, if any.
fn sandbox_interfaces() -> Vec<Iface> {
    let mut v = vec![Iface {
        name: b"lo".to_vec(),
        index: 1,
        flags: (libc::IFF_UP | libc::IFF_LOOPBACK | libc::IFF_RUNNING) as i16,
        addr: [127, 0, 0, 1],
        mask: [255, 0, 0, 0],
        mtu: 65536,
        hw: (772, [0; 6]),
    }];
    if let Some(ns) = crate::socket::netstack::stack() {
        let d = &ns.device;
        let mask = d.netmask();
        v.push(Iface {
            name: d.name.as_bytes().to_vec(),
            index: d.index,
            flags: (libc::IFF_UP | libc::IFF_BROADCAST | libc::IFF_RUNNING | libc::IFF_MULTICAST)
                as i16,
            addr: d.addr.octets(),
            mask: mask.to_be_bytes(),
            mtu: d.mtu as i32,
            hw: (1, d.mac),
        });
    }
    v
}

/// The sentry's own network: `lo` (index 1, 127.0.0.1/8) and the device.
fn loopback_interface_ioctl(t: &Task, cmd: u64, arg: u64) -> SysResult {
    let ifaces = sandbox_interfaces();
    if cmd == 0x8912 {
        // SIOCGIFCONF: one ifreq per IPv4 address; a NULL buffer asks for
        // the size.
        let conf = t.read_bytes(arg, IFCONF_LEN)?;
        let len = i32::from_ne_bytes(conf[0..4].try_into().unwrap_or([0; 4]));
        let buf = u64::from_ne_bytes(conf[8..16].try_into().unwrap_or([0; 8]));
        let mut all = Vec::new();
        for i in &ifaces {
            let mut req = [0u8; IFREQ_LEN];
            req[..i.name.len().min(15)].copy_from_slice(&i.name[..i.name.len().min(15)]);
            req[16..32].copy_from_slice(&sockaddr_in_bytes(i.addr));
            all.extend_from_slice(&req);
        }
        let written = if buf == 0 {
            all.len()
        } else {
            let fit = (len.max(0) as usize / IFREQ_LEN * IFREQ_LEN).min(all.len());
            t.write_bytes(buf, &all[..fit])?;
            fit
        };
        t.write_obj(arg, &(written as i32))?;
        return Ok(0);
    }
    let mut req = t.read_bytes(arg, IFREQ_LEN)?;
    let name_end = req[..16].iter().position(|&c| c == 0).unwrap_or(16);
    if cmd == 0x8910 {
        // SIOCGIFNAME: by index.
        let index = i32::from_ne_bytes(req[16..20].try_into().unwrap_or([0; 4]));
        let i = ifaces
            .iter()
            .find(|i| i.index == index)
            .ok_or(Errno::ENODEV)?;
        req[..16].fill(0);
        req[..i.name.len().min(15)].copy_from_slice(&i.name[..i.name.len().min(15)]);
        t.write_bytes(arg, &req)?;
        return Ok(0);
    }
    let i = ifaces
        .iter()
        .find(|i| i.name == req[..name_end])
        .ok_or(Errno::ENODEV)?;
    let value: Vec<u8> = match cmd {
        0x8913 => i.flags.to_ne_bytes().to_vec(),
        0x8915 => sockaddr_in_bytes(i.addr),
        0x891b => sockaddr_in_bytes(i.mask),
        0x8921 => i.mtu.to_ne_bytes().to_vec(),
        0x8927 => {
            let mut b = vec![0u8; 16];
            b[0..2].copy_from_slice(&i.hw.0.to_ne_bytes());
            b[2..8].copy_from_slice(&i.hw.1);
            b
        }
        _ => i.index.to_ne_bytes().to_vec(), // SIOCGIFINDEX
    };
    req[16..16 + value.len()].copy_from_slice(&value);
    t.write_bytes(arg, &req)?;
    Ok(0)
}

/// `--network host`: the same questions asked of the host, on a socket
/// of the sentry's, from the sentry's own copies of the structures.
fn host_interface_ioctl(t: &Task, cmd: u64, arg: u64) -> SysResult {
    // SAFETY: socket(2) with constants; closed below.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a fresh fd nobody else owns.
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
    if cmd == 0x8912 {
        let conf = t.read_bytes(arg, IFCONF_LEN)?;
        let len = i32::from_ne_bytes(conf[0..4].try_into().unwrap_or([0; 4]));
        let buf = u64::from_ne_bytes(conf[8..16].try_into().unwrap_or([0; 8]));
        let room = if buf == 0 {
            0
        } else {
            len.clamp(0, 64 * 1024) as usize
        };
        let mut ours = vec![0u8; room];
        let mut ifc = [0u8; IFCONF_LEN];
        ifc[0..4].copy_from_slice(&(room as i32).to_ne_bytes());
        let ptr = if buf == 0 {
            0u64
        } else {
            ours.as_mut_ptr() as u64
        };
        ifc[8..16].copy_from_slice(&ptr.to_ne_bytes());
        // SAFETY: SIOCGIFCONF fills our ifconf and at most `room` bytes of
        // our buffer.
        Errno::result(unsafe { libc::ioctl(fd, cmd as _, ifc.as_mut_ptr()) })?;
        let got = i32::from_ne_bytes(ifc[0..4].try_into().unwrap_or([0; 4]));
        if buf != 0 {
            t.write_bytes(buf, &ours[..(got.max(0) as usize).min(room)])?;
        }
        t.write_obj(arg, &got)?;
        return Ok(0);
    }
    let mut req = t.read_bytes(arg, IFREQ_LEN)?;
    // SAFETY: these requests read and write one ifreq, our own copy.
    Errno::result(unsafe { libc::ioctl(fd, cmd as _, req.as_mut_ptr()) })?;
    t.write_bytes(arg, &req)?;
    Ok(0)
}
