//! What this berth instance owns in the cluster, found by its ownership labels and grouped by app.

use std::collections::BTreeMap;

use kube::ResourceExt;
use kube::api::{DynamicObject, ListParams};

use super::{Cluster, ClusterError, Kind};
pub use crate::labels::app_of;
use crate::labels::{Ownership, SOURCE_ANNOTATION, owner_selector, ownership};
use crate::spec::AppKey;

/// The live objects of one app that berth owns.
#[derive(Debug, Clone, Default)]
pub struct LiveApp {
    pub namespace: String,
    pub name: String,
    /// The objects. Empty for an app outside a scoped inventory (only its identity is known).
    pub objects: Vec<(Kind, DynamicObject)>,
    /// The spec file the app came from (`berth.dev/source`), when any object records it.
    pub source: Option<String>,
}

impl LiveApp {
    pub fn statefulset(&self) -> Option<&DynamicObject> {
        self.objects
            .iter()
            .find(|(k, _)| *k == Kind::StatefulSet)
            .map(|(_, o)| o)
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
        let namespace = object.namespace().unwrap_or_default();
        let Some(app) = app_of(&namespace, object.labels(), object.annotations()) else {
            return;
        };
        let app = app.to_string();
        let source = object
            .annotations()
            .get(SOURCE_ANNOTATION)
            .map(String::as_str);
        let entry = self.entry(&namespace, &app, source);
        entry.objects.push((kind, object));
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

/// An object as the plan reads it: of managedFields only what berth decides from, whether its
/// own apply owns `spec.replicas` (see `crate::plan::hold_owned_replicas`). The field sets are
/// the bulk of a parsed object (berth's own entry names every field it applies), and a one-shot
/// command over a large fleet holds every object.
fn trimmed(mut object: DynamicObject) -> DynamicObject {
    if let Some(fields) = object.metadata.managed_fields.as_mut() {
        fields.retain(|f| {
            f.manager.as_deref() == Some(super::FIELD_MANAGER)
                && f.operation.as_deref() == Some("Apply")
        });
        for entry in fields.iter_mut() {
            let owns_replicas = entry
                .fields_v1
                .as_ref()
                .is_some_and(|f| f.0.pointer("/f:spec/f:replicas").is_some());
            entry.fields_v1 = owns_replicas.then(|| {
                k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1(
                    serde_json::json!({"f:spec": {"f:replicas": {}}}),
                )
            });
        }
    }
    object
}

impl Cluster {
    /// Lists every StatefulSet, Service and PodDisruptionBudget labelled as this instance's:
    /// three list calls across the cluster, or three per namespace when the config names its
    /// namespaces ([`super::Listing`]), however many apps there are.
    pub async fn inventory(&self) -> Result<Inventory, ClusterError> {
        let selector = owner_selector(&self.instance);
        let first_page = ListParams::default().labels(&selector).limit(LIST_PAGE);
        let mut objects = Vec::new();
        for kind in Kind::ALL {
            let apis = match self.listing.namespaces() {
                None => vec![kind.all(&self.client)],
                Some(namespaces) => namespaces
                    .iter()
                    .map(|ns| kind.api(&self.client, ns))
                    .collect(),
            };
            for api in apis {
                // A page at a time: a list of the whole fleet in one response is held whole,
                // as text and parsed, before the first object can be trimmed.
                let mut params = first_page.clone();
                loop {
                    let list = api.list(&params).await.map_err(ClusterError::Inventory)?;
                    objects.extend(list.items.into_iter().map(|o| (kind, trimmed(o))));
                    match list.metadata.continue_ {
                        Some(token) if !token.is_empty() => {
                            params = first_page.clone().continue_token(&token);
                        }
                        _ => break,
                    }
                }
            }
        }
        Ok(Inventory::from_objects(objects))
    }

    /// True when the object carries this instance's ownership labels.
    pub fn owns(&self, object: &DynamicObject) -> bool {
        ownership(object.labels(), &self.instance) == Ownership::ThisInstance
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(berth_fields: serde_json::Value) -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "db", "managedFields": [
                {"manager": crate::cluster::FIELD_MANAGER, "operation": "Apply",
                 "fieldsV1": berth_fields},
                {"manager": "kube-controller-manager", "operation": "Update",
                 "subresource": "status", "fieldsV1": {"f:status": {"f:replicas": {}}}}
            ]},
            "spec": {"replicas": 3}
        }))
        .expect("object")
    }

    /// Trimmed, an object still says what `hold_owned_replicas` decides from, and nothing else.
    #[test]
    fn trimming_keeps_only_whether_berth_owns_the_replica_count() {
        let owning = trimmed(listed(serde_json::json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {}}}
        })));
        let fields = owning.metadata.managed_fields.clone().unwrap_or_default();
        assert_eq!(fields.len(), 1, "{fields:?}");
        assert_eq!(
            fields[0].fields_v1.as_ref().map(|f| f.0.clone()),
            Some(serde_json::json!({"f:spec": {"f:replicas": {}}}))
        );
        let mut want = serde_json::json!({"spec": {}});
        let live = serde_json::to_value(&owning).expect("json");
        assert!(crate::plan::hold_owned_replicas(
            &mut want,
            &live,
            crate::cluster::FIELD_MANAGER
        ));
        assert_eq!(want["spec"]["replicas"], 3);

        let not_owning = trimmed(listed(serde_json::json!({"f:spec": {"f:template": {}}})));
        let live = serde_json::to_value(&not_owning).expect("json");
        let mut want = serde_json::json!({"spec": {}});
        assert!(!crate::plan::hold_owned_replicas(
            &mut want,
            &live,
            crate::cluster::FIELD_MANAGER
        ));
    }
}
