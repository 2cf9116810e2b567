//! Many lifecycles at once and in a row: 20 containers created, started,
//! killed and deleted in parallel, then 200 sequential `run`s and 50
//! create/start/delete --force cycles. Afterwards nothing may be left: no
//! state directory, no sandbox process (this test is a child subreaper, as
//! a shim is, so every orphaned sandbox process would become its child),
//! no cgroup, no new mount or fd in this process.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn rv(root: &Path, bundle: &Path, args: &[&str]) -> std::process::Output {
    run_with_timeout(
        Command::new(rvisor())
            .arg("--root")
            .arg(root)
            .args(args)
            .current_dir(bundle),
        Duration::from_secs(60),
    )
}

/// `create` without capturing the container's output (it must outlive
/// the command).
fn create(root: &Path, bundle: &Path, id: &str) {
    let st = Command::new(rvisor())
        .arg("--root")
        .arg(root)
        .args(["create", "--bundle"])
        .arg(bundle)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("spawn create");
    assert!(st.success(), "create {id}: {st}");
}

/// Reaps adopted children that have exited; returns the pids of those
/// still alive.
fn reap_and_list_children() -> Vec<i32> {
    loop {
        let mut status = 0;
        // SAFETY: reaping our own (adopted) children.
        let r = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if r <= 0 {
            break;
        }
    }
    let me = std::process::id() as i32;
    let mut alive = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let ppid: i32 = rest
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if ppid == me {
            alive.push(pid);
        }
    }
    alive
}

fn count_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn count_mounts() -> usize {
    std::fs::read_to_string("/proc/self/mounts")
        .map(|m| m.lines().count())
        .unwrap_or(0)
}

#[test]
fn parallel_and_sequential_lifecycles_leak_nothing() {
    // SAFETY: a prctl flag on our own process.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let fds_before = count_fds();
    let mounts_before = count_mounts();
    let root = TempDir::new("stress-root");
    let long = TempDir::new("stress-long");
    let short = TempDir::new("stress-short");
    write_bundle_config(
        long.path(),
        &busybox_rootfs(),
        &["sh", "-c", "while :; do sleep 0.1; done"],
        &[],
    );
    write_bundle_config(short.path(), &busybox_rootfs(), &["true"], &[]);

    // 20 in parallel.
    let started = Instant::now();
    std::thread::scope(|s| {
        for i in 0..20 {
            let (root, bundle) = (root.path(), long.path());
            s.spawn(move || {
                let id = format!("stress{}-p{i}", std::process::id());
                create(root, bundle, &id);
                let out = rv(root, bundle, &["start", &id]);
                assert_success(&format!("start {id}"), &out);
                let out = rv(root, bundle, &["kill", &id, "KILL"]);
                assert_success(&format!("kill {id}"), &out);
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    let st = stdout_str(&rv(root, bundle, &["state", &id]));
                    if st.contains("\"stopped\"") {
                        break;
                    }
                    assert!(Instant::now() < deadline, "{id} did not stop: {st}");
                    std::thread::sleep(Duration::from_millis(10));
                }
                let out = rv(root, bundle, &["delete", &id]);
                assert_success(&format!("delete {id}"), &out);
            });
        }
    });
    eprintln!("20 parallel lifecycles: {:?}", started.elapsed());

    // 200 sequential runs.
    let started = Instant::now();
    for i in 0..200 {
        let out = rv(
            root.path(),
            short.path(),
            &["run", &format!("stress{}-s{i}", std::process::id())],
        );
        assert_success(&format!("run s{i}"), &out);
    }
    eprintln!("200 sequential runs: {:?}", started.elapsed());

    // 50 create/start/delete --force of a running container.
    for i in 0..50 {
        let id = format!("stress{}-f{i}", std::process::id());
        create(root.path(), long.path(), &id);
        assert_success("start", &rv(root.path(), long.path(), &["start", &id]));
        assert_success(
            "delete --force",
            &rv(root.path(), long.path(), &["delete", "--force", &id]),
        );
    }

    let left: Vec<_> = std::fs::read_dir(root.path())
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "state left behind: {left:?}");
    // Killed sandboxes may take a moment to be gone.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let alive = reap_and_list_children();
        if alive.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sandbox processes left behind: {alive:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // No cgroup left: each container had /rvisor/ID in every hierarchy.
    let mut cgroups_left = Vec::new();
    for base in [
        "/sys/fs/cgroup/memory/rvisor",
        "/sys/fs/cgroup/pids/rvisor",
        "/sys/fs/cgroup/rvisor",
    ] {
        for e in std::fs::read_dir(base).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            // Ids carry our pid: a concurrent run's cgroups are not ours.
            let ours = name.starts_with(&format!("stress{}-", std::process::id()));
            if ours && e.path().is_dir() {
                cgroups_left.push(e.path());
            }
        }
    }
    assert!(
        cgroups_left.is_empty(),
        "cgroups left behind: {cgroups_left:?}"
    );
    assert_eq!(count_fds(), fds_before, "fds leaked into the client");
    assert_eq!(count_mounts(), mounts_before, "host mounts left behind");
}
