//! Networking, side by side in one run: benches/programs/net.c (built
//! static) natively, under runc, under runsc (ptrace platform) and under
//! rvisor (both platforms, and `--network host`), each inside a busybox
//! bundle with the program bind-mounted at /bench. Two tables:
//!
//! - loopback: both ends inside one container, over 127.0.0.1 (runsc on
//!   its netstack's loopback, rvisor on its own);
//! - veth: the client inside the container, in a network namespace with
//!   one end of a veth pair (as a CNI bridge plugin leaves it), the server
//!   natively in the namespace of the other end. Each runtime gets a
//!   fresh pair, since runsc and rvisor's own stacks take the address
//!   off the container's interface.
//!
//! Prints nanoseconds per operation and ratios as Markdown tables; for
//! tcp_64k, 64 KiB per operation, so 10 µs is 6.5 GB/s.
//!
//!     cargo bench --bench net [-- SCALE]
//!
//! SCALE multiplies every operation's iteration count (default 1).
//! Needs root, gcc, iproute2 and the fixtures of scripts/setup.sh.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use common::{
    build_static, busybox_rootfs, edit_bundle, print_table, run_in_runtimes,
    run_measurements as run, runtimes, rvisor, write_bundle, Runtime,
};

fn main() {
    let scale = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<f64>().ok())
        .unwrap_or(1.0)
        .to_string();
    let work = std::env::temp_dir().join(format!("rvisor-bench-net-{}", std::process::id()));
    let bin_dir = work.join("bin");
    std::fs::create_dir_all(&bin_dir).expect("bench dir");
    let prog = build_static("net", &bin_dir, &[]);
    let mount = serde_json::json!({ "destination": "/bench", "type": "bind",
        "source": bin_dir, "options": ["rbind", "ro"] });

    let mut all = runtimes();
    all.push(Runtime {
        name: "rvisor (host net)".into(),
        bin: rvisor(),
        flags: vec!["--network=host".into()],
    });

    println!("Loopback, both ends in the container:\n");
    let bundle = work.join("bundle");
    write_bundle(
        &bundle,
        &busybox_rootfs(),
        &["/bench/net", scale.as_str()],
        std::slice::from_ref(&mount),
    );
    let mut columns: Vec<(String, Vec<(String, f64)>)> = Vec::new();
    if let Some(r) = run(Command::new(&prog).arg(&scale), "native") {
        columns.push(("native".into(), r));
    }
    columns.extend(run_in_runtimes(&all, &work, &bundle, "net"));
    print_table(&columns);

    println!("\nAcross a veth pair, the server in the peer namespace:\n");
    let mut columns: Vec<(String, Vec<(String, f64)>)> = Vec::new();
    let pair = VethPair::new(0);
    if let Some(r) = pair.with_server(&prog, || {
        run(
            Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &pair.ctr,
                    prog.to_str().expect("utf-8 path"),
                ])
                .args([scale.as_str(), pair.peer_addr.as_str()]),
            "native",
        )
    }) {
        columns.push(("native".into(), r));
    }
    drop(pair);
    for (i, rt) in all.iter().enumerate() {
        // runsc's own stack (its default network) takes over the device.
        let flags: Vec<String> = rt
            .flags
            .iter()
            .filter(|f| *f != "--network=none")
            .cloned()
            .collect();
        let rt = Runtime {
            name: rt.name.clone(),
            bin: rt.bin.clone(),
            flags,
        };
        let pair = VethPair::new(i as u8 + 1);
        let bundle = work.join(format!("bundle-veth-{i}"));
        write_bundle(
            &bundle,
            &busybox_rootfs(),
            &["/bench/net", scale.as_str(), pair.peer_addr.as_str()],
            std::slice::from_ref(&mount),
        );
        join_netns(&bundle, &format!("/var/run/netns/{}", pair.ctr));
        let col = pair.with_server(&prog, || {
            run_in_runtimes(
                std::slice::from_ref(&rt),
                &work,
                &bundle,
                &format!("veth{i}-"),
            )
            .pop()
            .map(|(_, r)| r)
        });
        if let Some(r) = col {
            columns.push((rt.name.clone(), r));
        }
    }
    print_table(&columns);
    let _ = std::fs::remove_dir_all(&work);
}

/// Makes the bundle's container join the network namespace at `path`.
fn join_netns(bundle: &Path, path: &str) {
    edit_bundle(bundle, |cfg| {
        if let Some(list) = cfg["linux"]["namespaces"].as_array_mut() {
            for ns in list {
                if ns["type"] == "network" {
                    ns["path"] = path.into();
                }
            }
        }
    });
}

/// Two network namespaces joined by a veth pair: the container's
/// (10.216.N.1/24) and the server's peer (10.216.N.2/24).
struct VethPair {
    ctr: String,
    peer: String,
    peer_addr: String,
}

fn ip(args: &[&str]) {
    let ok = Command::new("ip")
        .args(args)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ip {}", args.join(" "));
}

impl VethPair {
    fn new(n: u8) -> VethPair {
        let id = std::process::id() % 10_000;
        let p = VethPair {
            ctr: format!("rvbench-c{id}-{n}"),
            peer: format!("rvbench-p{id}-{n}"),
            peer_addr: format!("10.216.{n}.2"),
        };
        ip(&["netns", "add", &p.ctr]);
        ip(&["netns", "add", &p.peer]);
        let (vc, vp) = (format!("rvbc{n}"), format!("rvbp{n}"));
        ip(&[
            "link", "add", &vc, "netns", &p.ctr, "type", "veth", "peer", "name", &vp, "netns",
            &p.peer,
        ]);
        for (ns, dev, host) in [(&p.ctr, &vc, 1), (&p.peer, &vp, 2)] {
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("10.216.{n}.{host}/24"),
                "dev",
                dev,
            ]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        p
    }

    /// Runs `f` while `net --serve` runs natively in the peer namespace.
    fn with_server<T>(&self, prog: &Path, f: impl FnOnce() -> T) -> T {
        let mut server = Command::new("ip")
            .args(["netns", "exec", &self.peer])
            .arg(prog)
            .arg("--serve")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the peer's server");
        // It prints once it listens.
        let mut line = String::new();
        if let Some(out) = server.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        let r = f();
        let _ = server.kill();
        let _ = server.wait();
        r
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        for ns in [&self.ctr, &self.peer] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}
