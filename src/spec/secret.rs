//! Which env names look secret, and masking secrets in a spec's source text and in objects.
//!
//! The plan masks such values in diffs and summaries (`plan::normalize::mask`); diagnostics print
//! source lines, so they mask them too: a spec error on the line `env = { DB_PASSWORD = "…" }`
//! must not put the password into CI logs or the daemon's log.
//!
//! Besides the values of secret-looking env names, a secret hides in text: credentials inside a
//! URL (`postgres://app:hunter2@db/app`), and in `command`/`args`, a secret-looking option with
//! its value (`--password=hunter2`, `PGPASSWORD=hunter2 psql`, `--password hunter2`).

use std::ops::Range;

use serde_json::Value;

/// Words that make an env name or an option secret-looking. `PASS` covers `PASSWORD`,
/// `PASSWD` and `DB_PASS`; `AUTH` covers `AUTH_TOKEN`, `BASIC_AUTH`, `OAUTH_…`. Masking a
/// harmless value (`--keyspace=app`) costs a less readable diff; missing a secret costs the secret.
const SECRET_WORDS: [&str; 8] = [
    "PASS",
    "PWD",
    "TOKEN",
    "SECRET",
    "KEY",
    "AUTH",
    "CREDENTIAL",
    "PRIVATE",
];

/// True for env names like `MYSQL_ROOT_PASSWORD`, `API_TOKEN`, `aws_secret_access_key`.
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_WORDS.iter().any(|w| upper.contains(w))
}

/// Byte ranges of the secrets inside `text`: URL credentials, and the values of secret-looking
/// `NAME=value` / `--name=value` words and of the word after a bare secret-looking option
/// (`--password hunter2`).
pub fn secret_ranges(text: &str) -> Vec<Range<usize>> {
    let mut out = url_credentials(text);
    let mut words = text
        .char_indices()
        .filter(|(i, c)| {
            !c.is_whitespace() && (*i == 0 || text[..*i].ends_with(char::is_whitespace))
        })
        .map(|(start, _)| {
            let end = text[start..]
                .find(char::is_whitespace)
                .map_or(text.len(), |n| start + n);
            start..end
        })
        .peekable();
    while let Some(word) = words.next() {
        let w = &text[word.clone()];
        if let Some((name, _)) = w.split_once('=') {
            if looks_secret(name) {
                out.push(word.start + name.len() + 1..word.end);
            }
        } else if is_secret_option(w)
            && let Some(next) = words.next_if(|n| !text[n.clone()].starts_with('-'))
        {
            out.push(next);
        }
    }
    out
}

/// `--password`, `--auth-token`: an option whose value is the next word or argument.
fn is_secret_option(word: &str) -> bool {
    word.starts_with('-') && !word.contains('=') && looks_secret(word)
}

/// Byte ranges of the credentials in every `scheme://user:password@host` in `text`: the
/// password, or the whole user part when it has no `:` (`https://TOKEN@host`).
fn url_credentials(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = text[from..].find("://") {
        let start = from + found + 3;
        let authority_end = text[start..]
            .find(|c: char| matches!(c, '/' | '?' | '#' | '"' | '\'' | '`') || c.is_whitespace())
            .map_or(text.len(), |n| start + n);
        if let Some(at) = text[start..authority_end].rfind('@') {
            let user_info = start..start + at;
            match text[user_info.clone()].find(':') {
                Some(colon) => out.push(user_info.start + colon + 1..user_info.end),
                None => out.push(user_info),
            }
        }
        from = start;
    }
    out
}

/// `text` with every range of [`secret_ranges`] replaced by [`MASK`](crate::plan::normalize::MASK).
pub fn mask_text(text: &str) -> String {
    replace_ranges(text, &secret_ranges(text), |_| "***".to_string())
}

/// `text` with the characters of `ranges` (byte ranges, possibly overlapping) replaced by what
/// `with` makes of each merged range.
fn replace_ranges(text: &str, ranges: &[Range<usize>], with: impl Fn(&str) -> String) -> String {
    let mut ranges: Vec<Range<usize>> = ranges.iter().filter(|r| !r.is_empty()).cloned().collect();
    ranges.sort_by_key(|r| r.start);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for r in ranges {
        if r.end <= at {
            continue;
        }
        let start = r.start.max(at);
        out.push_str(&text[at..start]);
        out.push_str(&with(&text[start..r.end]));
        at = r.end;
    }
    out.push_str(&text[at..]);
    out
}

/// A container's `command` or `args`, masked: the secrets inside each argument, and the argument
/// after a bare secret-looking option (`["--password", "hunter2"]`).
pub fn mask_args(args: &mut [Value]) {
    let mut after_option = false;
    for arg in args.iter_mut() {
        let Some(text) = arg.as_str() else {
            after_option = false;
            continue;
        };
        let masked = if after_option && !text.starts_with('-') {
            "***".to_string()
        } else {
            mask_text(text)
        };
        after_option = is_secret_option(text);
        *arg = Value::String(masked);
    }
}

/// The spec's own keys that look secret but hold names, never secrets.
const SPEC_KEYS: [&str; 3] = ["secret", "key", "pull_secrets"];

/// `line` (one line of TOML) with the contents of every string assigned to a secret-looking key
/// replaced by `*`, one for one, so columns and carets stay right. The spec's own reference keys
/// (`secret = "mysql"`, `key = "root"`, `pull_secrets`) name a Secret, they hold no secret, and stay readable.
/// A multi-line string's later lines cannot be attributed to a key and are not masked.
pub fn mask_line(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = chars.clone();
    let mut i = 0;
    while i < chars.len() {
        // A key: bare (letters, digits, '_', '-', '.') or quoted.
        let (key, end) = match chars[i] {
            '"' | '\'' => {
                let q = chars[i];
                let close = (i + 1..chars.len()).find(|j| chars[*j] == q);
                match close {
                    Some(c) => (chars[i + 1..c].iter().collect::<String>(), c + 1),
                    None => break,
                }
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == '-' => {
                let end = (i..chars.len())
                    .find(|j| {
                        !(chars[*j].is_ascii_alphanumeric() || matches!(chars[*j], '_' | '-' | '.'))
                    })
                    .unwrap_or(chars.len());
                (chars[i..end].iter().collect::<String>(), end)
            }
            _ => {
                i += 1;
                continue;
            }
        };
        // `key = "value"`: skip blanks, '=', blanks; then a string.
        let mut j = end;
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        if j >= chars.len() || chars[j] != '=' {
            i = end;
            continue;
        }
        j += 1;
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        let Some(&q) = chars.get(j).filter(|c| matches!(c, '"' | '\'')) else {
            i = j;
            continue;
        };
        // The value's end: the matching quote, past backslash escapes in basic strings.
        let mut k = j + 1;
        while k < chars.len() && chars[k] != q {
            k += if q == '"' && chars[k] == '\\' { 2 } else { 1 };
        }
        let k = k.min(chars.len());
        let last = key.rsplit('.').next().unwrap_or(&key);
        if looks_secret(last) && !SPEC_KEYS.contains(&last) {
            for c in &mut out[j + 1..k] {
                *c = '*';
            }
        }
        i = k + 1;
    }
    mask_string_contents(&mut out);
    out.into_iter().collect()
}

/// The second pass of [`mask_line`]: inside every string literal, the secrets of
/// [`secret_ranges`], and a whole string that follows a secret-looking option in the same line
/// (`args = ["--password", "hunter2"]`); one `*` per character.
fn mask_string_contents(chars: &mut [char]) {
    let mut after_option = false;
    let mut i = 0;
    while i < chars.len() {
        let q = chars[i];
        if q == '#' {
            break;
        }
        if !matches!(q, '"' | '\'') {
            i += 1;
            continue;
        }
        let mut k = i + 1;
        while k < chars.len() && chars[k] != q {
            k += if q == '"' && chars[k] == '\\' { 2 } else { 1 };
        }
        let k = k.min(chars.len());
        let content: String = chars[i + 1..k].iter().collect();
        let masked = if after_option && !content.starts_with('-') {
            "*".repeat(content.chars().count())
        } else {
            replace_ranges(&content, &secret_ranges(&content), |s| {
                "*".repeat(s.chars().count())
            })
        };
        after_option = is_secret_option(&content);
        for (slot, c) in chars[i + 1..k].iter_mut().zip(masked.chars()) {
            *slot = c;
        }
        i = k + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_are_masked_one_for_one() {
        assert_eq!(
            mask_line(r#"env = { DB_PASSWORD = "hunter2", GREETING = "hi", "API TOKEN" = 'x y' }"#),
            r#"env = { DB_PASSWORD = "*******", GREETING = "hi", "API TOKEN" = '***' }"#
        );
        assert_eq!(
            mask_line(r#"MYSQL_ROOT_PASSWORD = "a\"b" # note"#),
            r#"MYSQL_ROOT_PASSWORD = "****" # note"#
        );
        assert_eq!(
            mask_line(r#"env.AWS_SECRET_ACCESS_KEY = "abc""#),
            r#"env.AWS_SECRET_ACCESS_KEY = "***""#
        );
    }

    #[test]
    fn references_and_other_values_stay_readable() {
        for line in [
            r#"env = { ROOT_PASSWORD = { secret = "mysql", key = "root" } }"#,
            r#"image = "mysql:8.4""#,
            r#"pull_secrets = "default-secret""#,
            r#"[volumes.secret-keys]"#,
            r#"PASSWORD = 5"#,
            r#"broken = "unterminated"#,
        ] {
            assert_eq!(mask_line(line), line);
        }
    }

    #[test]
    fn more_secret_words() {
        for name in [
            "DB_PASS",
            "PGPASSWORD",
            "SMTP_PWD",
            "BASIC_AUTH",
            "AUTH_HEADER",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "SSH_PRIVATE",
        ] {
            assert!(looks_secret(name), "{name}");
            assert_eq!(
                mask_line(&format!("{name} = \"abc\"")),
                format!("{name} = \"***\""),
                "{name}"
            );
        }
        assert!(!looks_secret("GREETING") && !looks_secret("LOG_LEVEL"));
    }

    #[test]
    fn credentials_inside_urls_are_masked() {
        assert_eq!(
            mask_line(r#"env = { DATABASE_URL = "postgres://app:hunter2@db:5432/app" }"#),
            r#"env = { DATABASE_URL = "postgres://app:*******@db:5432/app" }"#
        );
        assert_eq!(
            mask_line(r#"image = "x"  # see https://ghp_abc@github.com/o/r"#),
            r#"image = "x"  # see https://ghp_abc@github.com/o/r"#,
            "comments are not values"
        );
        assert_eq!(
            mask_text("git clone https://ghp_abc@github.com/o/r and redis://:pw@cache"),
            "git clone https://***@github.com/o/r and redis://:***@cache"
        );
        assert_eq!(
            mask_text("http://example.com/a@b"),
            "http://example.com/a@b"
        );
    }

    #[test]
    fn command_and_args_carrying_secrets_are_masked() {
        assert_eq!(
            mask_line(
                r#"args = ["--user=root", "--password=hunter2", "--auth-token", "abc", "--port", "5"]"#
            ),
            r#"args = ["--user=root", "--password=*******", "--auth-token", "***", "--port", "5"]"#
        );
        assert_eq!(
            mask_line(
                r#"command = ["sh", "-c", "PGPASSWORD=s3cret psql --password s3cret -h db"]"#
            ),
            r#"command = ["sh", "-c", "PGPASSWORD=****** psql --password ****** -h db"]"#
        );
        let mut args = serde_json::json!([
            "mysqld",
            "--password",
            "hunter2",
            "--db-pass=x",
            "mysql://u:p@h"
        ]);
        mask_args(
            args.as_array_mut()
                .map(Vec::as_mut_slice)
                .unwrap_or_default(),
        );
        assert_eq!(
            args,
            serde_json::json!([
                "mysqld",
                "--password",
                "***",
                "--db-pass=***",
                "mysql://u:***@h"
            ])
        );
    }

    #[test]
    fn an_unterminated_secret_is_masked_to_the_end_of_the_line() {
        assert_eq!(mask_line(r#"TOKEN = "abc"#), r#"TOKEN = "***"#);
    }
}
