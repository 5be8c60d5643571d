//! The daemon (`berth watch`): admin HTTP server, metrics and systemd notifications.

pub mod admin;
pub mod app_state;
pub mod leader;
pub mod metrics;
pub mod queue;
mod reload;
mod run;
pub mod systemd;

pub use run::{Control, DaemonOptions, resolve_dir, run};
