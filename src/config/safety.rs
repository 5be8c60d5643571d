//! What a spec may reach, as the daemon config's `[safety]` lists say: the matching behind
//! `safety.namespaces`, `safety.host_path` and `safety.service_accounts` (used by the spec rules
//! in `spec/validate/reach.rs`, `--namespace` and `berth rbac`), and the checks of the lists'
//! own entries.

use std::path::{Path, PathBuf};

use super::{SYSTEM_NAMESPACES, Safety};
use crate::glob::glob_match;

impl Safety {
    /// Whether a spec may put an app into `namespace`: a system namespace only when listed
    /// exactly, any other when a pattern matches it.
    pub fn allows_namespace(&self, namespace: &str) -> bool {
        if SYSTEM_NAMESPACES.contains(&namespace) {
            return self.namespaces.iter().any(|p| p == namespace);
        }
        self.namespaces.iter().any(|p| glob_match(p, namespace))
    }

    /// Whether a `host_path` volume may mount `path` (absolute): under an allowed prefix by
    /// whole components, and without `..`, which the node would resolve past the prefix.
    pub fn allows_host_path(&self, path: &str) -> bool {
        let path = Path::new(path);
        if path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return false;
        }
        self.host_path.iter().any(|p| path.starts_with(p))
    }

    /// Whether an app in `namespace` may run as the ServiceAccount `name`. The namespace's
    /// `default` account is always allowed: it is what the pods get without one.
    pub fn allows_service_account(&self, namespace: &str, name: &str) -> bool {
        name == "default"
            || self
                .service_accounts
                .iter()
                .any(|p| match p.split_once('/') {
                    Some((ns, account)) => glob_match(ns, namespace) && glob_match(account, name),
                    None => glob_match(p, name),
                })
    }
}

/// A `safety.namespaces` entry: a namespace name in which `*` and `?` may stand for characters.
pub(super) fn check_namespace_pattern(p: &str) -> Result<String, String> {
    if p.is_empty() || p.len() > 63 {
        return Err("a pattern has 1 to 63 characters".into());
    }
    if let Some(c) = p
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '*' | '?')))
    {
        return Err(format!(
            "`{c}` cannot be part of a namespace; patterns use lowercase letters, digits, '-', '*' and '?'"
        ));
    }
    Ok(p.to_string())
}

/// A `safety.host_path` entry: an absolute directory without `..`, trailing `/` dropped.
pub(super) fn check_host_path_prefix(p: &str) -> Result<String, String> {
    let path = Path::new(p);
    if !path.is_absolute() {
        return Err("not an absolute path".into());
    }
    if path
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err("`..` would reach outside the directory".into());
    }
    Ok(path.components().collect::<PathBuf>().display().to_string())
}

/// A `safety.service_accounts` entry: a name pattern, or `namespace/name` patterns.
pub(super) fn check_service_account_pattern(p: &str) -> Result<String, String> {
    let parts: Vec<&str> = p.split('/').collect();
    if parts.len() > 2 || parts.iter().any(|part| part.is_empty()) {
        return Err("use `name` or `namespace/name`".into());
    }
    if let Some(c) = p.chars().find(|c| {
        !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '/' | '*' | '?'))
    }) {
        return Err(format!(
            "`{c}` cannot be part of a ServiceAccount name; patterns use lowercase letters, digits, '-', '.', '*' and '?'"
        ));
    }
    Ok(p.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::spec::Diagnostic;

    fn parse(text: &str) -> Result<Config, Vec<Diagnostic>> {
        Config::parse(Path::new("/etc/berth/berth.toml"), text)
    }

    #[test]
    fn safety_reach_defaults_allow_every_namespace_but_the_system_ones() {
        let s = Config::default().safety;
        assert!(s.allows_namespace("default") && s.allows_namespace("team-a"));
        for ns in SYSTEM_NAMESPACES {
            assert!(!s.allows_namespace(ns), "{ns}");
        }
        assert!(!s.allows_host_path("/srv/data"), "no host path by default");
        assert!(s.allows_service_account("db", "default"));
        assert!(!s.allows_service_account("db", "mysql"));
    }

    #[test]
    fn safety_reach_lists_parse_and_match() {
        let c = parse(
            "[defaults]\nnamespace = \"db\"\n[safety]\nnamespaces = [\"db\", \"team-*\", \"kube-system\", \"kube-*\"]\nhost_path = [\"/srv/shared/\"]\nservice_accounts = [\"mysql\", \"team-a/*\"]\n",
        )
        .unwrap_or_else(|d| panic!("{d:?}"));
        let s = &c.safety;
        assert!(s.allows_namespace("team-blue") && s.allows_namespace("db"));
        assert!(!s.allows_namespace("dbx") && !s.allows_namespace("default"));
        // Named exactly: allowed. Reached only through a pattern: still refused.
        assert!(s.allows_namespace("kube-system"));
        assert!(!s.allows_namespace("kube-public") && !s.allows_namespace("kube-node-lease"));
        assert_eq!(s.host_path, ["/srv/shared"]);
        assert!(s.allows_host_path("/srv/shared") && s.allows_host_path("/srv/shared/a/b"));
        assert!(!s.allows_host_path("/srv/sharedx") && !s.allows_host_path("/srv"));
        assert!(!s.allows_host_path("/srv/shared/../../etc"));
        assert!(s.allows_service_account("db", "mysql"));
        assert!(s.allows_service_account("team-a", "anything"));
        assert!(!s.allows_service_account("team-b", "anything"));
    }

    #[test]
    fn safety_reach_bad_entries_and_a_disallowed_default_are_reported() {
        let text = "[defaults]\nnamespace = \"default\"\n[safety]\nnamespaces = [\"Team_*\", \"db\"]\nhost_path = [\"srv\", \"/a/../b\"]\nservice_accounts = [\"a/b/c\"]\n";
        let d = parse(text).err().unwrap_or_default();
        let rules: Vec<&str> = d.iter().map(|d| d.rule).collect();
        assert_eq!(
            rules,
            [
                "safety",
                "safety",
                "safety",
                "safety",
                "namespace-not-allowed"
            ],
            "{d:?}"
        );
        assert!(d[4].message.contains("`default`"), "{}", d[4].message);
        let located = d[4].render(false);
        assert!(located.contains("berth.toml:2:13"), "{located}");
        // Without `defaults.namespace` the built-in default may still be replaced by
        // `--namespace`; the specs that land in it report it themselves.
        assert!(parse("[safety]\nnamespaces = [\"db\"]\n").is_ok());
    }

    #[test]
    fn a_namespace_override_must_be_allowed() {
        let mut c = parse("[safety]\nnamespaces = [\"default\", \"team-*\"]\n")
            .unwrap_or_else(|d| panic!("{d:?}"));
        assert!(c.override_namespace("team-a").is_ok());
        let e = c
            .override_namespace("kube-system")
            .err()
            .unwrap_or_default();
        assert!(e.contains("safety.namespaces"), "{e}");
        assert_eq!(c.defaults.namespace, "team-a");
    }
}
