//! The commands, one file each: its arguments (clap) and an `exec` that returns how the command
//! ends, an [`Exit`]. What they share lives here: the exit codes and the one place that turns a
//! command's outcome into one ([`exit_code`]), stdout that a closed pipe does not break
//! ([`print`]), the tokio runtime, the config with the command-line overrides, `--output`.
//!
//! - [`validate`], [`render`], [`schema`], [`completions`], [`rbac`]: need no cluster.
//! - [`diff`], [`apply`]: plan the spec directory against the cluster; apply carries it out.
//! - [`status`]: one line per app; [`import`]: live objects → specs; [`watch`]: the daemon.
//! - [`suspend`]: `berth suspend` / `berth resume`, the incident hold on one app.

pub mod apply;
pub mod completions;
pub mod diff;
pub mod import;
pub mod rbac;
pub mod render;
pub mod schema;
pub mod status;
pub mod suspend;
pub mod validate;
pub mod watch;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Config;
use crate::output::{error_chain, is_reader_gone, is_transport_error};
use crate::spec::{Diagnostic, use_color};

/// How a command ends: the exit codes are a contract (kubectl diff's convention, plus 3 for a
/// destructive change), and [`Exit::code`] is the only place that numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done; for diff: in sync; for status: every app in sync and ready.
    Ok,
    /// diff: changes pending; status: some app not in sync, not ready or still rolling out.
    ChangesPending,
    /// Something failed, a spec is broken, an app is blocked, or nothing was applied.
    Error,
    /// diff: a pending change is destructive.
    Destructive,
    /// apply --wait: an app is degraded, or not healthy when the timeout passed.
    Unhealthy,
}

impl Exit {
    pub const fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::ChangesPending => 1,
            Exit::Error => 2,
            Exit::Destructive => 3,
            Exit::Unhealthy => 4,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

/// The exit code of a command's outcome, and the error message when it failed. A reader of
/// stdout that went away ends the command quietly with the exit it had decided by then.
pub fn exit_code(outcome: anyhow::Result<Exit>, context: Option<&str>) -> ExitCode {
    let err = match outcome {
        Ok(exit) => return exit.into(),
        Err(err) => err,
    };
    if let Some(gone) = err.downcast_ref::<ReaderGone>() {
        return gone.exit.into();
    }
    // Like `{err:#}`, without the causes that repeat the one before them.
    eprintln!("error: {}", error_chain(err.as_ref()));
    if err.chain().any(is_transport_error) {
        eprintln!("{}", unreachable_hint(context));
    }
    Exit::Error.into()
}

/// The reader of stdout went away (`berth diff DIR | head -1`) after the command had decided
/// to end with `exit`. Its own type, so that only a write to stdout is taken for it: a
/// connection to the API server that breaks is a `BrokenPipe` too, deep in an error chain.
#[derive(Debug, thiserror::Error)]
#[error("the reader of stdout went away")]
struct ReaderGone {
    exit: Exit,
}

/// Writes a command's output to stdout. When the reader has gone away the command stops
/// there and ends with `exit`, quietly (see [`exit_code`]); any other failure is an error.
pub(crate) fn print(text: impl AsRef<[u8]>, exit: Exit) -> anyhow::Result<()> {
    crate::output::print(text.as_ref()).map_err(|err| {
        if is_reader_gone(&err) {
            anyhow::Error::new(ReaderGone { exit })
        } else {
            anyhow::Error::new(err)
        }
    })
}

/// The runtime of every command that talks to the cluster: two workers are plenty for one
/// command's requests.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// `--output` of diff and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum OutputFormat {
    // No doc comments on the variants: clap would list them in `--help` and change its text.
    Text,
    Json,
}

/// Where a command's config comes from: the config file (`--config`, BERTH_CONFIG) or the
/// defaults, with the command-line overrides. The daemon re-reads it the same way on SIGHUP.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConfigSource {
    pub(crate) path: Option<PathBuf>,
    pub(crate) namespace: Option<String>,
    pub(crate) instance: Option<String>,
}

impl ConfigSource {
    /// The config for a command; `None` after printing why when it is unusable.
    pub(crate) fn load(&self) -> Option<Config> {
        let mut config = match &self.path {
            Some(path) => match Config::load(path) {
                Ok(c) => c,
                Err(diags) => {
                    print_diagnostics(&diags);
                    eprintln!("error: the config file {} is invalid", path.display());
                    return None;
                }
            },
            None => Config::default(),
        };
        let overrides = [
            self.namespace
                .as_deref()
                .map(|ns| config.override_namespace(ns)),
            self.instance
                .as_deref()
                .map(|i| config.override_instance(i)),
        ];
        for result in overrides.into_iter().flatten() {
            if let Err(e) = result {
                eprintln!("error: {e}");
                return None;
            }
        }
        Some(config)
    }

    /// The config file again, for a running daemon: `None` when there is no file, the problems
    /// as text when it is unusable (the daemon logs them and keeps its config).
    fn reload(&self) -> Result<Option<Config>, String> {
        let Some(path) = &self.path else {
            return Ok(None);
        };
        let mut config = Config::load(path).map_err(|diags| {
            diags
                .iter()
                .map(|d| d.render(false))
                .collect::<Vec<_>>()
                .join("\n")
        })?;
        if let Some(ns) = &self.namespace {
            config.override_namespace(ns)?;
        }
        if let Some(instance) = &self.instance {
            config.override_instance(instance)?;
        }
        Ok(Some(config))
    }
}

fn print_diagnostics(diags: &[Diagnostic]) {
    let color = use_color();
    let mut err = std::io::stderr().lock();
    for d in diags {
        // A closed stderr is no reason to fail differently; the exit code still tells.
        let _ = writeln!(err, "{}", d.render(color));
    }
}

/// What to check when the API server did not answer, naming the server as kubectl does.
fn unreachable_hint(context: Option<&str>) -> String {
    match crate::cluster::api_server(context) {
        Some(server) => format!(
            "  = help: the API server at {server} did not answer; check that it is up and \
             reachable from here, and that the kubeconfig context is the one meant \
             (`kubectl cluster-info`)"
        ),
        None => "  = help: the API server did not answer; check that it is up and reachable \
                 from here (`kubectl cluster-info`)"
            .to_string(),
    }
}
