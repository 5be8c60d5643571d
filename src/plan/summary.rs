//! Spec-level summaries of object changes, and the StatefulSet fields that cannot change in place.

use std::collections::BTreeMap;

use serde_json::Value;

use super::normalize::looks_secret;
use crate::spec::Quantity;

/// At most this many summary lines per object; the object diff has the rest.
const MAX_LINES: usize = 12;

/// Spec-level lines for one object's change, e.g. `replicas: 2 → 3`,
/// `containers.web.image: nginx:1.26 → nginx:1.27`, `volumes.data.size: 1Gi → 2Gi`.
/// Paths that have no spec spelling are given as `<Kind> <path>`.
pub fn summarize(kind: &str, before: Option<&Value>, after: Option<&Value>) -> Vec<String> {
    let (Some(before), Some(after)) = (before, after) else {
        return Vec::new();
    };
    let mut old = BTreeMap::new();
    let mut new = BTreeMap::new();
    flatten(before, String::new(), &mut old);
    flatten(after, String::new(), &mut new);
    let mut lines = Vec::new();
    let mut paths: Vec<&String> = old.keys().chain(new.keys()).collect();
    paths.sort();
    paths.dedup();
    for path in paths {
        let (o, n) = (old.get(path), new.get(path));
        if o == n {
            continue;
        }
        let name = spec_path(kind, path);
        let hidden = path.contains(".env[") && path_env_name(path).is_some_and(looks_secret);
        let line = if hidden {
            format!("{name}: changed (value hidden)")
        } else {
            match (o, n) {
                (Some(o), Some(n)) => format!("{name}: {o} → {n}"),
                (None, Some(n)) => format!("{name}: + {n}"),
                (Some(o), None) => format!("{name}: - {o}"),
                (None, None) => continue,
            }
        };
        lines.push(line);
    }
    if lines.len() > MAX_LINES {
        let more = lines.len() - MAX_LINES;
        lines.truncate(MAX_LINES);
        lines.push(format!("… and {more} more (see the diff)"));
    }
    lines
}

/// Flattens JSON into `path → scalar`; list items with a `name` are keyed by it (`containers[web]`),
/// so reordering or inserting does not show as a change of every later item.
fn flatten(value: &Value, path: String, out: &mut BTreeMap<String, String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                flatten(v, p, out);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let key = item
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| i.to_string());
                flatten(item, format!("{path}[{key}]"), out);
            }
            if items.is_empty() {
                out.insert(path, "[]".into());
            }
        }
        Value::String(s) => {
            out.insert(path, s.clone());
        }
        other => {
            out.insert(path, other.to_string());
        }
    }
}

fn path_env_name(path: &str) -> Option<&str> {
    let start = path.find(".env[")? + 5;
    let end = path[start..].find(']')? + start;
    Some(&path[start..end])
}

/// Maps an object path to the spec's spelling where there is one.
fn spec_path(kind: &str, path: &str) -> String {
    if kind == "StatefulSet" {
        if path == "spec.replicas" {
            return "replicas".into();
        }
        if path == "spec.podManagementPolicy" {
            return "pod_management".into();
        }
        if path == "spec.serviceName" {
            return "headless".into();
        }
        if let Some(rest) = path.strip_prefix("spec.updateStrategy") {
            return format!("update{rest}");
        }
        if let Some(rest) = path.strip_prefix("spec.template.metadata.annotations.") {
            return format!("annotations.{rest}");
        }
        if let Some(rest) = path.strip_prefix("spec.volumeClaimTemplates[")
            && let Some((volume, tail)) = rest.split_once(']')
        {
            if tail == ".spec.resources.requests.storage" {
                return format!("volumes.{volume}.size");
            }
            return format!("volumes.{volume}{tail}");
        }
        for (prefix, spec_name) in [
            ("spec.template.spec.containers[", "containers"),
            ("spec.template.spec.initContainers[", "init_containers"),
        ] {
            if let Some(rest) = path.strip_prefix(prefix)
                && let Some((container, tail)) = rest.split_once(']')
            {
                let tail = match tail {
                    ".resources.requests.cpu" => ".cpu.request".to_string(),
                    ".resources.limits.cpu" => ".cpu.limit".to_string(),
                    ".resources.requests.memory" => ".memory.request".to_string(),
                    ".resources.limits.memory" => ".memory.limit".to_string(),
                    other => other.replace(".env[", ".env.").replace("].value", ""),
                };
                return format!("{spec_name}.{container}{tail}");
            }
        }
    }
    if let Some(rest) = path.strip_prefix("metadata.labels.") {
        return format!("{kind} labels.{rest}");
    }
    format!("{kind} {path}")
}

/// A StatefulSet change the API server refuses in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImmutableChange {
    pub reason: String,
    /// Whether deleting (orphaning the pods) and recreating the StatefulSet carries it out.
    /// Shrinking a volume cannot be done at all.
    pub recreate_helps: bool,
    /// A grown volume: after the recreate the existing PVCs are expanded to this size.
    pub expand: Option<(String, String)>,
    /// The pods must be restarted to take the change (a new headless Service name: a pod's DNS
    /// name is fixed when it starts).
    pub restarts_pods: bool,
    /// A claim template that goes (a volume renamed or no longer declared): after the recreate
    /// the pods no longer mount its claims, which stay behind unused. Needs its own opt-in.
    pub abandons: Option<String>,
}

/// Compares the immutable parts of a live and a desired StatefulSet: selector, serviceName,
/// podManagementPolicy and volumeClaimTemplates.
pub fn immutable_changes(live: &Value, desired: &Value) -> Vec<ImmutableChange> {
    let mut out = Vec::new();
    let spec = |v: &Value, key: &str| v.get("spec").and_then(|s| s.get(key)).cloned();
    let plain = |reason: String| ImmutableChange {
        reason,
        recreate_helps: true,
        expand: None,
        restarts_pods: false,
        abandons: None,
    };
    let text = |v: Option<Value>| match v {
        Some(Value::String(s)) => s,
        Some(other) => other.to_string(),
        None => "(unset)".into(),
    };
    let selector = |v: &Value| {
        v.get("spec")
            .and_then(|s| s.get("selector"))
            .and_then(|s| s.get("matchLabels"))
            .cloned()
    };
    if selector(live) != selector(desired) {
        out.push(plain("the pod selector changes".into()));
    }
    let (live_svc, want_svc) = (spec(live, "serviceName"), spec(desired, "serviceName"));
    if live_svc != want_svc {
        out.push(ImmutableChange {
            restarts_pods: true,
            ..plain(format!(
                "headless: {} → {} (serviceName; pods are restarted one at a time to take it)",
                text(live_svc),
                text(want_svc)
            ))
        });
    }
    let policy = |v: &Value| {
        spec(v, "podManagementPolicy").unwrap_or_else(|| Value::String("OrderedReady".into()))
    };
    if policy(live) != policy(desired) {
        out.push(plain(format!(
            "pod_management: {} → {}",
            text(Some(policy(live))),
            text(Some(policy(desired)))
        )));
    }
    let templates = |v: &Value| -> BTreeMap<String, Value> {
        spec(v, "volumeClaimTemplates")
            .and_then(|t| t.as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|t| {
                let name = t.get("metadata")?.get("name")?.as_str()?.to_string();
                Some((name, t.get("spec").cloned().unwrap_or(Value::Null)))
            })
            .collect()
    };
    let (old, new) = (templates(live), templates(desired));
    for name in old
        .keys()
        .chain(new.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        match (old.get(name), new.get(name)) {
            (Some(_), None) => out.push(ImmutableChange {
                abandons: Some(name.clone()),
                ..plain(format!(
                    "volumes.{name} is no longer declared: its claims are left behind and the \
                     pods lose that data"
                ))
            }),
            (None, Some(_)) => out.push(plain(format!("volumes.{name} is new"))),
            (Some(o), Some(n)) => out.extend(template_changes(name, o, n)),
            (None, None) => {}
        }
    }
    out
}

fn template_changes(name: &str, old: &Value, new: &Value) -> Vec<ImmutableChange> {
    let mut out = Vec::new();
    let storage = |v: &Value| {
        v.pointer("/resources/requests/storage")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let (o, n) = (storage(old), storage(new));
    if o != n {
        let parsed = (
            o.as_deref().and_then(|q| Quantity::parse(q).ok()),
            n.as_deref().and_then(|q| Quantity::parse(q).ok()),
        );
        let (o, n) = (o.unwrap_or_default(), n.unwrap_or_default());
        match parsed {
            (Some(a), Some(b)) if a.nanos() == b.nanos() => {}
            (Some(a), Some(b)) if b.nanos() > a.nanos() => out.push(ImmutableChange {
                reason: format!("volumes.{name}.size: {o} → {n} (existing PVCs are expanded)"),
                recreate_helps: true,
                expand: Some((name.to_string(), n.clone())),
                restarts_pods: false,
                abandons: None,
            }),
            _ => out.push(ImmutableChange {
                reason: format!(
                    "volumes.{name}.size: {o} → {n}: a volume cannot shrink; restore the size \
                     or migrate the data to a new volume"
                ),
                recreate_helps: false,
                expand: None,
                restarts_pods: false,
                abandons: None,
            }),
        }
    }
    // dataSource too: a restore added to an existing set is found here, before the API server
    // refuses the template change in the dry-run.
    for field in [
        "accessModes",
        "storageClassName",
        "volumeMode",
        "dataSource",
    ] {
        // The server writes `apiGroup: null` into a dataSource that names a claim.
        let without_nulls = |v: Option<&Value>| {
            v.map(|v| match v {
                Value::Object(m) => Value::Object(
                    m.iter()
                        .filter(|(_, x)| !x.is_null())
                        .map(|(k, x)| (k.clone(), x.clone()))
                        .collect(),
                ),
                other => other.clone(),
            })
        };
        let (a, b) = (without_nulls(old.get(field)), without_nulls(new.get(field)));
        let (a, b) = (a.as_ref(), b.as_ref());
        // The server fills volumeMode; only a spec that sets one can change it.
        if b.is_some() && a != b {
            out.push(ImmutableChange {
                reason: format!(
                    "volumes.{name}.{field}: {} → {} (existing PVCs keep the old value)",
                    a.map(Value::to_string).unwrap_or_else(|| "(unset)".into()),
                    b.map(Value::to_string).unwrap_or_default()
                ),
                recreate_helps: true,
                expand: None,
                restarts_pods: false,
                abandons: None,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sts(replicas: i64, image: &str, size: &str, service: &str) -> Value {
        json!({"kind": "StatefulSet", "spec": {
            "replicas": replicas, "serviceName": service, "podManagementPolicy": "OrderedReady",
            "selector": {"matchLabels": {"app.kubernetes.io/name": "db"}},
            "template": {"spec": {"containers": [{"name": "db", "image": image,
                "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}},
                "env": [{"name": "ROOT_PASSWORD", "value": "a"}]}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}}]
        }})
    }

    #[test]
    fn summary_speaks_the_spec() {
        let a = sts(2, "mysql:8.0", "1Gi", "db-headless");
        let mut b = sts(3, "mysql:8.4", "1Gi", "db-headless");
        b["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["cpu"] = json!("2");
        b["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = json!("b");
        let lines = summarize("StatefulSet", Some(&a), Some(&b));
        assert_eq!(
            lines,
            [
                "replicas: 2 → 3",
                "containers.db.env.ROOT_PASSWORD: changed (value hidden)",
                "containers.db.image: mysql:8.0 → mysql:8.4",
                "containers.db.cpu.limit: 1 → 2",
            ]
        );
    }

    #[test]
    fn no_change_no_lines() {
        let a = sts(2, "x", "1Gi", "h");
        assert!(summarize("StatefulSet", Some(&a), Some(&a)).is_empty());
    }

    #[test]
    fn growing_a_volume_is_an_expansion_and_shrinking_is_refused() {
        let grown = immutable_changes(&sts(1, "x", "1Gi", "h"), &sts(1, "x", "2Gi", "h"));
        assert_eq!(grown.len(), 1);
        assert!(grown[0].recreate_helps);
        assert_eq!(grown[0].expand, Some(("data".into(), "2Gi".into())));
        let same = immutable_changes(&sts(1, "x", "1Gi", "h"), &sts(1, "x", "1024Mi", "h"));
        assert!(same.is_empty(), "{same:?}");
        let shrunk = immutable_changes(&sts(1, "x", "2Gi", "h"), &sts(1, "x", "1Gi", "h"));
        assert_eq!(shrunk.len(), 1);
        assert!(!shrunk[0].recreate_helps);
    }

    #[test]
    fn a_restore_added_to_an_existing_volume_is_an_immutable_change() {
        let mut restored = sts(1, "x", "1Gi", "h");
        restored["spec"]["volumeClaimTemplates"][0]["spec"]["dataSource"] = json!({"kind": "VolumeSnapshot", "apiGroup": "snapshot.storage.k8s.io", "name": "nightly"});
        let c = immutable_changes(&sts(1, "x", "1Gi", "h"), &restored);
        assert_eq!(c.len(), 1, "{c:?}");
        // What the server stores for a claim source has `apiGroup: null`: the same source.
        let mut stored = restored.clone();
        stored["spec"]["volumeClaimTemplates"][0]["spec"]["dataSource"]["x"] = json!(null);
        assert!(immutable_changes(&stored, &restored).is_empty());
        assert!(
            c[0].reason
                .starts_with("volumes.data.dataSource: (unset) → "),
            "{c:?}"
        );
        assert!(c[0].recreate_helps);
    }

    #[test]
    fn service_name_change_is_immutable() {
        let c = immutable_changes(&sts(1, "x", "1Gi", "a"), &sts(1, "x", "1Gi", "b"));
        assert_eq!(c.len(), 1);
        assert!(
            c[0].reason.starts_with("headless: a → b") && c[0].restarts_pods,
            "{}",
            c[0].reason
        );
        assert!(immutable_changes(&sts(1, "x", "1Gi", "a"), &sts(5, "y", "1Gi", "a")).is_empty());
    }
}
