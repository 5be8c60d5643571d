//! The README's spec reference stays in step with the format: every key the JSON Schema knows
//! (config/berth.schema.json, the output of `berth schema`) is named in README.md.

use std::collections::BTreeSet;

fn keys(node: &serde_json::Value, out: &mut BTreeSet<String>) {
    match node {
        serde_json::Value::Object(map) => {
            if let Some(props) = map.get("properties").and_then(|p| p.as_object()) {
                out.extend(props.keys().cloned());
            }
            for v in map.values() {
                keys(v, out);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| keys(v, out)),
        _ => {}
    }
}

#[test]
fn every_schema_key_is_documented_in_the_readme() {
    let root = env!("CARGO_MANIFEST_DIR");
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{root}/config/berth.schema.json")).expect("schema"),
    )
    .expect("schema is JSON");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README.md");
    let mut all = BTreeSet::new();
    keys(&schema, &mut all);
    assert!(
        all.len() > 40,
        "the schema walk found the keys ({})",
        all.len()
    );
    let missing: Vec<&String> = all
        .iter()
        .filter(|k| {
            // Named as a key (`replicas`) or inside an example (`{ request = "…" }`, `size = …`).
            !readme.contains(&format!("`{k}`"))
                && !readme.contains(&format!("`[{k}]`"))
                && !readme.contains(&format!("`[{k}."))
                && !readme.contains(&format!("{k} ="))
                && !readme.contains(&format!("{k}, "))
                && !readme.contains(&format!("{{ {k}"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "README.md does not document: {missing:?}"
    );
}
