//! `push`'s sign-on as the original artifact CLI had it (2023 on):
//! `--idp-url`, `--client-id`, `--client-secret` and `--artifact-scope`
//! get an access token by the client-credentials grant (RFC 6749 §4.4),
//! which `push` then sends as its bearer token; the server verifies it as
//! an identity token of a trusted issuer, and its access rules decide.
//!
//! The original's semantics, kept: the same flags, the token endpoint
//! `<idp-url>/v1/token` (where the discovery document does not name one),
//! the scope `release_artifact` unless told, and the client's credentials
//! sent in an HTTP Basic header first and, if the provider refuses that,
//! as form fields (golang.org/x/oauth2's auto-detection). It owns the
//! flags, their checks and the grant; the HTTP is `cli_support`'s. The
//! secret is never printed: not in errors, not in a debug print.

use clap::Args;
use cli_support::{ClientAuth, IdpAnswer};

/// The scope the original asked for when `--artifact-scope` was not given.
pub(crate) const DEFAULT_SCOPE: &str = "release_artifact";

/// Where the original found the token endpoint below `--idp-url` (an Okta
/// authorization server's), used when the provider publishes no discovery
/// document.
const ORIGINAL_TOKEN_PATH: &str = "/v1/token";

const HEADING: &str = "Client credentials (instead of --auth-token)";

/// A client secret: shown as `***` in debug prints.
#[derive(Clone)]
pub(crate) struct ClientSecret(String);

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

fn parse_secret(text: &str) -> Result<ClientSecret, String> {
    if text.is_empty() {
        return Err("the client secret is empty".to_owned());
    }
    Ok(ClientSecret(text.to_owned()))
}

/// The original CLI's sign-on flags.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct ClientCredentialsArgs {
    /// The identity provider: an issuer whose discovery document names
    /// the token endpoint, else an authorization server whose token
    /// endpoint is <URL>/v1/token (as the original had it). With
    /// --client-id and --client-secret, push gets an access token by the
    /// client-credentials grant and sends it instead of --auth-token.
    #[arg(long, env = "ARTIFACT_IDP_URL", value_name = "URL", help_heading = HEADING)]
    pub(crate) idp_url: Option<String>,

    /// The pipeline's client id at the identity provider.
    #[arg(long, env = "ARTIFACT_CLIENT_ID", value_name = "ID", help_heading = HEADING)]
    pub(crate) client_id: Option<String>,

    /// The pipeline's client secret (prefer the variable: a flag's value
    /// is visible to other processes of the machine).
    #[arg(
        long,
        env = "ARTIFACT_CLIENT_SECRET",
        hide_env_values = true,
        value_name = "SECRET",
        value_parser = parse_secret,
        help_heading = HEADING
    )]
    pub(crate) client_secret: Option<ClientSecret>,

    /// The scope to ask for; '' asks for none [default: release_artifact,
    /// the original's].
    #[arg(long, env = "ARTIFACT_SCOPE", value_name = "SCOPE", help_heading = HEADING)]
    pub(crate) artifact_scope: Option<String>,
}

/// A pipeline's credentials at its identity provider, checked complete.
#[derive(Debug, Clone)]
pub(crate) struct ClientCredentials {
    pub(crate) idp_url: String,
    pub(crate) client_id: String,
    secret: ClientSecret,
    /// Empty: no scope asked for.
    pub(crate) scope: String,
}

impl ClientCredentialsArgs {
    /// The credentials, if any were given; the usage error when some are
    /// missing or they come with a static token (`auth_token_given`).
    pub(crate) fn resolve(
        &self,
        auth_token_given: bool,
    ) -> Result<Option<ClientCredentials>, String> {
        let given: Vec<&str> = [
            ("--idp-url", self.idp_url.is_some()),
            ("--client-id", self.client_id.is_some()),
            ("--client-secret", self.client_secret.is_some()),
            ("--artifact-scope", self.artifact_scope.is_some()),
        ]
        .iter()
        .filter(|(_, given)| *given)
        .map(|(name, _)| *name)
        .collect();
        let (Some(idp_url), Some(client_id), Some(secret)) = (
            self.idp_url.clone(),
            self.client_id.clone(),
            self.client_secret.clone(),
        ) else {
            if given.is_empty() {
                return Ok(None);
            }
            let missing: Vec<&str> = [
                ("--idp-url (ARTIFACT_IDP_URL)", self.idp_url.is_none()),
                ("--client-id (ARTIFACT_CLIENT_ID)", self.client_id.is_none()),
                (
                    "--client-secret (ARTIFACT_CLIENT_SECRET)",
                    self.client_secret.is_none(),
                ),
            ]
            .iter()
            .filter(|(_, missing)| *missing)
            .map(|(name, _)| *name)
            .collect();
            return Err(format!(
                "{} given without {}: the client-credentials grant needs --idp-url, \
                 --client-id and --client-secret",
                given.join(", "),
                missing.join(" and ")
            ));
        };
        if auth_token_given {
            return Err(
                "--auth-token (ARTIFACT_AUTH_TOKEN) and client credentials (--idp-url, \
                 --client-id, --client-secret) are both given: pass one way of signing on"
                    .to_owned(),
            );
        }
        let idp_url = idp_url.trim_end_matches('/').to_owned();
        if !(idp_url.starts_with("https://") || idp_url.starts_with("http://")) {
            return Err(format!(
                "--idp-url {idp_url:?} is not an http:// or https:// URL"
            ));
        }
        Ok(Some(ClientCredentials {
            idp_url,
            client_id,
            secret,
            scope: self
                .artifact_scope
                .clone()
                .unwrap_or_else(|| DEFAULT_SCOPE.to_owned()),
        }))
    }
}

/// Why no token came.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct TokenError(String);

/// The token endpoint below `idp_url`: the one its discovery document
/// names, else the original's `<idp-url>/v1/token` when there is no
/// discovery document.
pub(crate) async fn token_endpoint(idp_url: &str) -> Result<String, TokenError> {
    let answer = cli_support::discovery_document(idp_url)
        .await
        .map_err(|e| TokenError(e.0))?;
    match answer.status {
        200 => answer.text("token_endpoint").ok_or_else(|| {
            TokenError(format!(
                "the discovery document at {} names no token_endpoint",
                cli_support::discovery_url(idp_url)
            ))
        }),
        404 => Ok(format!("{idp_url}{ORIGINAL_TOKEN_PATH}")),
        status => Err(TokenError(format!(
            "the identity provider's discovery document at {} answered HTTP {status}",
            cli_support::discovery_url(idp_url)
        ))),
    }
}

/// An access token for `credentials`, by the client-credentials grant.
pub(crate) async fn access_token(credentials: &ClientCredentials) -> Result<String, TokenError> {
    let endpoint = token_endpoint(&credentials.idp_url).await?;
    let mut form = vec![("grant_type", "client_credentials")];
    if !credentials.scope.is_empty() {
        form.push(("scope", credentials.scope.as_str()));
    }
    let (id, secret) = (
        credentials.client_id.as_str(),
        credentials.secret.0.as_str(),
    );
    let ask = |client| {
        let (endpoint, form) = (&endpoint, &form);
        async move {
            cli_support::post_form(endpoint, form, client, "the token endpoint")
                .await
                .map_err(|e| TokenError(e.0))
        }
    };
    let basic = ask(ClientAuth::Basic { id, secret }).await?;
    let answer = if basic.refusal().is_none() {
        basic
    } else {
        // A provider that takes the credentials only as form fields
        // (client_secret_post) refuses the header; the original tried both.
        // When both are refused, the reason worth telling is the one that
        // got past the client's authentication, else the last (as the
        // original's).
        let post = ask(ClientAuth::Post { id, secret }).await?;
        if client_refused(&post) && !client_refused(&basic) {
            basic
        } else {
            post
        }
    };
    if let Some(refusal) = answer.refusal() {
        let hint = match answer.text("error").as_deref() {
            Some("invalid_client" | "unauthorized_client") => {
                " (check --client-id and --client-secret)"
            }
            Some("invalid_scope") => " (check --artifact-scope)",
            _ => "",
        };
        return Err(TokenError(format!(
            "the identity provider refused client {id:?} at {endpoint}: {refusal}{hint}"
        )));
    }
    answer.text("access_token").ok_or_else(|| {
        TokenError(format!(
            "the token endpoint {endpoint} answered without an access_token"
        ))
    })
}

/// Whether the provider refused the client itself (its id, its secret or
/// the way they were sent), not what it asked for.
fn client_refused(answer: &IdpAnswer) -> bool {
    answer.refusal().is_some()
        && matches!(
            answer.text("error").as_deref(),
            Some("invalid_client") | None
        )
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn args(idp: Option<&str>, id: Option<&str>, secret: Option<&str>) -> ClientCredentialsArgs {
        ClientCredentialsArgs {
            idp_url: idp.map(str::to_owned),
            client_id: id.map(str::to_owned),
            client_secret: secret.map(|s| ClientSecret(s.to_owned())),
            artifact_scope: None,
        }
    }

    #[test]
    fn all_three_or_none() {
        assert!(args(None, None, None).resolve(true).unwrap().is_none());
        let complete = args(Some("https://idp.example.com/"), Some("ci"), Some("s3cret"))
            .resolve(false)
            .unwrap()
            .unwrap();
        assert_eq!(complete.idp_url, "https://idp.example.com");
        assert_eq!(complete.scope, DEFAULT_SCOPE, "the original's default");
        let error = args(Some("https://idp.example.com"), Some("ci"), None)
            .resolve(false)
            .unwrap_err();
        assert!(
            error.starts_with("--idp-url, --client-id given without --client-secret"),
            "{error}"
        );
        let error = args(Some("https://idp.example.com"), Some("ci"), Some("s3cret"))
            .resolve(true)
            .unwrap_err();
        assert!(error.contains("both given"), "{error}");
        let error = args(Some("idp.example.com"), Some("ci"), Some("s3cret"))
            .resolve(false)
            .unwrap_err();
        assert!(error.contains("not an http:// or https:// URL"), "{error}");
    }

    #[test]
    fn the_secret_is_never_shown() {
        let credentials = args(Some("https://idp"), Some("ci"), Some("hunter2"))
            .resolve(false)
            .unwrap()
            .unwrap();
        let shown = format!("{credentials:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    /// A provider without a discovery document that, like the original's
    /// Okta, serves its token endpoint at `/v1/token` and takes the
    /// credentials as form fields only. It records the requests it got.
    async fn form_only_provider() -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                // The head, then as much body as Content-Length says.
                loop {
                    let n = stream.read(&mut buffer).await.unwrap_or(0);
                    request.extend_from_slice(&buffer[..n]);
                    let text = String::from_utf8_lossy(&request).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .to_lowercase()
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:").map(str::to_owned))
                            .and_then(|l| l.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if body.len() >= length {
                            break;
                        }
                    }
                    if n == 0 {
                        break;
                    }
                }
                let text = String::from_utf8_lossy(&request).to_string();
                log.lock().unwrap().push(text.clone());
                let (status, body) = if !text.starts_with("POST /v1/token ") {
                    ("404 Not Found", "{}".to_owned())
                } else if text.to_lowercase().contains("authorization: basic") {
                    (
                        "401 Unauthorized",
                        r#"{"error":"invalid_client","error_description":"use client_secret_post"}"#
                            .to_owned(),
                    )
                } else if text.contains("client_secret=right%2Bsecret") {
                    (
                        "200 OK",
                        r#"{"access_token":"the-token","token_type":"Bearer"}"#.to_owned(),
                    )
                } else {
                    (
                        "401 Unauthorized",
                        r#"{"error":"invalid_client","error_description":"client authentication failed"}"#
                            .to_owned(),
                    )
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
        });
        (url, seen)
    }

    fn credentials(idp: &str, secret: &str) -> ClientCredentials {
        args(Some(idp), Some("ci"), Some(secret))
            .resolve(false)
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn without_discovery_the_original_s_token_path_and_form_fields_are_used() {
        let (idp, seen) = form_only_provider().await;
        let token = access_token(&credentials(&idp, "right+secret"))
            .await
            .unwrap();
        assert_eq!(token, "the-token");
        let seen = seen.lock().unwrap().clone();
        assert!(
            seen[0].starts_with("GET /.well-known/openid-configuration "),
            "{seen:?}"
        );
        let posts: Vec<&String> = seen.iter().filter(|r| r.starts_with("POST")).collect();
        assert_eq!(posts.len(), 2, "Basic first, then form fields: {seen:?}");
        assert!(posts[0].to_lowercase().contains("authorization: basic"));
        assert!(
            posts[1].contains("grant_type=client_credentials")
                && posts[1].contains("scope=release_artifact")
                && posts[1].contains("client_id=ci"),
            "{}",
            posts[1]
        );
    }

    #[tokio::test]
    async fn a_wrong_secret_is_refused_without_showing_it() {
        let (idp, _) = form_only_provider().await;
        let error = access_token(&credentials(&idp, "wrong-secret"))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("refused client \"ci\"")
                && error.contains("invalid_client: client authentication failed")
                && error.contains("check --client-id and --client-secret"),
            "{error}"
        );
        assert!(!error.contains("wrong-secret"), "{error}");
    }
}
