//! Hostile paths: an image (and a volume) planted with ways out of the
//! container — absolute and relative symlinks aiming above the root, `..`
//! beyond the root, /proc/self/root and /proc/PID/cwd, a symlink swapped
//! between a harmless target and a way out while the container opens it in
//! a loop, device nodes naming the host's disk and memory, a setuid binary.
//! Every case runs under runc and rvisor on identical copies; the outputs
//! must match (runc's answers are the host kernel's, so Linux's errnos),
//! and no run may ever print the secret that sits next to the rootfs on
//! the host.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;

const SECRET: &str = "HOST-SECRET-7d1c";

/// A rootfs copy with the planted paths, the secret beside it, and a
/// writable volume holding the same links.
struct Planted {
    base: TempDir,
}

impl Planted {
    fn new(tag: &str) -> Planted {
        let base = TempDir::new(tag);
        let root = base.path().join("rootfs");
        copy_busybox_rootfs(&root);
        std::fs::write(base.path().join("secret"), SECRET).unwrap();
        std::fs::create_dir_all(root.join("vol")).unwrap();
        let vol = base.path().join("vol");
        std::fs::create_dir(&vol).unwrap();
        for dir in [root.join("planted"), vol.clone()] {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("ok.txt"), "harmless\n").unwrap();
            let link = |target: &str, name: &str| {
                std::os::unix::fs::symlink(target, dir.join(name)).unwrap()
            };
            link("../../secret", "rel-up");
            link("../../../../../../../../secret", "rel-far");
            link("/../../secret", "abs-up");
            link(
                &base.path().join("secret").display().to_string(),
                "abs-host",
            );
            link("/proc/self/root/../../secret", "proc-root");
            link("/", "root-link");
        }
        // Device nodes naming the host's first disk and its memory, and a
        // setuid-root copy of busybox.
        let mknod = |name: &str, kind: nix::sys::stat::SFlag, major, minor| {
            nix::sys::stat::mknod(
                &root.join(name),
                kind,
                nix::sys::stat::Mode::from_bits_truncate(0o666),
                nix::sys::stat::makedev(major, minor),
            )
            .unwrap()
        };
        mknod("planted/disk", nix::sys::stat::SFlag::S_IFBLK, 8, 0);
        mknod("planted/mem", nix::sys::stat::SFlag::S_IFCHR, 1, 1);
        mknod("planted/kmsg", nix::sys::stat::SFlag::S_IFCHR, 1, 11);
        let suid = root.join("planted/suid-busybox");
        std::fs::copy(root.join("bin/busybox"), &suid).unwrap();
        std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
        Planted { base }
    }

    fn rootfs(&self) -> PathBuf {
        self.base.path().join("rootfs")
    }

    fn vol(&self) -> PathBuf {
        self.base.path().join("vol")
    }
}

fn run(
    runtime: &Path,
    global: &[&str],
    planted: &Planted,
    script: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> Output {
    run_with_volume(
        runtime,
        global,
        &planted.rootfs(),
        &planted.vol(),
        script,
        edit,
    )
}

/// Runs `script` under runc and under rvisor (once per overlay mode) on
/// fresh copies and checks that the outputs match and nothing leaked.
fn same_as_runc(script: &str, edit: impl Fn(&mut serde_json::Value)) {
    let Some(runc) = which("runc") else {
        eprintln!("SKIP: runc is not installed (scripts/setup.sh installs it)");
        return;
    };
    let expected = run(&runc, &[], &Planted::new("hp-runc"), script, &edit);
    assert!(
        !stdout_str(&expected).contains(SECRET),
        "the test itself is wrong: runc printed the secret"
    );
    for overlay in ["self", "memory", "none"] {
        let actual = run(
            &rvisor(),
            &["--overlay", overlay],
            &Planted::new(&format!("hp-rvisor-{overlay}")),
            script,
            &edit,
        );
        assert!(
            !stdout_str(&actual).contains(SECRET) && !stderr_str(&actual).contains(SECRET),
            "--overlay {overlay}: the host's secret leaked:\n{}",
            describe_output("rvisor", &actual)
        );
        assert_same_output_named(
            "runc",
            &expected,
            &format!("rvisor --overlay {overlay}"),
            &actual,
        );
    }
}

/// Every planted link, in the image and in the volume, resolves inside the
/// container; `..` stops at its root.
#[test]
fn symlinks_and_dotdot_stay_inside_like_runc() {
    let script = r#"
for d in /planted /vol; do
  for l in rel-up rel-far abs-up abs-host proc-root; do
    cat $d/$l 2>/dev/null || echo "$d/$l: no such file"
  done
  ls $d/root-link/ | head -3
done
cd /../../..; pwd; ls | head -3
cat /proc/self/root/../../../secret 2>/dev/null || echo proc-self-root stays
cat /proc/1/cwd/../../../secret 2>/dev/null || echo proc-cwd stays
readlink /proc/self/root; readlink /proc/1/cwd
echo written > /planted/rel-up && cat /planted/rel-up && cat /secret
"#;
    same_as_runc(script, |_| {});
}

/// A host-side swap is not needed: the container itself flips a symlink
/// between a harmless file and a way out while opening it in a loop. Only
/// "harmless" or "not found" may ever be read.
#[test]
fn a_symlink_swapped_during_open_never_leads_out() {
    let script = r#"
cd /vol
ln -s ok.txt race
( i=0; while [ $i -lt 300 ]; do ln -sfn ../../secret race; ln -sfn ok.txt race; i=$((i+1)); done ) &
i=0; while [ $i -lt 300 ]; do cat race 2>/dev/null; i=$((i+1)); done | sort -u | grep -v harmless
wait; echo done
"#;
    same_as_runc(script, |_| {});
}

/// Device nodes shipped in the image reach no host device: the disk and
/// memory nodes fail to open as under runc (whose device cgroup denies
/// them), and nothing is read from them.
#[test]
fn device_nodes_in_the_image_reach_no_host_device() {
    let script = r#"
head -c 64 /planted/disk > /tmp/d 2>/dev/null; echo "disk: $? $(wc -c < /tmp/d)"
head -c 64 /planted/mem > /tmp/m 2>/dev/null; echo "mem: $? $(wc -c < /tmp/m)"
head -c 64 /planted/kmsg > /tmp/k 2>/dev/null; echo "kmsg: $? $(wc -c < /tmp/k)"
echo x > /planted/disk 2>/dev/null; echo "disk write: $?"
"#;
    same_as_runc(script, |_| {});
}

/// A setuid-root binary in the image makes a non-root user root inside
/// the container only when noNewPrivileges allows it, as under runc.
#[test]
fn a_setuid_binary_in_the_image_behaves_as_under_runc() {
    let script = "id -u; /planted/suid-busybox id -u; /planted/suid-busybox cat /root/.profile 2>&1 | head -1; echo end";
    for nnp in [true, false] {
        same_as_runc(script, |cfg| {
            cfg["process"]["user"] = serde_json::json!({"uid": 1000, "gid": 1000});
            cfg["process"]["noNewPrivileges"] = nnp.into();
        });
    }
}
