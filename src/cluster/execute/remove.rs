//! The ordered removal of an app: every write after a fresh read that confirms the StatefulSet
//! is still the app's, the PVC retention policy to Retain, the scale to 0, the wait for the pods
//! to stop, the release of the claims from their owner references, then the deletes, the
//! headless Service last. PVCs are never deleted. Resumable from any step.

use std::time::Instant;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use super::{POLL, PROGRESS_EVERY, Progress, WAIT_TIMEOUT, crash_point, not_this_app, selector_of};
use crate::cluster::inventory::LiveApp;
use crate::cluster::{Cluster, ClusterError, Kind, Reason};
use crate::labels::{REMOVING_ANNOTATION, selector_labels};

/// Where a removal stands after one call.
pub(super) enum Removal {
    Done(Vec<String>),
    WaitingForPods(usize),
}

impl Cluster {
    /// The ordered removal: mark and scale to zero with the claims retained, wait until no pod
    /// is left, then delete the StatefulSet, the access Service, the PodDisruptionBudget and the
    /// headless Service. PVCs are never deleted; their names are returned. Resumable from any
    /// step.
    pub(super) async fn remove_app(
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
        if let Some(planned) = &live.statefulset() {
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
                    self.record_event(&sts, Reason::ScaledToZero, None);
                    claims_before = self.release_claims(key, &sts, progress).await?;
                    if let Some(why) = self
                        .delete_owned(Kind::StatefulSet, planned, DeleteParams::background())
                        .await?
                    {
                        return Err(not_this_app("removal", key, planned, "deleting", &why));
                    }
                    self.record_event(&sts, Reason::Removed, None);
                }
                progress.step(key, "StatefulSet deleted");
                crash_point("removal:statefulset-deleted");
            } else {
                progress.step(key, "StatefulSet already gone");
            }
        }
        // Then the access Service and PDB, the headless Service last: pods kept their DNS names
        // until the very end.
        let mut rest: Vec<(Kind, DynamicObject)> = live
            .parsed()
            .into_iter()
            .filter(|(k, _)| *k != Kind::StatefulSet)
            .collect();
        rest.sort_by_key(|(kind, obj)| {
            let headless =
                obj.data.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None");
            (headless, *kind == Kind::Service)
        });
        for (kind, object) in &rest {
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
                Ok(written) => {
                    if let Some(before) = &marking {
                        self.record_event(
                            &written,
                            Reason::RemovalStarted,
                            Some(&format!(
                                "the app's spec is gone: marked for removal, scaled {before} → \
                                 0, claims retained"
                            )),
                        );
                    }
                }
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
        doing: &'static str,
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
        Ok(self.list_pods(ns, name, selector).await?.len())
    }

    pub(super) async fn list_pods(
        &self,
        ns: &str,
        name: &str,
        selector: &str,
    ) -> Result<Vec<Pod>, ClusterError> {
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
            .items)
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
        let mut last_said = String::new();
        let mut last_line = Instant::now();
        loop {
            let left = self.list_pods(ns, name, selector).await?;
            // Pods gone is not enough: the controller must also have seen it (status 0 for the
            // current generation), or deleting now races its last status write.
            if left.is_empty() && self.statefulset_settled_at_zero(ns, name).await? {
                return Ok(());
            }
            // A line when a pod starts stopping or goes, and at least every few seconds while
            // nothing changes, so a long wait is never silent and names what it waits for.
            let said = pods_stopping(&left);
            if said != last_said || last_line.elapsed() >= PROGRESS_EVERY {
                progress.step(
                    key,
                    &format!(
                        "waiting for {} pod(s) to stop ({}s){}",
                        left.len(),
                        started.elapsed().as_secs(),
                        if said.is_empty() {
                            String::new()
                        } else {
                            format!(": {said}")
                        }
                    ),
                );
                last_said = said;
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
            Some(sts) => selector_of(&sts),
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
}

/// The pods a removal waits for, highest ordinal first as the controller stops them:
/// `db-2 stopping, db-1, db-0` (a pod with a deletion timestamp is in its grace period).
fn pods_stopping(pods: &[Pod]) -> String {
    let mut pods: Vec<&Pod> = pods.iter().collect();
    // Length first: db-10 after db-9.
    pods.sort_by_key(|p| std::cmp::Reverse((p.name_any().len(), p.name_any())));
    pods.iter()
        .map(|p| match p.metadata.deletion_timestamp {
            Some(_) => format!("{} stopping", p.name_any()),
            None => p.name_any(),
        })
        .collect::<Vec<_>>()
        .join(", ")
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

#[cfg(test)]
mod tests {
    use super::{claim_deleting_policy, pods_stopping};

    #[test]
    fn the_wait_names_the_pods_left_highest_ordinal_first_and_which_are_stopping() {
        let pods: Vec<k8s_openapi::api::core::v1::Pod> =
            [("db-0", false), ("db-10", false), ("db-2", true)]
                .iter()
                .map(|(name, stopping)| {
                    let mut meta = serde_json::json!({"name": name});
                    if *stopping {
                        meta["deletionTimestamp"] = serde_json::json!("2026-01-01T00:00:00Z");
                    }
                    serde_json::from_value(serde_json::json!({"metadata": meta})).expect("a pod")
                })
                .collect();
        assert_eq!(pods_stopping(&pods), "db-10, db-2 stopping, db-0");
        assert_eq!(pods_stopping(&[]), "");
    }

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
