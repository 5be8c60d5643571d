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
    // Without the variables cargo set for this xtask run, which would describe xtask to the
    // nested build.
    let mut cmd = crate::tasks::cargo_command(root);
    cmd.args([
        "run",
        "--quiet",
        "--package",
        "xtask",
        "--features",
        "man",
        "--",
        "man",
    ]);
    let status = cmd.status()?;
    anyhow::ensure!(status.success(), "building the man pages failed ({status})");
    Ok(())
}
