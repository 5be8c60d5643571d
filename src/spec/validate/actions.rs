//! What a container does or is given beyond commands and literal env: lifecycle hooks (a
//! command, an HTTP request or a sleep), the HTTP GET that probes and hooks share, gRPC probe
//! ports, `env_from` sources, and env values read from the container's own resources.

use std::collections::BTreeMap;
use std::ops::Range;

use super::probes::probe_port;
use super::values::{quantity, seconds};
use super::{Ctx, pick};
use crate::spec::app::*;
use crate::spec::names;
use crate::spec::raw::*;

/// The resources an env value may read (`resource = "limits.memory"`).
const RESOURCE_FIELDS: [&str; 6] = [
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
];

/// The HTTP GET of a probe or a hook: a path starting with '/', a declared port, headers.
pub(super) fn http_get(
    cx: &mut Ctx<'_>,
    h: &Spanned<RawHttpGet>,
    ports: &[Port],
    port_names: &BTreeMap<String, Range<usize>>,
) -> Option<HttpGet> {
    let http = h.get_ref();
    let path = match &http.path {
        Some(path) if path.get_ref().starts_with('/') => Some(path.get_ref().clone()),
        Some(path) => {
            let d = cx
                .error("probe", path.span(), "an HTTP path must start with '/'")
                .help("e.g. path = \"/healthz\"");
            cx.push(d);
            None
        }
        None => Some("/".to_string()),
    };
    let port = match &http.port {
        Some(port) => probe_port(cx, port, ports, port_names),
        None => {
            let d = cx
                .error("probe", h.span(), "an HTTP check needs a `port`")
                .help("e.g. http = { path = \"/healthz\", port = \"http\" }");
            cx.push(d);
            None
        }
    };
    let scheme = http.scheme.as_ref().map(|s| match s.get_ref() {
        HttpScheme::Http => "HTTP".to_string(),
        HttpScheme::Https => "HTTPS".to_string(),
    });
    let mut headers = BTreeMap::new();
    let mut headers_ok = true;
    for (k, v) in http.headers.iter().flatten() {
        let name = k.get_ref();
        let token = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c));
        if !token {
            let d = cx
                .error(
                    "probe",
                    k.span(),
                    format!("`{name}` is not an HTTP header name"),
                )
                .help("header names are letters, digits and !#$%&'*+-.^_`|~, e.g. \"X-Probe\"");
            cx.push(d);
            headers_ok = false;
            continue;
        }
        headers.insert(name.clone(), v.get_ref().clone());
    }
    match (path, port, headers_ok) {
        (Some(path), Some(port), true) => Some(HttpGet {
            path,
            port,
            scheme,
            headers,
        }),
        _ => None,
    }
}

/// `grpc = 9090` or `{ port = 9090, service = "x" }`: the port is a number (gRPC probes take
/// no port names).
pub(super) fn grpc(cx: &mut Ctx<'_>, g: &Spanned<RawGrpc>) -> Option<ProbeAction> {
    let raw = g.get_ref();
    let Some(port) = &raw.port else {
        let d = cx
            .error("probe", g.span(), "a gRPC probe needs a `port`")
            .help("e.g. grpc = { port = 9090 }");
        cx.push(d);
        return None;
    };
    match u16::try_from(*port.get_ref()) {
        Ok(p) if p >= 1 => Some(ProbeAction::Grpc {
            port: p,
            service: raw.service.as_ref().map(|s| s.get_ref().clone()),
        }),
        _ => {
            let d = cx
                .error(
                    "probe",
                    pick(port.span(), g.span()),
                    "a gRPC port must be a number between 1 and 65535",
                )
                .help("gRPC probes take a port number, not a port name");
            cx.push(d);
            None
        }
    }
}

/// A lifecycle hook: exactly one of a command, an HTTP GET and a sleep.
pub(super) fn hook(
    cx: &mut Ctx<'_>,
    h: Option<&Spanned<RawHook>>,
    field: &str,
    ports: &[Port],
    port_names: &BTreeMap<String, Range<usize>>,
) -> Option<Hook> {
    let h = h?;
    let raw = h.get_ref();
    let given = [raw.exec.is_some(), raw.http.is_some(), raw.sleep.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if given != 1 {
        let d = cx
            .error("lifecycle", h.span(), format!("`{field}` needs exactly one of `exec`, `http`, `sleep`"))
            .label(if given == 0 { "nothing given" } else { "more than one given" })
            .help(format!("e.g. {field} = [\"sh\", \"-c\", \"...\"], {field} = {{ http = {{ path = \"/shutdown\", port = 8080 }} }} or {field} = {{ sleep = \"5s\" }}"));
        cx.push(d);
        return None;
    }
    if let Some(e) = &raw.exec {
        if e.get_ref().is_empty() {
            let span = if raw.bare { h.span() } else { e.span() };
            let d = cx
                .error("lifecycle", span, format!("`{field}` needs a command"))
                .help(format!("e.g. {field} = [\"sh\", \"-c\", \"...\"]"));
            cx.push(d);
            return None;
        }
        return Some(Hook::Exec(e.get_ref().clone()));
    }
    if let Some(http) = &raw.http {
        return http_get(cx, http, ports, port_names).map(Hook::Http);
    }
    let sleep = raw.sleep.as_ref()?;
    seconds(cx, sleep, 1, "sleep").map(|s| Hook::Sleep(i64::from(s)))
}

/// `env_from = [{ config_map = "app" }, { secret = "db", prefix = "DB_" }]`.
pub(super) fn env_from(
    cx: &mut Ctx<'_>,
    raw: Option<&Spanned<Vec<Spanned<RawEnvFrom>>>>,
) -> Vec<EnvFrom> {
    let mut out = Vec::new();
    for e in raw.iter().flat_map(|r| r.get_ref().iter()) {
        let src = e.get_ref();
        let (source, name) = match (&src.config_map, &src.secret) {
            (Some(c), None) => (EnvSource::ConfigMap, c),
            (None, Some(s)) => (EnvSource::Secret, s),
            _ => {
                let d = cx
                    .error(
                        "env",
                        e.span(),
                        "an `env_from` source needs exactly one of `config_map`, `secret`",
                    )
                    .help("e.g. { config_map = \"app\" } or { secret = \"db\", prefix = \"DB_\" }");
                cx.push(d);
                continue;
            }
        };
        let errs = names::dns1123_subdomain(name.get_ref());
        let mut ok = cx.name(
            "env",
            "env_from source name",
            name.get_ref(),
            name.span(),
            errs,
            "name a ConfigMap or Secret in the app's namespace",
        );
        if let Some(p) = &src.prefix {
            let errs = names::env_var_name(p.get_ref());
            ok &= cx.name("env", "env_from prefix", p.get_ref(), p.span(), errs, "a prefix makes the start of a variable name: letters, digits, '_', '-' and '.', not starting with a digit");
        }
        if ok {
            out.push(EnvFrom {
                source,
                name: name.get_ref().clone(),
                prefix: src.prefix.as_ref().map(|p| p.get_ref().clone()),
            });
        }
    }
    out
}

/// `{ resource = "limits.memory", divisor = "1Mi" }`.
pub(super) fn resource_ref(
    cx: &mut Ctx<'_>,
    r: &RawEnvRef,
    res: &Spanned<String>,
) -> Option<EnvValue> {
    if let Some(k) = &r.key {
        let d = cx
            .error(
                "env",
                k.span(),
                "`key` does not apply to a `resource` reference",
            )
            .help("remove `key`");
        cx.push(d);
        return None;
    }
    if !RESOURCE_FIELDS.contains(&res.get_ref().as_str()) {
        let d = cx
            .error(
                "env",
                res.span(),
                format!(
                    "`{}` is not a resource an env value can read",
                    res.get_ref()
                ),
            )
            .help(format!("use one of {}", RESOURCE_FIELDS.join(", ")));
        cx.push(d);
        return None;
    }
    let divisor = match &r.divisor {
        Some(d) => Some(quantity(cx, d, "divisor", true)?),
        None => None,
    };
    Some(EnvValue::Resource {
        resource: res.get_ref().clone(),
        divisor,
    })
}
