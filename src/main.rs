//! The `berth` binary: parse the command line, run the command, turn its outcome into the exit
//! code. Tracing is started by the command that logs (`berth watch`).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = berth::cli::Cli::parse();
    let context = cli.context.clone();
    let outcome = berth::cli::dispatch(cli);
    berth::commands::exit_code(outcome, context.as_deref())
}
