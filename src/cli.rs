//! The command line. Subcommands follow DESIGN.md; exit codes are a contract decided here.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::render::{RenderContext, render_app, render_yaml};
use crate::spec::{Diagnostic, LoadError, Loaded, load_dir, use_color};

/// Keep a Kubernetes cluster in step with a directory of TOML app specs.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about)]
pub struct Cli {
    /// Kubeconfig context to use (default: the current context, as kubectl finds it).
    #[arg(long, global = true, env = "BERTH_CONTEXT")]
    pub context: Option<String>,

    /// Daemon config file (default: none; built-in defaults apply).
    #[arg(long, global = true, env = "BERTH_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Namespace for specs that set none (overrides the config's `defaults.namespace`).
    #[arg(long, global = true, value_name = "NAME")]
    pub namespace: Option<String>,

    /// Name of this berth instance (overrides the config's `instance`).
    #[arg(long, global = true, value_name = "NAME")]
    pub instance: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check every spec in DIR; needs no cluster. Exit 0 when all are valid, 2 otherwise.
    Validate { dir: PathBuf },
    /// Print the Kubernetes objects for DIR as YAML that `kubectl apply -f -` accepts.
    Render { dir: PathBuf },
    /// Show what `apply` would change. Exit 0 in sync, 1 changes pending, 2 error, 3 destructive.
    Diff {
        dir: PathBuf,
        #[command(flatten)]
        flags: crate::converge::ConvergeFlags,
    },
    /// Converge the cluster to DIR once, after showing the plan.
    Apply {
        dir: PathBuf,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
        #[command(flatten)]
        flags: crate::converge::ConvergeFlags,
    },
    /// Run as a daemon: watch DIR and converge on every change.
    Watch(crate::daemon_cli::WatchArgs),
    /// One line per app: sync state, ready replicas, rollout, last commit and error. Exit 0 only
    /// when every app is in sync and ready, 1 otherwise, 2 on error.
    Status(crate::status::StatusArgs),
    /// Turn live StatefulSets and their Services into TOML specs (migrating to berth).
    Import(crate::import::ImportArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the JSON Schema (draft-07) of the app spec format.
    Schema,
}

/// Exit codes, shared by every subcommand (kubectl diff's convention, plus 3 for destructive).
pub mod exit {
    pub const OK: u8 = 0;
    pub const CHANGES_PENDING: u8 = 1;
    pub const ERROR: u8 = 2;
    pub const DESTRUCTIVE: u8 = 3;
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let context = cli.context.clone();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            // Like `{err:#}`, without the causes that repeat the one before them.
            eprintln!("error: {}", crate::cluster::error_chain(err.as_ref()));
            if err.chain().any(crate::cluster::is_transport_error) {
                eprintln!("{}", unreachable_hint(context.as_deref()));
            }
            ExitCode::from(exit::ERROR)
        }
    }
}

/// What to check when the API server did not answer, naming the server as kubectl does.
pub fn unreachable_hint(context: Option<&str>) -> String {
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

fn run(cli: Cli) -> anyhow::Result<u8> {
    match &cli.command {
        Command::Validate { dir } => {
            let Some(config) = load_config(&cli) else {
                return Ok(exit::ERROR);
            };
            Ok(validate(dir, &config))
        }
        Command::Render { dir } => {
            let Some(config) = load_config(&cli) else {
                return Ok(exit::ERROR);
            };
            render(dir, &config)
        }
        Command::Schema => {
            std::io::stdout().write_all(crate::spec::schema::schema_text().as_bytes())?;
            Ok(exit::OK)
        }
        Command::Diff { dir, flags } => {
            let Some(config) = load_config(&cli) else {
                return Ok(exit::ERROR);
            };
            crate::converge::diff(dir, &config, cli.context.as_deref(), flags)
        }
        Command::Apply { dir, yes, flags } => {
            let Some(config) = load_config(&cli) else {
                return Ok(exit::ERROR);
            };
            crate::converge::apply(dir, &config, cli.context.as_deref(), flags, *yes)
        }
        Command::Watch(args) => {
            let Some(config) = load_config(&cli) else {
                return Ok(exit::ERROR);
            };
            crate::daemon_cli::watch(
                args,
                config,
                crate::daemon_cli::ConfigSource {
                    path: cli.config.clone(),
                    namespace: cli.namespace.clone(),
                    instance: cli.instance.clone(),
                },
                cli.context.as_deref(),
            )
        }
        Command::Status(args) => {
            let Some(config) = load_config(&cli) else {
                return Ok(exit::ERROR);
            };
            crate::status::run(args, &config, cli.context.as_deref())
        }
        Command::Import(args) => {
            let Some(config) = load_config(&cli) else {
                return Ok(exit::ERROR);
            };
            crate::import::run(args, &config, cli.context.as_deref())
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(*shell, &mut Cli::command(), "berth", &mut std::io::stdout());
            Ok(exit::OK)
        }
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

/// The config file (`--config`, BERTH_CONFIG) or the defaults, with the command-line overrides.
/// `None` after printing why when it is unusable.
pub fn load_config(cli: &Cli) -> Option<Config> {
    let mut config = match &cli.config {
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
        cli.namespace
            .as_deref()
            .map(|ns| config.override_namespace(ns)),
        cli.instance.as_deref().map(|i| config.override_instance(i)),
    ];
    for result in overrides.into_iter().flatten() {
        if let Err(e) = result {
            eprintln!("error: {e}");
            return None;
        }
    }
    Some(config)
}

/// Load a spec directory, telling a missing directory from an unreadable one.
fn load(dir: &Path, config: &Config) -> Option<Loaded> {
    match load_dir(dir, config) {
        Ok(l) => Some(l),
        Err(e @ LoadError::Missing { .. }) => {
            eprintln!("error: {e}");
            None
        }
        Err(e) => {
            eprintln!("error: {:#}", anyhow::Error::from(e));
            None
        }
    }
}

fn summary(loaded: &Loaded) -> String {
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    format!(
        "{} checked: {} valid, {} invalid ({}, {})",
        plural(loaded.files, "spec"),
        loaded.apps.len(),
        loaded.broken.len(),
        plural(loaded.errors(), "error"),
        plural(loaded.warnings(), "warning"),
    )
}

/// `berth validate DIR`: 0 when every spec is valid (warnings allowed), 2 otherwise.
fn validate(dir: &Path, config: &Config) -> u8 {
    let Some(loaded) = load(dir, config) else {
        return exit::ERROR;
    };
    print_diagnostics(&loaded.diagnostics);
    if loaded.files == 0 {
        eprintln!("warning: no spec files (*.toml) in {}", dir.display());
    }
    eprintln!("{}", summary(&loaded));
    if loaded.has_errors() {
        exit::ERROR
    } else {
        exit::OK
    }
}

/// `berth render DIR`: YAML on stdout, or nothing and exit 2 when any spec is invalid (a partial
/// render piped into kubectl would look like a complete one).
fn render(dir: &Path, config: &Config) -> anyhow::Result<u8> {
    let Some(loaded) = load(dir, config) else {
        return Ok(exit::ERROR);
    };
    print_diagnostics(&loaded.diagnostics);
    if loaded.has_errors() {
        eprintln!("{}", summary(&loaded));
        eprintln!("error: not rendering: fix the invalid specs first");
        return Ok(exit::ERROR);
    }
    if loaded.files == 0 {
        eprintln!("warning: no spec files (*.toml) in {}", dir.display());
    }
    let rendered: Vec<_> = loaded
        .apps
        .iter()
        .map(|app| render_app(app, &RenderContext::new(&config.instance, app)))
        .collect();
    std::io::stdout().write_all(render_yaml(&rendered).as_bytes())?;
    Ok(exit::OK)
}
