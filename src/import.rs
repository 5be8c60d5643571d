//! `berth import`: live objects (a StatefulSet, its headless Service, an optional access Service
//! and an optional PodDisruptionBudget) → the compact TOML spec that renders them again.
//!
//! The pure part ([`import`]) first strips what the API server adds by default
//! ([`strip_server_defaults`]), so only what someone chose is left, then maps each field to its
//! spec spelling and emits only what differs from berth's defaults. It then checks its own work:
//! the emitted spec is validated and rendered, and every live field the render does not
//! reproduce is reported as a note (a TOML comment in the output, and a warning on stderr).
//!
//! The kube-facing part ([`fetch`], [`list`]) only reads, with the [`Cluster`]'s client.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use kube::api::{Api, ListParams};
use serde_json::{Map, Value};

use crate::cluster::Cluster;
use crate::config::Config;
use crate::plan::{FINGERPRINT_ANNOTATION, normalize};
use crate::render::{
    APP_ANNOTATION, APP_INSTANCE_LABEL, COMMIT_ANNOTATION, INSTANCE_LABEL, MANAGED_BY_LABEL,
    MANAGED_BY_VALUE, NAME_LABEL, RenderContext, SOURCE_ANNOTATION, render_app, selector_labels,
};

/// The live objects of one app, as JSON.
#[derive(Debug, Clone, Default)]
pub struct LiveObjects {
    pub statefulset: Value,
    /// The Service named by the StatefulSet's `serviceName`, when it exists.
    pub headless: Option<Value>,
    /// The Service (other than the headless one) selecting the app's pods, when there is one.
    pub service: Option<Value>,
    pub pdb: Option<Value>,
    /// Further objects that select the pods but have no place in a spec (a second access
    /// Service, a second PDB): named in the notes so nothing is dropped silently.
    pub extra: Vec<String>,
}

/// What the import is relative to: berth's defaults come from the config, ownership from the
/// instance.
#[derive(Debug, Clone, Copy)]
pub struct ImportContext<'a> {
    pub config: &'a Config,
    /// The file stem the spec will be saved under; `name` is emitted when it differs.
    pub file_stem: Option<&'a str>,
}

/// One imported spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub namespace: String,
    pub name: String,
    /// The spec text, with the notes as comments at the top.
    pub text: String,
    /// Live fields the spec cannot express, adoption and recreate advice.
    pub notes: Vec<String>,
}

/// Reading the live objects failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("StatefulSet {namespace}/{name} not found")]
    NotFound { namespace: String, name: String },
    #[error("reading StatefulSet {namespace}/{name}")]
    GetStatefulSet {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("listing {what}")]
    List {
        what: String,
        #[source]
        source: kube::Error,
    },
}

// ---------------------------------------------------------------------------------------------
// Server defaults
// ---------------------------------------------------------------------------------------------

fn remove_if(map: &mut Map<String, Value>, key: &str, default: &Value) {
    if map.get(key) == Some(default) {
        map.remove(key);
    }
}

fn obj_mut<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    v.get_mut(key).and_then(Value::as_object_mut)
}

fn remove_if_empty(map: &mut Map<String, Value>, key: &str) {
    let empty = match map.get(key) {
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Null) => true,
        _ => false,
    };
    if empty {
        map.remove(key);
    }
}

/// The pull policy Kubernetes picks when none is given: Always for `:latest` or an untagged
/// image, IfNotPresent otherwise.
fn default_pull(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn strip_probe(p: &mut Map<String, Value>) {
    for (key, default) in [
        ("initialDelaySeconds", 0),
        ("timeoutSeconds", 1),
        ("periodSeconds", 10),
        ("successThreshold", 1),
        ("failureThreshold", 3),
    ] {
        remove_if(p, key, &Value::from(default));
    }
    if let Some(http) = p.get_mut("httpGet").and_then(Value::as_object_mut) {
        remove_if(http, "scheme", &Value::from("HTTP"));
    }
}

fn strip_container(c: &mut Map<String, Value>) {
    remove_if(
        c,
        "terminationMessagePath",
        &Value::from("/dev/termination-log"),
    );
    remove_if(c, "terminationMessagePolicy", &Value::from("File"));
    if let Some(image) = c.get("image").and_then(Value::as_str) {
        let pull = Value::from(default_pull(image));
        remove_if(c, "imagePullPolicy", &pull);
    }
    for port in c
        .get_mut("ports")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
    {
        remove_if(port, "protocol", &Value::from("TCP"));
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).and_then(Value::as_object_mut) {
            strip_probe(p);
        }
    }
    for var in c
        .get_mut("env")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(field) = var
            .get_mut("valueFrom")
            .and_then(|f| f.get_mut("fieldRef"))
            .and_then(Value::as_object_mut)
        {
            remove_if(field, "apiVersion", &Value::from("v1"));
        }
    }
    remove_if_empty(c, "resources");
    remove_if_empty(c, "securityContext");
}

fn strip_pod_spec(pod: &mut Map<String, Value>) {
    remove_if(pod, "restartPolicy", &Value::from("Always"));
    remove_if(pod, "terminationGracePeriodSeconds", &Value::from(30));
    remove_if(pod, "dnsPolicy", &Value::from("ClusterFirst"));
    remove_if(pod, "schedulerName", &Value::from("default-scheduler"));
    remove_if(pod, "enableServiceLinks", &Value::from(true));
    remove_if_empty(pod, "securityContext");
    // The deprecated alias the server fills in from serviceAccountName.
    if pod.get("serviceAccount") == pod.get("serviceAccountName") {
        pod.remove("serviceAccount");
    }
    for list in ["containers", "initContainers"] {
        for c in pod
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
            .filter_map(Value::as_object_mut)
        {
            strip_container(c);
        }
    }
    for v in pod
        .get_mut("volumes")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
    {
        for source in ["configMap", "secret"] {
            if let Some(s) = v.get_mut(source).and_then(Value::as_object_mut) {
                remove_if(s, "defaultMode", &Value::from(420));
            }
        }
        if let Some(h) = v.get_mut("hostPath").and_then(Value::as_object_mut) {
            remove_if(h, "type", &Value::from(""));
        }
    }
}

fn strip_statefulset(spec: &mut Map<String, Value>) {
    remove_if(spec, "revisionHistoryLimit", &Value::from(10));
    remove_if(spec, "podManagementPolicy", &Value::from("OrderedReady"));
    remove_if(spec, "minReadySeconds", &Value::from(0));
    if let Some(strategy) = spec
        .get_mut("updateStrategy")
        .and_then(Value::as_object_mut)
    {
        if let Some(rolling) = strategy
            .get_mut("rollingUpdate")
            .and_then(Value::as_object_mut)
        {
            // The server fills in partition 0 and maxUnavailable 1 only when rollingUpdate is
            // given at all, and a spec that gives neither renders no rollingUpdate. So the
            // partition stays (it keeps rollingUpdate present), and maxUnavailable 1 goes only
            // beside it.
            if rolling.contains_key("partition") {
                remove_if(rolling, "maxUnavailable", &Value::from(1));
            }
        }
        remove_if_empty(strategy, "rollingUpdate");
    }
    for t in spec
        .get_mut("volumeClaimTemplates")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(s) = obj_mut(t, "spec") {
            remove_if(s, "volumeMode", &Value::from("Filesystem"));
        }
    }
    if let Some(pod) = spec
        .get_mut("template")
        .and_then(|t| t.get_mut("spec"))
        .and_then(Value::as_object_mut)
    {
        strip_pod_spec(pod);
    }
}

fn strip_service(spec: &mut Map<String, Value>) {
    remove_if(spec, "sessionAffinity", &Value::from("None"));
    remove_if(spec, "internalTrafficPolicy", &Value::from("Cluster"));
    remove_if(spec, "externalTrafficPolicy", &Value::from("Cluster"));
    remove_if(spec, "allocateLoadBalancerNodePorts", &Value::from(true));
    remove_if(spec, "ipFamilyPolicy", &Value::from("SingleStack"));
    spec.remove("ipFamilies");
    // Allocated addresses are the server's; only "None" (headless) is a choice.
    if spec.get("clusterIP").and_then(Value::as_str) != Some("None") {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    } else {
        remove_if(spec, "clusterIPs", &serde_json::json!(["None"]));
    }
}

/// The object without server noise ([`normalize`]) and without the values the API server fills
/// in when they are not given (probe timings, pull policy for a tagged image, partition 0, …).
/// What is left is what someone chose; two objects that compare equal after this are stored
/// alike by the server.
pub fn strip_server_defaults(object: &Value) -> Value {
    let mut v = normalize(object);
    let kind = v
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some(spec) = obj_mut(&mut v, "spec") {
        match kind.as_str() {
            "StatefulSet" => strip_statefulset(spec),
            "Service" => strip_service(spec),
            _ => {}
        }
    }
    v
}

// ---------------------------------------------------------------------------------------------
// TOML emission
// ---------------------------------------------------------------------------------------------

/// A TOML value, written inline (`{ a = 1 }`, `["x"]`): what a compact spec is made of.
#[derive(Debug, Clone, PartialEq)]
enum T {
    Str(String),
    Int(i64),
    Bool(bool),
    Arr(Vec<T>),
    Tab(Vec<(String, T)>),
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn key(k: &str) -> String {
    let bare = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if bare { k.to_string() } else { quote(k) }
}

impl T {
    fn inline(&self) -> String {
        match self {
            T::Str(s) => quote(s),
            T::Int(i) => i.to_string(),
            T::Bool(b) => b.to_string(),
            T::Arr(items) => format!(
                "[{}]",
                items.iter().map(T::inline).collect::<Vec<_>>().join(", ")
            ),
            T::Tab(entries) if entries.is_empty() => "{}".to_string(),
            T::Tab(entries) => format!(
                "{{ {} }}",
                entries
                    .iter()
                    .map(|(k, v)| format!("{} = {}", key(k), v.inline()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

fn s(v: impl Into<String>) -> T {
    T::Str(v.into())
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

fn str_arr(v: &Value) -> T {
    T::Arr(strs(v).into_iter().map(T::Str).collect())
}

fn str_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect()
}

fn tab_of(map: &BTreeMap<String, String>) -> T {
    T::Tab(map.iter().map(|(k, v)| (k.clone(), s(v))).collect())
}

fn int_or_str(v: &Value) -> Option<T> {
    match v {
        Value::Number(n) => n.as_i64().map(T::Int),
        Value::String(s) => Some(T::Str(s.clone())),
        _ => None,
    }
}

fn secs(n: i64) -> T {
    T::Str(format!("{n}s"))
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A spec under construction: top-level keys, then `[section]` tables in order.
#[derive(Default)]
struct Doc {
    top: Vec<(String, T)>,
    sections: Vec<(String, Vec<(String, T)>)>,
}

impl Doc {
    fn text(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.top {
            let _ = writeln!(out, "{} = {}", key(k), v.inline());
        }
        for (name, entries) in &self.sections {
            if !out.is_empty() {
                out.push('\n');
            }
            let _ = writeln!(out, "[{name}]");
            for (k, v) in entries {
                let _ = writeln!(out, "{} = {}", key(k), v.inline());
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Live → spec
// ---------------------------------------------------------------------------------------------

fn ptr<'a>(v: &'a Value, p: &str) -> &'a Value {
    v.pointer(p).unwrap_or(&Value::Null)
}

fn ptr_str<'a>(v: &'a Value, p: &str) -> Option<&'a str> {
    v.pointer(p).and_then(Value::as_str)
}

/// Labels berth sets itself (selector and ownership): never part of a spec's `labels`.
const BERTH_LABELS: [&str; 4] = [
    NAME_LABEL,
    APP_INSTANCE_LABEL,
    MANAGED_BY_LABEL,
    INSTANCE_LABEL,
];

/// Annotations berth sets itself on top-level objects.
const BERTH_ANNOTATIONS: [&str; 4] = [
    SOURCE_ANNOTATION,
    APP_ANNOTATION,
    COMMIT_ANNOTATION,
    FINGERPRINT_ANNOTATION,
];

struct Importer<'a> {
    cx: ImportContext<'a>,
    notes: Vec<String>,
    /// Container port number → name, for service targets and probes.
    port_names: BTreeMap<i64, String>,
}

/// Imports one app. Never fails: whatever cannot be expressed becomes a note.
pub fn import(live: &LiveObjects, cx: ImportContext<'_>) -> Imported {
    let sts = strip_server_defaults(&with_kind(&live.statefulset, "apps/v1", "StatefulSet"));
    let headless = live
        .headless
        .as_ref()
        .map(|h| strip_server_defaults(&with_kind(h, "v1", "Service")));
    let service = live
        .service
        .as_ref()
        .map(|h| strip_server_defaults(&with_kind(h, "v1", "Service")));
    let pdb = live
        .pdb
        .as_ref()
        .map(|h| strip_server_defaults(&with_kind(h, "policy/v1", "PodDisruptionBudget")));

    let name = ptr_str(&sts, "/metadata/name")
        .unwrap_or_default()
        .to_string();
    let namespace = ptr_str(&live.statefulset, "/metadata/namespace")
        .unwrap_or(&cx.config.defaults.namespace)
        .to_string();
    let mut im = Importer {
        cx,
        notes: Vec::new(),
        port_names: BTreeMap::new(),
    };
    let mut doc = Doc::default();
    let mut header: Vec<String> = Vec::new();

    // Ownership and the immutable selector: said first, they decide how the spec is applied.
    let labels = str_map(ptr(&live.statefulset, "/metadata/labels"));
    let instance = &cx.config.instance;
    let owned = labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY_VALUE)
        && labels.get(INSTANCE_LABEL) == Some(instance);
    let live_selector = str_map(ptr(&sts, "/spec/selector/matchLabels"));
    let want_selector = selector_labels(&name, instance);

    if cx.file_stem != Some(name.as_str()) {
        doc.top.push(("name".into(), s(&name)));
    }
    if namespace != cx.config.defaults.namespace {
        doc.top.push(("namespace".into(), s(&namespace)));
    }
    if !owned {
        doc.top.push(("adopt".into(), T::Bool(true)));
        match labels.get(INSTANCE_LABEL) {
            Some(other)
                if labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY_VALUE) =>
            {
                header.push(format!(
                    "adopt = true: {namespace}/{name} belongs to berth instance `{other}`, not \
                     `{instance}`; applying this spec takes it over, so remove it from the other \
                     instance's directory first"
                ));
            }
            _ => header.push(format!(
                "adopt = true: {namespace}/{name} was not written by berth; berth takes over \
                 objects it does not own only with this opt-in"
            )),
        }
    }
    if live_selector != want_selector {
        header.push(format!(
            "the live selector {} differs from berth's {}; a StatefulSet's selector is \
             immutable, so adopting it needs a recreate: `berth diff` shows the app as \
             `blocked: needs recreate` until you set `allow_recreate = true` (or pass \
             --allow-recreate). berth then deletes the StatefulSet with propagationPolicy=Orphan \
             and creates it with its own selector; volumes are kept. The running pods do not \
             carry berth's selector labels and are not adopted: delete them one at a time \
             (highest ordinal first, each Ready again before the next) so the new StatefulSet \
             recreates them with its labels and reattaches their PersistentVolumeClaims",
            selector_text(&live_selector),
            selector_text(&want_selector),
        ));
    }

    im.top_level(&sts, pdb.as_ref(), &name, &mut doc);
    im.containers(&sts, &mut doc);
    im.volumes(&sts, &mut doc);
    if let Some(svc) = &service {
        im.service(svc, &name, &mut doc);
    }
    if live.headless.is_none() {
        im.notes.push(format!(
            "the headless Service `{}` does not exist; berth creates it",
            ptr_str(&sts, "/spec/serviceName").unwrap_or_default()
        ));
    }
    for extra in &live.extra {
        im.notes.push(format!(
            "{extra} also selects these pods; a spec has one access Service and one \
             PodDisruptionBudget, so it is not imported (berth leaves it alone)"
        ));
    }

    let body = doc.text();
    let mut notes = header;
    notes.append(&mut im.notes);
    // Check the result: validate, render, and name every live field the render does not keep.
    let stem = cx.file_stem.unwrap_or(&name);
    notes.extend(unexpressed(
        &body,
        stem,
        cx.config,
        &[
            Some(&sts),
            headless.as_ref(),
            service.as_ref(),
            pdb.as_ref(),
        ],
    ));

    let mut text = format!("# imported by `berth import` from StatefulSet {namespace}/{name}\n");
    for note in &notes {
        for (i, line) in wrap(note, 96).iter().enumerate() {
            let lead = if i == 0 { "# note: " } else { "#   " };
            let _ = writeln!(text, "{lead}{line}");
        }
    }
    text.push_str(&body);
    Imported {
        namespace,
        name,
        text,
        notes,
    }
}

fn selector_text(m: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", inner.join(", "))
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let line = lines.last_mut().map(|l| l.len()).unwrap_or_default();
        if line > 0 && line + 1 + word.len() > width {
            lines.push(String::new());
        }
        if let Some(last) = lines.last_mut() {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines
}

/// List responses leave apiVersion and kind out of their items.
fn with_kind(v: &Value, api_version: &str, kind: &str) -> Value {
    let mut v = v.clone();
    if let Some(m) = v.as_object_mut() {
        m.insert("apiVersion".into(), Value::from(api_version));
        m.insert("kind".into(), Value::from(kind));
    }
    v
}

impl Importer<'_> {
    fn top_level(&mut self, sts: &Value, pdb: Option<&Value>, name: &str, doc: &mut Doc) {
        let top = &mut doc.top;
        let replicas = ptr(sts, "/spec/replicas").as_i64().unwrap_or(1);
        if replicas != 1 {
            top.push(("replicas".into(), T::Int(replicas)));
        }
        if ptr_str(sts, "/spec/podManagementPolicy") == Some("Parallel") {
            top.push(("pod_management".into(), s("parallel")));
        }
        match ptr_str(sts, "/spec/updateStrategy/type") {
            Some("OnDelete") => top.push(("update".into(), s("on-delete"))),
            _ => {
                let rolling = ptr(sts, "/spec/updateStrategy/rollingUpdate");
                let mut table = vec![("strategy".to_string(), s("rolling"))];
                if let Some(p) = rolling.get("partition").and_then(Value::as_i64) {
                    table.push(("partition".into(), T::Int(p)));
                }
                if let Some(m) = rolling.get("maxUnavailable").and_then(int_or_str) {
                    table.push(("max_unavailable".into(), m));
                }
                if table.len() > 1 {
                    top.push(("update".into(), T::Tab(table)));
                }
            }
        }

        // Pod labels: the spec's `labels` go on every object and the pods. Config default labels
        // are merged in by berth, so they are left out.
        let mut pod_labels = str_map(ptr(sts, "/spec/template/metadata/labels"));
        for k in BERTH_LABELS {
            pod_labels.remove(k);
        }
        for (k, v) in &self.cx.config.defaults.labels {
            if pod_labels.get(k) == Some(v) {
                pod_labels.remove(k);
            }
        }
        if !pod_labels.is_empty() {
            top.push(("labels".into(), tab_of(&pod_labels)));
        }
        let mut pod_annotations = str_map(ptr(sts, "/spec/template/metadata/annotations"));
        let restarted: Vec<String> = pod_annotations
            .keys()
            .filter(|k| k.starts_with("kubectl.kubernetes.io/"))
            .cloned()
            .collect();
        for k in restarted {
            // `kubectl rollout restart` bookkeeping, not configuration: left to kubectl, which
            // owns the field, so applying the spec does not roll the pods.
            pod_annotations.remove(&k);
        }
        if !pod_annotations.is_empty() {
            top.push(("annotations".into(), tab_of(&pod_annotations)));
        }

        let pod = ptr(sts, "/spec/template/spec");
        let pull_secrets: Vec<String> = pod
            .get("imagePullSecrets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|s| s.get("name").and_then(Value::as_str))
            .map(str::to_string)
            .collect();
        if pull_secrets != self.cx.config.defaults.pull_secrets {
            top.push((
                "pull_secrets".into(),
                T::Arr(pull_secrets.into_iter().map(T::Str).collect()),
            ));
        }
        if let Some(u) = ptr(pod, "/securityContext/runAsUser").as_i64() {
            top.push(("run_as_user".into(), T::Int(u)));
        }
        if let Some(g) = ptr(pod, "/securityContext/fsGroup").as_i64() {
            top.push(("fs_group".into(), T::Int(g)));
        }
        let mut dns = Vec::new();
        if let Some(p) = pod.get("dnsPolicy").and_then(Value::as_str) {
            dns.push(("policy".to_string(), s(p)));
        }
        if let Some(c) = pod.get("dnsConfig") {
            if c.get("nameservers").is_some() {
                dns.push(("nameservers".into(), str_arr(ptr(c, "/nameservers"))));
            }
            if c.get("searches").is_some() {
                dns.push(("searches".into(), str_arr(ptr(c, "/searches"))));
            }
            let options: Vec<(String, T)> = c
                .get("options")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|o| {
                    let n = o.get("name")?.as_str()?.to_string();
                    let v = o.get("value").and_then(Value::as_str).unwrap_or_default();
                    Some((n, s(v)))
                })
                .collect();
            if !options.is_empty() {
                dns.push(("options".into(), T::Tab(options)));
            }
        }
        if !dns.is_empty() {
            top.push(("dns".into(), T::Tab(dns)));
        }
        if let Some(h) = ptr_str(sts, "/spec/serviceName")
            && h != format!("{name}-headless")
        {
            top.push(("headless".into(), s(h)));
        }
        if let Some(t) = pod
            .get("terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
        {
            top.push(("termination_grace".into(), secs(t)));
        }
        if let Some(sa) = pod.get("serviceAccountName").and_then(Value::as_str) {
            top.push(("service_account".into(), s(sa)));
        }
        let node_selector = str_map(ptr(pod, "/nodeSelector"));
        if !node_selector.is_empty() {
            top.push(("node_selector".into(), tab_of(&node_selector)));
        }
        if let Some(spread) = spread_of(pod, ptr(sts, "/spec/selector/matchLabels")) {
            top.push(("spread".into(), s(spread)));
        }
        if let Some(pdb) = pdb {
            let spec = ptr(pdb, "/spec");
            let budget = if let Some(m) = spec.get("maxUnavailable").and_then(int_or_str) {
                Some(("max_unavailable", m))
            } else {
                spec.get("minAvailable")
                    .and_then(int_or_str)
                    .map(|m| ("min_available", m))
            };
            if let Some((k, v)) = budget {
                top.push(("disruption_budget".into(), T::Tab(vec![(k.into(), v)])));
            }
        }
    }

    fn containers(&mut self, sts: &Value, doc: &mut Doc) {
        let pod = ptr(sts, "/spec/template/spec");
        let volumes = self.known_volumes(sts);
        // Port names first: probes and Service targets may name them.
        for c in pod
            .get("containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for p in c
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let (Some(n), Some(name)) = (
                    p.get("containerPort").and_then(Value::as_i64),
                    p.get("name").and_then(Value::as_str),
                ) {
                    self.port_names.entry(n).or_insert_with(|| name.to_string());
                }
            }
        }
        for (list, section) in [
            ("initContainers", "init_containers"),
            ("containers", "containers"),
        ] {
            for c in pod
                .get(list)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
                let entries = self.container(c, &volumes);
                doc.sections
                    .push((format!("{section}.{}", key(name)), entries));
            }
        }
    }

    fn known_volumes(&self, sts: &Value) -> Vec<String> {
        let mut names: Vec<String> = ptr(sts, "/spec/volumeClaimTemplates")
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| ptr_str(t, "/metadata/name").map(str::to_string))
            .collect();
        names.extend(
            ptr(sts, "/spec/template/spec/volumes")
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| volume_kind(v).is_some())
                .filter_map(|v| v.get("name").and_then(Value::as_str).map(str::to_string)),
        );
        names
    }

    fn container(&mut self, c: &Value, volumes: &[String]) -> Vec<(String, T)> {
        let cname = c.get("name").and_then(Value::as_str).unwrap_or_default();
        let mut out = Vec::new();
        out.push((
            "image".to_string(),
            s(c.get("image").and_then(Value::as_str).unwrap_or_default()),
        ));
        if let Some(p) = c.get("imagePullPolicy").and_then(Value::as_str) {
            let spelling = match p {
                "Always" => "always",
                "Never" => "never",
                _ => "if-not-present",
            };
            out.push(("pull".into(), s(spelling)));
        }
        for res in ["cpu", "memory"] {
            let request = c
                .pointer(&format!("/resources/requests/{res}"))
                .map(text_of);
            let limit = c.pointer(&format!("/resources/limits/{res}")).map(text_of);
            match (request, limit) {
                (Some(r), Some(l)) if r == l => out.push((res.into(), s(r))),
                (None, None) => {}
                (r, l) => {
                    let mut t = Vec::new();
                    if let Some(r) = r {
                        t.push(("request".to_string(), s(r)));
                    }
                    if let Some(l) = l {
                        t.push(("limit".to_string(), s(l)));
                    }
                    out.push((res.into(), T::Tab(t)));
                }
            }
        }
        let mut ports = Vec::new();
        for p in c
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let n = p.get("containerPort").and_then(Value::as_i64).unwrap_or(0);
            let name = match p.get("name").and_then(Value::as_str) {
                Some(name) => name.to_string(),
                None => {
                    let made = format!("port-{n}");
                    self.notes.push(format!(
                        "container `{cname}`: port {n} has no name; a spec names every port, so \
                         it is imported as `{made}` (applying adds that name)"
                    ));
                    made
                }
            };
            let value = match p.get("protocol").and_then(Value::as_str) {
                Some(proto) => s(format!("{n}/{}", proto.to_ascii_lowercase())),
                None => T::Int(n),
            };
            ports.push((name, value));
        }
        if !ports.is_empty() {
            out.push(("ports".into(), T::Tab(ports)));
        }
        let env: Vec<(String, T)> = c
            .get("env")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| self.env_var(cname, e))
            .collect();
        if !env.is_empty() {
            out.push(("env".into(), T::Tab(env)));
        }
        for key in ["command", "args"] {
            if let Some(v) = c.get(key) {
                out.push((key.into(), str_arr(v)));
            }
        }
        for (field, spec) in [("postStart", "post_start"), ("preStop", "pre_stop")] {
            if let Some(cmd) = c.pointer(&format!("/lifecycle/{field}/exec/command")) {
                out.push((spec.into(), str_arr(cmd)));
            }
        }
        for (field, spec) in [
            ("livenessProbe", "liveness"),
            ("readinessProbe", "readiness"),
            ("startupProbe", "startup"),
        ] {
            if let Some(p) = c.get(field).and_then(probe) {
                out.push((spec.into(), p));
            }
        }
        if let Some(u) = ptr(c, "/securityContext/runAsUser").as_i64() {
            out.push(("run_as_user".into(), T::Int(u)));
        }
        let mut mounts: Vec<(String, T)> = Vec::new();
        for m in c
            .get("volumeMounts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let vol = m.get("name").and_then(Value::as_str).unwrap_or_default();
            let path = m
                .get("mountPath")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !volumes.iter().any(|v| v == vol) {
                // Its volume is not imported (a kind the spec has no spelling for), and a mount
                // of an undeclared volume would not validate.
                continue;
            }
            if mounts.iter().any(|(k, _)| k == vol) {
                self.notes.push(format!(
                    "container `{cname}` mounts volume `{vol}` more than once; a spec mounts \
                     each volume once, so {path} is left out"
                ));
                continue;
            }
            let sub = m.get("subPath").and_then(Value::as_str);
            let ro = m.get("readOnly").and_then(Value::as_bool) == Some(true);
            let value = if sub.is_none() && !ro {
                s(path)
            } else {
                let mut t = vec![("path".to_string(), s(path))];
                if let Some(sub) = sub {
                    t.push(("sub_path".into(), s(sub)));
                }
                if ro {
                    t.push(("read_only".into(), T::Bool(true)));
                }
                T::Tab(t)
            };
            mounts.push((vol.to_string(), value));
        }
        if !mounts.is_empty() {
            out.push(("mounts".into(), T::Tab(mounts)));
        }
        out
    }

    fn env_var(&mut self, cname: &str, e: &Value) -> Option<(String, T)> {
        let name = e.get("name")?.as_str()?.to_string();
        if let Some(v) = e.get("value").and_then(Value::as_str) {
            return Some((name, s(v)));
        }
        let from = e.get("valueFrom");
        let Some(from) = from else {
            return Some((name, s("")));
        };
        let pair = |kind: &str, r: &Value| {
            T::Tab(vec![
                (kind.to_string(), s(ptr_str(r, "/name").unwrap_or_default())),
                ("key".to_string(), s(ptr_str(r, "/key").unwrap_or_default())),
            ])
        };
        if let Some(r) = from.get("secretKeyRef") {
            Some((name, pair("secret", r)))
        } else if let Some(r) = from.get("configMapKeyRef") {
            Some((name, pair("config_map", r)))
        } else if let Some(path) = ptr_str(from, "/fieldRef/fieldPath") {
            Some((name, T::Tab(vec![("field".into(), s(path))])))
        } else {
            self.notes.push(format!(
                "container `{cname}`: env `{name}` takes its value from a source the spec \
                 cannot express; it is left out"
            ));
            None
        }
    }

    fn volumes(&mut self, sts: &Value, doc: &mut Doc) {
        for t in ptr(sts, "/spec/volumeClaimTemplates")
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = ptr_str(t, "/metadata/name").unwrap_or_default();
            let mut entries = Vec::new();
            if let Some(size) = t.pointer("/spec/resources/requests/storage") {
                entries.push(("size".to_string(), s(text_of(size))));
            }
            if let Some(class) = ptr_str(t, "/spec/storageClassName") {
                entries.push(("class".into(), s(class)));
            }
            let access = strs(ptr(t, "/spec/accessModes"));
            match access.as_slice() {
                [one] if one == "ReadWriteOnce" => {}
                [one] => entries.push(("access".into(), s(one))),
                [] => {}
                many => entries.push((
                    "access".into(),
                    T::Arr(many.iter().map(|a| s(a.as_str())).collect()),
                )),
            }
            doc.sections
                .push((format!("volumes.{}", key(name)), entries));
        }
        for v in ptr(sts, "/spec/template/spec/volumes")
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = v.get("name").and_then(Value::as_str).unwrap_or_default();
            match volume_kind(v) {
                Some(entries) => doc
                    .sections
                    .push((format!("volumes.{}", key(name)), entries)),
                None => self.notes.push(format!(
                    "pod volume `{name}` is of a kind the spec cannot express (it has \
                     empty_dir, config_map, secret, host_path and claim templates); it and its \
                     mounts are left out"
                )),
            }
        }
    }

    fn service(&mut self, svc: &Value, app: &str, doc: &mut Doc) {
        let mut entries = Vec::new();
        let name = ptr_str(svc, "/metadata/name").unwrap_or_default();
        if name != app {
            entries.push(("name".to_string(), s(name)));
        }
        if let Some(t) = ptr_str(svc, "/spec/type")
            && t != "ClusterIP"
        {
            entries.push(("type".into(), s(t)));
        }
        let mut ports = Vec::new();
        for p in ptr(svc, "/spec/ports").as_array().into_iter().flatten() {
            let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
            let target = p.get("targetPort");
            let pname = match p.get("name").and_then(Value::as_str) {
                Some(n) => n.to_string(),
                None => format!("port-{port}"),
            };
            let node_port = p.get("nodePort").and_then(Value::as_i64);
            let named_target = target.and_then(Value::as_str) == Some(pname.as_str());
            let value = if named_target && node_port.is_none() {
                T::Int(port)
            } else {
                let mut t = vec![("port".to_string(), T::Int(port))];
                if !named_target {
                    let target = target.and_then(int_or_str).unwrap_or(T::Int(port));
                    t.push(("target".into(), target));
                }
                if let Some(np) = node_port {
                    t.push(("node_port".into(), T::Int(np)));
                }
                T::Tab(t)
            };
            ports.push((pname, value));
        }
        entries.push(("ports".into(), T::Tab(ports)));
        let mut annotations = str_map(ptr(svc, "/metadata/annotations"));
        for a in BERTH_ANNOTATIONS {
            annotations.remove(a);
        }
        if !annotations.is_empty() {
            entries.push(("annotations".into(), tab_of(&annotations)));
        }
        doc.sections.push(("service".into(), entries));
    }
}

/// `spread` from a pod's affinity: exactly one required anti-affinity term on the app's own
/// selector and a node or zone key.
fn spread_of(pod: &Value, selector: &Value) -> Option<&'static str> {
    let terms = ptr(
        pod,
        "/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution",
    )
    .as_array()?;
    let [term] = terms.as_slice() else {
        return None;
    };
    if ptr(term, "/labelSelector/matchLabels") != selector {
        return None;
    }
    match ptr_str(term, "/topologyKey")? {
        "kubernetes.io/hostname" => Some("hostname"),
        "topology.kubernetes.io/zone" => Some("zone"),
        _ => None,
    }
}

fn volume_kind(v: &Value) -> Option<Vec<(String, T)>> {
    if let Some(e) = v.get("emptyDir") {
        let mut t = Vec::new();
        if let Some(m) = e.get("medium").and_then(Value::as_str)
            && !m.is_empty()
        {
            t.push(("medium".to_string(), s(m)));
        }
        if let Some(l) = e.get("sizeLimit") {
            t.push(("size_limit".into(), s(text_of(l))));
        }
        let value = if t.is_empty() {
            T::Bool(true)
        } else {
            T::Tab(t)
        };
        return Some(vec![("empty_dir".into(), value)]);
    }
    if let Some(name) = ptr_str(v, "/configMap/name") {
        return Some(vec![("config_map".into(), s(name))]);
    }
    if let Some(name) = ptr_str(v, "/secret/secretName") {
        return Some(vec![("secret".into(), s(name))]);
    }
    if let Some(path) = ptr_str(v, "/hostPath/path") {
        return Some(vec![("host_path".into(), s(path))]);
    }
    None
}

fn probe(p: &Value) -> Option<T> {
    let mut t = Vec::new();
    if let Some(cmd) = p.pointer("/exec/command") {
        t.push(("exec".to_string(), str_arr(cmd)));
    } else if let Some(port) = p.pointer("/tcpSocket/port") {
        t.push(("tcp".into(), int_or_str(port)?));
    } else if let Some(h) = p.get("httpGet") {
        let mut http = vec![
            (
                "path".to_string(),
                s(h.get("path").and_then(Value::as_str).unwrap_or("/")),
            ),
            ("port".to_string(), int_or_str(h.get("port")?)?),
        ];
        if let Some(scheme) = h.get("scheme").and_then(Value::as_str) {
            http.push(("scheme".into(), s(scheme)));
        }
        t.push(("http".into(), T::Tab(http)));
    } else {
        return None;
    }
    for (field, spec) in [
        ("initialDelaySeconds", "delay"),
        ("periodSeconds", "period"),
        ("timeoutSeconds", "timeout"),
    ] {
        if let Some(n) = p.get(field).and_then(Value::as_i64) {
            t.push((spec.into(), secs(n)));
        }
    }
    for (field, spec) in [
        ("failureThreshold", "failures"),
        ("successThreshold", "success"),
    ] {
        if let Some(n) = p.get(field).and_then(Value::as_i64) {
            t.push((spec.into(), T::Int(n)));
        }
    }
    Some(T::Tab(t))
}

// ---------------------------------------------------------------------------------------------
// Self-check: what the spec does not reproduce
// ---------------------------------------------------------------------------------------------

/// Validates and renders the imported spec, then names every live field the render leaves out
/// or sets differently. Ownership labels and annotations and the selector are berth's own and
/// are not reported here (the selector has its own note).
fn unexpressed(body: &str, stem: &str, config: &Config, live: &[Option<&Value>]) -> Vec<String> {
    let file = format!("{stem}.toml");
    let checked = crate::spec::check_source(Path::new(&file), Path::new(&file), body, config);
    let Some(app) = checked.app else {
        return checked
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| {
                format!(
                    "the imported spec does not validate; fix it by hand: {}",
                    d.render(false)
                )
            })
            .collect();
    };
    let rendered = render_app(&app, &RenderContext::new(&config.instance, &app));
    let rendered: Vec<Value> = rendered
        .to_values()
        .iter()
        .map(strip_server_defaults)
        .collect();
    let mut out = Vec::new();
    for l in live.iter().flatten() {
        let kind = l.get("kind").and_then(Value::as_str).unwrap_or_default();
        let name = ptr_str(l, "/metadata/name").unwrap_or_default();
        let twin = rendered.iter().find(|r| {
            r.get("kind").and_then(Value::as_str) == Some(kind)
                && ptr_str(r, "/metadata/name") == Some(name)
        });
        let Some(twin) = twin else {
            continue;
        };
        let mut paths = Vec::new();
        missing(l, twin, String::new(), &mut paths);
        let (absent, differ): (Vec<_>, Vec<_>) = paths
            .into_iter()
            .filter(|(p, _)| !ignored(p))
            .partition(|(_, absent)| *absent);
        let list =
            |v: Vec<(String, bool)>| v.into_iter().map(|(p, _)| p).collect::<Vec<_>>().join(", ");
        if !absent.is_empty() {
            out.push(format!(
                "{kind} {name}: the spec cannot express {}; berth leaves these fields to whoever \
                 set them, and they are lost if the object is recreated",
                list(absent)
            ));
        }
        if !differ.is_empty() {
            out.push(format!(
                "{kind} {name}: berth sets {} to its own value; applying this spec changes them",
                list(differ)
            ));
        }
    }
    out
}

/// Paths berth sets itself or reports elsewhere.
fn ignored(path: &str) -> bool {
    let berth_key =
        |prefix: &str, keys: &[&str]| path.strip_prefix(prefix).is_some_and(|k| keys.contains(&k));
    let claim_label = path.starts_with("spec.volumeClaimTemplates[")
        && path
            .split_once(".metadata.labels.")
            .is_some_and(|(_, k)| BERTH_LABELS.contains(&k));
    claim_label
        || path.starts_with("spec.selector")
        || path.starts_with("spec.template.spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector")
        || berth_key("metadata.labels.", &BERTH_LABELS)
        || berth_key("spec.template.metadata.labels.", &BERTH_LABELS)
        || berth_key("metadata.annotations.", &BERTH_ANNOTATIONS)
        || path.starts_with("spec.template.metadata.annotations.kubectl.kubernetes.io/")
}

/// Appends the paths of `live` that `want` does not hold with the same value, each with whether
/// `want` lacks it altogether. Lists of objects with a `name` are matched by name, other lists by
/// position.
fn missing(live: &Value, want: &Value, path: String, out: &mut Vec<(String, bool)>) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (live, want) {
        (Value::Object(l), Value::Object(w)) => {
            for (k, lv) in l {
                match w.get(k) {
                    Some(wv) => missing(lv, wv, join(k), out),
                    None => out.push((join(k), true)),
                }
            }
        }
        (Value::Array(l), Value::Array(w)) => {
            for (i, lv) in l.iter().enumerate() {
                let name = lv.get("name").and_then(Value::as_str);
                let twin = match name {
                    Some(n) => w
                        .iter()
                        .find(|wv| wv.get("name").and_then(Value::as_str) == Some(n)),
                    None => w.get(i),
                };
                let here = match name {
                    Some(n) => format!("{path}[{n}]"),
                    None => format!("{path}[{i}]"),
                };
                match twin {
                    Some(wv) => missing(lv, wv, here, out),
                    None => out.push((here, true)),
                }
            }
        }
        (l, w) if l == w => {}
        _ => out.push((path, false)),
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the cluster
// ---------------------------------------------------------------------------------------------

fn json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// True when every key/value of `selector` is in `labels` (and the selector is not empty).
fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Reads a StatefulSet and the objects around it. The access Service and PDB are the ones whose
/// selectors pick the StatefulSet's pods; one named like the app wins over others.
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
        if selects(&selector, &pod_labels) {
            access.push(svc);
        }
    }
    access.sort_by_key(|s| s.metadata.name.as_deref() != Some(name));
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
    extra.extend(access.iter().skip(1).map(|s| {
        format!(
            "Service {namespace}/{}",
            s.metadata.name.as_deref().unwrap_or_default()
        )
    }));
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
        pdb: budgets.first().map(json),
        extra,
    })
}

/// `(namespace, name)` of every StatefulSet in `namespace`, or in all namespaces when None.
pub async fn list(
    cluster: &Cluster,
    namespace: Option<&str>,
) -> Result<Vec<(String, String)>, ImportError> {
    use k8s_openapi::api::apps::v1::StatefulSet;
    let api: Api<StatefulSet> = match namespace {
        Some(ns) => Api::namespaced(cluster.client().clone(), ns),
        None => Api::all(cluster.client().clone()),
    };
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|source| ImportError::List {
            what: format!(
                "StatefulSets in {}",
                namespace.map_or("all namespaces".to_string(), |n| format!("namespace {n}"))
            ),
            source,
        })?;
    let mut out: Vec<(String, String)> = list
        .items
        .into_iter()
        .map(|s| {
            (
                s.metadata.namespace.unwrap_or_default(),
                s.metadata.name.unwrap_or_default(),
            )
        })
        .collect();
    out.sort();
    Ok(out)
}

/// `berth import`.
#[derive(Debug, Clone, clap::Args)]
#[command(group(
    clap::ArgGroup::new("what")
        .required(true)
        .multiple(true)
        .args(["target", "from_namespace", "all_namespaces"])
))]
pub struct ImportArgs {
    /// The StatefulSet: NAMESPACE/NAME, or NAME in the namespace of -n (else the default
    /// namespace).
    #[arg(value_name = "NAMESPACE/NAME", conflicts_with = "all_namespaces")]
    pub target: Option<String>,
    /// Every StatefulSet in this namespace (or the namespace of a bare NAME).
    #[arg(short = 'n', long = "from-namespace", value_name = "NS")]
    pub from_namespace: Option<String>,
    /// Every StatefulSet in every namespace.
    #[arg(short = 'A', long, conflicts_with = "from_namespace")]
    pub all_namespaces: bool,
    /// Write `<name>.toml` files into DIR (created if missing) instead of printing the specs.
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: Option<std::path::PathBuf>,
}

/// The spec file a StatefulSet of this instance was applied from (`berth.dev/source`), when it
/// is a plain relative path: importing into the same place makes the import reproduce it.
pub fn source_file(live: &LiveObjects, instance: &str) -> Option<std::path::PathBuf> {
    let meta = ptr(&live.statefulset, "/metadata");
    let labels = str_map(ptr(meta, "/labels"));
    let owned = labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY_VALUE)
        && labels.get(INSTANCE_LABEL).map(String::as_str) == Some(instance);
    let source = ptr_str(meta, "/annotations/berth.dev~1source")?;
    let path = std::path::PathBuf::from(source);
    let plain = path
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    (owned && plain && source.ends_with(".toml")).then_some(path)
}

/// Runs `berth import`: 0 when every spec was written (notes are warnings), 2 on error.
pub fn run(args: &ImportArgs, config: &Config, context: Option<&str>) -> anyhow::Result<u8> {
    let target = match &args.target {
        Some(t) => match t.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                if args.from_namespace.as_deref().is_some_and(|n| n != ns) {
                    eprintln!("error: {t} names namespace {ns}, but -n says another");
                    return Ok(crate::cli::exit::ERROR);
                }
                Some((ns.to_string(), name.to_string()))
            }
            Some(_) => {
                eprintln!("error: `{t}` is not NAMESPACE/NAME");
                return Ok(crate::cli::exit::ERROR);
            }
            None => Some((
                args.from_namespace
                    .clone()
                    .unwrap_or_else(|| config.defaults.namespace.clone()),
                t.clone(),
            )),
        },
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let lives = runtime.block_on(async {
        let cluster = Cluster::connect(context, &config.instance).await?;
        let keys = match &target {
            Some(key) => vec![key.clone()],
            None => {
                let ns = if args.all_namespaces {
                    None
                } else {
                    args.from_namespace.as_deref()
                };
                list(&cluster, ns).await?
            }
        };
        let mut lives = Vec::new();
        for (ns, name) in keys {
            lives.push(fetch(&cluster, &ns, &name).await?);
        }
        anyhow::Ok(lives)
    })?;
    if lives.is_empty() {
        eprintln!("warning: no StatefulSets found");
        return Ok(crate::cli::exit::OK);
    }
    // Files: where berth's own apps came from (their `berth.dev/source`), else `<name>.toml`,
    // or `<namespace>-<name>.toml` where two namespaces share a name.
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    for l in &lives {
        let name = ptr_str(&l.statefulset, "/metadata/name").unwrap_or_default();
        let ns = ptr_str(&l.statefulset, "/metadata/namespace").unwrap_or_default();
        let mut file = source_file(l, &config.instance)
            .unwrap_or_else(|| std::path::PathBuf::from(format!("{name}.toml")));
        if files.contains(&file) {
            file = std::path::PathBuf::from(format!("{ns}-{name}.toml"));
        }
        files.push(file);
    }
    let many = lives.len() > 1;
    for (l, file) in lives.iter().zip(&files) {
        let name = ptr_str(&l.statefulset, "/metadata/name").unwrap_or_default();
        let ns = ptr_str(&l.statefulset, "/metadata/namespace").unwrap_or_default();
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let imported = import(
            l,
            ImportContext {
                config,
                file_stem: Some(&stem),
            },
        );
        for note in &imported.notes {
            eprintln!("warning: {ns}/{name}: {note}");
        }
        match &args.output {
            Some(dir) => {
                let path = dir.join(file);
                if path.exists() {
                    eprintln!(
                        "error: {} exists; berth import does not overwrite spec files",
                        path.display()
                    );
                    return Ok(crate::cli::exit::ERROR);
                }
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| anyhow::anyhow!("creating {}: {e}", parent.display()))?;
                }
                std::fs::write(&path, &imported.text)
                    .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
            None => {
                if many {
                    println!("# ===== {} =====", file.display());
                }
                print!("{}", imported.text);
                if many {
                    println!();
                }
            }
        }
    }
    Ok(crate::cli::exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::Rendered;
    use crate::spec::App;
    use serde_json::json;

    fn check(file: &str, text: &str, config: &Config) -> App {
        let path = Path::new(file);
        let checked = crate::spec::check_source(path, path, text, config);
        match checked.app {
            Some(app) => app,
            None => panic!(
                "{file} does not validate:\n{}\n---\n{text}",
                checked
                    .diagnostics
                    .iter()
                    .map(|d| d.render(false))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        }
    }

    fn live_of(r: &Rendered) -> LiveObjects {
        LiveObjects {
            statefulset: json(&r.statefulset),
            headless: Some(json(&r.headless)),
            service: r.service.as_ref().map(json),
            pdb: r.pdb.as_ref().map(json),
            extra: Vec::new(),
        }
    }

    fn stripped(r: &Rendered) -> Vec<Value> {
        r.to_values().iter().map(strip_server_defaults).collect()
    }

    fn specs() -> Vec<(String, String)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut out = Vec::new();
        for dir in ["tests/fixtures/valid", "config/apps"] {
            let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
                .expect("fixture dir")
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect();
            files.sort();
            for f in files {
                let name = f.file_name().expect("name").to_string_lossy().into_owned();
                out.push((name, std::fs::read_to_string(&f).expect("read fixture")));
            }
        }
        assert!(out.len() >= 12, "fixtures found: {}", out.len());
        out
    }

    /// render → import → parse + validate → render gives the objects the server would store
    /// for the original (compared after stripping server defaults), with nothing to note.
    #[test]
    fn every_fixture_and_example_round_trips_through_import() {
        let config = Config::default();
        for (file, text) in specs() {
            let app = check(&file, &text, &config);
            let ctx = RenderContext::new(&config.instance, &app);
            let rendered = render_app(&app, &ctx);
            let stem = file.trim_end_matches(".toml");
            let imported = import(
                &live_of(&rendered),
                ImportContext {
                    config: &config,
                    file_stem: Some(stem),
                },
            );
            assert!(
                imported.notes.is_empty(),
                "{file}: unexpected notes {:#?}\n{}",
                imported.notes,
                imported.text
            );
            let again = check(&file, &imported.text, &config);
            let rendered_again = render_app(&again, &RenderContext::new(&config.instance, &again));
            assert_eq!(
                stripped(&rendered),
                stripped(&rendered_again),
                "{file}: the imported spec renders differently:\n{}",
                imported.text
            );
        }
    }

    #[test]
    fn only_fields_that_differ_from_the_defaults_are_written() {
        let config = Config::default();
        let app = check(
            "web.toml",
            "[containers.web]\nimage = \"nginx:1.27\"\n",
            &config,
        );
        let rendered = render_app(&app, &RenderContext::new(&config.instance, &app));
        let imported = import(
            &live_of(&rendered),
            ImportContext {
                config: &config,
                file_stem: Some("web"),
            },
        );
        let body: Vec<&str> = imported
            .text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect();
        assert_eq!(body, ["[containers.web]", "image = \"nginx:1.27\""]);
    }

    /// What the server stores for a rendered app: the defaults it fills in must not come back
    /// as spec fields.
    #[test]
    fn server_defaults_do_not_become_spec_fields() {
        let config = Config::default();
        let app = check(
            "web.toml",
            "[containers.web]\nimage = \"nginx:1.27\"\nliveness = { tcp = 80 }\n",
            &config,
        );
        let rendered = render_app(&app, &RenderContext::new(&config.instance, &app));
        let mut sts = json(&rendered.statefulset);
        let pod = sts
            .pointer_mut("/spec/template/spec")
            .and_then(Value::as_object_mut)
            .expect("pod spec");
        pod.insert("dnsPolicy".into(), json!("ClusterFirst"));
        pod.insert("terminationGracePeriodSeconds".into(), json!(30));
        pod.insert("schedulerName".into(), json!("default-scheduler"));
        pod.insert("securityContext".into(), json!({}));
        let c = sts
            .pointer_mut("/spec/template/spec/containers/0")
            .and_then(Value::as_object_mut)
            .expect("container");
        c.insert("imagePullPolicy".into(), json!("IfNotPresent"));
        c.insert(
            "terminationMessagePath".into(),
            json!("/dev/termination-log"),
        );
        c.insert(
            "livenessProbe".into(),
            json!({"tcpSocket": {"port": 80}, "timeoutSeconds": 1, "periodSeconds": 10,
                   "successThreshold": 1, "failureThreshold": 3}),
        );
        sts["spec"]["updateStrategy"] =
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}});
        sts["spec"]["revisionHistoryLimit"] = json!(10);
        let live = LiveObjects {
            statefulset: sts,
            ..live_of(&rendered)
        };
        let imported = import(
            &live,
            ImportContext {
                config: &config,
                file_stem: Some("web"),
            },
        );
        assert!(imported.notes.is_empty(), "{:#?}", imported.notes);
        assert!(
            imported
                .text
                .ends_with("[containers.web]\nimage = \"nginx:1.27\"\nliveness = { tcp = 80 }\n"),
            "{}",
            imported.text
        );
    }

    /// The seed's hand-written nginx StatefulSet: not berth's, another selector, a field the
    /// spec has no spelling for.
    #[test]
    fn a_hand_written_statefulset_is_imported_for_adoption_with_the_recreate_explained() {
        let config = Config::default();
        let sts = json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "nginx", "namespace": "default", "labels": {"app": "nginx"}},
            "spec": {
                "replicas": 2,
                "serviceName": "nginx",
                "selector": {"matchLabels": {"app": "nginx"}},
                "template": {
                    "metadata": {"labels": {"app": "nginx"}},
                    "spec": {
                        "containers": [{
                            "name": "container-1", "image": "nginx:latest",
                            "imagePullPolicy": "Always",
                            "resources": {"requests": {"cpu": "250m", "memory": "512Mi"},
                                          "limits": {"cpu": "250m", "memory": "512Mi"}},
                            "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}]
                        }],
                        "tolerations": [{"key": "dedicated", "operator": "Exists"}]
                    }
                }
            }
        });
        let headless = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "nginx", "namespace": "default", "labels": {"app": "nginx"}},
            "spec": {"clusterIP": "None", "selector": {"app": "nginx"},
                     "ports": [{"name": "http", "port": 80, "targetPort": 80, "protocol": "TCP"}]}
        });
        let imported = import(
            &LiveObjects {
                statefulset: sts,
                headless: Some(headless),
                ..LiveObjects::default()
            },
            ImportContext {
                config: &config,
                file_stem: Some("nginx"),
            },
        );
        let text = &imported.text;
        assert!(text.contains("\nadopt = true\n"), "{text}");
        assert!(text.contains("\nheadless = \"nginx\"\n"), "{text}");
        assert!(text.contains("\nlabels = { app = \"nginx\" }\n"), "{text}");
        assert!(text.contains("\nreplicas = 2\n"), "{text}");
        assert!(
            text.contains("cpu = \"250m\"\nmemory = \"512Mi\""),
            "{text}"
        );
        let notes = imported.notes.join("\n");
        assert!(notes.contains("not written by berth"), "{notes}");
        assert!(
            notes.contains("live selector {app=nginx} differs"),
            "{notes}"
        );
        assert!(notes.contains("needs a recreate"), "{notes}");
        assert!(notes.contains("allow_recreate = true"), "{notes}");
        assert!(notes.contains("spec.template.spec.tolerations"), "{notes}");
        // Notes are comments: the text still validates.
        check("nginx.toml", text, &config);
    }

    #[test]
    fn toml_strings_and_keys_are_escaped() {
        assert_eq!(quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(key("prometheus.io/scrape"), "\"prometheus.io/scrape\"");
        assert_eq!(key("fix-perms"), "fix-perms");
        assert_eq!(default_pull("nginx"), "Always");
        assert_eq!(default_pull("nginx:latest"), "Always");
        assert_eq!(default_pull("registry:5000/nginx"), "Always");
        assert_eq!(default_pull("registry:5000/nginx:1.2"), "IfNotPresent");
        assert_eq!(default_pull("redis@sha256:abc"), "IfNotPresent");
    }
}
