//! Walking a spec directory: which files are spec files, and which directories berth cannot walk.
//!
//! Two promises rest on this walk. A directory berth cannot walk is reported as a [`BrokenDir`],
//! never skipped: skipped, its apps would look deleted and berth would remove live apps because
//! of a bad checkout or a wrong permission. And nothing outside the spec directory is read: a
//! symlink that leads out of the tree is refused without being followed, so a link to a key file
//! can never have its lines printed in a diagnostic or a log.

use std::ffi::OsStr;
use std::io::{Error, ErrorKind};
use std::path::{Path, PathBuf};

use super::{BrokenDir, Diagnostic, is_spec_file_name};

/// Deepest directory nesting walked below the spec directory. Symlink loops are found by their
/// real paths (see [`Walker::link`]); this is the backstop, and a directory this deep is broken.
pub const MAX_DEPTH: usize = 16;

/// A spec file found by the walk.
pub(super) struct Found {
    /// As found: the spec directory joined with the path relative to it. Diagnostics name this.
    pub path: PathBuf,
    /// What to open: the file's real path, checked to be inside the spec directory (opening it
    /// follows no link, unless the tree changes between the walk and the read), or `path`
    /// itself for a link that cannot be followed (reported when it is read). `Err` when the
    /// file is refused: it is never opened.
    pub open: Result<PathBuf, Box<Diagnostic>>,
}

/// What the walk found, each list sorted by path.
pub(super) struct Walk {
    pub specs: Vec<Found>,
    pub broken_dirs: Vec<(BrokenDir, Diagnostic)>,
}

/// Walk `dir`. An error means the spec directory itself cannot be read (or its real path cannot
/// be found); a subdirectory that cannot be walked is a [`BrokenDir`] instead.
pub(super) fn walk(dir: &Path) -> std::io::Result<Walk> {
    // The spec directory may itself be a symlink (git-sync's `--link` publishes each checkout
    // through one): what must not be left is its real path, resolved once per load.
    let root = std::fs::canonicalize(dir)?;
    let mut walker = Walker {
        dir,
        stack: vec![root.clone()],
        root,
        specs: Vec::new(),
        broken: Vec::new(),
    };
    walker.walk_dir(dir, 0)?;
    let mut walk = Walk {
        specs: walker.specs,
        broken_dirs: walker.broken,
    };
    walk.specs.sort_by(|a, b| a.path.cmp(&b.path));
    walk.broken_dirs.sort_by(|a, b| a.0.path.cmp(&b.0.path));
    Ok(walk)
}

struct Walker<'a> {
    /// The spec directory as given: found paths are under it, source paths relative to it.
    dir: &'a Path,
    /// Its real path: nothing whose real path is not under it is opened or walked.
    root: PathBuf,
    /// The real paths of the directories being walked, outermost first.
    stack: Vec<PathBuf>,
    specs: Vec<Found>,
    broken: Vec<(BrokenDir, Diagnostic)>,
}

/// Why a directory cannot be walked.
enum Why {
    /// A symlink whose target does not exist (the link's text).
    Dangling(PathBuf),
    /// A symlink the system cannot follow (ELOOP), with the error.
    LinkLoop(Error),
    /// A symlink to a directory that contains it (its real path): walking it never ends.
    LoopBack(PathBuf),
    /// read_dir, an entry or a symlink's target failed: EACCES, EIO.
    Unreadable(Error),
    TooDeep,
    /// Its real path is not under the spec directory's.
    Outside(PathBuf),
}

impl Walker<'_> {
    /// Collect the spec files under `path`, a directory whose real path is last on the stack.
    /// An error means `path` cannot be walked as a whole.
    fn walk_dir(&mut self, path: &Path, depth: usize) -> std::io::Result<()> {
        let entries = std::fs::read_dir(path)?;
        // A directory that may be listed but not entered (mode r--) lists its names, but none of
        // its files can be opened: one stat through it tells, so the whole directory is broken
        // rather than each spec in it.
        std::fs::metadata(path.join("."))?;
        for entry in entries {
            let entry = entry?;
            let file_name = entry.file_name();
            let name = file_name.to_string_lossy();
            if name.starts_with('.') {
                continue; // hidden files and directories (.git, editor temp files)
            }
            let path = entry.path();
            let file_type = match entry.file_type() {
                Ok(t) => t,
                Err(e) if e.kind() == ErrorKind::NotFound => continue, // removed while we looked
                Err(e) => return Err(e),
            };
            if file_type.is_symlink() {
                self.link(path, &file_name, depth);
            } else if is_spec_file_name(&name) {
                // Whatever it is — a file, a directory, a FIFO — a `.toml` name claims an app;
                // `read` refuses what is not a regular file, so the app is left alone. Opened by
                // its real path, like every file read: `path` may pass through a link.
                self.specs.push(Found {
                    open: Ok(self.real_dir().join(&file_name)),
                    path,
                });
            } else if file_type.is_dir() {
                let real = self.real_dir().join(&file_name);
                self.enter(path, real, depth + 1);
            }
        }
        Ok(())
    }

    /// The real path of the directory being walked.
    fn real_dir(&self) -> &Path {
        // The stack starts with the root and `enter` pops only what it pushed.
        self.stack.last().map_or(&self.root, PathBuf::as_path)
    }

    /// A symlink in the tree: followed only when its real path stays inside the spec directory.
    fn link(&mut self, path: PathBuf, file_name: &OsStr, depth: usize) {
        let name = file_name.to_string_lossy();
        let spec = is_spec_file_name(&name);
        let real = match std::fs::canonicalize(&path) {
            Ok(real) => real,
            // A spec-named link that cannot be followed is a broken spec: `read` says why
            // (dangling, a loop, permission denied).
            Err(_) if spec => {
                self.specs.push(Found {
                    open: Ok(path.clone()),
                    path,
                });
                return;
            }
            // A link that cannot be followed and is not named like a spec may have pointed at a
            // directory of specs or at some other file; nothing on disk tells which. It is taken
            // for a directory (broken: its apps are left alone) unless its name looks like a
            // non-spec file, so a dangling `notes.md` or `x.toml~` does not stop every apply.
            // Erring towards "directory" costs an error until the link is fixed; erring the
            // other way would remove the apps of a directory whose link broke.
            Err(_) if looks_like_other_file(&name) => return,
            Err(e) => {
                let why = if e.kind() == ErrorKind::NotFound {
                    Why::Dangling(std::fs::read_link(&path).unwrap_or_default())
                } else if is_loop(&e) {
                    Why::LinkLoop(e)
                } else {
                    Why::Unreadable(e)
                };
                self.broken(path, why);
                return;
            }
        };
        if !real.starts_with(&self.root) {
            if spec {
                let d = outside_file(&path, &real, &self.root);
                self.specs.push(Found {
                    open: Err(Box::new(d)),
                    path,
                });
            } else if std::fs::metadata(&real).is_ok_and(|m| m.is_dir()) {
                self.broken(path, Why::Outside(real));
            }
            // A link out of the tree to a file not named like a spec is ignored, like any such
            // file: it is never opened.
            return;
        }
        if spec {
            // Opened by its real path, the one just checked to be inside the tree.
            self.specs.push(Found {
                open: Ok(real),
                path,
            });
            return;
        }
        if !std::fs::metadata(&real).is_ok_and(|m| m.is_dir()) {
            return; // a file not named like a spec
        }
        // A link to a directory being walked, or to one that contains it, would walk itself
        // forever. Any endless walk must take such a link, since without links a walk only
        // goes down.
        if self.stack.iter().any(|walked| walked.starts_with(&real)) {
            self.broken(path, Why::LoopBack(real));
            return;
        }
        self.enter(path, real, depth + 1);
    }

    /// Walk the subdirectory `path` (real path `real`) at `depth` below the spec directory.
    fn enter(&mut self, path: PathBuf, real: PathBuf, depth: usize) {
        if depth > MAX_DEPTH {
            self.broken(path, Why::TooDeep);
            return;
        }
        let (specs, broken) = (self.specs.len(), self.broken.len());
        self.stack.push(real);
        let walked = self.walk_dir(&path, depth);
        self.stack.pop();
        if let Err(e) = walked {
            // The whole directory is broken: what was found under it before the error is
            // dropped, so every app under it is treated alike (left as it is), whatever order
            // the entries were listed in.
            self.specs.truncate(specs);
            self.broken.truncate(broken);
            self.broken(path, Why::Unreadable(e));
        }
    }

    fn broken(&mut self, path: PathBuf, why: Why) {
        let diagnostic = broken_dir_diagnostic(&path, &self.root, why);
        let source_path = path.strip_prefix(self.dir).unwrap_or(&path).to_path_buf();
        self.broken
            .push((BrokenDir { path, source_path }, diagnostic));
    }
}

/// Does a name that cannot be followed look like a file that is not a spec (so a dangling link
/// with this name is taken for a deleted file, not a directory)? Yes when it has an extension
/// with a letter in it, other than `toml` and `d`: `notes.md`, `x.toml~`, `#x.toml#` are files;
/// `team-a`, `conf.d` (the usual name of a directory of configs) and `v1.2` may be directories.
fn looks_like_other_file(name: &str) -> bool {
    Path::new(name)
        .extension()
        .map(OsStr::to_string_lossy)
        .is_some_and(|ext| ext != "toml" && ext != "d" && ext.chars().any(char::is_alphabetic))
}

/// Is this the error of a symlink loop (ELOOP)?
fn is_loop(e: &Error) -> bool {
    // `ErrorKind::FilesystemLoop` is not stable; ELOOP is 40 on Linux and 62 on macOS and the BSDs.
    const ELOOP: i32 = if cfg!(target_os = "linux") { 40 } else { 62 };
    e.raw_os_error() == Some(ELOOP)
}

/// The error for a spec file whose real path is outside the spec directory. It names paths only:
/// the file is never opened, so none of its text can appear here.
fn outside_file(path: &Path, real: &Path, root: &Path) -> Diagnostic {
    Diagnostic::error(
        path,
        "read-error",
        format!(
            "the file resolves outside the spec directory ({} is not under {}); it is not read",
            real.display(),
            root.display()
        ),
    )
    .help(
        "berth reads no file outside the spec directory, so a link can never expose a key or \
         another file in a diagnostic or a log; copy the spec into the spec directory or point \
         the link at a file inside it; until then the app of this file is left as it is in \
         the cluster",
    )
}

/// The error for a directory berth cannot walk: what is wrong, and how to fix it.
fn broken_dir_diagnostic(path: &Path, root: &Path, why: Why) -> Diagnostic {
    const LEFT: &str =
        "until then every app whose spec file lies under it is left as it is in the cluster";
    let (what, fix) = match why {
        Why::Dangling(target) => (
            format!(
                "it is a dangling symbolic link ({} does not exist)",
                target.display()
            ),
            "point the link at a directory inside the spec directory, or remove the link if \
             its apps are meant to be removed"
                .to_string(),
        ),
        Why::LinkLoop(e) => (
            format!("it is a symbolic link loop ({e})"),
            "a link that leads back to itself never reaches a directory; point it at a \
             directory inside the spec directory, or remove it"
                .to_string(),
        ),
        Why::LoopBack(real) => (
            format!(
                "it is a symbolic link loop (it leads to {}, which contains the link)",
                real.display()
            ),
            "a link to a directory that contains it would be walked forever; point it \
             elsewhere or remove it"
                .to_string(),
        ),
        Why::Unreadable(e) if e.kind() == ErrorKind::PermissionDenied => (
            "permission denied".to_string(),
            "let the user berth runs as read and enter the directory (mode r-x)".to_string(),
        ),
        Why::Unreadable(e) => (
            e.to_string(),
            "check the directory's permissions and the file system it is on".to_string(),
        ),
        Why::TooDeep => (
            format!("it is deeper than {MAX_DEPTH} levels below the spec directory"),
            format!(
                "berth walks at most {MAX_DEPTH} levels of subdirectories; move its spec files up"
            ),
        ),
        Why::Outside(real) => (
            format!(
                "it resolves outside the spec directory ({} is not under {})",
                real.display(),
                root.display()
            ),
            "berth reads nothing outside the spec directory; move the directory into it, or \
             point the link at a directory inside it"
                .to_string(),
        ),
    };
    Diagnostic::error(
        path,
        "read-error",
        format!("cannot walk this directory: {what}"),
    )
    .help(format!("{fix}; {LEFT}"))
}
