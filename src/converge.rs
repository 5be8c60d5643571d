//! `berth diff` and `berth apply`: load the spec directory, plan against the cluster, show the
//! plan, and (for apply) carry it out after confirmation.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use crate::cli::exit;
use crate::cluster::{Cluster, PlanOptions, StderrProgress, head_commit};
use crate::config::Config;
use crate::plan::ColorChoice;
use crate::spec::{LoadError, Loaded, load_dir, use_color};

/// Flags shared by diff and apply.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConvergeFlags {
    /// Output format: `text` (summary, then unified diffs) or `json`.
    #[arg(short = 'o', long = "output", default_value = "text", value_parser = ["text", "json"])]
    pub output: String,
    /// Recreate StatefulSets whose immutable fields change (no outage: pods and volumes are kept).
    #[arg(long)]
    pub allow_recreate: bool,
    /// With --allow-recreate: also recreate when a volume is renamed or no longer declared, so
    /// the pods start on new, empty claims (the old claims are kept, unused).
    #[arg(long)]
    pub abandon_claims: bool,
    /// Release held removals (moves, removals past the budget) and go past
    /// `safety.max_removals`: every app it releases is shown first.
    #[arg(long)]
    pub allow_removals: bool,
    /// Treat a missing or empty spec directory as "remove every app".
    #[arg(long)]
    pub allow_empty: bool,
    /// How many apps are planned and converged at the same time.
    #[arg(long, default_value_t = PlanOptions::DEFAULT_CONCURRENCY, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub concurrency: usize,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Loads the directory and prints its diagnostics; None (after an error message) when the
/// directory cannot be used at all.
fn load_specs(dir: &Path, config: &Config, flags: &ConvergeFlags) -> Option<Loaded> {
    let loaded = match load_dir(dir, config) {
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

fn plan_options(config: &Config, flags: &ConvergeFlags, dir: &Path) -> PlanOptions {
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
    }
}

/// `berth diff`: 0 in sync, 1 changes pending, 2 error (including a broken spec), 3 a pending
/// change is destructive.
pub fn diff(
    dir: &Path,
    config: &Config,
    context: Option<&str>,
    flags: &ConvergeFlags,
) -> anyhow::Result<u8> {
    let Some(loaded) = load_specs(dir, config, flags) else {
        return Ok(exit::ERROR);
    };
    let planned = runtime()?.block_on(async {
        let cluster = Cluster::connect(context, &config.instance).await?;
        anyhow::Ok(
            cluster
                .plan(&loaded, &plan_options(config, flags, dir))
                .await?,
        )
    })?;
    let plan = &planned.plan;
    if flags.output == "json" {
        println!("{}", serde_json::to_string_pretty(plan)?);
    } else {
        print!("{}", plan.render_text(ColorChoice::for_stdout()));
    }
    Ok(if loaded.has_errors() {
        exit::ERROR
    } else if plan.has_destructive() {
        exit::DESTRUCTIVE
    } else if plan.has_changes() || plan.blocked().next().is_some() {
        exit::CHANGES_PENDING
    } else {
        exit::OK
    })
}

/// `berth apply`: show the plan, confirm (unless --yes), execute. 0 when everything converged,
/// 2 when a spec was broken, an app was blocked, or a step failed.
pub fn apply(
    dir: &Path,
    config: &Config,
    context: Option<&str>,
    flags: &ConvergeFlags,
    yes: bool,
) -> anyhow::Result<u8> {
    let Some(loaded) = load_specs(dir, config, flags) else {
        return Ok(exit::ERROR);
    };
    let rt = runtime()?;
    let cluster = rt.block_on(Cluster::connect(context, &config.instance))?;
    let planned = rt.block_on(cluster.plan(&loaded, &plan_options(config, flags, dir)))?;
    let plan = &planned.plan;
    print!("{}", plan.render_text(ColorChoice::for_stdout()));
    let blocked = plan.blocked().count();
    let failed_exit = if loaded.has_errors() || blocked > 0 {
        exit::ERROR
    } else {
        exit::OK
    };
    // Holds are recorded whatever happens next: a hold is released by a person, never by the
    // count of removals going down.
    rt.block_on(cluster.record(&planned, false))?;
    if !plan.has_changes() {
        println!("nothing to apply");
        return Ok(failed_exit);
    }
    if !yes && !confirm()? {
        println!("nothing applied");
        return Ok(exit::ERROR);
    }
    // Removals are counted against the budget before their first write.
    rt.block_on(cluster.record(&planned, true))?;
    let report = {
        let progress = StderrProgress::new();
        rt.block_on(cluster.execute(&planned, &progress))
    };
    for (app, what) in &report.done {
        println!("{app}: {what}");
    }
    for pvc in &report.retained_pvcs {
        println!("kept PersistentVolumeClaim {pvc}");
    }
    for (app, error) in &report.failed {
        eprintln!("error: {app}: {error}");
    }
    if !report.not_attempted.is_empty() {
        eprintln!(
            "error: the API server stopped answering; {} app(s) were not attempted and are \
             as they were: {}. Run again once it is reachable: apply continues from the \
             cluster's state",
            report.not_attempted.len(),
            report.not_attempted.join(", ")
        );
        eprintln!("{}", crate::cli::unreachable_hint(context));
    }
    if !report.failed.is_empty() || !report.not_attempted.is_empty() {
        return Ok(exit::ERROR);
    }
    Ok(failed_exit)
}

/// Asks on the terminal; without one, refuses (a script must say --yes).
fn confirm() -> anyhow::Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        anyhow::bail!(
            "refusing to apply without confirmation: stdin is not a terminal; pass --yes"
        );
    }
    print!("Apply these changes? [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}
