//! How the StatefulSet rolls its pods out and keeps them available, and how the pods resolve
//! names: the update strategy, the disruption budget and the DNS settings.

use std::collections::BTreeMap;

use super::Ctx;
use super::values::int_or_percent;
use crate::spec::app::*;
use crate::spec::names;
use crate::spec::raw::*;

pub(super) fn update_strategy(
    cx: &mut Ctx<'_>,
    raw: Option<&Spanned<RawUpdate>>,
) -> UpdateStrategy {
    let Some(raw) = raw else {
        return UpdateStrategy::Rolling {
            partition: None,
            max_unavailable: None,
        };
    };
    let u = raw.get_ref();
    let kind = u
        .strategy
        .as_ref()
        .map_or(UpdateKind::Rolling, |k| *k.get_ref());
    let partition =
        u.partition
            .as_ref()
            .and_then(|p| match i32::try_from(*p.get_ref()) {
                Ok(v) if v >= 0 => Some(v),
                _ => {
                    let d = cx
                .error("update-strategy", p.span(), "partition must be 0 or more")
                .help("pods with an ordinal at or above the partition are updated; 0 updates all");
                    cx.push(d);
                    None
                }
            });
    let max_unavailable = u
        .max_unavailable
        .as_ref()
        .and_then(|m| int_or_percent(cx, m, 1, "update-strategy", "max_unavailable"));
    match kind {
        UpdateKind::Rolling => UpdateStrategy::Rolling {
            partition,
            max_unavailable,
        },
        UpdateKind::OnDelete => {
            for (field, span) in [
                ("partition", u.partition.as_ref().map(|p| p.span())),
                (
                    "max_unavailable",
                    u.max_unavailable.as_ref().map(|p| p.span()),
                ),
            ] {
                if let Some(span) = span {
                    let d = cx
                        .error(
                            "update-strategy",
                            span,
                            format!("`{field}` only applies to rolling updates"),
                        )
                        .help("remove it, or use strategy = \"rolling\"");
                    cx.push(d);
                }
            }
            UpdateStrategy::OnDelete
        }
    }
}

pub(super) fn dns_config(cx: &mut Ctx<'_>, raw: &Spanned<RawDns>) -> Dns {
    let d = raw.get_ref();
    let policy = d.policy.as_ref().map(|p| *p.get_ref());
    let nameservers: Vec<String> = d
        .nameservers
        .iter()
        .flatten()
        .filter_map(|n| {
            if n.get_ref().parse::<std::net::IpAddr>().is_ok() {
                Some(n.get_ref().clone())
            } else {
                let diag = cx
                    .error(
                        "dns",
                        n.span(),
                        format!("nameserver `{}` is not an IP address", n.get_ref()),
                    )
                    .help("give IPv4 or IPv6 addresses, e.g. \"10.0.0.10\"");
                cx.push(diag);
                None
            }
        })
        .collect();
    if let Some(list) = &d.nameservers
        && list.len() > 3
        && let Some(extra) = list.get(3)
    {
        let diag = cx
            .error("dns", extra.span(), "at most 3 nameservers are allowed")
            .help("Kubernetes (like resolv.conf) uses only the first three; remove the rest");
        cx.push(diag);
    }
    if policy == Some(DnsPolicy::None)
        && nameservers.is_empty()
        && d.nameservers.as_ref().is_none_or(|n| n.is_empty())
    {
        let span = d.policy.as_ref().map_or(raw.span(), |p| p.span());
        let diag = cx
            .error("dns", span, "policy \"None\" needs at least one nameserver")
            .help("add nameservers = [\"...\"], or use policy = \"ClusterFirst\"");
        cx.push(diag);
    }
    let searches: Vec<String> = d
        .searches
        .iter()
        .flatten()
        .filter_map(|s| {
            let name = s.get_ref().trim_end_matches('.');
            let errs = names::dns1123_subdomain(name);
            cx.name(
                "dns",
                "search domain",
                s.get_ref(),
                s.span(),
                errs,
                "give DNS domains such as \"db.svc.cluster.local\"",
            )
            .then(|| s.get_ref().clone())
        })
        .collect();
    if let Some(list) = &d.searches
        && list.len() > 32
        && let Some(extra) = list.get(32)
    {
        let diag = cx
            .error("dns", extra.span(), "at most 32 search domains are allowed")
            .help("remove search domains");
        cx.push(diag);
    }
    let mut options = BTreeMap::new();
    for (k, v) in d.options.iter().flat_map(|o| o.0.iter()) {
        if k.get_ref().is_empty() {
            let diag = cx
                .error("dns", k.span(), "a DNS option needs a name")
                .help("e.g. options = { ndots = \"2\" }");
            cx.push(diag);
            continue;
        }
        let value = v.get_ref().0.clone();
        options.insert(k.get_ref().clone(), (!value.is_empty()).then_some(value));
    }
    Dns {
        policy,
        nameservers,
        searches,
        options,
    }
}

pub(super) fn disruption_budget(
    cx: &mut Ctx<'_>,
    raw: &Spanned<RawDisruptionBudget>,
) -> Option<DisruptionBudget> {
    let b = raw.get_ref();
    match (&b.max_unavailable, &b.min_available) {
        (Some(m), None) => int_or_percent(cx, m, 0, "disruption-budget", "max_unavailable")
            .map(DisruptionBudget::MaxUnavailable),
        (None, Some(m)) => int_or_percent(cx, m, 0, "disruption-budget", "min_available")
            .map(DisruptionBudget::MinAvailable),
        _ => {
            let d = cx
                .error("disruption-budget", raw.span(), "a disruption budget needs exactly one of `max_unavailable` and `min_available`")
                .help("e.g. disruption_budget = { max_unavailable = 1 }");
            cx.push(d);
            None
        }
    }
}
