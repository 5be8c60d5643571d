//! Faults of the control plane itself, on the fault tests' own cluster (support::faults): the
//! API server killed during an apply and during a removal's wait for pods, etcd killed and
//! restarted, and a watch that expires (410 Gone) after etcd compaction. After each, berth
//! converges to the files with no object lost or duplicated and every PVC kept.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Service};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};

use support::daemon::{Daemon, write_atomic};
use support::faults::{FaultCluster, fault_cluster};
use support::{Run, TestNamespace, berth_with_env, ensure_rbac, pod_ready, simple_app, wait_for};

const TIMEOUT: Duration = Duration::from_secs(120);

/// Names the seed of the random kill point, to rerun a failure at the same point
/// (`cargo xtask test` and `cargo xtask soak` set it, and print it, for each run).
const KILL_SEED_ENV: &str = "BERTH_KILL_SEED";

/// The seed (from [`KILL_SEED_ENV`], else the clock) and the kill point it gives: 1..=`max`.
fn kill_point(max: usize) -> (u64, usize) {
    let seed = std::env::var(KILL_SEED_ENV)
        .ok()
        .map(|s| {
            s.parse()
                .unwrap_or_else(|_| panic!("{KILL_SEED_ENV}={s} is not a whole number"))
        })
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or_default()
        });
    (seed, kill_point_of(seed, max))
}

/// The kill point of `seed`, 1..=`max`: splitmix64, so that consecutive seeds (clock readings)
/// still spread over the whole range.
fn kill_point_of(seed: u64, max: usize) -> usize {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    1 + (z % max as u64) as usize
}

#[test]
fn a_kill_point_is_reproducible_from_its_seed_and_seeds_spread() {
    assert_eq!(kill_point_of(42, 30), kill_point_of(42, 30));
    let points: BTreeSet<usize> = (0..200).map(|seed| kill_point_of(seed, 30)).collect();
    assert!(points.iter().all(|p| (1..=30).contains(p)), "{points:?}");
    assert!(points.len() >= 25, "consecutive seeds spread: {points:?}");
}

async fn setup(cluster: &FaultCluster, prefix: &str) -> (TestNamespace, tempfile::TempDir) {
    let client = cluster.admin_client().await;
    ensure_rbac(&client).await;
    let ns = TestNamespace::new_in(client, prefix).await;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(dir.path().join("specs")).expect("specs dir");
    (ns, dir)
}

/// berth as the restricted user of the fault cluster.
async fn berth(cluster: &FaultCluster, ns: &TestNamespace, args: &[&str]) -> Run {
    berth_with_env(ns, &[("KUBECONFIG", &cluster.berth_kubeconfig())], args).await
}

/// `berth diff` of the spec directory exits 0: the cluster matches the files.
async fn assert_in_sync(cluster: &FaultCluster, ns: &TestNamespace, specs: &std::path::Path) {
    berth(cluster, ns, &["diff", specs.to_str().expect("utf-8 path")])
        .await
        .expect_code(0);
}

async fn daemon(cluster: &FaultCluster, ns: &TestNamespace, dir: &tempfile::TempDir) -> Daemon {
    let kubeconfig = cluster.berth_kubeconfig();
    Daemon::start_with_env(
        ns,
        &dir.path().join("specs"),
        &[],
        &[],
        &[("KUBECONFIG", &kubeconfig)],
        dir.path().join("berth.log"),
    )
    .await
}

async fn names<K>(ns: &TestNamespace) -> BTreeSet<String>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    <K as kube::Resource>::DynamicType: Default,
{
    ns.api::<K>()
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .iter()
        .map(|o| o.meta().name.clone().unwrap_or_default())
        .collect()
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn an_apply_cut_by_an_apiserver_crash_converges_after_the_restart() {
    let (_serial, cluster) = fault_cluster().await;
    let (ns, dir) = setup(&cluster, "fault-apply").await;
    let specs = dir.path().join("specs");
    const APPS: usize = 60;
    for i in 0..APPS {
        write_atomic(&specs, &format!("app-{i:02}.toml"), &simple_app(0, "1Gi"));
    }
    let path = specs.to_str().expect("utf-8").to_string();
    let apply = {
        let kubeconfig = cluster.berth_kubeconfig();
        let ns_name = ns.name.clone();
        tokio::spawn(async move {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_berth"))
                .env("KUBECONFIG", kubeconfig)
                .env("NO_COLOR", "1")
                .env_remove("BERTH_CONFIG")
                .args(["--instance", &ns_name, "--namespace", &ns_name])
                .args(["apply", "--yes", &path])
                .stdin(std::process::Stdio::null())
                .output()
                .await
                .expect("run berth");
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
    };
    // Kill the API server mid-apply, once a seeded random number of StatefulSets exist: each run
    // (and each soak round) tries another point, and a failure names its seed for a rerun.
    let (seed, kill_after) = kill_point(APPS / 2);
    println!(
        "kill point: after {kill_after} StatefulSet(s), seed {seed} (rerun with {KILL_SEED_ENV}={seed})"
    );
    let statefulsets = ns.api::<StatefulSet>();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let n = statefulsets
            .list_metadata(&ListParams::default())
            .await
            .map(|l| l.items.len())
            .unwrap_or(0);
        if n >= kill_after {
            break;
        }
        assert!(Instant::now() < deadline, "berth apply created nothing");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cluster.kill("kube-apiserver");
    let killed_at = Instant::now();
    let (code, stdout, stderr) = apply.await.expect("apply task");
    println!(
        "berth apply ended {:.1}s after the API server died, exit {code:?}:\n{stderr}",
        killed_at.elapsed().as_secs_f64()
    );
    assert_ne!(
        code,
        Some(0),
        "the apply cannot have finished ({KILL_SEED_ENV}={seed}): {stderr}"
    );
    assert!(
        stderr.contains("connection") || stderr.contains("connect error"),
        "the error says the connection failed: {stderr}"
    );
    // Only the apps in flight (16 at a time) report their own error; the rest are summed up in
    // one line instead of each repeating it.
    let error_lines = stderr.lines().filter(|l| l.starts_with("error:")).count();
    assert!(
        error_lines <= 17,
        "{error_lines} error lines for one unreachable API server:\n{stderr}"
    );
    // Every app is accounted for, once: done (stdout), failed in flight (its own error line),
    // or not attempted (named in the one summary line, which is there only when the server
    // went away before every app had started).
    let prefix = format!("{}/", ns.name);
    // (The plan above names every app too, with the action planned: "create".)
    let done = stdout
        .lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str())?.strip_suffix(": applied"))
        .map(str::to_string);
    let failed = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("error: ")?.strip_prefix(prefix.as_str()))
        .filter_map(|l| l.split_once(':'))
        .map(|(app, _)| app.to_string());
    let summary = stderr
        .lines()
        .find_map(|l| l.split_once("were not attempted and are as they were: "))
        .map(|(_, apps)| apps.split_once(". Run again").map_or(apps, |(a, _)| a));
    let not_attempted = summary
        .into_iter()
        .flat_map(|apps| apps.split(", "))
        .filter_map(|app| app.strip_prefix(prefix.as_str()))
        .map(str::to_string);
    let mut accounted: Vec<String> = done.chain(failed).chain(not_attempted).collect();
    accounted.sort();
    let every_app: Vec<String> = (0..APPS).map(|i| format!("app-{i:02}")).collect();
    assert_eq!(
        accounted, every_app,
        "each app done, failed or not attempted, once ({KILL_SEED_ENV}={seed}):\n{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "the API server at https://127.0.0.1:{} did not answer",
            cluster.apiserver_port
        )),
        "the server is named: {stderr}"
    );
    cluster.start("kube-apiserver");

    let created_before = names::<StatefulSet>(&ns).await.len();
    println!(
        "the API server was killed once {kill_after} StatefulSet(s) existed ({KILL_SEED_ENV}={seed})"
    );
    let rerun = berth(
        &cluster,
        &ns,
        &["apply", "--yes", specs.to_str().expect("utf-8 path")],
    )
    .await;
    rerun.expect_code(0);
    println!("{created_before} of {APPS} StatefulSets were created before the crash");
    let want: BTreeSet<String> = (0..APPS).map(|i| format!("app-{i:02}")).collect();
    assert_eq!(names::<StatefulSet>(&ns).await, want, "every app, once");
    let headless: BTreeSet<String> = want.iter().map(|n| format!("{n}-headless")).collect();
    assert_eq!(names::<Service>(&ns).await, headless, "every Service, once");
    assert_in_sync(&cluster, &ns, &specs).await;
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn a_removal_waiting_for_pods_survives_an_apiserver_restart() {
    let (_serial, cluster) = fault_cluster().await;
    let (ns, dir) = setup(&cluster, "fault-removal").await;
    let specs = dir.path().join("specs");
    write_atomic(&specs, "web.toml", &simple_app(1, "1Gi"));
    // A second app keeps the directory from looking emptied (that removal would be held back).
    write_atomic(&specs, "keep.toml", &simple_app(0, "1Gi"));
    let daemon = daemon(&cluster, &ns, &dir).await;
    let pods = ns.api::<Pod>();
    wait_for("web-0 Ready", TIMEOUT, || async {
        pod_ready(&pods.get_opt("web-0").await.ok()??).then_some(())
    })
    .await;
    let pvc_uid = ns
        .api::<PersistentVolumeClaim>()
        .get("data-web-0")
        .await
        .expect("pvc")
        .metadata
        .uid;
    // Held in Terminating by the test's own finalizer: the removal waits for it.
    support::hold_pod(&pods, "web-0").await;
    std::fs::remove_file(specs.join("web.toml")).expect("remove");
    wait_for("the removal waiting for web-0", TIMEOUT, || async {
        let pod = pods.get_opt("web-0").await.ok()??;
        pod.metadata.deletion_timestamp.is_some().then_some(())
    })
    .await;

    cluster.kill("kube-apiserver");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        daemon.get("/healthz").await.as_deref(),
        Some("ok"),
        "the daemon lives through the outage"
    );
    cluster.start("kube-apiserver");
    assert!(
        ns.api::<StatefulSet>()
            .get_opt("web")
            .await
            .expect("get")
            .is_some(),
        "nothing deleted while web-0 is still stopping"
    );
    support::release_pod(&pods, "web-0").await;
    wait_for("the removal to finish", TIMEOUT, || async {
        let sts = ns.api::<StatefulSet>().get_opt("web").await.ok()?;
        let svc = ns.api::<Service>().get_opt("web-headless").await.ok()?;
        (sts.is_none() && svc.is_none()).then_some(())
    })
    .await;
    let pvc = ns
        .api::<PersistentVolumeClaim>()
        .get("data-web-0")
        .await
        .expect("the PVC is kept");
    assert_eq!(pvc.metadata.uid, pvc_uid, "the same PVC");
    // The log line follows the last delete, which the test may see first.
    let d = &daemon;
    wait_for("the daemon to report the removal", TIMEOUT, || async move {
        d.log().contains("app removed; volumes kept").then_some(())
    })
    .await;
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn an_etcd_crash_is_ridden_out_and_edits_and_drift_are_handled_after_it() {
    let (_serial, cluster) = fault_cluster().await;
    let (ns, dir) = setup(&cluster, "fault-etcd").await;
    let specs = dir.path().join("specs");
    write_atomic(&specs, "web.toml", &simple_app(0, "1Gi"));
    let daemon = daemon(&cluster, &ns, &dir).await;
    let statefulsets = ns.api::<StatefulSet>();
    let uid = statefulsets.get("web").await.expect("web").metadata.uid;

    cluster.kill("etcd");
    // An edit while etcd is down: it cannot land now, and must not be lost.
    write_atomic(
        &specs,
        "web.toml",
        &simple_app(0, "1Gi").replace("nginx:1.27", "nginx:1.28"),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(daemon.get("/healthz").await.as_deref(), Some("ok"));
    cluster.start("etcd");

    let image = |sts: &StatefulSet| {
        sts.spec.as_ref()?.template.spec.as_ref()?.containers[0]
            .image
            .clone()
    };
    wait_for(
        "the edit made during the outage to land",
        TIMEOUT,
        || async {
            let sts = statefulsets.get_opt("web").await.ok()??;
            (image(&sts).as_deref() == Some("nginx:1.28")).then_some(())
        },
    )
    .await;
    // Drift after the outage is still seen: the watches came back.
    statefulsets
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 2}})),
        )
        .await
        .expect("drift");
    wait_for("the drift to be corrected", TIMEOUT, || async {
        let sts = statefulsets.get_opt("web").await.ok()??;
        (sts.spec?.replicas == Some(0)).then_some(())
    })
    .await;
    assert_eq!(
        statefulsets.get("web").await.expect("web").metadata.uid,
        uid,
        "the same StatefulSet"
    );
    assert_in_sync(&cluster, &ns, &specs).await;
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn a_watch_expired_by_compaction_is_relisted_and_drift_made_meanwhile_is_corrected() {
    let (_serial, cluster) = fault_cluster().await;
    let (ns, dir) = setup(&cluster, "fault-gone").await;
    let specs = dir.path().join("specs");
    write_atomic(&specs, "web.toml", &simple_app(0, "1Gi"));
    write_atomic(&specs, "db.toml", &simple_app(0, "1Gi"));
    let daemon = daemon(&cluster, &ns, &dir).await;
    let statefulsets = ns.api::<StatefulSet>();

    // Frozen, the daemon cannot notice the API server going away; when it wakes its watch
    // connections are dead and it resumes them from resourceVersions the new API server no
    // longer serves. Everything below happens with no watch of berth's open: events buffered
    // in a live connection would otherwise hand it the changes without any re-list.
    daemon.signal("STOP");
    // Unrelated writes first: the restarted API server's watch cache then starts past every
    // resourceVersion the daemon has seen, so all three of its watches expire.
    let config_maps: Api<ConfigMap> = ns.api();
    let cm: ConfigMap =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "churn"}})).expect("cm");
    config_maps
        .create(&PostParams::default(), &cm)
        .await
        .expect("churn");
    for i in 0..20 {
        config_maps
            .patch(
                "churn",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"data": {"i": i.to_string()}})),
            )
            .await
            .expect("churn");
    }
    cluster.kill("kube-apiserver");
    cluster.start("kube-apiserver");
    statefulsets
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 2}})),
        )
        .await
        .expect("drift");
    statefulsets
        .delete("db", &Default::default())
        .await
        .expect("delete db behind berth's back");
    let revision = cluster.compact_etcd();
    daemon.signal("CONT");
    println!("API server restarted, etcd compacted at revision {revision}, daemon resumed");

    let d = &daemon;
    wait_for(
        "the drift made while the watches were gone to be corrected after the re-lists",
        TIMEOUT,
        || async {
            let web = statefulsets.get_opt("web").await.ok()??;
            let db = statefulsets.get_opt("db").await.ok()??;
            let relists = d.log().matches("owned objects re-listed").count();
            (web.spec?.replicas == Some(0)
                && db.metadata.deletion_timestamp.is_none()
                && relists == 3)
                .then_some(())
        },
    )
    .await;
    let log = daemon.log();
    let expired = log
        .lines()
        .filter(|l| l.contains("too old resource version"))
        .count();
    assert_eq!(expired, 3, "each of the three watches expired:\n{log}");
    let relisted = log
        .lines()
        .filter(|l| l.contains("owned objects re-listed"))
        .count();
    assert_eq!(relisted, 3, "each was re-listed:\n{log}");
    assert_in_sync(&cluster, &ns, &specs).await;
    ns.cleanup().await;
}
