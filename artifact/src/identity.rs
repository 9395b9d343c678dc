//! Which service and branch a build belongs to, when `artifact init` was not
//! told (the original release manager's pipelines never said: the service
//! and branch came from where CI put the files). `push` resolves them, in
//! this order: its own flags, then the CI system's well-known variables
//! (branch only), then the git checkout the build runs in (branch only),
//! and writes them into the artifact.json it uploads.
//!
//! It must not talk to the server; `push` does.

use std::path::Path;
use std::process::Command;

use release_manager::names;

use crate::error::CliError;

/// Variables CI systems set to the branch being built: GitHub Actions,
/// GitLab CI, Jenkins multibranch, Jenkins' git plugin.
const BRANCH_VARIABLES: &[&str] = &[
    "GITHUB_REF_NAME",
    "CI_COMMIT_REF_NAME",
    "BRANCH_NAME",
    "GIT_BRANCH",
];

/// The service: what artifact.json says, else `--service` of push.
pub(crate) fn service(recorded: &str, flag: Option<&str>) -> Result<String, CliError> {
    let service = match (recorded, flag) {
        (recorded, Some(flag)) if !recorded.is_empty() && recorded != flag => {
            return Err(CliError::Unresolved(format!(
                "--service {flag:?} differs from the service {recorded:?} in artifact.json"
            )))
        }
        ("", Some(flag)) => flag.to_string(),
        ("", None) => {
            return Err(CliError::Unresolved(
                "the build's service is not known: give --service to `artifact init` or `artifact push`"
                    .into(),
            ))
        }
        (recorded, _) => recorded.to_string(),
    };
    names::check_service(&service).map_err(|e| CliError::Unresolved(e.to_string()))?;
    Ok(service)
}

/// The branch: what artifact.json says, else `--git-branch` of push, else
/// the CI variables, else the checkout at `root`.
pub(crate) fn branch(
    recorded: &str,
    flag: Option<&str>,
    root: &Path,
    variable: impl Fn(&str) -> Option<String>,
) -> Result<String, CliError> {
    if !recorded.is_empty() {
        return Ok(recorded.to_string());
    }
    let from_ci = || {
        BRANCH_VARIABLES
            .iter()
            .filter_map(|name| variable(name))
            .map(|value| {
                // Jenkins' git plugin says `origin/master`.
                value
                    .strip_prefix("origin/")
                    .map_or(value.clone(), str::to_string)
            })
            .find(|value| !value.is_empty())
    };
    let branch = flag
        .map(str::to_string)
        .or_else(from_ci)
        .or_else(|| checkout_branch(root))
        .ok_or_else(|| {
            CliError::Unresolved(format!(
                "the build's branch is not known: give --git-branch to `artifact init` or \
                 `artifact push`, or set one of {}",
                BRANCH_VARIABLES.join(", ")
            ))
        })?;
    names::check_branch(&branch, &[]).map_err(|e| CliError::Unresolved(e.to_string()))?;
    Ok(branch)
}

/// The branch checked out at `root`, if it is a git checkout on a branch.
fn checkout_branch(root: &Path) -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--abbrev-ref", "HEAD"])
        .current_dir(root)
        .output()
        .ok()?;
    let name = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !name.is_empty() && name != "HEAD").then_some(name)
}

/// artifact.json with `service` and `application.branch` filled in, in the
/// file's own field order.
pub(crate) fn with_identity(bytes: &[u8], service: &str, branch: &str) -> Result<Vec<u8>, String> {
    let mut spec: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("cannot read: {e}"))?;
    let object = spec
        .as_object_mut()
        .ok_or("artifact.json is not a JSON object")?;
    object.insert("service".into(), service.into());
    let application = object
        .entry("application")
        .or_insert_with(|| serde_json::json!({}));
    if let Some(application) = application.as_object_mut() {
        application.insert("branch".into(), branch.into());
    }
    let mut text = serde_json::to_vec_pretty(&spec).map_err(|e| e.to_string())?;
    text.push(b'\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_variables(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_service_comes_from_the_file_or_the_flag() {
        assert_eq!(service("shop", None).unwrap(), "shop");
        assert_eq!(service("", Some("shop")).unwrap(), "shop");
        assert!(service("", None)
            .unwrap_err()
            .to_string()
            .contains("--service"));
        assert!(service("shop", Some("cart")).is_err());
    }

    #[test]
    fn the_branch_comes_from_flag_then_ci_then_checkout() {
        let nowhere = tempfile::tempdir().unwrap();
        let root = nowhere.path();
        assert_eq!(
            branch("main", Some("x"), root, no_variables).unwrap(),
            "main"
        );
        assert_eq!(
            branch("", Some("feature/x"), root, no_variables).unwrap(),
            "feature/x"
        );
        let jenkins = |name: &str| (name == "GIT_BRANCH").then(|| "origin/master".to_string());
        assert_eq!(branch("", None, root, jenkins).unwrap(), "master");
        let error = branch("", None, root, no_variables)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("--git-branch") && error.contains("GITHUB_REF_NAME"),
            "{error}"
        );
    }

    #[test]
    fn the_uploaded_file_gets_both() {
        let text =
            with_identity(br#"{"id":"x","application":{"sha":"a"}}"#, "shop", "master").unwrap();
        let value: serde_json::Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(value["service"], "shop");
        assert_eq!(value["application"]["branch"], "master");
        assert_eq!(value["application"]["sha"], "a");
    }
}
