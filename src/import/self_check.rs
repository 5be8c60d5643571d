//! Self-check: what the spec does not reproduce. The imported text is validated and rendered
//! like any spec, and the render is compared with the live objects, so every field the import
//! drops or changes is named in a note instead of being lost silently.

use std::path::Path;

use serde_json::Value;

use super::defaults::strip_server_defaults;
use super::{BERTH_ANNOTATIONS, BERTH_LABELS, ptr_str};
use crate::config::Config;
use crate::render::{RenderContext, render_app};

/// Validates and renders the imported spec, then names every live field the render leaves out
/// or sets differently. Ownership labels and annotations and the selector are berth's own and
/// are not reported here (the selector has its own note).
pub(super) fn unexpressed(
    body: &str,
    stem: &str,
    config: &Config,
    live: &[Option<&Value>],
) -> Vec<String> {
    let file = format!("{stem}.toml");
    let checked = crate::spec::check_source(Path::new(&file), Path::new(&file), body, config);
    let Some(app) = checked.app else {
        return checked
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| {
                format!(
                    "the imported spec does not validate; fix it by hand: {}",
                    d.render(false)
                )
            })
            .collect();
    };
    let rendered = render_app(&app, &RenderContext::new(&config.instance, &app));
    let rendered: Vec<Value> = rendered
        .to_values()
        .iter()
        .map(strip_server_defaults)
        .collect();
    let mut out = Vec::new();
    for l in live.iter().flatten() {
        let kind = l.get("kind").and_then(Value::as_str).unwrap_or_default();
        let name = ptr_str(l, "/metadata/name").unwrap_or_default();
        let twin = rendered.iter().find(|r| {
            r.get("kind").and_then(Value::as_str) == Some(kind)
                && ptr_str(r, "/metadata/name") == Some(name)
        });
        let Some(twin) = twin else {
            continue;
        };
        let mut paths = Vec::new();
        missing(l, twin, String::new(), &mut paths);
        let (absent, differ): (Vec<_>, Vec<_>) = paths
            .into_iter()
            .filter(|(p, _)| !ignored(p))
            .partition(|(_, absent)| *absent);
        let list =
            |v: Vec<(String, bool)>| v.into_iter().map(|(p, _)| p).collect::<Vec<_>>().join(", ");
        if !absent.is_empty() {
            out.push(format!(
                "{kind} {name}: the spec cannot express {}; berth leaves these fields to whoever \
                 set them, and they are lost if the object is recreated",
                list(absent)
            ));
        }
        if !differ.is_empty() {
            out.push(format!(
                "{kind} {name}: berth sets {} to its own value; applying this spec changes them",
                list(differ)
            ));
        }
    }
    out
}

/// Paths berth sets itself or reports elsewhere.
fn ignored(path: &str) -> bool {
    let berth_key =
        |prefix: &str, keys: &[&str]| path.strip_prefix(prefix).is_some_and(|k| keys.contains(&k));
    let claim_label = path.starts_with("spec.volumeClaimTemplates[")
        && path
            .split_once(".metadata.labels.")
            .is_some_and(|(_, k)| BERTH_LABELS.contains(&k));
    claim_label
        || path.starts_with("spec.selector")
        || path.starts_with("spec.template.spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector")
        || path.starts_with("spec.template.spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm.labelSelector")
        || (path.starts_with("spec.template.spec.topologySpreadConstraints[")
            && path.contains("].labelSelector"))
        || berth_key("metadata.labels.", &BERTH_LABELS)
        || berth_key("spec.template.metadata.labels.", &BERTH_LABELS)
        || berth_key("metadata.annotations.", &BERTH_ANNOTATIONS)
        || path.starts_with("spec.template.metadata.annotations.kubectl.kubernetes.io/")
}

/// Appends the paths of `live` that `want` does not hold with the same value, each with whether
/// `want` lacks it altogether. Lists of objects with a `name` are matched by name, other lists by
/// position.
fn missing(live: &Value, want: &Value, path: String, out: &mut Vec<(String, bool)>) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (live, want) {
        (Value::Object(l), Value::Object(w)) => {
            for (k, lv) in l {
                match w.get(k) {
                    Some(wv) => missing(lv, wv, join(k), out),
                    None => out.push((join(k), true)),
                }
            }
        }
        (Value::Array(l), Value::Array(w)) => {
            for (i, lv) in l.iter().enumerate() {
                let name = lv.get("name").and_then(Value::as_str);
                let twin = match name {
                    Some(n) => w
                        .iter()
                        .find(|wv| wv.get("name").and_then(Value::as_str) == Some(n)),
                    None => w.get(i),
                };
                let here = match name {
                    Some(n) => format!("{path}[{n}]"),
                    None => format!("{path}[{i}]"),
                };
                match twin {
                    Some(wv) => missing(lv, wv, here, out),
                    None => out.push((here, true)),
                }
            }
        }
        (l, w) if l == w => {}
        _ => out.push((path, false)),
    }
}
