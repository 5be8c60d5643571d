//! The daemon (`berth watch`) against the real local control plane, run as the restricted
//! `berth` user: edits, symlink swaps, broken files, drift, ordered removal across a SIGKILL,
//! SIGTERM.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Service};
use kube::api::{ListParams, Patch, PatchParams};

use support::daemon::{Daemon, write_atomic};
use support::{TestNamespace, ensure_rbac, git, simple_app, wait_for};

const TIMEOUT: Duration = Duration::from_secs(60);

async fn spec_replicas(ns: &TestNamespace, name: &str) -> Option<i32> {
    ns.api::<StatefulSet>()
        .get_opt(name)
        .await
        .ok()??
        .spec?
        .replicas
}

async fn setup(prefix: &str) -> (TestNamespace, tempfile::TempDir) {
    let ns = TestNamespace::new(prefix).await;
    ensure_rbac(&ns.client).await;
    (ns, tempfile::tempdir().expect("temp dir"))
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn edits_go_live_quickly_and_a_broken_file_changes_nothing() {
    let (ns, dir) = setup("watch-edit").await;
    let specs = dir.path().join("specs");
    std::fs::create_dir(&specs).expect("dir");
    write_atomic(&specs, "web.toml", &simple_app(1, "1Gi"));
    let daemon = Daemon::start(&ns, &specs, &[], dir.path().join("berth.log")).await;
    wait_for("web created", TIMEOUT, || async {
        spec_replicas(&ns, "web").await
    })
    .await;

    // Edit latency: atomic rename of the spec → the new replicas visible through the API.
    let mut latencies = Vec::new();
    for i in 0..8 {
        let want = 2 + (i % 3);
        if spec_replicas(&ns, "web").await == Some(want) {
            continue;
        }
        let start = Instant::now();
        write_atomic(&specs, "web.toml", &simple_app(want as u32, "1Gi"));
        wait_for("the edit to be live", TIMEOUT, || async {
            (spec_replicas(&ns, "web").await == Some(want)).then_some(())
        })
        .await;
        latencies.push(start.elapsed());
    }
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    println!(
        "edit → live StatefulSet: median {median:?} over {} edits (max {:?})",
        latencies.len(),
        latencies.last()
    );
    assert!(
        median < Duration::from_secs(5),
        "edits are picked up by file events, not a resync"
    );

    // A broken file: the live app stays exactly as it is, and the error is a metric. First let
    // the controller finish the last rollout, so only berth could change the object.
    let before = wait_for("web settled", TIMEOUT, || async {
        let sts = ns.api::<StatefulSet>().get("web").await.ok()?;
        let status = sts.status.clone()?;
        let settled = status.observed_generation == sts.metadata.generation
            && Some(status.replicas) == sts.spec.as_ref().and_then(|s| s.replicas)
            && status.ready_replicas == Some(status.replicas);
        settled.then_some(sts)
    })
    .await;
    write_atomic(&specs, "web.toml", "replicas = 9\n[containers.web\n");
    let d = &daemon;
    let metrics = wait_for("berth_spec_errors for web.toml", TIMEOUT, || async move {
        let m = d.get("/metrics").await?;
        m.lines()
            .any(|l| {
                l.starts_with("berth_spec_errors{") && l.contains("web.toml") && !l.ends_with(" 0")
            })
            .then_some(m)
    })
    .await;
    assert!(metrics.contains("berth_apps{"), "{metrics}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = ns
        .api::<StatefulSet>()
        .get("web")
        .await
        .expect("still there");
    assert_eq!(
        before.metadata.resource_version,
        after.metadata.resource_version
    );
    assert!(daemon.log().contains("spec error"), "{}", daemon.log());

    // SIGTERM: a prompt, clean exit.
    let mut daemon = daemon;
    let start = Instant::now();
    daemon.signal("TERM");
    let status = tokio::time::timeout(Duration::from_secs(10), daemon.child.wait())
        .await
        .expect("exits within 10s of SIGTERM")
        .expect("wait");
    assert!(status.success(), "exit status {status:?}\n{}", daemon.log());
    println!("SIGTERM → exit in {:?}", start.elapsed());
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn a_symlink_swap_of_the_whole_directory_is_picked_up() {
    let (ns, dir) = setup("watch-link").await;
    let (v1, v2, link) = (
        dir.path().join("v1"),
        dir.path().join("v2"),
        dir.path().join("current"),
    );
    std::fs::create_dir(&v1).expect("v1");
    std::fs::create_dir(&v2).expect("v2");
    write_atomic(&v1, "web.toml", &simple_app(1, "1Gi"));
    write_atomic(&v2, "web.toml", &simple_app(3, "1Gi"));
    std::os::unix::fs::symlink(&v1, &link).expect("link");
    let _daemon = Daemon::start(&ns, &link, &[], dir.path().join("berth.log")).await;
    wait_for("web at 1 replica", TIMEOUT, || async {
        (spec_replicas(&ns, "web").await == Some(1)).then_some(())
    })
    .await;
    // git-sync style: a new link renamed over the old one, atomically.
    let tmp = dir.path().join("current.tmp");
    std::os::unix::fs::symlink(&v2, &tmp).expect("new link");
    std::fs::rename(&tmp, &link).expect("swap");
    wait_for("web at 3 replicas after the swap", TIMEOUT, || async {
        (spec_replicas(&ns, "web").await == Some(3)).then_some(())
    })
    .await;
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn drift_is_corrected_or_only_reported() {
    for mode in ["correct", "report"] {
        let (ns, dir) = setup(&format!("drift-{mode}")).await;
        let specs = dir.path().join("specs");
        std::fs::create_dir(&specs).expect("dir");
        write_atomic(&specs, "web.toml", &simple_app(2, "1Gi"));
        let config = dir.path().join("berth.toml");
        std::fs::write(&config, format!("drift = \"{mode}\"\n")).expect("config");
        let config = config.to_str().expect("utf-8").to_string();
        let daemon = Daemon::start(
            &ns,
            &specs,
            &["--config", &config],
            dir.path().join("berth.log"),
        )
        .await;
        wait_for("web at 2", TIMEOUT, || async {
            (spec_replicas(&ns, "web").await == Some(2)).then_some(())
        })
        .await;
        // `kubectl scale` under another field manager.
        ns.api::<StatefulSet>()
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"replicas": 5}})),
            )
            .await
            .expect("scale by hand");
        let d = &daemon;
        wait_for("berth_drift_total 1", TIMEOUT, || async move {
            d.get("/metrics")
                .await?
                .lines()
                .any(|l| l == "berth_drift_total 1")
                .then_some(())
        })
        .await;
        if mode == "correct" {
            wait_for("replicas back to 2", TIMEOUT, || async {
                (spec_replicas(&ns, "web").await == Some(2)).then_some(())
            })
            .await;
        } else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert_eq!(
                spec_replicas(&ns, "web").await,
                Some(5),
                "report mode leaves it"
            );
        }
        drop(daemon);
        ns.cleanup().await;
    }
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn a_deleted_file_removes_the_app_in_order_even_across_a_sigkill() {
    let (ns, dir) = setup("watch-remove").await;
    let specs = dir.path().join("specs");
    std::fs::create_dir(&specs).expect("dir");
    write_atomic(&specs, "web.toml", &simple_app(3, "1Gi"));
    write_atomic(&specs, "keep.toml", &simple_app(1, "1Gi"));
    let mut daemon = Daemon::start(&ns, &specs, &[], dir.path().join("first.log")).await;
    wait_for("web Ready", TIMEOUT, || async {
        let sts = ns.api::<StatefulSet>().get_opt("web").await.ok()??;
        (sts.status?.ready_replicas == Some(3)).then_some(())
    })
    .await;

    // Hold web-0 in Terminating with a finalizer of the test's own, so the removal is caught
    // between "scaled to 0" and "pods gone" (kwok finishes deletions at once otherwise).
    let pods = ns.api::<k8s_openapi::api::core::v1::Pod>();
    support::hold_pod(&pods, "web-0").await;
    std::fs::remove_file(specs.join("web.toml")).expect("remove");
    wait_for(
        "web-0 terminating with the removal mark set",
        TIMEOUT,
        || async {
            let sts = ns.api::<StatefulSet>().get_opt("web").await.ok()??;
            let marked = sts.metadata.annotations?.contains_key("berth.dev/removing");
            let pod = pods.get_opt("web-0").await.ok()??;
            (marked && pod.metadata.deletion_timestamp.is_some()).then_some(())
        },
    )
    .await;
    daemon.signal("KILL");
    let _ = daemon.child.wait().await;
    assert!(
        ns.api::<StatefulSet>()
            .get_opt("web")
            .await
            .expect("get")
            .is_some(),
        "nothing is deleted while a pod is still stopping"
    );

    let restarted = Daemon::start(&ns, &specs, &[], dir.path().join("second.log")).await;
    let r = &restarted;
    wait_for(
        "the restarted daemon to resume the removal",
        TIMEOUT,
        || async move { r.log().contains("resuming the removal").then_some(()) },
    )
    .await;
    assert!(
        ns.api::<StatefulSet>()
            .get_opt("web")
            .await
            .expect("get")
            .is_some()
    );
    support::release_pod(&pods, "web-0").await;
    wait_for("web removed", TIMEOUT, || async {
        ns.api::<StatefulSet>()
            .get_opt("web")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    wait_for("headless Service removed", TIMEOUT, || async {
        ns.api::<Service>()
            .get_opt("web-headless")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    let pvcs = ns
        .api::<PersistentVolumeClaim>()
        .list(&ListParams::default().labels("app.kubernetes.io/name=web"))
        .await
        .expect("pvcs");
    assert_eq!(pvcs.items.len(), 3, "volumes are kept");
    assert!(
        spec_replicas(&ns, "keep").await.is_some(),
        "the other app stays"
    );
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn with_leader_election_only_the_leader_writes_and_a_standby_takes_over() {
    let (ns, dir) = setup("watch-leader").await;
    let specs = dir.path().join("specs");
    std::fs::create_dir(&specs).expect("dir");
    write_atomic(&specs, "web.toml", &simple_app(1, "1Gi"));
    let config = dir.path().join("berth.toml");
    std::fs::write(
        &config,
        format!(
            "[leader_election]\nenabled = true\nnamespace = \"{}\"\nlease_name = \"berth\"\nlease_duration = \"3s\"\n",
            ns.name
        ),
    )
    .expect("config");
    let config = config.to_str().expect("utf-8").to_string();
    let mut first = Daemon::start(
        &ns,
        &specs,
        &["--config", &config],
        dir.path().join("first.log"),
    )
    .await;
    wait_for("web created by the leader", TIMEOUT, || async {
        spec_replicas(&ns, "web").await
    })
    .await;
    let second = Daemon::start(
        &ns,
        &specs,
        &["--config", &config],
        dir.path().join("second.log"),
    )
    .await;
    let s = &second;
    wait_for("the second to stand by", TIMEOUT, || async move {
        s.log().contains("standing by").then_some(())
    })
    .await;

    // An edit is carried out by the leader alone.
    write_atomic(&specs, "web.toml", &simple_app(2, "1Gi"));
    wait_for("replicas 2", TIMEOUT, || async {
        (spec_replicas(&ns, "web").await == Some(2)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let standby_metrics = second.get("/metrics").await.expect("metrics");
    assert!(
        standby_metrics.contains("berth_apply_total{result=\"success\"} 0"),
        "the standby wrote nothing:\n{standby_metrics}"
    );
    assert!(!second.log().contains("converging"), "{}", second.log());

    // The leader dies without releasing the lease: the standby takes over after it expires.
    first.signal("KILL");
    let _ = first.child.wait().await;
    let killed = Instant::now();
    wait_for("the standby to lead", TIMEOUT, || async move {
        s.log().contains("became the leader").then_some(())
    })
    .await;
    println!(
        "takeover after SIGKILL of the leader: {:?}",
        killed.elapsed()
    );
    write_atomic(&specs, "web.toml", &simple_app(3, "1Gi"));
    wait_for("replicas 3 from the new leader", TIMEOUT, || async {
        (spec_replicas(&ns, "web").await == Some(3)).then_some(())
    })
    .await;
    assert!(second.log().contains("converging"));
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn a_git_checkout_records_its_commit_and_a_checkout_in_progress_is_waited_for() {
    let (ns, dir) = setup("watch-git").await;
    let repo = dir.path().join("repo");
    let specs = repo.join("apps");
    std::fs::create_dir_all(&specs).expect("dir");
    git(&repo, &["init", "-q"]);
    write_atomic(&specs, "web.toml", &simple_app(1, "1Gi"));
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-qm", "first"]);
    let head = git(&repo, &["rev-parse", "HEAD"]);
    let daemon = Daemon::start(&ns, &specs, &[], dir.path().join("berth.log")).await;
    let sts = wait_for("web created", TIMEOUT, || async {
        ns.api::<StatefulSet>().get_opt("web").await.ok()?
    })
    .await;
    assert_eq!(
        sts.metadata
            .annotations
            .unwrap_or_default()
            .get("berth.dev/commit"),
        Some(&head),
        "objects record the config repo's commit"
    );

    // git holds index.lock while it rewrites the tree: berth waits for the whole commit.
    std::fs::write(repo.join(".git").join("index.lock"), "").expect("lock");
    write_atomic(&specs, "web.toml", &simple_app(2, "1Gi"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        spec_replicas(&ns, "web").await,
        Some(1),
        "nothing applied mid-checkout"
    );
    std::fs::remove_file(repo.join(".git").join("index.lock")).expect("unlock");
    git(&repo, &["commit", "-qam", "second"]);
    let head = git(&repo, &["rev-parse", "HEAD"]);
    wait_for("replicas 2 after the checkout", TIMEOUT, || async {
        (spec_replicas(&ns, "web").await == Some(2)).then_some(())
    })
    .await;
    wait_for("the new commit recorded", TIMEOUT, || async {
        let sts = ns.api::<StatefulSet>().get("web").await.ok()?;
        (sts.metadata.annotations?.get("berth.dev/commit") == Some(&head)).then_some(())
    })
    .await;
    assert!(daemon.log().contains(&head), "the commit is in the logs");
    ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn dry_run_writes_nothing_and_sighup_reloads_the_config() {
    let (ns, dir) = setup("watch-hup").await;
    let specs = dir.path().join("specs");
    std::fs::create_dir(&specs).expect("dir");
    write_atomic(&specs, "web.toml", &simple_app(1, "1Gi"));
    let config = dir.path().join("berth.toml");
    std::fs::write(&config, "[defaults]\nlabels = { team = \"blue\" }\n").expect("config");
    let config_arg = config.to_str().expect("utf-8").to_string();

    // --dry-run: the plan is logged, nothing is written.
    let mut dry = Daemon::start_with(
        &ns,
        &specs,
        &["--config", &config_arg],
        &["--dry-run"],
        dir.path().join("dry-run.log"),
    )
    .await;
    let d = &dry;
    wait_for(
        "berth_apply_total{result=\"dry-run\"} 1",
        TIMEOUT,
        || async move {
            d.get("/metrics")
                .await?
                .contains("berth_apply_total{result=\"dry-run\"} 1")
                .then_some(())
        },
    )
    .await;
    assert!(
        dry.log().contains("converging"),
        "the plan is reported: {}",
        dry.log()
    );
    assert!(
        ns.api::<StatefulSet>()
            .get_opt("web")
            .await
            .expect("get")
            .is_none(),
        "nothing written"
    );
    dry.signal("TERM");
    let _ = dry.child.wait().await;

    let daemon = Daemon::start(
        &ns,
        &specs,
        &["--config", &config_arg],
        dir.path().join("berth.log"),
    )
    .await;
    let team = || async {
        let sts = ns.api::<StatefulSet>().get_opt("web").await.ok()??;
        sts.metadata.labels?.get("team").cloned()
    };
    wait_for("team=blue", TIMEOUT, || async {
        (team().await.as_deref() == Some("blue")).then_some(())
    })
    .await;
    std::fs::write(&config, "[defaults]\nlabels = { team = \"green\" }\n").expect("config");
    daemon.signal("HUP");
    wait_for("team=green after SIGHUP", TIMEOUT, || async {
        (team().await.as_deref() == Some("green")).then_some(())
    })
    .await;
    assert!(
        daemon.log().contains("daemon config reloaded"),
        "{}",
        daemon.log()
    );
    ns.cleanup().await;
}

/// Regression: a converge that writes two objects (the StatefulSet and the access Service) used
/// to be followed at once by a second one: the watch echo of berth's first write re-queued the
/// app, the cache did not have the second write yet, so the stale Service looked drifted and was
/// written again (a false `berth_drift_total`, and one extra write per edit).
#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn a_converge_is_never_taken_for_drift_by_its_own_echo() {
    let (ns, dir) = setup("watch-echo").await;
    let specs = dir.path().join("specs");
    std::fs::create_dir(&specs).expect("dir");
    let spec = |i: u32| {
        format!(
            "replicas = 0\n\n[containers.app]\nimage = \"nginx:1.{i}\"\nports = {{ web = 80 }}\n\n\
             [service]\nports = {{ web = {} }}\n",
            8000 + i
        )
    };
    write_atomic(&specs, "app.toml", &spec(0));
    let daemon = Daemon::start(&ns, &specs, &[], dir.path().join("berth.log")).await;
    const EDITS: u32 = 10;
    for i in 1..=EDITS {
        write_atomic(&specs, "app.toml", &spec(i));
        wait_for("the edit to be live on both objects", TIMEOUT, || async {
            let sts = ns.api::<StatefulSet>().get_opt("app").await.ok()??;
            let svc = ns.api::<Service>().get_opt("app").await.ok()??;
            let image = sts.spec?.template.spec?.containers[0].image.clone()?;
            let port = svc.spec?.ports?[0].port;
            (image == format!("nginx:1.{i}") && port == 8000 + i as i32).then_some(())
        })
        .await;
        // Long enough for an echo's extra reconcile to show in the log.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let log = daemon.log();
    let converges = log
        .lines()
        .filter(|l| l.contains("\"message\":\"converging\""))
        .count();
    assert_eq!(
        converges,
        1 + EDITS as usize,
        "one converge for the create and one per edit:\n{log}"
    );
    assert!(
        !log.contains("drifted from the spec"),
        "no drift was made, none may be reported:\n{log}"
    );
    let metrics = daemon.get("/metrics").await.expect("metrics");
    assert!(
        metrics.lines().any(|l| l == "berth_drift_total 0"),
        "{metrics}"
    );
    ns.cleanup().await;
}
