//! Raw types of the pod-level fields beyond the console form: security (a preset, ids, seccomp,
//! per-container capabilities) and scheduling (tolerations, node affinity, topology spread).
//! Like the rest of [`super`], plain tables with `deny_unknown_fields` and a span on every value
//! a rule can reject.

use serde::Deserialize;
use toml::Spanned;

/// `security = "restricted"`: everything the Kubernetes "restricted" Pod Security level needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SecurityPreset {
    Restricted,
}

/// `capabilities = { add = ["NET_BIND_SERVICE"], drop = ["ALL"] }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCapabilities {
    pub add: Option<Vec<Spanned<String>>>,
    pub drop: Option<Vec<Spanned<String>>>,
}

/// One toleration: `{ key = "dedicated", value = "db", effect = "NoSchedule" }`. The operator
/// follows from `value`: Equal with one, Exists without.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawToleration {
    pub key: Option<Spanned<String>>,
    pub value: Option<Spanned<String>>,
    pub effect: Option<Spanned<TaintEffect>>,
    /// tolerationSeconds, NoExecute only: how long the pod stays on a node after the taint.
    pub evict_after: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

impl TaintEffect {
    pub fn as_str(self) -> &'static str {
        match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::PreferNoSchedule => "PreferNoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        }
    }
}

/// `node_affinity = { required = [...], preferred = [...] }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNodeAffinity {
    /// Node label expressions that must all hold (one nodeSelectorTerm).
    pub required: Option<Spanned<Vec<Spanned<RawNodeExpr>>>>,
    /// Weighted expressions the scheduler prefers, one preference each.
    pub preferred: Option<Spanned<Vec<Spanned<RawNodeExpr>>>>,
}

/// One node label expression: `{ key = "disktype", in = ["ssd"] }`, `not_in = [...]`,
/// `exists = true` (or false: DoesNotExist), `gt = 4`, `lt = 8`; `weight` in `preferred`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNodeExpr {
    pub key: Option<Spanned<String>>,
    #[serde(rename = "in")]
    pub in_: Option<Spanned<Vec<String>>>,
    pub not_in: Option<Spanned<Vec<String>>>,
    pub exists: Option<Spanned<bool>>,
    pub gt: Option<Spanned<i64>>,
    pub lt: Option<Spanned<i64>>,
    pub weight: Option<Spanned<i64>>,
}

/// One topology spread constraint over the app's own pods:
/// `{ key = "zone", max_skew = 1, when_unsatisfiable = "schedule-anyway" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTopologySpread {
    pub key: Option<Spanned<String>>,
    pub max_skew: Option<Spanned<i64>>,
    pub when_unsatisfiable: Option<Spanned<WhenUnsatisfiable>>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum WhenUnsatisfiable {
    DoNotSchedule,
    ScheduleAnyway,
}

impl WhenUnsatisfiable {
    pub fn as_str(self) -> &'static str {
        match self {
            WhenUnsatisfiable::DoNotSchedule => "DoNotSchedule",
            WhenUnsatisfiable::ScheduleAnyway => "ScheduleAnyway",
        }
    }
}
