//! containerd's own runc v2 shim driving rvisor as its runc binary (`ctr
//! run --runc-binary`), against a private containerd from Debian: run,
//! exec, kill, rm. Each case runs with runc and with rvisor; what ctr
//! shows must be the same, and rvisor must leave no state or process.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::containerd::Containerd;
use common::*;

const IMAGE: &str = BUSYBOX_IMAGE;

fn describe(label: &str, out: &Output) -> String {
    format!(
        "{label}: code {:?} stdout {:?}",
        out.status.code(),
        stdout_str(out)
    )
}

/// A task's command that runs until SIGTERM, then exits 7.
const UNTIL_TERM: &str = "trap 'exit 7' TERM; while :; do sleep 0.05; done";

/// `ctr task exec` of a process that prints and exits 5.
fn exec_e1(c: &Containerd, task: &str) -> Output {
    c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        task,
        "sh",
        "-c",
        "echo in exec; exit 5",
    ])
}

/// The task's status as `ctr task ls` shows it ("" when not listed).
fn task_status(c: &Containerd, task: &str) -> String {
    let ls = stdout_str(&c.ctr(&["task", "ls"]));
    ls.lines()
        .find(|l| l.starts_with(&format!("{task} ")))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or("")
        .to_string()
}

/// The task's status once it is STOPPED, or after 30 s.
fn wait_stopped(c: &Containerd, task: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = task_status(c, task);
        if status == "STOPPED" || Instant::now() > deadline {
            return status;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
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
        &run(&["-d", IMAGE, "t2", "sh", "-c", UNTIL_TERM]),
    ));
    t.push(describe("exec", &exec_e1(c, "t2")));
    t.push(describe("kill", &c.ctr(&["task", "kill", "t2"])));
    t.push(format!("t2 status {}", wait_stopped(c, "t2")));
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

/// rvisor's own shim, beside the rvisor binary.
fn rvisor_shim() -> PathBuf {
    rvisor().with_file_name("containerd-shim-rvisor-v1")
}

/// What a user of `ctr` sees through one runtime type (`--runtime`): run
/// with output and exit code, run -d, exec, pause and resume, killing an
/// exec, killing a task that has exited, kill, rm.
fn shim_transcript(c: &Containerd, runtime: &str, prefix: &str) -> String {
    let id = |n: &str| format!("{prefix}-{n}");
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--runtime", runtime];
        args.extend(extra);
        c.ctr(&args)
    };
    let t1 = id("t1");
    let t2 = id("t2");
    let mut t = vec![describe(
        "run --rm",
        &run(&[
            "--rm",
            IMAGE,
            &t1,
            "sh",
            "-c",
            "echo hi; echo err >&2; exit 3",
        ]),
    )];
    let stderr_of_run = run(&["--rm", IMAGE, &id("t0"), "sh", "-c", "echo to-stderr >&2"]);
    t.push(format!(
        "stderr: {:?}",
        String::from_utf8_lossy(&stderr_of_run.stderr).trim()
    ));
    t.push(describe(
        "run -d",
        &run(&["-d", IMAGE, &t2, "sh", "-c", UNTIL_TERM]),
    ));
    t.push(describe("exec", &exec_e1(c, &t2)));
    t.push(describe("pause", &c.ctr(&["task", "pause", &t2])));
    t.push(format!("paused: {}", task_status(c, &t2)));
    t.push(describe("resume", &c.ctr(&["task", "resume", &t2])));
    t.push(format!("resumed: {}", task_status(c, &t2)));
    // An exec killed with SIGKILL ends with 137; the task lives on.
    let mut sleeper = Command::new("ctr");
    sleeper
        .arg("-a")
        .arg(c.dir.path().join("containerd.sock"))
        .args(["task", "exec", "--exec-id", "k1", &t2, "sleep", "60"]);
    let sleeper =
        std::thread::spawn(move || run_with_timeout(&mut sleeper, Duration::from_secs(60)));
    let deadline = Instant::now() + Duration::from_secs(30);
    while c
        .ctr(&["task", "kill", "-s", "KILL", "--exec-id", "k1", &t2])
        .status
        .code()
        != Some(0)
    {
        assert!(Instant::now() < deadline, "exec k1 never became killable");
        std::thread::sleep(Duration::from_millis(50));
    }
    let killed = sleeper.join().expect("exec thread");
    t.push(format!("killed exec: code {:?}", killed.status.code()));
    t.push(format!("after exec kill: {}", task_status(c, &t2)));
    t.push(describe("kill", &c.ctr(&["task", "kill", &t2])));
    t.push(format!("t2 status {}", wait_stopped(c, &t2)));
    let again = c.ctr(&["task", "kill", &t2]);
    t.push(format!(
        "kill again: code {:?} {}",
        again.status.code(),
        String::from_utf8_lossy(&again.stderr).contains("not found")
    ));
    t.push(describe("task rm", &c.ctr(&["task", "rm", &t2])));
    t.push(describe("c rm", &c.ctr(&["c", "rm", &t2])));
    t.join("\n")
}

/// A terminal through the shim (`ctr run -t`, as `script` gives ctr a pty):
/// the container's stdio are terminals, input arrives, the exit code too.
fn terminal_transcript(c: &Containerd, runtime: &str, name: &str) -> String {
    let ctr = format!(
        "ctr -a {} run -t --rm --runtime {runtime} {IMAGE} {name} sh -c \
         'test -t 0 && test -t 1 && echo terminal; read x; echo got $x; exit 4'",
        c.dir.path().join("containerd.sock").display()
    );
    let out = run_with_timeout(
        Command::new("sh").args(["-c", "echo hello | script -qec \"$0\" /dev/null", &ctr]),
        Duration::from_secs(60),
    );
    describe("run -t", &out)
}

#[test]
fn containerd_rvisor_shim_behaves_like_the_runc_shim() {
    let (Some(c), Some(_)) = (Containerd::start(), which("runc")) else {
        eprintln!(
            "SKIP: containerd, ctr or runc is not installed (scripts/setup.sh installs them)"
        );
        return;
    };
    let shim = rvisor_shim();
    assert!(
        shim.is_file(),
        "{} is missing: build the workspace (cargo build --release --workspace)",
        shim.display()
    );
    let shim_s = shim.to_string_lossy().into_owned();
    let expected = shim_transcript(&c, "io.containerd.runc.v2", "runc");
    let actual = shim_transcript(&c, &shim_s, "rvshim");
    assert!(
        expected == actual,
        "ctr through containerd-shim-rvisor-v1 differs from ctr through runc's shim:\n{}",
        line_diff(&expected, &actual)
    );
    if which("script").is_some() {
        let expected = terminal_transcript(&c, "io.containerd.runc.v2", "runc-tty");
        let actual = terminal_transcript(&c, &shim_s, "rvshim-tty");
        assert!(
            expected == actual,
            "a terminal through the rvisor shim differs from runc's:\n{}",
            line_diff(&expected, &actual)
        );
    }
    // Nothing left behind: no shim or sandbox process of ours, no rootfs
    // mount, no rvisor state.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let procs = stdout_str(&run_with_timeout(
            Command::new("ps").args(["-eo", "args"]),
            Duration::from_secs(10),
        ));
        let left: Vec<&str> = procs.lines().filter(|l| l.contains("rvshim")).collect();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "processes left behind: {left:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let left: Vec<&str> = mounts.lines().filter(|l| l.contains("/rvshim-")).collect();
    assert!(left.is_empty(), "rootfs mounts left behind: {left:?}");
    let state: Vec<_> = std::fs::read_dir("/run/containerd/rvisor/default")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("rvshim-"))
        .map(|e| e.path())
        .collect();
    assert!(state.is_empty(), "rvisor state left behind: {state:?}");
}

/// A container that outgrows its memory limit: its exit code, and whether
/// containerd saw a /tasks/oom event for it.
fn oom_transcript(c: &Containerd, runtime: &str, name: &str) -> String {
    let events_log = c.dir.path().join(format!("events-{name}.txt"));
    let mut events = Command::new("ctr")
        .arg("-a")
        .arg(c.dir.path().join("containerd.sock"))
        .arg("events")
        .stdout(std::fs::File::create(&events_log).expect("events log"))
        .stderr(Stdio::null())
        .spawn()
        .expect("ctr events");
    std::thread::sleep(Duration::from_millis(300));
    let run = c.ctr(&[
        "run",
        "--rm",
        "--runtime",
        runtime,
        "--memory-limit",
        "33554432",
        IMAGE,
        name,
        "sh",
        "-c",
        "x=0123456789abcdef; while :; do x=$x$x; done",
    ]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let saw_oom = loop {
        let log = std::fs::read_to_string(&events_log).unwrap_or_default();
        let seen = log
            .lines()
            .any(|l| l.contains("/tasks/oom") && l.contains(name));
        if seen || Instant::now() > deadline {
            break seen;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = events.kill();
    let _ = events.wait();
    format!("code {:?}, oom event {saw_oom}", run.status.code())
}

#[test]
fn containerd_sees_the_oom_kill_through_the_rvisor_shim() {
    let (Some(c), Some(_)) = (Containerd::start(), which("runc")) else {
        eprintln!(
            "SKIP: containerd, ctr or runc is not installed (scripts/setup.sh installs them)"
        );
        return;
    };
    let expected = oom_transcript(&c, "io.containerd.runc.v2", "runc-oom");
    let actual = oom_transcript(&c, &rvisor_shim().to_string_lossy(), "rvoom");
    assert_eq!(expected, actual, "runc's shim vs rvisor's shim");
}

/// The runtime config file (containerd's ConfigPath, here `ctr run
/// --runtime-config-path`) sets rvisor's flags; a broken one fails the
/// create with a message that names the problem.
#[test]
fn the_runtime_config_file_sets_rvisor_flags() {
    let Some(c) = Containerd::start() else {
        eprintln!("SKIP: containerd or ctr is not installed (scripts/setup.sh installs them)");
        return;
    };
    let shim = rvisor_shim().to_string_lossy().into_owned();
    let logs = c.dir.path().join("debug-logs");
    let config = c.dir.path().join("rvisor.toml");
    std::fs::write(
        &config,
        format!(
            "[rvisor_config]\nstrace = true\ndebug-log = \"{}/\"\n",
            logs.display()
        ),
    )
    .expect("config");
    let config_s = config.to_string_lossy().into_owned();
    let out = c.ctr(&[
        "run",
        "--rm",
        "--runtime",
        &shim,
        "--runtime-config-path",
        &config_s,
        IMAGE,
        "cfg1",
        "sh",
        "-c",
        "echo hi",
    ]);
    assert_eq!(describe("run", &out), "run: code Some(0) stdout \"hi\\n\"");
    let strace = std::fs::read_to_string(logs.join("strace.log")).unwrap_or_default();
    assert!(
        strace.contains(r#"write(1, "hi\n", 3) = 3"#),
        "--strace from the config file did not trace the container: {strace:?}"
    );

    std::fs::write(&config, "[rvisor_config]\nplatform = \"warp\"\n").expect("config");
    let out = c.ctr(&[
        "run",
        "--rm",
        "--runtime",
        &shim,
        "--runtime-config-path",
        &config_s,
        IMAGE,
        "cfg2",
        "true",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("warp"),
        "a bad platform in the config file must fail the create and say why: {err}"
    );
    c.ctr(&["c", "rm", "cfg2"]);
}

/// What `rvisor install` prints is a containerd config that containerd
/// loads, with rvisor as a CRI runtime handler and its ConfigPath option.
#[test]
fn containerd_loads_the_config_rvisor_install_prints() {
    let out = run_with_timeout(
        Command::new(rvisor()).args(["install", "--runtime-config", "/etc/rvisor/rvisor.toml"]),
        Duration::from_secs(10),
    );
    assert_success("rvisor install", &out);
    let snippet = stdout_str(&out);
    // It goes into a config that has the default runtime (containerd's own
    // default config does); ours is minimal.
    let config = format!(
        "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n  \
         runtime_type = \"io.containerd.runc.v2\"\n{snippet}"
    );
    let Some(c) = Containerd::start_with(&config) else {
        eprintln!("SKIP: containerd or ctr is not installed (scripts/setup.sh installs them)");
        return;
    };
    let log = std::fs::read_to_string(c.dir.path().join("containerd.log")).unwrap_or_default();
    let cri = log
        .lines()
        .find(|l| l.contains("Start cri plugin with config"))
        .unwrap_or_default();
    assert!(
        cri.contains("rvisor:{Type:io.containerd.rvisor.v1")
            && cri.contains("ConfigPath:/etc/rvisor/rvisor.toml"),
        "containerd's CRI plugin did not take the rvisor runtime from:\n{snippet}\nlog: {cri}"
    );
}
