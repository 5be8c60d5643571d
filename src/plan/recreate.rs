//! Whether an app's immutable StatefulSet changes may be carried out by a recreate: the rules
//! that gate it, decided before anything is sent. Pure: the planner passes the changes found by
//! [`super::immutable_changes`] and what the operator allowed.

use std::path::Path;

use super::ImmutableChange;

/// What the operator allowed, for one app (spec fields or flags).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allowed {
    /// `allow_recreate = true` or `--allow-recreate`.
    pub recreate: bool,
    /// `abandon_claims = true` or `--abandon-claims`.
    pub abandon_claims: bool,
}

/// The live StatefulSet, as far as the gate needs it.
#[derive(Debug, Clone, Copy)]
pub struct LiveSet<'a> {
    pub name: &'a str,
    pub replicas: i64,
}

/// The outcome for one app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// No immutable change: an ordinary in-place update (or nothing).
    InPlace,
    /// Delete the StatefulSet orphaning its pods and create it anew.
    Recreate {
        reasons: Vec<String>,
        /// `(volume, new size)` of volumes whose PVCs are expanded first.
        expand: Vec<(String, String)>,
        /// The pods must be restarted one at a time to take the change.
        restart_pods: bool,
        /// Claims left behind (allowed with `abandon_claims`), shown in the plan.
        abandoned: Vec<String>,
    },
    /// Not carried out; `berth diff` shows the reason and exits 3.
    Blocked { reason: String },
}

/// Decides the recreate for `changes` of the live set `live`, whose spec is `spec_file`.
pub fn gate(
    changes: Vec<ImmutableChange>,
    live: LiveSet,
    allowed: Allowed,
    spec_file: &Path,
) -> Gate {
    if changes.is_empty() {
        return Gate::InPlace;
    }
    if let Some(impossible) = changes.iter().find(|c| !c.recreate_helps) {
        return Gate::Blocked {
            reason: impossible.reason.clone(),
        };
    }
    let abandoned = abandoned_claims(&changes, live);
    if !abandoned.is_empty() && !allowed.abandon_claims {
        let what: Vec<&str> = changes
            .iter()
            .filter(|c| c.abandons.is_some())
            .map(|c| c.reason.as_str())
            .collect();
        return Gate::Blocked {
            reason: format!(
                "needs recreate onto new, empty claims: {}. The pods would start without the \
                 data of {}, which stay behind unused. If that is really wanted, set \
                 `abandon_claims = true` and `allow_recreate = true` in {} or pass \
                 --abandon-claims --allow-recreate",
                what.join("; "),
                abandoned.join(", "),
                spec_file.display()
            ),
        };
    }
    let reasons: Vec<String> = changes.iter().map(|c| c.reason.clone()).collect();
    if !allowed.recreate {
        return Gate::Blocked {
            reason: format!(
                "needs recreate: {}. berth can recreate the StatefulSet without an outage (pods \
                 and volumes are kept); allow it with `allow_recreate = true` in {} or \
                 --allow-recreate",
                reasons.join("; "),
                spec_file.display()
            ),
        };
    }
    Gate::Recreate {
        restart_pods: changes.iter().any(|c| c.restarts_pods),
        expand: changes.into_iter().filter_map(|c| c.expand).collect(),
        reasons,
        abandoned,
    }
}

/// The claims of the live set's pods whose templates go (`<volume>-<set>-<ordinal>`).
fn abandoned_claims(changes: &[ImmutableChange], live: LiveSet) -> Vec<String> {
    changes
        .iter()
        .filter_map(|c| c.abandons.as_deref())
        .flat_map(|volume| (0..live.replicas.max(1)).map(move |i| (volume, i)))
        .map(|(volume, i)| format!("{volume}-{}-{i}", live.name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::immutable_changes;
    use serde_json::{Value, json};

    fn sts(service: &str, volumes: &[(&str, &str)]) -> Value {
        let templates: Vec<Value> = volumes
            .iter()
            .map(|(name, size)| {
                json!({"metadata": {"name": name}, "spec": {"accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": size}}}})
            })
            .collect();
        json!({"spec": {"serviceName": service, "podManagementPolicy": "OrderedReady",
            "selector": {"matchLabels": {"app.kubernetes.io/name": "db"}},
            "volumeClaimTemplates": templates}})
    }

    const LIVE: LiveSet = LiveSet {
        name: "db",
        replicas: 2,
    };
    const BOTH: Allowed = Allowed {
        recreate: true,
        abandon_claims: true,
    };

    fn decide(live: &Value, want: &Value, allowed: Allowed) -> Gate {
        gate(
            immutable_changes(live, want),
            LIVE,
            allowed,
            Path::new("apps/db.toml"),
        )
    }

    #[test]
    fn no_immutable_change_is_in_place() {
        let s = sts("db-headless", &[("data", "1Gi")]);
        assert_eq!(decide(&s, &s, Allowed::default()), Gate::InPlace);
    }

    #[test]
    fn a_recreate_needs_allow_recreate_and_says_where_to_set_it() {
        let (live, want) = (
            sts("db-headless", &[("data", "1Gi")]),
            sts("db-peers", &[("data", "2Gi")]),
        );
        match decide(&live, &want, Allowed::default()) {
            Gate::Blocked { reason } => {
                assert!(reason.starts_with("needs recreate: headless:"), "{reason}");
                assert!(reason.contains("apps/db.toml"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let allowed = Allowed {
            recreate: true,
            ..Allowed::default()
        };
        match decide(&live, &want, allowed) {
            Gate::Recreate {
                expand,
                restart_pods,
                abandoned,
                ..
            } => {
                assert_eq!(expand, vec![("data".to_string(), "2Gi".to_string())]);
                assert!(restart_pods, "a new headless name restarts the pods");
                assert!(abandoned.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_renamed_volume_needs_its_own_opt_in_even_with_allow_recreate() {
        let (live, want) = (
            sts("db-headless", &[("data", "1Gi")]),
            sts("db-headless", &[("store", "1Gi")]),
        );
        let allowed = Allowed {
            recreate: true,
            ..Allowed::default()
        };
        match decide(&live, &want, allowed) {
            Gate::Blocked { reason } => {
                assert!(reason.contains("new, empty claims"), "{reason}");
                assert!(reason.contains("data-db-0, data-db-1"), "{reason}");
                assert!(reason.contains("--abandon-claims"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        match decide(&live, &want, BOTH) {
            Gate::Recreate {
                abandoned,
                restart_pods,
                ..
            } => {
                assert_eq!(abandoned, vec!["data-db-0", "data-db-1"]);
                assert!(!restart_pods);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn abandoning_claims_alone_does_not_allow_a_recreate() {
        let (live, want) = (
            sts("db-headless", &[("data", "1Gi")]),
            sts("db-headless", &[]),
        );
        let allowed = Allowed {
            abandon_claims: true,
            ..Allowed::default()
        };
        match decide(&live, &want, allowed) {
            Gate::Blocked { reason } => assert!(reason.starts_with("needs recreate:"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_shrinking_volume_is_refused_whatever_is_allowed() {
        let (live, want) = (
            sts("db-headless", &[("data", "2Gi")]),
            sts("db-headless", &[("data", "1Gi")]),
        );
        match decide(&live, &want, BOTH) {
            Gate::Blocked { reason } => assert!(reason.contains("cannot shrink"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
}
