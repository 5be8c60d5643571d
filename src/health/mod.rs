//! How an app is doing, as opposed to whether it is applied: `healthy`, `progressing`,
//! `degraded` (with the reason the pods, claims or the StatefulSet controller give) or
//! `missing`. [`assess`] is pure: it reads the live objects of one app that
//! [`crate::cluster::Observations`] fetched.
//!
//! The reasons are the ones a person on call looks for first (CrashLoopBackOff, image pulls,
//! OOMKilled, Unschedulable with the scheduler's words, a claim that never binds, a pod the
//! controller cannot create); each says which pod and container, so `berth status` answers
//! "why" without a `kubectl describe`.

mod rollout;
#[cfg(test)]
mod tests;

pub use rollout::{Rollout, rollout};

use std::fmt;

use k8s_openapi::api::core::v1::{ContainerStatus, Event, PersistentVolumeClaim, Pod};
use serde::Serialize;
use serde_json::Value;

use crate::labels::REMOVING_ANNOTATION;

/// The health states, in `berth status`, `-o json` and the daemon's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Every wanted pod Ready on the current revision.
    Healthy,
    /// A rollout, a scale or a removal under way, nothing wrong seen.
    Progressing,
    /// Something the cluster will not fix by waiting a little: see the reason.
    Degraded,
    /// No StatefulSet.
    Missing,
}

impl State {
    pub const ALL: [State; 4] = [
        State::Healthy,
        State::Progressing,
        State::Degraded,
        State::Missing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Healthy => "healthy",
            State::Progressing => "progressing",
            State::Degraded => "degraded",
            State::Missing => "missing",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One app's health and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    pub state: State,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Degraded for a reason that can clear by itself (a pod the scheduler cannot place yet, a
    /// claim not bound yet: a node or a volume may be on its way), so `apply --wait` keeps
    /// waiting until its timeout instead of giving up at once.
    #[serde(skip)]
    pub may_clear: bool,
}

impl Health {
    fn new(state: State, reason: Option<String>) -> Health {
        Health {
            state,
            reason,
            may_clear: false,
        }
    }

    fn degraded(reason: String, may_clear: bool) -> Health {
        Health {
            state: State::Degraded,
            reason: Some(reason),
            may_clear,
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.state == State::Healthy
    }

    /// Judged from the StatefulSet alone, whether the pods, claims and events could tell more:
    /// not when it is healthy, nor when there is none.
    pub fn needs_a_closer_look(&self) -> bool {
        !matches!(self.state, State::Healthy | State::Missing)
    }
}

/// The live objects of one app: its StatefulSet (JSON, as `berth status` reads it), the pods
/// it owns, their claims, and the Warning events about any of them.
#[derive(Debug, Default)]
pub struct Observed<'a> {
    pub statefulset: Option<&'a Value>,
    pub pods: Vec<&'a Pod>,
    pub claims: Vec<&'a PersistentVolumeClaim>,
    pub events: Vec<&'a Event>,
}

/// Container waiting reasons that mean the container will not run as it is.
const BROKEN_CONTAINER: [&str; 7] = [
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// The app's health. A degraded reason that will not clear by itself wins over one that may,
/// and the first pod (by ordinal) over later ones, so the line names the most telling problem.
pub fn assess(observed: &Observed) -> Health {
    let Some(sts) = observed.statefulset else {
        return Health::new(State::Missing, None);
    };
    let mut pods = observed.pods.clone();
    pods.sort_by_key(|p| ordinal(p));
    let mut waiting_problem = None;
    for pod in &pods {
        if let Some(reason) = broken_containers(pod) {
            return Health::degraded(reason, false);
        }
        if waiting_problem.is_none() {
            waiting_problem = unplaced(pod, observed);
        }
    }
    if let Some(reason) = failed_create(sts, &observed.events) {
        return Health::degraded(reason, false);
    }
    if let Some(reason) = waiting_problem {
        return Health::degraded(reason, true);
    }
    let removing = sts
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(REMOVING_ANNOTATION))
        .is_some();
    if removing {
        return Health::new(
            State::Progressing,
            Some(format!("removing: {} pod(s) left", pods.len())),
        );
    }
    let rollout = rollout(sts);
    if !rollout.complete {
        return Health::new(State::Progressing, Some(rollout.to_string()));
    }
    let int = |p: &str| sts.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    let (ready, wanted) = (int("/status/readyReplicas"), int("/spec/replicas"));
    if ready < wanted {
        return Health::new(
            State::Progressing,
            Some(format!("{ready}/{wanted} pods ready")),
        );
    }
    Health::new(State::Healthy, None)
}

fn ordinal(pod: &Pod) -> u32 {
    pod.metadata
        .name
        .as_deref()
        .and_then(|n| n.rsplit('-').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(u32::MAX)
}

fn pod_name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or("?")
}

/// A container that cannot start or keeps dying, or a pod that failed.
fn broken_containers(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for c in containers {
        if let Some(reason) = broken_container(c) {
            return Some(format!(
                "pod {}: container {}: {reason}",
                pod_name(pod),
                c.name
            ));
        }
    }
    if status.phase.as_deref() == Some("Failed") {
        return Some(format!(
            "pod {} failed{}",
            pod_name(pod),
            said(status.reason.as_deref(), status.message.as_deref())
        ));
    }
    None
}

fn broken_container(c: &ContainerStatus) -> Option<String> {
    let state = c.state.as_ref();
    let oom_before = c
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .is_some_and(|t| t.reason.as_deref() == Some("OOMKilled"));
    if let Some(t) = state.and_then(|s| s.terminated.as_ref())
        && t.reason.as_deref() == Some("OOMKilled")
    {
        return Some(format!(
            "OOMKilled (exit code {}): raise its memory limit",
            t.exit_code
        ));
    }
    let waiting = state.and_then(|s| s.waiting.as_ref())?;
    let reason = waiting.reason.as_deref()?;
    if !BROKEN_CONTAINER.contains(&reason) {
        return None;
    }
    let message = waiting.message.as_deref().unwrap_or("").trim();
    let mut text = if oom_before {
        format!("OOMKilled, restarting ({reason}): raise its memory limit")
    } else {
        reason.to_string()
    };
    if !message.is_empty() {
        text.push_str(": ");
        text.push_str(message);
    }
    Some(text)
}

/// A pod the scheduler has not placed: a claim not bound yet, or no node that fits.
fn unplaced(pod: &Pod, observed: &Observed) -> Option<String> {
    let unschedulable = pod
        .status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
    let pending_claim = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .find_map(|source| {
            observed.claims.iter().find(|c| {
                c.metadata.name.as_deref() == Some(source.claim_name.as_str())
                    && c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Pending")
            })
        });
    if let Some(claim) = pending_claim {
        let name = claim.metadata.name.as_deref().unwrap_or("?");
        let why = latest_event(&observed.events, "PersistentVolumeClaim", name)
            .and_then(|e| e.message.clone())
            .unwrap_or_else(|| "no volume bound yet".to_string());
        return Some(format!("claim {name} Pending: {why}"));
    }
    Some(format!(
        "pod {} {}",
        pod_name(pod),
        said(
            unschedulable.reason.as_deref().or(Some("not scheduled")),
            unschedulable.message.as_deref()
        )
        .trim_start()
    ))
}

/// The StatefulSet controller could not create a pod (admission, quota, a bad template) and
/// the set has fewer pods than it wants: the newest such event says why.
fn failed_create(sts: &Value, events: &[&Event]) -> Option<String> {
    let int = |p: &str| sts.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    if int("/status/replicas") >= int("/spec/replicas") {
        return None;
    }
    let name = sts.pointer("/metadata/name").and_then(Value::as_str)?;
    let event = latest_event(events, "StatefulSet", name)
        .filter(|e| e.reason.as_deref() == Some("FailedCreate"))?;
    Some(format!(
        "FailedCreate: {}",
        event
            .message
            .as_deref()
            .unwrap_or("the controller cannot create pods")
    ))
}

/// The newest event about one object.
fn latest_event<'a>(events: &[&'a Event], kind: &str, name: &str) -> Option<&'a Event> {
    events
        .iter()
        .filter(|e| {
            e.involved_object.kind.as_deref() == Some(kind)
                && e.involved_object.name.as_deref() == Some(name)
        })
        .max_by_key(|e| event_time(e))
        .copied()
}

fn event_time(e: &Event) -> Option<k8s_openapi::jiff::Timestamp> {
    e.last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| e.event_time.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// ` REASON: message`, or as much of it as there is.
fn said(reason: Option<&str>, message: Option<&str>) -> String {
    match (reason, message.map(str::trim).filter(|m| !m.is_empty())) {
        (Some(r), Some(m)) => format!(" {r}: {m}"),
        (Some(r), None) => format!(" {r}"),
        (None, Some(m)) => format!(": {m}"),
        (None, None) => String::new(),
    }
}
