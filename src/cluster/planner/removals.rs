//! The removal side of a plan: the owned apps whose spec is gone, what
//! [`removals::decide`] makes of each (remove, hold, or protect), and recording that decision
//! in the removal ledger before anything is executed.

use kube::ResourceExt;
use serde_json::Value;

use super::{PlanOptions, Planned, Work};
use crate::cluster::inventory::{Inventory, LiveApp};
use crate::cluster::ledger::unix_now;
use crate::cluster::{Cluster, ClusterError, Kind};
use crate::labels::REMOVING_ANNOTATION;
use crate::plan::removals;
use crate::plan::{Action, AppPlan, ObjectChange, ObjectRef, normalize};
use crate::render::source_value;
use crate::spec::{App, AppKey, Loaded};

impl Cluster {
    /// The live apps without a spec: what [`removals::decide`] makes of each, over the whole
    /// directory and inventory (so planning one app at a time cannot slip past a rule), with
    /// plans for those in scope. The ledger is read only when some app has no spec.
    pub(super) async fn plan_removals(
        &self,
        loaded: &Loaded,
        inventory: &Inventory,
        options: &PlanOptions,
        in_scope: &(dyn Fn(&AppKey) -> bool + Sync),
        planned: &mut Planned,
    ) -> Result<(), ClusterError> {
        // Each live app is looked up in the directory by key: the daemon plans one app at a
        // time from an inventory of that app alone, so this costs O(its app), where a set of
        // every desired app per reconcile cost O(apps). The whole directory is read below only
        // when some app's spec is gone and the removal rules need it.
        let mut gone_apps: Vec<(&AppKey, &LiveApp)> = inventory
            .apps
            .iter()
            .filter(|(key, _)| loaded.app_of(key).is_none())
            .collect();
        // A suspended app whose spec is gone is not removed, and counts neither against the
        // budget nor as a move: the incident comes first, the removal is judged after resume.
        gone_apps.retain(|(key, live)| match super::app::suspended_live(live) {
            None => true,
            Some(reason) => {
                if in_scope(key) {
                    planned.plan.apps.push(AppPlan {
                        namespace: live.namespace.clone(),
                        name: live.name.clone(),
                        action: Action::Suspended { reason },
                        summary: Vec::new(),
                        changes: Vec::new(),
                        retained_pvcs: Vec::new(),
                    });
                }
                false
            }
        });
        let gone: Vec<removals::Gone> = gone_apps
            .into_iter()
            .map(|(_, live)| removals::Gone {
                namespace: live.namespace.clone(),
                name: live.name.clone(),
                source: live.source.clone(),
                removing: live
                    .statefulset()
                    .is_some_and(|s| s.annotations().contains_key(REMOVING_ANNOTATION)),
                objects: live
                    .objects
                    .iter()
                    .map(|o| (o.kind.to_string(), o.name.clone()))
                    .collect(),
            })
            .collect();
        planned.policy = removals::Policy {
            max_removals: options.max_removals,
            window_secs: options.removal_window.as_secs(),
            allow_removals: options.allow_removals,
            allow_empty: options.allow_empty,
        };
        planned.ledger_namespace = options.ledger_namespace.clone();
        // With nothing to remove there is nothing to decide, except that holds of apps whose
        // spec came back end. A one-shot run reads the ledger for that (one request); the
        // daemon, which plans an app at a time, releases the holds it saw itself.
        if gone.is_empty() && options.live_from_cache {
            return Ok(());
        }
        let ledger = self.read_ledger(&options.ledger_namespace).await?;
        let now = unix_now();
        let wanted: Vec<removals::Wanted> = loaded
            .apps
            .iter()
            .map(|app| {
                let key = AppKey::new(app.namespace.clone(), app.name.clone());
                removals::Wanted {
                    namespace: app.namespace.clone(),
                    name: app.name.clone(),
                    source: source_value(&app.source_path),
                    objects: object_names(app),
                    appearing: options.arrivals.contains(&key)
                        || !inventory.apps.contains_key(&key),
                }
            })
            .collect();
        let broken_files: Vec<removals::BrokenFile> = loaded
            .broken
            .iter()
            .map(|b| removals::BrokenFile {
                source: source_value(&b.source_path),
                name: b.name.clone(),
                namespace: b.namespace.clone(),
                shown: b.path.display().to_string(),
            })
            .collect();
        let broken_dirs: Vec<String> = loaded
            .broken_dirs
            .iter()
            .map(|d| source_value(&d.source_path))
            .collect();
        let decision = removals::decide(&removals::Inputs {
            wanted: &wanted,
            gone: &gone,
            broken_files: &broken_files,
            broken_dirs: &broken_dirs,
            spec_files: loaded.files,
            ledger: &ledger,
            now,
            policy: &planned.policy,
        });
        for (key, verdict) in decision.verdicts {
            let Some(live) = inventory.apps.get(&key) else {
                continue;
            };
            if !in_scope(&key) {
                continue;
            }
            let mut app_plan = AppPlan {
                namespace: live.namespace.clone(),
                name: live.name.clone(),
                action: Action::Remove,
                summary: Vec::new(),
                changes: Vec::new(),
                retained_pvcs: Vec::new(),
            };
            match verdict {
                removals::Verdict::Protected { reason } => {
                    app_plan.action = Action::Blocked {
                        reason,
                        destructive: false,
                    };
                }
                removals::Verdict::Held { reason } => {
                    app_plan.action = Action::Held { reason };
                    app_plan.retained_pvcs = Vec::new();
                }
                removals::Verdict::Remove { released } => {
                    if let Some(was) = released {
                        app_plan
                            .summary
                            .push(format!("hold released by --allow-removals (it {was})"));
                    }
                    app_plan.summary.extend(removal_summary(live));
                    app_plan.retained_pvcs = self.retained_pvcs(live).await?;
                    for object in &live.objects {
                        app_plan.changes.push(ObjectChange::new(
                            ObjectRef {
                                kind: object.kind.to_string(),
                                namespace: live.namespace.clone(),
                                name: object.name.clone(),
                            },
                            Some(&normalize(&object.json())),
                            None,
                        ));
                    }
                    planned
                        .work
                        .insert(key.clone(), Work::Remove { live: live.clone() });
                }
            }
            planned.plan.apps.push(app_plan);
        }
        planned.plan.refusals.extend(decision.refusals);
        planned.ledger_change = decision.ledger;
        planned.now = now;
        Ok(())
    }
}

/// The objects an app writes, as `(kind, name)`: what no other app's removal may take.
fn object_names(app: &App) -> Vec<(String, String)> {
    let mut names = vec![
        (Kind::StatefulSet.to_string(), app.name.clone()),
        (Kind::Service.to_string(), app.headless.clone()),
    ];
    for service in app.access_services() {
        names.push((Kind::Service.to_string(), service.name.clone()));
    }
    if app.disruption_budget.is_some() {
        names.push((Kind::PodDisruptionBudget.to_string(), app.name.clone()));
    }
    names
}

impl Cluster {
    /// Records what the plan decided in the removal ledger: its holds and releases always, the
    /// removals it starts only with `starting` (when they are about to be carried out). Called
    /// before anything is executed, so a removal is counted before its first write.
    pub async fn record(&self, planned: &Planned, starting: bool) -> Result<(), ClusterError> {
        let change = if starting {
            planned.ledger_change.clone()
        } else {
            planned.ledger_change.holds_only()
        };
        self.record_ledger(
            &planned.ledger_namespace,
            &change,
            &planned.policy,
            planned.now,
        )
        .await
    }
}

fn removal_summary(live: &LiveApp) -> Vec<String> {
    let Some(sts) = live.statefulset() else {
        return vec!["spec removed: delete what is left of the app".to_string()];
    };
    // A marked StatefulSet is a removal already under way (this run's or an interrupted one):
    // say so, with the replica count it had, rather than "scale 0 → 0".
    if let Some(before) = sts.annotations().get(REMOVING_ANNOTATION) {
        return vec![format!(
            "removal in progress (had {before} replica(s)): wait for the pods to stop, then delete"
        )];
    }
    let replicas = sts
        .data
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    vec![format!(
        "spec removed: scale {replicas} → 0, wait for the pods to stop, then delete"
    )]
}
