//! Pod and container security: group ids, `run_as_non_root`, the seccomp profile, capabilities,
//! and the `security = "restricted"` preset.
//!
//! The preset fills in what the Kubernetes "restricted" Pod Security level requires and the
//! spec leaves out: `run_as_non_root = true` and seccomp `runtime-default` on the pod, and on
//! every container (init containers too) `allow_privilege_escalation = false` and capabilities
//! `drop = ["ALL"]`. Explicit fields win where they stay within the level (a localhost seccomp
//! profile, `add = ["NET_BIND_SERVICE"]`, a non-zero user id). A field that breaks the level is
//! an error, not an override: the admission would reject every pod of the set, and the
//! StatefulSet would only say so in an event.

use std::ops::Range;

use super::Ctx;
use super::values::id_field;
use crate::spec::app::*;
use crate::spec::raw::*;

/// The capabilities the restricted level lets a container add.
const RESTRICTED_ADD: [&str; 1] = ["NET_BIND_SERVICE"];

/// The pod-level fields (the preset is applied later, by [`apply_preset`]).
pub(super) fn pod_security(cx: &mut Ctx<'_>, raw: &RawApp) -> PodSecurity {
    let run_as_group = id_field(cx, raw.run_as_group.as_ref(), "run_as_group");
    let supplemental_groups = raw
        .supplemental_groups
        .as_ref()
        .map(|list| {
            list.get_ref()
                .iter()
                .filter_map(|g| id_field(cx, Some(g), "supplemental_groups"))
                .collect()
        })
        .unwrap_or_default();
    let seccomp = raw.seccomp.as_ref().and_then(|s| seccomp(cx, s));
    let run_as_non_root = raw.run_as_non_root.as_ref().map(|b| *b.get_ref());
    if let (Some(flag), Some(user)) = (&raw.run_as_non_root, &raw.run_as_user)
        && *flag.get_ref()
        && *user.get_ref() == 0
    {
        let d = cx
            .error(
                "security-context",
                user.span(),
                "`run_as_user = 0` is root, but `run_as_non_root = true`",
            )
            .label("user 0")
            .help(
                "the kubelet refuses to start such a container; give a non-zero user id, e.g. 999",
            );
        cx.push(d);
    }
    PodSecurity {
        preset: raw.security.as_ref().map(|p| *p.get_ref()),
        run_as_non_root,
        run_as_group,
        supplemental_groups,
        seccomp,
    }
}

fn seccomp(cx: &mut Ctx<'_>, raw: &Spanned<String>) -> Option<Seccomp> {
    let v = raw.get_ref();
    match v.as_str() {
        "runtime-default" => return Some(Seccomp::RuntimeDefault),
        "unconfined" => return Some(Seccomp::Unconfined),
        _ => {}
    }
    let problem = match v.strip_prefix("localhost/") {
        Some("") => "the localhost profile has no path",
        Some(path) if path.starts_with('/') || path.split('/').any(|s| s == "..") => {
            "the profile path must be relative to the kubelet's seccomp directory, without '..'"
        }
        Some(path) => return Some(Seccomp::Localhost(path.to_string())),
        None => "not a seccomp profile",
    };
    let d = cx
        .error("seccomp", raw.span(), format!("invalid seccomp profile `{v}`"))
        .label(problem)
        .help("write \"runtime-default\", \"unconfined\" or \"localhost/<profile path>\", e.g. \"localhost/profiles/audit.json\"");
    cx.push(d);
    None
}

/// A container's securityContext fields besides `run_as_user`.
pub(super) fn container_security(cx: &mut Ctx<'_>, c: &RawContainer) -> ContainerSecurity {
    let flag = |b: &Option<Spanned<bool>>| b.as_ref().map(|b| *b.get_ref());
    if let (Some(p), Some(e)) = (&c.privileged, &c.allow_privilege_escalation)
        && *p.get_ref()
        && !*e.get_ref()
    {
        let d = cx
            .error(
                "security-context",
                e.span(),
                "`allow_privilege_escalation = false` with `privileged = true`",
            )
            .label("a privileged container can always escalate")
            .help("the API server rejects this pair; remove one of the two");
        cx.push(d);
    }
    let capabilities = c.capabilities.as_ref().map(|caps| {
        let caps = caps.get_ref();
        let mut names = |list: &Option<Vec<Spanned<String>>>| -> Vec<String> {
            list.iter()
                .flatten()
                .filter(|n| capability_name(cx, n))
                .map(|n| n.get_ref().clone())
                .collect()
        };
        Capabilities {
            add: names(&caps.add),
            drop: names(&caps.drop),
        }
    });
    ContainerSecurity {
        read_only_root: flag(&c.read_only_root),
        allow_privilege_escalation: flag(&c.allow_privilege_escalation),
        privileged: flag(&c.privileged),
        capabilities,
    }
}

fn capability_name(cx: &mut Ctx<'_>, n: &Spanned<String>) -> bool {
    let v = n.get_ref();
    let well_formed = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    let problem = if let Some(bare) = v.strip_prefix("CAP_") {
        Some(format!("write `{bare}` without the CAP_ prefix"))
    } else if !well_formed {
        Some("capability names are upper case, e.g. \"NET_ADMIN\" or \"ALL\"".to_string())
    } else {
        None
    };
    let Some(help) = problem else { return true };
    let d = cx
        .error(
            "capabilities",
            n.span(),
            format!("invalid capability `{v}`"),
        )
        .help(help);
    cx.push(d);
    false
}

/// Applies `security = "restricted"` to the validated app, and reports every field that breaks
/// the level at its own span.
pub(super) fn apply_preset(cx: &mut Ctx<'_>, raw: &RawApp, app: &mut App) {
    let Some(preset) = &raw.security else { return };
    let at = preset.span();
    let breaks = |cx: &mut Ctx<'_>, span: Range<usize>, what: &str, fix: &str| {
        let d = cx
            .error(
                "security-preset",
                span,
                format!("{what} breaks `security = \"restricted\"`"),
            )
            .label("not allowed at the restricted Pod Security level")
            .help(format!(
                "{fix}, or remove `security` (it is set at {})",
                loc(cx, at.clone())
            ));
        cx.push(d);
    };
    if let Some(f) = raw.run_as_non_root.as_ref().filter(|f| !*f.get_ref()) {
        breaks(cx, f.span(), "`run_as_non_root = false`", "remove it");
    }
    if let Some(u) = raw.run_as_user.as_ref().filter(|u| *u.get_ref() == 0) {
        breaks(
            cx,
            u.span(),
            "`run_as_user = 0` (root)",
            "give a non-zero user id",
        );
    }
    if let Some(s) = raw.seccomp.as_ref().filter(|s| s.get_ref() == "unconfined") {
        breaks(
            cx,
            s.span(),
            "seccomp `unconfined`",
            "use \"runtime-default\" or a localhost profile",
        );
    }
    for (k, v) in raw.volumes.iter().flat_map(|v| v.get_ref().0.iter()) {
        if let Some(h) = &v.get_ref().host_path {
            let what = format!("host_path volume `{}`", k.get_ref());
            breaks(
                cx,
                h.span(),
                &what,
                "use a claim, an empty_dir, a config_map or a secret",
            );
        }
    }
    let raw_containers = [raw.init_containers.as_ref(), raw.containers.as_ref()]
        .into_iter()
        .flatten()
        .flat_map(|cs| cs.get_ref().0.iter());
    for (k, c) in raw_containers {
        let name = k.get_ref();
        if let Some(u) = c.run_as_user.as_ref().filter(|u| *u.get_ref() == 0) {
            breaks(
                cx,
                u.span(),
                &format!("container `{name}`: `run_as_user = 0` (root)"),
                "give a non-zero user id",
            );
        }
        if let Some(p) = c.privileged.as_ref().filter(|p| *p.get_ref()) {
            breaks(
                cx,
                p.span(),
                &format!("container `{name}`: `privileged = true`"),
                "remove it",
            );
        }
        if let Some(e) = c
            .allow_privilege_escalation
            .as_ref()
            .filter(|e| *e.get_ref())
        {
            breaks(
                cx,
                e.span(),
                &format!("container `{name}`: `allow_privilege_escalation = true`"),
                "remove it",
            );
        }
        let caps = c.capabilities.as_ref().map(Spanned::get_ref);
        for add in caps.iter().flat_map(|c| c.add.iter().flatten()) {
            if !RESTRICTED_ADD.contains(&add.get_ref().as_str()) {
                let what = format!("container `{name}`: adding capability `{}`", add.get_ref());
                breaks(cx, add.span(), &what, "add only NET_BIND_SERVICE");
            }
        }
        if let Some(c) = &c.capabilities
            && let Some(drop) = &c.get_ref().drop
            && !drop.iter().any(|d| d.get_ref() == "ALL")
        {
            let what = format!("container `{name}`: a capability `drop` list without \"ALL\"");
            breaks(
                cx,
                c.span(),
                &what,
                "drop [\"ALL\"] (the preset's default when `drop` is left out)",
            );
        }
    }

    let pod = &mut app.security;
    pod.run_as_non_root.get_or_insert(true);
    pod.seccomp.get_or_insert(Seccomp::RuntimeDefault);
    for c in app
        .init_containers
        .iter_mut()
        .chain(app.containers.iter_mut())
    {
        let s = &mut c.security;
        s.allow_privilege_escalation.get_or_insert(false);
        let caps = s.capabilities.get_or_insert_with(Capabilities::default);
        if caps.drop.is_empty() {
            caps.drop.push("ALL".to_string());
        }
    }
}

fn loc(cx: &Ctx<'_>, span: Range<usize>) -> String {
    let (line, col) = super::location_of(cx, span);
    format!("{line}:{col}")
}
