//! Networking over loopback inside one container, side by side in one
//! run: benches/programs/net.c (built static) natively, under runc, under
//! runsc (ptrace platform, its netstack's loopback) and under rvisor (its
//! own loopback, on both platforms, and `--network host`), each inside a
//! busybox bundle with the program bind-mounted at /bench. Prints
//! nanoseconds per operation and ratios as a Markdown table; for tcp_64k,
//! 64 KiB per operation, so 1 µs is 65.5 GB/s... and 10 µs 6.5 GB/s.
//!
//!     cargo bench --bench net [-- SCALE]
//!
//! SCALE multiplies every operation's iteration count (default 1).
//! Needs root, gcc and the fixtures of scripts/setup.sh.

mod common;

use std::process::Command;

use common::{
    build_static, busybox_rootfs, print_table, run_in_runtimes, run_measurements as run, runtimes,
    rvisor, write_bundle, Runtime,
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
    let bundle = work.join("bundle");
    std::fs::create_dir_all(&bundle).expect("bundle dir");
    let mount = serde_json::json!({ "destination": "/bench", "type": "bind",
        "source": bin_dir, "options": ["rbind", "ro"] });
    write_bundle(
        &bundle,
        &busybox_rootfs(),
        &["/bench/net", scale.as_str()],
        &[mount],
    );

    let mut all = runtimes();
    all.push(Runtime {
        name: "rvisor (host net)".into(),
        bin: rvisor(),
        flags: vec!["--platform=ptrace".into(), "--network=host".into()],
    });
    let mut columns: Vec<(String, Vec<(String, f64)>)> = Vec::new();
    if let Some(r) = run(Command::new(&prog).arg(&scale), "native") {
        columns.push(("native".into(), r));
    }
    columns.extend(run_in_runtimes(&all, &work, &bundle, "net"));

    print_table(&columns);
    let _ = std::fs::remove_dir_all(&work);
}
