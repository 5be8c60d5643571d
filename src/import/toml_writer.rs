//! TOML emission: the inline values a compact spec is made of and the document they are
//! written into. Only what the importer needs: strings, integers, booleans, arrays and inline
//! tables, each written on one line.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::strs;

/// A TOML value, written inline (`{ a = 1 }`, `["x"]`): what a compact spec is made of.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum TomlValue {
    Str(String),
    Int(i64),
    Float(f64),
    /// A file mode, written in octal (`0o640`).
    Octal(i64),
    Bool(bool),
    Arr(Vec<TomlValue>),
    Tab(Vec<(String, TomlValue)>),
}

/// A basic string: quotes, backslashes and control characters escaped.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A key, bare when TOML allows it (`fix-perms`), quoted otherwise (`"prometheus.io/scrape"`).
pub(super) fn toml_key(k: &str) -> String {
    let bare = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if bare { k.to_string() } else { quote(k) }
}

impl TomlValue {
    pub(super) fn inline(&self) -> String {
        match self {
            TomlValue::Str(s) => quote(s),
            TomlValue::Int(i) => i.to_string(),
            // `{:?}` keeps a fraction (`1.0`, not `1`), so the value reads back as a float.
            TomlValue::Float(f) => format!("{f:?}"),
            TomlValue::Octal(i) => format!("0o{i:o}"),
            TomlValue::Bool(b) => b.to_string(),
            TomlValue::Arr(items) => format!(
                "[{}]",
                items
                    .iter()
                    .map(TomlValue::inline)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            TomlValue::Tab(entries) if entries.is_empty() => "{}".to_string(),
            TomlValue::Tab(entries) => format!(
                "{{ {} }}",
                entries
                    .iter()
                    .map(|(k, v)| format!("{} = {}", toml_key(k), v.inline()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// A TOML string from anything that becomes one.
pub(super) fn toml_str(v: impl Into<String>) -> TomlValue {
    TomlValue::Str(v.into())
}

/// Any JSON value as TOML, when TOML can hold it: null cannot be written, and neither can a
/// float that is not finite.
pub(super) fn from_json(v: &Value) -> Option<TomlValue> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => TomlValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => TomlValue::Int(i),
            None => TomlValue::Float(n.as_f64().filter(|f| f.is_finite())?),
        },
        Value::String(s) => TomlValue::Str(s.clone()),
        Value::Array(items) => TomlValue::Arr(items.iter().map(from_json).collect::<Option<_>>()?),
        Value::Object(m) => TomlValue::Tab(
            m.iter()
                .map(|(k, v)| Some((k.clone(), from_json(v)?)))
                .collect::<Option<_>>()?,
        ),
    })
}

/// A JSON array of strings as a TOML array.
pub(super) fn str_arr(v: &Value) -> TomlValue {
    TomlValue::Arr(strs(v).into_iter().map(TomlValue::Str).collect())
}

/// Labels, annotations or a selector as an inline table.
pub(super) fn tab_of(map: &BTreeMap<String, String>) -> TomlValue {
    TomlValue::Tab(map.iter().map(|(k, v)| (k.clone(), toml_str(v))).collect())
}

/// An int-or-string field (a port, `maxUnavailable`) as it was given.
pub(super) fn int_or_str(v: &Value) -> Option<TomlValue> {
    match v {
        Value::Number(n) => n.as_i64().map(TomlValue::Int),
        Value::String(s) => Some(TomlValue::Str(s.clone())),
        _ => None,
    }
}

/// A duration in whole seconds, in the spec's spelling (`30s`).
pub(super) fn secs(n: i64) -> TomlValue {
    TomlValue::Str(format!("{n}s"))
}

/// A spec under construction: top-level keys, then `[section]` tables in order.
#[derive(Default)]
pub(super) struct Doc {
    pub(super) top: Vec<(String, TomlValue)>,
    pub(super) sections: Vec<(String, Vec<(String, TomlValue)>)>,
}

impl Doc {
    pub(super) fn text(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.top {
            let _ = writeln!(out, "{} = {}", toml_key(k), v.inline());
        }
        for (name, entries) in &self.sections {
            if !out.is_empty() {
                out.push('\n');
            }
            let _ = writeln!(out, "[{name}]");
            for (k, v) in entries {
                let _ = writeln!(out, "{} = {}", toml_key(k), v.inline());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_strings_and_keys_are_escaped() {
        assert_eq!(quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(toml_key("prometheus.io/scrape"), "\"prometheus.io/scrape\"");
        assert_eq!(toml_key("fix-perms"), "fix-perms");
    }

    #[test]
    fn json_values_are_written_as_toml_that_reads_back_the_same() {
        let json = serde_json::json!({
            "ip": "10.0.0.5", "hostnames": ["a.example.com"], "n": 3, "f": 1.0, "on": true,
            "nested": { "a/b": [1, 2] }
        });
        let written = from_json(&json).map(|v| v.inline()).unwrap_or_default();
        let back: toml::Value = toml::from_str(&format!("v = {written}")).expect("TOML");
        assert_eq!(serde_json::to_value(&back["v"]).ok(), Some(json));
        assert!(from_json(&serde_json::json!({ "a": null })).is_none());
    }
}
