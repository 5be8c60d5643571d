//! The API floor: how fast the API server itself takes server-side applies on this machine,
//! so berth's cold converge is judged against the server's limit rather than against kubectl.
//!
//! A minimal client (kube-rs, nothing else: no reads, no dry-runs, no output) applies the very
//! objects `berth render` gives, at concurrency 8, 16, 32, 64 and 128, each level into a fresh
//! namespace. The best throughput over the levels is the floor; the curve shows where the
//! server saturates. Each level applies at most [`SAMPLE_OBJECTS`] objects: throughput, not
//! the fleet's size, is what is measured, and a 30,000-object level per concurrency would load
//! the shared cluster for many minutes.

use std::fs;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use kube::api::Api;
use serde_json::{Value, json};

use super::Bench;
use super::phases::Measured;
use super::report::median;
use super::requests::requests_line;
use crate::kube_client;

/// The concurrencies tried.
const LEVELS: [usize; 5] = [8, 16, 32, 64, 128];
/// Objects applied per level, at most.
const SAMPLE_OBJECTS: usize = 1500;

/// One level of the curve.
struct Level {
    concurrency: usize,
    objects: usize,
    seconds: f64,
}

impl Level {
    fn rate(&self) -> f64 {
        self.objects as f64 / self.seconds
    }
}

impl Bench {
    /// The curve of run `run`: objects per second at each concurrency.
    pub(super) fn floor_curve(&self, run: usize) -> Result<Vec<(usize, f64)>> {
        let rendered_for = format!("bench-floor-{run}");
        let text = fs::read_to_string(self.rendered(&rendered_for)?)?;
        let mut objects = Vec::new();
        for doc in text.split("---\n").filter(|d| !d.trim().is_empty()) {
            if objects.len() == SAMPLE_OBJECTS {
                break;
            }
            let value: Value = serde_saphyr::from_str(doc).context("parsing berth render")?;
            let (Some(api_version), Some(kind), Some(name)) = (
                value["apiVersion"].as_str(),
                value["kind"].as_str(),
                value.pointer("/metadata/name").and_then(Value::as_str),
            ) else {
                bail!("berth render gave an object without apiVersion, kind or name");
            };
            let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
            let resource = kube::discovery::ApiResource::from_gvk(
                &kube::api::GroupVersionKind::gvk(group, version, kind),
            );
            objects.push((resource, name.to_string(), value));
        }
        let mut curve = Vec::new();
        for concurrency in LEVELS {
            let ns = format!("bench-floor-{run}-c{concurrency}");
            self.create_namespace(&ns)?;
            let result = self.floor_level(&ns, &objects, concurrency);
            self.delete_namespaces(std::slice::from_ref(&ns))?;
            let (level, measured) = result?;
            println!(
                "run {run}: floor {:>3} at a time: {} applies in {:.2}s = {:.0}/s  {}",
                level.concurrency,
                level.objects,
                level.seconds,
                level.rate(),
                requests_line(&measured.requests)
            );
            curve.push((concurrency, level.rate()));
        }
        Ok(curve)
    }

    /// Applies `objects` into `ns`, `concurrency` at a time. Parsing happened before the clock
    /// starts.
    fn floor_level(
        &self,
        ns: &str,
        objects: &[(kube::discovery::ApiResource, String, Value)],
        concurrency: usize,
    ) -> Result<(Level, Measured)> {
        let before = self.request_counts()?;
        let started = Instant::now();
        self.rt.block_on(async {
            let client = kube_client::client(&self.kubeconfig).await?;
            let params = kube::api::PatchParams::apply("bench-floor").force();
            let mut pending = Vec::new();
            for (resource, name, value) in objects {
                let api: Api<kube::api::DynamicObject> =
                    Api::namespaced_with(client.clone(), ns, resource);
                let mut value = value.clone();
                value["metadata"]["namespace"] = Value::String(ns.to_string());
                let params = &params;
                pending.push(async move {
                    api.patch(name, params, &kube::api::Patch::Apply(&value))
                        .await
                        .with_context(|| format!("applying {name}"))
                });
            }
            let results: Vec<Result<_>> = futures::stream::iter(pending)
                .buffer_unordered(concurrency)
                .collect()
                .await;
            results.into_iter().collect::<Result<Vec<_>>>()
        })?;
        let seconds = started.elapsed().as_secs_f64();
        let after = self.request_counts()?;
        let level = Level {
            concurrency,
            objects: objects.len(),
            seconds,
        };
        Ok((level, Measured::between(seconds, &before, &after)))
    }
}

/// The floor over every run: per concurrency the median throughput, the best of them, and
/// the time `objects` take at that throughput next to berth's cold converge.
pub(super) fn summary(curves: &[Vec<(usize, f64)>], objects: usize, berth_cold_s: f64) -> Value {
    let per_level: Vec<(usize, f64, Vec<f64>)> = LEVELS
        .iter()
        .map(|&c| {
            let rates: Vec<f64> = curves
                .iter()
                .filter_map(|curve| curve.iter().find(|(l, _)| *l == c).map(|(_, r)| *r))
                .collect();
            (c, median(&rates), rates)
        })
        .collect();
    let best = per_level
        .iter()
        .filter(|(_, rate, _)| rate.is_finite())
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let (best_concurrency, best_rate) = best.map_or((0, f64::NAN), |(c, r, _)| (*c, *r));
    let floor_s = objects as f64 / best_rate;
    json!({
        "curve": per_level.iter().map(|(c, rate, runs)| json!({
            "concurrency": c, "objects_per_s": rate, "runs_objects_per_s": runs,
        })).collect::<Vec<_>>(),
        "sample_objects": SAMPLE_OBJECTS,
        "best_concurrency": best_concurrency,
        "best_objects_per_s": best_rate,
        "objects": objects,
        "floor_s": floor_s,
        "berth_over_floor": berth_cold_s / floor_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_is_the_best_median_level() {
        let curves = vec![
            vec![
                (8, 100.0),
                (16, 300.0),
                (32, 250.0),
                (64, 200.0),
                (128, 90.0),
            ],
            vec![
                (8, 120.0),
                (16, 200.0),
                (32, 260.0),
                (64, 210.0),
                (128, 95.0),
            ],
            vec![
                (8, 110.0),
                (16, 310.0),
                (32, 240.0),
                (64, 205.0),
                (128, 92.0),
            ],
        ];
        let floor = summary(&curves, 3000, 12.0);
        assert_eq!(floor["best_concurrency"], 16);
        assert_eq!(floor["best_objects_per_s"], 300.0);
        assert_eq!(floor["floor_s"], 10.0);
        assert_eq!(floor["berth_over_floor"], 1.2);
    }
}
