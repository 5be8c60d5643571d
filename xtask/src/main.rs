//! Project automation for berth (the cargo-xtask pattern): `cargo xtask <task>`.
//!
//! Layout:
//! - [`gobuild`]: builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok from
//!   the wrapper Go modules in tools/, cached outside the repo keyed by version.
//! - [`kwok_stages`]: the kwok stages the cluster runs with, and the slow pod profile.
//! - [`cluster`]: starts, stops and reports a real local control plane on loopback.
//! - [`provisioner`]: the storage side of that cluster (what a cloud's CSI driver does).
//! - [`oidc_issuer`]: that cluster's OpenID Connect issuer (what a company's identity provider
//!   does), for the `oidc` login.
//! - [`pki`]: that cluster's certificates, static token and kubeconfigs.
//! - [`tasks`]: `test` and `demo`, built on the two above.
//! - [`man`]: `man`, man pages generated from berth's CLI definition.
//! - [`bench`]: `bench`, berth against kubectl at fleet scale on the local control plane.

mod bench;
mod cluster;
mod gobuild;
mod kube_client;
mod kwok_stages;
mod man;
mod oidc_issuer;
mod pki;
mod process;
mod provisioner;
mod tasks;

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  cluster up       start a local control plane (etcd, OIDC issuer, kube-apiserver,
                   kube-controller-manager, kube-scheduler, kwok, storage provisioner); reuses a
                   running one
  cluster down     stop what `cluster up` started and remove its state
  cluster status   say what runs
  cluster stop-component COMPONENT [--kill]     stop one component (SIGTERM, or SIGKILL)
  cluster start-component COMPONENT             start it again and wait until it serves
                   every `cluster` task takes `--name faults` for the fault tests' own instance
                   (target/cluster-faults, ports + 1000)
  build-bins       only build (or find in the cache) the control-plane binaries
  test             the one test command: lints, unit tests, control plane, integration tests
  demo             control plane up, then `berth watch config/apps` against it
  soak [--rounds N]
                   the safety suite's fault, crash, network and load tests N times (default 3),
                   with their longer variants (BERTH_SOAK=1)
  man              man pages from the CLI definition: target/man/berth.1 (+ one per subcommand)
  bench [--apps N | --scale N,N,...] [--edits M] [--repeat R] [--idle SECS] [--skip-kubectl] [--dev]
                   berth vs kubectl on the running control plane (default 1000 apps, 100 edits,
                   3 runs, 60 s idle, release build; kubectl only up to 1000 apps); tables on
                   stdout, target/bench/report.json
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["cluster", rest @ ..] => cluster_task(rest),
        ["build-bins"] => gobuild::ensure_binaries(&workspace_root()).map(|_| ()),
        ["test", rest @ ..] => tasks::test(&workspace_root(), rest),
        ["demo"] => tasks::demo(&workspace_root()),
        ["soak", rest @ ..] => tasks::soak(&workspace_root(), rest),
        ["man"] => man::man(&workspace_root()),
        ["bench", rest @ ..] => bench::bench(&workspace_root(), rest),
        // Started by `bench` around each measured command; not meant to be run by hand.
        ["peak-rss", rest @ ..] => bench::peak_rss::task(rest),
        // Started by `cluster up` as a background process; not meant to be run by hand.
        ["provisioner", kubeconfig] => provisioner::run(PathBuf::from(kubeconfig)),
        ["oidc-issuer", dir, port] => match port.parse() {
            Ok(port) => oidc_issuer::run(PathBuf::from(dir), port),
            Err(err) => Err(anyhow::anyhow!("oidc-issuer: port `{port}`: {err}")),
        },
        ["help" | "--help" | "-h"] | [] => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprint!("unknown task: {}\n\n{USAGE}", args.join(" "));
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `cluster …` with an optional `--name NAME` anywhere after it.
fn cluster_task(args: &[&str]) -> anyhow::Result<()> {
    let root = workspace_root();
    let mut name = "default";
    let mut kill = false;
    let mut rest = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match *arg {
            "--name" => {
                name = iter
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--name needs an instance name"))?
            }
            "--kill" => kill = true,
            other => rest.push(other),
        }
    }
    let layout = cluster::Layout::named(&root, name)?;
    match rest.as_slice() {
        ["up"] => cluster::up_instance(&root, &layout).map(|_| ()),
        ["down"] => cluster::down_instance(&layout),
        ["status"] => cluster::status(&layout),
        ["stop-component", component] => cluster::stop_component(&layout, component, kill),
        ["start-component", component] => cluster::start_component(&root, &layout, component),
        _ => anyhow::bail!("unknown cluster task: {}\n\n{USAGE}", args.join(" ")),
    }
}

/// The repository root: xtask lives one level below it.
fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}
