//! The TOML app spec: raw serde types, validation, diagnostics, and loading a spec directory.
//!
//! Flow: text → [`parse`] (raw types, every syntax and type problem) → [`validate`] (every rule,
//! into an [`App`]) → [`load_dir`] (rules across files: duplicate apps, clashing Services, the
//! apps `after` names).
//! A file with an error becomes a [`BrokenSpec`], never a missing app: the planner must leave a
//! broken app's live objects alone. Likewise a directory berth cannot walk becomes a
//! [`BrokenDir`]; the walk (`walk.rs`) also refuses anything outside the spec directory.

pub mod app;
mod dependencies;
pub mod diag;
pub mod names;
pub mod parse;
pub mod quantity;
pub mod raw;
pub mod schema;
pub mod secret;
pub mod validate;
mod walk;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use app::*;
pub use diag::{Diagnostic, Location, Severity, use_color};
pub use quantity::Quantity;
pub use walk::MAX_DEPTH;

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
    /// Directories berth cannot walk, sorted by path. Every app whose source lies at or under
    /// one must be left as it is in the cluster: its spec may be there, unread.
    pub broken_dirs: Vec<BrokenDir>,
    /// Number of spec files found (valid or not); 0 means an empty directory.
    pub files: usize,
}

impl Loaded {
    /// The app `namespace/name`, found by binary search: `apps` is sorted by key and holds each
    /// key once (two files declaring one app are both broken), so the sorted list is the index
    /// by key, and a load builds it without any upkeep. O(log apps), no allocation: the daemon
    /// looks an app up on every reconcile.
    pub fn app(&self, namespace: &str, name: &str) -> Option<&App> {
        self.apps
            .binary_search_by(|a| (a.namespace.as_str(), a.name.as_str()).cmp(&(namespace, name)))
            .ok()
            .map(|i| &self.apps[i])
    }

    /// [`Loaded::app`] by key.
    pub fn app_of(&self, key: &AppKey) -> Option<&App> {
        self.app(&key.namespace, &key.name)
    }

    pub fn has_errors(&self) -> bool {
        !self.broken.is_empty() || !self.broken_dirs.is_empty()
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

/// A directory under the spec directory that berth cannot walk: a dangling or looping symlink, a
/// directory it may not read (EACCES, EIO), one deeper than [`MAX_DEPTH`] levels, or a symlink
/// to a directory outside the spec directory. Its diagnostic (rule `read-error`) says which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenDir {
    /// The directory, as found under the spec directory (directory joined with the relative path).
    pub path: PathBuf,
    /// The directory relative to the spec directory, like [`BrokenSpec::source_path`]: every
    /// live app whose `berth.dev/source` lies under it is protected.
    pub source_path: PathBuf,
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
            app = valid.map(|mut app| {
                app.shrink_to_fit();
                app
            });
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

/// The largest spec file berth reads. An app spec is a few dozen lines; a file this big is a
/// mistake (a dump, a binary committed under the wrong name), and reading and reporting it
/// whole would slow every rescan of the directory.
pub const MAX_SPEC_BYTES: u64 = 1024 * 1024;

/// Read one spec file's text. Refused, each with a diagnostic saying why and what to do: what is
/// not a regular file (a directory named `x.toml`, a FIFO — never opened, a read would block —,
/// a dangling symlink or a symlink loop), a file over [`MAX_SPEC_BYTES`], a file that cannot be
/// read, and text that is not UTF-8 (with the line and column of the first bad byte).
///
/// This reads whatever `path` leads to; [`load_dir`] first refuses a file whose real path is
/// outside the spec directory.
pub fn read_spec(path: &Path) -> Result<String, Box<Diagnostic>> {
    read(path, path).map_err(Box::new)
}

/// Read `open`, reporting problems against `path`, the name the user knows: the walk opens an
/// in-tree symlink by the real path it checked, so no other link is followed on the way.
// Boxed by the callers: the error is rare and the `?`s read better unboxed.
#[allow(clippy::result_large_err)]
fn read(path: &Path, open: &Path) -> Result<String, Diagnostic> {
    use std::io::Read;
    let error = |message: String| Diagnostic::error(path, "read-error", message);
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    let meta = std::fs::metadata(open).map_err(|e| match (is_link, e.kind()) {
        (true, std::io::ErrorKind::NotFound) => {
            error("the file is a symbolic link to a file that does not exist".into())
                .help("point the link at a spec file or remove it")
        }
        (true, _) => error(format!("cannot follow the symbolic link: {e}"))
            .help("a link that leads back to itself never reaches a file; point it at a spec file or remove it"),
        _ => error(format!("cannot read the file: {e}")),
    })?;
    if meta.is_dir() {
        return Err(error("this is a directory, not a spec file".into()).help(
            "a name ending in .toml is a spec file; rename the directory (spec files in \
             subdirectories are found anyway)",
        ));
    }
    if !meta.is_file() {
        return Err(error(
            "this is not a regular file (a FIFO, socket or device); it is not read".into(),
        )
        .help("replace it with a regular file, or remove it"));
    }
    let too_big = |size: u64| {
        error(format!(
            "the file is {size} bytes; a spec may have at most {MAX_SPEC_BYTES} bytes (1 MiB)"
        ))
        .help(
            "an app spec is a few dozen lines: check that the right file was saved under this name",
        )
    };
    if meta.len() > MAX_SPEC_BYTES {
        return Err(too_big(meta.len()));
    }
    // Sized from the metadata, so the file is read in one call (and one more that finds its
    // end) rather than in doubling pieces from 32 bytes: seven reads a spec without it.
    let mut bytes = Vec::with_capacity(meta.len() as usize + READ_PROBE);
    std::fs::File::open(open)
        .and_then(|f| f.take(MAX_SPEC_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| {
            error(format!("cannot read the file: {e}"))
                .help("check that the file is readable by the user berth runs as")
        })?;
    if bytes.len() as u64 > MAX_SPEC_BYTES {
        // It grew between the size check and the read.
        return Err(too_big(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|e| not_utf8(path, e))
}

/// Room past a file's size for the read that finds its end (std's own probe size).
const READ_PROBE: usize = 32;

/// The diagnostic for text that is not UTF-8, pointing at the first bad byte.
fn not_utf8(path: &Path, err: std::string::FromUtf8Error) -> Diagnostic {
    let at = err.utf8_error().valid_up_to();
    let bytes = err.as_bytes();
    let d = Diagnostic::error(path, "encoding", "the file is not valid UTF-8");
    if bytes.starts_with(&[0xff, 0xfe]) || bytes.starts_with(&[0xfe, 0xff]) {
        return d.help("the file is UTF-16 (it starts with a UTF-16 byte order mark); save it as UTF-8, as TOML requires");
    }
    // Lossy text: the valid prefix is byte-for-byte the same, so `at` is a position in it too.
    let text = String::from_utf8_lossy(bytes);
    d.at(&text, at..at + 1)
        .label(format!("byte 0x{:02x} is not UTF-8", bytes[at]))
        .help("save the file as UTF-8, as TOML requires (this byte looks like Latin-1 or another legacy encoding)")
}

/// Read and check every spec under `dir` (recursively), then the rules across files.
pub fn load_dir(dir: &Path, config: &Config) -> Result<Loaded, LoadError> {
    // A one-shot load keeps no cache: at 10,000 specs its entries alone were tens of MiB.
    load(dir, config, None)
}

/// What the last load of a directory checked, per file, keyed by the file's text: the daemon
/// reloads the whole directory on every change, and re-checking only the files whose text
/// changed keeps an edit's latency independent of how many apps there are.
#[derive(Debug, Default)]
pub struct SpecCache {
    /// The config the entries were checked with; another config empties the cache.
    config: Option<Config>,
    entries: std::collections::HashMap<PathBuf, CacheEntry>,
    /// The last load: the apps of unchanged files are taken from there. The caller holds the
    /// same `Arc`, so the cache costs no second copy of every app.
    last: Arc<Loaded>,
}

#[derive(Debug)]
struct CacheEntry {
    /// The hash of the file's text.
    hash: u64,
    /// What checking the file found, but its app (that is in [`SpecCache::last`]).
    diagnostics: Vec<Diagnostic>,
    name_hint: String,
    namespace_hint: Option<String>,
    /// The app's `(namespace, name)` when the file was valid on its own.
    app: Option<AppKey>,
}

fn text_hash(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

/// [`load_dir`], reusing `cache` for files whose text is unchanged. Cross-file rules always run
/// over every file, so the result is the same as a fresh load.
pub fn load_dir_cached(
    dir: &Path,
    config: &Config,
    cache: &mut SpecCache,
) -> Result<Arc<Loaded>, LoadError> {
    let loaded = Arc::new(load(dir, config, Some(&mut *cache))?);
    cache.last = loaded.clone();
    Ok(loaded)
}

/// The cached file's check, its app taken from the last load. None when the app is not there
/// (a cross-file rule refused it last time): the file is checked again.
fn from_cache(entry: &CacheEntry, last: &Loaded, rel: &Path) -> Option<Checked> {
    let app = match &entry.app {
        None => None,
        Some(key) => {
            let i = last
                .apps
                .binary_search_by(|a| (&a.namespace, &a.name).cmp(&(&key.namespace, &key.name)))
                .ok()?;
            let app = &last.apps[i];
            if app.source_path != rel {
                return None;
            }
            Some(app.clone())
        }
    };
    Some(Checked {
        app,
        diagnostics: entry.diagnostics.clone(),
        name_hint: entry.name_hint.clone(),
        namespace_hint: entry.namespace_hint.clone(),
    })
}

fn load(
    dir: &Path,
    config: &Config,
    mut cache: Option<&mut SpecCache>,
) -> Result<Loaded, LoadError> {
    if let Some(cache) = cache.as_deref_mut()
        && cache.config.as_ref() != Some(config)
    {
        cache.entries.clear();
        cache.last = Arc::default();
        cache.config = Some(config.clone());
    }
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
    let walked = walk::walk(dir).map_err(|source| LoadError::ReadDir {
        dir: dir.to_path_buf(),
        source,
    })?;
    let mut loaded = Loaded {
        files: walked.specs.len(),
        ..Loaded::default()
    };
    // Broken directories are not cached: the walk finds them afresh on every load.
    for (broken, diagnostic) in walked.broken_dirs {
        loaded.broken_dirs.push(broken);
        loaded.diagnostics.push(diagnostic);
    }

    let mut checked: Vec<(PathBuf, Checked)> = match cache.as_deref_mut() {
        None => check_in_parallel(dir, walked.specs, config),
        Some(cache) => walked
            .specs
            .into_iter()
            .map(|found| check_found(dir, found, config, Some(&mut *cache)))
            .collect(),
    };
    if let Some(cache) = cache {
        let present: std::collections::HashSet<&PathBuf> = checked.iter().map(|(p, _)| p).collect();
        cache.entries.retain(|path, _| present.contains(path));
    }
    cross_file_rules(&mut checked);
    dependencies::check(&mut checked, &config.defaults.namespace);

    // Exactly as many apps as there are: the daemon keeps them for its whole life, and a
    // vector grown by doubling holds up to twice that (an App is large).
    loaded
        .apps
        .reserve_exact(checked.iter().filter(|(_, c)| c.app.is_some()).count());
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

/// How many files one thread of [`check_in_parallel`] takes at least: below that a thread costs
/// more than it saves.
const FILES_PER_THREAD: usize = 256;

/// Every found file checked, in the walk's order, the work split across the cores: checking is
/// all CPU (parse and validate), and `validate`, `render` and a one-shot plan of a large fleet
/// wait on it.
fn check_in_parallel(
    dir: &Path,
    specs: Vec<walk::Found>,
    config: &Config,
) -> Vec<(PathBuf, Checked)> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(specs.len() / FILES_PER_THREAD)
        .max(1);
    if threads == 1 {
        return specs
            .into_iter()
            .map(|found| check_found(dir, found, config, None))
            .collect();
    }
    let per_thread = specs.len().div_ceil(threads);
    let mut specs = specs.into_iter();
    let parts: Vec<Vec<walk::Found>> = (0..threads)
        .map(|_| specs.by_ref().take(per_thread).collect())
        .collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|part| {
                scope.spawn(move || {
                    part.into_iter()
                        .map(|found| check_found(dir, found, config, None))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| match handle.join() {
                Ok(checked) => checked,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// One found file read and checked; with a cache, taken from it when its text is unchanged.
fn check_found(
    dir: &Path,
    found: walk::Found,
    config: &Config,
    cache: Option<&mut SpecCache>,
) -> (PathBuf, Checked) {
    let walk::Found { path, open } = found;
    let rel = path.strip_prefix(dir).unwrap_or(&path).to_path_buf();
    let checked = match open.and_then(|open| read(&path, &open).map_err(Box::new)) {
        Ok(text) => match cache {
            None => check_source(&path, &rel, &text, config),
            Some(cache) => {
                let hash = text_hash(&text);
                let cached = cache
                    .entries
                    .get(&path)
                    .filter(|e| e.hash == hash)
                    .and_then(|e| from_cache(e, &cache.last, &rel));
                match cached {
                    Some(c) => c,
                    None => {
                        let c = check_source(&path, &rel, &text, config);
                        let entry = CacheEntry {
                            hash,
                            diagnostics: c.diagnostics.clone(),
                            name_hint: c.name_hint.clone(),
                            namespace_hint: c.namespace_hint.clone(),
                            app: c.app.as_ref().map(App::key),
                        };
                        cache.entries.insert(path.clone(), entry);
                        c
                    }
                }
            }
        },
        Err(d) => Checked {
            app: None,
            diagnostics: vec![*d],
            name_hint: rel
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            namespace_hint: None,
        },
    };
    (path, checked)
}

/// Two files must not declare the same app, and two apps of a namespace must not render Services
/// of the same name. Both files of a clash become broken: neither may win silently.
fn cross_file_rules(checked: &mut [(PathBuf, Checked)]) {
    let mut apps: BTreeMap<AppKey, Vec<usize>> = BTreeMap::new();
    let mut services: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (i, (_, c)) in checked.iter().enumerate() {
        if let Some(app) = &c.app {
            apps.entry(AppKey::new(app.namespace.clone(), app.name.clone()))
                .or_default()
                .push(i);
            let mut names = vec![app.headless.clone()];
            names.extend(app.access_services().map(|s| s.name.clone()));
            for n in names {
                services
                    .entry((app.namespace.clone(), n))
                    .or_default()
                    .push(i);
            }
        }
    }
    let mut clashes: Vec<(usize, Diagnostic)> = Vec::new();
    for (
        AppKey {
            namespace: ns,
            name,
        },
        idx,
    ) in &apps
    {
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
                "apps: {}; set `headless`, [service] `name` or rename a [services.NAME] so each Service name is used once",
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

#[cfg(test)]
mod dir_tests;

#[cfg(test)]
mod cache_tests {
    use super::*;

    fn app(replicas: u32) -> String {
        format!("replicas = {replicas}\n[containers.web]\nimage = \"nginx:1.27\"\n")
    }

    #[test]
    fn a_cached_reload_equals_a_fresh_load_after_edits_adds_and_removals() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = Config::default();
        std::fs::write(dir.path().join("a.toml"), app(1)).expect("write");
        std::fs::write(dir.path().join("b.toml"), app(1)).expect("write");
        let mut cache = SpecCache::default();
        let first = load_dir_cached(dir.path(), &config, &mut cache).expect("load");
        assert_eq!(first.apps.len(), 2);

        std::fs::write(dir.path().join("a.toml"), app(3)).expect("edit");
        std::fs::remove_file(dir.path().join("b.toml")).expect("remove");
        std::fs::write(dir.path().join("c.toml"), "replicas = [\n").expect("broken");
        let cached = load_dir_cached(dir.path(), &config, &mut cache).expect("reload");
        let fresh = load_dir(dir.path(), &config).expect("fresh");
        assert_eq!(cached.apps, fresh.apps);
        assert_eq!(cached.broken, fresh.broken);
        assert_eq!(cached.apps[0].replicas, 3, "the edit is seen");
        assert_eq!(cache.entries.len(), 2, "the removed file left the cache");

        // Duplicates across files are found even when both files come from the cache.
        std::fs::write(
            dir.path().join("c.toml"),
            "name = \"a\"\n".to_string() + &app(1),
        )
        .expect("dup");
        let dup = load_dir_cached(dir.path(), &config, &mut cache).expect("reload");
        assert_eq!(dup.broken.len(), 2, "{:?}", dup.broken);
        let again = load_dir_cached(dir.path(), &config, &mut cache).expect("reload");
        assert_eq!(again.broken, dup.broken);

        // The clash resolved, a.toml (unchanged, its app refused last time) is valid again.
        std::fs::remove_file(dir.path().join("c.toml")).expect("remove");
        let fixed = load_dir_cached(dir.path(), &config, &mut cache).expect("reload");
        let fresh = load_dir(dir.path(), &config).expect("fresh");
        assert_eq!(fixed.apps, fresh.apps);
        assert_eq!(fixed.apps.len(), 1);
        assert!(fixed.broken.is_empty());
    }

    #[test]
    fn an_app_is_found_by_key_across_namespaces_and_not_found_when_absent_or_broken() {
        let dir = tempfile::tempdir().expect("temp dir");
        // Names chosen so that namespace order and name order disagree: the lookup must order
        // by namespace first, as the load sorts.
        let files = [
            ("z.toml", "namespace = \"alpha\"\n"),
            ("a.toml", "namespace = \"beta\"\n"),
            ("m.toml", ""),
            ("team/a.toml", "namespace = \"alpha\"\n"),
            ("b.toml", "namespace = \"alpha\"\nname = \"z\"\n"),
            ("broken.toml", "replicas = [\n"),
        ];
        for (rel, head) in files {
            let path = dir.path().join(rel);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
            std::fs::write(path, head.to_string() + &app(1)).expect("write");
        }
        let loaded = load_dir(dir.path(), &Config::default()).expect("load");
        assert!(
            !loaded.broken.is_empty(),
            "z.toml and b.toml clash, and broken.toml"
        );
        for app in &loaded.apps {
            let found = loaded.app(&app.namespace, &app.name).expect("found");
            assert!(std::ptr::eq(found, app));
            assert!(
                loaded
                    .app_of(&AppKey::new(&app.namespace, &app.name))
                    .is_some()
            );
        }
        for (ns, name) in [
            ("alpha", "a"),
            ("beta", "a"),
            ("default", "m"),
            ("alpha", "z"),
            ("default", "broken"),
            ("gamma", "a"),
            ("", ""),
        ] {
            let linear = loaded
                .apps
                .iter()
                .find(|a| a.namespace == ns && a.name == name);
            assert_eq!(
                loaded.app(ns, name).map(|a| &a.name),
                linear.map(|a| &a.name),
                "{ns}/{name}"
            );
        }
        assert!(loaded.app("alpha", "a").is_some() && loaded.app("beta", "a").is_some());
        assert!(loaded.app("alpha", "z").is_none(), "a duplicate is no app");
        assert!(loaded.app("default", "broken").is_none());
    }
}
