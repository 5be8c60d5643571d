//! Self-check: what the spec does not reproduce. The imported text is validated and rendered
//! like any spec, and the render is compared with the live objects, so every field the import
//! drops or changes is named in a note instead of being lost silently.

use std::path::Path;

use serde_json::Value;

use super::defaults::strip_server_defaults;
use super::{BERTH_ANNOTATIONS, BERTH_LABELS, ptr_str};
use crate::config::Config;
use crate::render::{RenderContext, render_app};
use crate::spec::App;

/// A live field the rendered spec does not hold with the same value.
#[derive(Debug, Clone)]
pub(super) struct Lost {
    /// The live object's kind and name.
    pub kind: String,
    pub name: String,
    /// Where, for a person: `spec.template.spec.containers[pg].workingDir`.
    pub path: String,
    /// Where, as a JSON pointer into berth's rendered object (array items by their index
    /// there; `-` when the rendered array lacks the item).
    pub pointer: String,
    /// The rendered object lacks the field (else it holds another value).
    pub absent: bool,
    /// The live value.
    pub value: Value,
}

/// Validates and renders the imported spec, then lists every live field the render leaves out
/// or sets differently: the app and what it lost, or, when the text does not validate, the
/// notes that say so. Ownership labels and annotations and the selector are berth's own and are
/// not listed (the selector has its own note).
pub(super) fn lost_fields(
    body: &str,
    stem: &str,
    config: &Config,
    live: &[&Value],
) -> Result<(App, Vec<Lost>), Vec<String>> {
    let file = format!("{stem}.toml");
    let checked = crate::spec::check_source(Path::new(&file), Path::new(&file), body, config);
    let Some(app) = checked.app else {
        return Err(checked
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| {
                format!(
                    "the imported spec does not validate; fix it by hand: {}",
                    d.render(false)
                )
            })
            .collect());
    };
    let rendered = render_app(&app, &RenderContext::new(&config.instance, &app));
    let rendered: Vec<Value> = rendered
        .to_values()
        .iter()
        .map(strip_server_defaults)
        .collect();
    let mut out = Vec::new();
    for l in live {
        let kind = l.get("kind").and_then(Value::as_str).unwrap_or_default();
        let name = ptr_str(l, "/metadata/name").unwrap_or_default();
        let twin = rendered.iter().find(|r| {
            r.get("kind").and_then(Value::as_str) == Some(kind)
                && ptr_str(r, "/metadata/name") == Some(name)
        });
        let Some(twin) = twin else {
            continue;
        };
        let mut found = Vec::new();
        missing(l, twin, &Place::default(), &mut found);
        out.extend(
            found
                .into_iter()
                .filter(|f| !ignored(&f.path))
                .map(|f| Lost {
                    kind: kind.to_string(),
                    name: name.to_string(),
                    path: f.path,
                    pointer: f.pointer,
                    absent: f.absent,
                    value: f.value,
                }),
        );
    }
    Ok((app, out))
}

/// The notes for what the spec does not reproduce: one per object for the absent fields and one
/// for those set differently.
pub(super) fn notes_of(lost: &[Lost]) -> Vec<String> {
    let mut objects: Vec<(&str, &str)> = lost
        .iter()
        .map(|l| (l.kind.as_str(), l.name.as_str()))
        .collect();
    objects.dedup();
    let mut out = Vec::new();
    for (kind, name) in objects {
        let of = |absent: bool| {
            lost.iter()
                .filter(|l| l.kind == kind && l.name == name && l.absent == absent)
                .map(|l| l.path.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (absent, differ) = (of(true), of(false));
        if !absent.is_empty() {
            out.push(format!(
                "{kind} {name}: the spec cannot express {absent}; berth leaves these fields to \
                 whoever set them, and they are lost if the object is recreated"
            ));
        }
        if !differ.is_empty() {
            out.push(format!(
                "{kind} {name}: berth sets {differ} to its own value; applying this spec changes \
                 them"
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

/// Where [`missing`] is in both objects.
#[derive(Default)]
struct Place {
    path: String,
    pointer: String,
}

impl Place {
    fn key(&self, k: &str) -> Place {
        let escaped = k.replace('~', "~0").replace('/', "~1");
        Place {
            path: if self.path.is_empty() {
                k.to_string()
            } else {
                format!("{}.{k}", self.path)
            },
            pointer: format!("{}/{escaped}", self.pointer),
        }
    }

    fn item(&self, label: &str, index: Option<usize>) -> Place {
        Place {
            path: format!("{}[{label}]", self.path),
            pointer: match index {
                Some(i) => format!("{}/{i}", self.pointer),
                None => format!("{}/-", self.pointer),
            },
        }
    }
}

struct Found {
    path: String,
    pointer: String,
    absent: bool,
    value: Value,
}

/// Appends the places of `live` that `want` does not hold with the same value, each with whether
/// `want` lacks it altogether. Lists of objects with a `name` are matched by name, other lists by
/// position.
fn missing(live: &Value, want: &Value, at: &Place, out: &mut Vec<Found>) {
    let found = |at: Place, absent: bool, value: &Value| Found {
        path: at.path,
        pointer: at.pointer,
        absent,
        value: value.clone(),
    };
    match (live, want) {
        (Value::Object(l), Value::Object(w)) => {
            for (k, lv) in l {
                match w.get(k) {
                    Some(wv) => missing(lv, wv, &at.key(k), out),
                    None => out.push(found(at.key(k), true, lv)),
                }
            }
        }
        (Value::Array(l), Value::Array(w)) => {
            // An item is the twin of one live item at most (two mounts of one volume share a
            // `name`: the second is missing, not a change to the first).
            let mut taken = vec![false; w.len()];
            for (i, lv) in l.iter().enumerate() {
                let name = lv.get("name").and_then(Value::as_str);
                let twin = match name {
                    Some(n) => w.iter().enumerate().position(|(j, wv)| {
                        !taken[j] && wv.get("name").and_then(Value::as_str) == Some(n)
                    }),
                    None => (i < w.len()).then_some(i),
                };
                if let Some(t) = twin {
                    taken[t] = true;
                }
                let label = name.map_or_else(|| i.to_string(), str::to_string);
                match twin {
                    Some(t) => missing(lv, &w[t], &at.item(&label, Some(t)), out),
                    None => out.push(found(at.item(&label, None), true, lv)),
                }
            }
        }
        (l, w) if l == w => {}
        (l, _) => out.push(found(
            Place {
                path: at.path.clone(),
                pointer: at.pointer.clone(),
            },
            false,
            l,
        )),
    }
}
