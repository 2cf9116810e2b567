//! Reading an OCI bundle's config.json into the sentry's boot configuration.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::Spec;
use sentry::{BootConfig, MountKind, MountSpec, ProcessSpec};

pub struct Bundle {
    pub rootfs: PathBuf,
    pub read_only: bool,
    pub boot: BootConfig,
    /// Host sources of the bind mounts, each served by its own gofer.
    pub binds: Vec<BindSource>,
    /// process.terminal: the init gets a terminal as its stdio.
    pub terminal: bool,
    pub annotations: std::collections::BTreeMap<String, String>,
    pub hooks: Option<oci_spec::runtime::Hooks>,
    /// linux.cgroupsPath and linux.resources.
    pub cgroups_path: Option<PathBuf>,
    pub resources: Option<oci_spec::runtime::LinuxResources>,
}

/// A bind mount's host side: `mount` indexes `boot.mounts`, whose gofer fd
/// the sandbox fills in when it starts that mount's gofer.
#[derive(Clone, Debug)]
pub struct BindSource {
    pub source: PathBuf,
    pub read_only: bool,
    pub mount: usize,
}

fn rlimit_resource(name: &str) -> Option<u32> {
    Some(match name {
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        _ => return None,
    })
}

/// The sentry's view of an OCI process (config.json's, or `exec
/// --process`'s).
pub fn process_spec(process: &oci_spec::runtime::Process) -> Result<ProcessSpec> {
    let argv = process.args().clone().unwrap_or_default();
    if argv.is_empty() {
        bail!("process.args must not be empty");
    }
    let user = process.user();
    let mut rlimits = Vec::new();
    for r in process.rlimits().clone().unwrap_or_default() {
        let name = serde_json::to_value(r.typ())?
            .as_str()
            .unwrap_or_default()
            .to_string();
        let res = rlimit_resource(&name).with_context(|| format!("unknown rlimit {name}"))?;
        rlimits.push((res, r.soft(), r.hard()));
    }
    Ok(ProcessSpec {
        argv,
        env: process.env().clone().unwrap_or_default(),
        cwd: process.cwd().display().to_string(),
        uid: user.uid(),
        gid: user.gid(),
        additional_gids: user.additional_gids().clone().unwrap_or_default(),
        umask: user.umask().unwrap_or(0o022),
        rlimits,
    })
}

pub fn load(bundle_dir: &Path) -> Result<Bundle> {
    let config_path = bundle_dir.join("config.json");
    let text = std::fs::read_to_string(&config_path)
        .with_context(|| format!("reading {}", config_path.display()))?;
    let spec: Spec = serde_json::from_str(&text)
        .with_context(|| format!("parsing {}", config_path.display()))?;
    if !spec.version().starts_with("1.") {
        bail!(
            "unsupported ociVersion {:?} (rvisor supports 1.x)",
            spec.version()
        );
    }
    let root = spec.root().as_ref().context("config.json has no root")?;
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        bundle_dir.join(root.path())
    };
    let rootfs = rootfs
        .canonicalize()
        .with_context(|| format!("rootfs {}", rootfs.display()))?;
    if !rootfs.is_dir() {
        bail!("rootfs {} is not a directory", rootfs.display());
    }
    let process = spec
        .process()
        .as_ref()
        .context("config.json has no process")?;
    let proc_spec = process_spec(process)?;
    let mut mounts = Vec::new();
    let mut binds = Vec::new();
    for m in spec.mounts().clone().unwrap_or_default() {
        let dest = m.destination().display().to_string();
        let options = m.options().clone().unwrap_or_default();
        let is_bind = m.typ().as_deref() == Some("bind")
            || options.iter().any(|o| o == "bind" || o == "rbind");
        if is_bind {
            let source = m
                .source()
                .clone()
                .with_context(|| format!("bind mount of {dest} has no source"))?;
            let source = if source.is_absolute() {
                source
            } else {
                bundle_dir.join(source)
            };
            if !source.exists() {
                bail!("bind mount source {} does not exist", source.display());
            }
            binds.push(BindSource {
                source,
                read_only: options.iter().any(|o| o == "ro"),
                mount: mounts.len(),
            });
            mounts.push(MountSpec {
                destination: dest,
                kind: MountKind::Bind {
                    gofer_fd: -1,
                    read_only: options.iter().any(|o| o == "ro"),
                },
            });
            continue;
        }
        let kind = match (m.typ().as_deref(), dest.as_str()) {
            (_, "/dev") => Some(MountKind::Dev),
            (Some("proc"), _) => Some(MountKind::Proc),
            (Some("sysfs"), _) => Some(MountKind::Sys),
            (Some("tmpfs"), _) => {
                let mode = m
                    .options()
                    .clone()
                    .unwrap_or_default()
                    .iter()
                    .find_map(|o| {
                        o.strip_prefix("mode=")
                            .and_then(|v| u32::from_str_radix(v, 8).ok())
                    })
                    .unwrap_or(0o1777);
                Some(MountKind::Tmpfs { mode })
            }
            (Some("devpts"), _) => Some(MountKind::Devpts),
            // mqueue, cgroup: an empty directory for now.
            (Some("mqueue") | Some("cgroup") | Some("cgroup2"), _) => {
                Some(MountKind::Tmpfs { mode: 0o755 })
            }
            _ => {
                tracing::warn!(
                    "mount of {dest} ({:?}) is not supported yet; skipped",
                    m.typ()
                );
                None
            }
        };
        if let Some(kind) = kind {
            mounts.push(MountSpec {
                destination: dest,
                kind,
            });
        }
    }
    let boot = BootConfig {
        argv: proc_spec.argv,
        env: proc_spec.env,
        cwd: proc_spec.cwd,
        hostname: spec.hostname().clone().unwrap_or_else(|| "rvisor".into()),
        uid: proc_spec.uid,
        gid: proc_spec.gid,
        additional_gids: proc_spec.additional_gids,
        umask: proc_spec.umask,
        rlimits: proc_spec.rlimits,
        mounts,
        gofer_fd: -1,
        control_fd: None,
        wait_for_start: false,
    };
    Ok(Bundle {
        rootfs,
        binds,
        read_only: root.readonly().unwrap_or(false),
        boot,
        terminal: process.terminal().unwrap_or(false),
        annotations: spec
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        hooks: spec.hooks().clone(),
        cgroups_path: spec.linux().as_ref().and_then(|l| l.cgroups_path().clone()),
        resources: spec.linux().as_ref().and_then(|l| l.resources().clone()),
    })
}
