//! Raw types of the storage fields beyond the console form: a ConfigMap or Secret volume with
//! `items` and `default_mode`, a claim template's `volume_mode` and `data_source`.

use std::fmt;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use toml::Spanned;

use super::Entries;

/// `config_map = "name"` or `config_map = { name = "x", items = { key = "path" }, default_mode = 0o440 }`.
#[derive(Debug)]
pub struct RawKeyed {
    pub name: Option<Spanned<String>>,
    pub items: Option<Entries<Spanned<String>>>,
    pub default_mode: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeyedTable {
    name: Option<Spanned<String>>,
    items: Option<Entries<Spanned<String>>>,
    default_mode: Option<Spanned<i64>>,
}

impl<'de> Deserialize<'de> for RawKeyed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawKeyed;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a name, or a table { name = \"...\", items = { key = \"path\" }, default_mode = 0o440 }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawKeyed, E> {
                Ok(RawKeyed {
                    // The outer Spanned carries the position; the validator uses that.
                    name: Some(Spanned::new(0..0, v.to_string())),
                    items: None,
                    default_mode: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawKeyed, A::Error> {
                let t = RawKeyedTable::deserialize(MapAccessDeserializer::new(map))?;
                Ok(RawKeyed {
                    name: t.name,
                    items: t.items,
                    default_mode: t.default_mode,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// `volume_mode = "block"`: a raw block device, used through a container's `devices`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum VolumeMode {
    Filesystem,
    Block,
}

/// `data_source = { snapshot = "nightly" }` (a VolumeSnapshot) or `{ claim = "other" }` (a clone).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDataSource {
    pub snapshot: Option<Spanned<String>>,
    pub claim: Option<Spanned<String>>,
}
