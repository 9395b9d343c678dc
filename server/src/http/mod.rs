//! The HTTP listener beside gRPC (the dashboard's routes are merged in by
//! `lib`): `POST /webhook/github` and
//! `POST /webhook/gitlab` (push webhooks that make the server fetch at once,
//! so builds CI pushed straight to the config repository are auto-released
//! without waiting for the next poll) and `GET /metrics` (Prometheus text).
//! A GitHub webhook must carry a valid `X-Hub-Signature-256`, a GitLab one
//! the secret in `X-Gitlab-Token`; anything else is refused with 401 and
//! triggers nothing.

pub(crate) mod dashboard;
pub(crate) mod deployment_hooks;
mod errors;

pub(crate) use errors::status_of;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::engine::writer::{WriterHandle, WriterStats};

/// What the handlers need.
#[derive(Clone)]
pub(crate) struct HttpState {
    /// Refused and denied calls, counted in the metrics.
    pub(crate) gate: Arc<crate::auth::Gatekeeper>,
    /// To ask for a fetch.
    pub(crate) writer: WriterHandle,
    /// Writer counters for metrics.
    pub(crate) stats: Arc<WriterStats>,
    /// The webhook secret; without one every webhook is refused.
    pub(crate) webhook_secret: Option<Arc<String>>,
    /// Deployment reports, counted in the metrics.
    pub(crate) deployments: Arc<crate::deployments::Deployments>,
    /// Notification deliveries, when notifications are on.
    pub(crate) notifications: Option<Arc<crate::notify::deliver::Stats>>,
}

/// The routes.
pub(crate) fn router(state: HttpState) -> Router {
    Router::new()
        .route("/webhook/github", post(github_webhook))
        .route("/webhook/gitlab", post(gitlab_webhook))
        .route("/metrics", get(metrics))
        // The original release manager's liveness and readiness probe.
        .route("/ping", get(|| async { "pong" }))
        .with_state(state)
}

/// The bearer token of an HTTP request (the dashboard, the deployment
/// routes), read as the gRPC edge reads its metadata.
pub(crate) fn http_bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::auth::bearer_token)
}

/// Whether `signature` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under
/// `secret`. Compared in constant time.
pub(crate) fn signature_valid(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let Some(hex_digest) = signature.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_digest.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

async fn github_webhook(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let Some(secret) = &state.webhook_secret else {
        return (
            StatusCode::UNAUTHORIZED,
            "no webhook secret is configured on this server\n",
        );
    };
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !signature_valid(secret.as_bytes(), &body, signature) {
        tracing::warn!("webhook refused: missing or wrong X-Hub-Signature-256");
        return (
            StatusCode::UNAUTHORIZED,
            "missing or wrong X-Hub-Signature-256\n",
        );
    }
    let event = headers
        .get("x-github-event")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("push");
    match event {
        "ping" => (StatusCode::OK, "pong\n"),
        "push" => match state.writer.request_sync(Vec::new()) {
            Ok(()) => (StatusCode::ACCEPTED, "fetching\n"),
            Err(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "busy; the next poll will fetch\n",
            ),
        },
        _ => (StatusCode::OK, "ignored\n"),
    }
}

/// GitLab sends the secret itself in `X-Gitlab-Token`; compared in
/// constant time.
async fn gitlab_webhook(
    State(state): State<HttpState>,
    headers: HeaderMap,
) -> (StatusCode, &'static str) {
    use subtle::ConstantTimeEq;
    let Some(secret) = &state.webhook_secret else {
        return (
            StatusCode::UNAUTHORIZED,
            "no webhook secret is configured on this server\n",
        );
    };
    let token = headers
        .get("x-gitlab-token")
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !bool::from(token.ct_eq(secret.as_bytes())) {
        tracing::warn!("webhook refused: missing or wrong X-Gitlab-Token");
        return (
            StatusCode::UNAUTHORIZED,
            "missing or wrong X-Gitlab-Token\n",
        );
    }
    match state.writer.request_sync(Vec::new()) {
        Ok(()) => (StatusCode::ACCEPTED, "fetching\n"),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "busy; the next poll will fetch\n",
        ),
    }
}

async fn metrics(State(state): State<HttpState>) -> String {
    let s = &state.stats;
    let mut text = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        text.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        ));
    };
    metric(
        "release_manager_batches_total",
        "counter",
        "Batches pushed by the writer.",
        s.batches.load(Relaxed),
    );
    metric(
        "release_manager_commits_total",
        "counter",
        "Commits pushed by the writer.",
        s.commits.load(Relaxed),
    );
    metric(
        "release_manager_push_conflicts_total",
        "counter",
        "Pushes rejected because the remote moved.",
        s.conflicts.load(Relaxed),
    );
    metric(
        "release_manager_largest_batch",
        "gauge",
        "Most commits pushed at once.",
        s.largest_batch.load(Relaxed),
    );
    metric(
        "release_manager_queue_depth",
        "gauge",
        "Writes waiting for the writer.",
        state.writer.queue_depth() as u64,
    );
    metric(
        "release_manager_push_micros_total",
        "counter",
        "Microseconds spent in successful pushes (divide by batches for the mean).",
        s.push_micros.load(Relaxed),
    );
    text.push_str("# HELP release_manager_releases_total Releases answered, by environment and outcome.\n# TYPE release_manager_releases_total counter\n");
    for ((environment, outcome), count) in
        s.releases.lock().expect("stats lock not poisoned").iter()
    {
        text.push_str(&format!(
            "release_manager_releases_total{{environment=\"{environment}\",outcome=\"{outcome}\"}} {count}\n"
        ));
    }
    text.push_str("# HELP release_manager_deployment_reports_total Deployment reports taken, by state.\n# TYPE release_manager_deployment_reports_total counter\n");
    for (deployment_state, count) in state.deployments.counts() {
        text.push_str(&format!(
            "release_manager_deployment_reports_total{{state=\"{deployment_state}\"}} {count}\n"
        ));
    }
    {
        let refusals = state.gate.refusals();
        text.push_str("# HELP release_manager_auth_refused_total Calls refused for want of a valid credential, by reason.\n# TYPE release_manager_auth_refused_total counter\n");
        for (reason, count) in &refusals.unauthenticated {
            text.push_str(&format!(
                "release_manager_auth_refused_total{{reason=\"{reason}\"}} {count}\n"
            ));
        }
        text.push_str("# HELP release_manager_access_denied_total Calls of verified identities that no access rule allows, by action and environment.\n# TYPE release_manager_access_denied_total counter\n");
        for ((action, environment), count) in &refusals.denied {
            text.push_str(&format!(
                "release_manager_access_denied_total{{action=\"{action}\",environment=\"{environment}\"}} {count}\n"
            ));
        }
    }
    if let Some(notifications) = &state.notifications {
        text.push_str("# HELP release_manager_notifications_total Notification attempts by destination and outcome (delivered, failed, gave_up).\n# TYPE release_manager_notifications_total counter\n");
        for (destination, outcome, count) in notifications.outcomes() {
            text.push_str(&format!(
                "release_manager_notifications_total{{destination=\"{destination}\",outcome=\"{outcome}\"}} {count}\n"
            ));
        }
        text.push_str("# HELP release_manager_notifications_pending Events a destination has not acknowledged yet.\n# TYPE release_manager_notifications_pending gauge\n");
        for (destination, count) in notifications.pending() {
            text.push_str(&format!(
                "release_manager_notifications_pending{{destination=\"{destination}\"}} {count}\n"
            ));
        }
        text.push_str("# HELP release_manager_notifications_sender Whether this replica sends the notifications (holds the notification lease).\n# TYPE release_manager_notifications_sender gauge\n");
        text.push_str(&format!(
            "release_manager_notifications_sender {}\n",
            u8::from(notifications.sending())
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_signatures() {
        // The example from GitHub's documentation on validating deliveries.
        let secret = b"It's a Secret to Everybody";
        let body = b"Hello, World!";
        let signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(signature_valid(secret, body, signature));
        assert!(!signature_valid(b"wrong", body, signature));
        assert!(!signature_valid(secret, b"Hello, World?", signature));
        assert!(!signature_valid(secret, body, "sha1=757107ea"));
        assert!(!signature_valid(secret, body, ""));
        assert!(!signature_valid(secret, body, "sha256=zz"));
    }
}
