//! Command-line definitions, kept apart from what the commands do (as
//! youki's liboci-cli).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "rvisor",
    version,
    about = "rvisor: a user-space application kernel for containers (an OCI runtime)"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone, Default)]
pub struct GlobalOpts {
    /// Directory for container state.
    #[arg(long, global = true, default_value = "/run/rvisor")]
    pub root: PathBuf,
    /// How application threads trap into the sentry: `systrap` (the
    /// default) runs them untraced under a seccomp filter that turns every
    /// system call into a signal, handed to the sentry through shared
    /// memory; `ptrace` stops the thread in ptrace at every system call;
    /// `notif` (experimental) keeps it under ptrace but takes its system
    /// calls as seccomp user notifications (see docs/benchmarks.md).
    #[arg(long, global = true, value_enum, default_value_t = Platform::Systrap)]
    pub platform: Platform,
    /// Log every system call of the sandboxed programs, with decoded
    /// arguments and results (to stderr, or to the debug log directory).
    #[arg(long, global = true)]
    pub strace: bool,
    /// Write the sentry's and gofer's logs (and --strace output) to files in DIR.
    #[arg(long, global = true, value_name = "DIR")]
    pub debug_log: Option<PathBuf>,
    /// More detailed logs.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Also write errors (and, with --debug, progress) to this file, as
    /// runc does for containerd and conmon.
    #[arg(long, global = true, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Format of the --log file.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Where the container's writes to its root filesystem go: `self`
    /// keeps them in an overlay whose file contents live in an unnamed
    /// file on the rootfs's own filesystem, leaving the bundle's rootfs
    /// untouched and the host's memory unpinned (falling back to `memory`,
    /// with a warning, where that file cannot be made); `memory` keeps them
    /// in the sandbox's memory; `none` writes them through to the rootfs
    /// directory, as runc does. Writable bind mounts always write through.
    #[arg(long, global = true, value_enum, default_value_t = Overlay::SelfBacked)]
    pub overlay: Overlay,
    /// What the container's internet sockets are, as runsc's --network:
    /// `sandbox` puts them on the sentry's own network stack: the
    /// sandbox's loopback, and, in a network namespace the spec names by
    /// path (a CNI netns), that namespace's device, whose address the
    /// sentry takes over (TCP and UDP over IPv4 so far); `host` makes them host
    /// sockets the sentry opens in the container's network namespace (the
    /// spec's, or the host's when the spec has none), for trusted programs;
    /// `none` gives loopback only.
    #[arg(long, global = true, value_enum, default_value_t = Network::Sandbox)]
    pub network: Network,
    /// Accepted for runc compatibility; rvisor manages cgroups through
    /// cgroupfs only (a warning is printed).
    #[arg(long, global = true, hide = true)]
    pub systemd_cgroup: bool,
    /// Accepted for runc compatibility and ignored (a warning is printed).
    #[arg(long, global = true, hide = true, num_args = 0..=1, default_missing_value = "true")]
    pub rootless: Option<String>,
    /// Accepted for runc compatibility and ignored (a warning is printed).
    #[arg(long, global = true, hide = true)]
    pub criu: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Platform {
    #[default]
    Ptrace,
    Notif,
    Systrap,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overlay {
    Memory,
    #[default]
    #[value(name = "self")]
    SelfBacked,
    None,
}

impl From<Overlay> for sentry::RootOverlay {
    fn from(o: Overlay) -> sentry::RootOverlay {
        match o {
            Overlay::Memory => sentry::RootOverlay::Memory,
            Overlay::SelfBacked => sentry::RootOverlay::SelfBacked,
            Overlay::None => sentry::RootOverlay::None,
        }
    }
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    #[default]
    Sandbox,
    Host,
    None,
}

impl From<Network> for sentry::NetworkMode {
    fn from(n: Network) -> sentry::NetworkMode {
        match n {
            Network::Sandbox => sentry::NetworkMode::Sandbox,
            Network::Host => sentry::NetworkMode::Host,
            Network::None => sentry::NetworkMode::None,
        }
    }
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a container from an OCI bundle: the sandbox starts and its
    /// init waits until `start`.
    Create(CreateArgs),
    /// Run the init of a created container.
    Start(IdArg),
    /// Print a container's OCI state as JSON.
    State(IdArg),
    /// Send a signal (default SIGTERM) to a container's init, or to all
    /// its processes.
    Kill(KillArgs),
    /// Remove a stopped (or, with --force, any) container and its state.
    Delete(DeleteArgs),
    /// List the containers under --root.
    List(ListArgs),
    /// Show the processes running in a container.
    Ps(PsArgs),
    /// Run another process in a running container.
    Exec(ExecArgs),
    /// Freeze every process of a running container (cgroup freezer).
    Pause(IdArg),
    /// Thaw a paused container.
    Resume(IdArg),
    /// Print the container's resource usage (runc's JSON), once with
    /// --stats or every --interval until it stops, with OOM events.
    Events(EventsArgs),
    /// Change a container's resource limits.
    Update(UpdateArgs),
    /// Wait for a container to stop; exit with its init's exit code
    /// (128+N for a signal N).
    Wait(IdArg),
    /// (internal) Wait for an exec'd process and exit as it did.
    #[command(hide = true)]
    ExecWait(ExecWaitArgs),
    /// (internal) Wait for the init of a container that joined a pod's
    /// sandbox and exit as it did.
    #[command(hide = true)]
    InitWait(IdArg),
    /// Write a default config.json for a bundle.
    Spec(SpecArgs),
    /// Print what this runtime supports, as JSON (runc's `features`).
    Features,
    /// Run an OCI bundle in the foreground; exits with the container's status.
    Run(RunArgs),
    /// Run a command in a sandbox over the host's root filesystem (read-only,
    /// with writes kept in an overlay: in an unnamed file in $TMPDIR, or in
    /// memory with --overlay memory), with the caller's cwd and environment.
    Do(DoArgs),
    /// Print the system call support table.
    Syscalls(SyscallsArgs),
    /// Print the containerd config that registers rvisor's shim as the CRI
    /// runtime handler `rvisor` (and, with --kubernetes, the RuntimeClass).
    Install(InstallArgs),
    /// (internal) The sentry process.
    #[command(hide = true)]
    Boot(BootArgs),
    /// (internal) The gofer process.
    #[command(hide = true)]
    Gofer(GoferArgs),
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Path to the bundle (the directory holding config.json).
    #[arg(long, short = 'b', default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket to which the pty master is sent when process.terminal
    /// is true.
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// File to write the container's pid (the sentry's) to.
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Accepted for runc compatibility; the sandbox never uses pivot_root
    /// on the container's rootfs.
    #[arg(long)]
    pub no_pivot: bool,
    /// Accepted for runc compatibility; the sandbox has its own keyrings.
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass this many fds beyond stdio (3, 4, ...) to the container init
    /// (pipes and files; host sockets need the network issue).
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// Container id.
    pub id: String,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// A process.json (OCI process) to run instead of COMMAND.
    #[arg(long, short = 'p', value_name = "FILE")]
    pub process: Option<PathBuf>,
    /// Return once the process has started; a waiter process (whose pid
    /// goes to --pid-file) exits with the process's status.
    #[arg(long, short = 'd')]
    pub detach: bool,
    /// File to write the pid to (the waiter's when detached, else ours).
    #[arg(long, value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// File to write the process's pid inside the sandbox to, for `kill
    /// --pid` (runsc's flag; the shim uses it).
    #[arg(long, value_name = "FILE")]
    pub internal_pid_file: Option<PathBuf>,
    /// Unix socket to send the pty master to (with a terminal).
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Allocate a terminal for the process.
    #[arg(long, short = 't')]
    pub tty: bool,
    /// Working directory in the container.
    #[arg(long)]
    pub cwd: Option<String>,
    /// Add an environment variable (KEY=VALUE); repeatable.
    #[arg(long, short = 'e')]
    pub env: Vec<String>,
    /// User to run as: UID[:GID].
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// Additional group ids; repeatable.
    #[arg(long, short = 'g')]
    pub additional_gids: Vec<u32>,
    /// Accepted for runc compatibility; the sandbox keeps its own privileges.
    #[arg(long)]
    pub no_new_privs: bool,
    /// Accepted for runc compatibility and ignored.
    #[arg(long, short = 'c')]
    pub cap: Vec<String>,
    /// Accepted for runc compatibility and ignored.
    #[arg(long)]
    pub process_label: Option<String>,
    /// Accepted for runc compatibility and ignored.
    #[arg(long)]
    pub apparmor: Option<String>,
    /// Pass this many fds beyond stdio (3, 4, ...) to the process.
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// Container id.
    pub id: String,
    /// Command and arguments (without --process).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Print one stats event and exit.
    #[arg(long)]
    pub stats: bool,
    /// Time between stats events (e.g. 5s, 500ms).
    #[arg(long, default_value = "5s")]
    pub interval: String,
    /// Container id.
    pub id: String,
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// An OCI linux.resources JSON file ("-" for stdin), as containerd's
    /// shim passes it.
    #[arg(long, short = 'r', value_name = "FILE")]
    pub resources: Option<PathBuf>,
    /// Memory limit in bytes.
    #[arg(long, short = 'm')]
    pub memory: Option<i64>,
    /// Memory soft limit in bytes.
    #[arg(long)]
    pub memory_reservation: Option<i64>,
    /// Memory plus swap limit in bytes.
    #[arg(long)]
    pub memory_swap: Option<i64>,
    /// CPU shares (relative weight).
    #[arg(long)]
    pub cpu_share: Option<u64>,
    /// CPU CFS period in microseconds.
    #[arg(long)]
    pub cpu_period: Option<u64>,
    /// CPU CFS quota in microseconds.
    #[arg(long)]
    pub cpu_quota: Option<i64>,
    /// CPUs to run on (cpuset).
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes (cpuset).
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Maximum number of tasks (the sentry's threads and the stubs count).
    #[arg(long)]
    pub pids_limit: Option<i64>,
    /// Container id.
    pub id: String,
}

#[derive(Args, Debug)]
pub struct ExecWaitArgs {
    /// Container id.
    pub id: String,
    /// The process's pid in the sandbox.
    pub pid: i32,
}

#[derive(Args, Debug)]
pub struct IdArg {
    /// Container id.
    pub id: String,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// Send the signal to every process in the container.
    #[arg(long, short = 'a', conflicts_with = "pid")]
    pub all: bool,
    /// Send the signal to this one process, by its pid inside the sandbox
    /// (as `exec --internal-pid-file` wrote it; runsc's flag).
    #[arg(long)]
    pub pid: Option<i32>,
    /// Container id.
    pub id: String,
    /// Signal name (TERM, SIGTERM, RTMIN+1) or number.
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// Kill the container first if it is still running.
    #[arg(long, short = 'f')]
    pub force: bool,
    /// Container id.
    pub id: String,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Output format.
    #[arg(long, short = 'f', value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
    /// Print only container ids.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Output format (json: the sandbox pids only, as runc prints).
    #[arg(long, short = 'f', value_enum, default_value_t = ListFormat::Table)]
    pub format: ListFormat,
    /// Container id.
    pub id: String,
    /// ps(1) options are accepted and ignored.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct SpecArgs {
    /// Directory to write config.json in.
    #[arg(long, short = 'b', default_value = ".")]
    pub bundle: PathBuf,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Path to the bundle (the directory holding config.json).
    #[arg(long, short = 'b', default_value = ".")]
    pub bundle: PathBuf,
    /// Container id.
    pub id: String,
}

#[derive(Args, Debug)]
pub struct DoArgs {
    /// Command and arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct InstallArgs {
    /// The CRI runtime handler name (what a RuntimeClass's handler says).
    #[arg(long, default_value = "rvisor")]
    pub handler: String,
    /// A TOML file of rvisor flags for the shim ([rvisor_config] table),
    /// passed as containerd's ConfigPath runtime option.
    #[arg(long, value_name = "FILE")]
    pub runtime_config: Option<PathBuf>,
    /// Also print a Kubernetes RuntimeClass for the handler.
    #[arg(long)]
    pub kubernetes: bool,
}

#[derive(Args, Debug)]
pub struct SyscallsArgs {
    /// Print a Markdown table (docs/compatibility.md is this output).
    #[arg(long)]
    pub markdown: bool,
}

#[derive(Args, Debug)]
pub struct BootArgs {
    /// Boot configuration as JSON.
    #[arg(long)]
    pub config: String,
    /// Foreground sandboxes: where to report the init's wait status.
    /// Without it the sentry exits with the init's exit code.
    #[arg(long)]
    pub status_fd: Option<i32>,
    /// Detached sandboxes: where to report "ready" or why boot failed.
    #[arg(long)]
    pub ready_fd: Option<i32>,
    /// Detached sandboxes: a file to write the init's wait status to.
    #[arg(long)]
    pub exit_fd: Option<i32>,
}

#[derive(Args, Debug)]
pub struct GoferArgs {
    #[arg(long)]
    pub rootfs: PathBuf,
    #[arg(long)]
    pub sock_fd: i32,
    #[arg(long)]
    pub read_only: bool,
}
