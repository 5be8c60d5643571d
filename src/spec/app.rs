//! The validated app: what a spec means once every rule has passed. Plain data with public fields,
//! so the renderer can build objects from it and the planner can compare two of them field by
//! field (`spec_summary`). Nothing here can be nonsense: [`super::validate`] is the only way in.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::quantity::Quantity;

/// The object of an app a JSON patch applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PatchTarget {
    StatefulSet,
    Headless,
    /// The `[service]` access Service.
    Service,
    /// A `[services.NAME]` access Service, by its name.
    NamedService(String),
    Budget,
}

impl PatchTarget {
    /// How `[patches]` spells the target: `statefulset`, `services.read`.
    pub fn key(&self) -> String {
        match self {
            PatchTarget::StatefulSet => "statefulset".to_string(),
            PatchTarget::Headless => "headless".to_string(),
            PatchTarget::Service => "service".to_string(),
            PatchTarget::NamedService(name) => format!("services.{name}"),
            PatchTarget::Budget => "budget".to_string(),
        }
    }
}

/// One RFC 6902 operation of `[patches]`, applied to a rendered object after everything else.
#[derive(Debug, Clone, PartialEq, Hash, Serialize)]
pub struct ObjectPatch {
    pub target: PatchTarget,
    /// The operation as JSON text (`{"op":"add","path":...,"value":...}`), checked to parse.
    pub operation: String,
    /// Where it is written, for a diagnostic when it does not apply.
    #[serde(skip)]
    pub at: Option<super::diag::Location>,
}

/// An app named in `after`, and where (for the cross-file rules' diagnostics).
#[derive(Debug, Clone, PartialEq, Hash, Serialize)]
pub struct Dependency {
    pub namespace: String,
    pub name: String,
    #[serde(skip)]
    pub at: Option<super::diag::Location>,
}

impl Dependency {
    pub fn key(&self) -> AppKey {
        AppKey::new(self.namespace.clone(), self.name.clone())
    }
}

mod pod;
pub use pod::*;

/// One stateful app: a StatefulSet, its headless Service, an optional access Service and an
/// optional PodDisruptionBudget.
#[derive(Debug, Clone, PartialEq, Hash, Serialize)]
pub struct App {
    /// StatefulSet name: the file stem unless the spec sets `name`.
    pub name: String,
    pub namespace: String,
    /// The spec file, relative to the spec directory (goes into the `berth.dev/source` annotation).
    pub source_path: PathBuf,
    pub replicas: Replicas,
    pub pod_management: PodManagement,
    pub update: UpdateStrategy,
    /// Added to every object and to the pods (config defaults merged under the spec's own).
    pub labels: BTreeMap<String, String>,
    /// Pod annotations.
    pub annotations: BTreeMap<String, String>,
    pub pull_secrets: Vec<String>,
    pub run_as_user: Option<i64>,
    pub fs_group: Option<i64>,
    /// The rest of the pod securityContext (the `security` preset applied).
    pub security: PodSecurity,
    pub dns: Option<Dns>,
    /// Name of the headless Service (the StatefulSet's serviceName).
    pub headless: String,
    pub termination_grace_seconds: Option<i64>,
    pub service_account: Option<String>,
    pub node_selector: BTreeMap<String, String>,
    pub spread: Option<Spread>,
    pub scheduling: Scheduling,
    pub set: SetOptions,
    pub disruption_budget: Option<DisruptionBudget>,
    /// The operator allows berth to recreate the StatefulSet when an immutable field changes.
    pub allow_recreate: bool,
    /// The operator allows a recreate that leaves claims behind (a volume renamed or no longer
    /// declared): the pods start on new, empty claims. Separate from `allow_recreate`, which
    /// keeps every pod on its data.
    pub abandon_claims: bool,
    /// The operator allows berth to take over existing objects of the same name it does not own.
    pub adopt: bool,
    /// berth leaves the app entirely alone: no writes, no drift correction, no removal.
    pub suspend: bool,
    /// Apps this one is created and updated after, once they are healthy (`after`).
    pub after: Vec<Dependency>,
    /// `[patches]`: JSON patch operations on the rendered objects, in the order written.
    pub patches: Vec<ObjectPatch>,
    pub init_containers: Vec<Container>,
    pub containers: Vec<Container>,
    /// In spec order; claim templates and pod volumes together (see [`VolumeKind`]).
    pub volumes: Vec<Volume>,
    pub service: Option<AccessService>,
    /// `[services.NAME]`: further access Services, by name.
    pub services: Vec<AccessService>,
}

/// Which app: its namespace and name. Two apps with the same key are the same app, in the
/// directory and in the cluster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct AppKey {
    pub namespace: String,
    pub name: String,
}

impl AppKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> AppKey {
        AppKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

/// `namespace/name`, as berth prints an app everywhere.
impl std::fmt::Display for AppKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl App {
    /// The app's key.
    pub fn key(&self) -> AppKey {
        AppKey::new(&self.namespace, &self.name)
    }

    /// Every access Service: `[service]` first, then `[services.NAME]` by name.
    pub fn access_services(&self) -> impl Iterator<Item = &AccessService> {
        self.service.iter().chain(&self.services)
    }

    /// Ports of the app containers (not init containers), in spec order.
    pub fn container_ports(&self) -> impl Iterator<Item = &Port> {
        self.containers.iter().flat_map(|c| c.ports.iter())
    }

    /// Gives back the room the lists grew into while the spec was read: a list pushed to
    /// holds four entries' room for one or two, about 1.2 KiB an app of the usual shape, and a
    /// loaded fleet is kept for as long as the daemon runs (12 MiB at 10,000 apps).
    pub(super) fn shrink_to_fit(&mut self) {
        self.pull_secrets.shrink_to_fit();
        self.after.shrink_to_fit();
        self.patches.shrink_to_fit();
        for container in self.init_containers.iter_mut().chain(&mut self.containers) {
            container.shrink_to_fit();
        }
        self.init_containers.shrink_to_fit();
        self.containers.shrink_to_fit();
        for volume in &mut self.volumes {
            if let VolumeKind::Claim { access, .. } = &mut volume.kind {
                access.shrink_to_fit();
            }
        }
        self.volumes.shrink_to_fit();
        for service in self.service.iter_mut().chain(&mut self.services) {
            service.ports.shrink_to_fit();
        }
        self.services.shrink_to_fit();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PodManagement {
    /// OrderedReady: one pod at a time, each Ready before the next.
    Ordered,
    /// Parallel: all pods at once.
    Parallel,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "strategy", rename_all = "kebab-case")]
pub enum UpdateStrategy {
    Rolling {
        partition: Option<i32>,
        max_unavailable: Option<IntOrPercent>,
    },
    OnDelete,
}

/// An integer or a percentage such as "25%" (maxUnavailable, minAvailable).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum IntOrPercent {
    Int(i32),
    Percent(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Dns {
    pub policy: Option<DnsPolicy>,
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    /// name → value; `None` for options without a value (e.g. `use-vc`).
    pub options: BTreeMap<String, Option<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DnsPolicy {
    ClusterFirst,
    ClusterFirstWithHostNet,
    Default,
    None,
}

impl DnsPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            DnsPolicy::ClusterFirst => "ClusterFirst",
            DnsPolicy::ClusterFirstWithHostNet => "ClusterFirstWithHostNet",
            DnsPolicy::Default => "Default",
            DnsPolicy::None => "None",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Spread {
    /// At most one pod per node.
    Hostname,
    /// At most one pod per zone.
    Zone,
}

impl Spread {
    pub fn topology_key(self) -> &'static str {
        match self {
            Spread::Hostname => "kubernetes.io/hostname",
            Spread::Zone => "topology.kubernetes.io/zone",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DisruptionBudget {
    MaxUnavailable(IntOrPercent),
    MinAvailable(IntOrPercent),
}

#[derive(Debug, Clone, PartialEq, Hash, Serialize)]
pub struct Container {
    pub name: String,
    pub image: String,
    pub pull: Option<PullPolicy>,
    pub cpu: Option<Resource>,
    pub memory: Option<Resource>,
    pub ephemeral_storage: Option<Resource>,
    pub extended: Extended,
    pub ports: Vec<Port>,
    pub env: Vec<EnvVar>,
    pub env_from: Vec<EnvFrom>,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub post_start: Option<Hook>,
    pub pre_stop: Option<Hook>,
    pub liveness: Option<Probe>,
    pub readiness: Option<Probe>,
    pub startup: Option<Probe>,
    pub run_as_user: Option<i64>,
    pub security: ContainerSecurity,
    pub mounts: Vec<Mount>,
    /// Block volumes: volume name → device path.
    pub devices: Vec<(String, String)>,
}

impl Container {
    fn shrink_to_fit(&mut self) {
        self.ports.shrink_to_fit();
        self.env.shrink_to_fit();
        self.env_from.shrink_to_fit();
        self.command.shrink_to_fit();
        self.args.shrink_to_fit();
        self.mounts.shrink_to_fit();
        self.devices.shrink_to_fit();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// Request and limit of one resource; the shorthand `cpu = "250m"` sets both.
#[derive(Debug, Clone, PartialEq, Hash, Serialize)]
pub struct Resource {
    pub request: Option<Quantity>,
    pub limit: Option<Quantity>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Port {
    pub name: String,
    pub number: u16,
    pub protocol: Protocol,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct EnvVar {
    pub name: String,
    pub value: EnvValue,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvValue {
    Literal(String),
    Secret {
        name: String,
        key: String,
    },
    ConfigMap {
        name: String,
        key: String,
    },
    /// A downward-API field path such as `metadata.name` or `status.podIP`.
    Field(String),
    /// A resource of this container (`limits.memory`), in units of `divisor`.
    Resource {
        resource: String,
        divisor: Option<Quantity>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Probe {
    pub action: ProbeAction,
    pub delay_seconds: Option<i32>,
    pub period_seconds: Option<i32>,
    pub timeout_seconds: Option<i32>,
    pub failures: Option<i32>,
    pub success: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeAction {
    Exec(Vec<String>),
    Tcp(PortRef),
    Http(HttpGet),
    Grpc { port: u16, service: Option<String> },
}

/// An HTTP GET of a probe or a lifecycle hook.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct HttpGet {
    pub path: String,
    pub port: PortRef,
    pub scheme: Option<String>,
    /// Request headers, in name order.
    pub headers: BTreeMap<String, String>,
}

/// A port given by number or by the name of a container port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum PortRef {
    Number(u16),
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Mount {
    pub volume: String,
    pub path: String,
    pub sub_path: Option<String>,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Hash, Serialize)]
pub struct Volume {
    pub name: String,
    pub kind: VolumeKind,
}

#[derive(Debug, Clone, PartialEq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VolumeKind {
    /// A volumeClaimTemplate: one PVC per pod, kept when pods or the app go away.
    Claim {
        size: Quantity,
        class: Option<String>,
        access: Vec<AccessMode>,
        /// volumeMode Block: a raw device, used through `devices`.
        block: bool,
        data_source: Option<DataSource>,
    },
    EmptyDir {
        medium: Option<String>,
        size_limit: Option<Quantity>,
    },
    ConfigMap(KeyedSource),
    Secret(KeyedSource),
    HostPath(String),
    /// An existing PersistentVolumeClaim, the same for every pod.
    ExistingClaim {
        name: String,
        read_only: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AccessMode {
    ReadWriteOnce,
    ReadOnlyMany,
    ReadWriteMany,
    ReadWriteOncePod,
}

impl AccessMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessMode::ReadWriteOnce => "ReadWriteOnce",
            AccessMode::ReadOnlyMany => "ReadOnlyMany",
            AccessMode::ReadWriteMany => "ReadWriteMany",
            AccessMode::ReadWriteOncePod => "ReadWriteOncePod",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct AccessService {
    pub name: String,
    pub kind: ServiceType,
    pub ports: Vec<ServicePort>,
    pub annotations: BTreeMap<String, String>,
    pub traffic: ServiceTraffic,
    /// Labels selected on besides the app's own (`selector`).
    pub selector: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ServiceType {
    ClusterIP,
    NodePort,
    LoadBalancer,
}

impl ServiceType {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct ServicePort {
    pub name: String,
    pub port: u16,
    pub target: PortRef,
    pub node_port: Option<u16>,
    pub protocol: Protocol,
}
