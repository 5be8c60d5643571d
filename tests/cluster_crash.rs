//! berth SIGKILLed after every step of a removal and of an orphan-recreate, then run again: the
//! second run finishes the work, no object is lost or duplicated and every PVC is kept.
//!
//! The kill comes from berth's own test hook (`BERTH_CRASH_AT=<step>`, see
//! src/cluster/execute/): a real SIGKILL, delivered exactly after the step, so every step is
//! covered on every run instead of whichever a timer happens to hit.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use kube::api::ListParams;

use support::daemon::Daemon;
use support::{
    Run, Specs, TestNamespace, berth, berth_with_env, ensure_rbac, pod_ready, pvc_uids, wait_for,
};

const TIMEOUT: Duration = Duration::from_secs(180);

/// Two pods, each with a 1Gi volume, and an access Service.
fn app(size: &str, headless: Option<&str>) -> String {
    let headless = headless
        .map(|h| format!("headless = \"{h}\"\nallow_recreate = true\n"))
        .unwrap_or_default();
    format!(
        "{headless}replicas = 2\n\n[containers.db]\nimage = \"nginx:1.27\"\ncpu = \"100m\"\n\
         memory = \"64Mi\"\nports = {{ sql = 5432 }}\nmounts = {{ data = \"/data\" }}\n\n\
         [volumes.data]\nsize = \"{size}\"\n\n[service]\ntype = \"ClusterIP\"\nports = {{ sql = 5432 }}\n"
    )
}

/// `berth` with the crash hook set to `point`.
async fn berth_crashing_at(ns: &TestNamespace, point: &str, args: &[&str]) -> Run {
    berth_with_env(ns, &[("BERTH_CRASH_AT", point.as_ref())], args).await
}

fn assert_killed(run: &Run, point: &str) {
    // `code` is -1 when a signal ended the process; the hook only ever sends SIGKILL.
    assert_eq!(
        run.code, -1,
        "berth should have been killed at {point}\n--- stdout\n{}\n--- stderr\n{}",
        run.stdout, run.stderr
    );
}

async fn wait_ready(ns: &TestNamespace, want: usize) {
    wait_for(&format!("{want} Ready pods"), TIMEOUT, || async {
        let pods = ns.api::<Pod>().list(&ListParams::default()).await.ok()?;
        let ready = pods
            .items
            .iter()
            .filter(|p| pod_ready(p) && p.metadata.deletion_timestamp.is_none())
            .count();
        (ready == want).then_some(())
    })
    .await;
}

/// Names of the Services in the namespace.
async fn services(ns: &TestNamespace) -> Vec<String> {
    let mut names: Vec<String> = ns
        .api::<Service>()
        .list(&ListParams::default())
        .await
        .expect("list Services")
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect();
    names.sort();
    names
}

async fn deployed(prefix: &str) -> (TestNamespace, Specs, BTreeMap<String, String>) {
    let ns = TestNamespace::new(prefix).await;
    ensure_rbac(&ns.client).await;
    let specs = Specs::new();
    specs.write("db.toml", &app("1Gi", None));
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    wait_ready(&ns, 2).await;
    let pvcs = pvc_uids(&ns).await;
    assert_eq!(pvcs.len(), 2, "{pvcs:?}");
    (ns, specs, pvcs)
}

/// Removes the app with berth killed right after `point`, runs berth again, and checks the
/// removal finished with both PVCs kept.
async fn removal_killed_at(prefix: &str, point: &str) {
    let (ns, specs, pvcs) = deployed(prefix).await;
    specs.remove("db.toml");
    let killed = berth_crashing_at(
        &ns,
        point,
        &["apply", "--yes", "--allow-empty", specs.path()],
    )
    .await;
    assert_killed(&killed, point);
    // Whatever step it reached, nothing berth must keep is gone.
    assert_eq!(pvc_uids(&ns).await, pvcs, "PVCs after the kill at {point}");

    let rerun = berth(&ns, &["apply", "--yes", "--allow-empty", specs.path()]).await;
    rerun.expect_code(0);
    assert!(
        ns.api::<StatefulSet>()
            .get_opt("db")
            .await
            .expect("get")
            .is_none(),
        "the StatefulSet is gone after the second run\n{}",
        rerun.stderr
    );
    assert_eq!(services(&ns).await, Vec::<String>::new(), "no Service left");
    assert_eq!(pvc_uids(&ns).await, pvcs, "the same PVCs are kept");
    berth(&ns, &["diff", "--allow-empty", specs.path()])
        .await
        .expect_code(0);
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn removal_killed_after_marking_finishes_on_the_next_run() {
    removal_killed_at("crash-rm-mark", "removal:marked").await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn removal_killed_after_deleting_the_statefulset_finishes_on_the_next_run() {
    removal_killed_at("crash-rm-sts", "removal:statefulset-deleted").await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn removal_killed_between_service_deletions_finishes_on_the_next_run() {
    removal_killed_at("crash-rm-svc", "removal:object-deleted").await;
}

/// The recreate that a new headless name plus a bigger volume needs, with berth killed right
/// after `point`; then berth again (the CLI, or the daemon with `daemon`). At the end: a new
/// StatefulSet, both pods restarted under the new headless Service, the same PVCs expanded to
/// 2Gi, the old headless Service gone, and a clean diff.
async fn recreate_killed_at(prefix: &str, point: &str, daemon: bool) {
    let (ns, specs, pvcs) = deployed(prefix).await;
    let old_uid = ns
        .api::<StatefulSet>()
        .get("db")
        .await
        .expect("sts")
        .metadata
        .uid;
    specs.write("db.toml", &app("2Gi", Some("db-peers")));
    let killed = berth_crashing_at(&ns, point, &["apply", "--yes", specs.path()]).await;
    assert_killed(&killed, point);
    assert_eq!(pvc_uids(&ns).await, pvcs, "PVCs after the kill at {point}");

    if daemon {
        let logs = tempfile::tempdir().expect("temp dir");
        let d = Daemon::start(&ns, specs.dir.path(), &[], logs.path().join("berth.log")).await;
        wait_for("the daemon to finish the recreate", TIMEOUT, || async {
            let pods = ns.api::<Pod>().list(&ListParams::default()).await.ok()?;
            let done = pods.items.len() == 2
                && pods.items.iter().all(|p| {
                    pod_ready(p)
                        && p.spec.as_ref().and_then(|s| s.subdomain.as_deref()) == Some("db-peers")
                });
            done.then_some(())
        })
        .await;
        drop(d);
    } else {
        let rerun = berth(&ns, &["apply", "--yes", specs.path()]).await;
        rerun.expect_code(0);
    }
    wait_ready(&ns, 2).await;
    let sts = ns.api::<StatefulSet>().get("db").await.expect("sts");
    assert_ne!(sts.metadata.uid, old_uid, "the StatefulSet was recreated");
    assert!(
        !sts.metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key("berth.dev/restart-pending")),
        "the StatefulSet's restart mark is cleared (killed at {point})"
    );
    assert_eq!(
        sts.spec.as_ref().map(|s| s.service_name.clone()),
        Some(Some("db-peers".to_string()))
    );
    let pods = ns
        .api::<Pod>()
        .list(&ListParams::default())
        .await
        .expect("pods");
    assert_eq!(pods.items.len(), 2, "exactly the two pods");
    for pod in &pods.items {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        assert_eq!(
            pod.spec.as_ref().and_then(|s| s.subdomain.as_deref()),
            Some("db-peers"),
            "{name} runs under the new headless Service (killed at {point})"
        );
        assert!(
            !pod.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key("berth.dev/restart-pending")),
            "{name} has no restart mark left"
        );
    }
    assert_eq!(pvc_uids(&ns).await, pvcs, "the same PVCs, adopted");
    for ordinal in 0..2 {
        let name = format!("data-db-{ordinal}");
        let pvc = ns
            .api::<PersistentVolumeClaim>()
            .get(&name)
            .await
            .expect("pvc");
        let requested = pvc
            .spec
            .and_then(|s| s.resources)
            .and_then(|r| r.requests)
            .and_then(|r| r.get("storage").cloned());
        assert_eq!(
            requested.map(|q| q.0),
            Some("2Gi".to_string()),
            "{name} was expanded (killed at {point})"
        );
    }
    assert_eq!(
        services(&ns).await,
        vec!["db".to_string(), "db-peers".to_string()],
        "the access Service and the new headless one, nothing duplicated or left over"
    );
    berth(&ns, &["diff", specs.path()]).await.expect_code(0);
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn recreate_killed_after_expanding_a_pvc_finishes_on_the_next_run() {
    recreate_killed_at("crash-rc-expand", "recreate:expanded", false).await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn recreate_killed_after_marking_the_pods_finishes_on_the_next_run() {
    recreate_killed_at("crash-rc-mark", "recreate:marked", false).await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn recreate_killed_with_the_pods_orphaned_finishes_on_the_next_run() {
    recreate_killed_at("crash-rc-orphan", "recreate:orphaned", false).await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn recreate_killed_with_the_pods_orphaned_is_finished_by_the_daemon() {
    recreate_killed_at("crash-rc-orphan-d", "recreate:orphaned", true).await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn recreate_killed_after_creating_the_statefulset_finishes_on_the_next_run() {
    recreate_killed_at("crash-rc-created", "recreate:created", false).await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn recreate_killed_while_restarting_a_pod_finishes_on_the_next_run() {
    recreate_killed_at("crash-rc-restart", "recreate:pod-restarted", false).await;
}
