//! Live → spec for the fields beyond the console form: pod and container security (and whether
//! the pod meets the `security = "restricted"` preset, which then stands for the fields it sets),
//! scheduling, extended and ephemeral-storage resources, the StatefulSet's own settings and the
//! access Service's traffic settings. Each reader returns spec entries; whatever it cannot
//! spell is left out, and the self-check names it.

use serde_json::Value;

use super::toml_writer::{TomlValue, secs, str_arr, tab_of, toml_str};
use super::{BERTH_ANNOTATIONS, ptr, ptr_str, str_map, strs, text_of};
use crate::labels::RESERVED_PREFIX;

type Entries = Vec<(String, TomlValue)>;

fn containers(pod: &Value) -> impl Iterator<Item = &Value> {
    ["initContainers", "containers"]
        .into_iter()
        .flat_map(|l| pod.get(l).and_then(Value::as_array).into_iter().flatten())
}

/// Whether the pod is exactly what `security = "restricted"` renders: runAsNonRoot and the
/// RuntimeDefault profile on the pod, and on every container no privilege escalation, every
/// capability dropped, at most NET_BIND_SERVICE added, nothing privileged or root; no hostPath.
pub(super) fn restricted(pod: &Value) -> bool {
    let pod_ok = ptr(pod, "/securityContext/runAsNonRoot") == &Value::Bool(true)
        && ptr_str(pod, "/securityContext/seccompProfile/type") == Some("RuntimeDefault")
        && ptr(pod, "/securityContext/runAsUser").as_i64() != Some(0);
    let no_host_path = ptr(pod, "/volumes")
        .as_array()
        .into_iter()
        .flatten()
        .all(|v| v.get("hostPath").is_none());
    let containers_ok = containers(pod).all(|c| {
        let s = ptr(c, "/securityContext");
        ptr(s, "/allowPrivilegeEscalation") == &Value::Bool(false)
            && strs(ptr(s, "/capabilities/drop")) == ["ALL"]
            && strs(ptr(s, "/capabilities/add"))
                .iter()
                .all(|a| a == "NET_BIND_SERVICE")
            && ptr(s, "/privileged") != &Value::Bool(true)
            && ptr(s, "/runAsUser").as_i64() != Some(0)
            && ptr(s, "/seccompProfile").is_null()
    });
    pod_ok && no_host_path && containers_ok
}

fn ints(v: &Value) -> TomlValue {
    TomlValue::Arr(
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_i64)
            .map(TomlValue::Int)
            .collect(),
    )
}

/// Pod securityContext fields besides runAsUser and fsGroup.
pub(super) fn pod_security(pod: &Value, restricted: bool) -> Entries {
    let s = ptr(pod, "/securityContext");
    let mut out = Entries::new();
    if restricted {
        out.push(("security".into(), toml_str("restricted")));
    }
    if let Some(g) = ptr(s, "/runAsGroup").as_i64() {
        out.push(("run_as_group".into(), TomlValue::Int(g)));
    }
    if let Some(b) = ptr(s, "/runAsNonRoot").as_bool()
        && !(restricted && b)
    {
        out.push(("run_as_non_root".into(), TomlValue::Bool(b)));
    }
    if s.get("supplementalGroups")
        .is_some_and(|g| g.as_array().is_some_and(|a| !a.is_empty()))
    {
        out.push((
            "supplemental_groups".into(),
            ints(ptr(s, "/supplementalGroups")),
        ));
    }
    let seccomp = match ptr_str(s, "/seccompProfile/type") {
        Some("RuntimeDefault") if restricted => None,
        Some("RuntimeDefault") => Some("runtime-default".to_string()),
        Some("Unconfined") => Some("unconfined".to_string()),
        Some("Localhost") => {
            ptr_str(s, "/seccompProfile/localhostProfile").map(|p| format!("localhost/{p}"))
        }
        _ => None,
    };
    if let Some(p) = seccomp {
        out.push(("seccomp".into(), toml_str(p)));
    }
    out
}

/// A container's securityContext fields besides runAsUser.
pub(super) fn container_security(c: &Value, restricted: bool) -> Entries {
    let s = ptr(c, "/securityContext");
    let mut out = Entries::new();
    for (field, key) in [
        ("readOnlyRootFilesystem", "read_only_root"),
        ("allowPrivilegeEscalation", "allow_privilege_escalation"),
        ("privileged", "privileged"),
    ] {
        if let Some(b) = s.get(field).and_then(Value::as_bool) {
            // The preset sets allowPrivilegeEscalation false; said again it is only noise.
            if !(restricted && key == "allow_privilege_escalation") {
                out.push((key.into(), TomlValue::Bool(b)));
            }
        }
    }
    let add = s
        .pointer("/capabilities/add")
        .filter(|a| a.as_array().is_some_and(|a| !a.is_empty()));
    let drop = s
        .pointer("/capabilities/drop")
        .filter(|d| d.as_array().is_some_and(|a| !a.is_empty()))
        .filter(|_| !restricted);
    if add.is_some() || drop.is_some() {
        let mut caps = Entries::new();
        if let Some(a) = add {
            caps.push(("add".into(), str_arr(a)));
        }
        if let Some(d) = drop {
            caps.push(("drop".into(), str_arr(d)));
        }
        out.push(("capabilities".into(), TomlValue::Tab(caps)));
    }
    out
}

/// Extended resources (a domain-prefixed name outside kubernetes.io) whose request equals
/// their limit, as `resources = { "nvidia.com/gpu" = 1 }`.
pub(super) fn extended(c: &Value) -> Option<(String, TomlValue)> {
    let limits = ptr(c, "/resources/limits").as_object()?;
    let requests = ptr(c, "/resources/requests");
    let mut out = Entries::new();
    for (name, limit) in limits {
        let extended = name
            .split_once('/')
            .is_some_and(|(d, _)| d != "kubernetes.io" && !d.ends_with(".kubernetes.io"));
        if !extended
            || requests
                .get(name)
                .is_some_and(|r| text_of(r) != text_of(limit))
        {
            continue;
        }
        let text = text_of(limit);
        let value = match text.parse::<i64>() {
            Ok(n) => TomlValue::Int(n),
            Err(_) => toml_str(text),
        };
        out.push((name.clone(), value));
    }
    (!out.is_empty()).then(|| ("resources".to_string(), TomlValue::Tab(out)))
}

/// `spread` from a pod's affinity: exactly one required anti-affinity term on the app's own
/// selector and a node or zone key.
pub(super) fn spread_of(pod: &Value, selector: &Value) -> Option<&'static str> {
    let terms = ptr(
        pod,
        "/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution",
    )
    .as_array()?;
    let [term] = terms.as_slice() else {
        return None;
    };
    own_spread_key(term, selector)
}

fn own_spread_key(term: &Value, selector: &Value) -> Option<&'static str> {
    if ptr(term, "/labelSelector/matchLabels") != selector {
        return None;
    }
    match ptr_str(term, "/topologyKey")? {
        "kubernetes.io/hostname" => Some("hostname"),
        "topology.kubernetes.io/zone" => Some("zone"),
        _ => None,
    }
}

fn short_topology_key(key: &str) -> &str {
    match key {
        "kubernetes.io/hostname" => "hostname",
        "topology.kubernetes.io/zone" => "zone",
        other => other,
    }
}

fn node_expr(e: &Value) -> Option<Entries> {
    let key = ptr_str(e, "/key")?;
    let values = ptr(e, "/values");
    let one_int = || strs(values).first().and_then(|v| v.parse::<i64>().ok());
    let op = match ptr_str(e, "/operator")? {
        "In" => ("in", str_arr(values)),
        "NotIn" => ("not_in", str_arr(values)),
        "Exists" => ("exists", TomlValue::Bool(true)),
        "DoesNotExist" => ("exists", TomlValue::Bool(false)),
        "Gt" => ("gt", TomlValue::Int(one_int()?)),
        "Lt" => ("lt", TomlValue::Int(one_int()?)),
        _ => return None,
    };
    Some(vec![("key".into(), toml_str(key)), (op.0.into(), op.1)])
}

/// Tolerations, node affinity, `prefer_spread`, topology spread and the priority class.
pub(super) fn scheduling(pod: &Value, selector: &Value) -> Entries {
    let mut out = Entries::new();
    let tolerations: Vec<TomlValue> = ptr(pod, "/tolerations")
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let mut e = Entries::new();
            if let Some(k) = ptr_str(t, "/key") {
                e.push(("key".into(), toml_str(k)));
            }
            if ptr_str(t, "/operator") != Some("Exists") {
                e.push((
                    "value".into(),
                    toml_str(ptr_str(t, "/value").unwrap_or_default()),
                ));
            }
            let effect = ptr_str(t, "/effect").filter(|e| !e.is_empty());
            if let Some(eff) = effect {
                e.push(("effect".into(), toml_str(eff)));
            }
            if let (Some(n), Some("NoExecute")) = (ptr(t, "/tolerationSeconds").as_i64(), effect) {
                e.push(("evict_after".into(), secs(n)));
            }
            TomlValue::Tab(e)
        })
        .collect();
    if !tolerations.is_empty() {
        out.push(("tolerations".into(), TomlValue::Arr(tolerations)));
    }

    let node = ptr(pod, "/affinity/nodeAffinity");
    let mut affinity = Entries::new();
    let terms = ptr(
        node,
        "/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms",
    );
    if let Some([term]) = terms.as_array().map(Vec::as_slice)
        && term.get("matchFields").is_none()
    {
        let exprs: Option<Vec<TomlValue>> = ptr(term, "/matchExpressions")
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| node_expr(e).map(TomlValue::Tab))
            .collect();
        if let Some(exprs) = exprs.filter(|e| !e.is_empty()) {
            affinity.push(("required".into(), TomlValue::Arr(exprs)));
        }
    }
    let preferred: Vec<TomlValue> = ptr(node, "/preferredDuringSchedulingIgnoredDuringExecution")
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let [e] = ptr(p, "/preference/matchExpressions")
                .as_array()?
                .as_slice()
            else {
                return None;
            };
            let mut entries = vec![(
                "weight".to_string(),
                TomlValue::Int(ptr(p, "/weight").as_i64()?),
            )];
            entries.extend(node_expr(e)?);
            Some(TomlValue::Tab(entries))
        })
        .collect();
    if !preferred.is_empty() {
        affinity.push(("preferred".into(), TomlValue::Arr(preferred)));
    }
    if !affinity.is_empty() {
        out.push(("node_affinity".into(), TomlValue::Tab(affinity)));
    }

    let preferred_spread = ptr(
        pod,
        "/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution",
    );
    if let Some([term]) = preferred_spread.as_array().map(Vec::as_slice)
        && ptr(term, "/weight").as_i64() == Some(100)
        && let Some(key) = own_spread_key(ptr(term, "/podAffinityTerm"), selector)
    {
        out.push(("prefer_spread".into(), toml_str(key)));
    }

    let spread: Vec<TomlValue> = ptr(pod, "/topologySpreadConstraints")
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| ptr(c, "/labelSelector/matchLabels") == selector)
        .filter_map(|c| {
            let mut e = vec![(
                "key".to_string(),
                toml_str(short_topology_key(ptr_str(c, "/topologyKey")?)),
            )];
            let skew = ptr(c, "/maxSkew").as_i64().unwrap_or(1);
            if skew != 1 {
                e.push(("max_skew".into(), TomlValue::Int(skew)));
            }
            if ptr_str(c, "/whenUnsatisfiable") == Some("ScheduleAnyway") {
                e.push(("when_unsatisfiable".into(), toml_str("schedule-anyway")));
            }
            Some(TomlValue::Tab(e))
        })
        .collect();
    if !spread.is_empty() {
        out.push(("topology_spread".into(), TomlValue::Arr(spread)));
    }
    if let Some(p) = ptr_str(pod, "/priorityClassName") {
        out.push(("priority_class".into(), toml_str(p)));
    }
    out
}

/// Annotations someone chose: without berth's own keys.
fn chosen_annotations(object: &Value) -> std::collections::BTreeMap<String, String> {
    let mut a = str_map(ptr(object, "/metadata/annotations"));
    for k in BERTH_ANNOTATIONS {
        a.remove(k);
    }
    a.retain(|k, _| !k.starts_with(RESERVED_PREFIX));
    a
}

/// `min_ready`, `start_ordinal`, and the annotations of the StatefulSet and headless Service.
pub(super) fn set_fields(sts: &Value, headless: Option<&Value>) -> Entries {
    let mut out = Entries::new();
    if let Some(n) = ptr(sts, "/spec/minReadySeconds").as_i64() {
        out.push(("min_ready".into(), secs(n)));
    }
    if let Some(n) = ptr(sts, "/spec/ordinals/start").as_i64()
        && n != 0
    {
        out.push(("start_ordinal".into(), TomlValue::Int(n)));
    }
    let set = chosen_annotations(sts);
    if !set.is_empty() {
        out.push(("set_annotations".into(), tab_of(&set)));
    }
    if let Some(h) = headless {
        let a = chosen_annotations(h);
        if !a.is_empty() {
            out.push(("headless_annotations".into(), tab_of(&a)));
        }
    }
    out
}

/// The access Service's externalTrafficPolicy, source ranges and session affinity.
pub(super) fn service_traffic(svc: &Value) -> Entries {
    let mut out = Entries::new();
    if let Some(p) = ptr_str(svc, "/spec/externalTrafficPolicy") {
        out.push(("external_traffic_policy".into(), toml_str(p)));
    }
    let ranges = ptr(svc, "/spec/loadBalancerSourceRanges");
    if ranges.as_array().is_some_and(|r| !r.is_empty()) {
        out.push(("load_balancer_source_ranges".into(), str_arr(ranges)));
    }
    if let Some(a) = ptr_str(svc, "/spec/sessionAffinity") {
        out.push(("session_affinity".into(), toml_str(a)));
    }
    out
}
