//! TOML text → [`RawApp`], collecting every syntax and type problem of a file, not just the first.
//!
//! serde stops at the first error, so a failed document is taken apart: every top-level key (and
//! every field of every container, every volume, every field of `[service]`) is deserialized on
//! its own, each failure becomes a diagnostic, and the failing pieces are pruned so the rest can
//! still be deserialized and validated. The pruned paths are kept, so that later rules do not
//! report consequences of an error already reported (a mount naming a volume that was pruned).

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diag::{Diagnostic, closest};
use super::raw::RawApp;

/// The result of reading one file.
pub struct Parsed {
    /// `None` when the file is not valid TOML or even the pruned document fails.
    pub raw: Option<RawApp>,
    pub diagnostics: Vec<Diagnostic>,
    /// Dotted paths removed because they failed to deserialize (`replicas`,
    /// `containers.mysql.cpu`, `volumes.data`).
    pub pruned: BTreeSet<String>,
    /// The `name` and `namespace` keys when they are plain strings, even if the file is broken:
    /// a broken spec must still be attributable to its app.
    pub name_hint: Option<String>,
    pub namespace_hint: Option<String>,
}

/// Tables whose entries are probed one by one, and how deep: `Fields` probes each field of each
/// entry (containers), `Entries` each entry as a whole (volumes), `Table` each field (service).
enum Depth {
    Fields,
    Entries,
    Table,
}

fn depth_of(key: &str) -> Option<Depth> {
    match key {
        "containers" | "init_containers" => Some(Depth::Fields),
        "volumes" => Some(Depth::Entries),
        "service" => Some(Depth::Table),
        _ => None,
    }
}

pub fn parse(path: &Path, source: &str) -> Parsed {
    let (root, mut errors) = DeTable::parse_recoverable(source);
    errors.sort_by_key(|e| e.span().map(|s| s.start));
    let hint = |key: &str| {
        root.get_ref()
            .iter()
            .find(|(k, _)| k.get_ref() == key)
            .and_then(|(_, v)| v.get_ref().as_str().map(str::to_string))
    };
    let mut parsed = Parsed {
        raw: None,
        diagnostics: Vec::new(),
        pruned: BTreeSet::new(),
        name_hint: hint("name"),
        namespace_hint: hint("namespace"),
    };
    if !errors.is_empty() {
        // The parser recovers and goes on, so one bad line (`=======`) can give an error per
        // character: keep the first error of each line, and at most MAX_SYNTAX_ERRORS.
        let mut lines = BTreeSet::new();
        let total = errors.len();
        for err in errors {
            let span = err.span().unwrap_or(0..0);
            let line = source[..span.start.min(source.len())]
                .bytes()
                .filter(|b| *b == b'\n')
                .count();
            if !lines.insert(line) {
                continue;
            }
            if lines.len() > MAX_SYNTAX_ERRORS {
                parsed.diagnostics.push(
                    Diagnostic::error(
                        path,
                        "toml-syntax",
                        format!("more syntax errors follow ({total} in all); fix the ones above first"),
                    )
                    // Placed at the next error, so it is printed after the ones above.
                    .at(source, span)
                    .label("the next one is here")
                    .help("is this a TOML file at all? A spec is `key = value` lines and `[table]` headers"),
                );
                break;
            }
            let help = syntax_help(source, span.start, err.message());
            parsed.diagnostics.push(
                Diagnostic::error(path, "toml-syntax", "the file is not valid TOML")
                    .at(source, span)
                    .label(err.message().trim().to_string())
                    .help(help),
            );
        }
        return parsed;
    }
    if root.get_ref().is_empty() {
        parsed.diagnostics.push(
            Diagnostic::error(path, "empty-spec", "the spec declares nothing")
                .help("a spec needs at least one container, e.g.\n      [containers.app]\n      image = \"nginx:1.27\""),
        );
        return parsed;
    }
    let span = root.span();
    let full = root.get_ref().clone();
    match deserialize(span.clone(), full) {
        Ok(raw) => {
            parsed.raw = Some(raw);
            return parsed;
        }
        Err(_) => {
            // Take the document apart below to find every problem, not only this first one.
        }
    }
    let mut pruned_root = DeTable::new();
    for (key, value) in root.get_ref().iter() {
        let name = key.get_ref().to_string();
        let depth = depth_of(&name);
        let kept = match (depth, value.get_ref()) {
            (Some(depth), DeValue::Table(table)) => {
                let (kept, errs) =
                    probe_nested(&name, key, value.span(), table, depth, span.clone());
                for (p, e) in errs {
                    parsed.pruned.insert(p);
                    parsed.diagnostics.push(to_diagnostic(path, source, &e));
                }
                Some(Spanned::new(value.span(), DeValue::Table(kept)))
            }
            _ => match probe(span.clone(), one(key, value.clone())) {
                Ok(()) => Some(value.clone()),
                Err(e) => {
                    parsed.pruned.insert(name);
                    parsed.diagnostics.push(to_diagnostic(path, source, &e));
                    None
                }
            },
        };
        if let Some(v) = kept {
            pruned_root.insert(key.clone(), v);
        }
    }
    match deserialize(span, pruned_root) {
        Ok(raw) => parsed.raw = Some(raw),
        Err(e) => {
            // Errors that only show in combination (none known); report once, give up on rules.
            let d = to_diagnostic(path, source, &e);
            if !parsed.diagnostics.contains(&d) {
                parsed.diagnostics.push(d);
            }
        }
    }
    parsed
}

/// Syntax errors reported per file; the rest are counted in one last diagnostic.
const MAX_SYNTAX_ERRORS: usize = 10;

/// A fix for a syntax error, from what the text at the error looks like: the usual ways a spec
/// stops being TOML are a committed merge conflict, YAML or JSON pasted in, a key given twice and
/// a look-alike non-ASCII letter in a key.
fn syntax_help(source: &str, at: usize, message: &str) -> String {
    let at = (0..=at.min(source.len()))
        .rev()
        .find(|i| source.is_char_boundary(*i))
        .unwrap_or(0);
    let line_start = source[..at].rfind('\n').map_or(0, |i| i + 1);
    let line_end = source[at..].find('\n').map_or(source.len(), |i| at + i);
    let line = source[line_start..line_end].trim_start();
    let first = source.trim_start_matches('\u{feff}').trim_start();
    if ["<<<<<<<", "=======", ">>>>>>>", "|||||||"]
        .iter()
        .any(|m| line.starts_with(m))
    {
        return "this is a git merge conflict marker: resolve the conflict (keep one side, delete the markers) and commit again".into();
    }
    if first.starts_with('{') || first.starts_with('[') && first[1..].trim_start().starts_with('{')
    {
        return "the file looks like JSON; a spec is TOML: `key = value` lines and `[table]` headers".into();
    }
    if let Some(c) = source[at..].chars().next().filter(|c| !c.is_ascii()) {
        return format!(
            "`{c}` (U+{:04X}) is not an ASCII character: keys use only ASCII letters, digits, '-' and '_' (retype the key, or quote it if it really is meant)",
            c as u32
        );
    }
    if message.contains("duplicate key") {
        return "each key and each [table] may appear once in a file: merge the two or delete one"
            .into();
    }
    let key = line.split_once(':').map(|(k, _)| k.trim());
    if key.is_some_and(|k| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    }) {
        return "the file looks like YAML; a spec is TOML: write `key = value`, not `key: value`"
            .into();
    }
    "fix the TOML syntax at the caret (strings need double quotes, tables are written `[name]`); the spec's rules are checked once it parses".into()
}

fn deserialize(span: Range<usize>, table: DeTable<'_>) -> Result<RawApp, toml::de::Error> {
    RawApp::deserialize(toml::de::Deserializer::from(Spanned::new(span, table)))
}

fn probe(span: Range<usize>, table: DeTable<'_>) -> Result<(), toml::de::Error> {
    deserialize(span, table).map(|_| ())
}

fn one<'i>(key: &Spanned<toml::de::DeString<'i>>, value: Spanned<DeValue<'i>>) -> DeTable<'i> {
    let mut t = DeTable::new();
    t.insert(key.clone(), value);
    t
}

type Probed<'i> = (DeTable<'i>, Vec<(String, toml::de::Error)>);

/// Probe the entries (or the entries' fields) of one nested table; return what survived and the
/// errors with the path each pruned piece had.
fn probe_nested<'i>(
    top: &str,
    top_key: &Spanned<toml::de::DeString<'i>>,
    top_span: Range<usize>,
    table: &DeTable<'i>,
    depth: Depth,
    doc_span: Range<usize>,
) -> Probed<'i> {
    let wrap = |inner: DeTable<'i>| {
        one(
            top_key,
            Spanned::new(top_span.clone(), DeValue::Table(inner)),
        )
    };
    let mut kept = DeTable::new();
    let mut errs = Vec::new();
    for (key, value) in table.iter() {
        let entry_path = format!("{top}.{}", key.get_ref());
        match (&depth, value.get_ref()) {
            (Depth::Fields, DeValue::Table(fields)) => {
                let mut kept_fields = DeTable::new();
                for (fkey, fvalue) in fields.iter() {
                    let inner = one(
                        key,
                        Spanned::new(value.span(), DeValue::Table(one(fkey, fvalue.clone()))),
                    );
                    match probe(doc_span.clone(), wrap(inner)) {
                        Ok(()) => {
                            kept_fields.insert(fkey.clone(), fvalue.clone());
                        }
                        Err(e) => errs.push((format!("{entry_path}.{}", fkey.get_ref()), e)),
                    }
                }
                kept.insert(
                    key.clone(),
                    Spanned::new(value.span(), DeValue::Table(kept_fields)),
                );
            }
            _ => match probe(doc_span.clone(), wrap(one(key, value.clone()))) {
                Ok(()) => {
                    kept.insert(key.clone(), value.clone());
                }
                // For `[service]` the entries are its fields, so this is `service.<field>`.
                Err(e) => errs.push((entry_path, e)),
            },
        }
    }
    (kept, errs)
}

/// Turn a toml/serde error into a diagnostic, rewriting serde's stock messages into berth's
/// (a "did you mean" for unknown keys and values, plain type names).
pub fn to_diagnostic(path: &Path, source: &str, err: &toml::de::Error) -> Diagnostic {
    let msg = err.message().trim();
    let span = err.span().unwrap_or(0..0);
    let d = if let Some((word, expected)) = parse_unknown(msg, "unknown field `") {
        let mut d = Diagnostic::error(path, "unknown-key", format!("unknown key `{word}`"))
            .label("not a key here");
        d = match closest(&word, expected.iter().map(String::as_str)) {
            Some(best) => d.help(format!("did you mean `{best}`?")),
            None => d.help(format!(
                "expected one of {}",
                super::diag::quote_list(&expected)
            )),
        };
        d
    } else if let Some((word, expected)) = parse_unknown(msg, "unknown variant `") {
        let mut d = Diagnostic::error(path, "unknown-value", format!("unknown value `{word}`"))
            .label("not one of the allowed values");
        d = match closest(&word, expected.iter().map(String::as_str)) {
            Some(best) => d.help(format!(
                "did you mean `{best}`? (allowed: {})",
                super::diag::quote_list(&expected)
            )),
            None => d.help(format!(
                "allowed values: {}",
                super::diag::quote_list(&expected)
            )),
        };
        d
    } else if let Some(number) = msg
        .strip_prefix("invalid value: integer `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(n, _)| n.to_string())
    {
        Diagnostic::error(
            path,
            "number-range",
            format!("the number {number} is out of range"),
        )
        .label("too large for a 64-bit integer")
        .help(
            "use a number that fits the field (replicas, user and group ids and counts are 32-bit)",
        )
    } else if let Some(rest) = msg.strip_prefix("invalid type: ") {
        let (found, expected) = rest
            .split_once(", expected ")
            .unwrap_or((rest, "something else"));
        let expected = plain_type(expected);
        let mut found = plain_type(found);
        // A TOML date or time reaches serde as a table; say what the author wrote.
        let text = source.get(span.clone()).unwrap_or_default();
        if found == "a table" && text.starts_with(|c: char| c.is_ascii_digit()) {
            found = "a date or time".into();
        }
        let help = type_help(&expected);
        Diagnostic::error(path, "wrong-type", format!("expected {expected}"))
            .label(format!("found {found}"))
            .help(help)
    } else {
        Diagnostic::error(path, "invalid-value", msg.to_string())
    };
    d.at(source, span)
}

/// Split "unknown field `x`, expected one of `a`, `b`" / "expected `a` or `b`" / "there are no
/// fields" into the word and the list.
fn parse_unknown(msg: &str, prefix: &str) -> Option<(String, Vec<String>)> {
    let rest = msg.strip_prefix(prefix)?;
    let (word, rest) = rest.split_once('`')?;
    let expected = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    Some((word.to_string(), expected))
}

/// How to write a value of the expected type (given in [`plain_type`]'s words).
fn type_help(expected: &str) -> String {
    match expected {
        "a string" => "write it in double quotes, e.g. \"512Mi\" or \"nginx:1.27\"".into(),
        "an integer" => "write a whole number without quotes, e.g. 3".into(),
        "a number of pods, or \"external\"" => {
            "write a whole number without quotes, e.g. 3, or \"external\"".into()
        }
        "a boolean (true or false)" => "write true or false, without quotes".into(),
        "an array" => "write an array in brackets, e.g. [\"sh\", \"-c\", \"echo hi\"]".into(),
        "a table" => {
            "write a table: `{ key = \"value\" }` inline, or a `[section]` of its own".into()
        }
        other => format!("write {other} here; see `berth schema` for every field's type"),
    }
}

/// serde's Rust-flavoured type names → words a spec author knows.
fn plain_type(s: &str) -> String {
    match s {
        "i64" | "i32" | "u16" | "u32" | "u64" => "an integer".into(),
        "a boolean" | "bool" => "a boolean (true or false)".into(),
        "a sequence" => "an array".into(),
        "a map" => "a table".into(),
        "struct RawApp" => "a table".into(),
        other if other.starts_with("struct ") => "a table".into(),
        other if other.starts_with("enum ") => "one of the allowed strings".into(),
        other if other.starts_with("integer `") => other.replacen("integer", "the integer", 1),
        other if other.starts_with("string ") => other.replacen("string", "the string", 1),
        other if other.starts_with("sequence") => "an array".into(),
        "map" => "a table".into(),
        other => other.into(),
    }
}
