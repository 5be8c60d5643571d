//! Builds the control-plane binaries from the wrapper Go modules in tools/ and caches them
//! outside the repo, keyed by version, so only the first build on a machine is slow.
//!
//! The wrapper modules exist because `go install k8s.io/kubernetes/cmd/kube-apiserver@v1.37.2`
//! and `go install go.etcd.io/etcd/server/v3@…` refuse modules with replace directives:
//! k8s.io/kubernetes requires its staging modules (k8s.io/api, k8s.io/client-go, …) at the
//! placeholder version v0.0.0 and resolves them with directory replaces that only apply inside
//! its own repository. Each wrapper requires the module at its pinned version (tools/k8s also
//! replaces every staging module with its published v0.37.x) and is built with `go build`, which
//! honours the wrapper's own replaces. Their go.sum files are committed, so builds do not
//! depend on the checksum database. docs/control-plane.md describes the control plane these
//! binaries make up.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

pub const K8S_VERSION: &str = "v1.37.2";
pub const ETCD_VERSION: &str = "v3.7.3";
pub const KWOK_VERSION: &str = "v0.8.0";

/// Where each control-plane binary lives once built.
pub struct Binaries {
    pub etcd: PathBuf,
    pub kube_apiserver: PathBuf,
    pub kube_controller_manager: PathBuf,
    pub kube_scheduler: PathBuf,
    pub kwok: PathBuf,
    /// kwok's stage configuration (what makes nodes Ready, pods Running/Ready, and finishes pod
    /// deletion): the release's stages of the same kwok the binary was built from, plus the
    /// harness's slow profile (see `kwok_stages`).
    pub kwok_stages: PathBuf,
}

/// The release's stages, cached with the binary they belong to.
const KWOK_STAGES: &str = "stages.yaml";
/// What kwok is started with: composed from [`KWOK_STAGES`] at every start, so it follows the
/// harness's code rather than the cache's age.
const KWOK_HARNESS_STAGES: &str = "harness-stages.yaml";

/// One `go build` of one wrapper module, producing `outputs` into a versioned cache directory.
struct GoBuild {
    /// Cache directory name, e.g. "k8s-v1.37.2": the version is the cache key.
    key: String,
    /// Wrapper module under tools/.
    module: &'static str,
    packages: Vec<&'static str>,
    /// Binary names the build must leave in the cache directory.
    outputs: Vec<&'static str>,
    ldflags: String,
    /// `go build -o dir/` names a binary after the package's last path element; etcd's main
    /// package is `…/server/v3`, so it needs an explicit file name.
    single_output_name: Option<&'static str>,
    /// Runs after a successful build with the wrapper module's directory and the scratch output
    /// directory, for files that must be cached next to the binaries.
    after_build: Option<fn(&Path, &Path) -> Result<()>>,
}

/// The cache root: $BERTH_CACHE_DIR, else $XDG_CACHE_HOME/berth, else ~/.cache/berth.
pub fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("BERTH_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    base.join("berth")
}

pub fn ensure_binaries(root: &Path) -> Result<Binaries> {
    let cache = cache_root();
    let minor = K8S_VERSION
        .trim_start_matches("v1.")
        .split('.')
        .next()
        .unwrap_or("0");
    // The same -X keys upstream's hack/lib/version.sh sets; without them /version reports
    // v0.0.0-master and clients that parse the server version misbehave.
    let mut k8s_ldflags = String::from("-s -w");
    for pkg in [
        "k8s.io/component-base/version",
        "k8s.io/client-go/pkg/version",
    ] {
        k8s_ldflags.push_str(&format!(
            " -X {pkg}.gitVersion={K8S_VERSION} -X {pkg}.gitMajor=1 -X {pkg}.gitMinor={minor} \
             -X {pkg}.gitTreeState=clean -X {pkg}.buildDate=1970-01-01T00:00:00Z"
        ));
    }
    let builds = [
        GoBuild {
            key: format!("etcd-{ETCD_VERSION}"),
            module: "tools/etcd",
            packages: vec!["go.etcd.io/etcd/server/v3"],
            outputs: vec!["etcd"],
            ldflags: "-s -w".into(),
            single_output_name: Some("etcd"),
            after_build: None,
        },
        GoBuild {
            key: format!("kwok-{KWOK_VERSION}"),
            module: "tools/kwok",
            packages: vec!["sigs.k8s.io/kwok/cmd/kwok"],
            outputs: vec!["kwok", KWOK_STAGES],
            ldflags: "-s -w".into(),
            single_output_name: Some("kwok"),
            after_build: Some(write_kwok_stages),
        },
        GoBuild {
            key: format!("k8s-{K8S_VERSION}"),
            module: "tools/k8s",
            packages: vec![
                "k8s.io/kubernetes/cmd/kube-apiserver",
                "k8s.io/kubernetes/cmd/kube-controller-manager",
                "k8s.io/kubernetes/cmd/kube-scheduler",
            ],
            outputs: vec![
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler",
            ],
            ldflags: k8s_ldflags,
            single_output_name: None,
            after_build: None,
        },
    ];
    for build in &builds {
        build.ensure(root, &cache)?;
    }
    let kwok_dir = cache.join(&builds[1].key);
    let kwok_stages = kwok_dir.join(KWOK_HARNESS_STAGES);
    if crate::kwok_stages::write_if_changed(&kwok_dir.join(KWOK_STAGES), &kwok_stages)? {
        eprintln!("kwok stages written to {}", kwok_stages.display());
    }
    Ok(Binaries {
        etcd: cache.join(&builds[0].key).join("etcd"),
        kwok: cache.join(&builds[1].key).join("kwok"),
        kwok_stages,
        kube_apiserver: cache.join(&builds[2].key).join("kube-apiserver"),
        kube_controller_manager: cache.join(&builds[2].key).join("kube-controller-manager"),
        kube_scheduler: cache.join(&builds[2].key).join("kube-scheduler"),
    })
}

impl GoBuild {
    fn ensure(&self, root: &Path, cache: &Path) -> Result<()> {
        let dir = cache.join(&self.key);
        if self.outputs.iter().all(|o| dir.join(o).is_file()) {
            return Ok(());
        }
        let go = which_go()?;
        // Build into a scratch directory and rename it into place, so an interrupted build never
        // leaves a cache entry that looks complete.
        let tmp = cache.join(format!("{}.partial", self.key));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let log = cache.join(format!("build-{}.log", self.key));
        eprintln!(
            "building {} from {} (first time on this machine only; Kubernetes takes about 8 \
             minutes on 2 cores, etcd and kwok about 1) - log: {}",
            self.outputs.join(", "),
            self.module,
            log.display()
        );
        let started = Instant::now();
        let out = match self.single_output_name {
            Some(name) => tmp.join(name),
            None => tmp.clone(),
        };
        let mut out_arg = out.display().to_string();
        if self.single_output_name.is_none() {
            // A trailing slash makes `go build -o` write one binary per main package.
            out_arg.push('/');
        }
        let log_file = fs::File::create(&log)?;
        let status = Command::new(&go)
            .current_dir(root.join(self.module))
            .args([
                "build",
                "-trimpath",
                "-ldflags",
                &self.ldflags,
                "-o",
                &out_arg,
            ])
            .args(&self.packages)
            .envs(go_env(&go)?)
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .status()
            .with_context(|| format!("running {}", go.display()))?;
        if !status.success() {
            bail!(
                "building {} failed ({status}); last lines of {}:\n{}",
                self.outputs.join(", "),
                log.display(),
                crate::process::tail(&log, 40)
            );
        }
        if let Some(after_build) = self.after_build {
            after_build(&root.join(self.module), &tmp)?;
        }
        for o in &self.outputs {
            if !tmp.join(o).is_file() {
                bail!("the build of {} did not produce {o}", self.module);
            }
        }
        let _ = fs::remove_dir_all(&dir);
        fs::rename(&tmp, &dir)?;
        eprintln!(
            "built {} in {:.0}s",
            self.outputs.join(", "),
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

fn which_go() -> Result<PathBuf> {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    candidates
        .into_iter()
        .chain([PathBuf::from("/usr/local/go/bin")])
        .map(|d| d.join("go"))
        .find(|p| p.is_file())
        .context(
            "the Go toolchain (go 1.26 or newer) is needed to build the local control plane, \
             and `go` is not on PATH; install Go 1.26 or newer and \
             run this again",
        )
}

/// The environment for `go build`: never switch toolchains behind our back, never fall back to
/// fetching from VCS hosts (unreachable here), static binaries as upstream builds them.
fn go_env(go: &Path) -> Result<Vec<(String, String)>> {
    let proxy = Command::new(go).args(["env", "GOPROXY"]).output()?;
    let proxy = String::from_utf8_lossy(&proxy.stdout).trim().to_string();
    let proxy: Vec<&str> = proxy
        .split([',', '|'])
        .filter(|p| !p.is_empty() && *p != "direct")
        .collect();
    let mut env = vec![
        ("GOTOOLCHAIN".to_string(), "local".to_string()),
        ("CGO_ENABLED".to_string(), "0".to_string()),
        (
            "GOFLAGS".to_string(),
            "-mod=readonly -buildvcs=false".to_string(),
        ),
    ];
    if !proxy.is_empty() {
        env.push(("GOPROXY".to_string(), proxy.join(",")));
    }
    Ok(env)
}

/// kwok v0.8 no longer falls back to built-in stages when none are configured ("no stages
/// found"), so the harness starts from the release's own "fast" stages: node-initialize and
/// heartbeat for the node, ready/complete/delete for pods (`kwok_stages` adds its profiles).
fn write_kwok_stages(module: &Path, out: &Path) -> Result<()> {
    let go = which_go()?;
    let listed = Command::new(&go)
        .current_dir(module)
        .args(["list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/kwok"])
        .envs(go_env(&go)?)
        .output()
        .context("locating the kwok module")?;
    if !listed.status.success() {
        bail!(
            "`go list -m sigs.k8s.io/kwok` failed: {}",
            String::from_utf8_lossy(&listed.stderr)
        );
    }
    let dir = PathBuf::from(String::from_utf8_lossy(&listed.stdout).trim());
    let stages = dir.join("kustomize").join("stage");
    let mut text = String::new();
    for file in [
        "node/fast/node-initialize.yaml",
        "node/heartbeat/node-heartbeat.yaml",
        "pod/fast/pod-ready.yaml",
        "pod/fast/pod-complete.yaml",
        "pod/fast/pod-delete.yaml",
    ] {
        let path = stages.join(file);
        let body =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        text.push_str("---\n");
        text.push_str(&body);
        if !body.ends_with('\n') {
            text.push('\n');
        }
    }
    fs::write(out.join(KWOK_STAGES), text)?;
    Ok(())
}
