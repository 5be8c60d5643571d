//! berth keeps a Kubernetes cluster in step with a directory of compact TOML app specs.
//!
//! Layout (dependencies point one way: cli → commands → cluster → render → spec):
//! - [`cli`]: the command line's clap types and the dispatch to a command.
//! - [`commands`]: one file per command, the typed exit and the one place that turns a command's
//!   outcome into an exit code.
//! - [`output`]: stdout that a closed pipe does not break, errors on one line.
//! - [`config`]: the daemon config (instance name, defaults, profile, safety limits), raw → validated.
//! - [`spec`]: the TOML app spec: raw serde types with spans, validation into [`spec::App`].
//! - [`render`]: `App` → StatefulSet, headless Service, access Service; ownership labels live there.
//! - [`cluster`]: the only code that holds a `kube::Client`.
//! - [`import`]: live StatefulSet and Services → a compact TOML spec (`berth import`).
//! - [`status`]: per-app sync and rollout state, read from the cluster (`berth status`).
//! - [`daemon`]: `berth watch`: the spec watcher (file events → coalesced "rescan" signals,
//!   through symlink swaps, overflow and resync), the keyed work queue, admin HTTP, leader election.

pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod import;
pub mod labels;
pub mod output;
pub mod plan;
pub mod render;
pub mod spec;
pub mod status;
