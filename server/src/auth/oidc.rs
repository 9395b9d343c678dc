//! The OpenID Connect issuers the server trusts: each one's discovery
//! document and published keys (JWKS), fetched when first needed, cached,
//! and fetched again when a token names a key the cache does not hold (the
//! issuer rotated its keys) — at most once per [`REFETCH_AFTER`], so that
//! tokens with made-up key ids cannot make the server hammer the issuer.
//!
//! [`Issuers::verify`] turns a bearer token into a verified [`Person`]:
//! signature by the issuer's key, then `iss`, `aud`, `exp` and `nbf` with a
//! small clock leeway (`jwt`). It owns no access decision.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use super::jwt::{self, Key, TokenError};

/// Shortest time between two fetches of one issuer's keys.
const REFETCH_AFTER: Duration = Duration::from_secs(2);
/// Longest wait for an issuer's answer.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// An issuer the server trusts, and the audience its tokens must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedIssuer {
    /// The issuer's URL, exactly as its tokens' `iss` says.
    pub url: String,
    /// What the tokens' `aud` must contain (a client id, or the audience a
    /// CI job asks for).
    pub audience: String,
}

/// How the server checks identity tokens.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// The trusted issuers; the first one is where people sign in.
    pub issuers: Vec<TrustedIssuer>,
    /// The public client hamctl and the dashboard sign in with.
    pub client_id: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
}

impl Default for OidcSettings {
    fn default() -> Self {
        OidcSettings {
            issuers: Vec::new(),
            client_id: None,
            leeway: Duration::from_secs(60),
        }
    }
}

/// What a sign-in needs of an issuer's discovery document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoints {
    /// Where a browser signs in (authorization code flow).
    pub(crate) authorization: String,
    /// Where codes and refresh tokens become tokens.
    pub(crate) token: String,
    /// Where the keys are published.
    jwks_uri: String,
}

/// A person (or a pipeline) whose token verified.
#[derive(Debug, Clone)]
pub(crate) struct Person {
    /// The issuer that vouches for them.
    pub(crate) issuer: String,
    /// `sub`.
    pub(crate) subject: String,
    /// Every claim of the token.
    pub(crate) claims: Map<String, Value>,
}

impl Person {
    fn text(&self, name: &str) -> Option<&str> {
        self.claims
            .get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    /// Their name: `name`, else `preferred_username`, else the subject.
    pub(crate) fn name(&self) -> &str {
        self.text("name")
            .or_else(|| self.text("preferred_username"))
            .unwrap_or(&self.subject)
    }

    /// Their email: `email`, else `<subject>@<issuer's host>`, so that git
    /// always records an address that names them.
    pub(crate) fn email(&self) -> String {
        if let Some(email) = self.text("email") {
            return email.to_string();
        }
        let host = self
            .issuer
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split(['/', ':']).next())
            .filter(|h| !h.is_empty())
            .unwrap_or("oidc");
        let local: String = self
            .subject
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-+".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        format!("{local}@{host}")
    }

    /// How logs name them: email, subject and issuer.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} (sub {:?} of {})",
            self.email(),
            self.subject,
            self.issuer
        )
    }
}

/// A response body read as JSON (reqwest's own `json` is a feature this
/// crate does not turn on).
trait JsonBody {
    async fn json_body(self) -> Result<Value, String>;
}

impl JsonBody for reqwest::Response {
    async fn json_body(self) -> Result<Value, String> {
        let bytes = self.bytes().await.map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|_| "the answer is not JSON".to_string())
    }
}

struct Cache {
    endpoints: Option<Endpoints>,
    keys: Vec<Key>,
    fetched: Option<Instant>,
    /// Why the last fetch failed, while it is the last word.
    failure: Option<TokenError>,
}

struct Issuer {
    trusted: TrustedIssuer,
    cache: tokio::sync::Mutex<Cache>,
}

/// The trusted issuers and their cached keys.
pub(crate) struct Issuers {
    issuers: Vec<Issuer>,
    leeway: i64,
    http: reqwest::Client,
}

/// An issuer URL without the trailing slash some issuers write.
fn trimmed(url: &str) -> &str {
    url.strip_suffix('/').unwrap_or(url)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Issuers {
    /// The issuers of `settings`; `None` when there are none.
    pub(crate) fn new(settings: &OidcSettings) -> Option<Issuers> {
        if settings.issuers.is_empty() {
            return None;
        }
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .expect("an HTTP client with default TLS settings builds");
        Some(Issuers {
            issuers: settings
                .issuers
                .iter()
                .map(|trusted| Issuer {
                    trusted: trusted.clone(),
                    cache: tokio::sync::Mutex::new(Cache {
                        endpoints: None,
                        keys: Vec::new(),
                        fetched: None,
                        failure: None,
                    }),
                })
                .collect(),
            leeway: settings.leeway.as_secs() as i64,
            http,
        })
    }

    fn issuer(&self, url: &str) -> Option<&Issuer> {
        self.issuers
            .iter()
            .find(|i| trimmed(&i.trusted.url) == trimmed(url))
    }

    /// The issuer people sign in with (the first one).
    pub(crate) fn sign_in_issuer(&self) -> &TrustedIssuer {
        &self.issuers[0].trusted
    }

    async fn get_json(&self, url: &str) -> Result<Value, TokenError> {
        let unavailable = |why: String| TokenError::IssuerUnavailable(why);
        let response = self
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| unavailable(format!("GET {url}: {}", crate::domain::chain(&e))))?;
        if !response.status().is_success() {
            return Err(unavailable(format!(
                "GET {url} answered {}",
                response.status()
            )));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| unavailable(format!("GET {url}: {e}")))?;
        serde_json::from_slice(&bytes)
            .map_err(|_| unavailable(format!("GET {url} did not answer JSON")))
    }

    /// Fetches the discovery document and the keys of `issuer` into its
    /// cache; a failure is remembered until the next fetch.
    async fn fetch(&self, issuer: &Issuer, cache: &mut Cache) -> Result<(), TokenError> {
        cache.fetched = Some(Instant::now());
        let fetched = self.fetch_into(issuer, cache).await;
        cache.failure = fetched.as_ref().err().cloned();
        fetched
    }

    async fn fetch_into(&self, issuer: &Issuer, cache: &mut Cache) -> Result<(), TokenError> {
        let url = trimmed(&issuer.trusted.url);
        let discovery = self
            .get_json(&format!("{url}/.well-known/openid-configuration"))
            .await?;
        let text = |name: &str| {
            discovery
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| {
                    TokenError::IssuerUnavailable(format!("its discovery document has no {name}"))
                })
        };
        let said = text("issuer")?;
        if trimmed(&said) != url {
            return Err(TokenError::IssuerUnavailable(format!(
                "its discovery document names another issuer, {said:?}"
            )));
        }
        let endpoints = Endpoints {
            authorization: text("authorization_endpoint")?,
            token: text("token_endpoint")?,
            jwks_uri: text("jwks_uri")?,
        };
        let jwks = self.get_json(&endpoints.jwks_uri).await?;
        cache.keys = Key::from_jwks(&jwks);
        cache.endpoints = Some(endpoints);
        tracing::info!(issuer = %url, keys = cache.keys.len(), "identity provider's keys fetched");
        Ok(())
    }

    /// The sign-in endpoints of the first issuer.
    pub(crate) async fn sign_in_endpoints(&self) -> Result<Endpoints, TokenError> {
        let issuer = &self.issuers[0];
        let mut cache = issuer.cache.lock().await;
        if cache.endpoints.is_none() {
            self.fetch(issuer, &mut cache).await?;
        }
        Ok(cache.endpoints.clone().expect("fetched above"))
    }

    /// Trades an authorization code for the sign-in issuer's tokens (a
    /// public client with PKCE, as the dashboard signs in): the ID token.
    pub(crate) async fn exchange_code(
        &self,
        client_id: &str,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<String, TokenError> {
        let endpoints = self.sign_in_endpoints().await?;
        let unavailable = |why: String| TokenError::IssuerUnavailable(why);
        let response = self
            .http
            .post(&endpoints.token)
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("client_id", client_id),
                ("code_verifier", verifier),
            ])
            .send()
            .await
            .map_err(|e| {
                unavailable(format!("the token endpoint: {}", crate::domain::chain(&e)))
            })?;
        let status = response.status();
        let body: Value = response
            .json_body()
            .await
            .map_err(|e| unavailable(format!("the token endpoint: {e}")))?;
        if !status.is_success() {
            let error = body.get("error").and_then(Value::as_str).unwrap_or("?");
            return Err(unavailable(format!(
                "the token endpoint refused the code ({status}, {error})"
            )));
        }
        body.get("id_token")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| unavailable("the token endpoint sent no ID token".into()))
    }

    /// Verifies `token`: which issuer, its key, the signature, then the
    /// claims. The error names the check that failed.
    pub(crate) async fn verify(&self, token: &str) -> Result<Person, TokenError> {
        let unverified = jwt::split(token)?;
        unverified.algorithm()?;
        let iss = unverified
            .issuer()
            .ok_or(TokenError::Malformed("it has no issuer (iss)"))?;
        let issuer = self
            .issuer(iss)
            .ok_or_else(|| TokenError::UntrustedIssuer(iss.to_string()))?;
        let key = {
            let mut cache = issuer.cache.lock().await;
            if unverified.key_in(&cache.keys).is_none()
                && cache.fetched.is_none_or(|at| at.elapsed() >= REFETCH_AFTER)
            {
                self.fetch(issuer, &mut cache).await?;
            }
            match (unverified.key_in(&cache.keys), &cache.failure) {
                (Some(key), _) => key.clone(),
                // The keys could not be fetched a moment ago: that is why.
                (None, Some(failure)) => return Err(failure.clone()),
                (None, None) => {
                    return Err(TokenError::UnknownKey(
                        unverified.kid.clone().unwrap_or_default(),
                    ))
                }
            }
        };
        unverified.verify_signature(&key)?;
        unverified.check_claims(now(), self.leeway, &issuer.trusted.audience)?;
        let subject = unverified
            .claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(TokenError::Malformed("it has no subject (sub)"))?
            .to_string();
        Ok(Person {
            issuer: issuer.trusted.url.clone(),
            subject,
            claims: unverified.claims,
        })
    }

    /// Fetches every issuer's keys now, so that the first call does not
    /// wait for them; failures are logged and tried again on first use.
    pub(crate) async fn warm(&self) {
        for issuer in &self.issuers {
            let mut cache = issuer.cache.lock().await;
            if let Err(e) = self.fetch(issuer, &mut cache).await {
                tracing::warn!(issuer = %issuer.trusted.url, error = %e, "identity provider not reachable yet");
            }
        }
    }

    /// Each trusted issuer and its audience, for logs.
    pub(crate) fn describe(&self) -> HashMap<String, String> {
        self.issuers
            .iter()
            .map(|i| (i.trusted.url.clone(), i.trusted.audience.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(claims: Value) -> Person {
        Person {
            issuer: "https://idp.example.com/realms/x".into(),
            subject: "u/1".into(),
            claims: claims.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn a_person_is_named_by_their_claims() {
        let full = person(serde_json::json!({"name": "Dana", "email": "dana@example.com"}));
        assert_eq!(
            (full.name(), full.email().as_str()),
            ("Dana", "dana@example.com")
        );
        let bare = person(serde_json::json!({"preferred_username": "dana"}));
        assert_eq!(bare.name(), "dana");
        assert_eq!(bare.email(), "u-1@idp.example.com");
        let nothing = person(serde_json::json!({"name": " "}));
        assert_eq!(nothing.name(), "u/1");
    }

    #[test]
    fn issuers_compare_without_a_trailing_slash() {
        let issuers = Issuers::new(&OidcSettings {
            issuers: vec![TrustedIssuer {
                url: "https://idp/".into(),
                audience: "a".into(),
            }],
            ..OidcSettings::default()
        })
        .unwrap();
        assert!(issuers.issuer("https://idp").is_some());
        assert!(issuers.issuer("https://idp/").is_some());
        assert!(issuers.issuer("https://idp2").is_none());
        assert!(Issuers::new(&OidcSettings::default()).is_none());
    }
}
