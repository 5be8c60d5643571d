//! Network faults and concurrent writers against the real local control plane. berth runs as the
//! restricted `berth` user through a TCP proxy the test controls (tests/support/proxy.rs): a
//! stalled link, half-open connections after a blip, a cut; and kubectl writing the same objects
//! while the daemon corrects drift and the spec changes under it.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Service;
use kube::api::{ListParams, Patch, PatchParams};

use support::daemon::{Daemon, write_atomic};
use support::proxy::Proxy;
use support::{Run, TestNamespace, berth_kubeconfig, ensure_rbac, statefulset_identity, wait_for};

const TIMEOUT: Duration = Duration::from_secs(60);

/// One test's world: its namespace, spec directory, proxy and a berth kubeconfig through it.
struct Net {
    ns: TestNamespace,
    dir: tempfile::TempDir,
    specs: PathBuf,
    proxy: Proxy,
    kubeconfig: PathBuf,
}

async fn setup(prefix: &str) -> Net {
    let ns = TestNamespace::new(prefix).await;
    ensure_rbac(&ns.client).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let specs = dir.path().join("specs");
    std::fs::create_dir(&specs).expect("specs dir");
    let kubeconfig = dir.path().join("berth-via-proxy.kubeconfig");
    let proxy = Proxy::for_kubeconfig(Path::new(&berth_kubeconfig()), &kubeconfig);
    Net {
        ns,
        dir,
        specs,
        proxy,
        kubeconfig,
    }
}

impl Net {
    /// `berth watch` as the `berth` user, through the proxy.
    async fn daemon(&self, log: &str) -> Daemon {
        Daemon::start_with_env(
            &self.ns,
            &self.specs,
            &[],
            &[],
            &[("KUBECONFIG", self.kubeconfig.as_os_str())],
            self.dir.path().join(log),
        )
        .await
    }

    /// A one-shot berth command as the `berth` user, through the proxy (support::berth, with the
    /// proxy's kubeconfig). Killed if it outlives `limit`: a hang is a failure, not a stuck run.
    async fn berth(&self, args: &[&str], limit: Duration) -> (Run, Duration) {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_berth"));
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .env("NO_COLOR", "1")
            .env_remove("BERTH_CONFIG")
            .args(["--instance", &self.ns.name, "--namespace", &self.ns.name])
            .args(args)
            .arg(&self.specs)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let start = Instant::now();
        let out = tokio::time::timeout(limit, cmd.output())
            .await
            .unwrap_or_else(|_| panic!("berth {args:?} still running after {limit:?}"))
            .expect("run berth");
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        (run, start.elapsed())
    }

    fn write(&self, body: &str) {
        write_atomic(&self.specs, "web.toml", body);
    }

    async fn sts(&self) -> Option<StatefulSet> {
        self.ns.api::<StatefulSet>().get_opt("web").await.ok()?
    }

    async fn live(&self) -> Option<Live> {
        self.sts().await.as_ref().and_then(Live::of)
    }

    /// Waits until the live StatefulSet is `want`; returns how long that took.
    async fn wait_live(&self, what: &str, want: &Live, timeout: Duration) -> Duration {
        let start = Instant::now();
        wait_for(what, timeout, || async {
            (self.live().await.as_ref() == Some(want)).then_some(())
        })
        .await;
        start.elapsed()
    }

    /// PVC name → uid.
    async fn pvc_uids(&self) -> BTreeMap<String, String> {
        support::pvc_uids(&self.ns).await
    }

    async fn wait_pvcs(&self, count: usize) -> BTreeMap<String, String> {
        wait_for(&format!("{count} PVCs"), TIMEOUT * 2, || async {
            let uids = self.pvc_uids().await;
            (uids.len() == count).then_some(uids)
        })
        .await
    }

    /// Names of the StatefulSets and of the Services in the namespace.
    async fn objects(&self) -> (Vec<String>, Vec<String>) {
        let lp = ListParams::default();
        let sts = self.ns.api::<StatefulSet>().list(&lp).await.expect("list");
        let svc = self.ns.api::<Service>().list(&lp).await.expect("list");
        let names = |m: Vec<kube::api::ObjectMeta>| -> Vec<String> {
            m.into_iter().filter_map(|m| m.name).collect()
        };
        (
            names(sts.items.into_iter().map(|s| s.metadata).collect()),
            names(svc.items.into_iter().map(|s| s.metadata).collect()),
        )
    }

    /// No duplicates: exactly the one StatefulSet and the headless Service of the app.
    async fn assert_one_of_each(&self) {
        let (sts, svc) = self.objects().await;
        assert_eq!(sts, ["web"], "exactly one StatefulSet");
        assert_eq!(svc, ["web-headless"], "exactly the app's Services");
    }
}

/// The app the tests use: `replicas` pods with one volume, an image tag and an env value to
/// edit (fields berth owns that need no new PVCs). Parallel pod management: every pod, and so
/// every PVC, is created at once, not each after the previous one is Ready, which takes long on
/// a control plane busy with other tests.
fn app(replicas: u32, tag: &str, level: &str) -> String {
    format!(
        "replicas = {replicas}\npod_management = \"parallel\"\n\n\
         [containers.web]\nimage = \"nginx:{tag}\"\ncpu = \"100m\"\n\
         memory = \"64Mi\"\nports = {{ http = 80 }}\nmounts = {{ data = \"/data\" }}\n\
         env = {{ LEVEL = \"{level}\" }}\n\n[volumes.data]\nsize = \"1Gi\"\n"
    )
}

/// The fields of the live StatefulSet the tests edit.
#[derive(Debug, PartialEq, Eq)]
struct Live {
    replicas: i32,
    image: String,
    level: String,
}

impl Live {
    fn new(replicas: i32, tag: &str, level: &str) -> Live {
        Live {
            replicas,
            image: format!("nginx:{tag}"),
            level: level.to_string(),
        }
    }

    fn of(sts: &StatefulSet) -> Option<Live> {
        let spec = sts.spec.as_ref()?;
        let container = spec.template.spec.as_ref()?.containers.first()?;
        let level = container
            .env
            .iter()
            .flatten()
            .find(|e| e.name == "LEVEL")?
            .value
            .clone()?;
        Some(Live {
            replicas: spec.replicas?,
            image: container.image.clone()?,
            level,
        })
    }
}

/// One line of the daemon's JSON log.
struct LogLine {
    at: std::time::SystemTime,
    level: String,
    message: String,
    app: String,
    error: String,
}

fn log_lines(daemon: &Daemon) -> Vec<LogLine> {
    daemon
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
            LogLine {
                at: humantime::parse_rfc3339_weak(&s("timestamp")).unwrap_or(std::time::UNIX_EPOCH),
                level: s("level"),
                message: s("message"),
                app: s("app"),
                error: s("error"),
            }
        })
        .collect()
}

fn count_lines(daemon: &Daemon, message: &str) -> usize {
    log_lines(daemon)
        .iter()
        .filter(|l| l.message.contains(message))
        .count()
}

/// The daemon has not exited and answers /healthz.
async fn assert_alive(daemon: &mut Daemon) {
    assert!(
        daemon.child.try_wait().expect("try_wait").is_none(),
        "the daemon exited:\n{}",
        daemon.log()
    );
    assert_eq!(
        daemon.get("/healthz").await.as_deref(),
        Some("ok"),
        "/healthz answers"
    );
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn a_stalled_link_changes_nothing_and_the_edit_lands_once_it_flows_again() {
    let net = setup("net-stall").await;
    net.write(&app(1, "1.27", "info"));
    let mut daemon = net.daemon("berth.log").await;
    net.wait_live("web created", &Live::new(1, "1.27", "info"), TIMEOUT)
        .await;
    let before = statefulset_identity(&net.sts().await.expect("web"));
    let rescans = count_lines(&daemon, "rescanning the spec directory");

    net.proxy.stall();
    net.write(&app(2, "1.27", "info"));
    // Nothing can reach the server: the object stays exactly as it was, though the daemon has
    // seen the edit.
    let stalled = Instant::now();
    while stalled.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = statefulset_identity(&net.sts().await.expect("web"));
        assert_eq!(
            now,
            before,
            "the StatefulSet changed while the link was stalled ({:?} in)",
            stalled.elapsed()
        );
    }
    assert!(
        count_lines(&daemon, "rescanning the spec directory") > rescans,
        "the daemon saw the edit during the stall:\n{}",
        daemon.log()
    );
    assert_alive(&mut daemon).await;

    net.proxy.resume();
    let took = net
        .wait_live(
            "the edit after resume",
            &Live::new(2, "1.27", "info"),
            TIMEOUT,
        )
        .await;
    println!("stall: 5s without a change; edit live {took:?} after resume");
    let (diff, _) = net.berth(&["diff"], TIMEOUT).await;
    diff.expect_code(0);
    assert_alive(&mut daemon).await;
    net.ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn after_a_blip_an_edit_lands_over_a_new_connection_in_bounded_time() {
    let net = setup("net-halfopen").await;
    net.write(&app(1, "1.27", "info"));
    let mut daemon = net.daemon("berth.log").await;
    net.wait_live("web created", &Live::new(1, "1.27", "info"), TIMEOUT)
        .await;
    let (open, accepted) = (net.proxy.open(), net.proxy.accepted());

    // Every connection berth holds now (watches and pooled request connections) goes silent
    // without being closed; new ones work.
    net.proxy.freeze_existing();
    net.write(&app(1, "1.28", "info"));
    // berth bounds each request at 30s (REQUEST_TIMEOUT), so an apply stuck on a frozen pooled
    // connection fails and is retried on a fresh one. 150s: never landing is the bug this catches.
    let took = net
        .wait_live(
            "the edit after the blip",
            &Live::new(1, "1.28", "info"),
            Duration::from_secs(150),
        )
        .await;
    println!(
        "half-open: {open} connection(s) frozen; edit live after {took:?}, over {} new connection(s)",
        net.proxy.accepted() - accepted
    );
    assert!(
        net.proxy.accepted() > accepted,
        "the edit went over a new connection"
    );
    let failures: Vec<_> = log_lines(&daemon)
        .into_iter()
        .filter(|l| l.level == "ERROR")
        .map(|l| format!("{}: {}", l.message, l.error))
        .collect();
    println!("half-open: errors logged meanwhile: {failures:#?}");
    assert_alive(&mut daemon).await;
    net.ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn a_cut_is_survived_with_backoff_and_nothing_is_duplicated() {
    let net = setup("net-cut").await;
    net.write(&app(2, "1.27", "info"));
    let mut daemon = net.daemon("berth.log").await;
    net.wait_live("web created", &Live::new(2, "1.27", "info"), TIMEOUT)
        .await;
    let pvcs = net.wait_pvcs(2).await;
    let app_key = format!("{}/web", net.ns.name);

    net.proxy.cut();
    let cut_at = std::time::SystemTime::now();
    net.write(&app(2, "1.28", "info"));
    let cut = Instant::now();
    while cut.elapsed() < Duration::from_secs(10) {
        assert_alive(&mut daemon).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let lines = log_lines(&daemon);
    let during: Vec<_> = lines.iter().filter(|l| l.at >= cut_at).collect();
    // The app's retries: each a failed plan or apply, spaced by the work queue's backoff.
    let retries: Vec<_> = during
        .iter()
        .filter(|l| l.app == app_key && l.level == "ERROR")
        .collect();
    let watch_errors = during
        .iter()
        .filter(|l| l.message.contains("watch of owned objects failed"))
        .count();
    let gaps: Vec<f64> = retries
        .windows(2)
        .map(|w| {
            w[1].at
                .duration_since(w[0].at)
                .unwrap_or_default()
                .as_secs_f64()
        })
        .collect();
    println!(
        "cut: {} failed attempt(s) for {app_key} in 10s, gaps {gaps:.2?}s; {watch_errors} watch error(s); first: {} {}",
        retries.len(),
        retries.first().map(|l| l.message.as_str()).unwrap_or("-"),
        retries.first().map(|l| l.error.as_str()).unwrap_or("-"),
    );
    assert!(
        retries.len() >= 3,
        "the daemon keeps trying while the API server is unreachable:\n{}",
        daemon.log()
    );
    assert!(
        retries
            .iter()
            .all(|l| l.error.contains("onnect") || l.error.contains("127.0.0.1")),
        "the errors name the connection:\n{}",
        daemon.log()
    );
    // Backoff, not a hot loop: 0.5s, 1s, 2s … (+ up to 20% jitter) between attempts.
    assert!(
        gaps.first().is_some_and(|g| *g >= 0.4),
        "first retry after ≥0.4s: {gaps:?}"
    );
    assert!(
        gaps.windows(2).all(|w| w[1] >= w[0] * 1.4),
        "each retry waits longer: {gaps:?}"
    );
    assert!(
        watch_errors <= 40,
        "{watch_errors} watch errors in 10s: the watches retry in a hot loop"
    );

    net.proxy.resume();
    let took = net
        .wait_live(
            "the edit after the cut",
            &Live::new(2, "1.28", "info"),
            TIMEOUT,
        )
        .await;
    println!("cut: edit live {took:?} after resume");
    net.assert_one_of_each().await;
    assert_eq!(
        net.pvc_uids().await,
        pvcs,
        "the same PVCs, with the same uids"
    );
    let (diff, _) = net.berth(&["diff"], TIMEOUT).await;
    diff.expect_code(0);

    // The watches came back too: drift is seen and corrected again.
    net.ns
        .api::<StatefulSet>()
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 1}})),
        )
        .await
        .expect("scale by hand");
    let took = net
        .wait_live(
            "drift corrected after the cut",
            &Live::new(2, "1.28", "info"),
            TIMEOUT,
        )
        .await;
    println!("cut: drift corrected {took:?} after the change");
    assert_alive(&mut daemon).await;
    assert_eq!(net.pvc_uids().await, pvcs, "PVCs kept");
    net.ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn a_one_shot_apply_against_a_cut_link_fails_fast_and_changes_nothing() {
    let net = setup("net-cli").await;
    net.write(&app(1, "1.27", "info"));
    let (first, _) = net.berth(&["apply", "--yes"], TIMEOUT).await;
    first.expect_code(0);
    let before = statefulset_identity(&net.sts().await.expect("web"));

    net.write(&app(2, "1.28", "debug"));
    net.proxy.cut();
    let (failed, took) = net.berth(&["apply", "--yes"], TIMEOUT * 2).await;
    println!(
        "cli cut: apply exited {} after {took:?}; stderr:\n{}",
        failed.code, failed.stderr
    );
    assert_ne!(failed.code, 0, "{failed:?}");
    assert!(took < Duration::from_secs(30), "bounded: {took:?}");
    let stderr = failed.stderr.to_lowercase();
    assert!(
        stderr.contains("connect"),
        "the error says the connection failed:\n{}",
        failed.stderr
    );
    // As kubectl does, it names the server the kubeconfig points at: here, the proxy.
    let server = format!("https://127.0.0.1:{}", net.proxy.port());
    assert!(
        failed
            .stderr
            .contains(&format!("the API server at {server} did not answer")),
        "the error names the API server {server}:\n{}",
        failed.stderr
    );
    assert_eq!(
        statefulset_identity(&net.sts().await.expect("web")),
        before,
        "nothing changed"
    );

    net.proxy.resume();
    let (again, _) = net.berth(&["apply", "--yes"], TIMEOUT).await;
    again.expect_code(0);
    assert_eq!(net.live().await, Some(Live::new(2, "1.28", "debug")));
    let (diff, _) = net.berth(&["diff"], TIMEOUT).await;
    diff.expect_code(0);
    net.assert_one_of_each().await;
    net.ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn a_one_shot_command_against_a_silent_api_server_gives_up_in_bounded_time() {
    let net = setup("net-cli-stall").await;
    net.write(&app(1, "1.27", "info"));
    let (first, _) = net.berth(&["apply", "--yes"], TIMEOUT).await;
    first.expect_code(0);
    let before = statefulset_identity(&net.sts().await.expect("web"));

    // Connections are accepted but nothing ever answers: only berth's own timeouts end this.
    net.write(&app(2, "1.28", "debug"));
    net.proxy.stall();
    let (failed, took) = net
        .berth(&["apply", "--yes"], Duration::from_secs(150))
        .await;
    println!(
        "cli stall: apply exited {} after {took:?}; stderr:\n{}",
        failed.code, failed.stderr
    );
    assert_ne!(failed.code, 0, "{failed:?}");
    assert!(took < Duration::from_secs(100), "bounded: {took:?}");
    net.proxy.resume();
    assert_eq!(
        statefulset_identity(&net.sts().await.expect("web")),
        before,
        "nothing changed"
    );
    net.ns.cleanup().await;
}

/// kubectl as admin (the test's KUBECONFIG), in the test's namespace.
async fn kubectl(ns: &str, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new("kubectl")
        .args(["--namespace", ns])
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run kubectl")
}

#[derive(Debug, Default)]
struct Tally {
    ok: usize,
    conflicts: usize,
    other_failures: Vec<String>,
}

impl Tally {
    fn add(&mut self, out: &std::process::Output) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            self.ok += 1;
        } else if stderr.contains("conflict") {
            self.conflicts += 1;
        } else {
            self.other_failures.push(stderr.trim().to_string());
        }
    }
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn concurrent_writers_never_win_owned_fields_and_keep_their_own() {
    let net = setup("net-writers").await;
    net.write(&app(2, "1.27", "info"));
    let mut daemon = net.daemon("berth.log").await;
    net.wait_live("web created", &Live::new(2, "1.27", "info"), TIMEOUT)
        .await;
    let pvcs = net.wait_pvcs(2).await;
    let ns = net.ns.name.clone();

    // A server-side apply by another manager of a field berth owns (the image).
    let manifest = net.dir.path().join("intruder.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: web\n  namespace: {ns}\n\
             spec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: nginx:intruder\n"
        ),
    )
    .expect("manifest");
    let manifest = manifest.to_str().expect("utf-8").to_string();

    let run_for = Duration::from_secs(10);
    let start = Instant::now();
    let scaler = async {
        let mut tally = Tally::default();
        for replicas in [3, 1, 4].iter().cycle() {
            if start.elapsed() >= run_for {
                break;
            }
            let r = format!("--replicas={replicas}");
            tally.add(&kubectl(&ns, &["scale", "statefulset", "web", &r]).await);
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        tally
    };
    let tagger = async {
        let mut tally = Tally::default();
        let mut last = 0;
        while start.elapsed() < run_for {
            last += 1;
            for target in ["statefulset/web", "service/web-headless"] {
                let note = format!("intruder.example/note=v{last}");
                let team = format!("intruder.example/team=t{last}");
                tally.add(&kubectl(&ns, &["annotate", target, &note, "--overwrite"]).await);
                tally.add(&kubectl(&ns, &["label", target, &team, "--overwrite"]).await);
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        (tally, last)
    };
    let intruder = async {
        let (mut plain, mut forced) = (Tally::default(), Tally::default());
        let mut round = 0;
        while start.elapsed() < run_for {
            round += 1;
            let mut args = vec![
                "apply",
                "--server-side",
                "--field-manager=intruder",
                "-f",
                &manifest,
            ];
            if round == 4 {
                args.push("--force-conflicts");
                forced.add(&kubectl(&ns, &args).await);
            } else {
                plain.add(&kubectl(&ns, &args).await);
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        (plain, forced)
    };
    let editor = async {
        for (i, (tag, level)) in [("1.28", "warn"), ("1.29", "debug"), ("1.29.1", "error")]
            .into_iter()
            .enumerate()
        {
            tokio::time::sleep(Duration::from_secs(3)).await;
            net.write(&app(2 + (i as u32 % 2), tag, level));
        }
    };
    let (scaled, (tagged, last_tag), (plain, forced), ()) =
        tokio::join!(scaler, tagger, intruder, editor);
    println!("writers: kubectl scale {scaled:?}");
    println!("writers: kubectl annotate/label {tagged:?}");
    println!("writers: kubectl apply --server-side without --force-conflicts {plain:?}");
    println!("writers: kubectl apply --server-side --force-conflicts {forced:?}");
    assert_eq!(forced.ok, 1, "the forced apply went through: {forced:?}");
    // docs/reliability.md: every apply of an owned field without --force-conflicts is refused
    // with 409 Conflict, none gets through, none fails otherwise.
    assert!(
        plain.conflicts >= 1 && plain.ok == 0 && plain.other_failures.is_empty(),
        "every apply of an owned field without --force-conflicts is a 409 Conflict: {plain:?}"
    );
    assert!(scaled.ok >= 3 && tagged.ok >= 4, "the writers got through");
    assert!(
        scaled.other_failures.is_empty() && tagged.other_failures.is_empty(),
        "no write of the others failed: {scaled:?} {tagged:?}"
    );

    // The last spec: 2 + (2 % 2) replicas, 1.29.1, error.
    let want = Live::new(2, "1.29.1", "error");
    let took = net
        .wait_live("the final spec after the writers", &want, TIMEOUT)
        .await;
    println!("writers: final spec live {took:?} after they stopped");
    let settled = Instant::now();
    loop {
        let (diff, _) = net.berth(&["diff"], TIMEOUT).await;
        if diff.code == 0 {
            break;
        }
        assert!(
            settled.elapsed() < TIMEOUT,
            "berth diff never clean: {diff:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    println!("writers: berth diff clean {:?} later", settled.elapsed());
    assert_eq!(
        net.live().await,
        Some(want),
        "still the final spec after diff"
    );

    // What kubectl added and berth never owned is still there.
    let sts = net.sts().await.expect("web");
    let svc = net
        .ns
        .api::<Service>()
        .get("web-headless")
        .await
        .expect("headless");
    for (kind, meta) in [("StatefulSet", &sts.metadata), ("Service", &svc.metadata)] {
        let note = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get("intruder.example/note"));
        let team = meta
            .labels
            .as_ref()
            .and_then(|l| l.get("intruder.example/team"));
        assert_eq!(
            note,
            Some(&format!("v{last_tag}")),
            "{kind}: kubectl's annotation kept"
        );
        assert_eq!(
            team,
            Some(&format!("t{last_tag}")),
            "{kind}: kubectl's label kept"
        );
    }
    // The forced apply took the image from berth; berth's own forced apply took it back, so the
    // intruder owns it no more (else its next apply would silently keep changing it).
    let owners = |manager: &str| -> Vec<String> {
        sts.metadata
            .managed_fields
            .iter()
            .flatten()
            .filter(|f| f.manager.as_deref() == Some(manager))
            .map(|f| serde_json::to_string(&f.fields_v1).unwrap_or_default())
            .collect()
    };
    let intruder = owners("intruder");
    assert!(
        !intruder.is_empty() && intruder.iter().all(|f| !f.contains("\"f:image\"")),
        "the intruder applied, and no longer owns the image: {intruder:?}"
    );
    assert!(
        owners("berth").iter().any(|f| f.contains("\"f:image\"")),
        "berth owns the image again"
    );
    net.assert_one_of_each().await;
    let after = net.pvc_uids().await;
    for (name, uid) in &pvcs {
        assert_eq!(after.get(name), Some(uid), "PVC {name} kept with its uid");
    }
    let log = log_lines(&daemon);
    let failed = log.iter().filter(|l| l.level == "ERROR").count();
    let drift = log.iter().filter(|l| l.message.contains("drifted")).count();
    let metrics = daemon.get("/metrics").await.unwrap_or_default();
    let applies: Vec<_> = metrics
        .lines()
        .filter(|l| l.starts_with("berth_apply_total") || l.starts_with("berth_drift_total"))
        .collect();
    println!(
        "writers: daemon logged {drift} drift(s) and {failed} error(s); {applies:?}; {} PVC(s) now",
        after.len()
    );
    // docs/reliability.md: no failed apply, and every change survives (the final spec is live
    // with diff clean, the writers' own annotation and label kept, the PVCs kept: above).
    assert!(
        metrics.contains("berth_apply_total{result=\"failure\"} 0"),
        "no apply failed: {applies:?}"
    );
    assert_eq!(failed, 0, "no error logged:\n{}", daemon.log());
    assert!(
        drift >= 1,
        "the writers' changes to owned fields were seen as drift"
    );
    assert_alive(&mut daemon).await;
    net.ns.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane: run with `cargo xtask test`"]
async fn after_a_blip_drift_is_still_seen_in_bounded_time() {
    let net = setup("net-blind").await;
    net.write(&app(1, "1.27", "info"));
    let daemon = net.daemon("berth.log").await;
    net.wait_live("web created", &Live::new(1, "1.27", "info"), TIMEOUT)
        .await;

    // The watches berth holds go silent without being closed (as after a NAT or load-balancer
    // failover), then someone scales the app by hand. Drift is only seen through the watches:
    // they must notice that their connection is dead and come back over a new one.
    net.proxy.freeze_existing();
    let frozen = net.proxy.open();
    net.ns
        .api::<StatefulSet>()
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"replicas": 2}})),
        )
        .await
        .expect("scale by hand");
    // 120s: four times the request timeout. Before a fix this took 295s, kube's watcher idle
    // timeout (290s server-side watch timeout + 5s), during which drift went unseen.
    let took = net
        .wait_live(
            "drift made after a blip to be corrected (the daemon's watches stay on their \
             half-open connections until kube's watcher idle timeout, ~295s)",
            &Live::new(1, "1.27", "info"),
            Duration::from_secs(120),
        )
        .await;
    println!("blind: {frozen} connection(s) frozen; drift corrected after {took:?}");
    assert!(
        count_lines(&daemon, "drifted") >= 1,
        "corrected as drift:\n{}",
        daemon.log()
    );
    net.ns.cleanup().await;
}
