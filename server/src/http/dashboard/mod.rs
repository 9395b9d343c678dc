//! The web dashboard, on the HTTP listener beside `/metrics` and the
//! webhooks: `/` is the matrix of every service against every environment,
//! `/service/<name>` one service's state, releases, builds and policies.
//! Pages are rendered on the server (`pages`); a small script and
//! stylesheet are embedded in the binary. The page stays live through
//! Server-Sent Events (`/events`, fed by the writer's event broadcast): an
//! event names the service whose row (or page) the script fetches again.
//!
//! Access follows the read rule of the API. A server that needs no hamctl
//! token serves the dashboard to anyone; otherwise it takes the hamctl
//! token, from the sign-in form (kept as an HttpOnly, SameSite=Strict
//! cookie holding an HMAC of the token, never the token itself) or an
//! `Authorization: Bearer` header. Without it no page or event carries
//! anything of the repository. There are no write actions here.

pub(crate) mod model;
pub(crate) mod pages;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::domain::deployment::State as Deployed;
use crate::domain::FlowError;
use crate::engine::events::{EventBus, Signal, What};
use crate::engine::reads::Reader;
use crate::repo::index::View;

/// Who may see the dashboard.
#[derive(Debug, Clone)]
pub(crate) enum Access {
    /// Anyone (the server needs no hamctl token).
    Open,
    /// Whoever has the hamctl token.
    Token(String),
    /// Nobody: reads need a hamctl token this server was not given.
    Closed,
}

impl Access {
    /// The dashboard's access under the API's read rule.
    pub(crate) fn of(auth: &crate::auth::Auth) -> Self {
        match auth.hamctl_token.as_deref().filter(|t| !t.is_empty()) {
            Some(token) => Access::Token(token.to_string()),
            None if auth.unauthenticated => Access::Open,
            None => Access::Closed,
        }
    }
}

/// What the dashboard's handlers share.
#[derive(Clone)]
pub(crate) struct DashboardState {
    reader: Arc<Reader>,
    events: EventBus,
    access: Arc<Access>,
    models: Arc<model::Models>,
    deployments: Arc<crate::deployments::Deployments>,
}

impl DashboardState {
    /// The dashboard over `reader`, live with `events`.
    pub(crate) fn new(
        reader: Arc<Reader>,
        events: EventBus,
        access: Access,
        deployments: Arc<crate::deployments::Deployments>,
    ) -> Self {
        DashboardState {
            deployments,
            reader,
            events,
            access: Arc::new(access),
            models: Arc::new(model::Models::default()),
        }
    }
}

impl DashboardState {
    /// Reads the matrix once, so that the first page shown after a start
    /// is as quick as the next (the first read fetches every release
    /// folder's artifact.json; later ones only what changed).
    pub(crate) async fn warm(self) {
        let began = Instant::now();
        match read_matrix(&self, None).await {
            Ok(matrix) => tracing::debug!(
                services = matrix.rows.len(),
                elapsed_ms = began.elapsed().as_millis() as u64,
                "dashboard matrix warmed"
            ),
            Err(_) => tracing::debug!("dashboard matrix not warmed"),
        }
    }
}

/// The dashboard's routes.
pub(crate) fn router(state: DashboardState) -> Router {
    Router::new()
        .route("/", get(matrix_page))
        .route("/service/{service}", get(service_page))
        .route("/fragment/rows", get(rows_fragment))
        .route("/fragment/row/{service}", get(row_fragment))
        .route("/fragment/service/{service}", get(service_fragment))
        .route("/events", get(events))
        .route("/login", get(login_form).post(login))
        .route("/logout", axum::routing::post(logout))
        .route("/static/dashboard.css", get(stylesheet))
        .route("/static/dashboard.js", get(script))
        .with_state(state)
        // Pages and fragments gzipped for browsers that take it (all do);
        // the event stream is left as it is (the default predicate skips
        // text/event-stream, which must not be buffered).
        .layer(tower_http::compression::CompressionLayer::new())
}

const COOKIE: &str = "rm_dashboard";

/// The cookie value for `token`: an HMAC of it, so the browser never holds
/// the token itself.
fn session_value(token: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(token.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(b"release-manager dashboard session");
    hex::encode(mac.finalize().into_bytes())
}

/// Whether the request may see the repository's state.
fn allowed(access: &Access, headers: &HeaderMap) -> bool {
    let token = match access {
        Access::Open => return true,
        Access::Closed => return false,
        Access::Token(token) => token,
    };
    if crate::http::http_bearer(headers)
        .is_some_and(|presented| crate::auth::same_secret(presented, token))
    {
        return true;
    }
    let expected = session_value(token);
    cookies(headers)
        .get(COOKIE)
        .is_some_and(|value| crate::auth::same_secret(value, &expected))
}

fn cookies(headers: &HeaderMap) -> HashMap<String, String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What a request that may not see the state gets: the sign-in form for a
/// page, 401 for a fragment or the event stream.
fn refused(access: &Access, page: bool) -> Response {
    match (access, page) {
        (Access::Closed, _) => (
            StatusCode::FORBIDDEN,
            Html(
                pages::unavailable(
                    "This server was started without --hamctl-auth-token and not --unauthenticated: nothing can read its state.",
                )
                .into_string(),
            ),
        )
            .into_response(),
        (_, true) => Redirect::to("/login").into_response(),
        (_, false) => (StatusCode::UNAUTHORIZED, "sign in at /login\n").into_response(),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// HTML that must not be cached (it changes with every release).
fn fresh(html: String) -> Response {
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Html(html),
    )
        .into_response()
}

/// The answer to a read that failed, by the one HTTP mapping of errors:
/// an unknown or malformed service is "no such service" (a page when
/// `html`), anything else the server's failure.
fn read_failure(e: FlowError, html: bool) -> Response {
    let status = crate::http::status_of(&e);
    match status {
        StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND if html => (
            status,
            Html(pages::unavailable("No such service.").into_string()),
        )
            .into_response(),
        StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND => {
            (status, "no such service\n").into_response()
        }
        _ => failed(e),
    }
}

fn failed(e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "dashboard page failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "the dashboard could not read the repository; the server log says why\n",
    )
        .into_response()
}

/// Joins what the cluster reported to the cells of environments whose
/// controller reports.
fn with_deployments(
    mut matrix: model::Matrix,
    deployments: &crate::deployments::Deployments,
) -> model::Matrix {
    for row in &mut matrix.rows {
        join_deployments(row, &matrix.environments, deployments);
    }
    matrix.reconciliation_errors = matrix
        .environments
        .iter()
        .map(|environment| {
            deployments
                .errors_of(environment)
                .into_iter()
                .map(|error| (error.source, error.message))
                .collect()
        })
        .collect();
    matrix
}

fn join_deployments(
    row: &mut model::Row,
    environments: &[String],
    deployments: &crate::deployments::Deployments,
) {
    for (cell, environment) in row.cells.iter_mut().zip(environments) {
        if !cell.artifact_id.is_empty() && deployments.reporting(environment) {
            cell.deployment = Some(
                match deployments.of(environment, &row.service, &cell.release_commit) {
                    Some(deployment) => {
                        let word = match deployment.state {
                            Deployed::Succeeded => "deployed",
                            Deployed::Failed => "failed",
                            Deployed::Progressing => "progressing",
                        };
                        (word, deployment.message)
                    }
                    None => ("pending", String::new()),
                },
            );
        }
    }
}

async fn read_matrix(
    state: &DashboardState,
    only: Option<String>,
) -> Result<model::Matrix, Response> {
    let (reader, models) = (state.reader.clone(), state.models.clone());
    let deployments = state.deployments.clone();
    tokio::task::spawn_blocking(move || {
        let began = Instant::now();
        let matrix = reader.with_published(|repo, published, settings| {
            if let Some(service) = &only {
                release_manager::names::check_service(service)?;
            }
            models.matrix(
                repo,
                published.tip,
                View::published(&published.index),
                settings,
                only.as_deref(),
            )
        });
        tracing::debug!(
            elapsed_us = began.elapsed().as_micros() as u64,
            "dashboard matrix read"
        );
        matrix.map(|matrix| with_deployments(matrix, &deployments))
    })
    .await
    .map_err(failed)?
    .map_err(|e| read_failure(e, false))
}

async fn matrix_page(State(state): State<DashboardState>, headers: HeaderMap) -> Response {
    if !allowed(&state.access, &headers) {
        return refused(&state.access, true);
    }
    match read_matrix(&state, None).await {
        Ok(matrix) => {
            let began = Instant::now();
            let html = pages::matrix(&matrix, now()).into_string();
            tracing::debug!(
                elapsed_us = began.elapsed().as_micros() as u64,
                bytes = html.len(),
                "dashboard matrix rendered"
            );
            fresh(html)
        }
        Err(response) => response,
    }
}

async fn rows_fragment(State(state): State<DashboardState>, headers: HeaderMap) -> Response {
    if !allowed(&state.access, &headers) {
        return refused(&state.access, false);
    }
    match read_matrix(&state, None).await {
        Ok(matrix) => fresh(pages::rows(&matrix, now()).into_string()),
        Err(response) => response,
    }
}

async fn row_fragment(
    State(state): State<DashboardState>,
    Path(service): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !allowed(&state.access, &headers) {
        return refused(&state.access, false);
    }
    match read_matrix(&state, Some(service)).await {
        Ok(matrix) => match matrix.rows.first() {
            Some(row) => fresh(pages::row(row, now()).into_string()),
            None => (StatusCode::NOT_FOUND, "no such service\n").into_response(),
        },
        Err(response) => response,
    }
}

/// Releases per page of a service's history.
const HISTORY_PAGE: usize = 20;

async fn read_service(
    state: &DashboardState,
    service: String,
    page: usize,
) -> Result<model::ServicePage, Response> {
    let (reader, models) = (state.reader.clone(), state.models.clone());
    let deployments = state.deployments.clone();
    let policies_reader = reader.clone();
    let name = service.clone();
    let policies = tokio::task::spawn_blocking(move || {
        release_manager::names::check_service(&name)?;
        policies_reader.policies(&name)
    })
    .await
    .map_err(failed)?
    .map_err(|e| read_failure(e, false))?;
    tokio::task::spawn_blocking(move || {
        reader.with_published(|repo, published, settings| {
            let view = View::published(&published.index);
            let known = view.builds(&service).next().is_some()
                || settings
                    .environments
                    .iter()
                    .any(|e| view.releases(e, &service).next().is_some());
            if !known {
                return Err(FlowError::not_found(
                    crate::domain::Reason::ServiceNotFound,
                    "no such service",
                ));
            }
            models
                .service_page(
                    repo,
                    published.tip,
                    view,
                    settings,
                    &policies,
                    &service,
                    page,
                    HISTORY_PAGE,
                )
                .map(|mut page| {
                    join_deployments(&mut page.row, &page.environments, &deployments);
                    page
                })
        })
    })
    .await
    .map_err(failed)?
    .map_err(|e| read_failure(e, true))
}

fn page_number(query: &HashMap<String, String>) -> usize {
    query
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
        .min(100_000)
}

async fn service_page(
    State(state): State<DashboardState>,
    Path(service): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    service_view(&state, service, &query, &headers, true).await
}

async fn service_fragment(
    State(state): State<DashboardState>,
    Path(service): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    service_view(&state, service, &query, &headers, false).await
}

/// A service's page (`whole`), or the sections the script swaps in.
async fn service_view(
    state: &DashboardState,
    service: String,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    whole: bool,
) -> Response {
    if !allowed(&state.access, headers) {
        return refused(&state.access, whole);
    }
    let page = page_number(query);
    match read_service(state, service, page).await {
        Ok(data) if whole => fresh(pages::service(&data, page, now()).into_string()),
        Ok(data) => fresh(pages::service_sections(&data, page, now()).into_string()),
        Err(response) => response,
    }
}

/// The event stream: a `change` event (JSON `service`, `environment`,
/// `kind`) for every published event, a `resync` when this stream fell
/// behind (the page then fetches everything again).
async fn events(State(state): State<DashboardState>, headers: HeaderMap) -> Response {
    if !allowed(&state.access, &headers) {
        return refused(&state.access, false);
    }
    let receiver = state.events.subscribe();
    let stream = tokio_stream::wrappers::BroadcastStream::new(receiver);
    let stream = tokio_stream::StreamExt::map_while(stream, |item| {
        let event = match item {
            Err(_) => {
                return Some(Ok::<_, std::convert::Infallible>(
                    Event::default().event("resync").data("{}"),
                ))
            }
            // The server is stopping: end the stream so it can.
            Ok(Signal::Stop) => return None,
            Ok(Signal::Event(event)) => event,
        };
        let (kind, service, environment) = match &event.what {
            What::BuildAdded(b) => ("build", b.service.clone(), String::new()),
            What::Released(r) => ("release", r.service.clone(), r.environment.clone()),
            What::PolicyChanged { service, .. } => ("policy", service.clone(), String::new()),
            What::DeploymentReported(d) => ("deployment", d.service.clone(), d.environment.clone()),
            What::ReconciliationError(e) => ("environment", String::new(), e.environment.clone()),
        };
        let data =
            serde_json::json!({"kind": kind, "service": service, "environment": environment});
        Some(Ok(Event::default()
            .event("change")
            .id(event.cursor.clone())
            .data(data.to_string())))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

async fn login_form(State(state): State<DashboardState>) -> Response {
    match &*state.access {
        Access::Open => Redirect::to("/").into_response(),
        Access::Closed => refused(&state.access, true),
        Access::Token(_) => fresh(pages::login(false).into_string()),
    }
}

/// The `token` field of a form body (`application/x-www-form-urlencoded`).
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

async fn login(State(state): State<DashboardState>, body: Bytes) -> Response {
    let Access::Token(token) = &*state.access else {
        return Redirect::to("/").into_response();
    };
    let presented = form_field(&body, "token").unwrap_or_default();
    if !crate::auth::same_secret(&presented, token) {
        tracing::warn!("dashboard sign-in refused: not the hamctl token");
        return (
            StatusCode::UNAUTHORIZED,
            Html(pages::login(true).into_string()),
        )
            .into_response();
    }
    let cookie = format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age=2592000",
        session_value(token)
    );
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (header::LOCATION, "/".to_string()),
        ],
    )
        .into_response()
}

async fn logout() -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
            ),
            (header::LOCATION, "/login".to_string()),
        ],
    )
        .into_response()
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("dashboard.css"),
    )
        .into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("dashboard.js"),
    )
        .into_response()
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
    }

    #[test]
    fn a_session_is_the_tokens_hmac_and_nothing_else_passes() {
        let access = Access::Token("secret".into());
        let mut headers = HeaderMap::new();
        assert!(!allowed(&access, &headers));
        headers.insert(
            header::COOKIE,
            format!("a=b; {COOKIE}={}", session_value("secret"))
                .parse()
                .unwrap(),
        );
        assert!(allowed(&access, &headers));
        let mut wrong = HeaderMap::new();
        wrong.insert(
            header::COOKIE,
            format!("{COOKIE}={}", session_value("other"))
                .parse()
                .unwrap(),
        );
        assert!(!allowed(&access, &wrong));
        let mut bearer = HeaderMap::new();
        bearer.insert(header::AUTHORIZATION, "bearer secret".parse().unwrap());
        assert!(allowed(&access, &bearer));
        assert!(!session_value("secret").contains("secret"));
        assert!(allowed(&Access::Open, &HeaderMap::new()));
        assert!(!allowed(&Access::Closed, &bearer));
    }
}
