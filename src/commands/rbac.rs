//! `berth rbac`: the namespaced variant of config/rbac.yaml, generated from the daemon config,
//! for clusters where berth is granted nothing cluster-wide: a Role and RoleBinding `berth` in
//! each namespace where berth runs apps, and a Role and RoleBinding `berth-leases` in berth's own
//! namespace(s) (`safety.namespace`, `leader_election.namespace`).
//!
//! Needs no cluster: the output is YAML for `kubectl apply -f -`. Which namespaces: the default
//! namespace, every entry of `safety.namespaces` that is a plain name, and any `--app-namespace`;
//! patterns (`team-*`) cannot be expanded without asking the cluster, so they are listed in the
//! output's header for the reader to name.

use std::collections::BTreeSet;

use super::{Exit, print};
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
    let mut app_namespaces: BTreeSet<&str> = BTreeSet::from([config.defaults.namespace.as_str()]);
    app_namespaces.extend(literal.iter().map(|s| s.as_str()));
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
        "# berth's rights, namespace by namespace (generated by `berth rbac` from the daemon config).\n\
         # Nothing here is cluster-wide: berth can write only in the namespaces below.\n",
    );
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
    for ns in &app_namespaces {
        out.push_str(&role("berth", ns, APP_RULES));
        out.push_str(&binding("berth", ns, &subject));
    }
    for ns in &own {
        out.push_str(&role("berth-leases", ns, LEASE_RULES));
        out.push_str(&binding("berth-leases", ns, &subject));
    }
    Ok(out)
}

fn role(name: &str, namespace: &str, rules: &[Rule]) -> String {
    let list = |items: &[&str]| {
        items
            .iter()
            .map(|i| quoted(i))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = format!(
        "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  labels:\n    app.kubernetes.io/name: berth\nrules:\n"
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

fn binding(name: &str, namespace: &str, subject: &str) -> String {
    format!(
        "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  labels:\n    app.kubernetes.io/name: berth\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: {name}\nsubjects:\n  - {subject}\n"
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

    #[test]
    fn one_role_and_binding_per_namespace_and_nothing_cluster_wide() {
        let c = config(
            "[defaults]\nnamespace = \"db\"\n[safety]\nnamespace = \"berth\"\nnamespaces = [\"db\", \"cache\", \"team-*\"]\n[leader_election]\nnamespace = \"berth\"\n",
        );
        let text = generate(&args(&["team-a"]), &c).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(text.contains("`team-*`"), "the pattern is named:\n{text}");
        let docs = parse_yaml(&text);
        let placed: Vec<(String, String, String)> = docs
            .iter()
            .map(|d| {
                (
                    d["kind"].as_str().unwrap_or_default().to_string(),
                    d["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or("<cluster>")
                        .to_string(),
                    d["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect();
        let want: Vec<(String, String, String)> = [
            ("Role", "cache", "berth"),
            ("RoleBinding", "cache", "berth"),
            ("Role", "db", "berth"),
            ("RoleBinding", "db", "berth"),
            ("Role", "team-a", "berth"),
            ("RoleBinding", "team-a", "berth"),
            ("Role", "berth", "berth-leases"),
            ("RoleBinding", "berth", "berth-leases"),
        ]
        .iter()
        .map(|(k, n, m)| (k.to_string(), n.to_string(), m.to_string()))
        .collect();
        assert_eq!(placed, want);
        assert_eq!(docs[1]["subjects"][0]["kind"], "User");
        assert_eq!(docs[1]["subjects"][0]["name"], "berth");
        assert_eq!(docs[1]["roleRef"]["kind"], "Role");
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
