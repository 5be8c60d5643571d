//! The daemon config (config/berth.toml): which berth instance this is, defaults for specs, the
//! cluster profile, safety limits, and the daemon's own settings. Raw TOML → validated [`Config`],
//! unknown keys rejected with the same diagnostics as specs. [`Config::default()`] is what berth
//! uses when no file is given.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::spec::Diagnostic;
use crate::spec::names;

mod safety;

use safety::{check_host_path_prefix, check_namespace_pattern, check_service_account_pattern};

/// Validated daemon config.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    /// Name of this berth instance. It goes into the `berth.dev/instance` ownership label and the
    /// `app.kubernetes.io/instance` selector label, so two config repos (two instances) never
    /// touch each other's objects. Part of every selector: changing it means recreating apps.
    pub instance: String,
    pub profile: Profile,
    /// The spec directory for `berth watch` when none is given on the command line
    /// (relative paths are resolved against the config file's directory).
    pub dir: Option<PathBuf>,
    /// Kubeconfig context (default: the current context).
    pub context: Option<String>,
    /// Full resync interval of the daemon, on top of file events and watches.
    pub resync: Duration,
    /// What the daemon does when a managed object is edited by hand.
    pub drift: DriftMode,
    /// Address of /healthz, /readyz and /metrics.
    pub admin_addr: SocketAddr,
    pub defaults: Defaults,
    pub safety: Safety,
    pub leader_election: LeaderElection,
    /// Webhooks the daemon tells about failures, blocks, holds, health and drift (`[[notify]]`).
    pub notify: Vec<crate::notice::Target>,
}

/// Defaults applied to every spec that does not set the field itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Defaults {
    pub namespace: String,
    /// Image pull secrets (the seed's platform uses "default-secret"; empty unless configured).
    pub pull_secrets: Vec<String>,
    /// Labels added to every object and pod (a spec's own labels win on conflict).
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Safety {
    /// Most apps removed in one run without an explicit confirmation: a bad checkout that
    /// deletes files must not stop a fleet.
    pub max_removals: usize,
    /// The window `max_removals` counts over: removals started within it, by any run of berth
    /// (`apply` or a daemon, either HA instance), count against the same budget.
    pub removal_window: Duration,
    /// Where the removal ledger lives (a Lease named `berth-removals-<instance>`): the budget's
    /// count and the holds that only a person releases.
    pub namespace: String,
    /// Namespaces a spec may put an app into: glob patterns (`*` any run of characters, `?` one
    /// character). The [`SYSTEM_NAMESPACES`] are refused unless named exactly: whoever can commit
    /// to the config repo must not reach the control plane's own namespaces through `*`.
    pub namespaces: Vec<String>,
    /// Directories a `host_path` volume may use, each allowing itself and everything under it
    /// (whole path components: `/srv` allows `/srv/a`, not `/srvx`). Empty: no `host_path` at
    /// all, since a host path of `/` hands the node to whoever commits a spec.
    pub host_path: Vec<String>,
    /// ServiceAccounts a spec may name: glob patterns over the name, or over `namespace/name`
    /// when the pattern has a `/`. Empty: only the namespace's `default` account, which is what
    /// a spec without `service_account` gets anyway.
    pub service_accounts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaderElection {
    pub enabled: bool,
    /// Namespace of the Lease object.
    pub namespace: String,
    pub lease_name: String,
    pub lease_duration: Duration,
    /// Identity of this replica; default: the host name.
    pub identity: Option<String>,
}

/// The kind of cluster: some managed clusters reject fields (autopilot clusters reject affinity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    #[default]
    Standard,
    Autopilot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DriftMode {
    /// Re-apply the spec when a managed object drifts.
    #[default]
    Correct,
    /// Only report drift (log and metric).
    Report,
}

pub const DEFAULT_INSTANCE: &str = "default";
pub const DEFAULT_NAMESPACE: &str = "default";
pub const DEFAULT_MAX_REMOVALS: usize = 2;
/// Namespaces of the cluster itself (control plane, public cluster info, node heartbeats): a
/// spec may use one only when `safety.namespaces` names it exactly.
pub const SYSTEM_NAMESPACES: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];

impl Default for Config {
    fn default() -> Config {
        Config {
            instance: DEFAULT_INSTANCE.to_string(),
            profile: Profile::Standard,
            dir: None,
            context: None,
            resync: Duration::from_secs(300),
            drift: DriftMode::Correct,
            admin_addr: SocketAddr::from(([127, 0, 0, 1], 9464)),
            defaults: Defaults {
                namespace: DEFAULT_NAMESPACE.to_string(),
                pull_secrets: Vec::new(),
                labels: BTreeMap::new(),
            },
            safety: Safety {
                max_removals: DEFAULT_MAX_REMOVALS,
                removal_window: Duration::from_secs(3600),
                namespace: DEFAULT_NAMESPACE.to_string(),
                namespaces: vec!["*".to_string()],
                host_path: Vec::new(),
                service_accounts: Vec::new(),
            },
            leader_election: LeaderElection {
                enabled: false,
                namespace: DEFAULT_NAMESPACE.to_string(),
                lease_name: "berth".to_string(),
                lease_duration: Duration::from_secs(15),
                identity: None,
            },
            notify: Vec::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    instance: Option<Spanned<String>>,
    profile: Option<Spanned<Profile>>,
    dir: Option<Spanned<String>>,
    context: Option<Spanned<String>>,
    resync: Option<Spanned<String>>,
    drift: Option<Spanned<DriftMode>>,
    admin_addr: Option<Spanned<String>>,
    defaults: Option<RawDefaults>,
    safety: Option<RawSafety>,
    leader_election: Option<RawLeaderElection>,
    notify: Option<Vec<crate::notice::RawTarget>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    namespace: Option<Spanned<String>>,
    pull_secrets: Option<Vec<Spanned<String>>>,
    labels: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSafety {
    max_removals: Option<Spanned<i64>>,
    removal_window: Option<Spanned<String>>,
    namespace: Option<Spanned<String>>,
    namespaces: Option<Vec<Spanned<String>>>,
    host_path: Option<Vec<Spanned<String>>>,
    service_accounts: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLeaderElection {
    enabled: Option<bool>,
    namespace: Option<Spanned<String>>,
    lease_name: Option<Spanned<String>>,
    lease_duration: Option<Spanned<String>>,
    identity: Option<Spanned<String>>,
}

impl Config {
    /// Read and validate a config file. All problems are returned at once.
    pub fn load(path: &Path) -> Result<Config, Vec<Diagnostic>> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![Diagnostic::error(
                path,
                "config-read",
                format!("cannot read the config file: {e}"),
            )]
        })?;
        Config::parse(path, &text)
    }

    /// Validate config text; `path` is used in diagnostics and to resolve a relative `dir`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, Vec<Diagnostic>> {
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| vec![crate::spec::parse::to_diagnostic(path, text, &e)])?;
        let mut diags = Vec::new();
        let mut cfg = Config::default();
        let err = |span: std::ops::Range<usize>,
                   rule: &'static str,
                   msg: String,
                   label: String,
                   help: &str| {
            Diagnostic::error(path, rule, msg)
                .at(text, span)
                .label(label)
                .help(help.to_string())
        };

        // A Kubernetes name checked by `check` (a names:: rule); None after a diagnostic.
        let name = |diags: &mut Vec<Diagnostic>,
                    value: &Spanned<String>,
                    check: fn(&str) -> Vec<String>,
                    rule: &'static str,
                    what: &str,
                    help: &str| {
            let errs = check(value.get_ref());
            if errs.is_empty() {
                return Some(value.get_ref().clone());
            }
            diags.push(err(
                value.span(),
                rule,
                format!("invalid {what} `{}`", value.get_ref()),
                errs.join("; "),
                help,
            ));
            None
        };
        // Every namespace in the config (defaults, the ledger's, the lease's) follows one rule.
        let namespace = |diags: &mut Vec<Diagnostic>, value: &Spanned<String>| {
            name(
                diags,
                value,
                names::dns1123_label,
                "namespace",
                "namespace",
                NAMESPACE_HELP,
            )
        };
        // A duration of at least `min`; None after a diagnostic. `key` names it in the messages.
        let duration = |diags: &mut Vec<Diagnostic>,
                        value: &Spanned<String>,
                        key: &str,
                        min: Duration,
                        example: &str| {
            let help = format!("e.g. {key} = \"{example}\"");
            let (message, label) = match humantime::parse_duration(value.get_ref()) {
                Ok(d) if d >= min => return Some(d),
                Ok(_) => (
                    format!("`{key}` must be at least {}s", min.as_secs()),
                    "too short".to_string(),
                ),
                Err(e) => (format!("`{key}` is not a duration"), e.to_string()),
            };
            diags.push(err(value.span(), "duration", message, label, &help));
            None
        };

        if let Some(i) = raw.instance {
            // The same rule as `check_instance`, for `--instance`.
            if let Some(v) = name(
                &mut diags,
                &i,
                names::dns1123_label,
                "instance",
                "instance name",
                NAMESPACE_HELP,
            ) {
                cfg.instance = v;
            }
        }
        if let Some(p) = raw.profile {
            cfg.profile = *p.get_ref();
        }
        if let Some(d) = raw.dir {
            let dir = PathBuf::from(d.get_ref());
            // Relative to the config file, so a checked-in config works from any working directory.
            cfg.dir = Some(match path.parent() {
                Some(parent) if dir.is_relative() => parent.join(dir),
                _ => dir,
            });
        }
        cfg.context = raw
            .context
            .map(|c| c.into_inner())
            .filter(|c| !c.is_empty());
        if let Some(r) = raw.resync
            && let Some(v) = duration(&mut diags, &r, "resync", Duration::from_secs(1), "5m")
        {
            cfg.resync = v;
        }
        if let Some(d) = raw.drift {
            cfg.drift = *d.get_ref();
        }
        if let Some(a) = raw.admin_addr {
            match a.get_ref().parse::<SocketAddr>() {
                Ok(addr) => cfg.admin_addr = addr,
                Err(e) => diags.push(err(
                    a.span(),
                    "admin-addr",
                    "`admin_addr` is not an address with a port".into(),
                    e.to_string(),
                    "e.g. admin_addr = \"127.0.0.1:9464\" or \"[::]:9464\"",
                )),
            }
        }
        // Where the default namespace was set, for the allowlist check at the end.
        let mut default_namespace_span = None;
        if let Some(d) = raw.defaults {
            if let Some(ns) = d.namespace
                && let Some(v) = namespace(&mut diags, &ns)
            {
                default_namespace_span = Some(ns.span());
                cfg.defaults.namespace = v;
            }
            if let Some(ps) = d.pull_secrets {
                for s in &ps {
                    name(
                        &mut diags,
                        s,
                        names::dns1123_subdomain,
                        "pull-secret",
                        "pull secret name",
                        "name a Secret of type kubernetes.io/dockerconfigjson",
                    );
                }
                cfg.defaults.pull_secrets = ps.into_iter().map(|s| s.into_inner()).collect();
            }
            for (k, v) in d.labels.into_iter().flatten() {
                let mut errs = names::qualified_name(k.get_ref());
                errs.extend(names::label_value(v.get_ref()));
                if crate::labels::RESERVED_LABEL_KEYS.contains(&k.get_ref().as_str())
                    || k.get_ref().starts_with(crate::labels::RESERVED_PREFIX)
                {
                    errs.push("this label is set by berth itself".into());
                }
                if errs.is_empty() {
                    cfg.defaults.labels.insert(k.into_inner(), v.into_inner());
                } else {
                    diags.push(err(
                        k.span(),
                        "label",
                        format!("invalid default label `{}`", k.get_ref()),
                        errs.join("; "),
                        "label keys and values follow Kubernetes label syntax",
                    ));
                }
            }
        }
        if let Some(s) = raw.safety {
            if let Some(m) = s.max_removals {
                match usize::try_from(*m.get_ref()) {
                    Ok(v) => cfg.safety.max_removals = v,
                    Err(_) => diags.push(err(
                        m.span(),
                        "safety",
                        "`max_removals` must be 0 or more".into(),
                        "negative".into(),
                        "0 makes every removal need confirmation",
                    )),
                }
            }
            if let Some(w) = s.removal_window
                && let Some(v) = duration(
                    &mut diags,
                    &w,
                    "removal_window",
                    Duration::from_secs(1),
                    "1h",
                )
            {
                cfg.safety.removal_window = v;
            }
            if let Some(ns) = s.namespace
                && let Some(v) = namespace(&mut diags, &ns)
            {
                cfg.safety.namespace = v;
            }
            let mut reach = |list: Vec<Spanned<String>>,
                             check: fn(&str) -> Result<String, String>,
                             key: &str,
                             example: &str| {
                let mut out = Vec::new();
                for entry in list {
                    match check(entry.get_ref()) {
                        Ok(v) => out.push(v),
                        Err(why) => diags.push(err(
                            entry.span(),
                            "safety",
                            format!("invalid `{key}` entry `{}`", entry.get_ref()),
                            why,
                            &format!("e.g. {key} = {example}"),
                        )),
                    }
                }
                out
            };
            if let Some(list) = s.namespaces {
                cfg.safety.namespaces = reach(
                    list,
                    check_namespace_pattern,
                    "namespaces",
                    "[\"db\", \"team-*\"]",
                );
            }
            if let Some(list) = s.host_path {
                cfg.safety.host_path =
                    reach(list, check_host_path_prefix, "host_path", "[\"/srv/data\"]");
            }
            if let Some(list) = s.service_accounts {
                cfg.safety.service_accounts = reach(
                    list,
                    check_service_account_pattern,
                    "service_accounts",
                    "[\"mysql\", \"team-a/*\"]",
                );
            }
        }
        // A default namespace given here must be allowed; the built-in one may be replaced by
        // `--namespace` (checked there), and otherwise each spec that lands in it says so.
        if let Some(span) = default_namespace_span
            && !cfg.safety.allows_namespace(&cfg.defaults.namespace)
        {
            diags.push(err(
                span,
                "namespace-not-allowed",
                format!(
                    "the default namespace `{}` is not allowed by `safety.namespaces`",
                    cfg.defaults.namespace
                ),
                "specs without `namespace` would go there".into(),
                "set `defaults.namespace` to a namespace `safety.namespaces` allows, or allow it",
            ));
        }
        if let Some(le) = raw.leader_election {
            let l = &mut cfg.leader_election;
            l.enabled = le.enabled.unwrap_or(false);
            if let Some(ns) = le.namespace
                && let Some(v) = namespace(&mut diags, &ns)
            {
                l.namespace = v;
            }
            if let Some(n) = le.lease_name
                && let Some(v) = name(
                    &mut diags,
                    &n,
                    names::dns1123_subdomain,
                    "lease-name",
                    "Lease name",
                    "use lowercase letters, digits, '-' and '.'",
                )
            {
                l.lease_name = v;
            }
            if let Some(d) = le.lease_duration
                && let Some(v) = duration(
                    &mut diags,
                    &d,
                    "lease_duration",
                    Duration::from_secs(2),
                    "15s",
                )
            {
                l.lease_duration = v;
            }
            l.identity = le
                .identity
                .map(|i| i.into_inner())
                .filter(|i| !i.is_empty());
        }
        if let Some(targets) = raw.notify {
            cfg.notify = crate::notice::parse_targets(path, text, targets, &mut diags);
        }
        if diags.is_empty() {
            Ok(cfg)
        } else {
            Err(diags)
        }
    }

    /// Command-line override of `defaults.namespace`.
    pub fn override_namespace(&mut self, namespace: &str) -> Result<(), String> {
        let errs = names::dns1123_label(namespace);
        if !errs.is_empty() {
            return Err(format!(
                "invalid namespace `{namespace}`: {}",
                errs.join("; ")
            ));
        }
        if !self.safety.allows_namespace(namespace) {
            return Err(format!(
                "namespace `{namespace}` is not allowed by `safety.namespaces` in the daemon config"
            ));
        }
        self.defaults.namespace = namespace.to_string();
        Ok(())
    }

    /// Command-line override of `instance`.
    pub fn override_instance(&mut self, instance: &str) -> Result<(), String> {
        check_instance(instance).map_err(|e| format!("invalid instance name `{instance}`: {e}"))?;
        self.instance = instance.to_string();
        Ok(())
    }
}

/// How to write a valid namespace name.
const NAMESPACE_HELP: &str = "use 1 to 63 lowercase letters, digits and '-'";

/// The instance name is a label value in selectors and ownership labels; a DNS label keeps it
/// usable in object names too should that ever be needed.
fn check_instance(s: &str) -> Result<(), String> {
    let errs = names::dns1123_label(s);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}

#[cfg(test)]
impl Config {
    /// The config of tests/fixtures/berth.toml, which the fixtures are checked with.
    pub(crate) fn fixtures() -> Config {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/berth.toml");
        Config::load(&path).unwrap_or_else(|d| panic!("{d:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, Vec<Diagnostic>> {
        Config::parse(Path::new("/etc/berth/berth.toml"), text)
    }

    #[test]
    fn default_needs_no_file() {
        let c = Config::default();
        assert_eq!(c.instance, "default");
        assert_eq!(c.defaults.namespace, "default");
        assert!(c.defaults.pull_secrets.is_empty());
        assert_eq!(c.safety.max_removals, 2);
        assert_eq!(c.profile, Profile::Standard);
        assert_eq!(parse("").ok(), Some(Config::default()));
    }

    #[test]
    fn example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/berth.toml");
        let c = Config::load(&path).unwrap_or_else(|d| panic!("{d:?}"));
        assert_eq!(c.defaults.pull_secrets, vec!["default-secret".to_string()]);
        assert_eq!(c.safety.max_removals, 2);
        assert_eq!(
            c.dir,
            Some(path.parent().map(|p| p.join("apps")).unwrap_or_default())
        );
    }

    #[test]
    fn all_fields() {
        let c = parse(
            r#"
instance = "blue"
profile = "autopilot"
dir = "apps"
context = "prod"
resync = "10m"
drift = "report"
admin_addr = "0.0.0.0:9000"
[defaults]
namespace = "db"
pull_secrets = ["default-secret"]
labels = { team = "dba" }
[safety]
max_removals = 5
removal_window = "30m"
namespace = "berth"
[leader_election]
enabled = true
namespace = "berth"
lease_name = "berth-blue"
lease_duration = "20s"
identity = "bastion-1"
"#,
        )
        .unwrap_or_else(|d| panic!("{d:?}"));
        assert_eq!(c.instance, "blue");
        assert_eq!(c.profile, Profile::Autopilot);
        assert_eq!(c.dir, Some(PathBuf::from("/etc/berth/apps")));
        assert_eq!(c.context.as_deref(), Some("prod"));
        assert_eq!(c.resync, Duration::from_secs(600));
        assert_eq!(c.drift, DriftMode::Report);
        assert_eq!(
            c.defaults.labels.get("team").map(String::as_str),
            Some("dba")
        );
        assert_eq!(c.safety.max_removals, 5);
        assert_eq!(c.safety.removal_window, Duration::from_secs(1800));
        assert_eq!(c.safety.namespace, "berth");
        assert!(c.leader_election.enabled);
        assert_eq!(c.leader_election.lease_duration, Duration::from_secs(20));
    }

    #[test]
    fn unknown_key_suggests() {
        let d = parse("instanse = \"x\"\n").err().unwrap_or_default();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].rule, "unknown-key");
        assert_eq!(d[0].help.as_deref(), Some("did you mean `instance`?"));
        let d = parse("[safety]\nmax_removal = 1\n")
            .err()
            .unwrap_or_default();
        assert_eq!(d[0].help.as_deref(), Some("did you mean `max_removals`?"));
    }

    #[test]
    fn bad_values_are_all_reported() {
        let d = parse(
            "instance = \"Blue\"\nresync = \"soon\"\nadmin_addr = \"localhost\"\n[defaults]\nnamespace = \"-x\"\nlabels = { \"berth.dev/x\" = \"y\" }\n[safety]\nmax_removals = -1\n",
        )
        .err()
        .unwrap_or_default();
        let rules: Vec<&str> = d.iter().map(|d| d.rule).collect();
        assert_eq!(
            rules,
            [
                "instance",
                "duration",
                "admin-addr",
                "namespace",
                "label",
                "safety"
            ]
        );
    }

    #[test]
    fn overrides_are_checked() {
        let mut c = Config::default();
        assert!(c.override_namespace("db").is_ok());
        assert_eq!(c.defaults.namespace, "db");
        assert!(c.override_namespace("Bad").is_err());
        assert!(c.override_instance("green").is_ok());
        assert!(c.override_instance("").is_err());
        assert_eq!(c.instance, "green");
    }
}
