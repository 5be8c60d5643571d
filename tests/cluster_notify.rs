//! Webhook notifications (`[[notify]]`) from the daemon, against the real local control plane
//! and a local receiver: a held removal, a blocked recreate and a degraded app each produce
//! exactly one message with the app, namespace, commit and reason; a receiver that hangs changes
//! nothing else.

mod support;

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use support::daemon::Daemon;
use support::receiver::Receiver;
use support::{TestNamespace, ensure_rbac, git, simple_app, wait_for};

/// A config repo checkout with `files`, committed; returns the commit.
fn commit_all(repo: &Path, message: &str) -> String {
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", message]);
    git(repo, &["rev-parse", "HEAD"])
}

/// The daemon config: a webhook to `url` for `events`, no removal without a person.
fn config(dir: &Path, ns: &TestNamespace, url: &str, events: &[&str]) -> String {
    let path = dir.join("berth.toml");
    let events: Vec<String> = events.iter().map(|e| format!("\"{e}\"")).collect();
    std::fs::write(
        &path,
        format!(
            "[safety]\nmax_removals = 0\nnamespace = \"{}\"\n\n[[notify]]\nurl = \"{url}\"\nevents = [{}]\n",
            ns.name,
            events.join(", ")
        ),
    )
    .expect("write the config");
    path.display().to_string()
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn a_held_removal_a_blocked_recreate_and_a_degraded_app_are_each_told_once() {
    let ns = TestNamespace::new("notify").await;
    ensure_rbac(&ns.client).await;
    let work = tempfile::tempdir().expect("a temporary directory");
    // Commits are made in `upstream`; the daemon watches a clone that pulls them, as on a
    // bastion, so it sees each commit whole (it waits while git holds its index lock).
    let upstream = work.path().join("upstream");
    std::fs::create_dir(&upstream).expect("upstream dir");
    git(&upstream, &["init", "-q"]);
    std::fs::write(upstream.join("web.toml"), simple_app(1, "1Gi")).expect("write");
    std::fs::write(upstream.join("keep.toml"), simple_app(1, "1Gi")).expect("write");
    commit_all(&upstream, "two apps");
    let repo = work.path().join("repo");
    git(
        work.path(),
        &["clone", "-q", upstream.to_str().expect("UTF-8"), "repo"],
    );

    let receiver = Receiver::start(false).await;
    let config = config(
        work.path(),
        &ns,
        &receiver.url(),
        &["held", "blocked", "degraded"],
    );
    let daemon = Daemon::start_with(
        &ns,
        &repo,
        &["--config", &config],
        &[],
        work.path().join("berth.log"),
    )
    .await;

    // One commit: web's spec goes (held: no removal without a person), keep's headless
    // Service is renamed (blocked: a recreate nobody allowed), big cannot be scheduled.
    std::fs::remove_file(upstream.join("web.toml")).expect("remove");
    std::fs::write(
        upstream.join("keep.toml"),
        format!("headless = \"keep-renamed\"\n{}", simple_app(1, "1Gi")),
    )
    .expect("write");
    std::fs::write(
        upstream.join("big.toml"),
        "[containers.big]\nimage = \"nginx:1.27\"\ncpu = \"1000\"\nmemory = \"64Mi\"\n",
    )
    .expect("write");
    let commit = commit_all(&upstream, "remove web, rename keep's Service, add big");
    git(&repo, &["pull", "-q", "--ff-only"]);

    wait_for("three notices", Duration::from_secs(60), || async {
        (receiver.received().len() >= 3).then_some(())
    })
    .await;
    // Long enough for a second notice of any of them (reconciles come back every few
    // seconds; the health of big is looked at again with backoff).
    tokio::time::sleep(Duration::from_secs(8)).await;
    let mut got: Vec<(String, String)> = receiver
        .received()
        .iter()
        .map(|r| {
            (
                r.body["event"].as_str().unwrap_or("?").to_string(),
                r.body["app"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("blocked".to_string(), "keep".to_string()),
            ("degraded".to_string(), "big".to_string()),
            ("held".to_string(), "web".to_string()),
        ],
        "log:\n{}",
        daemon.log()
    );
    for r in receiver.received() {
        assert_eq!(r.body["namespace"], ns.name.as_str(), "{}", r.body);
        assert_eq!(r.body["commit"], commit.as_str(), "{}", r.body);
        assert_eq!(r.body["instance"], ns.name.as_str(), "{}", r.body);
        let reason = r.body["reason"].as_str().unwrap_or_default();
        let want = match r.body["event"].as_str() {
            Some("held") => "--allow-removals",
            Some("blocked") => "recreate",
            _ => "Unschedulable",
        };
        assert!(reason.contains(want), "{}", r.body);
        assert!(
            r.headers
                .iter()
                .any(|(k, v)| k == "content-type" && v == "application/json")
        );
    }
    let metrics = daemon.get("/metrics").await.expect("metrics");
    assert!(
        metrics.contains("berth_notifications_total{result=\"sent\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("berth_app_health{state=\"degraded\"} 1"),
        "{metrics}"
    );
    drop(daemon);
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn a_receiver_that_hangs_changes_nothing_else() {
    let ns = TestNamespace::new("notify-hang").await;
    ensure_rbac(&ns.client).await;
    let work = tempfile::tempdir().expect("a temporary directory");
    let repo = work.path().join("repo");
    std::fs::create_dir(&repo).expect("repo dir");
    std::fs::write(repo.join("web.toml"), simple_app(1, "1Gi")).expect("write");

    let receiver = Receiver::start(true).await;
    let config = config(work.path(), &ns, &receiver.url(), &["applied"]);
    let daemon = Daemon::start_with(
        &ns,
        &repo,
        &["--config", &config],
        &[],
        work.path().join("berth.log"),
    )
    .await;
    let sets = ns.api::<StatefulSet>();
    let replicas = || async {
        sets.get_opt("web")
            .await
            .ok()
            .flatten()
            .and_then(|s| s.spec)
            .and_then(|s| s.replicas)
    };
    // Each edit is applied (and told to a receiver that never answers) in turn.
    for n in [2, 3, 4] {
        support::daemon::write_atomic(&repo, "web.toml", &simple_app(n, "1Gi"));
        wait_for(
            &format!("the edit to {n} replicas"),
            Duration::from_secs(30),
            || async { (replicas().await == Some(n as i32)).then_some(()) },
        )
        .await;
    }
    assert!(
        !receiver.received().is_empty(),
        "the receiver was never called"
    );
    let metrics = daemon.get("/metrics").await.expect("metrics");
    assert!(
        metrics.contains("berth_notifications_total{result=\"sent\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("berth_apply_total{result=\"failure\"} 0"),
        "{metrics}"
    );
    drop(daemon);
    ns.cleanup().await;
}
