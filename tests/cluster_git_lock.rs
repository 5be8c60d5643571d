//! A stale `.git/index.lock` (a `git pull` killed by its timeout) on the real local control
//! plane: the daemon reads no half-checked-out tree, yet keeps handling drift and SIGHUP; past
//! the bound it stops calling itself ready and says why; once the lock goes it reads the
//! directory and is ready again.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Patch, PatchParams};

use support::daemon::{Daemon, write_atomic};
use support::{TestNamespace, ensure_rbac, git, simple_app, wait_for};

const TIMEOUT: Duration = Duration::from_secs(60);

async fn replicas(ns: &TestNamespace) -> Option<i32> {
    let sts = ns.api::<StatefulSet>().get_opt("web").await.ok()??;
    sts.spec?.replicas
}

/// The value of the sample `name` in the metrics text.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn a_stale_index_lock_keeps_the_daemon_responsive_and_is_reported_after_a_bound() {
    let ns = TestNamespace::new("git-lock").await;
    ensure_rbac(&ns.client).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let repo = dir.path().join("repo");
    let specs = repo.join("apps");
    std::fs::create_dir_all(&specs).expect("dir");
    git(&repo, &["init", "-q"]);
    write_atomic(&specs, "web.toml", &simple_app(1, "1Gi"));
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-qm", "first"]);
    let config = dir.path().join("berth.toml");
    std::fs::write(&config, "drift = \"correct\"\n").expect("config");
    let daemon = Daemon::start_with(
        &ns,
        &specs,
        &["--config", config.to_str().expect("utf-8")],
        &[],
        dir.path().join("berth.log"),
    )
    .await;
    wait_for("web created", TIMEOUT, || async {
        (replicas(&ns).await == Some(1)).then_some(())
    })
    .await;

    // A pull killed mid-checkout: the lock stays, and the tree holds an edit of that pull.
    let lock = repo.join(".git").join("index.lock");
    std::fs::write(&lock, "").expect("lock");
    write_atomic(&specs, "web.toml", &simple_app(2, "1Gi"));
    let locked = tokio::time::Instant::now();

    // The loop still answers drift (from the last specs it read) and SIGHUP.
    ns.api::<StatefulSet>()
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 3}})),
        )
        .await
        .expect("scale by hand");
    wait_for("drift corrected while git is locked", TIMEOUT, || async {
        (replicas(&ns).await == Some(1)).then_some(())
    })
    .await;
    daemon.signal("HUP");
    wait_for("SIGHUP handled while git is locked", TIMEOUT, || async {
        daemon
            .log()
            .contains("daemon config reloaded")
            .then_some(())
    })
    .await;
    assert_eq!(replicas(&ns).await, Some(1), "nothing read mid-checkout");
    assert!(
        daemon.get("/readyz").await.is_some(),
        "still ready before the bound"
    );

    // Past the bound (30 s): not ready, and the metric and the log say why.
    let d = &daemon;
    wait_for(
        "/readyz to fail on the stale lock",
        TIMEOUT,
        || async move { d.get("/readyz").await.is_none().then_some(()) },
    )
    .await;
    assert!(
        locked.elapsed() >= Duration::from_secs(29),
        "not before the bound: {:?}",
        locked.elapsed()
    );
    assert_eq!(daemon.get("/healthz").await.as_deref(), Some("ok"));
    let metrics = daemon.get("/metrics").await.unwrap_or_default();
    let waited = sample(&metrics, "berth_git_lock_wait_seconds").unwrap_or_default();
    assert!(
        waited >= 30.0,
        "the wait is in the metrics: {waited}\n{metrics}"
    );
    assert!(
        daemon.log().contains("index.lock is still there"),
        "the log says what to do:\n{}",
        daemon.log()
    );

    // The operator removes the stale lock: the edit is read and applied, ready again.
    std::fs::remove_file(&lock).expect("unlock");
    wait_for(
        "the edit applied once the lock is gone",
        TIMEOUT,
        || async { (replicas(&ns).await == Some(2)).then_some(()) },
    )
    .await;
    wait_for("/readyz back", TIMEOUT, || async move {
        d.get("/readyz").await.filter(|b| b == "ready")
    })
    .await;
    let metrics = daemon.get("/metrics").await.unwrap_or_default();
    assert_eq!(
        sample(&metrics, "berth_git_lock_wait_seconds"),
        Some(0.0),
        "{metrics}"
    );
    ns.cleanup().await;
}
