//! Live → spec for the parts of a container that take several shapes: probes (exec, TCP, HTTP
//! with headers, gRPC), lifecycle hooks (a command, an HTTP GET or a sleep), `envFrom`, and env
//! values read from the container's own resources.

use serde_json::Value;

use super::toml_writer::{TomlValue, int_or_str, secs, str_arr, toml_str};
use super::{ptr, ptr_str, text_of};

type Entries = Vec<(String, TomlValue)>;

/// An HTTP GET of a probe or a hook, in the spec's table form.
fn http_get(h: &Value) -> Option<TomlValue> {
    let mut http = vec![
        (
            "path".to_string(),
            toml_str(h.get("path").and_then(Value::as_str).unwrap_or("/")),
        ),
        ("port".to_string(), int_or_str(h.get("port")?)?),
    ];
    if let Some(scheme) = h.get("scheme").and_then(Value::as_str) {
        http.push(("scheme".into(), toml_str(scheme)));
    }
    let headers: Entries = ptr(h, "/httpHeaders")
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|hd| {
            Some((
                ptr_str(hd, "/name")?.to_string(),
                toml_str(ptr_str(hd, "/value").unwrap_or_default()),
            ))
        })
        .collect();
    if !headers.is_empty() {
        http.push(("headers".into(), TomlValue::Tab(headers)));
    }
    Some(TomlValue::Tab(http))
}

pub(super) fn probe(p: &Value) -> Option<TomlValue> {
    let mut t = Vec::new();
    if let Some(cmd) = p.pointer("/exec/command") {
        t.push(("exec".to_string(), str_arr(cmd)));
    } else if let Some(port) = p.pointer("/tcpSocket/port") {
        t.push(("tcp".into(), int_or_str(port)?));
    } else if let Some(h) = p.get("httpGet") {
        t.push(("http".into(), http_get(h)?));
    } else if let Some(g) = p.get("grpc") {
        let port = ptr(g, "/port").as_i64()?;
        let value = match ptr_str(g, "/service").filter(|s| !s.is_empty()) {
            Some(service) => TomlValue::Tab(vec![
                ("port".into(), TomlValue::Int(port)),
                ("service".into(), toml_str(service)),
            ]),
            None => TomlValue::Int(port),
        };
        t.push(("grpc".into(), value));
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
            t.push((spec.into(), TomlValue::Int(n)));
        }
    }
    Some(TomlValue::Tab(t))
}

/// A lifecycle handler: a command stays an array; an HTTP GET and a sleep become tables.
pub(super) fn hook(h: &Value) -> Option<TomlValue> {
    if let Some(cmd) = h.pointer("/exec/command") {
        return Some(str_arr(cmd));
    }
    if let Some(get) = h.get("httpGet") {
        return Some(TomlValue::Tab(vec![("http".into(), http_get(get)?)]));
    }
    let seconds = ptr(h, "/sleep/seconds").as_i64()?;
    Some(TomlValue::Tab(vec![("sleep".into(), secs(seconds))]))
}

/// `envFrom` as `env_from = [{ config_map = "x" }, { secret = "y", prefix = "DB_" }]`.
pub(super) fn env_from(c: &Value) -> Option<(String, TomlValue)> {
    let sources: Vec<TomlValue> = ptr(c, "/envFrom")
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let mut t = if let Some(name) = ptr_str(e, "/configMapRef/name") {
                vec![("config_map".to_string(), toml_str(name))]
            } else {
                vec![(
                    "secret".to_string(),
                    toml_str(ptr_str(e, "/secretRef/name")?),
                )]
            };
            if let Some(p) = ptr_str(e, "/prefix").filter(|p| !p.is_empty()) {
                t.push(("prefix".into(), toml_str(p)));
            }
            Some(TomlValue::Tab(t))
        })
        .collect();
    (!sources.is_empty()).then(|| ("env_from".to_string(), TomlValue::Arr(sources)))
}

/// A `resourceFieldRef` env value: `{ resource = "limits.memory", divisor = "1Mi" }`.
pub(super) fn resource_ref(r: &Value) -> TomlValue {
    let mut t = vec![(
        "resource".to_string(),
        toml_str(ptr_str(r, "/resource").unwrap_or_default()),
    )];
    if let Some(d) = r.get("divisor") {
        t.push(("divisor".into(), toml_str(text_of(d))));
    }
    TomlValue::Tab(t)
}
