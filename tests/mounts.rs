//! The OCI spec's bind mounts: directories and single files, read-only and
//! writable, mount points the image lacks, and symlinks inside a mounted
//! directory that point "outside" (they resolve inside the container, as
//! under runc). Each case runs under runc and under rvisor; the outputs
//! must match.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// A fresh host directory tree to bind-mount: data/ (files, a symlink
/// aiming at the host's /etc) and a single file standing in for the
/// /etc/hosts an engine writes.
fn make_sources(base: &Path) {
    let data = base.join("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("hello.txt"), "hello from the host\n").unwrap();
    std::fs::write(data.join("sub/deep.txt"), "deep\n").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", data.join("abs-link")).unwrap();
    std::os::unix::fs::symlink("../../../../../../etc/passwd", data.join("rel-link")).unwrap();
    std::fs::create_dir_all(base.join("rw")).unwrap();
    std::fs::write(
        base.join("hosts"),
        "127.0.0.1 localhost\n10.1.2.3 mounted-host\n",
    )
    .unwrap();
}

fn mounts(base: &Path) -> Vec<serde_json::Value> {
    let p = |s: &str| base.join(s).to_string_lossy().into_owned();
    vec![
        serde_json::json!({"destination": "/data", "type": "bind", "source": p("data"),
                           "options": ["rbind", "ro"]}),
        serde_json::json!({"destination": "/rw", "type": "bind", "source": p("rw"),
                           "options": ["rbind", "rw"]}),
        serde_json::json!({"destination": "/etc/hosts", "type": "bind", "source": p("hosts"),
                           "options": ["rbind", "ro"]}),
        serde_json::json!({"destination": "/mnt/new/place", "type": "bind", "source": p("data/sub"),
                           "options": ["bind", "ro"]}),
    ]
}

const SCRIPT: &str = "cat /data/hello.txt; ls /data /data/sub; cat /etc/hosts; \
    cat /mnt/new/place/deep.txt; \
    echo x > /data/new || echo 'read-only mount refused the write'; \
    echo y > /rw/made && cat /rw/made; \
    cat /data/abs-link 2>/dev/null || echo 'absolute link stays inside'; \
    head -1 /data/rel-link; \
    cd /data/sub && cd ../../.. && pwd && ls -d /data/.. ";

fn run_with(runtime: &str, base: &Path) -> Option<std::process::Output> {
    let rootfs = busybox_rootfs();
    let bundle = TempDir::new(&format!("{runtime}-mount-bundle"));
    let state = TempDir::new(&format!("{runtime}-mount-state"));
    write_bundle_config_with_mounts(
        bundle.path(),
        &rootfs,
        &["/bin/sh", "-c", SCRIPT],
        &[],
        &mounts(base),
    );
    let bin = if runtime == "runc" {
        which("runc")?
    } else {
        rvisor()
    };
    Some(run_with_timeout(
        Command::new(bin)
            .arg("--root")
            .arg(state.path())
            .arg("run")
            .arg("--bundle")
            .arg(bundle.path())
            .arg(unique_name(runtime)),
        default_timeout(),
    ))
}

#[test]
fn bind_mounts_match_runc() {
    let ours = TempDir::new("rvisor-mount-src");
    make_sources(ours.path());
    let out = run_with("rvisor", ours.path()).expect("rvisor");
    assert_success("rvisor run with bind mounts", &out);
    let text = stdout_str(&out);
    assert!(
        text.contains("hello from the host"),
        "{}",
        describe_output("rvisor", &out)
    );
    assert!(
        text.contains("10.1.2.3 mounted-host"),
        "{}",
        describe_output("rvisor", &out)
    );
    let theirs = TempDir::new("runc-mount-src");
    make_sources(theirs.path());
    if let Some(reference) = run_with("runc", theirs.path()) {
        assert_same_output_named("runc", &reference, "rvisor", &out);
    }
}

/// Runs `script` with `sh -c` in the busybox image under runtime `bin`
/// (`name` labels its temporary directories), with `edit` applied to the
/// spec.
fn run_busybox_script(
    bin: &Path,
    name: &str,
    script: &str,
    edit: impl Fn(&mut serde_json::Value),
) -> std::process::Output {
    let bundle = TempDir::new(&format!("{name}-spec-bundle"));
    let state = TempDir::new(&format!("{name}-spec-state"));
    write_bundle_config(bundle.path(), &busybox_rootfs(), &["sh", "-c", script], &[]);
    edit_bundle_config(bundle.path(), &edit);
    run_with_timeout(
        Command::new(bin)
            .arg("--root")
            .arg(state.path())
            .args(["run", "--bundle"])
            .arg(bundle.path())
            .arg(unique_name("spec")),
        default_timeout(),
    )
}

/// Runs `script` in the busybox image with `edit` applied to the spec,
/// under runc and under rvisor; returns both runs.
fn runc_and_rvisor_with(
    script: &str,
    edit: impl Fn(&mut serde_json::Value),
) -> Option<(std::process::Output, std::process::Output)> {
    let Some(runc) = which("runc") else {
        eprintln!("SKIP: runc is not installed (scripts/setup.sh installs it)");
        return None;
    };
    let run = |bin: &std::path::Path, name: &str| run_busybox_script(bin, name, script, &edit);
    let expected = run(&runc, "runc");
    let actual = run(&rvisor(), "rvisor");
    assert_eq!(
        stdout_str(&expected),
        stdout_str(&actual),
        "{}",
        describe_output("rvisor", &actual)
    );
    Some((expected, actual))
}

/// linux.maskedPaths hide a file (as /dev/null) and a directory (empty,
/// read-only) of the image, as under runc; /proc/sys stays read-only.
#[test]
fn masked_paths_like_runc() {
    let script = "echo group: $(cat /etc/group | wc -c); ls -la /root | wc -l; \
                  echo x > /etc/group && echo write-ok; touch /root/f || echo dir-ro; \
                  echo 1 > /proc/sys/kernel/shmmax || echo proc-sys-ro; \
                  test -c /etc/group && echo masked-by-char-device";
    let Some((expected, actual)) = runc_and_rvisor_with(script, |cfg| {
        cfg["linux"]["maskedPaths"] = serde_json::json!(["/etc/group", "/root", "/no/such/path"]);
    }) else {
        return;
    };
    assert_eq!(expected.status.code(), actual.status.code());
}

/// root.readonly: the rootfs refuses writes (EROFS) while tmpfs mounts on
/// it stay writable, as under runc.
#[test]
fn readonly_root_like_runc() {
    let script = "touch /x; echo touch=$?; mkdir /d; echo mkdir=$?; \
                  echo hi > /dev/shm/z && cat /dev/shm/z; \
                  grep ' / ' /proc/self/mounts | cut -d' ' -f4 | cut -d, -f1";
    let Some((_, actual)) = runc_and_rvisor_with(script, |cfg| {
        cfg["root"]["readonly"] = true.into();
    }) else {
        return;
    };
    assert!(stdout_str(&actual).contains("touch=1"));
}

/// mount(2) and umount2(2) inside the container, with CAP_SYS_ADMIN:
/// tmpfs with a mode, a bind, a read-only remount of the bind, stacking,
/// unmounting, an unknown filesystem type; and without the capability,
/// EPERM. The same as under runc (whose container has its own mount
/// namespace).
#[test]
fn mount_inside_the_container_like_runc() {
    let script = "cd /tmp; mkdir m b; \
        mount -t tmpfs -o mode=700 none /tmp/m 2>/dev/null; echo tmpfs=$?; stat -c %a /tmp/m; \
        echo x > m/f; mount --bind /tmp/m /tmp/b 2>/dev/null; echo bind=$?; cat b/f; \
        mount -o remount,ro,bind /tmp/b 2>/dev/null; echo remount=$?; \
        echo y > b/f 2>/dev/null || echo read-only; echo z > m/f; cat b/f; \
        grep -c ' /tmp/b ' /proc/mounts; \
        mount -t tmpfs none /tmp/m 2>/dev/null; ls m | wc -l; umount /tmp/m; cat m/f; \
        umount /tmp/b; echo umount=$?; ls b | wc -l; umount /tmp/m; umount /tmp/m 2>/dev/null; echo again=$?; \
        mount -t nosuchfs none /tmp/m 2>/dev/null && echo bogus-mounted || echo bogus-refused; \
        mount --make-rprivate / 2>/dev/null; echo private=$?";
    let privileged =
        |cfg: &mut serde_json::Value| {
            let caps = serde_json::json!(["CAP_SYS_ADMIN", "CAP_DAC_OVERRIDE", "CAP_CHOWN"]);
            for set in ["bounding", "effective", "permitted"] {
                cfg["process"]["capabilities"][set] = caps.clone();
            }
            // A private /tmp: runc would write into the shared fixture.
            cfg["mounts"].as_array_mut().unwrap().push(serde_json::json!({
            "destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["mode=1777"]
        }));
        };
    runc_and_rvisor_with(script, privileged);
    let unprivileged =
        |cfg: &mut serde_json::Value| {
            cfg["mounts"].as_array_mut().unwrap().push(serde_json::json!({
            "destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["mode=1777"]
        }));
        };
    runc_and_rvisor_with(
        "mkdir /tmp/m; mount -t tmpfs none /tmp/m 2>/dev/null; echo mount=$?; \
         umount /proc 2>/dev/null; echo umount=$?",
        unprivileged,
    );
}

/// linux.readonlyPaths: a directory and a single file of the image become
/// read-only (EROFS), the rest stays writable, missing entries are
/// ignored, as under runc.
#[test]
fn readonly_paths_like_runc() {
    let script = "echo x > /etc/newfile 2>/dev/null || echo etc-read-only; \
        touch /etc/passwd 2>/dev/null || echo passwd-read-only; \
        mkdir /etc/d 2>/dev/null || echo mkdir-refused; \
        echo y >> /bin/busybox 2>/dev/null || echo busybox-read-only; \
        echo z > /tmp/f && cat /tmp/f; head -1 /etc/passwd; \
        grep -c ' /etc ' /proc/mounts";
    runc_and_rvisor_with(script, |cfg| {
        cfg["linux"]["readonlyPaths"] =
            serde_json::json!(["/etc", "/bin/busybox", "/no/such/path"]);
        cfg["mounts"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["mode=1777"]
            }));
    });
}

/// The spec's cgroup mount is a read-only cgroup v2 view of the sandbox's
/// own cgroup, as a container with a cgroup namespace sees it on a v2 host
/// under runc: the limits are the spec's resources (what the JVM, Go and
/// Node size themselves from), usage is live, statfs says cgroup2, and
/// /proc/self/cgroup and mountinfo point at it. (This host may be cgroup
/// v1, so the values are checked against the spec, not against runc.)
#[test]
fn cgroup_mount_shows_the_specs_limits() {
    let script = "cd /sys/fs/cgroup && \
        for f in memory.max memory.swap.max cpu.max cpu.weight pids.max; do \
          echo \"$f=$(cat $f)\"; done; \
        test \"$(cat memory.current)\" -gt 0 && echo memory.current-positive; \
        grep -qx \"$$\" cgroup.procs && echo own-pid-listed; \
        echo \"magic=$(stat -f -c %t /sys/fs/cgroup)\"; \
        echo 1 > memory.max 2>/dev/null || echo write-refused; \
        cat /proc/self/cgroup; \
        grep -c ' /sys/fs/cgroup ro,.* - cgroup2 ' /proc/self/mountinfo";
    let out = run_busybox_script(&rvisor(), "cgroup-view", script, |cfg| {
        cfg["linux"]["resources"] = serde_json::json!({
            "memory": { "limit": 536870912, "swap": 805306368 },
            "cpu": { "quota": 50000, "period": 100000, "shares": 1024 },
            "pids": { "limit": 100 }
        });
    });
    assert_success("rvisor run (cgroup view)", &out);
    // cpu.weight: runc's conversion of 1024 shares; swap.max: v1's
    // memory+swap minus memory.
    assert_eq!(
        stdout_str(&out),
        "memory.max=536870912\nmemory.swap.max=268435456\ncpu.max=50000 100000\n\
         cpu.weight=39\npids.max=100\nmemory.current-positive\nown-pid-listed\n\
         magic=63677270\nwrite-refused\n0::/\n1\n",
        "{}",
        describe_output("rvisor run (cgroup view)", &out)
    );
}
