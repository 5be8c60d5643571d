//! App health from the live objects, against the real local control plane: `berth status`
//! shows `HEALTH` and a degraded app's reason, `berth apply --wait` waits for healthy and ends
//! with 4 when an app is degraded or the timeout passes.
//!
//! Which reasons the local control plane produces by itself: Unschedulable (the scheduler runs),
//! a claim that never binds (the volume controller runs), FailedCreate (the StatefulSet
//! controller runs; Pod Security admission refuses its pods). kwok runs no containers, so container
//! states (CrashLoopBackOff, ImagePullBackOff, OOMKilled) are written into the pod's status by
//! the test, as a kubelet would; kwok leaves a Running pod's container statuses alone.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Patch, PatchParams};
use serde_json::json;
use support::{Run, Specs, TestNamespace, berth, ensure_rbac, simple_app, wait_for};

async fn setup(prefix: &str) -> (TestNamespace, Specs) {
    let ns = TestNamespace::new(prefix).await;
    ensure_rbac(&ns.client).await;
    (ns, Specs::new())
}

/// `berth status DIR -o json`, parsed.
async fn status_of(ns: &TestNamespace, specs: &Specs) -> serde_json::Value {
    let run = berth(ns, &["status", specs.path(), "-o", "json"]).await;
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run:?}"))
}

/// Waits until `berth status` reports `app` with `state`, and returns its reason.
async fn wait_for_health(ns: &TestNamespace, specs: &Specs, app: &str, state: &str) -> String {
    wait_for(
        &format!("{app} to be {state}"),
        Duration::from_secs(30),
        || async {
            let status = status_of(ns, specs).await;
            let apps = status["apps"].as_array()?.clone();
            let entry = apps.iter().find(|a| a["name"] == app)?;
            (entry["health"]["state"] == state)
                .then(|| entry["health"]["reason"].as_str().unwrap_or("").to_string())
        },
    )
    .await
}

fn stderr_says(run: &Run, needle: &str) {
    assert!(
        run.stderr.contains(needle),
        "stderr does not say {needle:?}:\n{}",
        run.stderr
    );
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn apply_wait_ends_when_the_app_is_healthy_and_status_says_so() {
    let (ns, specs) = setup("health-ok").await;
    specs.write("web.toml", &simple_app(2, "1Gi"));

    let run = berth(
        &ns,
        &["apply", "--yes", "--wait", "--timeout", "60s", specs.path()],
    )
    .await;
    run.expect_code(0);
    stderr_says(&run, &format!("{}/web: healthy", ns.name));

    let run = berth(&ns, &["status", specs.path()]).await;
    run.expect_code(0);
    assert!(
        run.stdout.contains("in-sync  healthy  2/2"),
        "{}",
        run.stdout
    );
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn an_unschedulable_pod_is_degraded_and_wait_gives_up_at_its_timeout() {
    let (ns, specs) = setup("health-unsched").await;
    // More CPU than the local node has: the scheduler says so.
    specs.write(
        "big.toml",
        "replicas = 1\n\n[containers.big]\nimage = \"nginx:1.27\"\ncpu = \"1000\"\nmemory = \"64Mi\"\n",
    );

    let run = berth(
        &ns,
        &["apply", "--yes", "--wait", "--timeout", "15s", specs.path()],
    )
    .await;
    run.expect_code(4);
    stderr_says(
        &run,
        &format!("{}/big is not healthy after 15s: degraded", ns.name),
    );
    stderr_says(&run, "Insufficient cpu");

    let reason = wait_for_health(&ns, &specs, "big", "degraded").await;
    assert!(
        reason.starts_with("pod big-0 Unschedulable:") && reason.contains("Insufficient cpu"),
        "{reason}"
    );
    let run = berth(&ns, &["status", specs.path()]).await;
    run.expect_code(1);
    assert!(run.stdout.contains("degraded"), "{}", run.stdout);
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn a_claim_that_never_binds_is_named() {
    let (ns, specs) = setup("health-claim").await;
    specs.write(
        "db.toml",
        "replicas = 1\n\n[containers.db]\nimage = \"postgres:17\"\nmounts = { data = \"/data\" }\n\n\
         [volumes.data]\nsize = \"1Gi\"\nclass = \"no-such-class\"\n",
    );
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);

    let reason = wait_for_health(&ns, &specs, "db", "degraded").await;
    assert!(reason.starts_with("claim data-db-0 Pending"), "{reason}");
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn pods_the_controller_cannot_create_fail_the_wait_at_once() {
    let (ns, specs) = setup("health-admission").await;
    // Pod Security admission (built into the API server) refuses pods that do not meet the
    // restricted level, as a hardened production namespace does.
    let namespaces = kube::Api::<Namespace>::all(ns.client.clone());
    namespaces
        .patch(
            &ns.name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {
                "pod-security.kubernetes.io/enforce": "restricted"}}})),
        )
        .await
        .expect("label the namespace");
    specs.write("web.toml", &simple_app(1, "1Gi"));

    let started = std::time::Instant::now();
    let run = berth(
        &ns,
        &[
            "apply",
            "--yes",
            "--wait",
            "--timeout",
            "120s",
            specs.path(),
        ],
    )
    .await;
    run.expect_code(4);
    stderr_says(
        &run,
        &format!("error: {}/web is degraded: FailedCreate:", ns.name),
    );
    stderr_says(&run, "forbidden");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the wait did not end at the FailedCreate: {:?}",
        started.elapsed()
    );
    ns.cleanup().await;
}

/// Writes `container_status` into web-0's status, and the pod not Ready, as a kubelet would.
async fn set_container_status(ns: &TestNamespace, container_status: serde_json::Value) {
    let pods = ns.api::<Pod>();
    pods.patch_status(
        "web-0",
        &PatchParams::default(),
        // A container that is not running leaves the pod not Ready, as a kubelet reports it.
        &Patch::Merge(json!({"status": {
            "containerStatuses": [container_status],
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Initialized", "status": "True"},
                {"type": "ContainersReady", "status": "False"},
                {"type": "Ready", "status": "False"},
            ],
        }})),
    )
    .await
    .expect("patch the pod's status");
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn container_failures_are_degraded_with_their_reason() {
    let (ns, specs) = setup("health-containers").await;
    specs.write("web.toml", &simple_app(1, "1Gi"));
    berth(
        &ns,
        &["apply", "--yes", "--wait", "--timeout", "60s", specs.path()],
    )
    .await
    .expect_code(0);

    let base = json!({"name": "web", "ready": false, "restartCount": 3, "image": "nginx:1.27",
                      "imageID": "", "started": false});
    let cases = [
        (
            json!({"state": {"waiting": {"reason": "CrashLoopBackOff",
                   "message": "back-off 40s restarting failed container=web"}}}),
            "pod web-0: container web: CrashLoopBackOff: back-off 40s restarting failed container=web",
        ),
        (
            json!({"state": {"waiting": {"reason": "ImagePullBackOff",
                   "message": "Back-off pulling image \"nginx:1.27\""}}}),
            "pod web-0: container web: ImagePullBackOff: Back-off pulling image \"nginx:1.27\"",
        ),
        (
            json!({"state": {"waiting": {"reason": "CrashLoopBackOff"}},
                   "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}),
            "pod web-0: container web: OOMKilled, restarting (CrashLoopBackOff): raise its memory limit",
        ),
    ];
    for (state, want) in cases {
        let mut status = base.clone();
        status
            .as_object_mut()
            .expect("an object")
            .extend(state.as_object().expect("an object").clone());
        set_container_status(&ns, status).await;
        let reason = wait_for_health(&ns, &specs, "web", "degraded").await;
        assert_eq!(reason, want);
        let run = berth(&ns, &["status", specs.path()]).await;
        assert!(
            run.stdout.contains("degraded") && run.stdout.contains(want),
            "{}",
            run.stdout
        );
    }
    ns.cleanup().await;
}
