//! Where berth lists and watches the objects it owns: in every namespace with one request per
//! kind, or namespace by namespace when the daemon config names every namespace a spec may use.
//!
//! Namespace by namespace is what lets berth run on Roles alone (`berth rbac`): a list across
//! all namespaces needs a cluster-wide grant, however few namespaces hold berth's apps. It costs
//! a request (and, in the daemon, a watch) per kind and namespace instead of per kind, so it is
//! chosen only when the namespaces are known without asking the cluster: a pattern (`team-*`,
//! the default `*`) can match a namespace created tomorrow, which only a cluster-wide watch sees.

use std::collections::BTreeSet;

/// The namespaces in which berth lists and watches its objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// One list or watch per kind across the cluster.
    AllNamespaces,
    /// One list or watch per kind in each of these namespaces, and nowhere else. Empty when
    /// `safety.namespaces` allows none: berth then owns nothing it could see.
    Namespaces(BTreeSet<String>),
}

impl Listing {
    /// Decides from `safety.namespaces`: namespace by namespace when every entry is a plain name
    /// (no `*` or `?`), across the cluster otherwise. A spec can only land in a namespace the
    /// list allows, so listing those finds every app berth may own.
    pub fn from_allowed(namespaces: &[String]) -> Listing {
        if namespaces.iter().any(|p| p.contains(['*', '?'])) {
            Listing::AllNamespaces
        } else {
            Listing::Namespaces(namespaces.iter().cloned().collect())
        }
    }

    /// The namespaces to list one by one, or None for one list across the cluster.
    pub fn namespaces(&self) -> Option<&BTreeSet<String>> {
        match self {
            Listing::AllNamespaces => None,
            Listing::Namespaces(namespaces) => Some(namespaces),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(entries: &[&str]) -> Listing {
        Listing::from_allowed(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    fn named(names: &[&str]) -> Listing {
        Listing::Namespaces(names.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn plain_names_are_listed_one_by_one() {
        assert_eq!(listing(&["db", "cache"]), named(&["cache", "db"]));
        assert_eq!(
            listing(&["db", "db"]),
            named(&["db"]),
            "each namespace once"
        );
        // Named exactly, a system namespace is allowed, and so listed.
        assert_eq!(
            listing(&["db", "kube-system"]),
            named(&["db", "kube-system"])
        );
        assert_eq!(listing(&[]), named(&[]), "nothing allowed, nothing to list");
    }

    #[test]
    fn any_pattern_lists_across_the_cluster() {
        assert_eq!(listing(&["*"]), Listing::AllNamespaces);
        assert_eq!(listing(&["db", "team-*"]), Listing::AllNamespaces);
        assert_eq!(listing(&["db-?"]), Listing::AllNamespaces);
        assert_eq!(Listing::AllNamespaces.namespaces(), None);
        let default = crate::config::Config::default().safety.namespaces;
        assert_eq!(
            Listing::from_allowed(&default),
            Listing::AllNamespaces,
            "the default `*` keeps the cluster-wide lists"
        );
    }
}
