//! Carrying out a plan: apply (headless Service first), recreate without an outage, and the
//! ordered removal protocol. One failing app never stops the others.
//!
//! Layout:
//! - this file: [`Cluster::execute`] and the per-app dispatch (the apps that stay first, the
//!   removals last, up to the plan's concurrency at a time), the [`Progress`] and [`Report`]
//!   types, and what every kind of work shares: the delete guarded by a fresh read
//!   ([`Cluster::delete_owned`]), the crash-point test hook and the wait limits;
//! - `apply`: server-side apply of an app's objects in rendered order, and cancelling a
//!   removal that was under way;
//! - `remove`: the ordered removal: re-read, PVC retention policy to Retain, scale to 0, wait
//!   for the pods, release the claims, delete;
//! - `recreate`: deleting the StatefulSet with its pods orphaned and creating it anew, the
//!   one-at-a-time restarts (evictions) of the pods marked for it, and the deletes held back
//!   until the last pod has moved.

mod apply;
mod recreate;
mod remove;

use std::time::Duration;

use futures::StreamExt;
use kube::ResourceExt;
use kube::api::{DeleteParams, DynamicObject, Preconditions};
use serde_json::Value;

use self::remove::Removal;
use super::inventory::app_of;
use super::planner::{Planned, Work};
use super::{Cluster, ClusterError, Kind, Reason};
use crate::output::{error_chain, is_transport_error};
use crate::spec::AppKey;

/// Where progress of long steps goes (a terminal, a log).
pub trait Progress: Sync {
    fn step(&self, app: &str, message: &str);
}

/// What a run did.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Apps whose work completed, with the action done.
    pub done: Vec<(String, &'static str)>,
    /// Apps whose work failed, with the error chain.
    pub failed: Vec<(String, String)>,
    /// PVCs kept by removals, `namespace/name`.
    pub retained_pvcs: Vec<String>,
    /// Removals that are waiting for pods to stop (only when not waiting in place).
    pub waiting: Vec<String>,
    /// Apps not started because the API server had stopped answering: once one app's request
    /// fails in transport, the rest would only each print the same error.
    pub not_attempted: Vec<String>,
    /// Some app's request failed in transport: the API server stopped answering during the
    /// run. Set even when every app had already started (and so none is in `not_attempted`),
    /// so the caller can still name the server once.
    pub server_unreachable: bool,
}

/// How one app's work ended (errors aside).
enum Outcome {
    /// Done, with the action's word and the PVCs kept (`namespace/name`).
    Done(&'static str, Vec<String>),
    /// A removal waits for pods to stop.
    Waiting,
}

/// How long one app's wait for pods may take before the run gives up (it resumes next run).
const WAIT_TIMEOUT: Duration = Duration::from_secs(600);
const POLL: Duration = Duration::from_millis(500);
/// Longest silence while waiting.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Test hook of the safety suite: with `BERTH_CRASH_AT=<point>` berth kills itself with SIGKILL
/// right after that step, as a crash or the OOM killer would, so the tests can restart it after
/// every step of a removal and of a recreate. The points are named where they are called.
/// Compiled only with the `crash-points` feature (the cluster tests turn it on): a released
/// binary has no way to be told to kill itself.
#[cfg(feature = "crash-points")]
fn crash_point(point: &str) {
    if std::env::var_os("BERTH_CRASH_AT").is_some_and(|v| v == point) {
        // SIGKILL, not exit or abort: no destructor runs and nothing is flushed or tidied up.
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &std::process::id().to_string()])
            .status();
        std::process::abort();
    }
}

#[cfg(not(feature = "crash-points"))]
fn crash_point(_point: &str) {}

impl Cluster {
    /// Executes every app's work; removals last, so a run that is stopped midway has converged
    /// the apps that stay first.
    pub async fn execute(&self, planned: &Planned, progress: &dyn Progress) -> Report {
        self.execute_with(planned, progress, true).await
    }

    /// Like [`Cluster::execute`]; with `wait_for_pods` false a removal whose pods are still
    /// stopping returns at once and is listed in `waiting` (the daemon requeues it instead of
    /// holding a worker).
    ///
    /// Apps are independent, so up to the plan's concurrency of them are converged at a time:
    /// first every app that stays, then the removals. The report lists apps in key order,
    /// whatever order they finished in.
    pub async fn execute_with(
        &self,
        planned: &Planned,
        progress: &dyn Progress,
        wait_for_pods: bool,
    ) -> Report {
        let mut report = Report::default();
        let concurrency = planned.concurrency.max(1);
        let unreachable = std::sync::atomic::AtomicBool::new(false);
        let unreachable = &unreachable;
        let (removals, staying): (Vec<_>, Vec<_>) = planned
            .work
            .iter()
            .partition(|(_, w)| matches!(w, Work::Remove { .. }));
        for stage in [staying, removals] {
            // (Futures built in a loop, not a closure: a closure's inferred lifetimes make the
            // daemon's spawned worker fail the `Send` check.)
            // Each app's future is made when a slot frees, not all up front: one is KiBs, and
            // made for a cold apply of 10,000 apps at once they were a third of its memory.
            let mut next = stage.into_iter();
            let mut running = futures::stream::FuturesUnordered::new();
            let mut outcomes = Vec::new();
            loop {
                while running.len() < concurrency {
                    let Some((
                        AppKey {
                            namespace: ns,
                            name,
                        },
                        work,
                    )) = next.next()
                    else {
                        break;
                    };
                    running.push(async move {
                        let key = format!("{ns}/{name}");
                        if unreachable.load(std::sync::atomic::Ordering::Relaxed) {
                            return (key, None);
                        }
                        let outcome = self
                            .execute_app(&key, ns, name, work, progress, wait_for_pods)
                            .await;
                        if outcome.as_ref().is_err_and(|e| is_transport_error(e)) {
                            unreachable.store(true, std::sync::atomic::Ordering::Relaxed);
                        }
                        (key, Some(outcome))
                    });
                }
                match running.next().await {
                    Some(outcome) => outcomes.push(outcome),
                    None => break,
                }
            }
            outcomes.sort_by(|a, b| a.0.cmp(&b.0));
            for (key, outcome) in outcomes {
                match outcome {
                    Some(Ok(Outcome::Done(what, pvcs))) => {
                        report.retained_pvcs.extend(pvcs);
                        report.done.push((key, what));
                    }
                    Some(Ok(Outcome::Waiting)) => report.waiting.push(key),
                    Some(Err(err)) => report.failed.push((key, error_chain(&err))),
                    None => report.not_attempted.push(key),
                }
            }
        }
        report.server_unreachable = unreachable.load(std::sync::atomic::Ordering::Relaxed);
        report
    }

    async fn execute_app(
        &self,
        key: &str,
        ns: &str,
        name: &str,
        work: &Work,
        progress: &dyn Progress,
        wait_for_pods: bool,
    ) -> Result<Outcome, ClusterError> {
        match work {
            Work::Apply {
                objects,
                delete,
                cancel_removal,
                restart_marked,
            } => {
                // With pods left to restart, what the spec no longer has (an old headless
                // Service) goes only after the last of them.
                let delete_now = if *restart_marked { &[][..] } else { delete };
                let applied = self
                    .apply_app(ns, name, objects, delete_now, *cancel_removal)
                    .await?;
                // Best effort, never awaited (see `events`); the StatefulSet may not have been
                // among the changed objects, and is then read in the event's own task.
                match &applied {
                    Some(sts) => self.record_event(sts, Reason::Applied, None),
                    None => self.record_event_named(ns, name, Reason::Applied, None),
                }
                if *restart_marked {
                    self.restart_marked_pods(key, ns, name, delete, progress)
                        .await?;
                }
                Ok(Outcome::Done("applied", Vec::new()))
            }
            Work::Recreate {
                objects,
                delete,
                live_statefulset,
                expand,
                mark_pods,
                restart_marked,
            } => {
                self.recreate_app(
                    key,
                    ns,
                    objects,
                    delete,
                    live_statefulset,
                    expand,
                    *mark_pods,
                    *restart_marked,
                    progress,
                )
                .await?;
                Ok(Outcome::Done("recreated", Vec::new()))
            }
            Work::Remove { live } => {
                match self.remove_app(key, live, progress, wait_for_pods).await? {
                    Removal::Done(pvcs) => Ok(Outcome::Done(
                        "removed",
                        pvcs.into_iter().map(|p| format!("{ns}/{p}")).collect(),
                    )),
                    Removal::WaitingForPods(left) => {
                        progress.step(key, &format!("waiting for {left} pod(s) to stop"));
                        Ok(Outcome::Waiting)
                    }
                }
            }
        }
    }

    /// Deletes an object only while it still is the one the plan saw: this instance's, the same
    /// uid, and the same app. Another tool's relabel makes an object another app's as far as
    /// the labels go; it is then never this app's to delete. Returns why the object was left in
    /// place, if it was; one already gone counts as deleted.
    async fn delete_owned(
        &self,
        kind: Kind,
        object: &DynamicObject,
        params: DeleteParams,
    ) -> Result<Option<String>, ClusterError> {
        let ns = object.namespace().unwrap_or_default();
        let name = object.name_any();
        let err = |source| ClusterError::Delete {
            kind,
            namespace: ns.clone(),
            name: name.clone(),
            source,
        };
        let Some(current) = self.get(kind, &ns, &name).await? else {
            return Ok(None);
        };
        let planned_app = app_of(&ns, object.labels(), object.annotations());
        if let Some(why) = self.no_longer_planned(&current, object, planned_app) {
            return Ok(Some(why));
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: current.uid(),
                resource_version: None,
            }),
            ..params
        };
        match kind.api(&self.client, &ns).delete(&name, &params).await {
            Ok(_) => Ok(None),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(None),
            Err(e) => Err(err(e)),
        }
    }

    /// Why `current` (an object as read just now) is no longer `planned` (the same object as
    /// the plan saw it) of app `app`: None while it still is this instance's, with the same
    /// uid, and names the same app.
    fn no_longer_planned(
        &self,
        current: &DynamicObject,
        planned: &DynamicObject,
        app: Option<&str>,
    ) -> Option<String> {
        let ns = current.namespace().unwrap_or_default();
        if !self.owns(current) {
            return Some("it no longer carries this berth instance's ownership labels".into());
        }
        if current.uid() != planned.uid() {
            return Some(format!(
                "it is another object under the same name now (uid {}, planned {})",
                current.uid().unwrap_or_default(),
                planned.uid().unwrap_or_default()
            ));
        }
        let now = app_of(&ns, current.labels(), current.annotations());
        if now == app {
            return None;
        }
        let planned = app.map_or_else(|| "no app".to_string(), |a| format!("{ns}/{a}"));
        Some(match now {
            Some(other) => format!("it belongs to app {ns}/{other} now, not {planned}"),
            None => format!("it names no app now (planned as {planned})"),
        })
    }
}

/// The `work` (removal, recreate) of app `key` stops before `doing` its StatefulSet: the
/// object is no longer the app's (`why`).
fn not_this_app(
    work: &'static str,
    key: &str,
    planned: &DynamicObject,
    doing: &'static str,
    why: &str,
) -> ClusterError {
    ClusterError::NotThisApp {
        work,
        app: key.to_string(),
        doing,
        kind: Kind::StatefulSet,
        namespace: planned.namespace().unwrap_or_default(),
        name: planned.name_any(),
        found: why.to_string(),
    }
}

/// `k=v,k=v` from a StatefulSet's `spec.selector.matchLabels`.
fn selector_of(sts: &DynamicObject) -> String {
    sts.data
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::not_this_app;

    #[test]
    fn an_object_now_of_another_app_is_reported_as_found_not_as_a_retry() {
        let planned: kube::api::DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "db"},
        }))
        .expect("a StatefulSet");
        let err = not_this_app(
            "removal",
            "db/web",
            &planned,
            "deleting",
            "it belongs to app db/web2 now, not db/web",
        );
        assert_eq!(
            err.to_string(),
            "stopped the removal of db/web before deleting StatefulSet db/web and left it as it \
             is: it belongs to app db/web2 now, not db/web"
        );
    }
}
