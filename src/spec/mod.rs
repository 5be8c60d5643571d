//! The TOML app spec: raw serde types, validation, diagnostics, and loading a spec directory.
//!
//! Flow: text → [`parse`] (raw types, every syntax and type problem) → [`validate`] (every rule,
//! into an [`App`]) → [`load_dir`] (rules across files: duplicate apps, clashing Services).
//! A file with an error becomes a [`BrokenSpec`], never a missing app: the planner must leave a
//! broken app's live objects alone.

pub mod app;
pub mod diag;
pub mod names;
pub mod parse;
pub mod quantity;
pub mod raw;
pub mod schema;
pub mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use app::*;
pub use diag::{Diagnostic, Location, Severity, use_color};
pub use quantity::Quantity;

use crate::config::Config;

/// A spec directory, read and checked.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// Valid apps, sorted by namespace then name.
    pub apps: Vec<App>,
    /// Every problem of every file, errors and warnings, in file order.
    pub diagnostics: Vec<Diagnostic>,
    /// Files with at least one error. Their apps must be left as they are in the cluster.
    pub broken: Vec<BrokenSpec>,
    /// Number of spec files found (valid or not); 0 means an empty directory.
    pub files: usize,
}

impl Loaded {
    pub fn has_errors(&self) -> bool {
        !self.broken.is_empty()
    }

    pub fn warnings(&self) -> usize {
        self.diagnostics.iter().filter(|d| !d.is_error()).count()
    }

    pub fn errors(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }
}

/// A spec file that failed to parse or validate, with the best-known identity of its app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenSpec {
    /// The file, as found under the spec directory (directory joined with the relative path).
    pub path: PathBuf,
    /// The file relative to the spec directory: what the `berth.dev/source` annotation of the
    /// app's live objects holds. Match on this too: an edit that broke the file may also have
    /// changed its `name` or `namespace`, and the live app must still be left alone.
    pub source_path: PathBuf,
    /// The spec's `namespace` when it could be read; the configured default when the file parsed
    /// and sets none; `None` when unknown — then the name must be protected in every namespace.
    pub namespace: Option<String>,
    /// The spec's `name` when it could be read, else the file stem.
    pub name: String,
}

/// Why a directory could not be loaded at all. Missing and empty are told apart: the caller
/// refuses both without a flag, but the messages differ.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("spec directory {} does not exist", dir.display())]
    Missing { dir: PathBuf },
    #[error("{} is not a directory", dir.display())]
    NotADirectory { dir: PathBuf },
    #[error("cannot read spec directory {}", dir.display())]
    ReadDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One file, checked on its own.
#[derive(Debug, Clone)]
pub struct Checked {
    pub app: Option<App>,
    pub diagnostics: Vec<Diagnostic>,
    /// The identity to use when the file is broken (see [`BrokenSpec`]).
    pub name_hint: String,
    pub namespace_hint: Option<String>,
}

/// Check one spec's text. `path` is printed in diagnostics; `source_path` is the path relative to
/// the spec directory (it names the app when `name` is not set, and goes into annotations).
pub fn check_source(path: &Path, source_path: &Path, text: &str, config: &Config) -> Checked {
    let stem = source_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parsed = parse::parse(path, text);
    let mut diagnostics = parsed.diagnostics;
    let name_hint = parsed.name_hint.clone().unwrap_or_else(|| stem.clone());
    let mut namespace_hint = parsed.namespace_hint.clone();
    let mut app = None;
    if let Some(raw) = &parsed.raw {
        if namespace_hint.is_none()
            && raw.namespace.is_none()
            && !parsed.pruned.contains("namespace")
        {
            namespace_hint = Some(config.defaults.namespace.clone());
        }
        let input = validate::Input {
            path,
            source: text,
            source_path,
            stem: &stem,
            config,
            pruned: &parsed.pruned,
        };
        let (valid, diags) = validate::validate(raw, &input);
        diagnostics.extend(diags);
        if !diagnostics.iter().any(Diagnostic::is_error) {
            app = valid;
        }
    }
    // Report in reading order; problems about the whole file first.
    diagnostics.sort_by_key(|d| d.location.as_ref().map(|l| (l.line, l.column)));
    Checked {
        app,
        diagnostics,
        name_hint,
        namespace_hint,
    }
}

/// Is this directory entry a spec file? Hidden files, editor swap and backup files
/// (`.#x.toml`, `x.toml~`, `.x.toml.swp`, `#x.toml#`) and anything not ending in `.toml` are not.
pub fn is_spec_file_name(name: &str) -> bool {
    !name.starts_with('.')
        && !name.starts_with('#')
        && !name.ends_with('~')
        && name.ends_with(".toml")
        && name.len() > ".toml".len()
}

/// Deepest directory nesting followed: guards against symlink loops.
const MAX_DEPTH: usize = 16;

fn collect(
    dir: &Path,
    depth: usize,
    out: &mut Vec<PathBuf>,
    diags: &mut Vec<Diagnostic>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue; // hidden files and directories (.git, editor temp files)
        }
        let path = entry.path();
        // metadata() follows symlinks: git-sync publishes the checkout through one.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue; // a dangling symlink, or a file removed while we looked
        };
        if meta.is_dir() {
            if depth < MAX_DEPTH
                && let Err(e) = collect(&path, depth + 1, out, diags)
            {
                diags.push(Diagnostic::error(
                    &path,
                    "read-error",
                    format!("cannot read directory: {e}"),
                ));
            }
        } else if meta.is_file() && is_spec_file_name(&name) {
            out.push(path);
        }
    }
    Ok(())
}

/// Read and check every spec under `dir` (recursively), then the rules across files.
pub fn load_dir(dir: &Path, config: &Config) -> Result<Loaded, LoadError> {
    let meta = std::fs::metadata(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => LoadError::Missing {
            dir: dir.to_path_buf(),
        },
        _ => LoadError::ReadDir {
            dir: dir.to_path_buf(),
            source: e,
        },
    })?;
    if !meta.is_dir() {
        return Err(LoadError::NotADirectory {
            dir: dir.to_path_buf(),
        });
    }
    let mut files = Vec::new();
    let mut loaded = Loaded::default();
    collect(dir, 0, &mut files, &mut loaded.diagnostics).map_err(|source| LoadError::ReadDir {
        dir: dir.to_path_buf(),
        source,
    })?;
    files.sort();
    loaded.files = files.len();

    let mut checked: Vec<(PathBuf, Checked)> = Vec::new();
    for path in files {
        let rel = path.strip_prefix(dir).unwrap_or(&path).to_path_buf();
        let c = match std::fs::read_to_string(&path) {
            Ok(text) => check_source(&path, &rel, &text, config),
            Err(e) => Checked {
                app: None,
                diagnostics: vec![Diagnostic::error(
                    &path,
                    "read-error",
                    format!("cannot read the file: {e}"),
                )],
                name_hint: rel
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                namespace_hint: None,
            },
        };
        checked.push((path, c));
    }
    cross_file_rules(&mut checked);

    for (path, c) in checked {
        loaded.diagnostics.extend(c.diagnostics);
        match c.app {
            Some(app) => loaded.apps.push(app),
            None => loaded.broken.push(BrokenSpec {
                source_path: path.strip_prefix(dir).unwrap_or(&path).to_path_buf(),
                path,
                namespace: c.namespace_hint,
                name: c.name_hint,
            }),
        }
    }
    loaded
        .apps
        .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(loaded)
}

/// Two files must not declare the same app, and two apps of a namespace must not render Services
/// of the same name. Both files of a clash become broken: neither may win silently.
fn cross_file_rules(checked: &mut [(PathBuf, Checked)]) {
    let mut apps: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    let mut services: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (i, (_, c)) in checked.iter().enumerate() {
        if let Some(app) = &c.app {
            apps.entry((app.namespace.clone(), app.name.clone()))
                .or_default()
                .push(i);
            let mut names = vec![app.headless.clone()];
            if let Some(s) = &app.service {
                names.push(s.name.clone());
            }
            for n in names {
                services
                    .entry((app.namespace.clone(), n))
                    .or_default()
                    .push(i);
            }
        }
    }
    let mut clashes: Vec<(usize, Diagnostic)> = Vec::new();
    for ((ns, name), idx) in &apps {
        if idx.len() < 2 {
            continue;
        }
        let files: Vec<String> = idx
            .iter()
            .map(|i| checked[*i].0.display().to_string())
            .collect();
        for i in idx {
            let d = Diagnostic::error(
                &checked[*i].0,
                "duplicate-app",
                format!("app `{ns}/{name}` is declared by more than one file"),
            )
            .help(format!(
                "files: {}; rename one (file name or `name`) or move it to another namespace",
                files.join(", ")
            ));
            clashes.push((*i, d));
        }
    }
    for ((ns, name), idx) in &services {
        let mut distinct = idx.clone();
        distinct.dedup();
        if distinct.len() < 2
            || apps
                .values()
                .any(|v| v.len() > 1 && distinct.iter().all(|i| v.contains(i)))
        {
            continue; // the duplicate-app error already covers it
        }
        let owners: Vec<String> = distinct
            .iter()
            .filter_map(|i| {
                checked[*i]
                    .1
                    .app
                    .as_ref()
                    .map(|a| format!("`{}` ({})", a.name, checked[*i].0.display()))
            })
            .collect();
        for i in &distinct {
            let d = Diagnostic::error(
                &checked[*i].0,
                "duplicate-service",
                format!("Service `{ns}/{name}` would be written by more than one app"),
            )
            .help(format!(
                "apps: {}; set `headless` or [service] `name` so each Service name is used once",
                owners.join(", ")
            ));
            clashes.push((*i, d));
        }
    }
    for (i, d) in clashes {
        checked[i].1.diagnostics.push(d);
        checked[i].1.app = None;
    }
}

#[cfg(test)]
mod tests;
