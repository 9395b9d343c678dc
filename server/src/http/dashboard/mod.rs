//! The web dashboard, on the HTTP listener beside `/metrics` and the
//! webhooks: `/` is the matrix of every service against every environment,
//! `/service/<name>` one service's state, releases, builds and policies,
//! `/service/<name>/compare?from=<env>&to=<env>` what separates two of its
//! environments (`compare`). The matrix counts states per environment and
//! filters by state (`glance`); values are exact and copyable (`values`).
//! Pages are rendered on the server (`pages`); a small script and
//! stylesheet are embedded in the binary. The page stays live through
//! Server-Sent Events (`/events`, fed by the writer's event broadcast): an
//! event names the service whose row (or page) the script fetches again.
//!
//! Access follows the read rule of the API. A server that needs no hamctl
//! token serves the dashboard to anyone; otherwise a person signs in
//! (`signin`: the hamctl token, or the identity provider) and gets a
//! session held by the server, or sends an `Authorization: Bearer` header
//! the API would accept. Without it no page or event carries anything of
//! the repository. There are no write actions here.

pub(crate) mod compare;
pub(crate) mod glance;
pub(crate) mod model;
pub(crate) mod pages;
mod sessions;
mod signin;
pub(crate) mod values;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::domain::FlowError;
use crate::engine::events::{EventBus, Signal, What};
use crate::engine::reads::Reader;
use crate::repo::index::View;

/// What the dashboard's handlers share.
#[derive(Clone)]
pub(crate) struct DashboardState {
    reader: Arc<Reader>,
    events: EventBus,
    /// Who may read, as the API decides it.
    gate: Arc<crate::auth::Gatekeeper>,
    /// Signed-in sessions.
    sessions: Arc<sessions::Sessions>,
    /// Single sign-on attempts under way.
    attempts: Arc<sessions::Attempts>,
    /// Sign-in attempts per client address.
    limit: Arc<sessions::SignInLimit>,
    models: Arc<model::Models>,
    deployments: Arc<crate::deployments::Deployments>,
    /// How to link a config repository commit, when configured.
    commit_links: Option<Arc<values::CommitLinks>>,
}

impl DashboardState {
    /// The dashboard over `reader`, live with `events`.
    pub(crate) fn new(
        reader: Arc<Reader>,
        events: EventBus,
        gate: Arc<crate::auth::Gatekeeper>,
        deployments: Arc<crate::deployments::Deployments>,
    ) -> Self {
        DashboardState {
            deployments,
            reader,
            events,
            gate,
            sessions: Arc::new(sessions::Sessions::new()),
            attempts: Arc::new(sessions::Attempts::new()),
            limit: Arc::new(sessions::SignInLimit::new()),
            models: Arc::new(model::Models::default()),
            commit_links: None,
        }
    }

    /// Links releases to their config repository commits
    /// (`--config-repo-web-url`).
    pub(crate) fn with_commit_links(mut self, links: Option<values::CommitLinks>) -> Self {
        self.commit_links = links.map(Arc::new);
        self
    }

    /// What renderers need besides the data, as of now.
    fn context(&self) -> values::Context<'_> {
        values::Context {
            now: now(),
            commit_links: self.commit_links.as_deref(),
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
        .route("/service/{service}/compare", get(compare::page))
        .route("/fragment/compare/{service}", get(compare::fragment))
        .route("/fragment/rows", get(rows_fragment))
        .route("/fragment/row/{service}", get(row_fragment))
        .route("/fragment/service/{service}", get(service_fragment))
        .route("/events", get(events))
        .route("/login", get(signin::login_form).post(signin::login))
        .route("/login/sso", get(signin::single_sign_on))
        .route("/login/callback", get(signin::callback))
        .route("/logout", axum::routing::post(signin::logout))
        .route("/session", get(signin::session))
        .route("/static/dashboard.css", get(stylesheet))
        .route("/static/dashboard.js", get(script))
        .route("/static/signin.js", get(signin::script))
        .with_state(state)
        // Every answer, pages and refusals alike, forbids framing.
        .layer(axum::middleware::from_fn(signin::security_headers))
        // Pages and fragments gzipped for browsers that take it (all do);
        // the event stream is left as it is (the default predicate skips
        // text/event-stream, which must not be buffered).
        .layer(tower_http::compression::CompressionLayer::new())
}

/// The page of a server nobody can read.
fn closed_page() -> Response {
    (
        StatusCode::FORBIDDEN,
        Html(
            pages::unavailable(
                "This server was started without --hamctl-auth-token, an identity provider or --unauthenticated: nothing can read its state.",
            )
            .into_string(),
        ),
    )
        .into_response()
}

/// Whether the request may see the repository's state; if not, what it
/// gets: the sign-in form (returning to `uri`) for a page, 401 for a
/// fragment or the event stream.
async fn admitted(
    state: &DashboardState,
    headers: &HeaderMap,
    page: Option<&Uri>,
) -> Result<(), Response> {
    if signin::viewer(state, headers).await.is_some() {
        return Ok(());
    }
    Err(match page {
        _ if signin::closed(state) => closed_page(),
        Some(uri) => signin::to_sign_in(
            uri.path_and_query()
                .map(|p| p.as_str())
                .unwrap_or_else(|| uri.path()),
        ),
        None => (StatusCode::UNAUTHORIZED, "sign in at /login\n").into_response(),
    })
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// HTML that must not be cached (it changes with every release).
pub(crate) fn fresh(html: String) -> Response {
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

pub(crate) fn failed(e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "dashboard page failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "the dashboard could not read the repository; the server log says why\n",
    )
        .into_response()
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
        matrix.map(|matrix| glance::with_deployments(matrix, &deployments))
    })
    .await
    .map_err(failed)?
    .map_err(|e| read_failure(e, false))
}

async fn matrix_page(
    State(state): State<DashboardState>,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = admitted(&state, &headers, Some(&uri)).await {
        return refused;
    }
    match read_matrix(&state, None).await {
        Ok(matrix) => {
            let began = Instant::now();
            let filter = glance::Filter::from_query(&query, &matrix.environments);
            let glance = glance::of(&matrix, &state.deployments);
            let html = pages::matrix(&matrix, &glance, &filter, &state.context()).into_string();
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
    if let Err(refused) = admitted(&state, &headers, None).await {
        return refused;
    }
    match read_matrix(&state, None).await {
        Ok(matrix) => {
            fresh(pages::rows(&matrix, &glance::Filter::default(), &state.context()).into_string())
        }
        Err(response) => response,
    }
}

async fn row_fragment(
    State(state): State<DashboardState>,
    Path(service): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = admitted(&state, &headers, None).await {
        return refused;
    }
    match read_matrix(&state, Some(service)).await {
        Ok(matrix) => match matrix.rows.first() {
            Some(row) => fresh(pages::row(&matrix, row, false, &state.context()).into_string()),
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
                    glance::join_deployments(&mut page.row, &page.environments, &deployments);
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
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    service_view(&state, service, &query, &headers, Some(&uri)).await
}

async fn service_fragment(
    State(state): State<DashboardState>,
    Path(service): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    service_view(&state, service, &query, &headers, None).await
}

/// A service's page (`whole`), or the sections the script swaps in.
async fn service_view(
    state: &DashboardState,
    service: String,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    whole: Option<&Uri>,
) -> Response {
    if let Err(refused) = admitted(state, headers, whole).await {
        return refused;
    }
    let whole = whole.is_some();
    let page = page_number(query);
    match read_service(state, service, page).await {
        Ok(data) if whole => fresh(pages::service(&data, page, &state.context()).into_string()),
        Ok(data) => fresh(pages::service_sections(&data, page, &state.context()).into_string()),
        Err(response) => response,
    }
}

/// The event stream: a `change` event (JSON `service`, `environment`,
/// `kind`) for every published event, a `resync` when this stream fell
/// behind (the page then fetches everything again).
async fn events(State(state): State<DashboardState>, headers: HeaderMap) -> Response {
    if let Err(refused) = admitted(&state, &headers, None).await {
        return refused;
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
