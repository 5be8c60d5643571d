//! `cargo xtask bench`: berth against kubectl on the local control plane, at fleet scale.
//!
//! It generates N app specs of a realistic shape into target/bench/apps, builds berth, and
//! measures, printing a table and writing target/bench/report.json:
//! 1. cold converge: `berth apply --yes` of N new apps vs `kubectl apply --server-side -f` of the
//!    very same objects (`berth render` output), each into a fresh namespace, alternating which
//!    goes first;
//! 2. no-op converge: the same two commands again, with the write requests each sent, read from
//!    the API server's own `apiserver_request_total`;
//! 3. edit latency of `berth watch` with N apps loaded: atomic rename of a spec → the changed
//!    StatefulSet seen through a watch;
//! 4. idle cost of `berth watch`: requests, CPU seconds and peak RSS over a quiet minute;
//! 5. `berth validate` and `berth render` time.
//!
//! Every namespace it creates carries [`BENCH_LABEL`]; they are deleted after each phase (and
//! leftovers of an interrupted run at the start), together with the PersistentVolumes their
//! claims left behind, so the shared cluster stays usable.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolume};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

use crate::cluster::{self, Layout};
use crate::kube_client;

const USAGE: &str = "usage: cargo xtask bench [--apps N] [--edits M] [--repeat R] [--idle SECS] \
                     [--replicas K] [--release | --bin PATH]";
/// Label on every namespace the bench creates: how leftovers of an interrupted run are found.
const BENCH_LABEL: &str = "berth.dev/bench";
/// The pod annotation an edit changes; it lands in the StatefulSet's pod template.
const EDIT_ANNOTATION: &str = "bench.berth.dev/edit";
/// The measured commands (berth and kubectl alike) run as this ServiceAccount, and one
/// FlowSchema per verb classifies its requests: the API server's priority-and-fairness counters
/// (`apiserver_flowcontrol_dispatched_requests_total{flow_schema}`) then count exactly what the
/// measured command sent, however many other clients (the controllers, other people's tests)
/// use the same cluster. `apiserver_request_total` has no per-client label.
const IDENTITY: &str = "berth-bench";
/// Kubernetes verbs, each with its own FlowSchema `berth-bench-<verb>`.
const VERBS: [&str; 8] = [
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];
const WRITE_VERBS: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];
/// The kinds berth writes. `apiserver_request_total` tells dry-runs from real writes, which the
/// FlowSchema counters cannot; it is cluster-wide, so it is read over these kinds only and
/// reported as an approximation.
const BERTH_RESOURCES: [&str; 3] = ["statefulsets", "services", "poddisruptionbudgets"];
/// How long the cluster may take to run every app's pod before a run gives up.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(900);
const EDIT_TIMEOUT: Duration = Duration::from_secs(30);

/// The command line, validated.
struct Options {
    apps: usize,
    edits: usize,
    repeat: usize,
    idle: Duration,
    /// Replicas per app. 0 by default: berth and kubectl send the same requests whatever the
    /// count, while the local cluster starts only about 1.5 pods a second (each waits for its
    /// volume), so 1000 pods would take ten minutes per run and load the shared machine.
    replicas: usize,
    /// Build and measure the release profile (what users run) instead of the dev profile.
    release: bool,
    /// Measure this berth binary instead of building one (to compare two builds).
    bin: Option<PathBuf>,
}

impl Options {
    fn parse(args: &[&str]) -> Result<Options> {
        let mut options = Options {
            apps: 1000,
            edits: 100,
            repeat: 3,
            idle: Duration::from_secs(60),
            replicas: 0,
            release: false,
            bin: None,
        };
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            let mut number = |name: &str| -> Result<usize> {
                let value = rest
                    .next()
                    .with_context(|| format!("{name} needs a number\n{USAGE}"))?;
                value
                    .parse()
                    .with_context(|| format!("{name} {value}: not a number\n{USAGE}"))
            };
            match *arg {
                "--apps" => options.apps = number("--apps")?,
                "--edits" => options.edits = number("--edits")?,
                "--repeat" => options.repeat = number("--repeat")?,
                "--idle" => options.idle = Duration::from_secs(number("--idle")? as u64),
                "--replicas" => options.replicas = number("--replicas")?,
                "--release" => options.release = true,
                "--bin" => {
                    let path = rest
                        .next()
                        .with_context(|| format!("--bin needs a path\n{USAGE}"))?;
                    options.bin = Some(PathBuf::from(path));
                }
                other => bail!("unknown bench argument {other}\n{USAGE}"),
            }
        }
        if options.apps == 0 || options.repeat == 0 {
            bail!("--apps and --repeat must be at least 1\n{USAGE}");
        }
        Ok(options)
    }
}

pub fn bench(root: &Path, args: &[&str]) -> Result<()> {
    let options = Options::parse(args)?;
    let layout = Layout::new(root);
    if !cluster::apiserver_ready(&layout) {
        bail!("the local control plane is not serving; start it with `cargo xtask cluster up`");
    }
    let berth = match &options.bin {
        Some(bin) => bin.clone(),
        None => build(root, options.release)?,
    };
    let work = root.join("target").join("bench");
    let apps = work.join("apps");
    let logs = work.join("logs");
    // Nothing of an earlier run may be reused (the rendered objects depend on N).
    let _ = fs::remove_dir_all(&apps);
    let _ = fs::remove_dir_all(&logs);
    fs::create_dir_all(&apps)?;
    fs::create_dir_all(&logs)?;
    for i in 0..options.apps {
        fs::write(
            apps.join(format!("{}.toml", app_name(i))),
            spec_text(i, options.replicas, "0"),
        )?;
    }
    println!(
        "bench: {} apps in {}, {} run(s) each",
        options.apps,
        apps.display(),
        options.repeat
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let client = rt.block_on(kube_client::client(&layout.kubeconfig))?;
    let mut bench = Bench {
        rt,
        client,
        berth,
        admin_kubeconfig: layout.kubeconfig.clone(),
        kubeconfig: work.join("bench.kubeconfig"),
        apps,
        logs,
        options,
    };
    bench.cleanup_leftovers()?;
    let machine = bench.machine()?;
    let result = bench.create_identity().and_then(|()| bench.run_all());
    // Whatever happened, leave no bench namespace behind.
    let cleanup = bench.cleanup_leftovers();
    let mut report = result?;
    cleanup?;
    report["machine"] = machine;
    print_table(&report);
    let path = work.join("report.json");
    fs::write(&path, serde_json::to_string_pretty(&report)? + "\n")?;
    println!("\nreport written to {}", path.display());
    Ok(())
}

/// Builds the workspace and returns the berth binary of the chosen profile.
fn build(root: &Path, release: bool) -> Result<PathBuf> {
    let mut args = vec!["build", "--workspace"];
    if release {
        // xtask itself is already built; only berth is measured, so only it needs the profile.
        args = vec!["build", "--release", "-p", "berth"];
    }
    eprintln!("+ cargo {}", args.join(" "));
    let status = crate::tasks::cargo_command(root)
        .args(&args)
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    let profile = if release { "release" } else { "debug" };
    // A private copy: other builds in this workspace (tests, a colleague's) may replace
    // target/<profile>/berth while the bench runs.
    let copy = root.join("target").join("bench").join("berth");
    fs::create_dir_all(root.join("target").join("bench"))?;
    fs::copy(root.join("target").join(profile).join("berth"), &copy)
        .context("copying the berth binary")?;
    Ok(copy)
}

fn app_name(i: usize) -> String {
    format!("app-{i:04}")
}

/// One app as a team would write it: a container with two ports, resources and probes, a
/// volume (a claim template), an access Service. `edit` is the value of a pod annotation the edit phase changes.
fn spec_text(i: usize, replicas: usize, edit: &str) -> String {
    format!(
        r#"replicas = {replicas}
labels = {{ team = "team-{team}" }}
annotations = {{ "{EDIT_ANNOTATION}" = "{edit}" }}
termination_grace = "30s"

[containers.app]
image = "registry.example.com/team-{team}/app-{i}:1.{minor}.0"
cpu = {{ request = "100m", limit = "500m" }}
memory = "256Mi"
ports = {{ http = 8080, metrics = 9090 }}
env = {{ APP_ID = "{i}", LOG_LEVEL = "info" }}
liveness = {{ http = {{ path = "/healthz", port = "http" }}, delay = "10s", period = "10s" }}
readiness = {{ tcp = 8080, period = "5s" }}
mounts = {{ data = "/var/lib/app" }}

[volumes.data]
size = "1Gi"

[service]
ports = {{ http = 8080 }}
"#,
        team = i % 20,
        minor = i % 7,
    )
}

/// Everything the phases share.
struct Bench {
    rt: tokio::runtime::Runtime,
    client: kube::Client,
    berth: PathBuf,
    /// The harness's admin: namespaces, metrics, the edit watch.
    admin_kubeconfig: PathBuf,
    /// [`IDENTITY`]'s token: what the measured commands use.
    kubeconfig: PathBuf,
    apps: PathBuf,
    logs: PathBuf,
    options: Options,
}

/// Which tool a cold or no-op run measures.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tool {
    Berth,
    Kubectl,
    /// The API server's own limit: the same server-side applies, nothing else (no reads, no
    /// dry-runs, no output), sent by a minimal client at berth's default concurrency.
    Floor,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Berth => "berth",
            Tool::Kubectl => "kubectl",
            Tool::Floor => "api-floor",
        }
    }
}

/// berth's default `--concurrency` (PlanOptions::DEFAULT_CONCURRENCY), for the API floor.
const FLOOR_CONCURRENCY: usize = 16;

/// One timed command and the requests it sent.
struct Measured {
    seconds: f64,
    /// Exact, by verb (the FlowSchema counters).
    requests: BTreeMap<String, u64>,
    /// Cluster-wide writes to berth's kinds: (real, dry-run).
    writes_cluster_wide: (u64, u64),
}

impl Bench {
    fn run_all(&self) -> Result<Value> {
        let mut report = json!({
            "apps": self.options.apps,
            "objects_per_app": 3,
            "replicas_per_app": self.options.replicas,
            "profile": match (&self.options.bin, self.options.release) {
                (Some(bin), _) => bin.display().to_string(),
                (None, true) => "release".to_string(),
                (None, false) => "debug".to_string(),
            },
            "runs": self.options.repeat,
        });
        report["validate_render"] = self.validate_render()?;
        let (converge, keep) = self.converge_runs()?;
        report["converge"] = converge;
        let result = self.watch_phases(&keep);
        self.delete_namespaces(&[keep])?;
        report["watch"] = result?;
        Ok(report)
    }

    /// Phase 5: local work only, no cluster.
    fn validate_render(&self) -> Result<Value> {
        let mut validate = Vec::new();
        let mut render = Vec::new();
        for _ in 0..self.options.repeat {
            let started = Instant::now();
            self.berth_command(&["validate"], None)
                .arg(&self.apps)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?
                .success()
                .then_some(())
                .context("berth validate failed on the generated specs")?;
            validate.push(started.elapsed().as_secs_f64());
            let out = fs::File::create(self.logs.join("render.yaml"))?;
            let started = Instant::now();
            self.berth_command(&["render"], None)
                .arg(&self.apps)
                .stdout(out)
                .status()?
                .success()
                .then_some(())
                .context("berth render failed on the generated specs")?;
            render.push(started.elapsed().as_secs_f64());
        }
        println!(
            "validate {:.2}s, render {:.2}s (median of {})",
            median(&validate),
            median(&render),
            validate.len()
        );
        Ok(json!({
            "validate_s": median(&validate), "validate_runs_s": validate,
            "render_s": median(&render), "render_runs_s": render,
        }))
    }

    /// Phases 1 and 2. Returns the report and the namespace of the last berth run, kept (and
    /// converged) for the watch phases.
    fn converge_runs(&self) -> Result<(Value, String)> {
        let mut runs = Vec::new();
        let mut keep = None;
        for run in 0..self.options.repeat {
            let order = if run % 2 == 0 {
                [Tool::Berth, Tool::Kubectl]
            } else {
                [Tool::Kubectl, Tool::Berth]
            };
            let ns_of = |tool: Tool| format!("bench-{}-{run}", tool.name());
            let mut cold = BTreeMap::new();
            for tool in order {
                let ns = ns_of(tool);
                self.create_namespace(&ns)?;
                let measured = self.converge_once(tool, &ns, "cold")?;
                println!(
                    "run {run}: cold  {:<7} {:>7.2}s  {}; cluster-wide writes {} + dry-runs {}",
                    tool.name(),
                    measured.seconds,
                    requests_line(&measured.requests),
                    measured.writes_cluster_wide.0,
                    measured.writes_cluster_wide.1
                );
                cold.insert(tool.name(), measured);
                // The controllers create a pod and a volume per app; let that finish so the next
                // command does not pay for this one's aftermath.
                self.settle(&ns)?;
            }
            // The floor goes last in every run: it is a reference, not a contender.
            let ns = ns_of(Tool::Floor);
            self.create_namespace(&ns)?;
            let measured = self.converge_once(Tool::Floor, &ns, "cold")?;
            println!(
                "run {run}: cold  {:<7} {:>7.2}s  {}",
                Tool::Floor.name(),
                measured.seconds,
                requests_line(&measured.requests),
            );
            cold.insert(Tool::Floor.name(), measured);
            let mut noop = BTreeMap::new();
            for tool in order {
                let measured = self.converge_once(tool, &ns_of(tool), "noop")?;
                println!(
                    "run {run}: no-op {:<7} {:>7.2}s  {}; cluster-wide writes {} + dry-runs {}",
                    tool.name(),
                    measured.seconds,
                    requests_line(&measured.requests),
                    measured.writes_cluster_wide.0,
                    measured.writes_cluster_wide.1
                );
                noop.insert(tool.name(), measured);
            }
            runs.push((cold, noop));
            let mut delete = vec![ns_of(Tool::Kubectl), ns_of(Tool::Floor)];
            if run + 1 == self.options.repeat {
                keep = Some(ns_of(Tool::Berth));
            } else {
                delete.push(ns_of(Tool::Berth));
            }
            self.delete_namespaces(&delete)?;
        }
        let pick = |cold: bool, tool: Tool| -> Vec<f64> {
            runs.iter()
                .map(|(c, n)| {
                    let m = if cold { c } else { n };
                    m.get(tool.name()).map(|m| m.seconds)
                })
                .collect::<Option<Vec<f64>>>()
                .unwrap_or_default()
        };
        let summary = |cold: bool| {
            let (b, k) = (pick(cold, Tool::Berth), pick(cold, Tool::Kubectl));
            let last = runs.last().map(|(c, n)| if cold { c } else { n });
            let requests = |tool: Tool| {
                last.and_then(|m| m.get(tool.name()))
                    .map(|m| m.requests.clone())
                    .unwrap_or_default()
            };
            let cluster_wide = |tool: Tool| {
                last.and_then(|m| m.get(tool.name()))
                    .map(|m| m.writes_cluster_wide)
                    .unwrap_or_default()
            };
            let f = pick(cold, Tool::Floor);
            json!({
                "berth_s": median(&b), "kubectl_s": median(&k),
                "ratio": median(&k) / median(&b),
                "api_floor_s": median(&f), "api_floor_runs_s": f,
                "api_floor_concurrency": FLOOR_CONCURRENCY,
                "berth_runs_s": b, "kubectl_runs_s": k,
                "berth_requests": requests(Tool::Berth),
                "kubectl_requests": requests(Tool::Kubectl),
                "berth_writes": writes(&requests(Tool::Berth)),
                "kubectl_writes": writes(&requests(Tool::Kubectl)),
                "cluster_wide_note": "writes to StatefulSets/Services/PDBs by any client during the command, from apiserver_request_total: real writes, then dry-runs",
                "berth_cluster_wide_writes": cluster_wide(Tool::Berth).0,
                "berth_cluster_wide_dry_runs": cluster_wide(Tool::Berth).1,
                "kubectl_cluster_wide_writes": cluster_wide(Tool::Kubectl).0,
                "kubectl_cluster_wide_dry_runs": cluster_wide(Tool::Kubectl).1,
            })
        };
        let report = json!({"cold": summary(true), "noop": summary(false)});
        let keep = keep.context("no berth run to keep for the watch phases")?;
        Ok((report, keep))
    }

    /// The very objects berth writes, rendered for `ns` as namespace and instance (rendering
    /// is not part of kubectl's time).
    fn rendered(&self, ns: &str) -> Result<PathBuf> {
        let objects = self.logs.join(format!("objects-{ns}.yaml"));
        if !objects.exists() {
            let out = fs::File::create(&objects)?;
            let status = self
                .berth_command(&["render"], Some(ns))
                .arg(&self.apps)
                .stdout(out)
                .status()?;
            if !status.success() {
                bail!("berth render for {ns} failed ({status})");
            }
        }
        Ok(objects)
    }

    /// One timed `berth apply --yes`, `kubectl apply --server-side` or API floor into `ns`.
    fn converge_once(&self, tool: Tool, ns: &str, what: &str) -> Result<Measured> {
        let log = self.logs.join(format!("{what}-{ns}.log"));
        let mut cmd = match tool {
            Tool::Berth => {
                let mut cmd = self.berth_command(&["apply", "--yes"], Some(ns));
                cmd.arg(&self.apps);
                cmd
            }
            Tool::Kubectl => {
                let mut cmd = Command::new("kubectl");
                cmd.env("KUBECONFIG", &self.kubeconfig)
                    .args(["apply", "--server-side", "-f"])
                    .arg(self.rendered(ns)?);
                cmd
            }
            Tool::Floor => return self.floor(ns),
        };
        let out = fs::File::create(&log)?;
        cmd.stdout(out.try_clone()?).stderr(out);
        let before = self.request_counts()?;
        let started = Instant::now();
        let status = cmd
            .status()
            .with_context(|| format!("running {}", tool.name()))?;
        let seconds = started.elapsed().as_secs_f64();
        let after = self.request_counts()?;
        let cluster_wide = delta(&before.1, &after.1);
        if !status.success() {
            bail!(
                "{} {what} into {ns} failed ({status}); its output is in {}:\n{}",
                tool.name(),
                log.display(),
                crate::process::tail(&log, 20)
            );
        }
        Ok(Measured {
            seconds,
            requests: delta(&before.0, &after.0),
            writes_cluster_wide: (
                cluster_wide.get("write").copied().unwrap_or(0),
                cluster_wide.get("dry-run").copied().unwrap_or(0),
            ),
        })
    }

    /// The API floor: every rendered object server-side applied once, [`FLOOR_CONCURRENCY`] at
    /// a time, by a client that does nothing else. Parsing happens before the clock starts.
    fn floor(&self, ns: &str) -> Result<Measured> {
        let text = fs::read_to_string(self.rendered(ns)?)?;
        let mut objects = Vec::new();
        for doc in text.split("---\n").filter(|d| !d.trim().is_empty()) {
            let value: Value = serde_saphyr::from_str(doc).context("parsing berth render")?;
            let (Some(api_version), Some(kind), Some(name)) = (
                value["apiVersion"].as_str(),
                value["kind"].as_str(),
                value.pointer("/metadata/name").and_then(Value::as_str),
            ) else {
                bail!("berth render gave an object without apiVersion, kind or name");
            };
            let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
            let resource = kube::discovery::ApiResource::from_gvk(
                &kube::api::GroupVersionKind::gvk(group, version, kind),
            );
            objects.push((resource, name.to_string(), value));
        }
        let before = self.request_counts()?;
        let started = Instant::now();
        self.rt.block_on(async {
            let client = kube_client::client(&self.kubeconfig).await?;
            let params = kube::api::PatchParams::apply("bench-floor").force();
            let mut pending = Vec::new();
            for (resource, name, value) in &objects {
                let api: Api<kube::api::DynamicObject> =
                    Api::namespaced_with(client.clone(), ns, resource);
                let params = &params;
                pending.push(async move {
                    api.patch(name, params, &kube::api::Patch::Apply(value))
                        .await
                        .with_context(|| format!("applying {name}"))
                });
            }
            let results: Vec<Result<_>> = futures::stream::iter(pending)
                .buffer_unordered(FLOOR_CONCURRENCY)
                .collect()
                .await;
            results.into_iter().collect::<Result<Vec<_>>>()
        })?;
        let seconds = started.elapsed().as_secs_f64();
        let after = self.request_counts()?;
        let cluster_wide = delta(&before.1, &after.1);
        Ok(Measured {
            seconds,
            requests: delta(&before.0, &after.0),
            writes_cluster_wide: (
                cluster_wide.get("write").copied().unwrap_or(0),
                cluster_wide.get("dry-run").copied().unwrap_or(0),
            ),
        })
    }

    /// A berth command against the local cluster; `ns` is both the namespace of the specs and
    /// the instance name, so two runs never see each other's objects.
    fn berth_command(&self, args: &[&str], ns: Option<&str>) -> Command {
        let mut cmd = Command::new(&self.berth);
        cmd.env("KUBECONFIG", &self.kubeconfig).env("NO_COLOR", "1");
        if let Some(ns) = ns {
            cmd.args(["--instance", ns, "--namespace", ns]);
        }
        cmd.args(args);
        cmd
    }

    /// Phases 3 and 4 on the converged apps in `ns`.
    fn watch_phases(&self, ns: &str) -> Result<Value> {
        let port = free_port()?;
        let log = self.logs.join("watch.log");
        let out = fs::File::create(&log)?;
        let at_start = self.request_counts()?.0;
        let started = Instant::now();
        let mut child = self
            .berth_command(&["watch", "--log-format", "json"], Some(ns))
            .args(["--admin-addr", &format!("127.0.0.1:{port}")])
            .arg(&self.apps)
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting berth watch")?;
        let result = self.watch_measure(&mut child, port, started, &at_start, ns);
        stop_child(&mut child);
        result.with_context(|| format!("berth watch log: {}", log.display()))
    }

    fn watch_measure(
        &self,
        child: &mut Child,
        port: u16,
        started: Instant,
        at_start: &BTreeMap<String, u64>,
        ns: &str,
    ) -> Result<Value> {
        let pid = child.id();
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("berth watch exited during start-up ({status})");
            }
            if http_status(port, "/readyz") == Some(200) {
                break;
            }
            if started.elapsed() > SETTLE_TIMEOUT {
                bail!(
                    "berth watch was not ready after {}s",
                    SETTLE_TIMEOUT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let ready_s = started.elapsed().as_secs_f64();
        let cpu_at_ready = cpu_seconds(pid)?;
        let before = self.request_counts()?;
        let startup_requests = delta(at_start, &before.0);
        println!(
            "watch: first full sync of {} apps in {ready_s:.2}s ({cpu_at_ready:.2} CPU s), \
             requests: {}",
            self.options.apps,
            requests_line(&startup_requests)
        );

        // Phase 4: idle.
        let cpu_before = cpu_seconds(pid)?;
        std::thread::sleep(self.options.idle);
        let cpu_idle = cpu_seconds(pid)? - cpu_before;
        let idle_requests = delta(&before.0, &self.request_counts()?.0);
        let rss_idle = peak_rss_kib(pid)?;
        println!(
            "idle {}s: {cpu_idle:.2} CPU s, peak RSS {:.1} MiB, requests: {}",
            self.options.idle.as_secs(),
            rss_idle as f64 / 1024.0,
            requests_line(&idle_requests)
        );

        // Phase 3: edits.
        let latencies = self.rt.block_on(self.edits(ns))?;
        let mut sorted = latencies.clone();
        sorted.sort_by(f64::total_cmp);
        let rss_end = peak_rss_kib(pid)?;
        // What the resident set is made of now (there is no peak of each part).
        let (anon, file) = (status_kib(pid, "RssAnon")?, status_kib(pid, "RssFile")?);
        println!(
            "edits: {} — p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            sorted.len(),
            percentile(&sorted, 50.0) * 1e3,
            percentile(&sorted, 99.0) * 1e3,
            sorted.last().copied().unwrap_or(f64::NAN) * 1e3
        );
        println!(
            "after the edits: peak RSS {:.1} MiB; now RssAnon {:.1} MiB, RssFile {:.1} MiB",
            rss_end as f64 / 1024.0,
            anon as f64 / 1024.0,
            file as f64 / 1024.0
        );
        Ok(json!({
            "first_sync_s": ready_s,
            "first_sync_cpu_s": cpu_at_ready,
            "first_sync_requests": startup_requests,
            "idle": {
                "seconds": self.options.idle.as_secs(),
                "cpu_s": cpu_idle,
                "requests": idle_requests,
                "peak_rss_mib": rss_idle as f64 / 1024.0,
            },
            "edits": {
                "count": sorted.len(),
                "p50_ms": percentile(&sorted, 50.0) * 1e3,
                "p99_ms": percentile(&sorted, 99.0) * 1e3,
                "max_ms": sorted.last().copied().unwrap_or(f64::NAN) * 1e3,
                "latencies_ms": latencies.iter().map(|s| (s * 1e4).round() / 10.0).collect::<Vec<_>>(),
            },
            "peak_rss_mib_after_edits": rss_end as f64 / 1024.0,
            "rss_anon_mib_after_edits": anon as f64 / 1024.0,
            "rss_file_mib_after_edits": file as f64 / 1024.0,
        }))
    }

    /// Edits one spec at a time by atomic rename and waits until a watch shows the StatefulSet
    /// with the new pod annotation. Returns each edit's latency in seconds.
    async fn edits(&self, ns: &str) -> Result<Vec<f64>> {
        let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), ns);
        let mut events = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        // Only what changes after the first list counts.
        loop {
            match events.next().await {
                Some(Ok(watcher::Event::InitDone)) => break,
                Some(Ok(_)) => {}
                Some(Err(err)) => bail!("watching StatefulSets in {ns}: {err}"),
                None => bail!("the StatefulSet watch ended"),
            }
        }
        let mut latencies = Vec::new();
        for edit in 0..self.options.edits {
            // Spread over the fleet; a prime stride visits different apps each time.
            let i = (edit * 7919 + 13) % self.options.apps;
            let name = app_name(i);
            let value = format!("edit-{edit}");
            let tmp = self.apps.join(format!(".{name}.toml.tmp"));
            fs::write(&tmp, spec_text(i, self.options.replicas, &value))?;
            let started = Instant::now();
            fs::rename(&tmp, self.apps.join(format!("{name}.toml")))?;
            let seen = tokio::time::timeout(EDIT_TIMEOUT, async {
                while let Some(event) = events.next().await {
                    if let Ok(watcher::Event::Apply(sts)) = event
                        && sts.metadata.name.as_deref() == Some(name.as_str())
                        && template_annotation(&sts) == Some(value.as_str())
                    {
                        return true;
                    }
                }
                false
            })
            .await;
            match seen {
                Ok(true) => latencies.push(started.elapsed().as_secs_f64()),
                Ok(false) => bail!("the StatefulSet watch ended during the edits"),
                Err(_) => bail!(
                    "edit {edit} of {name} was not visible after {}s",
                    EDIT_TIMEOUT.as_secs()
                ),
            }
        }
        Ok(latencies)
    }

    /// Requests sent as [`IDENTITY`], by verb (exact), and cluster-wide writes to berth's kinds
    /// split into `write` and `dry-run` (approximate: every client's).
    fn request_counts(&self) -> Result<(BTreeMap<String, u64>, BTreeMap<String, u64>)> {
        let text = self.rt.block_on(async {
            let req = http::Request::get("/metrics").body(Vec::new())?;
            anyhow::Ok(self.client.request_text(req).await?)
        })?;
        let mut exact = BTreeMap::new();
        let mut cluster_wide = BTreeMap::new();
        for line in text.lines() {
            let Some((name, rest)) = line.split_once('{') else {
                continue;
            };
            let Some((labels, value)) = rest.rsplit_once('}') else {
                continue;
            };
            let value: f64 = value.trim().parse().unwrap_or(0.0);
            let labels = parse_labels(labels);
            let get = |k: &str| labels.get(k).map(String::as_str).unwrap_or_default();
            match name {
                "apiserver_flowcontrol_dispatched_requests_total" => {
                    if let Some(verb) = get("flow_schema").strip_prefix(&format!("{IDENTITY}-")) {
                        *exact.entry(verb.to_string()).or_insert(0) += value as u64;
                    }
                }
                "apiserver_request_total" => {
                    let verb = get("verb");
                    if BERTH_RESOURCES.contains(&get("resource"))
                        && get("subresource").is_empty()
                        && matches!(verb, "POST" | "PUT" | "PATCH" | "APPLY" | "DELETE")
                    {
                        let key = if get("dry_run").is_empty() {
                            "write"
                        } else {
                            "dry-run"
                        };
                        *cluster_wide.entry(key.to_string()).or_insert(0) += value as u64;
                    }
                }
                _ => {}
            }
        }
        Ok((exact, cluster_wide))
    }

    /// The ServiceAccount the measured commands run as (bound to cluster-admin, like the admin
    /// certificate), one FlowSchema per verb for it in the exempt priority level (never queued,
    /// as the admin certificate is not), and a kubeconfig with its token.
    fn create_identity(&mut self) -> Result<()> {
        let mut manifest = format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {IDENTITY}, labels: \
             {{{BENCH_LABEL}: \"true\"}}}}\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: \
             {{name: {IDENTITY}, namespace: {IDENTITY}}}\n---\napiVersion: \
             rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {{name: \
             {IDENTITY}, labels: {{{BENCH_LABEL}: \"true\"}}}}\nroleRef: {{apiGroup: \
             rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}}\nsubjects: \
             [{{kind: ServiceAccount, name: {IDENTITY}, namespace: {IDENTITY}}}]\n"
        );
        for verb in VERBS {
            manifest.push_str(&format!(
                "---\napiVersion: flowcontrol.apiserver.k8s.io/v1\nkind: FlowSchema\nmetadata: \
                 {{name: {IDENTITY}-{verb}, labels: {{{BENCH_LABEL}: \"true\"}}}}\nspec:\n  \
                 matchingPrecedence: 10\n  priorityLevelConfiguration: {{name: exempt}}\n  \
                 rules:\n  - subjects: [{{kind: ServiceAccount, serviceAccount: {{name: \
                 {IDENTITY}, namespace: {IDENTITY}}}}}]\n    resourceRules: [{{verbs: \
                 [\"{verb}\"], apiGroups: [\"*\"], resources: [\"*\"], namespaces: [\"*\"], \
                 clusterScope: true}}]\n    nonResourceRules: [{{verbs: [\"{verb}\"], \
                 nonResourceURLs: [\"*\"]}}]\n"
            ));
        }
        let mut child = Command::new("kubectl")
            .env("KUBECONFIG", &self.admin_kubeconfig)
            .args(["apply", "--server-side", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .context("running kubectl")?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(manifest.as_bytes())?;
        }
        if !child.wait()?.success() {
            bail!("creating the bench identity ({IDENTITY}) failed");
        }
        let token = Command::new("kubectl")
            .env("KUBECONFIG", &self.admin_kubeconfig)
            .args(["create", "token", IDENTITY, "-n", IDENTITY, "--duration=6h"])
            .output()
            .context("running kubectl create token")?;
        if !token.status.success() {
            bail!(
                "kubectl create token failed: {}",
                String::from_utf8_lossy(&token.stderr)
            );
        }
        let token = String::from_utf8(token.stdout)?.trim().to_string();
        let admin = fs::read_to_string(&self.admin_kubeconfig)?;
        let ca = admin
            .lines()
            .find_map(|l| l.trim().strip_prefix("certificate-authority-data:"))
            .context("no certificate-authority-data in the admin kubeconfig")?
            .trim();
        fs::write(
            &self.kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: \
                 https://127.0.0.1:{}\n    certificate-authority-data: {ca}\nusers:\n- name: \
                 {IDENTITY}\n  user:\n    token: {token}\ncontexts:\n- name: local\n  context:\n    \
                 cluster: local\n    user: {IDENTITY}\ncurrent-context: local\n",
                cluster::APISERVER_PORT
            ),
        )?;
        Ok(())
    }

    /// Waits until every StatefulSet in `ns` runs its pods (kwok makes them Ready).
    fn settle(&self, ns: &str) -> Result<()> {
        let started = Instant::now();
        let api: Api<StatefulSet> = Api::namespaced(self.client.clone(), ns);
        loop {
            let list = self.rt.block_on(api.list(&ListParams::default()))?;
            let ready = list
                .items
                .iter()
                .filter(|s| {
                    let want = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                    s.status
                        .as_ref()
                        .and_then(|s| s.ready_replicas)
                        .unwrap_or(0)
                        >= want
                })
                .count();
            if ready >= self.options.apps {
                eprintln!(
                    "  {ns}: all {ready} apps running after {:.0}s",
                    started.elapsed().as_secs_f64()
                );
                return Ok(());
            }
            if started.elapsed() > SETTLE_TIMEOUT {
                bail!(
                    "only {ready} of {} apps in {ns} ran their pods within {}s",
                    self.options.apps,
                    SETTLE_TIMEOUT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    fn create_namespace(&self, name: &str) -> Result<()> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns: Namespace = serde_json::from_value(
            json!({"metadata": {"name": name, "labels": {BENCH_LABEL: "true"}}}),
        )?;
        self.rt
            .block_on(api.create(&PostParams::default(), &ns))
            .with_context(|| format!("creating namespace {name}"))?;
        Ok(())
    }

    /// Deletes the namespaces, waits until they are gone, then deletes the PersistentVolumes
    /// their claims had (the class retains volumes, so they would pile up run after run).
    fn delete_namespaces(&self, names: &[String]) -> Result<()> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let started = Instant::now();
        for name in names {
            match self
                .rt
                .block_on(api.delete(name, &DeleteParams::background()))
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e).context(format!("deleting namespace {name}")),
            }
        }
        for name in names {
            while self.rt.block_on(api.get_opt(name))?.is_some() {
                if started.elapsed() > SETTLE_TIMEOUT {
                    bail!(
                        "namespace {name} still exists {}s after its deletion",
                        SETTLE_TIMEOUT.as_secs()
                    );
                }
                std::thread::sleep(Duration::from_secs(2));
            }
        }
        let volumes: Api<PersistentVolume> = Api::all(self.client.clone());
        let list = self.rt.block_on(volumes.list(&ListParams::default()))?;
        for pv in list.items {
            let claim_ns = pv
                .spec
                .as_ref()
                .and_then(|s| s.claim_ref.as_ref())
                .and_then(|c| c.namespace.clone())
                .unwrap_or_default();
            if names.contains(&claim_ns)
                && let Some(pv_name) = pv.metadata.name.as_deref()
            {
                let _ = self
                    .rt
                    .block_on(volumes.delete(pv_name, &DeleteParams::background()));
            }
        }
        if !names.is_empty() {
            eprintln!(
                "  deleted namespace(s) {} in {:.0}s",
                names.join(", "),
                started.elapsed().as_secs_f64()
            );
        }
        Ok(())
    }

    fn cleanup_leftovers(&self) -> Result<()> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let list = self
            .rt
            .block_on(api.list(&ListParams::default().labels(&format!("{BENCH_LABEL}=true"))))?;
        let names: Vec<String> = list
            .items
            .into_iter()
            .filter_map(|n| n.metadata.name)
            .collect();
        // The identity's cluster-wide objects (binding, FlowSchemas) carry the label too.
        let status = Command::new("kubectl")
            .env("KUBECONFIG", &self.admin_kubeconfig)
            .args([
                "delete",
                "clusterrolebindings.rbac.authorization.k8s.io,flowschemas.flowcontrol.apiserver.k8s.io",
                "-l",
                &format!("{BENCH_LABEL}=true"),
            ])
            .stdout(Stdio::null())
            .status()?;
        if !status.success() {
            bail!("deleting the bench identity's FlowSchemas and binding failed");
        }
        self.delete_namespaces(&names)
    }

    /// Where the figures come from: cores, memory, load and versions.
    fn machine(&self) -> Result<Value> {
        let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kib: u64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            .unwrap_or_default();
        let output = |cmd: &mut Command| -> String {
            cmd.output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default()
        };
        let server = self.rt.block_on(self.client.apiserver_version())?;
        Ok(json!({
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "cpu": model,
            "memory_gib": (mem_kib as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            "loadavg_at_start": fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
            "berth": output(Command::new(&self.berth).arg("--version")),
            "kubectl": output(Command::new("kubectl").args(["version", "--client"])).lines().next().unwrap_or_default(),
            "kube_apiserver": server.git_version,
            "rustc": output(Command::new("rustc").arg("--version")),
        }))
    }
}

fn template_annotation(sts: &StatefulSet) -> Option<&str> {
    sts.spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(EDIT_ANNOTATION)
        .map(String::as_str)
}

/// `k="v",k2="v2"` from a Prometheus sample line.
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((at, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                '"' => {
                    end = at + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').trim().to_string(), value);
        rest = &after[end..];
    }
    labels
}

fn delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.saturating_sub(before.get(k).copied().unwrap_or(0)),
            )
        })
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// Write requests among requests by verb.
fn writes(requests: &BTreeMap<String, u64>) -> u64 {
    requests
        .iter()
        .filter(|(verb, _)| WRITE_VERBS.contains(&verb.as_str()))
        .map(|(_, n)| n)
        .sum()
}

fn requests_line(requests: &BTreeMap<String, u64>) -> String {
    if requests.is_empty() {
        return "no requests".to_string();
    }
    requests
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces; the fields after it are fixed.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // After ")": state is field 3, so utime (14) and stime (15) are at 11 and 12.
    let ticks = |i: usize| -> f64 { fields.get(i).and_then(|v| v.parse().ok()).unwrap_or(0.0) };
    Ok((ticks(11) + ticks(12)) / clock_ticks())
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// VmHWM: the process's peak resident set, in KiB.
fn peak_rss_kib(pid: u32) -> Result<u64> {
    status_kib(pid, "VmHWM")
}

/// One KiB field of /proc/PID/status (VmHWM, RssAnon: heap and stacks, RssFile: mapped code).
fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no {field} in /proc/PID/status"))
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The status code of a plain HTTP/1.0 GET on loopback.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .ok()?;
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.split_whitespace().nth(1)?.parse().ok()
}

/// SIGTERM (berth finishes the step in flight), then SIGKILL if it does not stop.
fn stop_child(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn print_table(report: &Value) {
    let f = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_f64).unwrap_or(f64::NAN);
    let u = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    let apps = u(report, "/apps");
    println!(
        "\n{apps} apps, {} run(s), berth {} build",
        u(report, "/runs"),
        report["profile"].as_str().unwrap_or("?")
    );
    println!(
        "{:<34} {:>12} {:>12} {:>10}   target",
        "measure", "berth", "kubectl", "ratio"
    );
    for (label, key, target) in [
        ("cold converge (s)", "cold", "ratio >= 2"),
        ("no-op converge (s)", "noop", "ratio >= 50"),
    ] {
        let c = &report["converge"][key];
        println!(
            "{label:<34} {:>12.2} {:>12.2} {:>9.1}x   {target}",
            f(c, "/berth_s"),
            f(c, "/kubectl_s"),
            f(c, "/ratio")
        );
        println!(
            "{:<34} {:>12} {:>12}",
            format!("  {key}: write requests sent"),
            u(c, "/berth_writes"),
            u(c, "/kubectl_writes"),
        );
        println!(
            "{:<34} {:>12} {:>12}",
            "    of them dry-run (cluster-wide)",
            u(c, "/berth_cluster_wide_dry_runs"),
            u(c, "/kubectl_cluster_wide_dry_runs"),
        );
    }
    println!(
        "{:<34} {:>12.2}   {} applies, {} at a time, nothing else",
        "  API floor for the same creates (s)",
        f(&report["converge"]["cold"], "/api_floor_s"),
        apps * 3,
        u(&report["converge"]["cold"], "/api_floor_concurrency"),
    );
    let w = &report["watch"];
    println!(
        "{:<34} {:>12.0}   p50 <= 200",
        "edit latency p50 (ms)",
        f(w, "/edits/p50_ms")
    );
    println!(
        "{:<34} {:>12.0}   p99 <= 1000",
        "edit latency p99 (ms)",
        f(w, "/edits/p99_ms")
    );
    println!(
        "{:<34} {:>12.0}",
        "edit latency max (ms)",
        f(w, "/edits/max_ms")
    );
    println!(
        "{:<34} {:>12.2}",
        "watch first full sync (s)",
        f(w, "/first_sync_s")
    );
    let idle_requests = w
        .pointer("/idle/requests")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    println!(
        "{:<34} {:>12}   only watches",
        format!("idle {}s: requests", u(w, "/idle/seconds")),
        if idle_requests.is_empty() {
            "none".to_string()
        } else {
            idle_requests
        }
    );
    println!("{:<34} {:>12.2}", "idle: CPU seconds", f(w, "/idle/cpu_s"));
    println!(
        "{:<34} {:>12.1}   <= 64",
        "idle: peak RSS (MiB)",
        f(w, "/idle/peak_rss_mib")
    );
    println!(
        "{:<34} {:>12.1}   <= 64",
        "after the edits: peak RSS (MiB)",
        f(w, "/peak_rss_mib_after_edits")
    );
    println!(
        "{:<34} {:>12}",
        "  now: RssAnon / RssFile (MiB)",
        format!(
            "{:.1} / {:.1}",
            f(w, "/rss_anon_mib_after_edits"),
            f(w, "/rss_file_mib_after_edits")
        )
    );
    let v = &report["validate_render"];
    println!("{:<34} {:>12.2}", "validate (s)", f(v, "/validate_s"));
    println!("{:<34} {:>12.2}", "render (s)", f(v, "/render_s"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse() {
        let labels = parse_labels(
            r#"code="201",component="apiserver",dry_run="All",resource="statefulsets",subresource="",verb="APPLY""#,
        );
        assert_eq!(labels["dry_run"], "All");
        assert_eq!(labels["subresource"], "");
        assert_eq!(labels["verb"], "APPLY");
    }

    #[test]
    fn writes_are_counted_by_verb() {
        let requests = BTreeMap::from([
            ("patch".to_string(), 3),
            ("create".to_string(), 5),
            ("get".to_string(), 7),
        ]);
        assert_eq!(writes(&requests), 8);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    }
}
