//! Log setup for each rvisor process (CLI, sentry, gofer).

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::sync::Mutex;

use anyhow::{Context, Result};
use tracing_subscriber::EnvFilter;

/// Logs go to DIR/NAME.log with --debug-log, else warnings to nowhere (the
/// container's stderr is the application's, as with runsc).
pub fn init(debug_log: Option<&Path>, name: &str, debug: bool) -> Result<()> {
    let Some(dir) = debug_log else {
        return Ok(());
    };
    let file = open_log(dir, name)?;
    let level = if debug { "debug" } else { "info" };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(level))
        .with_writer(Mutex::new(file))
        .with_ansi(false)
        .try_init();
    Ok(())
}

pub fn open_log(dir: &Path, name: &str) -> Result<File> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating log directory {}", dir.display()))?;
    let path = dir.join(format!("{name}.log"));
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))
}

/// The gofer closes every fd it does not need, so it logs to its stderr,
/// which the CLI points at DIR/gofer.log.
pub fn init_stderr(enabled: bool, debug: bool) {
    if !enabled {
        return;
    }
    let level = if debug { "debug" } else { "info" };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(level))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}
