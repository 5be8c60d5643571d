//! `berth import`: live StatefulSets and their Services → TOML specs. The command lives in
//! [`crate::import`]; this file only hands it over.

use super::Exit;
use crate::config::Config;
pub use crate::import::ImportArgs;

pub(crate) fn exec(
    args: &ImportArgs,
    config: &Config,
    context: Option<&str>,
) -> anyhow::Result<Exit> {
    let code = crate::import::run(args, config, context)?;
    Ok(exit_of(code))
}

/// `crate::import::run` still ends with a number (`crate::cli::exit`); this goes once it
/// returns an [`Exit`].
fn exit_of(code: u8) -> Exit {
    [Exit::Ok, Exit::ChangesPending, Exit::Destructive]
        .into_iter()
        .find(|exit| exit.code() == code)
        .unwrap_or(Exit::Error)
}
