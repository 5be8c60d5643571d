//! The object kinds berth writes, handled through one dynamic API so that plan and apply treat
//! them alike.

use std::fmt;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ApiResource, DynamicObject};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Service,
    StatefulSet,
    PodDisruptionBudget,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Service, Kind::StatefulSet, Kind::PodDisruptionBudget];

    pub fn resource(self) -> ApiResource {
        match self {
            Kind::Service => ApiResource::erase::<Service>(&()),
            Kind::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
            Kind::PodDisruptionBudget => ApiResource::erase::<PodDisruptionBudget>(&()),
        }
    }

    pub fn api(self, client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(client.clone(), namespace, &self.resource())
    }

    pub fn all(self, client: &kube::Client) -> Api<DynamicObject> {
        Api::all_with(client.clone(), &self.resource())
    }

    pub fn from_name(kind: &str) -> Option<Kind> {
        match kind {
            "Service" => Some(Kind::Service),
            "StatefulSet" => Some(Kind::StatefulSet),
            "PodDisruptionBudget" => Some(Kind::PodDisruptionBudget),
            _ => None,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Service => "Service",
            Kind::StatefulSet => "StatefulSet",
            Kind::PodDisruptionBudget => "PodDisruptionBudget",
        })
    }
}
