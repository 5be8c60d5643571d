//! What the spec has no spelling for, kept as `[patches]`: each live field the rendered spec
//! leaves out becomes an `add` operation on berth's rendered object, each field it sets
//! differently a `replace`, so the import loses nothing the server holds. A field no patch may
//! touch (berth's labels, names, selector) or a value TOML cannot hold (null) stays a note.

use std::fmt::Write as _;

use super::self_check::Lost;
use super::toml_writer::{TomlValue, from_json, toml_key};
use crate::spec::App;
use crate::spec::validate::owned_by_berth;

/// The `[patches]` section that keeps what `lost` names (empty when nothing can be kept).
pub(super) fn section(app: &App, lost: &[Lost]) -> String {
    let mut targets: Vec<(String, Vec<String>)> = Vec::new();
    for l in lost {
        let (Some(target), false, Some(value)) = (
            target_of(app, &l.kind, &l.name),
            owned_by_berth(&l.pointer),
            from_json(&l.value),
        ) else {
            continue;
        };
        let op = TomlValue::Tab(vec![
            (
                "op".into(),
                TomlValue::Str(if l.absent { "add" } else { "replace" }.into()),
            ),
            ("path".into(), TomlValue::Str(l.pointer.clone())),
            ("value".into(), value),
        ]);
        match targets.iter_mut().find(|(t, _)| *t == target) {
            Some((_, ops)) => ops.push(op.inline()),
            None => targets.push((target, vec![op.inline()])),
        }
    }
    if targets.is_empty() {
        return String::new();
    }
    let mut text = String::from(
        "\n# Fields the spec has no spelling for, kept as JSON patches on what berth renders\n\
         # (`berth render` shows the result).\n[patches]\n",
    );
    for (target, ops) in targets {
        let _ = writeln!(text, "{target} = [");
        for op in ops {
            let _ = writeln!(text, "  {op},");
        }
        text.push_str("]\n");
    }
    text
}

/// The `[patches]` key of the live object `kind`/`name` in `app`'s render.
fn target_of(app: &App, kind: &str, name: &str) -> Option<String> {
    match kind {
        "StatefulSet" => Some("statefulset".into()),
        "PodDisruptionBudget" => Some("budget".into()),
        "Service" if name == app.headless => Some("headless".into()),
        "Service" if app.service.as_ref().is_some_and(|s| s.name == name) => Some("service".into()),
        "Service" if app.services.iter().any(|s| s.name == name) => {
            Some(format!("services.{}", toml_key(name)))
        }
        _ => None,
    }
}
