//! Kubernetes pods over the CRI, as kubelet drives them, against a private
//! containerd from Debian with runtime handlers `runc` (containerd's runc
//! shim and runc) and `rvisor` (our shim): the same steps through each
//! must look the same to the client, and rvisor must leave nothing behind.
//! The CRI client is tests/scripts/cri_pod.py (grpcio and the CRI's
//! generated stubs, in the venv scripts/setup.sh makes).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::containerd::Containerd;
use common::*;

/// Where the sentry's per-namespace state lives under the shim.
const RVISOR_STATE: &str = "/run/containerd/rvisor/k8s.io";

struct Cri {
    containerd: Containerd,
    /// The CNI bridge, removed with the Cri (the bridge plugin leaves it).
    bridge: String,
    /// Holds `containerd-shim-rvisor-v1` for containerd's PATH.
    _shims: TempDir,
}

impl Cri {
    /// A containerd with the CRI plugin: the pause image, a bridge CNI
    /// network of its own (`subnet`, bridge `bridge`), handlers runc and
    /// rvisor. None (after saying why) when something is not installed.
    fn start(bridge: &str, subnet: &str) -> Option<Cri> {
        let pause = fixtures_dir().join("images/pause-oci.tar");
        if !pause.exists() || !cri_python().exists() || !Path::new("/usr/lib/cni/bridge").exists() {
            eprintln!(
                "SKIP: the pause image, CRI client or CNI plugins are missing (scripts/setup.sh)"
            );
            return None;
        }
        let shims = TempDir::new("cri-shims");
        std::os::unix::fs::symlink(
            rvisor().with_file_name("containerd-shim-rvisor-v1"),
            shims.path().join("containerd-shim-rvisor-v1"),
        )
        .expect("shim symlink");
        let dir = TempDir::new("cri");
        std::fs::create_dir_all(dir.path().join("cni/net.d")).expect("cni dir");
        std::fs::write(
            dir.path().join("cni/net.d/10-rvtest.conflist"),
            format!(
                r#"{{"cniVersion":"0.4.0","name":"{bridge}","plugins":[
 {{"type":"bridge","bridge":"{bridge}","isGateway":true,"ipMasq":false,
   "ipam":{{"type":"host-local","ranges":[[{{"subnet":"{subnet}"}}]],"dataDir":"{}/ipam"}}}},
 {{"type":"loopback"}}]}}"#,
                dir.path().display()
            ),
        )
        .expect("cni config");
        let extra = "  sandbox_image = \"localhost/pause:latest\"\n  \
             netns_mounts_under_state_dir = true\n  restrict_oom_score_adj = true\n  \
             [plugins.\"io.containerd.grpc.v1.cri\".cni]\n    bin_dir = \"/usr/lib/cni\"\n    \
             conf_dir = \"{D}/cni/net.d\"\n  \
             [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n    \
             runtime_type = \"io.containerd.runc.v2\"\n  \
             [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.rvisor]\n    \
             runtime_type = \"io.containerd.rvisor.v1\"\n  \
             [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.rvisor-host]\n    \
             runtime_type = \"io.containerd.rvisor.v1\"\n    \
             [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.rvisor-host.options]\n      \
             TypeUrl = \"io.containerd.rvisor.v1.options\"\n      \
             ConfigPath = \"{D}/rvisor-host.toml\"\n";
        // The handler `rvisor-host` runs rvisor with host networking.
        std::fs::write(
            dir.path().join("rvisor-host.toml"),
            "[rvisor_config]\nnetwork = \"host\"\n",
        )
        .expect("rvisor-host.toml");
        let containerd = Containerd::start_in(dir, extra, Some(shims.path()), "k8s.io")?;
        containerd.import("k8s.io", &pause);
        Some(Cri {
            containerd,
            bridge: bridge.to_string(),
            _shims: shims,
        })
    }

    /// Runs tests/scripts/cri_pod.py against this containerd; returns its
    /// transcript and the pod and container ids it made.
    fn client(&self, handler: &str, mode: &str, arg: &str) -> (Vec<String>, Vec<String>) {
        let logs = self.containerd.dir.path().join(format!("logs-{handler}"));
        let out = run_with_timeout(
            Command::new(cri_python())
                .arg(repo_root().join("tests/scripts/cri_pod.py"))
                .arg(self.containerd.socket())
                .args([handler, mode, arg])
                .env("CRI_LOG_ROOT", &logs),
            Duration::from_secs(300),
        );
        assert_success(&format!("cri_pod.py {handler} {mode}"), &out);
        split_ids(&out)
    }

    /// What rvisor left of the pods `ids` named: processes, mounts,
    /// cgroups, state.
    fn leftovers(&self, ids: &[String]) -> Vec<String> {
        let d = self.containerd.dir.path().display().to_string();
        let mut left = Vec::new();
        // Give exiting shims a moment.
        std::thread::sleep(Duration::from_millis(300));
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            let ours = ids.iter().any(|id| cmd.contains(id.as_str()))
                || (cmd.contains(&d) && !cmd.contains("containerd --config"));
            if ours {
                left.push(format!(
                    "process {}: {cmd}",
                    e.file_name().to_string_lossy()
                ));
            }
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for m in mounts.lines() {
            if ids.iter().any(|id| m.contains(id.as_str())) || m.contains(&d) {
                left.push(format!("mount {m}"));
            }
        }
        for ctl in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            for id in ids {
                let p = ctl.path().join("k8s.io").join(id);
                if p.exists() {
                    left.push(format!("cgroup {}", p.display()));
                }
            }
        }
        for id in ids {
            if Path::new(RVISOR_STATE).join(id).exists() {
                left.push(format!("state {RVISOR_STATE}/{id}"));
            }
        }
        left
    }
}

impl Drop for Cri {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn cri_python() -> PathBuf {
    fixtures_dir().join("cri-venv/bin/python3")
}

/// The transcript's lines, and the ids its last line lists.
fn split_ids(out: &Output) -> (Vec<String>, Vec<String>) {
    let mut lines: Vec<String> = stdout_str(out).lines().map(str::to_string).collect();
    let ids = match lines.last().and_then(|l| l.strip_prefix("ids: ")) {
        Some(ids) => ids.split_whitespace().map(str::to_string).collect(),
        None => Vec::new(),
    };
    lines.pop();
    (lines, ids)
}

/// One pod with three containers, through runc and through rvisor: pod
/// and container states, ExecSync in each (output, exit codes, a missing
/// command), the pod's hostname, rootfs separation, a pid namespace per
/// container as kubelet asks (its init is 1, ps shows only it, kill and
/// wait by its own numbers), a container exiting on its own with its code
/// while the pod goes on, StopContainer's SIGTERM and exit code, the CRI
/// log files, StopPodSandbox and RemovePodSandbox. Afterwards rvisor has
/// left nothing behind.
#[test]
fn a_pod_of_three_containers_behaves_as_under_runc() {
    let Some(cri) = Cri::start("rvcri0", "10.231.10.0/24") else {
        return;
    };
    let (runc, _) = cri.client("runc", "transcript", "pod-runc");
    let (rvisor, ids) = cri.client("rvisor", "transcript", "pod-rvisor");
    assert_eq!(
        runc.join("\n"),
        rvisor.join("\n"),
        "the CRI transcript differs (left runc, right rvisor):\n{}",
        line_diff(&runc.join("\n"), &rvisor.join("\n"))
    );
    assert_eq!(ids.len(), 4, "the client made a pod and three containers");
    let left = cri.leftovers(&ids);
    assert!(left.is_empty(), "rvisor left behind:\n{}", left.join("\n"));
}

/// A pod with shareProcessNamespace: the pause process is pid 1 for every
/// container, each sees the others' processes and can signal them.
#[test]
fn a_pod_sharing_one_pid_namespace_behaves_as_under_runc() {
    let Some(cri) = Cri::start("rvcri3", "10.231.13.0/24") else {
        return;
    };
    let (runc, _) = cri.client("runc", "shared", "shared-runc");
    let (rvisor, ids) = cri.client("rvisor", "shared", "shared-rvisor");
    assert_eq!(
        runc.join("\n"),
        rvisor.join("\n"),
        "the CRI transcript differs (left runc, right rvisor):\n{}",
        line_diff(&runc.join("\n"), &rvisor.join("\n"))
    );
    let left = cri.leftovers(&ids);
    assert!(left.is_empty(), "rvisor left behind:\n{}", left.join("\n"));
}

/// The containers of a pod run in one sandbox: one sentry for the pod,
/// whatever number of containers it has. kubelet's ContainerStats of one
/// (it has no cgroup of its own) still shows the CPU and memory it uses. kubelet's ContainerStats of one
/// (it has no cgroup of its own) still shows the CPU and memory it uses.
#[test]
fn the_containers_of_a_pod_share_one_sentry() {
    let Some(cri) = Cri::start("rvcri1", "10.231.11.0/24") else {
        return;
    };
    let (out, ids) = cri.client("rvisor", "sentries", "pod-count");
    assert_eq!(
        out,
        vec![
            "c1: CONTAINER_RUNNING",
            "c2: CONTAINER_RUNNING",
            "sentries: 1",
            "c1 stats: cpu True, memory True",
        ],
        "one sentry for a pod of two containers, and their stats"
    );
    let left = cri.leftovers(&ids);
    assert!(left.is_empty(), "rvisor left behind:\n{}", left.join("\n"));
}

/// A pod's web server (busybox httpd) as its users reach it: over
/// loopback from its own container and from a second container of the
/// pod, and from the node at the pod's IP on the CNI bridge. runc's
/// transcript is the reference; rvisor with its own network stack (the
/// default, which takes over the pod's CNI device) and with host
/// networking (the handler `rvisor-host`) must match it line for line.
#[test]
fn a_pods_web_server_is_reachable_as_under_runc() {
    let Some(cri) = Cri::start("rvcri4", "10.231.14.0/24") else {
        return;
    };
    let (runc, runc_ids) = cri.client("runc", "http", "web-runc");
    assert!(
        runc.iter().any(|l| l == "node fetch: served from the pod"),
        "the runc reference did not serve the node:\n{}",
        runc.join("\n")
    );
    let (host, host_ids) = cri.client("rvisor-host", "http", "web-host");
    assert_eq!(host, runc, "rvisor --network=host vs runc");
    let (sandbox, sandbox_ids) = cri.client("rvisor", "http", "web-sandbox");
    assert_eq!(sandbox, runc, "rvisor (its own network stack) vs runc");
    let mut ids = runc_ids;
    ids.extend(host_ids);
    ids.extend(sandbox_ids);
    let left = cri.leftovers(&ids);
    assert!(left.is_empty(), "rvisor left behind:\n{}", left.join("\n"));
}

/// Ten pods created, used and removed at once, as a node scheduling a
/// burst does: each sees its own hostname, and nothing is left.
#[test]
fn ten_pods_run_and_go_in_parallel() {
    let Some(cri) = Cri::start("rvcri2", "10.231.12.0/24") else {
        return;
    };
    let (out, ids) = cri.client("rvisor", "parallel", "10");
    let mut expected: Vec<String> = (0..10)
        .map(|i| format!("pod{i:02}: exit 0 stdout 'pod{i:02}\\n' stderr ''"))
        .collect();
    expected.push("after removal: 0 pods".into());
    assert_eq!(out, expected);
    assert_eq!(ids.len(), 20, "ten pods of one container each");
    let left = cri.leftovers(&ids);
    assert!(left.is_empty(), "rvisor left behind:\n{}", left.join("\n"));
}
