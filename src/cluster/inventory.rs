//! What this berth instance owns in the cluster, found by its ownership labels and grouped by app.

use std::collections::BTreeMap;

use kube::ResourceExt;
use kube::api::{DynamicObject, ListParams};

use super::{Cluster, ClusterError, Kind};
use crate::render::{
    INSTANCE_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, NAME_LABEL, owner_selector,
};

/// The live objects of one app that berth owns.
#[derive(Debug, Clone, Default)]
pub struct LiveApp {
    pub namespace: String,
    pub name: String,
    pub objects: Vec<(Kind, DynamicObject)>,
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
    pub apps: BTreeMap<(String, String), LiveApp>,
}

impl Cluster {
    /// Lists every StatefulSet, Service and PodDisruptionBudget labelled as this instance's,
    /// in all namespaces: three list calls, however many apps there are.
    pub async fn inventory(&self) -> Result<Inventory, ClusterError> {
        let selector = owner_selector(&self.instance);
        let mut inventory = Inventory::default();
        for kind in Kind::ALL {
            let list = kind
                .all(&self.client)
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(ClusterError::Inventory)?;
            for object in list.items {
                let namespace = object.namespace().unwrap_or_default();
                let Some(app) = object.labels().get(NAME_LABEL).cloned() else {
                    continue;
                };
                let entry = inventory
                    .apps
                    .entry((namespace.clone(), app.clone()))
                    .or_insert_with(|| LiveApp {
                        namespace,
                        name: app,
                        objects: Vec::new(),
                    });
                entry.objects.push((kind, object));
            }
        }
        Ok(inventory)
    }

    /// True when the object carries this instance's ownership labels.
    pub fn owns(&self, object: &DynamicObject) -> bool {
        let labels = object.labels();
        labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY_VALUE)
            && labels.get(INSTANCE_LABEL) == Some(&self.instance)
    }
}
