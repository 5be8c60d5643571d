//! The rules of `after` across files: every app named exists in the directory, and no apps
//! wait for each other in a circle. An app that breaks either rule is refused like a broken
//! spec (its live app is left as it is).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{AppKey, Checked, Diagnostic};

/// Every cycle of `after`, each as the apps along it, starting at its smallest key and ending
/// there again (`a → b → a`). Each app is reported in at most one cycle.
pub(super) fn cycles(after: &BTreeMap<AppKey, Vec<AppKey>>) -> Vec<Vec<AppKey>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit<'a>(
        key: &'a AppKey,
        after: &'a BTreeMap<AppKey, Vec<AppKey>>,
        marks: &mut BTreeMap<&'a AppKey, Mark>,
        path: &mut Vec<&'a AppKey>,
        found: &mut Vec<Vec<AppKey>>,
    ) {
        match marks.get(key) {
            Some(Mark::Done) => return,
            Some(Mark::Open) => {
                if let Some(start) = path.iter().position(|k| *k == key) {
                    let mut cycle: Vec<AppKey> =
                        path[start..].iter().map(|k| (*k).clone()).collect();
                    let smallest = cycle
                        .iter()
                        .enumerate()
                        .min_by(|a, b| a.1.cmp(b.1))
                        .map_or(0, |(i, _)| i);
                    cycle.rotate_left(smallest);
                    let first = cycle[0].clone();
                    cycle.push(first);
                    found.push(cycle);
                }
                return;
            }
            None => {}
        }
        marks.insert(key, Mark::Open);
        path.push(key);
        for dep in after.get(key).into_iter().flatten() {
            if after.contains_key(dep) {
                visit(dep, after, marks, path, found);
            }
        }
        path.pop();
        marks.insert(key, Mark::Done);
    }
    let mut marks = BTreeMap::new();
    let mut found = Vec::new();
    for key in after.keys() {
        visit(key, after, &mut marks, &mut Vec::new(), &mut found);
    }
    found
}

/// Adds the diagnostics of `after` to `checked` and refuses the apps that break a rule.
pub(super) fn check(checked: &mut [(PathBuf, Checked)], default_namespace: &str) {
    let known: std::collections::BTreeSet<AppKey> = checked
        .iter()
        .map(|(_, c)| match &c.app {
            Some(app) => app.key(),
            // A broken file still declares its app: naming it is not a typo.
            None => AppKey::new(
                c.namespace_hint.as_deref().unwrap_or(default_namespace),
                c.name_hint.clone(),
            ),
        })
        .collect();
    let mut refused: Vec<(usize, Diagnostic)> = Vec::new();
    for (i, (path, c)) in checked.iter().enumerate() {
        let Some(app) = &c.app else { continue };
        for dep in &app.after {
            if known.contains(&dep.key()) {
                continue;
            }
            let mut d = Diagnostic::error(
                path,
                "after-unknown",
                format!(
                    "`after` names `{}`, which no spec in the directory declares",
                    dep.key()
                ),
            )
            .label("no such app")
            .help("name an app of this directory as NAMESPACE/NAME, or take the entry out");
            d.location = dep.at.clone();
            refused.push((i, d));
        }
    }
    let after: BTreeMap<AppKey, Vec<AppKey>> = checked
        .iter()
        .filter_map(|(_, c)| c.app.as_ref())
        .map(|app| (app.key(), app.after.iter().map(|d| d.key()).collect()))
        .collect();
    for cycle in cycles(&after) {
        let shown = cycle
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" → ");
        for pair in cycle.windows(2) {
            let (from, to) = (&pair[0], &pair[1]);
            let Some(i) = checked
                .iter()
                .position(|(_, c)| c.app.as_ref().is_some_and(|a| &a.key() == from))
            else {
                continue;
            };
            let at = checked[i]
                .1
                .app
                .as_ref()
                .and_then(|a| a.after.iter().find(|d| &d.key() == to))
                .and_then(|d| d.at.clone());
            let mut d = Diagnostic::error(
                &checked[i].0,
                "after-cycle",
                format!("apps wait for each other: {shown}"),
            )
            .label("part of the circle")
            .help("take one of these `after` entries out: an app cannot start before itself");
            d.location = at;
            refused.push((i, d));
        }
    }
    for (i, d) in refused {
        checked[i].1.diagnostics.push(d);
        checked[i].1.app = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> AppKey {
        let (ns, name) = s.split_once('/').expect("ns/name");
        AppKey::new(ns, name)
    }

    #[test]
    fn cycles_are_found_once_each_from_their_smallest_app() {
        let after = BTreeMap::from([
            (key("x/c"), vec![key("x/a")]),
            (key("x/a"), vec![key("x/b")]),
            (key("x/b"), vec![key("x/c")]),
            (key("x/d"), vec![key("x/a")]),
            (key("x/e"), vec![key("x/e")]),
            (key("x/f"), vec![key("zk/unknown")]),
        ]);
        let found: Vec<Vec<String>> = cycles(&after)
            .iter()
            .map(|c| c.iter().map(ToString::to_string).collect())
            .collect();
        assert_eq!(
            found,
            [vec!["x/a", "x/b", "x/c", "x/a"], vec!["x/e", "x/e"]]
        );
    }
}
