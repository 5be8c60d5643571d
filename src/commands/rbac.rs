//! `berth rbac`: the namespaced variant of config/rbac.yaml, generated from the daemon config,
//! for clusters where berth is granted nothing cluster-wide: a Role and RoleBinding `berth` in
//! each namespace where berth runs apps, and a Role and RoleBinding `berth-leases` in berth's own
//! namespace(s) (`safety.namespace`, `leader_election.namespace`).
//!
//! Needs no cluster: the output is YAML for `kubectl apply -f -`. Which namespaces: every entry
//! of `safety.namespaces` that is a plain name, the default namespace when the list allows it,
//! and any `--app-namespace`. When every entry is a plain name, berth lists and watches only in
//! those namespaces ([`Listing`]) and the output is all it needs. A pattern (`team-*`, the
//! default `*`) makes berth list across the cluster, and cannot be expanded without asking the
//! cluster: the output then adds the one cluster-wide grant those lists need (ClusterRole
//! `berth-list`: list and watch of the three kinds berth writes) and names the patterns in its
//! header for the reader to name their namespaces.

use std::collections::BTreeSet;

use super::{Exit, print};
use crate::cluster::Listing;
use crate::config::Config;
use crate::spec::names;

#[derive(Debug, clap::Args)]
pub struct RbacArgs {
    /// Also grant this namespace (repeatable); it must be allowed by `safety.namespaces`.
    #[arg(long = "app-namespace", value_name = "NAME")]
    app_namespaces: Vec<String>,
    /// The user berth authenticates as (default `berth`, as in config/rbac.yaml).
    #[arg(long, value_name = "NAME", conflicts_with = "service_account")]
    user: Option<String>,
    /// Bind a ServiceAccount instead of a user, given as NAMESPACE/NAME.
    #[arg(long, value_name = "NAMESPACE/NAME")]
    service_account: Option<String>,
}

/// One RBAC rule: API groups, resources, verbs, and why berth needs them.
struct Rule {
    groups: &'static [&'static str],
    resources: &'static [&'static str],
    verbs: &'static [&'static str],
    why: &'static str,
}

const ALL_WRITES: &[&str] = &[
    "get", "list", "watch", "create", "update", "patch", "delete",
];

/// What berth does in a namespace where it runs apps: the union of config/rbac.yaml's ClusterRole
/// `berth` and ClusterRole `berth-pods` (a unit test keeps the two files of rules in step).
const APP_RULES: &[Rule] = &[
    Rule {
        groups: &["apps"],
        resources: &["statefulsets"],
        verbs: ALL_WRITES,
        why: "the apps",
    },
    Rule {
        groups: &[""],
        resources: &["services"],
        verbs: ALL_WRITES,
        why: "headless and access Services",
    },
    Rule {
        groups: &["policy"],
        resources: &["poddisruptionbudgets"],
        verbs: ALL_WRITES,
        why: "disruption budgets",
    },
    Rule {
        groups: &[""],
        resources: &["pods"],
        verbs: &["get", "list", "watch", "patch"],
        why: "watched in removals and rollouts; labelled for a recreate's restarts",
    },
    Rule {
        groups: &[""],
        resources: &["pods/eviction"],
        verbs: &["create"],
        why: "restarts that honour disruption budgets",
    },
    Rule {
        groups: &[""],
        resources: &["persistentvolumeclaims"],
        verbs: &["get", "list", "watch", "patch"],
        why: "listed for reports, patched to expand; never deleted",
    },
    Rule {
        groups: &["", "events.k8s.io"],
        resources: &["events"],
        verbs: &["list", "create", "patch"],
        why: "what berth did, on the app's StatefulSet; the Warning events that say why an app is degraded",
    },
];

/// What berth lists across the cluster when `safety.namespaces` has a pattern: the objects it
/// owns (the inventory, the daemon's watches, `import -A`), every kind of [`crate::cluster::Kind`].
const LIST_RULES: &[Rule] = &[
    Rule {
        groups: &["apps"],
        resources: &["statefulsets"],
        verbs: &["list", "watch"],
        why: "the apps berth owns, found by label in every namespace",
    },
    Rule {
        groups: &[""],
        resources: &["services"],
        verbs: &["list", "watch"],
        why: "the Services berth owns, found by label in every namespace",
    },
    Rule {
        groups: &["policy"],
        resources: &["poddisruptionbudgets"],
        verbs: &["list", "watch"],
        why: "the disruption budgets berth owns, found by label in every namespace",
    },
];

/// What berth does in its own namespace: the removal ledger and the leader lease.
const LEASE_RULES: &[Rule] = &[Rule {
    groups: &["coordination.k8s.io"],
    resources: &["leases"],
    verbs: &["get", "list", "watch", "create", "update", "patch"],
    why: "the removal ledger and leader election",
}];

pub(crate) fn exec(args: &RbacArgs, config: &Config) -> anyhow::Result<Exit> {
    match generate(args, config) {
        Ok(yaml) => {
            print(yaml, Exit::Ok)?;
            Ok(Exit::Ok)
        }
        Err(problems) => {
            for p in problems {
                eprintln!("error: {p}");
            }
            Ok(Exit::Error)
        }
    }
}

/// The YAML, or every problem with the arguments.
fn generate(args: &RbacArgs, config: &Config) -> Result<String, Vec<String>> {
    let mut problems = Vec::new();
    let subject = match (&args.service_account, &args.user) {
        (Some(sa), _) => match sa.split_once('/') {
            Some((ns, name))
                if names::dns1123_label(ns).is_empty()
                    && names::dns1123_subdomain(name).is_empty() =>
            {
                format!(
                    "kind: ServiceAccount\n    name: {}\n    namespace: {}",
                    quoted(name),
                    quoted(ns)
                )
            }
            _ => {
                problems.push(format!(
                    "--service-account `{sa}` is not NAMESPACE/NAME (e.g. berth/berth)"
                ));
                String::new()
            }
        },
        (None, user) => format!(
            "apiGroup: rbac.authorization.k8s.io\n    kind: User\n    name: {}",
            quoted(user.as_deref().unwrap_or("berth"))
        ),
    };
    let safety = &config.safety;
    let (literal, patterns): (Vec<&String>, Vec<&String>) = safety
        .namespaces
        .iter()
        .partition(|p| !p.contains(['*', '?']));
    let listing = Listing::from_allowed(&safety.namespaces);
    let mut app_namespaces: BTreeSet<&str> = literal.iter().map(|s| s.as_str()).collect();
    // A default the list does not allow receives no app: each spec that lands there is refused.
    if safety.allows_namespace(&config.defaults.namespace) {
        app_namespaces.insert(config.defaults.namespace.as_str());
    }
    for ns in &args.app_namespaces {
        let errs = names::dns1123_label(ns);
        if !errs.is_empty() {
            problems.push(format!(
                "--app-namespace `{ns}` is not a namespace name: {}",
                errs.join("; ")
            ));
        } else if !safety.allows_namespace(ns) {
            problems.push(format!(
                "--app-namespace `{ns}` is not allowed by `safety.namespaces` in the daemon config"
            ));
        } else {
            app_namespaces.insert(ns);
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let own: BTreeSet<&str> = [
        config.safety.namespace.as_str(),
        config.leader_election.namespace.as_str(),
    ]
    .into();

    let mut out = String::from(
        "# berth's rights, namespace by namespace (generated by `berth rbac` from the daemon config).\n",
    );
    out.push_str(match listing {
        Listing::Namespaces(_) => {
            "# Nothing here is cluster-wide: berth lists, watches and writes only in the namespaces\n\
             # below, the ones safety.namespaces names.\n"
        }
        Listing::AllNamespaces => {
            "# berth writes only in the namespaces below. safety.namespaces has patterns, so berth\n\
             # lists its objects across the cluster: ClusterRole `berth-list` grants that (list and\n\
             # watch, nothing else). Name every namespace in safety.namespaces to need no\n\
             # cluster-wide grant at all.\n"
        }
    });
    out.push_str(&format!(
        "# Apps: {}. Leases: {}.\n",
        app_namespaces
            .iter()
            .copied()
            .collect::<Vec<_>>()
            .join(", "),
        own.iter().copied().collect::<Vec<_>>().join(", ")
    ));
    if !patterns.is_empty() {
        out.push_str(&format!(
            "# Not expanded: the patterns {} of safety.namespaces; name each namespace they\n\
             # stand for with --app-namespace.\n",
            patterns
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if listing == Listing::AllNamespaces {
        out.push_str(&role("ClusterRole", "berth-list", None, LIST_RULES));
        out.push_str(&binding("ClusterRole", "berth-list", None, &subject));
    }
    for ns in &app_namespaces {
        out.push_str(&role("Role", "berth", Some(ns), APP_RULES));
        out.push_str(&binding("Role", "berth", Some(ns), &subject));
    }
    for ns in &own {
        out.push_str(&role("Role", "berth-leases", Some(ns), LEASE_RULES));
        out.push_str(&binding("Role", "berth-leases", Some(ns), &subject));
    }
    Ok(out)
}

/// The metadata lines of an RBAC object: its name, its namespace unless cluster-wide, its label.
fn metadata(name: &str, namespace: Option<&str>) -> String {
    let namespace = namespace.map_or(String::new(), |ns| format!("  namespace: {ns}\n"));
    format!("metadata:\n  name: {name}\n{namespace}  labels:\n    app.kubernetes.io/name: berth\n")
}

/// A Role (`kind` "Role", in `namespace`) or ClusterRole (namespace None).
fn role(kind: &str, name: &str, namespace: Option<&str>, rules: &[Rule]) -> String {
    let list = |items: &[&str]| {
        items
            .iter()
            .map(|i| quoted(i))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = format!(
        "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: {kind}\n{}rules:\n",
        metadata(name, namespace)
    );
    for r in rules {
        out.push_str(&format!(
            "  # {}\n  - apiGroups: [{}]\n    resources: [{}]\n    verbs: [{}]\n",
            r.why,
            list(r.groups),
            list(r.resources),
            list(r.verbs)
        ));
    }
    out
}

/// The binding of the `role_kind` `name` to `subject`: a RoleBinding in `namespace`, or a
/// ClusterRoleBinding when None.
fn binding(role_kind: &str, name: &str, namespace: Option<&str>, subject: &str) -> String {
    let kind = if namespace.is_some() {
        "RoleBinding"
    } else {
        "ClusterRoleBinding"
    };
    format!(
        "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: {kind}\n{}roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: {role_kind}\n  name: {name}\nsubjects:\n  - {subject}\n",
        metadata(name, namespace)
    )
}

/// A YAML scalar in double quotes (JSON's quoting is YAML's).
fn quoted(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::Path;

    type Grant = BTreeSet<(String, String, String)>;

    /// (group, resource, verb) of every rule in `docs` whose kind and name are listed.
    fn grants(docs: &[serde_json::Value], roles: &[(&str, &str)]) -> Grant {
        let mut out = Grant::new();
        for doc in docs {
            let (kind, name) = (
                doc["kind"].as_str().unwrap_or_default(),
                doc["metadata"]["name"].as_str().unwrap_or_default(),
            );
            if !roles.contains(&(kind, name)) {
                continue;
            }
            for rule in doc["rules"].as_array().into_iter().flatten() {
                let strings = |key: &str| -> Vec<String> {
                    rule[key]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                };
                for g in strings("apiGroups") {
                    for r in strings("resources") {
                        for v in strings("verbs") {
                            out.insert((g.clone(), r.clone(), v));
                        }
                    }
                }
            }
        }
        out
    }

    fn parse_yaml(text: &str) -> Vec<serde_json::Value> {
        serde_saphyr::from_multiple(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    fn args(app_namespaces: &[&str]) -> RbacArgs {
        RbacArgs {
            app_namespaces: app_namespaces.iter().map(|s| s.to_string()).collect(),
            user: None,
            service_account: None,
        }
    }

    fn config(text: &str) -> Config {
        Config::parse(Path::new("berth.toml"), text).unwrap_or_else(|d| panic!("{d:?}"))
    }

    #[test]
    fn the_namespaced_variant_grants_what_the_shipped_role_grants() {
        let shipped =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rbac.yaml"))
                .unwrap_or_else(|e| panic!("{e}"));
        let shipped = parse_yaml(&shipped);
        let generated = parse_yaml(
            &generate(&args(&[]), &Config::default()).unwrap_or_else(|e| panic!("{e:?}")),
        );
        assert_eq!(
            grants(&generated, &[("Role", "berth")]),
            grants(
                &shipped,
                &[("ClusterRole", "berth"), ("ClusterRole", "berth-pods")]
            ),
            "per app namespace"
        );
        assert_eq!(
            grants(&generated, &[("Role", "berth-leases")]),
            grants(&shipped, &[("Role", "berth-leases")]),
            "in berth's own namespace"
        );
    }

    /// (kind, namespace, name) of every document.
    fn placed(docs: &[serde_json::Value]) -> Vec<(String, String, String)> {
        docs.iter()
            .map(|d| {
                let field = |v: &serde_json::Value, default: &str| {
                    v.as_str().unwrap_or(default).to_string()
                };
                (
                    field(&d["kind"], ""),
                    field(&d["metadata"]["namespace"], "<cluster>"),
                    field(&d["metadata"]["name"], ""),
                )
            })
            .collect()
    }

    fn triples(items: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
        items
            .iter()
            .map(|(k, n, m)| (k.to_string(), n.to_string(), m.to_string()))
            .collect()
    }

    #[test]
    fn named_namespaces_get_one_role_and_binding_each_and_nothing_cluster_wide() {
        // The built-in default namespace is not in the list: nothing goes there, nothing granted.
        let c = config(
            "[safety]\nnamespace = \"berth\"\nnamespaces = [\"db\", \"cache\"]\n[leader_election]\nnamespace = \"berth\"\n",
        );
        let text = generate(&args(&[]), &c).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(text.contains("Nothing here is cluster-wide"), "{text}");
        let docs = parse_yaml(&text);
        assert_eq!(
            placed(&docs),
            triples(&[
                ("Role", "cache", "berth"),
                ("RoleBinding", "cache", "berth"),
                ("Role", "db", "berth"),
                ("RoleBinding", "db", "berth"),
                ("Role", "berth", "berth-leases"),
                ("RoleBinding", "berth", "berth-leases"),
            ])
        );
        assert_eq!(docs[1]["subjects"][0]["kind"], "User");
        assert_eq!(docs[1]["subjects"][0]["name"], "berth");
        assert_eq!(docs[1]["roleRef"]["kind"], "Role");
    }

    /// What berth lists and watches, namespace by namespace in this mode, is granted in each
    /// namespace: every kind the inventory and the daemon's caches ask for.
    #[test]
    fn named_namespaces_grant_the_lists_and_watches_berth_makes_there() {
        let c = config("[safety]\nnamespaces = [\"db\", \"cache\"]\n");
        let Listing::Namespaces(listed) = Listing::from_allowed(&c.safety.namespaces) else {
            panic!("plain names are listed one by one");
        };
        let docs = parse_yaml(&generate(&args(&[]), &c).unwrap_or_else(|e| panic!("{e:?}")));
        for ns in &listed {
            let in_ns: Vec<serde_json::Value> = docs
                .iter()
                .filter(|d| d["metadata"]["namespace"] == ns.as_str())
                .cloned()
                .collect();
            let granted = grants(&in_ns, &[("Role", "berth")]);
            for kind in crate::cluster::Kind::ALL {
                let resource = kind.resource();
                for verb in ["list", "watch"] {
                    let want = (resource.group.clone(), resource.plural.clone(), verb.into());
                    assert!(granted.contains(&want), "{want:?} in {ns}");
                }
            }
        }
    }

    #[test]
    fn a_pattern_adds_the_cluster_wide_lists_and_names_the_pattern() {
        let c = config(
            "[defaults]\nnamespace = \"db\"\n[safety]\nnamespace = \"berth\"\nnamespaces = [\"db\", \"cache\", \"team-*\"]\n[leader_election]\nnamespace = \"berth\"\n",
        );
        let text = generate(&args(&["team-a"]), &c).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(text.contains("`team-*`"), "the pattern is named:\n{text}");
        let docs = parse_yaml(&text);
        assert_eq!(
            placed(&docs),
            triples(&[
                ("ClusterRole", "<cluster>", "berth-list"),
                ("ClusterRoleBinding", "<cluster>", "berth-list"),
                ("Role", "cache", "berth"),
                ("RoleBinding", "cache", "berth"),
                ("Role", "db", "berth"),
                ("RoleBinding", "db", "berth"),
                ("Role", "team-a", "berth"),
                ("RoleBinding", "team-a", "berth"),
                ("Role", "berth", "berth-leases"),
                ("RoleBinding", "berth", "berth-leases"),
            ])
        );
        assert_eq!(docs[1]["roleRef"]["kind"], "ClusterRole");
        let listed: Grant = crate::cluster::Kind::ALL
            .iter()
            .flat_map(|k| {
                let r = k.resource();
                ["list", "watch"].map(|v| (r.group.clone(), r.plural.clone(), v.to_string()))
            })
            .collect();
        assert_eq!(
            grants(&docs, &[("ClusterRole", "berth-list")]),
            listed,
            "list and watch of the kinds berth owns, nothing else"
        );
    }

    #[test]
    fn a_service_account_subject_and_bad_arguments() {
        let a = RbacArgs {
            service_account: Some("ops/berth".into()),
            ..args(&[])
        };
        let docs = parse_yaml(&generate(&a, &Config::default()).unwrap_or_default());
        assert_eq!(
            docs[1]["subjects"][0],
            serde_json::json!({"kind": "ServiceAccount", "name": "berth", "namespace": "ops"})
        );
        let bad = RbacArgs {
            service_account: Some("berth".into()),
            ..args(&["kube-system", "Bad_Name"])
        };
        let problems = generate(&bad, &Config::default()).err().unwrap_or_default();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[1].contains("not allowed"), "{problems:?}");
    }
}
