//! Regenerates `src/generated_x86_64.rs` and `src/generated_errno.rs` from the kernel's uapi headers.
//!
//! Usage: `cargo run -p syscall-tables --example gen [-- --check] [--unistd PATH]
//! [--errno-base PATH] [--errno PATH]`.
//!
//! The generated files are checked in so the crate builds where no headers are installed; this
//! program is only needed when the headers (or `src/signatures.rs`'s set of names) change.
//! `--check` writes nothing and exits non-zero if the files are out of date, for CI scripts.

#[path = "generate.rs"]
mod generate;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

struct Options {
    check: bool,
    unistd: PathBuf,
    errno_base: PathBuf,
    errno: PathBuf,
}

fn parse_args() -> Result<Options, String> {
    let mut opts = Options {
        check: false,
        unistd: PathBuf::from(generate::UNISTD_64_H),
        errno_base: PathBuf::from(generate::ERRNO_BASE_H),
        errno: PathBuf::from(generate::ERRNO_H),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| {
            args.next()
                .map(PathBuf::from)
                .ok_or_else(|| format!("{flag} needs a path"))
        };
        match arg.as_str() {
            "--check" => opts.check = true,
            "--unistd" => opts.unistd = value("--unistd")?,
            "--errno-base" => opts.errno_base = value("--errno-base")?,
            "--errno" => opts.errno = value("--errno")?,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(opts)
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

fn run() -> Result<bool, String> {
    let opts = parse_args()?;
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let generated = generate::generate_all(
        &read(&opts.unistd)?,
        &read(&opts.errno_base)?,
        &read(&opts.errno)?,
        &read(&src.join("signatures.rs"))?,
    )?;
    let mut up_to_date = true;
    for (file, text) in [
        ("generated_x86_64.rs", &generated.x86_64),
        ("generated_errno.rs", &generated.errno),
    ] {
        let path = src.join(file);
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current == *text {
            println!("{}: up to date", path.display());
        } else if opts.check {
            println!("{}: OUT OF DATE", path.display());
            up_to_date = false;
        } else {
            std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
            println!("{}: written", path.display());
        }
    }
    Ok(up_to_date)
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("gen: {e}");
            ExitCode::FAILURE
        }
    }
}
