//! App → Kubernetes objects: headless Service, StatefulSet, optional access Service, optional
//! PodDisruptionBudget, each carrying the ownership labels and annotations of `crate::labels`.
//!
//! Objects are sent with server-side apply, where every field present is a field berth claims.
//! So every object is built complete and explicit: no required field left at its default
//! (`selector: {}`, `port: 0`), nothing volatile in immutable fields or in the pod template.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    RollingUpdateStatefulSetStrategy, StatefulSet, StatefulSetOrdinals,
    StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    LocalObjectReference, PodDNSConfig, PodDNSConfigOption, PodSpec, PodTemplateSpec, Service,
    ServicePort as K8sServicePort, ServiceSpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::spec::{
    App, DisruptionBudget, IntOrPercent, PatchTarget, PodManagement, PortRef, UpdateStrategy,
};

mod container;
mod patches;
mod pod;
mod storage;

use container::container;

use crate::labels::{
    AFTER_ANNOTATION, APP_ANNOTATION, COMMIT_ANNOTATION, SOURCE_ANNOTATION, app_value,
    owner_labels, selector_labels,
};

/// What rendering needs besides the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderContext {
    /// This berth instance (config `instance`).
    pub instance: String,
    /// The spec file relative to the spec directory, with '/' separators.
    pub source: String,
    /// The config repo's commit, when known.
    pub commit: Option<String>,
}

impl RenderContext {
    /// The context for `app` under `instance`, without a commit.
    pub fn new(instance: &str, app: &App) -> RenderContext {
        RenderContext {
            instance: instance.to_string(),
            source: source_value(&app.source_path),
            commit: None,
        }
    }

    pub fn with_commit(mut self, commit: Option<String>) -> RenderContext {
        self.commit = commit;
        self
    }
}

/// The value of [`SOURCE_ANNOTATION`] for a spec path relative to the spec directory: '/'
/// separators on every platform. Use it to match a [`crate::spec::BrokenSpec`] to live objects.
pub fn source_value(relative: &std::path::Path) -> String {
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// The objects of one app.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub headless: Service,
    pub statefulset: StatefulSet,
    pub service: Option<Service>,
    /// `[services.NAME]`, by name.
    pub services: Vec<Service>,
    pub pdb: Option<PodDisruptionBudget>,
    /// `[patches]`, applied by [`Rendered::to_values`].
    pub patches: Vec<crate::spec::ObjectPatch>,
}

impl Rendered {
    /// The objects as JSON, in apply order: headless Service, StatefulSet, access Services,
    /// PDB, each with its `[patches]` applied (an operation that does not apply is left out; see
    /// [`patch_errors`]).
    pub fn to_values(&self) -> Vec<serde_json::Value> {
        self.targets()
            .into_iter()
            .filter_map(|target| {
                let mut value = self.unpatched(&target)?;
                patches::apply(&self.patches, &target, &mut value);
                Some(value)
            })
            .collect()
    }

    /// Every object a patch may name, in apply order (`[service]` and the PDB whether or not
    /// they are rendered).
    fn targets(&self) -> Vec<PatchTarget> {
        let mut targets = vec![
            PatchTarget::Headless,
            PatchTarget::StatefulSet,
            PatchTarget::Service,
        ];
        targets.extend(
            self.services
                .iter()
                .filter_map(|s| s.metadata.name.clone())
                .map(PatchTarget::NamedService),
        );
        targets.push(PatchTarget::Budget);
        targets
    }

    /// One object as JSON before `[patches]`.
    fn unpatched(&self, target: &PatchTarget) -> Option<serde_json::Value> {
        match target {
            PatchTarget::Headless => Some(to_value(&self.headless)),
            PatchTarget::StatefulSet => Some(to_value(&self.statefulset)),
            PatchTarget::Service => self.service.as_ref().map(to_value),
            PatchTarget::NamedService(name) => self
                .services
                .iter()
                .find(|s| s.metadata.name.as_ref() == Some(name))
                .map(to_value),
            PatchTarget::Budget => self.pdb.as_ref().map(to_value),
        }
    }
}

pub use patches::{patch_errors, refuse_unpatchable};

fn to_value<T: serde::Serialize>(obj: &T) -> serde_json::Value {
    // k8s-openapi types serialize infallibly (no maps with non-string keys).
    serde_json::to_value(obj).unwrap_or(serde_json::Value::Null)
}

/// Labels of every object and of the pods: user labels, then selector and ownership labels
/// (validation forbids user labels with those keys, so nothing is overwritten).
fn object_labels(app: &App, ctx: &RenderContext) -> BTreeMap<String, String> {
    let mut labels = app.labels.clone();
    labels.extend(selector_labels(&app.name, &ctx.instance));
    labels.extend(owner_labels(&ctx.instance));
    labels
}

/// Annotations of the top-level objects. Never used in the pod template: a new commit must not
/// roll the pods.
fn object_annotations(app: &App, ctx: &RenderContext) -> BTreeMap<String, String> {
    let mut a = BTreeMap::from([
        (SOURCE_ANNOTATION.to_string(), ctx.source.clone()),
        (
            APP_ANNOTATION.to_string(),
            app_value(&app.namespace, &app.name),
        ),
    ]);
    if let Some(commit) = &ctx.commit {
        a.insert(COMMIT_ANNOTATION.to_string(), commit.clone());
    }
    if !app.after.is_empty() {
        let after: Vec<String> = app.after.iter().map(|d| d.key().to_string()).collect();
        a.insert(AFTER_ANNOTATION.to_string(), after.join(","));
    }
    a
}

fn meta(
    name: &str,
    app: &App,
    ctx: &RenderContext,
    extra_annotations: &BTreeMap<String, String>,
) -> ObjectMeta {
    let mut annotations = extra_annotations.clone();
    annotations.extend(object_annotations(app, ctx));
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(app.namespace.clone()),
        labels: Some(object_labels(app, ctx)),
        annotations: Some(annotations),
        ..ObjectMeta::default()
    }
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

fn non_empty_map(m: BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!m.is_empty()).then_some(m)
}

fn int_or_string(v: &IntOrPercent) -> IntOrString {
    match v {
        IntOrPercent::Int(i) => IntOrString::Int(*i),
        IntOrPercent::Percent(p) => IntOrString::String(p.clone()),
    }
}

fn port_ref(p: &PortRef) -> IntOrString {
    match p {
        PortRef::Number(n) => IntOrString::Int(i32::from(*n)),
        PortRef::Name(s) => IntOrString::String(s.clone()),
    }
}

/// Render one app.
pub fn render_app(app: &App, ctx: &RenderContext) -> Rendered {
    let selector = selector_labels(&app.name, &ctx.instance);
    Rendered {
        headless: headless_service(app, ctx, &selector),
        statefulset: statefulset(app, ctx, &selector),
        service: app
            .service
            .as_ref()
            .map(|s| access_service(app, s, ctx, &selector)),
        services: app
            .services
            .iter()
            .map(|s| access_service(app, s, ctx, &selector))
            .collect(),
        pdb: app
            .disruption_budget
            .as_ref()
            .map(|b| pdb(app, b, ctx, &selector)),
        patches: app.patches.clone(),
    }
}

fn headless_service(
    app: &App,
    ctx: &RenderContext,
    selector: &BTreeMap<String, String>,
) -> Service {
    let ports: Vec<K8sServicePort> = app
        .container_ports()
        .map(|p| K8sServicePort {
            name: Some(p.name.clone()),
            port: i32::from(p.number),
            target_port: Some(IntOrString::Int(i32::from(p.number))),
            protocol: Some(p.protocol.as_str().to_string()),
            ..K8sServicePort::default()
        })
        .collect();
    Service {
        metadata: meta(&app.headless, app, ctx, &app.set.headless_annotations),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_string()),
            cluster_ip: Some("None".to_string()),
            // Peers must find each other before they are Ready (cluster bootstrap).
            publish_not_ready_addresses: Some(true),
            selector: Some(selector.clone()),
            ports: non_empty(ports),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

fn access_service(
    app: &App,
    svc: &crate::spec::AccessService,
    ctx: &RenderContext,
    selector: &BTreeMap<String, String>,
) -> Service {
    let ports = svc
        .ports
        .iter()
        .map(|p| K8sServicePort {
            name: Some(p.name.clone()),
            port: i32::from(p.port),
            target_port: Some(port_ref(&p.target)),
            node_port: p.node_port.map(i32::from),
            protocol: Some(p.protocol.as_str().to_string()),
            ..K8sServicePort::default()
        })
        .collect();
    let mut selector = selector.clone();
    selector.extend(svc.selector.clone());
    Service {
        metadata: meta(&svc.name, app, ctx, &svc.annotations),
        spec: Some(ServiceSpec {
            type_: Some(svc.kind.as_str().to_string()),
            selector: Some(selector),
            ports: Some(ports),
            external_traffic_policy: svc
                .traffic
                .external_traffic_policy
                .map(|p| p.as_str().to_string()),
            load_balancer_source_ranges: non_empty(svc.traffic.load_balancer_source_ranges.clone()),
            session_affinity: svc.traffic.session_affinity.map(|a| a.as_str().to_string()),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

fn pdb(
    app: &App,
    b: &DisruptionBudget,
    ctx: &RenderContext,
    selector: &BTreeMap<String, String>,
) -> PodDisruptionBudget {
    let (max_unavailable, min_available) = match b {
        DisruptionBudget::MaxUnavailable(v) => (Some(int_or_string(v)), None),
        DisruptionBudget::MinAvailable(v) => (None, Some(int_or_string(v))),
    };
    PodDisruptionBudget {
        metadata: meta(&app.name, app, ctx, &BTreeMap::new()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable,
            min_available,
            selector: Some(LabelSelector {
                match_labels: Some(selector.clone()),
                match_expressions: None,
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    }
}

fn statefulset(app: &App, ctx: &RenderContext, selector: &BTreeMap<String, String>) -> StatefulSet {
    let update_strategy = match &app.update {
        UpdateStrategy::Rolling {
            partition,
            max_unavailable,
        } => StatefulSetUpdateStrategy {
            type_: Some("RollingUpdate".to_string()),
            rolling_update: (partition.is_some() || max_unavailable.is_some()).then(|| {
                RollingUpdateStatefulSetStrategy {
                    partition: *partition,
                    max_unavailable: max_unavailable.as_ref().map(int_or_string),
                }
            }),
        },
        UpdateStrategy::OnDelete => StatefulSetUpdateStrategy {
            type_: Some("OnDelete".to_string()),
            rolling_update: None,
        },
    };
    let claims = storage::claim_templates(app, selector);

    let mut pod_labels = app.labels.clone();
    pod_labels.extend(selector.clone());
    pod_labels.extend(owner_labels(&ctx.instance));

    StatefulSet {
        metadata: meta(&app.name, app, ctx, &app.set.annotations),
        spec: Some(StatefulSetSpec {
            // External: the field is left to whoever scales the set, so no apply claims it.
            replicas: app.replicas.count(),
            min_ready_seconds: app.set.min_ready_seconds,
            ordinals: app
                .set
                .start_ordinal
                .map(|start| StatefulSetOrdinals { start: Some(start) }),
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                match_expressions: None,
            },
            service_name: Some(app.headless.clone()),
            pod_management_policy: Some(
                match app.pod_management {
                    PodManagement::Ordered => "OrderedReady",
                    PodManagement::Parallel => "Parallel",
                }
                .to_string(),
            ),
            update_strategy: Some(update_strategy),
            // Volumes survive scale-down and removal, whatever the cluster's default.
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some("Retain".to_string()),
                    when_scaled: Some("Retain".to_string()),
                },
            ),
            volume_claim_templates: non_empty(claims),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: non_empty_map(app.annotations.clone()),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec(app, selector)),
            },
            ..StatefulSetSpec::default()
        }),
        status: None,
    }
}

fn pod_spec(app: &App, selector: &BTreeMap<String, String>) -> PodSpec {
    let volumes = storage::pod_volumes(app);

    let (dns_policy, dns_config) = match &app.dns {
        None => (None, None),
        Some(d) => {
            let config = PodDNSConfig {
                nameservers: non_empty(d.nameservers.clone()),
                searches: non_empty(d.searches.clone()),
                options: non_empty(
                    d.options
                        .iter()
                        .map(|(k, v)| PodDNSConfigOption {
                            name: Some(k.clone()),
                            value: v.clone(),
                        })
                        .collect(),
                ),
            };
            let empty = config.nameservers.is_none()
                && config.searches.is_none()
                && config.options.is_none();
            (
                d.policy.map(|p| p.as_str().to_string()),
                (!empty).then_some(config),
            )
        }
    };

    PodSpec {
        init_containers: non_empty(app.init_containers.iter().map(container).collect()),
        containers: app.containers.iter().map(container).collect(),
        volumes: non_empty(volumes),
        image_pull_secrets: non_empty(
            app.pull_secrets
                .iter()
                .map(|s| LocalObjectReference { name: s.clone() })
                .collect(),
        ),
        security_context: pod::pod_security_context(app),
        dns_policy,
        dns_config,
        node_selector: non_empty_map(app.node_selector.clone()),
        affinity: pod::affinity(app, selector),
        tolerations: pod::tolerations(app),
        topology_spread_constraints: pod::topology_spread(app, selector),
        priority_class_name: app.scheduling.priority_class.clone(),
        termination_grace_period_seconds: app.termination_grace_seconds,
        service_account_name: app.service_account.clone(),
        ..PodSpec::default()
    }
}

/// Multi-document YAML for `kubectl apply -f -`: per app the headless Service, the StatefulSet,
/// the access Service and the PodDisruptionBudget, each with apiVersion and kind.
pub fn render_yaml(rendered: &[Rendered]) -> String {
    let mut out = String::new();
    for r in rendered {
        r.write_yaml(&mut out);
    }
    out
}

impl Rendered {
    /// Appends the objects to `out` as YAML documents, in [`Rendered::to_values`]'s order and
    /// text.
    ///
    /// Without `[patches]` each object is written straight from its k8s-openapi type: those
    /// write their fields in the byte order of the field names, which is the order of a
    /// `serde_json::Value` map, so the text is the same (test
    /// `typed_yaml_is_the_yaml_of_the_values`) without a JSON tree of every object built first
    /// and dropped: about a third of the CPU time of rendering 10,000 apps.
    pub fn write_yaml(&self, out: &mut String) {
        if !self.patches.is_empty() {
            for value in self.to_values() {
                write_document(out, &value);
            }
            return;
        }
        write_document(out, &self.headless);
        write_document(out, &self.statefulset);
        if let Some(service) = &self.service {
            write_document(out, service);
        }
        for service in &self.services {
            write_document(out, service);
        }
        if let Some(pdb) = &self.pdb {
            write_document(out, pdb);
        }
    }
}

/// `---` and one object as a YAML document body, written in place.
fn write_document<T: serde::Serialize>(out: &mut String, object: &T) {
    out.push_str("---\n");
    write_body(out, object);
}

/// One object as a YAML document body (no `---`).
pub fn to_yaml(value: &serde_json::Value) -> String {
    let mut text = String::new();
    write_body(&mut text, value);
    text
}

/// One object's YAML appended to `out`, ending in a newline.
fn write_body<T: serde::Serialize>(out: &mut String, object: &T) {
    let start = out.len();
    // k8s-openapi types and JSON values serialize infallibly; a failure leaves an empty body.
    if serde_saphyr::to_fmt_writer(out, object).is_err() {
        out.truncate(start);
    }
    if !out[start..].ends_with('\n') {
        out.push('\n');
    }
}

#[cfg(test)]
mod tests;
