//! [`contained_in`] of a desired object in a live object kept as JSON text, read straight from
//! the text: only the fields the desired object has are looked at, and nothing is built. A no-op
//! plan asks this of every object of the fleet, and parsing each live copy into a tree (then
//! dropping it) was much of its CPU, most of it in the allocator.
//!
//! [`contained_in`]: crate::plan::contained_in

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::cluster::Kind;
use crate::labels::COMMIT_ANNOTATION;

/// `contained_in(desired, live)` for the live object `text` of `kind`, read as
/// [`super::LiveObject::json`] reads it: with the apiVersion and kind of `kind`, whatever the
/// text says. False for text that is not JSON (which berth never keeps).
pub(super) fn contained_in_text(desired: &Value, kind: Kind, text: &str) -> bool {
    let resource = kind.resource();
    let Some(fields) = desired.as_object() else {
        return serde_json::from_str::<Value>(text).is_ok_and(|live| *desired == live);
    };
    // The two fields a list leaves out of its items are the kind's, not the text's.
    let typed = |key: &str, value: &str| fields.get(key).is_none_or(|v| v.as_str() == Some(value));
    if !typed("apiVersion", &resource.api_version) || !typed("kind", &resource.kind) {
        return false;
    }
    let mut reader = serde_json::Deserializer::from_str(text);
    let held = Holds {
        desired,
        place: Place::Top,
    }
    .deserialize(&mut reader);
    held.is_ok_and(|held| held) && reader.end().is_ok()
}

/// Where in the object a value sits, as far as the comparison cares: the commit annotation is
/// left out (a new commit alone is not a change), and the type fields are checked apart.
#[derive(Clone, Copy, PartialEq)]
enum Place {
    Top,
    Metadata,
    Annotations,
    Elsewhere,
}

impl Place {
    fn of_field(self, key: &str) -> Place {
        match (self, key) {
            (Place::Top, "metadata") => Place::Metadata,
            (Place::Metadata, "annotations") => Place::Annotations,
            _ => Place::Elsewhere,
        }
    }

    /// A desired field that holds whatever the live object has there (a live field no desired
    /// one asks for is never looked at: the type fields of the text are left alone that way).
    fn passes(self, key: &str) -> bool {
        match self {
            Place::Top => key == "apiVersion" || key == "kind",
            Place::Annotations => key == COMMIT_ANNOTATION,
            _ => false,
        }
    }
}

/// Reads one live value, answering whether `desired` is contained in it.
struct Holds<'d> {
    desired: &'d Value,
    place: Place,
}

impl<'de> DeserializeSeed<'de> for Holds<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Holds<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<bool, E> {
        Ok(*self.desired == Value::Bool(v))
    }

    // Numbers compare as `Value`s do: a u64, an i64 and a float are never equal.
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<bool, E> {
        Ok(self.desired.as_u64() == Some(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<bool, E> {
        Ok(self.desired.as_i64() == Some(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<bool, E> {
        Ok(serde_json::Number::from_f64(v).is_some_and(|n| *self.desired == Value::Number(n)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<bool, E> {
        Ok(self.desired.as_str() == Some(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(self.desired.is_null())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let Some(items) = self.desired.as_array() else {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(false);
        };
        let mut held = true;
        let mut count = 0;
        loop {
            let item = match items.get(count) {
                Some(desired) if held => seq.next_element_seed(Holds {
                    desired,
                    place: Place::Elsewhere,
                })?,
                _ => seq.next_element::<IgnoredAny>()?.map(|_| false),
            };
            let Some(item_held) = item else { break };
            held &= item_held;
            count += 1;
        }
        Ok(held && count == items.len())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let Some(fields) = self.desired.as_object() else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(false);
        };
        // Per desired field, whether the live object's (last) value of it holds it.
        let mut found: Vec<(&str, &Value, Option<bool>)> = fields
            .iter()
            .filter(|(key, _)| !self.place.passes(key))
            .map(|(key, value)| (key.as_str(), value, None))
            .collect();
        while let Some(key) = map.next_key_seed(Key)? {
            let wanted = match found.iter_mut().find(|(k, ..)| *k == key.as_ref()) {
                Some(entry) => entry,
                None => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            wanted.2 = Some(map.next_value_seed(Holds {
                desired: wanted.1,
                place: self.place.of_field(&key),
            })?);
        }
        Ok(found.iter().all(|(.., held)| *held == Some(true)))
    }
}

/// A map key, borrowed from the text unless it has escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::cluster::inventory::with_type;
    use crate::plan::contained_in;

    /// A live StatefulSet as a list gives it (no apiVersion or kind), with fields berth does
    /// not set, escapes, numbers of every kind and the commit annotation.
    fn live() -> Value {
        json!({
            "metadata": {
                "name": "web", "namespace": "db",
                "labels": {"app.kubernetes.io/name": "web", "te\"am": "a\\b"},
                "annotations": {"berth.dev/applied": "abc", "berth.dev/commit": "c1"},
                "resourceVersion": "12", "uid": "u"
            },
            "spec": {
                "replicas": 3, "minReadySeconds": 0,
                "template": {"spec": {
                    "containers": [{"name": "app", "image": "nginx:1.27", "ports": [
                        {"containerPort": 8080, "protocol": "TCP"}]},
                        {"name": "side", "args": ["-v", "é\n"]}],
                    "terminationGracePeriodSeconds": 30,
                    "priority": -5, "ratio": 0.5, "enabled": true, "nothing": null
                }}
            },
            "status": {"replicas": 3}
        })
    }

    /// What berth would apply for it: a part of it, with the type fields.
    fn desired() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {
                "name": "web", "namespace": "db",
                "labels": {"app.kubernetes.io/name": "web", "te\"am": "a\\b"},
                "annotations": {"berth.dev/applied": "abc", "berth.dev/commit": "c2"}
            },
            "spec": {
                "replicas": 3,
                "template": {"spec": {
                    "containers": [{"name": "app", "image": "nginx:1.27", "ports": [
                        {"containerPort": 8080}]},
                        {"name": "side", "args": ["-v", "é\n"]}],
                    "priority": -5, "ratio": 0.5, "enabled": true, "nothing": null
                }}
            }
        })
    }

    /// Changes to either side, each tried on its own.
    /// A change to the desired and the live object.
    type Change = Box<dyn Fn(&mut Value, &mut Value)>;

    fn changes() -> Vec<(&'static str, Change)> {
        vec![
            ("as they are", Box::new(|_, _| {})),
            (
                "image drifted",
                Box::new(|_, l| {
                    l["spec"]["template"]["spec"]["containers"][0]["image"] = "x".into()
                }),
            ),
            (
                "a field missing live",
                Box::new(|_, l| {
                    if let Some(spec) = l["spec"].as_object_mut() {
                        spec.remove("replicas");
                    }
                }),
            ),
            (
                "a list longer live",
                Box::new(|_, l| {
                    if let Some(containers) =
                        l["spec"]["template"]["spec"]["containers"].as_array_mut()
                    {
                        containers.push(json!({"name": "x"}));
                    }
                }),
            ),
            (
                "a list shorter live",
                Box::new(|_, l| {
                    if let Some(containers) =
                        l["spec"]["template"]["spec"]["containers"].as_array_mut()
                    {
                        containers.pop();
                    }
                }),
            ),
            (
                "an integer live where a float is wanted",
                Box::new(|d, l| {
                    d["spec"]["template"]["spec"]["ratio"] = json!(1.0);
                    l["spec"]["template"]["spec"]["ratio"] = json!(1);
                }),
            ),
            (
                "a float live where an integer is wanted",
                Box::new(|_, l| l["spec"]["replicas"] = json!(3.0)),
            ),
            (
                "a negative number changed",
                Box::new(|_, l| l["spec"]["template"]["spec"]["priority"] = json!(-6)),
            ),
            (
                "a string where a number is wanted",
                Box::new(|_, l| l["spec"]["replicas"] = "3".into()),
            ),
            (
                "a null that is not",
                Box::new(|_, l| l["spec"]["template"]["spec"]["nothing"] = json!(false)),
            ),
            (
                "a bool flipped",
                Box::new(|_, l| l["spec"]["template"]["spec"]["enabled"] = json!(false)),
            ),
            (
                "a map where a list is wanted",
                Box::new(|_, l| l["spec"]["template"]["spec"]["containers"] = json!({})),
            ),
            (
                "a list where a map is wanted",
                Box::new(|_, l| l["spec"]["template"] = json!([])),
            ),
            (
                "an escaped label changed",
                Box::new(|_, l| l["metadata"]["labels"]["te\"am"] = "a\\c".into()),
            ),
            (
                "the fingerprint changed",
                Box::new(|_, l| l["metadata"]["annotations"]["berth.dev/applied"] = "abd".into()),
            ),
            (
                "the commit missing live",
                Box::new(|_, l| {
                    if let Some(annotations) = l["metadata"]["annotations"].as_object_mut() {
                        annotations.remove("berth.dev/commit");
                    }
                }),
            ),
            (
                "a commit key elsewhere",
                Box::new(|d, _| d["spec"]["berth.dev/commit"] = "c".into()),
            ),
            (
                "a wrong kind wanted",
                Box::new(|d, _| d["kind"] = "Service".into()),
            ),
            (
                "a wrong type in the text",
                Box::new(|_, l| l["kind"] = "Service".into()),
            ),
            (
                "an empty map wanted",
                Box::new(|d, _| d["spec"]["template"]["spec"]["empty"] = json!({})),
            ),
            (
                "an empty map wanted, present",
                Box::new(|d, l| {
                    d["spec"]["empty"] = json!({});
                    l["spec"]["empty"] = json!({"a": 1});
                }),
            ),
        ]
    }

    /// Read from the text, the answer is always the tree's.
    #[test]
    fn the_text_holds_the_desired_object_exactly_when_its_tree_does() {
        let mut held = 0;
        for (what, change) in changes() {
            let (mut want, mut live) = (desired(), live());
            change(&mut want, &mut live);
            let text = serde_json::to_string(&live).expect("JSON");
            let from_tree = contained_in(&want, &with_type(Kind::StatefulSet, live));
            assert_eq!(
                contained_in_text(&want, Kind::StatefulSet, &text),
                from_tree,
                "{what}"
            );
            held += usize::from(from_tree);
        }
        // Both answers occur: the cases are not all alike.
        assert!(held >= 3 && held < changes().len(), "{held}");
        assert!(contained_in_text(
            &desired(),
            Kind::StatefulSet,
            &serde_json::to_string(&live()).expect("JSON")
        ));
    }

    /// A live key given twice counts as a tree reads it: the last value.
    #[test]
    fn a_repeated_live_key_counts_its_last_value() {
        let want = json!({"spec": {"replicas": 3}});
        let last_holds = r#"{"spec": {"replicas": 2, "replicas": 3}}"#;
        let last_differs = r#"{"spec": {"replicas": 3, "replicas": 2}}"#;
        assert!(contained_in_text(&want, Kind::StatefulSet, last_holds));
        assert!(!contained_in_text(&want, Kind::StatefulSet, last_differs));
        assert!(!contained_in_text(&want, Kind::StatefulSet, "{\"spec\": "));
    }
}
