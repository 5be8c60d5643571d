//! [`RawApp`] → [`App`]: every validation rule of the spec contract (docs/design.md), each problem
//! a diagnostic with the span of the offending value, all of them collected. Rules that span files
//! (duplicate apps, clashing Service names) live in [`super::load_dir`].
//!
//! Layout: this file holds the entry point [`validate`], its [`Input`], the walk over one spec
//! (`build`: identity first, volumes before containers because mounts refer to them, the access
//! Service last because it targets container ports) and what every rule shares: `Ctx`, which
//! collects the diagnostics, and the span and name helpers. The rules, by subject:
//! - `meta.rs`: app name, labels, annotations, and the keys berth reserves.
//! - `values.rs`: quantities, resources, durations, counts or percentages, user and group ids.
//! - `workload.rs`: update strategy, disruption budget, DNS.
//! - `volumes.rs`: the `[volumes]` table.
//! - `storage.rs`: existing claims, block volumes and `devices`, data sources, projected keys.
//! - `containers.rs`: containers and init containers, ports, env, hooks, mounts.
//! - `probes.rs`: liveness, readiness and startup probes.
//! - `actions.rs`: lifecycle hooks, the HTTP GET probes and hooks share, gRPC probes,
//!   `env_from`, and env values read from the container's resources.
//! - `service.rs`: the access Service.
//! - `security.rs`: pod and container security, and the `security = "restricted"` preset.
//! - `scheduling.rs`: tolerations, node affinity, preferred anti-affinity, topology spread.
//! - `set.rs`: the StatefulSet's and the Services' own settings (min_ready, start_ordinal, …).
//! - `reach.rs`: what the daemon config's `[safety]` lists let a spec reach (namespace, host
//!   paths, ServiceAccount).

mod actions;
mod containers;
mod meta;
mod patches;
mod probes;
mod reach;
mod scheduling;
mod security;
mod service;
mod set;
mod storage;
mod values;
mod volumes;
mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;

use super::app::*;
use super::diag::Diagnostic;
use super::names;
use super::raw::*;
use crate::config::{Config, Profile};

use containers::{containers, port_conflicts};
use meta::{annotation_map, check_app_name, dependencies, label_map};
pub use patches::owned_by_berth;
pub use service::NODE_PORT_RANGE;
use service::{access_service, named_services};
use values::{id_field, seconds};
use volumes::volumes;
use workload::{disruption_budget, dns_config, update_strategy};

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
    reach::reach(cx, raw, &namespace);

    let after = dependencies(cx, raw.after.as_ref(), &namespace, &name);

    let replicas = set::replicas(cx, raw.replicas.as_ref());
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
    let security = security::pod_security(cx, raw);
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
    let scheduling = scheduling::scheduling(cx, raw);
    let set = set::set_options(cx, raw);
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
                .chain(
                    c.devices
                        .iter()
                        .flat_map(|d| d.0.iter().map(|(k, _)| k.get_ref().as_str())),
                )
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

    let service = raw.service.as_ref().map(|s| {
        access_service(
            cx,
            s,
            service::Which::Main,
            &name,
            &headless,
            raw.containers.as_ref(),
        )
    });
    let services = named_services(cx, raw, service.as_ref(), &name, &headless);

    let mut app = App {
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
        security,
        dns,
        headless,
        termination_grace_seconds,
        service_account,
        node_selector,
        spread,
        scheduling,
        set,
        disruption_budget,
        allow_recreate: raw.allow_recreate.as_ref().is_some_and(|b| *b.get_ref()),
        abandon_claims: raw.abandon_claims.as_ref().is_some_and(|b| *b.get_ref()),
        adopt: raw.adopt.as_ref().is_some_and(|b| *b.get_ref()),
        suspend: raw.suspend.as_ref().is_some_and(|b| *b.get_ref()),
        after,
        patches: patches::patches(cx, raw.patches.as_ref()),
        init_containers,
        containers: containers_list,
        volumes,
        service,
        services,
    };
    security::apply_preset(cx, raw, &mut app);
    storage::devices(cx, raw, &mut app);
    app
}

fn location_of(cx: &Ctx<'_>, span: Range<usize>) -> (usize, usize) {
    let l = super::diag::Location::from_span(cx.input.source, span);
    (l.line, l.column)
}
