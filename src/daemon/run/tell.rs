//! Telling people: the `[[notify]]` webhooks and the health metrics, from what a reconcile or
//! a look at an app's health found. Each notice is sent once per occurrence (entering a state),
//! never on every look at an app that stays in it.

use std::sync::Arc;

use tracing::{info, warn};

use super::Shared;
use crate::daemon::app_health::Change;
use crate::daemon::metrics::Metrics;
use crate::daemon::notifications::Notifier;
use crate::health::State;
use crate::notice::{Event, Notice, Target};
use crate::spec::AppKey;

/// The delivery tasks for `targets`, counting each outcome in `berth_notifications_total`.
/// They end when the daemon's shared state (which holds their queues) goes.
pub(super) fn notifier(targets: &[Target], instance: &str, metrics: &Arc<Metrics>) -> Notifier {
    let metrics = metrics.clone();
    Notifier::start(targets, instance, move |outcome| {
        metrics.count_notification(outcome.as_str())
    })
}

/// Queues `event` about `key` for every webhook that wants it, with the commit berth is at.
pub(super) fn notify(shared: &Shared, key: &AppKey, event: Event, reason: &str) {
    let commit = shared
        .commit
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    shared.notifier.notify(&Notice {
        event,
        namespace: key.namespace.clone(),
        app: key.name.clone(),
        commit,
        reason: reason.to_string(),
    });
}

/// An app's health changed: the metrics, the log, and `degraded` / `recovered` notices.
pub(super) fn health_changed(shared: &Shared, change: Change) {
    let Change { key, was, now } = change;
    let was_state = was.as_ref().map(|h| h.state);
    shared.metrics.set_health_counts(&shared.health.counts());
    shared
        .metrics
        .set_app_health(&key.namespace, &key.name, was_state, Some(now.state));
    let reason = now.reason.clone().unwrap_or_default();
    match (was_state, now.state) {
        (Some(State::Degraded), State::Degraded) => {}
        (_, State::Degraded) => {
            warn!(app = %key, reason = %reason, "degraded");
            notify(shared, &key, Event::Degraded, &reason);
        }
        (Some(State::Degraded), State::Healthy) => {
            info!(app = %key, "recovered: healthy again");
            let was_reason = was.and_then(|h| h.reason).unwrap_or_default();
            notify(
                shared,
                &key,
                Event::Recovered,
                &format!("healthy again (was degraded: {was_reason})"),
            );
        }
        _ => {}
    }
}

/// The app is gone: its health series goes too.
pub(super) fn health_gone(shared: &Shared, key: &AppKey) {
    if let Some(was) = shared.health.forget(key) {
        shared
            .metrics
            .set_app_health(&key.namespace, &key.name, Some(was.state), None);
        shared.metrics.set_health_counts(&shared.health.counts());
    }
}
