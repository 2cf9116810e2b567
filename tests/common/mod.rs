//! Shared helpers for rvisor's integration tests.
//!
//! * where things are: the `rvisor` binary, the fixtures built by
//!   `scripts/setup.sh`, the C test programs under `tests/programs/`;
//! * compiling those C programs (once per test binary, cached by content);
//! * running commands natively, under `rvisor do`, as an OCI bundle under
//!   `rvisor run` or `runc run` — always with a timeout, so that a hang kills
//!   the command and fails the test instead of stalling CI;
//! * comparing a native and a sandboxed run with a readable diff.
//!
//! Only std and the root package's own dependencies (libc, serde_json) are
//! used.
#![allow(dead_code)]

pub mod containerd;

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------
// Locations
// ---------------------------------------------------------------------------

/// The `rvisor` binary built by cargo for this test run (`$RVISOR_BIN`
/// overrides it, e.g. to try the suite against another build).
pub fn rvisor() -> PathBuf {
    match std::env::var_os("RVISOR_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_rvisor")),
    }
}

/// The repository (root package) directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/programs/`, where the C test programs live.
pub fn programs_dir() -> PathBuf {
    repo_root().join("tests").join("programs")
}

/// The fixtures directory built by `scripts/setup.sh`
/// (`$RVISOR_FIXTURES`, default `/var/cache/rvisor/fixtures`).
pub fn fixtures_dir() -> PathBuf {
    let dir = std::env::var_os("RVISOR_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/rvisor/fixtures"));
    if !dir.is_dir() {
        panic!(
            "test fixtures directory {} is missing: run scripts/setup.sh first \
             (or set RVISOR_FIXTURES)",
            dir.display()
        );
    }
    dir
}

/// Root filesystem with a static busybox and one symlink per applet.
pub fn busybox_rootfs() -> PathBuf {
    let root = fixtures_dir().join("busybox").join("rootfs");
    if !root.join("bin").join("busybox").is_file() {
        panic!(
            "busybox fixture {} is missing or incomplete: run scripts/setup.sh",
            root.display()
        );
    }
    root
}

/// Debian bookworm minbase root filesystem (with python3) from debootstrap.
pub fn debian_rootfs() -> PathBuf {
    let root = fixtures_dir().join("debian").join("rootfs");
    if !root.join("usr").join("bin").join("python3").exists() {
        panic!(
            "debian fixture {} is missing or incomplete: run scripts/setup.sh",
            root.display()
        );
    }
    root
}

/// Path of a host binary, or None if it is not installed.
pub fn which(name: &str) -> Option<PathBuf> {
    let path =
        std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/sbin:/usr/bin:/sbin:/bin"));
    for dir in std::env::split_paths(&path).chain(
        [
            "/usr/local/sbin",
            "/usr/local/bin",
            "/usr/sbin",
            "/usr/bin",
            "/sbin",
            "/bin",
        ]
        .iter()
        .map(PathBuf::from),
    ) {
        let p = dir.join(name);
        if let Ok(md) = fs::metadata(&p) {
            if md.is_file() && md.permissions().mode() & 0o111 != 0 {
                return Some(p);
            }
        }
    }
    None
}

// ---------------------------------------------------------------------------
// Temporary directories
// ---------------------------------------------------------------------------

static UNIQUE: AtomicUsize = AtomicUsize::new(0);

/// A name unique to this process and call, usable as a container id.
pub fn unique_name(prefix: &str) -> String {
    let n = UNIQUE.fetch_add(1, Ordering::SeqCst);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
}

/// A directory under /tmp removed (recursively) when dropped.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let path = std::env::temp_dir().join(unique_name(prefix));
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------
// Compiling the C test programs
// ---------------------------------------------------------------------------

fn build_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join("rvisor-test-programs");
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        // Readable (and traversable) by everyone: the sandbox may run the
        // binaries as another user.
        let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o755));
        dir
    })
}

fn compile_cache() -> &'static Mutex<HashMap<(String, bool), PathBuf>> {
    static CACHE: OnceLock<Mutex<HashMap<(String, bool), PathBuf>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Compile `tests/programs/<rel>` (e.g. `"file/io.c"`) with `gcc -O1 -Wall`
/// into a readable directory under /tmp and return the binary's path.
/// Compiled once per test binary (and cached across runs by content hash).
pub fn compile_c(rel: &str) -> PathBuf {
    compile(rel, false)
}

/// Like [`compile_c`], linked with `-static` (no dynamic loader involved).
pub fn compile_c_static(rel: &str) -> PathBuf {
    compile(rel, true)
}

fn compile(rel: &str, static_link: bool) -> PathBuf {
    let rel = rel.trim_start_matches("tests/programs/").to_string();
    let key = (rel.clone(), static_link);
    if let Some(p) = compile_cache().lock().unwrap().get(&key) {
        return p.clone();
    }

    let src = programs_dir().join(&rel);
    let source = fs::read(&src).unwrap_or_else(|e| panic!("read {}: {e}", src.display()));
    let header = fs::read(programs_dir().join("common.h")).unwrap_or_default();
    let mut flags: Vec<&str> = vec!["-O1", "-Wall", "-std=gnu11"];
    if static_link {
        flags.push("-static");
    }
    let mut h = DefaultHasher::new();
    source.hash(&mut h);
    header.hash(&mut h);
    flags.hash(&mut h);
    let stem = rel.trim_end_matches(".c").replace('/', "-");
    let name = format!(
        "{stem}-{:016x}{}",
        h.finish(),
        if static_link { "-static" } else { "" }
    );
    let out = build_dir().join(&name);

    if !out.is_file() {
        let tmp = build_dir().join(format!("{name}.tmp-{}", unique_name("cc")));
        let output = run_with_timeout(
            Command::new("gcc")
                .args(&flags)
                .arg("-o")
                .arg(&tmp)
                .arg(&src),
            Duration::from_secs(120),
        );
        if !output.status.success() {
            let _ = fs::remove_file(&tmp);
            panic!(
                "gcc failed for {} ({}):\n{}",
                src.display(),
                if static_link { "static" } else { "dynamic" },
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let warnings = String::from_utf8_lossy(&output.stderr);
        if !warnings.trim().is_empty() {
            eprintln!("gcc warnings for {}:\n{warnings}", src.display());
        }
        let _ = fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755));
        fs::rename(&tmp, &out).unwrap_or_else(|e| panic!("rename to {}: {e}", out.display()));
    }
    compile_cache().lock().unwrap().insert(key, out.clone());
    out
}

// ---------------------------------------------------------------------------
// Running commands with a timeout
// ---------------------------------------------------------------------------

/// Default per-command timeout; `RVISOR_TEST_TIMEOUT` (seconds) overrides it.
pub fn default_timeout() -> Duration {
    std::env::var("RVISOR_TEST_TIMEOUT")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(60))
}

/// A longer timeout for heavy workloads (Debian userland, python3): twice the
/// default.
pub fn long_timeout() -> Duration {
    default_timeout() * 2
}

fn reader<R: Read + Send + 'static>(mut r: R) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

fn kill_group(pgid: i32) {
    if pgid > 1 {
        // SAFETY: plain syscall; a stale group just yields ESRCH.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// Run `cmd` with stdin from /dev/null, stdout/stderr captured, in its own
/// process group and with every inherited descriptor above 2 closed.  If it
/// has not exited after `timeout`, its whole process group is killed and the
/// test panics (showing what it printed so far).
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    let desc = format!("{cmd:?}");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: close_range is async-signal-safe; failure (old kernel) is ignored.
    unsafe {
        cmd.pre_exec(|| {
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            Ok(())
        });
    }
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("failed to spawn {desc}: {e}"));
    let pgid = child.id() as i32;
    let out_rx = reader(child.stdout.take().unwrap());
    let err_rx = reader(child.stderr.take().unwrap());

    let mut nap = Duration::from_millis(1);
    let status: Option<ExitStatus> = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) => {}
            Err(e) => panic!("waiting for {desc}: {e}"),
        }
        if start.elapsed() >= timeout {
            break None;
        }
        thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(20));
    };

    let status = match status {
        Some(st) => st,
        None => {
            // The leader is still alive (or a zombie), so the group id is ours.
            kill_group(pgid);
            let _ = child.kill();
            let _ = child.wait();
            let out = out_rx
                .recv_timeout(Duration::from_secs(5))
                .unwrap_or_default();
            let err = err_rx
                .recv_timeout(Duration::from_secs(5))
                .unwrap_or_default();
            panic!(
                "TIMEOUT: killed after {:?}: {desc}\n--- stdout so far ---\n{}\n--- stderr so far ---\n{}",
                timeout,
                tail(&out, 8000),
                tail(&err, 8000)
            );
        }
    };

    // The command exited; its pipes close once every process holding them is
    // gone.  Processes it left behind that keep them open get killed.
    let grace = Duration::from_secs(10);
    let mut killed_strays = false;
    let stdout = match out_rx.recv_timeout(grace) {
        Ok(v) => v,
        Err(_) => {
            kill_group(pgid);
            killed_strays = true;
            out_rx
                .recv_timeout(Duration::from_secs(5))
                .unwrap_or_default()
        }
    };
    let stderr = match err_rx.recv_timeout(if killed_strays {
        Duration::from_secs(5)
    } else {
        grace
    }) {
        Ok(v) => v,
        Err(_) => {
            kill_group(pgid);
            killed_strays = true;
            err_rx
                .recv_timeout(Duration::from_secs(5))
                .unwrap_or_default()
        }
    };
    if killed_strays {
        eprintln!(
            "warning: {desc} exited but left processes holding its stdout/stderr open; killed them"
        );
    }
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Run a host command natively (same helper semantics as the sandboxed runs).
pub fn run_native<S: AsRef<OsStr>>(cmd: impl AsRef<OsStr>, args: &[S]) -> Output {
    run_with_timeout(Command::new(cmd).args(args), default_timeout())
}

/// `rvisor <args...>` (global flags, subcommand and its arguments).
pub fn run_rvisor<S: AsRef<OsStr>>(args: &[S]) -> Output {
    run_rvisor_timeout(args, default_timeout())
}

pub fn run_rvisor_timeout<S: AsRef<OsStr>>(args: &[S], timeout: Duration) -> Output {
    run_with_timeout(Command::new(rvisor()).args(args), timeout)
}

/// `rvisor do <args...>`: run a command in a sandbox over the host's root.
pub fn run_do<S: AsRef<OsStr>>(args: &[S]) -> Output {
    run_do_timeout(args, default_timeout())
}

pub fn run_do_timeout<S: AsRef<OsStr>>(args: &[S], timeout: Duration) -> Output {
    run_with_timeout(Command::new(rvisor()).arg("do").args(args), timeout)
}

// ---------------------------------------------------------------------------
// OCI bundles
// ---------------------------------------------------------------------------

pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Write `<dir>/config.json`: a complete runtime spec (the shape `runc spec`
/// produces, non-terminal) running `args` with `env` in `/`, over `rootfs`
/// (absolute path, not read-only).  A PATH is added if `env` has none.
pub fn write_bundle_config(dir: &Path, rootfs: &Path, args: &[&str], env: &[&str]) {
    write_bundle_config_with_mounts(dir, rootfs, args, env, &[]);
}

/// A private copy of the busybox fixture's rootfs at `dest` (for tests
/// whose runs change the rootfs: runc writes into it).
pub fn copy_busybox_rootfs(dest: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(busybox_rootfs())
        .arg(dest)
        .status()
        .unwrap();
    assert!(
        st.success(),
        "copying the busybox rootfs to {}",
        dest.display()
    );
}

/// `runtime [global] run` of `sh -c script` over `rootfs`, with host
/// directory `vol` bind-mounted writable at /vol and `edit` applied to the
/// spec.
pub fn run_with_volume(
    runtime: &Path,
    global: &[&str],
    rootfs: &Path,
    vol: &Path,
    script: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> Output {
    let bundle = TempDir::new("vol-bundle");
    let state = TempDir::new("vol-state");
    let mount = serde_json::json!({
        "destination": "/vol", "type": "bind",
        "source": vol.to_string_lossy(), "options": ["rbind", "rw"]
    });
    write_bundle_config_with_mounts(bundle.path(), rootfs, &["sh", "-c", script], &[], &[mount]);
    edit_bundle_config(bundle.path(), edit);
    run_with_timeout(
        Command::new(runtime)
            .arg("--root")
            .arg(state.path())
            .args(global)
            .args(["run", "--bundle"])
            .arg(bundle.path())
            .arg(unique_name("vol")),
        default_timeout(),
    )
}

/// As [`write_bundle_config`], with `extra` appended to the spec's mounts.
pub fn write_bundle_config_with_mounts(
    dir: &Path,
    rootfs: &Path,
    args: &[&str],
    env: &[&str],
    extra: &[serde_json::Value],
) {
    let mut envv: Vec<String> = env.iter().map(|s| s.to_string()).collect();
    if !envv.iter().any(|e| e.starts_with("PATH=")) {
        envv.insert(0, DEFAULT_PATH.to_string());
    }
    let rootfs = fs::canonicalize(rootfs).unwrap_or_else(|_| rootfs.to_path_buf());
    let caps = serde_json::json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    let config = serde_json::json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": args,
            "env": envv,
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps
            },
            "rlimits": [ { "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 } ],
            "noNewPrivileges": true
        },
        "root": { "path": rootfs.to_string_lossy(), "readonly": false },
        "hostname": "rvisor-test",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
              "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
              "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
              "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
              "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs",
              "options": ["nosuid", "noexec", "nodev", "ro"] },
            { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
              "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }
        ],
        "linux": {
            "resources": { "devices": [ { "allow": false, "access": "rwm" } ] },
            "namespaces": [
                { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
                { "type": "uts" }, { "type": "mount" }, { "type": "cgroup" }
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    });
    let mut config = config;
    if let Some(m) = config["mounts"].as_array_mut() {
        m.extend(extra.iter().cloned());
    }
    let text = serde_json::to_string_pretty(&config).unwrap();
    fs::write(dir.join("config.json"), text).unwrap_or_else(|e| panic!("write config.json: {e}"));
}

/// The local OCI image of the busybox fixture that engines import.
pub const BUSYBOX_IMAGE: &str = "localhost/rvisor-busybox:latest";

/// The busybox OCI archive scripts/setup.sh builds, or None (after saying
/// why) when it is missing.
pub fn busybox_image_archive() -> Option<PathBuf> {
    let image = fixtures_dir().join("images/busybox-oci.tar");
    if image.exists() {
        Some(image)
    } else {
        eprintln!(
            "SKIP: {} is missing (scripts/setup.sh builds it)",
            image.display()
        );
        None
    }
}

/// Changes `<dir>/config.json` in place (a test's extra spec settings).
pub fn edit_bundle_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut cfg: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
    edit(&mut cfg);
    fs::write(&path, cfg.to_string()).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Run `args` in `rootfs` as an OCI bundle with `rvisor run`:
/// `rvisor --root <tmp state dir> run --bundle <tmp bundle> <unique id>`.
pub fn run_bundle(rootfs: &Path, args: &[&str], env: &[&str]) -> Output {
    run_bundle_timeout(rootfs, args, env, default_timeout())
}

pub fn run_bundle_timeout(rootfs: &Path, args: &[&str], env: &[&str], timeout: Duration) -> Output {
    let bundle = TempDir::new("rvisor-bundle");
    let state = TempDir::new("rvisor-state");
    write_bundle_config(bundle.path(), rootfs, args, env);
    let id = unique_name("rvt");
    run_with_timeout(
        Command::new(rvisor())
            .arg("--root")
            .arg(state.path())
            .arg("run")
            .arg("--bundle")
            .arg(bundle.path())
            .arg(&id),
        timeout,
    )
}

/// The same bundle run by `runc run` (the reference OCI runtime).  Returns
/// None (after printing why) if runc is not installed.
pub fn run_runc_bundle(rootfs: &Path, args: &[&str], env: &[&str]) -> Option<Output> {
    let Some(runc) = which("runc") else {
        eprintln!("SKIP: runc is not installed (scripts/setup.sh installs it)");
        return None;
    };
    let bundle = TempDir::new("runc-bundle");
    let state = TempDir::new("runc-state");
    write_bundle_config(bundle.path(), rootfs, args, env);
    let id = unique_name("runc");
    let out = run_with_timeout(
        Command::new(runc)
            .arg("--root")
            .arg(state.path())
            .arg("run")
            .arg("--bundle")
            .arg(bundle.path())
            .arg(&id),
        default_timeout(),
    );
    Some(out)
}

// ---------------------------------------------------------------------------
// Describing and comparing outputs
// ---------------------------------------------------------------------------

/// "exit status 3" / "killed by signal 15 (SIGTERM)".
pub fn describe_status(st: &ExitStatus) -> String {
    if let Some(code) = st.code() {
        format!("exit status {code}")
    } else if let Some(sig) = st.signal() {
        format!("killed by signal {sig} ({})", signal_name(sig))
    } else {
        format!("{st:?}")
    }
}

pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        17 => "SIGCHLD",
        31 => "SIGSYS",
        _ => "?",
    }
}

/// The last `max` bytes of `bytes`, lossily decoded.
pub fn tail(bytes: &[u8], max: usize) -> String {
    if bytes.len() <= max {
        String::from_utf8_lossy(bytes).into_owned()
    } else {
        format!(
            "[... {} bytes elided ...]\n{}",
            bytes.len() - max,
            String::from_utf8_lossy(&bytes[bytes.len() - max..])
        )
    }
}

/// A human-readable dump of a run.
pub fn describe_output(label: &str, out: &Output) -> String {
    format!(
        "=== {label}: {} ===\n--- stdout ---\n{}\n--- stderr ---\n{}",
        describe_status(&out.status),
        tail(&out.stdout, 6000),
        tail(&out.stderr, 6000)
    )
}

fn same_status(a: &ExitStatus, b: &ExitStatus) -> bool {
    a.code() == b.code() && a.signal() == b.signal()
}

/// Line diff (LCS based) of `expected` vs `actual`: `-` lines only in
/// `expected`, `+` lines only in `actual`, with a little context.
pub fn line_diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.split_inclusive('\n').collect();
    let b: Vec<&str> = actual.split_inclusive('\n').collect();
    let mut out = String::new();
    if a.len() * b.len() > 16_000_000 {
        // Too big for the quadratic table: report the first difference.
        let i = a.iter().zip(b.iter()).take_while(|(x, y)| x == y).count();
        let _ = writeln!(out, "first difference at line {}:", i + 1);
        let _ = writeln!(
            out,
            "-{}",
            a.get(i)
                .map(|s| s.trim_end_matches('\n'))
                .unwrap_or("<end of output>")
        );
        let _ = writeln!(
            out,
            "+{}",
            b.get(i)
                .map(|s| s.trim_end_matches('\n'))
                .unwrap_or("<end of output>")
        );
        return out;
    }
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    // Build the edit script.
    let mut ops: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', a[i]));
            i += 1;
        } else {
            ops.push(('+', b[j]));
            j += 1;
        }
    }
    // Print changes with 2 lines of context.
    let changed: Vec<usize> = ops
        .iter()
        .enumerate()
        .filter(|(_, o)| o.0 != ' ')
        .map(|(k, _)| k)
        .collect();
    let mut last_printed: Option<usize> = None;
    for (k, &(op, line)) in ops.iter().enumerate() {
        let near = changed.iter().any(|&c| c + 2 >= k && k + 2 >= c);
        if !near {
            continue;
        }
        if let Some(lp) = last_printed {
            if k > lp + 1 {
                out.push_str("  ...\n");
            }
        } else if k > 0 {
            out.push_str("  ...\n");
        }
        let line = line
            .strip_suffix('\n')
            .map(|l| l.to_string())
            .unwrap_or_else(|| format!("{line}  <no newline>"));
        let _ = writeln!(out, "{op} {line}");
        last_printed = Some(k);
    }
    const MAX_DIFF_LINES: usize = 150;
    let total = out.lines().count();
    if total > MAX_DIFF_LINES {
        let mut cut: String = out
            .lines()
            .take(MAX_DIFF_LINES)
            .map(|l| format!("{l}\n"))
            .collect();
        let _ = writeln!(
            cut,
            "  [... {} more diff lines ...]",
            total - MAX_DIFF_LINES
        );
        return cut;
    }
    out
}

/// Compare stdout (byte for byte) and exit status; Err holds a readable
/// report with a diff and the sandboxed run's stderr.
pub fn check_same_output(native: &Output, sandboxed: &Output) -> Result<(), String> {
    check_same_output_named("native", native, "sandboxed", sandboxed)
}

/// Like [`check_same_output`], naming the reference and the run under test
/// (e.g. "runc" and "rvisor").
pub fn check_same_output_named(
    ref_name: &str,
    reference: &Output,
    name: &str,
    actual: &Output,
) -> Result<(), String> {
    let same_out = reference.stdout == actual.stdout;
    let same_st = same_status(&reference.status, &actual.status);
    if same_out && same_st {
        return Ok(());
    }
    let mut msg = String::new();
    let _ = writeln!(
        msg,
        "exit status {}: {ref_name} {}, {name} {}",
        if same_st { "same" } else { "DIFFERS" },
        describe_status(&reference.status),
        describe_status(&actual.status)
    );
    if !same_out {
        let _ = writeln!(msg, "stdout differs (- {ref_name}, + {name}):");
        msg.push_str(&line_diff(
            &String::from_utf8_lossy(&reference.stdout),
            &String::from_utf8_lossy(&actual.stdout),
        ));
    }
    let _ = writeln!(msg, "--- {name} stderr ---\n{}", tail(&actual.stderr, 6000));
    Err(msg)
}

/// Assert that a sandboxed run printed exactly what the native run printed and
/// ended the same way.
#[track_caller]
pub fn assert_same_output(native: &Output, sandboxed: &Output) {
    if let Err(msg) = check_same_output(native, sandboxed) {
        panic!("native and sandboxed runs differ:\n{msg}");
    }
}

/// [`assert_same_output`] with names for the reference and the run under test.
#[track_caller]
pub fn assert_same_output_named(ref_name: &str, reference: &Output, name: &str, actual: &Output) {
    if let Err(msg) = check_same_output_named(ref_name, reference, name, actual) {
        panic!("{ref_name} and {name} runs differ:\n{msg}");
    }
}

/// Assert a run exited with status 0, showing its output otherwise.
#[track_caller]
pub fn assert_success(label: &str, out: &Output) {
    if !out.status.success() {
        panic!("{label} failed:\n{}", describe_output(label, out));
    }
}

pub fn stdout_str(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr_str(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Lazily unmounts everything mounted below `dir` (what a container
/// engine left behind), deepest first.
pub fn umount_below(dir: &Path) {
    let d = dir.to_string_lossy().into_owned();
    let Ok(mounts) = fs::read_to_string("/proc/self/mounts") else {
        return;
    };
    let mut under: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|m| m.starts_with(&d))
        .collect();
    under.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in under {
        let _ = Command::new("umount").arg("-l").arg(m).status();
    }
}

/// Processes (other than this one) whose command line mentions `text`
/// and starts with `prefix`: conmon names its bundle, a gofer its rootfs.
pub fn processes_mentioning(prefix: &str, text: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.chars().all(|c| c.is_ascii_digit()) || name == me {
            continue;
        }
        if let Ok(cmd) = fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.starts_with(prefix) && cmd.contains(text) {
                found.push(format!(
                    "{name}: {}",
                    cmd.chars().take(120).collect::<String>()
                ));
            }
        }
    }
    found
}
