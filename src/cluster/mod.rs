//! The only code that holds a `kube::Client`: inventory of what berth owns, plans (server-side
//! dry-run compared with live objects), and converging (apply, recreate, ordered removal).
//!
//! Every write goes through server-side apply under the field manager [`FIELD_MANAGER`], or a
//! patch/delete of an object whose ownership labels were checked first; and every write passes
//! the leader [`Fence`] of the request client (always open without leader election).

mod cache;
mod events;
mod execute;
mod fence;
mod inventory;
mod kinds;
mod ledger;
mod observe;
mod ordered;
mod planner;
pub(crate) mod proxy;
mod scope;
mod suspend;
pub mod wait;

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::config::Config;

pub use cache::OwnedCache;
pub use events::{EVENT_TIMEOUT, REPORTING_CONTROLLER, Reason};
pub use execute::{Progress, Report};
pub use fence::Fence;
pub use inventory::{Inventory, LiveApp};
pub use kinds::Kind;
pub use ledger::{LEDGER_ANNOTATION, unix_now};
pub use observe::Observations;
pub use planner::{PlanOptions, Planned, RequestTimes};
pub use scope::Listing;
pub use suspend::SuspendError;

/// berth's server-side apply field manager.
pub const FIELD_MANAGER: &str = "berth";
/// Operational errors; each names the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot load the kubeconfig")]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    #[error("cannot build a client from the kubeconfig")]
    Client(#[source] kube::Error),
    /// kube reads NO_PROXY itself whenever HTTPS_PROXY is set, and stricter than kubectl: an
    /// empty entry (`a,,b`, a trailing comma) or one that is not a host, address or CIDR fails.
    #[error("cannot use NO_PROXY (comma-separated hosts, addresses and CIDRs, no empty entries)")]
    NoProxy(#[source] kube::config::KubeconfigError),
    #[error("cannot read the proxy URL {url:?}")]
    ProxyUrl {
        url: String,
        #[source]
        source: http::uri::InvalidUri,
    },
    #[error("listing the objects berth owns")]
    Inventory(#[source] kube::Error),
    #[error("reading {kind} {namespace}/{name}")]
    Get {
        kind: Kind,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("listing {what} in namespace {namespace}")]
    List {
        what: &'static str,
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error("dry-run apply of {kind} {namespace}/{name}")]
    DryRun {
        kind: Kind,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("applying {kind} {namespace}/{name}")]
    Apply {
        kind: Kind,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("deleting {kind} {namespace}/{name}")]
    Delete {
        kind: Kind,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("{operation} for {namespace}/{name}")]
    Step {
        operation: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("timed out after {seconds}s {what}; run again to continue from where it stopped")]
    Timeout { what: String, seconds: u64 },
    #[error("{message}")]
    Ledger {
        message: String,
        #[source]
        source: Option<kube::Error>,
    },
    #[error("stopped before {what}; run again to continue")]
    Cancelled { what: String },
    /// A removal or recreate found its object no longer the app's since the plan (relabelled,
    /// replaced under the same name, disowned) and stopped before writing to it. Running again
    /// finds the same, so the message says what was found rather than inviting a retry.
    #[error(
        "stopped the {work} of {app} before {doing} {kind} {namespace}/{name} and left it as it \
         is: {found}"
    )]
    NotThisApp {
        /// "removal" or "recreate".
        work: &'static str,
        /// The app whose work stopped, `namespace/name`.
        app: String,
        /// The step that did not happen ("scaling", "deleting", …).
        doing: &'static str,
        kind: Kind,
        namespace: String,
        name: String,
        /// Why the object is not the app's now: another app's labels, another uid, no ownership.
        found: String,
    },
}

/// How long one API request may wait for its response. kube's default is no limit, so a
/// connection that stalls (a half-open TCP session after a network cut, a hung proxy) would hold
/// an apply, and with it the app's queue slot, forever. Watches use their own client without
/// this limit: they are idle by design, and the watcher has its own idle timeout.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A connection to the cluster, for one berth instance.
#[derive(Clone)]
pub struct Cluster {
    /// For requests: reads, dry-runs, applies, deletes, the removal ledger, Events. Bounded by
    /// [`REQUEST_TIMEOUT`]; its writes pass `fence`.
    client: kube::Client,
    /// For the leader lease alone: not fenced (renewing is how the fence opens again), and on
    /// connections of its own, so a renew never queues behind a slow apply.
    lease_client: kube::Client,
    /// Whether this process may write now (see [`fence`]).
    fence: Fence,
    /// For the long-lived watches of the daemon's caches.
    watch_client: kube::Client,
    /// For evictions: like `client`, without kube's silent retry of a 429, which is how a
    /// PodDisruptionBudget says "not now" and which berth waits out itself, saying so.
    eviction_client: kube::Client,
    /// This berth instance: only objects labelled with it are berth's to change.
    instance: String,
    /// Where the inventory, the daemon's caches and `import -A` list: across the cluster, or
    /// only in the namespaces the daemon config names (so that Roles alone suffice).
    listing: Listing,
    /// The Events berth records on StatefulSets, written beside the steps, never in their way.
    events: events::Events,
}

impl Cluster {
    /// Connects as kubectl would: KUBECONFIG or ~/.kube/config (or in-cluster), with an optional
    /// context override, for the instance of `config`, listing where its `safety.namespaces`
    /// says ([`Listing::from_allowed`]).
    pub async fn connect(context: Option<&str>, config: &Config) -> Result<Cluster, ClusterError> {
        let instance = config.instance.as_str();
        let listing = Listing::from_allowed(&config.safety.namespaces);
        // rustls needs a process-wide crypto provider; ring is the only one built in.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let options = KubeConfigOptions {
            context: context.map(str::to_string),
            ..KubeConfigOptions::default()
        };
        let (mut config, kubeconfig_proxy) = match Kubeconfig::read() {
            Ok(mut kubeconfig) => {
                let insecure = skips_tls_verification(&kubeconfig, context);
                let oidc_issuer = public_oidc_client(&mut kubeconfig, context);
                // berth decides on the proxy (below); kube, given a `proxy-url`, would drop it
                // when NO_PROXY names the proxy's own host.
                let proxy_url = selected_cluster(&mut kubeconfig, context)
                    .and_then(|cluster| cluster.proxy_url.take());
                let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|err| match err {
                        kube::config::KubeconfigError::ParseNoProxy(_) => {
                            ClusterError::NoProxy(err)
                        }
                        err => ClusterError::Kubeconfig(err),
                    })?;
                if let Some(issuer) = oidc_issuer {
                    crate::output::name_oidc_issuer(&issuer);
                }
                if config.accept_invalid_certs
                    && let Some(warning) = insecure
                {
                    warn_once(&warning);
                }
                (config, proxy_url)
            }
            // No kubeconfig at all: inside a pod, use its service account.
            Err(err) => (
                kube::Config::incluster().map_err(|_| ClusterError::Kubeconfig(err))?,
                None,
            ),
        };
        // Before the clients are built, so requests and watches take the same way.
        let env = proxy::ProxyEnv::from_env();
        config.proxy_url =
            match proxy::proxy_for(&config.cluster_url, kubeconfig_proxy.as_deref(), &env) {
                Some(url) => match url.parse() {
                    Ok(uri) => Some(uri),
                    Err(source) => return Err(ClusterError::ProxyUrl { url, source }),
                },
                None => None,
            };
        let watch_client = kube::Client::try_from(config.clone()).map_err(ClusterError::Client)?;
        let mut request_config = config;
        request_config.read_timeout = Some(REQUEST_TIMEOUT);
        // Count from when the request was sent, not from when its pooled connection went idle.
        request_config.reset_reader_on_write = true;
        let lease_client =
            kube::Client::try_from(request_config.clone()).map_err(ClusterError::Client)?;
        let fence = Fence::always_open();
        // Outermost, so a refused write is refused before anything else is done for it.
        let fenced = |config: kube::Config| {
            kube::client::ClientBuilder::try_from(config)
                .map(|b| b.with_layer(&fence::FenceLayer::new(fence.clone())).build())
        };
        let client = fenced(request_config.clone()).map_err(ClusterError::Client)?;
        // Evictions are refused with 429 while a PodDisruptionBudget allows no disruption; kube
        // would retry that by itself for minutes, hiding the refusal the recreate reports.
        request_config.default_retry = false;
        let eviction_client = fenced(request_config).map_err(ClusterError::Client)?;
        Ok(Cluster {
            client,
            lease_client,
            fence,
            watch_client,
            eviction_client,
            instance: instance.to_string(),
            listing,
            events: events::Events::new(instance),
        })
    }

    /// A cluster whose requests, lease requests and watches share `client`, never fenced,
    /// listing across all namespaces.
    pub fn new(client: kube::Client, instance: &str) -> Cluster {
        Cluster {
            watch_client: client.clone(),
            eviction_client: client.clone(),
            lease_client: client.clone(),
            fence: Fence::always_open(),
            client,
            instance: instance.to_string(),
            listing: Listing::AllNamespaces,
            events: events::Events::new(instance),
        }
    }

    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The client for the leader lease: not fenced.
    pub fn lease_client(&self) -> &kube::Client {
        &self.lease_client
    }

    /// The fence every write of [`Cluster::client`] passes.
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Where this cluster lists the objects berth owns.
    pub fn listing(&self) -> &Listing {
        &self.listing
    }
}

/// The API server address the kubeconfig names for `context` (its current context when None),
/// for messages about a server that does not answer.
pub fn api_server(context: Option<&str>) -> Option<String> {
    let mut kubeconfig = Kubeconfig::read().ok()?;
    selected_cluster(&mut kubeconfig, context)?.server.clone()
}

/// The warning for a kubeconfig whose selected cluster (that of `context`, else of the current
/// context) sets `insecure-skip-tls-verify: true`; None when it verifies the server.
fn skips_tls_verification(kubeconfig: &Kubeconfig, context: Option<&str>) -> Option<String> {
    let name = selected_cluster_name(kubeconfig, context)?;
    let cluster = kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == name)?
        .cluster
        .as_ref()?;
    (cluster.insecure_skip_tls_verify == Some(true)).then(|| {
        format!(
            "the kubeconfig's cluster {name} skips TLS verification (insecure-skip-tls-verify); \
             berth cannot tell the API server from an impostor"
        )
    })
}

/// Says `warning` once per process, however often the process connects. The daemon logs
/// through tracing (its subscriber is set before it connects); the commands have none and
/// print to stderr like their other warnings.
fn warn_once(warning: &str) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        if tracing::dispatcher::has_been_set() {
            tracing::warn!("{warning}");
        } else {
            eprintln!("warning: {warning}");
        }
    });
}

/// The name of the cluster entry of `context` (the current context when None), as kube selects
/// it.
fn selected_cluster_name(kubeconfig: &Kubeconfig, context: Option<&str>) -> Option<String> {
    Some(selected_context(kubeconfig, context)?.cluster.clone())
}

/// The context entry `context` names (the current context when None), as kube selects it.
fn selected_context<'k>(
    kubeconfig: &'k Kubeconfig,
    context: Option<&str>,
) -> Option<&'k kube::config::Context> {
    let name = context.or(kubeconfig.current_context.as_deref())?;
    kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == name)?
        .context
        .as_ref()
}

/// For the `oidc` auth provider of `context`'s user (the current context when None): gives a
/// public client (no `client-secret`, as kubectl allows) the empty secret kube needs to refresh
/// its ID token at all (it then authenticates as `client-id:`, as kubectl does), and returns the
/// provider's issuer URL, for the error when a refresh fails.
fn public_oidc_client(kubeconfig: &mut Kubeconfig, context: Option<&str>) -> Option<String> {
    let user = selected_context(kubeconfig, context)?.user.clone()?;
    let provider = kubeconfig
        .auth_infos
        .iter_mut()
        .find(|a| a.name == user)?
        .auth_info
        .as_mut()?
        .auth_provider
        .as_mut()
        .filter(|p| p.name == "oidc")?;
    provider
        .config
        .entry("client-secret".to_string())
        .or_default();
    Some(
        provider
            .config
            .get("idp-issuer-url")
            .cloned()
            .unwrap_or_default(),
    )
}

/// The cluster entry of `context` (the current context when None), as kube selects it.
fn selected_cluster<'k>(
    kubeconfig: &'k mut Kubeconfig,
    context: Option<&str>,
) -> Option<&'k mut kube::config::Cluster> {
    let cluster_name = selected_cluster_name(kubeconfig, context)?;
    kubeconfig
        .clusters
        .iter_mut()
        .find(|c| c.name == cluster_name)?
        .cluster
        .as_mut()
}

/// The config repo's commit when `dir` is inside a git checkout.
pub fn head_commit(dir: &Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--verify", "--quiet", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let commit = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !commit.is_empty()).then_some(commit)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = "
apiVersion: v1
kind: Config
current-context: lab
clusters:
- name: lab
  cluster:
    server: https://127.0.0.1:6443
    insecure-skip-tls-verify: true
- name: prod
  cluster:
    server: https://10.0.0.1:6443
contexts:
- name: lab
  context: { cluster: lab, user: me }
- name: prod
  context: { cluster: prod, user: me }
users:
- name: me
  user: { token: x }
";

    /// Issue 13: a kubeconfig that disables TLS verification is said out loud.
    #[test]
    fn a_cluster_that_skips_tls_verification_is_warned_about() {
        let kubeconfig = Kubeconfig::from_yaml(KUBECONFIG).expect("kubeconfig");
        assert_eq!(
            skips_tls_verification(&kubeconfig, None).as_deref(),
            Some(
                "the kubeconfig's cluster lab skips TLS verification \
                 (insecure-skip-tls-verify); berth cannot tell the API server from an impostor"
            )
        );
        assert_eq!(
            skips_tls_verification(&kubeconfig, Some("lab")),
            skips_tls_verification(&kubeconfig, None)
        );
        assert_eq!(skips_tls_verification(&kubeconfig, Some("prod")), None);
        assert_eq!(skips_tls_verification(&kubeconfig, Some("missing")), None);
    }

    /// Issue 13: a public OIDC client (no `client-secret`, as kubectl allows) can refresh.
    #[test]
    fn a_public_oidc_client_gets_an_empty_secret_and_its_issuer_is_named() {
        let with_oidc = |secret: &str| {
            KUBECONFIG.replace(
                "user: { token: x }",
                &format!(
                    "user: {{ auth-provider: {{ name: oidc, config: {{ client-id: berth, \
                     idp-issuer-url: 'https://idp.example.com'{secret} }} }} }}"
                ),
            )
        };
        let config_of = |k: &Kubeconfig| {
            k.auth_infos[0]
                .auth_info
                .as_ref()
                .and_then(|a| a.auth_provider.as_ref())
                .map(|p| p.config.clone())
                .unwrap_or_default()
        };
        let mut public = Kubeconfig::from_yaml(&with_oidc("")).expect("kubeconfig");
        assert_eq!(
            public_oidc_client(&mut public, None).as_deref(),
            Some("https://idp.example.com")
        );
        assert_eq!(
            config_of(&public).get("client-secret").map(String::as_str),
            Some("")
        );

        let mut confidential =
            Kubeconfig::from_yaml(&with_oidc(", client-secret: s3cret")).expect("kubeconfig");
        public_oidc_client(&mut confidential, Some("prod"));
        assert_eq!(
            config_of(&confidential)
                .get("client-secret")
                .map(String::as_str),
            Some("s3cret")
        );

        let mut token = Kubeconfig::from_yaml(KUBECONFIG).expect("kubeconfig");
        assert_eq!(public_oidc_client(&mut token, None), None);
    }
}
