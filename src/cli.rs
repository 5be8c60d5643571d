//! The command line: clap's types for the global flags and the subcommands, and the dispatch to
//! [`crate::commands`], where each command lives and its outcome becomes an exit code.

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};

use crate::commands::{
    self, ConfigSource, Exit, apply::ApplyArgs, completions::CompletionsArgs, diff::DiffArgs,
    import::ImportArgs, rbac::RbacArgs, render::RenderArgs, status::StatusArgs,
    suspend::ResumeArgs, suspend::SuspendArgs, validate::ValidateArgs, watch::WatchArgs,
};
use crate::config::Config;

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
    Validate(ValidateArgs),
    /// Print the Kubernetes objects for DIR as YAML that `kubectl apply -f -` accepts.
    Render(RenderArgs),
    /// Show what `apply` would change. Exit 0 in sync, 1 changes pending, 2 error, 3 destructive.
    Diff(DiffArgs),
    /// Converge the cluster to DIR once, after showing the plan.
    Apply(ApplyArgs),
    /// Run as a daemon: watch DIR and converge on every change.
    Watch(WatchArgs),
    /// One line per app: sync state, ready replicas, rollout, last commit and error. Exit 0 only
    /// when every app is in sync and ready, 1 otherwise, 2 on error.
    Status(StatusArgs),
    /// Turn live StatefulSets and their Services into TOML specs (migrating to berth).
    Import(ImportArgs),
    /// Leave one app alone (no writes, no drift correction, no removal) until `berth resume`:
    /// for an incident. Every berth instance sees it.
    Suspend(SuspendArgs),
    /// End a `berth suspend`: berth manages the app again.
    Resume(ResumeArgs),
    /// Print the namespaced RBAC (a Role and RoleBinding per namespace, nothing cluster-wide)
    /// berth needs under the daemon config, as YAML for `kubectl apply -f -`.
    Rbac(RbacArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Print the JSON Schema (draft-07) of the app spec format.
    Schema,
}

/// Runs the command `cli` names; [`commands::exit_code`] turns the outcome into the exit code.
pub fn dispatch(cli: Cli) -> anyhow::Result<Exit> {
    let context = cli.context.as_deref();
    let source = ConfigSource {
        path: cli.config.clone(),
        namespace: cli.namespace.clone(),
        instance: cli.instance.clone(),
    };
    match &cli.command {
        Command::Validate(args) => with_config(&source, |config| {
            Ok(commands::validate::exec(args, &config))
        }),
        Command::Render(args) => {
            with_config(&source, |config| commands::render::exec(args, &config))
        }
        Command::Diff(args) => with_config(&source, |config| {
            commands::diff::exec(args, &config, context)
        }),
        Command::Apply(args) => with_config(&source, |config| {
            commands::apply::exec(args, &config, context)
        }),
        Command::Watch(args) => with_config(&source, |config| {
            commands::watch::exec(args, config, source.clone(), context)
        }),
        Command::Status(args) => with_config(&source, |config| {
            commands::status::exec(args, &config, context)
        }),
        Command::Import(args) => with_config(&source, |config| {
            commands::import::exec(args, &config, context)
        }),
        Command::Suspend(args) => with_config(&source, |config| {
            commands::suspend::exec_suspend(args, &config, context)
        }),
        Command::Resume(args) => with_config(&source, |config| {
            commands::suspend::exec_resume(args, &config, context)
        }),
        Command::Rbac(args) => with_config(&source, |config| commands::rbac::exec(args, &config)),
        // The two commands that need no config: a broken config file does not stop them.
        Command::Completions(args) => commands::completions::exec(args, &mut Cli::command()),
        Command::Schema => commands::schema::exec(),
    }
}

/// Runs `command` with the config, or ends with 2 when the config is unusable (after saying why).
fn with_config(
    source: &ConfigSource,
    command: impl FnOnce(Config) -> anyhow::Result<Exit>,
) -> anyhow::Result<Exit> {
    match source.load() {
        Some(config) => command(config),
        None => Ok(Exit::Error),
    }
}
