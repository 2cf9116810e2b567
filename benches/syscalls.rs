//! System-call path costs, side by side in one run: the micro-benchmark
//! program (benches/programs/micro.c, built static) natively, under runc,
//! under runsc (ptrace platform, no network) and under rvisor, each inside
//! a busybox bundle with the program bind-mounted at /bench. Prints
//! nanoseconds per operation and ratios as a Markdown table.
//!
//!     cargo bench --bench syscalls [-- SCALE]
//!
//! SCALE multiplies every operation's iteration count (default 1).
//! Needs root, gcc and the fixtures of scripts/setup.sh.

mod common;

use std::process::Command;

use common::{
    build_static, busybox_rootfs, print_table, run_in_runtimes, run_measurements as run, runtimes,
    write_bundle,
};

fn main() {
    let scale = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<f64>().ok())
        .unwrap_or(1.0)
        .to_string();
    let work = std::env::temp_dir().join(format!("rvisor-bench-sys-{}", std::process::id()));
    let bin_dir = work.join("bin");
    std::fs::create_dir_all(&bin_dir).expect("bench dir");
    let micro = build_static("micro", &bin_dir, &["-pthread"]);
    let bundle = work.join("bundle");
    let mount = serde_json::json!({ "destination": "/bench", "type": "bind",
        "source": bin_dir, "options": ["rbind", "ro"] });
    write_bundle(
        &bundle,
        &busybox_rootfs(),
        &["/bench/micro", scale.as_str()],
        &[mount],
    );

    let mut columns: Vec<(String, Vec<(String, f64)>)> = Vec::new();
    if let Some(r) = run(Command::new(&micro).arg(&scale), "native") {
        columns.push(("native".into(), r));
    }
    columns.extend(run_in_runtimes(&runtimes(), &work, &bundle, "micro"));

    print_table(&columns);
    let _ = std::fs::remove_dir_all(&work);
}
