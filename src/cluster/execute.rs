//! Carrying out a plan: apply (headless Service first), recreate without an outage, and the
//! ordered removal protocol. One failing app never stops the others.

use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, Preconditions};
use serde_json::{Value, json};

use super::inventory::{LiveApp, app_of};
use super::planner::{Planned, Work};
use super::{Cluster, ClusterError, FIELD_MANAGER, Kind};
use crate::labels::{NAME_LABEL, REMOVING_ANNOTATION, RESTART_MARK, selector_labels};
use crate::output::{error_chain, is_transport_error};

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
}

/// How one app's work ended (errors aside).
enum Outcome {
    /// Done, with the action's word and the PVCs kept (`namespace/name`).
    Done(&'static str, Vec<String>),
    /// A removal waits for pods to stop.
    Waiting,
}

/// Where a removal stands after one call.
enum Removal {
    Done(Vec<String>),
    WaitingForPods(usize),
}

/// How long one app's wait for pods may take before the run gives up (it resumes next run).
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(600);
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
            let mut pending = Vec::with_capacity(stage.len());
            for ((ns, name), work) in stage {
                pending.push(async move {
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
            let mut outcomes: Vec<_> = futures::stream::iter(pending)
                .buffer_unordered(concurrency)
                .collect()
                .await;
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
                self.apply_app(ns, name, objects, delete, *cancel_removal)
                    .await?;
                if *restart_marked {
                    self.restart_marked_pods(key, ns, name, progress).await?;
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

    async fn apply_app(
        &self,
        ns: &str,
        name: &str,
        objects: &[(Kind, Value)],
        delete: &[(Kind, DynamicObject)],
        cancel_removal: bool,
    ) -> Result<(), ClusterError> {
        if cancel_removal {
            // The mark was set by a merge patch, which server-side apply does not undo.
            Kind::StatefulSet
                .api(&self.client, ns)
                .patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(
                        json!({"metadata": {"annotations": {REMOVING_ANNOTATION: null}}}),
                    ),
                )
                .await
                .map_err(|source| ClusterError::Step {
                    operation: "cancelling the removal",
                    namespace: ns.to_string(),
                    name: name.to_string(),
                    source,
                })?;
        }
        // Rendered order: the headless Service exists before the StatefulSet that names it.
        for (kind, object) in objects {
            self.apply_object(*kind, ns, object).await?;
        }
        for (kind, object) in delete {
            // One that is no longer this app's (relabelled, replaced) is not its to delete and
            // is left alone.
            let _left = self
                .delete_owned(*kind, object, DeleteParams::background())
                .await?;
        }
        Ok(())
    }

    pub(crate) async fn apply_object(
        &self,
        kind: Kind,
        ns: &str,
        object: &Value,
    ) -> Result<(), ClusterError> {
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        // force: berth takes back fields it owns from whoever changed them (drift); fields that
        // only others set are untouched, as berth's objects never name them.
        let params = PatchParams::apply(FIELD_MANAGER).force();
        kind.api(&self.client, ns)
            .patch(name, &params, &Patch::Apply(object))
            .await
            .map_err(|source| ClusterError::Apply {
                kind,
                namespace: ns.to_string(),
                name: name.to_string(),
                source,
            })?;
        Ok(())
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

    /// The ordered removal: mark and scale to zero with the claims retained, wait until no pod
    /// is left, then delete the StatefulSet, the access Service, the PodDisruptionBudget and the
    /// headless Service. PVCs are never deleted; their names are returned. Resumable from any
    /// step.
    async fn remove_app(
        &self,
        key: &str,
        live: &LiveApp,
        progress: &dyn Progress,
        wait_for_pods: bool,
    ) -> Result<Removal, ClusterError> {
        let ns = &live.namespace;
        // The claims as seen just before the StatefulSet goes, to tell at the end whether any
        // went with it.
        let mut claims_before = Vec::new();
        if let Some(planned) = live.statefulset() {
            let name = planned.name_any();
            if let Some(sts) = self.stop_statefulset(key, live, planned, progress).await? {
                let selector = selector_of(&sts);
                if wait_for_pods {
                    self.wait_for_no_pods(key, ns, &name, &selector, progress)
                        .await?;
                } else {
                    let left = self.pods_left(ns, &name, &selector).await?;
                    if left > 0 || !self.statefulset_settled_at_zero(ns, &name).await? {
                        return Ok(Removal::WaitingForPods(left));
                    }
                }
                // The wait may have been long: the StatefulSet and its policy once more, right
                // before the delete that would take Delete-policy claims with it.
                if let Some(sts) = self
                    .reread_statefulset(key, live, planned, "deleting")
                    .await?
                {
                    if let Some(policy) = claim_deleting_policy(&sts) {
                        return Err(policy_not_kept(key, &sts, &policy));
                    }
                    claims_before = self.release_claims(key, &sts, progress).await?;
                    if let Some(why) = self
                        .delete_owned(Kind::StatefulSet, planned, DeleteParams::background())
                        .await?
                    {
                        return Err(not_this_app("removal", key, planned, "deleting", &why));
                    }
                }
                progress.step(key, "StatefulSet deleted");
                crash_point("removal:statefulset-deleted");
            } else {
                progress.step(key, "StatefulSet already gone");
            }
        }
        // Then the access Service and PDB, the headless Service last: pods kept their DNS names
        // until the very end.
        let mut rest: Vec<&(Kind, DynamicObject)> = live
            .objects
            .iter()
            .filter(|(k, _)| *k != Kind::StatefulSet)
            .collect();
        rest.sort_by_key(|(kind, obj)| {
            let headless =
                obj.data.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None");
            (headless, *kind == Kind::Service)
        });
        for (kind, object) in rest {
            match self
                .delete_owned(*kind, object, DeleteParams::background())
                .await?
            {
                None => progress.step(key, &format!("{kind} {} deleted", object.name_any())),
                Some(why) => progress.step(
                    key,
                    &format!("{kind} {} left in place: {why}", object.name_any()),
                ),
            }
            crash_point("removal:object-deleted");
        }
        let pvcs = self.retained_pvcs(live).await?;
        if !pvcs.is_empty() {
            progress.step(key, &format!("volumes kept: {}", pvcs.join(", ")));
        }
        let lost: Vec<&str> = claims_before
            .iter()
            .filter(|c| !pvcs.contains(c))
            .map(String::as_str)
            .collect();
        if !lost.is_empty() {
            // Not berth (it cannot delete claims), but said loudly: the removal is where anyone
            // would look for it.
            progress.step(
                key,
                &format!(
                    "volumes gone while the app was removed, deleted outside berth: {}",
                    lost.join(", ")
                ),
            );
        }
        Ok(Removal::Done(pvcs))
    }

    /// Brings the app's StatefulSet to "marked for removal, 0 replicas, claims retained" from
    /// whatever step an earlier run reached, and returns it as read after the last write, once
    /// that read confirms all three; None when it is gone.
    ///
    /// One write at a time, each after a fresh read that confirms the object is still this
    /// app's, and each carrying the uid and the resourceVersion of that read: nothing changed in
    /// between (a relabel, a recreate under the same name, another tool's edit) is written over
    /// unseen. A conflict is read again.
    ///
    /// The mark-and-scale write sets the retention policy to Retain too. A policy that would
    /// delete claims (`kubectl patch`, a policy engine, another tool) is first set to Retain on
    /// its own and read back, so anything that forces Delete back (a mutating webhook) stops the
    /// removal before a single replica goes.
    async fn stop_statefulset(
        &self,
        key: &str,
        live: &LiveApp,
        planned: &DynamicObject,
        progress: &dyn Progress,
    ) -> Result<Option<DynamicObject>, ClusterError> {
        let ns = &live.namespace;
        let name = planned.name_any();
        let api = Kind::StatefulSet.api(&self.client, ns);
        // The deleting policy found live, reported once Retain is read back.
        let mut found_deleting: Option<String> = None;
        // Set once a write setting Retain succeeded: Delete read after it is not left over but
        // put back by something outside berth.
        let mut wrote_retain = false;
        let mut first = true;
        for _ in 0..WRITE_ATTEMPTS {
            let doing = if wrote_retain {
                "waiting for the pods of"
            } else {
                "scaling"
            };
            let Some(sts) = self.reread_statefulset(key, live, planned, doing).await? else {
                return Ok(None);
            };
            let replicas = sts
                .data
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let marked = sts.annotations().get(REMOVING_ANNOTATION).cloned();
            if first && marked.is_some() && replicas == 0 {
                progress.step(key, "resuming the removal (already scaled to 0)");
            }
            first = false;
            let deleting = claim_deleting_policy(&sts);
            if deleting.is_none()
                && let Some(policy) = found_deleting.take()
            {
                progress.step(
                    key,
                    &format!(
                        "PVC retention policy was {policy} (set outside berth); set to Retain \
                         so the claims stay"
                    ),
                );
            }
            // The next write, with what it is called in an error and, for the mark, the
            // replica count it records.
            let (patch, operation, marking) = match (deleting, marked) {
                (Some(policy), _) if wrote_retain => {
                    return Err(policy_not_kept(key, &sts, &policy));
                }
                (Some(policy), _) => {
                    found_deleting = Some(policy);
                    (
                        json!({"spec": {"persistentVolumeClaimRetentionPolicy": retain_claims()}}),
                        "setting the StatefulSet's PVC retention policy to Retain",
                        None,
                    )
                }
                (None, Some(_)) if replicas == 0 => return Ok(Some(sts)),
                (None, marked) => {
                    let before = marked.unwrap_or_else(|| replicas.to_string());
                    (
                        json!({
                            "metadata": {"annotations": {REMOVING_ANNOTATION: before}},
                            "spec": {
                                "replicas": 0,
                                "persistentVolumeClaimRetentionPolicy": retain_claims(),
                            }
                        }),
                        "marking the StatefulSet for removal and scaling it to 0",
                        Some(before),
                    )
                }
            };
            let mut patch = patch;
            patch["metadata"]["uid"] = json!(sts.uid());
            patch["metadata"]["resourceVersion"] = json!(sts.resource_version());
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {}
                // Changed since the read (the controller writes status often): read again.
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                Err(source) => {
                    return Err(ClusterError::Step {
                        operation,
                        namespace: ns.clone(),
                        name: live.name.clone(),
                        source,
                    });
                }
            }
            wrote_retain = true;
            if let Some(before) = marking {
                progress.step(key, &format!("marked for removal, scaled {before} → 0"));
                crash_point("removal:marked");
            }
        }
        Err(ClusterError::Cancelled {
            what: format!(
                "scaling StatefulSet {ns}/{name} to 0 for the removal of {key}: it changed \
                 between every read and write ({WRITE_ATTEMPTS} tries)"
            ),
        })
    }

    /// The app's StatefulSet read now, confirmed to be still the one the plan saw (see
    /// [`Cluster::no_longer_planned`]); None when it is gone. When it is no longer this app's,
    /// an error that stops the removal before `doing` it.
    async fn reread_statefulset(
        &self,
        key: &str,
        live: &LiveApp,
        planned: &DynamicObject,
        doing: &str,
    ) -> Result<Option<DynamicObject>, ClusterError> {
        let Some(current) = self
            .get(Kind::StatefulSet, &live.namespace, &planned.name_any())
            .await?
        else {
            return Ok(None);
        };
        match self.no_longer_planned(&current, planned, Some(&live.name)) {
            None => Ok(Some(current)),
            Some(why) => Err(not_this_app("removal", key, planned, doing, &why)),
        }
    }

    /// Takes the StatefulSet and its pods out of the owner references of the app's claims, and
    /// returns the claims' names. The StatefulSet controller adds those references while a
    /// Delete retention policy is in force, and takes them off again only for claims of pods it
    /// still manages: a claim left with one would go with the StatefulSet (or its gone pod) to
    /// the garbage collector, whatever the policy says by then.
    async fn release_claims(
        &self,
        key: &str,
        sts: &DynamicObject,
        progress: &dyn Progress,
    ) -> Result<Vec<String>, ClusterError> {
        let ns = sts.namespace().unwrap_or_default();
        let name = sts.name_any();
        let pod_prefix = format!("{name}-");
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &ns);
        let step = |operation: &'static str, claim: &str| {
            let (ns, claim) = (ns.clone(), claim.to_string());
            move |source| ClusterError::Step {
                operation,
                namespace: ns,
                name: claim,
                source,
            }
        };
        let list = claims
            .list(&ListParams::default().labels(&selector_of(sts)))
            .await
            .map_err(step("listing the app's PVCs", &name))?;
        let mut names = Vec::new();
        for listed in list.items {
            let claim = listed.name_any();
            names.push(claim.clone());
            let mut current = Some(listed);
            let mut released = false;
            for _ in 0..WRITE_ATTEMPTS {
                // Gone (deleted outside berth meanwhile): nothing to release.
                let Some(pvc) = current.take() else {
                    released = true;
                    break;
                };
                let refs = pvc.metadata.owner_references.clone().unwrap_or_default();
                let keep: Vec<_> = refs
                    .iter()
                    .filter(|r| {
                        Some(&r.uid) != sts.metadata.uid.as_ref()
                            && !(r.kind == "Pod" && r.name.starts_with(&pod_prefix))
                    })
                    .collect();
                if keep.len() == refs.len() {
                    released = true;
                    break;
                }
                let patch = json!({"metadata": {
                    "uid": pvc.metadata.uid,
                    "resourceVersion": pvc.metadata.resource_version,
                    "ownerReferences": keep,
                }});
                match claims
                    .patch(&claim, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => {
                        progress.step(
                            key,
                            &format!(
                                "PVC {claim} released from the StatefulSet, so deleting it \
                                 keeps the claim"
                            ),
                        );
                        released = true;
                        break;
                    }
                    // Changed since read: read it again and look once more.
                    Err(kube::Error::Api(e)) if e.code == 409 => {
                        current = claims
                            .get_opt(&claim)
                            .await
                            .map_err(step("reading a PVC", &claim))?;
                    }
                    Err(source) => {
                        return Err(step("releasing a PVC from the StatefulSet", &claim)(source));
                    }
                }
            }
            if !released {
                return Err(ClusterError::Cancelled {
                    what: format!(
                        "deleting StatefulSet {ns}/{name} for the removal of {key}: PVC {claim} \
                         still names it as its owner and changed between every read and write \
                         ({WRITE_ATTEMPTS} tries); deleting it now would delete the claim"
                    ),
                });
            }
        }
        Ok(names)
    }

    async fn pods_left(&self, ns: &str, name: &str, selector: &str) -> Result<usize, ClusterError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        Ok(pods
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(|source| ClusterError::Step {
                operation: "listing the app's pods",
                namespace: ns.to_string(),
                name: name.to_string(),
                source,
            })?
            .items
            .len())
    }

    async fn wait_for_no_pods(
        &self,
        key: &str,
        ns: &str,
        name: &str,
        selector: &str,
        progress: &dyn Progress,
    ) -> Result<(), ClusterError> {
        let started = Instant::now();
        let mut last_count = usize::MAX;
        let mut last_line = Instant::now();
        loop {
            let left = self.pods_left(ns, name, selector).await?;
            // Pods gone is not enough: the controller must also have seen it (status 0 for the
            // current generation), or deleting now races its last status write.
            if left == 0 && self.statefulset_settled_at_zero(ns, name).await? {
                return Ok(());
            }
            // A line when the count changes, and at least every few seconds while it does not,
            // so a long wait is never silent.
            if left != last_count || last_line.elapsed() >= PROGRESS_EVERY {
                progress.step(
                    key,
                    &format!(
                        "waiting for {left} pod(s) to stop ({}s)",
                        started.elapsed().as_secs()
                    ),
                );
                last_count = left;
                last_line = Instant::now();
            }
            if started.elapsed() > WAIT_TIMEOUT {
                return Err(ClusterError::Timeout {
                    what: format!("waiting for the pods of {key} to stop"),
                    seconds: WAIT_TIMEOUT.as_secs(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// True when the StatefulSet is gone, or its controller reports 0 replicas for the current
    /// generation.
    async fn statefulset_settled_at_zero(
        &self,
        ns: &str,
        name: &str,
    ) -> Result<bool, ClusterError> {
        let Some(sts) = self.get(Kind::StatefulSet, ns, name).await? else {
            return Ok(true);
        };
        let generation = sts.metadata.generation.unwrap_or(0);
        let observed = sts
            .data
            .pointer("/status/observedGeneration")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let replicas = sts
            .data
            .pointer("/status/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        Ok(observed >= generation && replicas == 0)
    }

    /// PVC names of an app, found by its pod selector (the StatefulSet controller gives its PVCs
    /// the selector's labels).
    pub(crate) async fn retained_pvcs(&self, live: &LiveApp) -> Result<Vec<String>, ClusterError> {
        let selector = match live.statefulset() {
            Some(sts) => selector_of(sts),
            None => selector_labels(&live.name, &self.instance)
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
        };
        let claims: Api<PersistentVolumeClaim> =
            Api::namespaced(self.client.clone(), &live.namespace);
        let mut names: Vec<String> = claims
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|source| ClusterError::Step {
                operation: "listing the app's PVCs",
                namespace: live.namespace.clone(),
                name: live.name.clone(),
                source,
            })?
            .items
            .iter()
            .map(|c| c.name_any())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Recreate without an outage: expand grown PVCs, mark the pods that need a restart, delete
    /// the StatefulSet orphaning its pods, apply it anew (the pods and PVCs are adopted), then
    /// restart the marked pods one at a time, each Ready before the next goes.
    ///
    /// Every step survives a crash: the expansion comes before anything irreversible (a crash
    /// before the delete replans the same recreate), and the restarts are carried by the pods'
    /// own [`RESTART_MARK`], which outlives the StatefulSet, so the next plan finds them
    /// whatever step was reached.
    #[allow(clippy::too_many_arguments)]
    async fn recreate_app(
        &self,
        key: &str,
        ns: &str,
        objects: &[(Kind, Value)],
        delete: &[(Kind, DynamicObject)],
        live_sts: &DynamicObject,
        expand: &[(String, String)],
        mark_pods: bool,
        restart_marked: bool,
        progress: &dyn Progress,
    ) -> Result<(), ClusterError> {
        let name = live_sts.name_any();
        let selector = selector_of(live_sts);
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), ns);
        let step = |operation: &'static str, object: &str| {
            let (ns, object) = (ns.to_string(), object.to_string());
            move |source| ClusterError::Step {
                operation,
                namespace: ns,
                name: object,
                source,
            }
        };
        for (volume, size) in expand {
            let prefix = format!("{volume}-{name}-");
            let list = claims
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(step("listing PVCs to expand", &name))?;
            for pvc in list
                .items
                .iter()
                .filter(|c| c.name_any().starts_with(&prefix))
            {
                claims
                    .patch(
                        &pvc.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(
                            json!({"spec": {"resources": {"requests": {"storage": size}}}}),
                        ),
                    )
                    .await
                    .map_err(step("expanding a PVC", &pvc.name_any()))?;
                progress.step(key, &format!("PVC {} expanded to {size}", pvc.name_any()));
                crash_point("recreate:expanded");
            }
        }
        if mark_pods {
            let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
            let list = pods
                .list_metadata(&ListParams::default().labels(&selector))
                .await
                .map_err(step("listing the pods to restart", &name))?;
            for pod in &list.items {
                pods.patch_metadata(
                    &pod.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"labels": {RESTART_MARK: self.instance}}})),
                )
                .await
                .map_err(step("marking a pod for restart", &pod.name_any()))?;
            }
            progress.step(
                key,
                &format!("{} pod(s) marked for a restart", list.items.len()),
            );
            crash_point("recreate:marked");
        }
        if let Some(why) = self
            .delete_owned(Kind::StatefulSet, live_sts, DeleteParams::orphan())
            .await?
        {
            return Err(not_this_app("recreate", key, live_sts, "deleting", &why));
        }
        progress.step(
            key,
            "StatefulSet deleted with its pods orphaned (they keep running)",
        );
        crash_point("recreate:orphaned");
        let started = Instant::now();
        while self.get(Kind::StatefulSet, ns, &name).await?.is_some() {
            if started.elapsed() > WAIT_TIMEOUT {
                return Err(ClusterError::Timeout {
                    what: format!("waiting for StatefulSet {ns}/{name} to be deleted"),
                    seconds: WAIT_TIMEOUT.as_secs(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
        let mut objects = objects.to_vec();
        if restart_marked {
            // Created with the mark, so a crash before the restarts are done leaves it to see.
            for (kind, object) in objects.iter_mut() {
                if *kind == Kind::StatefulSet {
                    super::planner::mark_restart_pending(object);
                }
            }
        }
        self.apply_app(ns, &name, &objects, delete, false).await?;
        progress.step(key, "StatefulSet created anew; it adopts the running pods");
        crash_point("recreate:created");
        if restart_marked {
            self.restart_marked_pods(key, ns, &name, progress).await?;
        }
        Ok(())
    }

    /// Restarts, one at a time and highest ordinal first (as a rolling update goes), the pods
    /// of an app that carry [`RESTART_MARK`]; each new pod is Ready before the next goes. The
    /// new pods come without the label, so a restart cut short resumes with the rest.
    pub(crate) async fn restart_marked_pods(
        &self,
        key: &str,
        ns: &str,
        name: &str,
        progress: &dyn Progress,
    ) -> Result<(), ClusterError> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
        let step_err = |operation: &'static str, pod: &str| {
            let (ns, pod) = (ns.to_string(), pod.to_string());
            move |source| ClusterError::Step {
                operation,
                namespace: ns,
                name: pod,
                source,
            }
        };
        let marked = pods
            .list_metadata(&ListParams::default().labels(&restart_selector(&self.instance, name)))
            .await
            .map_err(step_err("listing the pods to restart", name))?;
        let mut ordinals: Vec<(i64, String)> = marked
            .items
            .iter()
            .filter_map(|p| {
                let pod_name = p.name_any();
                let ordinal = pod_name.strip_prefix(&format!("{name}-"))?.parse().ok()?;
                Some((ordinal, pod_name))
            })
            .collect();
        ordinals.sort_by(|a, b| b.cmp(a));
        for (_, pod_name) in ordinals {
            // Never take a pod down while another of the app is not Ready yet.
            self.wait_pod_ready(key, &pods, &pod_name, None).await?;
            let Some(old) = pods
                .get_opt(&pod_name)
                .await
                .map_err(step_err("reading a pod", &pod_name))?
            else {
                continue;
            };
            if !old.labels().contains_key(RESTART_MARK) {
                continue;
            }
            pods.delete(
                &pod_name,
                &DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: old.uid(),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                },
            )
            .await
            .map_err(step_err("restarting a pod", &pod_name))?;
            progress.step(key, &format!("restarting {pod_name}"));
            crash_point("recreate:pod-restarted");
            self.wait_pod_ready(key, &pods, &pod_name, old.uid())
                .await?;
            progress.step(key, &format!("{pod_name} is Ready again"));
        }
        // Every marked pod is restarted: the StatefulSet's mark goes (a merge patch: removing
        // an annotation berth never set is a no-op).
        Kind::StatefulSet
            .api(&self.client, ns)
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {RESTART_MARK: null}}})),
            )
            .await
            .map_err(step_err("clearing the restart mark", name))?;
        Ok(())
    }

    /// Waits until the pod exists, is not the one with `old_uid`, and is Ready.
    async fn wait_pod_ready(
        &self,
        key: &str,
        pods: &Api<Pod>,
        pod_name: &str,
        old_uid: Option<String>,
    ) -> Result<(), ClusterError> {
        let started = Instant::now();
        loop {
            if let Ok(Some(pod)) = pods.get_opt(pod_name).await {
                let fresh = old_uid.is_none() || pod.uid() != old_uid;
                let ready = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                if fresh && ready && pod.metadata.deletion_timestamp.is_none() {
                    return Ok(());
                }
            }
            if started.elapsed() > WAIT_TIMEOUT {
                return Err(ClusterError::Timeout {
                    what: format!("waiting for pod {pod_name} of {key} to be Ready"),
                    seconds: WAIT_TIMEOUT.as_secs(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// The pods of app `name` that an interrupted recreate left marked for a restart.
pub(crate) fn restart_selector(instance: &str, name: &str) -> String {
    format!("{RESTART_MARK}={instance},{}={name}", NAME_LABEL)
}

/// How many times a write that found its object changed since the read is read and tried again.
const WRITE_ATTEMPTS: usize = 5;

/// The PVC retention policy a removal sets: claims stay when the StatefulSet is scaled down and
/// when it is deleted (also Kubernetes' default).
fn retain_claims() -> Value {
    json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
}

/// The parts of a StatefulSet's PVC retention policy that do not keep the claims, as
/// `whenScaled: Delete`; None when it keeps them. An absent field is Kubernetes' default,
/// Retain; any other value than Retain counts as deleting, so nothing unknown is trusted.
fn claim_deleting_policy(sts: &DynamicObject) -> Option<String> {
    let policy = sts
        .data
        .pointer("/spec/persistentVolumeClaimRetentionPolicy");
    let deleting: Vec<String> = ["whenDeleted", "whenScaled"]
        .into_iter()
        .filter_map(|field| {
            let value = policy?.get(field)?;
            (value.as_str() != Some("Retain"))
                .then(|| format!("{field}: {}", value.as_str().unwrap_or("?")))
        })
        .collect();
    (!deleting.is_empty()).then(|| deleting.join(", "))
}

/// The removal stops: the retention policy reads as deleting claims again after berth set it
/// to Retain, so something outside berth puts it back. Never relied on: scaling down or deleting
/// under it would take the claims.
fn policy_not_kept(key: &str, sts: &DynamicObject, policy: &str) -> ClusterError {
    ClusterError::Cancelled {
        what: format!(
            "removing {key}: StatefulSet {}/{} has PVC retention policy {policy} again after \
             berth set it to Retain (something outside berth sets it); removing the app now \
             would delete its volumes. Set the policy to Retain (whenDeleted and whenScaled) \
             and stop whatever sets Delete",
            sts.namespace().unwrap_or_default(),
            sts.name_any()
        ),
    }
}

/// The `work` (removal, recreate) of app `key` stops before `doing` its StatefulSet: the
/// object is no longer the app's (`why`).
fn not_this_app(
    work: &str,
    key: &str,
    planned: &DynamicObject,
    doing: &str,
    why: &str,
) -> ClusterError {
    ClusterError::Cancelled {
        what: format!(
            "{doing} StatefulSet {}/{} for the {work} of {key}: {why}",
            planned.namespace().unwrap_or_default(),
            planned.name_any()
        ),
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
    use super::claim_deleting_policy;

    fn sts_with(policy: Option<serde_json::Value>) -> kube::api::DynamicObject {
        let mut spec = serde_json::json!({"replicas": 1});
        if let Some(policy) = policy {
            spec["persistentVolumeClaimRetentionPolicy"] = policy;
        }
        serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "db"},
            "spec": spec,
        }))
        .expect("a StatefulSet")
    }

    #[test]
    fn only_retain_or_the_default_keeps_claims() {
        use serde_json::json;
        let keeps = [
            None,
            Some(json!({})),
            Some(json!({"whenDeleted": "Retain", "whenScaled": "Retain"})),
        ];
        for policy in keeps {
            assert_eq!(
                claim_deleting_policy(&sts_with(policy.clone())),
                None,
                "{policy:?}"
            );
        }
        let deleting = [
            (json!({"whenDeleted": "Delete"}), "whenDeleted: Delete"),
            (
                json!({"whenDeleted": "Retain", "whenScaled": "Delete"}),
                "whenScaled: Delete",
            ),
            (
                json!({"whenDeleted": "Delete", "whenScaled": "Delete"}),
                "whenDeleted: Delete, whenScaled: Delete",
            ),
            // A value berth does not know is never trusted to keep them.
            (json!({"whenScaled": "Archive"}), "whenScaled: Archive"),
            (json!({"whenScaled": 3}), "whenScaled: ?"),
        ];
        for (policy, said) in deleting {
            assert_eq!(
                claim_deleting_policy(&sts_with(Some(policy))).as_deref(),
                Some(said)
            );
        }
    }
}
