//! Who is releasing: the committer identity sent with every write.
//!
//! It resolves the identity the way git resolves a committer:
//! `GIT_COMMITTER_NAME` / `GIT_COMMITTER_EMAIL` first, then the
//! `committer.*` and `user.*` settings of `git config` (run as a
//! subprocess, so repository, global and system config all count), then
//! `EMAIL` for the email. It must
//! not link libgit2 or guess an identity git would not use.

use std::process::{Command, Stdio};

use release_manager::pb::Person;

use crate::error::CliError;

/// The committer of a write, from the process environment and git config;
/// `email` (the original hamctl's `--user-email`) wins over both.
pub(crate) fn resolve_committer(email: Option<&str>) -> Result<Person, CliError> {
    let email = email.map(str::trim).filter(|e| !e.is_empty());
    resolve_with(
        |name| match (name, email) {
            ("GIT_COMMITTER_EMAIL", Some(email)) => Some(email.to_owned()),
            _ => std::env::var(name).ok(),
        },
        git_config,
    )
}

/// [`resolve_committer`] over injected lookups, so the precedence rules can
/// be tested without touching the process environment.
fn resolve_with(
    env: impl Fn(&str) -> Option<String>,
    config: impl Fn(&str) -> Option<String>,
) -> Result<Person, CliError> {
    let lookup = |env_name: &str, keys: [&str; 2]| {
        env(env_name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
            .or_else(|| keys.iter().find_map(|key| config(key)))
    };
    // git falls back to $EMAIL when no email is configured.
    let email = lookup("GIT_COMMITTER_EMAIL", ["committer.email", "user.email"])
        .or_else(|| {
            env("EMAIL")
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        })
        .ok_or(CliError::CommitterUnknown {
            field: "email",
            key: "user.email",
            example: "you@example.com",
        })?;
    let name = lookup("GIT_COMMITTER_NAME", ["committer.name", "user.name"]).ok_or(
        CliError::CommitterUnknown {
            field: "name",
            key: "user.name",
            example: "\"Your Name\"",
        },
    )?;
    Ok(Person { name, email })
}

/// `git config --get <key>`; `None` when git is missing or the key unset.
fn git_config(key: &str) -> Option<String> {
    let output = Command::new("git")
        .args(["config", "--get", key])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let value = String::from_utf8(output.stdout).ok()?;
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn resolve(env: &[(&str, &str)], config: &[(&str, &str)]) -> Result<Person, String> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let config: HashMap<String, String> = config
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        resolve_with(|k| env.get(k).cloned(), |k| config.get(k).cloned())
            .map_err(|error| error.to_string())
    }

    #[test]
    fn git_config_user_is_used() {
        let person = resolve(
            &[],
            &[
                ("user.name", "Jane Doe"),
                ("user.email", "jane@example.com"),
            ],
        )
        .expect("resolves");
        assert_eq!(person.name, "Jane Doe");
        assert_eq!(person.email, "jane@example.com");
    }

    #[test]
    fn email_falls_back_to_the_email_variable_as_git_does() {
        let person = resolve(
            &[("EMAIL", "jane@example.com")],
            &[("user.name", "Jane Doe")],
        )
        .expect("resolves");
        assert_eq!(person.email, "jane@example.com");
        let configured = resolve(
            &[("EMAIL", "other@example.com")],
            &[
                ("user.name", "Jane Doe"),
                ("user.email", "jane@example.com"),
            ],
        )
        .expect("resolves");
        assert_eq!(
            configured.email, "jane@example.com",
            "config wins over EMAIL"
        );
    }

    #[test]
    fn environment_overrides_config() {
        let person = resolve(
            &[
                ("GIT_COMMITTER_NAME", "CI Bot"),
                ("GIT_COMMITTER_EMAIL", "ci@example.com"),
            ],
            &[
                ("user.name", "Jane Doe"),
                ("user.email", "jane@example.com"),
            ],
        )
        .expect("resolves");
        assert_eq!(person.name, "CI Bot");
        assert_eq!(person.email, "ci@example.com");
    }

    #[test]
    fn committer_config_overrides_user_config() {
        let person = resolve(
            &[("GIT_COMMITTER_EMAIL", "")],
            &[
                ("user.name", "Jane Doe"),
                ("user.email", "jane@example.com"),
                ("committer.email", "jane@work.example.com"),
            ],
        )
        .expect("resolves");
        assert_eq!(person.name, "Jane Doe");
        assert_eq!(person.email, "jane@work.example.com");
    }

    #[test]
    fn missing_email_is_a_clear_error() {
        let error = resolve(&[], &[("user.name", "Jane Doe")]).expect_err("fails");
        assert_eq!(
            error,
            "committer email unknown: set it with `git config --global user.email you@example.com`"
        );
    }

    #[test]
    fn missing_name_is_a_clear_error() {
        let error = resolve(&[], &[("user.email", "jane@example.com")]).expect_err("fails");
        assert_eq!(
            error,
            "committer name unknown: set it with `git config --global user.name \"Your Name\"`"
        );
    }
}
