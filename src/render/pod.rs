//! The pod spec's security, scheduling and resource parts: pod and container securityContext,
//! affinity (required `spread`, `prefer_spread`, node affinity), tolerations, topology spread
//! constraints, and container resources (cpu, memory, ephemeral storage, extended resources).
//!
//! As everywhere in rendering, every list and struct is complete and explicit (operators,
//! `whenUnsatisfiable`, `maxSkew`), since server-side apply claims what is sent.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, Capabilities as K8sCapabilities, NodeAffinity as K8sNodeAffinity, NodeSelector,
    NodeSelectorRequirement, NodeSelectorTerm, PodAffinityTerm, PodAntiAffinity,
    PodSecurityContext, PreferredSchedulingTerm, ResourceRequirements, SeccompProfile,
    SecurityContext, Toleration as K8sToleration, TopologySpreadConstraint,
    WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::non_empty;
use crate::spec::{App, Container, NodeExpr, Seccomp};

/// The weight of `prefer_spread`: the only preference berth renders for the app's own pods.
const PREFER_SPREAD_WEIGHT: i32 = 100;

fn own_pods(selector: &BTreeMap<String, String>) -> Option<LabelSelector> {
    Some(LabelSelector {
        match_labels: Some(selector.clone()),
        match_expressions: None,
    })
}

pub(super) fn pod_security_context(app: &App) -> Option<PodSecurityContext> {
    let s = &app.security;
    let seccomp_profile = s.seccomp.as_ref().map(|p| match p {
        Seccomp::RuntimeDefault => SeccompProfile {
            type_: "RuntimeDefault".to_string(),
            localhost_profile: None,
        },
        Seccomp::Unconfined => SeccompProfile {
            type_: "Unconfined".to_string(),
            localhost_profile: None,
        },
        Seccomp::Localhost(path) => SeccompProfile {
            type_: "Localhost".to_string(),
            localhost_profile: Some(path.clone()),
        },
    });
    let ctx = PodSecurityContext {
        run_as_user: app.run_as_user,
        run_as_group: s.run_as_group,
        run_as_non_root: s.run_as_non_root,
        fs_group: app.fs_group,
        supplemental_groups: non_empty(s.supplemental_groups.clone()),
        seccomp_profile,
        ..PodSecurityContext::default()
    };
    (ctx != PodSecurityContext::default()).then_some(ctx)
}

pub(super) fn container_security_context(c: &Container) -> Option<SecurityContext> {
    let s = &c.security;
    let ctx = SecurityContext {
        run_as_user: c.run_as_user,
        read_only_root_filesystem: s.read_only_root,
        allow_privilege_escalation: s.allow_privilege_escalation,
        privileged: s.privileged,
        capabilities: s.capabilities.as_ref().map(|caps| K8sCapabilities {
            add: non_empty(caps.add.clone()),
            drop: non_empty(caps.drop.clone()),
        }),
        ..SecurityContext::default()
    };
    (ctx != SecurityContext::default()).then_some(ctx)
}

fn requirement(e: &NodeExpr) -> NodeSelectorRequirement {
    let (operator, values) = e.op.operator();
    NodeSelectorRequirement {
        key: e.key.clone(),
        operator: operator.to_string(),
        values: non_empty(values),
    }
}

pub(super) fn affinity(app: &App, selector: &BTreeMap<String, String>) -> Option<Affinity> {
    let required = app.spread.map(|s| {
        vec![PodAffinityTerm {
            label_selector: own_pods(selector),
            topology_key: s.topology_key().to_string(),
            ..PodAffinityTerm::default()
        }]
    });
    let preferred = app.scheduling.prefer_spread.map(|s| {
        vec![WeightedPodAffinityTerm {
            weight: PREFER_SPREAD_WEIGHT,
            pod_affinity_term: PodAffinityTerm {
                label_selector: own_pods(selector),
                topology_key: s.topology_key().to_string(),
                ..PodAffinityTerm::default()
            },
        }]
    });
    let anti = PodAntiAffinity {
        required_during_scheduling_ignored_during_execution: required,
        preferred_during_scheduling_ignored_during_execution: preferred,
    };
    let pod_anti_affinity = (anti != PodAntiAffinity::default()).then_some(anti);
    let node_affinity = app
        .scheduling
        .node_affinity
        .as_ref()
        .map(|n| K8sNodeAffinity {
            required_during_scheduling_ignored_during_execution: (!n.required.is_empty()).then(
                || NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(n.required.iter().map(requirement).collect()),
                        match_fields: None,
                    }],
                },
            ),
            preferred_during_scheduling_ignored_during_execution: non_empty(
                n.preferred
                    .iter()
                    .map(|(weight, e)| PreferredSchedulingTerm {
                        weight: *weight,
                        preference: NodeSelectorTerm {
                            match_expressions: Some(vec![requirement(e)]),
                            match_fields: None,
                        },
                    })
                    .collect(),
            ),
        });
    (pod_anti_affinity.is_some() || node_affinity.is_some()).then(|| Affinity {
        pod_anti_affinity,
        node_affinity,
        ..Affinity::default()
    })
}

pub(super) fn tolerations(app: &App) -> Option<Vec<K8sToleration>> {
    non_empty(
        app.scheduling
            .tolerations
            .iter()
            .map(|t| K8sToleration {
                key: t.key.clone(),
                operator: Some(if t.value.is_some() { "Equal" } else { "Exists" }.to_string()),
                value: t.value.clone(),
                effect: t.effect.map(|e| e.as_str().to_string()),
                toleration_seconds: t.evict_after_seconds,
            })
            .collect(),
    )
}

pub(super) fn topology_spread(
    app: &App,
    selector: &BTreeMap<String, String>,
) -> Option<Vec<TopologySpreadConstraint>> {
    non_empty(
        app.scheduling
            .topology_spread
            .iter()
            .map(|t| TopologySpreadConstraint {
                label_selector: own_pods(selector),
                max_skew: t.max_skew,
                topology_key: t.key.clone(),
                when_unsatisfiable: t.when_unsatisfiable.as_str().to_string(),
                ..TopologySpreadConstraint::default()
            })
            .collect(),
    )
}

pub(super) fn resources(c: &Container) -> Option<ResourceRequirements> {
    let mut requests = BTreeMap::new();
    let mut limits = BTreeMap::new();
    for (name, res) in [
        ("cpu", &c.cpu),
        ("memory", &c.memory),
        ("ephemeral-storage", &c.ephemeral_storage),
    ] {
        if let Some(r) = res {
            if let Some(q) = &r.request {
                requests.insert(name.to_string(), K8sQuantity(q.text.clone()));
            }
            if let Some(q) = &r.limit {
                limits.insert(name.to_string(), K8sQuantity(q.text.clone()));
            }
        }
    }
    for (name, q) in &c.extended {
        requests.insert(name.clone(), K8sQuantity(q.text.clone()));
        limits.insert(name.clone(), K8sQuantity(q.text.clone()));
    }
    (!requests.is_empty() || !limits.is_empty()).then(|| ResourceRequirements {
        requests: (!requests.is_empty()).then_some(requests),
        limits: (!limits.is_empty()).then_some(limits),
        ..ResourceRequirements::default()
    })
}
