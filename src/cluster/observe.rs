//! Reads what [`crate::health::assess`] needs: per namespace one list each of pods, claims and
//! Warning events, shared by every app there (a fleet of apps costs one round of lists per
//! namespace, not per app).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod};
use kube::Api;
use kube::api::ListParams;
use serde_json::Value;

use super::{Cluster, ClusterError};
use crate::health::{Health, Observed, assess};
use crate::spec::AppKey;

#[derive(Default)]
struct Namespace {
    pods: Vec<Pod>,
    claims: Vec<PersistentVolumeClaim>,
    events: Vec<Event>,
}

/// The pods, claims and Warning events of some namespaces.
#[derive(Default)]
pub struct Observations {
    namespaces: BTreeMap<String, Namespace>,
}

impl Observations {
    /// Lists the objects of every namespace in `namespaces`.
    pub async fn read<'n>(
        client: &kube::Client,
        namespaces: impl IntoIterator<Item = &'n str>,
    ) -> Result<Observations, ClusterError> {
        let mut out = Observations::default();
        for ns in namespaces {
            if out.namespaces.contains_key(ns) {
                continue;
            }
            let list = |what: &'static str| {
                move |source| ClusterError::List {
                    what,
                    namespace: ns.to_string(),
                    source,
                }
            };
            let pods = Api::<Pod>::namespaced(client.clone(), ns)
                .list(&ListParams::default())
                .await
                .map_err(list("pods"))?
                .items;
            let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
                .list(&ListParams::default())
                .await
                .map_err(list("persistentvolumeclaims"))?
                .items;
            let events = Api::<Event>::namespaced(client.clone(), ns)
                .list(&ListParams::default().fields("type=Warning"))
                .await
                .map_err(list("events"))?
                .items;
            out.namespaces.insert(
                ns.to_string(),
                Namespace {
                    pods,
                    claims,
                    events,
                },
            );
        }
        Ok(out)
    }

    /// The objects of the app whose StatefulSet is `statefulset` in `namespace`: the pods it
    /// owns, the namespace's claims and Warning events.
    pub fn of<'a>(&'a self, namespace: &str, statefulset: Option<&'a Value>) -> Observed<'a> {
        let Some(ns) = self.namespaces.get(namespace) else {
            return Observed {
                statefulset,
                ..Observed::default()
            };
        };
        let owner_uid = statefulset
            .and_then(|s| s.pointer("/metadata/uid"))
            .and_then(Value::as_str);
        let pods = match owner_uid {
            None => Vec::new(),
            Some(uid) => ns
                .pods
                .iter()
                .filter(|p| {
                    p.metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .any(|o| o.kind == "StatefulSet" && o.uid == uid)
                })
                .collect(),
        };
        Observed {
            statefulset,
            pods,
            claims: ns.claims.iter().collect(),
            events: ns.events.iter().collect(),
        }
    }
}

impl Cluster {
    /// The health of each app of `keys`. Each StatefulSet is read; the pods, claims and events
    /// of a namespace are listed (once) only when some app there is not shown healthy by its
    /// StatefulSet alone, so healthy apps cost one read.
    pub async fn health_of(&self, keys: &[AppKey]) -> Result<Vec<(AppKey, Health)>, ClusterError> {
        let mut sets = Vec::with_capacity(keys.len());
        for key in keys {
            sets.push(self.statefulset_json(key).await?);
        }
        let alone: Vec<Health> = sets
            .iter()
            .map(|sts| {
                assess(&Observed {
                    statefulset: sts.as_ref(),
                    ..Observed::default()
                })
            })
            .collect();
        // (Plain loops, no closures held across an await: the daemon's spawned task must be
        // `Send`.)
        let mut unsettled: Vec<String> = Vec::new();
        for (key, health) in keys.iter().zip(&alone) {
            if health.needs_a_closer_look() {
                unsettled.push(key.namespace.clone());
            }
        }
        let observations =
            Observations::read(&self.client, unsettled.iter().map(String::as_str)).await?;
        Ok(keys
            .iter()
            .zip(sets.iter().zip(alone))
            .map(|(key, (sts, alone))| {
                let health = if alone.needs_a_closer_look() {
                    assess(&observations.of(&key.namespace, sts.as_ref()))
                } else {
                    alone
                };
                (key.clone(), health)
            })
            .collect())
    }
}
