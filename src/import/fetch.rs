//! Reading the cluster: the StatefulSet and the objects around it ([`fetch`]), the
//! StatefulSets to import ([`list`]), and the spec file an app was applied from
//! ([`source_file`]). Only reads, with the [`Cluster`]'s client.

use std::collections::BTreeMap;
use std::path::{Component, PathBuf};

use kube::api::{Api, ListParams};
use serde_json::Value;

use super::{ImportError, LiveObjects, Ownership, ownership, ptr, ptr_str, str_map};
use crate::cluster::Cluster;

/// A typed object as the JSON the importer reads.
pub(super) fn json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// True when every key/value of `selector` is in `labels` (and the selector is not empty).
fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The label the StatefulSet controller gives each pod with its name: a Service selecting on
/// it reaches one pod of the set (the primary of a read/write split).
pub(super) const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";

/// True when `selector` picks pods of StatefulSet `set` (template labels `labels`): all of them,
/// or one by its pod name.
fn selects_pods(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
    set: &str,
) -> bool {
    let one_pod = |v: &String| {
        v.strip_prefix(set)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    let mut set_labels = selector.clone();
    let pod = set_labels.remove(POD_NAME_LABEL);
    pod.as_ref().is_none_or(one_pod) && selects(&set_labels, labels)
}

/// Reads a StatefulSet and the objects around it. The access Services and the PDB are the ones
/// whose selectors pick the StatefulSet's pods; one named like the app comes first.
pub async fn fetch(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
) -> Result<LiveObjects, ImportError> {
    use k8s_openapi::api::apps::v1::StatefulSet;
    use k8s_openapi::api::core::v1::Service;
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;

    let client = cluster.client().clone();
    let sts = Api::<StatefulSet>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|source| ImportError::GetStatefulSet {
            namespace: namespace.into(),
            name: name.into(),
            source,
        })?
        .ok_or_else(|| ImportError::NotFound {
            namespace: namespace.into(),
            name: name.into(),
        })?;
    let pod_labels = sts
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let headless_name = sts
        .spec
        .as_ref()
        .and_then(|s| s.service_name.clone())
        .unwrap_or_default();

    let list_err = |what: &str| {
        let what = format!("{what} in namespace {namespace}");
        move |source| ImportError::List { what, source }
    };
    let services = Api::<Service>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map_err(list_err("Services"))?;
    let mut headless = None;
    let mut access: Vec<Service> = Vec::new();
    for svc in services.items {
        let svc_name = svc.metadata.name.clone().unwrap_or_default();
        if svc_name == headless_name {
            headless = Some(svc);
            continue;
        }
        let selector = svc
            .spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        if selects_pods(&selector, &pod_labels, name) {
            access.push(svc);
        }
    }
    // The one named like the app is `[service]`; the others `[services.NAME]`, by name.
    access.sort_by_key(|s| {
        (
            s.metadata.name.as_deref() != Some(name),
            s.metadata.name.clone(),
        )
    });
    let pdbs = Api::<PodDisruptionBudget>::namespaced(client, namespace)
        .list(&ListParams::default())
        .await
        .map_err(list_err("PodDisruptionBudgets"))?;
    let mut budgets: Vec<PodDisruptionBudget> = pdbs
        .items
        .into_iter()
        .filter(|p| {
            let selector = p
                .spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .and_then(|s| s.match_labels.clone())
                .unwrap_or_default();
            selects(&selector, &pod_labels)
        })
        .collect();
    budgets.sort_by_key(|p| p.metadata.name.as_deref() != Some(name));

    let mut extra = Vec::new();
    extra.extend(budgets.iter().skip(1).map(|p| {
        format!(
            "PodDisruptionBudget {namespace}/{}",
            p.metadata.name.as_deref().unwrap_or_default()
        )
    }));
    Ok(LiveObjects {
        statefulset: json(&sts),
        headless: headless.as_ref().map(json),
        service: access.first().map(json),
        services: access.iter().skip(1).map(json).collect(),
        pdb: budgets.first().map(json),
        extra,
    })
}

/// `(namespace, name)` of every StatefulSet in `namespace`; when None, in every namespace the
/// cluster lists in ([`crate::cluster::Listing`]): all of them, or only those the daemon config
/// names, which is all a spec could use and all that Roles alone let berth list.
pub async fn list(
    cluster: &Cluster,
    namespace: Option<&str>,
) -> Result<Vec<(String, String)>, ImportError> {
    use k8s_openapi::api::apps::v1::StatefulSet;
    let client = cluster.client();
    let apis: Vec<(String, Api<StatefulSet>)> = match (namespace, cluster.listing().namespaces()) {
        (Some(ns), _) => vec![(
            format!("namespace {ns}"),
            Api::namespaced(client.clone(), ns),
        )],
        (None, None) => vec![("all namespaces".to_string(), Api::all(client.clone()))],
        (None, Some(namespaces)) => namespaces
            .iter()
            .map(|ns| {
                (
                    format!("namespace {ns}"),
                    Api::namespaced(client.clone(), ns),
                )
            })
            .collect(),
    };
    let mut out = Vec::new();
    for (where_, api) in apis {
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|source| ImportError::List {
                what: format!("StatefulSets in {where_}"),
                source,
            })?;
        out.extend(list.items.into_iter().map(|s| {
            (
                s.metadata.namespace.unwrap_or_default(),
                s.metadata.name.unwrap_or_default(),
            )
        }));
    }
    out.sort();
    Ok(out)
}

/// The spec file a StatefulSet of this instance was applied from (`berth.dev/source`), when it
/// is a plain relative path: importing into the same place makes the import reproduce it.
pub fn source_file(live: &LiveObjects, instance: &str) -> Option<PathBuf> {
    let meta = ptr(&live.statefulset, "/metadata");
    let labels = str_map(ptr(meta, "/labels"));
    let owned = ownership(&labels, instance) == Ownership::ThisInstance;
    let source = ptr_str(meta, "/annotations/berth.dev~1source")?;
    let path = PathBuf::from(source);
    let plain = path.components().all(|c| matches!(c, Component::Normal(_)));
    (owned && plain && source.ends_with(".toml")).then_some(path)
}
