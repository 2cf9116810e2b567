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

#[derive(Args, Debug, Clone)]
pub struct GlobalOpts {
    /// Directory for container state.
    #[arg(long, global = true, default_value = "/run/rvisor")]
    pub root: PathBuf,
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
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run an OCI bundle in the foreground; exits with the container's status.
    Run(RunArgs),
    /// Run a command in a sandbox over the host's root filesystem (read-only,
    /// with writes kept in memory), with the caller's cwd and environment.
    Do(DoArgs),
    /// Print the system call support table.
    Syscalls(SyscallsArgs),
    /// (internal) The sentry process.
    #[command(hide = true)]
    Boot(BootArgs),
    /// (internal) The gofer process.
    #[command(hide = true)]
    Gofer(GoferArgs),
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
    #[arg(long)]
    pub status_fd: i32,
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
