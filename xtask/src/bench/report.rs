//! What the bench hands back: the machine the figures come from, the table on stdout, and
//! target/bench/report.json with every figure and every run behind it.
//!
//! The table repeats the targets the figures are judged by (docs/benchmarks.md explains them);
//! the JSON is what a comparison between two runs reads.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::Result;
use serde_json::{Value, json};

use super::Bench;
use super::procfs;

/// The target of berth's one-shot commands (`apply`, `diff`, `render`), judged at the largest
/// fleet the goals name.
const RSS_TARGET: &str = "<= 256 at 10,000 apps";

/// Prints the growth between the sizes (when there are several) and writes the report, every
/// size's figures and the growth, as pretty JSON to `path`.
pub(super) fn publish(machine: Value, sizes: Vec<Value>, path: &Path) -> Result<()> {
    let growth = super::scale::growth(&sizes);
    if sizes.len() > 1 {
        super::scale::print_growth(&sizes, &growth);
    }
    let report = json!({"machine": machine, "sizes": sizes, "growth": growth});
    fs::write(path, serde_json::to_string_pretty(&report)? + "\n")?;
    println!("\nreport written to {}", path.display());
    Ok(())
}

impl Bench {
    /// Where the figures come from: cores, memory, load and versions.
    pub(super) fn machine(&self) -> Result<Value> {
        let mem_kib = procfs::mem_total_kib();
        let model = procfs::cpu_model();
        let output = |cmd: &mut Command| -> String {
            cmd.output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .unwrap_or_default()
        };
        let server = self.rt.block_on(self.client.apiserver_version())?;
        Ok(json!({
            "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "cpu": model,
            "memory_gib": (mem_kib as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            "loadavg_at_start": procfs::loadavg(),
            "berth": output(Command::new(&self.berth).arg("--version")),
            "kubectl": output(Command::new("kubectl").args(["version", "--client"])).lines().next().unwrap_or_default(),
            "kube_apiserver": server.git_version,
            "rustc": output(Command::new("rustc").arg("--version")),
        }))
    }
}

/// One size's headline figures next to their targets, one line each.
pub(super) fn print_table(report: &Value) {
    let f = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_f64).unwrap_or(f64::NAN);
    let u = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_u64).unwrap_or(0);
    let apps = u(report, "/apps");
    println!(
        "\n{apps} apps, {} run(s), berth {} build",
        u(report, "/runs"),
        report["profile"].as_str().unwrap_or("?")
    );
    println!(
        "{:<34} {:>12} {:>12} {:>10}   target",
        "measure", "berth", "kubectl", "ratio"
    );
    for (label, key, target) in [
        ("cold converge (s)", "cold", "ratio >= 2"),
        ("no-op converge (s)", "noop", "ratio >= 50"),
    ] {
        let c = &report["converge"][key];
        // Without kubectl at this size its columns say so rather than show zeros.
        let kubectl = report["kubectl"].as_bool().unwrap_or(true);
        let or_skipped = |text: String| if kubectl { text } else { "-".to_string() };
        println!(
            "{label:<34} {:>12.2} {:>12} {:>10}   {target}",
            f(c, "/berth_s"),
            or_skipped(format!("{:.2}", f(c, "/kubectl_s"))),
            or_skipped(format!("{:.1}x", f(c, "/ratio")))
        );
        println!(
            "{:<34} {:>12} {:>12}",
            format!("  {key}: write requests sent"),
            u(c, "/berth_writes"),
            or_skipped(u(c, "/kubectl_writes").to_string()),
        );
        println!(
            "{:<34} {:>12} {:>12}",
            "    of them dry-run (cluster-wide)",
            u(c, "/berth_cluster_wide_dry_runs"),
            or_skipped(u(c, "/kubectl_cluster_wide_dry_runs").to_string()),
        );
        println!(
            "{:<34} {:>12.1} {:>12} {:>10}   {RSS_TARGET}",
            format!("  {key}: apply peak RSS (MiB)"),
            f(c, "/berth_peak_rss_mib"),
            or_skipped(format!("{:.1}", f(c, "/kubectl_peak_rss_mib"))),
            ""
        );
    }
    let floor = &report["converge"]["floor"];
    println!(
        "{:<34} {:>12.2}   {} applies at the best rate, {:.0}/s ({} at a time); berth {:.2}x of it",
        "  API floor for the same creates (s)",
        f(floor, "/floor_s"),
        apps * 3,
        f(floor, "/best_objects_per_s"),
        u(floor, "/best_concurrency"),
        f(floor, "/berth_over_floor"),
    );
    let curve: Vec<String> = floor["curve"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| format!("{}: {:.0}/s", u(l, "/concurrency"), f(l, "/objects_per_s")))
        .collect();
    println!(
        "{:<34} {}",
        "    floor curve (at a time: rate)",
        curve.join(", ")
    );
    let w = &report["watch"];
    println!(
        "{:<34} {:>12.0}   p50 <= 200",
        "edit latency p50 (ms)",
        f(w, "/edits/p50_ms")
    );
    println!(
        "{:<34} {:>12.0}   p99 <= 1000",
        "edit latency p99 (ms)",
        f(w, "/edits/p99_ms")
    );
    println!(
        "{:<34} {:>12.0}",
        "edit latency max (ms)",
        f(w, "/edits/max_ms")
    );
    println!(
        "{:<34} {:>12.2}",
        "watch first full sync (s)",
        f(w, "/first_sync_s")
    );
    let idle_requests = w
        .pointer("/idle/requests")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    println!(
        "{:<34} {:>12}   only watches",
        format!("idle {}s: requests", u(w, "/idle/seconds")),
        if idle_requests.is_empty() {
            "none".to_string()
        } else {
            idle_requests
        }
    );
    println!("{:<34} {:>12.2}", "idle: CPU seconds", f(w, "/idle/cpu_s"));
    println!(
        "{:<34} {:>12.1}   <= 64",
        "idle: peak RSS (MiB)",
        f(w, "/idle/peak_rss_mib")
    );
    println!(
        "{:<34} {:>12.1}   <= 64",
        "after the edits: peak RSS (MiB)",
        f(w, "/peak_rss_mib_after_edits")
    );
    println!(
        "{:<34} {:>12}",
        "  now: RssAnon / RssFile (MiB)",
        format!(
            "{:.1} / {:.1}",
            f(w, "/rss_anon_mib_after_edits"),
            f(w, "/rss_file_mib_after_edits")
        )
    );
    let v = &report["validate_render"];
    let d = &report["diff"];
    for (command, measures, seconds, peak, target) in [
        ("validate", v, "/validate_s", "/validate_peak_rss_mib", ""),
        ("render", v, "/render_s", "/render_peak_rss_mib", RSS_TARGET),
        ("diff cold", d, "/cold_s", "/cold_peak_rss_mib", RSS_TARGET),
    ] {
        println!(
            "{:<34} {:>12.2}",
            format!("{command} (s)"),
            f(measures, seconds)
        );
        println!(
            "{:<34} {:>12.1}   {target}",
            format!("{command} peak RSS (MiB)"),
            f(measures, peak)
        );
    }
    let stages = &w["edit_stages"];
    println!(
        "\nwhere an edit's time goes ({} of {} edits matched in the log), ms:",
        u(stages, "/edits_matched"),
        u(w, "/edits/count")
    );
    println!("{:<14} {:>8} {:>8} {:>8}", "stage", "p50", "p99", "mean");
    for stage in stages["stages"].as_array().into_iter().flatten() {
        println!(
            "{:<14} {:>8.1} {:>8.1} {:>8.1}",
            stage["stage"].as_str().unwrap_or("?"),
            f(stage, "/p50_ms"),
            f(stage, "/p99_ms"),
            f(stage, "/mean_ms")
        );
    }
}

/// The median of the runs: the figure the table shows (NaN when there were none).
pub(super) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Nearest-rank percentile of sorted values.
pub(super) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    }
}
