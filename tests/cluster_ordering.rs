//! Ordering between apps (`after`), against the real local control plane: an app is created
//! only once the apps it names are healthy, waits (and is not applied) while they cannot get
//! there, and is removed before them.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams};
use support::{Specs, TestNamespace, berth, ensure_rbac, wait_for};

/// A ZooKeeper that the scheduler can place (`cpu` 100m) or cannot (`cpu` 1000).
fn zookeeper(cpu: &str) -> String {
    format!("[containers.zk]\nimage = \"zookeeper:3.9\"\ncpu = \"{cpu}\"\nmemory = \"64Mi\"\n")
}

const KAFKA: &str = "after = [\"zookeeper\"]\n\n[containers.kafka]\nimage = \"apache/kafka:3.9.0\"\ncpu = \"100m\"\nmemory = \"64Mi\"\n";

/// Once ZooKeeper's StatefulSet has the schedulable template, deletes the pod that never
/// started, as a person would: the StatefulSet controller does not replace a pod that was never
/// Ready with the new revision by itself (kubernetes/kubernetes#67250). A pod it makes again
/// before its status counts the old pod gone is of the old revision, and stuck again: such a
/// pod is deleted too, until zookeeper-0 is of the new revision.
async fn replace_stuck_zookeeper_pod(ns: &TestNamespace) {
    let sets = ns.api::<StatefulSet>();
    let pods = ns.api::<Pod>();
    wait_for(
        "zookeeper-0 of the new template",
        Duration::from_secs(60),
        || async {
            let sts = sets.get("zookeeper").await.ok()?;
            let cpu = sts.spec.as_ref()?.template.spec.as_ref()?.containers[0]
                .resources
                .as_ref()?
                .requests
                .as_ref()?
                .get("cpu")?
                .0
                .clone();
            let status = sts.status.as_ref()?;
            // Seen by the StatefulSet controller too, which then names the new revision.
            if cpu != "100m" || status.observed_generation < sts.metadata.generation {
                return None;
            }
            let update_revision = status.update_revision.as_deref()?;
            let pod = pods.get_opt("zookeeper-0").await.ok()?;
            let revision = pod
                .as_ref()
                .and_then(|p| p.labels().get("controller-revision-hash").cloned());
            match (pod, revision) {
                (Some(_), Some(revision)) if revision == update_revision => Some(()),
                (Some(pod), _) if pod.metadata.deletion_timestamp.is_none() => {
                    pods.delete("zookeeper-0", &DeleteParams::default())
                        .await
                        .ok()?;
                    None
                }
                _ => None,
            }
        },
    )
    .await;
}

/// When berth recorded `reason` on StatefulSet `name`.
async fn event_time(ns: &TestNamespace, name: &str, reason: &str) -> k8s_openapi::jiff::Timestamp {
    ns.api::<Event>()
        .list(&ListParams::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .find(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                && e.reason.as_deref() == Some(reason)
        })
        .and_then(|e| e.event_time)
        .unwrap_or_else(|| panic!("no {reason} event on {name}"))
        .0
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn an_app_waits_for_the_apps_it_names_and_is_removed_before_them() {
    let ns = TestNamespace::new("order").await;
    ensure_rbac(&ns.client).await;
    let specs = Specs::new();
    let sets = ns.api::<StatefulSet>();
    specs.write("zookeeper.toml", &zookeeper("1000"));
    specs.write("kafka.toml", KAFKA);
    specs.write("other.toml", &zookeeper("100m"));

    // diff says what waits for what.
    let diff = berth(&ns, &["diff", specs.path()]).await;
    assert!(
        diff.stdout.contains(&format!(
            "after {}/zookeeper: applied once it is healthy",
            ns.name
        )),
        "{}",
        diff.stdout
    );

    // ZooKeeper cannot be placed: Kafka is not created, and the run says why.
    let run = berth(&ns, &["apply", "--yes", "--timeout", "10s", specs.path()]).await;
    run.expect_code(2);
    assert!(
        run.stderr.contains(&format!(
            "{}/kafka: not applied: waits for {}/zookeeper, which is degraded: pod zookeeper-0 Unschedulable",
            ns.name, ns.name
        )),
        "{}",
        run.stderr
    );
    assert!(sets.get_opt("zookeeper").await.expect("read").is_some());
    assert!(
        sets.get_opt("other").await.expect("read").is_some(),
        "unrelated apps go ahead"
    );
    assert!(
        sets.get_opt("kafka").await.expect("read").is_none(),
        "kafka was created before zookeeper was healthy"
    );

    // ZooKeeper fixed: it is updated, becomes healthy, then Kafka is created.
    specs.write("zookeeper.toml", &zookeeper("100m"));
    let args = ["apply", "--yes", "--timeout", "60s", specs.path()];
    let apply = berth(&ns, &args);
    let unstick = async {
        replace_stuck_zookeeper_pod(&ns).await;
    };
    let (run, ()) = tokio::join!(apply, unstick);
    run.expect_code(0);
    assert!(sets.get_opt("kafka").await.expect("read").is_some());
    let zk_ready = sets
        .get("zookeeper")
        .await
        .expect("read")
        .status
        .and_then(|s| s.ready_replicas);
    assert_eq!(zk_ready, Some(1));

    // Both go: Kafka is removed, to the end, before ZooKeeper's removal starts.
    specs.remove("kafka.toml");
    specs.remove("zookeeper.toml");
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    let kafka_gone = event_time(&ns, "kafka", "Removed").await;
    let zk_started = event_time(&ns, "zookeeper", "RemovalStarted").await;
    assert!(
        kafka_gone <= zk_started,
        "zookeeper's removal started ({zk_started}) before kafka was gone ({kafka_gone})"
    );
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn the_daemon_shows_an_app_waiting_for_the_apps_it_names() {
    use support::daemon::{Daemon, write_atomic};

    let ns = TestNamespace::new("order-daemon").await;
    ensure_rbac(&ns.client).await;
    let specs = Specs::new();
    specs.write("zookeeper.toml", &zookeeper("1000"));
    specs.write("kafka.toml", KAFKA);
    let logs = tempfile::tempdir().expect("a log directory");
    let daemon = Daemon::start(&ns, specs.dir.path(), &[], logs.path().join("berth.log")).await;
    let sets = ns.api::<StatefulSet>();

    wait_for(
        "kafka shown as waiting",
        Duration::from_secs(30),
        || async {
            let metrics = daemon.get("/metrics").await?;
            metrics
                .lines()
                .any(|l| l == "berth_apps{state=\"waiting\"} 1")
                .then_some(())
        },
    )
    .await;
    assert!(
        daemon
            .log()
            .contains(&format!("waiting for {}/zookeeper", ns.name)),
        "{}",
        daemon.log()
    );
    assert!(sets.get_opt("kafka").await.expect("read").is_none());

    // ZooKeeper fixed (and its stuck pod replaced): Kafka follows by itself.
    write_atomic(specs.dir.path(), "zookeeper.toml", &zookeeper("100m"));
    replace_stuck_zookeeper_pod(&ns).await;
    wait_for("kafka created", Duration::from_secs(60), || async {
        sets.get_opt("kafka").await.ok().flatten().map(|_| ())
    })
    .await;
    drop(daemon);
    ns.cleanup().await;
}
