//! `cargo xtask test` and `cargo xtask demo`: the two commands the README opens with.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::cluster::{self, Layout};
use crate::process;

/// The one test command: lints, unit and CLI tests, then the integration tests against the real
/// local control plane (brought up if needed and stopped again if this run started it).
/// Extra arguments are passed to `cargo test` as a test-name filter.
pub fn test(root: &Path, filter: &[&str]) -> Result<()> {
    let started = Instant::now();
    cargo(root, &["fmt", "--all", "--check"], &[])
        .context("formatting differs; run `cargo fmt --all`")?;
    cargo(
        root,
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )?;
    let mut counts = TestCounts::default();
    let mut unit = vec!["test", "--workspace"];
    unit.extend(filter);
    cargo_test(root, &unit, &[], &mut counts).context("unit and CLI tests failed")?;

    let we_started = cluster::up(root)?;
    let layout = Layout::new(root);
    // Tests that need the cluster are #[ignore]d, so a plain `cargo test` never fails for lack
    // of one; here they run against the real control plane.
    let mut integration = vec!["test", "--workspace"];
    integration.extend(filter);
    integration.extend(["--", "--ignored"]);
    let seed = kill_seed();
    let result = cluster_tests(
        root,
        &layout,
        &integration,
        &[(KILL_SEED_ENV, seed.as_ref())],
        &mut counts,
    );
    finish_clusters(root, &layout, we_started, result.is_err())?;
    result.context("integration tests against the local control plane failed")?;
    println!(
        "xtask test: all stages passed in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    // One closing line for both stages: the unit stage's cluster tests are ignored there and
    // run in the second stage, so they count once, as passed.
    println!(
        "summary: {} passed, {} failed",
        counts.passed, counts.failed
    );
    Ok(())
}

/// The safety suite's cluster tests (faults, crashes, network, load), `rounds` times over, with
/// `BERTH_SOAK=1` so the tests that have a longer variant run it. Each round is a fresh
/// `cargo test` on the same control plane; a failing round stops the soak.
pub fn soak(root: &Path, args: &[&str]) -> Result<()> {
    let rounds: u32 = match args {
        [] => 3,
        ["--rounds", n] => n
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .with_context(|| format!("--rounds needs a positive number, not `{n}`"))?,
        _ => bail!("usage: cargo xtask soak [--rounds N]"),
    };
    let started = Instant::now();
    let we_started = cluster::up(root)?;
    let layout = Layout::new(root);
    let mut counts = TestCounts::default();
    let mut result = Ok(());
    for round in 1..=rounds {
        println!("soak: round {round} of {rounds}");
        let seed = kill_seed();
        result = cluster_tests(
            root,
            &layout,
            &[
                "test",
                "--test",
                "cluster_faults",
                "--test",
                "cluster_crash",
                "--test",
                "cluster_network",
                "--test",
                "cluster_load",
                "--",
                "--ignored",
            ],
            &[("BERTH_SOAK", "1".as_ref()), (KILL_SEED_ENV, seed.as_ref())],
            &mut counts,
        );
        if result.is_err() {
            break;
        }
    }
    finish_clusters(root, &layout, we_started, result.is_err())?;
    result.context("a soak round failed")?;
    println!(
        "xtask soak: {rounds} round(s) in {:.0}s; summary: {} passed, {} failed",
        started.elapsed().as_secs_f64(),
        counts.passed,
        counts.failed
    );
    Ok(())
}

/// The environment variable that seeds the point at which the fault tests kill the API server
/// in the middle of an apply (tests/cluster_faults.rs).
const KILL_SEED_ENV: &str = "BERTH_KILL_SEED";

/// A seed for the fault tests' kill point: the one given in BERTH_KILL_SEED (to rerun a failure
/// at the same point), else a new one. Printed, so that any run can be repeated.
fn kill_seed() -> String {
    let seed = std::env::var(KILL_SEED_ENV).unwrap_or_else(|_| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default()
            .to_string()
    });
    println!("fault tests: kill point seed {seed} (rerun with {KILL_SEED_ENV}={seed})");
    seed
}

/// `cargo test` against the running control plane: the tests find the cluster in KUBECONFIG,
/// run berth as the restricted user of BERTH_TEST_KUBECONFIG, and bring up the fault tests'
/// own instance (`--name faults`), and stop and start its components, through this binary
/// (BERTH_XTASK).
fn cluster_tests(
    root: &Path,
    layout: &Layout,
    args: &[&str],
    extra_env: &[(&str, &std::ffi::OsStr)],
    counts: &mut TestCounts,
) -> Result<()> {
    let xtask = std::env::current_exe().context("locating the xtask binary")?;
    let mut env = vec![
        ("KUBECONFIG", layout.kubeconfig.as_os_str()),
        ("BERTH_TEST_KUBECONFIG", layout.berth_kubeconfig.as_os_str()),
        ("BERTH_XTASK", xtask.as_os_str()),
    ];
    env.extend_from_slice(extra_env);
    cargo_test(root, args, &env, counts)
}

/// After the cluster tests: on failure the tails of the components' logs, then the fault
/// instance goes down (the tests start it on demand), and the default one if this run started
/// it.
fn finish_clusters(root: &Path, layout: &Layout, we_started: bool, failed: bool) -> Result<()> {
    let faults = Layout::named(root, "faults")?;
    if failed {
        let default_logs = [
            "kube-apiserver",
            "kube-controller-manager",
            "kwok",
            "provisioner",
            "oidc-issuer",
        ]
        .map(|name| layout.logs.join(format!("{name}.log")));
        let fault_logs =
            ["etcd", "kube-apiserver"].map(|name| faults.logs.join(format!("{name}.log")));
        for log in default_logs
            .iter()
            .chain(&fault_logs)
            .filter(|l| l.exists())
        {
            eprintln!(
                "--- last lines of {}:\n{}",
                log.display(),
                process::tail(log, 15)
            );
        }
    }
    if faults.dir.exists() {
        cluster::down_instance(&faults)?;
    }
    if we_started {
        cluster::down(root)?;
    }
    Ok(())
}

/// Totals over every `test result:` line cargo test printed.
#[derive(Debug, Default)]
struct TestCounts {
    passed: u64,
    failed: u64,
}

impl TestCounts {
    /// Reads `test result: ok. 8 passed; 0 failed; 1 ignored; …`.
    fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(';') {
            let words: Vec<&str> = part.split_whitespace().collect();
            if let [.., number, what] = words.as_slice()
                && let Ok(n) = number.parse::<u64>()
            {
                match *what {
                    "passed" => self.passed += n,
                    "failed" => self.failed += n,
                    _ => {}
                }
            }
        }
    }
}

/// `cargo test`, its output passed through while the result lines are counted.
fn cargo_test(
    root: &Path,
    args: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
    counts: &mut TestCounts,
) -> Result<()> {
    use std::io::{BufRead, BufReader};
    // The cluster tests kill berth at named steps through a hook that only test builds have;
    // both stages build with it so the second reuses the first's build.
    let args: Vec<&str> = match args.split_first() {
        Some((&"test", rest)) => [&["test", "--features", "berth/crash-points"][..], rest].concat(),
        _ => args.to_vec(),
    };
    eprintln!("+ cargo {}", args.join(" "));
    let mut child = cargo_command(root)
        .args(&args)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("running cargo")?;
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let line = line?;
            counts.add_line(&line);
            println!("{line}");
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// The main job on a fresh machine: control plane up, then `berth watch` on the example apps
/// against it. The daemon watches a copy of config/apps (target/demo/apps) so that the demo's own
/// edit, made a few seconds after the first sync to show berth reacting, never touches the
/// checkout.
pub fn demo(root: &Path) -> Result<()> {
    cluster::up(root)?;
    let layout = Layout::new(root);
    create_example_namespaces(root, &layout)?;
    cargo(root, &["build", "--workspace"], &[])?;
    let berth = root.join("target").join("debug").join("berth");
    let apps = root.join("target").join("demo").join("apps");
    let _ = std::fs::remove_dir_all(&apps);
    std::fs::create_dir_all(&apps)?;
    for entry in std::fs::read_dir(root.join("config").join("apps"))? {
        let path = entry?.path();
        if let Some(name) = path.file_name() {
            std::fs::copy(&path, apps.join(name))?;
        }
    }
    std::fs::copy(
        root.join("config").join("berth.schema.json"),
        apps.parent().unwrap_or(&apps).join("berth.schema.json"),
    )?;
    println!(
        "\nberth watches {} (a copy of config/apps). In about 10 seconds the demo edits \
         nginx.toml there (replicas 2 → 3) to show berth reacting; edit the files yourself too.\n\
         Metrics: curl localhost:9464/metrics. Ctrl-C stops berth; the cluster keeps running \
         (`cargo xtask cluster down` stops it).\n",
        apps.display()
    );
    let mut child = Command::new(&berth)
        .current_dir(root)
        .env("KUBECONFIG", &layout.kubeconfig)
        .args([
            "--config",
            "config/berth.toml",
            "watch",
            "--log-format",
            "human",
        ])
        .arg(&apps)
        .spawn()
        .with_context(|| format!("running {}", berth.display()))?;
    let nginx = apps.join("nginx.toml");
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        if child.try_wait()?.is_some() {
            break;
        }
    }
    if child.try_wait()?.is_none()
        && let Ok(text) = std::fs::read_to_string(&nginx)
    {
        let edited = text.replacen("replicas = 2", "replicas = 3", 1);
        let tmp = apps.join(".nginx.toml.tmp");
        std::fs::write(&tmp, edited)?;
        // An atomic save, as editors and git do it.
        std::fs::rename(&tmp, &nginx)?;
        println!("demo: edited {} (replicas 2 → 3)", nginx.display());
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("berth watch exited with {status}");
    }
    Ok(())
}

/// berth does not create namespaces (its role may not); the demo creates the ones the example
/// specs name, as a cluster admin would.
fn create_example_namespaces(root: &Path, layout: &Layout) -> Result<()> {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Api, PostParams};
    let mut names = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(root.join("config").join("apps"))? {
        let text = std::fs::read_to_string(entry?.path()).unwrap_or_default();
        for line in text.lines() {
            if let Some(value) = line.trim().strip_prefix("namespace") {
                let value = value.trim_start().trim_start_matches('=').trim();
                let name = value
                    .split('#')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .trim_matches('"');
                if !name.is_empty() {
                    names.insert(name.to_string());
                }
            }
        }
    }
    crate::kube_client::block_on(async {
        let client = crate::kube_client::client(&layout.kubeconfig).await?;
        let api: Api<Namespace> = Api::all(client);
        for name in &names {
            let ns: Namespace =
                serde_json::from_value(serde_json::json!({"metadata": {"name": name}}))?;
            match api.create(&PostParams::default(), &ns).await {
                Ok(_) => println!("created namespace {name} for the example apps"),
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        anyhow::Ok(())
    })?
}

/// A `cargo` command for the workspace, without the variables `cargo run` set for xtask itself:
/// build scripts (ring's, for one) rerun when those change, which would rebuild them for every
/// nested call.
pub(crate) fn cargo_command(root: &Path) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_")
            || matches!(
                key.as_ref(),
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "OUT_DIR"
            )
        {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd
}

fn cargo(root: &Path, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Result<()> {
    eprintln!("+ cargo {}", args.join(" "));
    let status = cargo_command(root)
        .args(args)
        .envs(env.iter().copied())
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::TestCounts;

    #[test]
    fn result_lines_are_summed() {
        let mut c = TestCounts::default();
        c.add_line("test result: ok. 8 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 1.0s");
        c.add_line(
            "test result: FAILED. 2 passed; 3 failed; 0 ignored; 0 measured; 0 filtered out",
        );
        c.add_line("running 3 tests");
        assert_eq!((c.passed, c.failed), (10, 3));
    }
}
