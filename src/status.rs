//! `berth status [DIR]`: one line per app with its sync state, ready/desired replicas, rollout
//! progress, the last applied commit and the last error.
//!
//! With DIR the sync state comes from a plan of DIR (the same dry-run comparison `berth diff`
//! makes); without it only live objects are read, so the state is `removing` or `unknown`.
//! The pure part ([`AppStatus::from_live`], [`rollout`], [`render_text`], [`all_healthy`]) turns
//! JSON objects into lines; [`collect`] is the small part that reads the cluster. The command
//! itself (arguments, output, exit code) is [`crate::commands::status`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use kube::ResourceExt;
use serde::Serialize;
use serde_json::Value;

use crate::cluster::{Cluster, ClusterError, Kind, PlanOptions, head_commit};
use crate::config::Config;
use crate::labels::{COMMIT_ANNOTATION, FINGERPRINT_ANNOTATION, REMOVING_ANNOTATION};
use crate::plan::{Action, fingerprint};
use crate::render::{RenderContext, render_app, source_value};
use crate::spec::{App, AppKey, Loaded};

/// How an app's live objects relate to its spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sync {
    /// Live objects match the spec.
    InSync,
    /// The spec changed (or is new, or its file is gone) and `apply` has not carried it out yet.
    Pending,
    /// The spec did not change since berth applied it, but someone changed the live objects.
    Drifted,
    /// berth will not act until something is dealt with (see the error).
    Blocked,
    /// berth is removing the app (scale to zero, then delete).
    Removing,
    /// The app's spec file has errors; the live app is left as it is.
    Error,
    /// No spec directory was given: only live state is known.
    Unknown,
}

impl fmt::Display for Sync {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Sync::InSync => "in-sync",
            Sync::Pending => "pending",
            Sync::Drifted => "drifted",
            Sync::Blocked => "blocked",
            Sync::Removing => "removing",
            Sync::Error => "error",
            Sync::Unknown => "unknown",
        })
    }
}

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

/// One app's line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppStatus {
    pub namespace: String,
    pub name: String,
    pub sync: Sync,
    pub ready: i32,
    pub desired: i32,
    /// None when the StatefulSet does not exist (yet).
    pub rollout: Option<Rollout>,
    /// The `berth.dev/commit` of the last apply.
    pub commit: Option<String>,
    /// Why the app is blocked, broken or not converging.
    pub error: Option<String>,
}

impl AppStatus {
    /// The status of an app from its live StatefulSet (if any) and the sync state decided
    /// elsewhere. `desired` is the spec's replica count, when there is a spec.
    pub fn from_live(
        namespace: &str,
        name: &str,
        sync: Sync,
        sts: Option<&Value>,
        desired: Option<i32>,
        error: Option<String>,
    ) -> AppStatus {
        let int = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_i64).unwrap_or(0) as i32;
        let removing = sts.is_some_and(|s| {
            s.pointer("/metadata/annotations")
                .and_then(|a| a.get(REMOVING_ANNOTATION))
                .is_some()
        });
        AppStatus {
            namespace: namespace.to_string(),
            name: name.to_string(),
            // A removal in flight wins over whatever a plan says: it is what berth is doing.
            sync: if removing { Sync::Removing } else { sync },
            ready: sts.map_or(0, |s| int(s, "/status/readyReplicas")),
            desired: desired
                .filter(|_| !removing)
                .or_else(|| sts.map(|s| int(s, "/spec/replicas")))
                .unwrap_or(0),
            rollout: sts.map(rollout),
            commit: sts
                .and_then(|s| s.pointer("/metadata/annotations"))
                .and_then(|a| a.get(COMMIT_ANNOTATION))
                .and_then(Value::as_str)
                .map(str::to_string),
            error,
        }
    }

    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// In sync (or, without a spec directory, not being removed), every wanted pod Ready and the
    /// rollout complete.
    pub fn healthy(&self) -> bool {
        matches!(self.sync, Sync::InSync | Sync::Unknown)
            && self.ready == self.desired
            && self.rollout.as_ref().is_some_and(|r| r.complete)
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

/// The aligned table printed by `berth status`.
pub fn render_text(apps: &[AppStatus]) -> String {
    let rows: Vec<[String; 6]> = apps
        .iter()
        .map(|a| {
            [
                a.key(),
                a.sync.to_string(),
                format!("{}/{}", a.ready, a.desired),
                a.rollout
                    .as_ref()
                    .map_or_else(|| "-".to_string(), ToString::to_string),
                a.commit
                    .as_deref()
                    .map_or_else(|| "-".into(), |c| c.chars().take(12).collect()),
                a.error.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let header = ["APP", "SYNC", "READY", "ROLLOUT", "COMMIT", "LAST ERROR"].map(String::from);
    let mut widths = [0usize; 6];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Every app in sync and ready with its rollout done: what exit code 0 of `berth status` means.
pub fn all_healthy(apps: &[AppStatus]) -> bool {
    apps.iter().all(AppStatus::healthy)
}

/// The `berth status -o json` document.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub apps: &'a [AppStatus],
    /// Same meaning as exit code 0.
    pub ok: bool,
}

fn to_json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Reads the cluster (and plans DIR when given) and returns one status per app: every app of
/// DIR, every app this instance owns, and every broken spec.
pub async fn collect(
    cluster: &Cluster,
    loaded: Option<&Loaded>,
    dir: Option<&Path>,
    config: &Config,
) -> Result<Vec<AppStatus>, ClusterError> {
    let inventory = cluster.inventory().await?;
    let live_sts = |ns: &str, name: &str| {
        inventory
            .apps
            .get(&AppKey::new(ns, name))
            .and_then(|a| a.statefulset())
            .map(to_json)
    };
    let Some(loaded) = loaded else {
        let mut out = Vec::new();
        for a in inventory.apps.values() {
            let sts = a.statefulset().map(to_json);
            let error = match &sts {
                Some(s) if pods_missing(s) => failed_create(cluster, &a.namespace, &a.name).await,
                _ => None,
            };
            out.push(AppStatus::from_live(
                &a.namespace,
                &a.name,
                Sync::Unknown,
                sts.as_ref(),
                None,
                error,
            ));
        }
        return Ok(out);
    };
    let commit = dir.and_then(head_commit);
    let options = PlanOptions {
        max_removals: config.safety.max_removals,
        commit: commit.clone(),
        ..PlanOptions::default()
    };
    let planned = cluster.plan_with(loaded, &inventory, &options).await?;
    let apps: BTreeMap<AppKey, &App> = loaded
        .apps
        .iter()
        .map(|a| (AppKey::new(a.namespace.clone(), a.name.clone()), a))
        .collect();
    let mut out = Vec::new();
    for plan in &planned.plan.apps {
        let key = AppKey::new(plan.namespace.clone(), plan.name.clone());
        let app = apps.get(&key).copied();
        // An adopted StatefulSet is not in the inventory until berth has written it.
        let sts = match live_sts(&plan.namespace, &plan.name) {
            Some(s) => Some(s),
            None if app.is_some() => kube::Api::<kube::api::DynamicObject>::namespaced_with(
                cluster.client().clone(),
                &plan.namespace,
                &Kind::StatefulSet.resource(),
            )
            .get_opt(&plan.name)
            .await
            .ok()
            .flatten()
            .map(|o| to_json(&o)),
            None => None,
        };
        let broken = loaded.broken.iter().any(|b| {
            (b.name == plan.name && b.namespace.as_deref().is_none_or(|ns| ns == plan.namespace))
                || inventory.apps.get(&key).and_then(|l| l.source.as_deref())
                    == Some(source_value(&b.source_path).as_str())
        });
        let (sync, error) = match &plan.action {
            Action::Unchanged => (Sync::InSync, None),
            Action::Blocked { reason, .. } if broken => (Sync::Error, Some(reason.clone())),
            Action::Blocked { reason, .. } | Action::Held { reason } => {
                (Sync::Blocked, Some(reason.clone()))
            }
            Action::Update => {
                let drifted = app.is_some_and(|a| {
                    drifted(
                        a,
                        cluster.instance(),
                        commit.clone(),
                        &inventory,
                        &plan.changes,
                    )
                });
                (
                    if drifted {
                        Sync::Drifted
                    } else {
                        Sync::Pending
                    },
                    None,
                )
            }
            Action::Create | Action::Remove | Action::Recreate { .. } => (Sync::Pending, None),
        };
        let error = match (error, &sts) {
            (None, Some(s)) if pods_missing(s) => {
                failed_create(cluster, &plan.namespace, &plan.name).await
            }
            (error, _) => error,
        };
        out.push(AppStatus::from_live(
            &plan.namespace,
            &plan.name,
            sync,
            sts.as_ref(),
            app.and_then(|a| a.replicas.count()),
            error,
        ));
    }
    // Broken specs whose app is not live: nothing to show but the error.
    for b in &loaded.broken {
        let ns = b
            .namespace
            .clone()
            .unwrap_or_else(|| config.defaults.namespace.clone());
        if out.iter().any(|s| s.name == b.name && s.namespace == ns) {
            continue;
        }
        out.push(AppStatus::from_live(
            &ns,
            &b.name,
            Sync::Error,
            None,
            None,
            Some(format!("its spec {} has errors", b.path.display())),
        ));
    }
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(out)
}

/// Fewer pods exist than the StatefulSet wants: the controller may be failing to create them.
fn pods_missing(sts: &Value) -> bool {
    let int = |p: &str| sts.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    int("/status/replicas") < int("/spec/replicas")
}

/// Why the StatefulSet controller cannot create a pod (an admission refusal such as Pod
/// Security, a quota): the newest FailedCreate event on the StatefulSet. Best effort: without
/// the right to list events, or without such an event, nothing.
async fn failed_create(cluster: &Cluster, namespace: &str, name: &str) -> Option<String> {
    use k8s_openapi::api::core::v1::Event;
    let events: kube::Api<Event> = kube::Api::namespaced(cluster.client().clone(), namespace);
    let fields =
        format!("involvedObject.kind=StatefulSet,involvedObject.name={name},reason=FailedCreate");
    let list = events
        .list(&kube::api::ListParams::default().fields(&fields))
        .await
        .ok()?;
    let when = |e: &Event| {
        e.last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or_else(|| e.event_time.as_ref().map(|t| t.0))
            .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
    };
    let newest = list.items.iter().max_by_key(|e| when(e))?;
    Some(format!(
        "FailedCreate: {}",
        newest
            .message
            .as_deref()
            .unwrap_or("the controller cannot create pods")
    ))
}

/// An update is drift when some changed object still carries the fingerprint of what the spec
/// renders today: berth applied exactly this, and someone changed it since.
fn drifted(
    app: &App,
    instance: &str,
    commit: Option<String>,
    inventory: &crate::cluster::Inventory,
    changes: &[crate::plan::ObjectChange],
) -> bool {
    let Some(live) = inventory
        .apps
        .get(&AppKey::new(app.namespace.clone(), app.name.clone()))
    else {
        return false;
    };
    let ctx = RenderContext::new(instance, app).with_commit(commit);
    let desired = render_app(app, &ctx).to_values();
    changes.iter().filter(|c| c.before.is_some()).any(|c| {
        let want = desired.iter().find(|v| {
            v.get("kind").and_then(Value::as_str) == Some(c.object.kind.as_str())
                && v.pointer("/metadata/name").and_then(Value::as_str)
                    == Some(c.object.name.as_str())
        });
        let applied = live
            .objects
            .iter()
            .find(|(k, o)| k.to_string() == c.object.kind && o.name_any() == c.object.name)
            .and_then(|(_, o)| o.annotations().get(FINGERPRINT_ANNOTATION).cloned());
        match (want, applied) {
            (Some(w), Some(a)) => fingerprint(w) == a,
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sts(status: Value) -> Value {
        json!({
            "metadata": {"name": "db", "generation": 2,
                         "annotations": {"berth.dev/commit": "0123456789abcdef0123"}},
            "spec": {"replicas": 3, "updateStrategy": {"type": "RollingUpdate"}},
            "status": status
        })
    }

    #[test]
    fn a_finished_rollout_is_complete_and_healthy() {
        let live = sts(
            json!({"observedGeneration": 2, "replicas": 3, "readyReplicas": 3,
            "updatedReplicas": 3, "currentRevision": "db-abc", "updateRevision": "db-abc"}),
        );
        let s = AppStatus::from_live("ns", "db", Sync::InSync, Some(&live), Some(3), None);
        assert!(s.healthy());
        assert_eq!(s.commit.as_deref(), Some("0123456789abcdef0123"));
        assert!(all_healthy(std::slice::from_ref(&s)));
        let text = render_text(&[s]);
        assert!(text.starts_with("APP"), "{text}");
        assert!(
            text.contains("ns/db  in-sync  3/3    up to date (abc)  0123456789ab  -"),
            "{text}"
        );
    }

    #[test]
    fn a_rolling_update_in_progress_is_not_healthy() {
        let live = sts(json!({"observedGeneration": 2, "readyReplicas": 3,
            "updatedReplicas": 1, "currentRevision": "db-old", "updateRevision": "db-new"}));
        let s = AppStatus::from_live("ns", "db", Sync::InSync, Some(&live), Some(3), None);
        assert!(!s.healthy());
        assert!(!all_healthy(std::slice::from_ref(&s)));
        let r = s.rollout.expect("rollout");
        assert_eq!(r.to_string(), "rolling: 1/3 updated (old → new)");
    }

    #[test]
    fn partition_and_on_delete_are_shown() {
        let mut live = sts(json!({"observedGeneration": 2, "updatedReplicas": 1,
            "currentRevision": "db-old", "updateRevision": "db-new"}));
        live["spec"]["updateStrategy"] =
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 2}});
        assert_eq!(
            rollout(&live).to_string(),
            "partition 2: 1/3 updated (old → new)"
        );
        live["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
        let r = rollout(&live);
        assert_eq!(r.awaiting_restart, Some(2));
        assert_eq!(
            r.to_string(),
            "on-delete: 2 pod(s) awaiting restart, 1/3 updated (old → new)"
        );
    }

    #[test]
    fn the_controller_not_caught_up_is_not_complete() {
        let live = sts(
            json!({"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 3,
            "currentRevision": "db-a", "updateRevision": "db-a"}),
        );
        let r = rollout(&live);
        assert!(!r.complete);
        assert_eq!(r.to_string(), "waiting for the controller");
    }

    #[test]
    fn the_removal_mark_wins_and_states_other_than_in_sync_fail_the_exit_code() {
        let mut live = sts(json!({"observedGeneration": 2, "readyReplicas": 3,
            "updatedReplicas": 3, "currentRevision": "db-a", "updateRevision": "db-a"}));
        live["metadata"]["annotations"]["berth.dev/removing"] = json!("3");
        let s = AppStatus::from_live("ns", "db", Sync::Unknown, Some(&live), None, None);
        assert_eq!(s.sync, Sync::Removing);
        assert!(!all_healthy(&[s]));
        for sync in [Sync::Pending, Sync::Drifted, Sync::Blocked, Sync::Error] {
            let live = sts(json!({"observedGeneration": 2, "readyReplicas": 3,
                "updatedReplicas": 3, "currentRevision": "db-a", "updateRevision": "db-a"}));
            let s = AppStatus::from_live("ns", "db", sync, Some(&live), Some(3), None);
            assert!(!all_healthy(&[s]), "{sync}");
        }
        // Not created yet: nothing is ready.
        let s = AppStatus::from_live("ns", "db", Sync::Pending, None, Some(2), None);
        assert_eq!((s.ready, s.desired), (0, 2));
        assert!(render_text(&[s]).contains("ns/db  pending  0/2    -"));
    }

    #[test]
    fn json_uses_kebab_case_states() {
        let s = AppStatus::from_live("ns", "db", Sync::InSync, None, Some(1), None);
        let v = serde_json::to_value(Report {
            apps: &[s],
            ok: false,
        })
        .expect("json");
        assert_eq!(v["apps"][0]["sync"], "in-sync");
        assert_eq!(v["apps"][0]["desired"], 1);
        assert_eq!(v["ok"], false);
    }
}
