//! Pod containers as the OCI CLI sees them, without containerd: a
//! container whose CRI annotations name a running rvisor sandbox joins it.
//! What its user sees must be what runc gives the same bundle (runc
//! ignores the annotations and runs it alone).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// A bundle at `dir` over a copy of the busybox rootfs running `args`,
/// edited by `edit`.
fn bundle(dir: &Path, args: &[&str], edit: impl FnOnce(&mut serde_json::Value)) {
    std::fs::create_dir_all(dir).expect("bundle dir");
    copy_busybox_rootfs(&dir.join("rootfs"));
    write_bundle_config(dir, &dir.join("rootfs"), args, &[]);
    edit_bundle_config(dir, edit);
}

/// The spec of a CRI app container of pod sandbox `sandbox`, with a
/// terminal.
fn joining_with_terminal(sandbox: &str) -> impl FnOnce(&mut serde_json::Value) + '_ {
    move |c| {
        c["process"]["terminal"] = true.into();
        c["annotations"] = serde_json::json!({
            "io.kubernetes.cri.container-type": "container",
            "io.kubernetes.cri.sandbox-id": sandbox,
        });
    }
}

/// Ctrl-C typed at a terminal container's console, as console_ctrl_c.py
/// reports it.
fn ctrl_c(runtime: &Path, root: &Path, bundle: &Path, id: &str) -> String {
    let out = run_with_timeout(
        Command::new("python3")
            .arg(repo_root().join("tests/scripts/console_ctrl_c.py"))
            .arg(runtime)
            .arg(root)
            .arg(bundle)
            .arg(id),
        Duration::from_secs(120),
    );
    assert_success("console_ctrl_c.py", &out);
    stdout_str(&out).trim().to_string()
}

const TRAP_INT: &str = "trap 'echo got INT' INT; echo ready; read x; echo done; exit 6";

/// The init of a container that joined a pod's sandbox has the terminal
/// it was given (`kubectl run -it`): Ctrl-C at it reaches its trap, and
/// its exit code is the container's, as under runc.
#[test]
fn ctrl_c_reaches_a_joined_containers_init_like_runc() {
    let Some(runc) = which("runc") else {
        eprintln!("SKIP: runc is not installed (scripts/setup.sh installs it)");
        return;
    };
    let dir = TempDir::new("pods");
    let d = dir.path();
    bundle(
        &d.join("app"),
        &["sh", "-c", TRAP_INT],
        joining_with_terminal("pod-sb"),
    );
    let expected = ctrl_c(&runc, &d.join("runc-root"), &d.join("app"), "app");
    let _ = Command::new(&runc)
        .arg("--root")
        .arg(d.join("runc-root"))
        .args(["delete", "-f", "app"])
        .status();

    bundle(&d.join("sb"), &["sleep", "1000"], |c| {
        c["annotations"] = serde_json::json!({ "io.kubernetes.cri.container-type": "sandbox" });
    });
    let root = d.join("rvisor-root");
    let rv = |args: &[&str]| {
        run_with_timeout(
            Command::new(rvisor()).arg("--root").arg(&root).args(args),
            Duration::from_secs(60),
        )
    };
    let sb = d.join("sb");
    // The sandbox's stdio stays with its sentry, as a shim's pipes would:
    // not ours to wait on.
    let created = Command::new(rvisor())
        .arg("--root")
        .arg(&root)
        .args(["create", "--bundle", &sb.to_string_lossy(), "pod-sb"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("rvisor create");
    assert!(created.success(), "create the sandbox: {created}");
    assert_success("start the sandbox", &rv(&["start", "pod-sb"]));
    let actual = ctrl_c(&rvisor(), &root, &d.join("app"), "app");
    // It ran in the pod's sandbox, not one of its own.
    let record = std::fs::read_to_string(root.join("app/container.json")).unwrap_or_default();
    let record: serde_json::Value = serde_json::from_str(&record).unwrap_or_default();
    let _ = rv(&["delete", "-f", "app"]);
    let _ = rv(&["delete", "-f", "pod-sb"]);
    assert_eq!(
        expected, "trap ran: True done: True exit: 6",
        "runc's own answer"
    );
    assert_eq!(
        record["sandbox"], "pod-sb",
        "the container joined the pod's sandbox"
    );
    assert_eq!(actual, expected, "Ctrl-C at a joined container's terminal");
}
