//! Diagnostics: one type for every problem berth finds in a spec or config file, and the plain
//! text renderer that prints it with file:line:col, the source line and a caret under the span.
//!
//! The renderer is hand-written (no miette) because the output is a contract: it appears in CI
//! logs, in the daemon's logs and in snapshot tests, so it must be deterministic and colourless
//! unless a person is looking at a terminal.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// How bad a problem is. Errors make a spec unusable; warnings are printed and the spec is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem in one file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// The file as the user named it (the spec directory joined with the relative path).
    pub path: PathBuf,
    /// Where in the file, resolved from a byte span. `None` for problems about the whole file
    /// (unreadable, a duplicate of another file's app) when no span is known.
    pub location: Option<Location>,
    /// Short, stable name of the rule, e.g. `name-format` or `unknown-key`.
    pub rule: &'static str,
    /// What is wrong, in one sentence.
    pub message: String,
    /// Text printed after the caret, naming what the caret points at (may be empty).
    pub label: String,
    /// How to fix it.
    pub help: Option<String>,
}

/// A resolved position: 1-based line and column, the text of that line, and the caret width.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Location {
    pub line: usize,
    pub column: usize,
    pub source_line: String,
    /// Number of characters the caret covers on `source_line` (at least 1).
    pub width: usize,
}

impl Location {
    /// Resolve a byte span in `source` to a location. Spans past the end point at the last line,
    /// so an "empty file" or "missing key" diagnostic still shows something sensible.
    pub fn from_span(source: &str, span: Range<usize>) -> Location {
        let start = floor_char_boundary(source, span.start.min(source.len()));
        let end = floor_char_boundary(source, span.end.min(source.len())).max(start);
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[start..]
            .find('\n')
            .map_or(source.len(), |i| start + i);
        let line = source[..start].matches('\n').count() + 1;
        let column = source[line_start..start].chars().count() + 1;
        // Secret-looking values are masked here, where every diagnostic gets its source line.
        let source_line = super::secret::mask_line(&visible(
            source[line_start..line_end].trim_end_matches('\r'),
        ));
        // A multi-line span is underlined to the end of its first line only.
        let caret_end = end.min(line_end);
        let width = source[start..caret_end].chars().count().max(1);
        Location {
            line,
            column,
            source_line,
            width,
        }
    }
}

/// `text` with control characters (a NUL, a bell, an escape) replaced by their visible
/// Unicode "control pictures" (␀, ␇, ␛), one character for one, so columns and carets stay right
/// and a spec can never send terminal escape sequences to whoever reads the diagnostic. Tabs and
/// newlines are kept: the renderer lays them out.
pub fn visible(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\t' | '\n' => c,
            '\x7f' => '\u{2421}',
            c if c.is_control() && (c as u32) < 0x20 => {
                char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}')
            }
            c if c.is_control() => '\u{fffd}',
            c => c,
        })
        .collect()
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl Diagnostic {
    pub fn error(path: &Path, rule: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            path: path.to_path_buf(),
            location: None,
            rule,
            message: message.into(),
            label: String::new(),
            help: None,
        }
    }

    pub fn warning(path: &Path, rule: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(path, rule, message)
        }
    }

    /// Attach a position; `source` is the whole file the span indexes into.
    pub fn at(mut self, source: &str, span: Range<usize>) -> Diagnostic {
        self.location = Some(Location::from_span(source, span));
        self
    }

    pub fn label(mut self, label: impl Into<String>) -> Diagnostic {
        self.label = label.into();
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Render as plain text, or with ANSI colour when `color` is true (a terminal without
    /// NO_COLOR; the caller decides, see [`use_color`]).
    pub fn render(&self, color: bool) -> String {
        let paint = |code: &str, text: &str| -> String {
            if color {
                format!("\x1b[{code}m{text}\x1b[0m")
            } else {
                text.to_string()
            }
        };
        let (word, code) = match self.severity {
            Severity::Error => ("error", "1;31"),
            Severity::Warning => ("warning", "1;33"),
        };
        let mut out = String::new();
        out.push_str(&paint(code, &format!("{word}[{}]", self.rule)));
        out.push_str(&format!(": {}\n", visible(&self.message)));
        let path = self.path.display();
        match &self.location {
            Some(loc) => {
                let num = loc.line.to_string();
                let pad = " ".repeat(num.len());
                out.push_str(&format!(
                    "{pad}{} {path}:{}:{}\n",
                    paint("1;34", "-->"),
                    loc.line,
                    loc.column
                ));
                out.push_str(&format!("{pad} {}\n", paint("1;34", "|")));
                out.push_str(&format!(
                    "{} {} {}\n",
                    paint("1;34", &num),
                    paint("1;34", "|"),
                    loc.source_line
                ));
                // Columns count characters; tabs keep their width by copying them.
                let lead: String = loc
                    .source_line
                    .chars()
                    .take(loc.column - 1)
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                let carets = "^".repeat(loc.width);
                let label = if self.label.is_empty() {
                    String::new()
                } else {
                    format!(" {}", visible(&self.label))
                };
                let line = format!(
                    "{pad} {} {lead}{}",
                    paint("1;34", "|"),
                    paint(code, &format!("{carets}{label}"))
                );
                out.push_str(line.trim_end());
                out.push('\n');
            }
            None => out.push_str(&format!("  {} {path}\n", paint("1;34", "-->"))),
        }
        if let Some(help) = &self.help {
            out.push_str(&format!("  = {}: {}\n", paint("1", "help"), visible(help)));
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(false))
    }
}

/// Colour only for a person at a terminal: never when NO_COLOR is set (to anything non-empty,
/// per no-color.org) or when stderr is a pipe or a file.
pub fn use_color() -> bool {
    use std::io::IsTerminal;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stderr().is_terminal()
}

/// Edit distance between two strings (Levenshtein with adjacent transpositions, so `prots` is
/// one edit from `ports`), or `None` when it exceeds `limit`. Close to cargo's
/// src/cargo/util/edit_distance.rs, which rustc's "did you mean" also uses.
pub fn edit_distance(a: &str, b: &str, limit: usize) -> Option<usize> {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > limit {
        return None;
    }
    // Optimal string alignment: three rows (the one before last is for transpositions).
    let mut prev2: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 0..a.len() {
        cur[0] = i + 1;
        for j in 0..b.len() {
            let cost = usize::from(a[i] != b[j]);
            let mut d = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
            if i > 0 && j > 0 && a[i] == b[j - 1] && a[i - 1] == b[j] {
                d = d.min(prev2[j - 1] + 1);
            }
            cur[j + 1] = d;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    let d = prev[b.len()];
    (d <= limit).then_some(d)
}

/// "`a`, `b`, `c`" for a help text; "none" for no items.
pub fn quote_list<T: std::fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        return "none".into();
    }
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The closest candidate to `word`, if any is close enough to be a plausible typo.
/// Like cargo: the limit is a third of the word's length (at least 1); a case-insensitive or
/// `-`/`_` swap match always counts.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter_map(|c| {
            if norm(c) == norm(word) {
                Some((0, c))
            } else {
                edit_distance(word, c, limit).map(|d| (d, c))
            }
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_basics() {
        assert_eq!(edit_distance("replica", "replicas", 3), Some(1));
        assert_eq!(edit_distance("kitten", "sitting", 3), Some(3));
        assert_eq!(edit_distance("kitten", "sitting", 2), None);
        assert_eq!(edit_distance("", "", 0), Some(0));
        assert_eq!(edit_distance("prots", "ports", 1), Some(1));
        assert_eq!(edit_distance("ab", "ba", 1), Some(1));
    }

    #[test]
    fn closest_finds_typos_only() {
        let keys = ["replicas", "namespace", "containers"];
        assert_eq!(closest("replica", keys), Some("replicas"));
        assert_eq!(closest("Replicas", keys), Some("replicas"));
        assert_eq!(closest("container", keys), Some("containers"));
        assert_eq!(closest("zzz", keys), None);
    }

    #[test]
    fn location_is_one_based_and_counts_chars() {
        let src = "a = 1\nnamé = \"x\"\n";
        let at = src.find("\"x\"").unwrap_or(0);
        let loc = Location::from_span(src, at..at + 3);
        assert_eq!(loc.line, 2);
        assert_eq!(loc.column, 8);
        assert_eq!(loc.source_line, "namé = \"x\"");
        assert_eq!(loc.width, 3);
    }

    #[test]
    fn control_characters_in_a_spec_never_reach_the_terminal() {
        // A bell and an escape sequence inside a value, and a NUL in a name.
        let src = "image = \"x\x07\x1b[2J\"\n";
        let d = Diagnostic::error(Path::new("a.toml"), "r", "invalid name `web\0`")
            .at(src, 8..src.len() - 1)
            .label("bad \x1b[31m");
        let text = d.render(false);
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        assert!(text.contains("web\u{2400}"), "{text}");
        assert!(text.contains("image = \"x\u{2407}\u{241b}[2J\""), "{text}");
        // One picture per character: the caret still covers the whole value.
        assert!(text.contains("        ^^^^^^^^ bad"), "{text}");
    }

    #[test]
    fn render_is_plain_without_color() {
        let src = "replica = 2\n";
        let d = Diagnostic::error(
            Path::new("apps/x.toml"),
            "unknown-key",
            "unknown key `replica`",
        )
        .at(src, 0..7)
        .label("not a spec key")
        .help("did you mean `replicas`?");
        let text = d.render(false);
        assert!(!text.contains('\x1b'));
        assert_eq!(
            text,
            "error[unknown-key]: unknown key `replica`\n --> apps/x.toml:1:1\n  |\n1 | replica = 2\n  | ^^^^^^^ not a spec key\n  = help: did you mean `replicas`?\n"
        );
        assert!(d.render(true).contains('\x1b'));
    }
}
