//! `--scale`: the same measures at several fleet sizes, and how much each grew from one size
//! to the next. A measure whose cost follows the work grows about as much as the fleet; one
//! that grows faster (an O(apps) cost per app, a quadratic first sync) shows at once.

use serde_json::{Value, json};

/// The measures compared across sizes: label and where each size's report holds it.
const MEASURES: [(&str, &str); 17] = [
    ("cold converge (s)", "/converge/cold/berth_s"),
    ("API floor (s)", "/converge/floor/floor_s"),
    (
        "apply cold peak RSS (MiB)",
        "/converge/cold/berth_peak_rss_mib",
    ),
    ("no-op converge (s)", "/converge/noop/berth_s"),
    ("no-op writes", "/converge/noop/berth_writes"),
    (
        "apply no-op peak RSS (MiB)",
        "/converge/noop/berth_peak_rss_mib",
    ),
    ("diff cold (s)", "/diff/cold_s"),
    ("diff cold peak RSS (MiB)", "/diff/cold_peak_rss_mib"),
    ("watch first full sync (s)", "/watch/first_sync_s"),
    ("edit p50 (ms)", "/watch/edits/p50_ms"),
    ("edit p99 (ms)", "/watch/edits/p99_ms"),
    ("idle peak RSS (MiB)", "/watch/idle/peak_rss_mib"),
    (
        "peak RSS after edits (MiB)",
        "/watch/peak_rss_mib_after_edits",
    ),
    ("validate (s)", "/validate_render/validate_s"),
    ("render (s)", "/validate_render/render_s"),
    (
        "render peak RSS (MiB)",
        "/validate_render/render_peak_rss_mib",
    ),
    ("kubectl cold (s)", "/converge/cold/kubectl_s"),
];

fn value(report: &Value, pointer: &str) -> f64 {
    report
        .pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or(f64::NAN)
}

/// Per measure, its value at each size and the factor it grew by from each size to the next.
pub(super) fn growth(sizes: &[Value]) -> Value {
    let apps: Vec<u64> = sizes
        .iter()
        .map(|r| r["apps"].as_u64().unwrap_or(0))
        .collect();
    let measures: Vec<Value> = MEASURES
        .iter()
        .map(|(label, pointer)| {
            let values: Vec<f64> = sizes.iter().map(|r| value(r, pointer)).collect();
            let factors: Vec<f64> = values.windows(2).map(|w| w[1] / w[0]).collect();
            json!({"measure": label, "values": values, "growth": factors})
        })
        .collect();
    json!({"apps": apps, "measures": measures})
}

/// The growth table: one row per measure, a column per size, then each step's factor next to
/// the fleet's own growth.
pub(super) fn print_growth(sizes: &[Value], growth: &Value) {
    let apps: Vec<u64> = sizes
        .iter()
        .map(|r| r["apps"].as_u64().unwrap_or(0))
        .collect();
    let mut header = format!("\n{:<28}", "measure");
    for n in &apps {
        header += &format!(" {:>10}", format!("{n} apps"));
    }
    for w in apps.windows(2) {
        header += &format!(" {:>12}", format!("x{} apps", w[1] / w[0].max(1)));
    }
    println!("{header}");
    for measure in growth["measures"].as_array().into_iter().flatten() {
        let mut row = format!("{:<28}", measure["measure"].as_str().unwrap_or("?"));
        for v in measure["values"].as_array().into_iter().flatten() {
            row += &format!(" {:>10}", number(v.as_f64().unwrap_or(f64::NAN)));
        }
        for g in measure["growth"].as_array().into_iter().flatten() {
            row += &format!(" {:>12}", factor(g.as_f64().unwrap_or(f64::NAN)));
        }
        println!("{row}");
    }
}

fn number(v: f64) -> String {
    match v {
        v if v.is_nan() => "-".to_string(),
        v if v >= 100.0 => format!("{v:.0}"),
        v => format!("{v:.2}"),
    }
}

fn factor(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.1}x")
    } else {
        "-".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_is_each_size_over_the_one_before() {
        let size =
            |apps: u64, cold: f64| json!({"apps": apps, "converge": {"cold": {"berth_s": cold}}});
        let g = growth(&[size(100, 1.0), size(1000, 8.0), size(10000, 120.0)]);
        assert_eq!(g["apps"], json!([100, 1000, 10000]));
        let cold = &g["measures"][0];
        assert_eq!(cold["values"], json!([1.0, 8.0, 120.0]));
        assert_eq!(cold["growth"], json!([8.0, 15.0]));
        // A measure a size lacks (kubectl left out) is no number, not a zero.
        let kubectl = g["measures"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|m| m["measure"] == "kubectl cold (s)");
        assert!(kubectl.is_some_and(|m| m["values"][2].is_null()));
    }
}
