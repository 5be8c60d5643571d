//! Which env names look secret, and masking their literal values in a spec's source text.
//!
//! The plan masks such values in diffs and summaries (`plan::normalize::mask`); diagnostics print
//! source lines, so they mask them too: a spec error on the line `env = { DB_PASSWORD = "…" }`
//! must not put the password into CI logs or the daemon's log.

/// Words that make an env name secret-looking.
const SECRET_WORDS: [&str; 7] = [
    "PASSWORD",
    "PASSWD",
    "TOKEN",
    "SECRET",
    "KEY",
    "CREDENTIAL",
    "PRIVATE",
];

/// True for env names like `MYSQL_ROOT_PASSWORD`, `API_TOKEN`, `aws_secret_access_key`.
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_WORDS.iter().any(|w| upper.contains(w))
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
    out.into_iter().collect()
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
    fn an_unterminated_secret_is_masked_to_the_end_of_the_line() {
        assert_eq!(mask_line(r#"TOKEN = "abc"#), r#"TOKEN = "***"#);
    }
}
