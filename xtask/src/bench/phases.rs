//! The measured phases, in the order [`Bench::run_all`] runs them: `berth validate` and `berth
//! render` (local work), a cold `berth diff`, cold and no-op converge of berth, kubectl and the
//! API floor, then `berth watch` on the last converged namespace: first full sync, a quiet idle
//! period, and the edits timed from a spec's rename to the changed StatefulSet seen through a
//! watch. The one-shot commands are timed and their peak RSS taken by [`Wrapped`].
//!
//! Each phase prints a line per run as it goes and returns its part of the report as JSON.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};

use super::peak_rss::{Finished, Wrapped};
use super::procfs::{cpu_seconds, peak_rss_kib, status_kib};
use super::quiet::{Quiet, wait_for_quiet};
use super::report::{median, percentile};
use super::requests::{RequestCounts, delta, requests_line, writes};
use super::stages::{Edit, breakdown};
use super::{Bench, EDIT_ANNOTATION, SETTLE_TIMEOUT, app_name, spec_text};

/// How long one edit may take to show in the StatefulSet before the phase gives up.
const EDIT_TIMEOUT: Duration = Duration::from_secs(30);
/// `berth diff`'s exit code for "changes pending" (README.md's command table), the one a diff
/// against a namespace with nothing live must give: every object is a create.
const DIFF_CHANGES_PENDING: i32 = 1;

/// Which tool a cold or no-op run measures.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tool {
    Berth,
    Kubectl,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Berth => "berth",
            Tool::Kubectl => "kubectl",
        }
    }
}

/// One timed command and the requests it sent.
pub(super) struct Measured {
    seconds: f64,
    /// None for the API floor, which runs inside the harness.
    peak_rss_mib: Option<f64>,
    /// Exact, by verb (the FlowSchema counters).
    pub(super) requests: BTreeMap<String, u64>,
    /// Cluster-wide writes to berth's kinds: (real, dry-run).
    writes_cluster_wide: (u64, u64),
    /// How long the bench waited for a quiet machine first, and how busy it was then (None for
    /// the API floor, which runs right after the cold converges).
    quiet: Option<Quiet>,
}

impl Measured {
    /// A command that took `seconds`, with the requests counted between two readings.
    pub(super) fn between(seconds: f64, before: &RequestCounts, after: &RequestCounts) -> Measured {
        let cluster_wide = delta(&before.cluster_wide, &after.cluster_wide);
        Measured {
            seconds,
            peak_rss_mib: None,
            requests: delta(&before.by_verb, &after.by_verb),
            writes_cluster_wide: (
                cluster_wide.get("write").copied().unwrap_or(0),
                cluster_wide.get("dry-run").copied().unwrap_or(0),
            ),
            quiet: None,
        }
    }
}

/// Runs a measured berth command over the generated specs, which must succeed; its errors go
/// to `log`.
fn succeeded(command: &str, wrapped: Wrapped, log: &Path) -> Result<Finished> {
    let finished = wrapped
        .run()
        .with_context(|| format!("running berth {command}"))?;
    if !finished.status.success() {
        bail!(
            "berth {command} failed on the generated specs ({}); its errors are in {}",
            finished.status,
            log.display()
        );
    }
    Ok(finished)
}

/// Every run of a one-shot command: its times and peak resident sets.
#[derive(Default)]
struct Runs {
    seconds: Vec<f64>,
    peak_rss_mib: Vec<f64>,
}

impl Runs {
    fn push(&mut self, finished: &Finished) {
        self.seconds.push(finished.seconds);
        self.peak_rss_mib.push(finished.peak_rss_mib());
    }

    /// `NAME_s` and `NAME_peak_rss_mib`, the medians, and every run behind them as
    /// `NAME_runs_s` and `NAME_runs_peak_rss_mib`.
    fn report_into(&self, name: &str, report: &mut Value) {
        report[format!("{name}_s")] = json!(median(&self.seconds));
        report[format!("{name}_runs_s")] = json!(self.seconds);
        report[format!("{name}_peak_rss_mib")] = json!(median(&self.peak_rss_mib));
        report[format!("{name}_runs_peak_rss_mib")] = json!(self.peak_rss_mib);
    }
}

impl Bench {
    /// Every phase, in order; the namespace converged by the last berth run is kept for the
    /// watch phases and deleted after them, whatever they return.
    pub(super) fn run_all(&self) -> Result<Value> {
        let mut report = json!({
            "apps": self.size,
            "objects_per_app": 3,
            "replicas_per_app": self.options.replicas,
            "profile": self.options.profile(),
            "kubectl": self.kubectl,
            "runs": self.options.repeat,
        });
        report["validate_render"] = self.validate_render()?;
        report["diff"] = self.diff_cold()?;
        let (converge, keep) = self.converge_runs()?;
        report["converge"] = converge;
        let result = self.watch_phases(&keep);
        // The table first: deleting a large fleet's namespace takes minutes.
        if let Ok(watch) = &result {
            report["watch"] = watch.clone();
            super::report::print_table(&report);
        }
        self.delete_namespaces(&[keep])?;
        report["watch"] = result?;
        Ok(report)
    }

    /// Phase 5: local work only, no cluster.
    fn validate_render(&self) -> Result<Value> {
        let mut validate = Runs::default();
        let mut render = Runs::default();
        for _ in 0..self.options.repeat {
            wait_for_quiet("validate")?;
            let log = self.logs.join("validate.log");
            let mut wrapped = self.berth_measured(
                &["validate"],
                None,
                self.logs.join("validate.peak-rss.json"),
            );
            wrapped
                .command()
                .arg(&self.apps)
                .stdout(Stdio::null())
                .stderr(fs::File::create(&log)?);
            validate.push(&succeeded("validate", wrapped, &log)?);
            let log = self.logs.join("render.log");
            let mut wrapped =
                self.berth_measured(&["render"], None, self.logs.join("render.peak-rss.json"));
            wrapped
                .command()
                .arg(&self.apps)
                .stdout(fs::File::create(self.logs.join("render.yaml"))?)
                .stderr(fs::File::create(&log)?);
            wait_for_quiet("render")?;
            render.push(&succeeded("render", wrapped, &log)?);
        }
        println!(
            "validate {:.2}s, peak RSS {:.1} MiB; render {:.2}s, peak RSS {:.1} MiB (medians of {})",
            median(&validate.seconds),
            median(&validate.peak_rss_mib),
            median(&render.seconds),
            median(&render.peak_rss_mib),
            validate.seconds.len()
        );
        let mut report = json!({});
        validate.report_into("validate", &mut report);
        render.report_into("render", &mut report);
        Ok(report)
    }

    /// `berth diff` against a fresh namespace with nothing live in it, once per run: the plan is
    /// as large as a first apply's, every object a create, and nothing is written.
    fn diff_cold(&self) -> Result<Value> {
        let mut cold = Runs::default();
        for run in 0..self.options.repeat {
            let ns = format!("bench-diff-{run}");
            self.create_namespace(&ns)?;
            let result = self.diff_once(&ns);
            self.delete_namespaces(std::slice::from_ref(&ns))?;
            let finished = result?;
            println!(
                "run {run}: diff cold {:>7.2}s, peak RSS {:.1} MiB",
                finished.seconds,
                finished.peak_rss_mib()
            );
            cold.push(&finished);
        }
        let mut report = json!({});
        cold.report_into("cold", &mut report);
        Ok(report)
    }

    /// One measured `berth diff` against `ns`; the diff it shows is kept in the logs.
    fn diff_once(&self, ns: &str) -> Result<Finished> {
        let log = self.logs.join(format!("diff-{ns}.log"));
        let mut wrapped = self.berth_measured(
            &["diff"],
            Some(ns),
            self.logs.join(format!("diff-{ns}.peak-rss.json")),
        );
        wrapped
            .command()
            .arg(&self.apps)
            .stdout(fs::File::create(self.logs.join(format!("diff-{ns}.txt")))?)
            .stderr(fs::File::create(&log)?);
        wait_for_quiet("diff")?;
        let finished = wrapped
            .run()
            .with_context(|| format!("running berth diff; its errors are in {}", log.display()))?;
        if finished.status.code() != Some(DIFF_CHANGES_PENDING) {
            bail!(
                "berth diff against {ns} gave {}, not {DIFF_CHANGES_PENDING} (changes pending); \
                 its errors are in {}:\n{}",
                finished.status,
                log.display(),
                crate::process::tail(&log, 20)
            );
        }
        Ok(finished)
    }

    /// Phases 1 and 2. Returns the report and the namespace of the last berth run, kept (and
    /// converged) for the watch phases.
    fn converge_runs(&self) -> Result<(Value, String)> {
        let mut runs = Vec::new();
        let mut floors = Vec::new();
        let mut keep = None;
        for run in 0..self.options.repeat {
            let order: &[Tool] = match (self.kubectl, run % 2 == 0) {
                (false, _) => &[Tool::Berth],
                (true, true) => &[Tool::Berth, Tool::Kubectl],
                (true, false) => &[Tool::Kubectl, Tool::Berth],
            };
            let ns_of = |tool: Tool| format!("bench-{}-{run}", tool.name());
            let mut cold = BTreeMap::new();
            for &tool in order {
                let ns = ns_of(tool);
                self.create_namespace(&ns)?;
                let measured = self.converge_once(tool, &ns, "cold")?;
                println!(
                    "run {run}: cold  {:<7} {:>7.2}s {:>7.1} MiB  {}; cluster-wide writes {} + \
                     dry-runs {}",
                    tool.name(),
                    measured.seconds,
                    measured.peak_rss_mib.unwrap_or(f64::NAN),
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
            floors.push(self.floor_curve(run)?);
            let mut noop = BTreeMap::new();
            for &tool in order {
                let measured = self.converge_once(tool, &ns_of(tool), "noop")?;
                println!(
                    "run {run}: no-op {:<7} {:>7.2}s {:>7.1} MiB  {}; cluster-wide writes {} + \
                     dry-runs {}",
                    tool.name(),
                    measured.seconds,
                    measured.peak_rss_mib.unwrap_or(f64::NAN),
                    requests_line(&measured.requests),
                    measured.writes_cluster_wide.0,
                    measured.writes_cluster_wide.1
                );
                noop.insert(tool.name(), measured);
            }
            runs.push((cold, noop));
            let mut delete = if self.kubectl {
                vec![ns_of(Tool::Kubectl)]
            } else {
                Vec::new()
            };
            if run + 1 == self.options.repeat {
                keep = Some(ns_of(Tool::Berth));
            } else {
                delete.push(ns_of(Tool::Berth));
            }
            self.delete_namespaces(&delete)?;
        }
        // One figure of one tool's cold or no-op runs, every run of it (none without kubectl).
        let pick = |cold: bool, tool: Tool, figure: fn(&Measured) -> Option<f64>| -> Vec<f64> {
            runs.iter()
                .map(|(c, n)| {
                    let m = if cold { c } else { n };
                    m.get(tool.name()).and_then(figure)
                })
                .collect::<Option<Vec<f64>>>()
                .unwrap_or_default()
        };
        let seconds = |m: &Measured| Some(m.seconds);
        let peak_rss = |m: &Measured| m.peak_rss_mib;
        let quiet = |cold: bool, tool: Tool| -> Vec<Value> {
            runs.iter()
                .filter_map(|(c, n)| if cold { c } else { n }.get(tool.name()))
                .filter_map(|m| m.quiet.map(Quiet::to_json))
                .collect()
        };
        let summary = |cold: bool| {
            let (b, k) = (
                pick(cold, Tool::Berth, seconds),
                pick(cold, Tool::Kubectl, seconds),
            );
            let (b_rss, k_rss) = (
                pick(cold, Tool::Berth, peak_rss),
                pick(cold, Tool::Kubectl, peak_rss),
            );
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
            json!({
                "berth_s": median(&b), "kubectl_s": median(&k),
                "ratio": median(&k) / median(&b),
                "berth_runs_s": b, "kubectl_runs_s": k,
                "berth_peak_rss_mib": median(&b_rss), "kubectl_peak_rss_mib": median(&k_rss),
                "berth_runs_peak_rss_mib": b_rss, "kubectl_runs_peak_rss_mib": k_rss,
                "berth_runs_quiet": quiet(cold, Tool::Berth),
                "kubectl_runs_quiet": quiet(cold, Tool::Kubectl),
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
        let mut report = json!({"cold": summary(true), "noop": summary(false)});
        report["floor"] = super::floor::summary(
            &floors,
            self.size * 3,
            median(&pick(true, Tool::Berth, seconds)),
        );
        let keep = keep.context("no berth run to keep for the watch phases")?;
        Ok((report, keep))
    }

    /// The very objects berth writes, rendered for `ns` as namespace and instance (rendering
    /// is not part of kubectl's time).
    pub(super) fn rendered(&self, ns: &str) -> Result<PathBuf> {
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

    /// One timed `berth apply --yes` or `kubectl apply --server-side` into `ns`.
    fn converge_once(&self, tool: Tool, ns: &str, what: &str) -> Result<Measured> {
        let log = self.logs.join(format!("{what}-{ns}.log"));
        let report = self.logs.join(format!("{what}-{ns}.peak-rss.json"));
        let mut wrapped = match tool {
            Tool::Berth => {
                let mut wrapped = self.berth_measured(&["apply", "--yes"], Some(ns), report);
                wrapped.command().arg(&self.apps);
                wrapped
            }
            Tool::Kubectl => {
                let mut wrapped = Wrapped::new("kubectl", report);
                wrapped
                    .command()
                    .env("KUBECONFIG", &self.kubeconfig)
                    .args(["apply", "--server-side", "-f"])
                    .arg(self.rendered(ns)?);
                wrapped
            }
        };
        let out = fs::File::create(&log)?;
        wrapped.command().stdout(out.try_clone()?).stderr(out);
        let quiet = wait_for_quiet(&format!("{what} {}", tool.name()))?;
        let before = self.request_counts()?;
        let finished = wrapped.run().with_context(|| {
            format!(
                "running {}; its output is in {}",
                tool.name(),
                log.display()
            )
        })?;
        let after = self.request_counts()?;
        if !finished.status.success() {
            bail!(
                "{} {what} into {ns} failed ({}); its output is in {}:\n{}",
                tool.name(),
                finished.status,
                log.display(),
                crate::process::tail(&log, 20)
            );
        }
        let mut measured = Measured::between(finished.seconds, &before, &after);
        measured.peak_rss_mib = Some(finished.peak_rss_mib());
        measured.quiet = Some(quiet);
        Ok(measured)
    }

    /// A berth command against the local cluster; `ns` is both the namespace of the specs and
    /// the instance name, so two runs never see each other's objects.
    fn berth_command(&self, args: &[&str], ns: Option<&str>) -> Command {
        let mut cmd = Command::new(&self.berth);
        self.berth_setup(&mut cmd, args, ns);
        cmd
    }

    /// The same berth command, timed and its peak RSS taken through `xtask peak-rss`, which
    /// writes to `report`.
    fn berth_measured(&self, args: &[&str], ns: Option<&str>, report: PathBuf) -> Wrapped {
        let mut wrapped = Wrapped::new(&self.berth, report);
        self.berth_setup(wrapped.command(), args, ns);
        wrapped
    }

    /// Environment, global flags and arguments of a berth command; `cmd` runs berth or starts it.
    fn berth_setup(&self, cmd: &mut Command, args: &[&str], ns: Option<&str>) {
        cmd.env("KUBECONFIG", &self.kubeconfig).env("NO_COLOR", "1");
        if let Some(ns) = ns {
            cmd.args(["--instance", ns, "--namespace", ns]);
        }
        cmd.args(args);
    }

    /// Phases 3 and 4 on the converged apps in `ns`.
    fn watch_phases(&self, ns: &str) -> Result<Value> {
        let port = free_port()?;
        let log = self.logs.join("watch.log");
        let out = fs::File::create(&log)?;
        let quiet = wait_for_quiet("berth watch")?;
        let at_start = self.request_counts()?.by_verb;
        let started = Instant::now();
        let mut child = self
            .berth_command(&["watch", "--log-format", "json"], Some(ns))
            .args(["--admin-addr", &format!("127.0.0.1:{port}")])
            .arg(&self.apps)
            // As the systemd units run it (systemd/berth.service): the daemon's memory is
            // measured as the bastion has it.
            .env("MALLOC_ARENA_MAX", "2")
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting berth watch")?;
        let result = self.watch_measure(&mut child, port, started, &at_start, ns);
        stop_child(&mut child);
        let mut report = result.with_context(|| format!("berth watch log: {}", log.display()))?;
        report["first_sync_quiet"] = quiet.to_json();
        Ok(report)
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
        let startup_requests = delta(at_start, &before.by_verb);
        println!(
            "watch: first full sync of {} apps in {ready_s:.2}s ({cpu_at_ready:.2} CPU s), \
             requests: {}",
            self.size,
            requests_line(&startup_requests)
        );

        // Phase 4: idle.
        let cpu_before = cpu_seconds(pid)?;
        std::thread::sleep(self.options.idle);
        let cpu_idle = cpu_seconds(pid)? - cpu_before;
        let idle_requests = delta(&before.by_verb, &self.request_counts()?.by_verb);
        let rss_idle = peak_rss_kib(pid)?;
        println!(
            "idle {}s: {cpu_idle:.2} CPU s, peak RSS {:.1} MiB, requests: {}",
            self.options.idle.as_secs(),
            rss_idle as f64 / 1024.0,
            requests_line(&idle_requests)
        );

        // Phase 3: edits.
        let edits = self.rt.block_on(self.edits(ns))?;
        let latencies: Vec<f64> = edits.iter().map(|e| e.latency.as_secs_f64()).collect();
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
        // The daemon's last lines are written by the time the bench has seen the last edit.
        std::thread::sleep(Duration::from_millis(200));
        let log = fs::read_to_string(self.logs.join("watch.log")).unwrap_or_default();
        let stages = breakdown(&log, &edits);
        Ok(json!({
            "edit_stages": stages,
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
    /// with the new pod annotation. Returns each edit with its latency.
    async fn edits(&self, ns: &str) -> Result<Vec<Edit>> {
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
        let mut timed = Vec::new();
        for edit in 0..self.options.edits {
            // Spread over the fleet; a prime stride visits different apps each time.
            let i = (edit * 7919 + 13) % self.size;
            let name = app_name(i);
            let value = format!("edit-{edit}");
            let tmp = self.apps.join(format!(".{name}.toml.tmp"));
            fs::write(&tmp, spec_text(i, self.options.replicas, &value))?;
            let renamed = SystemTime::now();
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
                Ok(true) => timed.push(Edit {
                    latency: started.elapsed(),
                    app: name,
                    renamed,
                }),
                Ok(false) => bail!("the StatefulSet watch ended during the edits"),
                Err(_) => bail!(
                    "edit {edit} of {name} was not visible after {}s",
                    EDIT_TIMEOUT.as_secs()
                ),
            }
        }
        Ok(timed)
    }
}

/// The edit marker in a StatefulSet's pod template: which edit the watch is looking at.
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

/// A loopback port nothing listens on, for `berth watch --admin-addr`.
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
