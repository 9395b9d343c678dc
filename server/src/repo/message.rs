//! Commit messages of the config repository: the titles and trailers we
//! write (`[dev/product-api] release <id>`, `Artifact-ID: ...`) and what
//! can be read back from anyone's messages. Messages only *enrich* what a
//! commit changed (the intent of a release, who released it); they never
//! decide whether a commit is a build or a release (see `history`).
//! Formatting and parsing live together so they cannot drift apart.

use super::index::{ReleaseKind, Signature};

/// The value of trailer `key` in the last paragraph of `message`.
pub(crate) fn trailer<'m>(message: &'m str, key: &str) -> Option<&'m str> {
    // Trailers follow the title and a blank line; a one-paragraph message
    // has none.
    let (_, last) = message.trim_end().rsplit_once("\n\n")?;
    last.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim().eq_ignore_ascii_case(key)).then_some(v.trim())
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
