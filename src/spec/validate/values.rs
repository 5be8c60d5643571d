//! Values with units and ranges, shared by the rules of every subject: quantities (sizes, CPU),
//! resources given as one value or as request and limit, durations in whole seconds, replica
//! counts or percentages, and user and group ids.

use std::time::Duration;

use super::{Ctx, location_of};
use crate::spec::app::*;
use crate::spec::quantity::Quantity;
use crate::spec::raw::*;

pub(super) fn int_or_percent(
    cx: &mut Ctx<'_>,
    v: &Spanned<IntOrStr>,
    min: i64,
    rule: &'static str,
    field: &str,
) -> Option<IntOrPercent> {
    match v.get_ref() {
        IntOrStr::Int(i) => match i32::try_from(*i) {
            Ok(n) if i64::from(n) >= min => Some(IntOrPercent::Int(n)),
            _ => {
                let d = cx
                    .error(rule, v.span(), format!("`{field}` must be at least {min}"))
                    .help("give a number of pods, or a percentage such as \"25%\"");
                cx.push(d);
                None
            }
        },
        IntOrStr::Str(s) => {
            let ok = s
                .strip_suffix('%')
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| n <= 100 && (i64::from(n) >= min || min == 0));
            if ok {
                Some(IntOrPercent::Percent(s.clone()))
            } else {
                let d = cx
                    .error(
                        rule,
                        v.span(),
                        format!("`{field}` must be a number of pods or a percentage"),
                    )
                    .label("not a percentage between 0% and 100%")
                    .help("write e.g. 1 or \"25%\"");
                cx.push(d);
                None
            }
        }
    }
}

pub(super) fn id_field(cx: &mut Ctx<'_>, raw: Option<&Spanned<i64>>, field: &str) -> Option<i64> {
    let v = raw?;
    if (0..=i64::from(i32::MAX)).contains(v.get_ref()) {
        Some(*v.get_ref())
    } else {
        let d = cx
            .error(
                "security-context",
                v.span(),
                format!("`{field}` must be between 0 and 2147483647"),
            )
            .label("out of range")
            .help("give a numeric user or group id, e.g. 999");
        cx.push(d);
        None
    }
}

/// Parse a duration ("30s", "1m 30s") into whole seconds of at least `min`.
pub(super) fn seconds(
    cx: &mut Ctx<'_>,
    raw: &Spanned<String>,
    min: i32,
    field: &str,
) -> Option<i32> {
    let parsed: Result<Duration, String> = if raw.get_ref().trim_start().starts_with('-') {
        Err("a duration cannot be negative".into())
    } else {
        humantime::parse_duration(raw.get_ref()).map_err(|e| e.to_string())
    };
    match parsed {
        Err(e) => {
            let d = cx
                .error(
                    "duration",
                    raw.span(),
                    format!("`{field}` is not a duration"),
                )
                .label(e)
                .help("write a duration such as \"30s\", \"2m\" or \"1m 30s\"");
            cx.push(d);
            None
        }
        Ok(d) if d.subsec_nanos() != 0 => {
            let diag = cx
                .error(
                    "duration",
                    raw.span(),
                    format!("`{field}` must be a whole number of seconds"),
                )
                .label("Kubernetes counts this in seconds")
                .help("round to whole seconds, e.g. \"1s\"");
            cx.push(diag);
            None
        }
        Ok(d) => match i32::try_from(d.as_secs()) {
            Ok(s) if s >= min => Some(s),
            Err(_) => {
                // Not "at least {min}s": the value is far too big, not too small.
                let diag = cx
                    .error(
                        "duration",
                        raw.span(),
                        format!("`{field}` is too long"),
                    )
                    .label(format!("more than {} seconds (about 68 years)", i32::MAX))
                    .help("Kubernetes stores this in 32-bit seconds; use a duration such as \"30s\" or \"10m\"");
                cx.push(diag);
                None
            }
            Ok(_) => {
                let diag = cx
                    .error(
                        "duration",
                        raw.span(),
                        format!("`{field}` must be at least {min}s"),
                    )
                    .help(format!("use a duration of {min}s or more"));
                cx.push(diag);
                None
            }
        },
    }
}

/// Parse a quantity; `positive` rejects zero (a volume of size 0 cannot be provisioned).
pub(super) fn quantity(
    cx: &mut Ctx<'_>,
    raw: &Spanned<String>,
    field: &str,
    positive: bool,
) -> Option<Quantity> {
    match Quantity::parse(raw.get_ref()) {
        Ok(q) if positive && q.is_zero() => {
            let d = cx
                .error(
                    "quantity",
                    raw.span(),
                    format!("`{field}` must be more than zero"),
                )
                .help("e.g. \"10Gi\"");
            cx.push(d);
            None
        }
        Ok(q) => Some(q),
        Err(e) => {
            let d = cx
                .error(
                    "quantity",
                    raw.span(),
                    format!("`{field}` is not a Kubernetes quantity"),
                )
                .label(e)
                .help(match field {
                    "cpu" => "write CPU in cores or millicores, e.g. \"2\", \"0.5\" or \"500m\"",
                    _ => "write bytes with a binary suffix, e.g. \"512Mi\" or \"20Gi\"",
                });
            cx.push(d);
            None
        }
    }
}

pub(super) fn resource(
    cx: &mut Ctx<'_>,
    raw: &Spanned<RawResource>,
    field: &str,
) -> Option<Resource> {
    match raw.get_ref() {
        RawResource::Both(text) => {
            let q = quantity(cx, &Spanned::new(raw.span(), text.clone()), field, false)?;
            Some(Resource {
                request: Some(q.clone()),
                limit: Some(q),
            })
        }
        RawResource::Split { request, limit } => {
            if request.is_none() && limit.is_none() {
                let d = cx
                    .error(
                        "quantity",
                        raw.span(),
                        format!("`{field}` needs a `request`, a `limit` or both"),
                    )
                    .help(format!(
                        "e.g. {field} = {{ request = \"500m\", limit = \"2\" }}"
                    ));
                cx.push(d);
                return None;
            }
            let req = request.as_ref().map(|r| quantity(cx, r, field, false));
            let lim = limit.as_ref().map(|l| quantity(cx, l, field, false));
            if let (Some(Some(rq)), Some(Some(lq)), Some(rs), Some(ls)) =
                (&req, &lim, request, limit)
                && rq > lq
            {
                let (line, col) = location_of(cx, ls.span());
                let d = cx
                    .error(
                        "request-exceeds-limit",
                        rs.span(),
                        format!(
                            "{field} request {} is more than its limit {}",
                            rq.as_str(),
                            lq.as_str()
                        ),
                    )
                    .label("request above limit")
                    .help(format!(
                        "lower the request or raise the limit (the limit is at {line}:{col})"
                    ));
                cx.push(d);
                return None;
            }
            match (req, lim) {
                (Some(None), _) | (_, Some(None)) => None,
                (r, l) => Some(Resource {
                    request: r.flatten(),
                    limit: l.flatten(),
                }),
            }
        }
    }
}

/// Extended resources by name (`"nvidia.com/gpu" = 1`): a domain-prefixed name outside
/// kubernetes.io and a whole number, requested and limited alike (Kubernetes allows no
/// overcommit of extended resources).
pub(super) fn extended_resources(
    cx: &mut Ctx<'_>,
    raw: Option<&Entries<Spanned<IntOrStr>>>,
) -> Extended {
    let mut out = Extended::new();
    for (k, v) in raw.iter().flat_map(|e| e.0.iter()) {
        let name = k.get_ref();
        let builtin = match name.as_str() {
            "cpu" | "memory" => Some(format!("use the container's `{name}` key")),
            "ephemeral-storage" => Some("use the container's `ephemeral_storage` key".to_string()),
            _ => None,
        };
        let domain = name.split_once('/').map(|(d, _)| d);
        let problem = builtin.or_else(|| match domain {
            None => Some(format!(
                "an extended resource is named with a domain, e.g. \"example.com/{name}\""
            )),
            Some(d) if d == "kubernetes.io" || d.ends_with(".kubernetes.io") => {
                Some("names in the kubernetes.io domain are not extended resources".to_string())
            }
            Some(_) => {
                let errs = crate::spec::names::qualified_name(name);
                (!errs.is_empty()).then(|| errs.join("; "))
            }
        });
        if let Some(help) = problem {
            let d = cx
                .error(
                    "extended-resource",
                    k.span(),
                    format!("`{name}` is not an extended resource name"),
                )
                .help(help);
            cx.push(d);
            continue;
        }
        let text = match v.get_ref() {
            IntOrStr::Int(n) => n.to_string(),
            IntOrStr::Str(s) => s.clone(),
        };
        let Some(q) = quantity(cx, &Spanned::new(v.span(), text), name, false) else {
            continue;
        };
        if q.nanos() % 1_000_000_000 != 0 {
            let d = cx
                .error(
                    "extended-resource",
                    v.span(),
                    format!("`{name}` must be a whole number"),
                )
                .label("extended resources are counted in whole units")
                .help("e.g. \"nvidia.com/gpu\" = 1");
            cx.push(d);
            continue;
        }
        out.insert(name.clone(), q);
    }
    out
}
