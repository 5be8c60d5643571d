//! Live state for the daemon: one watch per kind on the objects this instance owns (per kind and
//! namespace when the config names its namespaces, see [`super::Listing`]), so plans read a
//! local cache instead of asking the API server, and every change to an owned object (berth's
//! own writes, and drift) names the app to look at again.
//!
//! The cache keeps each object as JSON text, not as a parsed tree: at 1000 apps the 3000 trees
//! (every key and string a separate allocation) were most of the daemon's memory, while a plan
//! needs the objects of one app at a time, parsed again from the text when it asks.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use futures::StreamExt;
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, ObjectMeta};
use kube::core::DynamicResourceScope;
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::{Deserialize, Deserializer, Error as _};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::inventory::{Inventory, LiveObject, app_of};
use super::{Cluster, Kind};
use crate::labels::{SOURCE_ANNOTATION, owner_selector};
use crate::spec::AppKey;

/// Server-side timeout of each watch request, and with it how long a dead connection can go
/// unnoticed (see [`Cluster::start_cache`]).
const WATCH_TIMEOUT_SECS: u32 = 60;

/// One owned object of an app.
#[derive(Debug)]
struct Cached {
    /// The app it belongs to ([`app_of`]).
    app: String,
    /// Its `berth.dev/source` annotation: an app's identity in the inventory needs no parsing.
    source: Option<String>,
    /// The whole object as JSON, without managedFields and status.
    json: Box<str>,
}

/// The objects of one kind, by namespace and name, and the names of each app's objects: an
/// app's inventory is looked up, not filtered out of every object (a reconcile costs its app,
/// and a first sync of N apps is not N passes over N apps' objects).
#[derive(Debug, Default)]
struct Objects {
    by_id: HashMap<(String, String), Cached>,
    /// Kept in step with `by_id` by [`Objects::insert`] and [`Objects::remove`]; an app with
    /// no object left has no entry.
    by_app: HashMap<AppKey, Names>,
}

/// The names of one app's objects of one kind, sorted: one or two, so a sorted `Vec` sized to
/// fit, not a `BTreeSet`, whose first node alone takes about 300 bytes (at 10,000 apps, three
/// kinds, 9 MiB of the daemon's memory for a few names).
#[derive(Debug, Default)]
struct Names(Vec<String>);

impl Names {
    fn insert(&mut self, name: String) {
        if let Err(at) = self.0.binary_search(&name) {
            self.0.reserve_exact(1);
            self.0.insert(at, name);
        }
    }

    fn remove(&mut self, name: &str) {
        if let Ok(at) = self.0.binary_search_by(|n| n.as_str().cmp(name)) {
            self.0.remove(at);
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn iter(&self) -> std::slice::Iter<'_, String> {
        self.0.iter()
    }
}

impl Objects {
    fn insert(&mut self, id: (String, String), cached: Cached) {
        let key = AppKey::new(id.0.clone(), cached.app.clone());
        if let Some(old) = self.by_id.insert(id.clone(), cached)
            && old.app != key.name
        {
            self.unlist(&AppKey::new(id.0.clone(), old.app), &id.1);
        }
        self.by_app.entry(key).or_default().insert(id.1);
    }

    fn remove(&mut self, id: &(String, String)) {
        if let Some(old) = self.by_id.remove(id) {
            self.unlist(&AppKey::new(id.0.clone(), old.app), &id.1);
        }
    }

    /// Takes `name` off the app's list, and the app off the index once it has no object left.
    fn unlist(&mut self, key: &AppKey, name: &str) {
        if let Some(names) = self.by_app.get_mut(key) {
            names.remove(name);
            if names.is_empty() {
                self.by_app.remove(key);
            }
        }
    }

    /// The objects of one app, with their names.
    fn of_app<'a>(
        &'a self,
        key: &'a AppKey,
    ) -> impl Iterator<Item = (&'a String, &'a Cached)> + 'a {
        self.by_app
            .get(key)
            .into_iter()
            .flat_map(Names::iter)
            .filter_map(|name| {
                self.by_id
                    .get(&(key.namespace.clone(), name.clone()))
                    .map(|cached| (name, cached))
            })
    }

    fn iter(&self) -> impl Iterator<Item = (&(String, String), &Cached)> {
        self.by_id.iter()
    }
}

/// The readers of the owned-object caches.
#[derive(Clone)]
pub struct OwnedCache {
    /// One per watch: per kind, or per kind and namespace.
    kinds: Vec<KindCache>,
}

/// The objects one watch found: of one kind, in every namespace or in one.
#[derive(Clone)]
struct KindCache {
    kind: Kind,
    objects: Arc<RwLock<Objects>>,
    /// True once the first complete list is in `objects`.
    ready: watch::Receiver<bool>,
}

impl KindCache {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Objects> {
        self.objects.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// A cached object for an inventory: its text is copied, parsed only when a plan reads it.
fn live_object(kind: Kind, name: &str, cached: &Cached) -> LiveObject {
    LiveObject::from_json_text(kind, name.to_string(), cached.json.clone())
}

impl OwnedCache {
    /// Waits until every cache holds a complete first list, in every namespace watched (never
    /// decide removals before that: an empty cache would look like "nothing is deployed"). An
    /// error means a watch ended first.
    pub async fn wait_until_ready(&self) -> Result<(), watch::error::RecvError> {
        for cache in &self.kinds {
            cache.ready.clone().wait_for(|ready| *ready).await?;
        }
        Ok(())
    }

    /// The inventory: full objects for apps in `scope` (all when None), identities for the rest.
    pub fn inventory(&self, scope: Option<&BTreeSet<AppKey>>) -> Inventory {
        let mut inventory = Inventory::default();
        for cache in &self.kinds {
            for ((namespace, name), cached) in cache.read().iter() {
                if scope
                    .is_none_or(|s| s.contains(&AppKey::new(namespace.clone(), cached.app.clone())))
                {
                    inventory.add_live(
                        namespace,
                        &cached.app,
                        cached.source.as_deref(),
                        live_object(cache.kind, name, cached),
                    );
                } else {
                    inventory.add_identity(namespace, &cached.app, cached.source.as_deref());
                }
            }
        }
        inventory
    }

    /// The inventory of the apps in `scope` alone: their objects, and no identities of other
    /// apps. Enough to plan apps that have a spec (the removal limit only concerns apps
    /// without one), at the cost of one pass over the caches without copying anything else:
    /// [`OwnedCache::inventory`] builds every app's identity, which for each of N apps at
    /// start-up made the first sync quadratic.
    pub fn inventory_of(&self, scope: &BTreeSet<AppKey>) -> Inventory {
        let mut inventory = Inventory::default();
        for cache in &self.kinds {
            let objects = cache.read();
            for key in scope {
                for (name, cached) in objects.of_app(key) {
                    inventory.add_live(
                        &key.namespace,
                        &cached.app,
                        cached.source.as_deref(),
                        live_object(cache.kind, name, cached),
                    );
                }
            }
        }
        inventory
    }

    /// Every app that has owned objects.
    pub fn keys(&self) -> BTreeSet<AppKey> {
        self.kinds.iter().flat_map(|c| keys(&c.read())).collect()
    }
}

fn keys(objects: &Objects) -> BTreeSet<AppKey> {
    objects.by_app.keys().cloned().collect()
}

/// An owned object as a list page or a watch event delivers it, trimmed as it is read: one
/// object's tree lives only until it is turned into text, never a page of them at once.
#[derive(Debug, Clone)]
struct Trimmed {
    /// Name, namespace and resourceVersion (what the watcher reads to resume), nothing else.
    metadata: ObjectMeta,
    /// None for an object that names no app ([`app_of`]).
    app: Option<String>,
    source: Option<String>,
    json: Box<str>,
}

impl<'de> Deserialize<'de> for Trimmed {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut object = DynamicObject::deserialize(deserializer)?;
        // Nothing berth decides from the cache reads managedFields or status (removal reads the
        // StatefulSet's status from the server), and they are the bulk of each object.
        object.metadata.managed_fields = None;
        if let Some(map) = object.data.as_object_mut() {
            map.remove("status");
        }
        let json = serde_json::to_string(&object).map_err(D::Error::custom)?;
        let namespace = object.namespace().unwrap_or_default();
        let app = app_of(&namespace, object.labels(), object.annotations()).map(str::to_string);
        let source = object.annotations_mut().remove(SOURCE_ANNOTATION);
        let meta = object.metadata;
        Ok(Trimmed {
            metadata: ObjectMeta {
                name: meta.name,
                namespace: meta.namespace,
                resource_version: meta.resource_version,
                ..ObjectMeta::default()
            },
            app,
            source,
            json: json.into_boxed_str(),
        })
    }
}

/// What the watcher needs to list and watch `Trimmed` through the dynamic API of a kind.
impl kube::Resource for Trimmed {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }

    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }

    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }

    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }

    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl Trimmed {
    fn id(&self) -> (String, String) {
        (
            self.metadata.namespace.clone().unwrap_or_default(),
            self.metadata.name.clone().unwrap_or_default(),
        )
    }

    fn app_key(&self) -> Option<AppKey> {
        Some(AppKey::new(
            self.metadata.namespace.clone()?,
            self.app.clone()?,
        ))
    }

    /// Puts the object in `objects`, or takes it out when it has lost its app label.
    fn store(self, objects: &mut Objects) {
        let id = self.id();
        match self.app {
            Some(app) => {
                objects.insert(
                    id,
                    Cached {
                        app,
                        source: self.source,
                        json: self.json,
                    },
                );
            }
            None => objects.remove(&id),
        }
    }
}

impl Cluster {
    /// Starts the watches: one per kind, or one per kind and namespace when the config names
    /// its namespaces (each a long-lived request and a task, renewed every
    /// [`WATCH_TIMEOUT_SECS`], so a config naming N namespaces costs 3N of them; the objects are
    /// held once either way). Each change after the initial list sends the app's key to
    /// `changed`. The tasks run in `tasks` until `shutdown`.
    pub fn start_cache(
        &self,
        changed: mpsc::UnboundedSender<AppKey>,
        tasks: &mut JoinSet<()>,
        shutdown: CancellationToken,
    ) -> OwnedCache {
        let selector = owner_selector(&self.instance);
        let mut kinds = Vec::new();
        let watches = Kind::ALL.into_iter().flat_map(|kind| {
            let apis: Vec<(String, Api<Trimmed>)> = match self.listing.namespaces() {
                None => vec![(
                    "*".to_string(),
                    Api::all_with(self.watch_client.clone(), &kind.resource()),
                )],
                Some(namespaces) => namespaces
                    .iter()
                    .map(|ns| {
                        let api =
                            Api::namespaced_with(self.watch_client.clone(), ns, &kind.resource());
                        (ns.clone(), api)
                    })
                    .collect(),
            };
            apis.into_iter().map(move |(ns, api)| (kind, ns, api))
        });
        for (kind, namespace, api) in watches {
            let objects = Arc::new(RwLock::new(Objects::default()));
            let (ready_tx, ready) = watch::channel(false);
            // A watch over a connection that died without a FIN or RST (a network blip, a NAT
            // dropping the flow) receives nothing and raises nothing: the watcher's only way out
            // is its idle timeout, the server-side timeout plus a few seconds. kube's 290 s
            // default left drift unseen for five minutes; a healthy watch gets a bookmark at
            // least every minute, so a one-minute watch costs one re-watch request per kind per
            // minute and bounds a blind spell to about that.
            let config = watcher::Config::default()
                .labels(&selector)
                .timeout(WATCH_TIMEOUT_SECS);
            let (store, changed, shutdown) = (objects.clone(), changed.clone(), shutdown.clone());
            // default_backoff: without it a failing watch retries in a hot loop.
            let mut events = watcher(api, config).default_backoff().boxed();
            tasks.spawn(async move {
                let write = || store.write().unwrap_or_else(|p| p.into_inner());
                // A list in progress; the cache keeps the previous one until it is complete.
                let mut listing: Option<Objects> = None;
                let mut listed = false;
                // Apps with objects in the cache when a re-list began (after a watch expired with
                // 410 Gone, or the API server restarted). Changes made while the watch was down
                // arrive only as the new list, not as events: every app in the old or the new
                // list is looked at again once it is complete.
                let mut before_relist: Option<BTreeSet<AppKey>> = None;
                loop {
                    let event = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        event = events.next() => event,
                    };
                    match event {
                        Some(Ok(watcher::Event::Init)) => {
                            if listed {
                                before_relist = Some(keys(&write()));
                            }
                            listed = false;
                            listing = Some(Objects::default());
                        }
                        Some(Ok(watcher::Event::InitApply(o))) => {
                            o.store(listing.get_or_insert_default());
                        }
                        Some(Ok(watcher::Event::InitDone)) => {
                            let mut objects = write();
                            *objects = listing.take().unwrap_or_default();
                            listed = true;
                            ready_tx.send_replace(true);
                            if let Some(mut keys_before) = before_relist.take() {
                                keys_before.extend(keys(&objects));
                                drop(objects);
                                tracing::info!(kind = %kind, namespace = %namespace, apps = keys_before.len(), "owned objects re-listed; checking their apps again");
                                for key in keys_before {
                                    let _ = changed.send(key);
                                }
                            }
                        }
                        Some(Ok(watcher::Event::Apply(o))) => {
                            let key = o.app_key();
                            o.store(&mut write());
                            if let (true, Some(key)) = (listed, key) {
                                let _ = changed.send(key);
                            }
                        }
                        Some(Ok(watcher::Event::Delete(o))) => {
                            write().remove(&o.id());
                            if let (true, Some(key)) = (listed, o.app_key()) {
                                let _ = changed.send(key);
                            }
                        }
                        Some(Err(err)) => {
                            tracing::warn!(kind = %kind, namespace = %namespace, error = %err, "watch of owned objects failed; retrying");
                        }
                        None => return,
                    }
                }
            });
            kinds.push(KindCache {
                kind,
                objects,
                ready,
            });
        }
        OwnedCache { kinds }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::NAME_LABEL;

    #[test]
    fn objects_are_trimmed_as_read_and_parse_back_whole() {
        let json = serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {
                "name": "web",
                "namespace": "shop",
                "resourceVersion": "42",
                "labels": { NAME_LABEL: "web-app", "team": "a" },
                "annotations": { SOURCE_ANNOTATION: "shop/web.toml", "berth.dev/applied": "f" },
                "managedFields": [{ "manager": "berth", "operation": "Apply" }]
            },
            "spec": { "replicas": 2, "serviceName": "web" },
            "status": { "replicas": 2 }
        });
        let trimmed: Trimmed = serde_json::from_value(json.clone()).expect("deserialize");
        assert_eq!(trimmed.app_key(), Some(AppKey::new("shop", "web-app")));
        assert_eq!(trimmed.source.as_deref(), Some("shop/web.toml"));
        assert_eq!(trimmed.metadata.resource_version.as_deref(), Some("42"));

        let mut objects = Objects::default();
        trimmed.store(&mut objects);
        let cached = &objects.by_id[&("shop".to_string(), "web".to_string())];
        let object = live_object(Kind::StatefulSet, "web", cached).object();
        let mut expected: DynamicObject = serde_json::from_value(json).expect("object");
        expected.metadata.managed_fields = None;
        expected.data.as_object_mut().expect("map").remove("status");
        assert_eq!(
            object, expected,
            "the cache gives back the object less managedFields and status"
        );

        // A later version without the app label takes the object out of the cache.
        let unlabelled = serde_json::json!({
            "metadata": { "name": "web", "namespace": "shop", "resourceVersion": "43" }
        });
        let trimmed: Trimmed = serde_json::from_value(unlabelled).expect("deserialize");
        assert_eq!(trimmed.app_key(), None);
        trimmed.store(&mut objects);
        assert!(objects.by_id.is_empty() && objects.by_app.is_empty());
    }

    fn cached(app: &str) -> Cached {
        Cached {
            app: app.to_string(),
            source: None,
            json: "{}".into(),
        }
    }

    fn names(objects: &Objects, namespace: &str, app: &str) -> Vec<String> {
        let key = AppKey::new(namespace, app);
        // In name order, as kept: not sorted here.
        let found: Vec<String> = objects
            .by_app
            .get(&key)
            .into_iter()
            .flat_map(Names::iter)
            .cloned()
            .collect();
        assert_eq!(found.len(), objects.of_app(&key).count());
        found
    }

    #[test]
    fn each_app_finds_its_own_objects_through_inserts_relabels_and_removals() {
        let id = |ns: &str, name: &str| (ns.to_string(), name.to_string());
        let mut objects = Objects::default();
        // Out of name order: each app's names are kept sorted.
        objects.insert(id("a", "web-headless"), cached("web"));
        objects.insert(id("a", "web"), cached("web"));
        // Same app name in another namespace: another app.
        objects.insert(id("b", "web"), cached("web"));
        objects.insert(id("a", "db"), cached("db"));
        assert_eq!(names(&objects, "a", "web"), ["web", "web-headless"]);
        assert_eq!(names(&objects, "b", "web"), ["web"]);
        assert_eq!(names(&objects, "a", "db"), ["db"]);

        // An object relabelled to another app moves with it; the old app keeps the rest.
        objects.insert(id("a", "web-headless"), cached("db"));
        assert_eq!(names(&objects, "a", "web"), ["web"]);
        assert_eq!(names(&objects, "a", "db"), ["db", "web-headless"]);

        // The last object gone, the app is gone from the index (and from `keys`).
        objects.remove(&id("b", "web"));
        objects.remove(&id("b", "never-there"));
        assert!(!objects.by_app.contains_key(&AppKey::new("b", "web")));
        assert_eq!(
            keys(&objects),
            BTreeSet::from([AppKey::new("a", "db"), AppKey::new("a", "web")])
        );
        assert_eq!(objects.by_id.len(), 3);
    }
}
