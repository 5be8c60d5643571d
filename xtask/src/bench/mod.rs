//! `cargo xtask bench`: berth against kubectl on the local control plane, at fleet scale.
//!
//! It generates N app specs of a realistic shape into target/bench/apps, builds berth, and
//! measures, printing a table and writing target/bench/report.json:
//! 1. cold converge: `berth apply --yes` of N new apps vs `kubectl apply --server-side -f` of the
//!    very same objects (`berth render` output), each into a fresh namespace, alternating which
//!    goes first; an "API floor" (the same server-side applies from a minimal client, nothing
//!    else) runs last as a reference;
//! 2. no-op converge: the same two commands again, with the requests each sent;
//! 3. edit latency of `berth watch` with N apps loaded: atomic rename of a spec → the changed
//!    StatefulSet seen through a watch;
//! 4. idle cost of `berth watch`: requests, CPU seconds and peak RSS over a quiet minute;
//! 5. `berth validate` and `berth render` time, and a cold `berth diff` (into a namespace with
//!    nothing live).
//!
//! Every one-shot command (apply, diff, render, validate) is also measured for its peak RSS,
//! taken by the kernel when it is reaped ([`peak_rss`]).
//!
//! How requests are counted: the measured commands run as their own ServiceAccount, and one
//! FlowSchema per verb classifies what it sends, so the API server's priority-and-fairness
//! counters give exactly the requests of the measured command however busy the cluster is.
//! `apiserver_request_total` adds the one thing those counters cannot tell, real writes from
//! dry-runs, cluster-wide and so approximate. docs/benchmarks.md has the method and the figures.
//!
//! Every namespace it creates carries [`BENCH_LABEL`]; they are deleted after each phase (and
//! leftovers of an interrupted run at the start), together with the PersistentVolumes their
//! claims left behind, so the shared cluster stays usable.
//!
//! Layout:
//! - this file: the command line, the generated specs, and the run from build to report;
//! - [`phases`]: the measured phases, in the order they run;
//! - [`requests`]: the measured commands' identity and the request counters read around them;
//! - [`namespaces`]: the bench's namespaces, from creation to deletion with their volumes;
//! - [`peak_rss`]: a one-shot command's exit status, time and peak RSS, through `xtask peak-rss`;
//! - [`procfs`]: CPU time, resident set and machine facts read from /proc;
//! - [`quiet`]: waiting for a quiet machine before a CPU-bound phase;
//! - [`report`]: the machine description, the table on stdout and target/bench/report.json.

mod floor;
mod namespaces;
pub mod peak_rss;
mod phases;
mod procfs;
mod quiet;
mod report;
mod requests;
mod scale;
mod stages;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::cluster::{self, Layout};
use crate::kube_client;

const USAGE: &str = "usage: cargo xtask bench [--apps N | --scale N,N,...] [--edits M] [--repeat R] \
                     [--idle SECS] [--replicas K] [--skip-kubectl] [--kubectl-up-to N] \
                     [--dev | --bin PATH]";
/// Above this many apps a `--scale` run leaves kubectl out unless told otherwise: it applies
/// one object at a time, ~25 minutes per run at 10,000 apps, and its ratio is already known
/// from the smaller sizes.
const KUBECTL_UP_TO: usize = 1000;
/// Label on every namespace the bench creates: how leftovers of an interrupted run are found.
const BENCH_LABEL: &str = "berth.dev/bench";
/// The pod annotation an edit changes; it lands in the StatefulSet's pod template.
const EDIT_ANNOTATION: &str = "bench.berth.dev/edit";
/// How long the cluster may take to run every app's pod before a run gives up.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(900);

/// The command line, validated.
struct Options {
    /// The fleet sizes measured, one after the other (`--apps N` is one size, `--scale` many);
    /// the growth between consecutive sizes is printed at the end.
    sizes: Vec<usize>,
    /// Edits timed in the watch phase, one at a time.
    edits: usize,
    /// Runs of the converge phases and of validate/render; the table shows medians.
    repeat: usize,
    /// How long `berth watch` is left alone for the idle figures.
    idle: Duration,
    /// Replicas per app. 0 by default: berth and kubectl send the same requests whatever the
    /// count, while the local cluster starts only about 1.5 pods a second (each waits for its
    /// volume), so 1000 pods would take ten minutes per run and keep the machine busy.
    replicas: usize,
    /// Build and measure the dev profile instead of the release profile (what users run).
    dev: bool,
    /// Never run kubectl (the berth figures alone, much sooner).
    skip_kubectl: bool,
    /// Sizes above this run without kubectl.
    kubectl_up_to: usize,
    /// Measure this berth binary instead of building one (to compare two builds).
    bin: Option<PathBuf>,
}

impl Options {
    fn parse(args: &[&str]) -> Result<Options> {
        let mut options = Options {
            sizes: vec![1000],
            edits: 100,
            repeat: 3,
            idle: Duration::from_secs(60),
            replicas: 0,
            dev: false,
            skip_kubectl: false,
            kubectl_up_to: KUBECTL_UP_TO,
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
                "--apps" => options.sizes = vec![number("--apps")?],
                "--scale" => {
                    let list = rest.next().with_context(|| {
                        format!("--scale needs sizes, as 100,1000,10000\n{USAGE}")
                    })?;
                    options.sizes = list
                        .split(',')
                        .map(|n| {
                            n.trim().parse().with_context(|| {
                                format!("--scale {list}: {n} is not a number\n{USAGE}")
                            })
                        })
                        .collect::<Result<_>>()?;
                }
                "--skip-kubectl" => options.skip_kubectl = true,
                "--kubectl-up-to" => options.kubectl_up_to = number("--kubectl-up-to")?,
                "--edits" => options.edits = number("--edits")?,
                "--repeat" => options.repeat = number("--repeat")?,
                "--idle" => options.idle = Duration::from_secs(number("--idle")? as u64),
                "--replicas" => options.replicas = number("--replicas")?,
                "--dev" => options.dev = true,
                // The default; still accepted so that older command lines keep working.
                "--release" => options.dev = false,
                "--bin" => {
                    let path = rest
                        .next()
                        .with_context(|| format!("--bin needs a path\n{USAGE}"))?;
                    options.bin = Some(PathBuf::from(path));
                }
                other => bail!("unknown bench argument {other}\n{USAGE}"),
            }
        }
        if options.sizes.contains(&0) || options.repeat == 0 {
            bail!("every size (--apps, --scale) and --repeat must be at least 1\n{USAGE}");
        }
        Ok(options)
    }

    /// Whether kubectl runs at this size.
    fn kubectl_at(&self, size: usize) -> bool {
        !self.skip_kubectl && size <= self.kubectl_up_to
    }

    /// The profile measured, as the report names it.
    fn profile(&self) -> String {
        match (&self.bin, self.dev) {
            (Some(bin), _) => bin.display().to_string(),
            (None, true) => "debug".to_string(),
            (None, false) => "release".to_string(),
        }
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
        None => build(root, !options.dev)?,
    };
    let work = root.join("target").join("bench");
    // The identity's kubeconfig is written here before anything else (with --bin, no build has
    // made the directory).
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
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
        apps: work.join("apps"),
        logs: work.join("logs"),
        size: 0,
        kubectl: false,
        options,
    };
    bench.cleanup_leftovers()?;
    let machine = bench.machine()?;
    let result = bench.create_identity().and_then(|()| {
        let sizes = bench.options.sizes.clone();
        let mut reports = Vec::new();
        for size in sizes {
            reports.push(bench.run_size(size, &work)?);
        }
        Ok(reports)
    });
    // Whatever happened, leave no bench namespace behind.
    let cleanup = bench.cleanup_leftovers();
    let reports = result?;
    cleanup?;
    report::publish(machine, reports, &work.join("report.json"))
}

impl Bench {
    /// Every phase at one fleet size, with that size's specs generated afresh. Each size's
    /// logs are kept in target/bench/logs/N.
    fn run_size(&mut self, size: usize, work: &Path) -> Result<serde_json::Value> {
        self.size = size;
        self.kubectl = self.options.kubectl_at(size);
        self.logs = work.join("logs").join(size.to_string());
        // Nothing of an earlier run may be reused (the rendered objects depend on N).
        let _ = fs::remove_dir_all(&self.apps);
        let _ = fs::remove_dir_all(&self.logs);
        fs::create_dir_all(&self.apps)?;
        fs::create_dir_all(&self.logs)?;
        for i in 0..size {
            fs::write(
                self.apps.join(format!("{}.toml", app_name(i))),
                spec_text(i, self.options.replicas, "0"),
            )?;
        }
        println!(
            "\nbench: {size} apps in {}, {} run(s) each{}",
            self.apps.display(),
            self.options.repeat,
            if self.kubectl {
                ""
            } else {
                ", without kubectl"
            }
        );
        self.run_all()
    }
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
    // A private copy: other builds in this workspace (a test run, say) may replace
    // target/<profile>/berth while the bench runs.
    let copy = root.join("target").join("bench").join("berth");
    fs::create_dir_all(root.join("target").join("bench"))?;
    fs::copy(root.join("target").join(profile).join("berth"), &copy)
        .context("copying the berth binary")?;
    Ok(copy)
}

fn app_name(i: usize) -> String {
    format!("app-{i:05}")
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
    /// The harness is synchronous (it times child processes); kube calls block on this runtime.
    rt: tokio::runtime::Runtime,
    /// The harness's own client, as admin: namespaces, metrics, the edit watch.
    client: kube::Client,
    /// The berth binary measured: a private copy of the build, or `--bin`.
    berth: PathBuf,
    /// The harness's admin kubeconfig (the local control plane's), for kubectl calls of its own.
    admin_kubeconfig: PathBuf,
    /// [`requests::IDENTITY`]'s token: what the measured commands use.
    kubeconfig: PathBuf,
    /// The generated specs (target/bench/apps), which the edit phase rewrites.
    apps: PathBuf,
    /// Every measured command's output, rendered objects and the watch log (target/bench/logs).
    logs: PathBuf,
    /// The fleet size being measured.
    size: usize,
    /// Whether kubectl runs at this size.
    kubectl: bool,
    options: Options,
}
