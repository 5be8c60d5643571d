//! Waiting for a quiet machine before a timed phase.
//!
//! The API server and its controllers share the machine's cores with the measured command, and
//! they keep working long after a large load or deletion (the controllers' revisions, statuses
//! and EndpointSlices, a deleted namespace's objects). A command timed while they catch up measures
//! their backlog as much as berth, and the same build's figures then swing by half from run to
//! run. So before each CPU-bound phase the bench waits, up to [`QUIET_WAIT_LIMIT`], until the
//! whole machine is less than [`QUIET_BUSY_SHARE`] busy over a [`QUIET_WINDOW`], and prints how
//! long it waited and how busy the machine was when the phase started: the report says in what
//! conditions each figure was taken, and a phase that starts on a busy machine says so.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::procfs::machine_cpu_ticks;

/// The share of all cores (0 to 1) under which the machine counts as quiet: on two cores, 30%
/// of one core.
const QUIET_BUSY_SHARE: f64 = 0.15;
/// How long the machine is watched for each look.
const QUIET_WINDOW: Duration = Duration::from_secs(3);
/// How long the bench waits at most: past this the phase runs anyway, and the log says how busy
/// the machine still was.
const QUIET_WAIT_LIMIT: Duration = Duration::from_secs(300);

/// How one wait ended.
#[derive(Debug, Clone, Copy)]
pub(super) struct Quiet {
    /// Seconds waited, the last window included.
    pub waited_s: f64,
    /// The machine's busy share over the last window.
    pub busy_share: f64,
}

impl Quiet {
    /// As report.json has it.
    pub(super) fn to_json(self) -> serde_json::Value {
        serde_json::json!({"waited_s": self.waited_s, "busy_share": self.busy_share})
    }
}

/// Waits until the machine is quiet (or [`QUIET_WAIT_LIMIT`] has passed) and prints one line
/// naming `before`, the phase about to run.
pub(super) fn wait_for_quiet(before: &str) -> Result<Quiet> {
    let started = Instant::now();
    loop {
        let busy_share = busy_share_over(QUIET_WINDOW)?;
        let waited = started.elapsed();
        let waited_s = waited.as_secs_f64();
        let quiet = busy_share < QUIET_BUSY_SHARE;
        if quiet || waited >= QUIET_WAIT_LIMIT {
            eprintln!(
                "  {}: waited {waited_s:.0}s before {before}; the machine {:.0}% busy",
                if quiet { "quiet" } else { "still busy" },
                busy_share * 100.0
            );
            return Ok(Quiet {
                waited_s,
                busy_share,
            });
        }
    }
}

/// The share of all cores busy over `window`, from /proc/stat's first line.
fn busy_share_over(window: Duration) -> Result<f64> {
    let before = machine_cpu_ticks()?;
    std::thread::sleep(window);
    let after = machine_cpu_ticks()?;
    Ok(busy_share(before, after))
}

/// The share of the ticks between two readings of [`machine_cpu_ticks`] that were busy.
fn busy_share(before: (u64, u64), after: (u64, u64)) -> f64 {
    let total = after.1.saturating_sub(before.1);
    if total == 0 {
        return 0.0;
    }
    after.0.saturating_sub(before.0) as f64 / total as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busy_share_is_busy_ticks_over_all_ticks_between_readings() {
        assert!((busy_share((150, 1000), (230, 1200)) - 0.4).abs() < 1e-9);
    }

    #[test]
    fn a_window_without_ticks_is_quiet() {
        assert_eq!(busy_share((5, 10), (5, 10)), 0.0);
    }
}
