//! `berth apply DIR`: show the plan, confirm (unless --yes), carry it out, with progress of the
//! long steps on stderr.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::diff::{ConvergeFlags, load_and_list, plan_options};
use super::{Exit, print, runtime, unreachable_hint};
use crate::cluster::Progress;
use crate::cluster::wait::{Waited, until_healthy};
use crate::config::Config;
use crate::plan::ColorChoice;
use crate::spec::AppKey;

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    dir: PathBuf,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    yes: bool,
    /// After converging, wait until every changed app is healthy (every pod Ready on the new
    /// revision); exit 4 when one is degraded or the timeout passes.
    #[arg(long)]
    wait: bool,
    /// How long --wait waits, and how long an app with `after` waits for the apps it names to
    /// be healthy (`90s`, `10m`).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    timeout: Duration,
    #[command(flatten)]
    flags: ConvergeFlags,
}

/// 0 when everything converged, 2 when a spec was broken, an app was blocked, or a step failed,
/// 4 with --wait when a changed app is degraded or not healthy within --timeout.
///
/// A reader of stdout that goes away while the plan is shown stops the apply before anything is
/// written to the cluster, ending with 2 as "nothing applied" does: the plan was not seen.
pub(crate) fn exec(
    args: &ApplyArgs,
    config: &Config,
    context: Option<&str>,
) -> anyhow::Result<Exit> {
    let ApplyArgs {
        dir,
        yes,
        wait,
        timeout,
        flags,
    } = args;
    let rt = runtime()?;
    let Some((loaded, cluster, inventory)) = load_and_list(dir, config, flags, &rt, context)?
    else {
        return Ok(Exit::Error);
    };
    let mut planned =
        rt.block_on(cluster.plan_with(&loaded, &inventory, &plan_options(config, flags, dir)))?;
    drop(inventory);
    let plan = &planned.plan;
    plan.write_text(ColorChoice::for_stdout(), |text| print(text, Exit::Error))?;
    let blocked = plan.blocked().count();
    let failed_exit = if loaded.has_errors() || blocked > 0 {
        Exit::Error
    } else {
        Exit::Ok
    };
    // Holds are recorded whatever happens next: a hold is released by a person, never by the
    // count of removals going down.
    rt.block_on(cluster.record(&planned, false))?;
    if !plan.has_changes() {
        print("nothing to apply\n", failed_exit)?;
        // Nothing changed, so nothing is waited for: the apps are as the last apply left them.
        return Ok(failed_exit);
    }
    if !yes && !confirm()? {
        print("nothing applied\n", Exit::Error)?;
        return Ok(Exit::Error);
    }
    // The diffs were shown and nothing below reads them; a cold apply's diffs are a large part
    // of its memory, which the writes that follow would add to.
    planned.plan.drop_diffs();
    // Removals are counted against the budget before their first write.
    rt.block_on(cluster.record(&planned, true))?;
    let progress = StderrProgress::new();
    let ordered = planned
        .order_nodes(&loaded)
        .values()
        .any(|n| !n.after.is_empty());
    let report = {
        let report = if ordered {
            rt.block_on(cluster.execute_in_order(&planned, &loaded, *timeout, &progress))?
        } else {
            rt.block_on(cluster.execute(&planned, &progress))
        };
        // The Events of the last steps are still being written; the runtime ends with this
        // command.
        rt.block_on(cluster.flush_events());
        report
    };
    let exit = if !report.failed.is_empty() || !report.not_attempted.is_empty() {
        Exit::Error
    } else {
        failed_exit
    };
    let mut done = String::new();
    for (app, what) in &report.done {
        done.push_str(&format!("{app}: {what}\n"));
    }
    for pvc in &report.retained_pvcs {
        done.push_str(&format!("kept PersistentVolumeClaim {pvc}\n"));
    }
    // What was done is told even to a reader that went away; the errors below go to stderr.
    let printed = print(done, exit);
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
    }
    // Once, whether or not every app had already started when the server went away.
    if report.server_unreachable {
        eprintln!("{}", unreachable_hint(context));
    }
    printed?;
    if !*wait || exit != Exit::Ok {
        return Ok(exit);
    }
    let changed: Vec<AppKey> = report
        .done
        .iter()
        .filter(|(_, what)| *what != "removed")
        .filter_map(|(app, _)| app.split_once('/'))
        .map(|(ns, name)| AppKey::new(ns, name))
        .collect();
    let waited = rt.block_on(until_healthy(&cluster, &changed, *timeout, &progress))?;
    drop(progress);
    Ok(match waited {
        Waited::Healthy => Exit::Ok,
        Waited::Degraded(apps) => {
            for (app, health) in apps {
                let reason = health.reason.unwrap_or_default();
                eprintln!("error: {app} is degraded: {reason}");
            }
            Exit::Unhealthy
        }
        Waited::TimedOut(apps) => {
            for (app, health) in apps {
                let why = health.reason.map(|r| format!(": {r}")).unwrap_or_default();
                eprintln!(
                    "error: {app} is not healthy after {}: {}{why}",
                    humantime::format_duration(*timeout),
                    health.state
                );
            }
            Exit::Unhealthy
        }
    })
}

/// Asks on the terminal; without one, refuses (a script must say --yes).
fn confirm() -> anyhow::Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        anyhow::bail!(
            "refusing to apply without confirmation: stdin is not a terminal; pass --yes"
        );
    }
    print("Apply these changes? [y/N] ", Exit::Error)?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// Progress on stderr for the CLI, each line with the time since the run started. On a
/// terminal a "waiting …" line is redrawn in place until something else happens; elsewhere
/// (CI logs, pipes) every line stands on its own.
struct StderrProgress {
    started: Instant,
    terminal: bool,
    /// A waiting line is on screen and the cursor is at its end.
    transient: std::sync::Mutex<bool>,
}

impl StderrProgress {
    fn new() -> StderrProgress {
        StderrProgress {
            started: Instant::now(),
            terminal: std::io::stderr().is_terminal(),
            transient: std::sync::Mutex::new(false),
        }
    }
}

impl Drop for StderrProgress {
    /// A waiting line still on screen is ended, so what is printed next starts on its own line.
    fn drop(&mut self) {
        if *self.transient.lock().unwrap_or_else(|p| p.into_inner()) {
            eprintln!();
        }
    }
}

impl Progress for StderrProgress {
    fn step(&self, app: &str, message: &str) {
        let line = format!(
            "[{:>4}s] {app}: {message}",
            self.started.elapsed().as_secs()
        );
        let mut transient = self.transient.lock().unwrap_or_else(|p| p.into_inner());
        if !self.terminal {
            eprintln!("{line}");
            return;
        }
        // \r and "erase line" redraw the waiting line; anything else ends it.
        if *transient {
            eprint!("\r\x1b[2K");
        }
        if message.starts_with("waiting") {
            eprint!("{line}");
            *transient = true;
        } else {
            eprintln!("{line}");
            *transient = false;
        }
    }
}
