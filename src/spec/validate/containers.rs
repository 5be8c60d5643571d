//! Containers and init containers: names unique across both, the image, resources, ports and
//! their clashes across the pod, environment variables and what they may reference, lifecycle
//! hooks, and mounts of declared volumes. Probes have their own file (`probes.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use super::actions::{env_from, hook, resource_ref};
use super::probes::probe;
use super::security::container_security;
use super::values::{extended_resources, id_field, resource};
use super::{Ctx, NAME_HELP, location_of, pick};
use crate::spec::app::*;
use crate::spec::diag;
use crate::spec::names;
use crate::spec::raw::*;

/// Downward-API field paths an env var may reference (`field = "..."`), besides
/// `metadata.labels['k']` and `metadata.annotations['k']`.
const FIELD_PATHS: [&str; 9] = [
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

pub(super) fn containers(
    cx: &mut Ctx<'_>,
    raw: Option<&Spanned<Entries<RawContainer>>>,
    init: bool,
    volumes: &BTreeSet<String>,
    seen: &mut BTreeMap<String, Range<usize>>,
) -> Vec<Container> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    // Sized to the spec: a daemon holds every app's containers for its whole life.
    let mut out = Vec::with_capacity(raw.get_ref().0.len());
    let section = if init {
        "init_containers"
    } else {
        "containers"
    };
    for (k, c) in &raw.get_ref().0 {
        let name = k.get_ref();
        let errs = names::dns1035_label(name);
        cx.name(
            "container-name",
            "container name",
            name,
            k.span(),
            errs,
            NAME_HELP,
        );
        if let Some(first) = seen.get(name) {
            let (line, col) = location_of(cx, first.clone());
            let d = cx
                .error("container-name", k.span(), format!("container name `{name}` is used twice"))
                .label("second use")
                .help(format!("init containers and containers share one namespace of names; the first `{name}` is at {line}:{col}"));
            cx.push(d);
        } else {
            seen.insert(name.clone(), k.span());
        }
        let prefix = format!("{section}.{name}");
        if let Some(c) = container(cx, name, k.span(), c, init, volumes, &prefix) {
            out.push(c);
        }
    }
    out
}

fn container(
    cx: &mut Ctx<'_>,
    name: &str,
    key_span: Range<usize>,
    c: &RawContainer,
    init: bool,
    volumes: &BTreeSet<String>,
    prefix: &str,
) -> Option<Container> {
    let errors_before = cx.diags.iter().filter(|d| d.is_error()).count();
    let image = match &c.image {
        Some(img) => {
            check_image(cx, img);
            img.get_ref().clone()
        }
        None => {
            if !cx.pruned(&format!("{prefix}.image")) {
                let d = cx
                    .error(
                        "image-required",
                        key_span.clone(),
                        format!("container `{name}` has no image"),
                    )
                    .label("declared here")
                    .help("add image = \"registry/name:tag\" to this container");
                cx.push(d);
            }
            String::new()
        }
    };
    let cpu = c.cpu.as_ref().and_then(|r| resource(cx, r, "cpu"));
    let memory = c.memory.as_ref().and_then(|r| resource(cx, r, "memory"));
    let ephemeral_storage = c
        .ephemeral_storage
        .as_ref()
        .and_then(|r| resource(cx, r, "ephemeral_storage"));
    let extended = extended_resources(cx, c.resources.as_ref());

    let mut ports = Vec::new();
    let mut port_names: BTreeMap<String, Range<usize>> = BTreeMap::new();
    for (pk, pv) in c.ports.iter().flat_map(|p| p.0.iter()) {
        let errs = names::port_name(pk.get_ref());
        let name_ok = cx.name("port-name", "port name", pk.get_ref(), pk.span(), errs, "use at most 15 lowercase letters, digits and '-', with at least one letter, no '--', not starting or ending with '-' (IANA service name)");
        // TOML already rejects a key given twice, so names within one container are unique.
        port_names.insert(pk.get_ref().clone(), pk.span());
        if let (Some(p), true) = (port(cx, pv), name_ok) {
            ports.push(Port {
                name: pk.get_ref().clone(),
                number: p.0,
                protocol: p.1,
            });
        }
    }

    let mut env = Vec::new();
    for (ek, ev) in c.env.iter().flat_map(|e| e.0.iter()) {
        let errs = names::env_var_name(ek.get_ref());
        let ok = cx.name(
            "env",
            "environment variable name",
            ek.get_ref(),
            ek.span(),
            errs,
            "use letters, digits, '_', '-' and '.', not starting with a digit",
        );
        if let (Some(value), true) = (env_value(cx, ev), ok) {
            env.push(EnvVar {
                name: ek.get_ref().clone(),
                value,
            });
        }
    }

    let post_start = hook(cx, c.post_start.as_ref(), "post_start", &ports, &port_names);
    let pre_stop = hook(cx, c.pre_stop.as_ref(), "pre_stop", &ports, &port_names);
    let env_from = env_from(cx, c.env_from.as_ref());

    let liveness = c
        .liveness
        .as_ref()
        .and_then(|p| probe(cx, p, "liveness", &ports, &port_names));
    let readiness = c
        .readiness
        .as_ref()
        .and_then(|p| probe(cx, p, "readiness", &ports, &port_names));
    let startup = c
        .startup
        .as_ref()
        .and_then(|p| probe(cx, p, "startup", &ports, &port_names));

    if init {
        // The seed: "init containers do not support health checks"; the API server also rejects
        // lifecycle hooks on them (they run to completion, there is nothing to hook).
        let forbidden = [
            ("liveness", c.liveness.as_ref().map(|p| p.span())),
            ("readiness", c.readiness.as_ref().map(|p| p.span())),
            ("startup", c.startup.as_ref().map(|p| p.span())),
            ("post_start", c.post_start.as_ref().map(|p| p.span())),
            ("pre_stop", c.pre_stop.as_ref().map(|p| p.span())),
        ];
        for (field, span) in forbidden {
            if let Some(span) = span {
                let d = cx
                    .error("init-container", span, format!("init container `{name}` cannot have `{field}`"))
                    .label("not allowed on init containers")
                    .help("init containers run to completion before the app starts; move the check to a container under [containers]");
                cx.push(d);
            }
        }
    }

    let run_as_user = id_field(cx, c.run_as_user.as_ref(), "run_as_user");
    let security = container_security(cx, c);

    let mut mounts = Vec::new();
    let mut paths: BTreeMap<String, Range<usize>> = BTreeMap::new();
    for (mk, mv) in c.mounts.iter().flat_map(|m| m.0.iter()) {
        let vol = mk.get_ref();
        if !volumes.contains(vol) && cx.pruned(&format!("volumes.{vol}")) {
            continue; // declared, but broken: that error is reported already
        }
        if !volumes.contains(vol) {
            let known: Vec<&str> = volumes.iter().map(String::as_str).collect();
            let help = match diag::closest(vol, known.iter().copied()) {
                Some(best) => format!("did you mean `{best}`?"),
                None if known.is_empty() => {
                    format!("declare it:\n      [volumes.{vol}]\n      size = \"10Gi\"")
                }
                None => format!("declared volumes: {}", diag::quote_list(&known)),
            };
            let d = cx
                .error(
                    "mount-volume",
                    mk.span(),
                    format!("mount names volume `{vol}`, which is not declared"),
                )
                .label("no [volumes] entry of this name")
                .help(help);
            cx.push(d);
            continue;
        }
        let m = mv.get_ref();
        let Some(path) = &m.path else {
            let d = cx
                .error(
                    "mount-path",
                    mv.span(),
                    format!("mount of `{vol}` has no `path`"),
                )
                .help("e.g. { path = \"/data\" }");
            cx.push(d);
            continue;
        };
        let path_span = pick(path.span(), mv.span());
        let p = path.get_ref();
        if !p.starts_with('/') || p.contains(':') {
            let d = cx
                .error(
                    "mount-path",
                    path_span.clone(),
                    format!("mount path `{p}` must be an absolute path without ':'"),
                )
                .help("e.g. \"/var/lib/mysql\"");
            cx.push(d);
            continue;
        }
        let normal = p.trim_end_matches('/').to_string();
        if let Some(first) = paths.insert(normal, path_span.clone()) {
            let (line, col) = location_of(cx, first);
            let d = cx
                .error(
                    "mount-path",
                    path_span,
                    format!("mount path `{p}` is used twice in container `{name}`"),
                )
                .help(format!(
                    "each mount needs its own path; the other one is at {line}:{col}"
                ));
            cx.push(d);
            continue;
        }
        let sub_path = m.sub_path.as_ref().and_then(|s| {
            let v = s.get_ref();
            if v.starts_with('/') || v.split('/').any(|seg| seg == "..") {
                let d = cx
                    .error(
                        "mount-path",
                        s.span(),
                        format!("sub_path `{v}` must be a relative path without '..'"),
                    )
                    .help("e.g. sub_path = \"mysql\"");
                cx.push(d);
                None
            } else {
                Some(v.clone())
            }
        });
        mounts.push(Mount {
            volume: vol.clone(),
            path: p.clone(),
            sub_path,
            read_only: m.read_only.as_ref().is_some_and(|r| *r.get_ref()),
        });
    }

    let errors_after = cx.diags.iter().filter(|d| d.is_error()).count();
    (errors_after == errors_before).then(|| Container {
        name: name.to_string(),
        image,
        pull: c.pull.as_ref().map(|p| *p.get_ref()),
        cpu,
        memory,
        ephemeral_storage,
        extended,
        ports,
        env,
        env_from,
        command: c
            .command
            .as_ref()
            .map(|v| v.get_ref().clone())
            .unwrap_or_default(),
        args: c
            .args
            .as_ref()
            .map(|v| v.get_ref().clone())
            .unwrap_or_default(),
        post_start,
        pre_stop,
        liveness,
        readiness,
        startup,
        run_as_user,
        security,
        mounts,
        // Filled in once the volumes' modes are known (`storage::devices`).
        devices: Vec::new(),
    })
}

fn check_image(cx: &mut Ctx<'_>, img: &Spanned<String>) {
    let image = img.get_ref();
    if image.is_empty() || image.chars().any(char::is_whitespace) {
        let d = cx
            .error(
                "image-format",
                img.span(),
                "image must be a non-empty reference without spaces",
            )
            .help("e.g. image = \"mysql:8.4\" or \"registry.example.com/team/app@sha256:...\"");
        cx.push(d);
        return;
    }
    let has_digest = image.contains('@');
    let last = image.rsplit('/').next().unwrap_or(image);
    if !has_digest && !last.contains(':') {
        let d = cx
            .warning(
                "image-tag",
                img.span(),
                format!("image `{image}` has no tag"),
            )
            .label("resolves to `:latest`, which changes under you")
            .help(format!(
                "pin a version, e.g. \"{image}:1.2.3\", or a digest"
            ));
        cx.push(d);
    }
}

/// `80` or `"53/udp"` → (number, protocol).
fn port(cx: &mut Ctx<'_>, raw: &Spanned<RawPort>) -> Option<(u16, Protocol)> {
    let (num, proto): (Result<i64, ()>, Protocol) = match raw.get_ref() {
        RawPort::Number(n) => (Ok(*n), Protocol::Tcp),
        RawPort::Text(t) => {
            let (n, p) = t.split_once('/').unwrap_or((t.as_str(), "tcp"));
            let proto = match p.to_ascii_lowercase().as_str() {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                "sctp" => Protocol::Sctp,
                _ => {
                    let d = cx
                        .error(
                            "port-protocol",
                            raw.span(),
                            format!("unknown protocol `{p}`"),
                        )
                        .help("use \"tcp\", \"udp\" or \"sctp\", e.g. \"53/udp\"");
                    cx.push(d);
                    return None;
                }
            };
            (n.parse::<i64>().map_err(|_| ()), proto)
        }
    };
    match num {
        Ok(n) if (1..=65535).contains(&n) => u16::try_from(n).ok().map(|n| (n, proto)),
        _ => {
            let d = cx
                .error(
                    "port-number",
                    raw.span(),
                    "port must be a number between 1 and 65535",
                )
                .help("e.g. http = 80, or dns = \"53/udp\"");
            cx.push(d);
            None
        }
    }
}

fn env_value(cx: &mut Ctx<'_>, raw: &Spanned<RawEnv>) -> Option<EnvValue> {
    let r = match raw.get_ref() {
        RawEnv::Literal(s) => return Some(EnvValue::Literal(s.clone())),
        RawEnv::Ref(r) => r,
    };
    let sources: Vec<&str> = [
        r.secret.as_ref().map(|_| "secret"),
        r.config_map.as_ref().map(|_| "config_map"),
        r.field.as_ref().map(|_| "field"),
        r.resource.as_ref().map(|_| "resource"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if sources.len() != 1 {
        let d = cx
            .error(
                "env",
                raw.span(),
                "an env reference needs exactly one of `secret`, `config_map`, `field`, `resource`",
            )
            .label(if sources.is_empty() {
                "none given".to_string()
            } else {
                format!("found {}", sources.join(", "))
            })
            .help("e.g. { secret = \"mysql\", key = \"root\" } or { field = \"metadata.name\" }");
        cx.push(d);
        return None;
    }
    if let (Some(d), None) = (&r.divisor, &r.resource) {
        let d = cx
            .error(
                "env",
                d.span(),
                "`divisor` applies only to a `resource` reference",
            )
            .help("remove `divisor`");
        cx.push(d);
        return None;
    }
    if let Some(res) = &r.resource {
        return resource_ref(cx, r, res);
    }
    if let Some(f) = &r.field {
        if let Some(k) = &r.key {
            let d = cx
                .error(
                    "env",
                    k.span(),
                    "`key` does not apply to a `field` reference",
                )
                .help("remove `key`");
            cx.push(d);
            return None;
        }
        let path = f.get_ref();
        let bracketed = |prefix: &str| {
            path.strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix("['"))
                .and_then(|rest| rest.strip_suffix("']"))
                .is_some_and(|k| names::qualified_name(k).is_empty())
        };
        if FIELD_PATHS.contains(&path.as_str())
            || bracketed("metadata.labels")
            || bracketed("metadata.annotations")
        {
            return Some(EnvValue::Field(path.clone()));
        }
        let d = cx
            .error(
                "env",
                f.span(),
                format!("`{path}` is not a field a pod can expose"),
            )
            .help(match diag::closest(path, FIELD_PATHS) {
                Some(best) => format!("did you mean `{best}`?"),
                None => format!(
                    "use one of {}, metadata.labels['KEY'], metadata.annotations['KEY']",
                    FIELD_PATHS.join(", ")
                ),
            });
        cx.push(d);
        return None;
    }
    let (kind, name) = match (&r.secret, &r.config_map) {
        (Some(s), _) => ("Secret", s),
        (_, Some(c)) => ("ConfigMap", c),
        _ => return None,
    };
    let mut ok = {
        let errs = names::dns1123_subdomain(name.get_ref());
        cx.name(
            "env",
            &format!("{kind} name"),
            name.get_ref(),
            name.span(),
            errs,
            "name a Secret or ConfigMap in the app's namespace",
        )
    };
    match &r.key {
        None => {
            let d = cx
                .error(
                    "env",
                    raw.span(),
                    format!("a {kind} reference needs a `key`"),
                )
                .help(format!(
                    "name the key inside the {kind}, e.g. key = \"password\""
                ));
            cx.push(d);
            ok = false;
        }
        Some(k) => {
            let errs = names::config_key(k.get_ref());
            ok &= cx.name(
                "env",
                &format!("{kind} key"),
                k.get_ref(),
                k.span(),
                errs,
                "keys use letters, digits, '-', '_' and '.'",
            );
        }
    }
    if !ok {
        return None;
    }
    let key = r
        .key
        .as_ref()
        .map(|k| k.get_ref().clone())
        .unwrap_or_default();
    Some(if kind == "Secret" {
        EnvValue::Secret {
            name: name.get_ref().clone(),
            key,
        }
    } else {
        EnvValue::ConfigMap {
            name: name.get_ref().clone(),
            key,
        }
    })
}

/// The seed: "if a pod has several containers, make sure their ports do not clash, or the
/// deployment fails". Port names must also be unique in the pod: Services resolve them.
pub(super) fn port_conflicts(cx: &mut Ctx<'_>, raw: Option<&Spanned<Entries<RawContainer>>>) {
    let Some(raw) = raw else { return };
    let mut numbers: BTreeMap<(u16, Protocol), (String, Range<usize>)> = BTreeMap::new();
    let mut names_seen: BTreeMap<String, String> = BTreeMap::new();
    for (ck, c) in &raw.get_ref().0 {
        for (pk, pv) in c.ports.iter().flat_map(|p| p.0.iter()) {
            let parsed = match pv.get_ref() {
                RawPort::Number(n) => u16::try_from(*n).ok().map(|n| (n, Protocol::Tcp)),
                RawPort::Text(t) => {
                    let (n, p) = t.split_once('/').unwrap_or((t.as_str(), "tcp"));
                    let proto = match p.to_ascii_lowercase().as_str() {
                        "udp" => Some(Protocol::Udp),
                        "sctp" => Some(Protocol::Sctp),
                        "tcp" => Some(Protocol::Tcp),
                        _ => None,
                    };
                    n.parse::<u16>().ok().zip(proto)
                }
            };
            if let Some(key) = parsed.filter(|(n, _)| *n != 0) {
                if let Some((other, first)) = numbers.get(&key) {
                    let (line, col) = location_of(cx, first.clone());
                    let what = if other == ck.get_ref() {
                        format!("twice in container `{other}`")
                    } else {
                        format!("by containers `{other}` and `{}`", ck.get_ref())
                    };
                    let d = cx
                        .error("port-conflict", pv.span(), format!("port {}/{} is used {what}", key.0, key.1.as_str()))
                        .label("already in use in this pod")
                        .help(format!("containers of one pod share its network; give each port its own number (first use at {line}:{col})"));
                    cx.push(d);
                } else {
                    numbers.insert(key, (ck.get_ref().clone(), pv.span()));
                }
            }
            let pname = pk.get_ref().clone();
            if let Some(other) = names_seen.get(&pname)
                && other != ck.get_ref()
            {
                let d = cx
                    .error(
                        "port-name",
                        pk.span(),
                        format!("port name `{pname}` is also used by container `{other}`"),
                    )
                    .help("Services find ports by name; give each port of the pod its own name");
                cx.push(d);
            } else {
                names_seen.insert(pname, ck.get_ref().clone());
            }
        }
    }
}
