//! `berth import`: live objects (a StatefulSet, its headless Service, an optional access Service
//! and an optional PodDisruptionBudget) → the compact TOML spec that renders them again.
//!
//! The pure part ([`import`]) first strips what the API server adds by default
//! ([`strip_server_defaults`]), so only what someone chose is left, then maps each field to its
//! spec spelling and emits only what differs from berth's defaults. It then checks its own work:
//! the emitted spec is validated and rendered, and every live field the render does not
//! reproduce is reported as a note (a TOML comment in the output, and a warning on stderr).
//!
//! The kube-facing part ([`fetch`], [`list`]) only reads, with the [`Cluster`]'s client.
//!
//! # Layout
//!
//! - `defaults`: the values the API server fills in, and [`strip_server_defaults`].
//! - `toml_writer`: inline TOML values and the spec document they are written into.
//! - `to_spec`: live objects → spec fields ([`import`]); what cannot be expressed becomes a note.
//! - `container`: probes, lifecycle hooks, `env_from` and resource env values of one container.
//! - `pod`: the security, scheduling, resource, set and Service-traffic fields `to_spec` calls on.
//! - `storage`: pod volumes, claim template extras (volume mode, data source) and devices.
//! - `self_check`: renders the emitted spec and lists every live field it does not reproduce.
//! - `patches`: those fields as a `[patches]` section, so the import keeps them.
//! - `fetch`: reading the cluster ([`fetch`], [`list`]) and the spec file an app came from
//!   ([`source_file`]).
//!
//! The command line (`berth import`) is `crate::commands::import`. This file holds the public
//! types and the small JSON readers and label rules the parts share.
//!
//! [`Cluster`]: crate::cluster::Cluster

use std::collections::BTreeMap;

use serde_json::Value;

use crate::config::Config;
use crate::labels::{
    APP_ANNOTATION, APP_INSTANCE_LABEL, COMMIT_ANNOTATION, FINGERPRINT_ANNOTATION, INSTANCE_LABEL,
    MANAGED_BY_LABEL, NAME_LABEL, SOURCE_ANNOTATION,
};

mod container;
mod defaults;
mod fetch;
mod patches;
mod pod;
mod self_check;
mod storage;
mod to_spec;
mod toml_writer;

#[cfg(test)]
mod tests;

pub use defaults::strip_server_defaults;
pub use fetch::{fetch, list, source_file};
pub use to_spec::import;

/// The live objects of one app, as JSON.
#[derive(Debug, Clone, Default)]
pub struct LiveObjects {
    pub statefulset: Value,
    /// The Service named by the StatefulSet's `serviceName`, when it exists.
    pub headless: Option<Value>,
    /// The Service (other than the headless one) selecting the app's pods, when there is one:
    /// `[service]`.
    pub service: Option<Value>,
    /// Further Services selecting the pods (all of them, or one by its pod name):
    /// `[services.NAME]`.
    pub services: Vec<Value>,
    pub pdb: Option<Value>,
    /// Further objects that select the pods but have no place in a spec (a second PDB): named
    /// in the notes so nothing is dropped silently.
    pub extra: Vec<String>,
}

/// What the import is relative to: berth's defaults come from the config, ownership from the
/// instance.
#[derive(Debug, Clone, Copy)]
pub struct ImportContext<'a> {
    pub config: &'a Config,
    /// The file stem the spec will be saved under; `name` is emitted when it differs.
    pub file_stem: Option<&'a str>,
    /// Keep the node ports of a LoadBalancer Service. The API server allocates them, so by
    /// default they are left out; a NodePort Service's node ports are always kept.
    pub keep_node_ports: bool,
}

/// One imported spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub namespace: String,
    pub name: String,
    /// The spec text, with the notes as comments at the top.
    pub text: String,
    /// Live fields the spec cannot express, adoption and recreate advice.
    pub notes: Vec<String>,
}

/// Reading the live objects failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("StatefulSet {namespace}/{name} not found")]
    NotFound { namespace: String, name: String },
    #[error("reading StatefulSet {namespace}/{name}")]
    GetStatefulSet {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("listing {what}")]
    List {
        what: String,
        #[source]
        source: kube::Error,
    },
}

// ---------------------------------------------------------------------------------------------
// Ownership and berth's own keys
// ---------------------------------------------------------------------------------------------

/// Labels berth sets itself (selector and ownership): never part of a spec's `labels`.
const BERTH_LABELS: [&str; 4] = [
    NAME_LABEL,
    APP_INSTANCE_LABEL,
    MANAGED_BY_LABEL,
    INSTANCE_LABEL,
];

/// Annotations berth sets itself on top-level objects.
const BERTH_ANNOTATIONS: [&str; 4] = [
    SOURCE_ANNOTATION,
    APP_ANNOTATION,
    COMMIT_ANNOTATION,
    FINGERPRINT_ANNOTATION,
];

use crate::labels::{Ownership, ownership};

// ---------------------------------------------------------------------------------------------
// Reading live JSON
// ---------------------------------------------------------------------------------------------

/// The value at a JSON pointer, or null: absent and null fields read alike.
fn ptr<'a>(v: &'a Value, p: &str) -> &'a Value {
    v.pointer(p).unwrap_or(&Value::Null)
}

fn ptr_str<'a>(v: &'a Value, p: &str) -> Option<&'a str> {
    v.pointer(p).and_then(Value::as_str)
}

/// The strings of a JSON array; other items are skipped.
fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

/// A JSON object as string pairs (labels, annotations, selectors); a non-string value is kept as
/// its JSON text.
fn str_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), text_of(v)))
        .collect()
}

/// A scalar as text: a string as is, anything else (a quantity given as a number) as JSON.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
