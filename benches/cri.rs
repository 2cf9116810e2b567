//! The full CRI pod lifecycle as kubelet drives it: RunPodSandbox,
//! CreateContainer + StartContainer, ExecSync, StopPodSandbox,
//! RemovePodSandbox; through a private containerd from Debian with runtime
//! handler `runc` (containerd's runc shim and runc) and `rvisor` (our shim),
//! side by side in one run. runsc has no containerd shim in Debian, so it
//! cannot serve CRI pods here. Prints medians and the ratio as Markdown.
//!
//!     cargo bench --bench cri [-- ITERATIONS]
//!
//! Needs root and the fixtures of scripts/setup.sh (the pause image and the
//! Python CRI client).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{rvisor, which};

fn fixtures() -> PathBuf {
    std::env::var_os("RVISOR_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/rvisor/fixtures"))
}

struct Containerd {
    dir: PathBuf,
    daemon: Child,
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_containerd(dir: &Path) -> Containerd {
    let d = dir.display();
    std::fs::create_dir_all(dir.join("cni/net.d")).expect("bench dir");
    std::fs::create_dir_all(dir.join("shims")).expect("bench dir");
    std::os::unix::fs::symlink(
        rvisor().with_file_name("containerd-shim-rvisor-v1"),
        dir.join("shims/containerd-shim-rvisor-v1"),
    )
    .expect("shim link");
    std::fs::write(
        dir.join("cni/net.d/10-bench.conflist"),
        format!(
            r#"{{"cniVersion":"0.4.0","name":"rvbench","plugins":[
 {{"type":"bridge","bridge":"rvbench0","isGateway":false,"ipMasq":false,
   "ipam":{{"type":"host-local","ranges":[[{{"subnet":"10.231.99.0/24"}}]],"dataDir":"{d}/ipam"}}}},
 {{"type":"loopback"}}]}}"#
        ),
    )
    .expect("cni config");
    let cri = "[plugins.\"io.containerd.grpc.v1.cri\"]";
    std::fs::write(
        dir.join("config.toml"),
        format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
             [grpc]\n  address = \"{d}/containerd.sock\"\n\
             [ttrpc]\n  address = \"{d}/containerd-ttrpc.sock\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{d}/opt\"\n\
             {cri}\n  disable_tcp_service = true\n  sandbox_image = \"localhost/pause:latest\"\n  \
             netns_mounts_under_state_dir = true\n  restrict_oom_score_adj = true\n  \
             [plugins.\"io.containerd.grpc.v1.cri\".cni]\n    bin_dir = \"/usr/lib/cni\"\n    \
             conf_dir = \"{d}/cni/net.d\"\n  \
             [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n    \
             runtime_type = \"io.containerd.runc.v2\"\n  \
             [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.rvisor]\n    \
             runtime_type = \"io.containerd.rvisor.v1\"\n"
        ),
    )
    .expect("containerd config");
    let path = format!(
        "{}:{}",
        dir.join("shims").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let daemon = Command::new("containerd")
        .arg("--config")
        .arg(dir.join("config.toml"))
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting containerd");
    let c = Containerd {
        dir: dir.to_path_buf(),
        daemon,
    };
    let ctr = |args: &[&str]| {
        Command::new("ctr")
            .arg("-a")
            .arg(dir.join("containerd.sock"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ctr(&["version"]) {
        assert!(Instant::now() < deadline, "containerd did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    for image in ["busybox-oci.tar", "pause-oci.tar"] {
        let archive = fixtures().join("images").join(image);
        assert!(
            ctr(&[
                "-n",
                "k8s.io",
                "images",
                "import",
                &archive.to_string_lossy()
            ]),
            "importing {}",
            archive.display()
        );
    }
    c
}

/// Median seconds of `n` pod lifecycles through `handler`, from the
/// client's own timing (its first line: "median S min S max S").
fn lifecycle(c: &Containerd, handler: &str, n: usize) -> Option<f64> {
    let out = Command::new(fixtures().join("cri-venv/bin/python3"))
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/cri_pod.py"))
        .arg(c.dir.join("containerd.sock"))
        .args([handler, "bench", &n.to_string()])
        .env("CRI_LOG_ROOT", c.dir.join(format!("logs-{handler}")))
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "{handler}: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next()?;
    first.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20);
    if which("containerd").is_none() || !fixtures().join("cri-venv/bin/python3").exists() {
        eprintln!("containerd or the CRI client is missing: run scripts/setup.sh");
        return;
    }
    let dir = std::env::temp_dir().join(format!("rvisor-bench-cri-{}", std::process::id()));
    let c = start_containerd(&dir);
    // One warm-up pod each, so neither pays for cold caches.
    let _ = lifecycle(&c, "runc", 1);
    let _ = lifecycle(&c, "rvisor", 1);
    let runc = lifecycle(&c, "runc", n);
    let rvisor = lifecycle(&c, "rvisor", n);
    println!("| CRI pod lifecycle ({n} pods, median) | runc | rvisor | rvisor / runc |");
    println!("|---|---:|---:|---:|");
    let cell = |v: Option<f64>| v.map_or("failed".to_string(), |s| format!("{:.3} s", s));
    let ratio = match (runc, rvisor) {
        (Some(a), Some(b)) if a > 0.0 => format!("{:.2}", b / a),
        _ => "-".into(),
    };
    println!(
        "| run pod, create + start a container, exec, stop, remove | {} | {} | {ratio} |",
        cell(runc),
        cell(rvisor)
    );
}
