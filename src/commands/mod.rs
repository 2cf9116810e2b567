//! What each command does.

use std::io::Write;
use std::os::fd::FromRawFd;

use anyhow::{bail, Context, Result};

use crate::cli::{
    BootArgs, Cli, Command, DoArgs, GlobalOpts, GoferArgs, InstallArgs, RunArgs, SpecArgs,
    SyscallsArgs,
};
use crate::{bundle, logging, sandbox};

mod join;
mod lifecycle;
mod terminal;

pub fn dispatch(cli: Cli) -> Result<i32> {
    let g = cli.global;
    warn_ignored_flags(&g);
    match cli.command {
        Command::Create(a) => lifecycle::create(&g, a),
        Command::Start(a) => lifecycle::start(&g, a),
        Command::State(a) => lifecycle::state(&g, a),
        Command::Kill(a) => lifecycle::kill(&g, a),
        Command::Delete(a) => lifecycle::delete(&g, a),
        Command::List(a) => lifecycle::list(&g, a),
        Command::Ps(a) => lifecycle::ps(&g, a),
        Command::Exec(a) => lifecycle::exec(&g, a),
        Command::ExecWait(a) => lifecycle::exec_wait(&g, a),
        Command::InitWait(a) => join::init_wait(&g, a),
        Command::Pause(a) => lifecycle::pause(&g, a, true),
        Command::Resume(a) => lifecycle::pause(&g, a, false),
        Command::Events(a) => lifecycle::events(&g, a),
        Command::Update(a) => lifecycle::update(&g, a),
        Command::Wait(a) => lifecycle::wait(&g, a),
        Command::Spec(a) => spec(a),
        Command::Features => features(),
        Command::Run(a) => run(&g, a),
        Command::Do(a) => do_command(&g, a),
        Command::Syscalls(a) => syscalls(a),
        Command::Install(a) => install(a),
        Command::Boot(a) => boot(&g, a),
        Command::Gofer(a) => gofer_main(&g, a),
    }
}

/// runc flags that rvisor accepts but does not act on.
fn warn_ignored_flags(g: &GlobalOpts) {
    let mut ignored = Vec::new();
    if g.systemd_cgroup {
        ignored.push("--systemd-cgroup (rvisor uses cgroupfs)");
    }
    if g.rootless.is_some() {
        ignored.push("--rootless");
    }
    if g.criu.is_some() {
        ignored.push("--criu");
    }
    for f in ignored {
        logging::warn(g, &format!("ignoring {f}"));
    }
}

/// `rvisor spec`: a default config.json, as `runc spec` writes one.
fn spec(a: SpecArgs) -> Result<i32> {
    let path = a.bundle.join("config.json");
    if path.exists() {
        bail!("File {} exists. Remove it first", path.display());
    }
    let spec = oci_spec::runtime::Spec::default();
    let text = serde_json::to_string_pretty(&spec)?;
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(0)
}

/// `rvisor features`: what this runtime supports (runc's JSON shape).
fn features() -> Result<i32> {
    let v = serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.1.0",
        "hooks": ["prestart", "createRuntime", "createContainer", "poststart", "poststop"],
        "mountOptions": ["bind", "rbind", "ro", "rw", "nosuid", "nodev", "noexec"],
        "linux": {
            "namespaces": ["pid", "ipc", "uts", "mount", "network"],
            "seccomp": { "enabled": false },
            "apparmor": { "enabled": false },
            "selinux": { "enabled": false },
        },
        "annotations": {
            "io.github.rvisor.platform": "ptrace",
            "io.github.rvisor.version": env!("CARGO_PKG_VERSION"),
        },
    });
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(0)
}

/// `rvisor run`: a foreground container from an OCI bundle.
fn run(g: &GlobalOpts, a: RunArgs) -> Result<i32> {
    logging::init(g.debug_log.as_deref(), "rvisor", g.debug)?;
    if a.id.is_empty() || a.id.contains('/') || a.id == "." || a.id == ".." {
        bail!("invalid container id {:?}", a.id);
    }
    let bundle_dir = a
        .bundle
        .canonicalize()
        .with_context(|| format!("bundle {}", a.bundle.display()))?;
    let mut b = bundle::load(&bundle_dir)?;
    b.boot.overlay = g.overlay.into();
    b.boot.network = g.network.into();
    std::fs::create_dir_all(&g.root)
        .with_context(|| format!("creating state root {}", g.root.display()))?;
    let state_dir = g.root.join(&a.id);
    match std::fs::create_dir(&state_dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            bail!("container with id {:?} already exists", a.id)
        }
        Err(e) => return Err(e).with_context(|| format!("creating {}", state_dir.display())),
    }
    let state = serde_json::json!({
        "ociVersion": "1.0.2",
        "id": a.id,
        "status": "running",
        "pid": std::process::id(),
        "bundle": bundle_dir,
    });
    let result = std::fs::write(state_dir.join("state.json"), state.to_string())
        .context("writing state.json")
        .and_then(|_| {
            let cgroup = crate::cgroups::Cgroup::create(
                &crate::cgroups::container_path(b.cgroups_path.as_deref(), &a.id),
                b.resources.as_ref(),
            )?;
            let r = sandbox::run_sandbox(g, &b.rootfs, b.boot, &b.binds, &cgroup.procs_files());
            cgroup.destroy();
            r
        });
    let _ = std::fs::remove_dir_all(&state_dir);
    sandbox::exit_like(result?)
}

/// `rvisor do`: the host's root, read-only, under an overlay (`--overlay
/// self` keeps its file contents in an unnamed file in $TMPDIR).
fn do_command(g: &GlobalOpts, a: DoArgs) -> Result<i32> {
    logging::init(g.debug_log.as_deref(), "rvisor", g.debug)?;
    let cwd = std::env::current_dir().context("reading the current directory")?;
    // SAFETY: umask has no failure mode; set it back right away.
    let umask = unsafe {
        let m = libc::umask(0o022);
        libc::umask(m);
        m
    };
    let boot = sentry::BootConfig {
        process: sentry::ProcessSpec {
            argv: a.command,
            env: std::env::vars_os()
                .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
                .collect(),
            cwd: cwd.display().to_string(),
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            additional_gids: Vec::new(),
            umask,
            rlimits: Vec::new(),
            capabilities: None,
            no_new_privileges: false,
            path: None,
        },
        hostname: "rvisor".into(),
        mounts: Vec::new(),
        gofer_fd: -1,
        control_fd: None,
        wait_for_start: false,
        seccomp: None,
        preserved_fds: Vec::new(),
        start_hooks: Vec::new(),
        masked_paths: Vec::new(),
        readonly_paths: Vec::new(),
        root_readonly: false,
        root_is_live: true,
        // Never --overlay none here: the root is the host's own.
        overlay: match g.overlay {
            crate::cli::Overlay::SelfBacked => sentry::RootOverlay::SelfBacked,
            crate::cli::Overlay::Memory | crate::cli::Overlay::None => sentry::RootOverlay::Memory,
        },
        filestore_fd: None,
        cgroup_limits: Default::default(),
        cgroup_usage_fd: None,
        own_pid_namespace: false,
        network: g.network.into(),
        // The host's network is reached only by asking for it.
        network_namespace: if g.network == crate::cli::Network::Host {
            sentry::NetworkNamespace::Inherit
        } else {
            sentry::NetworkNamespace::New
        },
        net_sysctls: Default::default(),
    };
    let status = sandbox::run_sandbox(g, std::path::Path::new("/"), boot, &[], &[])?;
    sandbox::exit_like(status)
}

/// containerd's config for the shim, as `runsc install` prints Docker's.
fn install(a: InstallArgs) -> Result<i32> {
    let shim = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("containerd-shim-rvisor-v1")))
        .filter(|p| p.is_file());
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "# containerd 1.6/1.7 (config version 2): add to /etc/containerd/config.toml and\n\
         # restart containerd. containerd runs containerd-shim-rvisor-v1 from its PATH{}.",
        shim.as_ref()
            .map(|p| format!(" (this one is {})", p.display()))
            .unwrap_or_default()
    )?;
    writeln!(
        out,
        "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.{h}]\n  \
         runtime_type = \"io.containerd.rvisor.v1\"",
        h = a.handler
    )?;
    if let Some(path) = &a.runtime_config {
        writeln!(
            out,
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.{h}.options]\n  \
             TypeUrl = \"io.containerd.rvisor.v1.options\"\n  ConfigPath = {path:?}",
            h = a.handler,
            path = path.display().to_string()
        )?;
    }
    if a.kubernetes {
        writeln!(
            out,
            "---\n# Kubernetes: pods with runtimeClassName: {h} run in rvisor.\n\
             apiVersion: node.k8s.io/v1\nkind: RuntimeClass\nmetadata:\n  name: {h}\n\
             handler: {h}",
            h = a.handler
        )?;
    }
    Ok(0)
}

fn syscalls(a: SyscallsArgs) -> Result<i32> {
    let rows = sentry::syscalls::support_table();
    let mut out = std::io::stdout().lock();
    if a.markdown {
        let full = rows.iter().filter(|r| r.level == "full").count();
        let partial = rows.iter().filter(|r| r.level == "partial").count();
        writeln!(out, "# System call compatibility (x86_64)\n")?;
        writeln!(out, "Generated by `rvisor syscalls --markdown` from the sentry's dispatch table; do not edit.\n")?;
        writeln!(
            out,
            "{} system calls: {full} full, {partial} partial, {} unimplemented.\n",
            rows.len(),
            rows.len() - full - partial
        )?;
        writeln!(out, "| nr | name | support | notes |\n|---:|---|---|---|")?;
        for r in &rows {
            writeln!(
                out,
                "| {} | {} | {} | {} |",
                r.nr,
                r.name,
                r.level,
                r.note.replace('|', "\\|")
            )?;
        }
    } else {
        writeln!(out, "{:>4}  {:<24} {:<14} NOTES", "NR", "NAME", "SUPPORT")?;
        for r in &rows {
            writeln!(
                out,
                "{:>4}  {:<24} {:<14} {}",
                r.nr, r.name, r.level, r.note
            )?;
        }
    }
    Ok(0)
}

/// The sentry process (pid 1 of the sandbox's pid namespace).
fn boot(g: &GlobalOpts, a: BootArgs) -> Result<i32> {
    // Before any other thread exists: the fast path blocks SIGCHLD in all.
    let fast_path = match g.platform {
        crate::cli::Platform::Notif => Some(sentry::platform::notif::enable()),
        crate::cli::Platform::Ptrace | crate::cli::Platform::Systrap => None,
    };
    let systrap = match g.platform {
        crate::cli::Platform::Systrap => Some(sentry::platform::systrap::enable(
            std::env::var("RVISOR_SYSTRAP_SPIN_US")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            // Patching hot system call sites (see the platform README);
            // RVISOR_SYSTRAP_PATCH=0 turns it off, to compare.
            std::env::var("RVISOR_SYSTRAP_PATCH").map_or(true, |v| v != "0"),
            // Polling while a thread's calls come fast (see the platform
            // README); RVISOR_SYSTRAP_ADAPTIVE=0 turns it off.
            std::env::var("RVISOR_SYSTRAP_ADAPTIVE").map_or(true, |v| v != "0"),
        )),
        _ => None,
    };
    logging::init(g.debug_log.as_deref(), "sentry", g.debug)?;
    if let Some(Err(e)) = fast_path {
        tracing::warn!("--platform notif unavailable ({e}); every system call stops in ptrace");
    }
    if let Some(Err(e)) = systrap {
        anyhow::bail!("--platform systrap is unavailable here: {e}");
    }
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        tracing::error!(
            "sentry thread {} panicked: {info}",
            thread.name().unwrap_or("?")
        );
    }));
    let cfg: sentry::BootConfig =
        serde_json::from_str(&a.config).context("parsing the boot configuration")?;
    let status_pipe = a.status_fd.map(sandbox::owned_fd).transpose()?;
    let mut ready_pipe = a
        .ready_fd
        .map(sandbox::owned_fd)
        .transpose()?
        .map(std::fs::File::from);
    let strace: Option<sentry::StraceSink> = if g.strace {
        Some(match &g.debug_log {
            Some(dir) => Box::new(logging::open_log(dir, "strace")?),
            // SAFETY: dup of our own stderr.
            None => Box::new(unsafe {
                std::fs::File::from_raw_fd(nix::unistd::dup(2).context("dup stderr")?)
            }),
        })
    } else {
        None
    };
    let on_ready = || {
        if let Some(mut f) = ready_pipe.take() {
            let _ = f.write_all(b"ready");
        }
    };
    let status = match sentry::boot(cfg, strace, on_ready) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("boot failed: {e}");
            match ready_pipe.take() {
                // `create` reports it (and to --log).
                Some(mut f) => {
                    let _ = f.write_all(format!("error: {e}").as_bytes());
                    return Ok(1);
                }
                None => eprintln!("rvisor: {e}"),
            }
            (127 & 0xff) << 8
        }
    };
    if let Some(fd) = a.exit_fd {
        let mut f = std::fs::File::from(sandbox::owned_fd(fd)?);
        let _ = f.write_all(status.to_string().as_bytes());
    }
    match status_pipe {
        Some(p) => {
            let mut f = std::fs::File::from(p);
            f.write_all(&status.to_le_bytes())
                .context("reporting the exit status")?;
            Ok(0)
        }
        // Detached: exit as the init did. The sentry is pid 1 of its pid
        // namespace and cannot kill itself with a signal, so a fatal signal
        // N becomes exit code 128+N (what conmon and containerd report for
        // a signalled init anyway).
        None => Ok(sandbox::exit_code(status)),
    }
}

fn gofer_main(g: &GlobalOpts, a: GoferArgs) -> Result<i32> {
    logging::init_stderr(g.debug_log.is_some(), g.debug);
    gofer::run(gofer::GoferConfig {
        root: a.rootfs,
        sock_fd: a.sock_fd,
        read_only: a.read_only,
    })
    .context("gofer failed")?;
    Ok(0)
}
