//! Who the app is and what it is tagged with: the app name, labels (of the pods and of the node
//! selector), annotations, and the keys berth reserves for itself.

use std::collections::BTreeMap;
use std::ops::Range;

use super::{Ctx, NAME_HELP};
use crate::spec::Dependency;
use crate::spec::diag::Diagnostic;
use crate::spec::names;
use crate::spec::raw::*;

use crate::labels::{RESERVED_LABEL_KEYS, RESERVED_PREFIX};

pub(super) fn check_app_name(cx: &mut Ctx<'_>, name: &str, span: Option<Range<usize>>) {
    let errs = names::app_name(name);
    if errs.is_empty() {
        return;
    }
    let too_long = name.chars().count() > names::APP_NAME_MAX;
    let help = if too_long {
        "use at most 52 characters: the StatefulSet controller labels every pod with `controller-revision-hash=<app>-<10-character hash>`, a label value may have at most 63 characters, and with a longer name the pods are never created (kubernetes issue 64023)".to_string()
    } else {
        NAME_HELP.to_string()
    };
    let d = match span {
        Some(span) => Diagnostic::error(
            cx.input.path,
            "app-name",
            format!("invalid app name `{name}`"),
        )
        .at(cx.input.source, span)
        .label(errs.join("; "))
        .help(help),
        None => Diagnostic::error(
            cx.input.path,
            "app-name",
            format!(
                "invalid app name `{name}` (taken from the file name): {}",
                errs.join("; ")
            ),
        )
        .help(format!(
            "{help}; rename the file or set `name = \"...\"` in it"
        )),
    };
    cx.push(d);
}

/// `after = ["zk/zookeeper", "mysql"]`: `NAMESPACE/NAME`, or `NAME` in the app's own namespace.
/// Whether the apps exist and form no cycle is a rule across files ([`crate::spec::load_dir`]).
pub(super) fn dependencies(
    cx: &mut Ctx<'_>,
    raw: Option<&Spanned<Vec<Spanned<String>>>>,
    namespace: &str,
    name: &str,
) -> Vec<Dependency> {
    let mut out: Vec<Dependency> = Vec::new();
    for entry in raw.map(|r| r.get_ref().as_slice()).unwrap_or_default() {
        let text = entry.get_ref();
        let (ns, app) = text.split_once('/').unwrap_or((namespace, text.as_str()));
        let mut errs = names::dns1123_label(ns);
        errs.extend(names::app_name(app));
        if !cx.name(
            "after",
            "app in `after`",
            text,
            entry.span(),
            errs,
            "name an app as NAMESPACE/NAME (e.g. \"zk/zookeeper\"), or NAME in this app's namespace",
        ) {
            continue;
        }
        if ns == namespace && app == name {
            let d = cx
                .error("after", entry.span(), "an app cannot wait for itself")
                .label("this app")
                .help("name the apps this one needs, e.g. after = [\"zk/zookeeper\"]");
            cx.push(d);
            continue;
        }
        if out.iter().any(|d| d.namespace == ns && d.name == app) {
            continue;
        }
        out.push(Dependency {
            namespace: ns.to_string(),
            name: app.to_string(),
            at: Some(crate::spec::Location::from_span(
                cx.input.source,
                entry.span(),
            )),
        });
    }
    out
}

pub(super) fn label_map(
    cx: &mut Ctx<'_>,
    raw: Option<&StrMap>,
    rule: &'static str,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(raw) = raw else { return out };
    for (k, v) in raw {
        let key = k.get_ref();
        let errs = names::qualified_name(key);
        let mut ok = cx.name(rule, "label key", key, k.span(), errs, "a label key is an optional DNS subdomain prefix and '/', then a name of at most 63 letters, digits, '-', '_' or '.'");
        if rule == "label"
            && (RESERVED_LABEL_KEYS.contains(&key.as_str()) || key.starts_with(RESERVED_PREFIX))
        {
            let d = cx
                .error(rule, k.span(), format!("label `{key}` is set by berth"))
                .label("reserved")
                .help("berth sets this label itself (selector and ownership); choose another key");
            cx.push(d);
            ok = false;
        }
        let errs = names::label_value(v.get_ref());
        ok &= cx.name(rule, "label value", v.get_ref(), v.span(), errs, "a label value is empty or at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit");
        if ok {
            out.insert(key.clone(), v.get_ref().clone());
        }
    }
    out
}

pub(super) fn annotation_map(cx: &mut Ctx<'_>, raw: Option<&StrMap>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(raw) = raw else { return out };
    for (k, v) in raw {
        let key = k.get_ref();
        let errs = names::qualified_name(key);
        cx.name("annotation", "annotation key", key, k.span(), errs, "an annotation key is an optional DNS subdomain prefix and '/', then a name of at most 63 letters, digits, '-', '_' or '.'");
        if key.starts_with(RESERVED_PREFIX) {
            let d = cx
                .error(
                    "annotation",
                    k.span(),
                    format!("annotation `{key}` is set by berth"),
                )
                .label("reserved")
                .help("keys under `berth.dev/` belong to berth; choose another key");
            cx.push(d);
        }
        out.insert(key.clone(), v.get_ref().clone());
    }
    out
}
