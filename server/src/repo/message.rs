//! Commit messages of the config repository: titles such as
//! `[dev/product-api] release <id>` and the trailers (`Artifact-ID:` ...)
//! that let history be read back exactly. Formatting and parsing live
//! together so they cannot drift apart.

/// What a commit title says the commit is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Title {
    /// `[<service>] build tag <artifact-id>`
    Build {
        /// Service.
        service: String,
        /// Artifact id.
        artifact_id: String,
    },
    /// `[<env>/<service>] release <artifact-id>` or `... rollback <id>`
    Release {
        /// Environment.
        environment: String,
        /// Service.
        service: String,
        /// Artifact id.
        artifact_id: String,
        /// `true` for a rollback title.
        rollback: bool,
    },
    /// `[<service>] policy update: ...`
    Policy {
        /// Service.
        service: String,
    },
}

/// Parses the first line of a commit message; `None` for commits the
/// release manager does not know (someone's manual change).
pub fn parse_title(message: &str) -> Option<Title> {
    let line = message.lines().next()?.trim_end();
    let rest = line.strip_prefix('[')?;
    let (scope, action) = rest.split_once("] ")?;
    if let Some((environment, service)) = scope.split_once('/') {
        let (verb, artifact_id) = action.split_once(' ')?;
        let rollback = match verb {
            "release" => false,
            "rollback" => true,
            _ => return None,
        };
        if artifact_id.is_empty() || artifact_id.contains(' ') {
            return None;
        }
        return Some(Title::Release {
            environment: environment.to_string(),
            service: service.to_string(),
            artifact_id: artifact_id.to_string(),
            rollback,
        });
    }
    if let Some(artifact_id) = action.strip_prefix("build tag ") {
        return Some(Title::Build {
            service: scope.to_string(),
            artifact_id: artifact_id.trim().to_string(),
        });
    }
    if action.starts_with("policy update") {
        return Some(Title::Policy {
            service: scope.to_string(),
        });
    }
    None
}

/// The value of trailer `key` in the last paragraph of `message`.
pub fn trailer<'m>(message: &'m str, key: &str) -> Option<&'m str> {
    let last = message.trim_end().rsplit("\n\n").next()?;
    last.lines().find_map(|line| {
        let (k, v) = line.split_once(": ")?;
        (k.eq_ignore_ascii_case(key)).then_some(v.trim())
    })
}

/// Builds a message: a title, a blank line, then `Key: value` trailers
/// (empty values are left out).
pub fn compose(title: &str, trailers: &[(&str, &str)]) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_titles_of_the_layout() {
        assert_eq!(
            parse_title("[dev/product-api] release master-1-2\n\nArtifact-ID: x"),
            Some(Title::Release {
                environment: "dev".into(),
                service: "product-api".into(),
                artifact_id: "master-1-2".into(),
                rollback: false
            })
        );
        assert!(matches!(
            parse_title("[prod/a] rollback id-1"),
            Some(Title::Release { rollback: true, .. })
        ));
        assert_eq!(
            parse_title("[svc] build tag feature-x-1-2"),
            Some(Title::Build {
                service: "svc".into(),
                artifact_id: "feature-x-1-2".into()
            })
        );
        assert_eq!(
            parse_title("[svc] policy update: apply auto-release"),
            Some(Title::Policy {
                service: "svc".into()
            })
        );
        assert_eq!(parse_title("Merge branch 'x'"), None);
        assert_eq!(parse_title("[dev/x] deploy y"), None);
    }

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
}
