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
//! 5. `berth validate` and `berth render` time.
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
//! - [`procfs`]: CPU time, resident set and machine facts read from /proc;
//! - [`report`]: the machine description, the table on stdout and target/bench/report.json.

mod namespaces;
mod phases;
mod procfs;
mod report;
mod requests;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::cluster::{self, Layout};
use crate::kube_client;

const USAGE: &str = "usage: cargo xtask bench [--apps N] [--edits M] [--repeat R] [--idle SECS] \
                     [--replicas K] [--release | --bin PATH]";
/// Label on every namespace the bench creates: how leftovers of an interrupted run are found.
const BENCH_LABEL: &str = "berth.dev/bench";
/// The pod annotation an edit changes; it lands in the StatefulSet's pod template.
const EDIT_ANNOTATION: &str = "bench.berth.dev/edit";
/// How long the cluster may take to run every app's pod before a run gives up.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(900);

/// The command line, validated.
struct Options {
    /// Apps generated and converged: the fleet size every figure is for.
    apps: usize,
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
    report::publish(&report, &work.join("report.json"))
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
    options: Options,
}
