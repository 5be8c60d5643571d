//! `berth render DIR`: the Kubernetes objects of DIR as YAML that `kubectl apply -f -` accepts.

use std::path::PathBuf;

use super::validate::{load, summary};
use super::{Exit, print, print_diagnostics};
use crate::config::Config;
use crate::render::{RenderContext, render_app, render_yaml};

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
    // Written as rendered, a chunk at a time: the output of a large fleet is never held whole.
    let mut chunk = String::new();
    for app in &loaded.apps {
        let rendered = render_app(app, &RenderContext::new(&config.instance, app));
        chunk.push_str(&render_yaml(std::slice::from_ref(&rendered)));
        if chunk.len() >= CHUNK_BYTES {
            print(&chunk, Exit::Ok)?;
            chunk.clear();
        }
    }
    print(&chunk, Exit::Ok)?;
    Ok(Exit::Ok)
}

/// How much YAML is gathered before it is written.
const CHUNK_BYTES: usize = 64 * 1024;
