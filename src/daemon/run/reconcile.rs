//! One app's turn: a worker takes an app from the queue, plans it from the caches and converges
//! it, and tells the queue how it ended (done, failed with backoff, waiting for pods, or stopped
//! by the leader fence).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::tell::notify;
use super::{REMOVAL_POLL, Shared};
use crate::cluster::{PlanOptions, Progress, Reason};
use crate::config::DriftMode;
use crate::daemon::app_state::AppState;
use crate::notice::Event;
use crate::plan::{Action, AppPlan};
use crate::spec::{App, AppKey, Loaded};

/// Logs a removal's or recreate's progress.
struct LogProgress;

impl Progress for LogProgress {
    fn step(&self, app: &str, message: &str) {
        info!(app = %app, "{message}");
    }
}

pub(super) async fn worker(
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    done: mpsc::UnboundedSender<AppKey>,
) {
    while let Some(key) = shared.queue.next(&shutdown).await {
        if !shared.is_leader() {
            // A standby does no work; becoming leader queues every app again.
            shared.queue.done(&key, true);
            let _ = done.send(key);
            continue;
        }
        let started = Instant::now();
        let refused_before = shared.cluster.fence().refused();
        let outcome = reconcile(&shared, &key, refused_before).await;
        shared
            .metrics
            .observe_reconcile(started.elapsed().as_secs_f64());
        match outcome {
            Outcome::Done => shared.queue.done(&key, true),
            Outcome::Failed => shared.queue.done(&key, false),
            Outcome::Waiting => shared.queue.done_requeue(&key, REMOVAL_POLL),
            Outcome::WaitingForApps => shared.queue.done_requeue(&key, AFTER_POLL),
            // Looked at again soon: by this berth if its lease is confirmed by then (nothing
            // else would bring the app back), else it is dropped as a standby's.
            Outcome::Fenced => shared.queue.done_requeue(&key, REMOVAL_POLL),
        }
        let _ = done.send(key);
    }
}

/// How often an app whose `after` is not met is looked at again.
const AFTER_POLL: std::time::Duration = std::time::Duration::from_secs(2);

enum Outcome {
    Done,
    Failed,
    Waiting,
    /// Its change waits for other apps (`after`).
    WaitingForApps,
    /// Stopped at a write the fence refused: this berth may no longer lead.
    Fenced,
}

/// Logs work stopped by the fence (once per app and occurrence; not a failure of the app).
fn stopped_by_fence(app: &str, doing: &str) -> Outcome {
    warn!(app = %app, doing = %doing, "stopped: this berth may no longer hold the leader lease; whoever leads carries the work on");
    Outcome::Fenced
}

async fn reconcile(shared: &Shared, key: &AppKey, refused_before: u64) -> Outcome {
    let app_name = key.to_string();
    let specs = shared
        .specs
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let (config, commit) = (
        shared
            .config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone(),
        shared
            .commit
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone(),
    );
    let spec = find_app(&specs, key).map(spec_hash);
    // Not what last converged (or never converged): the cached objects stand for the live ones.
    let spec_changed = spec.is_some()
        && shared
            .converged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            != spec.as_ref();
    let options = PlanOptions {
        allow_recreate: shared.options.allow_recreate,
        abandon_claims: false,
        allow_removals: false,
        allow_empty: false,
        max_removals: config.safety.max_removals,
        removal_window: config.safety.removal_window,
        ledger_namespace: config.safety.namespace.clone(),
        arrivals: shared.arrivals_for(key),
        commit,
        // One app per reconcile: the workers are the daemon's concurrency.
        concurrency: 1,
        live_from_cache: true,
        spec_changed,
    };
    let scope = BTreeSet::from([key.clone()]);
    if spec.is_some()
        && shared.is_leader()
        && !shared.options.dry_run
        && shared
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(key)
    {
        let policy = crate::plan::removals::Policy {
            max_removals: config.safety.max_removals,
            window_secs: config.safety.removal_window.as_secs(),
            ..Default::default()
        };
        if let Err(err) = shared
            .cluster
            .release_hold(&config.safety.namespace, &app_name, &policy)
            .await
        {
            if shared.fenced_since(refused_before) {
                return stopped_by_fence(&app_name, "ending a hold");
            }
            error!(app = %app_name, error = %crate::output::error_chain(&err), "ending the hold of an app whose spec is back failed; retrying with backoff");
            return Outcome::Failed;
        }
        info!(app = %app_name, "the spec is back: its held removal ends");
        shared
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
    // An app with a spec is planned from its own objects: the removal limit only concerns apps
    // without one, and the whole fleet's inventory per reconcile made the first sync O(N²).
    let inventory = if spec.is_some() {
        shared.cache.inventory_of(&scope)
    } else {
        shared.cache.inventory(Some(&scope))
    };
    let plan_started = Instant::now();
    let (planned, requests) = shared
        .cluster
        .plan_scoped_timed(&specs, &inventory, &options, Some(&scope))
        .await;
    let plan_time = plan_started.elapsed();
    let planned = match planned {
        Ok(p) => p,
        Err(err) => {
            error!(app = %app_name, error = %crate::output::error_chain(&err), "planning failed; retrying with backoff");
            failed(
                shared,
                key,
                &format!("planning failed: {}", crate::output::error_chain(&err)),
            );
            return Outcome::Failed;
        }
    };
    let Some(plan) = planned.plan.apps.first() else {
        // Neither in the directory nor in the cluster (any more).
        shared.forget(key);
        return Outcome::Done;
    };
    match &plan.action {
        Action::Unchanged => {
            shared
                .drift_seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(key);
            shared.set_state(key, AppState::InSync);
            shared.health.schedule(key);
            if let Some(hash) = spec {
                shared
                    .converged
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key.clone(), hash);
            }
            return Outcome::Done;
        }
        Action::Blocked { reason, .. } => {
            warn!(app = %app_name, reason = %reason, "blocked; nothing is changed for this app");
            // Once per block, not on every look at it.
            if shared.state_of(key) != Some(AppState::Blocked) {
                record_event(shared, &inventory, key, Reason::Blocked, reason).await;
                notify(shared, key, Event::Blocked, reason);
            }
            shared.set_state(key, AppState::Blocked);
            return Outcome::Done;
        }
        Action::Held { reason } => {
            warn!(app = %app_name, reason = %reason, "removal held; nothing is changed for this app until an operator runs `berth apply --allow-removals`");
            shared.set_state(key, AppState::Held);
            let newly_held = shared
                .held
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key.clone());
            if newly_held {
                record_event(shared, &inventory, key, Reason::RemovalHeld, reason).await;
                notify(shared, key, Event::Held, reason);
            }
            if !shared.options.dry_run
                && shared.is_leader()
                && let Err(err) = shared.cluster.record(&planned, false).await
            {
                if shared.fenced_since(refused_before) {
                    return stopped_by_fence(&app_name, "recording a hold");
                }
                error!(app = %app_name, error = %crate::output::error_chain(&err), "recording the hold failed; retrying with backoff");
                return Outcome::Failed;
            }
            return Outcome::Done;
        }
        Action::Suspended { reason } => {
            // Once per suspension, not on every look at it.
            if shared.state_of(key) != Some(AppState::Suspended) {
                info!(app = %app_name, reason = %reason, "suspended; berth leaves this app alone");
            }
            shared.set_state(key, AppState::Suspended);
            return Outcome::Done;
        }
        _ => {}
    }
    let drifted = matches!(plan.action, Action::Update)
        && spec.is_some()
        && shared
            .converged
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            == spec.as_ref();
    if drifted {
        let first_look = shared
            .drift_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone());
        if first_look {
            shared.metrics.count_drift();
            warn!(app = %app_name, changes = %plan.summary.join("; "), "live objects drifted from the spec");
            let what = if config.drift == DriftMode::Report {
                "live objects drifted from the spec (reported, not set back)"
            } else {
                "live objects drifted from the spec; setting them back"
            };
            notify(
                shared,
                key,
                Event::Drift,
                &format!("{what}: {}", plan.summary.join("; ")),
            );
        }
        if config.drift == DriftMode::Report {
            shared.set_state(key, AppState::Drifted);
            return Outcome::Done;
        }
    }
    if let Some(waits_for) = unmet_order(shared, &specs, key, &plan.action) {
        if shared.state_of(key) != Some(AppState::Waiting) {
            info!(app = %app_name, "{waits_for}");
        }
        shared.set_state(key, AppState::Waiting);
        return Outcome::WaitingForApps;
    }
    // A removal waiting for its pods comes back every poll; its plan was logged the first time.
    let waiting_removal = plan.action == Action::Remove
        && shared
            .states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            == Some(&AppState::Removing);
    if !waiting_removal {
        log_plan(&app_name, plan);
    }
    if shared.options.dry_run {
        shared.metrics.count_apply("dry-run");
        shared.set_state(key, AppState::Pending);
        return Outcome::Done;
    }
    if !shared.is_leader() {
        // The lease was lost while planning: the new leader does this.
        return Outcome::Done;
    }
    // A removal is counted against the budget (in the cluster) before its first write.
    if let Err(err) = shared.cluster.record(&planned, true).await {
        if shared.fenced_since(refused_before) {
            return stopped_by_fence(&app_name, "recording a removal");
        }
        error!(app = %app_name, error = %crate::output::error_chain(&err), "recording the removal in the ledger failed; retrying with backoff");
        shared.set_state(key, AppState::Error);
        return Outcome::Failed;
    }
    let write_started = Instant::now();
    let report = shared
        .cluster
        .execute_with(&planned, &LogProgress, false)
        .await;
    let write_time = write_started.elapsed();
    if !report.waiting.is_empty() {
        shared.set_state(key, AppState::Removing);
        return Outcome::Waiting;
    }
    if let Some((_, err)) = report.failed.first() {
        if shared.fenced_since(refused_before) {
            return stopped_by_fence(&app_name, plan.action.word());
        }
        error!(app = %app_name, error = %err, "converging failed; retrying with backoff");
        shared.metrics.count_apply("failure");
        failed(
            shared,
            key,
            &format!("{} failed: {err}", plan.action.word()),
        );
        return Outcome::Failed;
    }
    shared.metrics.count_apply("success");
    shared.metrics.mark_success();
    // Where a converge's time went, cheaply (one line per converge): what the bench reads.
    info!(
        app = %app_name,
        plan_ms = ms(plan_time),
        read_ms = ms(requests.reads),
        dry_run_ms = ms(requests.dry_runs),
        write_ms = ms(write_time),
        "converged"
    );
    let applied = match plan.summary.is_empty() {
        true => plan.action.word().to_string(),
        false => format!("{}: {}", plan.action.word(), plan.summary.join("; ")),
    };
    notify(shared, key, Event::Applied, &applied);
    if drifted {
        let detail = format!(
            "live objects drifted from the spec and were set back: {}",
            plan.summary.join("; ")
        );
        record_event(shared, &inventory, key, Reason::DriftCorrected, &detail).await;
    }
    shared
        .drift_seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(key);
    {
        let mut pvcs = shared
            .retained_pvcs
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        pvcs.extend(report.retained_pvcs.iter().cloned());
        shared.metrics.set_retained_pvcs(pvcs.len() as i64);
    }
    let mut converged = shared.converged.lock().unwrap_or_else(|p| p.into_inner());
    match spec {
        Some(hash) => {
            converged.insert(key.clone(), hash);
            drop(converged);
            shared.set_state(key, AppState::InSync);
            shared.health.schedule(key);
        }
        None => {
            converged.remove(key);
            drop(converged);
            shared.forget(key);
            info!(app = %app_name, kept_pvcs = %report.retained_pvcs.join(","), "app removed; volumes kept");
        }
    }
    Outcome::Done
}

/// The app is in error now; a `failed` notice when it was not before (once per streak of
/// failures, not per retry).
fn failed(shared: &Shared, key: &AppKey, reason: &str) {
    if shared.state_of(key) != Some(AppState::Error) {
        notify(shared, key, Event::Failed, reason);
    }
    shared.set_state(key, AppState::Error);
}

/// Why the app's work must wait, by `after`: a create, update or recreate until every app it
/// names is in sync and healthy; a removal until every app that named it (and is going too) is
/// gone. None when it may go ahead.
fn unmet_order(shared: &Shared, specs: &Loaded, key: &AppKey, action: &Action) -> Option<String> {
    match action {
        Action::Create | Action::Update | Action::Recreate { .. } => {
            let app = find_app(specs, key)?;
            let unmet: Vec<String> = app
                .after
                .iter()
                .map(|d| d.key())
                .filter(|dep| {
                    shared.state_of(dep) != Some(AppState::InSync)
                        || !shared.health.of(dep).is_some_and(|h| h.is_healthy())
                })
                .map(|dep| dep.to_string())
                .collect();
            (!unmet.is_empty()).then(|| format!("waiting for {}", unmet.join(", ")))
        }
        // Once under way, a removal finishes; only its start waits (and only that pays for the
        // look at every live app).
        Action::Remove if shared.state_of(key) == Some(AppState::Removing) => None,
        Action::Remove => {
            // Live apps without a spec that named this one: they go first.
            let inventory = shared.cache.inventory(None);
            let key_text = key.to_string();
            let first: Vec<String> = inventory
                .apps
                .iter()
                .filter(|(other, _)| *other != key && find_app(specs, other).is_none())
                .filter(|(_, live)| {
                    live.statefulset()
                        .and_then(|s| {
                            kube::ResourceExt::annotations(&s)
                                .get(crate::labels::AFTER_ANNOTATION)
                                .cloned()
                        })
                        .is_some_and(|after| after.split(',').any(|a| a.trim() == key_text))
                })
                .map(|(other, _)| other.to_string())
                .collect();
            (!first.is_empty())
                .then(|| format!("waiting for {} to be removed first", first.join(", ")))
        }
        _ => None,
    }
}

/// Records `reason` on the app's live StatefulSet, when it has one (a block can concern an app
/// not yet created, or a same-name object that is not berth's: nothing to record it on).
/// Best effort and never awaited, like every event (see `cluster::events`); a standby or a
/// dry run writes nothing.
async fn record_event(
    shared: &Shared,
    inventory: &crate::cluster::Inventory,
    key: &AppKey,
    reason: Reason,
    detail: &str,
) {
    if shared.options.dry_run || !shared.is_leader() {
        return;
    }
    if let Some(sts) = inventory.apps.get(key).and_then(|live| live.statefulset()) {
        shared.cluster.record_event(&sts, reason, Some(detail));
        return;
    }
    // The cache may not have seen a StatefulSet created moments ago (the plan read it from the
    // server): read it, so the Event is not lost to the watch's lag.
    match shared
        .cluster
        .get(crate::cluster::Kind::StatefulSet, &key.namespace, &key.name)
        .await
    {
        Ok(Some(sts)) => shared.cluster.record_event(&sts, reason, Some(detail)),
        Ok(None) => {}
        Err(err) => {
            warn!(app = %key, reason = ?reason, error = %crate::output::error_chain(&err), "could not read the StatefulSet to record an Event on it");
        }
    }
}

/// The app of `key` in the loaded specs, which are sorted by namespace and name.
fn find_app<'a>(specs: &'a Loaded, key: &AppKey) -> Option<&'a App> {
    specs
        .apps
        .binary_search_by(|a| {
            (a.namespace.as_str(), a.name.as_str())
                .cmp(&(key.namespace.as_str(), key.name.as_str()))
        })
        .ok()
        .map(|i| &specs.apps[i])
}

/// A hash of everything in an app's spec. SipHash's 64 bits make two different specs with the
/// same hash (a spec change taken for drift) vanishingly unlikely.
fn spec_hash(app: &App) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    app.hash(&mut hasher);
    hasher.finish()
}

fn log_plan(app: &str, plan: &AppPlan) {
    let diff: String = plan.changes.iter().map(|c| c.diff.as_str()).collect();
    info!(
        app = %app,
        action = %plan.action.word(),
        summary = %plan.summary.join("; "),
        diff = %diff,
        "converging"
    );
}

/// Milliseconds with a tenth, for the log.
fn ms(duration: std::time::Duration) -> f64 {
    (duration.as_secs_f64() * 1e4).round() / 10.0
}
