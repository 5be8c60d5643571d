//! The daemon (`berth watch`): the spec watcher, the keyed work queue, admin HTTP server, metrics,
//! leader election and systemd notifications.

pub mod admin;
pub mod app_health;
pub mod app_state;
mod file_reload;
mod git_wait;
pub mod leader;
pub mod metrics;
pub mod notifications;
pub mod queue;
mod reload;
mod run;
mod spec_watcher;
pub mod systemd;

pub use run::{Control, DaemonOptions, resolve_dir, run};
