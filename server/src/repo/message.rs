//! Commit messages of the config repository: the titles and trailers we
//! write (`[dev/product-api] release <id>`, `Artifact-ID: ...`) and what
//! can be read back from anyone's messages. Messages only *enrich* what a
//! commit changed (the intent of a release, who released it); they never
//! decide whether a commit is a build or a release (see `history`).
//! Formatting and parsing live together so they cannot drift apart.

use super::index::{ReleaseKind, Signature};

/// The value of trailer `key`: the `Key: value` lines that end a message,
/// after its title. They follow a blank line in most eras, but the
/// original release manager wrote them right after the title for a while
/// (2020: `<title>\nArtifact-created-by: ...`), and its own parser reads
/// both: the block of `Key: value` lines at the end, whatever precedes it.
pub(crate) fn trailer<'m>(message: &'m str, key: &str) -> Option<&'m str> {
    trailer_lines(message).find_map(|(k, v)| k.eq_ignore_ascii_case(key).then_some(v))
}

/// The trailers of a message, last first.
fn trailer_lines(message: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut lines = message.trim_end().lines();
    // The title is never a trailer.
    lines.next();
    lines.rev().map_while(|line| {
        let (key, value) = line.split_once(':')?;
        let is_key = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        is_key.then(|| (key, value.trim()))
    })
}

/// Builds a message: a title, a blank line, then `Key: value` trailers
/// (empty values are left out).
pub(crate) fn compose(title: &str, trailers: &[(&str, &str)]) -> String {
    let mut message = String::with_capacity(256);
    message.push_str(title);
    message.push_str("\n\n");
    for (key, value) in trailers.iter().filter(|(_, v)| !v.is_empty()) {
        message.push_str(key);
        message.push_str(": ");
        message.push_str(value);
        message.push('\n');
    }
    message
}

/// The `Release-intent` value written for `kind`, spelled as the original
/// release manager spells it (`ReleaseBranch`, `Promote`, ...), so that it
/// reads the intent of our releases; [`release_kind`] reads this spelling
/// and ours (`release-branch`) alike.
pub(crate) fn intent_value(kind: ReleaseKind) -> &'static str {
    match kind {
        ReleaseKind::Branch => "ReleaseBranch",
        // The original has no "unknown": an unexplained release is one of
        // an artifact to it.
        ReleaseKind::Artifact | ReleaseKind::Unknown | ReleaseKind::Edit => "ReleaseArtifact",
        ReleaseKind::Promote => "Promote",
        ReleaseKind::Rollback => "Rollback",
        ReleaseKind::AutoRelease => "AutoRelease",
    }
}

/// A release commit's title as the original release manager writes it
/// (`internal/commitinfo`): `[<env>/<service>] <verb> <artifact-id> by
/// <email>`, the verb `rollback`, `auto release` or `release`.
pub(crate) fn compose_release_title(
    kind: ReleaseKind,
    environment: &str,
    service: &str,
    artifact_id: &str,
    releaser_email: &str,
) -> String {
    let verb = match kind {
        ReleaseKind::Rollback => "rollback",
        ReleaseKind::AutoRelease => "auto release",
        _ => "release",
    };
    format!("[{environment}/{service}] {verb} {artifact_id} by {releaser_email}")
}

/// Whether `message` says it releases `artifact_id` of `service` to
/// `environment`: by its `Artifact-ID` trailer (with `Service` and
/// `Environment`, when present, agreeing), or by a release title naming
/// it. A commit that leaves a release folder's artifact in place is a
/// release only when its message says so (re-releasing after a hand
/// edit); otherwise it is an edit.
pub(crate) fn names_release(
    message: &str,
    environment: &str,
    service: &str,
    artifact_id: &str,
) -> bool {
    let agrees = |key: &str, wanted: &str| trailer(message, key).is_none_or(|v| v == wanted);
    if trailer(message, "Artifact-ID") == Some(artifact_id)
        && agrees("Service", service)
        && agrees("Environment", environment)
    {
        return true;
    }
    let line = title(message);
    let Some((scope, _)) = line.strip_prefix('[').and_then(|l| l.split_once("] ")) else {
        return false;
    };
    scope == format!("{environment}/{service}")
        && release_title(message)
            .is_some_and(|(_, rest)| rest.split(' ').next() == Some(artifact_id))
}

/// The first line of a message.
pub(crate) fn title(message: &str) -> &str {
    message.lines().next().unwrap_or_default().trim_end()
}

/// Why a release commit was made, as far as its message says: the
/// `Release-intent` trailer (ours, `release-branch`, or the original release
/// manager's, `ReleaseBranch`), else the verb of a `[<env>/<svc>] <verb> ...`
/// title (`rollback`, `auto release`); [`ReleaseKind::Unknown`] otherwise.
pub(crate) fn release_kind(message: &str) -> ReleaseKind {
    if let Some(value) = trailer(message, "Release-intent") {
        let normalized: String = value
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let kind = match normalized.as_str() {
            "releasebranch" => Some(ReleaseKind::Branch),
            "releaseartifact" => Some(ReleaseKind::Artifact),
            "promote" => Some(ReleaseKind::Promote),
            "rollback" => Some(ReleaseKind::Rollback),
            "autorelease" => Some(ReleaseKind::AutoRelease),
            _ => None,
        };
        if let Some(kind) = kind {
            return kind;
        }
    }
    match release_title(message) {
        Some(("rollback", _)) => ReleaseKind::Rollback,
        Some(("auto release", _)) | Some(("auto-release", _)) => ReleaseKind::AutoRelease,
        _ => ReleaseKind::Unknown,
    }
}

/// Who released, as the message says: our `Released-by` trailer, the
/// original's `Artifact-released-by` (both `Name <email>`), or the `by
/// <email>` at the end of the original's titles. `None` when it says
/// nothing; the commit's committer is then the best answer.
pub(crate) fn released_by(message: &str) -> Option<Signature> {
    for key in ["Released-by", "Artifact-released-by"] {
        if let Some(person) = trailer(message, key).and_then(parse_person) {
            return Some(person);
        }
    }
    let (_, rest) = release_title(message)?;
    let (_, email) = rest.rsplit_once(" by ")?;
    let email = email.trim();
    (!email.is_empty() && !email.contains(' ')).then(|| Signature {
        name: String::new(),
        email: email.to_string(),
    })
}

/// `Name <email>` (or a bare `<email>`).
fn parse_person(text: &str) -> Option<Signature> {
    let text = text.trim();
    let (name, rest) = text.rsplit_once('<')?;
    let email = rest.strip_suffix('>')?.trim();
    if email.is_empty() && name.trim().is_empty() {
        return None;
    }
    Some(Signature {
        name: name.trim().to_string(),
        email: email.to_string(),
    })
}

/// The verb and the rest of a `[<env>/<service>] <verb> <rest>` title, for
/// the verbs release titles use.
fn release_title(message: &str) -> Option<(&'static str, &str)> {
    let line = title(message);
    let (scope, action) = line.strip_prefix('[')?.split_once("] ")?;
    if !scope.contains('/') {
        return None;
    }
    ["auto release ", "auto-release ", "rollback ", "release "]
        .into_iter()
        .find_map(|verb| {
            action
                .strip_prefix(verb)
                .map(|rest| (verb.trim_end(), rest))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailers_round_trip() {
        let m = compose(
            "[dev/s] release a",
            &[
                ("Artifact-ID", "a"),
                ("Namespace", "dev"),
                ("Request-ID", ""),
            ],
        );
        assert_eq!(m, "[dev/s] release a\n\nArtifact-ID: a\nNamespace: dev\n");
        assert_eq!(trailer(&m, "artifact-id"), Some("a"));
        assert_eq!(trailer(&m, "Namespace"), Some("dev"));
        assert_eq!(trailer(&m, "Request-ID"), None);
        assert_eq!(trailer("[dev/s] release a", "Namespace"), None);
    }

    #[test]
    fn trailers_right_after_the_title_are_read() {
        // The original release manager's 2020 releases: no blank line.
        let m = "[dev/s] release a by bob@example.com\nArtifact-created-by: Dev <dev@example.com>\nArtifact-released-by: Bob <bob@example.com>";
        assert_eq!(
            trailer(m, "Artifact-released-by"),
            Some("Bob <bob@example.com>")
        );
        assert_eq!(released_by(m).unwrap().name, "Bob");
        // A body that is prose keeps its last paragraph's trailers only.
        let m = "title\n\nSome text: with a colon in prose.\nmore prose\n\nKey: v\n";
        assert_eq!(trailer(m, "Key"), Some("v"));
        assert_eq!(trailer(m, "Some text"), None);
    }

    #[test]
    fn we_write_the_originals_title_and_intents() {
        assert_eq!(
            compose_release_title(ReleaseKind::AutoRelease, "dev", "s", "a-1", "x@example.com"),
            "[dev/s] auto release a-1 by x@example.com"
        );
        assert_eq!(
            compose_release_title(ReleaseKind::Rollback, "dev", "s", "a-1", "x@example.com"),
            "[dev/s] rollback a-1 by x@example.com"
        );
        for kind in [
            ReleaseKind::Branch,
            ReleaseKind::Artifact,
            ReleaseKind::Promote,
            ReleaseKind::Rollback,
            ReleaseKind::AutoRelease,
        ] {
            let message = format!("t\n\nRelease-intent: {}\n", intent_value(kind));
            assert_eq!(release_kind(&message), kind, "{message}");
        }
    }

    #[test]
    fn intents_of_every_writer() {
        let ours = "[dev/s] release a\n\nRelease-intent: release-branch\n";
        assert_eq!(release_kind(ours), ReleaseKind::Branch);
        let original =
            "[dev/s] release a by x@example.com\n\nService: s\nRelease-intent: ReleaseArtifact\n";
        assert_eq!(release_kind(original), ReleaseKind::Artifact);
        let promote = "[prod/s] release a by x@example.com\n\nRelease-intent: Promote\nPromoted-from-environment: staging";
        assert_eq!(release_kind(promote), ReleaseKind::Promote);
        assert_eq!(
            release_kind("[dev/s] auto release a by x@example.com\n\nRelease-intent: AutoRelease"),
            ReleaseKind::AutoRelease
        );
        assert_eq!(
            release_kind("[dev/s] rollback old to new by x@example.com"),
            ReleaseKind::Rollback
        );
        assert_eq!(
            release_kind("[dev/s] auto release a by x@example.com"),
            ReleaseKind::AutoRelease
        );
        assert_eq!(release_kind("[dev/s] release a"), ReleaseKind::Unknown);
        assert_eq!(release_kind("bump replicas"), ReleaseKind::Unknown);
        assert_eq!(
            release_kind("x\n\nRelease-intent: something-new"),
            ReleaseKind::Unknown
        );
    }

    #[test]
    fn who_released() {
        let ours = "[dev/s] release a\n\nReleased-by: Olga Operator <olga@example.com>\n";
        assert_eq!(
            released_by(ours),
            Some(Signature {
                name: "Olga Operator".into(),
                email: "olga@example.com".into()
            })
        );
        let original = "[dev/s] release a by bob@example.com\n\nArtifact-released-by: Bob <bob@example.com>\nArtifact-created-by: Dev <dev@example.com>";
        assert_eq!(released_by(original).unwrap().name, "Bob");
        let seed = "[dev/s] release a by carol@example.com";
        assert_eq!(
            released_by(seed),
            Some(Signature {
                name: String::new(),
                email: "carol@example.com".into()
            })
        );
        assert_eq!(released_by("[dev/s] release a"), None);
        assert_eq!(released_by("manual fix by hand"), None);
    }
}
