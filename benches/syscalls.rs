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

use std::path::Path;
use std::process::Command;

use common::{busybox_rootfs, runtimes, write_bundle, Runtime};

/// "name\tns" lines into (name, ns), in order.
fn parse(out: &str) -> Vec<(String, f64)> {
    out.lines()
        .filter_map(|l| {
            let (name, ns) = l.split_once('\t')?;
            Some((name.to_string(), ns.trim().parse().ok()?))
        })
        .collect()
}

fn run(cmd: &mut Command, label: &str) -> Option<Vec<(String, f64)>> {
    match cmd.output() {
        Ok(o) if o.status.success() => Some(parse(&String::from_utf8_lossy(&o.stdout))),
        Ok(o) => {
            eprintln!(
                "{label}: {}: {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            );
            None
        }
        Err(e) => {
            eprintln!("{label}: {e}");
            None
        }
    }
}

fn main() {
    let scale = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<f64>().ok())
        .unwrap_or(1.0)
        .to_string();
    let work = std::env::temp_dir().join(format!("rvisor-bench-sys-{}", std::process::id()));
    let bin_dir = work.join("bin");
    std::fs::create_dir_all(&bin_dir).expect("bench dir");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/programs/micro.c");
    let micro = bin_dir.join("micro");
    let built = Command::new("gcc")
        .args(["-O2", "-static", "-pthread", "-o"])
        .arg(&micro)
        .arg(&src)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(built, "gcc could not build {}", src.display());
    let bundle = work.join("bundle");
    std::fs::create_dir_all(&bundle).expect("bundle dir");
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
    for (i, Runtime { name, bin, flags }) in runtimes().iter().enumerate() {
        let root = work.join(format!("root-{i}"));
        let mut c = Command::new(bin);
        c.arg("--root")
            .arg(&root)
            .args(flags)
            .args(["run", "--bundle"])
            .arg(&bundle)
            .arg(format!("micro{i}"));
        if let Some(r) = run(&mut c, name) {
            columns.push((name.clone(), r));
        }
    }

    let value = |col: &str, op: &str| -> Option<f64> {
        columns
            .iter()
            .find(|(c, _)| c == col)
            .and_then(|(_, v)| v.iter().find(|(o, _)| o == op).map(|(_, ns)| *ns))
    };
    let ops: Vec<String> = columns
        .first()
        .map(|(_, v)| v.iter().map(|(o, _)| o.clone()).collect())
        .unwrap_or_default();
    let fmt = |ns: Option<f64>| match ns {
        Some(ns) if ns >= 1e6 => format!("{:.2} ms", ns / 1e6),
        Some(ns) if ns >= 1e3 => format!("{:.1} µs", ns / 1e3),
        Some(ns) => format!("{ns:.0} ns"),
        None => "-".into(),
    };
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.1}×", a / b),
        _ => "-".into(),
    };
    let names: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
    println!(
        "| operation | {} | rvisor / native | runsc / rvisor |",
        names.join(" | ")
    );
    println!("|---|{}---:|---:|", "---:|".repeat(names.len()));
    for op in &ops {
        let cells: Vec<String> = names.iter().map(|c| fmt(value(c, op))).collect();
        let ours = value("rvisor (ptrace)", op);
        println!(
            "| {op} | {} | {} | {} |",
            cells.join(" | "),
            ratio(ours, value("native", op)),
            ratio(value("runsc (ptrace)", op), ours)
        );
    }
    let _ = std::fs::remove_dir_all(&work);
}
