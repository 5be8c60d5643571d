//! Plans per app. [`Cluster::plan_scoped`] is the entry; for each app in scope it goes:
//!
//! 1. render the spec into the objects berth would write (`app.rs`, with each object's
//!    fingerprint stamped on it);
//! 2. find the live object of each: from the inventory when berth owns it, else a read
//!    (`lookups.rs`), and block the app when a same-name object is not this instance's;
//! 3. gate immutable StatefulSet fields before anything is sent
//!    ([`crate::plan::recreate::gate`]): in place, recreate, or blocked;
//! 4. compare a server-side dry-run apply with the live object, skipping objects whose
//!    fingerprint and fields show nothing would change, and decide the app's action.
//!
//! Removals (`removals.rs`) come from the inventory: owned apps whose spec is gone, judged by
//! [`crate::plan::removals::decide`] over the whole directory, so a merely broken spec or a move
//! never deletes an app. What one plan reads once and shares between its apps (name lists,
//! marked pods, whether a namespace exists) lives in `lookups.rs`.

mod app;
mod lookups;
mod prepare;
mod removals;

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::DynamicObject;
use serde_json::Value;

use super::inventory::{Inventory, LiveApp};
use super::{Cluster, ClusterError, Kind};
use crate::plan::removals::{LedgerChange, Policy};
use crate::plan::{Action, AppPlan, Plan};
use crate::spec::{App, AppKey, Loaded};

/// The executor marks a StatefulSet it creates anew the same way a plan does.
pub(crate) use app::mark_restart_pending;

/// How long a plan waited on reads and on dry-runs: the daemon logs it with each converge, so
/// where an edit's time goes can be read from its log (`cargo xtask bench` does).
#[derive(Debug, Default, Clone, Copy)]
pub struct RequestTimes {
    /// Single-object reads (`get`).
    pub reads: Duration,
    /// Server-side dry-run applies.
    pub dry_runs: Duration,
}

/// Which clock a request adds to.
#[derive(Debug, Clone, Copy)]
enum Request {
    Read,
    DryRun,
}

tokio::task_local! {
    /// Set only while [`Cluster::plan_scoped_timed`] runs: other plans time nothing.
    static REQUEST_TIMES: Cell<RequestTimes>;
}

/// Runs `request`, adding its time to the plan's clock when the plan is timed.
async fn timed<T>(kind: Request, request: impl Future<Output = T>) -> T {
    let started = Instant::now();
    let result = request.await;
    let _ = REQUEST_TIMES.try_with(|times| {
        let mut t = times.get();
        match kind {
            Request::Read => t.reads += started.elapsed(),
            Request::DryRun => t.dry_runs += started.elapsed(),
        }
        times.set(t);
    });
    result
}

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
    pub arrivals: BTreeSet<AppKey>,
    /// The config repo's commit, recorded on written objects.
    pub commit: Option<String>,
    /// Apps planned, and later converged, at the same time (at least 1).
    pub concurrency: usize,
    /// The inventory comes from the daemon's watch caches, which can lag behind berth's own
    /// last writes: an app that looks changed is read again from the server before anything
    /// is decided (otherwise the echo of a converge would be taken for drift, and re-applied).
    pub live_from_cache: bool,
    /// With `live_from_cache`: the specs planned changed since they last converged (the daemon
    /// knows it from what it converged). A cached object that differs from what is wanted then
    /// stands for the live one without a read: it carries an older fingerprint because the spec
    /// changed, not because someone changed it, and the write that follows answers with what the
    /// server has. Without it a difference may be the cache lagging behind berth's own last
    /// write, and the app is read again (see `live_from_cache`).
    pub spec_changed: bool,
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
            spec_changed: false,
        }
    }
}

/// A plan and the work behind it.
#[derive(Debug, Clone, Default)]
pub struct Planned {
    pub plan: Plan,
    pub(crate) work: BTreeMap<AppKey, Work>,
    /// Apps converged at the same time when this plan is executed.
    pub(crate) concurrency: usize,
    /// Holds, releases and removal starts to record in the ledger (see [`Cluster::record`]).
    pub ledger_change: LedgerChange,
    pub(crate) ledger_namespace: String,
    pub(crate) policy: Policy,
    /// When the plan was decided (Unix seconds).
    pub(crate) now: u64,
}

impl Planned {
    /// The apps with work this run, with the apps each waits for: a staying app's `after` from
    /// its spec, a removal's from what its live objects recorded (its spec is gone).
    pub fn order_nodes(&self, loaded: &Loaded) -> BTreeMap<AppKey, crate::plan::order::Node> {
        self.work
            .iter()
            .map(|(key, work)| {
                let node = match work {
                    Work::Remove { live } => crate::plan::order::Node {
                        after: live
                            .statefulset()
                            .and_then(|s| {
                                kube::ResourceExt::annotations(&s)
                                    .get(crate::labels::AFTER_ANNOTATION)
                                    .cloned()
                            })
                            .map(|text| parse_after(&text))
                            .unwrap_or_default(),
                        removal: true,
                    },
                    _ => crate::plan::order::Node {
                        after: loaded
                            .app_of(key)
                            .map(|a| a.after.iter().map(|d| d.key()).collect())
                            .unwrap_or_default(),
                        removal: false,
                    },
                };
                (key.clone(), node)
            })
            .collect()
    }

    /// This plan with only the work of `keys`: one wave of an ordered apply.
    pub fn only(&self, keys: &[AppKey]) -> Planned {
        Planned {
            work: self
                .work
                .iter()
                .filter(|(k, _)| keys.contains(k))
                .map(|(k, w)| (k.clone(), w.clone()))
                .collect(),
            ..self.clone()
        }
    }
}

/// `ns/name,ns/name` as [`crate::labels::AFTER_ANNOTATION`] holds it.
fn parse_after(text: &str) -> Vec<AppKey> {
    text.split(',')
        .filter_map(|entry| entry.trim().split_once('/'))
        .map(|(ns, name)| AppKey::new(ns, name))
        .collect()
}

/// An object to apply, kept as the JSON text that is sent: a plan holds every changed object
/// until it is carried out, and a cold apply of 10,000 apps held 30,000 of them as trees.
#[derive(Debug, Clone)]
pub(crate) struct ToApply {
    pub(crate) kind: Kind,
    pub(crate) name: String,
    pub(crate) json: Box<serde_json::value::RawValue>,
}

impl ToApply {
    pub(crate) fn new(kind: Kind, object: &Value) -> ToApply {
        ToApply {
            kind,
            name: name_of(object),
            // A Value always serializes.
            json: serde_json::value::to_raw_value(object)
                .unwrap_or_else(|_| serde_json::value::RawValue::NULL.to_owned()),
        }
    }

    /// The object with [`crate::labels::RESTART_MARK`] added.
    pub(crate) fn marked_for_restart(&self) -> ToApply {
        let mut object: Value =
            serde_json::from_str(self.json.get()).expect("JSON berth wrote parses again");
        mark_restart_pending(&mut object);
        ToApply::new(self.kind, &object)
    }
}

/// What executing an app's plan does.
#[derive(Debug, Clone)]
pub(crate) enum Work {
    /// Server-side apply these objects (only the changed ones), then delete stale owned objects.
    Apply {
        objects: Vec<ToApply>,
        delete: Vec<(Kind, DynamicObject)>,
        /// The StatefulSet carries the removal mark: the spec is back, so drop the mark.
        cancel_removal: bool,
        /// Pods carry the restart mark of a recreate cut short: restart them one at a time.
        restart_marked: bool,
    },
    /// Delete the StatefulSet orphaning its pods, create it anew, expand PVCs, maybe restart pods.
    Recreate {
        objects: Vec<ToApply>,
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
    super::inventory::with_type(kind, to_json(object))
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

    /// [`Cluster::plan_scoped`], and how long its reads and dry-runs took.
    pub async fn plan_scoped_timed(
        &self,
        loaded: &Loaded,
        inventory: &Inventory,
        options: &PlanOptions,
        scope: Option<&BTreeSet<AppKey>>,
    ) -> (Result<Planned, ClusterError>, RequestTimes) {
        REQUEST_TIMES
            .scope(Cell::new(RequestTimes::default()), async {
                let planned = self.plan_scoped(loaded, inventory, options, scope).await;
                (planned, REQUEST_TIMES.with(Cell::get))
            })
            .await
    }

    /// Plans the apps in `scope` (all when None). Removal limits are still decided over the
    /// whole directory and inventory, so planning one app at a time cannot slip past them.
    pub async fn plan_scoped(
        &self,
        loaded: &Loaded,
        inventory: &Inventory,
        options: &PlanOptions,
        scope: Option<&BTreeSet<AppKey>>,
    ) -> Result<Planned, ClusterError> {
        let in_scope = |key: &AppKey| scope.is_none_or(|s| s.contains(key));
        let concurrency = options.concurrency.max(1);
        let mut planned = Planned {
            concurrency,
            ..Planned::default()
        };
        let apps = apps_in_scope(loaded, scope);
        let lookups = self.lookups(&apps, inventory, concurrency).await?;
        // Apps are independent: plan them concurrently, then take the results in app order so
        // the outcome (and which error wins) does not depend on timing.
        // (Futures built in a loop, not a closure: a closure's inferred lifetimes make the
        // daemon's spawned worker fail the `Send` check.)
        // Each plan's future is made when a slot frees, not all up front: one is several KiB,
        // and made for the whole fleet at once they were a tenth of a one-shot command's memory.
        // The CPU of a plan is prepared a batch of apps at a time on every core (`prepare.rs`);
        // this thread then goes on with requests and decisions.
        let lookups = &lookups;
        let apps_owned: Vec<(&App, Option<&LiveApp>)> = apps
            .iter()
            .map(|app| (*app, inventory.apps.get(&app.key())))
            .collect();
        let mut batches = apps_owned.chunks(prepare::PREPARE_BATCH);
        let mut ready = std::collections::VecDeque::new();
        let mut next = 0;
        let mut running = futures::stream::FuturesUnordered::new();
        let mut results = Vec::with_capacity(apps.len());
        loop {
            while running.len() < concurrency {
                if ready.is_empty()
                    && let Some(batch) = batches.next()
                {
                    ready.extend(batch.iter().zip(self.prepare_batch(batch, options)));
                }
                let Some((&(app, owned), prepared)) = ready.pop_front() else {
                    break;
                };
                let i = next;
                next += 1;
                running.push(async move {
                    let plan = self.plan_app(app, owned, prepared, options, lookups);
                    (i, plan.await)
                });
            }
            match running.next().await {
                Some(result) => results.push(result),
                None => break,
            }
        }
        results.sort_by_key(|(i, _)| *i);
        for ((_, result), app) in results.into_iter().zip(&apps) {
            let key = AppKey::new(app.namespace.clone(), app.name.clone());
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
}

/// The loaded apps in `scope` (all when None), in the directory's order. A scope is looked up
/// key by key: the daemon plans one app per reconcile, and a pass over the whole directory
/// for each made an edit cost O(apps) and a first sync O(apps²).
fn apps_in_scope<'a>(loaded: &'a Loaded, scope: Option<&BTreeSet<AppKey>>) -> Vec<&'a App> {
    match scope {
        None => loaded.apps.iter().collect(),
        // Keys and apps are both ordered by namespace, then name: the result keeps that order.
        Some(scope) => scope.iter().filter_map(|key| loaded.app_of(key)).collect(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn a_scope_selects_its_apps_in_directory_order_and_skips_keys_without_a_spec() {
        let dir = tempfile::tempdir().expect("temp dir");
        for (file, namespace) in [("a", "b"), ("b", "a"), ("c", "a"), ("d", "default")] {
            std::fs::write(
                dir.path().join(format!("{file}.toml")),
                format!("namespace = \"{namespace}\"\n[containers.web]\nimage = \"nginx:1.27\"\n"),
            )
            .expect("write");
        }
        let loaded = crate::spec::load_dir(dir.path(), &Config::default()).expect("load");
        let names = |apps: Vec<&App>| -> Vec<String> {
            apps.iter()
                .map(|a| format!("{}/{}", a.namespace, a.name))
                .collect()
        };
        assert_eq!(
            names(apps_in_scope(&loaded, None)),
            ["a/b", "a/c", "b/a", "default/d"]
        );
        let scope = BTreeSet::from([
            AppKey::new("default", "d"),
            AppKey::new("a", "c"),
            AppKey::new("a", "a"),
            AppKey::new("b", "a"),
        ]);
        assert_eq!(
            names(apps_in_scope(&loaded, Some(&scope))),
            ["a/c", "b/a", "default/d"]
        );
        assert!(apps_in_scope(&loaded, Some(&BTreeSet::new())).is_empty());
    }
}
