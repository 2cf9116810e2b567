//! The `rvisor` binary: OCI runtime commands, `do`, and the hidden `boot`
//! (sentry) and `gofer` entry points it re-executes itself as.

mod bundle;
mod cli;
mod commands;
mod container;
mod hooks;
mod logging;
mod sandbox;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
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
