//! A read-only cgroup v2 view for the spec's `cgroup` mount
//! (/sys/fs/cgroup), as a container sees its own cgroup under runc with a
//! cgroup namespace: the root of the view is the sandbox's cgroup.
//!
//! Runtimes size themselves from it (the JVM's heap and CPU count, Go's
//! GOMAXPROCS, Node's heap): the limits are the spec's `linux.resources`,
//! the usage is the sandbox's own. Memory usage comes from the host cgroup
//! the CLI made for the sandbox (a file it opened and donated), so it counts
//! the sentry and the stubs as the limit does; without one it counts the
//! in-memory files the sentry holds.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::simple::{GeneratedFile, StaticDir};
use crate::kernel::{kernel, lock};
use crate::vfs::Inode;

/// statfs(2)'s f_type for cgroup2, how runc, systemd and others recognise
/// the unified hierarchy.
pub const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// The spec's resource limits, as the view shows them.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CgroupLimits {
    /// memory.limit in bytes.
    pub memory_max: Option<i64>,
    /// memory.reservation in bytes (memory.low).
    pub memory_low: Option<i64>,
    /// memory.swap (memory + swap, as runc's v1 field) in bytes.
    pub memory_swap: Option<i64>,
    /// cpu.quota in µs per `cpu_period`.
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    /// cpu.shares (v1 units, converted to cpu.weight as runc does).
    pub cpu_shares: Option<u64>,
    /// pids.limit.
    pub pids_max: Option<i64>,
}

fn text(f: impl Fn() -> String + Send + Sync + 'static) -> Arc<dyn Inode> {
    Arc::new(GeneratedFile::new(move || Ok(f().into_bytes())))
}

/// "max" for no limit, as cgroup v2 writes it.
fn limit(v: Option<i64>) -> String {
    match v {
        Some(n) if n >= 0 => format!("{n}\n"),
        _ => "max\n".into(),
    }
}

/// runc's conversion of v1 cpu.shares (2..262144) to v2 cpu.weight (1..10000).
fn weight(shares: Option<u64>) -> u64 {
    match shares {
        Some(s) if s > 0 => 1 + (s.clamp(2, 262_144) - 2) * 9999 / 262_142,
        _ => 100,
    }
}

/// Live threads of the sandbox.
fn thread_count() -> usize {
    kernel()
        .live_processes()
        .iter()
        .map(|p| lock(&p.threads).iter().filter(|t| !t.is_gone()).count())
        .sum()
}

/// CPU time of every live process, in µs.
fn cpu_usec() -> u64 {
    kernel()
        .live_processes()
        .iter()
        .map(|p| p.cpu_ns() / 1000)
        .sum()
}

/// Bytes in use: the host cgroup's own count when the CLI donated it.
fn memory_current(usage: Option<&OwnedFd>) -> u64 {
    if let Some(fd) = usage {
        let mut buf = [0u8; 32];
        if let Ok(n) = nix::sys::uio::pread(fd, &mut buf, 0) {
            if let Some(v) = std::str::from_utf8(&buf[..n])
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                return v;
            }
        }
    }
    super::file_data::mem_used()
}

/// Builds the view. `usage` is the host cgroup's memory usage file
/// (memory.current, or v1's memory.usage_in_bytes), if there is one.
pub fn new_cgroupfs(limits: &CgroupLimits, usage: Option<OwnedFd>) -> Arc<dyn Inode> {
    let l = limits.clone();
    let usage = Arc::new(usage);
    let cpu_max = match (l.cpu_quota, l.cpu_period) {
        (Some(q), p) if q > 0 => format!("{q} {}\n", p.unwrap_or(100_000)),
        (_, p) => format!("max {}\n", p.unwrap_or(100_000)),
    };
    // v1's memory.swap is memory + swap; v2's memory.swap.max is swap alone.
    let swap_max = match (l.memory_swap, l.memory_max) {
        (Some(s), Some(m)) if s >= 0 && m >= 0 => Some((s - m).max(0)),
        (Some(s), None) if s >= 0 => Some(s),
        _ => None,
    };
    let current = {
        let usage = usage.clone();
        move || format!("{}\n", memory_current(usage.as_ref().as_ref()))
    };
    let stat = {
        let usage = usage.clone();
        move || {
            let cur = memory_current(usage.as_ref().as_ref());
            format!(
                "anon {cur}\nfile 0\nkernel 0\nshmem 0\nsock 0\nfile_mapped 0\nfile_dirty 0\n\
                 pgfault 0\npgmajfault 0\n"
            )
        }
    };
    let dir = StaticDir::new(0o555)
        .with_fs_magic(CGROUP2_SUPER_MAGIC)
        .with("cgroup.controllers", text(|| "cpu memory pids\n".into()))
        .with("cgroup.subtree_control", text(|| "\n".into()))
        .with("cgroup.type", text(|| "domain\n".into()))
        .with(
            "cgroup.procs",
            text(|| {
                kernel().live_processes()
                    .iter()
                    .map(|p| format!("{}\n", p.pid))
                    .collect()
            }),
        )
        .with(
            "cgroup.events",
            text(|| "populated 1\nfrozen 0\n".into()),
        )
        .with("cgroup.max.depth", text(|| "max\n".into()))
        .with("cgroup.max.descendants", text(|| "max\n".into()))
        .with("cpu.max", text(move || cpu_max.clone()))
        .with("cpu.weight", text(move || format!("{}\n", weight(l.cpu_shares))))
        .with(
            "cpu.stat",
            text(|| {
                let u = cpu_usec();
                format!("usage_usec {u}\nuser_usec {u}\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n")
            }),
        )
        .with("memory.max", text(move || limit(l.memory_max)))
        .with("memory.high", text(|| "max\n".into()))
        .with("memory.low", text(move || limit(l.memory_low.or(Some(0)))))
        .with("memory.min", text(|| "0\n".into()))
        .with("memory.current", text(current))
        .with("memory.stat", text(stat))
        .with("memory.swap.max", text(move || limit(swap_max)))
        .with("memory.swap.current", text(|| "0\n".into()))
        .with(
            "memory.events",
            text(|| "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n".into()),
        )
        .with("pids.max", text(move || limit(l.pids_max)))
        .with("pids.current", text(|| format!("{}\n", thread_count())));
    Arc::new(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_convert_to_weight_as_runc_does() {
        assert_eq!(weight(None), 100);
        assert_eq!(weight(Some(2)), 1);
        assert_eq!(weight(Some(1024)), 39);
        assert_eq!(weight(Some(262_144)), 10_000);
    }

    #[test]
    fn negative_limits_read_as_max() {
        assert_eq!(limit(None), "max\n");
        assert_eq!(limit(Some(-1)), "max\n");
        assert_eq!(limit(Some(1 << 20)), "1048576\n");
    }
}
