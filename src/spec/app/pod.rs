//! Validated pod-level settings beyond the console form, grouped by subject so the renderer
//! and the importer each read one struct: pod security (after the `security` preset is applied),
//! container security, scheduling, and the StatefulSet's and Services' own settings.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Spread;
use crate::spec::quantity::Quantity;
use crate::spec::raw::{
    SecurityPreset, SessionAffinity, TaintEffect, TrafficPolicy, WhenUnsatisfiable,
};

/// Pod securityContext fields besides `run_as_user` and `fs_group`. With the `restricted` preset
/// the fields the level requires are already filled in here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct PodSecurity {
    /// The preset the spec named, kept for the record (its effects are in the other fields).
    pub preset: Option<SecurityPreset>,
    pub run_as_non_root: Option<bool>,
    pub run_as_group: Option<i64>,
    pub supplemental_groups: Vec<i64>,
    pub seccomp: Option<Seccomp>,
}

/// A seccomp profile: `"runtime-default"`, `"unconfined"` or `"localhost/<path>"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Seccomp {
    RuntimeDefault,
    Unconfined,
    /// A profile file relative to the kubelet's seccomp directory.
    Localhost(String),
}

/// A container's securityContext fields besides `run_as_user`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct ContainerSecurity {
    pub read_only_root: Option<bool>,
    pub allow_privilege_escalation: Option<bool>,
    pub privileged: Option<bool>,
    pub capabilities: Option<Capabilities>,
}

impl ContainerSecurity {
    pub fn is_empty(&self) -> bool {
        *self == ContainerSecurity::default()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Capabilities {
    pub add: Vec<String>,
    pub drop: Vec<String>,
}

/// Where the pods may and should run, besides `node_selector` and `spread`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Scheduling {
    pub tolerations: Vec<Toleration>,
    pub node_affinity: Option<NodeAffinity>,
    /// Preferred pod anti-affinity on the app's own pods (weight 100).
    pub prefer_spread: Option<Spread>,
    pub topology_spread: Vec<TopologySpread>,
    pub priority_class: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Toleration {
    /// None tolerates every taint (with operator Exists).
    pub key: Option<String>,
    /// Some: operator Equal; None: operator Exists.
    pub value: Option<String>,
    pub effect: Option<TaintEffect>,
    pub evict_after_seconds: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct NodeAffinity {
    /// One nodeSelectorTerm: every expression must hold.
    pub required: Vec<NodeExpr>,
    /// (weight, expression): one preference each.
    pub preferred: Vec<(i32, NodeExpr)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct NodeExpr {
    pub key: String,
    pub op: NodeOp,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeOp {
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    DoesNotExist,
    Gt(i64),
    Lt(i64),
}

impl NodeOp {
    /// The Kubernetes operator and its values.
    pub fn operator(&self) -> (&'static str, Vec<String>) {
        match self {
            NodeOp::In(v) => ("In", v.clone()),
            NodeOp::NotIn(v) => ("NotIn", v.clone()),
            NodeOp::Exists => ("Exists", Vec::new()),
            NodeOp::DoesNotExist => ("DoesNotExist", Vec::new()),
            NodeOp::Gt(n) => ("Gt", vec![n.to_string()]),
            NodeOp::Lt(n) => ("Lt", vec![n.to_string()]),
        }
    }
}

/// A topologySpreadConstraint over the app's own pods.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct TopologySpread {
    /// The full topology key (`"zone"` and `"hostname"` are expanded).
    pub key: String,
    pub max_skew: i32,
    pub when_unsatisfiable: WhenUnsatisfiable,
}

/// The StatefulSet's and the Services' own settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct SetOptions {
    pub min_ready_seconds: Option<i32>,
    /// `ordinals.start`: the first pod's ordinal.
    pub start_ordinal: Option<i32>,
    /// Annotations on the StatefulSet itself (`annotations` are the pods').
    pub annotations: BTreeMap<String, String>,
    pub headless_annotations: BTreeMap<String, String>,
}

/// The access Service's traffic settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct ServiceTraffic {
    pub external_traffic_policy: Option<TrafficPolicy>,
    pub load_balancer_source_ranges: Vec<String>,
    pub session_affinity: Option<SessionAffinity>,
}

/// Extended resources by name (`nvidia.com/gpu`), request = limit.
pub type Extended = BTreeMap<String, Quantity>;

/// How many pods: a count berth sets, or `External`, when an autoscaler or an operator owns the
/// count and berth never sends the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Replicas {
    Count(i32),
    External,
}

impl Replicas {
    /// The count berth sets, if it sets one.
    pub fn count(self) -> Option<i32> {
        match self {
            Replicas::Count(n) => Some(n),
            Replicas::External => None,
        }
    }
}

impl PartialEq<i32> for Replicas {
    fn eq(&self, other: &i32) -> bool {
        self.count() == Some(*other)
    }
}

/// `3`, or `external`.
impl std::fmt::Display for Replicas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Replicas::Count(n) => write!(f, "{n}"),
            Replicas::External => f.write_str("external"),
        }
    }
}

/// A lifecycle hook (postStart, preStop).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Hook {
    Exec(Vec<String>),
    Http(super::HttpGet),
    /// Seconds to wait (preStop: let load balancers notice before the process stops).
    Sleep(i64),
}

/// One `env_from` source: every key of a ConfigMap or Secret as a variable.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct EnvFrom {
    pub source: EnvSource,
    pub name: String,
    pub prefix: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvSource {
    ConfigMap,
    Secret,
}

/// A ConfigMap or Secret volume: its name, the keys it projects (key → path; all when empty)
/// and the file mode.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct KeyedSource {
    pub name: String,
    pub items: Vec<(String, String)>,
    pub default_mode: Option<i32>,
}

/// Where a new claim's data comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataSource {
    /// A VolumeSnapshot (snapshot.storage.k8s.io).
    Snapshot(String),
    /// Another PersistentVolumeClaim, cloned.
    Claim(String),
}
