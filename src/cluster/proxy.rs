//! Which proxy, if any, carries the connection to the API server, by kubectl's rules: the
//! kubeconfig cluster's `proxy-url` when it has one; otherwise `HTTPS_PROXY` (`HTTP_PROXY` for an
//! `http://` server) unless `NO_PROXY` covers the server, which is never proxied when it is
//! `localhost` or a loopback address (Go's `http.ProxyFromEnvironment`, which kubectl uses).
//!
//! kube reads `HTTPS_PROXY` itself but matches `NO_PROXY` against the proxy's address rather than
//! the server's, ignores `HTTP_PROXY`, and lets `NO_PROXY` override `proxy-url`; so berth decides
//! here and sets `Config::proxy_url` to the answer. Pure: the environment comes in as [`ProxyEnv`].

use std::net::IpAddr;

/// The proxy variables of the environment. Each is the first non-empty one of its upper- and
/// lower-case spellings, upper case first (as Go reads them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyEnv {
    pub https_proxy: Option<String>,
    pub http_proxy: Option<String>,
    pub no_proxy: Option<String>,
    /// `REQUEST_METHOD` is set: running as a CGI script, where `HTTP_PROXY` may come from a
    /// request header (httpoxy), so Go ignores it.
    pub cgi: bool,
}

impl ProxyEnv {
    pub fn from_env() -> ProxyEnv {
        let var = |names: [&str; 2]| {
            names
                .into_iter()
                .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        };
        ProxyEnv {
            https_proxy: var(["HTTPS_PROXY", "https_proxy"]),
            http_proxy: var(["HTTP_PROXY", "http_proxy"]),
            no_proxy: var(["NO_PROXY", "no_proxy"]),
            cgi: std::env::var_os("REQUEST_METHOD").is_some_and(|v| !v.is_empty()),
        }
    }
}

/// The proxy URL for the API server at `server` (scheme, host and optional port), or None to
/// connect directly. `kubeconfig_proxy` is the cluster's `proxy-url`.
pub fn proxy_for(
    server: &http::Uri,
    kubeconfig_proxy: Option<&str>,
    env: &ProxyEnv,
) -> Option<String> {
    if let Some(url) = kubeconfig_proxy.filter(|u| !u.is_empty()) {
        return Some(url.to_string());
    }
    let (proxy, default_port) = match server.scheme_str() {
        Some("https") => (env.https_proxy.as_deref()?, 443),
        Some("http") if !env.cgi => (env.http_proxy.as_deref()?, 80),
        _ => return None,
    };
    let host = server.host()?;
    let port = server.port_u16().unwrap_or(default_port);
    if bypasses_proxy(host, port, env.no_proxy.as_deref().unwrap_or_default()) {
        return None;
    }
    Some(normalise(proxy))
}

/// True when a request to `host:port` goes direct: `host` is `localhost` or a loopback address,
/// or `no_proxy` covers it. `no_proxy` is a comma-separated list; an entry is `*` (everything),
/// an IP address or CIDR range, or a domain that matches itself and its subdomains (`.domain` and
/// `*.domain`: only its subdomains). An entry with `:port` matches only that port (CIDRs take
/// none). Case and surrounding spaces do not matter; empty entries are skipped.
pub fn bypasses_proxy(host: &str, port: u16, no_proxy: &str) -> bool {
    let host = host
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let ip = host.parse::<IpAddr>().ok().map(|ip| ip.to_canonical());
    if host == "localhost" || ip.is_some_and(|ip| ip.is_loopback()) {
        return true;
    }
    no_proxy
        .split(',')
        .map(|entry| entry.trim().to_ascii_lowercase())
        .filter(|entry| !entry.is_empty())
        .any(|entry| entry_matches(&entry, &host, ip, port))
}

fn entry_matches(entry: &str, host: &str, ip: Option<IpAddr>, port: u16) -> bool {
    if entry == "*" {
        return true;
    }
    if let Some((network, bits)) = entry.split_once('/') {
        return match (network.parse::<IpAddr>(), bits.parse::<u8>(), ip) {
            (Ok(network), Ok(bits), Some(ip)) => in_cidr(ip, network.to_canonical(), bits),
            _ => false,
        };
    }
    let (name, entry_port) = split_port(entry);
    if entry_port.is_some_and(|p| p != port) {
        return false;
    }
    let name = name.trim_start_matches('[').trim_end_matches(']');
    if let Ok(entry_ip) = name.parse::<IpAddr>() {
        return ip == Some(entry_ip.to_canonical());
    }
    if name.is_empty() {
        return false;
    }
    let name = name.strip_prefix('*').unwrap_or(name);
    match name.strip_prefix('.') {
        Some(_) => host.ends_with(name),
        None => host == name || host.ends_with(&format!(".{name}")),
    }
}

/// `name:port` → (name, Some(port)); a bare name or IPv6 address → (entry, None).
fn split_port(entry: &str) -> (&str, Option<u16>) {
    if let Some((name, port)) = entry.rsplit_once(':')
        && let Ok(port) = port.parse::<u16>()
        && (!name.contains(':') || (name.starts_with('[') && name.ends_with(']')))
    {
        return (name, Some(port));
    }
    (entry, None)
}

fn in_cidr(ip: IpAddr, network: IpAddr, bits: u8) -> bool {
    match (ip, network) {
        (IpAddr::V4(ip), IpAddr::V4(net)) if bits <= 32 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) if bits <= 128 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// A proxy given without a scheme (`proxy.corp:3128`) is an HTTP proxy, as in Go; `socks5h` is
/// `socks5` (kube's SOCKS5 client leaves name resolution to the proxy either way).
fn normalise(proxy: &str) -> String {
    let proxy = proxy.trim();
    if let Some(rest) = proxy.strip_prefix("socks5h://") {
        return format!("socks5://{rest}");
    }
    if proxy.contains("://") {
        proxy.to_string()
    } else {
        format!("http://{proxy}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(https: Option<&str>, http: Option<&str>, no_proxy: Option<&str>) -> ProxyEnv {
        ProxyEnv {
            https_proxy: https.map(str::to_string),
            http_proxy: http.map(str::to_string),
            no_proxy: no_proxy.map(str::to_string),
            cgi: false,
        }
    }

    fn proxy(server: &str, kubeconfig: Option<&str>, env: &ProxyEnv) -> Option<String> {
        proxy_for(&server.parse().expect("server URL"), kubeconfig, env)
    }

    #[test]
    fn the_kubeconfig_proxy_url_wins_over_the_environment_and_no_proxy() {
        let env = env(Some("http://env:3128"), None, Some("*"));
        assert_eq!(
            proxy(
                "https://127.0.0.1:6443",
                Some("socks5://bastion:1080"),
                &env
            )
            .as_deref(),
            Some("socks5://bastion:1080")
        );
    }

    #[test]
    fn an_https_server_takes_https_proxy_and_an_http_server_http_proxy() {
        let env = env(Some("http://secure:3128"), Some("http://plain:3128"), None);
        let https = proxy("https://api.example.com:6443", None, &env);
        assert_eq!(https.as_deref(), Some("http://secure:3128"));
        let http = proxy("http://api.example.com:8080", None, &env);
        assert_eq!(http.as_deref(), Some("http://plain:3128"));
        // No fallback from one to the other.
        let only_http = super::tests::env(None, Some("http://plain:3128"), None);
        assert_eq!(proxy("https://api.example.com", None, &only_http), None);
    }

    #[test]
    fn http_proxy_is_ignored_under_cgi() {
        let mut env = env(None, Some("http://plain:3128"), None);
        env.cgi = true;
        assert_eq!(proxy("http://api.example.com", None, &env), None);
    }

    #[test]
    fn no_proxy_covering_the_server_means_direct() {
        let env = env(Some("http://env:3128"), None, Some("10.0.0.0/8,.internal"));
        assert_eq!(proxy("https://10.1.2.3:6443", None, &env), None);
        assert_eq!(proxy("https://api.k8s.internal", None, &env), None);
        assert_eq!(
            proxy("https://api.example.com", None, &env).as_deref(),
            Some("http://env:3128")
        );
    }

    #[test]
    fn a_proxy_without_a_scheme_is_http_and_socks5h_is_socks5() {
        let bare = env(Some("proxy.corp:3128"), None, None);
        let got = proxy("https://api.example.com", None, &bare);
        assert_eq!(got.as_deref(), Some("http://proxy.corp:3128"));
        let socks = env(Some("socks5h://proxy.corp:1080"), None, None);
        let got = proxy("https://api.example.com", None, &socks);
        assert_eq!(got.as_deref(), Some("socks5://proxy.corp:1080"));
    }

    #[test]
    fn localhost_and_loopback_addresses_are_never_proxied() {
        for host in [
            "localhost",
            "LocalHost",
            "127.0.0.1",
            "127.9.9.9",
            "::1",
            "[::1]",
        ] {
            assert!(bypasses_proxy(host, 443, ""), "{host}");
        }
        assert!(bypasses_proxy("::ffff:127.0.0.1", 443, ""));
        assert!(!bypasses_proxy("localhost.example.com", 443, ""));
    }

    #[test]
    fn a_star_matches_everything() {
        assert!(bypasses_proxy("api.example.com", 443, "*"));
        assert!(bypasses_proxy("192.0.2.1", 443, " * "));
    }

    #[test]
    fn a_domain_matches_itself_and_its_subdomains() {
        let no_proxy = "example.com";
        assert!(bypasses_proxy("example.com", 443, no_proxy));
        assert!(bypasses_proxy("api.example.com", 443, no_proxy));
        assert!(bypasses_proxy("API.Example.COM", 443, no_proxy));
        assert!(!bypasses_proxy("notexample.com", 443, no_proxy));
        assert!(!bypasses_proxy("example.com.evil", 443, no_proxy));
    }

    #[test]
    fn a_leading_dot_or_star_dot_matches_only_subdomains() {
        for no_proxy in [".example.com", "*.example.com"] {
            assert!(
                bypasses_proxy("api.example.com", 443, no_proxy),
                "{no_proxy}"
            );
            assert!(
                bypasses_proxy("a.b.example.com", 443, no_proxy),
                "{no_proxy}"
            );
            assert!(!bypasses_proxy("example.com", 443, no_proxy), "{no_proxy}");
            assert!(
                !bypasses_proxy("notexample.com", 443, no_proxy),
                "{no_proxy}"
            );
        }
    }

    #[test]
    fn ip_addresses_match_exactly_and_cidrs_by_range() {
        assert!(bypasses_proxy("192.0.2.10", 443, "192.0.2.10"));
        assert!(!bypasses_proxy("192.0.2.11", 443, "192.0.2.10"));
        assert!(bypasses_proxy("192.0.2.200", 443, "192.0.2.0/24"));
        assert!(!bypasses_proxy("192.0.3.1", 443, "192.0.2.0/24"));
        assert!(bypasses_proxy("2001:db8::1", 443, "2001:db8::/32"));
        assert!(bypasses_proxy("[2001:db8::1]", 443, "2001:db8::1"));
        assert!(bypasses_proxy("10.0.0.1", 443, "0.0.0.0/0"));
        // A name is not matched by an address or range.
        assert!(!bypasses_proxy("api.example.com", 443, "192.0.2.0/24"));
    }

    #[test]
    fn an_entry_with_a_port_matches_only_that_port() {
        assert!(bypasses_proxy("api.example.com", 6443, "example.com:6443"));
        assert!(!bypasses_proxy("api.example.com", 443, "example.com:6443"));
        assert!(bypasses_proxy("192.0.2.1", 6443, "192.0.2.1:6443"));
        assert!(!bypasses_proxy("192.0.2.1", 443, "192.0.2.1:6443"));
        assert!(bypasses_proxy("2001:db8::1", 6443, "[2001:db8::1]:6443"));
    }

    #[test]
    fn a_list_is_comma_separated_with_spaces_and_empty_entries_ignored() {
        let no_proxy = " foo.test , ,10.0.0.0/8,, .svc,";
        assert!(bypasses_proxy("foo.test", 443, no_proxy));
        assert!(bypasses_proxy("10.96.0.1", 443, no_proxy));
        assert!(bypasses_proxy("kubernetes.default.svc", 443, no_proxy));
        assert!(!bypasses_proxy("api.example.com", 443, no_proxy));
        assert!(!bypasses_proxy("api.example.com", 443, ""));
    }

    #[test]
    fn the_default_port_of_the_scheme_is_the_servers_port() {
        let env = env(Some("http://env:3128"), None, Some("api.example.com:443"));
        assert_eq!(proxy("https://api.example.com", None, &env), None);
        assert!(proxy("https://api.example.com:6443", None, &env).is_some());
    }
}
