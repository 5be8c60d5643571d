//! Kubernetes Events on an app's StatefulSet (`events.k8s.io/v1`, reporting controller
//! [`REPORTING_CONTROLLER`], instance the berth instance), so `kubectl describe statefulset`
//! tells what berth did to it and why: applies, recreate and removal steps, holds, blocks and
//! drift corrections.
//!
//! Events are best effort. A write is spawned onto a [`TaskTracker`] and bounded by
//! [`EVENT_TIMEOUT`], never awaited by the step it describes: a slow or refusing API server
//! (no RBAC for events, a quota, a network cut) neither fails nor delays the change, and a
//! failed write is only logged (a warning; a timeout at debug). The tracker is the tasks' owner: every task ends on its own
//! within the timeout, and [`Cluster::flush_events`] lets a command that is about to exit wait
//! (as long, at most) for the ones still in flight.
//!
//! What an event says is decided by pure functions ([`note`], [`Reason::event_type`]).

use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::ResourceExt;
use kube::api::DynamicObject;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::{Cluster, Kind};
use crate::labels::COMMIT_ANNOTATION;

/// The reporting controller of every event berth writes.
pub const REPORTING_CONTROLLER: &str = "berth";

/// The longest one event write may take, and the longest [`Cluster::flush_events`] waits.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The most a note may hold: the API server rejects an event whose note is over 1 kB.
const NOTE_LIMIT: usize = 1024;

/// What happened to the StatefulSet; the event's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The app's objects were applied (created or updated).
    Applied,
    /// A recreate started: the StatefulSet is about to be deleted with its pods orphaned.
    Recreating,
    /// The StatefulSet was created anew and adopted the running pods.
    Recreated,
    /// The app's spec is gone: the StatefulSet was marked for removal and scaled to zero, its
    /// claims set to be retained.
    RemovalStarted,
    /// Scaled to zero and no pod is left: the StatefulSet can go.
    ScaledToZero,
    /// The StatefulSet was deleted; its claims are kept.
    Removed,
    /// A removal waits for a person.
    RemovalHeld,
    /// The spec cannot be applied without a step berth was not allowed to take.
    Blocked,
    /// Live fields drifted from the spec and were set back.
    DriftCorrected,
    /// `berth suspend`: berth leaves the app alone.
    Suspended,
    /// `berth resume`: berth manages the app again.
    Resumed,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Applied => "Applied",
            Reason::Recreating => "Recreating",
            Reason::Recreated => "Recreated",
            Reason::RemovalStarted => "RemovalStarted",
            Reason::ScaledToZero => "ScaledToZero",
            Reason::Removed => "Removed",
            Reason::RemovalHeld => "RemovalHeld",
            Reason::Blocked => "Blocked",
            Reason::DriftCorrected => "DriftCorrected",
            Reason::Suspended => "Suspended",
            Reason::Resumed => "Resumed",
        }
    }

    /// The event's action: what berth did (or would have done) to the object.
    fn action(self) -> &'static str {
        match self {
            Reason::Applied | Reason::DriftCorrected => "Apply",
            Reason::Recreating | Reason::Recreated => "Recreate",
            Reason::RemovalStarted
            | Reason::ScaledToZero
            | Reason::Removed
            | Reason::RemovalHeld => "Remove",
            Reason::Blocked => "Converge",
            Reason::Suspended | Reason::Resumed => "Suspend",
        }
    }

    /// Warning where a person has to act, Normal otherwise.
    pub fn event_type(self) -> EventType {
        match self {
            Reason::RemovalHeld | Reason::Blocked => EventType::Warning,
            _ => EventType::Normal,
        }
    }

    /// What the step did, in words, when nothing more specific is said.
    fn default_detail(self) -> &'static str {
        match self {
            Reason::Applied => "applied the app's objects",
            Reason::Recreating => {
                "recreating the StatefulSet: deleting it with its pods orphaned (they keep running)"
            }
            Reason::Recreated => "StatefulSet created anew; it adopts the running pods",
            Reason::RemovalStarted => {
                "the app's spec is gone: marked for removal and scaled to 0, claims retained"
            }
            Reason::ScaledToZero => "scaled to 0 and no pod is left",
            Reason::Removed => "StatefulSet deleted; its claims are kept",
            Reason::RemovalHeld => "removal held until an operator allows it",
            Reason::Blocked => "blocked; nothing is changed for this app",
            Reason::DriftCorrected => "live objects drifted from the spec and were set back",
            Reason::Suspended => "suspended: berth leaves the app alone",
            Reason::Resumed => "resumed: berth manages the app again",
        }
    }
}

/// The note of an event: the step's detail (or the reason's own words) and the config repo's
/// commit when known, cut to what the API server accepts.
pub fn note(reason: Reason, detail: Option<&str>, commit: Option<&str>) -> String {
    let detail = detail.unwrap_or(reason.default_detail());
    // The commit an object carries is the one last applied to it; a removal happens at a later
    // commit (the one without the spec), which the object cannot know.
    let text = match (commit, reason.action()) {
        (Some(commit), "Remove") => format!("{detail} (last applied at commit {commit})"),
        (Some(commit), _) => format!("{detail} (commit {commit})"),
        (None, _) => detail.to_string(),
    };
    truncate(text, NOTE_LIMIT)
}

/// `text` cut to at most `limit` bytes on a character boundary, ending in `…` when cut.
fn truncate(mut text: String, limit: usize) -> String {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push('…');
    text
}

/// A reference to StatefulSet `namespace/name` with `uid`: the uid keeps an event on the object
/// it happened to, not on a later one under the same name.
pub fn statefulset_ref(namespace: &str, name: &str, uid: Option<&str>) -> ObjectReference {
    ObjectReference {
        api_version: Some("apps/v1".to_string()),
        kind: Some("StatefulSet".to_string()),
        namespace: Some(namespace.to_string()),
        name: Some(name.to_string()),
        uid: uid.map(str::to_string),
        ..ObjectReference::default()
    }
}

/// Where a [`Cluster`]'s event writes go, and the tasks still writing.
#[derive(Clone)]
pub(crate) struct Events {
    /// Who reports: [`REPORTING_CONTROLLER`] and the berth instance.
    reporter: Reporter,
    /// The writes in flight, so a command can wait for them before it exits.
    tasks: TaskTracker,
}

impl Events {
    pub(crate) fn new(instance: &str) -> Events {
        Events {
            reporter: Reporter {
                controller: REPORTING_CONTROLLER.to_string(),
                instance: Some(instance.to_string()),
            },
            tasks: TaskTracker::new(),
        }
    }
}

impl Cluster {
    /// Records `reason` on StatefulSet `sts` (as read or written by the step), with `detail`
    /// or the reason's own words and the commit the object carries. Returns at once; see the
    /// module documentation.
    pub(crate) fn record_event(&self, sts: &DynamicObject, reason: Reason, detail: Option<&str>) {
        let (reference, event) = event_for(sts, reason, detail);
        let cluster = self.clone();
        self.events.tasks.spawn(async move {
            let written = tokio::time::timeout(EVENT_TIMEOUT, cluster.publish(&event, &reference));
            log_failure(&reference, &event, written.await);
        });
    }

    /// Like [`Cluster::record_event`] for StatefulSet `ns/name` when the step does not hold
    /// it (an apply that left the StatefulSet unchanged): it is read in the spawned task.
    pub(crate) fn record_event_named(
        &self,
        ns: &str,
        name: &str,
        reason: Reason,
        detail: Option<&str>,
    ) {
        let (ns, name, detail) = (ns.to_string(), name.to_string(), detail.map(str::to_string));
        let cluster = self.clone();
        self.events.tasks.spawn(async move {
            let written = tokio::time::timeout(EVENT_TIMEOUT, async {
                match cluster.get(Kind::StatefulSet, &ns, &name).await {
                    Ok(Some(sts)) => {
                        let (reference, event) = event_for(&sts, reason, detail.as_deref());
                        let result = cluster.publish(&event, &reference).await;
                        log_failure(&reference, &event, Ok(result));
                    }
                    Ok(None) => {}
                    Err(err) => {
                        warn!(ns = %ns, name = %name, error = %err, "reading the StatefulSet for an event failed; the change itself is unaffected")
                    }
                }
            });
            if written.await.is_err() {
                debug!(ns = %ns, name = %name, "writing an event timed out; the change itself is unaffected");
            }
        });
    }

    async fn publish(&self, event: &Event, reference: &ObjectReference) -> Result<(), kube::Error> {
        // A recorder per event: kube's recorder folds a repeat of the same reason on the same
        // object into the earlier event (a series) and keeps that event's note, so the second
        // apply within minutes would show the first one's commit.
        Recorder::new(self.client.clone(), self.events.reporter.clone())
            .publish(event, reference)
            .await
    }

    /// Waits, at most [`EVENT_TIMEOUT`], for the event writes still in flight: a command that
    /// exits right after its last step would otherwise drop them with its runtime.
    pub async fn flush_events(&self) {
        let tasks = &self.events.tasks;
        tasks.close();
        let _ = tokio::time::timeout(EVENT_TIMEOUT, tasks.wait()).await;
        tasks.reopen();
    }
}

/// The reference and event recording `reason` on `sts`.
fn event_for(
    sts: &DynamicObject,
    reason: Reason,
    detail: Option<&str>,
) -> (ObjectReference, Event) {
    let commit = sts.annotations().get(COMMIT_ANNOTATION).map(String::as_str);
    let reference = statefulset_ref(
        &sts.namespace().unwrap_or_default(),
        &sts.name_any(),
        sts.uid().as_deref(),
    );
    let event = Event {
        type_: reason.event_type(),
        reason: reason.as_str().to_string(),
        note: Some(note(reason, detail, commit)),
        action: reason.action().to_string(),
        secondary: None,
    };
    (reference, event)
}

/// Logs an event write that failed or timed out: at debug, as nothing depends on it.
fn log_failure(
    reference: &ObjectReference,
    event: &Event,
    written: Result<Result<(), kube::Error>, tokio::time::error::Elapsed>,
) {
    let ns = reference.namespace.as_deref().unwrap_or_default();
    let name = reference.name.as_deref().unwrap_or_default();
    match written {
        Ok(Ok(())) => {}
        Ok(Err(err)) => {
            warn!(ns = %ns, name = %name, reason = %event.reason, error = %err, "writing an event failed; the change itself is unaffected")
        }
        Err(_) => {
            debug!(ns = %ns, name = %name, reason = %event.reason, "writing an event timed out; the change itself is unaffected")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_carries_the_detail_and_the_commit() {
        assert_eq!(
            note(Reason::Applied, None, Some("abc123")),
            "applied the app's objects (commit abc123)"
        );
        assert_eq!(
            note(Reason::Removed, None, Some("abc123")),
            "StatefulSet deleted; its claims are kept (last applied at commit abc123)"
        );
        assert_eq!(
            note(Reason::Blocked, Some("volumeClaimTemplates changed"), None),
            "volumeClaimTemplates changed"
        );
    }

    #[test]
    fn a_long_note_is_cut_to_what_the_api_server_accepts() {
        let long = "é".repeat(600);
        let cut = note(Reason::Blocked, Some(&long), Some("abc"));
        assert!(cut.len() <= NOTE_LIMIT);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn only_what_waits_for_a_person_is_a_warning() {
        let warnings: Vec<&str> = [
            Reason::Applied,
            Reason::Recreating,
            Reason::Recreated,
            Reason::RemovalStarted,
            Reason::ScaledToZero,
            Reason::Removed,
            Reason::RemovalHeld,
            Reason::Blocked,
            Reason::DriftCorrected,
            Reason::Suspended,
            Reason::Resumed,
        ]
        .into_iter()
        .filter(|r| r.event_type() == EventType::Warning)
        .map(Reason::as_str)
        .collect();
        assert_eq!(warnings, ["RemovalHeld", "Blocked"]);
    }

    #[test]
    fn the_reference_names_the_statefulset_by_uid() {
        let r = statefulset_ref("db", "pg", Some("u-1"));
        assert_eq!(r.kind.as_deref(), Some("StatefulSet"));
        assert_eq!(r.api_version.as_deref(), Some("apps/v1"));
        assert_eq!(r.uid.as_deref(), Some("u-1"));
    }
}
