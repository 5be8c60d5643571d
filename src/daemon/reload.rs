//! What a reload of the spec directory changes, decided from the last load, the new one and the
//! apps that have live objects. Pure: the daemon's loop does the loading and queues the result.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::spec::AppKey;
use crate::spec::{App, Loaded};

/// The outcome of comparing two loads.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Delta {
    /// Apps to look at again: their spec changed, appeared or went, their file broke or was
    /// fixed, or (for apps without a spec) a directory became unreadable or readable again.
    pub changed: BTreeSet<AppKey>,
    /// Apps whose spec went in this reload, each with the apps that arrived in it: together they
    /// may be a move, which the removal rules hold (see `PlanOptions::arrivals`).
    pub moves: BTreeMap<AppKey, BTreeSet<AppKey>>,
    /// Live apps without a spec: removals pending, held or under way.
    pub pending_removals: usize,
}

/// One step of walking two loads side by side.
enum Side<'a> {
    /// In the old load only: its spec went.
    Went(&'a App),
    /// In the new load only: its spec arrived.
    Arrived(&'a App),
    /// In both.
    Both(&'a App, &'a App),
}

/// Walks the apps of two loads side by side. Both are sorted by key and hold each key once, so
/// this is one merge pass: no key is copied and no map built, because an edit reloads a
/// directory of thousands of apps of which one changed.
fn side_by_side<'a>(old: &'a [App], new: &'a [App], mut each: impl FnMut(Side<'a>)) {
    let key = |a: &'a App| (a.namespace.as_str(), a.name.as_str());
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) => match key(a).cmp(&key(b)) {
                std::cmp::Ordering::Less => {
                    each(Side::Went(a));
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    each(Side::Arrived(b));
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    each(Side::Both(a, b));
                    i += 1;
                    j += 1;
                }
            },
            (Some(a), None) => {
                each(Side::Went(a));
                i += 1;
            }
            (None, Some(b)) => {
                each(Side::Arrived(b));
                j += 1;
            }
            (None, None) => break,
        }
    }
}

fn key_of(app: &App) -> AppKey {
    AppKey::new(app.namespace.clone(), app.name.clone())
}

/// Compares the last load `old` with `new`; `live` are the apps with live objects.
pub(super) fn compare(old: &Loaded, new: &Loaded, live: &BTreeSet<AppKey>) -> Delta {
    let mut changed = BTreeSet::new();
    let (mut went, mut arrived) = (Vec::new(), BTreeSet::new());
    side_by_side(&old.apps, &new.apps, |side| match side {
        Side::Went(a) => {
            changed.insert(key_of(a));
            went.push(key_of(a));
        }
        Side::Arrived(b) => {
            changed.insert(key_of(b));
            arrived.insert(key_of(b));
        }
        Side::Both(a, b) => {
            if a != b {
                changed.insert(key_of(b));
            }
        }
    });
    // A file that broke or was fixed changes what may happen to its app.
    let broken =
        |l: &Loaded| -> BTreeSet<String> { l.broken.iter().map(|b| b.name.clone()).collect() };
    for name in broken(old).symmetric_difference(&broken(new)) {
        changed.extend(live.iter().filter(|key| key.name == *name).cloned());
    }
    // A directory that became unreadable, or readable again, changes what may happen to every
    // app without a spec.
    let dirs = |l: &Loaded| -> BTreeSet<PathBuf> {
        l.broken_dirs
            .iter()
            .map(|d| d.source_path.clone())
            .collect()
    };
    let without_spec = || live.iter().filter(|k| new.app_of(k).is_none());
    if dirs(old) != dirs(new) {
        changed.extend(without_spec().cloned());
    }
    let moves = if arrived.is_empty() {
        BTreeMap::new()
    } else {
        went.into_iter().map(|k| (k, arrived.clone())).collect()
    };
    Delta {
        changed,
        moves,
        pending_removals: without_spec().count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::spec::load_dir;

    fn load(files: &[(&str, &str)]) -> Loaded {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, body) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
            std::fs::write(path, body).expect("write");
        }
        load_dir(dir.path(), &Config::default()).expect("load")
    }

    fn app(replicas: u32) -> String {
        format!("replicas = {replicas}\n[containers.web]\nimage = \"nginx:1.27\"\n")
    }

    fn key(name: &str) -> AppKey {
        AppKey::new("default", name)
    }

    fn keys(names: &[&str]) -> BTreeSet<AppKey> {
        names.iter().map(|n| key(n)).collect()
    }

    #[test]
    fn an_edit_changes_its_app_only() {
        let old = load(&[("a.toml", &app(1)), ("b.toml", &app(1))]);
        let new = load(&[("a.toml", &app(2)), ("b.toml", &app(1))]);
        let delta = compare(&old, &new, &keys(&["a", "b"]));
        assert_eq!(delta.changed, keys(&["a"]));
        assert!(delta.moves.is_empty());
        assert_eq!(delta.pending_removals, 0);
    }

    #[test]
    fn a_rename_records_a_possible_move() {
        let old = load(&[("web.toml", &app(1)), ("keep.toml", &app(1))]);
        let new = load(&[("web-primary.toml", &app(1)), ("keep.toml", &app(1))]);
        let delta = compare(&old, &new, &keys(&["web", "keep"]));
        assert_eq!(delta.changed, keys(&["web", "web-primary"]));
        assert_eq!(
            delta.moves,
            BTreeMap::from([(key("web"), keys(&["web-primary"]))])
        );
        assert_eq!(delta.pending_removals, 1);
    }

    #[test]
    fn the_merge_walk_finds_what_a_comparison_by_key_finds() {
        // Namespaces and names interleave so that a walk ordered wrongly would pair the wrong
        // apps: every key is compared with a map-by-key comparison of the same two loads.
        let ns = |n: &str, body: String| format!("namespace = \"{n}\"\n{body}");
        let old = load(&[
            ("a.toml", &ns("b", app(1))),
            ("b.toml", &ns("a", app(1))),
            ("team/a.toml", &ns("a", app(1))),
            ("c.toml", &app(1)),
            ("gone.toml", &ns("z", app(1))),
        ]);
        let new = load(&[
            ("a.toml", &ns("b", app(2))),
            ("b.toml", &ns("a", app(1))),
            ("c.toml", &app(1)),
            ("d.toml", &ns("a", app(1))),
            ("new.toml", &ns("0", app(1))),
        ]);
        let by_key = |l: &Loaded| -> BTreeMap<AppKey, App> {
            l.apps.iter().map(|a| (key_of(a), a.clone())).collect()
        };
        let (before, after) = (by_key(&old), by_key(&new));
        let expected: BTreeSet<AppKey> = before
            .keys()
            .chain(after.keys())
            .filter(|k| before.get(*k) != after.get(*k))
            .cloned()
            .collect();
        let delta = compare(&old, &new, &BTreeSet::new());
        assert_eq!(delta.changed, expected);
        assert_eq!(
            delta.changed,
            BTreeSet::from([
                AppKey::new("b", "a"),
                AppKey::new("a", "a"),
                AppKey::new("a", "d"),
                AppKey::new("0", "new"),
                AppKey::new("z", "gone"),
            ])
        );
        let arrived = BTreeSet::from([AppKey::new("a", "d"), AppKey::new("0", "new")]);
        assert_eq!(
            delta.moves,
            BTreeMap::from([
                (AppKey::new("a", "a"), arrived.clone()),
                (AppKey::new("z", "gone"), arrived),
            ])
        );
    }

    #[test]
    fn a_plain_removal_records_no_move() {
        let old = load(&[("a.toml", &app(1)), ("b.toml", &app(1))]);
        let new = load(&[("b.toml", &app(1))]);
        let delta = compare(&old, &new, &keys(&["a", "b"]));
        assert!(delta.moves.is_empty());
        assert_eq!(delta.changed, keys(&["a"]));
    }

    #[test]
    fn a_file_that_breaks_rechecks_its_live_app() {
        let old = load(&[("a.toml", &app(1))]);
        let new = load(&[("a.toml", "replicas = [\n")]);
        let delta = compare(&old, &new, &keys(&["a"]));
        assert!(delta.changed.contains(&key("a")));
    }

    #[test]
    fn a_directory_that_becomes_unreadable_rechecks_every_app_without_a_spec() {
        let old = load(&[("keep.toml", &app(1)), ("team/a.toml", &app(1))]);
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("keep.toml"), app(1)).expect("write");
        std::os::unix::fs::symlink("/nonexistent/berth-team", dir.path().join("team"))
            .expect("link");
        let new = load_dir(dir.path(), &Config::default()).expect("load");
        assert_eq!(new.broken_dirs.len(), 1);
        let delta = compare(&old, &new, &keys(&["keep", "a", "gone"]));
        assert!(delta.changed.contains(&key("a")) && delta.changed.contains(&key("gone")));
        assert!(!delta.changed.contains(&key("keep")));
    }
}
