//! Debian's Docker daemon (started by hand, with `--add-runtime
//! rvisor=...`) running containers under runc and under rvisor: `run
//! --rm`, `run -d` with a memory limit and a read-only volume + `exec` +
//! `logs` + `stop` + `rm`. What the docker user sees must be the same, and
//! nothing may be left behind.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

const IMAGE: &str = BUSYBOX_IMAGE;

struct Dockerd {
    dir: TempDir,
    daemon: Child,
    client: PathBuf,
}

impl Dockerd {
    fn start() -> Option<Dockerd> {
        let dockerd = which("dockerd")?;
        // Debian's client matches the daemon's API; a newer one elsewhere
        // on PATH may not.
        let client = ["/usr/bin/docker"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .or_else(|| which("docker"))?;
        let dir = TempDir::new("dockerd");
        let d = dir.path();
        let log = std::fs::File::create(d.join("dockerd.log")).expect("log");
        let daemon = Command::new(dockerd)
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", d.join("docker.sock").display()))
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-masq=false",
            ])
            .arg("--add-runtime")
            .arg(format!("rvisor={}", rvisor().display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let dk = Dockerd {
            dir,
            daemon,
            client,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !dk.docker(&["version"]).status.success() {
            if Instant::now() > deadline {
                eprintln!(
                    "SKIP: dockerd did not come up here: {}",
                    std::fs::read_to_string(dk.dir.path().join("dockerd.log")).unwrap_or_default()
                );
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let rootfs_tar = dk.dir.path().join("rootfs.tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(busybox_rootfs())
            .arg("-cf")
            .arg(&rootfs_tar)
            .arg(".")
            .status()
            .expect("tar");
        assert!(st.success(), "tar of the busybox rootfs");
        let out = dk.docker(&["import", &rootfs_tar.to_string_lossy(), IMAGE]);
        assert_success("docker import", &out);
        Some(dk)
    }

    fn docker(&self, args: &[&str]) -> Output {
        run_with_timeout(
            Command::new(&self.client)
                .arg("-H")
                .arg(format!(
                    "unix://{}",
                    self.dir.path().join("docker.sock").display()
                ))
                .args(args),
            Duration::from_secs(120),
        )
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let _ = self.docker(&["rm", "-f", "rvisor-test-d"]);
        // SAFETY: SIGTERM to the daemon we started; it stops its own
        // containerd and shims.
        unsafe { libc::kill(self.daemon.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.daemon.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        umount_below(self.dir.path());
    }
}

fn describe(label: &str, out: &Output) -> String {
    format!(
        "{label}: code {:?} stdout {:?} stderr {:?}",
        out.status.code(),
        stdout_str(out),
        stderr_str(out)
    )
}

fn transcript(dk: &Dockerd, runtime: &str, vol: &std::path::Path) -> String {
    let rt = format!("--runtime={runtime}");
    let mut t = vec![describe(
        "run --rm",
        &dk.docker(&[
            "run",
            "--rm",
            &rt,
            "--network=none",
            IMAGE,
            "sh",
            "-c",
            "echo hi; echo oops >&2; exit 3",
        ]),
    )];
    let v = format!("{}:/vol:ro", vol.display());
    let out = dk.docker(&[
        "run",
        "-d",
        "--name",
        "rvisor-test-d",
        &rt,
        "--network=none",
        "-m",
        "64m",
        "--pids-limit",
        "200",
        "-v",
        &v,
        IMAGE,
        "sh",
        "-c",
        "trap 'echo got TERM; exit 7' TERM; echo started; while :; do sleep 0.05; done",
    ]);
    t.push(format!("run -d: code {:?}", out.status.code()));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !stdout_str(&dk.docker(&["logs", "rvisor-test-d"])).contains("started")
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    t.push(describe(
        "exec",
        &dk.docker(&[
            "exec",
            "rvisor-test-d",
            "sh",
            "-c",
            "cat /vol/f; echo x > /vol/g || echo read-only; exit 5",
        ]),
    ));
    t.push(describe("stop", &dk.docker(&["stop", "rvisor-test-d"])));
    t.push(describe(
        "exit code",
        &dk.docker(&[
            "inspect",
            "rvisor-test-d",
            "--format",
            "{{.State.ExitCode}}",
        ]),
    ));
    t.push(describe("logs", &dk.docker(&["logs", "rvisor-test-d"])));
    t.push(describe("rm", &dk.docker(&["rm", "rvisor-test-d"])));
    t.join("\n")
}

#[test]
fn docker_runs_rvisor_like_runc() {
    let Some(dk) = Dockerd::start() else {
        eprintln!("SKIP: dockerd is not installed (scripts/setup.sh installs docker.io)");
        return;
    };
    let vol = TempDir::new("docker-vol");
    std::fs::write(vol.path().join("f"), "from the host\n").expect("volume file");
    let expected = transcript(&dk, "runc", vol.path());
    let actual = transcript(&dk, "rvisor", vol.path());
    assert!(
        expected == actual,
        "docker with rvisor differs from docker with runc:\n{}",
        line_diff(&expected, &actual)
    );
    assert!(
        !vol.path().join("g").exists(),
        "a write reached the read-only volume"
    );
    // No sandbox of ours outlives its container: a gofer names its rootfs,
    // which lives under the daemon's data root.
    let marker = dk.dir.path().to_string_lossy().into_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = processes_mentioning("rvisor-", &marker);
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sandbox processes left: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
