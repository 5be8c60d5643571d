//! `berth diff DIR`: load the spec directory, plan it against the cluster and show the plan.
//! What diff and apply share (their flags, loading, plan options) lives here too: apply is a
//! diff that then carries the plan out.

use std::path::{Path, PathBuf};

use super::{Exit, OutputFormat, print, runtime};
use crate::cluster::{Cluster, Inventory, PlanOptions, head_commit};
use crate::config::Config;
use crate::plan::ColorChoice;
use crate::spec::{LoadError, Loaded, load_dir, use_color};

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    dir: PathBuf,
    #[command(flatten)]
    flags: ConvergeFlags,
}

/// Flags shared by diff and apply.
#[derive(Debug, Clone, clap::Args)]
pub(super) struct ConvergeFlags {
    /// Output format: `text` (summary, then unified diffs) or `json`.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
    /// Recreate StatefulSets whose immutable fields change (no outage: pods and volumes are kept).
    #[arg(long)]
    allow_recreate: bool,
    /// With --allow-recreate: also recreate when a volume is renamed or no longer declared, so
    /// the pods start on new, empty claims (the old claims are kept, unused).
    #[arg(long)]
    abandon_claims: bool,
    /// Release held removals (moves, removals past the budget) and go past
    /// `safety.max_removals`: every app it releases is shown first.
    #[arg(long)]
    allow_removals: bool,
    /// Treat a missing or empty spec directory as "remove every app".
    #[arg(long)]
    allow_empty: bool,
    /// How many apps are planned and converged at the same time.
    #[arg(long, default_value_t = PlanOptions::DEFAULT_CONCURRENCY, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    concurrency: usize,
}

/// 0 in sync, 1 changes pending, 2 error (including a broken spec), 3 a pending change is
/// destructive.
pub(crate) fn exec(
    args: &DiffArgs,
    config: &Config,
    context: Option<&str>,
) -> anyhow::Result<Exit> {
    let DiffArgs { dir, flags } = args;
    let rt = runtime()?;
    let Some((loaded, cluster, inventory)) = load_and_list(dir, config, flags, &rt, context)?
    else {
        return Ok(Exit::Error);
    };
    let planned =
        rt.block_on(cluster.plan_with(&loaded, &inventory, &plan_options(config, flags, dir)))?;
    drop(inventory);
    let plan = &planned.plan;
    let exit = if loaded.has_errors() {
        Exit::Error
    } else if plan.has_destructive() {
        Exit::Destructive
    } else if plan.has_changes() || plan.blocked().next().is_some() {
        Exit::ChangesPending
    } else {
        Exit::Ok
    };
    match flags.output {
        OutputFormat::Json => print(serde_json::to_string_pretty(plan)? + "\n", exit)?,
        OutputFormat::Text => {
            plan.write_text(ColorChoice::for_stdout(), |text| print(text, exit))?
        }
    }
    Ok(exit)
}

/// The specs and what this instance owns in the cluster, read side by side: the directory is
/// loaded on a thread of its own while the cluster is reached and listed (at 10,000 apps each
/// takes about as long as the other). None when the directory cannot be used (its error
/// printed); the cluster's error counts only once the specs loaded.
pub(super) fn load_and_list(
    dir: &Path,
    config: &Config,
    flags: &ConvergeFlags,
    rt: &tokio::runtime::Runtime,
    context: Option<&str>,
) -> anyhow::Result<Option<(Loaded, Cluster, Inventory)>> {
    let (loaded, listed) = std::thread::scope(|scope| {
        let loading = scope.spawn(|| load_specs(dir, config, flags));
        let listed = rt.block_on(async {
            let cluster = Cluster::connect(context, config).await?;
            let inventory = cluster.inventory().await?;
            anyhow::Ok((cluster, inventory))
        });
        (loading.join(), listed)
    });
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    let Some(loaded) = loaded else {
        return Ok(None);
    };
    let (cluster, inventory) = listed?;
    Ok(Some((loaded, cluster, inventory)))
}

/// Loads the directory and prints its diagnostics; None (after an error message) when the
/// directory cannot be used at all.
pub(super) fn load_specs(dir: &Path, config: &Config, flags: &ConvergeFlags) -> Option<Loaded> {
    let mut loaded = match load_dir(dir, config) {
        Ok(loaded) => loaded,
        Err(LoadError::Missing { .. }) if flags.allow_empty => Loaded::default(),
        Err(err @ LoadError::Missing { .. }) => {
            eprintln!(
                "error: {err}; berth will not remove every app because a checkout is missing. \
                 If that is really wanted, pass --allow-empty"
            );
            return None;
        }
        Err(err) => {
            eprintln!("error: {:#}", anyhow::Error::from(err));
            return None;
        }
    };
    crate::render::refuse_unpatchable(&mut loaded, dir, &config.instance);
    let color = use_color();
    for d in &loaded.diagnostics {
        eprintln!("{}", d.render(color));
    }
    if loaded.has_errors() {
        eprintln!(
            "error: {} spec(s) have errors; their apps are left as they are in the cluster",
            loaded.broken.len()
        );
    }
    Some(loaded)
}

pub(super) fn plan_options(config: &Config, flags: &ConvergeFlags, dir: &Path) -> PlanOptions {
    PlanOptions {
        allow_recreate: flags.allow_recreate,
        abandon_claims: flags.abandon_claims,
        allow_removals: flags.allow_removals,
        allow_empty: flags.allow_empty,
        max_removals: config.safety.max_removals,
        removal_window: config.safety.removal_window,
        ledger_namespace: config.safety.namespace.clone(),
        arrivals: Default::default(),
        commit: head_commit(dir),
        concurrency: flags.concurrency,
        // A fresh list per run: what it shows is what the server has.
        live_from_cache: false,
        spec_changed: false,
    }
}
