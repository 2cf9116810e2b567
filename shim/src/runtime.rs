//! The `rvisor` OCI CLI, as the shim drives it (the way containerd's runc
//! shim drives runc): one short-lived command per lifecycle step.

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::error::ShimError;
use crate::reaper;

/// How long one `rvisor` command may take before the shim gives up on it
/// (kills it and reports a timeout).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The `rvisor` binary and the global flags every command gets.
#[derive(Debug, Clone)]
pub struct Runtime {
    pub binary: PathBuf,
    /// `--root`: where rvisor keeps container state.
    pub root: PathBuf,
    /// Further global flags (`--platform`, `--overlay`, `--debug`, ...),
    /// from the runtime's TOML config.
    pub global_flags: Vec<String>,
}

/// The three stdio fds a command's container process inherits.
pub struct ProcessStdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

impl ProcessStdio {
    pub fn null() -> ProcessStdio {
        ProcessStdio {
            stdin: None,
            stdout: None,
            stderr: None,
        }
    }
}

impl Runtime {
    /// `rvisor` beside this shim's own binary (both ship together), else the
    /// one on PATH.
    pub fn default_binary() -> PathBuf {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|d| d.join("rvisor")))
            .filter(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from("rvisor"))
    }

    /// This runtime as a container's config file adjusts it: another
    /// binary, another state root (still one directory per namespace, the
    /// base root's last component), more flags.
    pub fn with_settings(&self, settings: &crate::options::RuntimeSettings) -> Runtime {
        let mut r = self.clone();
        if let Some(b) = &settings.binary {
            r.binary = b.clone();
        }
        if let (Some(root), Some(ns)) = (&settings.root, self.root.file_name()) {
            r.root = root.join(ns);
        }
        r.global_flags.extend(settings.global_flags.iter().cloned());
        r
    }

    fn command(&self, log: Option<&Path>) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root").arg(&self.root);
        if let Some(log) = log {
            cmd.arg("--log").arg(log).arg("--log-format").arg("json");
        }
        cmd.args(&self.global_flags);
        cmd
    }

    /// Runs one command to completion with its stdio on `stdio` (null
    /// where absent): Ok when it exits 0, else an error carrying what it
    /// logged to `log` (its stderr belongs to the container).
    fn run_with_stdio(
        &self,
        what: &str,
        args: &[OsString],
        stdio: ProcessStdio,
        log: &Path,
    ) -> Result<(), ShimError> {
        let mut cmd = self.command(Some(log));
        cmd.args(args);
        cmd.stdin(stdio.stdin.map_or_else(Stdio::null, Stdio::from));
        cmd.stdout(stdio.stdout.map_or_else(Stdio::null, Stdio::from));
        cmd.stderr(stdio.stderr.map_or_else(Stdio::null, Stdio::from));
        let (child, slot) = reaper::spawn(&mut cmd).map_err(|e| ShimError::Runtime {
            what: what.to_string(),
            message: format!("cannot run {}: {e}", self.binary.display()),
        })?;
        // The stdio fds now live in the child only: a pipe's reader sees
        // EOF when the container's last writer goes.
        drop(cmd);
        let Some(exit) = slot.wait_timeout(COMMAND_TIMEOUT) else {
            reaper::kill_if_unreaped(child.id() as i32, &slot, nix::sys::signal::SIGKILL);
            return Err(ShimError::Runtime {
                what: what.to_string(),
                message: format!("timed out after {}s", COMMAND_TIMEOUT.as_secs()),
            });
        };
        if exit.status == 0 {
            return Ok(());
        }
        Err(ShimError::Runtime {
            what: what.to_string(),
            message: last_log_error(log).unwrap_or_else(|| format!("exit status {}", exit.status)),
        })
    }

    /// Runs a command whose stdout is the answer (state, ps, events).
    fn output(&self, what: &str, args: &[OsString], log: &Path) -> Result<Vec<u8>, ShimError> {
        let out_path = log.with_extension("out");
        let out = std::fs::File::create(&out_path).map_err(|e| ShimError::Io {
            what: format!("creating {}", out_path.display()),
            source: e,
        })?;
        let stdio = ProcessStdio {
            stdin: None,
            stdout: Some(out.into()),
            stderr: None,
        };
        let result = self.run_with_stdio(what, args, stdio, log);
        let data = std::fs::read(&out_path).unwrap_or_default();
        let _ = std::fs::remove_file(&out_path);
        result.map(|()| data)
    }

    pub fn create(
        &self,
        id: &str,
        bundle: &Path,
        pid_file: &Path,
        console_socket: Option<&Path>,
        stdio: ProcessStdio,
        log: &Path,
    ) -> Result<(), ShimError> {
        let mut args: Vec<OsString> = vec!["create".into(), "--bundle".into(), bundle.into()];
        args.extend(["--pid-file".into(), pid_file.into()]);
        if let Some(s) = console_socket {
            args.extend(["--console-socket".into(), s.into()]);
        }
        args.push(id.into());
        self.run_with_stdio("create", &args, stdio, log)
    }

    pub fn start(&self, id: &str, log: &Path) -> Result<(), ShimError> {
        self.run_with_stdio(
            "start",
            &["start".into(), id.into()],
            ProcessStdio::null(),
            log,
        )
    }

    /// A detached exec: returns once the process runs. The waiter's host
    /// pid goes to `pid_file`, the process's sandbox pid to
    /// `internal_pid_file`.
    #[allow(clippy::too_many_arguments)]
    pub fn exec(
        &self,
        id: &str,
        process_json: &Path,
        pid_file: &Path,
        internal_pid_file: &Path,
        console_socket: Option<&Path>,
        stdio: ProcessStdio,
        log: &Path,
    ) -> Result<(), ShimError> {
        let mut args: Vec<OsString> = vec!["exec".into(), "--detach".into()];
        args.extend(["--process".into(), process_json.into()]);
        args.extend(["--pid-file".into(), pid_file.into()]);
        args.extend(["--internal-pid-file".into(), internal_pid_file.into()]);
        if let Some(s) = console_socket {
            args.extend(["--console-socket".into(), s.into()]);
        }
        args.push(id.into());
        self.run_with_stdio("exec", &args, stdio, log)
    }

    /// Signals the init (or, with `all`, every process of the container).
    pub fn kill(&self, id: &str, signal: u32, all: bool, log: &Path) -> Result<(), ShimError> {
        let mut args: Vec<OsString> = vec!["kill".into()];
        if all {
            args.push("--all".into());
        }
        args.extend([id.into(), signal.to_string().into()]);
        self.run_with_stdio("kill", &args, ProcessStdio::null(), log)
    }

    /// Signals one process by its sandbox pid.
    pub fn kill_process(
        &self,
        id: &str,
        sandbox_pid: i32,
        signal: u32,
        log: &Path,
    ) -> Result<(), ShimError> {
        let args: Vec<OsString> = vec![
            "kill".into(),
            "--pid".into(),
            sandbox_pid.to_string().into(),
            id.into(),
            signal.to_string().into(),
        ];
        self.run_with_stdio("kill", &args, ProcessStdio::null(), log)
    }

    pub fn delete_force(&self, id: &str, log: &Path) -> Result<(), ShimError> {
        self.run_with_stdio(
            "delete",
            &["delete".into(), "--force".into(), id.into()],
            ProcessStdio::null(),
            log,
        )
    }

    pub fn pause(&self, id: &str, log: &Path) -> Result<(), ShimError> {
        self.run_with_stdio(
            "pause",
            &["pause".into(), id.into()],
            ProcessStdio::null(),
            log,
        )
    }

    pub fn resume(&self, id: &str, log: &Path) -> Result<(), ShimError> {
        self.run_with_stdio(
            "resume",
            &["resume".into(), id.into()],
            ProcessStdio::null(),
            log,
        )
    }

    /// `rvisor ps --format json`: the sandbox pids of the container.
    pub fn pids(&self, id: &str, log: &Path) -> Result<Vec<u32>, ShimError> {
        let out = self.output(
            "ps",
            &["ps".into(), "--format".into(), "json".into(), id.into()],
            log,
        )?;
        serde_json::from_slice(&out).map_err(|e| ShimError::Runtime {
            what: "ps".into(),
            message: format!("unreadable output: {e}"),
        })
    }

    /// `rvisor events --stats`: the container's cgroup statistics.
    pub fn stats(&self, id: &str, log: &Path) -> Result<serde_json::Value, ShimError> {
        let out = self.output(
            "events",
            &["events".into(), "--stats".into(), id.into()],
            log,
        )?;
        let event: serde_json::Value =
            serde_json::from_slice(&out).map_err(|e| ShimError::Runtime {
                what: "events".into(),
                message: format!("unreadable output: {e}"),
            })?;
        Ok(event["data"].clone())
    }

    /// Runs `rvisor events` for as long as the container's sandbox lives,
    /// calling `on_oom` for each OOM kill it reports.
    pub fn watch_oom(&self, id: &str, on_oom: impl Fn()) -> Result<(), ShimError> {
        let mut cmd = self.command(None);
        cmd.args(["events", "--interval", "1h", id]);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let (mut child, _slot) = reaper::spawn(&mut cmd).map_err(ShimError::io("rvisor events"))?;
        let Some(out) = child.stdout.take() else {
            return Ok(());
        };
        for line in std::io::BufRead::lines(std::io::BufReader::new(out)) {
            let Ok(line) = line else { break };
            let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if event["type"] == "oom" {
                on_oom();
            }
        }
        Ok(())
    }

    /// `rvisor update --resources FILE`.
    pub fn update(&self, id: &str, resources: &Path, log: &Path) -> Result<(), ShimError> {
        self.run_with_stdio(
            "update",
            &[
                "update".into(),
                "--resources".into(),
                resources.into(),
                id.into(),
            ],
            ProcessStdio::null(),
            log,
        )
    }
}

/// The last error message in a `--log-format json` log, for the shim's
/// error reply (as containerd's runc shim does with runc's log).
fn last_log_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let _ = std::fs::remove_file(log);
    text.lines().rev().find_map(|line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        (v["level"] == "error")
            .then(|| v["msg"].as_str().map(str::to_string))
            .flatten()
    })
}
