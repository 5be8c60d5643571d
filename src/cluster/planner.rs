//! Plans per app: render, check ownership and immutable fields, then compare a server-side
//! dry-run apply with the live objects. Removals come from the inventory: owned apps whose spec
//! is gone, unless their spec is merely broken.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::Value;
use tokio::sync::OnceCell;

use super::inventory::{Inventory, LiveApp};
use super::ledger::unix_now;
use super::{Cluster, ClusterError, FIELD_MANAGER, Kind};
use crate::labels::{FINGERPRINT_ANNOTATION, NAME_LABEL, REMOVING_ANNOTATION, RESTART_MARK};
use crate::plan::{
    Action, AppPlan, ObjectChange, ObjectRef, Plan, contained_in, fingerprint, immutable_changes,
    normalize, summarize,
};
use crate::plan::{recreate, removals};
use crate::render::{RenderContext, render_app, source_value};
use crate::spec::{App, Loaded};

/// From this many apps without owned objects in one namespace, the planner lists the names of
/// that namespace's objects once per kind instead of reading each missing object on its own.
const PREFETCH_MIN_APPS: usize = 4;

/// What the operator allowed for this run (flags and config).
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Recreate StatefulSets whose immutable fields change (per app also `allow_recreate = true`).
    pub allow_recreate: bool,
    /// Also recreate when claims are left behind (per app also `abandon_claims = true`).
    pub abandon_claims: bool,
    /// Go past `max_removals`.
    pub allow_removals: bool,
    /// Treat an empty spec directory as "remove every app".
    pub allow_empty: bool,
    /// The most removals started per `removal_window` without `allow_removals`.
    pub max_removals: usize,
    pub removal_window: std::time::Duration,
    /// Where the removal ledger lives (`safety.namespace`).
    pub ledger_namespace: String,
    /// Apps that appeared in the same change of the directory as the apps that went: a move
    /// is told by these even once the new app has been created (the daemon creates it while
    /// the old one is still being looked at).
    pub arrivals: BTreeSet<(String, String)>,
    /// The config repo's commit, recorded on written objects.
    pub commit: Option<String>,
    /// Apps planned, and later converged, at the same time (at least 1).
    pub concurrency: usize,
    /// The inventory comes from the daemon's watch caches, which can lag behind berth's own
    /// last writes: an app that looks changed is read again from the server before anything
    /// is decided (otherwise the echo of a converge would be taken for drift, and re-applied).
    pub live_from_cache: bool,
}

impl PlanOptions {
    /// Apps planned (and then converged) at the same time when nothing else is said: enough to
    /// keep the API server busy across a fleet, few enough not to crowd out its other clients.
    pub const DEFAULT_CONCURRENCY: usize = 16;
}

impl Default for PlanOptions {
    fn default() -> PlanOptions {
        PlanOptions {
            allow_recreate: false,
            abandon_claims: false,
            allow_removals: false,
            allow_empty: false,
            max_removals: 0,
            removal_window: std::time::Duration::from_secs(3600),
            ledger_namespace: "default".to_string(),
            arrivals: BTreeSet::new(),
            commit: None,
            concurrency: PlanOptions::DEFAULT_CONCURRENCY,
            live_from_cache: false,
        }
    }
}

/// A plan and the work behind it.
#[derive(Debug, Clone, Default)]
pub struct Planned {
    pub plan: Plan,
    pub(crate) work: BTreeMap<(String, String), Work>,
    /// Apps converged at the same time when this plan is executed.
    pub(crate) concurrency: usize,
    /// Holds, releases and removal starts to record in the ledger (see [`Cluster::record`]).
    pub ledger_change: removals::LedgerChange,
    pub(crate) ledger_namespace: String,
    pub(crate) policy: removals::Policy,
    /// When the plan was decided (Unix seconds).
    pub(crate) now: u64,
}

/// What executing an app's plan does.
#[derive(Debug, Clone)]
pub(crate) enum Work {
    /// Server-side apply these objects (only the changed ones), then delete stale owned objects.
    Apply {
        objects: Vec<(Kind, Value)>,
        delete: Vec<(Kind, DynamicObject)>,
        /// The StatefulSet carries the removal mark: the spec is back, so drop the mark.
        cancel_removal: bool,
        /// Pods carry the restart mark of a recreate cut short: restart them one at a time.
        restart_marked: bool,
    },
    /// Delete the StatefulSet orphaning its pods, create it anew, expand PVCs, maybe restart pods.
    Recreate {
        objects: Vec<(Kind, Value)>,
        delete: Vec<(Kind, DynamicObject)>,
        live_statefulset: Box<DynamicObject>,
        expand: Vec<(String, String)>,
        /// The pods must change (a new headless name): mark every one for a restart.
        mark_pods: bool,
        /// Restart the marked pods once the StatefulSet is back: those just marked, and any an
        /// earlier recreate left marked.
        restart_marked: bool,
    },
    /// The ordered removal protocol.
    Remove { live: LiveApp },
}

/// Kind of a rendered object, from its `kind` field.
fn kind_of(value: &Value) -> Option<Kind> {
    value
        .get("kind")
        .and_then(Value::as_str)
        .and_then(Kind::from_name)
}

fn name_of(value: &Value) -> String {
    value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn to_json(object: &DynamicObject) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

/// A live object as JSON with its apiVersion and kind, which list responses leave out of items.
fn live_json(kind: Kind, object: &DynamicObject) -> Value {
    let mut value = to_json(object);
    if let Some(map) = value.as_object_mut() {
        let resource = kind.resource();
        map.insert("apiVersion".into(), Value::String(resource.api_version));
        map.insert("kind".into(), Value::String(resource.kind));
    }
    value
}

impl Cluster {
    pub async fn plan(
        &self,
        loaded: &Loaded,
        options: &PlanOptions,
    ) -> Result<Planned, ClusterError> {
        let inventory = self.inventory().await?;
        self.plan_with(loaded, &inventory, options).await
    }

    pub async fn plan_with(
        &self,
        loaded: &Loaded,
        inventory: &Inventory,
        options: &PlanOptions,
    ) -> Result<Planned, ClusterError> {
        self.plan_scoped(loaded, inventory, options, None).await
    }

    /// Plans the apps in `scope` (all when None). Removal limits are still decided over the
    /// whole directory and inventory, so planning one app at a time cannot slip past them.
    pub async fn plan_scoped(
        &self,
        loaded: &Loaded,
        inventory: &Inventory,
        options: &PlanOptions,
        scope: Option<&BTreeSet<(String, String)>>,
    ) -> Result<Planned, ClusterError> {
        let in_scope = |key: &(String, String)| scope.is_none_or(|s| s.contains(key));
        let app_in_scope = |app: &App| {
            scope.is_none_or(|s| {
                s.iter()
                    .any(|(ns, n)| *ns == app.namespace && *n == app.name)
            })
        };
        let concurrency = options.concurrency.max(1);
        let mut planned = Planned {
            concurrency,
            ..Planned::default()
        };
        let apps: Vec<&App> = loaded.apps.iter().filter(|a| app_in_scope(a)).collect();
        let lookups = Lookups {
            existing: self.prefetch_names(&apps, inventory, concurrency).await?,
            namespaces: Mutex::default(),
            restarts: self.marked_pods(&apps, inventory, concurrency).await?,
        };
        // Apps are independent: plan them concurrently, then take the results in app order so
        // the outcome (and which error wins) does not depend on timing.
        // (Futures built in a loop, not a closure: a closure's inferred lifetimes make the
        // daemon's spawned worker fail the `Send` check.)
        let lookups = &lookups;
        let mut pending = Vec::with_capacity(apps.len());
        for (i, app) in apps.iter().enumerate() {
            let owned = inventory
                .apps
                .get(&(app.namespace.clone(), app.name.clone()));
            pending.push(async move { (i, self.plan_app(app, owned, options, lookups).await) });
        }
        let mut results: Vec<_> = futures::stream::iter(pending)
            .buffer_unordered(concurrency)
            .collect()
            .await;
        results.sort_by_key(|(i, _)| *i);
        for ((_, result), app) in results.into_iter().zip(&apps) {
            let key = (app.namespace.clone(), app.name.clone());
            let (app_plan, work) = match result {
                Ok(planned) => planned,
                Err(ClusterError::DryRun {
                    source: kube::Error::Api(e),
                    ..
                }) if e.code == 404 => (namespace_missing(app), None),
                Err(e) => return Err(e),
            };
            planned.plan.apps.push(app_plan);
            if let Some(work) = work {
                planned.work.insert(key, work);
            }
        }

        self.plan_removals(loaded, inventory, options, &in_scope, &mut planned)
            .await?;
        planned
            .plan
            .apps
            .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Ok(planned)
    }

    /// The live apps without a spec: what [`removals::decide`] makes of each, over the whole
    /// directory and inventory (so planning one app at a time cannot slip past a rule), with
    /// plans for those in scope. The ledger is read only when some app has no spec.
    async fn plan_removals(
        &self,
        loaded: &Loaded,
        inventory: &Inventory,
        options: &PlanOptions,
        in_scope: &(dyn Fn(&(String, String)) -> bool + Sync),
        planned: &mut Planned,
    ) -> Result<(), ClusterError> {
        // Borrowed keys: the daemon plans one app at a time over the whole directory, and
        // copying every name for each plan showed in its first-sync profile.
        let desired: HashSet<(&str, &str)> = loaded
            .apps
            .iter()
            .map(|a| (a.namespace.as_str(), a.name.as_str()))
            .collect();
        let gone: Vec<removals::Gone> = inventory
            .apps
            .iter()
            .filter(|(key, _)| !desired.contains(&(key.0.as_str(), key.1.as_str())))
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
                    .map(|(kind, o)| (kind.to_string(), o.name_any()))
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
                let key = (app.namespace.clone(), app.name.clone());
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
                    for (kind, object) in &live.objects {
                        app_plan.changes.push(ObjectChange::new(
                            ObjectRef {
                                kind: kind.to_string(),
                                namespace: live.namespace.clone(),
                                name: object.name_any(),
                            },
                            Some(normalize(&live_json(*kind, object))),
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

    async fn plan_app(
        &self,
        app: &App,
        owned: Option<&LiveApp>,
        options: &PlanOptions,
        lookups: &Lookups,
    ) -> Result<(AppPlan, Option<Work>), ClusterError> {
        let ns = app.namespace.clone();
        let ctx = RenderContext::new(&self.instance, app).with_commit(options.commit.clone());
        let rendered = render_app(app, &ctx);
        let desired: Vec<(Kind, Value)> = rendered
            .to_values()
            .into_iter()
            .filter_map(|v| kind_of(&v).map(|k| (k, stamp_fingerprint(v))))
            .collect();
        let mut app_plan = AppPlan {
            namespace: ns.clone(),
            name: app.name.clone(),
            action: Action::Unchanged,
            summary: Vec::new(),
            changes: Vec::new(),
            retained_pvcs: Vec::new(),
        };
        let blocked = |mut p: AppPlan, reason: String, destructive: bool| {
            p.action = Action::Blocked {
                reason,
                destructive,
            };
            (p, None)
        };

        // The live object of each desired one: from the inventory when berth owns it, else a
        // direct read, which also finds same-name objects that are not berth's. A prefetched
        // name list that lacks the name proves there is nothing to read.
        let cached: Vec<Option<DynamicObject>> = desired
            .iter()
            .map(|(kind, want)| {
                let name = name_of(want);
                owned
                    .and_then(|o| {
                        o.objects
                            .iter()
                            .find(|(k, obj)| k == kind && obj.name_any() == name)
                    })
                    .map(|(_, obj)| obj.clone())
            })
            .collect();
        // A cache is trusted only to say "nothing to do": anything else is decided on what the
        // server has now.
        let reread = options.live_from_cache
            && desired.iter().zip(&cached).any(|((kind, want), c)| {
                c.as_ref()
                    .is_none_or(|c| !in_sync(&live_json(*kind, c), want))
            });
        let mut live: Vec<Option<DynamicObject>> = Vec::new();
        for ((kind, want), cached) in desired.iter().zip(cached) {
            let name = name_of(want);
            let found = match cached {
                Some(obj) if !reread => Some(obj),
                None if lookups.absent(*kind, &ns, &name) => None,
                _ => self.get(*kind, &ns, &name).await?,
            };
            if let Some(obj) = &found
                && !self.owns(obj)
                && !app.adopt
            {
                return Ok(blocked(
                    app_plan,
                    format!(
                        "{kind} {ns}/{name} exists and is not managed by this berth instance \
                         ({}); berth leaves it alone. Set `adopt = true` in {} to take it over, \
                         or give the app another name",
                        self.instance,
                        app.source_path.display()
                    ),
                    false,
                ));
            }
            live.push(found);
        }
        let delete: Vec<(Kind, DynamicObject)> = owned
            .map(|o| {
                o.objects
                    .iter()
                    .filter(|(k, obj)| {
                        !desired
                            .iter()
                            .any(|(dk, dv)| dk == k && name_of(dv) == obj.name_any())
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();

        let live_sts = desired
            .iter()
            .zip(&live)
            .find(|((k, _), _)| *k == Kind::StatefulSet)
            .and_then(|(_, l)| l.clone());
        let cancel_removal = live_sts
            .as_ref()
            .is_some_and(|s| s.annotations().contains_key(REMOVING_ANNOTATION));

        // Immutable StatefulSet fields: decided before anything is sent.
        let mut recreate = None;
        if let (Some(live_sts), Some((_, want_sts))) = (
            &live_sts,
            desired.iter().find(|(k, _)| *k == Kind::StatefulSet),
        ) {
            let live_set = recreate::LiveSet {
                name: &live_sts.name_any(),
                replicas: live_sts
                    .data
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(0),
            };
            let allowed = recreate::Allowed {
                recreate: app.allow_recreate || options.allow_recreate,
                abandon_claims: app.abandon_claims || options.abandon_claims,
            };
            let changes = immutable_changes(&to_json(live_sts), want_sts);
            match recreate::gate(changes, live_set, allowed, &app.source_path) {
                recreate::Gate::InPlace => {}
                recreate::Gate::Blocked { reason } => return Ok(blocked(app_plan, reason, true)),
                recreate::Gate::Recreate {
                    reasons,
                    expand,
                    restart_pods,
                    abandoned,
                } => {
                    if !abandoned.is_empty() {
                        app_plan.summary.push(format!(
                            "claims left behind (kept, no longer mounted): {}",
                            abandoned.join(", ")
                        ));
                    }
                    recreate = Some((reasons, expand, restart_pods, live_sts.clone()));
                }
            }
        }

        let mut changed_objects = Vec::new();
        for ((kind, want), live_obj) in desired.iter().zip(&live) {
            let name = name_of(want);
            let is_recreated = recreate.is_some() && *kind == Kind::StatefulSet;
            let must_write = is_recreated || (cancel_removal && *kind == Kind::StatefulSet);
            // Same fingerprint and every field in place: applying would change nothing, so no
            // dry-run is needed to prove it (no request at all for this object).
            if !must_write
                && let Some(l) = live_obj
                && in_sync(&live_json(*kind, l), want)
            {
                continue;
            }
            let before = live_obj.as_ref().map(|o| normalize(&live_json(*kind, o)));
            // A recreated StatefulSet cannot be dry-run as an update (the server refuses the
            // immutable change), so its rendered form stands in for the server's. So does a
            // new object: with nothing live there is no drift to hide, and the server's
            // defaults would only lengthen the diff. The one thing the dry-run of a create
            // tells is whether the namespace exists; one dry-run per namespace and plan asks
            // that (a plain 404 here becomes "blocked: namespace does not exist").
            let after = if recreate.is_some() && *kind == Kind::StatefulSet {
                normalize(want)
            } else if live_obj.is_none() {
                lookups
                    .check_namespace(self, *kind, &ns, &name, want)
                    .await?;
                normalize(want)
            } else {
                normalize(&self.dry_run(*kind, &ns, &name, want).await?)
            };
            let change = ObjectChange::new(
                ObjectRef {
                    kind: kind.to_string(),
                    namespace: ns.clone(),
                    name: name.clone(),
                },
                before.clone(),
                Some(after.clone()),
            );
            if change.changed() || (cancel_removal && *kind == Kind::StatefulSet) {
                if before.is_some() {
                    app_plan.summary.extend(summarize(
                        &kind.to_string(),
                        before.as_ref(),
                        Some(&after),
                    ));
                }
                changed_objects.push((*kind, want.clone()));
            }
            if change.changed() {
                app_plan.changes.push(change);
            }
        }
        for (kind, object) in &delete {
            app_plan.summary.push(format!(
                "{kind}/{} is no longer in the spec: deleted",
                object.name_any()
            ));
            app_plan.changes.push(ObjectChange::new(
                ObjectRef {
                    kind: kind.to_string(),
                    namespace: ns.clone(),
                    name: object.name_any(),
                },
                Some(normalize(&live_json(*kind, object))),
                None,
            ));
        }
        if cancel_removal {
            app_plan
                .summary
                .insert(0, "removal cancelled: the spec is back".to_string());
        }
        // Pods a recreate cut short left to restart: the StatefulSet says so, or it is missing
        // (the recreate stopped between deleting and creating it) and marked pods remain.
        let marked_pods = lookups
            .restarts
            .get(&(ns.clone(), app.name.clone()))
            .filter(|pods| !pods.is_empty());
        let restart_pending = live_sts
            .as_ref()
            .is_some_and(|s| s.annotations().contains_key(RESTART_MARK));
        let marked = (restart_pending || (live_sts.is_none() && marked_pods.is_some()))
            .then(|| marked_pods.cloned().unwrap_or_default());
        match &marked {
            Some(pods) if !pods.is_empty() => app_plan.summary.push(format!(
                "restart {} pod(s) one at a time, left marked by a recreate that was cut short: {}",
                pods.len(),
                pods.join(", ")
            )),
            Some(_) => app_plan
                .summary
                .push("finish a recreate that was cut short (clear its mark)".to_string()),
            None => {}
        }
        if marked.is_some() && live_sts.is_none() {
            // Created with the mark, so a crash before the restarts are done leaves it to see.
            for (kind, object) in changed_objects.iter_mut() {
                if *kind == Kind::StatefulSet {
                    mark_restart_pending(object);
                }
            }
        }

        let work = if let Some((reasons, expand, mark_pods, live_statefulset)) = recreate {
            app_plan.action = Action::Recreate { reasons };
            Some(Work::Recreate {
                objects: changed_objects,
                delete,
                live_statefulset: Box::new(live_statefulset),
                expand,
                mark_pods,
                restart_marked: mark_pods || marked.is_some(),
            })
        } else if changed_objects.is_empty() && delete.is_empty() && marked.is_none() {
            app_plan.action = Action::Unchanged;
            None
        } else {
            app_plan.action = if live_sts.is_none() {
                Action::Create
            } else {
                Action::Update
            };
            if live_sts.is_none() {
                app_plan.summary.insert(
                    0,
                    format!(
                        "new app: {} replica(s), {}",
                        app.replicas,
                        app.containers
                            .iter()
                            .map(|c| c.image.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
            Some(Work::Apply {
                objects: changed_objects,
                delete,
                cancel_removal,
                restart_marked: marked.is_some(),
            })
        };
        Ok((app_plan, work))
    }

    pub(crate) async fn get(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<DynamicObject>, ClusterError> {
        kind.api(&self.client, namespace)
            .get_opt(name)
            .await
            .map_err(|source| ClusterError::Get {
                kind,
                namespace: namespace.to_string(),
                name: name.to_string(),
                source,
            })
    }

    /// The object as the server would store it after berth's apply, without storing it.
    async fn dry_run(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        want: &Value,
    ) -> Result<Value, ClusterError> {
        let params = PatchParams::apply(FIELD_MANAGER).force().dry_run();
        kind.api(&self.client, namespace)
            .patch(name, &params, &Patch::Apply(want))
            .await
            .map(|o| to_json(&o))
            .map_err(|source| ClusterError::DryRun {
                kind,
                namespace: namespace.to_string(),
                name: name.to_string(),
                source,
            })
    }
}

/// The objects an app writes, as `(kind, name)`: what no other app's removal may take.
fn object_names(app: &App) -> Vec<(String, String)> {
    let mut names = vec![
        (Kind::StatefulSet.to_string(), app.name.clone()),
        (Kind::Service.to_string(), app.headless.clone()),
    ];
    if let Some(service) = &app.service {
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

/// The plan of an app whose namespace does not exist.
fn namespace_missing(app: &App) -> AppPlan {
    AppPlan {
        namespace: app.namespace.clone(),
        name: app.name.clone(),
        action: Action::Blocked {
            reason: format!(
                "namespace {} does not exist; berth does not create namespaces (create it, or \
                 set `namespace` in {})",
                app.namespace,
                app.source_path.display()
            ),
            destructive: false,
        },
        summary: Vec::new(),
        changes: Vec::new(),
        retained_pvcs: Vec::new(),
    }
}

/// What one plan learns once and shares between its apps.
struct Lookups {
    /// Names of the objects of a kind in a namespace, listed up front where many apps are new.
    existing: HashMap<(Kind, String), HashSet<String>>,
    /// Per namespace, whether it exists: settled by the first dry-run create planned in it.
    namespaces: Mutex<HashMap<String, Arc<OnceCell<()>>>>,
    /// `(namespace, app)` → its pods that carry the restart mark of an unfinished recreate.
    restarts: HashMap<(String, String), Vec<String>>,
}

impl Lookups {
    /// True when a prefetched list proves no object of this kind and name exists.
    fn absent(&self, kind: Kind, namespace: &str, name: &str) -> bool {
        self.existing
            .get(&(kind, namespace.to_string()))
            .is_some_and(|names| !names.contains(name))
    }

    /// Dry-runs this create unless another create in the namespace already showed that the
    /// namespace exists. A missing namespace comes back as the dry-run's 404 every time (it is
    /// not cached), so each app of that namespace is blocked the same way.
    async fn check_namespace(
        &self,
        cluster: &Cluster,
        kind: Kind,
        namespace: &str,
        name: &str,
        want: &Value,
    ) -> Result<(), ClusterError> {
        let cell = self
            .namespaces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(namespace.to_string())
            .or_default()
            .clone();
        cell.get_or_try_init(|| async {
            cluster
                .dry_run(kind, namespace, name, want)
                .await
                .map(|_| ())
        })
        .await?;
        Ok(())
    }
}

impl Cluster {
    /// Lists object names (metadata only) per kind in each namespace where at least
    /// [`PREFETCH_MIN_APPS`] of the planned apps own nothing yet: three lists instead of a read
    /// per new object. Only names are needed: a listed name is still read in full.
    async fn prefetch_names(
        &self,
        apps: &[&App],
        inventory: &Inventory,
        concurrency: usize,
    ) -> Result<HashMap<(Kind, String), HashSet<String>>, ClusterError> {
        let mut new_apps: BTreeMap<&str, usize> = BTreeMap::new();
        for app in apps {
            let key = (app.namespace.clone(), app.name.clone());
            if inventory
                .apps
                .get(&key)
                .is_none_or(|o| o.objects.is_empty())
            {
                *new_apps.entry(app.namespace.as_str()).or_default() += 1;
            }
        }
        let mut lists = Vec::new();
        for (ns, count) in new_apps {
            if count < PREFETCH_MIN_APPS {
                continue;
            }
            for kind in Kind::ALL {
                lists.push(async move {
                    let list = kind
                        .api(&self.client, ns)
                        .list_metadata(&ListParams::default())
                        .await
                        .map_err(|source| ClusterError::Get {
                            kind,
                            namespace: ns.to_string(),
                            name: "(all names)".to_string(),
                            source,
                        })?;
                    let names: HashSet<String> = list.items.iter().map(|o| o.name_any()).collect();
                    Ok::<_, ClusterError>(((kind, ns.to_string()), names))
                });
            }
        }
        futures::stream::iter(lists)
            .buffer_unordered(concurrency)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }
}

impl Cluster {
    /// Pods that a recreate marked for a restart and that still wait for it, by app: one list
    /// (metadata only, by the mark's label) per namespace where a planned app has no
    /// StatefulSet (a recreate may have stopped between deleting and creating it) or one with
    /// [`RESTART_MARK`]. Nowhere else: the daemon plans one app per change, and a list
    /// per plan would cost the fleet a request per reconcile.
    async fn marked_pods(
        &self,
        apps: &[&App],
        inventory: &Inventory,
        concurrency: usize,
    ) -> Result<HashMap<(String, String), Vec<String>>, ClusterError> {
        let namespaces: BTreeSet<&str> = apps
            .iter()
            .filter(|app| {
                let sts = inventory
                    .apps
                    .get(&(app.namespace.clone(), app.name.clone()))
                    .and_then(LiveApp::statefulset);
                sts.is_none_or(|s| s.annotations().contains_key(RESTART_MARK))
            })
            .map(|a| a.namespace.as_str())
            .collect();
        let selector = format!("{RESTART_MARK}={}", self.instance);
        // (Futures built in a loop, not a closure: see `plan_scoped`.)
        let mut lists = Vec::new();
        for ns in namespaces {
            let selector = &selector;
            lists.push(async move {
                let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
                pods.list_metadata(&ListParams::default().labels(selector))
                    .await
                    .map_err(|source| ClusterError::List {
                        what: "pods marked for a restart",
                        namespace: ns.to_string(),
                        source,
                    })
            });
        }
        let mut marked: HashMap<(String, String), Vec<String>> = HashMap::new();
        for list in futures::stream::iter(lists)
            .buffer_unordered(concurrency)
            .collect::<Vec<_>>()
            .await
        {
            for pod in list?.items {
                if let (Some(ns), Some(app)) =
                    (pod.namespace(), pod.labels().get(NAME_LABEL).cloned())
                {
                    marked.entry((ns, app)).or_default().push(pod.name_any());
                }
            }
        }
        for pods in marked.values_mut() {
            pods.sort();
        }
        Ok(marked)
    }
}

/// Adds [`RESTART_MARK`] to a rendered StatefulSet.
pub(crate) fn mark_restart_pending(statefulset: &mut Value) {
    if let Some(metadata) = statefulset
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
    {
        let annotations = metadata
            .entry("annotations")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(map) = annotations.as_object_mut() {
            map.insert(RESTART_MARK.to_string(), Value::from("true"));
        }
    }
}

/// Records the object's fingerprint on it, so a later plan can tell "unchanged" without asking.
fn stamp_fingerprint(mut value: Value) -> Value {
    let print = fingerprint(&value);
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(map) = annotations.as_object_mut() {
            map.insert(FINGERPRINT_ANNOTATION.to_string(), Value::String(print));
        }
    }
    value
}

/// True when the live object was last applied from exactly this desired object (same
/// fingerprint) and still holds every field of it (nobody changed a field berth sets).
fn in_sync(live: &Value, want: &Value) -> bool {
    let print = |v: &Value| {
        v.pointer("/metadata/annotations")
            .and_then(|a| a.get(FINGERPRINT_ANNOTATION))
            .cloned()
    };
    print(live).is_some() && print(live) == print(want) && contained_in(want, live)
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
