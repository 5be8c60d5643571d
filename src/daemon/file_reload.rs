//! A reload of named spec files alone, when the watcher saw nothing but those files change: each
//! is checked on its own and its app replaced in the last load, without reading the directory.
//!
//! Pure: the daemon reads the files (`run/specs.rs`) and hands their checks here. The rules
//! across files (one file per app, one app per Service name, the apps `after` names, patches
//! checked against the render) are not run again, so a file is taken on its own only when it
//! cannot change what they decide: it was the source of a valid app in the last load, and it is
//! still valid with the same identity (namespace and name, Service names, `after` list, no
//! patches). Anything else (a new file, a file that broke, a rename of the app) is answered by
//! reading the whole directory, which is where a broken or ambiguous spec is made safe: this
//! path never removes an app nor makes one broken.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::spec::{App, AppKey, Checked, Diagnostic, Loaded};

/// One spec file, read and checked on its own.
#[derive(Debug)]
pub(super) struct Rechecked {
    /// The spec directory joined with `source_path`: what the file's diagnostics name.
    pub path: PathBuf,
    /// The file relative to the spec directory (the app's `source_path`).
    pub source_path: PathBuf,
    pub checked: Checked,
}

/// Why the named files were not enough: the whole directory is read instead.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum NeedsDirectory {
    /// The file was not the source of a valid app in the last load (new, broken, or refused by a
    /// rule across files).
    NoAppBefore(PathBuf),
    /// The file has an error now: a broken spec is made safe by the whole load.
    Errors(PathBuf),
    /// Something the rules across files look at changed (or the app has patches).
    Identity(PathBuf),
}

/// Checked replacements for apps of the last load, ready to be put in.
#[derive(Debug)]
pub(super) struct Replacements(Vec<(Rechecked, App)>);

impl Replacements {
    /// The files' diagnostics (warnings only: a file with an error is never replaced alone).
    pub(super) fn diagnostics(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0
            .iter()
            .flat_map(|(f, _)| f.checked.diagnostics.iter())
    }
}

/// Decides whether `files` can replace their apps in `loaded` on their own.
pub(super) fn replacements(
    loaded: &Loaded,
    files: Vec<Rechecked>,
) -> Result<Replacements, NeedsDirectory> {
    let mut out = Vec::with_capacity(files.len());
    for mut file in files {
        // A linear pass over source paths: byte comparisons, no allocation, once per named file.
        let Some(old) = loaded
            .apps
            .iter()
            .find(|a| a.source_path.as_os_str() == file.source_path.as_os_str())
        else {
            return Err(NeedsDirectory::NoAppBefore(file.source_path));
        };
        if file.checked.diagnostics.iter().any(|d| d.is_error()) {
            return Err(NeedsDirectory::Errors(file.source_path));
        }
        let Some(new) = file.checked.app.take() else {
            return Err(NeedsDirectory::Errors(file.source_path));
        };
        if !same_identity(old, &new) {
            return Err(NeedsDirectory::Identity(file.source_path));
        }
        out.push((file, new));
    }
    Ok(Replacements(out))
}

/// Whether every rule across files decides the same for `new` as for `old`: they look at the
/// app's key (duplicates, the targets of `after`), its Service names, its `after` list (unknown
/// apps, cycles) and its patches (checked against the render over the whole load).
fn same_identity(old: &App, new: &App) -> bool {
    let after = |a: &App| a.after.iter().map(|d| d.key()).collect::<Vec<_>>();
    let services = |a: &App| {
        a.access_services()
            .map(|s| s.name.clone())
            .collect::<Vec<_>>()
    };
    old.namespace == new.namespace
        && old.name == new.name
        && old.source_path == new.source_path
        && old.headless == new.headless
        && services(old) == services(new)
        && after(old) == after(new)
        && old.patches.is_empty()
        && new.patches.is_empty()
}

/// Puts the replacements in `loaded` and returns the apps that changed. Each file's diagnostics
/// (warnings: a file with errors never gets here) take the place of its old ones.
pub(super) fn put(loaded: &mut Loaded, replacements: Replacements) -> BTreeSet<AppKey> {
    let mut changed = BTreeSet::new();
    for (file, app) in replacements.0 {
        let at = loaded
            .diagnostics
            .iter()
            .position(|d| d.path == file.path)
            .unwrap_or(loaded.diagnostics.len());
        loaded.diagnostics.retain(|d| d.path != file.path);
        let at = at.min(loaded.diagnostics.len());
        loaded
            .diagnostics
            .splice(at..at, file.checked.diagnostics.iter().cloned());
        // Same key: the app keeps its place in the sorted list.
        if let Ok(i) = loaded
            .apps
            .binary_search_by(|a| (&a.namespace, &a.name).cmp(&(&app.namespace, &app.name)))
            && loaded.apps[i] != app
        {
            changed.insert(app.key());
            loaded.apps[i] = app;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;
    use crate::spec::{check_source, load_dir};

    fn app(replicas: u32) -> String {
        format!("replicas = {replicas}\n[containers.web]\nimage = \"nginx:1.27\"\n")
    }

    /// A directory of `files`, loaded, and the same directory to edit.
    fn load(files: &[(&str, &str)]) -> (tempfile::TempDir, Loaded) {
        let dir = tempfile::tempdir().expect("temp dir");
        for (name, body) in files {
            std::fs::write(dir.path().join(name), body).expect("write");
        }
        let loaded = load_dir(dir.path(), &Config::default()).expect("load");
        (dir, loaded)
    }

    /// `name` rewritten with `body` and checked on its own, as the daemon does.
    fn recheck(dir: &Path, name: &str, body: &str) -> Rechecked {
        std::fs::write(dir.join(name), body).expect("write");
        let path = dir.join(name);
        let checked = check_source(&path, Path::new(name), body, &Config::default());
        Rechecked {
            path,
            source_path: PathBuf::from(name),
            checked,
        }
    }

    #[test]
    fn an_edit_replaces_its_app_and_equals_a_full_load() {
        let (dir, mut loaded) = load(&[("a.toml", &app(1)), ("b.toml", &app(1))]);
        let file = recheck(
            dir.path(),
            "a.toml",
            &format!("{}[containers.web.env]\nMODE = \"x\"\n", app(3)),
        );
        let replacements = replacements(&loaded, vec![file]).expect("on its own");
        let changed = put(&mut loaded, replacements);
        assert_eq!(changed, BTreeSet::from([AppKey::new("default", "a")]));
        let fresh = load_dir(dir.path(), &Config::default()).expect("load");
        assert_eq!(loaded.apps, fresh.apps);
        assert_eq!(loaded.broken, fresh.broken);
        assert_eq!(loaded.diagnostics, fresh.diagnostics);
    }

    #[test]
    fn an_unchanged_file_changes_no_app() {
        let (dir, mut loaded) = load(&[("a.toml", &app(1))]);
        let file = recheck(dir.path(), "a.toml", &app(1));
        let replacements = replacements(&loaded, vec![file]).expect("on its own");
        assert!(put(&mut loaded, replacements).is_empty());
    }

    #[test]
    fn warnings_of_the_file_replace_its_old_ones() {
        // An image without a tag is a warning, not an error.
        let untagged = "[containers.web]\nimage = \"nginx\"\n";
        let (dir, mut loaded) = load(&[("a.toml", untagged), ("b.toml", untagged)]);
        assert_eq!(loaded.warnings(), 2, "{:?}", loaded.diagnostics);
        let file = recheck(dir.path(), "a.toml", &app(1));
        let replacements = replacements(&loaded, vec![file]).expect("on its own");
        put(&mut loaded, replacements);
        let fresh = load_dir(dir.path(), &Config::default()).expect("load");
        assert_eq!(loaded.diagnostics, fresh.diagnostics);
        assert_eq!(loaded.warnings(), 1);
    }

    #[test]
    fn what_the_rules_across_files_decide_needs_the_directory() {
        let (dir, loaded) = load(&[
            ("a.toml", &app(1)),
            ("b.toml", &app(1)),
            ("broken.toml", "replicas = [\n"),
        ]);
        let cases = [
            // Another name: a duplicate of b, or a move.
            ("a.toml", format!("name = \"b\"\n{}", app(1))),
            ("a.toml", format!("namespace = \"other\"\n{}", app(1))),
            // Another Service name may clash with another app's.
            ("a.toml", format!("headless = \"b\"\n{}", app(1))),
            (
                "a.toml",
                format!(
                    "{}ports = {{ http = 80 }}\n\n[services.b]\nports = {{ http = 80 }}\n",
                    app(1)
                ),
            ),
            // `after` names apps: unknown ones and cycles are rules across files.
            ("a.toml", format!("after = [\"b\"]\n{}", app(1))),
        ];
        for (name, body) in &cases {
            let file = recheck(dir.path(), name, body);
            assert_eq!(
                replacements(&loaded, vec![file]).map(|_| ()),
                Err(NeedsDirectory::Identity(PathBuf::from(name))),
                "{body}"
            );
        }
        // A file that breaks is made safe by the whole load (its app is left alone).
        let file = recheck(dir.path(), "a.toml", "replicas = [\n");
        assert_eq!(
            replacements(&loaded, vec![file]).map(|_| ()),
            Err(NeedsDirectory::Errors(PathBuf::from("a.toml")))
        );
        // A file that was broken, or is new, had no app to replace.
        for name in ["broken.toml", "new.toml"] {
            let file = recheck(dir.path(), name, &app(1));
            assert_eq!(
                replacements(&loaded, vec![file]).map(|_| ()),
                Err(NeedsDirectory::NoAppBefore(PathBuf::from(name)))
            );
        }
    }

    #[test]
    fn one_file_that_needs_the_directory_puts_none_in() {
        let (dir, loaded) = load(&[("a.toml", &app(1)), ("b.toml", &app(1))]);
        let files = vec![
            recheck(dir.path(), "a.toml", &app(2)),
            recheck(dir.path(), "b.toml", "replicas = [\n"),
        ];
        assert!(replacements(&loaded, files).is_err());
    }
}
