//! Availability while berth changes pods, measured on pods that behave like real ones: the slow
//! kwok profile (Ready 5 s after they start, 3 s to stop) selected by a pod label the spec sets.
//! A watch of the namespace checks every moment (see `support::availability`): how many pods
//! are Ready, whether each Ready pod's DNS record is in the EndpointSlices of a headless Service,
//! and, for a removal, that nothing went before the last pod.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};

use support::availability::{Availability, SLOW_PROFILE_LABEL, assert_slow_profile};
use support::background::Background;
use support::{Specs, TestNamespace, berth, ensure_rbac, wait_for};

/// Generous: three slow pods take about 15 s to start and about 25 s to restart one by one.
const TIMEOUT: Duration = Duration::from_secs(180);

/// A 3-replica app on slow pods with headless Service `headless`, image `image` and the budget
/// `budget` (a TOML inline table, or none).
fn slow_app(headless: &str, image: &str, budget: Option<&str>) -> String {
    let (key, value) = SLOW_PROFILE_LABEL;
    let budget = budget
        .map(|b| format!("disruption_budget = {b}\n"))
        .unwrap_or_default();
    format!(
        "replicas = 3\nheadless = \"{headless}\"\nallow_recreate = true\n\
         labels = {{ \"{key}\" = \"{value}\" }}\n{budget}\n\
         [containers.web]\nimage = \"{image}\"\ncpu = \"100m\"\nmemory = \"64Mi\"\n\
         ports = {{ http = 80 }}\nmounts = {{ data = \"/data\" }}\n\n\
         [volumes.data]\nsize = \"1Gi\"\n\n[service]\nports = {{ http = 80 }}\n"
    )
}

async fn setup(prefix: &str, spec: &str) -> (TestNamespace, Specs) {
    let ns = TestNamespace::new(prefix).await;
    ensure_rbac(&ns.client).await;
    let specs = Specs::new();
    specs.write("db.toml", spec);
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    wait_all_ready(&ns).await;
    assert_slow_profile(&ns).await;
    (ns, specs)
}

/// Waits until the StatefulSet controller has seen the latest spec of `db` and its 3 pods are
/// Ready, all of that spec's revision.
async fn wait_all_ready(ns: &TestNamespace) {
    wait_for("3 Ready pods of db, all updated", TIMEOUT, || async {
        let sts = ns.api::<StatefulSet>().get_opt("db").await.ok()??;
        let generation = sts.metadata.generation;
        let status = sts.status?;
        (status.observed_generation == generation
            && status.ready_replicas == Some(3)
            && status.updated_replicas == Some(3)
            && status.current_revision == status.update_revision)
            .then_some(())
    })
    .await;
}

/// Pod name → (uid, subdomain).
async fn pods(ns: &TestNamespace) -> Vec<(String, String, String)> {
    ns.api::<Pod>()
        .list(&ListParams::default())
        .await
        .expect("list pods")
        .items
        .into_iter()
        .map(|p| {
            (
                p.metadata.name.unwrap_or_default(),
                p.metadata.uid.unwrap_or_default(),
                p.spec.and_then(|s| s.subdomain).unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn a_recreate_with_restarts_keeps_two_of_three_ready_and_every_pod_in_dns() {
    let budget = Some("{ max_unavailable = 1 }");
    let (ns, specs) = setup(
        "recreate-dns",
        &slow_app("db-headless", "nginx:1.27", budget),
    )
    .await;
    let watch = Availability::watch(&ns).await;
    // A pod restarting for reasons of its own when the recreate begins: no other may go until
    // it is back and Ready.
    ns.api::<Pod>()
        .delete("db-0", &DeleteParams::default())
        .await
        .expect("delete db-0");
    specs.write("db.toml", &slow_app("db-peers", "nginx:1.27", budget));
    let run = berth(&ns, &["apply", "--yes", specs.path()]).await;
    run.expect_code(0);
    wait_all_ready(&ns).await;
    let seen = watch.stop();
    for (pod, _, subdomain) in pods(&ns).await {
        assert_eq!(
            subdomain, "db-peers",
            "{pod} runs under the new headless Service"
        );
    }
    seen.assert_available("a recreate onto a new headless Service", 2);
    assert!(
        run.stderr.contains("restarting db-2 (eviction)"),
        "{}",
        run.stderr
    );
    berth(&ns, &["diff", specs.path()]).await.expect_code(0);
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn a_rolling_update_keeps_two_of_three_ready_and_every_pod_in_dns() {
    let (ns, specs) = setup("rolling-dns", &slow_app("db-headless", "nginx:1.27", None)).await;
    let watch = Availability::watch(&ns).await;
    specs.write("db.toml", &slow_app("db-headless", "nginx:1.28", None));
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    wait_all_ready(&ns).await;
    let seen = watch.stop();
    let images: Vec<String> = ns
        .api::<Pod>()
        .list(&ListParams::default())
        .await
        .expect("list pods")
        .items
        .into_iter()
        .filter_map(|p| p.spec?.containers.first()?.image.clone())
        .collect();
    assert_eq!(images, vec!["nginx:1.28"; 3]);
    seen.assert_available("a rolling update to a new image", 2);
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn restarts_wait_for_a_budget_that_allows_no_disruption_and_say_so() {
    let budget = Some("{ max_unavailable = 0 }");
    let (ns, specs) = setup(
        "recreate-pdb",
        &slow_app("db-headless", "nginx:1.27", budget),
    )
    .await;
    let before = pods(&ns).await;
    specs.write("db.toml", &slow_app("db-peers", "nginx:1.27", budget));
    let mut apply = Background::start(&ns, &["apply", "--yes", specs.path()]);
    apply
        .wait_for_stderr("PodDisruptionBudget allows no disruption", TIMEOUT)
        .await;
    // Held for a while: a few retries, every pod as it was.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        pods(&ns).await,
        before,
        "no pod restarted while the budget allowed no disruption; berth said:\n{}",
        apply.stderr()
    );
    // The operator relaxes the budget: the restarts go on by themselves.
    ns.api::<PodDisruptionBudget>()
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"maxUnavailable": 1}})),
        )
        .await
        .expect("relax the budget");
    let run = apply.finish(TIMEOUT).await;
    run.expect_code(0);
    wait_all_ready(&ns).await;
    for (pod, _, subdomain) in pods(&ns).await {
        assert_eq!(subdomain, "db-peers", "{pod} was restarted");
    }
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn a_removal_of_slow_pods_shows_each_pod_stopping_and_deletes_nothing_before_the_last() {
    let (ns, specs) = setup(
        "remove-slow",
        &slow_app("db-headless", "nginx:1.27", Some("{ max_unavailable = 1 }")),
    )
    .await;
    let watch = Availability::watch(&ns).await;
    specs.remove("db.toml");
    specs.write(
        "other.toml",
        "replicas = 0\n\n[containers.c]\nimage = \"nginx:1.27\"\n",
    );
    // (The new app looks like the old one moved; the removal is confirmed.)
    let run = berth(&ns, &["apply", "--yes", "--allow-removals", specs.path()]).await;
    run.expect_code(0);
    let seen = watch.stop();
    assert!(pods(&ns).await.is_empty());
    // Scaled down one at a time, each stopping for its grace: the progress names them.
    for pod in ["db-2", "db-1", "db-0"] {
        assert!(
            run.stderr.contains(&format!("{pod} stopping")),
            "the progress names {pod} while it stops:\n{}",
            run.stderr
        );
    }
    seen.assert_nothing_gone_before_the_pods("the removal of slow pods");
    ns.cleanup().await;
}
