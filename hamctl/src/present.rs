//! How the server's messages read: as JSON, exactly the API's canonical
//! proto3 JSON (as `kubectl -o json` prints API objects: what buf curl,
//! grpcurl and every protobuf library print for the same answer), and as
//! the short texts that go into table cells and success lines.
//!
//! It owns every pb -> text mapping shared by more than one command. It
//! must not do I/O.

use chrono::{DateTime, Utc};
use prost_types::Timestamp;
use release_manager::pb::{Outcome, Person, ReleaseIntent, ReleaseResult, Vulnerabilities};
use serde_json::Value;

use crate::error::CliError;

/// A message of the API as its canonical JSON (`release_manager::json`).
pub(crate) fn api_json<M: prost::Message + prost::Name>(message: &M) -> Value {
    release_manager::json::to_value(message)
}

/// The result inside a write response; the server always sends one.
pub(crate) fn require_result(result: Option<ReleaseResult>) -> Result<ReleaseResult, CliError> {
    result.ok_or(CliError::BadResponse("the reply carries no release result"))
}

/// Whether the write changed nothing.
pub(crate) fn is_no_change(result: &ReleaseResult) -> bool {
    result.outcome() == Outcome::AlreadyUpToDate
}

/// `product-api in dev is already at master-abc123 (no change)`.
pub(crate) fn no_change_line(result: &ReleaseResult) -> String {
    format!(
        "{} in {} is already at {} (no change)",
        result.service, result.environment, result.artifact_id
    )
}

/// ` (namespace dev), commit 1a2b3c4`, leaving out what the server did not say.
pub(crate) fn where_suffix(result: &ReleaseResult) -> String {
    let mut text = String::new();
    if !result.namespace.is_empty() {
        text.push_str(&format!(" (namespace {})", result.namespace));
    }
    if !result.commit_sha.is_empty() {
        text.push_str(&format!(", commit {}", short_sha(&result.commit_sha)));
    }
    text
}

/// The first 7 characters of a commit sha, as git abbreviates it.
pub(crate) fn short_sha(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

/// A timestamp as a table cell: `2024-05-01 12:34 UTC`; empty when absent.
pub(crate) fn time_cell(timestamp: Option<&Timestamp>) -> String {
    to_datetime(timestamp).map_or_else(String::new, |time| {
        time.format("%Y-%m-%d %H:%M UTC").to_string()
    })
}

/// A timestamp to the second, as event lines show it:
/// `2024-05-01 12:34:56 UTC`; empty when absent.
pub(crate) fn time_seconds_cell(timestamp: Option<&Timestamp>) -> String {
    to_datetime(timestamp).map_or_else(String::new, |time| {
        time.format("%Y-%m-%d %H:%M:%S UTC").to_string()
    })
}

/// A person as a table cell: the name, else the email.
pub(crate) fn person_cell(person: Option<&Person>) -> String {
    match person {
        Some(person) if !person.name.is_empty() => person.name.clone(),
        Some(person) => person.email.clone(),
        None => String::new(),
    }
}

/// Vulnerability counts as `high/medium/low`; empty when unknown.
pub(crate) fn vulnerabilities_cell(vulnerabilities: Option<&Vulnerabilities>) -> String {
    vulnerabilities.map_or_else(String::new, |v| {
        format!("{}/{}/{}", v.high, v.medium, v.low)
    })
}

/// The first line of a commit message, cut to `max` characters.
pub(crate) fn message_cell(message: &str, max: usize) -> String {
    let first = message.lines().next().unwrap_or("").trim();
    if first.chars().count() <= max {
        first.to_owned()
    } else {
        let mut cut: String = first.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// A release intent as one word.
pub(crate) fn intent_word(intent: ReleaseIntent) -> &'static str {
    match intent {
        ReleaseIntent::Unspecified => "unknown",
        ReleaseIntent::ReleaseBranch => "release-branch",
        ReleaseIntent::ReleaseArtifact => "release-artifact",
        ReleaseIntent::Promote => "promote",
        ReleaseIntent::Rollback => "rollback",
        ReleaseIntent::AutoRelease => "auto-release",
        ReleaseIntent::Edit => "edit",
    }
}

fn to_datetime(timestamp: Option<&Timestamp>) -> Option<DateTime<Utc>> {
    let timestamp = timestamp?;
    let nanos = u32::try_from(timestamp.nanos).ok()?;
    DateTime::from_timestamp(timestamp.seconds, nanos)
}

/// A deployment state as one word (or two): `pending`, `progressing`,
/// `deployed`, `failed`, `not reported` (`unknown` for a state newer than
/// this hamctl).
pub(crate) fn deployment_word(state: i32) -> &'static str {
    use release_manager::pb::DeploymentState;
    match DeploymentState::try_from(state) {
        Ok(DeploymentState::Pending) => "pending",
        Ok(DeploymentState::Progressing) => "progressing",
        Ok(DeploymentState::Deployed) => "deployed",
        Ok(DeploymentState::Failed) => "failed",
        Ok(DeploymentState::NotReported) => "not reported",
        _ => "unknown",
    }
}

/// An environment's reconciliation error as one line: `dev: reconciliation
/// failed (flux:flux-system/apps): <message>`.
pub(crate) fn reconciliation_error_line(
    error: &release_manager::pb::ReconciliationError,
) -> String {
    let mut line = format!("{}: reconciliation failed", error.environment);
    if !error.source.is_empty() {
        line.push_str(&format!(" ({})", error.source));
    }
    if !error.message.is_empty() {
        line.push_str(&format!(": {}", message_cell(&error.message, 120)));
    }
    line
}

/// A deployment in the status table: its word, and a failure's reason.
pub(crate) fn deployment_cell(deployment: Option<&release_manager::pb::Deployment>) -> String {
    let Some(deployment) = deployment else {
        return String::new();
    };
    let word = deployment_word(deployment.state);
    if word == "failed" && !deployment.message.is_empty() {
        format!("failed: {}", message_cell(&deployment.message, 40))
    } else {
        word.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(outcome: Outcome) -> ReleaseResult {
        ReleaseResult {
            outcome: outcome.into(),
            service: "product-api".into(),
            environment: "dev".into(),
            namespace: "dev".into(),
            artifact_id: "master-abc123".into(),
            branch: "master".into(),
            commit_sha: "1a2b3c4d5e6f".into(),
            intent: ReleaseIntent::ReleaseBranch.into(),
            replayed: false,
        }
    }

    #[test]
    fn no_change_line_reads_naturally() {
        assert_eq!(
            no_change_line(&result(Outcome::AlreadyUpToDate)),
            "product-api in dev is already at master-abc123 (no change)"
        );
    }

    #[test]
    fn where_suffix_abbreviates_the_commit() {
        assert_eq!(
            where_suffix(&result(Outcome::Applied)),
            " (namespace dev), commit 1a2b3c4"
        );
        let mut bare = result(Outcome::Applied);
        bare.namespace.clear();
        bare.commit_sha.clear();
        assert_eq!(where_suffix(&bare), "");
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let time = Timestamp {
            seconds: 1_714_566_896,
            nanos: 0,
        };
        assert_eq!(time_cell(Some(&time)), "2024-05-01 12:34 UTC");
        assert_eq!(time_seconds_cell(Some(&time)), "2024-05-01 12:34:56 UTC");
        assert_eq!(time_seconds_cell(None), "");
        assert_eq!(time_cell(None), "");
    }

    #[test]
    fn json_is_the_apis_canonical_json() {
        let value = api_json(&result(Outcome::AlreadyUpToDate));
        assert_eq!(value["outcome"], "OUTCOME_ALREADY_UP_TO_DATE");
        assert_eq!(value["intent"], "RELEASE_INTENT_RELEASE_BRANCH");
        assert_eq!(value["artifactId"], "master-abc123");
        assert_eq!(value["commitSha"], "1a2b3c4d5e6f");
    }

    #[test]
    fn cells() {
        assert_eq!(short_sha("abc"), "abc");
        assert_eq!(
            vulnerabilities_cell(Some(&Vulnerabilities {
                high: 1,
                medium: 2,
                low: 3
            })),
            "1/2/3"
        );
        assert_eq!(vulnerabilities_cell(None), "");
        assert_eq!(
            person_cell(Some(&Person {
                name: String::new(),
                email: "a@b.c".into()
            })),
            "a@b.c"
        );
        assert_eq!(message_cell("fix: thing\n\nbody", 50), "fix: thing");
        assert_eq!(message_cell("abcdef", 4), "abc…");
    }
}
