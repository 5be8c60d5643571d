//! A page of a list response read straight into [`LiveObject`]s: each object's metadata is
//! read, and everything else (spec, status) is copied as the server's text without being
//! parsed into a tree. Parsing every listed object whole, then writing it out again as text,
//! was a third of a no-op plan's CPU time at 10,000 apps.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use super::{Identified, LiveObject, app_of};
use crate::cluster::{FIELD_MANAGER, Kind};
use crate::labels::SOURCE_ANNOTATION;

/// A list response: its objects, unparsed, and the token of the next page.
#[derive(Deserialize)]
pub(super) struct Page<'a> {
    #[serde(borrow)]
    items: Vec<&'a RawValue>,
    #[serde(default)]
    metadata: PageMeta,
}

#[derive(Deserialize, Default)]
struct PageMeta {
    #[serde(rename = "continue", default)]
    continue_token: Option<String>,
}

impl<'a> Page<'a> {
    pub(super) fn parse(text: &'a str) -> Result<Page<'a>, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The token of the next page, if there is one.
    pub(super) fn next(&self) -> Option<&str> {
        self.metadata
            .continue_token
            .as_deref()
            .filter(|t| !t.is_empty())
    }

    /// The page's objects that name an app, as berth keeps them.
    pub(super) fn identified(&self, kind: Kind) -> Result<Vec<Identified>, serde_json::Error> {
        let mut objects = Vec::with_capacity(self.items.len());
        for item in &self.items {
            if let Some(object) = identify(kind, item.get())? {
                objects.push(object);
            }
        }
        Ok(objects)
    }
}

/// An object's top level, or its metadata: each field's text.
type Fields<'a> = BTreeMap<Cow<'a, str>, &'a RawValue>;

/// One listed object as [`Identified`]: its metadata read (name, namespace, labels,
/// annotations), of managedFields only whether berth's apply owns `spec.replicas` (the field
/// sets are the bulk of an object, and nothing else in them is read), and the rest copied as
/// text. None for an object that names no app.
fn identify(kind: Kind, text: &str) -> Result<Option<Identified>, serde_json::Error> {
    let object: Fields = serde_json::from_str(text)?;
    let Some(metadata) = object.get("metadata") else {
        return Ok(None);
    };
    let metadata: Fields = serde_json::from_str(metadata.get())?;
    let labels: BTreeMap<String, String> = read(&metadata, "labels")?;
    let annotations: BTreeMap<String, String> = read(&metadata, "annotations")?;
    let namespace: String = read(&metadata, "namespace")?;
    let name: String = read(&metadata, "name")?;
    let Some(app) = app_of(&namespace, &labels, &annotations) else {
        return Ok(None);
    };
    let app = app.to_string();
    let owns_replicas = match metadata.get("managedFields") {
        Some(raw) => serde_json::from_str::<Vec<ManagedEntry>>(raw.get())?
            .iter()
            .any(ManagedEntry::is_berths_replicas),
        None => false,
    };

    let mut json = String::with_capacity(text.len());
    json.push_str("{\"metadata\":{");
    let mut first = true;
    let mut field = |json: &mut String, key: &str, value: &str| {
        if !first {
            json.push(',');
        }
        first = false;
        // A key is a JSON string; written by serde_json it is escaped as it must be.
        json.push_str(&serde_json::to_string(key).unwrap_or_default());
        json.push(':');
        json.push_str(value);
    };
    for (key, value) in &metadata {
        if key != "managedFields" {
            field(&mut json, key, value.get());
        }
    }
    if owns_replicas {
        field(&mut json, "managedFields", &OWNED_REPLICAS);
    }
    json.push('}');
    for (key, value) in &object {
        if key != "metadata" {
            json.push(',');
            json.push_str(&serde_json::to_string(key.as_ref()).unwrap_or_default());
            json.push(':');
            json.push_str(value.get());
        }
    }
    json.push('}');
    Ok(Some(Identified {
        source: annotations.get(SOURCE_ANNOTATION).cloned(),
        object: LiveObject::from_json_text(kind, name, json.into_boxed_str()),
        namespace,
        app,
    }))
}

/// One field of an object's metadata, or its default when it is missing.
fn read<'a, T: Deserialize<'a> + Default>(
    metadata: &Fields<'a>,
    key: &str,
) -> Result<T, serde_json::Error> {
    metadata
        .get(key)
        .map(|raw| serde_json::from_str(raw.get()))
        .transpose()
        .map(Option::unwrap_or_default)
}

/// berth's apply owning `spec.replicas`, as the one managedFields entry kept.
static OWNED_REPLICAS: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    serde_json::json!([{"manager": FIELD_MANAGER, "operation": "Apply",
        "fieldsV1": {"f:spec": {"f:replicas": {}}}}])
    .to_string()
});

/// Of a managedFields entry, what tells whether it is berth's apply owning `spec.replicas`.
/// The field set is walked, not built: only `f:spec` and `f:replicas` are looked at.
#[derive(Deserialize)]
struct ManagedEntry {
    manager: Option<String>,
    operation: Option<String>,
    #[serde(rename = "fieldsV1")]
    fields: Option<FieldSet>,
}

#[derive(Deserialize)]
struct FieldSet {
    #[serde(rename = "f:spec")]
    spec: Option<SpecFields>,
}

#[derive(Deserialize)]
struct SpecFields {
    #[serde(rename = "f:replicas")]
    replicas: Option<IgnoredAny>,
}

impl ManagedEntry {
    fn is_berths_replicas(&self) -> bool {
        self.manager.as_deref() == Some(FIELD_MANAGER)
            && self.operation.as_deref() == Some("Apply")
            && self
                .fields
                .as_ref()
                .and_then(|f| f.spec.as_ref())
                .is_some_and(|s| s.replicas.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn listed(berth_fields: serde_json::Value) -> serde_json::Value {
        json!({
            "metadata": {"name": "web", "namespace": "db", "resourceVersion": "7",
                "labels": {"app.kubernetes.io/name": "web", "a\"b": "c"},
                "annotations": {"berth.dev/source": "db/web.toml"},
                "managedFields": [
                    {"manager": FIELD_MANAGER, "operation": "Apply", "fieldsV1": berth_fields},
                    {"manager": "kube-controller-manager", "operation": "Update",
                     "subresource": "status", "fieldsV1": {"f:status": {"f:replicas": {}}}}
                ]},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "app"}]}}},
            "status": {"replicas": 3}
        })
    }

    fn page_of(items: &[serde_json::Value]) -> String {
        json!({"kind": "StatefulSetList", "metadata": {"continue": "next-7"}, "items": items})
            .to_string()
    }

    /// The kept text is the whole object but managedFields, of which only whether berth owns
    /// the replica count.
    #[test]
    fn a_page_keeps_each_object_whole_but_managed_fields() {
        let owning = listed(json!({"f:spec": {"f:replicas": {}, "f:template": {}}}));
        let text = page_of(std::slice::from_ref(&owning));
        let page = Page::parse(&text).expect("page");
        assert_eq!(page.next(), Some("next-7"));
        let objects = page.identified(Kind::StatefulSet).expect("objects");
        assert_eq!(objects.len(), 1);
        let web = &objects[0];
        assert_eq!((web.namespace.as_str(), web.app.as_str()), ("db", "web"));
        assert_eq!(web.source.as_deref(), Some("db/web.toml"));
        assert_eq!(web.object.name, "web");
        let mut expected = owning.clone();
        expected["metadata"]["managedFields"] = json!([{"manager": FIELD_MANAGER,
            "operation": "Apply", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]);
        expected["apiVersion"] = json!("apps/v1");
        expected["kind"] = json!("StatefulSet");
        assert_eq!(web.object.json(), expected);
        let mut want = json!({"spec": {}});
        assert!(crate::plan::hold_owned_replicas(
            &mut want,
            &web.object.json(),
            FIELD_MANAGER
        ));
        assert_eq!(want["spec"]["replicas"], 3);
    }

    #[test]
    fn without_berths_replica_field_no_managed_fields_are_kept() {
        let text = page_of(&[listed(json!({"f:spec": {"f:template": {}}}))]);
        let page = Page::parse(&text).expect("page");
        let objects = page.identified(Kind::StatefulSet).expect("objects");
        let json = objects[0].object.json();
        assert!(json.pointer("/metadata/managedFields").is_none(), "{json}");
        assert_eq!(json["spec"]["replicas"], 3);
    }

    #[test]
    fn objects_naming_no_app_are_left_out_and_the_last_page_has_no_next() {
        let mut stray = listed(json!({}));
        stray["metadata"]["labels"] = json!({});
        let text = json!({"metadata": {"continue": ""}, "items": [stray]}).to_string();
        let page = Page::parse(&text).expect("page");
        assert_eq!(page.next(), None);
        assert!(
            page.identified(Kind::StatefulSet)
                .expect("objects")
                .is_empty()
        );
    }
}
