//! Shell-style matching of whole names, for the daemon config's allowlists
//! (`safety.namespaces`, `safety.service_accounts`) and the `[[notify]]` app filters.

/// Shell-style matching of a whole `text`: `*` matches any run of characters (also none), `?`
/// exactly one; everything else itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    // The last `*` seen and the text position it was tried at, to backtrack to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            // Let the last `*` take one more character.
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn glob_matches_whole_names() {
        for (p, t, want) in [
            ("*", "", true),
            ("*", "abc", true),
            ("team-*", "team-", true),
            ("team-*", "team-a-b", true),
            ("team-*", "xteam-a", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("db-?", "db-1", true),
            ("db-?", "db-10", false),
            ("db", "db", true),
            ("db", "dbx", false),
        ] {
            assert_eq!(glob_match(p, t), want, "{p} ~ {t}");
        }
    }
}
