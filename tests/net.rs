//! Networking as applications use it: real programs (python3's
//! http.server and urllib, a selectors-based TCP echo server under load,
//! UDP round trips) run natively and under `rvisor do`, where every socket
//! lives on the sandbox's own loopback; the outputs must match. The
//! syscall-level checks are the differential programs in
//! `tests/programs/net/`.

mod common;

use common::*;

fn same_as_native(args: &[&str]) {
    let native = run_native(args[0], &args[1..]);
    assert_success("native run", &native);
    let sandboxed = run_do_timeout(args, long_timeout());
    if let Err(msg) = check_same_output(&native, &sandboxed) {
        panic!("`{}` natively vs under `rvisor do`:\n{msg}", args.join(" "));
    }
}

fn script(name: &str) -> String {
    let p = repo_root().join("tests/scripts").join(name);
    p.to_str().expect("utf-8 path").to_string()
}

/// http.server serving a directory listing to urllib, 21 requests, by
/// address and by the name localhost.
#[test]
fn python_http_server_over_loopback() {
    same_as_native(&["/usr/bin/python3", &script("http_roundtrip.py")]);
}

/// 16 clients × 200 echoed messages through an epoll server, and 300 UDP
/// round trips over ::1; every byte checked.
#[test]
fn tcp_echo_under_load_and_udp_round_trips() {
    same_as_native(&["/usr/bin/python3", &script("tcp_echo_load.py")]);
}

// ---------------------------------------------------------------------------
// Host networking (`--network host`) and network namespaces
// ---------------------------------------------------------------------------

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Two network namespaces joined by a veth pair, removed on drop: the
/// container's ("a", 10.213.N.1/24) and a peer's ("b", 10.213.N.2/24).
struct VethPair {
    a: String,
    b: String,
    subnet: u8,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl VethPair {
    fn new() -> VethPair {
        let tag = unique_name("n");
        let tag = &tag[tag.len().saturating_sub(8)..];
        let subnet = 1 + (std::process::id() % 250) as u8;
        let p = VethPair {
            a: format!("rvta-{tag}"),
            b: format!("rvtb-{tag}"),
            subnet,
        };
        ip(&["netns", "add", &p.a]);
        ip(&["netns", "add", &p.b]);
        let (va, vb) = (format!("va{tag}"), format!("vb{tag}"));
        let (va, vb) = (&va[..va.len().min(15)], &vb[..vb.len().min(15)]);
        // Made in place: never in the host's namespace, where a test
        // listing the host's interfaces could see them come and go.
        ip(&[
            "link", "add", va, "netns", &p.a, "type", "veth", "peer", "name", vb, "netns", &p.b,
        ]);
        for (ns, dev, host) in [(&p.a, va, 1), (&p.b, vb, 2)] {
            let addr = format!("10.213.{subnet}.{host}/24");
            ip(&["-n", ns, "addr", "add", &addr, "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        p
    }

    fn addr(&self, host: u8) -> String {
        format!("10.213.{}.{host}", self.subnet)
    }

    /// Makes a bundle's container join namespace `a` by path, as a CNI
    /// netns is named in a spec.
    fn join_a(&self, cfg: &mut serde_json::Value) {
        let path = format!("/var/run/netns/{}", self.a);
        for ns in cfg["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "network" {
                ns["path"] = serde_json::Value::String(path.clone());
            }
        }
    }

    /// The veth end in namespace `a`.
    fn dev_a(&self) -> String {
        let tag = &self.a["rvta-".len()..];
        let dev = format!("va{tag}");
        dev[..dev.len().min(15)].to_string()
    }
}

/// A peer process in a namespace, killed and reaped however the test ends
/// (a failed assertion used to leave peer servers running).
struct Peer(std::process::Child);

impl Peer {
    fn new(child: std::process::Child) -> Peer {
        Peer(child)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Runs `curl` in netns `ns` until it answers (the server may still be
/// starting), for at most 20 s.
fn curl_in(ns: &str, url: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "curl", "-sS", "--max-time", "3", url])
            .output()
            .expect("run curl");
        if out.status.success() || Instant::now() > deadline {
            return format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The program inside: fetch a page from the peer netns, make UDP round
/// trips and pings to it, then serve two requests on port 8080 of every
/// address.
fn serve_and_fetch_script(peer: &str) -> String {
    format!(
        r#"
import http.server, time, urllib.request
# The peer's server may still be starting: try for 20 s.
for attempt in range(200):
    try:
        body = urllib.request.urlopen("http://{peer}:8081/outside.txt", timeout=10).read()
        break
    except OSError:  # urllib's URLError wrapping ECONNREFUSED
        time.sleep(0.1)
print("fetched:", body.decode().strip(), flush=True)
# A download large enough that the peer's TCP sends 64 KiB segments.
import hashlib
big = urllib.request.urlopen("http://{peer}:8081/big.bin", timeout=60).read()
print("big download:", len(big), hashlib.sha256(big).hexdigest(), flush=True)
import socket
# The interfaces as netlink shows them, and glibc's AI_ADDRCONFIG check.
print("interfaces:", socket.if_nameindex(), flush=True)
print("addrconfig:", sorted({{a[4][0] for a in socket.getaddrinfo(
    "127.0.0.1", 80, socket.AF_INET, socket.SOCK_STREAM, 0, socket.AI_ADDRCONFIG)}}), flush=True)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(5)
answers = []
for i in range(3):
    u.sendto(b"udp ping %d" % i, ("{peer}", 8082))
    data, src = u.recvfrom(100)
    answers.append(data.decode())
print("udp:", answers, "from the peer:", src == ("{peer}", 8082), flush=True)
# A datagram larger than the link's MTU goes out in fragments, and the
# answer comes back in fragments.
big_dgram = bytes(range(256)) * 16 + b"end"
u.sendto(big_dgram, ("{peer}", 8082))
data, src = u.recvfrom(65535)
print("large udp:", len(data), data == big_dgram.upper(), flush=True)
import struct
def csum(b):
    b += b"\0" * (len(b) % 2)
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
def echo(ident, seq):
    p = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"rvisor ping %d" % seq
    return p[:2] + struct.pack("!H", csum(p)) + p[4:]
# ping as root does: a raw ICMP socket, which sees whole IP packets.
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
r.settimeout(5)
replies = []
for seq in range(3):
    r.sendto(echo(0x7276, seq), ("{peer}", 0))
    while True:
        data, src = r.recvfrom(2000)
        ihl = (data[0] & 15) * 4
        t, c, _, ident, s = struct.unpack("!BBHHH", data[ihl:ihl + 8])
        if t == 0 and ident == 0x7276 and s == seq:
            replies.append((src[0], data[8], csum(data[ihl:]), data[ihl + 8:].decode()))
            break
print("raw ping:", replies, flush=True)
# A ping socket (net.ipv4.ping_group_range admits everyone here): the
# kernel picks the identifier, the reply comes without its IP header.
d = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
d.settimeout(5)
d.sendto(echo(0, 9), ("{peer}", 0))
data, src = d.recvfrom(2000)
t, c, _, ident, s = struct.unpack("!BBHHH", data[:8])
print("ping socket:", t, c, s, ident == d.getsockname()[1], data[8:].decode(), src, flush=True)
# The routes as /proc/net/route and a netlink dump of the main table
# show them (ip route), and /proc/net/dev's interfaces.
print("proc route:", [l.split() for l in open("/proc/net/route").read().splitlines()[1:]])
print("proc dev:", sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:]))
nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
nl.send(struct.pack("=IHHII", 28, 26, 0x301, 1, 0) + struct.pack("=8BI", socket.AF_INET, *[0] * 8))
routes, done = [], False
while not done:
    data = nl.recv(65536)
    off = 0
    while off + 16 <= len(data):
        ln, typ = struct.unpack_from("=IH", data, off)
        if typ == 3:
            done = True
            break
        if typ == 24:
            dlen, table, proto, scope, rtype = struct.unpack_from("=xB2xBBBB", data, off + 16)
            if table == 254:
                routes.append((dlen, proto, scope, rtype))
        off += (ln + 3) & ~3
print("main-table routes:", sorted(routes), flush=True)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        msg = b"inside says hello\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(msg)))
        self.end_headers()
        self.wfile.write(msg)
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("0.0.0.0", 8080), H)
# One request shows the server is up, the peer pings, a second ends it.
srv.handle_request()
srv.handle_request()
print("served two requests", flush=True)
"#
    )
}

/// `--network host` in the network namespace a CNI plugin would make:
/// python3 inside the Debian bundle fetches a page from a server in a
/// second netns across a veth pair, makes UDP round trips with an echo
/// server there, then serves curl from that netns.
/// The same program run natively in the same netns is the reference.
#[test]
fn host_network_in_the_container_netns_reaches_and_serves_a_peer() {
    serve_and_fetch_across_a_veth("--network=host");
}

/// The same with the sentry's own TCP/IP stack (the default network): it
/// takes over the netns's device, so the peer reaches the container at
/// the address CNI gave it and the container reaches the peer.
#[test]
fn sandbox_network_takes_over_the_device_and_reaches_and_serves_a_peer() {
    serve_and_fetch_across_a_veth("--network=sandbox");
}

fn serve_and_fetch_across_a_veth(network: &str) {
    let pair = VethPair::new();
    let www = TempDir::new("rvisor-www");
    std::fs::write(www.path().join("outside.txt"), "from the peer netns\n").unwrap();
    let big: Vec<u8> = (0..16u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(www.path().join("big.bin"), big).unwrap();
    let peer_server = Peer::new(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &pair.b,
                "python3",
                "-m",
                "http.server",
                "8081",
            ])
            .args(["--bind", &pair.addr(2), "--directory"])
            .arg(www.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the peer's http.server"),
    );
    let peer_udp = Peer::new(
        Command::new("ip")
            .args(["netns", "exec", &pair.b, "python3", "-c"])
            .arg(format!(
                "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             s.bind(('{}', 8082))\nwhile True:\n    d, a = s.recvfrom(65535)\n    \
             s.sendto(d.upper(), a)\n",
                pair.addr(2)
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the peer's UDP echo"),
    );
    let script = serve_and_fetch_script(&pair.addr(2));
    let url = format!("http://{}:8080/", pair.addr(1));

    // Ping sockets for every group, natively by the netns's sysctl and in
    // the sandbox by the spec's (as Docker and containerd set it).
    ip(&[
        "netns",
        "exec",
        &pair.a,
        "sh",
        "-c",
        "echo 0 2147483647 > /proc/sys/net/ipv4/ping_group_range",
    ]);
    // Native Linux in netns "a".
    let native = Command::new("ip")
        .args(["netns", "exec", &pair.a, "python3", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the script natively");
    let native_curl = curl_in(&pair.b, &url);
    let native_ping = ping_in(&pair.b, &pair.addr(1));
    let _ = curl_in(&pair.b, &url);
    let native = native.wait_with_output().expect("wait for the native run");

    // rvisor, the bundle's spec naming netns "a" by path.
    let bundle = TempDir::new("rvisor-bundle");
    let state = TempDir::new("rvisor-state");
    write_bundle_config(
        bundle.path(),
        &debian_rootfs(),
        &["/usr/bin/python3", "-c", &script],
        &[],
    );
    edit_bundle_config(bundle.path(), |cfg| {
        pair.join_a(cfg);
        cfg["linux"]["sysctl"] = serde_json::json!({ "net.ipv4.ping_group_range": "0 2147483647" });
        // Raw sockets for ping, as Docker's default capabilities give.
        for set in ["bounding", "effective", "permitted"] {
            if let Some(caps) = cfg["process"]["capabilities"][set].as_array_mut() {
                caps.push(serde_json::json!("CAP_NET_RAW"));
            }
        }
    });
    let sandboxed = Command::new(rvisor())
        .arg("--root")
        .arg(state.path())
        .arg(network)
        .arg("run")
        .arg("--bundle")
        .arg(bundle.path())
        .arg(unique_name("rvt"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rvisor run");
    let sandboxed_curl = curl_in(&pair.b, &url);
    let sandboxed_ping = ping_in(&pair.b, &pair.addr(1));
    let _ = curl_in(&pair.b, &url);
    let sandboxed = sandboxed.wait_with_output().expect("wait for rvisor run");
    drop(peer_server);
    drop(peer_udp);

    assert_success("native run in the netns", &native);
    assert_eq!(
        native_curl, "inside says hello\n",
        "curl of the native server"
    );
    assert_same_output(&native, &sandboxed);
    assert_eq!(sandboxed_curl, native_curl, "curl of the sandboxed server");
    assert!(
        native_ping.contains("3 packets received"),
        "the peer's ping of the native netns:\n{native_ping}"
    );
    assert_eq!(
        summary(&sandboxed_ping),
        summary(&native_ping),
        "the peer's ping of the sandbox:\n{sandboxed_ping}"
    );
}

/// busybox ping's summary line ("3 packets transmitted, ...").
fn summary(ping: &str) -> &str {
    ping.lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or("")
}

/// Three pings from netns `ns` to `addr` (busybox's ping, raw sockets).
fn ping_in(ns: &str, addr: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "busybox", "ping", "-c", "3", "-W", "2"])
        .arg(addr)
        .output()
        .expect("run busybox ping");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// /proc/net/{tcp,tcp6,udp,udp6,dev,route} list the sandbox's own
/// sockets and interfaces in Linux's formats: a listener, connections
/// with and without unread data, one not yet accepted, UDP sockets and an
/// IPv6 listener, compared with the same script run natively in a new
/// network namespace with lo up.
#[test]
fn proc_net_lists_the_sandboxs_sockets_as_linux_does() {
    let native = Command::new("unshare")
        .args(["-n", "sh", "-c"])
        .arg(format!(
            "ip link set lo up && exec python3 {}",
            script("proc_net.py")
        ))
        .output()
        .expect("run unshare");
    assert_success("native run in a new netns", &native);
    let sandboxed = run_do_timeout(
        &["/usr/bin/python3", &script("proc_net.py")],
        long_timeout(),
    );
    assert_same_output_named("native (new netns)", &native, "rvisor do", &sandboxed);
}

/// The sandbox's loopback is its own: a server on the host's 127.0.0.1 is
/// out of reach with the default network, and reachable with host
/// networking (which shares the host's namespace when the spec has none).
#[test]
fn the_hosts_loopback_is_reachable_only_with_host_networking() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let accepter = std::thread::spawn(move || {
        // One connection: the host-networking run's.
        let _ = listener.accept();
    });
    let script = format!(
        "import socket\ntry:\n    socket.create_connection(('127.0.0.1', {port}), timeout=5).close()\n    \
         print('connected')\nexcept OSError as e:\n    print('error', e.errno)\n"
    );
    let args = ["/usr/bin/python3", "-c", script.as_str()];
    let sandbox = run_do_timeout(&args, long_timeout());
    assert_success("rvisor do", &sandbox);
    assert_eq!(
        stdout_str(&sandbox).trim(),
        format!("error {}", libc::ECONNREFUSED),
        "the sandbox reached the host's loopback"
    );
    let mut host_args = vec!["--network=host", "do"];
    host_args.extend_from_slice(&args);
    let host = run_rvisor_timeout(&host_args, long_timeout());
    assert_success("rvisor --network=host do", &host);
    assert_eq!(stdout_str(&host).trim(), "connected");
    accepter.join().unwrap();
}

/// What a program learns about the interfaces (getifaddrs, if_nameindex,
/// the netdevice ioctls, a netlink route dump, AI_ADDRCONFIG): with the
/// sandbox's own network, what it would learn natively in a new network
/// namespace with only lo up; with host networking, what it learns on
/// the host.
#[test]
fn interfaces_as_netlink_and_ioctls_show_them() {
    let prog = compile_c("netns/ifaces.c");
    let prog_s = prog.to_str().expect("utf-8 path");
    let native_lo = run_native(
        "unshare",
        &[
            "--net",
            "sh",
            "-c",
            &format!("ip link set lo up && {prog_s}"),
        ],
    );
    assert_success("native run in a new netns", &native_lo);
    let sandboxed = run_do_timeout(&[prog_s], long_timeout());
    assert_same_output_named("native (new netns)", &native_lo, "rvisor do", &sandboxed);

    let native_host = run_native(&prog, &[] as &[&str]);
    assert_success("native run", &native_host);
    let host = run_rvisor_timeout(&["--network=host", "do", prog_s], long_timeout());
    assert_same_output_named("native", &native_host, "rvisor --network=host do", &host);
}

/// A DNS server in the peer namespace answering A queries for
/// peer.rvisor.test (NXDOMAIN for other names), as a cluster's DNS would.
fn dns_server_script(addr: &str) -> String {
    format!(
        r#"
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("{addr}", 53))
while True:
    q, a = s.recvfrom(512)
    ident = struct.unpack("!H", q[:2])[0]
    i, labels = 12, []
    while q[i]:
        labels.append(q[i + 1:i + 1 + q[i]].decode())
        i += q[i] + 1
    qtype = struct.unpack("!H", q[i + 1:i + 3])[0]
    question, name = q[12:i + 5], ".".join(labels)
    if name == "peer.rvisor.test" and qtype == 1:
        answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton("{addr}")
        header = struct.pack("!6H", ident, 0x8180, 1, 1, 0, 0)
    else:
        answer = b""
        rcode = 0 if name == "peer.rvisor.test" else 3
        header = struct.pack("!6H", ident, 0x8180 | rcode, 1, 0, 0, 0)
    s.sendto(header + question + answer, a)
"#
    )
}

const DNS_CLIENT: &str = r#"
import socket
print("gethostbyname:", socket.gethostbyname("peer.rvisor.test"))
print("getaddrinfo:", sorted({a[4][0] for a in socket.getaddrinfo("peer.rvisor.test", 80, socket.AF_INET)}))
try:
    socket.gethostbyname("nowhere.rvisor.test")
except socket.gaierror as e:
    print("nowhere:", e.args[0] == socket.EAI_NONAME)
"#;

/// DNS through the resolv.conf the engine mounts: names resolve with the
/// server the file names, in the peer namespace across the veth, under
/// the sentry's own network and with host networking. The reference is
/// the same program run natively in the namespace, with `ip netns exec`
/// putting the same file at /etc/resolv.conf.
#[test]
fn dns_through_the_mounted_resolv_conf() {
    let pair = VethPair::new();
    let resolv = format!(
        "nameserver {}\noptions timeout:2 attempts:2\n",
        pair.addr(2)
    );
    let etc_netns = std::path::PathBuf::from("/etc/netns").join(&pair.a);
    std::fs::create_dir_all(&etc_netns).unwrap();
    std::fs::write(etc_netns.join("resolv.conf"), &resolv).unwrap();
    let conf = TempDir::new("rvisor-resolv");
    let conf_file = conf.path().join("resolv.conf");
    std::fs::write(&conf_file, &resolv).unwrap();
    let server = Peer::new(
        Command::new("ip")
            .args(["netns", "exec", &pair.b, "python3", "-c"])
            .arg(dns_server_script(&pair.addr(2)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the peer's DNS server"),
    );
    std::thread::sleep(Duration::from_millis(300));

    let native = Command::new("ip")
        .args(["netns", "exec", &pair.a, "python3", "-c", DNS_CLIENT])
        .output()
        .expect("run the client natively");
    let _ = std::fs::remove_dir_all(&etc_netns);
    let mut runs = Vec::new();
    for network in ["--network=sandbox", "--network=host"] {
        let bundle = TempDir::new("rvisor-bundle");
        let state = TempDir::new("rvisor-state");
        let mount = serde_json::json!({ "destination": "/etc/resolv.conf", "type": "bind",
            "source": conf_file, "options": ["rbind", "ro"] });
        write_bundle_config_with_mounts(
            bundle.path(),
            &debian_rootfs(),
            &["/usr/bin/python3", "-c", DNS_CLIENT],
            &[],
            &[mount],
        );
        edit_bundle_config(bundle.path(), |cfg| pair.join_a(cfg));
        let out = Command::new(rvisor())
            .arg("--root")
            .arg(state.path())
            .arg(network)
            .args(["run", "--bundle"])
            .arg(bundle.path())
            .arg(unique_name("rvt"))
            .output()
            .expect("run rvisor");
        runs.push((network, out));
        // The sandbox's stack took the address; give it back for the
        // next run, as CNI would set up a fresh namespace.
        let _ = Command::new("ip")
            .args(["-n", &pair.a, "addr", "replace"])
            .arg(format!("{}/24", pair.addr(1)))
            .args(["dev", &pair.dev_a()])
            .status();
    }
    drop(server);
    assert_success("native run in the netns", &native);
    assert!(
        String::from_utf8_lossy(&native.stdout).contains(&pair.addr(2)),
        "the native run resolved nothing:\n{}",
        String::from_utf8_lossy(&native.stdout)
    );
    for (network, out) in runs {
        assert_same_output_named("native", &native, network, &out);
    }
}

/// `--network none`: loopback works, and nothing else is reachable even
/// when the spec names a namespace with a route to a peer; the reference
/// is a native run in a new namespace with only lo up.
#[test]
fn network_none_has_loopback_only() {
    let pair = VethPair::new();
    let script = format!(
        r#"
import errno, socket
l = socket.socket()
l.bind(("127.0.0.1", 0))
l.listen(1)
c = socket.create_connection(l.getsockname())
a, _ = l.accept()
c.send(b"ping")
print("loopback:", a.recv(10))
try:
    socket.create_connection(("{peer}", 8081), timeout=3)
except OSError as e:
    print("peer:", errno.errorcode.get(e.errno), e.strerror)
print("interfaces:", socket.if_nameindex())
"#,
        peer = pair.addr(2)
    );
    let native = Command::new("unshare")
        .args([
            "-n",
            "sh",
            "-c",
            "ip link set lo up && exec python3 -c \"$0\"",
        ])
        .arg(&script)
        .output()
        .expect("run unshare");
    assert_success("native run in a new netns", &native);

    let bundle = TempDir::new("rvisor-bundle");
    let state = TempDir::new("rvisor-state");
    write_bundle_config(
        bundle.path(),
        &debian_rootfs(),
        &["/usr/bin/python3", "-c", &script],
        &[],
    );
    edit_bundle_config(bundle.path(), |cfg| pair.join_a(cfg));
    let out = Command::new(rvisor())
        .arg("--root")
        .arg(state.path())
        .args(["--network=none", "run", "--bundle"])
        .arg(bundle.path())
        .arg(unique_name("rvt"))
        .output()
        .expect("run rvisor");
    assert_same_output_named("native (new netns)", &native, "rvisor --network=none", &out);
}
