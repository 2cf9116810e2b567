//! cgroups for a sandbox, through cgroupfs (v1, v2 or this machine's
//! hybrid): the sentry, its stubs and the gofers join `linux.cgroupsPath`
//! before they run anything, so the spec's memory, cpu, cpuset and pids
//! limits bound the whole sandbox, as runsc does. Also freezing (pause and
//! resume) and the numbers `events --stats` reports.
//!
//! The limits count the sandbox's real footprint: the sentry's own memory
//! and threads (one per application thread) as well as the stubs'.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The v1 controllers a sandbox joins (where the host has them).
const V1_CONTROLLERS: [&str; 8] = [
    "cpu", "cpuacct", "cpuset", "memory", "pids", "freezer", "blkio", "devices",
];

/// Where a sandbox's cgroup lives: one directory per v1 controller, or
/// the single v2 directory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Cgroup {
    pub v2: bool,
    /// v1: (controller, directory); v2: ("", directory).
    pub dirs: Vec<(String, PathBuf)>,
}

fn is_v2_root() -> bool {
    Path::new(CGROUP_ROOT).join("cgroup.controllers").exists()
}

/// The cgroup path a container uses: the spec's `linux.cgroupsPath`, or
/// `/rvisor/ID`. A systemd-style `slice:prefix:name` (which needs the
/// systemd driver) becomes `/slice/prefix-name.scope`'s cgroupfs twin.
pub fn container_path(spec_path: Option<&Path>, id: &str) -> PathBuf {
    let Some(p) = spec_path.map(|p| p.to_string_lossy().into_owned()) else {
        return PathBuf::from(format!("/rvisor/{id}"));
    };
    let parts: Vec<&str> = p.split(':').collect();
    let p = if parts.len() == 3 && !p.starts_with('/') {
        format!("/{}/{}-{}.scope", parts[0], parts[1], parts[2])
    } else {
        p
    };
    // Relative paths are relative to the cgroup root (as runc's cgroupfs
    // driver places them under its own cgroup, which here is the root).
    let rel = p.trim_start_matches('/');
    PathBuf::from(format!("/{rel}"))
}

/// Refuses paths that would climb out of the cgroup hierarchy.
fn check_path(path: &Path) -> Result<()> {
    if path
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        bail!("cgroupsPath {} must not contain ..", path.display());
    }
    Ok(())
}

impl Cgroup {
    /// Makes the cgroup (directories and limits).
    pub fn create(path: &Path, resources: Option<&LinuxResources>) -> Result<Cgroup> {
        check_path(path)?;
        let rel = path.strip_prefix("/").unwrap_or(path);
        let cg = if is_v2_root() {
            let dir = Path::new(CGROUP_ROOT).join(rel);
            enable_v2_controllers(&dir);
            Cgroup {
                v2: true,
                dirs: vec![(String::new(), dir)],
            }
        } else {
            let dirs = V1_CONTROLLERS
                .iter()
                .filter(|c| Path::new(CGROUP_ROOT).join(c).is_dir())
                .map(|c| (c.to_string(), Path::new(CGROUP_ROOT).join(c).join(rel)))
                .collect();
            Cgroup { v2: false, dirs }
        };
        for (ctrl, dir) in &cg.dirs {
            if ctrl == "cpuset" {
                make_cpuset_dirs(dir)?;
            } else {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating cgroup {}", dir.display()))?;
            }
        }
        if let Some(r) = resources {
            if let Err(e) = cg.apply(r) {
                cg.destroy();
                return Err(e);
            }
        }
        Ok(cg)
    }

    fn dir(&self, ctrl: &str) -> Option<&Path> {
        if self.v2 {
            return self.dirs.first().map(|(_, d)| d.as_path());
        }
        self.dirs
            .iter()
            .find(|(c, _)| c == ctrl)
            .map(|(_, d)| d.as_path())
    }

    fn write(&self, ctrl: &str, file: &str, value: &str) -> Result<()> {
        let Some(dir) = self.dir(ctrl) else {
            bail!("the host has no {ctrl} cgroup controller for {file}");
        };
        let path = dir.join(file);
        std::fs::write(&path, value)
            .with_context(|| format!("setting {} to {value}", path.display()))
    }

    fn read(&self, ctrl: &str, file: &str) -> Option<String> {
        let dir = self.dir(ctrl)?;
        std::fs::read_to_string(dir.join(file))
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// Applies the spec's limits (also `update`).
    pub fn apply(&self, r: &LinuxResources) -> Result<()> {
        if let Some(m) = r.memory() {
            if self.v2 {
                if let Some(l) = m.limit() {
                    self.write("memory", "memory.max", &v2_limit(l))?;
                }
                if let Some(l) = m.reservation() {
                    self.write("memory", "memory.low", &v2_limit(l))?;
                }
                if let (Some(swap), Some(limit)) = (m.swap(), m.limit()) {
                    // OCI's swap is memory+swap; v2's is swap alone.
                    let only_swap = if swap < 0 || limit < 0 {
                        -1
                    } else {
                        (swap - limit).max(0)
                    };
                    self.write("memory", "memory.swap.max", &v2_limit(only_swap))?;
                }
            } else {
                if let Some(l) = m.limit() {
                    self.write("memory", "memory.limit_in_bytes", &l.to_string())?;
                }
                if let Some(l) = m.reservation() {
                    self.write("memory", "memory.soft_limit_in_bytes", &l.to_string())?;
                }
                if let Some(s) = m.swap() {
                    // Only where the kernel accounts swap.
                    if self.read("memory", "memory.memsw.limit_in_bytes").is_some() {
                        self.write("memory", "memory.memsw.limit_in_bytes", &s.to_string())?;
                    }
                }
            }
        }
        if let Some(c) = r.cpu() {
            if self.v2 {
                if let Some(s) = c.shares() {
                    // runc's conversion of shares (2..262144) to weight (1..10000).
                    let w = if s == 0 {
                        100
                    } else {
                        1 + ((s.clamp(2, 262_144) - 2) * 9999) / 262_142
                    };
                    self.write("cpu", "cpu.weight", &w.to_string())?;
                }
                if c.quota().is_some() || c.period().is_some() {
                    let quota = c
                        .quota()
                        .filter(|q| *q > 0)
                        .map_or("max".to_string(), |q| q.to_string());
                    let period = c.period().unwrap_or(100_000);
                    self.write("cpu", "cpu.max", &format!("{quota} {period}"))?;
                }
            } else {
                if let Some(s) = c.shares() {
                    self.write("cpu", "cpu.shares", &s.to_string())?;
                }
                if let Some(p) = c.period() {
                    self.write("cpu", "cpu.cfs_period_us", &p.to_string())?;
                }
                if let Some(q) = c.quota() {
                    self.write("cpu", "cpu.cfs_quota_us", &q.to_string())?;
                }
            }
            if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
                self.write("cpuset", "cpuset.cpus", cpus)?;
            }
            if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
                self.write("cpuset", "cpuset.mems", mems)?;
            }
        }
        if let Some(p) = r.pids() {
            let v = if p.limit() > 0 {
                p.limit().to_string()
            } else {
                "max".to_string()
            };
            self.write("pids", "pids.max", &v)?;
        }
        Ok(())
    }

    /// The `cgroup.procs` files a new process writes "0" to (between fork
    /// and exec) to join every hierarchy before it runs.
    pub fn procs_files(&self) -> Vec<CString> {
        self.dirs
            .iter()
            .filter_map(|(_, d)| {
                CString::new(d.join("cgroup.procs").into_os_string().into_encoded_bytes()).ok()
            })
            .collect()
    }

    /// Freezes (pause) or thaws (resume) every process of the sandbox and
    /// waits until the kernel says it is done.
    pub fn set_frozen(&self, frozen: bool) -> Result<()> {
        if self.v2 {
            self.write("", "cgroup.freeze", if frozen { "1" } else { "0" })?;
        } else {
            self.write(
                "freezer",
                "freezer.state",
                if frozen { "FROZEN" } else { "THAWED" },
            )?;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut tries = 0u32;
        while self.frozen() != frozen {
            if Instant::now() > deadline {
                bail!(
                    "the sandbox did not {} in time",
                    if frozen { "freeze" } else { "thaw" }
                );
            }
            tries += 1;
            if frozen && !self.v2 && tries.is_multiple_of(50) {
                // A v1 freezer can stay FREEZING for good when processes
                // join the cgroup while it freezes (the sandbox forks stubs);
                // runc thaws and freezes again, and so do we.
                self.write("freezer", "freezer.state", "THAWED")?;
                std::thread::sleep(Duration::from_millis(10));
                self.write("freezer", "freezer.state", "FROZEN")?;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    pub fn frozen(&self) -> bool {
        if self.v2 {
            self.read("", "cgroup.events")
                .is_some_and(|e| e.lines().any(|l| l == "frozen 1"))
        } else {
            self.read("freezer", "freezer.state").as_deref() == Some("FROZEN")
        }
    }

    /// runc's `events --stats` data: cpu, memory and pids.
    pub fn stats(&self) -> serde_json::Value {
        let num = |ctrl: &str, file: &str| -> u64 {
            self.read(ctrl, file)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0)
        };
        let stat_field = |ctrl: &str, file: &str, key: &str| -> u64 {
            self.read(ctrl, file)
                .and_then(|s| {
                    s.lines().find_map(|l| {
                        let (k, v) = l.split_once(' ')?;
                        (k == key).then(|| v.trim().parse().ok()).flatten()
                    })
                })
                .unwrap_or(0)
        };
        let (cpu_total, mem_usage, mem_max, mem_limit, pids_limit) = if self.v2 {
            (
                stat_field("", "cpu.stat", "usage_usec") * 1000,
                num("", "memory.current"),
                num("", "memory.peak"),
                num("", "memory.max"),
                num("", "pids.max"),
            )
        } else {
            (
                num("cpuacct", "cpuacct.usage"),
                num("memory", "memory.usage_in_bytes"),
                num("memory", "memory.max_usage_in_bytes"),
                num("memory", "memory.limit_in_bytes"),
                num("pids", "pids.max"),
            )
        };
        let oom_kills = if self.v2 {
            stat_field("", "memory.events", "oom_kill")
        } else {
            stat_field("memory", "memory.oom_control", "oom_kill")
        };
        serde_json::json!({
            "cpu": { "usage": { "total": cpu_total } },
            "memory": {
                "usage": { "usage": mem_usage, "max": mem_max, "limit": mem_limit },
                "oom_kill": oom_kills,
            },
            "pids": {
                "current": num(if self.v2 { "" } else { "pids" }, "pids.current"),
                "limit": pids_limit,
            },
        })
    }

    /// Removes the cgroup directories once their processes are gone.
    pub fn destroy(&self) {
        for (_, dir) in &self.dirs {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    // EBUSY while killed processes are still leaving.
                    Err(e) if Instant::now() < deadline => {
                        tracing::debug!("removing {}: {e}; retrying", dir.display());
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => {
                        tracing::warn!("removing cgroup {}: {e}", dir.display());
                        break;
                    }
                }
            }
        }
    }
}

fn v2_limit(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// v2: let the new cgroup use the controllers (best effort: a hybrid host's
/// unified tree may have none).
fn enable_v2_controllers(dir: &Path) {
    let root = Path::new(CGROUP_ROOT);
    let mut cur = root.to_path_buf();
    let rel: Vec<_> = dir
        .strip_prefix(root)
        .map(|r| r.components().collect())
        .unwrap_or_default();
    for comp in rel {
        let avail = std::fs::read_to_string(cur.join("cgroup.controllers")).unwrap_or_default();
        let enable: Vec<String> = avail
            .split_whitespace()
            .filter(|c| ["cpu", "cpuset", "memory", "pids"].contains(c))
            .map(|c| format!("+{c}"))
            .collect();
        if !enable.is_empty() {
            let _ = std::fs::write(cur.join("cgroup.subtree_control"), enable.join(" "));
        }
        cur.push(comp);
        let _ = std::fs::create_dir(&cur);
    }
}

/// v1 cpuset: each new level starts with no cpus or mems, so it is filled
/// from its parent on the way down.
fn make_cpuset_dirs(dir: &Path) -> Result<()> {
    let root = Path::new(CGROUP_ROOT).join("cpuset");
    let rel = dir.strip_prefix(&root).unwrap_or(Path::new(""));
    let mut cur = root.clone();
    for comp in rel.components() {
        let parent = cur.clone();
        cur.push(comp);
        if !cur.exists() {
            std::fs::create_dir(&cur)
                .with_context(|| format!("creating cgroup {}", cur.display()))?;
        }
        for f in ["cpuset.cpus", "cpuset.mems"] {
            let mine = std::fs::read_to_string(cur.join(f)).unwrap_or_default();
            if mine.trim().is_empty() {
                let theirs = std::fs::read_to_string(parent.join(f)).unwrap_or_default();
                std::fs::write(cur.join(f), theirs.trim())
                    .with_context(|| format!("setting {}", cur.join(f).display()))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(container_path(None, "abc"), PathBuf::from("/rvisor/abc"));
        assert_eq!(
            container_path(Some(Path::new("/libpod_parent/libpod-x")), "x"),
            PathBuf::from("/libpod_parent/libpod-x")
        );
        assert_eq!(
            container_path(Some(Path::new("default/x")), "x"),
            PathBuf::from("/default/x")
        );
        assert_eq!(
            container_path(Some(Path::new("system.slice:libpod:x")), "x"),
            PathBuf::from("/system.slice/libpod-x.scope")
        );
        assert!(check_path(Path::new("/a/../../etc")).is_err());
    }
}
