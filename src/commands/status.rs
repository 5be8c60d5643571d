//! `berth status [DIR]`: one line per app (or a JSON document) from [`crate::status`], and the
//! exit code that says whether every app is in sync and ready.

use std::path::PathBuf;

use super::{Exit, OutputFormat, print, runtime};
use crate::cluster::Cluster;
use crate::config::Config;
use crate::status::{Report, all_healthy, collect, render_text};

#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// Spec directory: the sync state then comes from a plan of it. Without it only live state
    /// is shown (sync `unknown`, or `removing`).
    dir: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

/// 0 when every app is in sync and ready, 1 otherwise, 2 on error.
pub(crate) fn exec(
    args: &StatusArgs,
    config: &Config,
    context: Option<&str>,
) -> anyhow::Result<Exit> {
    let loaded = match &args.dir {
        None => None,
        Some(dir) => match crate::spec::load_dir(dir, config) {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("error: {:#}", anyhow::Error::from(e));
                return Ok(Exit::Error);
            }
        },
    };
    let apps = runtime()?.block_on(async {
        let cluster = Cluster::connect(context, config).await?;
        anyhow::Ok(collect(&cluster, loaded.as_ref(), args.dir.as_deref(), config).await?)
    })?;
    let healthy = all_healthy(&apps);
    let exit = if healthy {
        Exit::Ok
    } else {
        Exit::ChangesPending
    };
    let text = match args.output {
        OutputFormat::Json => {
            let report = Report {
                apps: &apps,
                ok: healthy,
            };
            serde_json::to_string_pretty(&report)? + "\n"
        }
        OutputFormat::Text if apps.is_empty() => {
            format!("no apps (berth instance `{}`)\n", config.instance)
        }
        OutputFormat::Text => render_text(&apps),
    };
    print(text, exit)?;
    Ok(exit)
}
