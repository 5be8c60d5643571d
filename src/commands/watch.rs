//! `berth watch [DIR]`: the daemon. Process-level concerns — logging set-up, signals, the
//! config file for SIGHUP — around [`crate::daemon::run`].

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::{ConfigSource, Exit, runtime};
use crate::cluster::Cluster;
use crate::config::Config;
use crate::daemon::{self, Control, DaemonOptions};

#[derive(Debug, Clone, clap::Args)]
pub struct WatchArgs {
    /// The spec directory (default: `dir` from the config file).
    dir: Option<PathBuf>,
    /// Watch and report plans and diffs, never write.
    #[arg(long)]
    dry_run: bool,
    /// Address for /healthz, /readyz and /metrics (default: `admin_addr` from the config).
    #[arg(long, value_name = "HOST:PORT")]
    admin_addr: Option<SocketAddr>,
    /// Log format: `human` (default on a terminal) or `json` (for journald and log shippers).
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// How many apps are converged at the same time.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Allow recreating StatefulSets for immutable changes, for every app.
    #[arg(long)]
    allow_recreate: bool,
    /// Take part in leader election over a Lease (settings in `[leader_election]` of the
    /// config), so that of several berth daemons exactly one writes.
    #[arg(long)]
    leader_elect: bool,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    // No doc comments on the variants: clap would list them in `--help` and change its text.
    Human,
    Json,
}

/// Sets up tracing: human-readable on a terminal, JSON otherwise or when asked; RUST_LOG filters.
fn init_logging(format: Option<LogFormat>) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        Some(format) => format == LogFormat::Json,
        None => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .try_init()
    };
    // A subscriber set twice (tests) is not an error worth failing for.
    let _ = result;
}

/// Runs the daemon until SIGTERM or SIGINT; `source` is where SIGHUP re-reads the config.
pub(crate) fn exec(
    args: &WatchArgs,
    config: Config,
    source: ConfigSource,
    context: Option<&str>,
) -> anyhow::Result<Exit> {
    init_logging(args.log_format);
    let Some(dir) = daemon::resolve_dir(args.dir.as_deref(), &config) else {
        error!("no spec directory: give one (`berth watch DIR`) or set `dir` in the config file");
        return Ok(Exit::Error);
    };
    let options = DaemonOptions {
        dir,
        dry_run: args.dry_run,
        admin_addr: args.admin_addr.unwrap_or(config.admin_addr),
        concurrency: args.concurrency,
        allow_recreate: args.allow_recreate,
        leader_elect: args.leader_elect,
    };
    let context = context
        .map(str::to_string)
        .or_else(|| config.context.clone());
    runtime()?.block_on(async move {
        let cluster = Cluster::connect(context.as_deref(), &config).await?;
        let shutdown = CancellationToken::new();
        let (control_tx, control_rx) = mpsc::channel(4);
        let signals = tokio::spawn(handle_signals(shutdown.clone(), control_tx, source));
        info!(dir = %options.dir.display(), instance = %config.instance, dry_run = options.dry_run, "berth watch starting");
        let result = daemon::run(config, cluster, options, control_rx, shutdown.clone()).await;
        shutdown.cancel();
        signals.abort();
        result
    })?;
    Ok(Exit::Ok)
}

/// SIGTERM or SIGINT: finish the step in flight and stop (a second one exits at once).
/// SIGHUP: re-read the config file and hand it to the daemon.
async fn handle_signals(
    shutdown: CancellationToken,
    control: mpsc::Sender<Control>,
    source: ConfigSource,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        warn!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            _ = hup.recv() => {
                match source.reload() {
                    Ok(Some(config)) => {
                        let _ = control.send(Control::Reload(Box::new(config))).await;
                    }
                    Ok(None) => info!("SIGHUP: no config file to reload"),
                    Err(problems) => {
                        error!(problems = %problems, "config reload refused; keeping the running config");
                    }
                }
                continue;
            }
        }
        if shutdown.is_cancelled() {
            warn!("second signal: exiting now");
            std::process::exit(130);
        }
        info!("signal received: finishing the step in flight, then stopping");
        shutdown.cancel();
    }
}
