//! berth keeps a Kubernetes cluster in step with a directory of compact TOML app specs.
//!
//! Layout (dependencies point one way: cli → commands → daemon/import/status → cluster → health,
//! plan → render → labels, spec; docs/architecture.md walks from `main` to a PATCH):
//! - [`cli`]: the command line's clap types and the dispatch to a command.
//! - [`commands`]: one file per command, the typed exit and the one place that turns a command's
//!   outcome into an exit code.
//! - [`output`]: stdout that a closed pipe does not break, errors on one line.
//! - [`config`]: the daemon config (instance name, defaults, profile, safety limits and what a
//!   spec may reach), raw → validated.
//! - [`spec`]: the TOML app spec: raw serde types with spans, validation into [`spec::App`],
//!   loading a directory (broken files and directories protect their apps).
//! - [`labels`]: every label and annotation key berth reads or writes; ownership and identity.
//! - [`render`]: `App` → StatefulSet, headless Service, access Service, PodDisruptionBudget.
//! - [`plan`]: pure decisions: plans and their text, normalisation, masking, the recreate gate,
//!   the removal rules and ledger.
//! - [`cluster`]: the only code that holds a `kube::Client`: inventory, watch caches, planning
//!   (dry-runs), executing (apply, recreate, ordered removal), the removal ledger.
//! - [`import`]: live StatefulSet and Services → a compact TOML spec (`berth import`).
//! - [`health`]: pure: an app's health (healthy, progressing, degraded with the reason, missing)
//!   and rollout progress from its live StatefulSet, pods, claims and events.
//! - [`status`]: per-app sync state and health, read from the cluster (`berth status`).
//! - [`glob`]: `*`/`?` matching of whole names (config allowlists, notify filters).
//! - [`notice`]: pure: whom the daemon tells what (`[[notify]]` targets, events, bodies).
//! - [`daemon`]: `berth watch`: the spec watcher (file events → coalesced "rescan" signals,
//!   through symlink swaps, overflow and resync), reloads, the keyed work queue, app states,
//!   admin HTTP and metrics, leader election, systemd notifications.

pub mod cli;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod glob;
pub mod health;
pub mod import;
pub mod labels;
pub mod notice;
pub mod output;
pub mod plan;
pub mod render;
pub mod spec;
pub mod status;
