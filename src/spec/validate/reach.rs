//! What a spec may reach, by the daemon config's `[safety]` lists: its namespace
//! (`safety.namespaces`, the system namespaces refused unless named exactly), its host paths
//! (`safety.host_path`) and its ServiceAccount (`safety.service_accounts`).
//!
//! Anyone who can commit to the config repo writes specs; these rules keep such a commit from
//! placing pods into the control plane's namespaces, mounting the node's root or borrowing a
//! privileged ServiceAccount. A spec outside them is an error like any other: its file is broken,
//! so nothing of it is applied and its live app, if any, is left as it is.

use super::Ctx;
use crate::config::{SYSTEM_NAMESPACES, Safety};
use crate::spec::raw::*;

/// Where to change the lists, in every diagnostic of this module.
const CONFIG_HELP: &str = "the daemon config (berth.toml), section [safety]";

/// Checks `raw` against the config's `[safety]` lists; `namespace` is where the app goes (the
/// spec's own or the configured default, which the config already checked).
pub(super) fn reach(cx: &mut Ctx<'_>, raw: &RawApp, namespace: &str) {
    let safety = &cx.input.config.safety;
    let mut found = Vec::new();
    if let Some(ns) = &raw.namespace
        && !safety.allows_namespace(ns.get_ref())
    {
        let value = ns.get_ref();
        let label = if SYSTEM_NAMESPACES.contains(&value.as_str()) {
            format!(
                "`{value}` belongs to the cluster itself; only an exact entry in `safety.namespaces` allows it"
            )
        } else {
            format!("matches none of {}", listed(&safety.namespaces))
        };
        found.push(
            cx.error(
                "namespace-not-allowed",
                ns.span(),
                format!("namespace `{value}` is not allowed here"),
            )
            .label(label)
            .help(format!(
                "use a namespace the config allows, or add `\"{value}\"` to `namespaces` in {CONFIG_HELP}"
            )),
        );
    }
    if raw.namespace.is_none() && !safety.allows_namespace(namespace) {
        found.push(
            crate::spec::Diagnostic::error(
                cx.input.path,
                "namespace-not-allowed",
                format!(
                    "the spec sets no `namespace`, and the default one, `{namespace}`, is not allowed here"
                ),
            )
            .help(format!(
                "set `namespace` to one of {}, or set `defaults.namespace` in {CONFIG_HELP}",
                listed(&safety.namespaces)
            )),
        );
    }
    if let Some(volumes) = &raw.volumes {
        for (name, volume) in &volumes.get_ref().0 {
            let Some(path) = &volume.get_ref().host_path else {
                continue;
            };
            // Relative paths have their own error (volumes.rs); this rule is about where.
            if !path.get_ref().starts_with('/') || safety.allows_host_path(path.get_ref()) {
                continue;
            }
            found.push(host_path_error(cx, safety, name.get_ref(), path));
        }
    }
    if let Some(account) = &raw.service_account
        && !safety.allows_service_account(namespace, account.get_ref())
    {
        let value = account.get_ref();
        let label = if safety.service_accounts.is_empty() {
            "no ServiceAccount besides `default` is allowed".to_string()
        } else {
            format!(
                "`{namespace}/{value}` matches none of {}",
                listed(&safety.service_accounts)
            )
        };
        found.push(
            cx.error(
                "service-account-not-allowed",
                account.span(),
                format!("ServiceAccount `{value}` is not allowed here"),
            )
            .label(label)
            .help(format!(
                "remove `service_account` to run as `default`, or add `\"{value}\"` (or `\"{namespace}/{value}\"`) to `service_accounts` in {CONFIG_HELP}"
            )),
        );
    }
    for d in found {
        cx.push(d);
    }
}

fn host_path_error(
    cx: &Ctx<'_>,
    safety: &Safety,
    volume: &str,
    path: &Spanned<String>,
) -> crate::spec::Diagnostic {
    let value = path.get_ref();
    let label = if value.split('/').any(|part| part == "..") {
        "`..` could reach outside any allowed directory".to_string()
    } else if safety.host_path.is_empty() {
        "no host path is allowed (`safety.host_path` is empty)".to_string()
    } else {
        format!("not under {}", listed(&safety.host_path))
    };
    cx.error(
        "host-path-not-allowed",
        path.span(),
        format!("volume `{volume}`: host path `{value}` is not allowed here"),
    )
    .label(label)
    .help(format!(
        "use a claim (`size = \"10Gi\"`) or another volume kind, or add the directory to `host_path` in {CONFIG_HELP}"
    ))
}

/// `a`, `b` and `c` as `` `a`, `b`, `c` ``; "nothing" for an empty list.
fn listed(items: &[String]) -> String {
    if items.is_empty() {
        return "nothing (the list is empty)".into();
    }
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::spec::{Diagnostic, check_source};
    use std::path::Path;

    const APP: &str = "[containers.app]\nimage = \"busybox:1.36\"\n";

    /// The errors of `spec` under the config text `config`, as (rule, line:col, label).
    fn errors(config: &str, spec: &str) -> Vec<(String, String, String)> {
        let config = Config::parse(Path::new("berth.toml"), config)
            .unwrap_or_else(|d| panic!("config: {d:?}"));
        let checked = check_source(Path::new("app.toml"), Path::new("app.toml"), spec, &config);
        checked
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d: &Diagnostic| {
                let at = d
                    .location
                    .as_ref()
                    .map(|l| format!("{}:{}", l.line, l.column))
                    .unwrap_or_default();
                (d.rule.to_string(), at, d.label.clone())
            })
            .collect()
    }

    fn rules(config: &str, spec: &str) -> Vec<String> {
        errors(config, spec).into_iter().map(|e| e.0).collect()
    }

    #[test]
    fn system_namespaces_are_refused_by_default() {
        for ns in ["kube-system", "kube-public", "kube-node-lease"] {
            let e = errors("", &format!("namespace = \"{ns}\"\n{APP}"));
            assert_eq!(e.len(), 1, "{ns}: {e:?}");
            assert_eq!(e[0].0, "namespace-not-allowed");
            assert_eq!(e[0].1, "1:13", "points at the value");
            assert!(e[0].2.contains("belongs to the cluster itself"), "{e:?}");
        }
        assert!(rules("", &format!("namespace = \"team-a\"\n{APP}")).is_empty());
    }

    #[test]
    fn namespace_globs_allow_and_deny() {
        let config =
            "[safety]\nnamespaces = [\"default\", \"team-*\", \"db-?\", \"kube-system\"]\n";
        for ok in ["team-a", "team-a-b", "db-1", "kube-system"] {
            assert!(
                rules(config, &format!("namespace = \"{ok}\"\n{APP}")).is_empty(),
                "{ok}"
            );
        }
        for bad in ["teams", "db-10", "other", "kube-public"] {
            assert_eq!(
                rules(config, &format!("namespace = \"{bad}\"\n{APP}")),
                ["namespace-not-allowed"],
                "{bad}"
            );
        }
        // A spec without `namespace` goes to the default, which must be allowed too.
        assert!(rules(config, APP).is_empty());
        assert_eq!(
            rules("[safety]\nnamespaces = [\"team-*\"]\n", APP),
            ["namespace-not-allowed"]
        );
        let e = errors(config, &format!("namespace = \"other\"\n{APP}"));
        assert!(e[0].2.contains("`team-*`"), "names the patterns: {e:?}");
    }

    #[test]
    fn host_paths_need_an_allowed_prefix() {
        let spec = |path: &str| {
            format!(
                "[containers.app]\nimage = \"busybox:1.36\"\nmounts = {{ host = \"/host\" }}\n\n[volumes.host]\nhost_path = \"{path}\"\n"
            )
        };
        // Default: none.
        let e = errors("", &spec("/"));
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].0, "host-path-not-allowed");
        assert_eq!(e[0].1, "6:13");
        assert!(e[0].2.contains("no host path is allowed"), "{e:?}");

        let config = "[safety]\nhost_path = [\"/srv/shared\", \"/var/log/\"]\n";
        for ok in ["/srv/shared", "/srv/shared/a", "/var/log/app"] {
            assert!(rules(config, &spec(ok)).is_empty(), "{ok}");
        }
        for bad in ["/", "/srv", "/srv/sharedx", "/etc", "/srv/shared/../../etc"] {
            assert_eq!(
                rules(config, &spec(bad)),
                ["host-path-not-allowed"],
                "{bad}"
            );
        }
        // A relative path has its own error, not a second one here.
        assert_eq!(rules(config, &spec("srv/shared")), ["volume-source"]);
    }

    #[test]
    fn service_accounts_need_an_entry() {
        let spec =
            |ns: &str, sa: &str| format!("namespace = \"{ns}\"\nservice_account = \"{sa}\"\n{APP}");
        let e = errors("", &spec("db", "mysql"));
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].0, "service-account-not-allowed");
        assert_eq!(e[0].1, "2:19");
        assert!(
            rules("", &spec("db", "default")).is_empty(),
            "default is always allowed"
        );

        let config = "[safety]\nservice_accounts = [\"mysql\", \"team-a/*\", \"*-reader\"]\n";
        for (ns, sa) in [("db", "mysql"), ("team-a", "admin"), ("x", "logs-reader")] {
            assert!(rules(config, &spec(ns, sa)).is_empty(), "{ns}/{sa}");
        }
        for (ns, sa) in [("team-b", "admin"), ("db", "cluster-admin")] {
            assert_eq!(
                rules(config, &spec(ns, sa)),
                ["service-account-not-allowed"],
                "{ns}/{sa}"
            );
        }
    }

    #[test]
    fn every_reach_problem_of_a_spec_is_reported_at_once() {
        let spec = "namespace = \"kube-system\"\nservice_account = \"admin\"\n[containers.app]\nimage = \"busybox:1.36\"\nmounts = { root = \"/host\" }\n[volumes.root]\nhost_path = \"/\"\n";
        assert_eq!(
            rules("", spec),
            [
                "namespace-not-allowed",
                "service-account-not-allowed",
                "host-path-not-allowed"
            ],
            "in file order"
        );
    }
}
