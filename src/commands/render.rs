//! `berth render DIR`: the Kubernetes objects of DIR as YAML that `kubectl apply -f -` accepts.

use std::path::PathBuf;

use super::validate::{load, summary};
use super::{Exit, print, print_diagnostics};
use crate::config::Config;
use crate::render::{RenderContext, render_app};
use crate::spec::App;

#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    dir: PathBuf,
}

/// YAML on stdout, or nothing and exit 2 when any spec is invalid (a partial render piped into
/// kubectl would look like a complete one).
pub(crate) fn exec(args: &RenderArgs, config: &Config) -> anyhow::Result<Exit> {
    let dir = &args.dir;
    let Some(loaded) = load(dir, config) else {
        return Ok(Exit::Error);
    };
    print_diagnostics(&loaded.diagnostics);
    if loaded.has_errors() {
        eprintln!("{}", summary(&loaded));
        eprintln!("error: not rendering: fix the invalid specs first");
        return Ok(Exit::Error);
    }
    if loaded.files == 0 {
        eprintln!("warning: no spec files (*.toml) in {}", dir.display());
    }
    // Written as rendered, a batch of apps at a time: the output of a large fleet is never held
    // whole, and each batch is rendered on every core (rendering is all CPU).
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    for batch in loaded.apps.chunks(APPS_PER_BATCH) {
        let per_thread = batch.len().div_ceil(threads);
        let parts: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = batch
                .chunks(per_thread)
                .map(|apps| scope.spawn(|| render_apps(apps, &config.instance)))
                .collect();
            handles
                .into_iter()
                .map(|handle| match handle.join() {
                    Ok(text) => text,
                    Err(panic) => std::panic::resume_unwind(panic),
                })
                .collect()
        });
        for part in parts {
            print(part, Exit::Ok)?;
        }
    }
    Ok(Exit::Ok)
}

/// The YAML of `apps`, in their order, written into one buffer.
fn render_apps(apps: &[App], instance: &str) -> String {
    let mut text = String::new();
    for (i, app) in apps.iter().enumerate() {
        render_app(app, &RenderContext::new(instance, app)).write_yaml(&mut text);
        if i == 0 {
            // Apps of one directory are alike in size: room for all of them after the first
            // spares the buffer its doublings and their copies.
            text.reserve(text.len() * (apps.len() - 1));
        }
    }
    text
}

/// How many apps are rendered before their YAML is written (a few MiB of text at most).
const APPS_PER_BATCH: usize = 512;
