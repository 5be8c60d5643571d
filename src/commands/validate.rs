//! `berth validate DIR`: check every spec; needs no cluster.

use std::path::{Path, PathBuf};

use super::{Exit, print_diagnostics};
use crate::config::Config;
use crate::spec::{LoadError, Loaded, load_dir};

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    dir: PathBuf,
}

/// 0 when every spec is valid (warnings allowed), 2 otherwise.
pub(crate) fn exec(args: &ValidateArgs, config: &Config) -> Exit {
    let dir = &args.dir;
    let Some(loaded) = load(dir, config) else {
        return Exit::Error;
    };
    print_diagnostics(&loaded.diagnostics);
    if loaded.files == 0 {
        eprintln!("warning: no spec files (*.toml) in {}", dir.display());
    }
    eprintln!("{}", summary(&loaded));
    if loaded.has_errors() {
        Exit::Error
    } else {
        Exit::Ok
    }
}

/// Loads a spec directory, telling a missing directory from an unreadable one.
pub(super) fn load(dir: &Path, config: &Config) -> Option<Loaded> {
    match load_dir(dir, config) {
        Ok(mut l) => {
            crate::render::refuse_unpatchable(&mut l, dir, &config.instance);
            Some(l)
        }
        Err(e @ LoadError::Missing { .. }) => {
            eprintln!("error: {e}");
            None
        }
        Err(e) => {
            eprintln!("error: {:#}", anyhow::Error::from(e));
            None
        }
    }
}

/// `4 specs checked: 3 valid, 1 invalid (2 errors, 0 warnings)`.
pub(super) fn summary(loaded: &Loaded) -> String {
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    format!(
        "{} checked: {} valid, {} invalid ({}, {})",
        plural(loaded.files, "spec"),
        loaded.apps.len(),
        loaded.broken.len(),
        plural(loaded.errors(), "error"),
        plural(loaded.warnings(), "warning"),
    )
}
