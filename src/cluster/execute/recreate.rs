//! Recreating an app's StatefulSet without an outage (grown PVCs expanded, the StatefulSet
//! deleted with its pods orphaned and created anew to adopt them), and the restarts, one pod at
//! a time, of the pods marked for one: each through the eviction API (so the app's
//! PodDisruptionBudget is honoured), each only while every pod of the set is Ready, and the
//! objects the spec no longer has (the old headless Service) deleted only after the last one.

use std::time::Instant;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::ResourceExt;
use kube::api::{
    Api, DeleteParams, DynamicObject, EvictParams, ListParams, Patch, PatchParams, Preconditions,
};
use serde_json::{Value, json};

use super::{POLL, PROGRESS_EVERY, Progress, WAIT_TIMEOUT, crash_point, not_this_app, selector_of};
use crate::cluster::planner::ToApply;
use crate::cluster::{Cluster, ClusterError, Kind, Reason};
use crate::labels::{NAME_LABEL, RESTART_MARK};

impl Cluster {
    /// Recreate without an outage: expand grown PVCs, mark the pods that need a restart, delete
    /// the StatefulSet orphaning its pods, apply it anew (the pods and PVCs are adopted), then
    /// restart the marked pods one at a time (see [`Cluster::restart_marked_pods`]). The objects
    /// the spec no longer has go last: the old headless Service still gives the pods not yet
    /// restarted their DNS names.
    ///
    /// Every step survives a crash: the expansion comes before anything irreversible (a crash
    /// before the delete replans the same recreate), and the restarts are carried by the pods'
    /// own [`RESTART_MARK`], which outlives the StatefulSet, so the next plan finds them
    /// whatever step was reached.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn recreate_app(
        &self,
        key: &str,
        ns: &str,
        objects: &[ToApply],
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
        self.record_event(live_sts, Reason::Recreating, None);
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
            for object in objects.iter_mut() {
                if object.kind == Kind::StatefulSet {
                    *object = object.marked_for_restart();
                }
            }
        }
        let delete_now = if restart_marked { &[][..] } else { delete };
        match self
            .apply_app(ns, &name, &objects, delete_now, false)
            .await?
        {
            Some(sts) => self.record_event(&sts, Reason::Recreated, None),
            None => self.record_event_named(ns, &name, Reason::Recreated, None),
        }
        progress.step(key, "StatefulSet created anew; it adopts the running pods");
        crash_point("recreate:created");
        if restart_marked {
            self.restart_marked_pods(key, ns, &name, delete, progress)
                .await?;
        }
        Ok(())
    }

    /// Deletes the objects the spec no longer has once every pod has been restarted: until
    /// then a pod not yet restarted may still take its DNS name from the old headless Service.
    /// A crash before this leaves them to the next plan, which finds them stale again.
    async fn delete_after_restarts(
        &self,
        key: &str,
        ns: &str,
        name: &str,
        delete: &[(Kind, DynamicObject)],
        progress: &dyn Progress,
    ) -> Result<(), ClusterError> {
        if delete.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = delete
            .iter()
            .map(|(kind, object)| format!("{kind} {}", object.name_any()))
            .collect();
        progress.step(
            key,
            &format!(
                "every pod has moved; deleting what the spec no longer has: {}",
                names.join(", ")
            ),
        );
        // (Each only while still this app's, as in any apply.)
        self.apply_app(ns, name, &[], delete, false).await?;
        Ok(())
    }

    /// Restarts, one at a time and highest ordinal first (as a rolling update goes), the pods
    /// of an app that carry [`RESTART_MARK`]. Before each restart every pod of the set is Ready
    /// (so at most one is ever down), and each goes through the eviction API, so the app's
    /// PodDisruptionBudget (or any other that selects it) can hold it back: berth waits and
    /// retries, saying so. The new pods come without the label, so a restart cut short resumes
    /// with the rest. Then the objects in `delete` (those the spec no longer has) go, and last
    /// the StatefulSet's mark: while it is there, a next plan finishes all of this.
    pub(super) async fn restart_marked_pods(
        &self,
        key: &str,
        ns: &str,
        name: &str,
        delete: &[(Kind, DynamicObject)],
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
            // Never take a pod down while another of the app is down.
            self.wait_set_ready(key, ns, name, &pod_name, progress)
                .await?;
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
            if !self.evict(key, &old, progress).await? {
                // Replaced meanwhile: the new pod is not marked, nothing to restart.
                continue;
            }
            progress.step(key, &format!("restarting {pod_name} (eviction)"));
            crash_point("recreate:pod-restarted");
            self.wait_pod_ready(key, &pods, &pod_name, old.uid())
                .await?;
            progress.step(key, &format!("{pod_name} is Ready again"));
        }
        self.delete_after_restarts(key, ns, name, delete, progress)
            .await?;
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

    /// Evicts `pod` (only that very pod: a uid precondition). A PodDisruptionBudget that allows
    /// no disruption now answers 429: waited out, retried, and said every few seconds. Returns
    /// false when the pod was replaced or is gone meanwhile.
    async fn evict(
        &self,
        key: &str,
        pod: &Pod,
        progress: &dyn Progress,
    ) -> Result<bool, ClusterError> {
        let pod_name = pod.name_any();
        let pods: Api<Pod> = Api::namespaced(
            self.eviction_client.clone(),
            &pod.namespace().unwrap_or_default(),
        );
        let params = EvictParams {
            delete_options: Some(DeleteParams {
                preconditions: Some(Preconditions {
                    uid: pod.uid(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            }),
            ..EvictParams::default()
        };
        let started = Instant::now();
        let mut last_line: Option<Instant> = None;
        loop {
            match pods.evict(&pod_name, &params).await {
                Ok(_) => return Ok(true),
                // Gone, or another pod under the name now (the uid precondition).
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => return Ok(false),
                Err(kube::Error::Api(e)) if e.code == 429 => {
                    if last_line.is_none_or(|l| l.elapsed() >= PROGRESS_EVERY) {
                        progress.step(
                            key,
                            &format!(
                                "{pod_name} not restarted yet: its PodDisruptionBudget allows no \
                                 disruption now ({}); retrying ({}s)",
                                budget_refusal(&e),
                                started.elapsed().as_secs()
                            ),
                        );
                        last_line = Some(Instant::now());
                    }
                }
                Err(source) => {
                    return Err(ClusterError::Step {
                        operation: "restarting a pod (eviction)",
                        namespace: pod.namespace().unwrap_or_default(),
                        name: pod_name,
                        source,
                    });
                }
            }
            if started.elapsed() > WAIT_TIMEOUT {
                return Err(ClusterError::Timeout {
                    what: format!(
                        "waiting for the PodDisruptionBudget of {key} to allow restarting \
                         {pod_name}"
                    ),
                    seconds: WAIT_TIMEOUT.as_secs(),
                });
            }
            tokio::time::sleep(EVICTION_RETRY).await;
        }
    }

    /// Waits until every pod of StatefulSet `name` is Ready and none is stopping, and there are
    /// as many as it wants: only then may `next` (the pod to restart) go. Says every few
    /// seconds which pods it waits for.
    async fn wait_set_ready(
        &self,
        key: &str,
        ns: &str,
        name: &str,
        next: &str,
        progress: &dyn Progress,
    ) -> Result<(), ClusterError> {
        let started = Instant::now();
        let mut last_line: Option<Instant> = None;
        loop {
            let sts = self.get(Kind::StatefulSet, ns, name).await?;
            let wanted = sts
                .as_ref()
                .and_then(|s| s.data.pointer("/spec/replicas"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let selector = sts
                .as_ref()
                .map(selector_of)
                .unwrap_or_else(|| format!("{}={name}", NAME_LABEL));
            let list = self.list_pods(ns, name, &selector).await?;
            let down = pods_down(&list, name, wanted);
            if down.is_empty() {
                return Ok(());
            }
            if last_line.is_none_or(|l| l.elapsed() >= PROGRESS_EVERY) {
                progress.step(
                    key,
                    &format!(
                        "before restarting {next}: waiting for {} ({}s)",
                        down.join(", "),
                        started.elapsed().as_secs()
                    ),
                );
                last_line = Some(Instant::now());
            }
            if started.elapsed() > WAIT_TIMEOUT {
                return Err(ClusterError::Timeout {
                    what: format!(
                        "waiting for every pod of {key} to be Ready before restarting {next}"
                    ),
                    seconds: WAIT_TIMEOUT.as_secs(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
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
                if fresh && is_ready(&pod) && pod.metadata.deletion_timestamp.is_none() {
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

/// How long berth waits before asking again to evict a pod its budget held back.
const EVICTION_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// What the API server said when it refused an eviction: the budget's own words (its cause,
/// e.g. "The disruption budget db needs 3 healthy pods and has 3 currently") when it gave them.
fn budget_refusal(status: &kube::core::Status) -> String {
    status
        .details
        .as_ref()
        .and_then(|d| d.causes.iter().find(|c| !c.message.is_empty()))
        .map_or_else(|| status.message.clone(), |c| c.message.clone())
}

/// Why the pods of StatefulSet `name` (as listed by its selector) do not all count as up:
/// `db-1 not Ready`, `db-0 stopping`, `1 of 3 missing`. Empty when every wanted pod is there,
/// Ready and not stopping.
fn pods_down(pods: &[Pod], name: &str, wanted: i64) -> Vec<String> {
    let mut down = Vec::new();
    let mut up = 0;
    let mut listed: Vec<&Pod> = pods.iter().collect();
    listed.sort_by_key(|p| p.name_any());
    for pod in listed {
        if pod.metadata.deletion_timestamp.is_some() {
            down.push(format!("{} stopping", pod.name_any()));
        } else if !is_ready(pod) {
            down.push(format!("{} not Ready", pod.name_any()));
        } else {
            up += 1;
        }
    }
    let missing = wanted - up - i64::try_from(down.len()).unwrap_or(0);
    if missing > 0 {
        down.push(format!(
            "{missing} of {wanted} pod(s) of {name} to be created"
        ));
    }
    down
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The pods of app `name` that an interrupted recreate left marked for a restart.
fn restart_selector(instance: &str, name: &str) -> String {
    format!("{RESTART_MARK}={instance},{}={name}", NAME_LABEL)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ready: bool, stopping: bool) -> Pod {
        let mut value = json!({
            "metadata": {"name": name},
            "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        });
        if stopping {
            value["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        serde_json::from_value(value).expect("a pod")
    }

    #[test]
    fn a_restart_waits_for_every_wanted_pod_ready_and_none_stopping() {
        let all_up = [pod("db-0", true, false), pod("db-1", true, false)];
        assert!(pods_down(&all_up, "db", 2).is_empty());
        let one_not_ready = [pod("db-1", false, false), pod("db-0", true, false)];
        assert_eq!(pods_down(&one_not_ready, "db", 2), ["db-1 not Ready"]);
        // Ready but on its way out: as good as down.
        let stopping = [pod("db-0", true, true), pod("db-1", true, false)];
        assert_eq!(pods_down(&stopping, "db", 2), ["db-0 stopping"]);
        // Not created yet (the controller has not got to it): down too.
        assert_eq!(
            pods_down(&all_up, "db", 3),
            ["1 of 3 pod(s) of db to be created"]
        );
    }

    #[test]
    fn a_budget_refusal_is_told_in_the_budget_s_own_words() {
        let status: kube::core::Status = serde_json::from_value(json!({
            "code": 429,
            "message": "Cannot evict pod as it would violate the pod's disruption budget.",
            "details": {"causes": [{"reason": "DisruptionBudget",
                "message": "The disruption budget db needs 3 healthy pods and has 3 currently"}]},
        }))
        .expect("a status");
        assert_eq!(
            budget_refusal(&status),
            "The disruption budget db needs 3 healthy pods and has 3 currently"
        );
        let bare: kube::core::Status =
            serde_json::from_value(json!({"code": 429, "message": "Too many requests"}))
                .expect("a status");
        assert_eq!(budget_refusal(&bare), "Too many requests");
    }
}
