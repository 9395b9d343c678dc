//! The access file (`--access FILE`, YAML): named rules that match a
//! verified identity by its claims and allow actions in environments.
//!
//! ```yaml
//! groups_claim: groups          # optional: the claim that lists groups
//! rules:
//!   - name: developers
//!     groups: [dev-team]        # or emails, subjects, claims: {repository: "acme/*"}
//!     environments: [dev, staging]
//!     actions: [release, promote, rollback]
//! ```
//!
//! A rule matches when every matcher it gives matches (each list: any of
//! its entries). Patterns take `*` for any run of characters. A file that
//! does not read is refused with the line and column of the problem; a
//! rule with no matcher is refused (it would match everyone). Nothing here
//! verifies a token: it reads claims that `oidc` verified.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::Deserialize;
use serde_json::{Map, Value};

/// What a rule can allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Action {
    /// Release a build to an environment.
    Release,
    /// Promote to an environment.
    Promote,
    /// Roll back in an environment.
    Rollback,
    /// Apply or delete a service's policies for an environment.
    Policy,
    /// Upload a build (no environment).
    PushArtifact,
    /// Report a deployment's state in an environment.
    ReportDeployment,
}

impl Action {
    /// Every action, in the order `whoami` lists them.
    pub(crate) const ALL: [Action; 6] = [
        Action::Release,
        Action::Promote,
        Action::Rollback,
        Action::Policy,
        Action::PushArtifact,
        Action::ReportDeployment,
    ];

    /// Its name in the access file.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Action::Release => "release",
            Action::Promote => "promote",
            Action::Rollback => "rollback",
            Action::Policy => "policy",
            Action::PushArtifact => "push-artifact",
            Action::ReportDeployment => "report-deployment",
        }
    }

    /// Whether the action happens in an environment (an upload does not).
    pub(crate) fn has_environment(self) -> bool {
        self != Action::PushArtifact
    }
}

/// A pattern where `*` stands for any run of characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern(String);

impl Pattern {
    pub(crate) fn matches(&self, text: &str) -> bool {
        glob(self.0.as_bytes(), text.as_bytes())
    }
}

/// `*`-only glob matching, iterative with one backtrack point.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Claim values in YAML may be written unquoted as numbers or
        // booleans; they are compared as the text a token would hold.
        let value = serde_yaml::Value::deserialize(d)?;
        let text = match value {
            serde_yaml::Value::String(s) => s,
            serde_yaml::Value::Number(n) => n.to_string(),
            serde_yaml::Value::Bool(b) => b.to_string(),
            _ => return Err(serde::de::Error::custom("expected a string")),
        };
        if text.is_empty() {
            return Err(serde::de::Error::custom("an empty pattern matches nothing"));
        }
        Ok(Pattern(text))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    emails: Vec<String>,
    #[serde(default)]
    subjects: Vec<String>,
    #[serde(default)]
    claims: BTreeMap<String, Pattern>,
    #[serde(default)]
    environments: Option<Vec<Pattern>>,
    actions: Vec<Action>,
}

/// One named rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawRule")]
pub(crate) struct Rule {
    /// Its name, as denials and `whoami` show it.
    pub(crate) name: String,
    groups: Vec<String>,
    emails: Vec<String>,
    subjects: Vec<String>,
    claims: BTreeMap<String, Pattern>,
    environments: Vec<Pattern>,
    actions: Vec<Action>,
}

impl TryFrom<RawRule> for Rule {
    type Error = String;

    fn try_from(raw: RawRule) -> Result<Self, String> {
        if raw.name.trim().is_empty() {
            return Err("a rule needs a name".into());
        }
        if raw.groups.is_empty()
            && raw.emails.is_empty()
            && raw.subjects.is_empty()
            && raw.claims.is_empty()
        {
            return Err(format!(
                "rule {:?} matches nobody in particular: give groups, emails, subjects or claims",
                raw.name
            ));
        }
        if raw.actions.is_empty() {
            return Err(format!("rule {:?} allows no action", raw.name));
        }
        Ok(Rule {
            name: raw.name,
            groups: raw.groups,
            emails: raw.emails,
            subjects: raw.subjects,
            claims: raw.claims,
            environments: raw
                .environments
                .unwrap_or_else(|| vec![Pattern("*".into())]),
            actions: raw.actions,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    groups_claim: Option<String>,
    rules: Vec<Rule>,
}

/// The rules of one access file.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    groups_claim: String,
    rules: Vec<Rule>,
}

/// The text values of claim `name` (a string, or the strings of a list).
fn claim_values<'c>(claims: &'c Map<String, Value>, name: &str) -> Vec<&'c str> {
    match claims.get(name) {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn claim_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Rule {
    fn matches(&self, claims: &Map<String, Value>, groups_claim: &str) -> bool {
        let groups = claim_values(claims, groups_claim);
        let email = claims.get("email").and_then(Value::as_str);
        let subject = claims.get("sub").and_then(Value::as_str);
        (self.groups.is_empty() || self.groups.iter().any(|g| groups.contains(&g.as_str())))
            && (self.emails.is_empty()
                || email.is_some_and(|e| self.emails.iter().any(|x| x.eq_ignore_ascii_case(e))))
            && (self.subjects.is_empty()
                || subject.is_some_and(|s| self.subjects.iter().any(|x| x == s)))
            && self
                .claims
                .iter()
                .all(|(name, pattern)| match claims.get(name) {
                    Some(Value::Array(items)) => items
                        .iter()
                        .filter_map(claim_text)
                        .any(|v| pattern.matches(&v)),
                    Some(value) => claim_text(value).is_some_and(|v| pattern.matches(&v)),
                    None => false,
                })
    }

    fn allows(&self, action: Action, environment: Option<&str>) -> bool {
        self.actions.contains(&action)
            && match environment {
                Some(environment) if action.has_environment() => {
                    self.environments.iter().any(|p| p.matches(environment))
                }
                _ => true,
            }
    }
}

impl Rules {
    /// Reads rules from YAML; the error names the line and column.
    pub(crate) fn parse(text: &str) -> Result<Rules, String> {
        let file: File = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
        let mut seen = std::collections::HashSet::new();
        for rule in &file.rules {
            if !seen.insert(rule.name.as_str()) {
                return Err(format!("two rules are named {:?}", rule.name));
            }
        }
        Ok(Rules {
            groups_claim: file.groups_claim.unwrap_or_else(|| "groups".into()),
            rules: file.rules,
        })
    }

    /// Reads the file at `path`.
    pub(crate) fn load(path: &Path) -> Result<Rules, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the access file {}: {e}", path.display()))?;
        Rules::parse(&text).map_err(|e| format!("access file {}: {e}", path.display()))
    }

    /// The groups an identity's claims list.
    pub(crate) fn groups(&self, claims: &Map<String, Value>) -> Vec<String> {
        claim_values(claims, &self.groups_claim)
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    /// The rules that match these claims.
    pub(crate) fn matching<'r>(&'r self, claims: &Map<String, Value>) -> Vec<&'r Rule> {
        self.rules
            .iter()
            .filter(|r| r.matches(claims, &self.groups_claim))
            .collect()
    }

    /// The first rule that allows `action` (in `environment`) to these
    /// claims.
    pub(crate) fn allowing(
        &self,
        claims: &Map<String, Value>,
        action: Action,
        environment: Option<&str>,
    ) -> Option<&Rule> {
        self.matching(claims)
            .into_iter()
            .find(|r| r.allows(action, environment))
    }
}

/// The rules in force, and where they come from: swapped whole on a
/// reload, so a check sees the old rules or the new, never a mix.
#[derive(Debug)]
pub(crate) struct RulesInForce {
    path: Option<PathBuf>,
    current: RwLock<Option<Arc<Rules>>>,
}

impl RulesInForce {
    /// Loads `path` (none: no rules, so identities may only read).
    pub(crate) fn load(path: Option<&Path>) -> Result<Self, String> {
        let current = path.map(Rules::load).transpose()?.map(Arc::new);
        Ok(RulesInForce {
            path: path.map(Path::to_path_buf),
            current: RwLock::new(current),
        })
    }

    /// The rules now.
    pub(crate) fn get(&self) -> Option<Arc<Rules>> {
        self.current
            .read()
            .expect("rules lock not poisoned")
            .clone()
    }

    /// Reads the file again; on an error the rules in force stay.
    pub(crate) fn reload(&self) -> Result<usize, String> {
        let Some(path) = &self.path else {
            return Ok(0);
        };
        let rules = Rules::load(path)?;
        let count = rules.rules.len();
        *self.current.write().expect("rules lock not poisoned") = Some(Arc::new(rules));
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
rules:
  - name: sre
    groups: [sre]
    environments: ["*"]
    actions: [release, promote, rollback, policy]
  - name: developers
    groups: [dev-team]
    environments: [dev, staging]
    actions: [release, promote, rollback]
  - name: ci
    claims: {iss: "https://token.actions.githubusercontent.com", repository_owner: acme}
    actions: [push-artifact, report-deployment]
  - name: shop-team
    claims: {repository: "acme/shop-*"}
    emails: [Lead@Example.com]
    environments: ["prod-*"]
    actions: [release]
"#;

    fn claims(json: Value) -> Map<String, Value> {
        json.as_object().unwrap().clone()
    }

    #[test]
    fn the_example_of_the_docs_allows_what_it_says() {
        let rules = Rules::parse(EXAMPLE).unwrap();
        let dev = claims(serde_json::json!({"sub": "d", "groups": ["dev-team", "x"]}));
        assert_eq!(
            rules
                .allowing(&dev, Action::Release, Some("dev"))
                .map(|r| r.name.as_str()),
            Some("developers")
        );
        assert!(rules
            .allowing(&dev, Action::Release, Some("prod"))
            .is_none());
        assert!(rules.allowing(&dev, Action::Policy, Some("dev")).is_none());
        let sre = claims(serde_json::json!({"groups": "sre"}));
        assert!(rules.allowing(&sre, Action::Policy, Some("prod")).is_some());
        let ci = claims(serde_json::json!({
            "iss": "https://token.actions.githubusercontent.com", "repository_owner": "acme"}));
        assert!(rules.allowing(&ci, Action::PushArtifact, None).is_some());
        assert!(rules.allowing(&ci, Action::Release, Some("dev")).is_none());
        let other = claims(serde_json::json!({
            "iss": "https://token.actions.githubusercontent.com", "repository_owner": "mallory"}));
        assert!(rules.allowing(&other, Action::PushArtifact, None).is_none());
        let lead =
            claims(serde_json::json!({"email": "lead@example.com", "repository": "acme/shop-web"}));
        assert!(rules
            .allowing(&lead, Action::Release, Some("prod-eu"))
            .is_some());
        assert!(rules
            .allowing(&lead, Action::Release, Some("prod"))
            .is_none());
        assert_eq!(rules.groups(&dev), vec!["dev-team", "x"]);
    }

    #[test]
    fn patterns_take_stars() {
        let p = |s: &str| Pattern(s.into());
        assert!(p("*").matches(""));
        assert!(p("acme/*").matches("acme/shop"));
        assert!(!p("acme/*").matches("acme"));
        assert!(p("a*b*c").matches("aXbYbc"));
        assert!(!p("a*b*c").matches("aXbYb"));
        assert!(p("prod").matches("prod") && !p("prod").matches("prod2"));
    }

    #[test]
    fn a_bad_file_is_refused_naming_the_line() {
        let unknown_action =
            "rules:\n  - name: a\n    groups: [x]\n    actions: [release, deploy]\n";
        let error = Rules::parse(unknown_action).unwrap_err();
        assert!(
            error.contains("deploy") && error.contains("line 4"),
            "{error}"
        );
        let unknown_field = "rules:\n  - name: a\n    group: [x]\n    actions: [release]\n";
        let error = Rules::parse(unknown_field).unwrap_err();
        assert!(
            error.contains("group") && error.contains("line 3"),
            "{error}"
        );
        let everyone = "rules:\n  - name: a\n    actions: [release]\n";
        let error = Rules::parse(everyone).unwrap_err();
        assert!(error.contains("matches nobody in particular"), "{error}");
        assert!(error.contains("line 2"), "{error}");
        let twice = "rules:\n  - {name: a, groups: [x], actions: [release]}\n  - {name: a, groups: [y], actions: [release]}\n";
        assert!(Rules::parse(twice).unwrap_err().contains("two rules"));
    }
}
