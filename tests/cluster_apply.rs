//! berth's core against the real local control plane, run as the restricted `berth` user of
//! config/rbac.yaml: apply then diff, edits, broken files, ordered and interrupted removal,
//! immutable changes with and without permission, ownership and the removal safety limits.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};

use support::{
    Specs, TestNamespace, berth, ensure_rbac, pod_ready, pvc_uids, simple_app, wait_for,
};

const TIMEOUT: Duration = Duration::from_secs(120);

async fn setup(prefix: &str) -> (TestNamespace, Specs) {
    let ns = TestNamespace::new(prefix).await;
    ensure_rbac(&ns.client).await;
    (ns, Specs::new())
}

async fn ready_replicas(ns: &TestNamespace, name: &str) -> Option<i32> {
    let sts = ns.api::<StatefulSet>().get_opt(name).await.ok()??;
    sts.status.and_then(|s| s.ready_replicas)
}

async fn wait_ready(ns: &TestNamespace, name: &str, want: i32) {
    wait_for(
        &format!("{want} Ready replicas of {name}"),
        TIMEOUT,
        || async { (ready_replicas(ns, name).await == Some(want)).then_some(()) },
    )
    .await;
}

/// Watches the namespace's pods and records the lowest number of Ready pods seen at any event.
fn track_min_ready(ns: &TestNamespace) -> (Arc<Mutex<Option<usize>>>, tokio::task::JoinHandle<()>) {
    let min = Arc::new(Mutex::new(None::<usize>));
    let seen = min.clone();
    let mut stream = watcher(ns.api::<Pod>(), watcher::Config::default())
        .default_backoff()
        .boxed();
    let task = tokio::spawn(async move {
        let mut pods: BTreeMap<String, bool> = BTreeMap::new();
        // Counting starts once the initial list is complete: mid-list counts mean nothing.
        let mut listed = false;
        while let Some(Ok(event)) = stream.next().await {
            match event {
                watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                    pods.insert(p.metadata.name.clone().unwrap_or_default(), pod_ready(&p));
                }
                watcher::Event::Delete(p) => {
                    pods.remove(&p.metadata.name.clone().unwrap_or_default());
                }
                watcher::Event::Init => {
                    pods.clear();
                    listed = false;
                }
                watcher::Event::InitDone => listed = true,
            }
            if !listed {
                continue;
            }
            let now = pods.values().filter(|r| **r).count();
            let mut m = seen.lock().expect("lock");
            *m = Some(m.map_or(now, |m| m.min(now)));
        }
    });
    (min, task)
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn apply_converges_then_diff_is_clean_and_an_edit_shows_exactly_that_change() {
    let (ns, specs) = setup("apply").await;
    specs.write("web.toml", &simple_app(2, "1Gi"));

    let run = berth(&ns, &["diff", specs.path()]).await;
    run.expect_code(1);
    assert!(
        run.stdout.contains(&format!("{}/web: create", ns.name)),
        "{}",
        run.stdout
    );

    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    wait_ready(&ns, "web", 2).await;
    let headless = ns
        .api::<Service>()
        .get("web-headless")
        .await
        .expect("headless Service");
    assert_eq!(
        headless.spec.and_then(|s| s.cluster_ip).as_deref(),
        Some("None")
    );

    let clean = berth(&ns, &["diff", specs.path()]).await;
    clean.expect_code(0);
    assert!(
        clean.stdout.contains("1 app(s) unchanged"),
        "{}",
        clean.stdout
    );

    // A second apply with nothing changed writes nothing.
    let before = ns.api::<StatefulSet>().get("web").await.expect("sts");
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    let after = ns.api::<StatefulSet>().get("web").await.expect("sts");
    assert_eq!(
        before.metadata.resource_version,
        after.metadata.resource_version
    );

    specs.write("web.toml", &simple_app(3, "1Gi"));
    let edit = berth(&ns, &["diff", specs.path()]).await;
    edit.expect_code(1);
    let summary: Vec<&str> = edit
        .stdout
        .lines()
        .skip_while(|l| !l.ends_with("/web: update"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    assert_eq!(summary, ["  replicas: 2 → 3"], "{}", edit.stdout);
    let changed: Vec<&str> = edit
        .stdout
        .lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .collect();
    assert_eq!(
        changed,
        ["-  replicas: 2", "+  replicas: 3"],
        "{}",
        edit.stdout
    );

    let json = berth(&ns, &["diff", "-o", "json", specs.path()]).await;
    json.expect_code(1);
    let plan: serde_json::Value = serde_json::from_str(&json.stdout).expect("diff -o json is JSON");
    assert_eq!(plan["apps"][0]["action"], "update");

    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    wait_ready(&ns, "web", 3).await;
    berth(&ns, &["diff", specs.path()]).await.expect_code(0);
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn a_broken_spec_leaves_its_live_app_untouched() {
    let (ns, specs) = setup("broken").await;
    specs.write("web.toml", &simple_app(2, "1Gi"));
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    wait_ready(&ns, "web", 2).await;
    let before = ns.api::<StatefulSet>().get("web").await.expect("sts");

    // A typo, then a syntax error: neither may change or remove the app.
    for broken in [
        simple_app(5, "1Gi").replace("replicas", "replcas"),
        "replicas = 5\n[containers.web\nimage = \"nginx\"\n".to_string(),
    ] {
        specs.write("web.toml", &broken);
        let run = berth(&ns, &["apply", "--yes", specs.path()]).await;
        run.expect_code(2);
        assert!(
            run.stderr.contains("web.toml:"),
            "diagnostic names the file: {}",
            run.stderr
        );
        let diff = berth(&ns, &["diff", specs.path()]).await;
        diff.expect_code(2);
        let now = ns
            .api::<StatefulSet>()
            .get("web")
            .await
            .expect("sts still there");
        assert_eq!(now.metadata.uid, before.metadata.uid);
        assert_eq!(
            now.metadata.resource_version, before.metadata.resource_version,
            "the live StatefulSet is byte-for-byte unchanged"
        );
    }
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn removal_scales_to_zero_waits_for_pods_then_deletes_and_keeps_pvcs() {
    let (ns, specs) = setup("remove").await;
    specs.write("web.toml", &simple_app(3, "1Gi"));
    specs.write("keep.toml", &simple_app(1, "1Gi"));
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    wait_ready(&ns, "web", 3).await;
    let pvcs_before = pvc_uids(&ns).await;
    assert_eq!(pvcs_before.len(), 4);

    // Record what the StatefulSet goes through, in the API server's order.
    let mut stream = watcher(
        ns.api::<StatefulSet>(),
        watcher::Config::default().fields("metadata.name=web"),
    )
    .default_backoff()
    .boxed();
    let recorder = tokio::spawn(async move {
        let mut steps: Vec<String> = Vec::new();
        let mut push = |s: &str| {
            if steps.last().map(String::as_str) != Some(s) {
                steps.push(s.to_string());
            }
        };
        while let Some(Ok(event)) = stream.next().await {
            match event {
                watcher::Event::Apply(s) | watcher::Event::InitApply(s) => {
                    let spec = s.spec.as_ref().and_then(|s| s.replicas);
                    let status = s.status.as_ref().map(|s| s.replicas);
                    match (spec, status) {
                        (Some(0), Some(0)) => push("status 0"),
                        (Some(0), _) => push("spec 0"),
                        _ => push("running"),
                    }
                }
                watcher::Event::Delete(_) => {
                    push("deleted");
                    break;
                }
                _ => {}
            }
        }
        steps
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    specs.remove("web.toml");
    let diff = berth(&ns, &["diff", specs.path()]).await;
    diff.expect_code(3);
    assert!(diff.stdout.contains("/web: remove"), "{}", diff.stdout);
    let run = berth(&ns, &["apply", "--yes", specs.path()]).await;
    run.expect_code(0);
    for pvc in ["data-web-0", "data-web-1", "data-web-2"] {
        assert!(
            run.stdout.contains(pvc),
            "report lists kept {pvc}: {}",
            run.stdout
        );
    }
    let steps = tokio::time::timeout(TIMEOUT, recorder)
        .await
        .expect("StatefulSet deleted in time")
        .expect("recorder");
    assert_eq!(steps, ["running", "spec 0", "status 0", "deleted"]);
    assert!(
        ns.api::<Service>()
            .get_opt("web-headless")
            .await
            .expect("get")
            .is_none()
    );
    assert!(
        ns.api::<Pod>()
            .list(&ListParams::default().labels("app.kubernetes.io/name=web"))
            .await
            .expect("pods")
            .items
            .is_empty()
    );
    assert_eq!(
        pvc_uids(&ns).await,
        pvcs_before,
        "every PVC is kept, the same objects"
    );
    assert!(
        ns.api::<StatefulSet>()
            .get_opt("keep")
            .await
            .expect("get")
            .is_some()
    );
    berth(&ns, &["diff", specs.path()]).await.expect_code(0);
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn an_interrupted_removal_finishes_and_a_returning_spec_cancels_it() {
    let (ns, specs) = setup("resume").await;
    specs.write("a.toml", &simple_app(2, "1Gi"));
    specs.write("b.toml", &simple_app(2, "1Gi"));
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    wait_ready(&ns, "a", 2).await;
    wait_ready(&ns, "b", 2).await;

    // The state a crash right after removal's first step leaves: marked and scaled to 0.
    let mark = |replicas: &str| {
        serde_json::json!({
            "metadata": {"annotations": {"berth.dev/removing": replicas}},
            "spec": {"replicas": 0}
        })
    };
    for app in ["a", "b"] {
        ns.api::<StatefulSet>()
            .patch(app, &PatchParams::default(), &Patch::Merge(mark("2")))
            .await
            .expect("mark");
    }
    // a's file is gone: the removal is finished. b's file is still there: it is cancelled.
    specs.remove("a.toml");
    let run = berth(&ns, &["apply", "--yes", specs.path()]).await;
    run.expect_code(0);
    assert!(
        run.stderr.contains("resuming the removal"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("removal cancelled"), "{}", run.stdout);
    assert!(
        ns.api::<StatefulSet>()
            .get_opt("a")
            .await
            .expect("get")
            .is_none()
    );
    wait_ready(&ns, "b", 2).await;
    let b = ns.api::<StatefulSet>().get("b").await.expect("b");
    assert!(
        !b.metadata
            .annotations
            .unwrap_or_default()
            .contains_key("berth.dev/removing")
    );
    berth(&ns, &["diff", specs.path()]).await.expect_code(0);
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn a_removal_cut_after_the_statefulset_went_deletes_the_rest_next_time() {
    let (ns, specs) = setup("leftover").await;
    specs.write("web.toml", &simple_app(1, "1Gi"));
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    wait_ready(&ns, "web", 1).await;
    ns.api::<StatefulSet>()
        .delete("web", &Default::default())
        .await
        .expect("delete the StatefulSet as a crashed removal would have");
    wait_for("StatefulSet gone", TIMEOUT, || async {
        ns.api::<StatefulSet>()
            .get_opt("web")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    specs.remove("web.toml");
    berth(&ns, &["apply", "--yes", "--allow-empty", specs.path()])
        .await
        .expect_code(0);
    assert!(
        ns.api::<Service>()
            .get_opt("web-headless")
            .await
            .expect("get")
            .is_none()
    );
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn immutable_changes_are_blocked_and_with_permission_recreated_without_an_outage() {
    let (ns, specs) = setup("recreate").await;
    specs.write("db.toml", &simple_app(3, "1Gi"));
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    wait_ready(&ns, "db", 3).await;
    let pvcs = pvc_uids(&ns).await;
    let sts_uid = ns
        .api::<StatefulSet>()
        .get("db")
        .await
        .expect("sts")
        .metadata
        .uid;

    // A bigger volume: blocked until allowed, nothing sent meanwhile.
    specs.write("db.toml", &simple_app(3, "2Gi"));
    let diff = berth(&ns, &["diff", specs.path()]).await;
    diff.expect_code(3);
    assert!(
        diff.stdout
            .contains("blocked: needs recreate: volumes.data.size: 1Gi → 2Gi"),
        "{}",
        diff.stdout
    );
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(2);
    assert_eq!(
        ns.api::<StatefulSet>()
            .get("db")
            .await
            .expect("sts")
            .metadata
            .uid,
        sts_uid
    );

    let (min_ready, tracker) = track_min_ready(&ns);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let run = berth(&ns, &["apply", "--yes", "--allow-recreate", specs.path()]).await;
    run.expect_code(0);
    wait_ready(&ns, "db", 3).await;
    assert_ne!(
        ns.api::<StatefulSet>()
            .get("db")
            .await
            .expect("sts")
            .metadata
            .uid,
        sts_uid
    );
    assert_eq!(pvc_uids(&ns).await, pvcs, "the same PVCs, adopted");
    for ordinal in 0..3 {
        let name = format!("data-db-{ordinal}");
        wait_for(&format!("{name} expanded to 2Gi"), TIMEOUT, || async {
            let pvc = ns.api::<PersistentVolumeClaim>().get(&name).await.ok()?;
            (pvc.status?.capacity?.get("storage")?.0 == "2Gi").then_some(())
        })
        .await;
    }
    berth(&ns, &["diff", specs.path()]).await.expect_code(0);

    // A new headless Service name needs new pods: with permission they restart one at a time.
    let renamed = format!(
        "headless = \"db-peers\"\nallow_recreate = true\n{}",
        simple_app(3, "2Gi")
    );
    specs.write("db.toml", &renamed);
    let run = berth(&ns, &["apply", "--yes", specs.path()]).await;
    run.expect_code(0);
    assert!(run.stderr.contains("restarting db-0"), "{}", run.stderr);
    wait_ready(&ns, "db", 3).await;
    let pods = ns
        .api::<Pod>()
        .list(&ListParams::default())
        .await
        .expect("pods");
    for pod in &pods.items {
        assert_eq!(
            pod.spec.as_ref().and_then(|s| s.subdomain.as_deref()),
            Some("db-peers"),
            "{} was restarted under the new headless Service",
            pod.metadata.name.as_deref().unwrap_or_default()
        );
    }
    assert_eq!(pvc_uids(&ns).await, pvcs, "still the same PVCs");
    tracker.abort();
    let min = min_ready.lock().expect("lock").unwrap_or(0);
    assert!(
        min >= 2,
        "at least 2 of 3 pods were Ready at every moment (saw {min})"
    );
    berth(&ns, &["diff", specs.path()]).await.expect_code(0);
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn an_unowned_object_of_the_same_name_is_left_alone() {
    let (ns, specs) = setup("unowned").await;
    let theirs: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web-headless", "labels": {"team": "other"}},
        "spec": {"clusterIP": "None", "selector": {"app": "theirs"}, "ports": [{"name": "x", "port": 9}]}
    }))
    .expect("service");
    let created = ns
        .api::<Service>()
        .create(&PostParams::default(), &theirs)
        .await
        .expect("create their Service");
    specs.write("web.toml", &simple_app(1, "1Gi"));
    let diff = berth(&ns, &["diff", specs.path()]).await;
    diff.expect_code(1);
    assert!(
        diff.stdout
            .contains("is not managed by this berth instance"),
        "{}",
        diff.stdout
    );
    assert!(diff.stdout.contains("adopt = true"), "{}", diff.stdout);
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(2);
    let now = ns
        .api::<Service>()
        .get("web-headless")
        .await
        .expect("still there");
    assert_eq!(
        now.metadata.resource_version,
        created.metadata.resource_version
    );
    assert!(
        ns.api::<StatefulSet>()
            .get_opt("web")
            .await
            .expect("get")
            .is_none()
    );

    // Adoption is an explicit opt-in.
    specs.write(
        "web.toml",
        &format!("adopt = true\n{}", simple_app(1, "1Gi")),
    );
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);
    let adopted = ns
        .api::<Service>()
        .get("web-headless")
        .await
        .expect("adopted");
    assert_eq!(
        adopted
            .metadata
            .labels
            .unwrap_or_default()
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("berth")
    );
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn an_empty_directory_or_too_many_removals_are_refused_until_confirmed() {
    let (ns, specs) = setup("safety").await;
    for app in ["a", "b", "c", "d"] {
        specs.write(&format!("{app}.toml"), &simple_app(1, "1Gi"));
    }
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(0);

    // Three removals at once exceed the default limit of two.
    for app in ["a", "b", "c"] {
        specs.remove(&format!("{app}.toml"));
    }
    let run = berth(&ns, &["apply", "--yes", specs.path()]).await;
    run.expect_code(2);
    assert!(
        run.stdout.contains("safety.max_removals = 2"),
        "{}",
        run.stdout
    );
    assert!(
        ns.api::<StatefulSet>()
            .get_opt("a")
            .await
            .expect("get")
            .is_some()
    );

    // An empty directory (a bad checkout) removes nothing.
    specs.remove("d.toml");
    berth(&ns, &["apply", "--yes", specs.path()])
        .await
        .expect_code(2);
    let missing = berth(&ns, &["apply", "--yes", "/nonexistent/berth-specs"]).await;
    missing.expect_code(2);
    assert!(
        missing.stderr.contains("does not exist"),
        "{}",
        missing.stderr
    );
    assert_eq!(
        ns.api::<StatefulSet>()
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .len(),
        4
    );

    berth(
        &ns,
        &[
            "apply",
            "--yes",
            "--allow-empty",
            "--allow-removals",
            specs.path(),
        ],
    )
    .await
    .expect_code(0);
    assert!(
        ns.api::<StatefulSet>()
            .list(&ListParams::default())
            .await
            .expect("list")
            .items
            .is_empty()
    );
    assert_eq!(pvc_uids(&ns).await.len(), 4, "volumes stay");
    ns.cleanup().await;
}

/// Copies every spec of `from` into `specs`, dropping `namespace` lines so the apps land in the
/// test's own namespace, and giving each fixed `node_port` one that no Service in the cluster
/// uses (node ports are cluster-wide: `cargo xtask demo`'s copy of the examples, or a run that
/// was interrupted, may hold the fixtures' own).
fn copy_specs_into(from: &str, specs: &Specs, free_ports: &mut impl Iterator<Item = i32>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(from);
    for entry in std::fs::read_dir(&dir).expect("read fixture dir") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read spec");
        let body: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("namespace"))
            .map(|l| format!("{}\n", with_node_ports(l, free_ports)))
            .collect();
        specs.write(
            path.file_name().and_then(|n| n.to_str()).expect("name"),
            &body,
        );
    }
}

/// `line` with every `node_port = N` replaced by the next port of `ports`.
fn with_node_ports(line: &str, ports: &mut impl Iterator<Item = i32>) -> String {
    const KEY: &str = "node_port = ";
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = rest.find(KEY) {
        let digits = rest[at + KEY.len()..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len() - at - KEY.len());
        let port = ports.next().expect("a free node port");
        out.push_str(&format!("{}{KEY}{port}", &rest[..at]));
        rest = &rest[at + KEY.len() + digits..];
    }
    out.push_str(rest);
    out
}

/// Node ports (30000–32767) that no Service in the cluster holds now.
async fn free_node_ports(client: &kube::Client) -> Vec<i32> {
    let used: std::collections::BTreeSet<i32> = kube::Api::<Service>::all(client.clone())
        .list(&ListParams::default())
        .await
        .expect("list Services")
        .items
        .iter()
        .flat_map(|s| s.spec.iter().flat_map(|spec| spec.ports.iter().flatten()))
        .filter_map(|p| p.node_port)
        .collect();
    (30000..=32767).filter(|p| !used.contains(p)).collect()
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn every_fixture_and_example_shape_converges_to_a_clean_diff() {
    // What `cargo xtask demo` leaves running holds the examples' node ports: hold them here
    // too, so this test shows it passes whatever the demo left behind.
    let squatter = TestNamespace::new("nodeport-squatter").await;
    for (name, port) in [("demo-zookeeper", 30181), ("demo-fixture", 30182)] {
        let service: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"type": "NodePort", "selector": {"app": name},
                     "ports": [{"port": 2181, "nodePort": port}]}
        }))
        .expect("Service");
        // Already held (by the demo itself) is just as good.
        let _ = squatter
            .api::<Service>()
            .create(&PostParams::default(), &service)
            .await;
    }
    // Sequential on purpose: both sets take their node ports from one list of free ones.
    let mut free_ports = free_node_ports(&squatter.client).await.into_iter();
    for (prefix, from) in [
        ("fixtures", "tests/fixtures/valid"),
        ("examples", "config/apps"),
    ] {
        let (ns, specs) = setup(prefix).await;
        copy_specs_into(from, &specs, &mut free_ports);
        // The fixtures' config allows the host path and ServiceAccount they use.
        let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/berth.toml");
        let run = berth(&ns, &["--config", config, "apply", "--yes", specs.path()]).await;
        run.expect_code(0);
        let diff = berth(&ns, &["--config", config, "diff", specs.path()]).await;
        diff.expect_code(0);
        assert!(diff.stdout.contains("app(s) unchanged"), "{}", diff.stdout);
        ns.cleanup().await;
    }
    squatter.cleanup().await;
}
