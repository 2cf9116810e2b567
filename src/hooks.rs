//! OCI lifecycle hooks: each runs on the host with the container's state
//! JSON on its stdin, its own argv and env, and its timeout (runtime spec,
//! "POSIX-platform Hooks").

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::Hook;

/// Runs `hooks` in order; the first failure stops the rest and is the error.
pub fn run_all(kind: &str, hooks: Option<&Vec<Hook>>, state: &serde_json::Value) -> Result<()> {
    for (i, h) in hooks.into_iter().flatten().enumerate() {
        run_one(h, state).with_context(|| format!("error running {kind} hook #{i}"))?;
    }
    Ok(())
}

/// Runs hooks whose failure the runtime spec makes only a warning
/// (poststart, poststop): on stderr and in --log.
pub fn run_all_warning_only(
    g: &crate::cli::GlobalOpts,
    kind: &str,
    hooks: Option<&Vec<Hook>>,
    state: &serde_json::Value,
) {
    if let Err(e) = run_all(kind, hooks, state) {
        crate::logging::warn(g, &format!("{e:#}"));
    }
}

fn run_one(h: &Hook, state: &serde_json::Value) -> Result<()> {
    let args = h.args().clone().unwrap_or_default();
    let mut cmd = Command::new(h.path());
    if let Some(arg0) = args.first() {
        cmd.arg0(arg0);
    }
    cmd.args(args.iter().skip(1))
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for kv in h.env().clone().unwrap_or_default() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", h.path().display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin must not fail the write.
        let _ = stdin.write_all(&serde_json::to_vec(state).unwrap_or_default());
    }
    // Drain output on threads so a chatty hook cannot block on a full pipe.
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = drain(child.stdout.take().map(|s| Box::new(s) as _));
    let err = drain(child.stderr.take().map(|s| Box::new(s) as _));
    let deadline = h
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            bail!("timed out after {}s", h.timeout().unwrap_or(0));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if !status.success() {
        bail!("{status}, stdout: {stdout}, stderr: {stderr}");
    }
    Ok(())
}
