//! What the original release manager's hamctl read from the working
//! directory, and its flags that have another spelling here.
//!
//! It owns three things: the defaults a service's repository gives through
//! its `shuttle.yaml` (`vars.service`, `vars.k8s.namespace`, read as the
//! original did: a missing or unreadable file gives nothing), the branch
//! checked out in the working directory (`release --current-branch`, asked
//! of `git`, never of libgit2), and the refusal of `--template`, which
//! names what does the same here. It must not talk to the server.

use std::path::Path;
use std::process::{Command, Stdio};

use clap::Args;
use serde::Deserialize;

use crate::error::CliError;

/// The file the original hamctl read its defaults from.
const SHUTTLE_FILE: &str = "shuttle.yaml";

/// Defaults from `shuttle.yaml`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ShuttleDefaults {
    /// `vars.service`.
    pub(crate) service: Option<String>,
    /// `vars.k8s.namespace`.
    pub(crate) namespace: Option<String>,
}

#[derive(Deserialize, Default)]
struct ShuttleFile {
    #[serde(default)]
    vars: Vars,
}

#[derive(Deserialize, Default)]
struct Vars {
    #[serde(default)]
    service: Option<serde_yaml::Value>,
    #[serde(default)]
    k8s: Option<K8s>,
}

#[derive(Deserialize, Default)]
struct K8s {
    #[serde(default)]
    namespace: Option<serde_yaml::Value>,
}

impl ShuttleDefaults {
    /// The defaults of `shuttle.yaml` in the working directory.
    pub(crate) fn read() -> Self {
        Self::read_from(Path::new(SHUTTLE_FILE))
    }

    /// The defaults of the shuttle file at `path`; nothing when it is
    /// missing or not YAML (as the original hamctl, which ignored both).
    pub(crate) fn read_from(path: &Path) -> Self {
        let Ok(text) = std::fs::read_to_string(path) else {
            return ShuttleDefaults::default();
        };
        Self::parse(&text)
    }

    fn parse(text: &str) -> Self {
        let Ok(file) = serde_yaml::from_str::<ShuttleFile>(text) else {
            return ShuttleDefaults::default();
        };
        let text_of = |value: Option<serde_yaml::Value>| match value {
            Some(serde_yaml::Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            _ => None,
        };
        ShuttleDefaults {
            service: text_of(file.vars.service),
            namespace: text_of(file.vars.k8s.and_then(|k| k.namespace)),
        }
    }
}

/// The branch checked out in the working directory's git repository.
pub(crate) fn current_branch() -> Result<String, CliError> {
    let output = Command::new("git")
        .args(["symbolic-ref", "--quiet", "--short", "HEAD"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    let branch = match output {
        Ok(out) if out.status.success() => String::from_utf8(out.stdout)
            .ok()
            .map(|b| b.trim().to_owned())
            .filter(|b| !b.is_empty()),
        _ => None,
    };
    branch.ok_or_else(|| {
        CliError::CurrentBranch(
            "could not determine the current branch (not in a git repository, or no branch \
             checked out): give --branch or --artifact"
                .to_owned(),
        )
    })
}

/// The original hamctl's `--template`: a Go template over its response.
/// Accepted by the parser only to be refused with what does the same here.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct TemplateArgs {
    #[arg(long, hide = true, value_name = "GO-TEMPLATE")]
    pub(crate) template: Option<String>,
}

/// Why `--template` is refused, naming the replacement.
pub(crate) const TEMPLATE_REFUSED: &str = "--template (a Go template) is not supported: \
     print JSON with `--output json` and pick fields with jq, e.g. \
     `hamctl describe release --service S --env E --output json | jq -r '.releases[].artifactId'` \
     (field names: docs/hamctl.md)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_and_namespace_from_a_shuttle_file() {
        let defaults = ShuttleDefaults::parse(
            "plan: git://github.com/acme/plan.git\nvars:\n  service: gateway\n  k8s:\n    namespace: edge\n  docker:\n    baseImage: alpine\n",
        );
        assert_eq!(defaults.service.as_deref(), Some("gateway"));
        assert_eq!(defaults.namespace.as_deref(), Some("edge"));
    }

    #[test]
    fn anything_else_gives_nothing() {
        for text in [
            "",
            "vars: [1, 2]",
            "vars:\n  service: 12\n",
            "not: [yaml",
            "plan: x\n",
        ] {
            assert_eq!(
                ShuttleDefaults::parse(text),
                ShuttleDefaults::default(),
                "{text}"
            );
        }
        assert_eq!(
            ShuttleDefaults::read_from(Path::new("/nonexistent/shuttle.yaml")),
            ShuttleDefaults::default()
        );
    }
}
