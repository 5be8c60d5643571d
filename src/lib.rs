//! berth keeps a Kubernetes cluster in step with a directory of compact TOML app specs.
//!
//! Layout (dependencies point one way: cli → cluster → render → spec):
//! - [`cli`]: the command line, one function per subcommand, exit codes decided in one place.
//! - [`config`]: the daemon config (instance name, defaults, profile, safety limits), raw → validated.
//! - [`spec`]: the TOML app spec: raw serde types with spans, validation into [`spec::App`].
//! - [`render`]: `App` → StatefulSet, headless Service, access Service; ownership labels live there.
//! - [`cluster`]: the only code that holds a `kube::Client`.
//! - [`import`]: live StatefulSet and Services → a compact TOML spec (`berth import`).
//! - [`status`]: per-app sync and rollout state (`berth status`).
//! - [`watch`]: file events → coalesced "rescan" signals for the daemon (symlink swaps, overflow, resync).

pub mod cli;
pub mod cluster;
pub mod config;
pub mod converge;
pub mod daemon;
pub mod daemon_cli;
pub mod import;
pub mod plan;
pub mod render;
pub mod spec;
pub mod status;
pub mod watch;
