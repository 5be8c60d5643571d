//! Live → spec: maps each field of the (default-stripped) live objects to its spec spelling
//! and writes only what differs from berth's defaults. The finished text then goes through the
//! self-check: whatever has no spelling is kept as `[patches]`, and what not even a patch may
//! set (berth's own labels, the selector) becomes a note.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::defaults::strip_server_defaults;
use super::self_check::{lost_fields, notes_of};
use super::toml_writer::{Doc, TomlValue, int_or_str, secs, str_arr, tab_of, toml_key, toml_str};
use super::{
    BERTH_ANNOTATIONS, BERTH_LABELS, ImportContext, Imported, LiveObjects, Ownership, ownership,
    ptr, ptr_str, str_map, strs, text_of,
};
use super::{container, patches, pod, storage};
use crate::labels::selector_labels;

/// One import in progress: the notes gathered so far and what later fields refer back to.
struct Importer<'a> {
    cx: ImportContext<'a>,
    notes: Vec<String>,
    /// Container port number → name, for service targets and probes.
    port_names: BTreeMap<i64, String>,
    /// The pod is what `security = "restricted"` renders: the preset stands for its fields.
    restricted: bool,
}

/// Imports one app. Never fails: whatever cannot be expressed becomes a note.
pub fn import(live: &LiveObjects, cx: ImportContext<'_>) -> Imported {
    let sts = strip_server_defaults(&with_kind(&live.statefulset, "apps/v1", "StatefulSet"));
    let headless = live
        .headless
        .as_ref()
        .map(|h| strip_server_defaults(&with_kind(h, "v1", "Service")));
    let as_service = |s: &Value| strip_server_defaults(&with_kind(s, "v1", "Service"));
    let mut service = live.service.as_ref().map(as_service);
    let mut services: Vec<Value> = live.services.iter().map(as_service).collect();
    // Said in the spec's header but not a warning: leaving them out loses nothing anyone chose.
    let mut remarks: Vec<String> = Vec::new();
    if !cx.keep_node_ports {
        let mut dropped = Vec::new();
        for svc in service.iter_mut().chain(services.iter_mut()) {
            if drop_allocated_node_ports(svc) {
                dropped.push(
                    ptr_str(svc, "/metadata/name")
                        .unwrap_or_default()
                        .to_string(),
                );
            }
        }
        if !dropped.is_empty() {
            remarks.push(format!(
                "node ports of the LoadBalancer Service {} are left to the API server; \
                 --keep-node-ports keeps them",
                dropped.join(", ")
            ));
        }
    }
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
        restricted: pod::restricted(ptr(&sts, "/spec/template/spec")),
    };
    let mut doc = Doc::default();
    let mut header: Vec<String> = Vec::new();

    // Ownership and the immutable selector: said first, they decide how the spec is applied.
    let labels = str_map(ptr(&live.statefulset, "/metadata/labels"));
    let instance = &cx.config.instance;
    let adoption_note = match ownership(&labels, instance) {
        Ownership::ThisInstance => None,
        Ownership::OtherInstance(other) => Some(format!(
            "adopt = true: {namespace}/{name} belongs to berth instance `{other}`, not \
             `{instance}`; applying this spec takes it over, so remove it from the other \
             instance's directory first"
        )),
        Ownership::NotBerth => Some(format!(
            "adopt = true: {namespace}/{name} was not written by berth; berth takes over \
             objects it does not own only with this opt-in"
        )),
    };
    let live_selector = str_map(ptr(&sts, "/spec/selector/matchLabels"));
    let want_selector = selector_labels(&name, instance);

    if cx.file_stem != Some(name.as_str()) {
        doc.top.push(("name".into(), toml_str(&name)));
    }
    if namespace != cx.config.defaults.namespace {
        doc.top.push(("namespace".into(), toml_str(&namespace)));
    }
    if let Some(note) = adoption_note {
        doc.top.push(("adopt".into(), TomlValue::Bool(true)));
        header.push(note);
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
    doc.top.extend(pod::set_fields(&sts, headless.as_ref()));
    im.containers(&sts, &mut doc);
    im.volumes(&sts, &mut doc);
    let pod_labels = str_map(ptr(&sts, "/spec/template/metadata/labels"));
    if let Some(svc) = &service {
        im.service(svc, &name, false, &pod_labels, &mut doc);
    }
    for svc in &services {
        im.service(svc, &name, true, &pod_labels, &mut doc);
    }
    if live.headless.is_none() {
        im.notes.push(format!(
            "the headless Service `{}` does not exist; berth creates it",
            ptr_str(&sts, "/spec/serviceName").unwrap_or_default()
        ));
    }
    for extra in &live.extra {
        im.notes.push(format!(
            "{extra} also selects these pods; a spec has one PodDisruptionBudget, so it is \
             not imported (berth leaves it alone)"
        ));
    }

    let mut notes = header;
    notes.append(&mut im.notes);
    // Check the result: validate and render it; keep every live field the render does not
    // reproduce as a patch, and name whatever is still not reproduced after that.
    let stem = cx.file_stem.unwrap_or(&name);
    let objects: Vec<&Value> = [Some(&sts), headless.as_ref(), service.as_ref()]
        .into_iter()
        .flatten()
        .chain(&services)
        .chain(pdb.as_ref())
        .collect();
    let (body, left) = with_patches(doc.text(), stem, cx, &objects);
    notes.extend(left);

    let mut text = format!("# imported by `berth import` from StatefulSet {namespace}/{name}\n");
    for note in notes.iter().chain(&remarks) {
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

/// `body` with a `[patches]` section for what its render does not reproduce, when that section
/// validates and applies; and the notes for whatever is still not reproduced.
fn with_patches(
    body: String,
    stem: &str,
    cx: ImportContext<'_>,
    objects: &[&Value],
) -> (String, Vec<String>) {
    let (app, lost) = match lost_fields(&body, stem, cx.config, objects) {
        Ok(found) => found,
        Err(notes) => return (body, notes),
    };
    let section = patches::section(&app, &lost);
    if section.is_empty() {
        return (body, notes_of(&lost));
    }
    let patched = format!("{body}{section}");
    match lost_fields(&patched, stem, cx.config, objects) {
        Ok((_, left)) => (patched, notes_of(&left)),
        // A patch the spec refuses (it should not happen: only unowned paths are patched):
        // the fields stay named in notes rather than the spec failing to validate.
        Err(_) => (body, notes_of(&lost)),
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
            top.push(("replicas".into(), TomlValue::Int(replicas)));
        }
        if ptr_str(sts, "/spec/podManagementPolicy") == Some("Parallel") {
            top.push(("pod_management".into(), toml_str("parallel")));
        }
        match ptr_str(sts, "/spec/updateStrategy/type") {
            Some("OnDelete") => top.push(("update".into(), toml_str("on-delete"))),
            _ => {
                let rolling = ptr(sts, "/spec/updateStrategy/rollingUpdate");
                let mut table = vec![("strategy".to_string(), toml_str("rolling"))];
                if let Some(p) = rolling.get("partition").and_then(Value::as_i64) {
                    table.push(("partition".into(), TomlValue::Int(p)));
                }
                if let Some(m) = rolling.get("maxUnavailable").and_then(int_or_str) {
                    table.push(("max_unavailable".into(), m));
                }
                if table.len() > 1 {
                    top.push(("update".into(), TomlValue::Tab(table)));
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
                TomlValue::Arr(pull_secrets.into_iter().map(TomlValue::Str).collect()),
            ));
        }
        if let Some(u) = ptr(pod, "/securityContext/runAsUser").as_i64() {
            top.push(("run_as_user".into(), TomlValue::Int(u)));
        }
        if let Some(g) = ptr(pod, "/securityContext/fsGroup").as_i64() {
            top.push(("fs_group".into(), TomlValue::Int(g)));
        }
        top.extend(pod::pod_security(pod, self.restricted));
        let mut dns = Vec::new();
        if let Some(p) = pod.get("dnsPolicy").and_then(Value::as_str) {
            dns.push(("policy".to_string(), toml_str(p)));
        }
        if let Some(c) = pod.get("dnsConfig") {
            if c.get("nameservers").is_some() {
                dns.push(("nameservers".into(), str_arr(ptr(c, "/nameservers"))));
            }
            if c.get("searches").is_some() {
                dns.push(("searches".into(), str_arr(ptr(c, "/searches"))));
            }
            let options: Vec<(String, TomlValue)> = c
                .get("options")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|o| {
                    let n = o.get("name")?.as_str()?.to_string();
                    let v = o.get("value").and_then(Value::as_str).unwrap_or_default();
                    Some((n, toml_str(v)))
                })
                .collect();
            if !options.is_empty() {
                dns.push(("options".into(), TomlValue::Tab(options)));
            }
        }
        if !dns.is_empty() {
            top.push(("dns".into(), TomlValue::Tab(dns)));
        }
        if let Some(h) = ptr_str(sts, "/spec/serviceName")
            && h != format!("{name}-headless")
        {
            top.push(("headless".into(), toml_str(h)));
        }
        if let Some(t) = pod
            .get("terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
        {
            top.push(("termination_grace".into(), secs(t)));
        }
        if let Some(sa) = pod.get("serviceAccountName").and_then(Value::as_str) {
            top.push(("service_account".into(), toml_str(sa)));
        }
        let node_selector = str_map(ptr(pod, "/nodeSelector"));
        if !node_selector.is_empty() {
            top.push(("node_selector".into(), tab_of(&node_selector)));
        }
        let selector = ptr(sts, "/spec/selector/matchLabels");
        if let Some(spread) = pod::spread_of(pod, selector) {
            top.push(("spread".into(), toml_str(spread)));
        }
        top.extend(pod::scheduling(pod, selector));
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
                top.push((
                    "disruption_budget".into(),
                    TomlValue::Tab(vec![(k.into(), v)]),
                ));
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
                    .push((format!("{section}.{}", toml_key(name)), entries));
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
                .filter(|v| storage::volume_kind(v).is_some())
                .filter_map(|v| v.get("name").and_then(Value::as_str).map(str::to_string)),
        );
        names
    }

    fn container(&mut self, c: &Value, volumes: &[String]) -> Vec<(String, TomlValue)> {
        let cname = c.get("name").and_then(Value::as_str).unwrap_or_default();
        let mut out = Vec::new();
        out.push((
            "image".to_string(),
            toml_str(c.get("image").and_then(Value::as_str).unwrap_or_default()),
        ));
        if let Some(p) = c.get("imagePullPolicy").and_then(Value::as_str) {
            let spelling = match p {
                "Always" => "always",
                "Never" => "never",
                _ => "if-not-present",
            };
            out.push(("pull".into(), toml_str(spelling)));
        }
        for (res, key) in [
            ("cpu", "cpu"),
            ("memory", "memory"),
            ("ephemeral-storage", "ephemeral_storage"),
        ] {
            let request = c
                .pointer(&format!("/resources/requests/{res}"))
                .map(text_of);
            let limit = c.pointer(&format!("/resources/limits/{res}")).map(text_of);
            match (request, limit) {
                (Some(r), Some(l)) if r == l => out.push((key.into(), toml_str(r))),
                (None, None) => {}
                (r, l) => {
                    let mut t = Vec::new();
                    if let Some(r) = r {
                        t.push(("request".to_string(), toml_str(r)));
                    }
                    if let Some(l) = l {
                        t.push(("limit".to_string(), toml_str(l)));
                    }
                    out.push((key.into(), TomlValue::Tab(t)));
                }
            }
        }
        out.extend(pod::extended(c));
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
                Some(proto) => toml_str(format!("{n}/{}", proto.to_ascii_lowercase())),
                None => TomlValue::Int(n),
            };
            ports.push((name, value));
        }
        if !ports.is_empty() {
            out.push(("ports".into(), TomlValue::Tab(ports)));
        }
        let env: Vec<(String, TomlValue)> = c
            .get("env")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| self.env_var(e))
            .collect();
        if !env.is_empty() {
            out.push(("env".into(), TomlValue::Tab(env)));
        }
        for key in ["command", "args"] {
            if let Some(v) = c.get(key) {
                out.push((key.into(), str_arr(v)));
            }
        }
        out.extend(container::env_from(c));
        for (field, spec) in [("postStart", "post_start"), ("preStop", "pre_stop")] {
            if let Some(h) = c
                .pointer(&format!("/lifecycle/{field}"))
                .and_then(container::hook)
            {
                out.push((spec.into(), h));
            }
        }
        for (field, spec) in [
            ("livenessProbe", "liveness"),
            ("readinessProbe", "readiness"),
            ("startupProbe", "startup"),
        ] {
            if let Some(p) = c.get(field).and_then(container::probe) {
                out.push((spec.into(), p));
            }
        }
        if let Some(u) = ptr(c, "/securityContext/runAsUser").as_i64() {
            out.push(("run_as_user".into(), TomlValue::Int(u)));
        }
        out.extend(pod::container_security(c, self.restricted));
        let mut mounts: Vec<(String, TomlValue)> = Vec::new();
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
                // A spec mounts each volume once; the second mount is kept by a patch.
                continue;
            }
            let sub = m.get("subPath").and_then(Value::as_str);
            let ro = m.get("readOnly").and_then(Value::as_bool) == Some(true);
            let value = if sub.is_none() && !ro {
                toml_str(path)
            } else {
                let mut t = vec![("path".to_string(), toml_str(path))];
                if let Some(sub) = sub {
                    t.push(("sub_path".into(), toml_str(sub)));
                }
                if ro {
                    t.push(("read_only".into(), TomlValue::Bool(true)));
                }
                TomlValue::Tab(t)
            };
            mounts.push((vol.to_string(), value));
        }
        if !mounts.is_empty() {
            out.push(("mounts".into(), TomlValue::Tab(mounts)));
        }
        out.extend(storage::devices(c));
        out
    }

    fn env_var(&self, e: &Value) -> Option<(String, TomlValue)> {
        let name = e.get("name")?.as_str()?.to_string();
        if let Some(v) = e.get("value").and_then(Value::as_str) {
            return Some((name, toml_str(v)));
        }
        let from = e.get("valueFrom");
        let Some(from) = from else {
            return Some((name, toml_str("")));
        };
        let pair = |kind: &str, r: &Value| {
            TomlValue::Tab(vec![
                (
                    kind.to_string(),
                    toml_str(ptr_str(r, "/name").unwrap_or_default()),
                ),
                (
                    "key".to_string(),
                    toml_str(ptr_str(r, "/key").unwrap_or_default()),
                ),
            ])
        };
        if let Some(r) = from.get("secretKeyRef") {
            Some((name, pair("secret", r)))
        } else if let Some(r) = from.get("configMapKeyRef") {
            Some((name, pair("config_map", r)))
        } else if let Some(path) = ptr_str(from, "/fieldRef/fieldPath") {
            Some((name, TomlValue::Tab(vec![("field".into(), toml_str(path))])))
        } else {
            // Any other source has no spelling in a spec: it is kept by a patch.
            from.get("resourceFieldRef")
                .map(|r| (name, container::resource_ref(r)))
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
                entries.push(("size".to_string(), toml_str(text_of(size))));
            }
            if let Some(class) = ptr_str(t, "/spec/storageClassName") {
                entries.push(("class".into(), toml_str(class)));
            }
            let access = strs(ptr(t, "/spec/accessModes"));
            match access.as_slice() {
                [one] if one == "ReadWriteOnce" => {}
                [one] => entries.push(("access".into(), toml_str(one))),
                [] => {}
                many => entries.push((
                    "access".into(),
                    TomlValue::Arr(many.iter().map(|a| toml_str(a.as_str())).collect()),
                )),
            }
            entries.extend(storage::template_extras(t));
            doc.sections
                .push((format!("volumes.{}", toml_key(name)), entries));
        }
        for v in ptr(sts, "/spec/template/spec/volumes")
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = v.get("name").and_then(Value::as_str).unwrap_or_default();
            // A kind the spec has no spelling for is kept, with its mounts, by patches.
            if let Some(entries) = storage::volume_kind(v) {
                doc.sections
                    .push((format!("volumes.{}", toml_key(name)), entries));
            }
        }
    }

    /// `[service]`, or with `named` a `[services.NAME]` table. `pod_labels` are the pod
    /// template's: a selector key among them is the app's own (berth selects on its labels), any
    /// other (one pod's name) narrows the Service and is kept as `selector`.
    fn service(
        &mut self,
        svc: &Value,
        app: &str,
        named: bool,
        pod_labels: &BTreeMap<String, String>,
        doc: &mut Doc,
    ) {
        let mut entries = Vec::new();
        let name = ptr_str(svc, "/metadata/name").unwrap_or_default();
        if name != app && !named {
            entries.push(("name".to_string(), toml_str(name)));
        }
        if let Some(t) = ptr_str(svc, "/spec/type")
            && t != "ClusterIP"
        {
            entries.push(("type".into(), toml_str(t)));
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
                TomlValue::Int(port)
            } else {
                let mut t = vec![("port".to_string(), TomlValue::Int(port))];
                if !named_target {
                    let target = target.and_then(int_or_str).unwrap_or(TomlValue::Int(port));
                    t.push(("target".into(), target));
                }
                if let Some(np) = node_port {
                    t.push(("node_port".into(), TomlValue::Int(np)));
                }
                TomlValue::Tab(t)
            };
            ports.push((pname, value));
        }
        entries.push(("ports".into(), TomlValue::Tab(ports)));
        entries.extend(pod::service_traffic(svc));
        let mut annotations = str_map(ptr(svc, "/metadata/annotations"));
        for a in BERTH_ANNOTATIONS {
            annotations.remove(a);
        }
        if !annotations.is_empty() {
            entries.push(("annotations".into(), tab_of(&annotations)));
        }
        let mut narrowing = str_map(ptr(svc, "/spec/selector"));
        narrowing.retain(|k, v| pod_labels.get(k) != Some(v));
        if !narrowing.is_empty() {
            entries.push(("selector".into(), tab_of(&narrowing)));
        }
        let section = if named {
            format!("services.{}", toml_key(name))
        } else {
            "service".to_string()
        };
        doc.sections.push((section, entries));
    }
}

/// Removes the node ports of a LoadBalancer Service and says whether it had any. The API server
/// allocates them (a LoadBalancer Service needs them) whether or not anyone asked; pinned in a
/// spec, they fail in any other namespace or cluster ("provided port is already allocated").
/// A NodePort Service's node ports are kept: exposing them is why it is a NodePort Service.
fn drop_allocated_node_ports(svc: &mut Value) -> bool {
    if ptr_str(svc, "/spec/type") != Some("LoadBalancer") {
        return false;
    }
    let Some(ports) = svc.pointer_mut("/spec/ports").and_then(Value::as_array_mut) else {
        return false;
    };
    let mut dropped = false;
    for p in ports.iter_mut().filter_map(Value::as_object_mut) {
        dropped |= p.remove("nodePort").is_some();
    }
    dropped
}
