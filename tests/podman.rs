//! Debian's podman (with conmon) driving rvisor as its OCI runtime, case
//! by case beside runc: `run --rm` with output and exit codes, `run -d` +
//! `exec` + `logs` + `stop` + `rm`, and `run -it` through a pty. What the
//! podman user sees must be the same with both runtimes, and rvisor must
//! leave no state or process behind.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

const IMAGE: &str = BUSYBOX_IMAGE;

/// A private podman: its own storage, run and temp dirs under one temp
/// directory (the e2e recipe for these machines).
struct Podman {
    dir: TempDir,
    podman: PathBuf,
}

impl Podman {
    fn new() -> Option<Podman> {
        let podman = which("podman")?;
        let image = busybox_image_archive()?;
        let p = Podman {
            dir: TempDir::new("podman"),
            podman,
        };
        let out = p.run(None, &["load", "-i", &image.to_string_lossy()]);
        assert_success("podman load", &out);
        Some(p)
    }

    /// podman and its global flags, for one runtime (or none).
    fn base_args(&self, runtime: Option<&Path>) -> Vec<String> {
        let d = self.dir.path();
        let p = |s: &str| d.join(s).to_string_lossy().into_owned();
        let mut v = vec![
            self.podman.to_string_lossy().into_owned(),
            "--root".into(),
            p("root"),
            "--runroot".into(),
            p("runroot"),
            "--tmpdir".into(),
            p("tmp"),
            "--cgroup-manager".into(),
            "cgroupfs".into(),
            "--events-backend".into(),
            "file".into(),
            "--network-config-dir".into(),
            p("net"),
        ];
        if let Some(rt) = runtime {
            v.push("--runtime".into());
            v.push(self.wrapper(rt).to_string_lossy().into_owned());
        }
        v
    }

    /// The runtime as podman runs it: a script adding `--root` (podman's
    /// --runtime-flag does not reach the cleanup process conmon starts).
    fn wrapper(&self, rt: &Path) -> PathBuf {
        let name = rt.file_name().map(|n| n.to_string_lossy().into_owned());
        let path = self
            .dir
            .path()
            .join(format!("runtime-{}", name.unwrap_or_default()));
        if !path.exists() {
            let script = format!(
                "#!/bin/sh\nexec '{}' --root '{}' \"$@\"\n",
                rt.display(),
                self.runtime_root(rt).display()
            );
            std::fs::write(&path, script).expect("write runtime wrapper");
            let mut perm = std::fs::metadata(&path).expect("wrapper").permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
            std::fs::set_permissions(&path, perm).expect("chmod wrapper");
        }
        path
    }

    fn base(&self, runtime: Option<&Path>) -> Command {
        let v = self.base_args(runtime);
        let mut c = Command::new(&v[0]);
        c.args(&v[1..]);
        c
    }

    /// The runtime's own --root, private to this test.
    fn runtime_root(&self, rt: &Path) -> PathBuf {
        let name = rt.file_name().map(|n| n.to_string_lossy().into_owned());
        self.dir
            .path()
            .join(format!("state-{}", name.unwrap_or_default()))
    }

    fn run(&self, runtime: Option<&Path>, args: &[&str]) -> Output {
        run_with_timeout(self.base(runtime).args(args), Duration::from_secs(120))
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = run_with_timeout(
            self.base(None).args(["rm", "-af", "-t", "0"]),
            Duration::from_secs(60),
        );
        // Whatever podman left mounted under our directory.
        umount_below(self.dir.path());
    }
}

const U: [&str; 4] = [
    "--ulimit",
    "nofile=20000:20000",
    "--ulimit",
    "nproc=32768:32768",
];

fn describe(label: &str, out: &Output) -> String {
    format!(
        "{label}: code {:?}\nstdout {:?}\nstderr {:?}",
        out.status.code(),
        stdout_str(out),
        stderr_str(out)
    )
}

/// The command line of `podman run -it --rm` of `sh -c script` with `rt`.
fn run_it_words(p: &Podman, rt: &Path, script: &str) -> Vec<String> {
    let mut words = p.base_args(Some(rt));
    words.extend(["run", "-it", "--rm", "--network=none"].map(String::from));
    words.extend(U.map(String::from));
    words.extend([IMAGE, "sh", "-c", script].map(String::from));
    words
}

/// One runtime's transcript of the cases (each removes its containers, so
/// both runtimes use the same names).
fn transcript(p: &Podman, rt: &Path) -> String {
    let mut t = Vec::new();
    let run = |args: &[&str]| p.run(Some(rt), args);

    let mut args = vec!["run", "--rm", "--network=none"];
    args.extend(U);
    args.extend([IMAGE, "sh", "-c", "echo hi; echo oops >&2; exit 3"]);
    t.push(describe("run --rm", &run(&args)));

    let mut args = vec!["run", "--rm", "--network=none"];
    args.extend(U);
    args.extend([IMAGE, "no-such-command"]);
    let out = run(&args);
    t.push(format!("run missing command: code {:?}", out.status.code()));

    let c = "rvisor-test-d".to_string();
    let mut args = vec!["run", "-d", "--name", &c, "--network=none"];
    args.extend(U);
    args.extend([
        IMAGE,
        "sh",
        "-c",
        "trap 'echo got TERM; exit 7' TERM; echo started; while :; do sleep 0.05; done",
    ]);
    let out = run(&args);
    t.push(format!("run -d: code {:?}", out.status.code()));
    // Wait until the container has printed its first line.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !stdout_str(&run(&["logs", &c])).contains("started") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    t.push(describe(
        "exec",
        &run(&["exec", &c, "sh", "-c", "echo in exec; exit 5"]),
    ));
    t.push(describe(
        "exec -e -w",
        &run(&[
            "exec",
            "-e",
            "FOO=bar",
            "-w",
            "/tmp",
            &c,
            "sh",
            "-c",
            "echo $FOO; pwd",
        ]),
    ));
    // Ctrl-C at `exec -it`'s terminal reaches the exec'd process (conmon
    // runs `exec --tty --console-socket --detach`).
    let mut words = p.base_args(Some(rt));
    words.extend(["exec", "-it", &c, "sh", "-c"].map(String::from));
    words.push("trap 'echo got INT' INT; echo ready; read x; echo done; exit 6".into());
    let mut cmd = Command::new("python3");
    cmd.arg(repo_root().join("tests/scripts/terminal_ctrl_c.py"))
        .args(&words);
    t.push(format!(
        "exec -it Ctrl-C: {}",
        stdout_str(&run_with_timeout(&mut cmd, Duration::from_secs(120))).trim()
    ));
    let ps = run(&[
        "ps",
        "-a",
        "--filter",
        &format!("name={c}"),
        "--format",
        "{{.Status}}",
    ]);
    t.push(format!(
        "ps: code {:?} up {}",
        ps.status.code(),
        stdout_str(&ps).starts_with("Up ")
    ));
    t.push(describe("stop", &run(&["stop", "-t", "10", &c])));
    t.push(describe(
        "exit code",
        &run(&["inspect", &c, "--format", "{{.State.ExitCode}}"]),
    ));
    t.push(describe("logs", &run(&["logs", &c])));
    t.push(describe("rm", &run(&["rm", &c])));

    // run -it through a pty, driven by script(1).
    let words = run_it_words(
        p,
        rt,
        "read x; echo got $x; test -t 1 && echo stdout is a tty; exit 4",
    );
    let cmdline = words
        .iter()
        .map(|w| format!("'{}'", w.replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new("script")
        .args(["-eqc", &cmdline, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script(1)");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(b"hello\n");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("script output");
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    let seen: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("got") || l.contains("tty"))
        .collect();
    t.push(format!("run -it: code {:?} {seen:?}", out.status.code()));

    // Ctrl-C at the client's terminal reaches the container's foreground
    // process (a trap in the shell).
    let script = repo_root().join("tests/scripts/terminal_ctrl_c.py");
    let words = run_it_words(
        p,
        rt,
        "trap 'echo got INT' INT; echo ready; read x; echo done; exit 6",
    );
    let mut cmd = Command::new("python3");
    cmd.arg(&script).args(&words);
    t.push(format!(
        "Ctrl-C: {}",
        stdout_str(&run_with_timeout(&mut cmd, Duration::from_secs(120))).trim()
    ));
    t.join("\n")
}

#[test]
fn podman_drives_rvisor_like_runc() {
    let (Some(p), Some(runc)) = (Podman::new(), which("runc")) else {
        eprintln!("SKIP: podman or runc is not installed (scripts/setup.sh installs them)");
        return;
    };
    let expected = transcript(&p, &runc);
    let ours = rvisor();
    let actual = transcript(&p, &ours);
    assert!(
        expected == actual,
        "podman with rvisor differs from podman with runc:\n{}",
        line_diff(&expected, &actual)
    );
    // podman's cleanup of --rm containers runs after the client returns.
    let deadline = Instant::now() + Duration::from_secs(20);
    let marker = p.dir.path().to_string_lossy().into_owned();
    loop {
        let left: Vec<_> = std::fs::read_dir(p.runtime_root(&ours))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        let procs = processes_mentioning("", &marker);
        if left.is_empty() && procs.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left behind: state {left:?}, processes {procs:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
