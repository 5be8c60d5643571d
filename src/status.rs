//! `berth status [DIR]`: one line per app with its sync state, its health
//! ([`crate::health`]), ready/desired replicas, rollout progress, the last applied commit and
//! the last error.
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

use crate::cluster::{Cluster, ClusterError, Kind, Observations, PlanOptions, head_commit};
use crate::config::Config;
use crate::health::{Health, Observed, State, assess};
pub use crate::health::{Rollout, rollout};
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
    /// berth leaves the app alone (`suspend = true`, or `berth suspend`): see the error column.
    Suspended,
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
            Sync::Suspended => "suspended",
            Sync::Unknown => "unknown",
        })
    }
}

/// One app's line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppStatus {
    pub namespace: String,
    pub name: String,
    pub sync: Sync,
    /// From the live objects: the pods, their claims, the controller's events.
    pub health: Health,
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
            // From the StatefulSet alone; [`AppStatus::with_health`] gives the full picture.
            health: assess(&Observed {
                statefulset: sts,
                ..Observed::default()
            }),
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

    /// The health judged from the app's pods, claims and events too.
    pub fn with_health(self, health: Health) -> AppStatus {
        AppStatus { health, ..self }
    }

    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// In sync (or, without a spec directory, not being removed), healthy: every wanted pod
    /// Ready and the rollout complete.
    pub fn healthy(&self) -> bool {
        matches!(self.sync, Sync::InSync | Sync::Unknown)
            && self.health.is_healthy()
            && self.ready == self.desired
            && self.rollout.as_ref().is_some_and(|r| r.complete)
    }
}

/// The aligned table printed by `berth status`.
pub fn render_text(apps: &[AppStatus]) -> String {
    let rows: Vec<[String; 7]> = apps
        .iter()
        .map(|a| {
            // A degraded app's reason is its last error when berth itself has none to tell.
            let degraded = (a.health.state == State::Degraded)
                .then(|| a.health.reason.clone())
                .flatten();
            [
                a.key(),
                a.sync.to_string(),
                a.health.state.to_string(),
                format!("{}/{}", a.ready, a.desired),
                a.rollout
                    .as_ref()
                    .map_or_else(|| "-".to_string(), ToString::to_string),
                a.commit
                    .as_deref()
                    .map_or_else(|| "-".into(), |c| c.chars().take(12).collect()),
                a.error.clone().or(degraded).unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let header = [
        "APP",
        "SYNC",
        "HEALTH",
        "READY",
        "ROLLOUT",
        "COMMIT",
        "LAST ERROR",
    ]
    .map(String::from);
    let mut widths = [0usize; 7];
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
    // Only namespaces with an app its StatefulSet does not show healthy are listed: an app
    // without one is missing, a healthy one needs nothing more.
    let namespaces: std::collections::BTreeSet<String> = inventory
        .apps
        .values()
        .filter(|a| {
            let sts = a.statefulset_json();
            assess(&Observed {
                statefulset: sts.as_ref(),
                ..Observed::default()
            })
            .needs_a_closer_look()
        })
        .map(|a| a.namespace.clone())
        .collect();
    let observations =
        Observations::read(cluster.client(), namespaces.iter().map(String::as_str)).await?;
    let with_health = |status: AppStatus, sts: Option<&Value>| {
        let health = assess(&observations.of(&status.namespace, sts));
        status.with_health(health)
    };
    let live_sts = |ns: &str, name: &str| {
        inventory
            .apps
            .get(&AppKey::new(ns, name))
            .and_then(|a| a.statefulset_json())
    };
    let Some(loaded) = loaded else {
        return Ok(inventory
            .apps
            .values()
            .map(|a| {
                let sts = a.statefulset_json();
                let status = AppStatus::from_live(
                    &a.namespace,
                    &a.name,
                    Sync::Unknown,
                    sts.as_ref(),
                    None,
                    None,
                );
                with_health(status, sts.as_ref())
            })
            .collect());
    };
    let commit = dir.and_then(head_commit);
    // The removal ledger where the config keeps it: its Role grants that namespace alone.
    let options = PlanOptions {
        max_removals: config.safety.max_removals,
        removal_window: config.safety.removal_window,
        ledger_namespace: config.safety.namespace.clone(),
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
            Action::Suspended { reason } => (Sync::Suspended, Some(reason.clone())),
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
        // A suspended app's spec is not what berth holds it to: the live count is.
        let desired = app
            .filter(|_| sync != Sync::Suspended)
            .and_then(|a| a.replicas.count());
        let status = AppStatus::from_live(
            &plan.namespace,
            &plan.name,
            sync,
            sts.as_ref(),
            desired,
            error,
        );
        out.push(with_health(status, sts.as_ref()));
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
    changes.iter().filter(|c| c.live).any(|c| {
        let want = desired.iter().find(|v| {
            v.get("kind").and_then(Value::as_str) == Some(c.object.kind.as_str())
                && v.pointer("/metadata/name").and_then(Value::as_str)
                    == Some(c.object.name.as_str())
        });
        let applied = live
            .objects
            .iter()
            .find(|o| o.kind.to_string() == c.object.kind && o.name == c.object.name)
            .and_then(|o| {
                o.object()
                    .annotations()
                    .get(FINGERPRINT_ANNOTATION)
                    .cloned()
            });
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
            text.contains("ns/db  in-sync  healthy  3/3    up to date (abc)  0123456789ab  -"),
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
        assert!(render_text(&[s]).contains("ns/db  pending  missing  0/2    -"));
    }

    #[test]
    fn a_degraded_apps_reason_is_its_last_error_unless_berth_has_one() {
        let live = sts(json!({"observedGeneration": 2, "readyReplicas": 2,
            "updatedReplicas": 3, "currentRevision": "db-a", "updateRevision": "db-a"}));
        let degraded = Health {
            state: State::Degraded,
            reason: Some("pod db-2: container mysql: CrashLoopBackOff".into()),
            may_clear: false,
        };
        let s = AppStatus::from_live("ns", "db", Sync::InSync, Some(&live), Some(3), None)
            .with_health(degraded.clone());
        assert!(!all_healthy(std::slice::from_ref(&s)));
        let text = render_text(&[s]);
        assert!(
            text.contains("in-sync  degraded  2/3")
                && text
                    .trim_end()
                    .ends_with("  pod db-2: container mysql: CrashLoopBackOff"),
            "{text}"
        );
        let s = AppStatus::from_live(
            "ns",
            "db",
            Sync::Blocked,
            Some(&live),
            Some(3),
            Some("immutable field changed".into()),
        )
        .with_health(degraded);
        assert!(
            render_text(&[s])
                .trim_end()
                .ends_with("immutable field changed")
        );
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
        assert_eq!(v["apps"][0]["health"]["state"], "missing");
        assert_eq!(v["apps"][0]["desired"], 1);
        assert_eq!(v["ok"], false);
    }
}
