//! The local control plane's OpenID Connect issuer: it plays a company's identity provider, so
//! that the `oidc` login of a kubeconfig (`auth-provider: oidc`, with a refresh token) is tested
//! end to end: the client refreshes an expired ID token here, and the real API server accepts
//! the new one because it trusts this issuer (`--authentication-config`).
//!
//! `cluster up` calls [`prepare`] after the certificates are made; the issuer itself is the
//! `oidc-issuer` component, `cargo xtask oidc-issuer DIR PORT`, started beside the others
//! ([`server`]).

mod server;

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};

pub use server::run;

/// The OAuth client the API server expects ID tokens for (their `aud`), and the kubeconfig's
/// `client-id`.
const CLIENT_ID: &str = "berth-local";
/// The `sub` of every ID token issued; the API server's user name is it with [`USERNAME_PREFIX`].
const SUBJECT: &str = "berth-oidc";
/// Keeps OIDC user names apart from the static token file's and the certificates' (`berth`).
const USERNAME_PREFIX: &str = "oidc:";
/// How long an issued ID token is good for: short, so a test sees refreshes.
const ID_TOKEN_LIFETIME_SECS: u64 = 300;

/// The issuer's ES256 signing key (PKCS#8, pki/). Made once per instance, so the JWKS the API
/// server cached stays valid when the issuer restarts.
const SIGNING_KEY: &str = "oidc-signing-key.pk8";
/// The one refresh token the issuer honours (pki/), read by the tests.
const REFRESH_TOKEN: &str = "oidc-refresh-token";
/// The issuer's serving certificate and key (pki/), signed by the cluster CA.
pub const SERVING_CERT: &str = "oidc-issuer";
/// The API server's `--authentication-config` (pki/).
pub const AUTHENTICATION_CONFIG: &str = "authentication-config.json";
/// One line per refresh request the issuer answered (`granted` or `refused`), in the instance's
/// directory, for the tests to count.
const REFRESH_LOG: &str = "oidc-refreshes";

/// The issuer URL for the port: the `iss` of its tokens and the base of its endpoints. No
/// trailing slash: clients append `/.well-known/openid-configuration` to it as written.
fn issuer_url(port: u16) -> String {
    format!("https://127.0.0.1:{port}")
}

/// Makes what the issuer and the API server need in `pki`: the signing key (kept when it exists),
/// the refresh token, and the authentication configuration that makes the API server trust the
/// issuer's tokens. The static token file stays on beside it.
pub fn prepare(pki: &Path, port: u16) -> Result<()> {
    let rng = SystemRandom::new();
    let key = pki.join(SIGNING_KEY);
    if !key.exists() {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| anyhow!("generating the OIDC issuer's signing key"))?;
        fs::write(&key, pkcs8.as_ref()).with_context(|| format!("writing {}", key.display()))?;
    }
    let refresh_token = pki.join(REFRESH_TOKEN);
    if !refresh_token.exists() {
        let mut bytes = [0u8; 24];
        rng.fill(&mut bytes)
            .map_err(|_| anyhow!("generating the OIDC refresh token"))?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        fs::write(&refresh_token, token)?;
    }
    let ca = fs::read_to_string(pki.join("ca.crt")).context("reading the cluster CA")?;
    // apiserver.config.k8s.io/v1 (GA in Kubernetes 1.34). JSON is YAML, and keeps the embedded
    // PEM free of indentation rules.
    let config = serde_json::json!({
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "AuthenticationConfiguration",
        "jwt": [{
            "issuer": {
                "url": issuer_url(port),
                // The issuer's certificate is signed by the cluster CA (PEM, not a path).
                "certificateAuthority": ca,
                "audiences": [CLIENT_ID],
            },
            "claimMappings": {
                "username": {"claim": "sub", "prefix": USERNAME_PREFIX},
            },
        }],
    });
    let path = pki.join(AUTHENTICATION_CONFIG);
    fs::write(&path, serde_json::to_string_pretty(&config)?)
        .with_context(|| format!("writing {}", path.display()))
}
