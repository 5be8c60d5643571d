//! File events → "rescan" signals for the daemon.
//!
//! This module owns the inotify side of `berth watch DIR`: it turns the raw, noisy stream of
//! file-system events into a few coalesced [`WatchEvent::Rescan`] signals. It never reads a spec
//! itself. A signal names the spec files it saw change when nothing else happened (no removal,
//! no directory, no lost events, no link swap): the daemon may then re-check just those files,
//! and it checks itself whether that is enough. Anything else says "read everything again", so
//! a lost or misread event costs at most one redundant reload.
//!
//! What it copes with (README.md, "The daemon: `berth watch`"):
//! - edits, creates, deletes and renames of `*.toml` files, including atomic saves (write a temp
//!   file, rename it over the spec), coalesced by a quiet window in the task. Editor swap files, hidden
//!   files and directories (`.git/`), and non-`.toml` files are ignored.
//! - event-queue overflow (notify's `Flag::Rescan`) and watcher errors: events were lost, so the
//!   recursive watch is rebuilt (inotify may have missed new subdirectories) and a rescan follows.
//! - symlink swaps: DIR itself, or one of its ancestors, may be a symlink that a checkout tool
//!   replaces atomically (git-sync `--link`). That produces no event inside the old target, so
//!   the parent directories of those links are watched too, DIR is re-resolved on every event
//!   there and on every resync, and the recursive watch follows the new target. Kubernetes
//!   ConfigMap volumes swap a `..data` symlink inside DIR; that is reported the same way.
//! - a periodic resync, a safety net for anything the above misses.
//!
//! Threads and tasks: notify runs its own thread (the inotify reader, asleep until an event).
//! Its callback only sets bits and wakes one tokio task, which waits out the quiet window,
//! re-arms watches and emits signals. There is no debouncer thread between the two: one would
//! hold every event back by its delay and wake on a timer whether or not anything happened.
//! [`SpecWatcher`] owns the watcher and, through a drop guard, that task: dropping it stops
//! both; cancelling the daemon's shutdown token stops the task.

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use notify::event::{CreateKind, EventKind, ModifyKind, RemoveKind, RenameMode};
use notify::{Event, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{debug, info, warn};

use crate::spec::is_spec_file_name;
pub use signal::Rescans;
use signal::{Outbox, Settle, signal_of};

/// A signal to the daemon. Coalesced: one signal stands for every change since the last one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    Rescan {
        reason: RescanReason,
        /// The spec files seen changed, when they are all that happened (each still there);
        /// `None` when the whole directory is to be read again.
        files: Option<BTreeSet<PathBuf>>,
    },
}

/// Why a rescan was signalled; for logs and metrics, never for deciding what to reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RescanReason {
    /// A spec file, or a directory that may hold some, was created, changed, removed or renamed.
    Files,
    /// The kernel's event queue overflowed or the watcher reported an error: events were lost.
    Overflow,
    /// DIR now resolves to a different directory (a symlink swap, or DIR deleted and recreated),
    /// or a ConfigMap-style `..data` link inside DIR was swapped.
    LinkSwapped,
    /// The periodic safety-net resync.
    Resync,
}

impl fmt::Display for RescanReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RescanReason::Files => "spec files changed",
            RescanReason::Overflow => "file events were lost (queue overflow or watcher error)",
            RescanReason::LinkSwapped => "the spec directory was swapped or recreated",
            RescanReason::Resync => "periodic resync",
        })
    }
}

/// Tuning for [`spawn`]; the daemon config validates the values users give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchOptions {
    /// A burst is reported once no event has come for half of this (the other half is the
    /// margin a move's second half has to arrive in).
    pub debounce: Duration,
    /// Quiet time after a lone change of spec files that are still there: nothing says wait,
    /// so it is reported this soon; a second event within it makes it a burst, which waits out
    /// `debounce`. Removals, directories and link swaps always wait out `debounce`.
    pub quick: Duration,
    /// Interval of the safety-net resync.
    pub resync: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            debounce: Duration::from_millis(50),
            quick: Duration::from_millis(5),
            resync: Duration::from_secs(5 * 60),
        }
    }
}

/// Events this close to the first of a change are part of it, not a second change: one save
/// is several inotify events read together (a truncate and a write; a rename's two halves and
/// their pair), and they should not turn a lone edit into a burst.
const SAME_CHANGE: Duration = Duration::from_millis(1);

/// Failures to start watching. Once running, problems are logged and answered by a rescan
/// instead: a daemon must not stop because a checkout briefly removed its directory.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("the spec watcher must be started inside a tokio runtime")]
    Runtime(#[source] tokio::runtime::TryCurrentError),
    #[error("cannot start the file watcher")]
    StartWatcher(#[source] notify::Error),
    #[error("cannot resolve spec directory {}", dir.display())]
    ResolveDir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot watch spec directory {}", dir.display())]
    WatchDir {
        dir: PathBuf,
        #[source]
        source: notify::Error,
    },
    #[error("cannot watch {}, the parent of a symlink on the way to the spec directory", dir.display())]
    WatchParent {
        dir: PathBuf,
        #[source]
        source: notify::Error,
    },
}

/// A running watch on a spec directory. Dropping it stops watching at once and ends its task.
pub struct SpecWatcher {
    /// The only strong reference to the watcher: the task holds a `Weak`, so dropping this
    /// handle removes every inotify watch immediately rather than when the task next wakes.
    watcher: Arc<Mutex<RecommendedWatcher>>,
    /// Cancels the task's token when this handle is dropped, so the task never outlives its
    /// owner even if the daemon's shutdown token is never cancelled.
    stop: DropGuard,
    /// The task that re-arms watches and emits signals; kept so [`SpecWatcher::stop`] can wait
    /// for it.
    task: JoinHandle<()>,
    /// Lets tests inject events that cannot be produced on demand (queue overflow).
    #[cfg(test)]
    shared: Arc<Shared>,
}

impl fmt::Debug for SpecWatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpecWatcher").finish_non_exhaustive()
    }
}

impl SpecWatcher {
    /// Stop watching and wait until the task has ended.
    pub async fn stop(self) {
        let SpecWatcher {
            watcher,
            stop,
            task,
            ..
        } = self;
        drop(stop);
        drop(watcher);
        if let Err(err) = task.await {
            warn!(error = %err, "spec watcher task failed");
        }
    }
}

/// Start watching `dir` (recursively, following symlinks). Must be called inside a tokio
/// runtime. Signals arrive on the returned receiver, which holds at most one: changes made
/// before the daemon takes it are merged into it.
///
/// Start it before the daemon's initial load, so that a change made during that load is
/// signalled rather than missed; the first resync comes one `resync` interval after start.
///
/// The task ends when `shutdown` is cancelled, when the [`SpecWatcher`] is dropped, or when the
/// receiver is dropped; the receiver then yields `None`.
pub fn spawn(
    dir: &Path,
    options: WatchOptions,
    shutdown: CancellationToken,
) -> Result<(SpecWatcher, Rescans), WatchError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(WatchError::Runtime)?;
    // A zero debounce would make a burst reload on every event and a zero resync would panic in
    // `tokio::time::interval`; the config layer should reject both, this only keeps a bad value
    // from hurting the host.
    let debounce = options.debounce.max(Duration::from_millis(8));
    let resync = options.resync.max(Duration::from_millis(10));
    // notify hands over each event as inotify reports it; the quiet window in the task
    // (`settle`) is what turns a burst into one signal.
    let settle = Settle {
        quick: options.quick.min(debounce / 2),
        quiet: debounce / 2,
        cap: debounce * SETTLE_CAP_FACTOR,
        same_change: SAME_CHANGE,
    };

    let shared = Arc::new(Shared {
        pending: AtomicU8::new(0),
        files: Mutex::new(BTreeSet::new()),
        wake: Notify::new(),
        root: Mutex::new(None),
    });
    let handler_shared = Arc::clone(&shared);
    let mut watcher = notify::recommended_watcher(move |result: notify::Result<Event>| {
        handler_shared.handle(result)
    })
    .map_err(WatchError::StartWatcher)?;

    let mut armed = Armed::new(dir);
    armed.arm_initial(&mut watcher, &shared)?;

    let watcher = Arc::new(Mutex::new(watcher));
    let (tx, wake) = mpsc::channel(1);
    let outbox = Arc::new(Mutex::new(None));
    let token = shutdown.child_token();
    let task = runtime.spawn(run(
        armed,
        Arc::downgrade(&watcher),
        Arc::clone(&shared),
        Outbox {
            wake: tx,
            pending: Arc::clone(&outbox),
        },
        token.clone(),
        resync,
        settle,
    ));
    let spec_watcher = SpecWatcher {
        watcher,
        stop: token.drop_guard(),
        task,
        #[cfg(test)]
        shared,
    };
    Ok((
        spec_watcher,
        Rescans {
            wake,
            pending: outbox,
        },
    ))
}

/// Whether a path names a spec file by its name alone (the rules of the spec loader:
/// `*.toml`, not hidden, not an editor's swap, lock or backup file).
pub fn is_spec_event_path(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(is_spec_file_name)
}

/// True while `.git/index.lock` exists in the git checkout containing `dir`: git is in the
/// middle of changing the tree, and reading it now could mix two commits. The daemon waits for
/// it beside its main loop (`git_wait.rs`).
///
/// Walks up from the resolved `dir` to the first `.git`. A `.git` *file* (worktrees, git-sync)
/// points at the real git directory with a `gitdir:` line. Anything unreadable counts as not
/// busy: a broken checkout must not stall the daemon forever.
pub fn git_busy(dir: &Path) -> bool {
    let start = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    for candidate in start.ancestors() {
        let dot_git = candidate.join(".git");
        let Ok(meta) = std::fs::metadata(&dot_git) else {
            continue;
        };
        let git_dir = if meta.is_dir() {
            dot_git
        } else {
            match gitdir_from_file(&dot_git) {
                Some(git_dir) => git_dir,
                None => return false,
            }
        };
        return git_dir.join("index.lock").try_exists().unwrap_or(false);
    }
    false
}

/// The git directory a `.git` file points to (`gitdir: PATH`, relative to the file's directory).
fn gitdir_from_file(dot_git: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(dot_git).ok()?;
    let target = text
        .lines()
        .find_map(|line| line.strip_prefix("gitdir:"))?
        .trim();
    if target.is_empty() {
        return None;
    }
    let target = Path::new(target);
    Some(if target.is_absolute() {
        target.to_path_buf()
    } else {
        dot_git.parent()?.join(target)
    })
}

// Signal bits set by the notify thread and taken by the task.
/// A spec file or a directory that may hold some changed.
const FILES: u8 = 1;
/// Events were lost: rebuild the recursive watch and rescan.
const OVERFLOW: u8 = 1 << 1;
/// A `..data` link inside DIR was swapped (ConfigMap volume).
const DATA_LINK: u8 = 1 << 2;
/// Something happened next to a link on the way to DIR, or to DIR itself: re-resolve it.
const RESOLVE: u8 = 1 << 3;
/// A directory that may hold specs appeared or went, or a spec file went: read everything.
const TREE: u8 = 1 << 4;

/// State shared between the watcher's callback (notify's thread) and the task.
struct Shared {
    /// Signal bits not yet taken by the task; OR-ed together, so bursts coalesce for free.
    pending: AtomicU8,
    /// The spec files behind the [`FILES`] bit not yet taken by the task. Added before the bit
    /// is set, so the task that takes the bit finds them.
    files: Mutex<BTreeSet<PathBuf>>,
    /// Wakes the task. `notify_one` stores a permit when the task is busy, so no wake-up is lost.
    wake: Notify,
    /// The directory currently watched recursively, to tell its events from those of the
    /// parent watches; `None` while DIR does not resolve.
    root: Mutex<Option<PathBuf>>,
}

impl Shared {
    /// Runs on notify's thread for each event: classify, record, wake. No blocking beyond a
    /// `stat`.
    fn handle(&self, result: notify::Result<Event>) {
        let bits = match result {
            // The daemon's own reads open and close every spec: most events end here, before
            // any lock is taken.
            Ok(event) if ignored(&event) => 0,
            Ok(event) => {
                let mut files = Vec::new();
                let bits = {
                    let root = self.root.lock().unwrap_or_else(PoisonError::into_inner);
                    classify(&event, root.as_deref(), &mut files)
                };
                if !files.is_empty() {
                    self.files
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .extend(files);
                }
                bits
            }
            Err(error) => {
                warn!(error = %error, "file watcher error; rescanning");
                OVERFLOW
            }
        };
        self.signal(bits);
    }

    fn signal(&self, bits: u8) {
        if bits != 0 {
            self.pending.fetch_or(bits, Ordering::AcqRel);
            self.wake.notify_one();
        }
    }
}

/// Events that never change what the loader reads. Access events include IN_OPEN: the daemon
/// reading the specs would otherwise trigger rescans of its own reads. Changes always come with
/// a modify, create, remove or rename.
fn ignored(event: &Event) -> bool {
    !event.need_rescan() && matches!(event.kind, EventKind::Access(_) | EventKind::Other)
}

/// The signal bits one event stands for; the spec files it touched go to `files`.
fn classify(event: &Event, root: Option<&Path>, files: &mut Vec<PathBuf>) -> u8 {
    if event.need_rescan() {
        return OVERFLOW;
    }
    if ignored(event) {
        return 0;
    }
    event.paths.iter().fold(0, |bits, path| {
        let bit = classify_path(&event.kind, path, root);
        if bit == FILES {
            files.push(path.clone());
        }
        bits | bit
    })
}

fn classify_path(kind: &EventKind, path: &Path, root: Option<&Path>) -> u8 {
    // Outside the recursive watch means a parent watch: a link on the way to DIR may have
    // moved. So does anything happening to the watched root itself (deleted, moved away).
    let Some(relative) = root.and_then(|root| path.strip_prefix(root).ok()) else {
        return RESOLVE;
    };
    let mut components = relative.components();
    let Some(first) = components.next() else {
        return RESOLVE;
    };
    // Kubernetes' atomic writer publishes a ConfigMap by renaming a new `..data` symlink over
    // the old one; the visible `app.toml -> ..data/app.toml` links themselves never change.
    if first.as_os_str() == "..data" {
        return DATA_LINK;
    }
    // Hidden anywhere below DIR (`.git/`, `.app.toml.swp`, `.tmp-xyz/`): the loader skips these.
    if relative
        .components()
        .any(|c| c.as_os_str().as_encoded_bytes().starts_with(b"."))
    {
        return 0;
    }
    if is_spec_event_path(path) {
        spec_file_bit(kind, path)
    } else if may_hold_specs(kind, path) {
        TREE
    } else {
        0
    }
}

/// A spec file's event: [`FILES`] when the file is (still) there to be read, [`TREE`] when it
/// went (removed, or renamed away): a spec that goes may be a removal, which waits for the whole
/// directory (and the full debounce, in case it is the first half of a move).
fn spec_file_bit(kind: &EventKind, path: &Path) -> u8 {
    let went = match kind {
        EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From)) => true,
        // Both halves of a rename come as one event: the first path is where it came from.
        // Any other kind is judged by whether the file is there now.
        _ => !path.exists(),
    };
    if went { TREE } else { FILES }
}

/// Whether a non-spec path is a directory whose appearance or disappearance changes the set of
/// specs. Needed because a renamed directory is one rename event, and the files in it are
/// never named.
fn may_hold_specs(kind: &EventKind, path: &Path) -> bool {
    match kind {
        EventKind::Create(CreateKind::Folder) | EventKind::Remove(RemoveKind::Folder) => true,
        // A symlink to a directory is created as a "file"; `is_dir` follows it.
        EventKind::Create(_) => path.is_dir(),
        EventKind::Remove(RemoveKind::File) => false,
        // Renames and removals of unknown kind: gone paths cannot be stat-ed, so guess from
        // the name. A false positive costs one redundant reload.
        EventKind::Modify(ModifyKind::Name(_)) | EventKind::Remove(_) => match path.metadata() {
            Ok(meta) => meta.is_dir(),
            Err(_) => path.extension().is_none(),
        },
        _ => false,
    }
}

/// What DIR resolved to when it was armed. The inode is part of it so that a directory deleted
/// and recreated under the same path (a fresh clone) is re-armed too: the old inotify watch
/// died with the old directory.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

fn resolve(dir: &Path) -> io::Result<Target> {
    let path = dir.canonicalize()?;
    let meta = std::fs::metadata(&path)?;
    if !meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            "not a directory",
        ));
    }
    Ok(Target {
        path,
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

/// The watches in place. Owned by the task after start-up; only it changes them.
struct Armed {
    /// DIR as given, made absolute but with its symlinks kept: they are what we watch for.
    dir: PathBuf,
    /// The recursively watched target; `None` while DIR does not resolve or arming failed.
    target: Option<Target>,
    /// Directories watched non-recursively because a link on the way to DIR lives in them.
    parents: BTreeSet<PathBuf>,
}

impl Armed {
    fn new(dir: &Path) -> Armed {
        Armed {
            dir: std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()),
            target: None,
            parents: BTreeSet::new(),
        }
    }

    /// First arming: every failure is an error for the caller, who can still report it.
    fn arm_initial(
        &mut self,
        watcher: &mut RecommendedWatcher,
        shared: &Shared,
    ) -> Result<(), WatchError> {
        let target = resolve(&self.dir).map_err(|source| WatchError::ResolveDir {
            dir: self.dir.clone(),
            source,
        })?;
        set_root(shared, Some(target.path.clone()));
        watcher
            .watch(&target.path, RecursiveMode::Recursive)
            .map_err(|source| WatchError::WatchDir {
                dir: target.path.clone(),
                source,
            })?;
        for parent in link_parents(&self.dir, Some(&target.path)) {
            watcher
                .watch(&parent, RecursiveMode::NonRecursive)
                .map_err(|source| WatchError::WatchParent {
                    dir: parent.clone(),
                    source,
                })?;
            self.parents.insert(parent);
        }
        debug!(dir = %self.dir.display(), target = %target.path.display(), parents = ?self.parents, "watching specs");
        self.target = Some(target);
        Ok(())
    }

    /// Re-resolve DIR and move the watches if it changed (or unconditionally with `force`,
    /// after lost events). Returns whether the target changed. Failures are logged, not
    /// returned: the next event or resync retries, and the caller signals a rescan anyway.
    fn rearm(&mut self, watcher: &mut RecommendedWatcher, shared: &Shared, force: bool) -> bool {
        let resolved = resolve(&self.dir);
        let changed = match (&resolved, &self.target) {
            (Ok(new), Some(old)) => new != old,
            (Err(_), None) => false,
            _ => true,
        };
        if changed || force {
            // Unwatch first: a recreated directory has the same path, and notify keys watches
            // by path. Nothing is lost in the gap, because a rescan follows this re-arm.
            if let Some(old) = self.target.take()
                && let Err(err) = watcher.unwatch(&old.path)
            {
                // Expected when the old target is gone: inotify dropped the watch already.
                debug!(dir = %old.path.display(), error = %err, "unwatching the old target");
            }
            match resolved {
                Ok(new) => {
                    set_root(shared, Some(new.path.clone()));
                    match watcher.watch(&new.path, RecursiveMode::Recursive) {
                        Ok(()) => {
                            info!(dir = %self.dir.display(), target = %new.path.display(), "watching new directory target");
                            self.target = Some(new);
                        }
                        Err(err) => {
                            warn!(dir = %new.path.display(), error = %err, "cannot watch spec directory; retrying on the next event or resync");
                            // A recursive watch can fail half-way; drop what it added.
                            let _ = watcher.unwatch(&new.path);
                            set_root(shared, None);
                        }
                    }
                }
                Err(err) => {
                    warn!(dir = %self.dir.display(), error = %err, "spec directory does not resolve; waiting for it to come back");
                    set_root(shared, None);
                }
            }
        }
        self.rearm_parents(watcher);
        changed
    }

    /// Bring the parent watches in line with the links on the way to DIR now; the set changes
    /// when a swapped link points into a different directory tree.
    fn rearm_parents(&mut self, watcher: &mut RecommendedWatcher) {
        let root = self.target.as_ref().map(|t| t.path.as_path());
        let wanted = link_parents(&self.dir, root);
        for gone in self.parents.difference(&wanted) {
            if let Err(err) = watcher.unwatch(gone) {
                debug!(dir = %gone.display(), error = %err, "unwatching a parent directory");
            }
        }
        let mut armed = BTreeSet::new();
        for parent in wanted {
            if self.parents.contains(&parent) {
                armed.insert(parent);
                continue;
            }
            match watcher.watch(&parent, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    armed.insert(parent);
                }
                Err(err) => {
                    warn!(dir = %parent.display(), error = %err, "cannot watch parent directory; symlink swaps there are seen at the next resync");
                }
            }
        }
        self.parents = armed;
    }
}

fn set_root(shared: &Shared, root: Option<PathBuf>) {
    *shared.root.lock().unwrap_or_else(PoisonError::into_inner) = root;
}

/// The directories to watch non-recursively: DIR's parent, and the parent of every ancestor of
/// DIR that is a symlink (git-sync may publish the checkout at `/srv/repo` while DIR is
/// `/srv/repo/apps`). Resolved, because notify reports events under the path it was given.
/// Directories inside the recursive watch are left out: they are covered, and watching one
/// inode under two paths confuses notify's bookkeeping.
fn link_parents(dir: &Path, root: Option<&Path>) -> BTreeSet<PathBuf> {
    let mut parents = BTreeSet::new();
    for ancestor in dir.ancestors() {
        let is_link = std::fs::symlink_metadata(ancestor)
            .map(|meta| meta.file_type().is_symlink())
            .unwrap_or(false);
        if ancestor != dir && !is_link {
            continue;
        }
        let Some(parent) = ancestor.parent() else {
            continue;
        };
        let Ok(parent) = parent.canonicalize() else {
            continue;
        };
        if root.is_some_and(|root| parent.starts_with(root)) {
            continue;
        }
        parents.insert(parent);
    }
    parents
}

/// A burst ends after this many debounce intervals even if events keep coming, so that a
/// directory that never stops changing is still reloaded now and then.
const SETTLE_CAP_FACTOR: u32 = 20;

/// The task: wait for a signal or the resync tick, re-arm if needed, tell the daemon.
async fn run(
    mut armed: Armed,
    watcher: Weak<Mutex<RecommendedWatcher>>,
    shared: Arc<Shared>,
    outbox: Outbox,
    stop: CancellationToken,
    resync: Duration,
    settle: Settle,
) {
    // The first resync is one interval away: the daemon does its own initial load.
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + resync, resync);
    // After a stall, one resync is enough; a burst of catch-up ticks would only repeat it.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let resync_due = tokio::select! {
            () = stop.cancelled() => break,
            () = shared.wake.notified() => false,
            _ = ticker.tick() => true,
        };
        if !resync_due && !settle.wait(&shared, &stop).await {
            break;
        }
        // The files first: the handler adds them before it sets the bit, so every file whose
        // bit is taken here is in the set (a later file at worst comes one signal early).
        let files =
            std::mem::take(&mut *shared.files.lock().unwrap_or_else(PoisonError::into_inner));
        let bits = shared.pending.swap(0, Ordering::AcqRel);

        let mut relinked = false;
        if resync_due || bits & (RESOLVE | OVERFLOW) != 0 {
            let Some(watcher) = watcher.upgrade() else {
                break; // SpecWatcher dropped: nothing is watched any more.
            };
            let shared = Arc::clone(&shared);
            let force = bits & OVERFLOW != 0;
            // canonicalize, stat and a recursive inotify walk are blocking file-system work.
            let joined = tokio::task::spawn_blocking(move || {
                let mut guard = watcher.lock().unwrap_or_else(PoisonError::into_inner);
                let changed = armed.rearm(&mut guard, &shared, force);
                (armed, changed)
            })
            .await;
            match joined {
                Ok((back, changed)) => {
                    armed = back;
                    relinked = changed;
                }
                Err(err) => {
                    warn!(error = %err, "re-arming the spec watcher failed");
                    break;
                }
            }
        }

        let Some(signal) = signal_of(bits, relinked, resync_due, files) else {
            continue; // only parent-directory noise, and DIR still resolves to the same place
        };
        let reason = signal.reason;
        if !outbox.send(signal) {
            break;
        }
        debug!(%reason, "rescan signalled");
    }
}

mod signal;

#[cfg(test)]
mod tests;
