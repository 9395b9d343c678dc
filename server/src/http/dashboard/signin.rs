//! Signing in to the dashboard, and what every page of it sends.
//!
//! - `GET /login`: the form (the hamctl token) and, where the server trusts
//!   an identity provider, a link to sign in there. `POST /login` checks the
//!   token; each client address gets a few attempts and then waits (429).
//! - `GET /login/sso` and `/login/callback`: the authorization code flow
//!   with PKCE and a nonce, as hamctl's, against the first trusted issuer
//!   with the public client id; the ID token is verified like any other.
//! - A sign-in opens a session held by the server (`sessions`): the cookie
//!   is its random id only (HttpOnly, SameSite=Strict, `Secure` when the
//!   request came over HTTPS through a proxy that says so); `POST /logout`
//!   deletes the session, so the cookie works no more.
//! - Every sign-in returns to the page that asked for it (`next`, a path on
//!   this server only).
//! - Every dashboard response carries a Content-Security-Policy with
//!   `frame-ancestors 'none'` (and the same in `X-Frame-Options`).

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use release_manager::names::percent_encode;
use sha2::{Digest, Sha256};

use super::pages;
use super::sessions::{random_id, Attempt, Viewer, SESSION_LIFETIME};
use super::DashboardState;
use crate::auth::Role;

const COOKIE: &str = "rm_dashboard";

/// The policy every page is sent with: nothing but this server's own
/// script and stylesheet, and no framing by anyone.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

/// Adds the security headers to every dashboard response.
pub(crate) async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// Whether nobody can read this server's state (no hamctl token, no
/// identity provider, not `--unauthenticated`).
pub(crate) fn closed(state: &DashboardState) -> bool {
    let auth = state.gate.auth();
    !auth.role_open(Role::Operator)
        && auth.tokens(Role::Operator).next().is_none()
        && state.gate.issuers().is_none()
}

/// Who is asking: anyone on an open server, else the bearer of an
/// `Authorization` header the API would accept for a read, else the
/// session of the cookie.
pub(crate) async fn viewer(state: &DashboardState, headers: &HeaderMap) -> Option<Viewer> {
    if state.gate.auth().role_open(Role::Operator) {
        return Some(Viewer::Open);
    }
    if closed(state) {
        return None;
    }
    if let Some(authorization) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        return match state
            .gate
            .authenticate(Some(authorization), Role::Operator)
            .await
            .ok()?
        {
            crate::auth::Identity::Person(person) => Some(Viewer::Person {
                name: person.name().to_string(),
                email: person.email(),
            }),
            _ => Some(Viewer::Token),
        };
    }
    state.sessions.get(session_id(headers)?)
}

fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(k, v)| (k == COOKIE).then_some(v))
}

/// A page to return to after signing in: a path on this server, nothing
/// else (no scheme, no `//host`, no backslash tricks).
pub(crate) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && path.len() <= 2000
                && !path.chars().any(char::is_control)
                && !path.starts_with("/login")
                && !path.starts_with("/logout") =>
        {
            path.to_string()
        }
        _ => "/".to_string(),
    }
}

/// Where a page request that needs a sign-in is sent: the form, knowing
/// where to come back to.
pub(crate) fn to_sign_in(path_and_query: &str) -> Response {
    let next = safe_next(Some(path_and_query));
    if next == "/" {
        return Redirect::to("/login").into_response();
    }
    Redirect::to(&format!("/login?next={}", percent_encode(&next))).into_response()
}

/// Whether the request came over HTTPS, as a proxy in front says
/// (`X-Forwarded-Proto`, or `Forwarded: proto=https`).
fn over_https(headers: &HeaderMap) -> bool {
    let said = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase)
    };
    said("x-forwarded-proto").is_some_and(|p| p.split(',').next().map(str::trim) == Some("https"))
        || said("forwarded")
            .is_some_and(|f| f.split([';', ',']).any(|part| part.trim() == "proto=https"))
}

fn cookie(headers: &HeaderMap, value: &str, max_age: u64) -> String {
    let secure = if over_https(headers) { "; Secure" } else { "" };
    format!("{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}")
}

/// Opens a session for `viewer` and returns to `next`.
fn signed_in(state: &DashboardState, headers: &HeaderMap, viewer: Viewer, next: &str) -> Response {
    let id = state.sessions.open(viewer);
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                cookie(headers, &id, SESSION_LIFETIME.as_secs()),
            ),
            (header::LOCATION, next.to_string()),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
    )
        .into_response()
}

fn sso_available(state: &DashboardState) -> bool {
    state.gate.issuers().is_some() && state.gate.auth().oidc.client_id.is_some()
}

fn login_page(
    state: &DashboardState,
    status: StatusCode,
    problem: Option<&str>,
    next: &str,
) -> Response {
    let token_form = state.gate.auth().tokens(Role::Operator).next().is_some();
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Html(pages::login(problem, next, token_form, sso_available(state)).into_string()),
    )
        .into_response()
}

/// `GET /login`.
pub(crate) async fn login_form(
    State(state): State<DashboardState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let next = safe_next(query.get("next").map(String::as_str));
    if state.gate.auth().role_open(Role::Operator) {
        return Redirect::to(&next).into_response();
    }
    if closed(&state) {
        return super::closed_page();
    }
    login_page(&state, StatusCode::OK, None, &next)
}

/// `POST /login`: the hamctl token from the form.
pub(crate) async fn login(
    State(state): State<DashboardState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let next = safe_next(form_field(&body, "next").as_deref());
    if let Err(wait) = state.limit.take(peer.ip()) {
        tracing::warn!(client = %peer.ip(), "dashboard sign-in refused: too many attempts");
        let mut response = login_page(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            Some("Too many attempts from this address: wait a little and try again."),
            &next,
        );
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(wait.as_secs().max(1)),
        );
        return response;
    }
    let presented = form_field(&body, "token").unwrap_or_default();
    if presented.is_empty()
        || !state
            .gate
            .auth()
            .static_token_matches(&presented, Role::Operator)
    {
        tracing::warn!(client = %peer.ip(), "dashboard sign-in refused: not the hamctl token");
        return login_page(
            &state,
            StatusCode::UNAUTHORIZED,
            Some("That is not the hamctl token."),
            &next,
        );
    }
    signed_in(&state, &headers, Viewer::Token, &next)
}

/// `GET /login/sso`: off to the identity provider.
pub(crate) async fn single_sign_on(
    State(state): State<DashboardState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let next = safe_next(query.get("next").map(String::as_str));
    let (Some(issuers), Some(client_id)) = (
        state.gate.issuers(),
        state.gate.auth().oidc.client_id.clone(),
    ) else {
        return Redirect::to("/login").into_response();
    };
    let endpoints = match issuers.sign_in_endpoints().await {
        Ok(endpoints) => endpoints,
        Err(e) => {
            tracing::warn!(error = %e, "dashboard single sign-on unavailable");
            return login_page(
                &state,
                StatusCode::BAD_GATEWAY,
                Some("The identity provider cannot be reached; try again shortly."),
                &next,
            );
        }
    };
    let Some(host) = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
    else {
        return (StatusCode::BAD_REQUEST, "no usable Host header\n").into_response();
    };
    let scheme = if over_https(&headers) {
        "https"
    } else {
        "http"
    };
    let verifier = random_id();
    let attempt = Attempt {
        nonce: random_id(),
        redirect_uri: format!("{scheme}://{host}/login/callback"),
        next,
        verifier: verifier.clone(),
    };
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let query = [
        ("response_type", "code"),
        ("client_id", client_id.as_str()),
        ("redirect_uri", attempt.redirect_uri.as_str()),
        ("scope", "openid profile email groups"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("nonce", attempt.nonce.as_str()),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={}", percent_encode(v)))
    .collect::<Vec<_>>()
    .join("&");
    let state_id = state.attempts.start(attempt);
    let separator = if endpoints.authorization.contains('?') {
        '&'
    } else {
        '?'
    };
    Redirect::to(&format!(
        "{}{separator}{query}&state={state_id}",
        endpoints.authorization
    ))
    .into_response()
}

/// `GET /login/callback`: the provider sent the browser back with a code.
pub(crate) async fn callback(
    State(state): State<DashboardState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let refused = |why: &str| {
        tracing::warn!(why, "dashboard single sign-on refused");
        login_page(
            &state,
            StatusCode::UNAUTHORIZED,
            Some("The sign-in did not complete; try again."),
            "/",
        )
    };
    let Some(attempt) = query.get("state").and_then(|s| state.attempts.finish(s)) else {
        return refused("unknown or used state");
    };
    let Some(code) = query.get("code") else {
        return refused(query.get("error").map(String::as_str).unwrap_or("no code"));
    };
    let (Some(issuers), Some(client_id)) = (
        state.gate.issuers(),
        state.gate.auth().oidc.client_id.as_deref(),
    ) else {
        return refused("single sign-on is not configured");
    };
    let person = match issuers
        .exchange_code(client_id, code, &attempt.redirect_uri, &attempt.verifier)
        .await
    {
        Ok(id_token) => match issuers.verify(&id_token).await {
            Ok(person) => person,
            Err(e) => return refused(&e.to_string()),
        },
        Err(e) => return refused(&e.to_string()),
    };
    if person.claims.get("nonce").and_then(|n| n.as_str()) != Some(attempt.nonce.as_str()) {
        return refused("the ID token's nonce is not this sign-in's");
    }
    tracing::info!(who = %person.describe(), "signed in to the dashboard");
    let viewer = Viewer::Person {
        name: person.name().to_string(),
        email: person.email(),
    };
    signed_in(&state, &headers, viewer, &attempt.next)
}

/// `POST /logout`: the session ends on the server, and the cookie goes.
pub(crate) async fn logout(State(state): State<DashboardState>, headers: HeaderMap) -> Response {
    if let Some(id) = session_id(&headers) {
        state.sessions.revoke(id);
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie(&headers, "", 0)),
            (header::LOCATION, "/login".to_string()),
        ],
    )
        .into_response()
}

/// `GET /session`: who is signed in, for the page header (JSON).
pub(crate) async fn session(State(state): State<DashboardState>, headers: HeaderMap) -> Response {
    let body = match viewer(&state, &headers).await {
        None => serde_json::json!({"signed_in": false}),
        Some(Viewer::Open) => serde_json::json!({"signed_in": false, "open": true}),
        Some(Viewer::Token) => {
            serde_json::json!({"signed_in": true, "name": "hamctl token", "email": ""})
        }
        Some(Viewer::Person { name, email }) => {
            serde_json::json!({"signed_in": true, "name": name, "email": email})
        }
    };
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// The header's sign-in script.
pub(crate) async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("signin.js"),
    )
        .into_response()
}

/// Field `name` of a form body (`application/x-www-form-urlencoded`).
fn form_field(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| percent_decode(value))
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode() {
        assert_eq!(
            form_field(b"token=a%2Bb%20c+d", "token").as_deref(),
            Some("a+b c d")
        );
        assert_eq!(form_field(b"x=1&token=t", "token").as_deref(), Some("t"));
        assert_eq!(form_field(b"x=1", "token"), None);
        assert_eq!(form_field(b"token=%zz%", "token").as_deref(), Some("%zz%"));
        assert_eq!(
            percent_decode(&percent_encode("/service/a b?x=1&y")),
            "/service/a b?x=1&y"
        );
    }

    #[test]
    fn only_local_paths_are_returned_to() {
        assert_eq!(safe_next(Some("/service/x?page=2")), "/service/x?page=2");
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "service/x",
            "/login?next=/x",
            "/a\nb",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn the_cookie_is_secure_behind_a_proxy_that_says_https() {
        let mut headers = HeaderMap::new();
        assert!(!cookie(&headers, "id", 1).contains("Secure"));
        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        assert!(cookie(&headers, "id", 1).ends_with("; Secure"));
        let mut forwarded = HeaderMap::new();
        forwarded.insert("forwarded", "for=1.2.3.4;proto=https".parse().unwrap());
        assert!(over_https(&forwarded));
        let c = cookie(&HeaderMap::new(), "abc", 60);
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Max-Age=60")
        );
    }

    #[test]
    fn the_cookie_is_read_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            format!("a=b; {COOKIE}=xyz; c=d").parse().unwrap(),
        );
        assert_eq!(session_id(&headers), Some("xyz"));
        assert_eq!(session_id(&HeaderMap::new()), None);
    }
}
