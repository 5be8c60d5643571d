//! The issuer's HTTPS endpoints: OIDC discovery, the JWKS with its one ES256 key, and a token
//! endpoint that answers only the `refresh_token` grant. Enough of OIDC for the API server to
//! verify tokens and for a kubeconfig's `oidc` auth provider to refresh one; nothing else (no
//! login, no authorization code). Each request gets one answer and the connection is closed,
//! which every HTTP/1.1 client handles.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::{
    CLIENT_ID, ID_TOKEN_LIFETIME_SECS, REFRESH_LOG, REFRESH_TOKEN, SERVING_CERT, SIGNING_KEY,
    SUBJECT, issuer_url,
};

/// A request larger than this is not one of ours.
const MAX_REQUEST: usize = 64 * 1024;

/// What the issuer signs with and answers from, loaded once at start.
struct Issuer {
    url: String,
    key: EcdsaKeyPair,
    /// Names the key in the JWKS and in each token's header.
    key_id: String,
    refresh_token: String,
    refresh_log: PathBuf,
    rng: SystemRandom,
}

/// Serves the issuer of the instance in `dir` on 127.0.0.1:`port` until killed.
pub fn run(dir: PathBuf, port: u16) -> Result<()> {
    let pki = dir.join("pki");
    let issuer = Arc::new(Issuer::load(&pki, &dir, port)?);
    let acceptor = TlsAcceptor::from(Arc::new(tls_config(&pki)?));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("binding 127.0.0.1:{port}"))?;
        eprintln!("oidc-issuer: serving {}", issuer.url);
        loop {
            let (tcp, _) = listener.accept().await?;
            let (acceptor, issuer) = (acceptor.clone(), issuer.clone());
            tokio::spawn(async move {
                if let Err(err) = serve(&acceptor, tcp, &issuer).await {
                    eprintln!("oidc-issuer: {err:#}");
                }
            });
        }
    })
}

fn tls_config(pki: &Path) -> Result<rustls::ServerConfig> {
    let cert_path = pki.join(format!("{SERVING_CERT}.crt"));
    let certs = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading {}", cert_path.display()))?;
    let key_path = pki.join(format!("{SERVING_CERT}.key"));
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .with_context(|| format!("reading {}", key_path.display()))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the OIDC issuer's serving certificate")
}

impl Issuer {
    fn load(pki: &Path, dir: &Path, port: u16) -> Result<Issuer> {
        let pkcs8 = fs::read(pki.join(SIGNING_KEY)).context("reading the signing key")?;
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
            .map_err(|e| anyhow!("the signing key in {}: {e}", pki.display()))?;
        let digest = ring::digest::digest(&ring::digest::SHA256, key.public_key().as_ref());
        let key_id = URL_SAFE_NO_PAD.encode(&digest.as_ref()[..12]);
        let refresh_token = fs::read_to_string(pki.join(REFRESH_TOKEN))
            .context("reading the refresh token")?
            .trim()
            .to_string();
        Ok(Issuer {
            url: issuer_url(port),
            key,
            key_id,
            refresh_token,
            refresh_log: dir.join(REFRESH_LOG),
            rng,
        })
    }

    fn discovery(&self) -> serde_json::Value {
        serde_json::json!({
            "issuer": self.url,
            "jwks_uri": format!("{}/keys", self.url),
            "token_endpoint": format!("{}/token", self.url),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "grant_types_supported": ["refresh_token"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        })
    }

    /// The public key as a JWK: P-256's uncompressed point is 0x04, then x, then y.
    fn jwks(&self) -> serde_json::Value {
        let point = self.key.public_key().as_ref();
        serde_json::json!({"keys": [{
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            "use": "sig",
            "alg": "ES256",
            "kid": self.key_id,
        }]})
    }

    /// A signed ID token for [`SUBJECT`], good for [`ID_TOKEN_LIFETIME_SECS`].
    fn id_token(&self) -> Result<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": self.key_id});
        let claims = serde_json::json!({
            "iss": self.url,
            "sub": SUBJECT,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + ID_TOKEN_LIFETIME_SECS,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        // The FIXED encoding is JWS's: r then s, 32 bytes each.
        let signature = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| anyhow!("signing an ID token"))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
    }

    /// The token endpoint: an ID token for the known refresh token, `invalid_grant` for any
    /// other, as an identity provider answers a revoked or expired one. Either way one line goes
    /// to the refresh log.
    fn token(&self, request: &Request) -> Result<Response> {
        let form = form_fields(&request.body);
        let field = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        if let Some(id) = client_id(request, &form)
            && id != CLIENT_ID
        {
            return Ok(Response::error(
                401,
                "invalid_client",
                &format!("unknown client `{id}`"),
            ));
        }
        if field("grant_type") != Some("refresh_token") {
            return Ok(Response::error(
                400,
                "unsupported_grant_type",
                "this issuer answers only the refresh_token grant",
            ));
        }
        let granted = field("refresh_token") == Some(self.refresh_token.as_str());
        self.log_refresh(if granted { "granted" } else { "refused" })?;
        if !granted {
            return Ok(Response::error(
                400,
                "invalid_grant",
                "the refresh token is unknown, expired or revoked",
            ));
        }
        let id_token = self.id_token()?;
        Ok(Response::json(
            200,
            &serde_json::json!({
                "access_token": id_token,
                "id_token": id_token,
                "token_type": "Bearer",
                "expires_in": ID_TOKEN_LIFETIME_SECS,
                "refresh_token": self.refresh_token,
            }),
        ))
    }

    fn log_refresh(&self, outcome: &str) -> Result<()> {
        let mut log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.refresh_log)
            .with_context(|| format!("opening {}", self.refresh_log.display()))?;
        writeln!(log, "{outcome}")?;
        Ok(())
    }
}

/// The client id a token request names, in an HTTP Basic header or the form (public clients
/// send no secret, so only the id is checked).
fn client_id(request: &Request, form: &[(String, String)]) -> Option<String> {
    let basic = request
        .header("authorization")
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(|encoded| STANDARD.decode(encoded.trim()).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|pair| pair.split_once(':').map(|(id, _)| percent_decode(id)));
    basic.or_else(|| {
        form.iter()
            .find(|(k, _)| k == "client_id")
            .map(|(_, v)| v.clone())
    })
}

async fn serve(acceptor: &TlsAcceptor, tcp: TcpStream, issuer: &Issuer) -> Result<()> {
    let mut tls = match acceptor.accept(tcp).await {
        Ok(tls) => tls,
        // A readiness probe connects and hangs up before any TLS: not worth a line.
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
        Err(err) => return Err(err).context("TLS handshake"),
    };
    let request = tokio::time::timeout(Duration::from_secs(10), read_request(&mut tls))
        .await
        .context("reading a request")??;
    let response = match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/.well-known/openid-configuration") => Response::json(200, &issuer.discovery()),
        ("GET", "/keys") => Response::json(200, &issuer.jwks()),
        ("POST", "/token") => issuer.token(&request)?,
        (method, path) => Response::error(404, "not_found", &format!("no {method} {path} here")),
    };
    eprintln!(
        "oidc-issuer: {} {} -> {}",
        request.method, request.path, response.status
    );
    tls.write_all(&response.to_bytes()).await?;
    tls.shutdown().await?;
    Ok(())
}

struct Request {
    method: String,
    path: String,
    /// Lower-cased names.
    headers: Vec<(String, String)>,
    body: String,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request: head up to the blank line, then `Content-Length` bytes of body.
async fn read_request(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> Result<Request> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        if buf.len() > MAX_REQUEST {
            bail!("request head over {MAX_REQUEST} bytes");
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed before the request head ended");
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_string();
    let target = request_line.next().unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map(|(_, v)| v.parse())
        .transpose()
        .context("Content-Length")?
        .unwrap_or(0);
    if length > MAX_REQUEST {
        bail!("request body over {MAX_REQUEST} bytes");
    }
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed before the request body ended");
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Ok(Request {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// `application/x-www-form-urlencoded` pairs, decoded.
fn form_fields(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// `+` is a space and `%XX` a byte; an invalid escape is kept as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 3)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (bytes[i], escaped) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
                continue;
            }
            (b'+', _) => out.push(b' '),
            (byte, _) => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Response {
    status: u16,
    body: String,
}

impl Response {
    fn json(status: u16, body: &serde_json::Value) -> Response {
        Response {
            status,
            body: body.to_string(),
        }
    }

    /// An OAuth 2.0 error answer (RFC 6749 section 5.2).
    fn error(status: u16, error: &str, description: &str) -> Response {
        Response::json(
            status,
            &serde_json::json!({"error": error, "error_description": description}),
        )
    }

    fn to_bytes(&self) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            401 => "Unauthorized",
            _ => "Not Found",
        };
        format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\nConnection: close\r\n\r\n{}",
            self.status,
            self.body.len(),
            self.body
        )
        .into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::{form_fields, percent_decode};

    #[test]
    fn form_fields_are_percent_decoded() {
        assert_eq!(
            form_fields("grant_type=refresh_token&refresh_token=a%2Bb+c&x"),
            vec![
                ("grant_type".to_string(), "refresh_token".to_string()),
                ("refresh_token".to_string(), "a+b c".to_string()),
                ("x".to_string(), String::new()),
            ]
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
