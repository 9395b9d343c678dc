//! What a destination receives for an entry: a Slack message (`text` in
//! Slack's mrkdwn, with links to CI and the source), or a CloudEvents 1.0
//! event in structured mode (`application/cloudevents+json`) whose `id` is
//! the entry's stable id, so receivers can de-duplicate, and whose `data`
//! names its fields as the API's JSON does (lowerCamelCase) with RFC 3339
//! times.

use serde_json::{json, Value};

use super::config::Kind;
use super::journal::Entry;

/// The CloudEvents `type` of a kind.
pub(crate) fn cloudevent_type(kind: Kind) -> String {
    format!("dev.releasemanager.{}.v1", kind.as_str())
}

/// The event as CloudEvents 1.0 JSON (structured mode).
pub(crate) fn cloudevent(entry: &Entry) -> Value {
    let time = chrono::DateTime::from_timestamp(entry.time, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut data = serde_json::Map::new();
    data.insert("kind".into(), entry.kind.as_str().into());
    data.insert("time".into(), time.clone().into());
    data.insert("service".into(), entry.service.clone().into());
    for (name, value) in [
        ("environment", &entry.environment),
        ("namespace", &entry.namespace),
        ("artifactId", &entry.artifact_id),
        ("branch", &entry.branch),
        ("author", &entry.author),
        ("actor", &entry.actor),
        ("commitSha", &entry.commit),
        ("buildUrl", &entry.build_url),
        ("sourceUrl", &entry.source_url),
        ("detail", &entry.detail),
    ] {
        if !value.is_empty() {
            data.insert(name.into(), value.clone().into());
        }
    }
    json!({
        "specversion": "1.0",
        "id": entry.id,
        "source": "/release-manager",
        "type": cloudevent_type(entry.kind),
        "subject": entry.service,
        "time": time,
        "datacontenttype": "application/json",
        "data": data,
    })
}

/// Slack's mrkdwn needs these three escaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The event as a Slack incoming-webhook message.
pub(crate) fn slack(entry: &Entry) -> Value {
    let (service, artifact) = (escape(&entry.service), escape(&entry.artifact_id));
    let environment = escape(&entry.environment);
    let by = if entry.actor.is_empty() {
        String::new()
    } else {
        format!(" by {}", escape(&entry.actor))
    };
    let headline = match entry.kind {
        Kind::Release => {
            format!(":rocket: *{service}* `{artifact}` released to *{environment}*{by}")
        }
        Kind::AutoRelease => {
            format!(":robot_face: *{service}* `{artifact}` auto-released to *{environment}*")
        }
        Kind::Rollback => {
            format!(":rewind: *{service}* rolled back to `{artifact}` in *{environment}*{by}")
        }
        Kind::Build => format!(":package: *{service}* build `{artifact}`{by}"),
        Kind::Deployed => {
            format!(":white_check_mark: *{service}* `{artifact}` is deployed in *{environment}*")
        }
        Kind::DeploymentFailed => {
            format!(":x: *{service}* `{artifact}` failed to deploy in *{environment}*")
        }
    };
    let mut facts = Vec::new();
    if !entry.branch.is_empty() {
        facts.push(format!("branch {}", escape(&entry.branch)));
    }
    if !entry.author.is_empty() {
        facts.push(format!("author {}", escape(&entry.author)));
    }
    if !entry.detail.is_empty() {
        facts.push(escape(&entry.detail));
    }
    if !entry.build_url.is_empty() {
        facts.push(format!("<{}|CI job>", entry.build_url));
    }
    if !entry.source_url.is_empty() {
        facts.push(format!("<{}|source>", entry.source_url));
    }
    let text = if facts.is_empty() {
        headline
    } else {
        format!("{headline}\n{}", facts.join(" · "))
    };
    json!({ "text": text })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            seq: 7,
            id: "rm-abc-0".into(),
            kind: Kind::Release,
            time: 1_767_323_045,
            cursor: "abc.0".into(),
            report_cursor: String::new(),
            service: "shop".into(),
            environment: "prod".into(),
            namespace: "prod".into(),
            artifact_id: "master-1-2".into(),
            branch: "master".into(),
            author: "Dana <dev>".into(),
            actor: "Olga".into(),
            commit: "abc".into(),
            build_url: "https://ci.example.com/1".into(),
            source_url: String::new(),
            detail: "promote".into(),
        }
    }

    #[test]
    fn slack_says_what_who_and_where() {
        let text = slack(&entry())["text"].as_str().unwrap().to_string();
        assert!(
            text.starts_with(":rocket: *shop* `master-1-2` released to *prod* by Olga"),
            "{text}"
        );
        assert!(text.contains("author Dana &lt;dev&gt;"), "{text}");
        assert!(text.contains("<https://ci.example.com/1|CI job>"), "{text}");
    }

    #[test]
    fn cloudevents_carry_the_stable_id() {
        let event = cloudevent(&entry());
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["id"], "rm-abc-0");
        assert_eq!(event["type"], "dev.releasemanager.release.v1");
        assert_eq!(event["time"], "2026-01-02T03:04:05Z");
        let data = &event["data"];
        assert_eq!(data["artifactId"], "master-1-2");
        assert_eq!(data["time"], "2026-01-02T03:04:05Z");
        assert_eq!(data["buildUrl"], "https://ci.example.com/1");
        assert_eq!(data["namespace"], "prod");
        for key in data.as_object().unwrap().keys() {
            assert!(
                key.chars().all(|c| c.is_ascii_alphanumeric())
                    && key.starts_with(|c: char| c.is_ascii_lowercase()),
                "{key} is lowerCamelCase"
            );
        }
        assert!(data.get("seq").is_none() && data.get("sourceUrl").is_none());
    }
}
