//! What the daemon tells people about, and whom (`[[notify]]` in the daemon config): the
//! events, a validated target, the message bodies and the headers file. Pure; the delivery is
//! [`crate::daemon::notifications`].

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use http::{HeaderName, HeaderValue, Uri};
use serde::{Deserialize, Serialize};
use toml::Spanned;

pub use crate::glob::glob_match;
use crate::spec::Diagnostic;

/// What happened to an app, in the words of the `events` filter and the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Event {
    /// Planning or applying failed (retried with backoff).
    Failed,
    /// berth will not act until a person does (a recreate to allow, an object it does not own).
    Blocked,
    /// A removal waits for a person.
    Held,
    /// The app's pods are in trouble (health `degraded`, with the reason).
    Degraded,
    /// A degraded app is healthy again.
    Recovered,
    /// A manual change to a field berth owns was found (and set back unless `drift = "report"`).
    Drift,
    /// A change of the spec was applied.
    Applied,
}

impl Event {
    pub const ALL: [Event; 7] = [
        Event::Failed,
        Event::Blocked,
        Event::Held,
        Event::Degraded,
        Event::Recovered,
        Event::Drift,
        Event::Applied,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::Failed => "failed",
            Event::Blocked => "blocked",
            Event::Held => "held",
            Event::Degraded => "degraded",
            Event::Recovered => "recovered",
            Event::Drift => "drift",
            Event::Applied => "applied",
        }
    }
}

/// One thing to tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub event: Event,
    pub namespace: String,
    pub app: String,
    /// The config repo commit berth is at, when known.
    pub commit: Option<String>,
    pub reason: String,
}

/// How the body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// `{"event", "app", "namespace", "commit", "reason", "instance", "time"}`.
    #[default]
    Json,
    /// `{"text": "..."}`: Slack's incoming webhooks, and the many tools that take the same.
    Slack,
}

/// One `[[notify]]` entry, validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    #[serde(serialize_with = "serialize_uri")]
    pub url: Uri,
    pub format: Format,
    /// `Name: value` lines sent as headers (tokens): read at each delivery, never logged.
    pub headers_file: Option<PathBuf>,
    pub events: BTreeSet<Event>,
    /// `NAMESPACE/NAME` patterns (`*` matches any run of characters); empty: every app.
    pub apps: Vec<String>,
}

fn serialize_uri<S: serde::Serializer>(uri: &Uri, s: S) -> Result<S::Ok, S::Error> {
    // The path of a webhook URL is often its secret (Slack's are): only the host is shown.
    s.serialize_str(&format!(
        "{}://{}/…",
        uri.scheme_str().unwrap_or("https"),
        uri.authority().map(|a| a.as_str()).unwrap_or("")
    ))
}

impl Target {
    pub fn wants(&self, notice: &Notice) -> bool {
        let key = format!("{}/{}", notice.namespace, notice.app);
        self.events.contains(&notice.event)
            && (self.apps.is_empty() || self.apps.iter().any(|p| glob_match(p, &key)))
    }

    /// The host the notices go to, for logs: the URL's path may be a secret.
    pub fn host(&self) -> String {
        self.url
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default()
    }
}

/// A `[[notify]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    url: Spanned<String>,
    format: Option<Format>,
    headers_file: Option<Spanned<String>>,
    events: Option<Vec<Spanned<String>>>,
    apps: Option<Vec<Spanned<String>>>,
}

/// Validates the `[[notify]]` tables of the config at `path` (for diagnostics and to resolve a
/// relative `headers_file`).
pub fn parse_targets(
    path: &Path,
    text: &str,
    raw: Vec<RawTarget>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Target> {
    let mut targets = Vec::new();
    for raw in raw {
        let error = |span, rule: &'static str, message: String, label: &str, help: &str| {
            Diagnostic::error(path, rule, message)
                .at(text, span)
                .label(label.to_string())
                .help(help.to_string())
        };
        let url = match raw.url.get_ref().parse::<Uri>() {
            Ok(u) if matches!(u.scheme_str(), Some("https" | "http")) && u.host().is_some() => u,
            _ => {
                diags.push(error(
                    raw.url.span(),
                    "notify-url",
                    "`url` is not an http(s) URL".into(),
                    "not a URL berth can post to",
                    "e.g. url = \"https://hooks.slack.com/services/T000/B000/XXXX\"",
                ));
                continue;
            }
        };
        let mut events = BTreeSet::new();
        match &raw.events {
            // The default: everything a person may have to act on, not every routine apply.
            None => events.extend(Event::ALL.into_iter().filter(|e| *e != Event::Applied)),
            Some(list) => {
                for e in list {
                    match Event::ALL.into_iter().find(|k| k.as_str() == e.get_ref()) {
                        Some(k) => {
                            events.insert(k);
                        }
                        None => diags.push(error(
                            e.span(),
                            "notify-event",
                            format!("unknown event `{}`", e.get_ref()),
                            "not an event berth tells",
                            "events are failed, blocked, held, degraded, recovered, drift, applied",
                        )),
                    }
                }
            }
        }
        let headers_file = raw.headers_file.map(|f| {
            let file = PathBuf::from(f.get_ref());
            match path.parent() {
                Some(parent) if file.is_relative() => parent.join(file),
                _ => file,
            }
        });
        targets.push(Target {
            url,
            format: raw.format.unwrap_or_default(),
            headers_file,
            events,
            apps: raw
                .apps
                .into_iter()
                .flatten()
                .map(Spanned::into_inner)
                .collect(),
        });
    }
    targets
}

/// The body of `notice` for `format`.
pub fn body(format: Format, notice: &Notice, instance: &str, time: &str) -> String {
    match format {
        Format::Json => serde_json::json!({
            "event": notice.event.as_str(),
            "app": notice.app,
            "namespace": notice.namespace,
            "commit": notice.commit,
            "reason": notice.reason,
            "instance": instance,
            "time": time,
        })
        .to_string(),
        Format::Slack => {
            let commit = notice
                .commit
                .as_deref()
                .map(|c| format!(" (commit {})", c.chars().take(12).collect::<String>()))
                .unwrap_or_default();
            serde_json::json!({
                "text": format!(
                    "[berth {instance}] {} {}/{}: {}{commit}",
                    notice.event.as_str(),
                    notice.namespace,
                    notice.app,
                    notice.reason
                )
            })
            .to_string()
        }
    }
}

/// `Name: value` lines; blank lines and `#` comments are skipped. An error names the line,
/// never its value.
pub fn parse_headers(text: &str) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let mut headers = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = line.split_once(':').and_then(|(name, value)| {
            Some((
                HeaderName::from_bytes(name.trim().as_bytes()).ok()?,
                HeaderValue::from_str(value.trim()).ok()?,
            ))
        });
        match parsed {
            Some(mut header) => {
                header.1.set_sensitive(true);
                headers.push(header);
            }
            None => return Err(format!("line {} is not `Name: value`", n + 1)),
        }
    }
    Ok(headers)
}
