//! Suspending an app, against the real local control plane as the restricted `berth` user:
//! `suspend = true` in a spec and `berth suspend NS/NAME` on the live StatefulSet each make
//! every berth command and the daemon leave the app alone — no update, no drift correction, no
//! removal — and say so; `berth resume` hands it back.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;
use support::daemon::{Daemon, write_atomic};
use support::{Specs, TestNamespace, berth, ensure_rbac, simple_app, wait_for};

async fn replicas(ns: &TestNamespace, name: &str) -> Option<i32> {
    ns.api::<StatefulSet>()
        .get_opt(name)
        .await
        .expect("read the StatefulSet")
        .and_then(|s| s.spec)
        .and_then(|s| s.replicas)
}

async fn setup(prefix: &str) -> (TestNamespace, Specs) {
    let ns = TestNamespace::new(prefix).await;
    ensure_rbac(&ns.client).await;
    let specs = Specs::new();
    specs.write("web.toml", &simple_app(1, "1Gi"));
    // Another app stays, so removing web does not empty the directory.
    specs.write("keep.toml", &simple_app(1, "1Gi"));
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    (ns, specs)
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn suspend_in_the_spec_leaves_the_app_alone_and_says_so() {
    let (ns, specs) = setup("suspend-spec").await;
    let app = format!("{}/web", ns.name);

    specs.write(
        "web.toml",
        &format!("suspend = true\n{}", simple_app(3, "1Gi")),
    );
    let diff = berth(&ns, &["diff", specs.path()]).await;
    diff.expect_code(0);
    assert!(
        diff.stdout
            .contains(&format!("{app}: suspended: suspend = true in its spec")),
        "{}",
        diff.stdout
    );
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    assert_eq!(
        replicas(&ns, "web").await,
        Some(1),
        "a suspended app was updated"
    );

    let status = berth(&ns, &["status", specs.path()]).await;
    assert!(
        status
            .stdout
            .lines()
            .any(|l| l.starts_with(&format!("{app} "))
                && l.split_whitespace().nth(1) == Some("suspended")
                && l.ends_with("suspend = true in its spec")),
        "{}",
        status.stdout
    );

    // Taking the line out hands the app back.
    specs.write("web.toml", &simple_app(3, "1Gi"));
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    assert_eq!(replicas(&ns, "web").await, Some(3));
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn berth_suspend_holds_updates_and_removals_until_resume() {
    let (ns, specs) = setup("suspend-cmd").await;
    let app = format!("{}/web", ns.name);

    let run = berth(&ns, &["suspend", &app, "--reason", "incident 42"]).await;
    run.expect_code(0);
    assert!(run.stdout.contains("suspended"), "{}", run.stdout);

    // An edit is not applied.
    specs.write("web.toml", &simple_app(2, "1Gi"));
    let diff = berth(&ns, &["diff", specs.path()]).await;
    diff.expect_code(0);
    assert!(
        diff.stdout
            .contains(&format!("{app}: suspended: berth suspend (by "))
            && diff.stdout.contains("incident 42"),
        "{}",
        diff.stdout
    );
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    assert_eq!(replicas(&ns, "web").await, Some(1));

    // Its spec gone: it is not removed either.
    specs.remove("web.toml");
    let diff = berth(&ns, &["diff", specs.path()]).await;
    diff.expect_code(0);
    assert!(
        diff.stdout.contains(&format!("{app}: suspended")),
        "{}",
        diff.stdout
    );
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    assert_eq!(
        replicas(&ns, "web").await,
        Some(1),
        "a suspended app was removed"
    );

    // Resumed with its spec back at 2 replicas: converged.
    specs.write("web.toml", &simple_app(2, "1Gi"));
    berth(&ns, &["resume", &app]).await.expect_code(0);
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    assert_eq!(replicas(&ns, "web").await, Some(2));

    // The story is on the StatefulSet.
    let reasons: Vec<String> = ns
        .api::<Event>()
        .list(&ListParams::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("web"))
        .filter_map(|e| e.reason)
        .collect();
    assert!(
        reasons.iter().any(|r| r == "Suspended") && reasons.iter().any(|r| r == "Resumed"),
        "{reasons:?}"
    );

    // Nothing else's: an app berth does not manage cannot be suspended.
    let run = berth(&ns, &["suspend", &format!("{}/nothing", ns.name)]).await;
    run.expect_code(2);
    assert!(run.stderr.contains("no StatefulSet"), "{}", run.stderr);
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn the_daemon_leaves_a_suspended_app_alone_and_takes_it_back_on_resume() {
    let (ns, specs) = setup("suspend-daemon").await;
    let app = format!("{}/web", ns.name);
    let logs = tempfile::tempdir().expect("a log directory");
    let daemon = Daemon::start(&ns, specs.dir.path(), &[], logs.path().join("berth.log")).await;

    berth(&ns, &["suspend", &app, "--reason", "disk swap"])
        .await
        .expect_code(0);
    wait_for(
        "the daemon to see the suspension",
        Duration::from_secs(20),
        || async {
            let metrics = daemon.get("/metrics").await?;
            metrics
                .lines()
                .any(|l| l == "berth_apps{state=\"suspended\"} 1")
                .then_some(())
        },
    )
    .await;

    // Neither an edit nor drift is acted on.
    write_atomic(specs.dir.path(), "web.toml", &simple_app(3, "1Gi"));
    ns.api::<StatefulSet>()
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await
        .expect("scale by hand");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        replicas(&ns, "web").await,
        Some(2),
        "the daemon touched a suspended app"
    );

    berth(&ns, &["resume", &app]).await.expect_code(0);
    wait_for(
        "the daemon to converge the resumed app",
        Duration::from_secs(20),
        || async { (replicas(&ns, "web").await == Some(3)).then_some(()) },
    )
    .await;
    drop(daemon);
    ns.cleanup().await;
}
