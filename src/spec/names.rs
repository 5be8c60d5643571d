//! Kubernetes name and label syntax, checked by hand with Kubernetes' own wording
//! (k8s.io/apimachinery/pkg/util/validation), so a message from berth reads like the one the
//! API server would have given, only earlier and with a file position.
//!
//! Each check returns the list of problems (empty when the value is fine).

/// Longest DNS label (RFC 1123), and so the longest name of most Kubernetes objects.
pub const DNS_LABEL_MAX: usize = 63;
/// Longest DNS subdomain (RFC 1123): Secret and ConfigMap names, label key prefixes.
pub const DNS_SUBDOMAIN_MAX: usize = 253;
/// Longest app name. The StatefulSet controller labels each pod with
/// `controller-revision-hash=<statefulset>-<10-char hash>`; a label value is at most 63
/// characters, so a longer StatefulSet name makes that label invalid and the controller can never
/// create a pod (kubernetes issue 64023). 63 - 1 ('-') - 10 (hash) = 52.
pub const APP_NAME_MAX: usize = 52;
/// Longest port name (IANA_SVC_NAME, RFC 6335).
pub const PORT_NAME_MAX: usize = 15;

const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const ENV_NAME_MSG: &str = "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')";
const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

fn too_long(max: usize) -> String {
    format!("must be no more than {max} characters")
}

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn dns1123_label_ok(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| is_lower_alnum(c) || c == '-')
        && s.starts_with(is_lower_alnum)
        && s.ends_with(is_lower_alnum)
}

/// The seed's rule for names: 1–63 characters, lowercase letters, digits and '-', starting with a
/// letter, ending with a letter or digit (a DNS-1035 label, what Service names need).
pub fn dns1035_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.chars().count() > DNS_LABEL_MAX {
        errs.push(too_long(DNS_LABEL_MAX));
    }
    if !(dns1123_label_ok(s) && s.starts_with(|c: char| c.is_ascii_lowercase())) {
        errs.push(DNS1035_MSG.to_string());
    }
    errs
}

/// An app name: a DNS-1035 label of at most 52 characters (see [`APP_NAME_MAX`]).
pub fn app_name(s: &str) -> Vec<String> {
    let mut errs = dns1035_label(s);
    if s.chars().count() > APP_NAME_MAX {
        // The app's own limit, also past 63: "no more than 63" would invite a 60-character name.
        errs.retain(|e| *e != too_long(DNS_LABEL_MAX));
        errs.push(too_long(APP_NAME_MAX));
    }
    errs
}

/// An RFC 1123 label (namespaces).
pub fn dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.chars().count() > DNS_LABEL_MAX {
        errs.push(too_long(DNS_LABEL_MAX));
    }
    if !dns1123_label_ok(s) {
        errs.push(DNS1123_LABEL_MSG.to_string());
    }
    errs
}

/// An RFC 1123 subdomain (Secret and ConfigMap names, label key prefixes).
pub fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.chars().count() > DNS_SUBDOMAIN_MAX {
        errs.push(too_long(DNS_SUBDOMAIN_MAX));
    }
    if s.is_empty() || !s.split('.').all(dns1123_label_ok) {
        errs.push(DNS1123_SUBDOMAIN_MSG.to_string());
    }
    errs
}

/// A port name (IANA_SVC_NAME), with Kubernetes' messages.
pub fn port_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.chars().count() > PORT_NAME_MAX {
        errs.push(too_long(PORT_NAME_MAX));
    }
    if !s.chars().all(|c| is_lower_alnum(c) || c == '-') {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if s.contains("--") {
        errs.push("must not contain consecutive hyphens".into());
    }
    if !s.chars().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".into());
    }
    if s.starts_with('-') || s.ends_with('-') {
        errs.push("must not begin or end with a hyphen".into());
    }
    errs
}

fn qualified_part_ok(s: &str) -> bool {
    let inner = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    !s.is_empty()
        && s.chars().all(inner)
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// A label or annotation key: an optional DNS subdomain prefix and '/', then a name part.
pub fn qualified_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            errs.push("prefix part must be non-empty".into());
        } else {
            errs.extend(
                dns1123_subdomain(prefix)
                    .into_iter()
                    .map(|e| format!("prefix part {e}")),
            );
        }
    }
    if name.is_empty() {
        errs.push("name part must be non-empty".into());
    } else {
        if name.chars().count() > DNS_LABEL_MAX {
            errs.push(format!("name part {}", too_long(DNS_LABEL_MAX)));
        }
        if !qualified_part_ok(name) {
            errs.push(QUALIFIED_NAME_MSG.to_string());
        }
    }
    errs
}

/// A label value: empty, or at most 63 alphanumerics, '-', '_' and '.', alphanumeric at both ends.
pub fn label_value(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.chars().count() > DNS_LABEL_MAX {
        errs.push(too_long(DNS_LABEL_MAX));
    }
    if !s.is_empty() && !qualified_part_ok(s) {
        errs.push(LABEL_VALUE_MSG.to_string());
    }
    errs
}

/// An environment variable name (the rule of the Kubernetes versions berth supports).
pub fn env_var_name(s: &str) -> Vec<String> {
    let ok = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !s.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Vec::new()
    } else {
        vec![ENV_NAME_MSG.to_string()]
    }
}

/// A key in a Secret or ConfigMap.
pub fn config_key(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.chars().count() > DNS_SUBDOMAIN_MAX {
        errs.push(too_long(DNS_SUBDOMAIN_MAX));
    }
    let ok = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        errs.push(CONFIG_KEY_MSG.to_string());
    }
    if s == "." || s == ".." || s.starts_with("..") {
        errs.push("must not be '.' or '..' or start with '..'".into());
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(errs: Vec<String>) -> bool {
        errs.is_empty()
    }

    #[test]
    fn dns1035_label_rules() {
        assert!(ok(dns1035_label("mysql")));
        assert!(ok(dns1035_label("a")));
        assert!(ok(dns1035_label("my-db-2")));
        assert!(!ok(dns1035_label("")));
        assert!(!ok(dns1035_label("2db")));
        assert!(!ok(dns1035_label("db-")));
        assert!(!ok(dns1035_label("My-db")));
        assert!(!ok(dns1035_label("my_db")));
        assert!(ok(dns1035_label(&"a".repeat(63))));
        let long = dns1035_label(&"a".repeat(64));
        assert_eq!(long, vec!["must be no more than 63 characters".to_string()]);
    }

    #[test]
    fn app_name_52_limit() {
        assert!(ok(app_name(&"a".repeat(52))));
        assert_eq!(
            app_name(&"a".repeat(53)),
            vec!["must be no more than 52 characters".to_string()]
        );
        // 64 characters: the 63 limit already says it; no second length message.
        assert_eq!(app_name(&"a".repeat(64)).len(), 1);
    }

    #[test]
    fn dns1123_label_allows_leading_digit() {
        assert!(ok(dns1123_label("1db")));
        assert!(ok(dns1123_label(&"a".repeat(63))));
        assert!(!ok(dns1123_label(&"a".repeat(64))));
        assert!(!ok(dns1123_label("-db")));
        assert!(!ok(dns1123_label("")));
    }

    #[test]
    fn subdomain_rules() {
        assert!(ok(dns1123_subdomain("mysql.secrets")));
        assert!(ok(dns1123_subdomain("default-secret")));
        assert!(!ok(dns1123_subdomain("a..b")));
        assert!(!ok(dns1123_subdomain("Upper")));
        assert!(!ok(dns1123_subdomain(&"a".repeat(254))));
    }

    #[test]
    fn port_name_rules() {
        assert!(ok(port_name("http")));
        assert!(ok(port_name("x-port-1")));
        assert!(ok(port_name(&"a".repeat(15))));
        assert_eq!(
            port_name(&"a".repeat(16)),
            vec!["must be no more than 15 characters".to_string()]
        );
        assert!(!ok(port_name("123")));
        assert!(!ok(port_name("my--port")));
        assert!(!ok(port_name("-http")));
        assert!(!ok(port_name("http-")));
        assert!(!ok(port_name("HTTP")));
        assert!(!ok(port_name("my_port")));
    }

    #[test]
    fn qualified_name_rules() {
        assert!(ok(qualified_name("team")));
        assert!(ok(qualified_name("prometheus.io/scrape")));
        assert!(ok(qualified_name("My_Key.v1")));
        assert!(!ok(qualified_name("/x")));
        assert!(!ok(qualified_name("a/")));
        assert!(!ok(qualified_name("Bad_Prefix/x")));
        assert!(!ok(qualified_name("-x")));
        assert!(ok(qualified_name(&"k".repeat(63))));
        assert!(!ok(qualified_name(&"k".repeat(64))));
    }

    #[test]
    fn label_value_rules() {
        assert!(ok(label_value("")));
        assert!(ok(label_value("payments")));
        assert!(ok(label_value("v1.2_3-x")));
        assert!(!ok(label_value("has space")));
        assert!(!ok(label_value("-x")));
        assert!(ok(label_value(&"v".repeat(63))));
        assert!(!ok(label_value(&"v".repeat(64))));
    }

    #[test]
    fn env_and_config_keys() {
        assert!(ok(env_var_name("MYSQL_ROOT_PASSWORD")));
        assert!(ok(env_var_name("my.env-name")));
        assert!(!ok(env_var_name("1X")));
        assert!(!ok(env_var_name("A=B")));
        assert!(ok(config_key("root")));
        assert!(ok(config_key("tls.crt")));
        assert!(!ok(config_key("a/b")));
        assert!(!ok(config_key("..x")));
        assert!(!ok(config_key("")));
    }
}
