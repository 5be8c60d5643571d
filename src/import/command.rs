//! `berth import` on the command line: which StatefulSets to read, which file each spec goes
//! to, and whether it is printed or written.

use std::path::PathBuf;

use super::{ImportContext, fetch, import, list, ptr_str, source_file};
use crate::cluster::Cluster;
use crate::config::Config;

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
    /// Every StatefulSet in every namespace.
    #[arg(short = 'A', long, conflicts_with = "from_namespace")]
    pub all_namespaces: bool,
    /// Write `<name>.toml` files into DIR (created if missing) instead of printing the specs.
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: Option<PathBuf>,
}

/// Runs `berth import`: 0 when every spec was written (notes are warnings), 2 on error.
pub fn run(args: &ImportArgs, config: &Config, context: Option<&str>) -> anyhow::Result<u8> {
    let target = match &args.target {
        Some(t) => match t.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
                if args.from_namespace.as_deref().is_some_and(|n| n != ns) {
                    eprintln!("error: {t} names namespace {ns}, but -n says another");
                    return Ok(crate::cli::exit::ERROR);
                }
                Some((ns.to_string(), name.to_string()))
            }
            Some(_) => {
                eprintln!("error: `{t}` is not NAMESPACE/NAME");
                return Ok(crate::cli::exit::ERROR);
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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let lives = runtime.block_on(async {
        let cluster = Cluster::connect(context, &config.instance).await?;
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
        return Ok(crate::cli::exit::OK);
    }
    // Files: where berth's own apps came from (their `berth.dev/source`), else `<name>.toml`,
    // or `<namespace>-<name>.toml` where two namespaces share a name.
    let mut files: Vec<PathBuf> = Vec::new();
    for l in &lives {
        let name = ptr_str(&l.statefulset, "/metadata/name").unwrap_or_default();
        let ns = ptr_str(&l.statefulset, "/metadata/namespace").unwrap_or_default();
        let mut file = source_file(l, &config.instance)
            .unwrap_or_else(|| PathBuf::from(format!("{name}.toml")));
        if files.contains(&file) {
            file = PathBuf::from(format!("{ns}-{name}.toml"));
        }
        files.push(file);
    }
    let many = lives.len() > 1;
    for (l, file) in lives.iter().zip(&files) {
        let name = ptr_str(&l.statefulset, "/metadata/name").unwrap_or_default();
        let ns = ptr_str(&l.statefulset, "/metadata/namespace").unwrap_or_default();
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let imported = import(
            l,
            ImportContext {
                config,
                file_stem: Some(&stem),
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
                    return Ok(crate::cli::exit::ERROR);
                }
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| anyhow::anyhow!("creating {}: {e}", parent.display()))?;
                }
                std::fs::write(&path, &imported.text)
                    .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
            None => {
                if many {
                    println!("# ===== {} =====", file.display());
                }
                print!("{}", imported.text);
                if many {
                    println!();
                }
            }
        }
    }
    Ok(crate::cli::exit::OK)
}
