//! Recreating an app's StatefulSet without an outage (grown PVCs expanded, the StatefulSet
//! deleted with its pods orphaned and created anew to adopt them), and the restarts, one pod at
//! a time, of the pods marked for one.

use std::time::Instant;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, Preconditions};
use serde_json::{Value, json};

use super::{POLL, Progress, WAIT_TIMEOUT, crash_point, not_this_app, selector_of};
use crate::cluster::planner::mark_restart_pending;
use crate::cluster::{Cluster, ClusterError, Kind, Reason};
use crate::labels::{NAME_LABEL, RESTART_MARK};

impl Cluster {
    /// Recreate without an outage: expand grown PVCs, mark the pods that need a restart, delete
    /// the StatefulSet orphaning its pods, apply it anew (the pods and PVCs are adopted), then
    /// restart the marked pods one at a time, each Ready before the next goes.
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
            for (kind, object) in objects.iter_mut() {
                if *kind == Kind::StatefulSet {
                    mark_restart_pending(object);
                }
            }
        }
        match self.apply_app(ns, &name, &objects, delete, false).await? {
            Some(sts) => self.record_event(&sts, Reason::Recreated, None),
            None => self.record_event_named(ns, &name, Reason::Recreated, None),
        }
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
    pub(super) async fn restart_marked_pods(
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
fn restart_selector(instance: &str, name: &str) -> String {
    format!("{RESTART_MARK}={instance},{}={name}", NAME_LABEL)
}
