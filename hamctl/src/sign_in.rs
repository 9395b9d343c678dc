//! Talking to the identity provider (OpenID Connect), as a public client:
//! the discovery document, the authorization code flow with PKCE and a
//! loopback redirect (RFC 8252: the browser comes back to
//! `http://127.0.0.1:<port>/callback`, which hamctl listens on for the one
//! request), the device authorization flow (RFC 8628) for machines with no
//! browser, and refreshing tokens.
//!
//! It owns the provider's protocol only: which server, issuer and client
//! come from `login` (the server says them), and where tokens are kept is
//! `credentials`'.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::CliError;
use crate::output::Printer;

/// How long a person has to finish signing in.
const SIGN_IN_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest wait for one answer of the provider.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// The provider's endpoints, and who hamctl is there.
#[derive(Debug, Clone)]
pub(crate) struct Provider {
    pub(crate) issuer: String,
    pub(crate) client_id: String,
    pub(crate) scopes: Vec<String>,
    authorization_endpoint: String,
    pub(crate) token_endpoint: String,
    device_authorization_endpoint: Option<String>,
}

/// What a sign-in or a refresh gives.
#[derive(Debug, Clone)]
pub(crate) struct Tokens {
    pub(crate) id_token: String,
    pub(crate) refresh_token: Option<String>,
}

fn failed(why: impl Into<String>) -> CliError {
    CliError::SignIn(why.into())
}

fn http() -> Result<reqwest::Client, CliError> {
    reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .build()
        .map_err(|e| failed(format!("cannot make an HTTP client: {e}")))
}

async fn json_of(response: reqwest::Response, what: &str) -> Result<(u16, Value), CliError> {
    let status = response.status().as_u16();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| failed(format!("{what}: {e}")))?;
    let value = serde_json::from_slice(&bytes)
        .map_err(|_| failed(format!("{what} did not answer JSON (HTTP {status})")))?;
    Ok((status, value))
}

fn text(value: &Value, name: &str) -> Option<String> {
    value.get(name).and_then(Value::as_str).map(str::to_string)
}

/// Reads the issuer's discovery document.
pub(crate) async fn discover(
    issuer: &str,
    client_id: &str,
    scopes: &[String],
) -> Result<Provider, CliError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let response = http()?
        .get(&url)
        .send()
        .await
        .map_err(|e| failed(format!("cannot reach the identity provider at {url}: {e}")))?;
    let (_, document) = json_of(response, "the identity provider's discovery document").await?;
    let endpoint = |name: &str| {
        text(&document, name).ok_or_else(|| {
            failed(format!(
                "the identity provider's discovery document has no {name}"
            ))
        })
    };
    Ok(Provider {
        issuer: issuer.to_string(),
        client_id: client_id.to_string(),
        scopes: scopes.to_vec(),
        authorization_endpoint: endpoint("authorization_endpoint")?,
        token_endpoint: endpoint("token_endpoint")?,
        device_authorization_endpoint: text(&document, "device_authorization_endpoint"),
    })
}

/// The tokens of a successful token endpoint answer, or why it failed.
fn tokens_of(status: u16, body: &Value) -> Result<Tokens, String> {
    if status != 200 {
        let error = text(body, "error").unwrap_or_else(|| format!("HTTP {status}"));
        let description = text(body, "error_description")
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        return Err(format!("{error}{description}"));
    }
    Ok(Tokens {
        id_token: text(body, "id_token").ok_or("the answer has no ID token")?,
        refresh_token: text(body, "refresh_token"),
    })
}

async fn token_request(endpoint: &str, form: &[(&str, &str)]) -> Result<(u16, Value), CliError> {
    let response = http()?
        .post(endpoint)
        .form(form)
        .send()
        .await
        .map_err(|e| failed(format!("cannot reach the token endpoint {endpoint}: {e}")))?;
    json_of(response, "the token endpoint").await
}

/// A fresh ID token for a refresh token.
pub(crate) async fn refresh(
    token_endpoint: &str,
    client_id: &str,
    refresh_token: &str,
) -> Result<Tokens, CliError> {
    let (status, body) = token_request(
        token_endpoint,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client_id),
        ],
    )
    .await?;
    tokens_of(status, &body).map_err(failed)
}

fn random_text() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

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
            (b'+', _) => out.push(b' '),
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 2;
            }
            (byte, _) => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query parameters of a request line's target (`/callback?a=1&b=2`).
fn query_of(target: &str) -> Vec<(String, String)> {
    target
        .split_once('?')
        .map(|(_, query)| query)
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        .collect()
}

/// Tries to open `url` in the user's browser; whether a program took it.
fn open_browser(url: &str) -> bool {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}

/// Answers one request on the loopback listener.
async fn answer(stream: &mut tokio::net::TcpStream, status: &str, text: &str) {
    let body = format!("<!DOCTYPE html><html><body><p>{text}</p></body></html>");
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Waits for the browser's request to `/callback` on `listener` and
/// returns its query.
async fn callback(listener: tokio::net::TcpListener) -> Result<Vec<(String, String)>, CliError> {
    loop {
        let (mut stream, _) = listener
            .accept()
            .await
            .map_err(|e| failed(format!("the loopback listener failed: {e}")))?;
        let mut head = Vec::new();
        let mut buffer = [0u8; 2048];
        // Only the request line matters; at most 16 KiB of head is read.
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 << 10 {
            match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                Ok(Ok(n)) => head.extend_from_slice(&buffer[..n]),
            }
        }
        let head = String::from_utf8_lossy(&head);
        let target = head
            .lines()
            .next()
            .and_then(|line| line.split(' ').nth(1))
            .unwrap_or_default()
            .to_string();
        if !target.starts_with("/callback") {
            answer(&mut stream, "404 Not Found", "Not here.").await;
            continue;
        }
        let query = query_of(&target);
        if query.iter().any(|(k, _)| k == "error") {
            answer(
                &mut stream,
                "400 Bad Request",
                "The sign-in failed; hamctl says why.",
            )
            .await;
        } else {
            answer(
                &mut stream,
                "200 OK",
                "Signed in to the release manager. You may close this window.",
            )
            .await;
        }
        return Ok(query);
    }
}

/// The authorization code flow with PKCE: a URL to open (opened for the
/// user unless `no_browser`), then the code from the loopback redirect,
/// traded for tokens.
pub(crate) async fn browser_flow(
    provider: &Provider,
    no_browser: bool,
    printer: &mut Printer<'_>,
) -> Result<Tokens, CliError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| failed(format!("cannot listen on loopback for the redirect: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| failed(e.to_string()))?
        .port();
    let redirect_uri = format!("http://127.0.0.1:{port}/callback");
    let verifier = random_text();
    let state = random_text();
    let nonce = random_text();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let scope = provider.scopes.join(" ");
    let query = [
        ("response_type", "code"),
        ("client_id", provider.client_id.as_str()),
        ("redirect_uri", redirect_uri.as_str()),
        ("scope", scope.as_str()),
        ("state", state.as_str()),
        ("nonce", nonce.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={}", percent_encode(v)))
    .collect::<Vec<_>>()
    .join("&");
    let separator = if provider.authorization_endpoint.contains('?') {
        '&'
    } else {
        '?'
    };
    let url = format!("{}{separator}{query}", provider.authorization_endpoint);
    let opened = !no_browser && open_browser(&url);
    printer.note(if opened {
        "Your browser has been opened to sign in. If it did not open, visit this URL:"
    } else {
        "Open this URL in a browser to sign in:"
    })?;
    printer.note(&format!("  {url}"))?;
    let query = tokio::time::timeout(SIGN_IN_TIMEOUT, callback(listener))
        .await
        .map_err(|_| failed("nobody signed in within 5 minutes"))??;
    let value = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if let Some(error) = value("error") {
        let description = value("error_description")
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        return Err(failed(format!(
            "the identity provider refused: {error}{description}"
        )));
    }
    if value("state").as_deref() != Some(state.as_str()) {
        return Err(failed(
            "the redirect's state is not this sign-in's; try again",
        ));
    }
    let code = value("code").ok_or_else(|| failed("the redirect carries no code"))?;
    let (status, body) = token_request(
        &provider.token_endpoint,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &redirect_uri),
            ("client_id", &provider.client_id),
            ("code_verifier", &verifier),
        ],
    )
    .await?;
    let tokens = tokens_of(status, &body).map_err(failed)?;
    let claims = claims_of(&tokens.id_token);
    if claims.get("nonce").and_then(Value::as_str) != Some(nonce.as_str()) {
        return Err(failed(
            "the ID token's nonce is not this sign-in's; try again",
        ));
    }
    Ok(tokens)
}

/// The claims of a JWT, unverified (the server verifies).
pub(crate) fn claims_of(token: &str) -> Value {
    token
        .split('.')
        .nth(1)
        .and_then(|payload| URL_SAFE_NO_PAD.decode(payload).ok())
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null)
}

/// The device authorization flow: a code for the user to confirm on
/// another device, then polling until they did.
pub(crate) async fn device_flow(
    provider: &Provider,
    printer: &mut Printer<'_>,
) -> Result<Tokens, CliError> {
    let endpoint = provider.device_authorization_endpoint.as_deref().ok_or_else(|| {
        failed("the identity provider does not offer the device flow; use `hamctl login` without --device")
    })?;
    let scope = provider.scopes.join(" ");
    let response = http()?
        .post(endpoint)
        .form(&[
            ("client_id", provider.client_id.as_str()),
            ("scope", &scope),
        ])
        .send()
        .await
        .map_err(|e| failed(format!("cannot reach {endpoint}: {e}")))?;
    let (status, body) = json_of(response, "the device authorization endpoint").await?;
    if status != 200 {
        return Err(failed(format!(
            "the device authorization endpoint refused: {}",
            text(&body, "error").unwrap_or_else(|| format!("HTTP {status}"))
        )));
    }
    let field = |name: &str| {
        text(&body, name)
            .ok_or_else(|| failed(format!("the device authorization answer has no {name}")))
    };
    let device_code = field("device_code")?;
    let user_code = field("user_code")?;
    let verification = text(&body, "verification_uri_complete")
        .map(Ok)
        .unwrap_or_else(|| field("verification_uri"))?;
    let mut interval = body
        .get("interval")
        .and_then(Value::as_u64)
        .unwrap_or(5)
        .max(1);
    let expires_in = body
        .get("expires_in")
        .and_then(Value::as_u64)
        .unwrap_or(600);
    printer.note("To sign in, open this URL on any device and confirm the code:")?;
    printer.note(&format!("  {verification}"))?;
    printer.note(&format!("  code: {user_code}"))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(expires_in);
    loop {
        if std::time::Instant::now() >= deadline {
            return Err(failed(
                "the code expired before it was confirmed; try again",
            ));
        }
        tokio::time::sleep(Duration::from_secs(interval)).await;
        let (status, body) = token_request(
            &provider.token_endpoint,
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", &device_code),
                ("client_id", &provider.client_id),
            ],
        )
        .await?;
        match text(&body, "error").as_deref() {
            Some("authorization_pending") => continue,
            Some("slow_down") => interval += 5,
            _ => return tokens_of(status, &body).map_err(failed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_callback_query_decodes() {
        let query = query_of("/callback?code=a%2Fb&state=x+y&iss=http%3A%2F%2Fidp");
        assert_eq!(
            query,
            vec![
                ("code".to_string(), "a/b".to_string()),
                ("state".to_string(), "x y".to_string()),
                ("iss".to_string(), "http://idp".to_string()),
            ]
        );
        assert!(query_of("/callback").is_empty());
    }

    #[test]
    fn token_answers_read_as_tokens_or_the_reason() {
        let ok = serde_json::json!({"id_token": "a.b.c", "refresh_token": "r"});
        let tokens = tokens_of(200, &ok).unwrap();
        assert_eq!(tokens.id_token, "a.b.c");
        assert_eq!(tokens.refresh_token.as_deref(), Some("r"));
        let refused = serde_json::json!({"error": "invalid_grant", "error_description": "gone"});
        assert_eq!(tokens_of(400, &refused).unwrap_err(), "invalid_grant: gone");
        assert!(tokens_of(200, &serde_json::json!({})).is_err());
    }
}
