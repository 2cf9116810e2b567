//! Reading an OCI bundle's config.json into the sentry's boot configuration.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::Spec;
use sentry::{BootConfig, MountKind, MountSpec, ProcessSpec};

pub struct Bundle {
    pub rootfs: PathBuf,
    pub boot: BootConfig,
    /// Host sources of the bind mounts, each served by its own gofer.
    pub binds: Vec<BindSource>,
    /// process.terminal: the init gets a terminal as its stdio.
    pub terminal: bool,
    pub annotations: std::collections::BTreeMap<String, String>,
    pub hooks: Option<oci_spec::runtime::Hooks>,
    /// process.oomScoreAdj, for the sandbox's host processes.
    pub oom_score_adj: Option<i32>,
    /// linux.cgroupsPath and linux.resources.
    pub cgroups_path: Option<PathBuf>,
    pub resources: Option<oci_spec::runtime::LinuxResources>,
}

/// Whether the spec asks for a pid namespace of its own (a `pid` entry
/// without a path): what a container joining a pod's sandbox gets unless
/// the pod shares one (the CRI then names the sandbox's by path).
fn new_pid_namespace(spec: &oci_spec::runtime::Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| {
            ns.iter().any(|n| {
                n.typ() == oci_spec::runtime::LinuxNamespaceType::Pid && n.path().is_none()
            })
        })
}

/// The network namespace the spec gives the container: a path to join
/// (a CNI-made netns, or a pod's), a new one, or none (the host's).
fn network_namespace(spec: &oci_spec::runtime::Spec) -> sentry::NetworkNamespace {
    let entry = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .and_then(|ns| {
            ns.iter()
                .find(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Network)
        });
    match entry {
        None => sentry::NetworkNamespace::Inherit,
        Some(n) => match n.path() {
            Some(p) => sentry::NetworkNamespace::Path(p.display().to_string()),
            None => sentry::NetworkNamespace::New,
        },
    }
}

/// The spec's network sysctls that the sentry's stack honours
/// (linux.sysctl); the rest describe the host kernel's stack, which the
/// sandbox never uses, and are ignored as runsc ignores them.
fn net_sysctls(spec: &oci_spec::runtime::Spec) -> Result<sentry::NetSysctls> {
    let mut out = sentry::NetSysctls::default();
    let sysctl = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref());
    if let Some(v) = sysctl.and_then(|s| s.get("net.ipv4.ping_group_range")) {
        let mut parts = v.split_whitespace().map(str::parse::<u32>);
        match (parts.next(), parts.next(), parts.next()) {
            (Some(Ok(lo)), Some(Ok(hi)), None) => out.ping_group_range = (lo, hi),
            _ => bail!("linux.sysctl: net.ipv4.ping_group_range {v:?} is not two group IDs"),
        }
    }
    Ok(out)
}

/// A bind mount's host side: `mount` indexes `boot.mounts`, whose gofer fd
/// the sandbox fills in when it starts that mount's gofer.
#[derive(Clone, Debug)]
pub struct BindSource {
    pub source: PathBuf,
    pub read_only: bool,
    pub mount: usize,
}

/// Capability names by bit number (linux/capability.h).
const CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

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

/// The spec's linux.seccomp as the sentry enforces it. Names the x86_64
/// table does not know (other architectures' calls) are skipped, as runc
/// skips calls libseccomp does not know.
pub fn seccomp_profile(v: &serde_json::Value) -> Result<sentry::kernel::seccomp::SeccompProfile> {
    use sentry::kernel::seccomp::{ArgCond, ArgOp, SeccompAction, SeccompProfile};
    let default_errno = v["defaultErrnoRet"].as_i64().unwrap_or(libc::EPERM as i64) as i32;
    let action = |a: &serde_json::Value, errno: Option<i64>| -> Result<SeccompAction> {
        let errno = errno.map(|e| e as i32).unwrap_or(default_errno);
        Ok(match a.as_str().unwrap_or_default() {
            "SCMP_ACT_ALLOW" => SeccompAction::Allow,
            "SCMP_ACT_LOG" => SeccompAction::Log,
            "SCMP_ACT_ERRNO" => SeccompAction::Errno(errno),
            // A tracer or notifier would decide; there is none.
            "SCMP_ACT_TRACE" | "SCMP_ACT_NOTIFY" => SeccompAction::Errno(libc::ENOSYS),
            "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" | "SCMP_ACT_KILL_PROCESS" => {
                SeccompAction::Kill
            }
            "SCMP_ACT_TRAP" => SeccompAction::Trap,
            other => bail!("unknown seccomp action {other:?}"),
        })
    };
    let mut p = SeccompProfile {
        default: Some(action(&v["defaultAction"], None)?),
        ..Default::default()
    };
    if let Some(arches) = v["architectures"].as_array() {
        let ours = arches.iter().any(|a| {
            matches!(
                a.as_str(),
                Some("SCMP_ARCH_X86_64") | Some("SCMP_ARCH_NATIVE")
            )
        });
        if !arches.is_empty() && !ours {
            bail!("the seccomp profile does not cover x86_64");
        }
    }
    for rule in v["syscalls"].as_array().cloned().unwrap_or_default() {
        let act = action(&rule["action"], rule["errnoRet"].as_i64())?;
        let mut conds = Vec::new();
        for a in rule["args"].as_array().cloned().unwrap_or_default() {
            let op = match a["op"].as_str().unwrap_or_default() {
                "SCMP_CMP_EQ" => ArgOp::Eq,
                "SCMP_CMP_NE" => ArgOp::Ne,
                "SCMP_CMP_LT" => ArgOp::Lt,
                "SCMP_CMP_LE" => ArgOp::Le,
                "SCMP_CMP_GT" => ArgOp::Gt,
                "SCMP_CMP_GE" => ArgOp::Ge,
                "SCMP_CMP_MASKED_EQ" => ArgOp::MaskedEq,
                other => bail!("unknown seccomp comparison {other:?}"),
            };
            let index = a["index"].as_u64().unwrap_or(u64::MAX);
            if index > 5 {
                bail!("seccomp argument index {index} is out of range");
            }
            conds.push(ArgCond {
                index: index as usize,
                value: a["value"].as_u64().unwrap_or(0),
                value_two: a["valueTwo"].as_u64().unwrap_or(0),
                op,
            });
        }
        for name in rule["names"].as_array().cloned().unwrap_or_default() {
            let Some(name) = name.as_str() else { continue };
            if let Some(info) = syscall_tables::x86_64::by_name(name) {
                p.add(u64::from(info.nr), act, conds.clone());
            }
        }
    }
    Ok(p)
}

/// The spec's startContainer hooks, which run inside the sandbox: the
/// hook's path and args, its env (or the container's PATH), as root in /.
fn start_hooks(
    hooks: Option<&oci_spec::runtime::Hooks>,
    container_env: &[String],
) -> Result<Vec<sentry::StartHook>> {
    let Some(list) = hooks.and_then(|h| h.start_container().clone()) else {
        return Ok(Vec::new());
    };
    Ok(list
        .iter()
        .map(|h| {
            let path = h.path().display().to_string();
            let argv = h
                .args()
                .clone()
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| vec![path.clone()]);
            let env = h.env().clone().unwrap_or_else(|| {
                container_env
                    .iter()
                    .filter(|e| e.starts_with("PATH="))
                    .cloned()
                    .collect()
            });
            sentry::StartHook {
                process: ProcessSpec {
                    argv,
                    env,
                    cwd: "/".into(),
                    uid: 0,
                    gid: 0,
                    additional_gids: Vec::new(),
                    umask: 0o022,
                    rlimits: Vec::new(),
                    capabilities: None,
                    no_new_privileges: false,
                    path: Some(path),
                },
                timeout_secs: h.timeout().and_then(|t| u64::try_from(t).ok()),
            }
        })
        .collect())
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
    let capabilities = match process.capabilities() {
        Some(c) => {
            let v = serde_json::to_value(c)?;
            let set = |k: &str| -> Result<u64> {
                let mut bits = 0u64;
                for name in v[k].as_array().cloned().unwrap_or_default() {
                    let name = name.as_str().unwrap_or_default();
                    let bit = CAPABILITIES
                        .iter()
                        .position(|c| *c == name)
                        .with_context(|| format!("unknown capability {name:?}"))?;
                    bits |= 1 << bit;
                }
                Ok(bits)
            };
            Some([
                set("effective")?,
                set("permitted")?,
                set("inheritable")?,
                set("bounding")?,
                set("ambient")?,
            ])
        }
        None => None,
    };
    Ok(ProcessSpec {
        capabilities,
        no_new_privileges: process.no_new_privileges().unwrap_or(false),
        path: None,
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
            (Some("cgroup") | Some("cgroup2"), _) => Some(MountKind::Cgroup),
            // mqueue: an empty directory (POSIX message queues are not
            // implemented: mq_open answers ENOSYS).
            (Some("mqueue"), _) => Some(MountKind::Tmpfs { mode: 0o1777 }),
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
    let readonly_paths = spec
        .linux()
        .as_ref()
        .and_then(|l| l.readonly_paths().clone())
        .unwrap_or_default();
    let proc_env = proc_spec.env.clone();
    let resources = spec.linux().as_ref().and_then(|l| l.resources().clone());
    let boot = BootConfig {
        cgroup_limits: cgroup_limits(resources.as_ref()),
        cgroup_usage_fd: None,
        process: proc_spec,
        hostname: spec.hostname().clone().unwrap_or_else(|| "rvisor".into()),
        mounts,
        gofer_fd: -1,
        control_fd: None,
        wait_for_start: false,
        preserved_fds: Vec::new(),
        start_hooks: start_hooks(spec.hooks().as_ref(), &proc_env)?,
        readonly_paths,
        root_readonly: root.readonly().unwrap_or(false),
        root_is_live: false,
        // The caller applies --overlay.
        overlay: sentry::RootOverlay::Memory,
        filestore_fd: None,
        masked_paths: spec
            .linux()
            .as_ref()
            .and_then(|l| l.masked_paths().clone())
            .unwrap_or_default(),
        own_pid_namespace: new_pid_namespace(&spec),
        // The caller applies --network.
        network: sentry::NetworkMode::Sandbox,
        network_namespace: network_namespace(&spec),
        net_sysctls: net_sysctls(&spec)?,
        seccomp: match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
            Some(s) => Some(seccomp_profile(&serde_json::to_value(s)?)?),
            None => None,
        },
    };
    Ok(Bundle {
        rootfs,
        binds,
        boot,
        terminal: process.terminal().unwrap_or(false),
        annotations: spec
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        hooks: spec.hooks().clone(),
        oom_score_adj: process.oom_score_adj(),
        cgroups_path: spec.linux().as_ref().and_then(|l| l.cgroups_path().clone()),
        resources,
    })
}

/// linux.resources as the sandbox's cgroup view shows them.
fn cgroup_limits(
    r: Option<&oci_spec::runtime::LinuxResources>,
) -> sentry::fsimpl::cgroupfs::CgroupLimits {
    let Some(r) = r else {
        return Default::default();
    };
    let mem = r.memory().as_ref();
    let cpu = r.cpu().as_ref();
    sentry::fsimpl::cgroupfs::CgroupLimits {
        memory_max: mem.and_then(|m| m.limit()),
        memory_low: mem.and_then(|m| m.reservation()),
        memory_swap: mem.and_then(|m| m.swap()),
        cpu_quota: cpu.and_then(|c| c.quota()),
        cpu_period: cpu.and_then(|c| c.period()),
        cpu_shares: cpu.and_then(|c| c.shares()),
        pids_max: r.pids().as_ref().map(|p| p.limit()),
    }
}
