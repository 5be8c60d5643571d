//! The local control plane's certificates, static token and kubeconfigs, made with openssl at
//! each `cluster up`.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::cluster::Layout;
use crate::oidc_issuer;

/// The `berth` user's bearer token (pki/), read by the exec credential plugin tests.
const BERTH_TOKEN: &str = "berth.token";
/// The API server's static token file (pki/): the one line for [`BERTH_TOKEN`].
pub const TOKEN_AUTH_FILE: &str = "tokens.csv";

/// One CA signs everything: the apiserver's serving cert (IP SAN 127.0.0.1, which rustls and Go
/// require), an admin client cert in system:masters, a `berth` client cert with no groups (its
/// rights come only from config/rbac.yaml), the OIDC issuer's serving cert, and the
/// service-account signing key pair.
pub fn make_pki(pki: &Path) -> Result<()> {
    let openssl = |args: &[&str]| -> Result<()> {
        let out = Command::new("openssl")
            .current_dir(pki)
            .args(args)
            .output()
            .context(
                "running openssl (Debian package `openssl`) to make the cluster's certificates",
            )?;
        if !out.status.success() {
            bail!(
                "openssl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    };
    fs::write(
        pki.join("server.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,\
         DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,\
         DNS:kubernetes.default.svc.cluster.local\n",
    )?;
    fs::write(
        pki.join("client.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=clientAuth\n",
    )?;
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "3650",
        "-subj",
        "/CN=berth-local-ca",
    ])?;
    for (name, subject, ext) in [
        ("apiserver", "/CN=kube-apiserver", "server.ext"),
        (
            "admin",
            "/O=system:masters/CN=kubernetes-admin",
            "client.ext",
        ),
        ("berth", "/CN=berth", "client.ext"),
        // Same SANs as the apiserver's: it serves on 127.0.0.1 too.
        (oidc_issuer::SERVING_CERT, "/CN=oidc-issuer", "server.ext"),
    ] {
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        openssl(&[
            "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj",
            subject,
        ])?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "3650",
            "-extfile",
            ext,
            "-out",
            &crt,
        ])?;
    }
    openssl(&["genrsa", "-out", "sa.key", "2048"])?;
    openssl(&["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"])?;
    write_berth_token(pki)
}

/// A bearer token the API server accepts for the same `berth` user as berth.crt (static token
/// file), so the tests can log in the way managed clusters do — through an exec credential
/// plugin that prints a token — with exactly the rights of the shipped role.
fn write_berth_token(pki: &Path) -> Result<()> {
    let mut bytes = [0u8; 24];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .context("reading /dev/urandom for the test token")?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    fs::write(pki.join(BERTH_TOKEN), &token)?;
    // token,user,uid: the user name is the client certificate's CN, so one RBAC binding covers
    // both ways of logging in.
    fs::write(pki.join(TOKEN_AUTH_FILE), format!("{token},berth,berth\n"))?;
    Ok(())
}

/// Writes a kubeconfig with the certificates embedded, so it works from any working directory.
pub fn write_kubeconfig(layout: &Layout, path: &Path, user: &str) -> Result<()> {
    use base64::Engine as _;
    let b64 = |f: &str| -> Result<String> {
        let bytes = fs::read(layout.pki.join(f))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
    };
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: berth-local\n  cluster:\n    server: \
         https://127.0.0.1:{}\n    certificate-authority-data: {}\nusers:\n- name: \
         {user}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- \
         name: berth-local\n  context:\n    cluster: berth-local\n    user: {user}\n    \
         namespace: default\ncurrent-context: berth-local\n",
        layout.ports.apiserver,
        b64("ca.crt")?,
        b64(&format!("{user}.crt"))?,
        b64(&format!("{user}.key"))?,
    );
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
