//! The spec watcher against a real directory: debouncing, editor saves, symlink swaps, git
//! locks.

use super::*;
use std::fs;
use std::os::unix::fs::symlink;
use tokio::time::timeout;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Generous: the test machine is small, and a test runtime sharing two cores with a starting
/// control plane and the rest of the suite can be held up for seconds.
const EXPECT: Duration = Duration::from_secs(5);
/// How long "nothing happens" is watched for.
const QUIET: Duration = Duration::from_millis(300);

fn options() -> WatchOptions {
    WatchOptions {
        resync: Duration::from_secs(3600),
        ..WatchOptions::default()
    }
}

fn start(dir: &Path) -> (SpecWatcher, Rescans, CancellationToken) {
    let token = CancellationToken::new();
    let (watcher, rx) = spawn(dir, options(), token.clone()).expect("watcher starts");
    (watcher, rx, token)
}

async fn next(rx: &mut Rescans) -> RescanReason {
    next_event(rx).await.0
}

/// The next signal's reason and the files it names.
async fn next_event(rx: &mut Rescans) -> (RescanReason, Option<BTreeSet<PathBuf>>) {
    match timeout(EXPECT, rx.recv()).await {
        Ok(Some(WatchEvent::Rescan { reason, files })) => (reason, files),
        Ok(None) => panic!("watcher stopped"),
        Err(_) => panic!("no rescan within {EXPECT:?}"),
    }
}

async fn assert_quiet(rx: &mut Rescans) {
    if let Ok(event) = timeout(QUIET, rx.recv()).await {
        panic!("expected no event, got {event:?}");
    }
}

fn write(path: &Path, text: &str) {
    fs::write(path, text).expect("write");
}

#[tokio::test]
async fn edit_of_a_spec_is_a_files_rescan() -> TestResult {
    let dir = tempfile::tempdir()?;
    write(&dir.path().join("app.toml"), "a = 1\n");
    let (_watcher, mut rx, _token) = start(dir.path());
    write(&dir.path().join("app.toml"), "a = 2\n");
    assert_eq!(next(&mut rx).await, RescanReason::Files);
    assert_quiet(&mut rx).await;
    Ok(())
}

#[tokio::test]
async fn a_burst_of_writes_is_coalesced() -> TestResult {
    let dir = tempfile::tempdir()?;
    // A wide window, so that a loaded machine stalling the writer does not split the burst.
    let options = WatchOptions {
        debounce: Duration::from_millis(200),
        ..options()
    };
    let (_watcher, mut rx) = spawn(dir.path(), options, CancellationToken::new())?;
    let path = dir.path().join("app.toml");
    // Each write is a change of its own (further apart than one save's events), within the
    // quick window of the one before: the second makes it a burst, and the quiet window holds
    // the signal until the last.
    for i in 0..40 {
        write(&path, &format!("a = {i}\n"));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(next(&mut rx).await, RescanReason::Files);
    let mut extra = 0;
    while let Ok(Some(_)) = timeout(QUIET, rx.recv()).await {
        extra += 1;
    }
    assert!(extra <= 1, "40 writes gave {} rescans", extra + 1);
    Ok(())
}

#[tokio::test]
async fn atomic_rename_save_is_seen_and_names_its_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("app.toml");
    write(&path, "a = 1\n");
    let (_watcher, mut rx, _token) = start(dir.path());
    // A non-.toml temp name: only the rename makes this a spec event.
    let temp = dir.path().join("app.toml.tmp1234");
    write(&temp, "a = 2\n");
    fs::rename(&temp, &path)?;
    let named = BTreeSet::from([dir.path().canonicalize()?.join("app.toml")]);
    assert_eq!(
        next_event(&mut rx).await,
        (RescanReason::Files, Some(named))
    );
    Ok(())
}

#[tokio::test]
async fn a_lone_edit_is_signalled_without_waiting_out_the_debounce() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("app.toml");
    write(&path, "a = 1\n");
    // A debounce far longer than the check: only the quick window can make the signal early.
    let options = WatchOptions {
        debounce: Duration::from_secs(2),
        ..options()
    };
    let (_watcher, mut rx) = spawn(dir.path(), options, CancellationToken::new())?;
    let started = std::time::Instant::now();
    write(&path, "a = 2\n");
    let (reason, files) = next_event(&mut rx).await;
    let waited = started.elapsed();
    assert_eq!(reason, RescanReason::Files);
    assert_eq!(
        files,
        Some(BTreeSet::from([dir
            .path()
            .canonicalize()?
            .join("app.toml")]))
    );
    assert!(
        waited < Duration::from_secs(1),
        "a lone edit waited {waited:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_removal_waits_out_the_debounce_and_names_no_file() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("app.toml");
    write(&path, "a = 1\n");
    let options = WatchOptions {
        debounce: Duration::from_secs(1),
        ..options()
    };
    let (_watcher, mut rx) = spawn(dir.path(), options, CancellationToken::new())?;
    let started = std::time::Instant::now();
    fs::remove_file(&path)?;
    let (reason, files) = next_event(&mut rx).await;
    let waited = started.elapsed();
    assert_eq!((reason, files), (RescanReason::Files, None));
    // Half the debounce is the quiet window; the first half of a move waits for the second.
    assert!(
        waited >= Duration::from_millis(450),
        "a removal waited only {waited:?}"
    );
    Ok(())
}

#[tokio::test]
async fn delete_of_a_spec_is_seen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("app.toml");
    write(&path, "a = 1\n");
    let (_watcher, mut rx, _token) = start(dir.path());
    fs::remove_file(&path)?;
    assert_eq!(next(&mut rx).await, RescanReason::Files);
    Ok(())
}

#[tokio::test]
async fn specs_in_new_and_removed_subdirectories_are_seen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (_watcher, mut rx, _token) = start(dir.path());
    let sub = dir.path().join("team");
    fs::create_dir(&sub)?;
    write(&sub.join("app.toml"), "a = 1\n");
    assert_eq!(next(&mut rx).await, RescanReason::Files);
    // Preempted between the two calls, the test may see the directory and the file apart.
    while let Ok(Some(_)) = timeout(QUIET, rx.recv()).await {}
    // A removed tree is many events (each file, then the directory): one signal or more.
    fs::remove_dir_all(&sub)?;
    assert_eq!(next(&mut rx).await, RescanReason::Files);
    Ok(())
}

#[tokio::test]
async fn ignored_files_produce_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    fs::create_dir(dir.path().join(".git"))?;
    let spec = dir.path().join("app.toml");
    write(&spec, "a = 1\n");
    let (_watcher, mut rx, _token) = start(dir.path());
    write(&dir.path().join(".app.toml.swp"), "x");
    write(&dir.path().join(".hidden.toml"), "x");
    write(&dir.path().join("notes.txt"), "x");
    write(&dir.path().join("app.toml~"), "x");
    write(&dir.path().join("#app.toml#"), "x");
    write(&dir.path().join(".git").join("index"), "x");
    write(&dir.path().join(".git").join("stray.toml"), "x");
    // vim's write test file, created and removed next to the spec
    write(&dir.path().join("4913"), "");
    fs::remove_file(dir.path().join("4913"))?;
    // The daemon reading the specs opens them: that must not feed back into rescans.
    fs::read_to_string(&spec)?;
    fs::read_dir(dir.path())?.for_each(drop);
    assert_quiet(&mut rx).await;
    // The watcher is alive: the silence above means something.
    write(&spec, "a = 2\n");
    assert_eq!(next(&mut rx).await, RescanReason::Files);
    Ok(())
}

#[tokio::test]
async fn symlink_swap_of_the_directory_rearms_on_the_new_target() -> TestResult {
    let base = tempfile::tempdir()?;
    let old = base.path().join("rev-a");
    let new = base.path().join("rev-b");
    fs::create_dir(&old)?;
    fs::create_dir(&new)?;
    write(&old.join("app.toml"), "a = 1\n");
    write(&new.join("app.toml"), "a = 2\n");
    let link = base.path().join("current");
    symlink(&old, &link)?;
    let (_watcher, mut rx, _token) = start(&link);

    // git-sync's publish: a new link under a temporary name, renamed over the old one.
    let temp = base.path().join("current.tmp");
    symlink(&new, &temp)?;
    fs::rename(&temp, &link)?;
    assert_eq!(next(&mut rx).await, RescanReason::LinkSwapped);
    assert_quiet(&mut rx).await;

    write(&new.join("app.toml"), "a = 3\n");
    assert_eq!(next(&mut rx).await, RescanReason::Files);
    // Edits in the old target, which git-sync is about to delete, are not reported.
    write(&old.join("app.toml"), "a = 4\n");
    assert_quiet(&mut rx).await;
    Ok(())
}

#[tokio::test]
async fn symlink_swap_of_an_ancestor_is_seen() -> TestResult {
    // DIR is a subdirectory of the published checkout: /srv/repo/apps with /srv/repo a link.
    let base = tempfile::tempdir()?;
    for rev in ["rev-a", "rev-b"] {
        fs::create_dir_all(base.path().join(rev).join("apps"))?;
    }
    let link = base.path().join("repo");
    symlink(base.path().join("rev-a"), &link)?;
    let (_watcher, mut rx, _token) = start(&link.join("apps"));

    let temp = base.path().join("repo.tmp");
    symlink(base.path().join("rev-b"), &temp)?;
    fs::rename(&temp, &link)?;
    assert_eq!(next(&mut rx).await, RescanReason::LinkSwapped);

    write(&base.path().join("rev-b/apps/app.toml"), "a = 1\n");
    assert_eq!(next(&mut rx).await, RescanReason::Files);
    Ok(())
}

#[tokio::test]
async fn configmap_data_link_swap_is_seen() -> TestResult {
    // The layout kubelet's atomic writer keeps in a ConfigMap volume.
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    fs::create_dir(d.join("..2026_01_01_00_00_00.1"))?;
    write(&d.join("..2026_01_01_00_00_00.1/app.toml"), "a = 1\n");
    symlink("..2026_01_01_00_00_00.1", d.join("..data"))?;
    symlink("..data/app.toml", d.join("app.toml"))?;
    let (_watcher, mut rx, _token) = start(d);

    fs::create_dir(d.join("..2026_01_01_00_01_00.2"))?;
    write(&d.join("..2026_01_01_00_01_00.2/app.toml"), "a = 2\n");
    symlink("..2026_01_01_00_01_00.2", d.join("..data_tmp"))?;
    fs::rename(d.join("..data_tmp"), d.join("..data"))?;
    fs::remove_dir_all(d.join("..2026_01_01_00_00_00.1"))?;
    assert_eq!(next(&mut rx).await, RescanReason::LinkSwapped);
    Ok(())
}

#[tokio::test]
async fn directory_deleted_and_recreated_is_rearmed() -> TestResult {
    let base = tempfile::tempdir()?;
    let dir = base.path().join("apps");
    fs::create_dir(&dir)?;
    let (_watcher, mut rx, _token) = start(&dir);
    fs::remove_dir(&dir)?;
    assert_eq!(next(&mut rx).await, RescanReason::LinkSwapped);
    fs::create_dir(&dir)?;
    assert_eq!(next(&mut rx).await, RescanReason::LinkSwapped);
    write(&dir.join("app.toml"), "a = 1\n");
    assert_eq!(next(&mut rx).await, RescanReason::Files);
    Ok(())
}

#[tokio::test]
async fn directory_replaced_by_renames_is_rearmed() -> TestResult {
    // Same path, different directory, both renames in one debounce window: only the
    // inode tells the old target from the new one.
    let base = tempfile::tempdir()?;
    let dir = base.path().join("apps");
    let next_dir = base.path().join("apps.new");
    fs::create_dir(&dir)?;
    fs::create_dir(&next_dir)?;
    let (_watcher, mut rx, _token) = start(&dir);
    fs::rename(&dir, base.path().join("apps.old"))?;
    fs::rename(&next_dir, &dir)?;
    assert_eq!(next(&mut rx).await, RescanReason::LinkSwapped);
    // Had a debounce tick fallen between the renames, a second re-arm may follow.
    while let Ok(Some(_)) = timeout(QUIET, rx.recv()).await {}
    write(&dir.join("app.toml"), "a = 1\n");
    assert_eq!(next(&mut rx).await, RescanReason::Files);
    Ok(())
}

#[tokio::test]
async fn lost_events_are_an_overflow_rescan() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (watcher, mut rx, _token) = start(dir.path());
    // What notify's inotify backend sends on IN_Q_OVERFLOW; cannot be provoked reliably.
    let overflow = Event::new(EventKind::Other).set_flag(notify::event::Flag::Rescan);
    watcher.shared.handle(Ok(overflow));
    assert_eq!(next(&mut rx).await, RescanReason::Overflow);
    // The forced re-arm left a working watch behind.
    write(&dir.path().join("app.toml"), "a = 1\n");
    assert_eq!(next(&mut rx).await, RescanReason::Files);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn resync_fires_periodically() -> TestResult {
    let dir = tempfile::tempdir()?;
    let token = CancellationToken::new();
    let options = WatchOptions {
        resync: Duration::from_secs(60),
        ..options()
    };
    let (_watcher, mut rx) = spawn(dir.path(), options, token.clone())?;
    let started = tokio::time::Instant::now();
    // Paused time: the timeout is virtual, so only the resync tick can satisfy it.
    for _ in 0..2 {
        let event = timeout(Duration::from_secs(90), rx.recv()).await;
        assert_eq!(
            event,
            Ok(Some(WatchEvent::Rescan {
                reason: RescanReason::Resync,
                files: None,
            }))
        );
    }
    assert!(started.elapsed() >= Duration::from_secs(120));
    Ok(())
}

#[tokio::test]
async fn shutdown_and_drop_end_the_task() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (_watcher, mut rx, token) = start(dir.path());
    token.cancel();
    assert_eq!(timeout(EXPECT, rx.recv()).await, Ok(None));

    let (watcher, mut rx, _token) = start(dir.path());
    drop(watcher);
    assert_eq!(timeout(EXPECT, rx.recv()).await, Ok(None));

    let (watcher, _rx, _token) = start(dir.path());
    timeout(EXPECT, watcher.stop()).await?;
    Ok(())
}

#[tokio::test]
async fn missing_directory_is_a_resolve_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let result = spawn(
        &dir.path().join("nope"),
        options(),
        CancellationToken::new(),
    );
    assert!(
        matches!(result, Err(WatchError::ResolveDir { .. })),
        "{result:?}"
    );
    Ok(())
}

#[test]
fn spec_event_paths() {
    assert!(is_spec_event_path(Path::new("/srv/.worktrees/x/app.toml")));
    assert!(!is_spec_event_path(Path::new("/srv/apps/.app.toml.swp")));
    assert!(!is_spec_event_path(Path::new("/srv/apps/app.toml~")));
    assert!(!is_spec_event_path(Path::new("/srv/apps/notes.md")));
    assert!(!is_spec_event_path(Path::new("/srv/apps/.toml")));
}

#[test]
fn git_busy_follows_the_lock() -> TestResult {
    let repo = tempfile::tempdir()?;
    let apps = repo.path().join("config/apps");
    fs::create_dir_all(&apps)?;
    fs::create_dir(repo.path().join(".git"))?;
    assert!(!git_busy(&apps));
    write(&repo.path().join(".git/index.lock"), "");
    assert!(git_busy(&apps));
    assert!(git_busy(repo.path()));
    fs::remove_file(repo.path().join(".git/index.lock"))?;
    assert!(!git_busy(&apps));
    Ok(())
}

#[test]
fn git_busy_reads_gitdir_files() -> TestResult {
    // A worktree (git-sync): `.git` is a file naming the real git directory.
    let base = tempfile::tempdir()?;
    let git_dir = base.path().join("main/.git/worktrees/abc");
    fs::create_dir_all(&git_dir)?;
    let relative = base.path().join("wt-relative");
    let absolute = base.path().join("wt-absolute");
    fs::create_dir_all(relative.join("apps"))?;
    fs::create_dir_all(&absolute)?;
    write(
        &relative.join(".git"),
        "gitdir: ../main/.git/worktrees/abc\n",
    );
    write(
        &absolute.join(".git"),
        &format!("gitdir: {}\n", git_dir.display()),
    );
    // Reached through a symlink, as git-sync publishes it.
    let link = base.path().join("current");
    symlink(&relative, &link)?;

    assert!(!git_busy(&link.join("apps")));
    assert!(!git_busy(&absolute));
    write(&git_dir.join("index.lock"), "");
    assert!(git_busy(&link.join("apps")));
    assert!(git_busy(&absolute));
    Ok(())
}
