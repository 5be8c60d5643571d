//! What a plan reads from the server: the shared [`Lookups`] one plan takes once for all its
//! apps (name lists where many apps are new, pods left marked for a restart, whether a
//! namespace exists), and the single-object `get` and server-side dry-run apply.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::Value;
use tokio::sync::OnceCell;

use super::to_json;
use crate::cluster::inventory::{Inventory, LiveApp};
use crate::cluster::{Cluster, ClusterError, FIELD_MANAGER, Kind};
use crate::labels::{NAME_LABEL, RESTART_MARK};
use crate::spec::{App, AppKey};

/// From this many apps without owned objects in one namespace, the planner lists the names of
/// that namespace's objects once per kind instead of reading each missing object on its own.
const PREFETCH_MIN_APPS: usize = 4;

/// What one plan learns once and shares between its apps.
pub(super) struct Lookups {
    /// Names of the objects of a kind in a namespace, listed up front where many apps are new.
    existing: HashMap<(Kind, String), HashSet<String>>,
    /// Per namespace, whether it exists: settled by the first dry-run create planned in it.
    namespaces: Mutex<HashMap<String, Arc<OnceCell<()>>>>,
    /// `(namespace, app)` → its pods that carry the restart mark of an unfinished recreate.
    pub(super) restarts: HashMap<AppKey, Vec<String>>,
}

impl Lookups {
    /// True when a prefetched list proves no object of this kind and name exists.
    pub(super) fn absent(&self, kind: Kind, namespace: &str, name: &str) -> bool {
        self.existing
            .get(&(kind, namespace.to_string()))
            .is_some_and(|names| !names.contains(name))
    }

    /// Dry-runs this create unless another create in the namespace already showed that the
    /// namespace exists. A missing namespace comes back as the dry-run's 404 every time (it is
    /// not cached), so each app of that namespace is blocked the same way.
    pub(super) async fn check_namespace(
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
    /// What a plan of these apps reads once, before any app is planned.
    pub(super) async fn lookups(
        &self,
        apps: &[&App],
        inventory: &Inventory,
        concurrency: usize,
    ) -> Result<Lookups, ClusterError> {
        Ok(Lookups {
            existing: self.prefetch_names(apps, inventory, concurrency).await?,
            namespaces: Mutex::default(),
            restarts: self.marked_pods(apps, inventory, concurrency).await?,
        })
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
            let key = AppKey::new(app.namespace.clone(), app.name.clone());
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
    ) -> Result<HashMap<AppKey, Vec<String>>, ClusterError> {
        let namespaces: BTreeSet<&str> = apps
            .iter()
            .filter(|app| {
                let sts = inventory
                    .apps
                    .get(&AppKey::new(app.namespace.clone(), app.name.clone()))
                    .and_then(LiveApp::live_statefulset);
                sts.is_none_or(|s| s.annotation(RESTART_MARK).is_some())
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
        let mut marked: HashMap<AppKey, Vec<String>> = HashMap::new();
        for list in futures::stream::iter(lists)
            .buffer_unordered(concurrency)
            .collect::<Vec<_>>()
            .await
        {
            for pod in list?.items {
                if let (Some(ns), Some(app)) =
                    (pod.namespace(), pod.labels().get(NAME_LABEL).cloned())
                {
                    marked
                        .entry(AppKey::new(ns, app))
                        .or_default()
                        .push(pod.name_any());
                }
            }
        }
        for pods in marked.values_mut() {
            pods.sort();
        }
        Ok(marked)
    }
}

impl Cluster {
    pub(crate) async fn get(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<DynamicObject>, ClusterError> {
        super::timed(
            super::Request::Read,
            kind.api(&self.client, namespace).get_opt(name),
        )
        .await
        .map_err(|source| ClusterError::Get {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
            source,
        })
    }

    /// The object as the server would store it after berth's apply, without storing it.
    pub(super) async fn dry_run(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        want: &Value,
    ) -> Result<Value, ClusterError> {
        let params = PatchParams::apply(FIELD_MANAGER).force().dry_run();
        let api = kind.api(&self.client, namespace);
        super::timed(
            super::Request::DryRun,
            api.patch(name, &params, &Patch::Apply(want)),
        )
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
