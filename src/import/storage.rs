//! Live → spec for volumes: each pod volume's kind (emptyDir, ConfigMap and Secret with their
//! items and mode, host path, an existing claim), a claim template's volume mode and data
//! source, and a container's block devices.

use serde_json::Value;

use super::toml_writer::{TomlValue, toml_str};
use super::{ptr, ptr_str, text_of};

type Entries = Vec<(String, TomlValue)>;

/// A ConfigMap or Secret volume: the name alone, or a table with its items and mode.
fn keyed(source: &Value, name_field: &str) -> Option<TomlValue> {
    let name = ptr_str(source, name_field)?;
    let items: Entries = ptr(source, "/items")
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| {
            Some((
                ptr_str(i, "/key")?.to_string(),
                toml_str(ptr_str(i, "/path")?),
            ))
        })
        .collect();
    let mode = ptr(source, "/defaultMode").as_i64();
    if items.is_empty() && mode.is_none() {
        return Some(toml_str(name));
    }
    let mut t = vec![("name".to_string(), toml_str(name))];
    if !items.is_empty() {
        t.push(("items".into(), TomlValue::Tab(items)));
    }
    if let Some(m) = mode {
        t.push(("default_mode".into(), TomlValue::Octal(m)));
    }
    Some(TomlValue::Tab(t))
}

/// The spec entries of one pod volume, or None for a kind the spec has no spelling for.
pub(super) fn volume_kind(v: &Value) -> Option<Entries> {
    if let Some(e) = v.get("emptyDir") {
        let mut t = Vec::new();
        if let Some(m) = e.get("medium").and_then(Value::as_str)
            && !m.is_empty()
        {
            t.push(("medium".to_string(), toml_str(m)));
        }
        if let Some(l) = e.get("sizeLimit") {
            t.push(("size_limit".into(), toml_str(text_of(l))));
        }
        let value = if t.is_empty() {
            TomlValue::Bool(true)
        } else {
            TomlValue::Tab(t)
        };
        return Some(vec![("empty_dir".into(), value)]);
    }
    if let Some(c) = v.get("configMap") {
        return Some(vec![("config_map".into(), keyed(c, "/name")?)]);
    }
    if let Some(s) = v.get("secret") {
        return Some(vec![("secret".into(), keyed(s, "/secretName")?)]);
    }
    if let Some(path) = ptr_str(v, "/hostPath/path") {
        return Some(vec![("host_path".into(), toml_str(path))]);
    }
    if let Some(claim) = ptr_str(v, "/persistentVolumeClaim/claimName") {
        let mut out = vec![("claim".to_string(), toml_str(claim))];
        if ptr(v, "/persistentVolumeClaim/readOnly") == &Value::Bool(true) {
            out.push(("read_only".into(), TomlValue::Bool(true)));
        }
        return Some(out);
    }
    None
}

/// A claim template's `volume_mode = "block"` and `data_source`.
pub(super) fn template_extras(t: &Value) -> Entries {
    let mut out = Entries::new();
    if ptr_str(t, "/spec/volumeMode") == Some("Block") {
        out.push(("volume_mode".into(), toml_str("block")));
    }
    let ds = ptr(t, "/spec/dataSource");
    let source = match (ptr_str(ds, "/kind"), ptr_str(ds, "/apiGroup")) {
        (Some("VolumeSnapshot"), Some("snapshot.storage.k8s.io")) => Some("snapshot"),
        (Some("PersistentVolumeClaim"), None | Some("")) => Some("claim"),
        _ => None,
    };
    if let (Some(kind), Some(name)) = (source, ptr_str(ds, "/name")) {
        out.push((
            "data_source".into(),
            TomlValue::Tab(vec![(kind.into(), toml_str(name))]),
        ));
    }
    out
}

/// `devices = { data = "/dev/xvda" }` from a container's volumeDevices.
pub(super) fn devices(c: &Value) -> Option<(String, TomlValue)> {
    let devices: Entries = ptr(c, "/volumeDevices")
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| {
            Some((
                ptr_str(d, "/name")?.to_string(),
                toml_str(ptr_str(d, "/devicePath")?),
            ))
        })
        .collect();
    (!devices.is_empty()).then(|| ("devices".to_string(), TomlValue::Tab(devices)))
}
