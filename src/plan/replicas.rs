//! `replicas = "external"` hands the count to whoever scales the set, and berth never sends it,
//! with one exception that keeps the hand-over safe. Server-side apply removes a field its
//! applier stops sending when no other manager owns it, and a StatefulSet without `replicas`
//! defaults to 1: an app whose spec gave a count before would be scaled down to one pod. So
//! while berth's own apply still owns `spec.replicas`, berth sends the live count, which changes
//! nothing; the first scale by someone else (an autoscaler, `kubectl scale`) takes the field
//! over, and from then on berth leaves it out.

use serde_json::Value;

/// Puts the live count into a rendered StatefulSet that leaves `replicas` out, when `manager`'s
/// apply still owns the field in the live object's managedFields. Says whether it did.
pub fn hold_owned_replicas(want: &mut Value, live: &Value, manager: &str) -> bool {
    if want.pointer("/spec/replicas").is_some() {
        return false;
    }
    let owned = live
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|m| {
            m.get("manager").and_then(Value::as_str) == Some(manager)
                && m.get("operation").and_then(Value::as_str) == Some("Apply")
                && m.pointer("/fieldsV1/f:spec/f:replicas").is_some()
        });
    let Some(count) = live.pointer("/spec/replicas").filter(|_| owned).cloned() else {
        return false;
    };
    match want.get_mut("spec").and_then(Value::as_object_mut) {
        Some(spec) => {
            spec.insert("replicas".into(), count);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn live(manager: &str) -> Value {
        json!({
            "metadata": {"managedFields": [
                {"manager": manager, "operation": "Apply",
                 "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {}}}},
                {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status",
                 "fieldsV1": {"f:status": {}}}
            ]},
            "spec": {"replicas": 4}
        })
    }

    #[test]
    fn the_live_count_is_held_while_berth_still_owns_it() {
        let mut want = json!({"spec": {"serviceName": "web"}});
        assert!(hold_owned_replicas(&mut want, &live("berth"), "berth"));
        assert_eq!(want["spec"]["replicas"], 4);
    }

    #[test]
    fn once_someone_else_owns_the_count_it_is_left_out() {
        let mut want = json!({"spec": {"serviceName": "web"}});
        assert!(!hold_owned_replicas(&mut want, &live("hpa"), "berth"));
        assert!(want["spec"].get("replicas").is_none());
        // Without managedFields (a cached object) nothing is assumed.
        let mut want = json!({"spec": {}});
        assert!(!hold_owned_replicas(
            &mut want,
            &json!({"spec": {"replicas": 4}}),
            "berth"
        ));
    }

    #[test]
    fn a_count_from_the_spec_is_never_replaced() {
        let mut want = json!({"spec": {"replicas": 2}});
        assert!(!hold_owned_replicas(&mut want, &live("berth"), "berth"));
        assert_eq!(want["spec"]["replicas"], 2);
    }
}
