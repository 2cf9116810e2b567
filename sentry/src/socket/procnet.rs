//! /proc/net/{dev,route,tcp,tcp6,udp,udp6} (gVisor's `fsimpl/proc`
//! net files): the sandbox's network as tools that read procfs (netstat,
//! `ss` without sock_diag, monitoring agents, programs looking up the
//! default route) expect it, in Linux's exact formats.
//!
//! With the sentry's network the files describe its own sockets and
//! devices (`lo`, and the device its stack took over, with that device's
//! traffic counters; `lo`'s are not counted). With `--network host` they
//! are the host namespace's own files, opened before the sentry gave up
//! the host's filesystem (`open_host_files`) and read again each time.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::OnceLock;

use super::inet::{all_sockets, Proto};

/// The files /proc/net lists, in order.
pub const FILES: &[&str] = &["dev", "route", "tcp", "tcp6", "udp", "udp6"];

static HOST_FILES: OnceLock<Vec<(&'static str, OwnedFd)>> = OnceLock::new();

/// With `--network host`: opens the sentry's namespace's /proc/net files
/// while the host's /proc is still reachable.
pub fn open_host_files() {
    let files = FILES
        .iter()
        .filter_map(|name| {
            let path = format!("/proc/self/net/{name}");
            std::fs::File::open(&path)
                .ok()
                .map(|f| (*name, OwnedFd::from(f)))
        })
        .collect();
    let _ = HOST_FILES.set(files);
}

/// The contents of /proc/net/`name`.
pub fn contents(name: &str) -> String {
    if let Some(files) = HOST_FILES.get() {
        return files
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, fd)| read_whole(fd))
            .unwrap_or_default();
    }
    match name {
        "dev" => dev(),
        "route" => route(),
        "tcp" => sockets(Proto::Tcp, false),
        "tcp6" => sockets(Proto::Tcp, true),
        "udp" => sockets(Proto::Udp, false),
        "udp6" => sockets(Proto::Udp, true),
        _ => String::new(),
    }
}

/// A host procfs file read from its start (seq_file regenerates it).
fn read_whole(fd: &OwnedFd) -> String {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let off = out.len() as libc::off_t;
        // SAFETY: pread into our own buffer from our own fd.
        let n = unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), off) };
        if n <= 0 {
            break;
        }
        out.extend_from_slice(&buf[..n as usize]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `line` padded with spaces to `width` characters, as seq_pad does.
fn padded(mut line: String, width: usize) -> String {
    while line.len() < width {
        line.push(' ');
    }
    line.push('\n');
    line
}

fn dev() -> String {
    let mut out = String::from(
        "Inter-|   Receive                                                |  Transmit\n \
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets \
         errs drop fifo colls carrier compressed\n",
    );
    let mut row = |name: &str, c: [u64; 4]| {
        let _ = writeln!(
            out,
            "{name:>6}: {:7} {:7} {:4} {:4} {:4} {:5} {:10} {:9} {:8} {:7} {:4} {:4} {:4} {:5} \
             {:7} {:10}",
            c[0], c[1], 0, 0, 0, 0, 0, 0, c[2], c[3], 0, 0, 0, 0, 0, 0
        );
    };
    row("lo", [0; 4]);
    if let Some(ns) = super::netstack::stack() {
        row(&ns.device.name, ns.counters());
    }
    out
}

/// An IPv4 address as /proc/net prints it: the 32 bits in memory order,
/// read as a native integer.
fn hex4(ip: std::net::Ipv4Addr) -> String {
    format!("{:08X}", u32::from_ne_bytes(ip.octets()))
}

fn hex6(ip: std::net::Ipv6Addr) -> String {
    ip.octets()
        .chunks(4)
        .map(|c| format!("{:08X}", u32::from_ne_bytes([c[0], c[1], c[2], c[3]])))
        .collect()
}

/// The main table's IPv4 routes (fib_route_seq_show).
fn route() -> String {
    const RTF_UP: u32 = 0x1;
    const RTF_GATEWAY: u32 = 0x2;
    let mut out = padded(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT"
            .into(),
        127,
    );
    let Some(ns) = super::netstack::stack() else {
        return out;
    };
    let d = &ns.device;
    let unspecified = std::net::Ipv4Addr::UNSPECIFIED;
    let mut row = |dst: std::net::Ipv4Addr, gw: std::net::Ipv4Addr, flags: u32, mask: u32| {
        out.push_str(&padded(
            format!(
                "{}\t{}\t{}\t{:04X}\t0\t0\t0\t{}\t0\t0\t0",
                d.name,
                hex4(dst),
                hex4(gw),
                flags,
                hex4(mask.into())
            ),
            127,
        ));
    };
    if let Some(gw) = d.gateway {
        row(unspecified, gw, RTF_UP | RTF_GATEWAY, 0);
    }
    let mask = d.netmask();
    row((u32::from(d.addr) & mask).into(), unspecified, RTF_UP, mask);
    out
}

/// /proc/net/{tcp,udp}[6]: listening sockets first, as Linux walks its
/// listening hash before its established one.
fn sockets(proto: Proto, v6: bool) -> String {
    let family = if v6 { libc::AF_INET6 } else { libc::AF_INET };
    let mut rows: Vec<_> = all_sockets()
        .into_iter()
        .filter(|s| s.proto == proto && s.family == family)
        .filter_map(|s| s.proc_net_row())
        .collect();
    rows.sort_by_key(|r| r.state != 10);
    let addr = |a: SocketAddr| match a.ip() {
        IpAddr::V4(ip) if !v6 => format!("{}:{:04X}", hex4(ip), a.port()),
        IpAddr::V4(ip) => format!("{}:{:04X}", hex6(ip.to_ipv6_mapped()), a.port()),
        IpAddr::V6(ip) => format!("{}:{:04X}", hex6(ip), a.port()),
    };
    let mut out = String::new();
    match (proto, v6) {
        (Proto::Tcp, false) => out.push_str(&padded(
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  \
             timeout inode"
                .into(),
            149,
        )),
        (Proto::Tcp, true) => out.push_str(
            "  sl  local_address                         remote_address                        \
             st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n",
        ),
        (Proto::Udp, false) => out.push_str(&padded(
            "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  \
             timeout inode ref pointer drops"
                .into(),
            127,
        )),
        (Proto::Udp, true) => out.push_str(
            "  sl  local_address                         remote_address                        \
             st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n",
        ),
    }
    for (i, r) in rows.iter().enumerate() {
        let common = format!(
            "{}: {} {} {:02X} {:08X}:{:08X} 00:00000000 00000000 {:5} {:8} 0",
            if proto == Proto::Tcp {
                format!("{i:4}")
            } else {
                format!("{i:5}")
            },
            addr(r.local),
            addr(r.remote),
            r.state,
            r.tx_queue,
            r.rx_queue,
            r.uid,
            0,
        );
        // Reference count, a pointer shown as zeros (kptr_restrict), then
        // TCP's rto, ato, quick/pingpong, cwnd and ssthresh, or UDP's
        // drops.
        let line = match proto {
            Proto::Tcp if r.state == 10 => format!("{common} 1 0000000000000000 100 0 0 10 0"),
            Proto::Tcp => format!("{common} 1 0000000000000000 20 4 0 10 -1"),
            Proto::Udp => format!("{common} 2 0000000000000000 0"),
        };
        out.push_str(&match (proto, v6) {
            (_, true) => format!("{line}\n"),
            (Proto::Tcp, false) => padded(line, 149),
            (Proto::Udp, false) => padded(line, 127),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_print_in_memory_order() {
        assert_eq!(hex4(std::net::Ipv4Addr::LOCALHOST), "0100007F");
        assert_eq!(
            hex6(std::net::Ipv6Addr::LOCALHOST),
            "00000000000000000000000001000000"
        );
    }

    #[test]
    fn route_without_a_device_is_its_header() {
        let r = route();
        assert_eq!(r.lines().count(), 1);
        assert_eq!(r.len(), 128);
    }
}
