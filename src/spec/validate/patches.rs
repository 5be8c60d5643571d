//! `[patches]`: each entry must be an RFC 6902 operation, and none may touch what berth owns:
//! the identity of the object (apiVersion, kind, name, namespace), its labels, berth's own
//! annotations, the selector and the headless Service name. Whether an operation applies to
//! the rendered object is checked when it is rendered (`crate::render::patch_errors`).

use super::Ctx;
use crate::spec::Location;
use crate::spec::app::{ObjectPatch, PatchTarget};
use crate::spec::raw::RawPatches;
use toml::Spanned;

/// Paths a patch may not touch (JSON pointers; a path equal to one or under it is refused).
const OWNED: [(&str, &str); 7] = [
    ("/apiVersion", "the object's identity"),
    ("/kind", "the object's identity"),
    (
        "/metadata/name",
        "the object's identity (`name`, `headless`, [service] `name`)",
    ),
    ("/metadata/namespace", "the object's identity (`namespace`)"),
    (
        "/metadata/labels",
        "labels (`labels`; berth's own select and own the objects)",
    ),
    ("/spec/selector", "the selector berth owns"),
    (
        "/spec/serviceName",
        "the headless Service name (`headless`)",
    ),
];

/// Berth's own annotations, as a JSON pointer prefix.
const BERTH_ANNOTATIONS: &str = "/metadata/annotations/berth.dev~1";

/// What berth owns at `path`, when a patch may not touch it.
fn owner_of(path: &str) -> Option<&'static str> {
    OWNED
        .iter()
        .find(|(p, _)| path == *p || path.strip_prefix(p).is_some_and(|r| r.starts_with('/')))
        .map(|(_, what)| *what)
}

/// True when no patch may touch `path` (a JSON pointer): `berth import` names such a field in a
/// note instead of writing a patch that would not validate.
pub fn owned_by_berth(path: &str) -> bool {
    owner_of(path).is_some() || path.starts_with(BERTH_ANNOTATIONS)
}

pub(super) fn patches(cx: &mut Ctx<'_>, raw: Option<&Spanned<RawPatches>>) -> Vec<ObjectPatch> {
    let Some(raw) = raw else { return Vec::new() };
    let raw = raw.get_ref();
    let mut out = Vec::new();
    let named = raw
        .services
        .iter()
        .flat_map(|s| s.0.iter())
        .map(|(name, ops)| (PatchTarget::NamedService(name.get_ref().clone()), Some(ops)));
    let targets = [
        (PatchTarget::StatefulSet, raw.statefulset.as_ref()),
        (PatchTarget::Headless, raw.headless.as_ref()),
        (PatchTarget::Service, raw.service.as_ref()),
        (PatchTarget::Budget, raw.budget.as_ref()),
    ];
    for (target, ops) in targets.into_iter().chain(named) {
        for op in ops.into_iter().flatten() {
            if let Some(p) = operation(cx, target.clone(), op) {
                out.push(p);
            }
        }
    }
    out
}

fn operation(
    cx: &mut Ctx<'_>,
    target: PatchTarget,
    op: &Spanned<toml::Value>,
) -> Option<ObjectPatch> {
    let json = serde_json::to_value(op.get_ref()).ok()?;
    let parsed: json_patch::PatchOperation = match serde_json::from_value(json.clone()) {
        Ok(p) => p,
        Err(e) => {
            let d = cx
                .error("patch", op.span(), format!("not a JSON patch operation: {e}"))
                .label("in [patches]")
                .help("write an RFC 6902 operation, e.g. { op = \"add\", path = \"/spec/template/spec/hostNetwork\", value = true } (op: add, remove, replace, move, copy, test)");
            cx.push(d);
            return None;
        }
    };
    let mut paths = vec![parsed.path().to_string()];
    if let json_patch::PatchOperation::Move(m) = &parsed {
        paths.push(m.from.to_string());
    }
    for path in &paths {
        let berth_annotation = path.starts_with(BERTH_ANNOTATIONS);
        if let Some(what) = owner_of(path) {
            let d = cx
                .error("patch-owned", op.span(), format!("a patch may not change `{path}`"))
                .label(format!("this is {what}"))
                .help("set it with the spec field that owns it; patches are for fields the spec cannot express");
            cx.push(d);
            return None;
        }
        if berth_annotation {
            let d = cx
                .error(
                    "patch-owned",
                    op.span(),
                    format!("a patch may not change `{path}`"),
                )
                .label("berth's own annotation")
                .help(
                    "berth.dev/ annotations record what berth did; use `annotations` for your own",
                );
            cx.push(d);
            return None;
        }
    }
    Some(ObjectPatch {
        target,
        operation: json.to_string(),
        at: Some(Location::from_span(cx.input.source, op.span())),
    })
}
