//! `cargo xtask man`: man pages generated from berth's own CLI definition (clap_mangen), so
//! they can never disagree with `berth --help`. Writes target/man/berth.1 and one page per
//! subcommand (berth-diff.1, …).
//!
//! The berth library is an optional dependency behind the `man` feature: every other task
//! (`cluster up`, `test`) must keep working while berth itself does not compile, so plain
//! `cargo xtask man` re-runs xtask with the feature on.

use std::path::Path;

#[cfg(feature = "man")]
pub fn man(root: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    use clap::CommandFactory;

    let out = root.join("target/man");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    clap_mangen::generate_to(berth::cli::Cli::command(), &out)
        .with_context(|| format!("writing man pages to {}", out.display()))?;
    println!(
        "wrote {0}/berth.1 and a page per subcommand; read it with `man {0}/berth.1`",
        out.display()
    );
    Ok(())
}

#[cfg(not(feature = "man"))]
pub fn man(root: &Path) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.current_dir(root).args([
        "run",
        "--quiet",
        "--package",
        "xtask",
        "--features",
        "man",
        "--",
        "man",
    ]);
    // The variables cargo set for this xtask run would describe xtask to the nested build.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_")
            || matches!(
                key.as_ref(),
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
            )
        {
            cmd.env_remove(key.as_ref());
        }
    }
    let status = cmd.status()?;
    anyhow::ensure!(status.success(), "building the man pages failed ({status})");
    Ok(())
}
