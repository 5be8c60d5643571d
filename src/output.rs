//! How berth's output reads: a command's stdout that a closed pipe does not break, an error and
//! its causes on one line, and which errors mean the API server never answered.
//!
//! A leaf: it uses no other berth module, so the cluster layer, the daemon's logs and the
//! commands all tell errors the same way.

use std::io::{self, Write};

/// Writes `text` to stdout, flushed, so that a reader that has gone away is seen at this write.
///
/// Unlike `print!`, which panics when the reader of a pipe is gone (`berth diff DIR | head -1`),
/// the failure is returned, and a closed pipe stays an `io::ErrorKind::BrokenPipe` error
/// ([`is_reader_gone`]) that callers tell apart from a real failure.
pub fn print(text: &[u8]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text)?;
    out.flush()
}

/// True when a write to stdout failed because its reader went away: the reader's choice, not
/// a failure of the command.
pub fn is_reader_gone(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::BrokenPipe
}

/// An error and its causes on one line: `applying StatefulSet db/x: admission webhook …`.
/// A cause whose words the one before it already ends with is left out: kube, hyper and its
/// client wrap an error in layers that print their source again (`ServiceError: client error
/// (Connect)`, then `client error (Connect)`).
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = describe(err);
    let mut last = text.clone();
    let mut source = err.source();
    while let Some(cause) = source {
        let message = describe(cause);
        if !last.ends_with(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        last = message;
        source = cause.source();
    }
    text
}

/// The issuer of the kubeconfig's `oidc` login, for the error when its refresh fails (kube's
/// own message does not say which identity provider it asked).
static OIDC_ISSUER: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Records the issuer URL of the kubeconfig's `oidc` auth provider.
pub fn name_oidc_issuer(issuer: &str) {
    let _ = OIDC_ISSUER.set(issuer.to_string());
}

/// One error's own message; kube's for a failed exec credential plugin is rewritten, since it
/// prints the plugin's output as a Rust struct with its environment in front, and its failed
/// `oidc` login is named as such, with what to do.
fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    match err.downcast_ref::<kube::client::AuthError>() {
        Some(kube::client::AuthError::AuthExecRun { cmd, out }) => {
            exec_plugin_failure(cmd, out.status, &out.stderr)
        }
        Some(kube::client::AuthError::Oidc(cause)) => oidc_failure(
            OIDC_ISSUER.get().map(String::as_str).unwrap_or_default(),
            &error_chain(cause),
        ),
        _ => err.to_string(),
    }
}

fn oidc_failure(issuer: &str, cause: &str) -> String {
    let at = match issuer {
        "" => String::new(),
        issuer => format!(" (issuer {issuer})"),
    };
    format!(
        "the kubeconfig's oidc login{at} failed: {cause}; log in to the identity provider again \
         (`kubectl oidc-login`, or your provider's login command) for a new refresh token"
    )
}

/// `cmd` is the plugin's `Command` in `Debug` form: `KUBERNETES_EXEC_INFO="{…}" "/path" "arg"`.
fn exec_plugin_failure(cmd: &str, status: std::process::ExitStatus, stderr: &[u8]) -> String {
    let command = match cmd.split_once("}\" ") {
        Some((env, command)) if env.starts_with("KUBERNETES_EXEC_INFO=") => command,
        _ => cmd,
    }
    .replace('"', "");
    let stderr = String::from_utf8_lossy(stderr);
    let said = match stderr.trim() {
        // An interactive plugin writes to berth's own stderr, above this line.
        "" => String::new(),
        said => format!(": {said}"),
    };
    format!(
        "the kubeconfig's exec credential plugin `{command}` failed ({status}){said}; run it by \
         hand to see why (often: log in to the cluster's identity provider first)"
    )
}

/// True when the request never got an answer from the API server (connection refused or
/// reset, TLS cut, timeout): as opposed to an answer that refused this one object.
pub fn is_transport_error(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(kube_err) = e.downcast_ref::<kube::Error>() {
            // A failed login is an answer of sorts (from the identity provider or the
            // credential plugin), whatever layer kube wraps it in.
            return matches!(
                kube_err,
                kube::Error::HyperError(_) | kube::Error::Service(_)
            ) && !caused_by_login(e);
        }
        source = e.source();
    }
    false
}

fn caused_by_login(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(e) = source {
        if e.downcast_ref::<kube::client::AuthError>().is_some() {
            return true;
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::{error_chain, exec_plugin_failure, oidc_failure};
    use std::os::unix::process::ExitStatusExt;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn error_chain_joins_causes_and_drops_a_cause_the_one_before_already_printed() {
        let err = Layer(
            "applying StatefulSet db/web",
            Some(Box::new(Layer(
                "ServiceError: client error (Connect)",
                Some(Box::new(Layer(
                    "client error (Connect)",
                    Some(Box::new(Layer(
                        "client error (Connect)",
                        Some(Box::new(Layer("Connection refused", None))),
                    ))),
                ))),
            ))),
        );
        assert_eq!(
            error_chain(&err),
            "applying StatefulSet db/web: ServiceError: client error (Connect): Connection refused"
        );
    }

    #[test]
    fn a_failed_exec_plugin_reads_as_its_command_and_what_it_said() {
        let cmd = r#"KUBERNETES_EXEC_INFO="{\"kind\":\"ExecCredential\",\"spec\":{\"interactive\":false}}" "/usr/bin/corp-login" "token""#;
        let text = exec_plugin_failure(
            cmd,
            std::process::ExitStatus::from_raw(256),
            b"error: not logged in\n",
        );
        assert_eq!(
            text,
            "the kubeconfig's exec credential plugin `/usr/bin/corp-login token` failed (exit \
             status: 1): error: not logged in; run it by hand to see why (often: log in to the \
             cluster's identity provider first)"
        );
    }

    #[test]
    fn a_failed_oidc_login_names_its_issuer_and_what_to_do() {
        assert_eq!(
            oidc_failure(
                "https://idp.example.com",
                "ID token expired and refreshing failed: invalid_grant"
            ),
            "the kubeconfig's oidc login (issuer https://idp.example.com) failed: ID token expired \
             and refreshing failed: invalid_grant; log in to the identity provider again \
             (`kubectl oidc-login`, or your provider's login command) for a new refresh token"
        );
        assert!(oidc_failure("", "x").starts_with("the kubeconfig's oidc login failed: x;"));
    }
}
