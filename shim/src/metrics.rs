//! Task statistics in the types containerd (and the CRI's
//! ContainerStats) expect: `io.containerd.cgroups.v1.Metrics` on a cgroup
//! v1 or hybrid host, `io.containerd.cgroups.v2.Metrics` on a unified one,
//! built from what `rvisor events --stats` reads off the sandbox's cgroup.

use containerd_shim::protos::cgroups::metrics as v1;
use containerd_shim::protos::cgroups_v2::metrics as v2;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::{MessageDyn, MessageField};
use serde_json::Value;

use crate::error::ShimError;

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// Whether this host mounts cgroup v2 alone at /sys/fs/cgroup.
fn unified_host() -> bool {
    std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

pub fn from_rvisor_stats(stats: &Value) -> Result<Any, ShimError> {
    let cpu_ns = num(&stats["cpu"]["usage"]["total"]);
    let mem = &stats["memory"]["usage"];
    let pids = &stats["pids"];
    let message: Box<dyn MessageDyn> = if unified_host() {
        Box::new(v2::Metrics {
            cpu: MessageField::some(v2::CPUStat {
                usage_usec: cpu_ns / 1000,
                ..Default::default()
            }),
            memory: MessageField::some(v2::MemoryStat {
                usage: num(&mem["usage"]),
                usage_limit: num(&mem["limit"]),
                max_usage: num(&mem["max"]),
                ..Default::default()
            }),
            pids: MessageField::some(v2::PidsStat {
                current: num(&pids["current"]),
                limit: num(&pids["limit"]),
                ..Default::default()
            }),
            ..Default::default()
        })
    } else {
        Box::new(v1::Metrics {
            cpu: MessageField::some(v1::CPUStat {
                usage: MessageField::some(v1::CPUUsage {
                    total: cpu_ns,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            memory: MessageField::some(v1::MemoryStat {
                usage: MessageField::some(v1::MemoryEntry {
                    usage: num(&mem["usage"]),
                    max: num(&mem["max"]),
                    limit: num(&mem["limit"]),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            pids: MessageField::some(v1::PidsStat {
                current: num(&pids["current"]),
                limit: num(&pids["limit"]),
                ..Default::default()
            }),
            ..Default::default()
        })
    };
    containerd_shim::util::convert_to_any(message)
        .map_err(|e| ShimError::FailedPrecondition(format!("encoding stats: {e}")))
}
