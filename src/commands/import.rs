//! `berth import`: live StatefulSets and their Services → TOML specs. Which StatefulSets to
//! read, which file each spec goes to, and whether it is printed or written; the conversion
//! itself is [`crate::import`].

use std::path::PathBuf;

use serde_json::Value;

use super::{Exit, print, runtime};
use crate::cluster::Cluster;
use crate::config::Config;
use crate::import::{ImportContext, fetch, import, list, source_file};

/// `berth import`.
#[derive(Debug, Clone, clap::Args)]
#[command(group(
    clap::ArgGroup::new("what")
        .required(true)
        .multiple(true)
        .args(["target", "from_namespace", "all_namespaces"])
))]
pub struct ImportArgs {
    /// The StatefulSet: NAMESPACE/NAME, or NAME in the namespace of -n (else the default
    /// namespace).
    #[arg(value_name = "NAMESPACE/NAME", conflicts_with = "all_namespaces")]
    pub target: Option<String>,
    /// Every StatefulSet in this namespace (or the namespace of a bare NAME).
    #[arg(short = 'n', long = "from-namespace", value_name = "NS")]
    pub from_namespace: Option<String>,
    /// Every StatefulSet in every namespace; when `safety.namespaces` in the daemon config names
    /// its namespaces (no patterns), in each of those.
    #[arg(short = 'A', long, conflicts_with = "from_namespace")]
    pub all_namespaces: bool,
    /// Write `<name>.toml` files into DIR (created if missing) instead of printing the specs.
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Keep the node ports of LoadBalancer Services. The API server allocates them, so they are
    /// left out by default (pinned, they fail in another namespace or cluster); the node ports of
    /// NodePort Services are always kept.
    #[arg(long)]
    pub keep_node_ports: bool,
}

/// Runs `berth import`: Ok when every spec was written (notes are warnings), Error otherwise.
pub(crate) fn exec(
    args: &ImportArgs,
    config: &Config,
    context: Option<&str>,
) -> anyhow::Result<Exit> {
    let target = match &args.target {
        Some(t) => match t.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                if args.from_namespace.as_deref().is_some_and(|n| n != ns) {
                    eprintln!("error: {t} names namespace {ns}, but -n says another");
                    return Ok(Exit::Error);
                }
                Some((ns.to_string(), name.to_string()))
            }
            Some(_) => {
                eprintln!("error: `{t}` is not NAMESPACE/NAME");
                return Ok(Exit::Error);
            }
            None => Some((
                args.from_namespace
                    .clone()
                    .unwrap_or_else(|| config.defaults.namespace.clone()),
                t.clone(),
            )),
        },
        None => None,
    };
    let lives = runtime()?.block_on(async {
        let cluster = Cluster::connect(context, config).await?;
        let keys = match &target {
            Some(key) => vec![key.clone()],
            None => {
                let ns = if args.all_namespaces {
                    None
                } else {
                    args.from_namespace.as_deref()
                };
                list(&cluster, ns).await?
            }
        };
        let mut lives = Vec::new();
        for (ns, name) in keys {
            lives.push(fetch(&cluster, &ns, &name).await?);
        }
        anyhow::Ok(lives)
    })?;
    if lives.is_empty() {
        eprintln!("warning: no StatefulSets found");
        return Ok(Exit::Ok);
    }
    // Files: where berth's own apps came from (their `berth.dev/source`), else `<name>.toml`,
    // or `<namespace>-<name>.toml` where two namespaces share a name.
    let mut files: Vec<PathBuf> = Vec::new();
    for l in &lives {
        let name = text_at(&l.statefulset, "/metadata/name");
        let ns = text_at(&l.statefulset, "/metadata/namespace");
        let mut file = source_file(l, &config.instance)
            .unwrap_or_else(|| PathBuf::from(format!("{name}.toml")));
        if files.contains(&file) {
            file = PathBuf::from(format!("{ns}-{name}.toml"));
        }
        files.push(file);
    }
    let many = lives.len() > 1;
    for (l, file) in lives.iter().zip(&files) {
        let name = text_at(&l.statefulset, "/metadata/name");
        let ns = text_at(&l.statefulset, "/metadata/namespace");
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let imported = import(
            l,
            ImportContext {
                config,
                file_stem: Some(&stem),
                keep_node_ports: args.keep_node_ports,
            },
        );
        for note in &imported.notes {
            eprintln!("warning: {ns}/{name}: {note}");
        }
        match &args.output {
            Some(dir) => {
                let path = dir.join(file);
                if path.exists() {
                    eprintln!(
                        "error: {} exists; berth import does not overwrite spec files",
                        path.display()
                    );
                    return Ok(Exit::Error);
                }
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| anyhow::anyhow!("creating {}: {e}", parent.display()))?;
                }
                std::fs::write(&path, &imported.text)
                    .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
            None if many => print(
                format!("# ===== {} =====\n{}\n", file.display(), imported.text),
                Exit::Ok,
            )?,
            None => print(&imported.text, Exit::Ok)?,
        }
    }
    Ok(Exit::Ok)
}

/// A string field of a live object, empty when it has none.
fn text_at(object: &Value, pointer: &str) -> String {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}
