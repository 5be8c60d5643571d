//! What this berth instance owns in the cluster, found by its ownership labels and grouped by app.

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};
use kube::ResourceExt;
use kube::api::{DynamicObject, ListParams};
use serde_json::Value;

use super::{Cluster, ClusterError, Kind};
pub use crate::labels::app_of;
use crate::labels::{Ownership, SOURCE_ANNOTATION, owner_selector, ownership};
use crate::spec::AppKey;

mod holds;
mod page;

/// One owned object, kept as JSON text. A one-shot command over 10,000 apps holds 30,000 of
/// them, and parsed (every key and string its own allocation) they were three quarters of its
/// memory; a plan parses one app's objects at a time, and only into the form it reads.
#[derive(Debug, Clone)]
pub struct LiveObject {
    pub kind: Kind,
    pub name: String,
    /// The object as serde_json wrote it from a parsed object.
    json: Box<str>,
}

impl LiveObject {
    pub fn new(kind: Kind, object: &DynamicObject) -> LiveObject {
        LiveObject {
            kind,
            name: object.name_any(),
            // A parsed object always serializes.
            json: serde_json::to_string(object)
                .unwrap_or_default()
                .into_boxed_str(),
        }
    }

    /// An object whose JSON text berth already holds (the daemon's watch caches).
    pub(crate) fn from_json_text(kind: Kind, name: String, json: Box<str>) -> LiveObject {
        LiveObject { kind, name, json }
    }

    /// The object as JSON with its apiVersion and kind, which list responses leave out of items.
    pub fn json(&self) -> Value {
        let value = serde_json::from_str(&self.json)
            .expect("berth's own JSON of a parsed object parses again");
        with_type(self.kind, value)
    }

    /// One annotation's value. The text is searched for the key first: an object that does not
    /// mention it cannot carry it, and most objects are asked about marks they do not have
    /// (a plan asks every app whether it is suspended or waits for a restart).
    pub fn annotation(&self, key: &str) -> Option<String> {
        if !self.json.contains(key) {
            return None;
        }
        self.object().annotations().get(key).cloned()
    }

    /// Whether the object holds every field of `desired` ([`crate::plan::contained_in`] of
    /// [`LiveObject::json`]), read from the text without building the object.
    pub fn holds(&self, desired: &Value) -> bool {
        holds::contained_in_text(desired, self.kind, &self.json)
    }

    /// [`LiveObject::json`] of the metadata alone (with apiVersion and kind): what a plan reads
    /// of an object in sync (its name, labels and annotations). The rest is skipped unbuilt.
    pub fn metadata_json(&self) -> Value {
        #[derive(serde::Deserialize)]
        struct Metadata {
            #[serde(default)]
            metadata: Value,
        }
        let Metadata { metadata } = serde_json::from_str(&self.json)
            .expect("berth's own JSON of a parsed object parses again");
        with_type(self.kind, serde_json::json!({ "metadata": metadata }))
    }

    pub fn object(&self) -> DynamicObject {
        serde_json::from_str(&self.json).expect("berth's own JSON of a parsed object parses again")
    }
}

/// A live object's JSON with its apiVersion and kind, which list responses leave out of items.
pub(crate) fn with_type(kind: Kind, mut value: Value) -> Value {
    if let Some(map) = value.as_object_mut() {
        let resource = kind.resource();
        map.insert("apiVersion".into(), Value::String(resource.api_version));
        map.insert("kind".into(), Value::String(resource.kind));
    }
    value
}

/// The live objects of one app that berth owns.
#[derive(Debug, Clone, Default)]
pub struct LiveApp {
    pub namespace: String,
    pub name: String,
    /// The objects. Empty for an app outside a scoped inventory (only its identity is known).
    pub objects: Vec<LiveObject>,
    /// The spec file the app came from (`berth.dev/source`), when any object records it.
    pub source: Option<String>,
}

impl LiveApp {
    pub fn statefulset(&self) -> Option<DynamicObject> {
        self.live_statefulset().map(LiveObject::object)
    }

    /// The StatefulSet, unparsed.
    pub fn live_statefulset(&self) -> Option<&LiveObject> {
        self.objects.iter().find(|o| o.kind == Kind::StatefulSet)
    }

    /// The StatefulSet as JSON (see [`LiveObject::json`]).
    pub fn statefulset_json(&self) -> Option<Value> {
        self.live_statefulset().map(LiveObject::json)
    }

    /// Every object, parsed.
    pub fn parsed(&self) -> Vec<(Kind, DynamicObject)> {
        self.objects.iter().map(|o| (o.kind, o.object())).collect()
    }
}

/// Every app this instance owns, keyed by `namespace/name`.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub apps: BTreeMap<AppKey, LiveApp>,
}

impl Inventory {
    /// Groups owned objects by app (the `app.kubernetes.io/name` label); objects without it are
    /// not an app's and are skipped.
    pub fn from_objects(objects: impl IntoIterator<Item = (Kind, DynamicObject)>) -> Inventory {
        let mut inventory = Inventory::default();
        for (kind, object) in objects {
            inventory.add(kind, object);
        }
        inventory
    }

    /// Adds one object to its app ([`app_of`]); an object that names no app is skipped.
    pub fn add(&mut self, kind: Kind, object: DynamicObject) {
        if let Some(i) = Identified::new(kind, &object) {
            self.add_live(&i.namespace, &i.app, i.source.as_deref(), i.object);
        }
    }

    /// Adds an object whose app and source are already known.
    pub fn add_live(
        &mut self,
        namespace: &str,
        app: &str,
        source: Option<&str>,
        object: LiveObject,
    ) {
        self.entry(namespace, app, source).objects.push(object);
    }

    /// Records an app's identity and source without its objects (enough to count removals).
    pub fn add_identity(&mut self, namespace: &str, app: &str, source: Option<&str>) {
        self.entry(namespace, app, source);
    }

    fn entry(&mut self, namespace: &str, app: &str, source: Option<&str>) -> &mut LiveApp {
        let entry = self
            .apps
            .entry(AppKey::new(namespace, app))
            .or_insert_with(|| LiveApp {
                namespace: namespace.to_string(),
                name: app.to_string(),
                objects: Vec::new(),
                source: None,
            });
        if entry.source.is_none() {
            entry.source = source.map(str::to_string);
        }
        entry
    }
}

/// Objects per list request of [`Cluster::inventory`].
const LIST_PAGE: u32 = 500;

/// Lists [`Cluster::inventory`] runs at the same time: the three kinds, or a few namespaces'.
const PARALLEL_LISTS: usize = 6;

/// A listed object with the app it belongs to.
struct Identified {
    namespace: String,
    app: String,
    source: Option<String>,
    object: LiveObject,
}

impl Identified {
    /// None for an object that names no app ([`app_of`]).
    fn new(kind: Kind, object: &DynamicObject) -> Option<Identified> {
        let namespace = object.namespace().unwrap_or_default();
        let app = app_of(&namespace, object.labels(), object.annotations())?.to_string();
        Some(Identified {
            source: object.annotations().get(SOURCE_ANNOTATION).cloned(),
            object: LiveObject::new(kind, object),
            namespace,
            app,
        })
    }
}

/// Every owned object of one kind that `api` lists, identified. Pages are read as text
/// ([`page`]): an object's tree is never built, only its metadata read.
async fn list_owned(
    client: &kube::Client,
    kind: Kind,
    api: kube::Api<DynamicObject>,
    first_page: ListParams,
) -> Result<Vec<Identified>, ClusterError> {
    let request = kube::core::Request::new(api.resource_url());
    let mut objects = Vec::new();
    // A page at a time: a list of the whole fleet in one response is held whole as text
    // before the first object can be kept.
    let mut params = first_page.clone();
    loop {
        let http = request
            .list(&params)
            .map_err(|e| ClusterError::Inventory(kube::Error::BuildRequest(e)))?;
        let text = client
            .request_text(http)
            .await
            .map_err(ClusterError::Inventory)?;
        let unreadable = |e| ClusterError::Inventory(kube::Error::SerdeError(e));
        let page = page::Page::parse(&text).map_err(unreadable)?;
        objects.extend(page.identified(kind).map_err(unreadable)?);
        match page.next() {
            Some(token) => params = first_page.clone().continue_token(token),
            None => return Ok(objects),
        }
    }
}

impl Cluster {
    /// Lists every StatefulSet, Service and PodDisruptionBudget labelled as this instance's:
    /// three list calls across the cluster, or three per namespace when the config names its
    /// namespaces ([`super::Listing`]), however many apps there are. The lists run side by side
    /// (the server's time on one overlaps the parsing of another), and are added in kind order,
    /// so the result does not depend on which answered first.
    pub async fn inventory(&self) -> Result<Inventory, ClusterError> {
        let selector = owner_selector(&self.instance);
        let first_page = ListParams::default().labels(&selector).limit(LIST_PAGE);
        let mut lists = Vec::new();
        for kind in Kind::ALL {
            let apis = match self.listing.namespaces() {
                None => vec![kind.all(&self.client)],
                Some(namespaces) => namespaces
                    .iter()
                    .map(|ns| kind.api(&self.client, ns))
                    .collect(),
            };
            for api in apis {
                lists.push(list_owned(&self.client, kind, api, first_page.clone()));
            }
        }
        let lists: Vec<Vec<Identified>> = futures::stream::iter(lists)
            .buffered(PARALLEL_LISTS)
            .try_collect()
            .await?;
        let mut inventory = Inventory::default();
        for identified in lists.into_iter().flatten() {
            inventory.add_live(
                &identified.namespace,
                &identified.app,
                identified.source.as_deref(),
                identified.object,
            );
        }
        Ok(inventory)
    }

    /// True when the object carries this instance's ownership labels.
    pub fn owns(&self, object: &DynamicObject) -> bool {
        ownership(object.labels(), &self.instance) == Ownership::ThisInstance
    }

    /// [`Cluster::owns`] of an object read as JSON.
    pub fn owns_json(&self, object: &Value) -> bool {
        let labels: BTreeMap<String, String> = object
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect();
        ownership(&labels, &self.instance) == Ownership::ThisInstance
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An object kept as text reads back whole, with the apiVersion and kind a list leaves out,
    /// and answers for an annotation without being parsed when its text does not mention it.
    #[test]
    fn a_live_object_kept_as_text_reads_back_whole() {
        let object: DynamicObject = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "db",
                "labels": {"note": "berth.dev/suspended"},
                "annotations": {"berth.dev/restart": "true"}},
            "spec": {"replicas": 3}
        }))
        .expect("object");
        let live = LiveObject::new(Kind::StatefulSet, &object);
        assert_eq!(live.name, "web");
        assert_eq!(live.object(), object);
        let json = live.json();
        assert_eq!(json["apiVersion"], "apps/v1");
        assert_eq!(json["kind"], "StatefulSet");
        assert_eq!(json["spec"]["replicas"], 3);
        assert_eq!(
            live.annotation("berth.dev/restart").as_deref(),
            Some("true")
        );
        // Mentioned elsewhere (a label's value) is not an annotation.
        assert_eq!(live.annotation("berth.dev/suspended"), None);
        assert_eq!(live.annotation("berth.dev/removing"), None);
    }

    /// Objects are grouped by app whatever order they come in, and an object naming no app is
    /// left out.
    #[test]
    fn objects_are_grouped_by_the_app_they_name() {
        let object = |name: &str, app: Option<&str>| -> DynamicObject {
            let mut labels = serde_json::Map::new();
            if let Some(app) = app {
                labels.insert("app.kubernetes.io/name".into(), app.into());
            }
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "db", "labels": labels}
            }))
            .expect("object")
        };
        let inventory = Inventory::from_objects([
            (Kind::Service, object("web-headless", Some("web"))),
            (Kind::StatefulSet, object("web", Some("web"))),
            (Kind::StatefulSet, object("stray", None)),
        ]);
        assert_eq!(inventory.apps.len(), 1);
        let web = &inventory.apps[&AppKey::new("db", "web")];
        assert_eq!(
            web.statefulset().map(|s| s.name_any()).as_deref(),
            Some("web")
        );
        assert_eq!(web.objects.len(), 2);
    }
}
