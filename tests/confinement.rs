//! Confinement from day one: what the host sees of a running sandbox, and
//! escape attempts from inside it. Each check is what an attacker would try
//! or what an operator would inspect with ps and /proc.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // ppid is the 2nd field after the parenthesised comm.
        let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
        if after
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u32>().ok())
            == Some(pid)
        {
            out.push(p);
        }
    }
    out
}

fn descendants(pid: u32) -> Vec<u32> {
    let mut all = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for c in children_of(p) {
            all.push(c);
            todo.push(c);
        }
    }
    all
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn cmdline(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .replace('\0', " ")
}

fn status_field(pid: u32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{field}:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default()
}

/// Starts `rvisor do sleep 30` and waits until its stub exists.
struct Running {
    child: std::process::Child,
}

impl Running {
    fn start() -> (Running, Vec<u32>) {
        let child = Command::new(rvisor())
            .args(["do", "sleep", "30"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rvisor");
        let r = Running { child };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let procs = descendants(r.child.id());
            // The sleep's stub is up once a stub exists and the sentry has
            // exec'd it (its comm is the memfd's name).
            if procs.iter().any(|p| comm(*p).starts_with("memfd:rvisor")) {
                std::thread::sleep(Duration::from_millis(200));
                let all = descendants(r.child.id());
                return (r, all);
            }
            assert!(Instant::now() < deadline, "no stub process appeared");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn stubs_hold_only_their_fd_channel_no_capabilities_and_no_sentry_memory() {
    let (_r, procs) = Running::start();
    let stubs: Vec<u32> = procs
        .iter()
        .copied()
        .filter(|p| comm(*p).starts_with("memfd:rvisor"))
        .collect();
    assert!(!stubs.is_empty());
    for s in stubs {
        // The only host fds are the channel the sentry hands file fds
        // over for mmap (sentry/src/platform/fd_channel.rs): fd 4, a
        // socket; and the memory file(s) holding the application's own
        // private memory (sentry/src/mm/mirror.rs).
        let fds: Vec<(String, String)> = std::fs::read_dir(format!("/proc/{s}/fd"))
            .expect("fd dir")
            .filter_map(|e| e.ok())
            .map(|e| {
                let target = std::fs::read_link(e.path())
                    .map(|t| t.display().to_string())
                    .unwrap_or_default();
                (e.file_name().to_string_lossy().into_owned(), target)
            })
            .filter(|(_, target)| !target.starts_with("/memfd:rvisor-memory"))
            .collect();
        assert_eq!(fds.len(), 1, "stub {s} holds host fds: {fds:?}");
        assert_eq!(fds[0].0, "4", "stub {s} holds host fds: {fds:?}");
        assert!(fds[0].1.starts_with("socket:"), "stub {s}: {fds:?}");
        assert_eq!(
            status_field(s, "CapEff"),
            "0000000000000000",
            "stub {s} has capabilities"
        );
        assert_eq!(
            status_field(s, "CapBnd"),
            "0000000000000000",
            "stub {s} could regain capabilities"
        );
        assert_eq!(status_field(s, "NoNewPrivs"), "1");
        // Every thread is either stopped at each system call by its
        // tracer (ptrace) or runs under a seccomp filter (systrap: the
        // syscall thread's, and the application threads' own on top).
        for task in std::fs::read_dir(format!("/proc/{s}/task")).expect("task dir") {
            let task = task.expect("task entry").file_name();
            let status = std::fs::read_to_string(format!(
                "/proc/{s}/task/{}/status",
                task.to_string_lossy()
            ))
            .unwrap_or_default();
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{name}:")))
                    .map(|v| v.trim().to_string())
                    .unwrap_or_default()
            };
            assert!(
                field("TracerPid") != "0" || field("Seccomp") == "2",
                "stub thread {s}/{} is neither traced nor filtered:\n{status}",
                task.to_string_lossy()
            );
        }
        let maps = std::fs::read_to_string(format!("/proc/{s}/maps")).expect("maps");
        for line in maps.lines() {
            // Files the application mapped itself (sleep's libc, from the
            // rootfs, which is / for `rvisor do`) are fine; the sentry's
            // own binary never is.
            let path = line.split_whitespace().nth(5).unwrap_or("");
            assert!(
                !path.contains("rvisor") || path.starts_with("/memfd:rvisor-"),
                "stub {s} maps sentry memory: {line}"
            );
            assert!(
                !line.contains("[heap]"),
                "stub {s} carries a heap from its parent: {line}"
            );
        }
    }
}

#[test]
fn sentry_has_no_view_of_the_host_filesystem() {
    let (_r, procs) = Running::start();
    let sentry = procs
        .iter()
        .copied()
        .find(|p| cmdline(*p).contains(" boot "))
        .expect("a sentry process");
    let root = format!("/proc/{sentry}/root");
    let entries: Vec<_> = std::fs::read_dir(&root)
        .expect("sentry root")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        entries.is_empty(),
        "the sentry's root is not empty: {entries:?}"
    );
    assert!(!Path::new(&format!("{root}/etc/passwd")).exists());
    // Its mount namespace differs from ours.
    let ours = std::fs::read_link("/proc/self/ns/mnt").expect("our mnt ns");
    let its = std::fs::read_link(format!("/proc/{sentry}/ns/mnt")).expect("sentry mnt ns");
    assert_ne!(ours, its);
}

#[test]
fn gofer_is_chrooted_into_the_rootfs() {
    let rootfs = busybox_rootfs();
    let dir = TempDir::new("confine-gofer");
    write_bundle_config(dir.path(), &rootfs, &["sleep", "30"], &["PATH=/bin"]);
    let state = TempDir::new("confine-state");
    let id = unique_name("gofer");
    let mut child = Command::new(rvisor())
        .arg("--root")
        .arg(state.path())
        .args(["run", "--bundle"])
        .arg(dir.path())
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start");
    let deadline = Instant::now() + Duration::from_secs(20);
    let gofer = loop {
        if let Some(g) = descendants(child.id())
            .into_iter()
            .find(|p| cmdline(*p).contains(" gofer "))
        {
            break g;
        }
        assert!(Instant::now() < deadline, "no gofer process");
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(300));
    // The gofer pivot_roots into the rootfs (in its own mount namespace),
    // so its root is the rootfs itself, and `..` from it goes nowhere:
    // checked by identity, as the link's text depends on the reader's
    // namespace.
    let id_of = |p: String| {
        std::fs::metadata(&p)
            .map(|m| (m.dev(), m.ino()))
            .unwrap_or_else(|e| panic!("{p}: {e}"))
    };
    let root = id_of(format!("/proc/{gofer}/root/"));
    let above = id_of(format!("/proc/{gofer}/root/.."));
    let _ = child.kill();
    let _ = child.wait();
    let rootfs_id = id_of(rootfs.display().to_string());
    assert_eq!(
        root, rootfs_id,
        "the gofer's root is not the container's rootfs"
    );
    assert_eq!(above, rootfs_id, "`..` leads out of the gofer's root");
}

/// Symlinks, `..` and /proc/self/root must all stay inside the container's
/// rootfs: the busybox image's /etc/passwd has one line, the host's more.
#[test]
fn paths_cannot_escape_the_rootfs() {
    let script = "ln -s /../../../../etc/passwd /tmp/abs; ln -s ../../../../../../etc/passwd /tmp/rel; \
                  cat /tmp/abs; cat /tmp/rel; cd /; cd ../../..; pwd; cat etc/passwd; \
                  cat /proc/self/root/etc/passwd; cat /proc/1/root/../../etc/passwd; ls /proc/self/cwd/../.. | wc -l";
    let out = run_bundle(&busybox_rootfs(), &["sh", "-c", script], &["PATH=/bin"]);
    assert_success("escape attempts", &out);
    let inside =
        std::fs::read_to_string(busybox_rootfs().join("etc/passwd")).expect("image passwd");
    let host = std::fs::read_to_string("/etc/passwd").expect("host passwd");
    assert_ne!(
        inside, host,
        "the fixture must differ from the host for this test to mean anything"
    );
    let roots = std::fs::read_dir(busybox_rootfs()).expect("rootfs").count();
    let expected = format!("{inside}{inside}/\n{inside}{inside}{inside}{roots}\n");
    assert_eq!(stdout_str(&out), expected);
}
