//! Reading the spec directory for the daemon: a reload (load, report the spec errors, record
//! the commit, decide what changed with `daemon::reload::compare`), a reload of named files
//! alone when they are all that changed (`daemon::file_reload`), or, while git holds its index
//! lock, leaving it to the main loop's [`GitWait`].

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::{debug, error, info, warn};

use super::super::file_reload::{self, Rechecked};
use super::super::git_wait::GitWait;
use super::super::{reload as delta, spec_watcher};
use super::Shared;
use crate::cluster::head_commit;
use crate::config::Config;
use crate::spec::{
    AppKey, LoadError, Loaded, MAX_DEPTH, SpecCache, check_source, load_dir_cached, read_spec,
};

/// What the last full load of the directory was made with: a reload of named files alone must
/// check them the same way, and is not tried where another file may read the same text.
#[derive(Debug, Clone)]
pub(super) struct LastLoad {
    config: Config,
    /// Some symlink under the spec directory: an edit of one file may then change what another
    /// path reads (a link to it, or a ConfigMap's `..data`), so every reload reads everything.
    has_links: bool,
}

/// How a reload went, for the log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    /// Only the named files were read and checked.
    Files,
    /// The whole directory.
    Directory,
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Scope::Files => "files",
            Scope::Directory => "directory",
        })
    }
}

/// [`reload`], unless git is mid-checkout (or a reload already waits for it): then the reload
/// is left to the loop's [`GitWait`] and None returned; `all` makes it look at every app.
/// `files`: the spec files the watcher saw change when they were all that changed; they are
/// read alone when the last load allows it ([`reload_files`]), else the directory is.
pub(super) async fn reload_unless_git_busy(
    shared: &Shared,
    git_wait: &mut GitWait,
    all: bool,
    files: Option<BTreeSet<PathBuf>>,
) -> Option<(BTreeSet<AppKey>, Scope)> {
    if git_wait.waiting() || spec_watcher::git_busy(&shared.options.dir) {
        if !git_wait.waiting() {
            info!("git is updating the checkout; the reload waits for whole commits");
        }
        git_wait.defer(all);
        return None;
    }
    if let Some(files) = files.filter(|_| !all)
        && let Some(changed) = reload_files(shared, files).await
    {
        return Some((changed, Scope::Files));
    }
    reload(shared)
        .await
        .map(|changed| (changed, Scope::Directory))
}

/// Reads and checks `files` alone and puts their apps in the current load, when that decides
/// the same as reading the whole directory would (see `daemon::file_reload`). None when it
/// cannot: the caller reads the directory. The caller makes sure git is not mid-checkout.
async fn reload_files(shared: &Shared, files: BTreeSet<PathBuf>) -> Option<BTreeSet<AppKey>> {
    let config = shared
        .config
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let last = shared
        .last_load
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    if last.is_none_or(|last| last.has_links || last.config != config) {
        return None;
    }
    let dir = shared.options.dir.clone();
    // The commit is read beside the files: `git rev-parse` is a process of its own.
    let commit_dir = dir.clone();
    let commit = tokio::task::spawn_blocking(move || head_commit(&commit_dir));
    let checked = tokio::task::spawn_blocking(move || recheck(&dir, &files, &config)).await;
    let rechecked = match checked {
        Ok(Some(rechecked)) => rechecked,
        _ => return None,
    };
    let replacements = {
        let current = shared.specs.read().unwrap_or_else(|p| p.into_inner());
        match file_reload::replacements(&current, rechecked) {
            Ok(replacements) => replacements,
            Err(why) => {
                debug!(why = ?why, "the changed files are read with the whole directory");
                return None;
            }
        }
    };
    let commit = commit.await.ok().flatten();
    for d in replacements.diagnostics() {
        warn!(file = %d.path.display(), diagnostic = %d.render(false), "spec warning");
    }
    // The per-file cache holds the last full load: it would keep a second copy of every app
    // alive beside the one changed here. The next full load checks every file again instead.
    *shared.spec_cache.lock().unwrap_or_else(|p| p.into_inner()) = SpecCache::default();
    let changed = {
        let mut specs = shared.specs.write().unwrap_or_else(|p| p.into_inner());
        // In place unless a reconcile holds the load this moment (then it keeps its copy).
        file_reload::put(Arc::make_mut(&mut specs), replacements)
    };
    if let Some(c) = &commit {
        info!(commit = %c, "specs loaded");
    }
    *shared.commit.write().unwrap_or_else(|p| p.into_inner()) = commit;
    Some(changed)
}

/// Each file read and checked on its own; None when one cannot be taken alone: outside the
/// directory, not a regular file (a link, gone), hard-linked (an edit of another path changes
/// it), or unreadable.
fn recheck(dir: &Path, files: &BTreeSet<PathBuf>, config: &Config) -> Option<Vec<Rechecked>> {
    let root = dir.canonicalize().ok()?;
    let mut out = Vec::with_capacity(files.len());
    for file in files {
        let source_path = file.strip_prefix(&root).ok()?.to_path_buf();
        let meta = std::fs::symlink_metadata(file).ok()?;
        if !meta.file_type().is_file() || meta.nlink() != 1 {
            return None;
        }
        let text = read_spec(file).ok()?;
        let path = dir.join(&source_path);
        let checked = check_source(&path, &source_path, &text, config);
        out.push(Rechecked {
            path,
            source_path,
            checked,
        });
    }
    Some(out)
}

/// Whether any entry under `dir` that the loader may read through is a symlink. Hidden entries
/// are skipped as the loader skips them, except that a ConfigMap's visible links into `..data`
/// are links themselves. Unreadable counts as yes: the quick path is then never taken.
fn has_links(dir: &Path) -> bool {
    fn walk(dir: &Path, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return true;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return true;
        };
        for entry in entries {
            let Ok(entry) = entry else { return true };
            if entry.file_name().as_encoded_bytes().starts_with(b".") {
                continue;
            }
            let Ok(kind) = entry.file_type() else {
                return true;
            };
            if kind.is_symlink() || (kind.is_dir() && walk(&entry.path(), depth + 1)) {
                return true;
            }
        }
        false
    }
    walk(dir, 0)
}

/// Reloads the directory and returns the apps whose spec changed, appeared, disappeared or
/// broke. None when the directory cannot be read at all: then the previous specs stay in force
/// and nothing is queued. The caller makes sure git is not mid-checkout.
pub(super) async fn reload(shared: &Shared) -> Option<BTreeSet<AppKey>> {
    let dir = shared.options.dir.clone();
    let config = shared
        .config
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut cache =
        std::mem::take(&mut *shared.spec_cache.lock().unwrap_or_else(|p| p.into_inner()));
    let result = tokio::task::spawn_blocking(move || {
        let loaded = load_dir_cached(&dir, &config, &mut cache).map(|mut loaded| {
            // Only a directory with patches pays for the check (and the copy it may need).
            if loaded.apps.iter().any(|a| !a.patches.is_empty()) {
                let loaded = std::sync::Arc::make_mut(&mut loaded);
                crate::render::refuse_unpatchable(loaded, &dir, &config.instance);
            }
            loaded
        });
        let last = LastLoad {
            has_links: has_links(&dir),
            config,
        };
        (loaded, cache, last)
    })
    .await;
    let loaded = match result.map(|(loaded, cache, last)| {
        *shared.spec_cache.lock().unwrap_or_else(|p| p.into_inner()) = cache;
        let ok = loaded.is_ok();
        *shared.last_load.lock().unwrap_or_else(|p| p.into_inner()) = ok.then_some(last);
        loaded
    }) {
        Ok(Ok(loaded)) => loaded,
        Ok(Err(err @ LoadError::Missing { .. })) => {
            error!(error = %err, "the spec directory is missing; nothing is changed until it is back");
            return None;
        }
        Ok(Err(err)) => {
            error!(error = %crate::output::error_chain(&err), "cannot read the spec directory");
            return None;
        }
        Err(err) => {
            error!(error = %err, "loading the spec directory failed");
            return None;
        }
    };
    report_spec_errors(shared, &loaded);
    let commit = head_commit(&shared.options.dir);
    if let Some(c) = &commit {
        info!(commit = %c, apps = loaded.apps.len(), "specs loaded");
    }
    *shared.commit.write().unwrap_or_else(|p| p.into_inner()) = commit;

    let old = shared
        .specs
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let delta = delta::compare(&old, &loaded, &shared.cache.keys());
    {
        let mut arrivals = shared.arrivals.lock().unwrap_or_else(|p| p.into_inner());
        // A move recorded for an app that has a spec again is over.
        arrivals.retain(|key, _| loaded.app_of(key).is_none());
        arrivals.extend(delta.moves);
    }
    shared
        .metrics
        .set_pending_removals(delta.pending_removals as i64);
    let changed = delta.changed;
    *shared.specs.write().unwrap_or_else(|p| p.into_inner()) = loaded;
    Some(changed)
}

fn report_spec_errors(shared: &Shared, loaded: &Loaded) {
    let mut per_file: BTreeMap<String, i64> = BTreeMap::new();
    for d in loaded.diagnostics.iter().filter(|d| d.is_error()) {
        *per_file.entry(d.path.display().to_string()).or_default() += 1;
    }
    for d in loaded.diagnostics.iter() {
        if d.is_error() {
            error!(file = %d.path.display(), diagnostic = %d.render(false), "spec error; its app is left as it is");
        } else {
            warn!(file = %d.path.display(), diagnostic = %d.render(false), "spec warning");
        }
    }
    let list: Vec<(String, i64)> = per_file.into_iter().collect();
    shared.metrics.set_spec_errors(&list);
}
