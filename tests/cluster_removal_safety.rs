//! Nothing is removed unless someone meant it, on the real local control plane, for `berth apply`
//! and for the daemon: an object relabelled by another tool, moves (namespace typo, renamed app,
//! renamed file, a changed `defaults.namespace`), a directory that cannot be read, the removal
//! budget across passes with holds that only a person releases, and a volume rename.

mod support;

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Patch, PatchParams};

use support::daemon::{Daemon, write_atomic};
use support::{Run, Specs, TestNamespace, berth, ensure_rbac, pvc_uids, simple_app, wait_for};

const TIMEOUT: Duration = Duration::from_secs(90);
/// How long a test watches for a removal that must not happen: the daemon reacts to a file
/// change in well under a second, and a removal's first write follows its plan at once.
const QUIET: Duration = Duration::from_secs(4);

async fn setup(prefix: &str) -> (TestNamespace, Specs) {
    let ns = TestNamespace::new(prefix).await;
    ensure_rbac(&ns.client).await;
    (ns, Specs::new())
}

/// uid and spec.replicas of a StatefulSet, when it exists.
async fn identity(ns: &TestNamespace, name: &str) -> Option<(String, i32)> {
    let sts = ns.api::<StatefulSet>().get_opt(name).await.ok()??;
    let replicas = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    Some((sts.metadata.uid.unwrap_or_default(), replicas))
}

/// Asserts that the StatefulSet keeps `was` (uid and replicas) for a while.
async fn stays(ns: &TestNamespace, name: &str, was: &(String, i32)) {
    let deadline = tokio::time::Instant::now() + QUIET;
    while tokio::time::Instant::now() < deadline {
        assert_eq!(
            identity(ns, name).await.as_ref(),
            Some(was),
            "StatefulSet {name} must keep its uid and replicas"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn gone(ns: &TestNamespace, name: &str) {
    wait_for(&format!("StatefulSet {name} removed"), TIMEOUT, || async {
        identity(ns, name).await.is_none().then_some(())
    })
    .await;
}

async fn created(ns: &TestNamespace, name: &str) -> (String, i32) {
    wait_for(&format!("StatefulSet {name}"), TIMEOUT, || async {
        identity(ns, name).await
    })
    .await
}

fn held_line(run: &Run, app: &str) -> String {
    run.stdout
        .lines()
        .find(|l| l.starts_with(&format!("{app}: held: ")))
        .unwrap_or_else(|| panic!("no `{app}: held:` line\n{}", run.stdout))
        .to_string()
}

async fn relabel(ns: &TestNamespace, name: &str, value: &str) {
    ns.api::<StatefulSet>()
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({
                "metadata": {"labels": {"app.kubernetes.io/name": value}}
            })),
        )
        .await
        .expect("relabel");
}

async fn name_label(ns: &TestNamespace, name: &str) -> Option<String> {
    let sts = ns.api::<StatefulSet>().get_opt(name).await.ok()??;
    sts.metadata.labels?.get("app.kubernetes.io/name").cloned()
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn an_object_relabelled_by_another_tool_is_drift_of_its_own_app() {
    let (ns, specs) = setup("relabel").await;
    specs.write("web.toml", &simple_app(2, "1Gi"));
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    let was = created(&ns, "web").await;

    relabel(&ns, "web", "web2").await;
    let diff = berth(&ns, &["diff", specs.path()]).await;
    diff.expect_code(1);
    let app = format!("{}/web", ns.name);
    assert!(
        diff.stdout.contains(&format!("{app}: update")),
        "{}",
        diff.stdout
    );
    assert!(
        !diff.stdout.contains("remove") && !diff.stdout.contains(&format!("{}/web2:", ns.name)),
        "{}",
        diff.stdout
    );
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    assert_eq!(identity(&ns, "web").await, Some(was.clone()));
    assert_eq!(name_label(&ns, "web").await.as_deref(), Some("web"));

    // The daemon: the relabel is drift, corrected; the app is never removed.
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = Daemon::start(&ns, specs.dir.path(), &[], dir.path().join("berth.log")).await;
    relabel(&ns, "web", "web2").await;
    wait_for("the label restored", TIMEOUT, || async {
        (name_label(&ns, "web").await.as_deref() == Some("web")).then_some(())
    })
    .await;
    stays(&ns, "web", &was).await;
    let log = daemon.log();
    assert!(log.contains("live objects drifted from the spec"), "{log}");
    assert!(
        !log.contains(&format!("\"app\":\"{}/web2\"", ns.name)),
        "web2 is no app: {log}"
    );
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn moves_are_held_until_confirmed_with_apply() {
    let (ns, specs) = setup("moves").await;
    specs.write("web.toml", &simple_app(2, "1Gi"));
    specs.write("other.toml", &simple_app(1, "1Gi"));
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    let was = created(&ns, "web").await;
    let app = format!("{}/web", ns.name);

    // A namespace typo: the new app is blocked (no such namespace), the old one is held.
    let typo = format!("{}-typo", ns.name);
    specs.write(
        "web.toml",
        &format!("namespace = \"{typo}\"\n{}", simple_app(2, "1Gi")),
    );
    let diff = berth(&ns, &["diff", specs.path()]).await;
    diff.expect_code(3);
    let line = held_line(&diff, &app);
    assert!(
        line.contains(&format!("looks moved to {typo}/web (from web.toml)"))
            && line.contains("--allow-removals"),
        "{line}"
    );
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(2);
    stays(&ns, "web", &was).await;

    // The spec comes back: the hold ends with it, nothing to do.
    specs.write("web.toml", &simple_app(2, "1Gi"));
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);

    // A new `name` in the same file: the new app is created, the old one held.
    specs.write(
        "web.toml",
        &format!("name = \"web-b\"\n{}", simple_app(2, "1Gi")),
    );
    let run = berth(&ns, &["apply", "--yes", specs.path()]).await;
    run.expect_code(2);
    assert!(
        held_line(&run, &app).contains(&format!("looks moved to {}/web-b", ns.name)),
        "{}",
        run.stdout
    );
    created(&ns, "web-b").await;
    // The hold is kept in the cluster: the next run holds it again although web-b is no longer
    // new, and so would a run on another host.
    let again = berth(&ns, &["diff", specs.path()]).await;
    again.expect_code(3);
    held_line(&again, &app);
    stays(&ns, "web", &was).await;

    // Back to the old name; web-b's removal is a plain one (it was meant: its file says so).
    specs.write("web.toml", &simple_app(2, "1Gi"));
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    gone(&ns, "web-b").await;

    // A renamed file without `name` (git mv): a move, held.
    std::fs::rename(
        specs.dir.path().join("web.toml"),
        specs.dir.path().join("web-primary.toml"),
    )
    .expect("rename");
    let run = berth(&ns, &["apply", "--yes", specs.path()]).await;
    run.expect_code(2);
    assert!(
        held_line(&run, &app).contains(&format!(
            "looks moved to {}/web-primary (from web-primary.toml)",
            ns.name
        )),
        "{}",
        run.stdout
    );
    stays(&ns, "web", &was).await;

    // Only a person releases it, and sees what is released.
    let pvcs = pvc_uids(&ns).await;
    let run = berth(&ns, &["apply", "--yes", "--allow-removals", specs.path()]).await;
    run.expect_code(0);
    assert!(
        run.stdout.contains(&format!("{app}: remove"))
            && run.stdout.contains("hold released by --allow-removals"),
        "{}",
        run.stdout
    );
    gone(&ns, "web").await;
    let after = pvc_uids(&ns).await;
    for (pvc, uid) in &pvcs {
        assert_eq!(after.get(pvc), Some(uid), "PVC {pvc} is kept");
    }
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn moves_are_held_by_the_daemon_including_a_changed_default_namespace() {
    let (ns, specs) = setup("moves-daemon").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("berth.toml");
    let set_default_namespace = |namespace: &str| {
        std::fs::write(
            &config,
            format!("[defaults]\nnamespace = \"{namespace}\"\n"),
        )
        .expect("config");
    };
    set_default_namespace(&ns.name);
    specs.write("web.toml", &simple_app(2, "1Gi"));
    specs.write("other.toml", &simple_app(1, "1Gi"));
    let config_arg = config.to_str().expect("utf-8");
    let daemon = Daemon::start_configured(
        &ns,
        specs.dir.path(),
        config_arg,
        dir.path().join("berth.log"),
    )
    .await;
    let was = created(&ns, "web").await;
    created(&ns, "other").await;
    let d = &daemon;
    let pending = |n: u32| async move {
        let metrics = d.get("/metrics").await?;
        metrics
            .lines()
            .any(|l| l == format!("berth_pending_removals {n}"))
            .then_some(())
    };

    // A namespace typo.
    let typo = format!("{}-typo", ns.name);
    write_atomic(
        specs.dir.path(),
        "web.toml",
        &format!("namespace = \"{typo}\"\n{}", simple_app(2, "1Gi")),
    );
    wait_for("the move held", TIMEOUT, || async {
        d.log()
            .contains(&format!("looks moved to {typo}/web (from web.toml)"))
            .then_some(())
    })
    .await;
    wait_for("berth_pending_removals 1", TIMEOUT, || pending(1)).await;
    stays(&ns, "web", &was).await;
    write_atomic(specs.dir.path(), "web.toml", &simple_app(2, "1Gi"));
    wait_for("berth_pending_removals 0", TIMEOUT, || pending(0)).await;

    // A renamed file without `name`.
    std::fs::rename(
        specs.dir.path().join("web.toml"),
        specs.dir.path().join("web-primary.toml"),
    )
    .expect("rename");
    wait_for("the rename held", TIMEOUT, || async {
        d.log()
            .contains(&format!("looks moved to {}/web-primary", ns.name))
            .then_some(())
    })
    .await;
    created(&ns, "web-primary").await;
    stays(&ns, "web", &was).await;
    // Undone in two steps: web's spec comes back (its hold ends), then web-primary's file goes
    // on its own, a plain removal. (Both in one change would look like a rename back.)
    write_atomic(specs.dir.path(), "web.toml", &simple_app(2, "1Gi"));
    wait_for("berth_pending_removals 0", TIMEOUT, || pending(0)).await;
    std::fs::remove_file(specs.dir.path().join("web-primary.toml")).expect("undo");
    gone(&ns, "web-primary").await;

    // `defaults.namespace` changes and SIGHUP is sent: every app looks moved, none goes.
    let other_was = identity(&ns, "other").await.expect("other");
    set_default_namespace(&format!("{}-new", ns.name));
    daemon.signal("HUP");
    wait_for("both moves held", TIMEOUT, || async {
        let log = d.log();
        (log.contains(&format!("looks moved to {}-new/web", ns.name))
            && log.contains(&format!("looks moved to {}-new/other", ns.name)))
        .then_some(())
    })
    .await;
    stays(&ns, "web", &was).await;
    assert_eq!(identity(&ns, "other").await, Some(other_was));
    ns.cleanup().await;
}

/// Replaces the directory `team-a` by a symbolic link to nowhere.
fn break_directory(specs: &Path) {
    std::fs::rename(specs.join("team-a"), specs.join(".team-a.away")).expect("move away");
    std::os::unix::fs::symlink("/nonexistent/berth-team-a", specs.join("team-a")).expect("link");
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn apps_under_a_directory_that_cannot_be_read_are_protected() {
    let (ns, specs) = setup("unreadable").await;
    std::fs::create_dir(specs.dir.path().join("team-a")).expect("dir");
    std::fs::write(specs.dir.path().join("team-a/a.toml"), simple_app(1, "1Gi")).expect("spec");
    specs.write("keep.toml", &simple_app(1, "1Gi"));
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    let was = created(&ns, "a").await;

    break_directory(specs.dir.path());
    let diff = berth(&ns, &["diff", specs.path()]).await;
    diff.expect_code(2);
    let app = format!("{}/a: blocked: ", ns.name);
    let line = diff
        .stdout
        .lines()
        .find(|l| l.starts_with(&app))
        .unwrap_or_else(|| panic!("{}\n{}", diff.stdout, diff.stderr));
    assert!(line.contains("team-a/"), "{line}");
    assert!(diff.stderr.contains("team-a"), "{}", diff.stderr);
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(2);
    stays(&ns, "a", &was).await;

    // The daemon, started on the broken tree.
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = Daemon::start(&ns, specs.dir.path(), &[], dir.path().join("berth.log")).await;
    stays(&ns, "a", &was).await;
    assert!(daemon.log().contains("team-a"), "{}", daemon.log());
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn the_removal_budget_holds_across_passes_and_only_a_person_releases_a_hold() {
    let (ns, specs) = setup("budget").await;
    for app in ["a", "b", "c", "d", "e", "keep"] {
        specs.write(&format!("{app}.toml"), &simple_app(1, "1Gi"));
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = Daemon::start(&ns, specs.dir.path(), &[], dir.path().join("berth.log")).await;
    for app in ["a", "b", "c", "d", "e"] {
        created(&ns, app).await;
    }

    // Two removals: within the budget.
    specs.remove("a.toml");
    specs.remove("b.toml");
    gone(&ns, "a").await;
    gone(&ns, "b").await;

    // Two more, seconds later: past the budget of two per hour, held.
    let c = identity(&ns, "c").await.expect("c");
    let d_was = identity(&ns, "d").await.expect("d");
    specs.remove("c.toml");
    specs.remove("d.toml");
    let d = &daemon;
    wait_for("c and d held", TIMEOUT, || async {
        let log = d.log();
        (log.matches("removal budget").count() >= 2).then_some(())
    })
    .await;
    stays(&ns, "c", &c).await;
    assert_eq!(identity(&ns, "d").await, Some(d_was.clone()));

    // c comes back: d stays held although one removal is within the limit.
    specs.write("c.toml", &simple_app(1, "1Gi"));
    stays(&ns, "d", &d_was).await;

    // A one-shot apply sees the same ledger: held, exit 2.
    let run = berth(&ns, &["apply", "--yes", specs.path()]).await;
    run.expect_code(2);
    assert!(
        held_line(&run, &format!("{}/d", ns.name)).contains("removal budget"),
        "{}",
        run.stdout
    );
    assert_eq!(identity(&ns, "d").await, Some(d_was));

    // An operator releases it.
    let run = berth(&ns, &["apply", "--yes", "--allow-removals", specs.path()]).await;
    run.expect_code(0);
    assert!(
        run.stdout.contains(&format!("{}/d: remove", ns.name)),
        "{}",
        run.stdout
    );
    gone(&ns, "d").await;
    assert!(identity(&ns, "c").await.is_some());
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn the_removal_budget_counts_across_apply_runs() {
    let (ns, specs) = setup("budget-apply").await;
    for app in ["a", "b", "c", "keep"] {
        specs.write(&format!("{app}.toml"), &simple_app(1, "1Gi"));
    }
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    specs.remove("a.toml");
    specs.remove("b.toml");
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    gone(&ns, "a").await;
    specs.remove("c.toml");
    let was = identity(&ns, "c").await.expect("c");
    let run = berth(&ns, &["apply", "--yes", specs.path()]).await;
    run.expect_code(2);
    assert!(
        held_line(&run, &format!("{}/c", ns.name)).contains("2 removal(s) started"),
        "{}",
        run.stdout
    );
    stays(&ns, "c", &was).await;
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn a_volume_rename_needs_its_own_opt_in() {
    let (ns, specs) = setup("volume-rename").await;
    specs.write(
        "web.toml",
        &format!("allow_recreate = true\n{}", simple_app(2, "1Gi")),
    );
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    let was = created(&ns, "web").await;
    wait_for("two claims", TIMEOUT, || async {
        (pvc_uids(&ns).await.len() == 2).then_some(())
    })
    .await;
    let claims = pvc_uids(&ns).await;

    let renamed = format!("allow_recreate = true\n{}", simple_app(2, "1Gi"))
        .replace("data = \"/data\"", "store = \"/data\"")
        .replace("[volumes.data]", "[volumes.store]");
    specs.write("web.toml", &renamed);
    let diff = berth(&ns, &["diff", specs.path()]).await;
    diff.expect_code(3);
    assert!(
        diff.stdout
            .contains("needs recreate onto new, empty claims")
            && diff.stdout.contains("data-web-0, data-web-1")
            && diff.stdout.contains("--abandon-claims"),
        "{}",
        diff.stdout
    );
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(2);
    stays(&ns, "web", &was).await;

    let run = berth(&ns, &["apply", "--yes", "--abandon-claims", specs.path()]).await;
    run.expect_code(0);
    assert!(run.stdout.contains("claims left behind"), "{}", run.stdout);
    let now = created(&ns, "web").await;
    assert_ne!(now.0, was.0, "recreated");
    let after = pvc_uids(&ns).await;
    for (pvc, uid) in &claims {
        assert_eq!(after.get(pvc), Some(uid), "{pvc} is kept");
    }
    ns.cleanup().await;
}
