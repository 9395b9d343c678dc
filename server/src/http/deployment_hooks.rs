//! The deployment routes of the HTTP listener, where GitOps controllers
//! say what they applied: `POST /webhook/flux` (events of Flux's
//! notification-controller, `generic` or `generic-hmac` provider),
//! `POST /webhook/argocd` (Argo CD notifications, with the body template
//! docs/controllers.md gives) and `POST /webhook/deployment` (plain JSON). Each is
//! turned into a [`Report`] for `deployments`.
//!
//! Every route needs `--deployment-webhook-secret`: the body's HMAC-SHA256
//! in `X-Signature: sha256=<hex>` (Flux's `generic-hmac`) or the secret
//! itself as `Authorization: Bearer <secret>` (a header Flux's `generic`
//! provider and Argo CD can send). Without the secret configured, or
//! without one of the two, a request gets 401 and changes nothing.
//!
//! Which Flux Kustomization or Argo CD Application deploys which
//! environment: `--deployment-sources dev=flux-system/dev,...`; an object
//! not listed whose name is an environment's is that environment.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;

use crate::deployments::{Deployments, Report, State as Deployed};

/// Which controller object deploys which environment: `<namespace>/<name>`
/// → environment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sources(HashMap<String, String>);

impl Sources {
    /// Parses `dev=flux-system/dev,prod=argocd/prod-apps`.
    pub fn parse(text: &str) -> Result<Sources, String> {
        let mut sources = HashMap::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (environment, object) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} is not <environment>=<namespace>/<name>"))?;
            let (namespace, name) = object
                .trim()
                .split_once('/')
                .filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains('/'))
                .ok_or_else(|| format!("{object:?} in {pair:?} is not <namespace>/<name>"))?;
            sources.insert(
                format!("{namespace}/{name}"),
                environment.trim().to_string(),
            );
        }
        Ok(Sources(sources))
    }

    /// The environment `namespace/name` deploys, if the flag names it, or
    /// if its name is an environment's.
    fn environment(&self, namespace: &str, name: &str, environments: &[String]) -> Option<String> {
        self.0
            .get(&format!("{namespace}/{name}"))
            .cloned()
            .or_else(|| environments.iter().find(|e| *e == name).cloned())
    }
}

/// What the deployment routes share.
#[derive(Clone)]
pub(crate) struct HookState {
    /// The secret; without one every request is refused.
    pub(crate) secret: Option<Arc<String>>,
    /// The controllers' objects by environment.
    pub(crate) sources: Arc<Sources>,
    /// Where reports go.
    pub(crate) deployments: Arc<Deployments>,
    /// The configured environments.
    pub(crate) environments: Arc<Vec<String>>,
}

/// The routes.
pub(crate) fn router(state: HookState) -> Router {
    Router::new()
        .route("/webhook/flux", post(flux))
        .route("/webhook/argocd", post(argocd))
        .route("/webhook/deployment", post(generic))
        .with_state(state)
}

fn answer(status: StatusCode, text: impl Into<String>) -> Response {
    let mut text = text.into();
    text.push('\n');
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

/// Whether the request carries the secret (as a signature or a bearer).
fn authorised(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    if let Some(signature) = headers.get("x-signature").and_then(|v| v.to_str().ok()) {
        return crate::http::signature_valid(secret.as_bytes(), body, signature.trim());
    }
    crate::http::http_bearer(headers)
        .is_some_and(|presented| crate::auth::same_secret(presented, secret))
}

/// Checks the secret, parses the body with `read` and takes the report.
async fn take(
    state: HookState,
    route: &'static str,
    headers: HeaderMap,
    body: Bytes,
    read: impl FnOnce(&HookState, &[u8]) -> Result<Option<Report>, String>,
) -> Response {
    let Some(secret) = &state.secret else {
        return answer(
            StatusCode::UNAUTHORIZED,
            "no --deployment-webhook-secret is configured on this server",
        );
    };
    if !authorised(secret, &headers, &body) {
        tracing::warn!(
            route,
            "deployment report refused: missing or wrong X-Signature or bearer secret"
        );
        return answer(
            StatusCode::UNAUTHORIZED,
            "missing or wrong X-Signature (sha256=<HMAC-SHA256 of the body>) or Authorization: Bearer <secret>",
        );
    }
    let report = match read(&state, &body) {
        Ok(Some(report)) => report,
        Ok(None) => {
            return answer(
                StatusCode::ACCEPTED,
                "ignored: not a deployment of a known environment",
            )
        }
        Err(problem) => {
            tracing::warn!(route, %problem, "deployment report refused");
            return answer(StatusCode::UNPROCESSABLE_ENTITY, problem);
        }
    };
    match state.deployments.report(report).await {
        Ok(covered) => answer(
            StatusCode::OK,
            format!("{} release(s) covered", covered.len()),
        ),
        Err(e) => {
            // A report that cannot be taken as it was sent is 422 whatever
            // the reason; anything else is the server's, and worth a retry.
            let status = match crate::http::status_of(&e) {
                StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND | StatusCode::CONFLICT => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                status => status,
            };
            tracing::warn!(route, error = %e, "deployment report not taken");
            answer(status, e.to_string())
        }
    }
}

/// An event of Flux's notification-controller (the fields used).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FluxEvent {
    involved_object: FluxObject,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    metadata: HashMap<String, String>,
}

#[derive(Deserialize)]
struct FluxObject {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    name: String,
}

fn read_flux(state: &HookState, body: &[u8]) -> Result<Option<Report>, String> {
    let event: FluxEvent =
        serde_json::from_slice(body).map_err(|e| format!("not a Flux event: {e}"))?;
    let object = &event.involved_object;
    // Source fetches and the like say nothing about what was applied.
    // A HelmRelease's revision is a chart version, not a config commit.
    if object.kind != "Kustomization" {
        return Ok(None);
    }
    let Some(revision) = event
        .metadata
        .iter()
        .find(|(key, _)| *key == "revision" || key.ends_with("/revision"))
        .map(|(_, value)| value.clone())
    else {
        return Ok(None);
    };
    let Some(environment) =
        state
            .sources
            .environment(&object.namespace, &object.name, &state.environments)
    else {
        return Err(format!(
            "{} {}/{} deploys no known environment: name it in --deployment-sources (<env>={}/{})",
            object.kind, object.namespace, object.name, object.namespace, object.name
        ));
    };
    // Only a success says it is applied and healthy: other info events
    // (DependencyNotReady, ArtifactFailed retries, ...) say nothing final.
    let state = if event.severity.eq_ignore_ascii_case("error") {
        Deployed::Failed
    } else if event.reason.contains("Progressing") {
        Deployed::Progressing
    } else if event.reason.ends_with("Succeeded") {
        Deployed::Succeeded
    } else {
        return Ok(None);
    };
    Ok(Some(Report {
        environment,
        revision,
        state,
        message: event.message,
        source: format!("flux:{}/{}", object.namespace, object.name),
    }))
}

/// The body of the Argo CD notification template docs/controllers.md gives.
#[derive(Deserialize)]
struct ArgoEvent {
    application: String,
    #[serde(default)]
    namespace: String,
    revision: String,
    #[serde(default)]
    sync: String,
    #[serde(default)]
    health: String,
    #[serde(default)]
    phase: String,
    #[serde(default)]
    message: String,
}

fn read_argocd(state: &HookState, body: &[u8]) -> Result<Option<Report>, String> {
    let event: ArgoEvent = serde_json::from_slice(body)
        .map_err(|e| format!("not the Argo CD notification body docs/controllers.md gives: {e}"))?;
    let Some(environment) =
        state
            .sources
            .environment(&event.namespace, &event.application, &state.environments)
    else {
        return Err(format!(
            "Application {}/{} deploys no known environment: name it in --deployment-sources (<env>={}/{})",
            event.namespace, event.application, event.namespace, event.application
        ));
    };
    let state = if matches!(event.phase.as_str(), "Failed" | "Error")
        || matches!(event.health.as_str(), "Degraded" | "Missing")
    {
        Deployed::Failed
    } else if event.health == "Healthy" && event.sync == "Synced" {
        Deployed::Succeeded
    } else {
        Deployed::Progressing
    };
    let mut message = event.message;
    if message.is_empty() {
        message = format!("sync {}, health {}", event.sync, event.health);
    }
    Ok(Some(Report {
        environment,
        revision: event.revision,
        state,
        message,
        source: format!("argocd:{}/{}", event.namespace, event.application),
    }))
}

/// A plain report.
#[derive(Deserialize)]
struct GenericEvent {
    environment: String,
    revision: String,
    state: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    source: String,
}

fn read_generic(_: &HookState, body: &[u8]) -> Result<Option<Report>, String> {
    let event: GenericEvent = serde_json::from_slice(body).map_err(|e| {
        format!("not a deployment report ({{\"environment\", \"revision\", \"state\", \"message\"}}): {e}")
    })?;
    let state = Deployed::parse(&event.state).ok_or_else(|| {
        format!(
            "state {:?} is none of progressing, deployed, failed",
            event.state
        )
    })?;
    Ok(Some(Report {
        environment: event.environment,
        revision: event.revision,
        state,
        message: event.message,
        source: event.source,
    }))
}

async fn flux(State(state): State<HookState>, headers: HeaderMap, body: Bytes) -> Response {
    take(state, "flux", headers, body, read_flux).await
}

async fn argocd(State(state): State<HookState>, headers: HeaderMap, body: Bytes) -> Response {
    take(state, "argocd", headers, body, read_argocd).await
}

async fn generic(State(state): State<HookState>, headers: HeaderMap, body: Bytes) -> Response {
    take(state, "deployment", headers, body, read_generic).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_and_fall_back_to_names() {
        let sources = Sources::parse("dev=flux-system/dev-apps, prod=argocd/prod").unwrap();
        let environments = vec!["dev".to_string(), "staging".to_string(), "prod".to_string()];
        assert_eq!(
            sources
                .environment("flux-system", "dev-apps", &environments)
                .as_deref(),
            Some("dev")
        );
        assert_eq!(
            sources
                .environment("argocd", "prod", &environments)
                .as_deref(),
            Some("prod")
        );
        assert_eq!(
            sources
                .environment("flux-system", "staging", &environments)
                .as_deref(),
            Some("staging")
        );
        assert_eq!(
            sources.environment("flux-system", "other", &environments),
            None
        );
        for bad in ["dev", "dev=apps", "dev=/x", "dev=a/b/c"] {
            assert!(Sources::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Sources::parse("").unwrap(), Sources::default());
    }

    #[test]
    fn secrets_as_signature_or_bearer() {
        let body = b"{}";
        let mut signed = HeaderMap::new();
        let mac = {
            use hmac::{Hmac, Mac};
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").unwrap();
            mac.update(body);
            hex::encode(mac.finalize().into_bytes())
        };
        signed.insert("x-signature", format!("sha256={mac}").parse().unwrap());
        assert!(authorised("s3cret", &signed, body));
        assert!(!authorised("other", &signed, body));
        let mut bearer = HeaderMap::new();
        bearer.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(authorised("s3cret", &bearer, body));
        assert!(!authorised("s3cre", &bearer, body));
        assert!(!authorised("s3cret", &HeaderMap::new(), body));
    }
}
