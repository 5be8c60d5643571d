//! [`RawApp`] → [`App`]: every rule of DESIGN.md's validation list, each problem a diagnostic with
//! the span of the offending value, all of them collected. Rules that span files (duplicate apps,
//! clashing Service names) live in [`super::load_dir`].

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use super::app::*;
use super::diag::Diagnostic;
use super::names;
use super::quantity::Quantity;
use super::raw::*;
use crate::config::{Config, Profile};

/// Label keys berth sets itself; a spec must not set them (they would fight selectors and ownership).
pub const RESERVED_LABEL_KEYS: [&str; 4] = [
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
    "berth.dev/instance",
];
/// Prefix of berth's own labels and annotations.
pub const RESERVED_PREFIX: &str = "berth.dev/";

/// Node ports the API server accepts by default (--service-node-port-range).
pub const NODE_PORT_RANGE: std::ops::RangeInclusive<i64> = 30000..=32767;

/// Downward-API field paths an env var may reference (`field = "..."`), besides
/// `metadata.labels['k']` and `metadata.annotations['k']`.
const FIELD_PATHS: [&str; 9] = [
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// What validation needs besides the raw spec.
pub struct Input<'a> {
    pub path: &'a Path,
    pub source: &'a str,
    /// The spec file relative to the spec directory.
    pub source_path: &'a Path,
    /// The file stem: the app name unless the spec sets `name`.
    pub stem: &'a str,
    pub config: &'a Config,
    /// Paths pruned by the parser (already reported); rules that would only repeat them are skipped.
    pub pruned: &'a BTreeSet<String>,
}

struct Ctx<'a> {
    input: &'a Input<'a>,
    diags: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn error(
        &self,
        rule: &'static str,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic::error(self.input.path, rule, message).at(self.input.source, span)
    }

    fn warning(
        &self,
        rule: &'static str,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic::warning(self.input.path, rule, message).at(self.input.source, span)
    }

    fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn pruned(&self, path: &str) -> bool {
        self.input.pruned.contains(path)
    }

    /// Report a name check's problems (Kubernetes wording) as one diagnostic.
    fn name(
        &mut self,
        rule: &'static str,
        what: &str,
        value: &str,
        span: Range<usize>,
        errs: Vec<String>,
        help: &str,
    ) -> bool {
        if errs.is_empty() {
            return true;
        }
        let d = self
            .error(rule, span, format!("invalid {what} `{value}`"))
            .label(errs.join("; "))
            .help(help.to_string());
        self.push(d);
        false
    }
}

/// The span of a value given in a string-or-table form: the inner span when the table form gave
/// one, the whole value's span otherwise.
fn pick(inner: Range<usize>, outer: Range<usize>) -> Range<usize> {
    if inner.is_empty() && inner.start == 0 {
        outer
    } else {
        inner
    }
}

const NAME_HELP: &str = "use 1 to 63 lowercase letters, digits and '-', starting with a letter and ending with a letter or digit";

/// Validate one parsed spec. Returns the app when there is no error, and every diagnostic
/// (warnings included) either way.
pub fn validate(raw: &RawApp, input: &Input<'_>) -> (Option<App>, Vec<Diagnostic>) {
    let mut cx = Ctx {
        input,
        diags: Vec::new(),
    };
    let app = build(&mut cx, raw);
    let has_error = cx.diags.iter().any(Diagnostic::is_error);
    (if has_error { None } else { Some(app) }, cx.diags)
}

fn build(cx: &mut Ctx<'_>, raw: &RawApp) -> App {
    let config = cx.input.config;

    // --- identity
    let name = match &raw.name {
        Some(n) => {
            check_app_name(cx, n.get_ref(), Some(n.span()));
            n.get_ref().clone()
        }
        None => {
            let stem = cx.input.stem.to_string();
            check_app_name(cx, &stem, None);
            stem
        }
    };
    let namespace = match &raw.namespace {
        Some(ns) => {
            let errs = names::dns1123_label(ns.get_ref());
            cx.name("namespace", "namespace", ns.get_ref(), ns.span(), errs, "use 1 to 63 lowercase letters, digits and '-', starting and ending with a letter or digit");
            ns.get_ref().clone()
        }
        None => config.defaults.namespace.clone(),
    };

    let replicas = match &raw.replicas {
        Some(r) => match i32::try_from(*r.get_ref()) {
            Ok(v) if v >= 0 => v,
            _ => {
                let d = cx
                    .error("replicas", r.span(), format!("replicas must be between 0 and {}", i32::MAX))
                    .label("out of range")
                    .help("use a whole number of pods, 0 or more (0 stops the app but keeps its volumes)");
                cx.push(d);
                0
            }
        },
        None => 1,
    };
    let pod_management = raw
        .pod_management
        .as_ref()
        .map_or(PodManagement::Ordered, |p| *p.get_ref());
    let update = update_strategy(cx, raw.update.as_ref());

    let mut labels = config.defaults.labels.clone();
    labels.extend(label_map(cx, raw.labels.as_ref(), "label"));
    let annotations = annotation_map(cx, raw.annotations.as_ref());

    let pull_secrets = match &raw.pull_secrets {
        Some(list) => {
            for s in list.get_ref() {
                let errs = names::dns1123_subdomain(s.get_ref());
                cx.name("pull-secret", "pull secret name", s.get_ref(), s.span(), errs, "name an existing Secret of type kubernetes.io/dockerconfigjson in the app's namespace");
            }
            list.get_ref().iter().map(|s| s.get_ref().clone()).collect()
        }
        None => config.defaults.pull_secrets.clone(),
    };

    let run_as_user = id_field(cx, raw.run_as_user.as_ref(), "run_as_user");
    let fs_group = id_field(cx, raw.fs_group.as_ref(), "fs_group");
    let dns = raw.dns.as_ref().map(|d| dns_config(cx, d));

    let headless = match &raw.headless {
        Some(h) => {
            let errs = names::dns1035_label(h.get_ref());
            cx.name(
                "service-name",
                "headless Service name",
                h.get_ref(),
                h.span(),
                errs,
                NAME_HELP,
            );
            h.get_ref().clone()
        }
        None => format!("{name}-headless"),
    };
    let termination_grace_seconds = raw
        .termination_grace
        .as_ref()
        .and_then(|t| seconds(cx, t, 0, "termination_grace"))
        .map(i64::from);
    let service_account = raw.service_account.as_ref().map(|s| {
        let errs = names::dns1123_subdomain(s.get_ref());
        cx.name(
            "service-account",
            "service account name",
            s.get_ref(),
            s.span(),
            errs,
            "name a ServiceAccount in the app's namespace",
        );
        s.get_ref().clone()
    });
    let node_selector = label_map(cx, raw.node_selector.as_ref(), "node-selector");
    let spread = raw.spread.as_ref().map(|s| {
        if config.profile == Profile::Autopilot {
            let d = cx
                .error("profile-forbids", s.span(), "`spread` is not allowed on this cluster profile")
                .label("renders pod anti-affinity, which autopilot clusters reject")
                .help("remove `spread`; the daemon config sets `profile = \"autopilot\"`, and such clusters place pods themselves");
            cx.push(d);
        }
        *s.get_ref()
    });
    let disruption_budget = raw
        .disruption_budget
        .as_ref()
        .and_then(|b| disruption_budget(cx, b));

    // --- volumes first: mounts refer to them
    let volumes = volumes(cx, raw.volumes.as_ref());
    let declared: BTreeSet<&str> = volumes.iter().map(|v| v.name.as_str()).collect();
    let mut declared_volumes: BTreeSet<String> = declared.iter().map(|s| s.to_string()).collect();
    // Volumes pruned by the parser still count as declared: their error is already reported.
    if let Some(vs) = &raw.volumes {
        for (k, _) in &vs.get_ref().0 {
            declared_volumes.insert(k.get_ref().clone());
        }
    }

    // --- containers
    let mut seen_names: BTreeMap<String, Range<usize>> = BTreeMap::new();
    let init_containers = containers(
        cx,
        raw.init_containers.as_ref(),
        true,
        &declared_volumes,
        &mut seen_names,
    );
    let containers_list = containers(
        cx,
        raw.containers.as_ref(),
        false,
        &declared_volumes,
        &mut seen_names,
    );
    if raw
        .containers
        .as_ref()
        .is_none_or(|c| c.get_ref().0.is_empty())
        && !cx.pruned("containers")
    {
        let d = match &raw.containers {
            Some(c) => cx.error("containers-required", c.span(), "the app has no containers"),
            None => Diagnostic::error(
                cx.input.path,
                "containers-required",
                "the app has no containers",
            ),
        }
        .help("declare at least one, e.g.\n      [containers.app]\n      image = \"nginx:1.27\"");
        cx.push(d);
    }
    port_conflicts(cx, raw.containers.as_ref());

    // Volumes nobody mounts are almost always a typo in `mounts`. Read the mounts from the raw
    // spec: a container with an unrelated error still mounts what it names.
    let mounted: BTreeSet<&str> = [raw.init_containers.as_ref(), raw.containers.as_ref()]
        .into_iter()
        .flatten()
        .flat_map(|cs| cs.get_ref().0.iter())
        .flat_map(|(_, c)| {
            c.mounts
                .iter()
                .flat_map(|m| m.0.iter().map(|(k, _)| k.get_ref().as_str()))
        })
        .collect();
    let mounts_pruned = cx
        .input
        .pruned
        .iter()
        .any(|p| p.ends_with(".mounts") || p == "containers" || p == "init_containers");
    if let (Some(vs), false) = (&raw.volumes, mounts_pruned) {
        for (k, _) in &vs.get_ref().0 {
            if !mounted.contains(k.get_ref().as_str()) {
                let d = cx
                    .warning(
                        "unused-volume",
                        k.span(),
                        format!("volume `{}` is not mounted by any container", k.get_ref()),
                    )
                    .help(format!(
                        "add it to a container's `mounts`, e.g. mounts = {{ {} = \"/data\" }}",
                        k.get_ref()
                    ));
                cx.push(d);
            }
        }
    }

    let service = raw
        .service
        .as_ref()
        .map(|s| access_service(cx, s, &name, &headless, raw.containers.as_ref()));

    App {
        name,
        namespace,
        source_path: cx.input.source_path.to_path_buf(),
        replicas,
        pod_management,
        update,
        labels,
        annotations,
        pull_secrets,
        run_as_user,
        fs_group,
        dns,
        headless,
        termination_grace_seconds,
        service_account,
        node_selector,
        spread,
        disruption_budget,
        allow_recreate: raw.allow_recreate.as_ref().is_some_and(|b| *b.get_ref()),
        abandon_claims: raw.abandon_claims.as_ref().is_some_and(|b| *b.get_ref()),
        adopt: raw.adopt.as_ref().is_some_and(|b| *b.get_ref()),
        init_containers,
        containers: containers_list,
        volumes,
        service,
    }
}

fn check_app_name(cx: &mut Ctx<'_>, name: &str, span: Option<Range<usize>>) {
    let errs = names::app_name(name);
    if errs.is_empty() {
        return;
    }
    let too_long = name.chars().count() > names::APP_NAME_MAX;
    let help = if too_long {
        "use at most 52 characters: the StatefulSet controller labels every pod with `controller-revision-hash=<app>-<10-character hash>`, a label value may have at most 63 characters, and with a longer name the pods are never created (kubernetes issue 64023)".to_string()
    } else {
        NAME_HELP.to_string()
    };
    let d = match span {
        Some(span) => Diagnostic::error(
            cx.input.path,
            "app-name",
            format!("invalid app name `{name}`"),
        )
        .at(cx.input.source, span)
        .label(errs.join("; "))
        .help(help),
        None => Diagnostic::error(
            cx.input.path,
            "app-name",
            format!(
                "invalid app name `{name}` (taken from the file name): {}",
                errs.join("; ")
            ),
        )
        .help(format!(
            "{help}; rename the file or set `name = \"...\"` in it"
        )),
    };
    cx.push(d);
}

fn update_strategy(cx: &mut Ctx<'_>, raw: Option<&S<RawUpdate>>) -> UpdateStrategy {
    let Some(raw) = raw else {
        return UpdateStrategy::Rolling {
            partition: None,
            max_unavailable: None,
        };
    };
    let u = raw.get_ref();
    let kind = u
        .strategy
        .as_ref()
        .map_or(UpdateKind::Rolling, |k| *k.get_ref());
    let partition =
        u.partition
            .as_ref()
            .and_then(|p| match i32::try_from(*p.get_ref()) {
                Ok(v) if v >= 0 => Some(v),
                _ => {
                    let d = cx
                .error("update-strategy", p.span(), "partition must be 0 or more")
                .help("pods with an ordinal at or above the partition are updated; 0 updates all");
                    cx.push(d);
                    None
                }
            });
    let max_unavailable = u
        .max_unavailable
        .as_ref()
        .and_then(|m| int_or_percent(cx, m, 1, "update-strategy", "max_unavailable"));
    match kind {
        UpdateKind::Rolling => UpdateStrategy::Rolling {
            partition,
            max_unavailable,
        },
        UpdateKind::OnDelete => {
            for (field, span) in [
                ("partition", u.partition.as_ref().map(|p| p.span())),
                (
                    "max_unavailable",
                    u.max_unavailable.as_ref().map(|p| p.span()),
                ),
            ] {
                if let Some(span) = span {
                    let d = cx
                        .error(
                            "update-strategy",
                            span,
                            format!("`{field}` only applies to rolling updates"),
                        )
                        .help("remove it, or use strategy = \"rolling\"");
                    cx.push(d);
                }
            }
            UpdateStrategy::OnDelete
        }
    }
}

fn int_or_percent(
    cx: &mut Ctx<'_>,
    v: &S<IntOrStr>,
    min: i64,
    rule: &'static str,
    field: &str,
) -> Option<IntOrPercent> {
    match v.get_ref() {
        IntOrStr::Int(i) => match i32::try_from(*i) {
            Ok(n) if i64::from(n) >= min => Some(IntOrPercent::Int(n)),
            _ => {
                let d = cx
                    .error(rule, v.span(), format!("`{field}` must be at least {min}"))
                    .help("give a number of pods, or a percentage such as \"25%\"");
                cx.push(d);
                None
            }
        },
        IntOrStr::Str(s) => {
            let ok = s
                .strip_suffix('%')
                .and_then(|n| n.parse::<u32>().ok())
                .is_some_and(|n| n <= 100 && (i64::from(n) >= min || min == 0));
            if ok {
                Some(IntOrPercent::Percent(s.clone()))
            } else {
                let d = cx
                    .error(
                        rule,
                        v.span(),
                        format!("`{field}` must be a number of pods or a percentage"),
                    )
                    .label("not a percentage between 0% and 100%")
                    .help("write e.g. 1 or \"25%\"");
                cx.push(d);
                None
            }
        }
    }
}

fn label_map(
    cx: &mut Ctx<'_>,
    raw: Option<&StrMap>,
    rule: &'static str,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(raw) = raw else { return out };
    for (k, v) in raw {
        let key = k.get_ref();
        let errs = names::qualified_name(key);
        let mut ok = cx.name(rule, "label key", key, k.span(), errs, "a label key is an optional DNS subdomain prefix and '/', then a name of at most 63 letters, digits, '-', '_' or '.'");
        if rule == "label"
            && (RESERVED_LABEL_KEYS.contains(&key.as_str()) || key.starts_with(RESERVED_PREFIX))
        {
            let d = cx
                .error(rule, k.span(), format!("label `{key}` is set by berth"))
                .label("reserved")
                .help("berth sets this label itself (selector and ownership); choose another key");
            cx.push(d);
            ok = false;
        }
        let errs = names::label_value(v.get_ref());
        ok &= cx.name(rule, "label value", v.get_ref(), v.span(), errs, "a label value is empty or at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit");
        if ok {
            out.insert(key.clone(), v.get_ref().clone());
        }
    }
    out
}

fn annotation_map(cx: &mut Ctx<'_>, raw: Option<&StrMap>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(raw) = raw else { return out };
    for (k, v) in raw {
        let key = k.get_ref();
        let errs = names::qualified_name(key);
        cx.name("annotation", "annotation key", key, k.span(), errs, "an annotation key is an optional DNS subdomain prefix and '/', then a name of at most 63 letters, digits, '-', '_' or '.'");
        if key.starts_with(RESERVED_PREFIX) {
            let d = cx
                .error(
                    "annotation",
                    k.span(),
                    format!("annotation `{key}` is set by berth"),
                )
                .label("reserved")
                .help("keys under `berth.dev/` belong to berth; choose another key");
            cx.push(d);
        }
        out.insert(key.clone(), v.get_ref().clone());
    }
    out
}

fn id_field(cx: &mut Ctx<'_>, raw: Option<&S<i64>>, field: &str) -> Option<i64> {
    let v = raw?;
    if (0..=i64::from(i32::MAX)).contains(v.get_ref()) {
        Some(*v.get_ref())
    } else {
        let d = cx
            .error(
                "security-context",
                v.span(),
                format!("`{field}` must be between 0 and 2147483647"),
            )
            .label("out of range")
            .help("give a numeric user or group id, e.g. 999");
        cx.push(d);
        None
    }
}

fn dns_config(cx: &mut Ctx<'_>, raw: &S<RawDns>) -> Dns {
    let d = raw.get_ref();
    let policy = d.policy.as_ref().map(|p| *p.get_ref());
    let nameservers: Vec<String> = d
        .nameservers
        .iter()
        .flatten()
        .filter_map(|n| {
            if n.get_ref().parse::<std::net::IpAddr>().is_ok() {
                Some(n.get_ref().clone())
            } else {
                let diag = cx
                    .error(
                        "dns",
                        n.span(),
                        format!("nameserver `{}` is not an IP address", n.get_ref()),
                    )
                    .help("give IPv4 or IPv6 addresses, e.g. \"10.0.0.10\"");
                cx.push(diag);
                None
            }
        })
        .collect();
    if let Some(list) = &d.nameservers
        && list.len() > 3
        && let Some(extra) = list.get(3)
    {
        let diag = cx
            .error("dns", extra.span(), "at most 3 nameservers are allowed")
            .help("Kubernetes (like resolv.conf) uses only the first three; remove the rest");
        cx.push(diag);
    }
    if policy == Some(DnsPolicy::None)
        && nameservers.is_empty()
        && d.nameservers.as_ref().is_none_or(|n| n.is_empty())
    {
        let span = d.policy.as_ref().map_or(raw.span(), |p| p.span());
        let diag = cx
            .error("dns", span, "policy \"None\" needs at least one nameserver")
            .help("add nameservers = [\"...\"], or use policy = \"ClusterFirst\"");
        cx.push(diag);
    }
    let searches: Vec<String> = d
        .searches
        .iter()
        .flatten()
        .filter_map(|s| {
            let name = s.get_ref().trim_end_matches('.');
            let errs = names::dns1123_subdomain(name);
            cx.name(
                "dns",
                "search domain",
                s.get_ref(),
                s.span(),
                errs,
                "give DNS domains such as \"db.svc.cluster.local\"",
            )
            .then(|| s.get_ref().clone())
        })
        .collect();
    if let Some(list) = &d.searches
        && list.len() > 32
        && let Some(extra) = list.get(32)
    {
        let diag = cx
            .error("dns", extra.span(), "at most 32 search domains are allowed")
            .help("remove search domains");
        cx.push(diag);
    }
    let mut options = BTreeMap::new();
    for (k, v) in d.options.iter().flat_map(|o| o.0.iter()) {
        if k.get_ref().is_empty() {
            let diag = cx
                .error("dns", k.span(), "a DNS option needs a name")
                .help("e.g. options = { ndots = \"2\" }");
            cx.push(diag);
            continue;
        }
        let value = v.get_ref().0.clone();
        options.insert(k.get_ref().clone(), (!value.is_empty()).then_some(value));
    }
    Dns {
        policy,
        nameservers,
        searches,
        options,
    }
}

/// Parse a duration ("30s", "1m 30s") into whole seconds of at least `min`.
fn seconds(cx: &mut Ctx<'_>, raw: &S<String>, min: i32, field: &str) -> Option<i32> {
    let parsed: Result<Duration, String> = if raw.get_ref().trim_start().starts_with('-') {
        Err("a duration cannot be negative".into())
    } else {
        humantime::parse_duration(raw.get_ref()).map_err(|e| e.to_string())
    };
    match parsed {
        Err(e) => {
            let d = cx
                .error(
                    "duration",
                    raw.span(),
                    format!("`{field}` is not a duration"),
                )
                .label(e)
                .help("write a duration such as \"30s\", \"2m\" or \"1m 30s\"");
            cx.push(d);
            None
        }
        Ok(d) if d.subsec_nanos() != 0 => {
            let diag = cx
                .error(
                    "duration",
                    raw.span(),
                    format!("`{field}` must be a whole number of seconds"),
                )
                .label("Kubernetes counts this in seconds")
                .help("round to whole seconds, e.g. \"1s\"");
            cx.push(diag);
            None
        }
        Ok(d) => match i32::try_from(d.as_secs()) {
            Ok(s) if s >= min => Some(s),
            Err(_) => {
                // Not "at least {min}s": the value is far too big, not too small.
                let diag = cx
                    .error(
                        "duration",
                        raw.span(),
                        format!("`{field}` is too long"),
                    )
                    .label(format!("more than {} seconds (about 68 years)", i32::MAX))
                    .help("Kubernetes stores this in 32-bit seconds; use a duration such as \"30s\" or \"10m\"");
                cx.push(diag);
                None
            }
            Ok(_) => {
                let diag = cx
                    .error(
                        "duration",
                        raw.span(),
                        format!("`{field}` must be at least {min}s"),
                    )
                    .help(format!("use a duration of {min}s or more"));
                cx.push(diag);
                None
            }
        },
    }
}

fn disruption_budget(cx: &mut Ctx<'_>, raw: &S<RawDisruptionBudget>) -> Option<DisruptionBudget> {
    let b = raw.get_ref();
    match (&b.max_unavailable, &b.min_available) {
        (Some(m), None) => int_or_percent(cx, m, 0, "disruption-budget", "max_unavailable")
            .map(DisruptionBudget::MaxUnavailable),
        (None, Some(m)) => int_or_percent(cx, m, 0, "disruption-budget", "min_available")
            .map(DisruptionBudget::MinAvailable),
        _ => {
            let d = cx
                .error("disruption-budget", raw.span(), "a disruption budget needs exactly one of `max_unavailable` and `min_available`")
                .help("e.g. disruption_budget = { max_unavailable = 1 }");
            cx.push(d);
            None
        }
    }
}

fn volumes(cx: &mut Ctx<'_>, raw: Option<&S<Entries<S<RawVolume>>>>) -> Vec<Volume> {
    let mut out = Vec::new();
    let Some(raw) = raw else { return out };
    for (k, v) in &raw.get_ref().0 {
        let name = k.get_ref();
        let errs = names::dns1035_label(name);
        let mut ok = cx.name(
            "volume-name",
            "volume name",
            name,
            k.span(),
            errs,
            NAME_HELP,
        );
        let vol = v.get_ref();
        let kinds: Vec<(&str, Range<usize>)> = [
            ("size", vol.size.as_ref().map(|x| x.span())),
            ("empty_dir", vol.empty_dir.as_ref().map(|x| x.span())),
            ("config_map", vol.config_map.as_ref().map(|x| x.span())),
            ("secret", vol.secret.as_ref().map(|x| x.span())),
            ("host_path", vol.host_path.as_ref().map(|x| x.span())),
        ]
        .into_iter()
        .filter_map(|(n, s)| s.map(|s| (n, s)))
        .collect();
        if kinds.len() != 1 {
            let span = kinds.get(1).map_or(k.span(), |(_, s)| s.clone());
            let found = kinds
                .iter()
                .map(|(n, _)| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let d = cx
                .error("volume-kind", span, format!("volume `{name}` must have exactly one of `size`, `empty_dir`, `config_map`, `secret`, `host_path`"))
                .label(if kinds.is_empty() { "none given".to_string() } else { format!("found {found}") })
                .help("`size = \"10Gi\"` makes a volume claim per pod; the others are pod volumes");
            cx.push(d);
            continue;
        }
        if vol.size.is_none() {
            for (field, span) in [
                ("class", vol.class.as_ref().map(|c| c.span())),
                ("access", vol.access.as_ref().map(|c| c.span())),
            ] {
                if let Some(span) = span {
                    let d = cx
                        .error(
                            "volume-kind",
                            span,
                            format!("`{field}` only applies to volumes with a `size`"),
                        )
                        .help("remove it, or make the volume a claim with size = \"...\"");
                    cx.push(d);
                    ok = false;
                }
            }
        }
        let kind = if let Some(size) = &vol.size {
            let size = quantity(cx, size, "size", true);
            let class = vol.class.as_ref().map(|c| {
                let errs = names::dns1123_subdomain(c.get_ref());
                ok &= cx.name(
                    "storage-class",
                    "StorageClass name",
                    c.get_ref(),
                    c.span(),
                    errs,
                    "name a StorageClass of the cluster (kubectl get storageclass)",
                );
                c.get_ref().clone()
            });
            let access = match &vol.access {
                Some(a) if a.get_ref().0.is_empty() => {
                    let d = cx
                        .error(
                            "volume-kind",
                            a.span(),
                            "`access` must name at least one access mode",
                        )
                        .help("e.g. access = \"ReadWriteOnce\"");
                    cx.push(d);
                    ok = false;
                    Vec::new()
                }
                Some(a) => a.get_ref().0.clone(),
                None => vec![AccessMode::ReadWriteOnce],
            };
            size.map(|size| VolumeKind::Claim {
                size,
                class,
                access,
            })
        } else if let Some(e) = &vol.empty_dir {
            match e.get_ref() {
                RawEmptyDir::Flag(true) => Some(VolumeKind::EmptyDir {
                    medium: None,
                    size_limit: None,
                }),
                RawEmptyDir::Flag(false) => {
                    let d = cx
                        .error(
                            "volume-kind",
                            e.span(),
                            "`empty_dir = false` declares no volume",
                        )
                        .help("use empty_dir = true, or remove the volume");
                    cx.push(d);
                    None
                }
                RawEmptyDir::Table { medium, size_limit } => {
                    let medium = medium.as_ref().and_then(|m| {
                        let ok = m.get_ref().is_empty()
                            || m.get_ref() == "Memory"
                            || m.get_ref().starts_with("HugePages");
                        if ok {
                            (!m.get_ref().is_empty()).then(|| m.get_ref().clone())
                        } else {
                            let d = cx
                                .error(
                                    "volume-kind",
                                    m.span(),
                                    format!("unknown emptyDir medium `{}`", m.get_ref()),
                                )
                                .help(
                                    "use \"Memory\" (tmpfs), or leave it out for the node's disk",
                                );
                            cx.push(d);
                            None
                        }
                    });
                    let size_limit = match size_limit {
                        Some(s) => match quantity(cx, s, "size_limit", false) {
                            Some(q) => Some(q),
                            None => {
                                ok = false;
                                None
                            }
                        },
                        None => None,
                    };
                    Some(VolumeKind::EmptyDir { medium, size_limit })
                }
            }
        } else if let Some(c) = &vol.config_map {
            let errs = names::dns1123_subdomain(c.get_ref());
            cx.name(
                "volume-source",
                "ConfigMap name",
                c.get_ref(),
                c.span(),
                errs,
                "name a ConfigMap in the app's namespace",
            )
            .then(|| VolumeKind::ConfigMap(c.get_ref().clone()))
        } else if let Some(s) = &vol.secret {
            let errs = names::dns1123_subdomain(s.get_ref());
            cx.name(
                "volume-source",
                "Secret name",
                s.get_ref(),
                s.span(),
                errs,
                "name a Secret in the app's namespace",
            )
            .then(|| VolumeKind::Secret(s.get_ref().clone()))
        } else if let Some(h) = &vol.host_path {
            if h.get_ref().starts_with('/') {
                Some(VolumeKind::HostPath(h.get_ref().clone()))
            } else {
                let d = cx
                    .error(
                        "volume-source",
                        h.span(),
                        "`host_path` must be an absolute path",
                    )
                    .help("e.g. host_path = \"/srv/data\"");
                cx.push(d);
                None
            }
        } else {
            None
        };
        if let (true, Some(kind)) = (ok, kind) {
            out.push(Volume {
                name: name.clone(),
                kind,
            });
        }
    }
    out
}

/// Parse a quantity; `positive` rejects zero (a volume of size 0 cannot be provisioned).
fn quantity(cx: &mut Ctx<'_>, raw: &S<String>, field: &str, positive: bool) -> Option<Quantity> {
    match Quantity::parse(raw.get_ref()) {
        Ok(q) if positive && q.is_zero() => {
            let d = cx
                .error(
                    "quantity",
                    raw.span(),
                    format!("`{field}` must be more than zero"),
                )
                .help("e.g. \"10Gi\"");
            cx.push(d);
            None
        }
        Ok(q) => Some(q),
        Err(e) => {
            let d = cx
                .error(
                    "quantity",
                    raw.span(),
                    format!("`{field}` is not a Kubernetes quantity"),
                )
                .label(e)
                .help(match field {
                    "cpu" => "write CPU in cores or millicores, e.g. \"2\", \"0.5\" or \"500m\"",
                    _ => "write bytes with a binary suffix, e.g. \"512Mi\" or \"20Gi\"",
                });
            cx.push(d);
            None
        }
    }
}

fn resource(cx: &mut Ctx<'_>, raw: &S<RawResource>, field: &str) -> Option<Resource> {
    match raw.get_ref() {
        RawResource::Both(text) => {
            let q = quantity(cx, &S::new(raw.span(), text.clone()), field, false)?;
            Some(Resource {
                request: Some(q.clone()),
                limit: Some(q),
            })
        }
        RawResource::Split { request, limit } => {
            if request.is_none() && limit.is_none() {
                let d = cx
                    .error(
                        "quantity",
                        raw.span(),
                        format!("`{field}` needs a `request`, a `limit` or both"),
                    )
                    .help(format!(
                        "e.g. {field} = {{ request = \"500m\", limit = \"2\" }}"
                    ));
                cx.push(d);
                return None;
            }
            let req = request.as_ref().map(|r| quantity(cx, r, field, false));
            let lim = limit.as_ref().map(|l| quantity(cx, l, field, false));
            if let (Some(Some(rq)), Some(Some(lq)), Some(rs), Some(ls)) =
                (&req, &lim, request, limit)
                && rq > lq
            {
                let (line, col) = location_of(cx, ls.span());
                let d = cx
                    .error(
                        "request-exceeds-limit",
                        rs.span(),
                        format!(
                            "{field} request {} is more than its limit {}",
                            rq.as_str(),
                            lq.as_str()
                        ),
                    )
                    .label("request above limit")
                    .help(format!(
                        "lower the request or raise the limit (the limit is at {line}:{col})"
                    ));
                cx.push(d);
                return None;
            }
            match (req, lim) {
                (Some(None), _) | (_, Some(None)) => None,
                (r, l) => Some(Resource {
                    request: r.flatten(),
                    limit: l.flatten(),
                }),
            }
        }
    }
}

fn location_of(cx: &Ctx<'_>, span: Range<usize>) -> (usize, usize) {
    let l = super::diag::Location::from_span(cx.input.source, span);
    (l.line, l.column)
}

fn containers(
    cx: &mut Ctx<'_>,
    raw: Option<&S<Entries<RawContainer>>>,
    init: bool,
    volumes: &BTreeSet<String>,
    seen: &mut BTreeMap<String, Range<usize>>,
) -> Vec<Container> {
    let mut out = Vec::new();
    let Some(raw) = raw else { return out };
    let section = if init {
        "init_containers"
    } else {
        "containers"
    };
    for (k, c) in &raw.get_ref().0 {
        let name = k.get_ref();
        let errs = names::dns1035_label(name);
        cx.name(
            "container-name",
            "container name",
            name,
            k.span(),
            errs,
            NAME_HELP,
        );
        if let Some(first) = seen.get(name) {
            let (line, col) = location_of(cx, first.clone());
            let d = cx
                .error("container-name", k.span(), format!("container name `{name}` is used twice"))
                .label("second use")
                .help(format!("init containers and containers share one namespace of names; the first `{name}` is at {line}:{col}"));
            cx.push(d);
        } else {
            seen.insert(name.clone(), k.span());
        }
        let prefix = format!("{section}.{name}");
        if let Some(c) = container(cx, name, k.span(), c, init, volumes, &prefix) {
            out.push(c);
        }
    }
    out
}

fn container(
    cx: &mut Ctx<'_>,
    name: &str,
    key_span: Range<usize>,
    c: &RawContainer,
    init: bool,
    volumes: &BTreeSet<String>,
    prefix: &str,
) -> Option<Container> {
    let errors_before = cx.diags.iter().filter(|d| d.is_error()).count();
    let image = match &c.image {
        Some(img) => {
            check_image(cx, img);
            img.get_ref().clone()
        }
        None => {
            if !cx.pruned(&format!("{prefix}.image")) {
                let d = cx
                    .error(
                        "image-required",
                        key_span.clone(),
                        format!("container `{name}` has no image"),
                    )
                    .label("declared here")
                    .help("add image = \"registry/name:tag\" to this container");
                cx.push(d);
            }
            String::new()
        }
    };
    let cpu = c.cpu.as_ref().and_then(|r| resource(cx, r, "cpu"));
    let memory = c.memory.as_ref().and_then(|r| resource(cx, r, "memory"));

    let mut ports = Vec::new();
    let mut port_names: BTreeMap<String, Range<usize>> = BTreeMap::new();
    for (pk, pv) in c.ports.iter().flat_map(|p| p.0.iter()) {
        let errs = names::port_name(pk.get_ref());
        let name_ok = cx.name("port-name", "port name", pk.get_ref(), pk.span(), errs, "use at most 15 lowercase letters, digits and '-', with at least one letter, no '--', not starting or ending with '-' (IANA service name)");
        // TOML already rejects a key given twice, so names within one container are unique.
        port_names.insert(pk.get_ref().clone(), pk.span());
        if let (Some(p), true) = (port(cx, pv), name_ok) {
            ports.push(Port {
                name: pk.get_ref().clone(),
                number: p.0,
                protocol: p.1,
            });
        }
    }

    let mut env = Vec::new();
    for (ek, ev) in c.env.iter().flat_map(|e| e.0.iter()) {
        let errs = names::env_var_name(ek.get_ref());
        let ok = cx.name(
            "env",
            "environment variable name",
            ek.get_ref(),
            ek.span(),
            errs,
            "use letters, digits, '_', '-' and '.', not starting with a digit",
        );
        if let (Some(value), true) = (env_value(cx, ev), ok) {
            env.push(EnvVar {
                name: ek.get_ref().clone(),
                value,
            });
        }
    }

    let hook = |cx: &mut Ctx<'_>, h: &Option<S<Vec<String>>>, field: &str| -> Option<Vec<String>> {
        let h = h.as_ref()?;
        if h.get_ref().is_empty() {
            let d = cx
                .error("lifecycle", h.span(), format!("`{field}` needs a command"))
                .help(format!("e.g. {field} = [\"sh\", \"-c\", \"...\"]"));
            cx.push(d);
            return None;
        }
        Some(h.get_ref().clone())
    };
    let post_start = hook(cx, &c.post_start, "post_start");
    let pre_stop = hook(cx, &c.pre_stop, "pre_stop");

    let liveness = c
        .liveness
        .as_ref()
        .and_then(|p| probe(cx, p, "liveness", &ports, &port_names));
    let readiness = c
        .readiness
        .as_ref()
        .and_then(|p| probe(cx, p, "readiness", &ports, &port_names));
    let startup = c
        .startup
        .as_ref()
        .and_then(|p| probe(cx, p, "startup", &ports, &port_names));

    if init {
        // The seed: "init containers do not support health checks"; the API server also rejects
        // lifecycle hooks on them (they run to completion, there is nothing to hook).
        let forbidden = [
            ("liveness", c.liveness.as_ref().map(|p| p.span())),
            ("readiness", c.readiness.as_ref().map(|p| p.span())),
            ("startup", c.startup.as_ref().map(|p| p.span())),
            ("post_start", c.post_start.as_ref().map(|p| p.span())),
            ("pre_stop", c.pre_stop.as_ref().map(|p| p.span())),
        ];
        for (field, span) in forbidden {
            if let Some(span) = span {
                let d = cx
                    .error("init-container", span, format!("init container `{name}` cannot have `{field}`"))
                    .label("not allowed on init containers")
                    .help("init containers run to completion before the app starts; move the check to a container under [containers]");
                cx.push(d);
            }
        }
    }

    let run_as_user = id_field(cx, c.run_as_user.as_ref(), "run_as_user");

    let mut mounts = Vec::new();
    let mut paths: BTreeMap<String, Range<usize>> = BTreeMap::new();
    for (mk, mv) in c.mounts.iter().flat_map(|m| m.0.iter()) {
        let vol = mk.get_ref();
        if !volumes.contains(vol) && cx.pruned(&format!("volumes.{vol}")) {
            continue; // declared, but broken: that error is reported already
        }
        if !volumes.contains(vol) {
            let known: Vec<&str> = volumes.iter().map(String::as_str).collect();
            let help = match super::diag::closest(vol, known.iter().copied()) {
                Some(best) => format!("did you mean `{best}`?"),
                None if known.is_empty() => {
                    format!("declare it:\n      [volumes.{vol}]\n      size = \"10Gi\"")
                }
                None => format!("declared volumes: {}", super::diag::quote_list(&known)),
            };
            let d = cx
                .error(
                    "mount-volume",
                    mk.span(),
                    format!("mount names volume `{vol}`, which is not declared"),
                )
                .label("no [volumes] entry of this name")
                .help(help);
            cx.push(d);
            continue;
        }
        let m = mv.get_ref();
        let Some(path) = &m.path else {
            let d = cx
                .error(
                    "mount-path",
                    mv.span(),
                    format!("mount of `{vol}` has no `path`"),
                )
                .help("e.g. { path = \"/data\" }");
            cx.push(d);
            continue;
        };
        let path_span = pick(path.span(), mv.span());
        let p = path.get_ref();
        if !p.starts_with('/') || p.contains(':') {
            let d = cx
                .error(
                    "mount-path",
                    path_span.clone(),
                    format!("mount path `{p}` must be an absolute path without ':'"),
                )
                .help("e.g. \"/var/lib/mysql\"");
            cx.push(d);
            continue;
        }
        let normal = p.trim_end_matches('/').to_string();
        if let Some(first) = paths.insert(normal, path_span.clone()) {
            let (line, col) = location_of(cx, first);
            let d = cx
                .error(
                    "mount-path",
                    path_span,
                    format!("mount path `{p}` is used twice in container `{name}`"),
                )
                .help(format!(
                    "each mount needs its own path; the other one is at {line}:{col}"
                ));
            cx.push(d);
            continue;
        }
        let sub_path = m.sub_path.as_ref().and_then(|s| {
            let v = s.get_ref();
            if v.starts_with('/') || v.split('/').any(|seg| seg == "..") {
                let d = cx
                    .error(
                        "mount-path",
                        s.span(),
                        format!("sub_path `{v}` must be a relative path without '..'"),
                    )
                    .help("e.g. sub_path = \"mysql\"");
                cx.push(d);
                None
            } else {
                Some(v.clone())
            }
        });
        mounts.push(Mount {
            volume: vol.clone(),
            path: p.clone(),
            sub_path,
            read_only: m.read_only.as_ref().is_some_and(|r| *r.get_ref()),
        });
    }

    let errors_after = cx.diags.iter().filter(|d| d.is_error()).count();
    (errors_after == errors_before).then(|| Container {
        name: name.to_string(),
        image,
        pull: c.pull.as_ref().map(|p| *p.get_ref()),
        cpu,
        memory,
        ports,
        env,
        command: c
            .command
            .as_ref()
            .map(|v| v.get_ref().clone())
            .unwrap_or_default(),
        args: c
            .args
            .as_ref()
            .map(|v| v.get_ref().clone())
            .unwrap_or_default(),
        post_start,
        pre_stop,
        liveness,
        readiness,
        startup,
        run_as_user,
        mounts,
    })
}

fn check_image(cx: &mut Ctx<'_>, img: &S<String>) {
    let image = img.get_ref();
    if image.is_empty() || image.chars().any(char::is_whitespace) {
        let d = cx
            .error(
                "image-format",
                img.span(),
                "image must be a non-empty reference without spaces",
            )
            .help("e.g. image = \"mysql:8.4\" or \"registry.example.com/team/app@sha256:...\"");
        cx.push(d);
        return;
    }
    let has_digest = image.contains('@');
    let last = image.rsplit('/').next().unwrap_or(image);
    if !has_digest && !last.contains(':') {
        let d = cx
            .warning(
                "image-tag",
                img.span(),
                format!("image `{image}` has no tag"),
            )
            .label("resolves to `:latest`, which changes under you")
            .help(format!(
                "pin a version, e.g. \"{image}:1.2.3\", or a digest"
            ));
        cx.push(d);
    }
}

/// `80` or `"53/udp"` → (number, protocol).
fn port(cx: &mut Ctx<'_>, raw: &S<RawPort>) -> Option<(u16, Protocol)> {
    let (num, proto): (Result<i64, ()>, Protocol) = match raw.get_ref() {
        RawPort::Number(n) => (Ok(*n), Protocol::Tcp),
        RawPort::Text(t) => {
            let (n, p) = t.split_once('/').unwrap_or((t.as_str(), "tcp"));
            let proto = match p.to_ascii_lowercase().as_str() {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                "sctp" => Protocol::Sctp,
                _ => {
                    let d = cx
                        .error(
                            "port-protocol",
                            raw.span(),
                            format!("unknown protocol `{p}`"),
                        )
                        .help("use \"tcp\", \"udp\" or \"sctp\", e.g. \"53/udp\"");
                    cx.push(d);
                    return None;
                }
            };
            (n.parse::<i64>().map_err(|_| ()), proto)
        }
    };
    match num {
        Ok(n) if (1..=65535).contains(&n) => u16::try_from(n).ok().map(|n| (n, proto)),
        _ => {
            let d = cx
                .error(
                    "port-number",
                    raw.span(),
                    "port must be a number between 1 and 65535",
                )
                .help("e.g. http = 80, or dns = \"53/udp\"");
            cx.push(d);
            None
        }
    }
}

fn env_value(cx: &mut Ctx<'_>, raw: &S<RawEnv>) -> Option<EnvValue> {
    let r = match raw.get_ref() {
        RawEnv::Literal(s) => return Some(EnvValue::Literal(s.clone())),
        RawEnv::Ref(r) => r,
    };
    let sources: Vec<&str> = [
        r.secret.as_ref().map(|_| "secret"),
        r.config_map.as_ref().map(|_| "config_map"),
        r.field.as_ref().map(|_| "field"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if sources.len() != 1 {
        let d = cx
            .error(
                "env",
                raw.span(),
                "an env reference needs exactly one of `secret`, `config_map`, `field`",
            )
            .label(if sources.is_empty() {
                "none given".to_string()
            } else {
                format!("found {}", sources.join(", "))
            })
            .help("e.g. { secret = \"mysql\", key = \"root\" } or { field = \"metadata.name\" }");
        cx.push(d);
        return None;
    }
    if let Some(f) = &r.field {
        if let Some(k) = &r.key {
            let d = cx
                .error(
                    "env",
                    k.span(),
                    "`key` does not apply to a `field` reference",
                )
                .help("remove `key`");
            cx.push(d);
            return None;
        }
        let path = f.get_ref();
        let bracketed = |prefix: &str| {
            path.strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix("['"))
                .and_then(|rest| rest.strip_suffix("']"))
                .is_some_and(|k| names::qualified_name(k).is_empty())
        };
        if FIELD_PATHS.contains(&path.as_str())
            || bracketed("metadata.labels")
            || bracketed("metadata.annotations")
        {
            return Some(EnvValue::Field(path.clone()));
        }
        let d = cx
            .error(
                "env",
                f.span(),
                format!("`{path}` is not a field a pod can expose"),
            )
            .help(match super::diag::closest(path, FIELD_PATHS) {
                Some(best) => format!("did you mean `{best}`?"),
                None => format!(
                    "use one of {}, metadata.labels['KEY'], metadata.annotations['KEY']",
                    FIELD_PATHS.join(", ")
                ),
            });
        cx.push(d);
        return None;
    }
    let (kind, name) = match (&r.secret, &r.config_map) {
        (Some(s), _) => ("Secret", s),
        (_, Some(c)) => ("ConfigMap", c),
        _ => return None,
    };
    let mut ok = {
        let errs = names::dns1123_subdomain(name.get_ref());
        cx.name(
            "env",
            &format!("{kind} name"),
            name.get_ref(),
            name.span(),
            errs,
            "name a Secret or ConfigMap in the app's namespace",
        )
    };
    match &r.key {
        None => {
            let d = cx
                .error(
                    "env",
                    raw.span(),
                    format!("a {kind} reference needs a `key`"),
                )
                .help(format!(
                    "name the key inside the {kind}, e.g. key = \"password\""
                ));
            cx.push(d);
            ok = false;
        }
        Some(k) => {
            let errs = names::config_key(k.get_ref());
            ok &= cx.name(
                "env",
                &format!("{kind} key"),
                k.get_ref(),
                k.span(),
                errs,
                "keys use letters, digits, '-', '_' and '.'",
            );
        }
    }
    if !ok {
        return None;
    }
    let key = r
        .key
        .as_ref()
        .map(|k| k.get_ref().clone())
        .unwrap_or_default();
    Some(if kind == "Secret" {
        EnvValue::Secret {
            name: name.get_ref().clone(),
            key,
        }
    } else {
        EnvValue::ConfigMap {
            name: name.get_ref().clone(),
            key,
        }
    })
}

fn probe_port(
    cx: &mut Ctx<'_>,
    raw: &S<IntOrStr>,
    ports: &[Port],
    port_names: &BTreeMap<String, Range<usize>>,
) -> Option<PortRef> {
    match raw.get_ref() {
        IntOrStr::Int(n) => match u16::try_from(*n) {
            Ok(p) if p >= 1 => Some(PortRef::Number(p)),
            _ => {
                let d = cx
                    .error(
                        "probe",
                        raw.span(),
                        "port must be a number between 1 and 65535",
                    )
                    .help("or name a port of this container");
                cx.push(d);
                None
            }
        },
        IntOrStr::Str(s) => {
            if ports.iter().any(|p| &p.name == s) || port_names.contains_key(s) {
                Some(PortRef::Name(s.clone()))
            } else {
                let d = cx
                    .error(
                        "probe",
                        raw.span(),
                        format!("this container has no port named `{s}`"),
                    )
                    .help(if ports.is_empty() {
                        "declare it in `ports`, or give the port number".to_string()
                    } else {
                        format!(
                            "ports of this container: {}",
                            ports
                                .iter()
                                .map(|p| format!("`{}`", p.name))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    });
                cx.push(d);
                None
            }
        }
    }
}

fn probe(
    cx: &mut Ctx<'_>,
    raw: &S<RawProbe>,
    kind: &str,
    ports: &[Port],
    port_names: &BTreeMap<String, Range<usize>>,
) -> Option<Probe> {
    let p = raw.get_ref();
    let actions = [p.exec.is_some(), p.tcp.is_some(), p.http.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if actions != 1 {
        let d = cx
            .error("probe", raw.span(), format!("the {kind} probe needs exactly one of `exec`, `tcp`, `http`"))
            .label(if actions == 0 { "no check given" } else { "more than one check given" })
            .help("e.g. { tcp = 3306 }, { exec = [\"mysqladmin\", \"ping\"] } or { http = { path = \"/healthz\", port = 8080 } }");
        cx.push(d);
        return None;
    }
    let before = cx.diags.len();
    let action = if let Some(e) = &p.exec {
        if e.get_ref().is_empty() {
            let d = cx
                .error("probe", e.span(), "`exec` needs a command")
                .help("e.g. exec = [\"mysqladmin\", \"ping\"]");
            cx.push(d);
            None
        } else {
            Some(ProbeAction::Exec(e.get_ref().clone()))
        }
    } else if let Some(t) = &p.tcp {
        probe_port(cx, t, ports, port_names).map(ProbeAction::Tcp)
    } else if let Some(h) = &p.http {
        let http = h.get_ref();
        let path = match &http.path {
            Some(path) if path.get_ref().starts_with('/') => Some(path.get_ref().clone()),
            Some(path) => {
                let d = cx
                    .error(
                        "probe",
                        path.span(),
                        "an HTTP probe path must start with '/'",
                    )
                    .help("e.g. path = \"/healthz\"");
                cx.push(d);
                None
            }
            None => Some("/".to_string()),
        };
        let port = match &http.port {
            Some(port) => probe_port(cx, port, ports, port_names),
            None => {
                let d = cx
                    .error("probe", h.span(), "an HTTP probe needs a `port`")
                    .help("e.g. http = { path = \"/healthz\", port = \"http\" }");
                cx.push(d);
                None
            }
        };
        let scheme = http.scheme.as_ref().map(|s| match s.get_ref() {
            HttpScheme::Http => "HTTP".to_string(),
            HttpScheme::Https => "HTTPS".to_string(),
        });
        match (path, port) {
            (Some(path), Some(port)) => Some(ProbeAction::Http { path, port, scheme }),
            _ => None,
        }
    } else {
        None
    };
    let delay = p.delay.as_ref().and_then(|d| seconds(cx, d, 0, "delay"));
    let period = p.period.as_ref().and_then(|d| seconds(cx, d, 1, "period"));
    let timeout = p
        .timeout
        .as_ref()
        .and_then(|d| seconds(cx, d, 1, "timeout"));
    let count = |cx: &mut Ctx<'_>, v: &Option<S<i64>>, field: &str| -> Option<i32> {
        let v = v.as_ref()?;
        match i32::try_from(*v.get_ref()) {
            Ok(n) if n >= 1 => Some(n),
            _ => {
                let d = cx
                    .error("probe", v.span(), format!("`{field}` must be at least 1"))
                    .help("count of consecutive results, e.g. 3");
                cx.push(d);
                None
            }
        }
    };
    let failures = count(cx, &p.failures, "failures");
    let success = count(cx, &p.success, "success");
    if let (Some(s), Some(n)) = (&p.success, success)
        && n != 1
        && kind != "readiness"
    {
        let d = cx
            .error(
                "probe",
                s.span(),
                format!("`success` must be 1 for a {kind} probe"),
            )
            .help("Kubernetes only allows a success threshold above 1 on readiness probes");
        cx.push(d);
    }
    if cx.diags.len() != before {
        return None;
    }
    Some(Probe {
        action: action?,
        delay_seconds: delay,
        period_seconds: period,
        timeout_seconds: timeout,
        failures,
        success,
    })
}

/// The seed: "if a pod has several containers, make sure their ports do not clash, or the
/// deployment fails". Port names must also be unique in the pod: Services resolve them.
fn port_conflicts(cx: &mut Ctx<'_>, raw: Option<&S<Entries<RawContainer>>>) {
    let Some(raw) = raw else { return };
    let mut numbers: BTreeMap<(u16, Protocol), (String, Range<usize>)> = BTreeMap::new();
    let mut names_seen: BTreeMap<String, String> = BTreeMap::new();
    for (ck, c) in &raw.get_ref().0 {
        for (pk, pv) in c.ports.iter().flat_map(|p| p.0.iter()) {
            let parsed = match pv.get_ref() {
                RawPort::Number(n) => u16::try_from(*n).ok().map(|n| (n, Protocol::Tcp)),
                RawPort::Text(t) => {
                    let (n, p) = t.split_once('/').unwrap_or((t.as_str(), "tcp"));
                    let proto = match p.to_ascii_lowercase().as_str() {
                        "udp" => Some(Protocol::Udp),
                        "sctp" => Some(Protocol::Sctp),
                        "tcp" => Some(Protocol::Tcp),
                        _ => None,
                    };
                    n.parse::<u16>().ok().zip(proto)
                }
            };
            if let Some(key) = parsed.filter(|(n, _)| *n != 0) {
                if let Some((other, first)) = numbers.get(&key) {
                    let (line, col) = location_of(cx, first.clone());
                    let what = if other == ck.get_ref() {
                        format!("twice in container `{other}`")
                    } else {
                        format!("by containers `{other}` and `{}`", ck.get_ref())
                    };
                    let d = cx
                        .error("port-conflict", pv.span(), format!("port {}/{} is used {what}", key.0, key.1.as_str()))
                        .label("already in use in this pod")
                        .help(format!("containers of one pod share its network; give each port its own number (first use at {line}:{col})"));
                    cx.push(d);
                } else {
                    numbers.insert(key, (ck.get_ref().clone(), pv.span()));
                }
            }
            let pname = pk.get_ref().clone();
            if let Some(other) = names_seen.get(&pname)
                && other != ck.get_ref()
            {
                let d = cx
                    .error(
                        "port-name",
                        pk.span(),
                        format!("port name `{pname}` is also used by container `{other}`"),
                    )
                    .help("Services find ports by name; give each port of the pod its own name");
                cx.push(d);
            } else {
                names_seen.insert(pname, ck.get_ref().clone());
            }
        }
    }
}

fn access_service(
    cx: &mut Ctx<'_>,
    raw: &S<RawService>,
    app: &str,
    headless: &str,
    containers: Option<&S<Entries<RawContainer>>>,
) -> AccessService {
    let s = raw.get_ref();
    let name = match &s.name {
        Some(n) => {
            let errs = names::dns1035_label(n.get_ref());
            cx.name(
                "service-name",
                "Service name",
                n.get_ref(),
                n.span(),
                errs,
                NAME_HELP,
            );
            if n.get_ref() == headless {
                let d = cx
                    .error("service-name", n.span(), format!("the access Service cannot share the headless Service's name `{headless}`"))
                    .help("choose another name, or leave `name` out to use the app name");
                cx.push(d);
            }
            n.get_ref().clone()
        }
        None => {
            if app == headless {
                let span = raw.span();
                let d = cx
                    .error("service-name", span, format!("the access Service's default name `{app}` is the headless Service's name"))
                    .help("set `name` in [service], or rename the headless Service");
                cx.push(d);
            }
            app.to_string()
        }
    };
    let kind = s
        .kind
        .as_ref()
        .map_or(ServiceType::ClusterIP, |k| *k.get_ref());

    // Declared container ports (not init containers: a Service never reaches those).
    let mut declared: BTreeMap<String, (u16, Protocol)> = BTreeMap::new();
    let containers_pruned = cx.input.pruned.iter().any(|p| p.starts_with("containers"));
    for (_, c) in containers.iter().flat_map(|c| c.get_ref().0.iter()) {
        for (pk, pv) in c.ports.iter().flat_map(|p| p.0.iter()) {
            let parsed = match pv.get_ref() {
                RawPort::Number(n) => u16::try_from(*n).ok().map(|n| (n, Protocol::Tcp)),
                RawPort::Text(t) => {
                    let (n, p) = t.split_once('/').unwrap_or((t.as_str(), "tcp"));
                    let proto = match p.to_ascii_lowercase().as_str() {
                        "udp" => Protocol::Udp,
                        "sctp" => Protocol::Sctp,
                        _ => Protocol::Tcp,
                    };
                    n.parse::<u16>().ok().map(|n| (n, proto))
                }
            };
            if let Some(p) = parsed {
                declared.insert(pk.get_ref().clone(), p);
            }
        }
    }

    let mut ports = Vec::new();
    let mut numbers: BTreeMap<(u16, Protocol), Range<usize>> = BTreeMap::new();
    let service_pruned = cx.input.pruned.iter().any(|p| p.starts_with("service."));
    match &s.ports {
        None if service_pruned => {}
        None => {
            let d = cx
                .error("service-ports", raw.span(), "the access Service has no ports")
                .help("add ports, e.g. ports = { mysql = 3306 } (service port 3306 → the container port named `mysql`)");
            cx.push(d);
        }
        Some(p) if p.get_ref().0.is_empty() => {
            let d = cx
                .error("service-ports", p.span(), "the access Service has no ports")
                .help("add ports, e.g. ports = { mysql = 3306 }");
            cx.push(d);
        }
        Some(_) => {}
    }
    for (pk, pv) in s.ports.iter().flat_map(|p| p.get_ref().0.iter()) {
        let pname = pk.get_ref();
        let errs = names::port_name(pname);
        let mut ok = cx.name("port-name", "service port name", pname, pk.span(), errs, "use at most 15 lowercase letters, digits and '-', with at least one letter (IANA service name)");
        let (port, target, node_port) = match pv.get_ref() {
            RawServicePort::Number(n) => (Some(S::new(pv.span(), *n)), None, None),
            RawServicePort::Table {
                port,
                target,
                node_port,
            } => {
                if port.is_none() {
                    let d = cx
                        .error(
                            "service-ports",
                            pv.span(),
                            format!("service port `{pname}` needs a `port`"),
                        )
                        .help("e.g. { port = 3306, target = 3306 }");
                    cx.push(d);
                    ok = false;
                }
                (port.clone(), target.clone(), node_port.clone())
            }
        };
        let number = port
            .as_ref()
            .and_then(|p| match u16::try_from(*p.get_ref()) {
                Ok(n) if n >= 1 => Some(n),
                _ => {
                    let d = cx
                        .error(
                            "service-ports",
                            p.span(),
                            "port must be a number between 1 and 65535",
                        )
                        .help("e.g. mysql = 3306");
                    cx.push(d);
                    None
                }
            });
        // Where traffic goes: the container port named by the key, or the explicit target.
        let (target_ref, protocol) = match &target {
            None => match declared.get(pname) {
                Some((_, proto)) => (Some(PortRef::Name(pname.clone())), *proto),
                None => {
                    if !containers_pruned {
                        let known: Vec<&str> = declared.keys().map(String::as_str).collect();
                        let help = match super::diag::closest(pname, known.iter().copied()) {
                            Some(best) => format!(
                                "did you mean `{best}`? Or give a target: {pname} = {{ port = ..., target = ... }}"
                            ),
                            None if known.is_empty() => format!(
                                "declare a container port named `{pname}`, or give a target: {pname} = {{ port = ..., target = ... }}"
                            ),
                            None => format!(
                                "container ports: {}; or give a target: {pname} = {{ port = ..., target = ... }}",
                                super::diag::quote_list(&known)
                            ),
                        };
                        let d = cx
                            .error(
                                "service-target",
                                pk.span(),
                                format!("service port `{pname}` names no container port"),
                            )
                            .label("no container declares a port of this name")
                            .help(help);
                        cx.push(d);
                    }
                    (None, Protocol::Tcp)
                }
            },
            Some(t) => match t.get_ref() {
                IntOrStr::Int(n) => match u16::try_from(*n) {
                    Ok(n) if n >= 1 => {
                        let proto = declared
                            .values()
                            .find(|(num, _)| *num == n)
                            .map_or(Protocol::Tcp, |(_, p)| *p);
                        (Some(PortRef::Number(n)), proto)
                    }
                    _ => {
                        let d = cx
                            .error(
                                "service-target",
                                t.span(),
                                "target must be a number between 1 and 65535",
                            )
                            .help("or name a container port");
                        cx.push(d);
                        (None, Protocol::Tcp)
                    }
                },
                IntOrStr::Str(name) => match declared.get(name) {
                    Some((_, proto)) => (Some(PortRef::Name(name.clone())), *proto),
                    None => {
                        if !containers_pruned {
                            let d = cx
                                .error("service-target", t.span(), format!("target `{name}` names no container port"))
                                .help("name a port declared in a container's `ports`, or give a number");
                            cx.push(d);
                        }
                        (None, Protocol::Tcp)
                    }
                },
            },
        };
        // Kubernetes keys service ports by number and protocol: DNS serves 53/UDP and 53/TCP.
        if let (Some(n), Some(p)) = (number, &port)
            && let Some(first) = numbers.insert((n, protocol), p.span())
        {
            let (line, col) = location_of(cx, first);
            let d = cx
                .error(
                    "service-ports",
                    p.span(),
                    format!("service port {n}/{} is used twice", protocol.as_str()),
                )
                .help(format!(
                    "give each service port its own number (first use at {line}:{col})"
                ));
            cx.push(d);
            ok = false;
        }
        let node = node_port.as_ref().and_then(|np| {
            let v = *np.get_ref();
            if !NODE_PORT_RANGE.contains(&v) {
                let d = cx
                    .error("node-port", np.span(), format!("node port {v} is outside 30000-32767"))
                    .label("outside the cluster's node port range")
                    .help("pick a port between 30000 and 32767 (the API server's default --service-node-port-range), or leave it out to get one assigned");
                cx.push(d);
                return None;
            }
            if kind == ServiceType::ClusterIP {
                let d = cx
                    .error("node-port", np.span(), "`node_port` needs type \"NodePort\" or \"LoadBalancer\"")
                    .help("set type = \"NodePort\" in [service], or remove node_port");
                cx.push(d);
                return None;
            }
            u16::try_from(v).ok()
        });
        if let (true, Some(port), Some(target)) = (ok, number, target_ref) {
            ports.push(ServicePort {
                name: pname.clone(),
                port,
                target,
                node_port: node,
                protocol,
            });
        }
    }
    let annotations = annotation_map(cx, s.annotations.as_ref());
    AccessService {
        name,
        kind,
        ports,
        annotations,
    }
}
