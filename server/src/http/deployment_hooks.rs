//! The deployment routes of the HTTP listener, where GitOps controllers
//! say what they applied: `POST /webhook/flux` (events of Flux's
//! notification-controller, `generic` or `generic-hmac` provider),
//! `POST /webhook/argocd` (Argo CD notifications, with the body template
//! docs/controllers.md gives) and `POST /webhook/deployment` (plain JSON).
//! Each is turned into a [`Report`] for `deployments`, saying what the
//! controller knows and about whom: one service, the whole environment, or
//! whatever its words name.
//!
//! Every route needs `--deployment-webhook-secret`: the body's HMAC-SHA256
//! in `X-Signature: sha256=<hex>` (Flux's `generic-hmac`) or the secret
//! itself as `Authorization: Bearer <secret>` (a header Flux's `generic`
//! provider and Argo CD can send). Without the secret configured, or
//! without one of the two, a request gets 401 and changes nothing.
//!
//! Which Flux Kustomization or Argo CD Application deploys which
//! environment: `--deployment-sources` ([`Sources`]), or the `env` (or
//! `environment`) metadata an Alert's `spec.eventMetadata` puts in every
//! Flux event. Events of Flux's own `flux-system` Kustomization, of objects
//! nothing maps, and events that say nothing of a rollout are answered 202
//! and change nothing (a controller retries on 4xx and 5xx); each such
//! object is logged once, at debug.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;

use crate::deployments::{About, Deployments, Report, State as Deployed};

/// The placeholder of a name that maps one object per service.
const SERVICE: &str = "{service}";

/// One `--deployment-sources` entry.
#[derive(Debug, Clone, PartialEq)]
struct Source {
    /// The environment; `None` for `*` (the event's metadata names it).
    environment: Option<String>,
    namespace: String,
    /// The name, or its parts around `{service}`.
    name: Name,
}

#[derive(Debug, Clone, PartialEq)]
enum Name {
    Exact(String),
    PerService { prefix: String, suffix: String },
}

/// Which controller object deploys which environment (and, with
/// `{service}` in its name, which service).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sources(Vec<Source>);

/// What an object maps to.
#[derive(Debug, Clone, PartialEq)]
struct Mapped {
    environment: String,
    /// The one service it deploys, when its name says.
    service: Option<String>,
}

impl Sources {
    /// Parses `dev=flux-system/apps-dev,prod=argocd/{service}-prod,*=flux-system/apps`.
    pub fn parse(text: &str) -> Result<Sources, String> {
        let mut sources = Vec::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (environment, object) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} is not <environment>=<namespace>/<name>"))?;
            let environment = environment.trim();
            let environment = match environment {
                "*" => None,
                name => {
                    release_manager::names::check_environment(name)
                        .map_err(|e| format!("{pair:?}: {e}"))?;
                    Some(name.to_string())
                }
            };
            let (namespace, name) = object
                .trim()
                .split_once('/')
                .filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains('/'))
                .ok_or_else(|| format!("{object:?} in {pair:?} is not <namespace>/<name>"))?;
            let name = match name.split_once(SERVICE) {
                None if name.contains('{') || name.contains('}') => {
                    return Err(format!(
                        "{name:?} in {pair:?}: the only placeholder is {SERVICE}"
                    ))
                }
                None => Name::Exact(name.to_string()),
                Some((_, suffix)) if suffix.contains(SERVICE) => {
                    return Err(format!("{name:?} in {pair:?} holds {SERVICE} twice"))
                }
                Some((prefix, suffix)) => Name::PerService {
                    prefix: prefix.to_string(),
                    suffix: suffix.to_string(),
                },
            };
            sources.push(Source {
                environment,
                namespace: namespace.to_string(),
                name,
            });
        }
        Ok(Sources(sources))
    }

    /// What `namespace/name` maps to, given the environment its event's
    /// metadata names (if any): an entry naming it exactly, else one whose
    /// `{service}` it fits, else (with metadata) the whole environment the
    /// metadata names, else the environment of its name.
    fn map(
        &self,
        namespace: &str,
        name: &str,
        from_metadata: Option<&str>,
        environments: &[String],
    ) -> Option<Mapped> {
        let environment_of = |source: &Source| match (&source.environment, from_metadata) {
            (None, Some(metadata)) => Some(metadata.to_string()),
            (None, None) => None,
            (Some(environment), None) => Some(environment.clone()),
            (Some(environment), Some(metadata)) => {
                (environment == metadata).then(|| environment.clone())
            }
        };
        for source in self.0.iter().filter(|s| s.namespace == namespace) {
            if source.name == Name::Exact(name.to_string()) {
                if let Some(environment) = environment_of(source) {
                    return Some(Mapped {
                        environment,
                        service: None,
                    });
                }
            }
        }
        for source in self.0.iter().filter(|s| s.namespace == namespace) {
            let Name::PerService { prefix, suffix } = &source.name else {
                continue;
            };
            let Some(service) = name
                .strip_prefix(prefix.as_str())
                .and_then(|rest| rest.strip_suffix(suffix.as_str()))
                .filter(|service| release_manager::names::check_service(service).is_ok())
            else {
                continue;
            };
            if let Some(environment) = environment_of(source) {
                return Some(Mapped {
                    environment,
                    service: Some(service.to_string()),
                });
            }
        }
        if let Some(environment) = from_metadata {
            // Flux's own Kustomization reconciles Flux, not releases.
            return (!(namespace == "flux-system" && name == "flux-system")).then(|| Mapped {
                environment: environment.to_string(),
                service: None,
            });
        }
        environments
            .iter()
            .find(|e| *e == name)
            .map(|environment| Mapped {
                environment: environment.clone(),
                service: None,
            })
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
    /// Objects whose events were ignored, each logged once.
    pub(crate) ignored: Arc<Mutex<HashSet<String>>>,
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

/// What a body says.
enum Read {
    /// A report to take.
    Report(Report),
    /// Nothing to take: why (answered 202). `object` names what sent it,
    /// logged once.
    Ignored { why: String, object: Option<String> },
}

/// Checks the secret, parses the body with `read` and takes the report.
async fn take(
    state: HookState,
    route: &'static str,
    headers: HeaderMap,
    body: Bytes,
    read: impl FnOnce(&HookState, &[u8]) -> Result<Read, String>,
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
        Ok(Read::Report(report)) => report,
        Ok(Read::Ignored { why, object }) => {
            if let Some(object) = object {
                let first = state
                    .ignored
                    .lock()
                    .expect("ignored lock")
                    .insert(format!("{route}:{object}"));
                if first {
                    tracing::debug!(route, %object, %why, "deployment events of this object are ignored");
                }
            }
            return answer(StatusCode::ACCEPTED, format!("ignored: {why}"));
        }
        Err(problem) => {
            tracing::warn!(route, %problem, "deployment report refused");
            return answer(StatusCode::UNPROCESSABLE_ENTITY, problem);
        }
    };
    match state.deployments.report(report).await {
        Ok(done) => {
            let mut text = format!("{} release(s) covered", done.covered.len());
            if !done.ignored_as_older.is_empty() {
                text.push_str(&format!(
                    "; older than what is known, not taken for {}",
                    done.ignored_as_older.join(", ")
                ));
            }
            if done.environment_error {
                text.push_str(
                    "; it names no service: kept as the environment's reconciliation error",
                );
            }
            answer(StatusCode::OK, text)
        }
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

/// An RFC 3339 time as nanoseconds since the epoch.
fn nanos(text: &str) -> Result<Option<i64>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let time = chrono::DateTime::parse_from_rfc3339(text)
        .map_err(|e| format!("time {text:?} is not an RFC 3339 time: {e}"))?;
    Ok(time.timestamp_nanos_opt())
}

/// An event of Flux's notification-controller (the fields used): an
/// `eventv1.Event` of fluxcd/pkg, its metadata as the notification
/// controller combined it (the `<group>/` prefixes stripped, an Alert's
/// `spec.eventMetadata` added).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FluxEvent {
    involved_object: FluxObject,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    timestamp: String,
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

fn read_flux(state: &HookState, body: &[u8]) -> Result<Read, String> {
    let event: FluxEvent =
        serde_json::from_slice(body).map_err(|e| format!("not a Flux event: {e}"))?;
    let object = &event.involved_object;
    let id = format!("{} {}/{}", object.kind, object.namespace, object.name);
    let ignored = |why: &str| {
        Ok(Read::Ignored {
            why: why.to_string(),
            object: Some(id.clone()),
        })
    };
    // Source fetches and the like say nothing about what was applied.
    // A HelmRelease's revision is a chart version, not a config commit.
    if object.kind != "Kustomization" {
        return ignored("not a Kustomization's event");
    }
    let from_metadata = ["env", "environment"]
        .iter()
        .find_map(|key| event.metadata.get(*key))
        .map(|e| e.trim().to_string());
    if let Some(environment) = &from_metadata {
        if !state.environments.contains(environment) {
            return Err(format!(
                "the event's metadata names environment {environment:?}; this server's environments are {}",
                state.environments.join(", ")
            ));
        }
    }
    let Some(mapped) = state.sources.map(
        &object.namespace,
        &object.name,
        from_metadata.as_deref(),
        &state.environments,
    ) else {
        return ignored(
            "no --deployment-sources entry (nor `env` metadata) maps this Kustomization",
        );
    };
    let Some(revision) = ["revision", "originRevision"]
        .iter()
        .find_map(|key| event.metadata.get(*key))
        .or_else(|| {
            event
                .metadata
                .iter()
                .find(|(key, _)| key.ends_with("/revision"))
                .map(|(_, value)| value)
        })
        .cloned()
    else {
        return ignored("the event names no revision");
    };
    let about_whole = |named: About| match &mapped.service {
        Some(service) => About::Service {
            name: service.clone(),
            namespace: None,
        },
        None => named,
    };
    // kustomize-controller: an error is a failure; `ReconciliationSucceeded`
    // (and a health check passing again) a success; a change set, which
    // comes while the Ready reason is `Progressing`, progress of the
    // objects it names. Other info events (DependencyNotReady, health
    // checks cancelled, ...) say nothing final.
    let (state_reported, about) = if event.severity.eq_ignore_ascii_case("error") {
        (Deployed::Failed, about_whole(About::Named))
    } else if !event.severity.eq_ignore_ascii_case("info") {
        return ignored("trace events say nothing of a rollout");
    } else if event.reason == "ReconciliationSucceeded"
        || event.message.starts_with("Health check passed")
    {
        (Deployed::Succeeded, about_whole(About::Everything))
    } else if matches!(
        event.reason.as_str(),
        "Progressing" | "ProgressingWithRetry"
    ) {
        (Deployed::Progressing, about_whole(About::Named))
    } else {
        return Ok(Read::Ignored {
            why: format!("{} says nothing final", event.reason),
            object: None,
        });
    };
    Ok(Read::Report(Report {
        environment: mapped.environment,
        revision,
        state: state_reported,
        message: event.message,
        source: format!("flux:{}/{}", object.namespace, object.name),
        about,
        observed_at: nanos(&event.timestamp)?,
    }))
}

/// The body of the Argo CD notification template docs/controllers.md gives.
#[derive(Deserialize)]
struct ArgoEvent {
    application: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    revision: String,
    #[serde(default)]
    sync: String,
    #[serde(default)]
    health: String,
    #[serde(default)]
    phase: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    time: String,
}

fn read_argocd(state: &HookState, body: &[u8]) -> Result<Read, String> {
    let event: ArgoEvent = serde_json::from_slice(body)
        .map_err(|e| format!("not the Argo CD notification body docs/controllers.md gives: {e}"))?;
    let id = format!("Application {}/{}", event.namespace, event.application);
    let Some(mapped) = state.sources.map(
        &event.namespace,
        &event.application,
        None,
        &state.environments,
    ) else {
        return Ok(Read::Ignored {
            why: "no --deployment-sources entry maps this Application".into(),
            object: Some(id),
        });
    };
    if event.revision.trim().is_empty() {
        // A multi-source Application has `sync.revisions`, not one
        // revision of the config repository.
        return Ok(Read::Ignored {
            why: "the Application reports no single revision (`sync.revision` is empty: a multi-source Application?); nothing changed".into(),
            object: Some(id),
        });
    }
    // Argo CD: an operation `Running` (or `Terminating`) is a sync under
    // way, during which health may be `Missing` or `Progressing`; once it
    // finished, `Missing` means the objects are not there.
    let running = matches!(event.phase.as_str(), "Running" | "Terminating");
    let finished = matches!(event.phase.as_str(), "Succeeded" | "Failed" | "Error");
    let state_reported = if matches!(event.phase.as_str(), "Failed" | "Error")
        || event.health == "Degraded"
        || (event.health == "Missing" && finished)
    {
        Deployed::Failed
    } else if running {
        Deployed::Progressing
    } else if event.health == "Healthy" && event.sync == "Synced" {
        Deployed::Succeeded
    } else {
        Deployed::Progressing
    };
    let about = match mapped.service {
        Some(service) => About::Service {
            name: service,
            namespace: None,
        },
        None if state_reported == Deployed::Failed => About::Named,
        None => About::Everything,
    };
    let mut message = event.message;
    if message.is_empty() {
        message = format!("sync {}, health {}", event.sync, event.health);
    }
    Ok(Read::Report(Report {
        environment: mapped.environment,
        revision: event.revision,
        state: state_reported,
        message,
        source: format!("argocd:{}/{}", event.namespace, event.application),
        about,
        observed_at: nanos(&event.time)?,
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
    #[serde(default)]
    service: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    time: String,
}

fn read_generic(_: &HookState, body: &[u8]) -> Result<Read, String> {
    let event: GenericEvent = serde_json::from_slice(body).map_err(|e| {
        format!("not a deployment report ({{\"environment\", \"revision\", \"state\", \"message\", \"source\", \"service\", \"namespace\", \"time\"}}): {e}")
    })?;
    let state = Deployed::parse(&event.state).ok_or_else(|| {
        format!(
            "state {:?} is none of progressing, deployed, failed",
            event.state
        )
    })?;
    let about = if event.service.is_empty() {
        if !event.namespace.is_empty() {
            return Err("namespace is given without service".into());
        }
        About::Everything
    } else {
        release_manager::names::check_service(&event.service).map_err(|e| e.to_string())?;
        if !event.namespace.is_empty() {
            release_manager::names::check_namespace(&event.namespace).map_err(|e| e.to_string())?;
        }
        About::Service {
            name: event.service,
            namespace: (!event.namespace.is_empty()).then_some(event.namespace),
        }
    };
    Ok(Read::Report(Report {
        environment: event.environment,
        revision: event.revision,
        state,
        message: event.message,
        source: event.source,
        about,
        observed_at: nanos(&event.time)?,
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

    fn environments() -> Vec<String> {
        vec!["dev".to_string(), "staging".to_string(), "prod".to_string()]
    }

    fn mapped(environment: &str, service: Option<&str>) -> Option<Mapped> {
        Some(Mapped {
            environment: environment.into(),
            service: service.map(str::to_string),
        })
    }

    #[test]
    fn sources_map_objects_to_environments_and_services() {
        let sources = Sources::parse(
            "dev=flux-system/apps-dev, prod=argocd/{service}-prod, *=flux-system/{service}-app, *=flux-system/apps",
        )
        .unwrap();
        let map = |ns: &str, name: &str, metadata: Option<&str>| {
            sources.map(ns, name, metadata, &environments())
        };
        assert_eq!(map("flux-system", "apps-dev", None), mapped("dev", None));
        assert_eq!(
            map("argocd", "svc-0013-prod", None),
            mapped("prod", Some("svc-0013")),
            "one Application per service (an ApplicationSet's names)"
        );
        assert_eq!(map("argocd", "-prod", None), None, "no service in the name");
        assert_eq!(
            map("argocd", "staging", None),
            mapped("staging", None),
            "by its name"
        );
        // One cluster per environment: the Alert's eventMetadata says which.
        assert_eq!(
            map("flux-system", "apps", Some("staging")),
            mapped("staging", None)
        );
        assert_eq!(map("flux-system", "apps", None), None);
        assert_eq!(
            map("flux-system", "svc-0009-app", Some("staging")),
            mapped("staging", Some("svc-0009"))
        );
        assert_eq!(
            map("flux-system", "svc-0009-app", None),
            None,
            "`*` needs the metadata"
        );
        assert_eq!(
            map("flux-system", "infra", Some("prod")),
            mapped("prod", None),
            "with metadata, any Kustomization the Alert sends"
        );
        assert_eq!(
            map("flux-system", "flux-system", Some("prod")),
            None,
            "Flux's own"
        );
        assert_eq!(map("flux-system", "other", None), None);
        for bad in [
            "dev",
            "dev=apps",
            "dev=/x",
            "dev=a/b/c",
            "dev=a/{service}-{service}",
            "dev=a/{name}",
            "d/v=a/b",
        ] {
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

    #[test]
    fn times_as_controllers_write_them() {
        assert_eq!(nanos("").unwrap(), None);
        assert_eq!(
            nanos("2026-12-01T10:00:00Z").unwrap(),
            Some(1_796_119_200_000_000_000)
        );
        assert_eq!(
            nanos("2026-12-01T10:00:00.000000001Z").unwrap(),
            Some(1_796_119_200_000_000_001)
        );
        assert!(nanos("yesterday").is_err());
    }
}
