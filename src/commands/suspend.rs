//! `berth suspend NS/NAME` and `berth resume NS/NAME`: put an app on hold for an incident and
//! take it off again. The mark lives on the app's StatefulSet, so every berth instance (the
//! daemons on both bastions, an apply from a laptop) leaves the app alone until it goes.

use super::{Exit, print, runtime};
use crate::cluster::Cluster;
use crate::config::Config;
use crate::spec::AppKey;

#[derive(Debug, clap::Args)]
pub struct SuspendArgs {
    /// The app, `NAMESPACE/NAME`.
    #[arg(value_parser = parse_key)]
    app: AppKey,
    /// Why, for whoever finds it suspended (shown in diff, status and the StatefulSet's events).
    #[arg(long, default_value = "no reason given")]
    reason: String,
}

#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    /// The app, `NAMESPACE/NAME`.
    #[arg(value_parser = parse_key)]
    app: AppKey,
}

fn parse_key(text: &str) -> Result<AppKey, String> {
    match text.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(AppKey::new(ns, name))
        }
        _ => Err(format!("`{text}` is not NAMESPACE/NAME (e.g. db/mysql)")),
    }
}

/// 0 when the app is suspended (already or now), 2 when it cannot be.
pub(crate) fn exec_suspend(
    args: &SuspendArgs,
    config: &Config,
    context: Option<&str>,
) -> anyhow::Result<Exit> {
    let who = std::env::var("USER").unwrap_or_else(|_| "unknown".to_string());
    let now = k8s_openapi::jiff::Timestamp::now().round(k8s_openapi::jiff::Unit::Second)?;
    let mark = format!("by {who} at {now}: {}", args.reason);
    let changed = runtime()?.block_on(async {
        let cluster = Cluster::connect(context, config).await?;
        anyhow::Ok(cluster.set_suspended(&args.app, Some(&mark)).await?)
    })?;
    let word = if changed {
        "suspended"
    } else {
        "still suspended"
    };
    print(
        format!(
            "{}: {word} ({mark}); berth leaves it alone until `berth resume {}`\n",
            args.app, args.app
        ),
        Exit::Ok,
    )?;
    Ok(Exit::Ok)
}

/// 0 when the app is not suspended (any more), 2 when the mark cannot be taken away.
pub(crate) fn exec_resume(
    args: &ResumeArgs,
    config: &Config,
    context: Option<&str>,
) -> anyhow::Result<Exit> {
    let changed = runtime()?.block_on(async {
        let cluster = Cluster::connect(context, config).await?;
        anyhow::Ok(cluster.set_suspended(&args.app, None).await?)
    })?;
    let text = if changed {
        format!("{}: resumed; berth manages it again\n", args.app)
    } else {
        format!(
            "{}: was not suspended by `berth suspend` (a spec's `suspend = true` stays until \
             the spec changes)\n",
            args.app
        )
    };
    print(text, Exit::Ok)?;
    Ok(Exit::Ok)
}
