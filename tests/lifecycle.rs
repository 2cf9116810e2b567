//! The OCI lifecycle (create, start, state, kill, delete, exec, hooks, bad
//! input) driven the way containerd's runc shim and conmon drive a
//! runtime, run once with runc and once with rvisor: the transcripts of
//! what a client sees (exit codes, statuses, error messages, the init's
//! exit status, the container's output) must be the same.
//!
//! The test process is a child subreaper, as conmon and the shim are, so a
//! detached container's pid (runc's init, rvisor's sentry) becomes its
//! child and its exit status can be read.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

struct Runtime {
    bin: PathBuf,
    root: TempDir,
    bundle: TempDir,
    work: TempDir,
}

impl Runtime {
    fn new(bin: PathBuf, name: &str) -> Runtime {
        Runtime {
            bin,
            root: TempDir::new(&format!("{name}-lc-root")),
            bundle: TempDir::new(&format!("{name}-lc-bundle")),
            work: TempDir::new(&format!("{name}-lc-work")),
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(self.root.path()).args(args);
        c.current_dir(self.bundle.path());
        c
    }

    /// Runs a command and describes what a client sees: "ok" or "error:
    /// <message>" (runc's logrus line and our "rvisor: " prefix stripped).
    fn run(&self, args: &[&str]) -> (String, Output) {
        let out = run_with_timeout(self.cmd(args).stdin(Stdio::null()), Duration::from_secs(60));
        (describe(&out), out)
    }

    fn step(&self, t: &mut Vec<String>, args: &[&str]) {
        let (d, _) = self.run(args);
        t.push(format!("{}: {d}", args.join(" ")));
    }

    /// `state ID`: "status=..., pid matches" or the error.
    fn state(&self, t: &mut Vec<String>, id: &str, expect_pid: Option<i32>) {
        let (d, out) = self.run(&["state", id]);
        if d != "ok" {
            t.push(format!("state {id}: {d}"));
            return;
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("state is JSON");
        let pid = v["pid"].as_i64().unwrap_or(-1) as i32;
        let pid_note = match expect_pid {
            Some(p) if p == pid => "pid from pid file".to_string(),
            Some(_) => format!("unexpected pid {pid}"),
            None => format!("pid {pid}"),
        };
        t.push(format!(
            "state {id}: status={} id={} bundle ok={} {pid_note}",
            v["status"].as_str().unwrap_or("?"),
            v["id"].as_str().unwrap_or("?"),
            v["bundle"].as_str().map(Path::new) == Some(self.bundle.path())
        ));
    }

    /// `create` with the container's stdout and stderr going to a file,
    /// as conmon gives it pipes; returns the pid from --pid-file.
    fn create(&self, t: &mut Vec<String>, id: &str) -> Option<i32> {
        // A second create of the same id must not clobber the first one's
        // files.
        let files = if self.work.path().join(format!("{id}.out")).exists() {
            format!("{id}-again")
        } else {
            id.to_string()
        };
        self.create_files(t, id, &files)
    }

    fn create_files(&self, t: &mut Vec<String>, id: &str, files: &str) -> Option<i32> {
        let pid_file = self.work.path().join(format!("{files}.pid"));
        let out_file = self.work.path().join(format!("{files}.out"));
        let err_file = self.work.path().join(format!("{files}.err"));
        let out = std::fs::File::create(&out_file).expect("output file");
        let err = std::fs::File::create(&err_file).expect("error file");
        let mut c = self.cmd(&["create", "--bundle"]);
        c.arg(self.bundle.path())
            .arg("--pid-file")
            .arg(&pid_file)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        // Not run_with_timeout: the container keeps these files as its
        // stdout and stderr and must outlive the command.
        let mut child = c.spawn().expect("spawn create");
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait for create") {
                break st;
            }
            assert!(Instant::now() < deadline, "create {id} hung");
            std::thread::sleep(Duration::from_millis(5));
        };
        // The runtime's own message is what create wrote before it exited.
        let res = Output {
            status,
            stdout: Vec::new(),
            stderr: std::fs::read(&err_file).unwrap_or_default(),
        };
        let d = describe(&res);
        t.push(format!("create {id}: {d}"));
        if d != "ok" {
            return None;
        }
        std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// What the container wrote to its stdout and stderr.
    fn output_of(&self, id: &str) -> String {
        let read = |ext: &str| {
            std::fs::read_to_string(self.work.path().join(format!("{id}.{ext}")))
                .unwrap_or_default()
        };
        format!("stdout {:?} stderr {:?}", read("out"), read("err"))
    }

    fn set_args(&self, args: &[&str]) {
        write_bundle_config(self.bundle.path(), &busybox_rootfs(), args, &[]);
    }
}

/// What a client takes from a command's result.
fn describe(out: &Output) -> String {
    if out.status.success() {
        return "ok".into();
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    // runc: time="..." level=error msg="runc create failed: ..."
    let msg = match line.find("msg=\"") {
        Some(i) => line[i + 5..]
            .trim_end_matches('"')
            .replace("\\\"", "\"")
            .to_string(),
        None => line.trim_start_matches("rvisor: ").to_string(),
    };
    let msg = [
        "runc create failed: ",
        "runc run failed: ",
        "runc exec failed: ",
    ]
    .iter()
    .fold(msg, |m, p| m.trim_start_matches(p).to_string());
    format!("error: {msg}")
}

/// Waits for our (adopted) child `pid` and gives its status as conmon and
/// containerd's shim report it: the exit code, or 128+N for signal N.
fn reap(pid: i32) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut status = 0;
        // SAFETY: waitpid on a pid we adopted as subreaper.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            };
            return format!("container exit code {code}");
        }
        if r < 0 {
            return format!("waitpid: {}", std::io::Error::last_os_error());
        }
        if Instant::now() > deadline {
            return "container did not exit".into();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `run` with runc (the reference) and with rvisor, as a subreaper;
/// the transcripts must be equal. Skips when runc is missing.
fn same_as_runc(what: &str, run: impl Fn(PathBuf, &str) -> String) {
    let Some(runc) = which("runc") else {
        eprintln!("SKIP: runc is not installed (scripts/setup.sh installs it)");
        return;
    };
    become_subreaper();
    let expected = run(runc, "runc");
    let actual = run(rvisor(), "rvisor");
    assert!(
        expected == actual,
        "{what} differs from runc's:\n{}\n--- rvisor ---\n{actual}",
        line_diff(&expected, &actual)
    );
}

fn become_subreaper() {
    // SAFETY: a prctl flag on our own process.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
}

/// The whole client's-eye transcript for one runtime.
fn transcript(rt: &Runtime) -> Vec<String> {
    let mut t = Vec::new();

    // Bad input first: nothing may be left behind.
    rt.set_args(&["true"]);
    rt.step(&mut t, &["create", "a/b"]);
    rt.step(&mut t, &["state", "nope"]);
    rt.step(&mut t, &["kill", "nope", "KILL"]);
    rt.step(&mut t, &["delete", "nope"]);
    rt.step(&mut t, &["start", "nope"]);
    rt.set_args(&["no-such-command"]);
    rt.create(&mut t, "c0");
    rt.set_args(&["/no/such/path"]);
    rt.create(&mut t, "c0");
    rt.set_args(&["/etc/passwd"]);
    rt.create(&mut t, "c0");
    rt.step(&mut t, &["list", "-q"]);

    // The main life: created -> running -> stopped -> deleted.
    rt.set_args(&[
        "sh",
        "-c",
        "trap 'echo got USR1; exit 9' USR1; echo started; while :; do sleep 0.05; done",
    ]);
    let pid = rt.create(&mut t, "c1");
    rt.state(&mut t, "c1", pid);
    rt.create(&mut t, "c1");
    rt.step(&mut t, &["start", "c1"]);
    rt.step(&mut t, &["start", "c1"]);
    rt.state(&mut t, "c1", pid);
    rt.step(&mut t, &["delete", "c1"]);
    // The init handles no SIGTERM: pid 1 of a namespace ignores it.
    rt.step(&mut t, &["kill", "c1"]);
    std::thread::sleep(Duration::from_millis(200));
    rt.state(&mut t, "c1", pid);
    rt.step(&mut t, &["kill", "c1", "SIGUSR1"]);
    if let Some(pid) = pid {
        t.push(reap(pid));
    }
    rt.state(&mut t, "c1", None);
    rt.step(&mut t, &["kill", "c1", "KILL"]);
    rt.step(&mut t, &["start", "c1"]);
    rt.step(&mut t, &["delete", "c1"]);
    rt.step(&mut t, &["state", "c1"]);
    rt.step(&mut t, &["delete", "c1"]);
    t.push(format!("c1 output: {:?}", rt.output_of("c1")));

    // Killed before it ever ran.
    let pid = rt.create(&mut t, "c2");
    rt.step(&mut t, &["kill", "c2", "KILL"]);
    if let Some(pid) = pid {
        t.push(reap(pid));
    }
    rt.state(&mut t, "c2", None);
    rt.step(&mut t, &["delete", "c2"]);
    t.push(format!("c2 output: {:?}", rt.output_of("c2")));

    // A created container can be deleted; a running one with --force.
    let pid = rt.create(&mut t, "c3");
    rt.step(&mut t, &["delete", "c3"]);
    if let Some(pid) = pid {
        t.push(reap(pid));
    }
    let pid = rt.create(&mut t, "c4");
    rt.step(&mut t, &["start", "c4"]);
    rt.step(&mut t, &["delete", "--force", "c4"]);
    if let Some(pid) = pid {
        t.push(reap(pid));
    }
    rt.step(&mut t, &["delete", "--force", "c4"]);

    // exec into a running container.
    rt.set_args(&["sh", "-c", "while :; do sleep 0.05; done"]);
    let pid = rt.create(&mut t, "c5");
    rt.step(&mut t, &["start", "c5"]);
    let (d, out) = rt.run(&["exec", "c5", "sh", "-c", "echo in exec $FOO; exit 4"]);
    t.push(format!(
        "exec: {d} code {:?} {:?}",
        out.status.code(),
        stdout_str(&out)
    ));
    let (d, out) = rt.run(&[
        "exec",
        "--env",
        "FOO=bar",
        "--cwd",
        "/tmp",
        "c5",
        "sh",
        "-c",
        "echo $FOO; pwd",
    ]);
    t.push(format!("exec env cwd: {d} {:?}", stdout_str(&out)));
    let (d, _) = rt.run(&["exec", "c5", "no-such-command"]);
    t.push(format!("exec missing: {d}"));
    rt.step(&mut t, &["kill", "c5", "KILL"]);
    if let Some(pid) = pid {
        t.push(reap(pid));
    }
    rt.step(&mut t, &["exec", "c5", "true"]);
    rt.step(&mut t, &["delete", "c5"]);

    rt.step(&mut t, &["list", "-q"]);
    t
}

#[test]
fn lifecycle_matches_runc() {
    let Some(runc) = which("runc") else {
        eprintln!("SKIP: runc is not installed (scripts/setup.sh installs it)");
        return;
    };
    become_subreaper();
    let reference = Runtime::new(runc, "runc");
    let ours = Runtime::new(rvisor(), "rvisor");
    let expected = transcript(&reference);
    let actual = transcript(&ours);
    let (e, a) = (expected.join("\n"), actual.join("\n"));
    assert!(
        e == a,
        "the lifecycle differs from runc's:\n{}\n--- rvisor's transcript ---\n{a}",
        line_diff(&e, &a)
    );
    // Nothing is left in the state root.
    let left: Vec<_> = std::fs::read_dir(ours.root.path())
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "state left behind: {left:?}");
}

/// Hooks run at the runtime spec's points, with the state on stdin.
#[test]
fn hooks_see_the_state_at_each_point() {
    let run = |bin: PathBuf, name: &str| -> String {
        let rt = Runtime::new(bin, name);
        rt.set_args(&["sh", "-c", "echo ran"]);
        let log = rt.work.path().join("hooks.log");
        let hook = |label: &str| {
            serde_json::json!({
                "path": "/bin/sh",
                "args": ["sh", "-c", format!(
                    "printf '{label} ' >> {0}; \
                     python3 -c 'import json,sys; s=json.load(sys.stdin); print(s[\"status\"], s[\"id\"], s.get(\"pid\", 0) > 0)' >> {0}",
                    log.display())],
                "timeout": 10
            })
        };
        edit_bundle_config(rt.bundle.path(), |cfg| {
            cfg["hooks"] = serde_json::json!({
                "prestart": [hook("prestart")],
                "createRuntime": [hook("createRuntime")],
                "poststart": [hook("poststart")],
                "poststop": [hook("poststop")],
            });
        });
        let mut t = Vec::new();
        let pid = rt.create(&mut t, "h1");
        rt.step(&mut t, &["start", "h1"]);
        if let Some(pid) = pid {
            t.push(reap(pid));
        }
        rt.step(&mut t, &["delete", "h1"]);
        // runc 1.1 hands poststart hooks the state from before start
        // ("created"); the runtime spec's state after start is "running",
        // which rvisor gives. That one difference is expected.
        t.push(
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .replace("poststart created", "poststart running"),
        );
        t.push(rt.output_of("h1"));
        t.join("\n")
    };
    same_as_runc("hooks", run);
}

/// Bad input: one clear line on stderr, the same message as JSON in
/// `--log`, a non-zero exit, and nothing left under --root.
#[test]
fn bad_input_fails_cleanly() {
    let rt = Runtime::new(rvisor(), "rvisor-bad");
    let log = rt.work.path().join("log.json");
    let cfg = rt.bundle.path().join("config.json");
    let base = || {
        rt.set_args(&["true"]);
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&cfg).unwrap()).unwrap()
    };
    let write = |v: &serde_json::Value| std::fs::write(&cfg, v.to_string()).unwrap();
    type Case<'a> = (&'a str, Box<dyn Fn() + 'a>, Vec<&'a str>);
    let mut cases: Vec<Case> = Vec::new();
    cases.push((
        "malformed config.json",
        Box::new(|| std::fs::write(&cfg, "{bad").unwrap()),
        vec!["create", "x"],
    ));
    cases.push((
        "missing config.json",
        Box::new(|| {
            let _ = std::fs::remove_file(&cfg);
        }),
        vec!["create", "x"],
    ));
    cases.push((
        "unsupported ociVersion",
        Box::new(|| {
            let mut v = base();
            v["ociVersion"] = "2.0.0".into();
            write(&v);
        }),
        vec!["create", "x"],
    ));
    cases.push((
        "nonexistent rootfs",
        Box::new(|| {
            let mut v = base();
            v["root"]["path"] = "/nonexistent-rootfs".into();
            write(&v);
        }),
        vec!["create", "x"],
    ));
    cases.push((
        "empty args",
        Box::new(|| {
            let mut v = base();
            v["process"]["args"] = serde_json::json!([]);
            write(&v);
        }),
        vec!["create", "x"],
    ));
    cases.push(("bad signal", Box::new(|| {}), vec!["kill", "x", "SIGBOGUS"]));
    cases.push(("unknown container", Box::new(|| {}), vec!["start", "nope"]));
    cases.push(("bad id", Box::new(|| {}), vec!["create", "../x"]));
    cases.push((
        "unknown flag",
        Box::new(|| {}),
        vec!["--no-such-flag", "list"],
    ));
    cases.push(("missing id", Box::new(|| {}), vec!["delete"]));
    for (name, prepare, args) in &cases {
        prepare();
        let _ = std::fs::remove_file(&log);
        let mut full = vec!["--log", log.to_str().unwrap(), "--log-format", "json"];
        full.extend(args);
        let (_, out) = rt.run(&full);
        assert!(!out.status.success(), "{name}: succeeded");
        let err = stderr_str(&out);
        let lines: Vec<_> = err.lines().collect();
        assert!(
            lines.len() == 1 && lines[0].starts_with("rvisor: "),
            "{name}: stderr is not one clear line: {err:?}"
        );
        let logged = std::fs::read_to_string(&log).unwrap_or_default();
        let entry: serde_json::Value = serde_json::from_str(logged.trim())
            .unwrap_or_else(|e| panic!("{name}: --log is not one JSON line ({e}): {logged:?}"));
        assert_eq!(entry["level"], "error", "{name}");
        assert_eq!(
            entry["msg"].as_str().map(|m| format!("rvisor: {m}")),
            Some(lines[0].to_string()),
            "{name}"
        );
        let left: Vec<_> = std::fs::read_dir(rt.root.path())
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{name}: state left behind: {left:?}");
    }
}

/// cgroups: the spec's limits land in cgroupfs as runc puts them, every
/// sandbox process is inside, pause/resume freeze and thaw it, update
/// changes limits, a container over its memory limit is OOM-killed (exit
/// 137, as runc's), and delete removes the cgroup.
#[test]
fn cgroups_limit_freeze_and_oom_like_runc() {
    if !Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists()
        && !Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
    {
        eprintln!("SKIP: no cgroupfs");
        return;
    }
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let run = |bin: PathBuf, name: &str| -> String {
        let rt = Runtime::new(bin, name);
        let cg_rel = format!("rvisor-test-{name}-{}", std::process::id());
        let mut t = Vec::new();
        let configure = |args: &[&str], mem: i64| {
            rt.set_args(args);
            edit_bundle_config(rt.bundle.path(), |cfg| {
                cfg["linux"]["cgroupsPath"] = format!("/{cg_rel}/c").into();
                cfg["linux"]["resources"] = serde_json::json!({
                    "memory": { "limit": mem },
                    "pids": { "limit": 300 },
                    "cpu": { "shares": 512, "quota": 50000, "period": 100000 },
                });
            });
        };
        let file = |ctrl: &str, f: &str| {
            let p = if v2 {
                format!("/sys/fs/cgroup/{cg_rel}/c/{f}")
            } else {
                format!("/sys/fs/cgroup/{ctrl}/{cg_rel}/c/{f}")
            };
            std::fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|e| format!("({e})"))
        };
        configure(
            &["sh", "-c", "while :; do echo tick; sleep 0.05; done"],
            64 << 20,
        );
        let pid = rt.create(&mut t, "g1");
        for (ctrl, f) in [
            (
                "memory",
                if v2 {
                    "memory.max"
                } else {
                    "memory.limit_in_bytes"
                },
            ),
            ("pids", "pids.max"),
            ("cpu", if v2 { "cpu.max" } else { "cpu.cfs_quota_us" }),
            ("cpu", if v2 { "cpu.weight" } else { "cpu.shares" }),
        ] {
            t.push(format!("{f} = {}", file(ctrl, f)));
        }
        if let Some(pid) = pid {
            let procs = file("memory", "cgroup.procs");
            t.push(format!(
                "container pid in cgroup: {}",
                procs.lines().any(|l| l == pid.to_string())
            ));
        }
        rt.step(&mut t, &["start", "g1"]);
        rt.step(&mut t, &["pause", "g1"]);
        rt.state(&mut t, "g1", pid);
        let before = rt.output_of("g1").len();
        std::thread::sleep(Duration::from_millis(300));
        t.push(format!(
            "output while paused grew: {}",
            rt.output_of("g1").len() != before
        ));
        rt.step(&mut t, &["pause", "g1"]);
        rt.step(&mut t, &["resume", "g1"]);
        rt.state(&mut t, "g1", pid);
        rt.step(&mut t, &["resume", "g1"]);
        rt.step(
            &mut t,
            &[
                "update",
                "--memory",
                "100663296",
                "--pids-limit",
                "200",
                "g1",
            ],
        );
        t.push(format!(
            "after update: {} {}",
            file(
                "memory",
                if v2 {
                    "memory.max"
                } else {
                    "memory.limit_in_bytes"
                }
            ),
            file("pids", "pids.max")
        ));
        let (d, out) = rt.run(&["events", "--stats", "g1"]);
        let ev: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        t.push(format!(
            "events --stats: {d} type={} memory usage > 0: {} pids > 0: {}",
            ev["type"],
            ev["data"]["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0,
            ev["data"]["pids"]["current"].as_u64().unwrap_or(0) > 0
        ));
        rt.step(&mut t, &["delete", "--force", "g1"]);
        if let Some(pid) = pid {
            t.push(reap(pid));
        }
        t.push(format!(
            "cgroup after delete: {}",
            file("memory", "cgroup.procs")
        ));

        // Over its memory limit: the OOM killer ends the container.
        configure(
            &[
                "sh",
                "-c",
                "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived",
            ],
            32 << 20,
        );
        let pid = rt.create(&mut t, "g2");
        rt.step(&mut t, &["start", "g2"]);
        if let Some(pid) = pid {
            t.push(reap(pid));
        }
        rt.step(&mut t, &["delete", "g2"]);
        t.push(format!(
            "g2 printed survived: {}",
            rt.output_of("g2").contains("survived")
        ));
        for ctrl in ["memory", "pids", "cpu", "cpuset", "freezer"] {
            let base = if v2 {
                format!("/sys/fs/cgroup/{cg_rel}")
            } else {
                format!("/sys/fs/cgroup/{ctrl}/{cg_rel}")
            };
            let _ = std::fs::remove_dir(format!("{base}/c"));
            let _ = std::fs::remove_dir(base);
        }
        t.join("\n")
    };
    same_as_runc("cgroups", run);
}

/// The spec's seccomp profile is enforced on the application: errno
/// rules, argument conditions and a kill, compared with runc (which has
/// the host kernel enforce it).
#[test]
fn seccomp_profile_matches_runc() {
    let run = |bin: PathBuf, name: &str| -> String {
        let rt = Runtime::new(bin, name);
        rt.set_args(&[
            "sh",
            "-c",
            "mkdir /tmp/d; echo mkdir=$?; set -C; echo x > /tmp/excl 2>&1; echo excl=$?; \
             set +C; sync; echo sync=$?; \
             rmdir /tmp/nonexistent 2>&1; echo rmdir=$?; echo done",
        ]);
        edit_bundle_config(rt.bundle.path(), |cfg| {
            cfg["linux"]["seccomp"] = serde_json::json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [
                    { "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13 },
                    // EINTR from the profile is the call's result (the
                    // call is not restarted): an O_EXCL create (set -C).
                    { "names": ["openat", "open"], "action": "SCMP_ACT_ERRNO", "errnoRet": 4,
                      "args": [ { "index": 2, "value": 193, "op": "SCMP_CMP_EQ" } ] },
                    { "names": ["sync"], "action": "SCMP_ACT_KILL_PROCESS" },
                    { "names": ["rmdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 30,
                      "args": [ { "index": 1, "value": 0, "op": "SCMP_CMP_EQ" } ] }
                ]
            });
        });
        let (_, out) = rt.run(&["run", "s1"]);
        // runc run exits 128+N for a signalled init; rvisor run dies of N.
        let code = out
            .status
            .code()
            .or(std::os::unix::process::ExitStatusExt::signal(&out.status).map(|n| 128 + n));
        format!("code {code:?}\n{}", stdout_str(&out))
    };
    same_as_runc("seccomp", run);
}

/// The spec's capability sets and noNewPrivileges, as /proc/self/status
/// shows them, are runc's.
#[test]
fn capabilities_and_no_new_privs_match_runc() {
    let run = |bin: PathBuf, name: &str| -> String {
        let rt = Runtime::new(bin, name);
        rt.set_args(&["sh", "-c", "grep -E '^(Cap|NoNewPrivs)' /proc/self/status"]);
        let (d, out) = rt.run(&["run", "caps"]);
        format!("{d}\n{}", stdout_str(&out))
    };
    same_as_runc("capabilities", run);
}

/// Root's privileges are its capabilities: with a spec that drops them,
/// uid 0 is refused chown, DAC overrides, mknod, sethostname and chroot
/// exactly as under runc (where the host kernel decides). Three sets: the
/// tests' minimal one, Docker's default, and read-search alone.
#[test]
fn root_privileges_follow_capabilities_like_runc() {
    const SCRIPT: &str = "cd /tmp; echo secret > locked; chmod 000 locked; \
        cat locked >/dev/null 2>&1; echo read=$?; \
        echo x 2>/dev/null >> locked; echo write=$?; \
        chown 1:1 locked 2>/dev/null; echo chown=$?; \
        chmod 644 locked 2>/dev/null; echo chmod-other=$?; \
        touch -d 2001-01-01 locked 2>/dev/null; echo utimes-other=$?; \
        mkdir d; touch d/f; chmod 000 d; ls d >/dev/null 2>&1; echo listdir=$?; \
        cat d/f 2>/dev/null; echo search=$?; touch d/g 2>/dev/null; echo create-in=$?; \
        printf '#!/bin/sh\\necho ran\\n' > s; chmod 644 s; ./s 2>/dev/null; echo exec-no-x=$?; \
        mkdir -m 1777 sticky; touch sticky/f; chown 5 sticky/f 2>/dev/null; \
        mknod nod c 1 3 2>/dev/null; echo mknod=$?; \
        hostname other 2>/dev/null; echo hostname=$?; \
        chroot / true 2>/dev/null; echo chroot=$?";
    let sets: [&[&str]; 3] = [
        &["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        &[
            "CAP_CHOWN",
            "CAP_DAC_OVERRIDE",
            "CAP_FSETID",
            "CAP_FOWNER",
            "CAP_MKNOD",
            "CAP_NET_RAW",
            "CAP_SETGID",
            "CAP_SETUID",
            "CAP_SETFCAP",
            "CAP_SETPCAP",
            "CAP_NET_BIND_SERVICE",
            "CAP_SYS_CHROOT",
            "CAP_KILL",
            "CAP_AUDIT_WRITE",
        ],
        &["CAP_DAC_READ_SEARCH"],
    ];
    let run = |bin: PathBuf, name: &str| -> String {
        let mut text = String::new();
        for (i, caps) in sets.iter().enumerate() {
            let rt = Runtime::new(bin.clone(), &format!("{name}-caps{i}"));
            rt.set_args(&["sh", "-c", SCRIPT]);
            edit_bundle_config(rt.bundle.path(), |cfg| {
                let caps = serde_json::json!(caps);
                for set in ["bounding", "effective", "permitted"] {
                    cfg["process"]["capabilities"][set] = caps.clone();
                }
                cfg["process"]["capabilities"]["ambient"] = serde_json::json!([]);
                // A private /tmp: runc would write into the shared fixture.
                cfg["mounts"]
                    .as_array_mut()
                    .unwrap()
                    .push(serde_json::json!({
                        "destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                        "options": ["mode=1777"]
                    }));
            });
            let (d, out) = rt.run(&["run", &format!("privs{i}")]);
            text.push_str(&format!("set {i}: {d}\n{}", stdout_str(&out)));
        }
        text
    };
    same_as_runc("root's privileges", run);
}

/// `wait` exits with the init's exit code (128+N for a signal), the same
/// code a subreaper reads from the sandbox's pid.
#[test]
fn wait_exits_like_the_container() {
    become_subreaper();
    let rt = Runtime::new(rvisor(), "rvisor-wait");
    let mut t = Vec::new();
    rt.set_args(&["sh", "-c", "sleep 0.2; exit 6"]);
    let pid = rt.create(&mut t, "w1").expect("create");
    rt.step(&mut t, &["start", "w1"]);
    let (_, out) = rt.run(&["wait", "w1"]);
    assert_eq!(reap(pid), "container exit code 6");
    assert_eq!(out.status.code(), Some(6), "{t:?}");
    rt.step(&mut t, &["delete", "w1"]);
    let pid = rt.create(&mut t, "w2").expect("create");
    rt.step(&mut t, &["kill", "w2", "KILL"]);
    let (_, out) = rt.run(&["wait", "w2"]);
    assert_eq!(reap(pid), "container exit code 137");
    assert_eq!(out.status.code(), Some(137));
    rt.step(&mut t, &["delete", "w2"]);
    assert!(t.iter().all(|l| l.ends_with(": ok")), "{t:?}");
}

/// `--preserve-fds`: the client's fds 3 and 4 become the init's 3 and 4.
#[test]
fn preserve_fds_like_runc() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let run = |bin: PathBuf, name: &str| -> String {
        let rt = Runtime::new(bin, name);
        rt.set_args(&["sh", "-c", "echo written-to-3 >&3; cat <&4; exit 2"]);
        let out_path = rt.work.path().join("fd3");
        let in_path = rt.work.path().join("fd4");
        std::fs::write(&in_path, "read-from-4\n").unwrap();
        let out = std::fs::File::create(&out_path).unwrap();
        let inp = std::fs::File::open(&in_path).unwrap();
        let (o, i) = (out.as_raw_fd(), inp.as_raw_fd());
        let pid_file = rt.work.path().join("pid");
        let mut c = rt.cmd(&["create", "--preserve-fds", "2", "--pid-file"]);
        c.arg(&pid_file)
            .arg("p1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(rt.work.path().join("err")).unwrap());
        // SAFETY: dup2 between fork and exec, on fds we own.
        unsafe {
            c.pre_exec(move || {
                // Out of the way first: either may already be 3 or 4.
                let (o, i) = (
                    libc::fcntl(o, libc::F_DUPFD, 100),
                    libc::fcntl(i, libc::F_DUPFD, 100),
                );
                if o < 0 || i < 0 || libc::dup2(o, 3) < 0 || libc::dup2(i, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let st = c.status().expect("create");
        let mut t = vec![format!("create: {st}")];
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        rt.step(&mut t, &["start", "p1"]);
        t.push(reap(pid));
        rt.step(&mut t, &["delete", "p1"]);
        t.push(std::fs::read_to_string(&out_path).unwrap_or_default());
        t.push(std::fs::read_to_string(rt.work.path().join("err")).unwrap_or_default());
        t.join("\n")
    };
    same_as_runc("--preserve-fds", run);
}

/// startContainer hooks run inside the container, before its init, with
/// the state on stdin; a failing one fails `start` and ends the container.
/// (Not compared with runc: its hook would write into the shared fixture.)
#[test]
fn start_container_hooks_run_inside_before_the_init() {
    become_subreaper();
    let rt = Runtime::new(rvisor(), "rvisor-sc");
    let configure = |hook_script: &str| {
        rt.set_args(&["sh", "-c", "cat /tmp/hook-state; echo; echo init ran"]);
        edit_bundle_config(rt.bundle.path(), |cfg| {
            cfg["hooks"] = serde_json::json!({
                "startContainer": [{ "path": "/bin/sh", "args": ["sh", "-c", hook_script], "timeout": 10 }]
            });
        });
    };
    let mut t = Vec::new();
    configure("cat > /tmp/hook-state");
    let pid = rt.create(&mut t, "s1").expect("create");
    rt.step(&mut t, &["start", "s1"]);
    assert_eq!(reap(pid), "container exit code 0");
    rt.step(&mut t, &["delete", "s1"]);
    let out = rt.output_of("s1");
    assert!(
        out.contains("\\\"id\\\":\\\"s1\\\"") && out.contains("init ran"),
        "the hook's state did not reach the init: {out}"
    );
    configure("exit 3");
    let pid = rt.create(&mut t, "s2").expect("create");
    let (d, _) = rt.run(&["start", "s2"]);
    assert!(
        d.contains("startContainer hook #0: exit status 3"),
        "start with a failing hook: {d}"
    );
    assert_eq!(reap(pid), "container exit code 137");
    rt.step(&mut t, &["delete", "s2"]);
    assert!(!rt.output_of("s2").contains("init ran"));
    assert!(t.iter().all(|l| l.ends_with(": ok")), "{t:?}");
}
