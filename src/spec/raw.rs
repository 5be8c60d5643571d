//! Raw serde types of the spec: exactly what the TOML says, with the span of every value a rule
//! can reject. They may hold nonsense (a negative replica count, a port name of 40 characters);
//! [`super::validate`] turns them into an [`super::App`] or into diagnostics.
//!
//! No `flatten` and no `untagged`: both erase spans and replace serde's "expected one of" list with
//! a vague message. Fields that take "a string or a table" have explicit visitors instead.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
// Every raw value keeps its span, for diagnostics that point at it.
pub use toml::Spanned;

use super::app::{AccessMode, DnsPolicy, PodManagement, PullPolicy, ServiceType, Spread};

mod container;
mod patches;
mod pod;
mod set;
mod storage;
pub use container::*;
pub use patches::*;
pub use pod::*;
pub use set::*;
pub use storage::*;

/// A table of string → string (labels, annotations, node selector), sorted by key.
pub type StrMap = BTreeMap<Spanned<String>, Spanned<String>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApp {
    pub name: Option<Spanned<String>>,
    pub namespace: Option<Spanned<String>>,
    pub replicas: Option<Spanned<RawReplicas>>,
    pub pod_management: Option<Spanned<PodManagement>>,
    pub update: Option<Spanned<RawUpdate>>,
    pub labels: Option<StrMap>,
    pub annotations: Option<StrMap>,
    pub pull_secrets: Option<Spanned<Vec<Spanned<String>>>>,
    pub run_as_user: Option<Spanned<i64>>,
    pub fs_group: Option<Spanned<i64>>,
    pub run_as_group: Option<Spanned<i64>>,
    pub run_as_non_root: Option<Spanned<bool>>,
    pub supplemental_groups: Option<Spanned<Vec<Spanned<i64>>>>,
    pub seccomp: Option<Spanned<String>>,
    pub security: Option<Spanned<SecurityPreset>>,
    pub dns: Option<Spanned<RawDns>>,
    pub headless: Option<Spanned<String>>,
    pub termination_grace: Option<Spanned<String>>,
    pub service_account: Option<Spanned<String>>,
    pub node_selector: Option<StrMap>,
    pub spread: Option<Spanned<Spread>>,
    pub prefer_spread: Option<Spanned<Spread>>,
    pub node_affinity: Option<Spanned<RawNodeAffinity>>,
    pub topology_spread: Option<Spanned<Vec<Spanned<RawTopologySpread>>>>,
    pub tolerations: Option<Spanned<Vec<Spanned<RawToleration>>>>,
    pub priority_class: Option<Spanned<String>>,
    pub min_ready: Option<Spanned<String>>,
    pub start_ordinal: Option<Spanned<i64>>,
    pub set_annotations: Option<StrMap>,
    pub headless_annotations: Option<StrMap>,
    pub disruption_budget: Option<Spanned<RawDisruptionBudget>>,
    pub allow_recreate: Option<Spanned<bool>>,
    pub abandon_claims: Option<Spanned<bool>>,
    pub adopt: Option<Spanned<bool>>,
    pub suspend: Option<Spanned<bool>>,
    pub after: Option<Spanned<Vec<Spanned<String>>>>,
    pub patches: Option<Spanned<RawPatches>>,
    pub init_containers: Option<Spanned<Entries<RawContainer>>>,
    pub containers: Option<Spanned<Entries<RawContainer>>>,
    pub volumes: Option<Spanned<Entries<Spanned<RawVolume>>>>,
    pub service: Option<Spanned<RawService>>,
    /// More access Services (`[services.NAME]`), each named by its key: a read/write split.
    pub services: Option<Spanned<Entries<Spanned<RawService>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawContainer {
    pub image: Option<Spanned<String>>,
    pub pull: Option<Spanned<PullPolicy>>,
    pub cpu: Option<Spanned<RawResource>>,
    pub memory: Option<Spanned<RawResource>>,
    pub ephemeral_storage: Option<Spanned<RawResource>>,
    /// Extended resources by name (`"nvidia.com/gpu" = 1`): request = limit.
    pub resources: Option<Entries<Spanned<IntOrStr>>>,
    pub ports: Option<Entries<Spanned<RawPort>>>,
    pub env: Option<Entries<Spanned<RawEnv>>>,
    pub env_from: Option<Spanned<Vec<Spanned<RawEnvFrom>>>>,
    pub command: Option<Spanned<Vec<String>>>,
    pub args: Option<Spanned<Vec<String>>>,
    pub post_start: Option<Spanned<RawHook>>,
    pub pre_stop: Option<Spanned<RawHook>>,
    pub liveness: Option<Spanned<RawProbe>>,
    pub readiness: Option<Spanned<RawProbe>>,
    pub startup: Option<Spanned<RawProbe>>,
    pub run_as_user: Option<Spanned<i64>>,
    pub read_only_root: Option<Spanned<bool>>,
    pub allow_privilege_escalation: Option<Spanned<bool>>,
    pub privileged: Option<Spanned<bool>>,
    pub capabilities: Option<Spanned<RawCapabilities>>,
    pub mounts: Option<Entries<Spanned<RawMount>>>,
    /// Block volumes by name → device path in the container.
    pub devices: Option<Entries<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVolume {
    pub size: Option<Spanned<String>>,
    pub class: Option<Spanned<String>>,
    pub access: Option<Spanned<OneOrMany<AccessMode>>>,
    pub empty_dir: Option<Spanned<RawEmptyDir>>,
    pub config_map: Option<Spanned<RawKeyed>>,
    pub secret: Option<Spanned<RawKeyed>>,
    pub host_path: Option<Spanned<String>>,
    /// An existing PersistentVolumeClaim, shared by every pod.
    pub claim: Option<Spanned<String>>,
    pub read_only: Option<Spanned<bool>>,
    pub volume_mode: Option<Spanned<VolumeMode>>,
    pub data_source: Option<Spanned<RawDataSource>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub name: Option<Spanned<String>>,
    #[serde(rename = "type")]
    pub kind: Option<Spanned<ServiceType>>,
    pub ports: Option<Spanned<Entries<Spanned<RawServicePort>>>>,
    pub annotations: Option<StrMap>,
    pub external_traffic_policy: Option<Spanned<TrafficPolicy>>,
    pub load_balancer_source_ranges: Option<Vec<Spanned<String>>>,
    pub session_affinity: Option<Spanned<SessionAffinity>>,
    /// Labels the Service selects on besides the app's own (`statefulset.kubernetes.io/pod-name`
    /// for one pod, a role label an operator sets on the primary).
    pub selector: Option<StrMap>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDns {
    pub policy: Option<Spanned<DnsPolicy>>,
    pub nameservers: Option<Vec<Spanned<String>>>,
    pub searches: Option<Vec<Spanned<String>>>,
    pub options: Option<Entries<Spanned<Scalar>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDisruptionBudget {
    pub max_unavailable: Option<Spanned<IntOrStr>>,
    pub min_available: Option<Spanned<IntOrStr>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProbe {
    pub exec: Option<Spanned<Vec<String>>>,
    pub tcp: Option<Spanned<IntOrStr>>,
    pub http: Option<Spanned<RawHttpGet>>,
    pub grpc: Option<Spanned<RawGrpc>>,
    pub delay: Option<Spanned<String>>,
    pub period: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub failures: Option<Spanned<i64>>,
    pub success: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpGet {
    pub path: Option<Spanned<String>>,
    pub port: Option<Spanned<IntOrStr>>,
    pub scheme: Option<Spanned<HttpScheme>>,
    pub headers: Option<StrMap>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum HttpScheme {
    #[serde(rename = "HTTP", alias = "http")]
    Http,
    #[serde(rename = "HTTPS", alias = "https")]
    Https,
}

/// `update = "rolling"` / `"on-delete"`, or a table with `strategy`, `partition`, `max_unavailable`.
#[derive(Debug, Default)]
pub struct RawUpdate {
    pub strategy: Option<Spanned<UpdateKind>>,
    pub partition: Option<Spanned<i64>>,
    pub max_unavailable: Option<Spanned<IntOrStr>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UpdateKind {
    Rolling,
    OnDelete,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpdateTable {
    strategy: Option<Spanned<UpdateKind>>,
    partition: Option<Spanned<i64>>,
    max_unavailable: Option<Spanned<IntOrStr>>,
}

impl<'de> Deserialize<'de> for RawUpdate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawUpdate;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"rolling\", \"on-delete\" or a table { strategy = \"rolling\", partition = 0, max_unavailable = 1 }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawUpdate, E> {
                let kind = UpdateKind::deserialize(de::value::StrDeserializer::<E>::new(v))?;
                // The outer Spanned carries the position of the string form.
                Ok(RawUpdate {
                    strategy: Some(Spanned::new(0..0, kind)),
                    ..RawUpdate::default()
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawUpdate, A::Error> {
                let t = RawUpdateTable::deserialize(MapAccessDeserializer::new(map))?;
                Ok(RawUpdate {
                    strategy: t.strategy,
                    partition: t.partition,
                    max_unavailable: t.max_unavailable,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// `cpu = "250m"` (request = limit) or `cpu = { request = "...", limit = "..." }`.
#[derive(Debug)]
pub enum RawResource {
    Both(String),
    Split {
        request: Option<Spanned<String>>,
        limit: Option<Spanned<String>>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResourceTable {
    request: Option<Spanned<String>>,
    limit: Option<Spanned<String>>,
}

impl<'de> Deserialize<'de> for RawResource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawResource;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a quantity such as \"250m\" or \"1Gi\", or a table { request = \"...\", limit = \"...\" }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawResource, E> {
                Ok(RawResource::Both(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawResource, E> {
                // `cpu = 2` is a natural way to write two cores.
                Ok(RawResource::Both(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawResource, A::Error> {
                let t = RawResourceTable::deserialize(MapAccessDeserializer::new(map))?;
                Ok(RawResource::Split {
                    request: t.request,
                    limit: t.limit,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// `http = 80` or `xport = "33060/tcp"`.
#[derive(Debug)]
pub enum RawPort {
    Number(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawPort {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawPort;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a port number such as 80, or \"number/protocol\" such as \"53/udp\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawPort, E> {
                Ok(RawPort::Number(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawPort, E> {
                Ok(RawPort::Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// An integer or a string: a port by number or name, a count or a percentage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IntOrStr {
    Int(i64),
    Str(String),
}

impl<'de> Deserialize<'de> for IntOrStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IntOrStr;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer or a string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntOrStr, E> {
                Ok(IntOrStr::Int(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IntOrStr, E> {
                Ok(IntOrStr::Str(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A string, integer, float or boolean, kept as text (env literals, DNS option values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// An env value: a literal, or a reference `{ secret = "s", key = "k" }`,
/// `{ config_map = "c", key = "k" }`, `{ field = "metadata.name" }`.
#[derive(Debug)]
pub enum RawEnv {
    Literal(String),
    Ref(Box<RawEnvRef>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEnvRef {
    pub secret: Option<Spanned<String>>,
    pub config_map: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
    pub field: Option<Spanned<String>>,
    /// A container resource (`limits.memory`), with an optional `divisor` (`"1Mi"`).
    pub resource: Option<Spanned<String>>,
    pub divisor: Option<Spanned<String>>,
}

impl<'de> Deserialize<'de> for RawEnv {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawEnv;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a literal value, or a table { secret = \"name\", key = \"key\" }, { config_map = \"name\", key = \"key\" } or { field = \"metadata.name\" }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawEnv, E> {
                Ok(RawEnv::Literal(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawEnv, E> {
                Ok(RawEnv::Literal(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawEnv, E> {
                Ok(RawEnv::Literal(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawEnv, E> {
                Ok(RawEnv::Literal(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawEnv, A::Error> {
                RawEnvRef::deserialize(MapAccessDeserializer::new(map))
                    .map(|r| RawEnv::Ref(Box::new(r)))
            }
        }
        d.deserialize_any(V)
    }
}

/// `data = "/var/lib/mysql"` or `data = { path = "...", sub_path = "...", read_only = true }`.
#[derive(Debug)]
pub struct RawMount {
    pub path: Option<Spanned<String>>,
    pub sub_path: Option<Spanned<String>>,
    pub read_only: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMountTable {
    path: Option<Spanned<String>>,
    sub_path: Option<Spanned<String>>,
    read_only: Option<Spanned<bool>>,
}

impl<'de> Deserialize<'de> for RawMount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawMount;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mount path such as \"/var/lib/mysql\", or a table { path = \"...\", sub_path = \"...\", read_only = true }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawMount, E> {
                Ok(RawMount {
                    // The outer Spanned carries the position; the validator uses that.
                    path: Some(Spanned::new(0..0, v.to_string())),
                    sub_path: None,
                    read_only: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawMount, A::Error> {
                let t = RawMountTable::deserialize(MapAccessDeserializer::new(map))?;
                Ok(RawMount {
                    path: t.path,
                    sub_path: t.sub_path,
                    read_only: t.read_only,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// `empty_dir = true` or `empty_dir = { medium = "Memory", size_limit = "64Mi" }`.
#[derive(Debug)]
pub enum RawEmptyDir {
    Flag(bool),
    Table {
        medium: Option<Spanned<String>>,
        size_limit: Option<Spanned<String>>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmptyDirTable {
    medium: Option<Spanned<String>>,
    size_limit: Option<Spanned<String>>,
}

impl<'de> Deserialize<'de> for RawEmptyDir {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawEmptyDir;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("true, or a table { medium = \"Memory\", size_limit = \"64Mi\" }")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawEmptyDir, E> {
                Ok(RawEmptyDir::Flag(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawEmptyDir, A::Error> {
                let t = RawEmptyDirTable::deserialize(MapAccessDeserializer::new(map))?;
                Ok(RawEmptyDir::Table {
                    medium: t.medium,
                    size_limit: t.size_limit,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// `mysql = 3306` (service port 3306 → the container port named `mysql`) or
/// `mysql = { port = 3306, target = 3306, node_port = 30306 }`.
#[derive(Debug)]
pub enum RawServicePort {
    Number(i64),
    Table {
        port: Option<Spanned<i64>>,
        target: Option<Spanned<IntOrStr>>,
        node_port: Option<Spanned<i64>>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServicePortTable {
    port: Option<Spanned<i64>>,
    target: Option<Spanned<IntOrStr>>,
    node_port: Option<Spanned<i64>>,
}

impl<'de> Deserialize<'de> for RawServicePort {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawServicePort;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a port number, or a table { port = 3306, target = 3306, node_port = 30306 }",
                )
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawServicePort, E> {
                Ok(RawServicePort::Number(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawServicePort, A::Error> {
                let t = RawServicePortTable::deserialize(MapAccessDeserializer::new(map))?;
                Ok(RawServicePort::Table {
                    port: t.port,
                    target: t.target,
                    node_port: t.node_port,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// One value or an array of them (`access = "ReadWriteOnce"` or `["ReadWriteOnce", ...]`).
#[derive(Debug)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany<T>, E> {
                T::deserialize(de::value::StrDeserializer::<E>::new(v)).map(|t| OneOrMany(vec![t]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany<T>, A::Error> {
                let mut out = Vec::new();
                while let Some(t) = seq.next_element()? {
                    out.push(t);
                }
                Ok(OneOrMany(out))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// A TOML table read in document order, keys with their spans. Order matters for containers
/// (the first is kubectl's default) and keeps rendered output in the order the author wrote.
#[derive(Debug)]
pub struct Entries<T>(pub Vec<(Spanned<String>, T)>);

impl<T> Default for Entries<T> {
    fn default() -> Self {
        Entries(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Entries<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Entries<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries<T>, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = map.next_key::<Spanned<String>>()? {
                    let v = map.next_value::<T>()?;
                    out.push((k, v));
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V(PhantomData))
    }
}
