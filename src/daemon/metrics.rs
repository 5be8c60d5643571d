//! The daemon's Prometheus metrics: one registry, the metric families the daemon updates, and
//! their OpenMetrics text encoding for `/metrics`.
//!
//! Only this module knows metric names, label names and buckets; the rest of the daemon calls
//! the typed setters below, so a dashboard's contract lives in one place.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use super::app_state::AppState;

/// The app states `berth_apps` always reports, at 0 when no app is in them, so that a query such
/// as `berth_apps{state="error"} > 0` has a series to evaluate even on a healthy host.
fn app_states() -> impl Iterator<Item = &'static str> {
    AppState::ALL.into_iter().map(AppState::as_str)
}

/// The `result` label values of `berth_apply_total`, initialised at 0 so that `rate()` sees the
/// first failure instead of a series that appears out of nowhere.
pub const APPLY_RESULTS: [&str; 3] = ["success", "failure", "dry-run"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppHealthLabel {
    namespace: String,
    app: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FileLabel {
    file: String,
}

/// All metrics of one daemon. Shared as `Arc<Metrics>` between the workers (which update it) and
/// the admin server (which encodes it); every method takes `&self`.
pub struct Metrics {
    /// Owns the descriptors (names, HELP, units) and is what `encode` walks.
    registry: Registry,
    /// `berth_apps{state}`: number of apps per state.
    apps: Family<StateLabel, Gauge>,
    /// `berth_reconcile_duration_seconds`: time of one app's reconcile, success or not.
    reconcile_duration: Histogram,
    /// `berth_apply_total{result}`.
    applies: Family<ResultLabel, Counter>,
    /// `berth_drift_total`.
    drift: Counter,
    /// `berth_spec_errors{file}`.
    spec_errors: Family<FileLabel, Gauge>,
    /// Files reported by the previous `set_spec_errors`, so that a fixed or deleted file's series
    /// is removed instead of showing its last error count forever (the family itself cannot list
    /// its label sets).
    spec_error_files: Mutex<BTreeSet<String>>,
    /// Extra states (outside [`AppState::ALL`]) seen by the previous `set_app_states`, removed again
    /// when they disappear for the same reason.
    extra_app_states: Mutex<BTreeSet<String>>,
    /// `berth_pending_removals`.
    pending_removals: Gauge,
    /// `berth_retained_pvcs`.
    retained_pvcs: Gauge,
    /// `berth_last_success_timestamp_seconds`: unix time of the last successful converge.
    last_success: Gauge<f64, AtomicU64>,
    /// `berth_leader`: 1 while this process may write (always without leader election).
    leader: Gauge,
    /// `berth_git_lock_wait_seconds`: how long the pending reload has waited for git.
    git_lock_wait: Gauge<f64, AtomicU64>,
    /// `berth_app_health{state}`: apps per health state.
    health: Family<StateLabel, Gauge>,
    /// `berth_app_health_state{namespace,app,state}`: 1 for each app's current health.
    app_health: Family<AppHealthLabel, Gauge>,
    /// `berth_notifications_total{result}`.
    notifications: Family<ResultLabel, Counter>,
}

impl Metrics {
    /// Creates the registry with every family registered and the fixed label values at 0.
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::default();

        let apps = Family::<StateLabel, Gauge>::default();
        registry.register(
            "berth_apps",
            "Number of apps berth manages, by state (in-sync, pending, drifted, blocked, held, removing, error, suspended, waiting)",
            apps.clone(),
        );

        // 1 ms .. ~65 s in powers of two: a no-op reconcile from the caches takes milliseconds,
        // an apply plus an ordered removal step can take tens of seconds.
        let reconcile_duration = Histogram::new(exponential_buckets(0.001, 2.0, 17));
        registry.register_with_unit(
            "berth_reconcile_duration",
            "Time taken by one app's reconcile (plan, and apply when needed), successful or not",
            Unit::Seconds,
            reconcile_duration.clone(),
        );

        let applies = Family::<ResultLabel, Counter>::default();
        // Registered without `_total`: the OpenMetrics encoder appends it to counters.
        registry.register(
            "berth_apply",
            "Applies of an app's objects, by result (success, failure, dry-run)",
            applies.clone(),
        );

        let drift = Counter::default();
        registry.register(
            "berth_drift",
            "Times a manual change to a field berth owns was detected on a live object",
            drift.clone(),
        );

        let spec_errors = Family::<FileLabel, Gauge>::default();
        registry.register(
            "berth_spec_errors",
            "Number of errors in a spec file (the file's last good version stays applied); files without errors have no series",
            spec_errors.clone(),
        );

        let pending_removals = Gauge::default();
        registry.register(
            "berth_pending_removals",
            "Apps whose spec file is gone and whose ordered removal has not finished",
            pending_removals.clone(),
        );

        let retained_pvcs = Gauge::default();
        registry.register(
            "berth_retained_pvcs",
            "PersistentVolumeClaims left behind by removed apps (berth never deletes volumes)",
            retained_pvcs.clone(),
        );

        let last_success = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "berth_last_success_timestamp",
            "Unix time of the last change berth converged successfully",
            Unit::Seconds,
            last_success.clone(),
        );

        let leader = Gauge::default();
        registry.register(
            "berth_leader",
            "1 while this berth holds the leader lease and may write (always 1 without leader election), 0 while it stands by",
            leader.clone(),
        );
        leader.set(1);
        let git_lock_wait = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "berth_git_lock_wait",
            "How long the pending reload of the spec directory has waited for git's .git/index.lock to go; 0 when none waits",
            Unit::Seconds,
            git_lock_wait.clone(),
        );

        for state in app_states() {
            apps.get_or_create(&StateLabel {
                state: state.to_owned(),
            })
            .set(0);
        }
        let health = Family::<StateLabel, Gauge>::default();
        registry.register(
            "berth_app_health",
            "Number of apps per health (healthy, progressing, degraded, missing), from their pods, claims and events",
            health.clone(),
        );
        for state in crate::health::State::ALL {
            let _ = health.get_or_create(&StateLabel {
                state: state.as_str().to_owned(),
            });
        }
        let app_health = Family::<AppHealthLabel, Gauge>::default();
        registry.register(
            "berth_app_health_state",
            "1 for each app's current health state (one series per app)",
            app_health.clone(),
        );
        let notifications = Family::<ResultLabel, Counter>::default();
        registry.register(
            "berth_notifications",
            "Notices to [[notify]] webhooks, by result (sent, failed after retries, dropped from a full queue)",
            notifications.clone(),
        );
        for result in crate::daemon::notifications::Outcome::ALL {
            let _ = notifications.get_or_create(&ResultLabel {
                result: result.as_str().to_owned(),
            });
        }
        for result in APPLY_RESULTS {
            // Creating the series is the point; the returned read guard is dropped at once.
            let _ = applies.get_or_create(&ResultLabel {
                result: result.to_owned(),
            });
        }

        Arc::new(Metrics {
            registry,
            apps,
            reconcile_duration,
            applies,
            drift,
            spec_errors,
            spec_error_files: Mutex::new(BTreeSet::new()),
            extra_app_states: Mutex::new(BTreeSet::new()),
            pending_removals,
            retained_pvcs,
            last_success,
            leader,
            git_lock_wait,
            health,
            app_health,
            notifications,
        })
    }

    /// Sets `berth_leader`.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Sets `berth_apps{state}` from a full count; the states of [`AppState::ALL`] missing from
    /// `counts` go to 0. A state outside that list is reported too (and removed once absent), so
    /// a new state in the daemon shows up rather than vanishing.
    pub fn set_app_states(&self, counts: &BTreeMap<String, i64>) {
        for state in app_states() {
            let n = counts.get(state).copied().unwrap_or(0);
            self.apps
                .get_or_create(&StateLabel {
                    state: state.to_owned(),
                })
                .set(n);
        }
        let extra: BTreeSet<String> = counts
            .keys()
            .filter(|state| !app_states().any(|known| known == state.as_str()))
            .cloned()
            .collect();
        let mut previous = self
            .extra_app_states
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for gone in previous.difference(&extra) {
            self.apps.remove(&StateLabel {
                state: gone.clone(),
            });
        }
        for state in &extra {
            let n = counts.get(state).copied().unwrap_or(0);
            self.apps
                .get_or_create(&StateLabel {
                    state: state.clone(),
                })
                .set(n);
        }
        *previous = extra;
    }

    /// Records one app's reconcile time.
    pub fn observe_reconcile(&self, seconds: f64) {
        self.reconcile_duration.observe(seconds);
    }

    /// Counts one apply; `result` is one of [`APPLY_RESULTS`].
    pub fn count_apply(&self, result: &str) {
        self.applies
            .get_or_create(&ResultLabel {
                result: result.to_owned(),
            })
            .inc();
    }

    /// Counts one detected drift.
    pub fn count_drift(&self) {
        self.drift.inc();
    }

    /// Replaces `berth_spec_errors` with the current per-file error counts. Files from the
    /// previous call that are absent now (fixed, or deleted) lose their series.
    pub fn set_spec_errors(&self, per_file: &[(String, i64)]) {
        let current: BTreeSet<String> = per_file.iter().map(|(file, _)| file.clone()).collect();
        // Held across the update so that two concurrent callers cannot interleave their
        // remove/set steps and leave a stale file behind.
        let mut previous = self
            .spec_error_files
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for gone in previous.difference(&current) {
            self.spec_errors.remove(&FileLabel { file: gone.clone() });
        }
        for (file, n) in per_file {
            self.spec_errors
                .get_or_create(&FileLabel { file: file.clone() })
                .set(*n);
        }
        *previous = current;
    }

    /// Sets `berth_pending_removals`.
    pub fn set_pending_removals(&self, n: i64) {
        self.pending_removals.set(n);
    }

    /// Sets `berth_retained_pvcs`.
    pub fn set_retained_pvcs(&self, n: i64) {
        self.retained_pvcs.set(n);
    }

    /// Sets `berth_last_success_timestamp_seconds` to now.
    pub fn mark_success(&self) {
        // A clock before 1970 is a broken host; reporting 0 then makes the staleness alert fire,
        // which is the right outcome.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        self.last_success.set(now);
    }

    /// Sets `berth_git_lock_wait_seconds` (0 once the reload has happened).
    pub fn set_git_lock_wait(&self, seconds: f64) {
        self.git_lock_wait.set(seconds);
    }

    /// Sets `berth_app_health{state}` from a full count.
    pub fn set_health_counts(&self, counts: &BTreeMap<crate::health::State, i64>) {
        for (state, n) in counts {
            self.health
                .get_or_create(&StateLabel {
                    state: state.as_str().to_owned(),
                })
                .set(*n);
        }
    }

    /// Moves app `namespace/app`'s `berth_app_health_state` series from state `was` to `now`
    /// (None: no series, the app is gone).
    pub fn set_app_health(
        &self,
        namespace: &str,
        app: &str,
        was: Option<crate::health::State>,
        now: Option<crate::health::State>,
    ) {
        let label = |state: crate::health::State| AppHealthLabel {
            namespace: namespace.to_owned(),
            app: app.to_owned(),
            state: state.as_str().to_owned(),
        };
        if let Some(was) = was.filter(|w| Some(*w) != now) {
            self.app_health.remove(&label(was));
        }
        if let Some(now) = now {
            self.app_health.get_or_create(&label(now)).set(1);
        }
    }

    /// Counts one notice's outcome at one target.
    pub fn count_notification(&self, result: &str) {
        self.notifications
            .get_or_create(&ResultLabel {
                result: result.to_owned(),
            })
            .inc();
    }

    /// The registry in the OpenMetrics text format, ending with `# EOF`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail, and the registry holds only well-formed metrics;
        // should the encoder still refuse, a partial page is better than a failed scrape.
        if let Err(err) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %err, "encoding the metrics failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample line that starts with `series ` (name plus labels).
    fn sample(text: &str, series: &str) -> Option<String> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map(str::to_owned)
    }

    #[test]
    fn fresh_registry_reports_every_family_with_help() {
        let text = Metrics::new().encode();
        // A family without series is left out entirely by the encoder: with no broken file
        // there is no `berth_spec_errors` (checked in `spec_errors_of_fixed_files_disappear`).
        assert!(!text.contains("berth_spec_errors"), "{text}");
        for name in [
            "berth_apps",
            "berth_reconcile_duration_seconds",
            "berth_apply",
            "berth_drift",
            "berth_pending_removals",
            "berth_retained_pvcs",
            "berth_last_success_timestamp_seconds",
        ] {
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "no HELP for {name} in:\n{text}"
            );
        }
        for state in app_states() {
            assert_eq!(
                sample(&text, &format!("berth_apps{{state=\"{state}\"}}")).as_deref(),
                Some("0"),
                "{text}"
            );
        }
        for result in APPLY_RESULTS {
            assert_eq!(
                sample(&text, &format!("berth_apply_total{{result=\"{result}\"}}")).as_deref(),
                Some("0"),
                "{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn app_states_absent_from_the_map_go_back_to_zero() {
        let metrics = Metrics::new();
        let counts = BTreeMap::from([
            ("in-sync".to_owned(), 5),
            ("error".to_owned(), 2),
            ("surprise".to_owned(), 1),
        ]);
        metrics.set_app_states(&counts);
        let text = metrics.encode();
        assert_eq!(
            sample(&text, "berth_apps{state=\"in-sync\"}").as_deref(),
            Some("5")
        );
        assert_eq!(
            sample(&text, "berth_apps{state=\"error\"}").as_deref(),
            Some("2")
        );
        assert_eq!(
            sample(&text, "berth_apps{state=\"surprise\"}").as_deref(),
            Some("1")
        );

        metrics.set_app_states(&BTreeMap::from([("in-sync".to_owned(), 7)]));
        let text = metrics.encode();
        assert_eq!(
            sample(&text, "berth_apps{state=\"in-sync\"}").as_deref(),
            Some("7")
        );
        assert_eq!(
            sample(&text, "berth_apps{state=\"error\"}").as_deref(),
            Some("0")
        );
        assert!(!text.contains("surprise"), "{text}");
    }

    #[test]
    fn counters_histogram_and_gauges() {
        let metrics = Metrics::new();
        metrics.count_apply("success");
        metrics.count_apply("success");
        metrics.count_apply("failure");
        metrics.count_drift();
        metrics.observe_reconcile(0.0015);
        metrics.observe_reconcile(30.0);
        metrics.set_pending_removals(3);
        metrics.set_retained_pvcs(4);
        let text = metrics.encode();

        assert_eq!(
            sample(&text, "berth_apply_total{result=\"success\"}").as_deref(),
            Some("2")
        );
        assert_eq!(
            sample(&text, "berth_apply_total{result=\"failure\"}").as_deref(),
            Some("1")
        );
        assert_eq!(
            sample(&text, "berth_apply_total{result=\"dry-run\"}").as_deref(),
            Some("0")
        );
        assert_eq!(sample(&text, "berth_drift_total").as_deref(), Some("1"));
        assert_eq!(
            sample(&text, "berth_reconcile_duration_seconds_count").as_deref(),
            Some("2")
        );
        assert_eq!(
            sample(&text, "berth_reconcile_duration_seconds_sum").as_deref(),
            Some("30.0015")
        );
        // 1.5 ms falls in the 2 ms bucket, 30 s in the 32.768 s one.
        assert_eq!(
            sample(
                &text,
                "berth_reconcile_duration_seconds_bucket{le=\"0.001\"}"
            )
            .as_deref(),
            Some("0")
        );
        assert_eq!(
            sample(
                &text,
                "berth_reconcile_duration_seconds_bucket{le=\"0.002\"}"
            )
            .as_deref(),
            Some("1")
        );
        assert_eq!(
            sample(
                &text,
                "berth_reconcile_duration_seconds_bucket{le=\"32.768\"}"
            )
            .as_deref(),
            Some("2")
        );
        assert!(text.contains("# TYPE berth_reconcile_duration_seconds histogram"));
        assert!(text.contains("# UNIT berth_reconcile_duration_seconds seconds"));
        assert_eq!(
            sample(&text, "berth_pending_removals").as_deref(),
            Some("3")
        );
        assert_eq!(sample(&text, "berth_retained_pvcs").as_deref(), Some("4"));
    }

    #[test]
    fn spec_errors_of_fixed_files_disappear() {
        let metrics = Metrics::new();
        metrics.set_spec_errors(&[("apps/a.toml".to_owned(), 2), ("apps/b.toml".to_owned(), 1)]);
        let text = metrics.encode();
        assert!(text.contains("# HELP berth_spec_errors "), "{text}");
        assert!(text.contains("# TYPE berth_spec_errors gauge"), "{text}");
        assert_eq!(
            sample(&text, "berth_spec_errors{file=\"apps/a.toml\"}").as_deref(),
            Some("2")
        );
        assert_eq!(
            sample(&text, "berth_spec_errors{file=\"apps/b.toml\"}").as_deref(),
            Some("1")
        );

        metrics.set_spec_errors(&[("apps/b.toml".to_owned(), 3)]);
        let text = metrics.encode();
        assert!(!text.contains("apps/a.toml"), "{text}");
        assert_eq!(
            sample(&text, "berth_spec_errors{file=\"apps/b.toml\"}").as_deref(),
            Some("3")
        );

        metrics.set_spec_errors(&[]);
        assert!(!metrics.encode().contains("berth_spec_errors{"));
    }

    #[test]
    fn mark_success_sets_a_recent_unix_time() {
        let metrics = Metrics::new();
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs_f64();
        metrics.mark_success();
        let text = metrics.encode();
        let value: f64 = sample(&text, "berth_last_success_timestamp_seconds")
            .expect("sample present")
            .parse()
            .expect("a number");
        assert!(
            value >= before.floor() && value < before + 60.0,
            "{value} vs {before}"
        );
    }
}
