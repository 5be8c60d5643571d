//! `berth completions SHELL`: a shell completion script, generated from the command line's
//! definition.

use super::{Exit, print};

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// `cli` is the whole command line (`berth` and every subcommand) the script completes.
pub(crate) fn exec(args: &CompletionsArgs, cli: &mut clap::Command) -> anyhow::Result<Exit> {
    // Into memory first: clap_complete panics when its writer fails, and a reader that goes
    // away (`berth completions bash | head`) is no reason to.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, cli, "berth", &mut script);
    print(script, Exit::Ok)?;
    Ok(Exit::Ok)
}
