//! The artifact.json spec: what a build says about itself. Parsing is strict
//! (unknown fields are refused) but tolerant of files older tools wrote
//! without `service`, `namespace` or `application.branch`. Stage data is kept
//! as raw JSON so that one malformed stage only makes its own figure unknown.

use serde::{Deserialize, Serialize};

/// The contents of `artifact.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArtifactSpec {
    /// Artifact id, unique per service.
    pub id: String,
    /// Service name (absent in files of older tools, and left out when
    /// empty so that their strict readers accept what we write).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service: String,
    /// Namespace to release into (absent in files of older tools; left out
    /// when empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Owning squad.
    #[serde(default)]
    pub squad: String,
    /// The source change the build was made from.
    #[serde(default)]
    pub application: Repository,
    /// The CI job.
    #[serde(default)]
    pub ci: Ci,
    /// The shuttle plan used by the build.
    #[serde(default)]
    pub shuttle: Shuttle,
    /// Build stages in the order they ran.
    #[serde(default)]
    pub stages: Vec<Stage>,
}

/// A source repository commit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Repository {
    /// Commit sha.
    #[serde(default)]
    pub sha: String,
    /// Branch (absent in files of older tools; left out when empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub branch: String,
    /// Author name.
    #[serde(default)]
    pub author_name: String,
    /// Author email.
    #[serde(default)]
    pub author_email: String,
    /// Committer name.
    #[serde(default)]
    pub committer_name: String,
    /// Committer email.
    #[serde(default)]
    pub committer_email: String,
    /// Commit message.
    #[serde(default)]
    pub message: String,
    /// Repository name.
    #[serde(default)]
    pub name: String,
    /// Link to the commit.
    #[serde(default)]
    pub url: String,
    /// Hosting provider, e.g. GitHub.
    #[serde(default)]
    pub provider: String,
}

/// The CI job that made the build.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ci {
    /// Link to the job.
    #[serde(default)]
    pub job_url: String,
    /// Start time, RFC 3339; left out until known (every reader of the
    /// original release manager refuses an empty time).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub start: String,
    /// End time, RFC 3339; left out until known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub end: String,
}

/// The shuttle plan of the build.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Shuttle {
    /// The plan repository commit.
    #[serde(default)]
    pub plan: Repository,
    /// Shuttle version.
    #[serde(default)]
    pub shuttle_version: String,
}

/// One build stage; `data` depends on `id`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// One of build, push, test, snyk-code, snyk-docker.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Stage data, kept raw.
    #[serde(default)]
    pub data: serde_json::Value,
}

/// Vulnerability counts by severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VulnerabilityCounts {
    /// High severity.
    #[serde(default)]
    pub high: u32,
    /// Medium severity.
    #[serde(default)]
    pub medium: u32,
    /// Low severity.
    #[serde(default)]
    pub low: u32,
}

/// The `id` of an artifact.json already in a config repository, read as
/// leniently as anything there may be written: unknown fields, and bytes
/// after the first JSON value, are ignored. History is read this way, so a
/// file that a newer or older tool wrote still marks its commit as a build
/// or release. `None` without a non-empty string `id`.
pub fn committed_id(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct IdOnly {
        id: String,
    }
    let mut values = serde_json::Deserializer::from_slice(bytes).into_iter::<IdOnly>();
    match values.next() {
        Some(Ok(IdOnly { id })) if !id.trim().is_empty() => Some(id),
        _ => None,
    }
}

/// Whether an artifact.json time says nothing: empty, or Go's zero time.
pub fn is_unset_time(time: &str) -> bool {
    time.is_empty() || time.starts_with("0001-01-01T00:00:00")
}

impl ArtifactSpec {
    /// Parses artifact.json strictly.
    pub fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Parses an artifact.json already in a config repository, as leniently
    /// as is safe: the original release manager rewrote the file without
    /// truncating it, so a shorter file can end in the old one's tail. The
    /// first JSON value counts; the second element says what was ignored
    /// (for a warning). Uploads are parsed strictly ([`ArtifactSpec::parse`]).
    pub fn parse_committed(bytes: &[u8]) -> Result<(Self, Option<String>), serde_json::Error> {
        let strict = match Self::parse(bytes) {
            Ok(spec) => return Ok((spec, None)),
            Err(error) => error,
        };
        let mut values = serde_json::Deserializer::from_slice(bytes).into_iter::<Self>();
        match values.next() {
            Some(Ok(spec)) => {
                let rest = bytes.len() - values.byte_offset();
                Ok((
                    spec,
                    Some(format!("ignored {rest} bytes after the JSON value")),
                ))
            }
            _ => Err(strict),
        }
    }

    /// Pretty JSON with a 2-space indent and a final newline, as stored.
    pub fn to_pretty_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("spec serializes");
        text.push('\n');
        text
    }

    /// Sum of the snyk-code and snyk-docker findings; `None` when the build
    /// has no scan stage or one of them cannot be read.
    pub fn vulnerabilities(&self) -> Option<VulnerabilityCounts> {
        let mut sum = VulnerabilityCounts::default();
        let mut seen = false;
        for stage in self
            .stages
            .iter()
            .filter(|s| s.id == "snyk-code" || s.id == "snyk-docker")
        {
            let counts: VulnerabilityCounts =
                serde_json::from_value(stage.data.get("vulnerabilities")?.clone()).ok()?;
            // Absurd counts make the figure unknown rather than wrong.
            sum.high = sum.high.checked_add(counts.high)?;
            sum.medium = sum.medium.checked_add(counts.medium)?;
            sum.low = sum.low.checked_add(counts.low)?;
            seen = true;
        }
        seen.then_some(sum)
    }

    /// When the build finished: `ci.end`, else `ci.start`. A zero time
    /// (`0001-01-01T00:00:00Z`, what the original's CLI wrote for a job that
    /// never called `end`) counts as unset.
    pub fn build_time(&self) -> &str {
        if is_unset_time(&self.ci.end) {
            &self.ci.start
        } else {
            &self.ci.end
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD_TOOL: &str = r#"{
  "id": "master-abc-def",
  "application": {"sha": "abc", "authorName": "dev0", "authorEmail": "dev0@example.com",
    "committerName": "dev0", "committerEmail": "dev0@example.com", "message": "change",
    "name": "svc", "url": "https://x", "provider": "GitHub"},
  "ci": {"jobUrl": "https://ci", "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:01:00Z"},
  "squad": "squad-1",
  "shuttle": {"plan": {"sha": "p", "message": "plan", "url": "https://p"}, "shuttleVersion": "v0.9.0"},
  "stages": [
    {"id": "build", "name": "Build", "data": {"image": "i", "tag": "t", "dockerVersion": "24"}},
    {"id": "snyk-code", "name": "Code", "data": {"snykVersion": "1", "url": "u", "language": "go", "vulnerabilities": {"high": 1, "medium": 2, "low": 3}}},
    {"id": "snyk-docker", "name": "Docker", "data": {"vulnerabilities": {"high": 0, "medium": 1, "low": 0}}}
  ]
}"#;

    #[test]
    fn reads_files_of_older_tools() {
        let spec = ArtifactSpec::parse(OLD_TOOL.as_bytes()).unwrap();
        assert_eq!(spec.id, "master-abc-def");
        assert_eq!(spec.service, "");
        assert_eq!(spec.application.branch, "");
        assert_eq!(spec.build_time(), "2026-01-01T00:01:00Z");
        assert_eq!(
            spec.vulnerabilities(),
            Some(VulnerabilityCounts {
                high: 1,
                medium: 3,
                low: 3
            })
        );
    }

    #[test]
    fn refuses_unknown_fields() {
        let text = OLD_TOOL.replace("\"squad\"", "\"sqad\"");
        let e = ArtifactSpec::parse(text.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("sqad"), "{e}");
    }

    #[test]
    fn malformed_scan_makes_only_vulnerabilities_unknown() {
        let text = OLD_TOOL.replace("\"high\": 1", "\"high\": \"lots\"");
        let spec = ArtifactSpec::parse(text.as_bytes()).unwrap();
        assert_eq!(spec.vulnerabilities(), None);
        assert_eq!(spec.id, "master-abc-def");
    }

    #[test]
    fn overflowing_counts_are_unknown_not_a_crash() {
        let text = OLD_TOOL.replace("\"high\": 1", "\"high\": 4294967295");
        let spec = ArtifactSpec::parse(text.as_bytes()).unwrap();
        let mut twice = spec.clone();
        twice.stages.push(spec.stages[1].clone());
        assert_eq!(twice.vulnerabilities(), None);
    }

    #[test]
    fn round_trips_as_pretty_json() {
        let spec = ArtifactSpec::parse(OLD_TOOL.as_bytes()).unwrap();
        let text = spec.to_pretty_json();
        assert!(text.starts_with("{\n  \"id\""));
        assert_eq!(ArtifactSpec::parse(text.as_bytes()).unwrap(), spec);
    }

    #[test]
    fn a_zero_end_time_counts_as_unset() {
        let text = OLD_TOOL.replace("2026-01-01T00:01:00Z", "0001-01-01T00:00:00Z");
        let spec = ArtifactSpec::parse(text.as_bytes()).unwrap();
        assert_eq!(spec.build_time(), "2026-01-01T00:00:00Z");
    }

    #[test]
    fn unset_parts_are_left_out_of_what_is_written() {
        let spec = ArtifactSpec {
            id: "x".into(),
            ..Default::default()
        };
        let text = spec.to_pretty_json();
        for absent in [
            "\"service\"",
            "\"namespace\"",
            "\"branch\"",
            "\"start\"",
            "\"end\"",
        ] {
            assert!(!text.contains(absent), "{absent} in {text}");
        }
        assert_eq!(ArtifactSpec::parse(text.as_bytes()).unwrap(), spec);
    }

    #[test]
    fn the_id_of_anything_committed() {
        assert_eq!(
            committed_id(OLD_TOOL.as_bytes()).as_deref(),
            Some("master-abc-def")
        );
        let newer = r#"{"id": "x-1", "somethingNew": {"a": 1}}"#;
        assert_eq!(committed_id(newer.as_bytes()).as_deref(), Some("x-1"));
        let tail = format!("{OLD_TOOL}\n  }}\n}}\n");
        assert_eq!(
            committed_id(tail.as_bytes()).as_deref(),
            Some("master-abc-def")
        );
        assert_eq!(committed_id(br#"{"id": ""}"#), None);
        assert_eq!(committed_id(b"not json"), None);
        assert_eq!(committed_id(br#"{"service": "s"}"#), None);
    }

    #[test]
    fn a_committed_file_with_an_old_tail_is_read() {
        // Rewritten without truncating: the old, longer file's end remains.
        let text = format!("{OLD_TOOL}\n      }}\n    }}\n  ]\n}}\n");
        assert!(
            ArtifactSpec::parse(text.as_bytes()).is_err(),
            "uploads stay strict"
        );
        let (spec, warning) = ArtifactSpec::parse_committed(text.as_bytes()).unwrap();
        assert_eq!(spec.id, "master-abc-def");
        assert!(warning.unwrap().starts_with("ignored"), "a warning says so");
        let (_, clean) = ArtifactSpec::parse_committed(OLD_TOOL.as_bytes()).unwrap();
        assert_eq!(clean, None);
        assert!(ArtifactSpec::parse_committed(b"{\"id\": ").is_err());
    }
}
