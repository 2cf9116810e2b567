//! The whole side-by-side suite in one command and one run (issue 6):
//! natively, under runc, under runsc (ptrace platform) and under rvisor
//! (both platforms),
//!
//! - the system-call paths of benches/programs/micro.c (getppid, stat,
//!   open+read+close, pipe throughput, fork+exec+wait, mmap+touch+munmap,
//!   thread create+join, futex ping-pong), in a busybox bundle;
//! - python3 startup and compiling a small C program with gcc, timed
//!   inside a Debian bundle by benches/programs/timeit.c (so the
//!   container's own start is not counted);
//! - a container's start-to-exit of /bin/true (`RUNTIME run`; natively a
//!   fork+exec of it);
//! - the memory of an idle sandbox: the PSS of every process the runtime
//!   started for a container running `sleep` (sentry, gofer and stubs for
//!   rvisor; the sandbox and gofer for runsc; the container's process for
//!   runc), natively of `sleep` itself.
//!
//! It prints one Markdown table of medians (best of rounds for the
//! micro-benchmarks) with ratios, and with `--write` replaces the suite
//! section of docs/benchmarks.md and writes docs/benchmarks-suite.svg, a
//! chart of each runtime's ratio to native.
//!
//!     cargo bench --bench suite [-- [SCALE] [--write]]
//!
//! Needs root, gcc and the fixtures of scripts/setup.sh.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    build_static, busybox_rootfs, debian_rootfs, edit_bundle, median, run_in_runtimes,
    run_measurements as run, runtimes, write_bundle, RVISOR_DEFAULT,
};

/// One column: a runtime's label and its (operation, value) rows; times
/// in ns, memory in KiB.
type Column = (String, Vec<(String, f64)>);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let scale = args
        .iter()
        .find_map(|a| a.parse::<f64>().ok())
        .unwrap_or(1.0)
        .to_string();
    let write = args.iter().any(|a| a == "--write");
    let work = std::env::temp_dir().join(format!("rvisor-bench-suite-{}", std::process::id()));
    let bin_dir = work.join("bin");
    std::fs::create_dir_all(&bin_dir).expect("bench dir");
    let micro = build_static("micro", &bin_dir, &["-pthread"]);
    let timeit = build_static("timeit", &bin_dir, &[]);
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/programs/hello.c"),
        bin_dir.join("hello.c"),
    )
    .expect("hello.c");
    let bench_mount = serde_json::json!({ "destination": "/bench", "type": "bind",
        "source": bin_dir, "options": ["rbind", "ro"] });
    let tmp_mount = serde_json::json!({ "destination": "/tmp", "type": "tmpfs",
        "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"] });
    let all = runtimes();
    for needed in ["runc", "runsc (ptrace)"] {
        if write && !all.iter().any(|r| r.name == needed) {
            // The docs compare every runtime; a table without one would
            // silently replace the one that had it.
            eprintln!(
                "{needed} is not installed (apt-get install runc runsc): \
                 refusing to --write docs/benchmarks.md without it"
            );
            std::process::exit(2);
        }
    }

    // System-call paths.
    let bundle = work.join("micro");
    write_bundle(
        &bundle,
        &busybox_rootfs(),
        &["/bench/micro", scale.as_str()],
        std::slice::from_ref(&bench_mount),
    );
    let mut columns: Vec<Column> = Vec::new();
    if let Some(r) = run(Command::new(&micro).arg(&scale), "native") {
        columns.push(("native".into(), r));
    }
    columns.extend(run_in_runtimes(&all, &work, &bundle, "micro"));

    // Applications, timed inside a Debian bundle.
    let app_args = |prefix: &str| -> Vec<String> {
        [
            "python3_startup",
            "10",
            "/usr/bin/python3",
            "-c",
            "pass",
            "--",
            "gcc_hello",
            "5",
            "/usr/bin/gcc",
            "-O2",
            "-o",
            "/tmp/hello",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("{prefix}/hello.c")])
        .collect()
    };
    let debian = debian_rootfs();
    let bundle = work.join("apps");
    let mut inside = vec!["/bench/timeit".to_string()];
    inside.extend(app_args("/bench"));
    let inside: Vec<&str> = inside.iter().map(String::as_str).collect();
    write_bundle(
        &bundle,
        &debian,
        &inside,
        &[bench_mount.clone(), tmp_mount.clone()],
    );
    edit_bundle(&bundle, |cfg| {
        cfg["process"]["env"] = serde_json::json!(["PATH=/usr/bin:/bin"]);
    });
    let mut native_apps = Command::new(&timeit);
    native_apps.args(app_args(bin_dir.to_str().expect("utf-8 path")));
    let native = run(&mut native_apps, "native");
    let apps = run_in_runtimes(&all, &work, &bundle, "apps");
    merge(&mut columns, native.map(|r| ("native".to_string(), r)));
    for c in apps {
        merge(&mut columns, Some(c));
    }

    // Start to exit, and idle memory.
    let bundle = work.join("true");
    write_bundle(&bundle, &busybox_rootfs(), &["/bin/true"], &[]);
    let sleeper = work.join("sleep");
    write_bundle(&sleeper, &busybox_rootfs(), &["/bin/sleep", "60"], &[]);
    let busybox = busybox_rootfs().join("bin/busybox");
    let native_true = time_median(20, || {
        Command::new(&busybox)
            .arg("true")
            .status()
            .is_ok_and(|s| s.success())
    });
    let native_mem = idle_pss(Command::new(&busybox).args(["sleep", "60"]), None);
    let mut native_rows = Vec::new();
    if let Some(d) = native_true {
        native_rows.push(("start_to_exit".to_string(), d.as_nanos() as f64));
    }
    if let Some(kib) = native_mem {
        native_rows.push(("idle_memory_kib".to_string(), kib));
    }
    merge(&mut columns, Some(("native".into(), native_rows)));
    for (i, rt) in all.iter().enumerate() {
        let root = work.join(format!("root-life-{i}"));
        let cmd = |args: &[&str]| {
            let mut c = Command::new(&rt.bin);
            c.arg("--root").arg(&root).args(&rt.flags).args(args);
            c
        };
        let mut rows = Vec::new();
        let mut n = 0;
        if let Some(d) = time_median(20, || {
            n += 1;
            cmd(&["run", "--bundle"])
                .arg(&bundle)
                .arg(format!("t{n}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        }) {
            rows.push(("start_to_exit".to_string(), d.as_nanos() as f64));
        }
        let id = format!("idle{i}");
        let mut start = cmd(&["run", "--bundle"]);
        start.arg(&sleeper).arg(&id);
        if let Some(kib) = idle_pss(
            &mut start,
            Some(&|| {
                let _ = cmd(&["kill", &id, "KILL"]).output();
            }),
        ) {
            rows.push(("idle_memory_kib".to_string(), kib));
        }
        let _ = cmd(&["delete", "--force", &id]).output();
        merge(&mut columns, Some((rt.name.clone(), rows)));
    }

    let table = table(&columns);
    println!("{table}");
    if write {
        let svg = chart(&columns);
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        std::fs::write(docs.join("benchmarks-suite.svg"), svg).expect("write the chart");
        replace_section(&docs.join("benchmarks.md"), &table);
        println!("wrote docs/benchmarks-suite.svg and the suite section of docs/benchmarks.md");
    }
    let _ = std::fs::remove_dir_all(&work);
}

/// Adds `col`'s rows to the column of the same name (or a new one).
fn merge(columns: &mut Vec<Column>, col: Option<Column>) {
    let Some((name, rows)) = col else { return };
    match columns.iter_mut().find(|(n, _)| *n == name) {
        Some((_, r)) => r.extend(rows),
        None => columns.push((name, rows)),
    }
}

/// The median of `n` timed runs of `one` after 3 warm-ups; None if any
/// run fails.
fn time_median(n: usize, mut one: impl FnMut() -> bool) -> Option<Duration> {
    let mut times = Vec::new();
    for i in 0..n + 3 {
        let t = Instant::now();
        if !one() {
            return None;
        }
        if i >= 3 {
            times.push(t.elapsed());
        }
    }
    Some(median(times))
}

/// Every process below `root` (not `root` itself), from /proc.
fn descendants(root: u32) -> Vec<u32> {
    let mut parent: HashMap<u32, u32> = HashMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // The fields after the command's closing parenthesis: state, ppid.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
            parent.insert(pid, ppid);
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for (child, _) in parent.iter().filter(|(_, pp)| **pp == p) {
            out.push(*child);
            frontier.push(*child);
        }
    }
    out
}

/// A process's proportional set size in KiB.
fn pss_kib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Pss:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
}

/// Starts `cmd`, lets it settle for 2 s, and sums the PSS of what it
/// started (a runtime's processes; with `stop` None, `cmd` itself, run
/// natively). `stop` ends the container.
fn idle_pss(cmd: &mut Command, stop: Option<&dyn Fn()>) -> Option<f64> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    std::thread::sleep(Duration::from_secs(2));
    let pids = match stop {
        Some(_) => descendants(child.id()),
        None => vec![child.id()],
    };
    let total: f64 = pids.iter().map(|p| pss_kib(*p)).sum();
    match stop {
        Some(stop) => stop(),
        None => {
            let _ = child.kill();
        }
    }
    let _ = child.wait();
    (total > 0.0).then_some(total)
}

fn fmt(op: &str, v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(kib) if op.ends_with("_kib") => format!("{:.1} MiB", kib / 1024.0),
        Some(ns) if ns >= 1e6 => format!("{:.2} ms", ns / 1e6),
        Some(ns) if ns >= 1e3 => format!("{:.1} µs", ns / 1e3),
        Some(ns) => format!("{ns:.0} ns"),
    }
}

fn value(columns: &[Column], col: &str, op: &str) -> Option<f64> {
    columns
        .iter()
        .find(|(c, _)| c == col)
        .and_then(|(_, v)| v.iter().find(|(o, _)| o == op).map(|(_, x)| *x))
}

/// Every operation, in the order first seen.
fn operations(columns: &[Column]) -> Vec<String> {
    let mut ops: Vec<String> = Vec::new();
    for (_, rows) in columns {
        for (op, _) in rows {
            if !ops.contains(op) {
                ops.push(op.clone());
            }
        }
    }
    ops
}

/// The Markdown table: every column, then rvisor's (default platform)
/// ratios to native and to runc, and runsc's to rvisor.
fn table(columns: &[Column]) -> String {
    let names: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.1}×", a / b),
        _ => "-".into(),
    };
    let mut out = format!(
        "| operation | {} | rvisor / native | rvisor / runc | runsc / rvisor |\n|---|{}---:|---:|---:|\n",
        names.join(" | "),
        "---:|".repeat(names.len())
    );
    for op in operations(columns) {
        let cells: Vec<String> = names
            .iter()
            .map(|c| fmt(&op, value(columns, c, &op)))
            .collect();
        let ours = value(columns, RVISOR_DEFAULT, &op);
        out.push_str(&format!(
            "| {op} | {} | {} | {} | {} |\n",
            cells.join(" | "),
            ratio(ours, value(columns, "native", &op)),
            ratio(ours, value(columns, "runc", &op)),
            ratio(value(columns, "runsc (ptrace)", &op), ours)
        ));
    }
    out
}

/// A horizontal bar chart of each runtime's ratio to native per
/// operation, on a log scale (1× to 1000×).
fn chart(columns: &[Column]) -> String {
    let ops = operations(columns);
    let runtimes: Vec<&str> = columns
        .iter()
        .map(|(c, _)| c.as_str())
        .filter(|c| *c != "native")
        .collect();
    let colors = ["#7f7f7f", "#d62728", "#1f77b4", "#2ca02c", "#9467bd"];
    let (left, width, bar, gap) = (170.0, 560.0, 9.0, 8.0);
    let group = bar * runtimes.len() as f64 + gap;
    let height = 40.0 + group * ops.len() as f64 + 30.0;
    let x = |ratio: f64| left + width * (ratio.max(0.1).log10() + 1.0) / 4.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" \
         fill=\"white\"/>\n<text x=\"10\" y=\"16\" font-size=\"13\">Time (or memory) relative \
         to native, log scale: shorter is better</text>\n",
        left + width + 20.0
    );
    for (k, label) in ["0.1×", "1×", "10×", "100×", "1000×"].iter().enumerate() {
        let gx = left + width * k as f64 / 4.0;
        s.push_str(&format!(
            "<line x1=\"{gx}\" y1=\"30\" x2=\"{gx}\" y2=\"{}\" stroke=\"#ddd\"/>\
             <text x=\"{gx}\" y=\"{}\" text-anchor=\"middle\">{label}</text>\n",
            height - 25.0,
            height - 12.0
        ));
    }
    for (i, op) in ops.iter().enumerate() {
        let y0 = 36.0 + group * i as f64;
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{op}</text>\n",
            left - 6.0,
            y0 + group / 2.0
        ));
        let Some(base) = value(columns, "native", op) else {
            continue;
        };
        for (j, rt) in runtimes.iter().enumerate() {
            if let Some(v) = value(columns, rt, op) {
                let x0 = x(0.1);
                let w = (x(v / base) - x0).max(1.0);
                s.push_str(&format!(
                    "<rect x=\"{x0}\" y=\"{}\" width=\"{w:.1}\" height=\"{}\" fill=\"{}\"/>\n",
                    y0 + bar * j as f64,
                    bar - 1.0,
                    colors[j % colors.len()]
                ));
            }
        }
    }
    for (j, rt) in runtimes.iter().enumerate() {
        let lx = left + 130.0 * j as f64;
        s.push_str(&format!(
            "<rect x=\"{lx}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"{}\">{rt}</text>\n",
            height - 10.0,
            colors[j % colors.len()],
            lx + 14.0,
            height - 1.0
        ));
    }
    s.push_str("</svg>\n");
    s
}

const BEGIN: &str = "<!-- suite:begin (written by cargo bench --bench suite -- --write) -->";
const END: &str = "<!-- suite:end -->";

/// Replaces the text between the suite markers of docs/benchmarks.md.
fn replace_section(file: &Path, table: &str) {
    let doc = std::fs::read_to_string(file).expect("docs/benchmarks.md");
    let (Some(b), Some(e)) = (doc.find(BEGIN), doc.find(END)) else {
        eprintln!("docs/benchmarks.md has no suite markers; not written");
        return;
    };
    let date = Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let section = format!(
        "{BEGIN}\nOne run ({date}); system-call rows are the best of rounds, the others \
         medians.\n\n{table}\n![ratios to native](benchmarks-suite.svg)\n"
    );
    let out = format!("{}{section}{}", &doc[..b], &doc[e..]);
    std::fs::write(file, out).expect("write docs/benchmarks.md");
}
