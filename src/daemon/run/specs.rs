//! Reading the spec directory for the daemon: a reload (load, report the spec errors, record
//! the commit, decide what changed with `daemon::reload::compare`), or, while git holds its
//! index lock, leaving it to the main loop's [`GitWait`].

use std::collections::{BTreeMap, BTreeSet};

use tracing::{error, info, warn};

use super::super::git_wait::GitWait;
use super::super::{reload as delta, spec_watcher};
use super::Shared;
use crate::cluster::head_commit;
use crate::spec::{AppKey, LoadError, Loaded, load_dir_cached};

/// [`reload`], unless git is mid-checkout (or a reload already waits for it): then the reload
/// is left to the loop's [`GitWait`] and None returned; `all` makes it look at every app.
pub(super) async fn reload_unless_git_busy(
    shared: &Shared,
    git_wait: &mut GitWait,
    all: bool,
) -> Option<BTreeSet<AppKey>> {
    if git_wait.waiting() || spec_watcher::git_busy(&shared.options.dir) {
        if !git_wait.waiting() {
            info!("git is updating the checkout; the reload waits for whole commits");
        }
        git_wait.defer(all);
        return None;
    }
    reload(shared).await
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
        (loaded, cache)
    })
    .await;
    let loaded = match result.map(|(loaded, cache)| {
        *shared.spec_cache.lock().unwrap_or_else(|p| p.into_inner()) = cache;
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
