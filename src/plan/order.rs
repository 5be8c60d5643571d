//! Ordering between apps (`after = ["zk/zookeeper"]`): which app's work waits for which. Pure.
//! (A spec directory whose `after` forms a cycle does not load: [`crate::spec::dependencies`].)
//!
//! Creates and updates go after the apps they name; removals go the other way round (Kafka is
//! removed before the ZooKeeper it needs). Work that waits for nothing goes in the first wave.

use std::collections::{BTreeMap, BTreeSet};

use crate::spec::AppKey;

/// One app's part in the ordering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The apps it names in `after` (for a removal: what its last spec named).
    pub after: Vec<AppKey>,
    /// Its work this run is a removal.
    pub removal: bool,
}

/// The apps with work, in waves: every app of a wave waits only for apps of earlier waves.
/// `nodes` holds the apps with work this run; apps named in `after` without work this run are
/// not waited for here (the caller checks that they are healthy). Apps caught in a cycle (only
/// possible through the `after` recorded on live objects) end up together in a last wave.
pub fn waves(nodes: &BTreeMap<AppKey, Node>) -> Vec<Vec<AppKey>> {
    // waits_for[a] = apps with work that must be done before a.
    let mut waits_for: BTreeMap<&AppKey, BTreeSet<&AppKey>> =
        nodes.keys().map(|k| (k, BTreeSet::new())).collect();
    for (key, node) in nodes {
        for dep in &node.after {
            let Some(dep_node) = nodes.get(dep) else {
                continue;
            };
            match (node.removal, dep_node.removal) {
                // Both stay: the dependency first.
                (false, false) => {
                    if let Some(w) = waits_for.get_mut(key) {
                        w.insert(dep);
                    }
                }
                // Both go: the dependent first.
                (true, true) => {
                    if let Some(w) = waits_for.get_mut(dep) {
                        w.insert(key);
                    }
                }
                // One goes, one stays: they do not wait for each other.
                _ => {}
            }
        }
    }
    let mut done: BTreeSet<&AppKey> = BTreeSet::new();
    let mut out = Vec::new();
    while done.len() < nodes.len() {
        let wave: Vec<&AppKey> = waits_for
            .iter()
            .filter(|(k, deps)| !done.contains(*k) && deps.iter().all(|d| done.contains(d)))
            .map(|(k, _)| *k)
            .collect();
        if wave.is_empty() {
            // A cycle: what is left goes together rather than never.
            out.push(
                nodes
                    .keys()
                    .filter(|k| !done.contains(k))
                    .cloned()
                    .collect(),
            );
            break;
        }
        done.extend(wave.iter().copied());
        out.push(wave.into_iter().cloned().collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> AppKey {
        let (ns, name) = s.split_once('/').expect("ns/name");
        AppKey::new(ns, name)
    }

    fn node(after: &[&str], removal: bool) -> Node {
        Node {
            after: after.iter().map(|s| key(s)).collect(),
            removal,
        }
    }

    fn names(waves: &[Vec<AppKey>]) -> Vec<Vec<String>> {
        waves
            .iter()
            .map(|w| w.iter().map(ToString::to_string).collect())
            .collect()
    }

    #[test]
    fn creates_go_after_what_they_name_and_removals_before() {
        let nodes = BTreeMap::from([
            (key("zk/zookeeper"), node(&[], false)),
            (key("kafka/kafka"), node(&["zk/zookeeper"], false)),
            (key("web/app"), node(&["kafka/kafka", "db/mysql"], false)),
            (key("db/mysql"), node(&[], false)),
        ]);
        assert_eq!(
            names(&waves(&nodes)),
            [
                vec!["db/mysql", "zk/zookeeper"],
                vec!["kafka/kafka"],
                vec!["web/app"]
            ]
        );
        let removals = BTreeMap::from([
            (key("zk/zookeeper"), node(&[], true)),
            (key("kafka/kafka"), node(&["zk/zookeeper"], true)),
        ]);
        assert_eq!(
            names(&waves(&removals)),
            [vec!["kafka/kafka"], vec!["zk/zookeeper"]]
        );
    }

    #[test]
    fn an_app_named_but_without_work_is_not_waited_for_here() {
        let nodes = BTreeMap::from([(key("kafka/kafka"), node(&["zk/zookeeper"], false))]);
        assert_eq!(names(&waves(&nodes)), [vec!["kafka/kafka"]]);
        // A removal and an update do not order each other.
        let mixed = BTreeMap::from([
            (key("zk/zookeeper"), node(&[], true)),
            (key("kafka/kafka"), node(&["zk/zookeeper"], false)),
        ]);
        assert_eq!(names(&waves(&mixed)).len(), 1);
    }

    #[test]
    fn a_cycle_ends_in_one_last_wave_instead_of_never() {
        let nodes = BTreeMap::from([
            (key("a/a"), node(&["b/b"], false)),
            (key("b/b"), node(&["a/a"], false)),
            (key("c/c"), node(&[], false)),
        ]);
        assert_eq!(names(&waves(&nodes)), [vec!["c/c"], vec!["a/a", "b/b"]]);
    }
}
