//! Helpers shared by the benchmarks: finding the runtimes, the fixtures and
//! writing an OCI bundle.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// The rvisor binary next to the bench executable's target directory.
pub fn rvisor() -> PathBuf {
    let exe = std::env::current_exe().expect("bench path");
    // target/release/deps/NAME-HASH -> target/release/rvisor
    exe.parent()
        .and_then(Path::parent)
        .map(|d| d.join("rvisor"))
        .filter(|p| p.exists())
        .expect("build rvisor first: cargo build --release")
}

pub fn busybox_rootfs() -> PathBuf {
    fixture_rootfs("busybox")
}

/// The Debian fixture's rootfs (python3, gcc).
pub fn debian_rootfs() -> PathBuf {
    fixture_rootfs("debian")
}

fn fixture_rootfs(name: &str) -> PathBuf {
    let fixtures =
        std::env::var("RVISOR_FIXTURES").unwrap_or_else(|_| "/var/cache/rvisor/fixtures".into());
    let rootfs = Path::new(&fixtures).join(name).join("rootfs");
    assert!(rootfs.exists(), "run scripts/setup.sh first");
    rootfs
}

/// Changes a bundle's config.json in place.
pub fn edit_bundle(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let file = dir.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("config.json"))
            .expect("config.json parses");
    f(&mut cfg);
    std::fs::write(&file, cfg.to_string()).expect("config.json");
}

/// A config.json in `dir` (made if need be) running `args` over
/// `rootfs`, with proc and /dev, the usual namespaces, and `extra` mounts.
pub fn write_bundle(dir: &Path, rootfs: &Path, args: &[&str], extra: &[serde_json::Value]) {
    std::fs::create_dir_all(dir).expect("bundle dir");
    let mut mounts = vec![
        serde_json::json!({ "destination": "/proc", "type": "proc", "source": "proc" }),
        serde_json::json!({ "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] }),
    ];
    mounts.extend(extra.iter().cloned());
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false, "user": { "uid": 0, "gid": 0 },
            "args": args, "env": ["PATH=/bin"], "cwd": "/",
            "noNewPrivileges": true
        },
        "root": { "path": rootfs, "readonly": false },
        "hostname": "bench",
        "mounts": mounts,
        "linux": { "namespaces": [
            { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
            { "type": "uts" }, { "type": "mount" }
        ] }
    });
    std::fs::write(dir.join("config.json"), config.to_string()).expect("config.json");
}

pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A container runtime to measure: its label, binary and extra flags.
pub struct Runtime {
    pub name: String,
    pub bin: PathBuf,
    pub flags: Vec<String>,
}

/// The column of rvisor's default platform, which the ratios are of.
pub const RVISOR_DEFAULT: &str = "rvisor (systrap)";

/// runc and runsc when installed (runsc on its ptrace platform without
/// network, the only way it runs on these machines), then rvisor on its
/// default platform, on ptrace and on the experimental notification path.
pub fn runtimes() -> Vec<Runtime> {
    let mut v = Vec::new();
    if let Some(bin) = which("runc") {
        v.push(Runtime {
            name: "runc".into(),
            bin,
            flags: vec![],
        });
    }
    if let Some(bin) = which("runsc") {
        v.push(Runtime {
            name: "runsc (ptrace)".into(),
            bin,
            flags: vec!["--platform=ptrace".into(), "--network=none".into()],
        });
    }
    // The default platform, ptrace, and the experimental notification path.
    for platform in ["systrap", "ptrace", "notif"] {
        v.push(Runtime {
            name: format!("rvisor ({platform})"),
            bin: rvisor(),
            flags: vec![format!("--platform={platform}")],
        });
    }
    v
}

/// Builds benches/programs/NAME.c static (with `extra` gcc flags) into
/// `bin_dir/NAME`, for every runtime to run the same binary.
pub fn build_static(name: &str, bin_dir: &Path, extra: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches/programs")
        .join(format!("{name}.c"));
    let out = bin_dir.join(name);
    let built = std::process::Command::new("gcc")
        .args(["-O2", "-static"])
        .args(extra)
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .is_ok_and(|s| s.success());
    assert!(built, "gcc could not build {}", src.display());
    out
}

/// Runs `bundle` under each of `runtimes` (state under `work`, container
/// ids `ID_PREFIX<n>`), one column of measurements per runtime that ran.
pub fn run_in_runtimes(
    runtimes: &[Runtime],
    work: &Path,
    bundle: &Path,
    id_prefix: &str,
) -> Vec<(String, Vec<(String, f64)>)> {
    let mut columns = Vec::new();
    for (i, Runtime { name, bin, flags }) in runtimes.iter().enumerate() {
        let root = work.join(format!("root-{i}"));
        let mut c = std::process::Command::new(bin);
        c.arg("--root")
            .arg(&root)
            .args(flags)
            .args(["run", "--bundle"])
            .arg(bundle)
            .arg(format!("{id_prefix}{i}"));
        if let Some(r) = run_measurements(&mut c, name) {
            columns.push((name.clone(), r));
        }
    }
    columns
}

/// "name\tns" lines into (name, ns), in order.
pub fn parse(out: &str) -> Vec<(String, f64)> {
    out.lines()
        .filter_map(|l| {
            let (name, ns) = l.split_once('\t')?;
            Some((name.to_string(), ns.trim().parse().ok()?))
        })
        .collect()
}

pub fn run_measurements(
    cmd: &mut std::process::Command,
    label: &str,
) -> Option<Vec<(String, f64)>> {
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

/// Prints `columns` (runtime label, (operation, ns) rows) as a Markdown
/// table with rvisor's (default platform) ratios to native and to runc,
/// and runsc's to rvisor.
pub fn print_table(columns: &[(String, Vec<(String, f64)>)]) {
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
        "| operation | {} | rvisor / native | rvisor / runc | runsc / rvisor |",
        names.join(" | ")
    );
    println!("|---|{}---:|---:|---:|", "---:|".repeat(names.len()));
    for op in &ops {
        let cells: Vec<String> = names.iter().map(|c| fmt(value(c, op))).collect();
        let ours = value(RVISOR_DEFAULT, op);
        println!(
            "| {op} | {} | {} | {} | {} |",
            cells.join(" | "),
            ratio(ours, value("native", op)),
            ratio(ours, value("runc", op)),
            ratio(value("runsc (ptrace)", op), ours)
        );
    }
}
