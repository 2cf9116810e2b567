//! Container start-to-exit of /bin/true from an OCI bundle (busybox
//! fixture), side by side in one run: runc, runsc (ptrace platform, no
//! network: the only way it runs on these machines) and rvisor, each as
//! `RUNTIME run`; and the full lifecycle (create, start, wait, delete)
//! for runc and rvisor. Prints medians and ratios as a Markdown table.
//!
//!     cargo bench --bench startup [-- ITERATIONS]
//!
//! Needs root and the fixtures of scripts/setup.sh.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{busybox_rootfs, median, runtimes, write_bundle, Runtime};

fn time_runs(label: &str, n: usize, mut one: impl FnMut(usize) -> bool) -> Option<Duration> {
    let mut times = Vec::new();
    for i in 0..n + 3 {
        let t = Instant::now();
        if !one(i) {
            eprintln!("{label}: run {i} failed; skipped");
            return None;
        }
        if i >= 3 {
            times.push(t.elapsed());
        }
    }
    Some(median(times))
}

fn quiet(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(30);
    let rootfs = busybox_rootfs();
    let work = std::env::temp_dir().join(format!("rvisor-bench-{}", std::process::id()));
    let bundle = work.join("bundle");
    write_bundle(&bundle, &rootfs, &["/bin/true"], &[]);

    let mut rows: Vec<(String, Duration)> = Vec::new();
    let runtimes = runtimes();
    for Runtime { name, bin, flags } in &runtimes {
        let root = work.join(format!("root-{}", rows.len()));
        let r = time_runs(name, n, |i| {
            quiet(
                Command::new(bin)
                    .arg("--root")
                    .arg(&root)
                    .args(flags)
                    .args(["run", "--bundle"])
                    .arg(&bundle)
                    .arg(format!("b{i}")),
            )
        });
        if let Some(d) = r {
            rows.push((format!("`run` /bin/true, {name}"), d));
        }
    }
    for Runtime { name, bin, flags } in runtimes.iter().filter(|r| !r.name.starts_with("runsc")) {
        let root = work.join(format!("lc-{name}"));
        let r = time_runs(name, n, |i| {
            let id = format!("l{i}");
            let cmd = |args: &[&str]| {
                let mut c = Command::new(bin);
                c.arg("--root").arg(&root).args(flags).args(args);
                c
            };
            if !quiet(cmd(&["create", "--bundle"]).arg(&bundle).arg(&id)) {
                return false;
            }
            if !quiet(&mut cmd(&["start", &id])) {
                return false;
            }
            // Wait for the exit as a client polling `state` does.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let out = cmd(&["state", &id]).output();
                let stopped = out
                    .map(|o| String::from_utf8_lossy(&o.stdout).contains("\"stopped\""))
                    .unwrap_or(false);
                if stopped || Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            quiet(&mut cmd(&["delete", &id]))
        });
        if let Some(d) = r {
            rows.push((format!("create+start+state+delete, {name}"), d));
        }
    }
    let runc_run = rows
        .iter()
        .find(|r| r.0 == "`run` /bin/true, runc")
        .map(|r| r.1);
    println!("| measurement (median of {n}) | time | vs runc |\n|---|---:|---:|");
    for (label, d) in &rows {
        let base = if label.starts_with("create") {
            rows.iter()
                .find(|r| r.0 == "create+start+state+delete, runc")
                .map(|r| r.1)
        } else {
            runc_run
        };
        let ratio = base.map_or("-".to_string(), |b| {
            format!("{:.2}×", d.as_secs_f64() / b.as_secs_f64())
        });
        println!("| {label} | {:.1} ms | {ratio} |", d.as_secs_f64() * 1000.0);
    }
    let _ = std::fs::remove_dir_all(&work);
}
