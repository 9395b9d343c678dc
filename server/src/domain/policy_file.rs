//! Release policies: the `policies/<service>.json` format (strict, 2-space
//! pretty JSON), policy ids, and the rules between auto-releases and branch
//! restrictions. Pure code: no git, no I/O.

use regex::Regex;
use serde::{Deserialize, Serialize};

/// The contents of `policies/<service>.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PolicyFile {
    /// The service the file belongs to (a hand-written file may leave it
    /// out: the file name says it).
    #[serde(default)]
    pub(crate) service: String,
    /// Auto-release policies, at most one per environment. Left out of the
    /// file when empty, as the original release manager's reader expects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) auto_releases: Vec<AutoRelease>,
    /// Branch restrictions, at most one per environment; left out when
    /// empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) branch_restrictions: Vec<BranchRestriction>,
}

/// Release every new build of `branch` to `environment`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct AutoRelease {
    /// `auto-release-<branch>-<environment>`.
    pub(crate) id: String,
    /// Source branch.
    pub(crate) branch: String,
    /// Target environment.
    pub(crate) environment: String,
}

/// Only branches matching `branch_regex` may be released to `environment`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct BranchRestriction {
    /// `branch-restriction-<environment>`.
    pub(crate) id: String,
    /// The environment restricted.
    pub(crate) environment: String,
    /// The regex a branch must match (anywhere, unless anchored).
    pub(crate) branch_regex: String,
}

/// A restriction set for every service by server configuration.
#[derive(Debug, Clone)]
pub struct GlobalRestriction {
    /// The environment restricted.
    pub(crate) environment: String,
    /// The compiled regex.
    pub(crate) regex: Regex,
}

/// Id of an auto-release policy.
pub(crate) fn auto_release_id(branch: &str, environment: &str) -> String {
    format!("auto-release-{branch}-{environment}")
}

/// Id of a branch restriction.
pub(crate) fn branch_restriction_id(environment: &str) -> String {
    format!("branch-restriction-{environment}")
}

/// Compiles a branch regex; the error is the regex crate's own message.
pub(crate) fn compile(regex: &str) -> Result<Regex, String> {
    Regex::new(regex).map_err(|e| format!("invalid branch regex {regex:?}: {e}"))
}

/// Parses `--policy-branch-restrictions env=regex,...`.
pub fn parse_global(spec: &str) -> Result<Vec<GlobalRestriction>, String> {
    spec.split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| {
            let (environment, regex) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not of the form env=regex"))?;
            Ok(GlobalRestriction {
                environment: environment.trim().to_string(),
                regex: compile(regex.trim())?,
            })
        })
        .collect()
}

impl PolicyFile {
    /// Parses a policies file. An empty file holds no policies; anything
    /// else must be the exact format.
    pub(crate) fn parse(service: &str, bytes: &[u8]) -> Result<Self, String> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(PolicyFile {
                service: service.to_string(),
                ..PolicyFile::default()
            });
        }
        let mut file: PolicyFile = serde_json::from_slice(bytes)
            .map_err(|e| format!("policies/{service}.json cannot be read: {e}"))?;
        if file.service.is_empty() {
            file.service = service.to_string();
        }
        if file.service != service {
            return Err(format!(
                "policies/{service}.json belongs to service {:?}",
                file.service
            ));
        }
        Ok(file)
    }

    /// The stored form: pretty JSON with a 2-space indent and a newline.
    pub(crate) fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("policies serialize");
        text.push('\n');
        text
    }

    /// Whether the file holds no policy (it is then deleted).
    pub(crate) fn is_empty(&self) -> bool {
        self.auto_releases.is_empty() && self.branch_restrictions.is_empty()
    }

    /// Checks that `branch` may be released to `environment` under this
    /// file's and the server-wide restrictions; the error names the policy.
    pub(crate) fn check_release(
        &self,
        globals: &[GlobalRestriction],
        environment: &str,
        branch: &str,
    ) -> Result<(), String> {
        for global in globals.iter().filter(|g| g.environment == environment) {
            if !global.regex.is_match(branch) {
                return Err(format!(
                    "branch {branch:?} may not be released to {environment}: server-wide policy {} allows only branches matching {:?}",
                    branch_restriction_id(environment),
                    global.regex.as_str()
                ));
            }
        }
        for restriction in self
            .branch_restrictions
            .iter()
            .filter(|r| r.environment == environment)
        {
            let regex = compile(&restriction.branch_regex)?;
            if !regex.is_match(branch) {
                return Err(format!(
                    "branch {branch:?} may not be released to {environment}: policy {} allows only branches matching {:?}",
                    restriction.id, restriction.branch_regex
                ));
            }
        }
        Ok(())
    }

    /// Adds or replaces the auto-release of `environment`. `Ok(false)` when
    /// it was already in place.
    pub(crate) fn apply_auto_release(
        &mut self,
        globals: &[GlobalRestriction],
        branch: &str,
        environment: &str,
    ) -> Result<bool, String> {
        self.check_release(globals, environment, branch)
            .map_err(|e| format!("auto-release conflicts with a branch restriction: {e}"))?;
        let id = auto_release_id(branch, environment);
        if self
            .auto_releases
            .iter()
            .any(|a| a.environment == environment && a.branch == branch)
        {
            return Ok(false);
        }
        self.auto_releases.retain(|a| a.environment != environment);
        self.auto_releases.push(AutoRelease {
            id,
            branch: branch.to_string(),
            environment: environment.to_string(),
        });
        Ok(true)
    }

    /// Adds or replaces the branch restriction of `environment`. `Ok(false)`
    /// when it was already in place. Refused when the regex does not
    /// compile or an auto-release to that environment would break it.
    pub(crate) fn apply_branch_restriction(
        &mut self,
        environment: &str,
        regex: &str,
    ) -> Result<bool, String> {
        let compiled = compile(regex)?;
        if let Some(auto) = self
            .auto_releases
            .iter()
            .find(|a| a.environment == environment && !compiled.is_match(&a.branch))
        {
            return Err(format!(
                "branch restriction {regex:?} for {environment} conflicts with policy {}: branch {:?} does not match it; delete that auto-release first",
                auto.id, auto.branch
            ));
        }
        if self
            .branch_restrictions
            .iter()
            .any(|r| r.environment == environment && r.branch_regex == regex)
        {
            return Ok(false);
        }
        self.branch_restrictions
            .retain(|r| r.environment != environment);
        self.branch_restrictions.push(BranchRestriction {
            id: branch_restriction_id(environment),
            environment: environment.to_string(),
            branch_regex: regex.to_string(),
        });
        Ok(true)
    }

    /// Deletes policies by id; returns how many were deleted.
    pub(crate) fn delete(&mut self, ids: &[String]) -> usize {
        let before = self.auto_releases.len() + self.branch_restrictions.len();
        self.auto_releases.retain(|a| !ids.contains(&a.id));
        self.branch_restrictions.retain(|r| !ids.contains(&r.id));
        before - self.auto_releases.len() - self.branch_restrictions.len()
    }
}

/// The policies of `service` in `root` (a tree of the config branch):
/// empty for a service without a file (also one with no builds yet: that
/// is how a service is onboarded, and its first build then releases
/// itself). The one reader of policy files.
pub(crate) fn read_at(
    repo: &git2::Repository,
    root: &git2::Tree<'_>,
    service: &str,
) -> Result<PolicyFile, crate::domain::FlowError> {
    use crate::domain::{git, FlowError, Reason};
    match crate::repo::tree::blob_at(repo, root, &format!("policies/{service}.json"))
        .map_err(git("read policies"))?
    {
        Some(bytes) => PolicyFile::parse(service, &bytes)
            .map_err(|message| FlowError::precondition(Reason::PolicyFileInvalid, message)),
        None => Ok(PolicyFile {
            service: service.to_string(),
            ..PolicyFile::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> PolicyFile {
        PolicyFile {
            service: "shop".into(),
            ..PolicyFile::default()
        }
    }

    #[test]
    fn parses_strictly_but_accepts_an_empty_file() {
        assert_eq!(PolicyFile::parse("shop", b"").unwrap(), file());
        assert_eq!(PolicyFile::parse("shop", b"  \n").unwrap(), file());
        let garbage = PolicyFile::parse("shop", b"not json").unwrap_err();
        assert!(
            garbage.contains("policies/shop.json cannot be read"),
            "{garbage}"
        );
        let unknown =
            PolicyFile::parse("shop", br#"{"service":"shop","autoRelease":[]}"#).unwrap_err();
        assert!(unknown.contains("unknown field `autoRelease`"), "{unknown}");
        let other = PolicyFile::parse("shop", br#"{"service":"cart"}"#).unwrap_err();
        assert!(other.contains("belongs to service \"cart\""));
        let full = br#"{"service":"shop","autoReleases":[{"id":"auto-release-master-dev","branch":"master","environment":"dev"}],"branchRestrictions":[]}"#;
        let parsed = PolicyFile::parse("shop", full).unwrap();
        assert_eq!(parsed.auto_releases[0].branch, "master");
    }

    #[test]
    fn writes_two_space_pretty_json() {
        let mut f = file();
        f.apply_auto_release(&[], "master", "dev").unwrap();
        assert_eq!(
            f.to_json(),
            "{\n  \"service\": \"shop\",\n  \"autoReleases\": [\n    {\n      \"id\": \"auto-release-master-dev\",\n      \"branch\": \"master\",\n      \"environment\": \"dev\"\n    }\n  ]\n}\n"
        );
    }

    #[test]
    fn a_file_without_its_service_takes_it_from_its_name() {
        let parsed = PolicyFile::parse(
            "shop",
            br#"{"autoReleases":[{"id":"auto-release-master-dev","branch":"master","environment":"dev"}]}"#,
        )
        .unwrap();
        assert_eq!(parsed.service, "shop");
        assert_eq!(parsed.auto_releases.len(), 1);
    }

    #[test]
    fn one_auto_release_per_environment() {
        let mut f = file();
        assert!(f.apply_auto_release(&[], "master", "dev").unwrap());
        assert!(
            !f.apply_auto_release(&[], "master", "dev").unwrap(),
            "same again: no change"
        );
        assert!(f.apply_auto_release(&[], "develop", "dev").unwrap());
        assert_eq!(f.auto_releases.len(), 1);
        assert_eq!(f.auto_releases[0].id, "auto-release-develop-dev");
        assert!(f.apply_auto_release(&[], "master", "staging").unwrap());
        assert_eq!(f.auto_releases.len(), 2);
    }

    #[test]
    fn restrictions_and_auto_releases_must_agree_both_ways() {
        let mut f = file();
        f.apply_auto_release(&[], "feature/x", "prod").unwrap();
        let err = f.apply_branch_restriction("prod", "^master$").unwrap_err();
        assert!(err.contains("auto-release-feature/x-prod"), "{err}");
        let mut g = file();
        g.apply_branch_restriction("prod", "^master$").unwrap();
        let err = g.apply_auto_release(&[], "feature/x", "prod").unwrap_err();
        assert!(err.contains("branch-restriction-prod"), "{err}");
        g.apply_auto_release(&[], "master", "prod").unwrap();
    }

    #[test]
    fn loose_and_anchored_regexes() {
        let mut f = file();
        f.apply_branch_restriction("prod", "master").unwrap();
        f.check_release(&[], "prod", "master").unwrap();
        f.check_release(&[], "prod", "fix/master-login").unwrap();
        f.apply_branch_restriction("prod", "^master$").unwrap();
        assert!(f.check_release(&[], "prod", "fix/master-login").is_err());
        f.check_release(&[], "dev", "anything").unwrap();
    }

    #[test]
    fn invalid_regex_reports_the_regex_error() {
        let err = file()
            .apply_branch_restriction("prod", "ma(ster")
            .unwrap_err();
        assert!(err.contains("invalid branch regex \"ma(ster\""), "{err}");
        assert!(err.contains("unclosed group"), "{err}");
    }

    #[test]
    fn global_restrictions_apply_to_every_file() {
        let globals = parse_global("prod=^(master|main)$, staging=^release/").unwrap();
        assert_eq!(globals.len(), 2);
        let f = file();
        f.check_release(&globals, "prod", "main").unwrap();
        let err = f.check_release(&globals, "prod", "dev").unwrap_err();
        assert!(
            err.contains("server-wide policy branch-restriction-prod"),
            "{err}"
        );
        assert!(parse_global("prod").is_err());
        assert!(parse_global("prod=(").is_err());
    }

    #[test]
    fn delete_counts_and_empties() {
        let mut f = file();
        f.apply_auto_release(&[], "master", "dev").unwrap();
        f.apply_branch_restriction("prod", "^master$").unwrap();
        assert_eq!(f.delete(&["nope".into()]), 0);
        assert_eq!(
            f.delete(&[
                "auto-release-master-dev".into(),
                "branch-restriction-prod".into()
            ]),
            2
        );
        assert!(f.is_empty());
    }
}
