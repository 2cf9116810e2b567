//! The `rvisor` binary: OCI runtime commands, `do`, and the hidden `boot`
//! (sentry) and `gofer` entry points it re-executes itself as.

mod bundle;
mod cgroups;
mod cli;
mod commands;
mod container;
mod hooks;
mod logging;
mod sandbox;

use clap::Parser;

fn main() {
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => usage_error(e),
    };
    let global = cli.global.clone();
    let code = match commands::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            let msg = format!("{e:#}");
            eprintln!("rvisor: {msg}");
            logging::write_log(&global, "error", &msg);
            1
        }
    };
    std::process::exit(code);
}

/// A command line clap refused: help and version print as usual; an
/// error becomes one line (runc's clients log stderr line by line), also
/// written to --log if the command line named one.
fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    let text = e.to_string();
    // The error's first paragraph, on one line.
    let first: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect();
    let first = first.join(" ");
    let msg = format!("{} (see --help)", first.trim_start_matches("error: "));
    eprintln!("rvisor: {msg}");
    let args: Vec<String> = std::env::args().collect();
    let log = args.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix("--log=")
            .map(str::to_string)
            .or_else(|| (a == "--log").then(|| args.get(i + 1).cloned()).flatten())
    });
    let json = args
        .windows(2)
        .any(|w| w[0] == "--log-format" && w[1] == "json")
        || args.iter().any(|a| a == "--log-format=json");
    if let Some(path) = log {
        let g = cli::GlobalOpts {
            log: Some(path.into()),
            log_format: if json {
                cli::LogFormat::Json
            } else {
                cli::LogFormat::Text
            },
            ..cli::GlobalOpts::default()
        };
        logging::write_log(&g, "error", &msg);
    }
    std::process::exit(2);
}
