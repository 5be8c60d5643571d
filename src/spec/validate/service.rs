//! The access Service (`[service]`): its name (never the headless Service's), its type, and
//! ports that reach declared container ports, unique by number and protocol, with node ports in
//! the cluster's range.

use std::collections::BTreeMap;
use std::ops::Range;

use super::meta::annotation_map;
use super::{Ctx, NAME_HELP, location_of};
use crate::spec::app::*;
use crate::spec::diag;
use crate::spec::names;
use crate::spec::raw::*;

/// Node ports the API server accepts by default (--service-node-port-range).
pub const NODE_PORT_RANGE: std::ops::RangeInclusive<i64> = 30000..=32767;

/// Which access Service a table is.
#[derive(Clone, Copy)]
pub(super) enum Which<'a> {
    /// `[service]`: named by its `name`, or after the app.
    Main,
    /// `[services.NAME]`: named by its key.
    Named(&'a Spanned<String>),
}

pub(super) fn access_service(
    cx: &mut Ctx<'_>,
    raw: &Spanned<RawService>,
    which: Which<'_>,
    app: &str,
    headless: &str,
    containers: Option<&Spanned<Entries<RawContainer>>>,
) -> AccessService {
    let s = raw.get_ref();
    let (name, section) = match which {
        Which::Main => (main_name(cx, raw, app, headless), "[service]".to_string()),
        Which::Named(key) => (
            named(cx, raw, key, headless),
            format!("[services.{}]", key.get_ref()),
        ),
    };
    let kind = s
        .kind
        .as_ref()
        .map_or(ServiceType::ClusterIP, |k| *k.get_ref());

    // Declared container ports (not init containers: a Service never reaches those).
    let mut declared: BTreeMap<String, (u16, Protocol)> = BTreeMap::new();
    let containers_pruned = cx.input.pruned.iter().any(|p| p.starts_with("containers"));
    for (_, c) in containers.iter().flat_map(|c| c.get_ref().0.iter()) {
        for (pk, pv) in c.ports.iter().flat_map(|p| p.0.iter()) {
            let parsed = match pv.get_ref() {
                RawPort::Number(n) => u16::try_from(*n).ok().map(|n| (n, Protocol::Tcp)),
                RawPort::Text(t) => {
                    let (n, p) = t.split_once('/').unwrap_or((t.as_str(), "tcp"));
                    let proto = match p.to_ascii_lowercase().as_str() {
                        "udp" => Protocol::Udp,
                        "sctp" => Protocol::Sctp,
                        _ => Protocol::Tcp,
                    };
                    n.parse::<u16>().ok().map(|n| (n, proto))
                }
            };
            if let Some(p) = parsed {
                declared.insert(pk.get_ref().clone(), p);
            }
        }
    }

    let mut ports = Vec::new();
    let mut numbers: BTreeMap<(u16, Protocol), Range<usize>> = BTreeMap::new();
    let pruned_prefix = match which {
        Which::Main => "service.".to_string(),
        Which::Named(key) => format!("services.{}.", key.get_ref()),
    };
    let service_pruned = cx
        .input
        .pruned
        .iter()
        .any(|p| p.starts_with(&pruned_prefix));
    match &s.ports {
        None if service_pruned => {}
        None => {
            let d = cx
                .error("service-ports", raw.span(), "the access Service has no ports")
                .help("add ports, e.g. ports = { mysql = 3306 } (service port 3306 → the container port named `mysql`)");
            cx.push(d);
        }
        Some(p) if p.get_ref().0.is_empty() => {
            let d = cx
                .error("service-ports", p.span(), "the access Service has no ports")
                .help("add ports, e.g. ports = { mysql = 3306 }");
            cx.push(d);
        }
        Some(_) => {}
    }
    for (pk, pv) in s.ports.iter().flat_map(|p| p.get_ref().0.iter()) {
        let pname = pk.get_ref();
        let errs = names::port_name(pname);
        let mut ok = cx.name("port-name", "service port name", pname, pk.span(), errs, "use at most 15 lowercase letters, digits and '-', with at least one letter (IANA service name)");
        let (port, target, node_port) = match pv.get_ref() {
            RawServicePort::Number(n) => (Some(Spanned::new(pv.span(), *n)), None, None),
            RawServicePort::Table {
                port,
                target,
                node_port,
            } => {
                if port.is_none() {
                    let d = cx
                        .error(
                            "service-ports",
                            pv.span(),
                            format!("service port `{pname}` needs a `port`"),
                        )
                        .help("e.g. { port = 3306, target = 3306 }");
                    cx.push(d);
                    ok = false;
                }
                (port.clone(), target.clone(), node_port.clone())
            }
        };
        let number = port
            .as_ref()
            .and_then(|p| match u16::try_from(*p.get_ref()) {
                Ok(n) if n >= 1 => Some(n),
                _ => {
                    let d = cx
                        .error(
                            "service-ports",
                            p.span(),
                            "port must be a number between 1 and 65535",
                        )
                        .help("e.g. mysql = 3306");
                    cx.push(d);
                    None
                }
            });
        // Where traffic goes: the container port named by the key, or the explicit target.
        let (target_ref, protocol) = match &target {
            None => match declared.get(pname) {
                Some((_, proto)) => (Some(PortRef::Name(pname.clone())), *proto),
                None => {
                    if !containers_pruned {
                        let known: Vec<&str> = declared.keys().map(String::as_str).collect();
                        let help = match diag::closest(pname, known.iter().copied()) {
                            Some(best) => format!(
                                "did you mean `{best}`? Or give a target: {pname} = {{ port = ..., target = ... }}"
                            ),
                            None if known.is_empty() => format!(
                                "declare a container port named `{pname}`, or give a target: {pname} = {{ port = ..., target = ... }}"
                            ),
                            None => format!(
                                "container ports: {}; or give a target: {pname} = {{ port = ..., target = ... }}",
                                diag::quote_list(&known)
                            ),
                        };
                        let d = cx
                            .error(
                                "service-target",
                                pk.span(),
                                format!("service port `{pname}` names no container port"),
                            )
                            .label("no container declares a port of this name")
                            .help(help);
                        cx.push(d);
                    }
                    (None, Protocol::Tcp)
                }
            },
            Some(t) => match t.get_ref() {
                IntOrStr::Int(n) => match u16::try_from(*n) {
                    Ok(n) if n >= 1 => {
                        let proto = declared
                            .values()
                            .find(|(num, _)| *num == n)
                            .map_or(Protocol::Tcp, |(_, p)| *p);
                        (Some(PortRef::Number(n)), proto)
                    }
                    _ => {
                        let d = cx
                            .error(
                                "service-target",
                                t.span(),
                                "target must be a number between 1 and 65535",
                            )
                            .help("or name a container port");
                        cx.push(d);
                        (None, Protocol::Tcp)
                    }
                },
                IntOrStr::Str(name) => match declared.get(name) {
                    Some((_, proto)) => (Some(PortRef::Name(name.clone())), *proto),
                    None => {
                        if !containers_pruned {
                            let d = cx
                                .error("service-target", t.span(), format!("target `{name}` names no container port"))
                                .help("name a port declared in a container's `ports`, or give a number");
                            cx.push(d);
                        }
                        (None, Protocol::Tcp)
                    }
                },
            },
        };
        // Kubernetes keys service ports by number and protocol: DNS serves 53/UDP and 53/TCP.
        if let (Some(n), Some(p)) = (number, &port)
            && let Some(first) = numbers.insert((n, protocol), p.span())
        {
            let (line, col) = location_of(cx, first);
            let d = cx
                .error(
                    "service-ports",
                    p.span(),
                    format!("service port {n}/{} is used twice", protocol.as_str()),
                )
                .help(format!(
                    "give each service port its own number (first use at {line}:{col})"
                ));
            cx.push(d);
            ok = false;
        }
        let node = node_port.as_ref().and_then(|np| {
            let v = *np.get_ref();
            if !NODE_PORT_RANGE.contains(&v) {
                let d = cx
                    .error("node-port", np.span(), format!("node port {v} is outside 30000-32767"))
                    .label("outside the cluster's node port range")
                    .help("pick a port between 30000 and 32767 (the API server's default --service-node-port-range), or leave it out to get one assigned");
                cx.push(d);
                return None;
            }
            if kind == ServiceType::ClusterIP {
                let d = cx
                    .error("node-port", np.span(), "`node_port` needs type \"NodePort\" or \"LoadBalancer\"")
                    .help(format!("set type = \"NodePort\" in {section}, or remove node_port"));
                cx.push(d);
                return None;
            }
            u16::try_from(v).ok()
        });
        if let (true, Some(port), Some(target)) = (ok, number, target_ref) {
            ports.push(ServicePort {
                name: pname.clone(),
                port,
                target,
                node_port: node,
                protocol,
            });
        }
    }
    let annotations = annotation_map(cx, s.annotations.as_ref());
    let traffic = super::set::service_traffic(cx, s, kind);
    let selector = selector(cx, s);
    AccessService {
        name,
        kind,
        ports,
        annotations,
        traffic,
        selector,
    }
}

/// The name of `[service]`: its `name`, or the app's.
fn main_name(cx: &mut Ctx<'_>, raw: &Spanned<RawService>, app: &str, headless: &str) -> String {
    match &raw.get_ref().name {
        Some(n) => {
            given_name(
                cx,
                n,
                headless,
                "choose another name, or leave `name` out to use the app name",
            );
            n.get_ref().clone()
        }
        None => {
            if app == headless {
                let span = raw.span();
                let d = cx
                    .error("service-name", span, format!("the access Service's default name `{app}` is the headless Service's name"))
                    .help("set `name` in [service], or rename the headless Service");
                cx.push(d);
            }
            app.to_string()
        }
    }
}

/// A Service name someone wrote: a DNS-1035 label, and not the headless Service's.
fn given_name(cx: &mut Ctx<'_>, name: &Spanned<String>, headless: &str, help: &str) {
    let errs = names::dns1035_label(name.get_ref());
    cx.name(
        "service-name",
        "Service name",
        name.get_ref(),
        name.span(),
        errs,
        NAME_HELP,
    );
    if name.get_ref() == headless {
        let d = cx
            .error(
                "service-name",
                name.span(),
                format!("the access Service cannot share the headless Service's name `{headless}`"),
            )
            .help(help);
        cx.push(d);
    }
}

/// The name of `[services.NAME]`: its key, which must be a Service name; a `name` inside would
/// say it twice.
fn named(
    cx: &mut Ctx<'_>,
    raw: &Spanned<RawService>,
    key: &Spanned<String>,
    headless: &str,
) -> String {
    given_name(cx, key, headless, "choose another name");
    if let Some(n) = &raw.get_ref().name {
        let d = cx
            .error(
                "service-name",
                n.span(),
                format!("[services.{}] is named by its key", key.get_ref()),
            )
            .label("`name` is for [service] only")
            .help(format!(
                "remove `name`, or rename the table to [services.{}]",
                n.get_ref()
            ));
        cx.push(d);
    }
    key.get_ref().clone()
}

/// `selector`: labels selected on besides the app's own, which a Service cannot replace.
fn selector(cx: &mut Ctx<'_>, s: &RawService) -> BTreeMap<String, String> {
    let map = super::meta::label_map(cx, s.selector.as_ref(), "service-selector");
    for (k, _) in s.selector.iter().flatten() {
        if crate::labels::RESERVED_LABEL_KEYS.contains(&k.get_ref().as_str()) {
            let d = cx
                .error("service-selector", k.span(), format!("`{}` is a label berth selects on already", k.get_ref()))
                .label("reserved")
                .help("the Service always selects the app's pods; add only what narrows it, e.g. selector = { \"statefulset.kubernetes.io/pod-name\" = \"mysql-0\" }");
            cx.push(d);
        }
    }
    map.into_iter()
        .filter(|(k, _)| !crate::labels::RESERVED_LABEL_KEYS.contains(&k.as_str()))
        .collect()
}

/// `[services.NAME]`, by name: each an access Service of its own, whose name no other Service of
/// the app may have, and no node port may be asked for twice across the app's Services (the API
/// server would refuse the second: "provided port is already allocated").
pub(super) fn named_services(
    cx: &mut Ctx<'_>,
    raw: &RawApp,
    main: Option<&AccessService>,
    app: &str,
    headless: &str,
) -> Vec<AccessService> {
    let mut out = Vec::new();
    let Some(tables) = &raw.services else {
        return out;
    };
    for (key, table) in &tables.get_ref().0 {
        if let Some(main) = main
            && &main.name == key.get_ref()
        {
            let d = cx
                .error(
                    "service-name",
                    key.span(),
                    format!("[service] is named `{}` already", main.name),
                )
                .help("give each access Service its own name");
            cx.push(d);
            continue;
        }
        out.push(access_service(
            cx,
            table,
            Which::Named(key),
            app,
            headless,
            raw.containers.as_ref(),
        ));
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));

    let node_ports = raw
        .service
        .iter()
        .chain(tables.get_ref().0.iter().map(|(_, t)| t))
        .flat_map(|t| t.get_ref().ports.iter().flat_map(|p| p.get_ref().0.iter()))
        .filter_map(|(_, p)| match p.get_ref() {
            RawServicePort::Table {
                node_port: Some(np),
                ..
            } => Some(np.clone()),
            _ => None,
        });
    let mut seen: BTreeMap<i64, Range<usize>> = BTreeMap::new();
    for np in node_ports {
        if let Some(first) = seen.insert(*np.get_ref(), np.span()) {
            let (line, col) = location_of(cx, first);
            let d = cx
                .error("node-port", np.span(), format!("node port {} is asked for twice", np.get_ref()))
                .label("a node port belongs to one Service")
                .help(format!("pick another port, or leave it out to get one assigned (first use at {line}:{col})"));
            cx.push(d);
        }
    }
    out
}
