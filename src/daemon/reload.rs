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
    /// Apps that have a spec now (any move recorded for them earlier is over).
    pub present: BTreeSet<AppKey>,
    /// Live apps without a spec: removals pending, held or under way.
    pub pending_removals: usize,
}

/// The loaded apps by key, borrowed: a reload compares two whole directories.
fn by_key(loaded: &Loaded) -> BTreeMap<AppKey, &App> {
    loaded
        .apps
        .iter()
        .map(|a| (AppKey::new(a.namespace.clone(), a.name.clone()), a))
        .collect()
}

/// Compares the last load `old` with `new`; `live` are the apps with live objects.
pub(super) fn compare(old: &Loaded, new: &Loaded, live: &BTreeSet<AppKey>) -> Delta {
    let (before, after) = (by_key(old), by_key(new));
    let mut changed: BTreeSet<AppKey> = before
        .keys()
        .chain(after.keys())
        .filter(|k| before.get(*k) != after.get(*k))
        .cloned()
        .collect();
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
    if dirs(old) != dirs(new) {
        changed.extend(live.iter().filter(|k| !after.contains_key(*k)).cloned());
    }
    let arrived: BTreeSet<AppKey> = after
        .keys()
        .filter(|k| !before.contains_key(*k))
        .cloned()
        .collect();
    let moves = if arrived.is_empty() {
        BTreeMap::new()
    } else {
        before
            .keys()
            .filter(|k| !after.contains_key(*k))
            .map(|k| (k.clone(), arrived.clone()))
            .collect()
    };
    Delta {
        changed,
        moves,
        pending_removals: live.iter().filter(|k| !after.contains_key(*k)).count(),
        present: after.into_keys().collect(),
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
        assert!(delta.present.contains(&key("web-primary")));
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
