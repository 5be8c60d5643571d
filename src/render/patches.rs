//! `[patches]` applied to the rendered objects: the last step of rendering, so a patch sees
//! (and may change) everything berth renders, and the plan, the dry-run and the diff see the
//! patched objects like any other change. An operation that does not apply (a `test` that
//! fails, a path that is not there) is left out of the render and named by [`patch_errors`]:
//! validate, render and the planner refuse the app for it, so it is never applied half-patched.

use serde_json::Value;

use super::Rendered;
use crate::spec::{App, ObjectPatch, PatchTarget};

/// Applies the operations of `patches` for `target` to `value`, in order; an operation that does not
/// apply is skipped and returned with why.
pub(super) fn apply<'a>(
    patches: &'a [ObjectPatch],
    target: &PatchTarget,
    value: &mut Value,
) -> Vec<(&'a ObjectPatch, String)> {
    let mut failed = Vec::new();
    for patch in patches.iter().filter(|p| &p.target == target) {
        let operation: json_patch::PatchOperation = match serde_json::from_str(&patch.operation) {
            Ok(op) => op,
            Err(e) => {
                failed.push((patch, e.to_string()));
                continue;
            }
        };
        // `patch` applies all of a list or nothing; one operation at a time keeps the others.
        if let Err(e) = json_patch::patch(value, &[operation]) {
            failed.push((patch, e.to_string()));
        }
    }
    failed
}

/// Every operation of `app` that does not apply to what it renders (`rendered`), with why; an
/// operation for an object the app does not render (a `service` patch without [service]) too.
pub fn patch_errors<'a>(app: &'a App, rendered: &Rendered) -> Vec<(&'a ObjectPatch, String)> {
    let mut errors = Vec::new();
    for target in rendered.targets() {
        match rendered.unpatched(&target) {
            Some(mut value) => errors.extend(apply(&app.patches, &target, &mut value)),
            None => errors.extend(app.patches.iter().filter(|p| p.target == target).map(|p| {
                let why = match target {
                    PatchTarget::Service => "the app has no [service]",
                    _ => "the app has no disruption_budget",
                };
                (p, format!("nothing to patch: {why}"))
            })),
        }
    }
    // A `[patches.services]` entry for a Service the app does not have.
    errors.extend(app.patches.iter().filter_map(|p| match &p.target {
        PatchTarget::NamedService(name) if rendered.unpatched(&p.target).is_none() => Some((
            p,
            format!("nothing to patch: the app has no [services.{name}]"),
        )),
        _ => None,
    }));
    errors
}

/// Moves every app of `loaded` whose `[patches]` do not all apply to what it renders to the
/// broken specs, with a diagnostic per failing operation at the place it is written: like any
/// broken spec it is never applied, and its live app is left as it is. `dir` is the spec
/// directory the apps were loaded from.
pub fn refuse_unpatchable(loaded: &mut crate::spec::Loaded, dir: &std::path::Path, instance: &str) {
    let mut kept = Vec::with_capacity(loaded.apps.len());
    for app in std::mem::take(&mut loaded.apps) {
        if app.patches.is_empty() {
            kept.push(app);
            continue;
        }
        let rendered = super::render_app(&app, &super::RenderContext::new(instance, &app));
        let errors = patch_errors(&app, &rendered);
        if errors.is_empty() {
            kept.push(app);
            continue;
        }
        let path = dir.join(&app.source_path);
        for (patch, why) in &errors {
            let mut d = crate::spec::Diagnostic::error(
                &path,
                "patch-does-not-apply",
                format!(
                    "[patches] {}: `{}` does not apply to what berth renders",
                    patch.target.key(),
                    patch.operation
                ),
            )
            .label(why.clone())
            .help("`berth render` shows the object the patch applies to; fix the path, or the value a `test` expects");
            d.location = patch.at.clone();
            loaded.diagnostics.push(d);
        }
        loaded.broken.push(crate::spec::BrokenSpec {
            path,
            source_path: app.source_path.clone(),
            namespace: Some(app.namespace.clone()),
            name: app.name.clone(),
        });
    }
    loaded.apps = kept;
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;
    use crate::render::{RenderContext, render_app};
    use crate::spec::{App, Diagnostic, check_source};

    const APP: &str = "[containers.web]\nimage = \"nginx:1.27\"\n";

    fn checked(patches: &str) -> (Option<App>, Vec<Diagnostic>) {
        let text = format!("{APP}\n[patches]\n{patches}");
        let c = check_source(
            Path::new("web.toml"),
            Path::new("web.toml"),
            &text,
            &Config::default(),
        );
        (c.app, c.diagnostics)
    }

    #[test]
    fn patches_apply_last_and_in_order() {
        let (app, diags) = checked(
            "statefulset = [\n  { op = \"add\", path = \"/spec/revisionHistoryLimit\", value = 3 },\n  \
             { op = \"replace\", path = \"/spec/revisionHistoryLimit\", value = 5 },\n  \
             { op = \"add\", path = \"/spec/template/spec/enableServiceLinks\", value = false },\n]\n\
             headless = [{ op = \"add\", path = \"/metadata/annotations/team\", value = \"db\" }]\n",
        );
        assert!(diags.is_empty(), "{diags:?}");
        let app = app.expect("valid");
        let rendered = render_app(&app, &RenderContext::new("default", &app));
        assert!(super::patch_errors(&app, &rendered).is_empty());
        let values = rendered.to_values();
        let sts = values
            .iter()
            .find(|v| v["kind"] == "StatefulSet")
            .expect("sts");
        assert_eq!(sts["spec"]["revisionHistoryLimit"], 5);
        assert_eq!(sts["spec"]["template"]["spec"]["enableServiceLinks"], false);
        let headless = values.iter().find(|v| v["kind"] == "Service").expect("svc");
        assert_eq!(headless["metadata"]["annotations"]["team"], "db");
        // berth's own annotations are still there: the patch added, it did not replace.
        assert!(headless["metadata"]["annotations"]["berth.dev/app"].is_string());
    }

    #[test]
    fn an_operation_that_does_not_apply_is_named_and_left_out() {
        let (app, diags) = checked(
            "statefulset = [\n  { op = \"test\", path = \"/spec/replicas\", value = 7 },\n  \
             { op = \"add\", path = \"/spec/minReadySeconds\", value = 10 },\n]\n\
             budget = [{ op = \"add\", path = \"/spec/x\", value = 1 }]\n\
             services.read = [{ op = \"add\", path = \"/spec/x\", value = 1 }]\n",
        );
        assert!(diags.is_empty(), "{diags:?}");
        let app = app.expect("valid");
        let rendered = render_app(&app, &RenderContext::new("default", &app));
        let errors: Vec<String> = super::patch_errors(&app, &rendered)
            .into_iter()
            .map(|(p, why)| format!("{}: {why}", p.target.key()))
            .collect();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].starts_with("statefulset: "), "{errors:?}");
        assert_eq!(
            errors[1],
            "budget: nothing to patch: the app has no disruption_budget"
        );
        assert_eq!(
            errors[2],
            "services.read: nothing to patch: the app has no [services.read]"
        );
        let sts = rendered
            .to_values()
            .into_iter()
            .find(|v| v["kind"] == "StatefulSet")
            .expect("sts");
        assert_eq!(
            sts["spec"]["minReadySeconds"], 10,
            "the operations that apply still do"
        );

        let mut loaded = crate::spec::Loaded {
            apps: vec![app],
            ..Default::default()
        };
        super::refuse_unpatchable(&mut loaded, Path::new("/specs"), "default");
        assert!(loaded.apps.is_empty());
        assert_eq!(loaded.broken.len(), 1);
        let shown = loaded.diagnostics[0].render(false);
        assert!(shown.contains("error[patch-does-not-apply]"), "{shown}");
        assert!(shown.contains("/specs/web.toml:6:3"), "{shown}");
    }

    #[test]
    fn a_patch_may_not_touch_what_berth_owns_or_be_malformed() {
        for (patch, want) in [
            (
                "{ op = \"replace\", path = \"/metadata/name\", value = \"x\" }",
                "a patch may not change `/metadata/name`",
            ),
            (
                "{ op = \"add\", path = \"/metadata/labels/team\", value = \"x\" }",
                "a patch may not change `/metadata/labels/team`",
            ),
            (
                "{ op = \"remove\", path = \"/spec/selector\" }",
                "a patch may not change `/spec/selector`",
            ),
            (
                "{ op = \"add\", path = \"/metadata/annotations/berth.dev~1commit\", value = \"x\" }",
                "berth.dev~1commit",
            ),
            (
                "{ op = \"move\", from = \"/spec/serviceName\", path = \"/spec/x\" }",
                "`/spec/serviceName`",
            ),
            (
                "{ op = \"upsert\", path = \"/spec/x\", value = 1 }",
                "not a JSON patch operation",
            ),
        ] {
            let (app, diags) = checked(&format!("statefulset = [{patch}]\n"));
            assert!(app.is_none(), "{patch}");
            let shown: Vec<String> = diags.iter().map(|d| d.render(false)).collect();
            assert!(
                shown
                    .iter()
                    .any(|d| d.contains(want) && d.contains("web.toml:5:")),
                "{patch}: {shown:?}"
            );
        }
    }
}
