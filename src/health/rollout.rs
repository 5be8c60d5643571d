//! Where the StatefulSet controller is with an app's pods: the strategy, the revisions, the
//! partition and on-delete cases, read from the StatefulSet alone.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

/// Where the StatefulSet controller is with the pods.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Rollout {
    /// `RollingUpdate` or `OnDelete`.
    pub strategy: String,
    /// Pods on the update revision.
    pub updated: i32,
    /// Pods the StatefulSet wants.
    pub replicas: i32,
    pub current_revision: Option<String>,
    pub update_revision: Option<String>,
    /// Pods with an ordinal below this keep the old revision (RollingUpdate only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    /// OnDelete: pods still on the old revision, waiting for someone to delete them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub awaiting_restart: Option<i32>,
    /// The controller has seen the latest spec (observedGeneration ≥ generation).
    pub observed: bool,
    /// Every pod runs the update revision and the controller has caught up.
    pub complete: bool,
}

impl fmt::Display for Rollout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = |r: &Option<String>| {
            r.as_deref()
                .map(|r| r.rsplit('-').next().unwrap_or(r).to_string())
                .unwrap_or_else(|| "?".into())
        };
        if !self.observed {
            return f.write_str("waiting for the controller");
        }
        if self.complete {
            return write!(f, "up to date ({})", short(&self.update_revision));
        }
        let revisions = format!(
            "{} → {}",
            short(&self.current_revision),
            short(&self.update_revision)
        );
        if let Some(n) = self.awaiting_restart {
            return write!(
                f,
                "on-delete: {n} pod(s) awaiting restart, {}/{} updated ({revisions})",
                self.updated, self.replicas
            );
        }
        match self.partition {
            Some(p) if p > 0 => write!(
                f,
                "partition {p}: {}/{} updated ({revisions})",
                self.updated, self.replicas
            ),
            _ => write!(
                f,
                "rolling: {}/{} updated ({revisions})",
                self.updated, self.replicas
            ),
        }
    }
}

/// Rollout progress from a StatefulSet's spec and status.
pub fn rollout(sts: &Value) -> Rollout {
    let int = |p: &str| sts.pointer(p).and_then(Value::as_i64).map(|n| n as i32);
    let text = |p: &str| sts.pointer(p).and_then(Value::as_str).map(str::to_string);
    let strategy = text("/spec/updateStrategy/type").unwrap_or_else(|| "RollingUpdate".into());
    let replicas = int("/spec/replicas").unwrap_or(1);
    let updated = int("/status/updatedReplicas").unwrap_or(0);
    let current_revision = text("/status/currentRevision");
    let update_revision = text("/status/updateRevision");
    let observed = match (
        int("/metadata/generation"),
        int("/status/observedGeneration"),
    ) {
        (Some(g), Some(o)) => o >= g,
        (None, _) => true,
        (Some(_), None) => false,
    };
    let same_revision = current_revision == update_revision;
    let on_delete = strategy == "OnDelete";
    let awaiting_restart = (on_delete && !same_revision).then(|| (replicas - updated).max(0));
    let partition = if on_delete {
        None
    } else {
        int("/spec/updateStrategy/rollingUpdate/partition")
    };
    // The controller leaves updatedReplicas short of replicas while pods are missing; with
    // zero replicas there is nothing to roll.
    let complete = observed && (replicas == 0 || (same_revision && updated >= replicas));
    Rollout {
        strategy,
        updated,
        replicas,
        current_revision,
        update_revision,
        partition,
        awaiting_restart,
        observed,
        complete,
    }
}
