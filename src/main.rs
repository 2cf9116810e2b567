//! The `rvisor` binary: OCI runtime commands, `do`, and the hidden `boot`
//! (sentry) and `gofer` entry points it re-executes itself as.

mod bundle;
mod cli;
mod commands;
mod logging;
mod sandbox;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    let code = match commands::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rvisor: {e:#}");
            1
        }
    };
    std::process::exit(code);
}
