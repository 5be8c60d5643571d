//! `berth suspend` / `berth resume`: the suspension mark on an app's live StatefulSet, where
//! every berth instance that plans the app (another bastion, the daemon, a laptop) sees it.

use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::{Cluster, ClusterError, Kind, Reason};
use crate::labels::{SUSPENDED_ANNOTATION, app_of};
use crate::spec::AppKey;

/// The field manager of the mark: not berth's own, so berth's server-side applies neither own
/// nor remove it.
const SUSPEND_MANAGER: &str = "berth-suspend";

/// Why the mark cannot be set or taken away.
#[derive(Debug, thiserror::Error)]
pub enum SuspendError {
    #[error("no StatefulSet {0}: berth has not applied this app (a spec can say `suspend = true`)")]
    NotFound(AppKey),
    #[error(
        "StatefulSet {key} is not this berth instance's (instance `{instance}`); pass the \
         --instance that manages it"
    )]
    NotOurs { key: AppKey, instance: String },
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

impl Cluster {
    /// Sets the mark (`Some(text)`: who, when, why) or takes it away (`None`). Returns whether
    /// anything changed.
    pub async fn set_suspended(
        &self,
        key: &AppKey,
        mark: Option<&str>,
    ) -> Result<bool, SuspendError> {
        let sts = self
            .get(Kind::StatefulSet, &key.namespace, &key.name)
            .await?
            .ok_or_else(|| SuspendError::NotFound(key.clone()))?;
        let ours = self.owns(&sts)
            && app_of(&key.namespace, sts.labels(), sts.annotations()) == Some(key.name.as_str());
        if !ours {
            return Err(SuspendError::NotOurs {
                key: key.clone(),
                instance: self.instance.clone(),
            });
        }
        let had = sts.annotations().contains_key(SUSPENDED_ANNOTATION);
        if !had && mark.is_none() {
            return Ok(false);
        }
        let patch = json!({"metadata": {"annotations": {SUSPENDED_ANNOTATION: mark}}});
        let params = PatchParams {
            field_manager: Some(SUSPEND_MANAGER.to_string()),
            ..PatchParams::default()
        };
        let patched = Kind::StatefulSet
            .api(&self.client, &key.namespace)
            .patch(&key.name, &params, &Patch::Merge(&patch))
            .await
            .map_err(|source| ClusterError::Step {
                operation: if mark.is_some() {
                    "marking the StatefulSet suspended"
                } else {
                    "taking the suspended mark off the StatefulSet"
                },
                namespace: key.namespace.clone(),
                name: key.name.clone(),
                source,
            })?;
        let reason = if mark.is_some() {
            Reason::Suspended
        } else {
            Reason::Resumed
        };
        self.record_event(&patched, reason, mark);
        self.flush_events().await;
        Ok(true)
    }
}
