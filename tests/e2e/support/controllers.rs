//! What GitOps controllers post, byte for byte as they post it: Flux's
//! notification-controller events (an `eventv1.Event` of fluxcd/pkg as Go's
//! `json.Marshal` writes it: fields in struct order, metadata keys sorted,
//! no spaces), with the reasons and messages kustomize-controller and
//! fluxcd/pkg/ssa write; and Argo CD notifications rendered from the
//! template docs/controllers.md gives. The configuration read from that
//! page (the Alert's `eventMetadata`, the Argo CD template) is what the
//! tests send, so the page cannot drift from what works.

use std::collections::BTreeMap;

use serde_json::Value;

/// The page the controllers are configured from.
pub fn controllers_page() -> String {
    let path = super::process::workspace_root().join("docs/controllers.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The ```yaml blocks of the page.
fn yaml_blocks(page: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in page.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```yaml") => current = Some(String::new()),
            (Some(_), "```") => blocks.push(current.take().expect("a block")),
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// The Flux Alert of the page, as YAML.
pub fn flux_alert() -> serde_yaml::Value {
    use serde::Deserialize;
    for block in yaml_blocks(&controllers_page()) {
        for document in serde_yaml::Deserializer::from_str(&block) {
            let value = serde_yaml::Value::deserialize(document).expect("the page's YAML parses");
            if value["kind"] == "Alert" {
                return value;
            }
        }
    }
    panic!("docs/controllers.md has no Flux Alert")
}

/// The Alert's `spec.eventMetadata`, which notification-controller copies
/// into every event it forwards.
pub fn alert_event_metadata() -> BTreeMap<String, String> {
    let alert = flux_alert();
    serde_yaml::from_value(alert["spec"]["eventMetadata"].clone())
        .expect("eventMetadata is a map of strings")
}

/// The body template of the page's Argo CD notification.
pub fn argocd_body_template() -> String {
    let config = yaml_blocks(&controllers_page())
        .into_iter()
        .find(|block| block.contains("template.release-manager"))
        .expect("docs/controllers.md has the Argo CD notification");
    let config: serde_yaml::Value =
        serde_yaml::from_str(&config).expect("the ConfigMap data parses");
    let template: serde_yaml::Value = serde_yaml::from_str(
        config["template.release-manager"]
            .as_str()
            .expect("the template is a string"),
    )
    .expect("the template parses");
    template["webhook"]["release-manager"]["body"]
        .as_str()
        .expect("the webhook has a body")
        .to_string()
}

/// What an Argo CD Application's status says, as the template reads it.
#[derive(Debug, Clone, Default)]
pub struct Application<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub revision: &'a str,
    pub sync: &'a str,
    pub health: &'a str,
    /// `None`: no operation state (never synced).
    pub phase: Option<&'a str>,
    pub message: &'a str,
    /// What `(call .time.Now)` returns, RFC 3339 with nanoseconds.
    pub now: &'a str,
}

/// The page's Argo CD body rendered for `app` as Argo CD's notification
/// engine renders it (Go's text/template, for the actions the template
/// uses: fields, `if`/`else`/`end` on the operation state, `toJson`, and
/// the time).
pub fn argocd_body(app: &Application<'_>) -> String {
    let template = argocd_body_template();
    let field = |path: &str| -> Option<String> {
        Some(match path {
            ".app.metadata.name" => app.name.to_string(),
            ".app.metadata.namespace" => app.namespace.to_string(),
            ".app.status.sync.revision" => app.revision.to_string(),
            ".app.status.sync.status" => app.sync.to_string(),
            ".app.status.health.status" => app.health.to_string(),
            ".app.status.operationState.phase" => app.phase?.to_string(),
            ".app.status.operationState.message" => {
                app.phase?;
                app.message.to_string()
            }
            _ => return None,
        })
    };
    let mut out = String::new();
    // Whether text is written at each `if` depth.
    let mut writing: Vec<bool> = vec![true];
    let mut rest = template.as_str();
    while let Some(start) = rest.find("{{") {
        let on = writing.iter().all(|w| *w);
        if on {
            out.push_str(&rest[..start]);
        }
        let end = rest[start..].find("}}").expect("a closed action") + start;
        let action = rest[start + 2..end].trim();
        rest = &rest[end + 2..];
        if let Some(condition) = action.strip_prefix("if ") {
            let holds = match condition.trim() {
                ".app.status.operationState" => app.phase.is_some(),
                other => panic!("the template tests {other}, which this renderer does not know"),
            };
            writing.push(holds);
        } else if action == "else" {
            let last = writing.last_mut().expect("else inside if");
            *last = !*last;
        } else if action == "end" {
            writing.pop();
        } else if !on {
            continue;
        } else if let Some(path) = action.strip_prefix("toJson ") {
            let value = field(path.trim()).unwrap_or_else(|| panic!("unknown field {path}"));
            out.push_str(&serde_json::to_string(&value).expect("a string"));
        } else if action.starts_with("(call .time.Now)") {
            out.push_str(app.now);
        } else {
            let value = field(action).unwrap_or_else(|| panic!("unknown action {action}"));
            out.push_str(&value);
        }
    }
    out.push_str(rest);
    let parsed: Result<Value, _> = serde_json::from_str(&out);
    assert!(parsed.is_ok(), "the rendered body is JSON: {out}");
    out
}

/// A Flux event of a Kustomization `flux-system/<kustomization>` as
/// notification-controller forwards it: `metadata` holds the revision (as
/// kustomize-controller writes it, the group prefix stripped) and `extra`
/// (an Alert's `eventMetadata`).
pub fn flux_event(
    kustomization: &str,
    severity: &str,
    reason: &str,
    message: &str,
    revision: &str,
    timestamp: &str,
    extra: &BTreeMap<String, String>,
) -> String {
    let mut metadata: BTreeMap<String, String> = extra.clone();
    if !revision.is_empty() {
        metadata.insert("revision".into(), format!("master@sha1:{revision}"));
    }
    if reason == "ReconciliationSucceeded" {
        metadata.insert("commit_status".into(), "update".into());
    }
    let text = |s: &str| serde_json::to_string(s).expect("a string");
    format!(
        concat!(
            r#"{{"involvedObject":{{"kind":"Kustomization","namespace":"flux-system","name":{},"#,
            r#""uid":"7d0cdc51-ddcf-4743-b223-83ca5c699632","apiVersion":"kustomize.toolkit.fluxcd.io/v1","resourceVersion":"48151"}},"#,
            r#""severity":{},"timestamp":{},"message":{},"reason":{},"metadata":{},"#,
            r#""reportingController":"kustomize-controller","reportingInstance":"kustomize-controller-6bc5d5b8b-x2lqd"}}"#
        ),
        text(kustomization),
        text(severity),
        text(timestamp),
        text(message),
        text(reason),
        serde_json::to_string(&metadata).expect("a map"),
    )
}

/// kustomize-controller's success event: "Reconciliation finished in %s,
/// next run in %s".
pub fn flux_succeeded(kustomization: &str, revision: &str, timestamp: &str) -> String {
    flux_event(
        kustomization,
        "info",
        "ReconciliationSucceeded",
        "Reconciliation finished in 1.63s, next run in 10m0s",
        revision,
        timestamp,
        &BTreeMap::new(),
    )
}

/// An apply's change set (ssa.ChangeSetEntry lines, `<Kind>/<ns>/<name>
/// <action>`), sent while the Ready reason is `Progressing`.
pub fn flux_change_set(
    kustomization: &str,
    lines: &[&str],
    revision: &str,
    timestamp: &str,
) -> String {
    flux_event(
        kustomization,
        "info",
        "Progressing",
        &lines.join("\n"),
        revision,
        timestamp,
        &BTreeMap::new(),
    )
}

/// A health check that failed: "health check failed after %s: %w" with
/// fluxcd/pkg/ssa's "timeout waiting for: [<object> status: '<status>']".
pub fn flux_health_check_failed(
    kustomization: &str,
    objects: &[&str],
    revision: &str,
    timestamp: &str,
) -> String {
    let waiting: Vec<String> = objects
        .iter()
        .map(|object| format!("{object} status: 'InProgress'"))
        .collect();
    flux_event(
        kustomization,
        "error",
        "HealthCheckFailed",
        &format!(
            "health check failed after 5m0.012s: timeout waiting for: [{}]",
            waiting.join(", ")
        ),
        revision,
        timestamp,
        &BTreeMap::new(),
    )
}
