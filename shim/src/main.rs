//! `containerd-shim-rvisor-v1`: containerd's runtime v2 shim for rvisor
//! (runtime type `io.containerd.rvisor.v1`, task API v2, which containerd
//! 1.6 and 1.7 speak and 2.x still accepts).
//!
//! containerd runs `containerd-shim-rvisor-v1 ... start` in the bundle; that
//! spawns the long-lived shim, which serves the task API over ttrpc and
//! drives the `rvisor` CLI installed beside it. Containers of one CRI pod
//! share one shim.

mod error;
mod metrics;
mod options;
mod reaper;
mod rootfs;
mod runtime;
mod service;
mod stdio;

use std::path::PathBuf;
use std::sync::Arc;

use containerd_shim::publisher::RemotePublisher;
use containerd_shim::{Config, DeleteResponse, ExitSignal, Flags, StartOpts};

use crate::runtime::Runtime;
use crate::service::TaskService;

/// Locks `m`, whether or not a panicking thread poisoned it: a panic in one
/// request must not take every other container of the shim down with it.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Waits until every thread in `threads` has finished, or `timeout`.
pub(crate) fn wait_threads(threads: &[std::thread::JoinHandle<()>], timeout: std::time::Duration) {
    let deadline = std::time::Instant::now() + timeout;
    while threads.iter().any(|t| !t.is_finished()) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Where rvisor keeps the state of containerd's containers, one directory
/// per containerd namespace (as runc's shim uses /run/containerd/runc).
const STATE_ROOT: &str = "/run/containerd/rvisor";

struct RvisorShim {
    namespace: String,
    id: String,
    bundle: PathBuf,
    exit: Arc<ExitSignal>,
}

impl RvisorShim {
    fn runtime(&self) -> Runtime {
        Runtime {
            binary: Runtime::default_binary(),
            root: PathBuf::from(STATE_ROOT).join(&self.namespace),
            global_flags: Vec::new(),
        }
    }
}

/// The shim a container belongs to: its pod's (the CRI's sandbox id, or
/// CRI-O's), else its own id.
fn grouping(bundle: &std::path::Path, id: &str) -> String {
    let Ok(text) = std::fs::read_to_string(bundle.join("config.json")) else {
        return id.to_string();
    };
    let spec: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let annotations = &spec["annotations"];
    for key in [
        "io.kubernetes.cri.sandbox-id",
        "io.kubernetes.cri-o.SandboxID",
    ] {
        if let Some(sandbox) = annotations[key].as_str().filter(|s| !s.is_empty()) {
            return sandbox.to_string();
        }
    }
    id.to_string()
}

impl containerd_shim::Shim for RvisorShim {
    type T = TaskService;

    fn new(_runtime_id: &str, args: &Flags, _config: &mut Config) -> Self {
        let bundle = if args.bundle.is_empty() {
            std::env::current_dir().unwrap_or_default()
        } else {
            PathBuf::from(&args.bundle)
        };
        RvisorShim {
            namespace: args.namespace.clone(),
            id: args.id.clone(),
            bundle,
            exit: Arc::new(ExitSignal::default()),
        }
    }

    fn start_shim(&mut self, opts: StartOpts) -> Result<String, containerd_shim::Error> {
        let group = grouping(&self.bundle, &opts.id);
        let (_pid, address) = containerd_shim::spawn(opts, &group, Vec::new())?;
        containerd_shim::util::write_address(&address)?;
        Ok(address)
    }

    /// containerd's cleanup after a shim died: end whatever is left of the
    /// container and unmount its rootfs.
    fn delete_shim(&mut self) -> Result<DeleteResponse, containerd_shim::Error> {
        let runtime = self
            .runtime()
            .with_settings(&options::RuntimeSettings::load(&self.bundle));
        let log = self.bundle.join("cleanup-log.json");
        if let Err(e) = runtime.delete_force(&self.id, &log) {
            log::warn!("cleaning up {}: {e}", self.id);
        }
        let _ = std::fs::remove_file(&log);
        rootfs::unmount(&self.bundle.join("rootfs"));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let mut exited_at =
            containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp::new();
        exited_at.seconds = now.as_secs() as i64;
        Ok(DeleteResponse {
            pid: 0,
            exit_status: 128 + libc::SIGKILL as u32,
            exited_at: containerd_shim::protos::protobuf::MessageField::some(exited_at),
            ..Default::default()
        })
    }

    fn wait(&mut self) {
        self.exit.wait();
    }

    fn create_task_service(&self, publisher: RemotePublisher) -> TaskService {
        TaskService::new(
            self.runtime(),
            publisher,
            self.namespace.clone(),
            self.exit.clone(),
        )
    }
}

fn main() {
    // Our own reaper waits for every child (see reaper.rs); the crate's
    // would take exits from under it.
    let config = Config {
        no_reaper: true,
        ..Config::default()
    };
    containerd_shim::run::<RvisorShim>("io.containerd.rvisor.v1", Some(config));
}
