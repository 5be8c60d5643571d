//! `berth apply --wait`: after converging, watch the changed apps until each is healthy, one
//! is degraded for a reason waiting will not fix, or the timeout passes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kube::Api;
use kube::api::DynamicObject;
use serde_json::Value;

use super::{Cluster, ClusterError, Kind, Progress};
use crate::health::{Health, State};
use crate::spec::AppKey;

/// How often the apps are looked at again.
const POLL: Duration = Duration::from_secs(1);

/// How a wait ended.
#[derive(Debug)]
pub enum Waited {
    /// Every app healthy.
    Healthy,
    /// These apps are degraded for a reason that does not clear by waiting (a crash loop, an
    /// image that cannot be pulled, a pod the controller cannot create).
    Degraded(Vec<(AppKey, Health)>),
    /// The timeout passed; these apps were not healthy yet, each with how it was last seen.
    TimedOut(Vec<(AppKey, Health)>),
}

/// Waits for `apps` to be healthy, telling `progress` each change of an app's health.
pub async fn until_healthy(
    cluster: &Cluster,
    apps: &[AppKey],
    timeout: Duration,
    progress: &dyn Progress,
) -> Result<Waited, ClusterError> {
    let deadline = Instant::now() + timeout;
    let mut pending: BTreeMap<AppKey, Option<Health>> =
        apps.iter().map(|k| (k.clone(), None)).collect();
    loop {
        let keys: Vec<AppKey> = pending.keys().cloned().collect();
        let mut degraded = Vec::new();
        for (key, health) in cluster.health_of(&keys).await? {
            let Some(last) = pending.get_mut(&key) else {
                continue;
            };
            if last.as_ref() != Some(&health) {
                progress.step(&key.to_string(), &describe(&health));
            }
            if health.state == State::Degraded && !health.may_clear {
                degraded.push((key.clone(), health.clone()));
            }
            *last = Some(health);
        }
        pending.retain(|_, h| !h.as_ref().is_some_and(Health::is_healthy));
        if !degraded.is_empty() {
            return Ok(Waited::Degraded(degraded));
        }
        if pending.is_empty() {
            return Ok(Waited::Healthy);
        }
        if Instant::now() >= deadline {
            return Ok(Waited::TimedOut(
                pending
                    .into_iter()
                    .filter_map(|(k, h)| h.map(|h| (k, h)))
                    .collect(),
            ));
        }
        tokio::time::sleep(POLL.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}

impl super::Cluster {
    /// The app's StatefulSet as JSON, status included, read from the server.
    pub async fn statefulset_json(&self, key: &AppKey) -> Result<Option<Value>, ClusterError> {
        statefulset(&self.client, key).await
    }
}

async fn statefulset(client: &kube::Client, key: &AppKey) -> Result<Option<Value>, ClusterError> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &key.namespace,
        &Kind::StatefulSet.resource(),
    );
    let live = api
        .get_opt(&key.name)
        .await
        .map_err(|source| ClusterError::Get {
            kind: Kind::StatefulSet,
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            source,
        })?;
    Ok(live.map(|o| serde_json::to_value(o).unwrap_or(Value::Null)))
}

/// A progress line: `healthy`, or `waiting: progressing: 1/3 pods ready`.
fn describe(health: &Health) -> String {
    match (&health.state, &health.reason) {
        (State::Healthy, _) => "healthy".to_string(),
        (state, Some(reason)) => format!("waiting: {state}: {reason}"),
        (state, None) => format!("waiting: {state}"),
    }
}
