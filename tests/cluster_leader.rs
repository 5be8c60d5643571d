//! Leader election that fences the old leader, against the real local control plane: two
//! `berth watch` daemons with the same config and *different* spec directories, so that any write
//! by the one that should no longer lead is visible in the cluster. The old leader is frozen
//! (SIGSTOP) or cut off (its API connections stalled through the test's TCP proxy) for longer
//! than the lease, at rest or in the middle of a removal or a recreate; the standby takes over
//! and finishes the work; the old leader, thawed, writes nothing.
//!
//! Each test ends with a control: the new leader stops cleanly, and the old one, leading again
//! after a fresh renew, writes what its directory asks. That shows the old leader was alive and
//! had something to write all along: its silence before was the fence.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use kube::api::ListParams;
use kube::runtime::watcher;

use support::daemon::{Daemon, write_atomic};
use support::proxy::Proxy;
use support::{TestNamespace, berth_kubeconfig, ensure_rbac, pod_ready, simple_app, wait_for};

const TIMEOUT: Duration = Duration::from_secs(90);
/// Short, to keep the tests quick; long enough for a loaded machine's renews.
const LEASE: &str = "4s";
/// How long a thawed old leader is given to write what it would write: its queued work runs
/// within a second of the thaw.
const SETTLE: Duration = Duration::from_secs(4);

/// Two daemons' worlds: one namespace, one config, a spec directory for each.
struct Pair {
    ns: TestNamespace,
    dir: tempfile::TempDir,
    /// The directory of the daemon that leads first.
    old_specs: PathBuf,
    /// The standby's.
    new_specs: PathBuf,
    config: String,
}

impl Pair {
    async fn new(prefix: &str) -> Pair {
        let ns = TestNamespace::new(prefix).await;
        ensure_rbac(&ns.client).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let old_specs = dir.path().join("old-specs");
        let new_specs = dir.path().join("new-specs");
        std::fs::create_dir(&old_specs).expect("dir");
        std::fs::create_dir(&new_specs).expect("dir");
        let config = dir.path().join("berth.toml");
        std::fs::write(
            &config,
            format!(
                "[leader_election]\nenabled = true\nnamespace = \"{}\"\nlease_name = \"berth\"\n\
                 lease_duration = \"{LEASE}\"\n",
                ns.name
            ),
        )
        .expect("config");
        let config = config.to_str().expect("utf-8").to_string();
        Pair {
            ns,
            dir,
            old_specs,
            new_specs,
            config,
        }
    }

    /// Writes the same spec into both directories.
    fn write_both(&self, file: &str, body: &str) {
        write_atomic(&self.old_specs, file, body);
        write_atomic(&self.new_specs, file, body);
    }

    fn remove_both(&self, file: &str) {
        std::fs::remove_file(self.old_specs.join(file)).expect("remove");
        std::fs::remove_file(self.new_specs.join(file)).expect("remove");
    }

    /// The first daemon, leading, with `env` (a kubeconfig through the proxy, a systemd
    /// notification socket).
    async fn start_old(&self, env: &[(&str, &std::ffi::OsStr)]) -> Daemon {
        let old = Daemon::start_with_env(
            &self.ns,
            &self.old_specs,
            &["--config", &self.config],
            &[],
            env,
            self.dir.path().join("old.log"),
        )
        .await;
        let o = &old;
        wait_for("the first daemon to lead", TIMEOUT, || async move {
            o.log()
                .contains("leading: holding the leader lease")
                .then_some(())
        })
        .await;
        old
    }

    /// The second daemon, standing by.
    async fn start_new(&self) -> Daemon {
        let new = Daemon::start(
            &self.ns,
            &self.new_specs,
            &["--config", &self.config],
            self.dir.path().join("new.log"),
        )
        .await;
        let n = &new;
        wait_for("the second daemon to stand by", TIMEOUT, || async move {
            n.log().contains("standing by").then_some(())
        })
        .await;
        assert!(
            n.get("/metrics")
                .await
                .is_some_and(|m| m.contains("berth_leader 0")),
            "a standby reports berth_leader 0"
        );
        new
    }
}

/// Every `spec.replicas` a StatefulSet has had since the recorder started, from a watch of the
/// admin's: a write that is undone at once is seen all the same.
struct ReplicasSeen {
    seen: Arc<Mutex<Vec<i32>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ReplicasSeen {
    async fn start(ns: &TestNamespace, name: &str) -> ReplicasSeen {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let mut stream = watcher::watcher(ns.api::<StatefulSet>(), config).boxed();
        let record = seen.clone();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            while let Some(event) = stream.next().await {
                let objects = match event {
                    Ok(watcher::Event::Apply(sts) | watcher::Event::InitApply(sts)) => vec![sts],
                    Ok(watcher::Event::InitDone) => {
                        if let Some(ready) = ready.take() {
                            let _ = ready.send(());
                        }
                        Vec::new()
                    }
                    _ => Vec::new(),
                };
                for sts in objects {
                    if let Some(r) = sts.spec.and_then(|s| s.replicas) {
                        record.lock().expect("lock").push(r);
                    }
                }
            }
        });
        let _ = tokio::time::timeout(TIMEOUT, ready_rx).await;
        ReplicasSeen { seen, task }
    }

    fn values(&self) -> Vec<i32> {
        self.seen.lock().expect("lock").clone()
    }
}

impl Drop for ReplicasSeen {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn replicas(ns: &TestNamespace, name: &str) -> Option<i32> {
    ns.api::<StatefulSet>()
        .get_opt(name)
        .await
        .ok()??
        .spec?
        .replicas
}

/// The `timestamp` of the first JSON log line whose message contains `needle`. The daemons
/// log RFC 3339 UTC times of one fixed width, so two compare as strings.
fn log_time(log: &str, needle: &str) -> Option<String> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"].as_str().is_some_and(|m| m.contains(needle)))
        .and_then(|v| v["timestamp"].as_str().map(str::to_string))
}

/// The systemd notifications a daemon has sent to `socket` so far.
fn received(socket: &std::os::unix::net::UnixDatagram) -> Vec<String> {
    let mut buf = [0u8; 4096];
    let mut out = Vec::new();
    while let Ok(n) = socket.recv(&mut buf) {
        out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    out
}

/// `berth_apply_total{result="success"}` of a daemon.
async fn successes(daemon: &Daemon) -> Option<u64> {
    let metrics = daemon.get("/metrics").await?;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("berth_apply_total{result=\"success\"} "))
        .and_then(|v| v.trim().parse().ok())
}

/// What anyone could have written in the namespace: each object's resourceVersion (pods by uid
/// too, since a restart keeps the name).
async fn namespace_state(ns: &TestNamespace) -> BTreeMap<String, String> {
    let mut state = BTreeMap::new();
    let all = ListParams::default();
    for sts in ns.api::<StatefulSet>().list(&all).await.expect("sts").items {
        let m = sts.metadata;
        // The controller writes the status at any time; generation counts writes of the spec.
        state.insert(
            format!("StatefulSet/{}", m.name.unwrap_or_default()),
            format!("{:?} {:?} {:?}", m.uid, m.generation, m.annotations),
        );
    }
    for svc in ns.api::<Service>().list(&all).await.expect("svc").items {
        let m = svc.metadata;
        state.insert(
            format!("Service/{}", m.name.unwrap_or_default()),
            m.resource_version.unwrap_or_default(),
        );
    }
    for pvc in ns
        .api::<PersistentVolumeClaim>()
        .list(&all)
        .await
        .expect("pvc")
        .items
    {
        let m = pvc.metadata;
        state.insert(
            format!("PVC/{}", m.name.unwrap_or_default()),
            format!("{:?} {:?}", m.owner_references, m.labels),
        );
    }
    for pod in ns.api::<Pod>().list(&all).await.expect("pods").items {
        let m = pod.metadata;
        state.insert(
            format!("Pod/{}", m.name.unwrap_or_default()),
            format!("{:?} {:?}", m.uid, m.labels),
        );
    }
    state
}

/// The control at the end of every test: the new leader stops cleanly (releasing the lease),
/// and the old one, leading again after a fresh renew, writes `replicas` from its directory.
async fn old_leader_writes_once_it_leads_again(
    ns: &TestNamespace,
    mut new: Daemon,
    old: &Daemon,
    name: &str,
    want: i32,
) {
    new.signal("TERM");
    let _ = new.child.wait().await;
    wait_for(
        "the old leader to write once it leads again",
        TIMEOUT,
        || async { (replicas(ns, name).await == Some(want)).then_some(()) },
    )
    .await;
    assert!(
        old.get("/metrics")
            .await
            .is_some_and(|m| m.contains("berth_leader 1")),
        "berth_leader 1 again"
    );
}

/// (a) The leader frozen (SIGSTOP) for longer than the lease: the standby takes over, and the old
/// leader, thawed with an edit of its directory waiting, writes nothing: its monotonic deadline
/// passed while it was stopped, so its first write would need a renew, which finds the lease
/// taken.
#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn a_leader_frozen_past_its_lease_writes_nothing_after_the_takeover() {
    let pair = Pair::new("leader-stop").await;
    pair.write_both("web.toml", &simple_app(1, "1Gi"));
    let notify_path = pair.dir.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).expect("notify socket");
    notify.set_nonblocking(true).expect("non-blocking");
    let old = pair
        .start_old(&[("NOTIFY_SOCKET", notify_path.as_os_str())])
        .await;
    wait_for("web created", TIMEOUT, || async {
        replicas(&pair.ns, "web").await
    })
    .await;
    let new = pair.start_new().await;
    let seen = ReplicasSeen::start(&pair.ns, "web").await;

    old.signal("STOP");
    // Waiting for the old leader when it runs again: its own edit.
    write_atomic(&pair.old_specs, "web.toml", &simple_app(2, "1Gi"));
    let n = &new;
    wait_for("the standby to take over", TIMEOUT, || async move {
        n.log().contains("became the leader").then_some(())
    })
    .await;
    old.signal("CONT");
    let o = &old;
    wait_for("the old leader to stand by", TIMEOUT, || async move {
        o.get("/metrics")
            .await
            .is_some_and(|m| m.contains("berth_leader 0"))
            .then_some(())
    })
    .await;
    tokio::time::sleep(SETTLE).await;
    assert!(
        !seen.values().contains(&2),
        "the old leader wrote after the takeover: replicas seen {:?}\n--- old leader:\n{}",
        seen.values(),
        old.log()
    );
    assert_eq!(replicas(&pair.ns, "web").await, Some(1));
    let statuses = received(&notify);
    let leader = statuses.iter().position(|s| s.contains("STATUS=leader;"));
    let standby = statuses
        .iter()
        .rposition(|s| s.contains("STATUS=standby: another berth holds the leader lease"));
    assert!(
        leader.is_some() && standby > leader,
        "systemd's status shows the leader, then the standby: {statuses:?}"
    );
    assert!(
        old.log().contains("lost the leader lease"),
        "logged:\n{}",
        old.log()
    );

    old_leader_writes_once_it_leads_again(&pair.ns, new, &old, "web", 2).await;
    pair.ns.cleanup().await;
}

/// (b) The leader's API connections stalled (a hung network path): its renews get no answer, its
/// fence closes at its deadline, before the standby can take the lease; when the network comes
/// back, the edit it had been planning is not written.
#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn a_leader_cut_off_by_a_stalled_network_stops_writing_before_the_lease_is_taken() {
    let pair = Pair::new("leader-stall").await;
    let kubeconfig = pair.dir.path().join("old-via-proxy.kubeconfig");
    let proxy = Proxy::for_kubeconfig(Path::new(&berth_kubeconfig()), &kubeconfig);
    pair.write_both("web.toml", &simple_app(1, "1Gi"));
    let old = pair
        .start_old(&[("KUBECONFIG", kubeconfig.as_os_str())])
        .await;
    wait_for("web created", TIMEOUT, || async {
        replicas(&pair.ns, "web").await
    })
    .await;
    let new = pair.start_new().await;
    let seen = ReplicasSeen::start(&pair.ns, "web").await;

    proxy.stall();
    write_atomic(&pair.old_specs, "web.toml", &simple_app(2, "1Gi"));
    let n = &new;
    wait_for("the standby to take over", TIMEOUT, || async move {
        n.log().contains("became the leader").then_some(())
    })
    .await;
    let fence_closed = log_time(&old.log(), "writing nothing until the lease is confirmed");
    let taken = log_time(&new.log(), "acquired the leader lease");
    assert!(
        fence_closed.is_some() && fence_closed < taken,
        "the old leader's fence closed ({fence_closed:?}) before the lease was taken \
         ({taken:?})\n--- old leader:\n{}",
        old.log()
    );
    proxy.resume();
    let o = &old;
    wait_for(
        "the old leader to see the new holder",
        TIMEOUT,
        || async move {
            o.log()
                .contains("the leader lease is held by another berth now")
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(SETTLE).await;
    assert!(
        !seen.values().contains(&2),
        "the old leader wrote after the takeover: replicas seen {:?}\n--- old leader:\n{}",
        seen.values(),
        old.log()
    );

    old_leader_writes_once_it_leads_again(&pair.ns, new, &old, "web", 2).await;
    pair.ns.cleanup().await;
}

/// (c) Leadership lost in the middle of a removal: the old leader has scaled the app to zero and
/// waits for its pods (held Terminating by a finalizer of the test's); its network stalls past
/// the lease and it is replaced; the new leader resumes the removal and finishes it once the
/// pods go; the old leader, back on the network with an edit of its own waiting, writes nothing.
#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn a_removal_under_way_when_the_lease_is_lost_is_finished_by_the_new_leader_alone() {
    let pair = Pair::new("leader-remove").await;
    let kubeconfig = pair.dir.path().join("old-via-proxy.kubeconfig");
    let proxy = Proxy::for_kubeconfig(Path::new(&berth_kubeconfig()), &kubeconfig);
    pair.write_both("web.toml", &simple_app(2, "1Gi"));
    pair.write_both("keep.toml", &simple_app(1, "1Gi"));
    let old = pair
        .start_old(&[("KUBECONFIG", kubeconfig.as_os_str())])
        .await;
    wait_for("web Ready", TIMEOUT, || async {
        let sts = pair.ns.api::<StatefulSet>().get_opt("web").await.ok()??;
        (sts.status?.ready_replicas == Some(2)).then_some(())
    })
    .await;
    let new = pair.start_new().await;
    let pods = pair.ns.api::<Pod>();
    support::hold_pod(&pods, "web-0").await;
    support::hold_pod(&pods, "web-1").await;

    pair.remove_both("web.toml");
    wait_for("the removal under way", TIMEOUT, || async {
        let sts = pair.ns.api::<StatefulSet>().get_opt("web").await.ok()??;
        let marked = sts.metadata.annotations?.contains_key("berth.dev/removing");
        // The StatefulSet controller stops pods one at a time, highest ordinal first.
        let pod = pods.get_opt("web-1").await.ok()??;
        (marked && pod.metadata.deletion_timestamp.is_some()).then_some(())
    })
    .await;
    proxy.stall();
    // The old leader's own edit: written the moment it could write again.
    write_atomic(&pair.old_specs, "keep.toml", &simple_app(2, "1Gi"));
    let n = &new;
    wait_for(
        "the new leader to resume the removal",
        TIMEOUT,
        || async move { n.log().contains("resuming the removal").then_some(()) },
    )
    .await;
    support::release_pod(&pods, "web-0").await;
    support::release_pod(&pods, "web-1").await;
    wait_for("web removed by the new leader", TIMEOUT, || async {
        let sts = pair.ns.api::<StatefulSet>().get_opt("web").await.ok()?;
        let svc = pair
            .ns
            .api::<Service>()
            .get_opt("web-headless")
            .await
            .ok()?;
        (sts.is_none() && svc.is_none()).then_some(())
    })
    .await;
    let before = namespace_state(&pair.ns).await;

    proxy.resume();
    let o = &old;
    wait_for(
        "the old leader to see the new holder",
        TIMEOUT,
        || async move {
            o.log()
                .contains("the leader lease is held by another berth now")
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(SETTLE).await;
    assert_eq!(
        namespace_state(&pair.ns).await,
        before,
        "the old leader wrote after the takeover\n--- old leader:\n{}",
        old.log()
    );
    let pvcs = pair
        .ns
        .api::<PersistentVolumeClaim>()
        .list(&ListParams::default().labels("app.kubernetes.io/name=web"))
        .await
        .expect("pvcs");
    assert_eq!(pvcs.items.len(), 2, "the removal keeps the volumes");

    old_leader_writes_once_it_leads_again(&pair.ns, new, &old, "keep", 2).await;
    pair.ns.cleanup().await;
}

/// A two-pod app whose headless Service name is `headless`: a new name needs a recreate, with
/// each pod restarted under it.
fn recreatable(headless: &str) -> String {
    format!(
        "headless = \"{headless}\"\nallow_recreate = true\n{}",
        simple_app(2, "1Gi")
    )
}

/// (c) Leadership lost in the middle of a recreate: the old leader has recreated the StatefulSet
/// and is restarting the pods, one held Terminating; frozen past the lease, it is replaced; the
/// new leader finishes the restarts; the old leader, thawed in the middle of its wait, goes on
/// reading but its next write is refused, and nothing in the namespace changes.
#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn a_recreate_under_way_when_the_lease_is_lost_is_finished_by_the_new_leader_alone() {
    let pair = Pair::new("leader-recreate").await;
    pair.write_both("db.toml", &recreatable("db-headless"));
    pair.write_both("keep.toml", &simple_app(1, "1Gi"));
    let old = pair.start_old(&[]).await;
    wait_for("db Ready", TIMEOUT, || async {
        let sts = pair.ns.api::<StatefulSet>().get_opt("db").await.ok()??;
        (sts.status?.ready_replicas == Some(2)).then_some(())
    })
    .await;
    let new = pair.start_new().await;
    let pods = pair.ns.api::<Pod>();
    support::hold_pod(&pods, "db-0").await;
    support::hold_pod(&pods, "db-1").await;

    pair.write_both("db.toml", &recreatable("db-peers"));
    wait_for("the first restart under way", TIMEOUT, || async {
        let list = pods.list(&ListParams::default()).await.ok()?;
        list.items
            .iter()
            .any(|p| p.metadata.deletion_timestamp.is_some())
            .then_some(())
    })
    .await;
    // The old leader's converges so far; the recreate of db is not among them until it ends.
    let successes_before = successes(&old).await;
    assert!(successes_before.is_some(), "metrics readable");
    // Mid-step: the old leader waits in place for the restarted pod to be Ready again.
    old.signal("STOP");
    write_atomic(&pair.old_specs, "keep.toml", &simple_app(2, "1Gi"));
    let n = &new;
    wait_for("the standby to take over", TIMEOUT, || async move {
        n.log().contains("became the leader").then_some(())
    })
    .await;
    support::release_pod(&pods, "db-0").await;
    support::release_pod(&pods, "db-1").await;
    wait_for(
        "the recreate finished by the new leader",
        TIMEOUT,
        || async {
            let sts = pair.ns.api::<StatefulSet>().get_opt("db").await.ok()??;
            let cleared = !sts
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key("berth.dev/restart-pending"));
            let list = pods.list(&ListParams::default()).await.ok()?;
            let db: Vec<&Pod> = list
                .items
                .iter()
                .filter(|p| {
                    p.metadata
                        .name
                        .as_deref()
                        .is_some_and(|n| n.starts_with("db-"))
                })
                .collect();
            let moved = db.len() == 2
                && db.iter().all(|p| {
                    pod_ready(p)
                        && p.metadata.deletion_timestamp.is_none()
                        && p.spec.as_ref().and_then(|s| s.subdomain.as_deref()) == Some("db-peers")
                        && !p
                            .metadata
                            .labels
                            .as_ref()
                            .is_some_and(|l| l.contains_key("berth.dev/restart-pending"))
                });
            (cleared && moved).then_some(())
        },
    )
    .await;
    let before = namespace_state(&pair.ns).await;

    old.signal("CONT");
    let o = &old;
    wait_for("the old leader to stand by", TIMEOUT, || async move {
        o.get("/metrics")
            .await
            .is_some_and(|m| m.contains("berth_leader 0"))
            .then_some(())
    })
    .await;
    tokio::time::sleep(SETTLE).await;
    assert_eq!(
        namespace_state(&pair.ns).await,
        before,
        "the old leader wrote after the takeover\n--- old leader:\n{}",
        old.log()
    );
    assert_eq!(
        successes(&old).await,
        successes_before,
        "the old leader finished no work after the takeover\n--- old leader:\n{}",
        old.log()
    );
    old_leader_writes_once_it_leads_again(&pair.ns, new, &old, "keep", 2).await;
    pair.ns.cleanup().await;
}
