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

/// A warning for the user: on stderr and in --log.
pub fn warn(g: &crate::cli::GlobalOpts, msg: &str) {
    eprintln!("rvisor: warning: {msg}");
    write_log(g, "warning", msg);
}

/// Appends one line to the --log file, in --log-format (runc's logrus
/// shapes: `{"level":..,"msg":..,"time":..}` or `time=.. level=.. msg=..`).
pub fn write_log(g: &crate::cli::GlobalOpts, level: &str, msg: &str) {
    let Some(path) = &g.log else { return };
    let time = crate::container::now_rfc3339();
    let line = match g.log_format {
        crate::cli::LogFormat::Json => {
            serde_json::json!({ "level": level, "msg": msg, "time": time }).to_string()
        }
        crate::cli::LogFormat::Text => format!("time={time:?} level={level} msg={msg:?}"),
    };
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
        use std::io::Write;
        let _ = writeln!(f, "{line}");
    }
}
