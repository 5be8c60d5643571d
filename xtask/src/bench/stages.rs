//! Where an edit's time goes: the stages between a spec's rename and the changed StatefulSet
//! seen through a watch, read from `berth watch`'s JSON log.
//!
//! The daemon logs, per edit: "rescanning the spec directory" when the debounced file event
//! reaches its loop; "spec directory reloaded" once the reload is done; "converging" for the
//! app once it is planned; "converged" once the write is answered, with how long the plan
//! took and how much of that were reads and dry-runs. With the rename's time (the bench's
//! clock) and the moment the bench's watch saw the change, that makes:
//!
//! | stage | from → to |
//! |---|---|
//! | debounce | rename → rescanning (file event, debounce wait) |
//! | reload | rescanning → reloaded (read and check the changed files, or the directory; `git rev-parse`) |
//! | queue | reloaded → plan start (the work queue and a free worker) |
//! | read, dry-run | the plan's reads and server-side dry-runs |
//! | plan (rest) | the rest of the plan: render, compare with the cached objects |
//! | write | converging → converged (the apply) |
//! | watch echo | converged → the bench's watch sees the object |
//!
//! The log's timestamps and the bench's clock are the same machine's wall clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::report::percentile;

/// One timed edit, as the edit phase did it.
pub(super) struct Edit {
    /// The app's name (its file's stem).
    pub app: String,
    /// When the spec was renamed into place.
    pub renamed: SystemTime,
    /// Rename → seen through the watch.
    pub latency: Duration,
}

/// The stages, in the order they happen.
pub(super) const STAGES: [&str; 8] = [
    "debounce",
    "reload",
    "queue",
    "read",
    "dry-run",
    "plan (rest)",
    "write",
    "watch echo",
];

/// One line of the daemon's JSON log that a stage is read from.
struct Line {
    at: SystemTime,
    message: String,
    /// `namespace/name`, for per-app lines.
    app: Option<String>,
    fields: Value,
}

/// Per stage, p50 / p99 / mean in milliseconds over the edits whose every line was found.
pub(super) fn breakdown(log: &str, edits: &[Edit]) -> Value {
    let lines: Vec<Line> = log.lines().filter_map(parse_line).collect();
    let mut per_stage: Vec<Vec<f64>> = vec![Vec::new(); STAGES.len()];
    let mut matched = 0;
    for edit in edits {
        let Some(stages) = stages_of(&lines, edit) else {
            continue;
        };
        matched += 1;
        for (values, value) in per_stage.iter_mut().zip(stages) {
            values.push(value);
        }
    }
    let stages: Vec<Value> = STAGES
        .iter()
        .zip(per_stage)
        .map(|(name, mut values)| {
            values.sort_by(f64::total_cmp);
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            json!({
                "stage": name,
                "p50_ms": percentile(&values, 50.0),
                "p99_ms": percentile(&values, 99.0),
                "mean_ms": mean,
            })
        })
        .collect();
    json!({"edits_matched": matched, "stages": stages})
}

/// The stages of one edit in milliseconds, in [`STAGES`] order; None when a line is missing
/// (an edit folded into another's reload, say).
fn stages_of(lines: &[Line], edit: &Edit) -> Option<Vec<f64>> {
    let seen = edit.renamed + edit.latency;
    let suffix = format!("/{}", edit.app);
    let for_app = |l: &Line| l.app.as_deref().is_some_and(|a| a.ends_with(&suffix));
    let mut after = lines.iter().skip_while(|l| l.at < edit.renamed);
    let rescan = after.find(|l| l.message == "rescanning the spec directory")?;
    let reloaded = after.find(|l| l.message == "spec directory reloaded")?;
    let converging = after.find(|l| l.message == "converging" && for_app(l))?;
    let converged = after.find(|l| l.message == "converged" && for_app(l))?;
    let ms = |from: SystemTime, to: SystemTime| -> f64 {
        to.duration_since(from)
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    let field = |name: &str| converged.fields[name].as_f64().unwrap_or(0.0);
    let (plan, read, dry_run) = (field("plan_ms"), field("read_ms"), field("dry_run_ms"));
    Some(vec![
        ms(edit.renamed, rescan.at),
        ms(rescan.at, reloaded.at),
        (ms(reloaded.at, converging.at) - plan).max(0.0),
        read,
        dry_run,
        (plan - read - dry_run).max(0.0),
        ms(converging.at, converged.at),
        // The watch event can overtake the daemon's own log line: then the echo was free.
        ms(converged.at, seen),
    ])
}

fn parse_line(text: &str) -> Option<Line> {
    let fields: Value = serde_json::from_str(text).ok()?;
    Some(Line {
        at: parse_timestamp(fields["timestamp"].as_str()?)?,
        message: fields["message"].as_str()?.to_string(),
        app: fields["app"].as_str().map(str::to_string),
        fields,
    })
}

/// An RFC 3339 UTC timestamp as the daemon's log writes it: `2026-11-30T09:31:02.123456Z`.
fn parse_timestamp(text: &str) -> Option<SystemTime> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date = date.split('-').map(|p| p.parse::<i64>());
    let (year, month, day) = (date.next()?.ok()?, date.next()?.ok()?, date.next()?.ok()?);
    let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut hms = hms.split(':').map(|p| p.parse::<u64>());
    let (h, m, s) = (hms.next()?.ok()?, hms.next()?.ok()?, hms.next()?.ok()?);
    let nanos: u32 = format!("{fraction:0<9}").get(..9)?.parse().ok()?;
    let days = days_from_civil(year, month, day);
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + m * 60 + s;
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_to_the_unix_clock() {
        let at = parse_timestamp("2026-11-30T09:31:02.123456Z").expect("parses");
        let since = at.duration_since(UNIX_EPOCH).expect("after 1970");
        assert_eq!(since.as_secs(), 1_796_031_062);
        assert_eq!(since.subsec_micros(), 123_456);
        assert_eq!(
            parse_timestamp("1970-01-01T00:00:00Z"),
            Some(UNIX_EPOCH),
            "no fraction"
        );
        assert_eq!(
            parse_timestamp("2024-02-29T00:00:00Z")
                .map(|t| t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).ok()),
            Some(Some(1_709_164_800))
        );
    }

    #[test]
    fn an_edit_is_split_into_its_stages() {
        let line = |ms: u64, message: &str, extra: &str| {
            let at = UNIX_EPOCH + Duration::from_millis(1_800_000_000_000 + ms);
            let since = at.duration_since(UNIX_EPOCH).expect("after 1970");
            let secs = since.as_secs() % 86_400;
            format!(
                r#"{{"timestamp":"2027-01-15T{:02}:{:02}:{:02}.{:06}Z","level":"INFO","message":"{message}"{extra}}}"#,
                secs / 3600,
                secs / 60 % 60,
                secs % 60,
                since.subsec_micros()
            )
        };
        let app = r#","app":"ns/app-00013""#;
        let log = [
            line(0, "converging", r#","app":"ns/app-00013""#),
            line(60, "rescanning the spec directory", ""),
            line(90, "spec directory reloaded", ""),
            line(95, "converging", r#","app":"ns/other""#),
            line(120, "converging", app),
            line(150, "converged", r#","app":"ns/other","plan_ms":1.0"#),
            line(
                150,
                "converged",
                &format!(r#"{app},"plan_ms":25.0,"read_ms":5.0,"dry_run_ms":15.0,"write_ms":29.0"#),
            ),
        ]
        .join("\n");
        let renamed = parse_timestamp(&line(10, "x", "")[14..41]).expect("rename time");
        let edits = [Edit {
            app: "app-00013".to_string(),
            renamed,
            latency: Duration::from_millis(160),
        }];
        let result = breakdown(&log, &edits);
        assert_eq!(result["edits_matched"], 1);
        let p50: Vec<f64> = result["stages"]
            .as_array()
            .expect("stages")
            .iter()
            .map(|s| (s["p50_ms"].as_f64().expect("p50") * 10.0).round() / 10.0)
            .collect();
        // debounce 50, reload 30, queue 30 - 25 = 5, read 5, dry-run 15, rest 5, write 30, echo 20.
        assert_eq!(p50, [50.0, 30.0, 5.0, 5.0, 15.0, 5.0, 30.0, 20.0]);
    }
}
