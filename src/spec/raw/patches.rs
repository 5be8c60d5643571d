//! The escape hatch as written: `[patches]`, per rendered object a list of RFC 6902 JSON
//! patch operations (`{ op = "add", path = "/spec/...", value = ... }`), for the field nobody
//! modelled yet.

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPatches {
    pub statefulset: Option<Vec<Spanned<toml::Value>>>,
    pub headless: Option<Vec<Spanned<toml::Value>>>,
    pub service: Option<Vec<Spanned<toml::Value>>>,
    /// Per `[services.NAME]`, by its name.
    pub services: Option<super::Entries<Vec<Spanned<toml::Value>>>>,
    pub budget: Option<Vec<Spanned<toml::Value>>>,
}
