//! Liveness, readiness and startup probes: exactly one check (exec, TCP, HTTP or gRPC), ports
//! that the container declares, timings and thresholds Kubernetes accepts.

use std::collections::BTreeMap;
use std::ops::Range;

use super::Ctx;
use super::values::seconds;
use crate::spec::app::*;
use crate::spec::raw::*;

pub(super) fn probe_port(
    cx: &mut Ctx<'_>,
    raw: &Spanned<IntOrStr>,
    ports: &[Port],
    port_names: &BTreeMap<String, Range<usize>>,
) -> Option<PortRef> {
    match raw.get_ref() {
        IntOrStr::Int(n) => match u16::try_from(*n) {
            Ok(p) if p >= 1 => Some(PortRef::Number(p)),
            _ => {
                let d = cx
                    .error(
                        "probe",
                        raw.span(),
                        "port must be a number between 1 and 65535",
                    )
                    .help("or name a port of this container");
                cx.push(d);
                None
            }
        },
        IntOrStr::Str(s) => {
            if ports.iter().any(|p| &p.name == s) || port_names.contains_key(s) {
                Some(PortRef::Name(s.clone()))
            } else {
                let d = cx
                    .error(
                        "probe",
                        raw.span(),
                        format!("this container has no port named `{s}`"),
                    )
                    .help(if ports.is_empty() {
                        "declare it in `ports`, or give the port number".to_string()
                    } else {
                        format!(
                            "ports of this container: {}",
                            ports
                                .iter()
                                .map(|p| format!("`{}`", p.name))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    });
                cx.push(d);
                None
            }
        }
    }
}

pub(super) fn probe(
    cx: &mut Ctx<'_>,
    raw: &Spanned<RawProbe>,
    kind: &str,
    ports: &[Port],
    port_names: &BTreeMap<String, Range<usize>>,
) -> Option<Probe> {
    let p = raw.get_ref();
    let actions = [
        p.exec.is_some(),
        p.tcp.is_some(),
        p.http.is_some(),
        p.grpc.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if actions != 1 {
        let d = cx
            .error("probe", raw.span(), format!("the {kind} probe needs exactly one of `exec`, `tcp`, `http`, `grpc`"))
            .label(if actions == 0 { "no check given" } else { "more than one check given" })
            .help("e.g. { tcp = 3306 }, { exec = [\"mysqladmin\", \"ping\"] } or { http = { path = \"/healthz\", port = 8080 } }");
        cx.push(d);
        return None;
    }
    let before = cx.diags.len();
    let action = if let Some(e) = &p.exec {
        if e.get_ref().is_empty() {
            let d = cx
                .error("probe", e.span(), "`exec` needs a command")
                .help("e.g. exec = [\"mysqladmin\", \"ping\"]");
            cx.push(d);
            None
        } else {
            Some(ProbeAction::Exec(e.get_ref().clone()))
        }
    } else if let Some(t) = &p.tcp {
        probe_port(cx, t, ports, port_names).map(ProbeAction::Tcp)
    } else if let Some(h) = &p.http {
        super::actions::http_get(cx, h, ports, port_names).map(ProbeAction::Http)
    } else if let Some(g) = &p.grpc {
        super::actions::grpc(cx, g)
    } else {
        None
    };
    let delay = p.delay.as_ref().and_then(|d| seconds(cx, d, 0, "delay"));
    let period = p.period.as_ref().and_then(|d| seconds(cx, d, 1, "period"));
    let timeout = p
        .timeout
        .as_ref()
        .and_then(|d| seconds(cx, d, 1, "timeout"));
    let count = |cx: &mut Ctx<'_>, v: &Option<Spanned<i64>>, field: &str| -> Option<i32> {
        let v = v.as_ref()?;
        match i32::try_from(*v.get_ref()) {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                let d = cx
                    .error("probe", v.span(), format!("`{field}` must be at least 1"))
                    .help("count of consecutive results, e.g. 3");
                cx.push(d);
                None
            }
        }
    };
    let failures = count(cx, &p.failures, "failures");
    let success = count(cx, &p.success, "success");
    if let (Some(s), Some(n)) = (&p.success, success)
        && n != 1
        && kind != "readiness"
    {
        let d = cx
            .error(
                "probe",
                s.span(),
                format!("`success` must be 1 for a {kind} probe"),
            )
            .help("Kubernetes only allows a success threshold above 1 on readiness probes");
        cx.push(d);
    }
    if cx.diags.len() != before {
        return None;
    }
    Some(Probe {
        action: action?,
        delay_seconds: delay,
        period_seconds: period,
        timeout_seconds: timeout,
        failures,
        success,
    })
}
