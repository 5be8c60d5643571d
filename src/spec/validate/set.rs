//! The StatefulSet's and the Services' own settings: `min_ready`, `start_ordinal`, annotations
//! on the StatefulSet and the headless Service, and the access Service's traffic settings
//! (`external_traffic_policy`, `load_balancer_source_ranges`, `session_affinity`).

use std::net::IpAddr;

use super::Ctx;
use super::meta::annotation_map;
use super::values::seconds;
use crate::spec::app::*;
use crate::spec::raw::*;

pub(super) fn replicas(cx: &mut Ctx<'_>, raw: Option<&Spanned<RawReplicas>>) -> Replicas {
    let Some(r) = raw else {
        return Replicas::Count(1);
    };
    match r.get_ref() {
        RawReplicas::Count(n) => match i32::try_from(*n) {
            Ok(v) if v >= 0 => Replicas::Count(v),
            _ => {
                let d = cx
                    .error("replicas", r.span(), format!("replicas must be between 0 and {}", i32::MAX))
                    .label("out of range")
                    .help("use a whole number of pods, 0 or more (0 stops the app but keeps its volumes)");
                cx.push(d);
                Replicas::Count(0)
            }
        },
        RawReplicas::Text(t) if t == "external" => Replicas::External,
        RawReplicas::Text(t) => {
            let help = if t.trim().parse::<i64>().is_ok() {
                format!("write the number without quotes: replicas = {}", t.trim())
            } else {
                "write a whole number such as 3, or \"external\" when an autoscaler or an operator sets the count".to_string()
            };
            let d = cx
                .error(
                    "replicas",
                    r.span(),
                    format!("replicas must be a number of pods or \"external\", not `{t}`"),
                )
                .label("not a count")
                .help(help);
            cx.push(d);
            Replicas::Count(0)
        }
    }
}

pub(super) fn set_options(cx: &mut Ctx<'_>, raw: &RawApp) -> SetOptions {
    let min_ready_seconds = raw
        .min_ready
        .as_ref()
        .and_then(|m| seconds(cx, m, 0, "min_ready"));
    let start_ordinal =
        raw.start_ordinal
            .as_ref()
            .and_then(|s| match i32::try_from(*s.get_ref()) {
                Ok(n) if n >= 0 => Some(n),
                _ => {
                    let d = cx
                        .error(
                            "start-ordinal",
                            s.span(),
                            format!("`start_ordinal` must be between 0 and {}", i32::MAX),
                        )
                        .label("out of range")
                        .help("the ordinal of the first pod, e.g. 1 for pods app-1, app-2, …");
                    cx.push(d);
                    None
                }
            });
    SetOptions {
        min_ready_seconds,
        start_ordinal,
        annotations: annotation_map(cx, raw.set_annotations.as_ref()),
        headless_annotations: annotation_map(cx, raw.headless_annotations.as_ref()),
    }
}

pub(super) fn service_traffic(
    cx: &mut Ctx<'_>,
    s: &RawService,
    kind: ServiceType,
) -> ServiceTraffic {
    if let Some(p) = &s.external_traffic_policy
        && kind == ServiceType::ClusterIP
    {
        let d = cx
            .error(
                "service-traffic",
                p.span(),
                "`external_traffic_policy` needs `type = \"NodePort\"` or `\"LoadBalancer\"`",
            )
            .label("a ClusterIP Service has no external traffic")
            .help("set the Service's `type`, or remove `external_traffic_policy`");
        cx.push(d);
    }
    let mut ranges = Vec::new();
    for r in s.load_balancer_source_ranges.iter().flatten() {
        if kind != ServiceType::LoadBalancer {
            let d = cx
                .error(
                    "service-traffic",
                    r.span(),
                    "`load_balancer_source_ranges` needs `type = \"LoadBalancer\"`",
                )
                .help("set type = \"LoadBalancer\", or remove the ranges");
            cx.push(d);
            break;
        }
        if cidr(r.get_ref()) {
            ranges.push(r.get_ref().clone());
        } else {
            let d = cx
                .error("service-traffic", r.span(), format!("`{}` is not a CIDR range", r.get_ref()))
                .help("write an address and a prefix length, e.g. \"10.0.0.0/8\" or \"2001:db8::/32\"");
            cx.push(d);
        }
    }
    ServiceTraffic {
        external_traffic_policy: s.external_traffic_policy.as_ref().map(|p| *p.get_ref()),
        load_balancer_source_ranges: ranges,
        session_affinity: s.session_affinity.as_ref().map(|a| *a.get_ref()),
    }
}

/// `10.0.0.0/8`, `2001:db8::/32`: an address and a prefix length that fits it.
fn cidr(text: &str) -> bool {
    let Some((addr, len)) = text.split_once('/') else {
        return false;
    };
    let Ok(addr) = addr.parse::<IpAddr>() else {
        return false;
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    len.parse::<u8>().is_ok_and(|l| l <= max) && !len.starts_with('+')
}

#[cfg(test)]
mod tests {
    use super::cidr;

    #[test]
    fn cidr_ranges_need_an_address_and_a_prefix_that_fits() {
        assert!(cidr("10.0.0.0/8"));
        assert!(cidr("2001:db8::/32"));
        assert!(!cidr("10.0.0.0"));
        assert!(!cidr("10.0.0.0/33"));
        assert!(!cidr("example.com/8"));
    }
}
