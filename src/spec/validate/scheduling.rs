//! Where the pods run, beyond `node_selector` and `spread`: tolerations, node affinity,
//! preferred anti-affinity (`prefer_spread`), topology spread constraints and the priority class.
//! Affinity of any kind is an error under `profile = "autopilot"`, like `spread`.

use std::collections::BTreeMap;
use std::ops::Range;

use super::values::seconds;
use super::{Ctx, location_of};
use crate::config::Profile;
use crate::spec::app::*;
use crate::spec::names;
use crate::spec::raw::*;

const LABEL_KEY_HELP: &str = "a label key is an optional DNS subdomain prefix and '/', then a name of at most 63 letters, digits, '-', '_' or '.'";

pub(super) fn scheduling(cx: &mut Ctx<'_>, raw: &RawApp) -> Scheduling {
    let tolerations = raw
        .tolerations
        .iter()
        .flat_map(|t| t.get_ref().iter())
        .filter_map(|t| toleration(cx, t))
        .collect();
    if let Some(a) = &raw.node_affinity {
        forbid_on_autopilot(cx, "node_affinity", a.span(), "renders node affinity");
    }
    if let Some(s) = &raw.prefer_spread {
        forbid_on_autopilot(cx, "prefer_spread", s.span(), "renders pod anti-affinity");
    }
    let node_affinity = raw
        .node_affinity
        .as_ref()
        .map(|a| node_affinity(cx, a.get_ref()));
    let topology_spread = topology_spread(cx, raw.topology_spread.as_ref());
    let priority_class = raw.priority_class.as_ref().map(|p| {
        let errs = names::dns1123_subdomain(p.get_ref());
        cx.name(
            "priority-class",
            "priority class name",
            p.get_ref(),
            p.span(),
            errs,
            "name a PriorityClass of the cluster (`kubectl get priorityclass`)",
        );
        p.get_ref().clone()
    });
    Scheduling {
        tolerations,
        node_affinity,
        prefer_spread: raw.prefer_spread.as_ref().map(|s| *s.get_ref()),
        topology_spread,
        priority_class,
    }
}

/// The seed's rule: autopilot clusters place pods themselves and reject affinity.
fn forbid_on_autopilot(cx: &mut Ctx<'_>, field: &str, span: Range<usize>, what: &str) {
    if cx.input.config.profile != Profile::Autopilot {
        return;
    }
    let d = cx
        .error("profile-forbids", span, format!("`{field}` is not allowed on this cluster profile"))
        .label(format!("{what}, which autopilot clusters reject"))
        .help(format!("remove `{field}`; the daemon config sets `profile = \"autopilot\"`, and such clusters place pods themselves"));
    cx.push(d);
}

fn label_key(cx: &mut Ctx<'_>, rule: &'static str, key: &Spanned<String>) -> bool {
    let errs = names::qualified_name(key.get_ref());
    cx.name(
        rule,
        "label key",
        key.get_ref(),
        key.span(),
        errs,
        LABEL_KEY_HELP,
    )
}

fn toleration(cx: &mut Ctx<'_>, raw: &Spanned<RawToleration>) -> Option<Toleration> {
    let t = raw.get_ref();
    let mut ok = true;
    if let Some(k) = &t.key {
        ok &= label_key(cx, "toleration", k);
    }
    if let (None, Some(v)) = (&t.key, &t.value) {
        let d = cx
            .error("toleration", v.span(), "a toleration with a `value` needs a `key`")
            .help("add the taint's key, e.g. { key = \"dedicated\", value = \"db\" }; leave both out to tolerate every taint");
        cx.push(d);
        ok = false;
    }
    if let Some(v) = &t.value {
        let errs = names::label_value(v.get_ref());
        ok &= cx.name(
            "toleration",
            "taint value",
            v.get_ref(),
            v.span(),
            errs,
            "a taint value is at most 63 letters, digits, '-', '_' or '.'",
        );
    }
    let evict_after_seconds = match &t.evict_after {
        None => None,
        Some(e) if t.effect.as_ref().map(|e| *e.get_ref()) != Some(TaintEffect::NoExecute) => {
            let d = cx
                .error(
                    "toleration",
                    e.span(),
                    "`evict_after` applies only to `effect = \"NoExecute\"`",
                )
                .help(
                    "add effect = \"NoExecute\", or remove `evict_after`: other taints never evict",
                );
            cx.push(d);
            ok = false;
            None
        }
        Some(e) => match seconds(cx, e, 0, "evict_after") {
            Some(s) => Some(i64::from(s)),
            None => {
                ok = false;
                None
            }
        },
    };
    ok.then(|| Toleration {
        key: t.key.as_ref().map(|k| k.get_ref().clone()),
        value: t.value.as_ref().map(|v| v.get_ref().clone()),
        effect: t.effect.as_ref().map(|e| *e.get_ref()),
        evict_after_seconds,
    })
}

fn node_affinity(cx: &mut Ctx<'_>, raw: &RawNodeAffinity) -> NodeAffinity {
    let mut out = NodeAffinity::default();
    for e in raw.required.iter().flat_map(|r| r.get_ref().iter()) {
        if let Some(w) = &e.get_ref().weight {
            let d = cx
                .error("node-affinity", w.span(), "`weight` applies only to `preferred` expressions")
                .help("move this expression to `preferred`, or remove `weight`: required ones must all hold");
            cx.push(d);
            continue;
        }
        if let Some(expr) = node_expr(cx, e) {
            out.required.push(expr);
        }
    }
    for e in raw.preferred.iter().flat_map(|r| r.get_ref().iter()) {
        let weight = match &e.get_ref().weight {
            Some(w) if (1..=100).contains(w.get_ref()) => *w.get_ref() as i32,
            Some(w) => {
                let d = cx
                    .error(
                        "node-affinity",
                        w.span(),
                        "`weight` must be between 1 and 100",
                    )
                    .help("the scheduler adds the weights of the preferences a node meets");
                cx.push(d);
                continue;
            }
            None => {
                let d = cx
                    .error("node-affinity", e.span(), "a `preferred` expression needs a `weight`")
                    .help("add weight = 1 to 100, e.g. { weight = 50, key = \"disktype\", in = [\"ssd\"] }");
                cx.push(d);
                continue;
            }
        };
        if let Some(expr) = node_expr(cx, e) {
            out.preferred.push((weight, expr));
        }
    }
    out
}

fn node_expr(cx: &mut Ctx<'_>, raw: &Spanned<RawNodeExpr>) -> Option<NodeExpr> {
    let e = raw.get_ref();
    let Some(key) = &e.key else {
        let d = cx
            .error(
                "node-affinity",
                raw.span(),
                "a node expression needs a `key`",
            )
            .help("e.g. { key = \"disktype\", in = [\"ssd\"] }");
        cx.push(d);
        return None;
    };
    let key_ok = label_key(cx, "node-affinity", key);
    let mut ops: Vec<(Range<usize>, NodeOp)> = Vec::new();
    let list = |cx: &mut Ctx<'_>, v: &Spanned<Vec<String>>, field: &str| -> Option<Vec<String>> {
        if v.get_ref().is_empty() {
            let d = cx
                .error(
                    "node-affinity",
                    v.span(),
                    format!("`{field}` needs at least one value"),
                )
                .help("list the node label values, or use `exists`");
            cx.push(d);
            return None;
        }
        Some(v.get_ref().clone())
    };
    if let Some(v) = &e.in_
        && let Some(l) = list(cx, v, "in")
    {
        ops.push((v.span(), NodeOp::In(l)));
    }
    if let Some(v) = &e.not_in
        && let Some(l) = list(cx, v, "not_in")
    {
        ops.push((v.span(), NodeOp::NotIn(l)));
    }
    if let Some(x) = &e.exists {
        let op = if *x.get_ref() {
            NodeOp::Exists
        } else {
            NodeOp::DoesNotExist
        };
        ops.push((x.span(), op));
    }
    if let Some(n) = &e.gt {
        ops.push((n.span(), NodeOp::Gt(*n.get_ref())));
    }
    if let Some(n) = &e.lt {
        ops.push((n.span(), NodeOp::Lt(*n.get_ref())));
    }
    match ops.as_slice() {
        [(_, op)] => key_ok.then(|| NodeExpr {
            key: key.get_ref().clone(),
            op: op.clone(),
        }),
        [] => {
            let d = cx
                .error(
                    "node-affinity",
                    raw.span(),
                    "a node expression needs one of `in`, `not_in`, `exists`, `gt`, `lt`",
                )
                .help("e.g. { key = \"disktype\", in = [\"ssd\"] }");
            cx.push(d);
            None
        }
        [_, (second, _), ..] => {
            let d = cx
                .error(
                    "node-affinity",
                    second.clone(),
                    "a node expression takes one operator",
                )
                .label("second operator")
                .help("split it into two expressions; required expressions must all hold");
            cx.push(d);
            None
        }
    }
}

/// `"zone"` and `"hostname"` stand for the well-known topology keys.
pub(super) fn topology_key(key: &str) -> String {
    match key {
        "zone" => Spread::Zone.topology_key().to_string(),
        "hostname" => Spread::Hostname.topology_key().to_string(),
        other => other.to_string(),
    }
}

fn topology_spread(
    cx: &mut Ctx<'_>,
    raw: Option<&Spanned<Vec<Spanned<RawTopologySpread>>>>,
) -> Vec<TopologySpread> {
    let mut out = Vec::new();
    let mut seen: BTreeMap<(String, WhenUnsatisfiable), Range<usize>> = BTreeMap::new();
    for c in raw.iter().flat_map(|r| r.get_ref().iter()) {
        let t = c.get_ref();
        let Some(key) = &t.key else {
            let d = cx
                .error("topology-spread", c.span(), "a topology spread constraint needs a `key`")
                .help("e.g. { key = \"zone\", max_skew = 1 } (\"zone\" and \"hostname\" stand for the well-known keys)");
            cx.push(d);
            continue;
        };
        let full = topology_key(key.get_ref());
        if full == *key.get_ref() && !label_key(cx, "topology-spread", key) {
            continue;
        }
        let max_skew = match &t.max_skew {
            None => 1,
            Some(m) => match i32::try_from(*m.get_ref()) {
                Ok(n) if n >= 1 => n,
                _ => {
                    let d = cx
                        .error("topology-spread", m.span(), "`max_skew` must be at least 1")
                        .help("the most the pod counts of two domains may differ, e.g. 1");
                    cx.push(d);
                    continue;
                }
            },
        };
        let when_unsatisfiable = t
            .when_unsatisfiable
            .as_ref()
            .map_or(WhenUnsatisfiable::DoNotSchedule, |w| *w.get_ref());
        if let Some(first) = seen.insert((full.clone(), when_unsatisfiable), key.span()) {
            let (line, col) = location_of(cx, first);
            let d = cx
                .error(
                    "topology-spread",
                    key.span(),
                    format!("two constraints on `{full}` with the same `when_unsatisfiable`"),
                )
                .help(format!(
                    "the API server rejects the pair; merge them (the first is at {line}:{col})"
                ));
            cx.push(d);
            continue;
        }
        out.push(TopologySpread {
            key: full,
            max_skew,
            when_unsatisfiable,
        });
    }
    out
}
