//! Unified YAML diffs, coloured only for a terminal and never when NO_COLOR is set.

use std::io::IsTerminal;

use similar::TextDiff;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorChoice {
    Always,
    Never,
}

impl ColorChoice {
    /// Colour when stdout is a terminal and NO_COLOR is unset or empty (no-color.org).
    pub fn for_stdout() -> ColorChoice {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        if !no_color && std::io::stdout().is_terminal() {
            ColorChoice::Always
        } else {
            ColorChoice::Never
        }
    }
}

/// A unified diff with three lines of context, headed `--- label` / `+++ label`; empty when
/// the texts are equal.
pub fn unified_diff(before: &str, after: &str, label: &str) -> String {
    if before == after {
        return String::new();
    }
    TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(3)
        .header(label, label)
        .to_string()
}

/// Colours a unified diff's lines: removals red, additions green, hunk headers cyan.
pub fn paint(diff: &str, color: ColorChoice) -> String {
    if color == ColorChoice::Never {
        return diff.to_string();
    }
    let mut out = String::with_capacity(diff.len() + 64);
    for line in diff.split_inclusive('\n') {
        let code = if line.starts_with("+++") || line.starts_with("---") {
            "1"
        } else if line.starts_with('+') {
            "32"
        } else if line.starts_with('-') {
            "31"
        } else if line.starts_with("@@") {
            "36"
        } else {
            ""
        };
        if code.is_empty() {
            out.push_str(line);
        } else {
            let body = line.trim_end_matches('\n');
            out.push_str(&format!("\x1b[{code}m{body}\x1b[0m"));
            if line.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_have_no_diff() {
        assert_eq!(unified_diff("a: 1\n", "a: 1\n", "x"), "");
    }

    #[test]
    fn a_change_is_a_unified_hunk() {
        let d = unified_diff("a: 1\nb: 2\n", "a: 1\nb: 3\n", "StatefulSet/db");
        assert!(
            d.starts_with("--- StatefulSet/db\n+++ StatefulSet/db\n@@"),
            "{d}"
        );
        assert!(d.contains("-b: 2\n+b: 3\n"), "{d}");
    }

    #[test]
    fn painting_is_off_when_asked() {
        let d = "--- a\n+++ a\n@@ -1 +1 @@\n-x\n+y\n";
        assert_eq!(paint(d, ColorChoice::Never), d);
        let painted = paint(d, ColorChoice::Always);
        assert!(painted.contains("\x1b[31m-x\x1b[0m\n"));
        assert!(painted.contains("\x1b[32m+y\x1b[0m\n"));
    }
}
