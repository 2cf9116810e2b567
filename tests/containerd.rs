//! containerd's own runc v2 shim driving rvisor as its runc binary (`ctr
//! run --runc-binary`), against a private containerd from Debian: run,
//! exec, kill, rm. Each case runs with runc and with rvisor; what ctr
//! shows must be the same, and rvisor must leave no state or process.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

const IMAGE: &str = BUSYBOX_IMAGE;

struct Containerd {
    dir: TempDir,
    daemon: Child,
}

impl Containerd {
    fn start() -> Option<Containerd> {
        let bin = which("containerd")?;
        which("ctr")?;
        let image = busybox_image_archive()?;
        let dir = TempDir::new("containerd");
        let d = dir.path().display();
        let config = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
             [grpc]\n  address = \"{d}/containerd.sock\"\n\
             [ttrpc]\n  address = \"{d}/containerd-ttrpc.sock\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{d}/opt\"\n\
             [plugins.\"io.containerd.grpc.v1.cri\"]\n  disable_tcp_service = true\n"
        );
        std::fs::write(dir.path().join("config.toml"), config).expect("containerd config");
        let log = std::fs::File::create(dir.path().join("containerd.log")).expect("log");
        let daemon = Command::new(bin)
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let c = Containerd { dir, daemon };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !c.ctr(&["version"]).status.success() {
            assert!(Instant::now() < deadline, "containerd did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = c.ctr(&["images", "import", &image.to_string_lossy()]);
        assert_success("ctr images import", &out);
        Some(c)
    }

    fn ctr(&self, args: &[&str]) -> Output {
        run_with_timeout(
            Command::new("ctr")
                .arg("-a")
                .arg(self.dir.path().join("containerd.sock"))
                .args(args),
            Duration::from_secs(60),
        )
    }

    fn runtime_root(&self, rt: &Path) -> PathBuf {
        let name = rt.file_name().map(|n| n.to_string_lossy().into_owned());
        self.dir
            .path()
            .join(format!("state-{}", name.unwrap_or_default()))
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

fn describe(label: &str, out: &Output) -> String {
    format!(
        "{label}: code {:?} stdout {:?}",
        out.status.code(),
        stdout_str(out)
    )
}

fn transcript(c: &Containerd, rt: &Path) -> String {
    let root = c.runtime_root(rt);
    let rt_s = rt.to_string_lossy().into_owned();
    let root_s = root.to_string_lossy().into_owned();
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--runc-binary", &rt_s, "--runc-root", &root_s];
        args.extend(extra);
        c.ctr(&args)
    };
    let mut t = vec![describe(
        "run --rm",
        &run(&["--rm", IMAGE, "t1", "sh", "-c", "echo hi; exit 3"]),
    )];
    t.push(describe(
        "run -d",
        &run(&[
            "-d",
            IMAGE,
            "t2",
            "sh",
            "-c",
            "trap 'exit 7' TERM; while :; do sleep 0.05; done",
        ]),
    ));
    t.push(describe(
        "exec",
        &c.ctr(&[
            "task",
            "exec",
            "--exec-id",
            "e1",
            "t2",
            "sh",
            "-c",
            "echo in exec; exit 5",
        ]),
    ));
    t.push(describe("kill", &c.ctr(&["task", "kill", "t2"])));
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let ls = stdout_str(&c.ctr(&["task", "ls"]));
        let line = ls
            .lines()
            .find(|l| l.starts_with("t2 "))
            .unwrap_or("")
            .to_string();
        if line.contains("STOPPED") || Instant::now() > deadline {
            break line.split_whitespace().last().unwrap_or("").to_string();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    t.push(format!("t2 status {status}"));
    t.push(describe("task rm", &c.ctr(&["task", "rm", "t2"])));
    t.push(describe("c rm", &c.ctr(&["c", "rm", "t2"])));
    t.join("\n")
}

#[test]
fn containerd_runc_shim_drives_rvisor_like_runc() {
    let (Some(c), Some(runc)) = (Containerd::start(), which("runc")) else {
        eprintln!(
            "SKIP: containerd, ctr or runc is not installed (scripts/setup.sh installs them)"
        );
        return;
    };
    let expected = transcript(&c, &runc);
    let ours = rvisor();
    let actual = transcript(&c, &ours);
    assert!(
        expected == actual,
        "ctr with rvisor differs from ctr with runc:\n{}",
        line_diff(&expected, &actual)
    );
    // Nothing left: no container state under rvisor's root (runc's shim
    // nests it in a namespace directory).
    let root = c.runtime_root(&ours);
    let mut left = Vec::new();
    for ns in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        for e in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
            left.push(e.path());
        }
    }
    assert!(left.is_empty(), "rvisor state left behind: {left:?}");
}
