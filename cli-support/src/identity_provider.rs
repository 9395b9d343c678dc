//! Talking to an identity provider (OAuth 2.0, OpenID Connect) over HTTP:
//! its discovery document, form posts to its endpoints (the token
//! endpoint above all, with or without client authentication) and the
//! wording of its refusals.
//!
//! Both CLIs get tokens here: hamctl as a person (`hamctl login`: the code
//! and device flows, refreshes) and artifact as a CI client (the
//! client-credentials grant of `push`). It owns the HTTP and the
//! protocol's common parts only; which flow, and what a token is used
//! for, is each CLI's. It must never put a client secret or a token in a
//! message: errors name the endpoint and the provider's own answer.

use std::time::Duration;

pub use release_manager::names::percent_encode;
use serde_json::Value;

use crate::wording::one_line;

/// Longest wait for one answer of the provider.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the provider could not be asked, or its answer not read; the text
/// names the endpoint, never what was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IdpError(pub String);

/// One answer of the provider: its HTTP status and its JSON body.
#[derive(Debug, Clone)]
pub struct IdpAnswer {
    pub status: u16,
    pub body: Value,
}

impl IdpAnswer {
    /// A text field of the body.
    pub fn text(&self, name: &str) -> Option<String> {
        self.body
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    /// Why the provider refused, as RFC 6749 §5.2 has it said
    /// (`invalid_client: client authentication failed`), or its HTTP
    /// status when it gave no reason; `None` when it did not refuse.
    pub fn refusal(&self) -> Option<String> {
        if (200..300).contains(&self.status) {
            return None;
        }
        let error = self
            .text("error")
            .unwrap_or_else(|| format!("HTTP {}", self.status));
        let description = self
            .text("error_description")
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        Some(one_line(&format!("{error}{description}")))
    }
}

/// How a confidential client proves who it is at the token endpoint
/// (RFC 6749 §2.3.1).
#[derive(Clone, Copy)]
pub enum ClientAuth<'a> {
    /// A public client: its id is in the form, there is no secret.
    None,
    /// `client_secret_basic`: the id and secret, form-encoded, in an HTTP
    /// Basic `Authorization` header.
    Basic { id: &'a str, secret: &'a str },
    /// `client_secret_post`: the id and secret as form fields.
    Post { id: &'a str, secret: &'a str },
}

impl std::fmt::Debug for ClientAuth<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret is never shown, not even in a debug print.
        match self {
            ClientAuth::None => f.write_str("None"),
            ClientAuth::Basic { id, .. } => write!(f, "Basic {{ id: {id:?}, secret: *** }}"),
            ClientAuth::Post { id, .. } => write!(f, "Post {{ id: {id:?}, secret: *** }}"),
        }
    }
}

fn http() -> Result<reqwest::Client, IdpError> {
    reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .build()
        .map_err(|e| IdpError(format!("cannot make an HTTP client: {e}")))
}

/// The answer of a request, read as JSON; `what` names the endpoint in
/// errors.
async fn read_answer(response: reqwest::Response, what: &str) -> Result<IdpAnswer, IdpError> {
    let status = response.status().as_u16();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| IdpError(format!("{what}: {}", crate::error_chain(&e))))?;
    let body = serde_json::from_slice(&bytes)
        .map_err(|_| IdpError(format!("{what} did not answer JSON (HTTP {status})")))?;
    Ok(IdpAnswer { status, body })
}

/// Where an issuer publishes its discovery document (OpenID Connect
/// Discovery §4).
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// The issuer's discovery document, whatever its status: the caller
/// decides what a missing one means.
pub async fn discovery_document(issuer: &str) -> Result<IdpAnswer, IdpError> {
    let url = discovery_url(issuer);
    let response = http()?.get(&url).send().await.map_err(|e| {
        IdpError(format!(
            "cannot reach the identity provider at {url}: {}",
            crate::error_chain(&e)
        ))
    })?;
    let status = response.status().as_u16();
    if status == 404 {
        // Not every provider publishes one; no body is worth reading.
        return Ok(IdpAnswer {
            status,
            body: Value::Null,
        });
    }
    read_answer(response, "the identity provider's discovery document").await
}

/// Posts `form` to `endpoint` (a token or device authorization endpoint)
/// as `client`, and reads its JSON answer; `what` names the endpoint in
/// errors.
pub async fn post_form(
    endpoint: &str,
    form: &[(&str, &str)],
    client: ClientAuth<'_>,
    what: &str,
) -> Result<IdpAnswer, IdpError> {
    let mut fields: Vec<(&str, &str)> = form.to_vec();
    let mut request = http()?.post(endpoint);
    match client {
        ClientAuth::None => {}
        ClientAuth::Basic { id, secret } => {
            // RFC 6749 §2.3.1: each part form-encoded before Basic.
            request = request.basic_auth(percent_encode(id), Some(percent_encode(secret)));
        }
        ClientAuth::Post { id, secret } => {
            fields.push(("client_id", id));
            fields.push(("client_secret", secret));
        }
    }
    let response = request.form(&fields).send().await.map_err(|e| {
        IdpError(format!(
            "cannot reach {what} {endpoint}: {}",
            crate::error_chain(&e)
        ))
    })?;
    read_answer(response, what).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_read_as_the_provider_says_them() {
        let answer = |status, body| IdpAnswer { status, body };
        assert_eq!(
            answer(
                401,
                serde_json::json!({"error": "invalid_client", "error_description": "client authentication failed"})
            )
            .refusal()
            .as_deref(),
            Some("invalid_client: client authentication failed")
        );
        assert_eq!(
            answer(502, Value::Null).refusal().as_deref(),
            Some("HTTP 502")
        );
        assert_eq!(
            answer(400, serde_json::json!({"error": "bad\nline"}))
                .refusal()
                .as_deref(),
            Some("bad line"),
            "nothing the provider says can break the one-line contract"
        );
        assert_eq!(
            answer(200, serde_json::json!({"access_token": "t"})).refusal(),
            None
        );
    }

    #[test]
    fn credentials_are_encoded_and_never_shown() {
        assert_eq!(percent_encode("a b/c+d~"), "a%20b%2Fc%2Bd~");
        let shown = format!(
            "{:?} {:?}",
            ClientAuth::Basic {
                id: "ci",
                secret: "hunter2"
            },
            ClientAuth::Post {
                id: "ci",
                secret: "hunter2"
            }
        );
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn the_discovery_document_is_below_the_issuer() {
        assert_eq!(
            discovery_url("https://idp.example.com/oauth2/default/"),
            "https://idp.example.com/oauth2/default/.well-known/openid-configuration"
        );
    }
}
