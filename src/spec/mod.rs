//! The artifact.json spec: what a build says about itself, and the published
//! format (`docs/artifact.schema.json`, generated from these types by
//! [`json_schema`]). Keys this version does not know are kept (`extra`),
//! written back unchanged and named by [`ArtifactSpec::unknown_keys`], so
//! files of newer and older tools are read rather than refused. Files older
//! tools wrote without `service`, `namespace` or `application.branch` are
//! read too. Stage data is kept as raw JSON so that one malformed stage in a
//! committed file only makes its own figure unknown; uploads check the data
//! of the stages this version knows ([`ArtifactSpec::parse_upload`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod time;
use time::is_rfc3339;
pub use time::is_unset_time;

/// Keys of an object that this version does not know, in file order.
pub type UnknownKeys = serde_json::Map<String, serde_json::Value>;

/// The contents of `artifact.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(
    title = "artifact.json",
    description = "What a build says about itself: written by the `artifact` CLI (or the original release manager's), uploaded with the build by PushArtifact, stored as `builds/<service>/<branch>/artifact.json`. Keys not listed here are allowed: the server keeps them and names them in a warning."
)]
pub struct ArtifactSpec {
    /// Artifact id, unique per service: 1 to 200 bytes, no whitespace, control characters, `/` or `\`, not starting with `.` and without `..` (e.g. `master-1a2b3c4d5e-6f7a8b9c0d`).
    #[schemars(length(min = 1, max = 200), regex(pattern = r"^[^\s/\\.][^\s/\\]*$"))]
    pub id: String,
    /// Service name, a Kubernetes DNS label; required by uploads (absent in files of older tools, and left out when empty so that their strict readers accept what we write).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(regex(pattern = r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)?$"))]
    pub service: String,
    /// Namespace to release into, a Kubernetes DNS label (absent in files of older tools; left out when empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(regex(pattern = r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)?$"))]
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
    /// Keys this version does not know, kept as they were.
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: UnknownKeys,
}

/// A source repository commit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Repository {
    /// Commit sha.
    #[serde(default)]
    pub sha: String,
    /// Branch: anything `git check-ref-format --branch` accepts; required by uploads in `application` (absent in files of older tools; left out when empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(
        length(max = 255),
        regex(pattern = r"^([^-/\s~^:?*\[\\]([^\s~^:?*\[\\]*[^/.\s~^:?*\[\\])?)?$")
    )]
    pub branch: String,
    /// Author name (at most 200 bytes, no `<`, `>` or control characters).
    #[serde(default)]
    pub author_name: String,
    /// Author email (as the name).
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
    /// Keys this version does not know, kept as they were.
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: UnknownKeys,
}

/// An RFC 3339 time, empty (unset), or what Go wrote for an unset time.
const TIME_PATTERN: &str =
    r"^(|\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2}))$";

fn time_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "pattern": TIME_PATTERN,
        "description": "An RFC 3339 time (2026-01-02T03:04:05Z); empty, absent or 0001-01-01T00:00:00Z means unset."
    })
}

/// The CI job that made the build.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Ci {
    /// Link to the job.
    #[serde(default)]
    pub job_url: String,
    /// Start time, RFC 3339; left out until known (every reader of the
    /// original release manager refuses an empty time).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(schema_with = "time_schema")]
    pub start: String,
    /// End time, RFC 3339; left out until known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(schema_with = "time_schema")]
    pub end: String,
    /// Keys this version does not know, kept as they were.
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: UnknownKeys,
}

/// The shuttle plan of the build.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Shuttle {
    /// The plan repository commit.
    #[serde(default)]
    pub plan: Repository,
    /// Shuttle version.
    #[serde(default)]
    pub shuttle_version: String,
    /// Keys this version does not know, kept as they were.
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: UnknownKeys,
}

/// One build stage; `data` depends on `id`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = stage_data_by_id)]
pub struct Stage {
    /// build, push, test, snyk-code or snyk-docker (others are kept as they are).
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Stage data, kept raw; its shape depends on `id`.
    #[serde(default)]
    pub data: serde_json::Value,
    /// Keys this version does not know, kept as they were.
    #[serde(flatten)]
    #[schemars(skip)]
    pub extra: UnknownKeys,
}

/// `data` of a `build` or `push` stage.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DockerStageData {
    /// Image name.
    #[serde(default)]
    pub image: String,
    /// Image tag.
    #[serde(default)]
    pub tag: String,
    /// Docker version used.
    #[serde(default)]
    pub docker_version: String,
}

/// `data` of a `test` stage.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestStageData {
    /// Link to the test report.
    #[serde(default)]
    pub url: String,
    /// Test counts.
    #[serde(default)]
    pub results: TestResults,
}

/// Test counts of a `test` stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
pub struct TestResults {
    /// Tests passed.
    #[serde(default)]
    pub passed: u32,
    /// Tests failed.
    #[serde(default)]
    pub failed: u32,
    /// Tests skipped.
    #[serde(default)]
    pub skipped: u32,
}

/// `data` of a `snyk-code` or `snyk-docker` stage.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScanStageData {
    /// Snyk version used.
    #[serde(default)]
    pub snyk_version: String,
    /// Link to the scan.
    #[serde(default)]
    pub url: String,
    /// Language scanned (snyk-code).
    #[serde(default)]
    pub language: String,
    /// Image tag scanned (snyk-docker).
    #[serde(default)]
    pub tag: String,
    /// Base image (snyk-docker).
    #[serde(default)]
    pub base_image: String,
    /// Findings by severity.
    #[serde(default)]
    pub vulnerabilities: VulnerabilityCounts,
}

/// Makes the schema of one kind of stage data.
type DataSchema = fn(&mut schemars::SchemaGenerator) -> schemars::Schema;

/// The schema of `data` for each stage id this version knows.
const STAGE_KINDS: &[(&str, DataSchema)] = &[
    ("build", |g| g.subschema_for::<DockerStageData>()),
    ("push", |g| g.subschema_for::<DockerStageData>()),
    ("test", |g| g.subschema_for::<TestStageData>()),
    ("snyk-code", |g| g.subschema_for::<ScanStageData>()),
    ("snyk-docker", |g| g.subschema_for::<ScanStageData>()),
];

/// Adds to a stage's schema what its `data` must be for each known `id`.
fn stage_data_by_id(schema: &mut schemars::Schema) {
    // Inline: this schema is built apart from the root's `$defs`.
    let mut generator = schemars::generate::SchemaSettings::draft2020_12()
        .with(|settings| settings.inline_subschemas = true)
        .into_generator();
    let rules: Vec<serde_json::Value> = STAGE_KINDS
        .iter()
        .map(|(id, data)| {
            let data = data(&mut generator);
            serde_json::json!({
                "if": {"properties": {"id": {"const": id}}, "required": ["id"]},
                "then": {"properties": {"data": data}}
            })
        })
        .collect();
    schema.insert("allOf".into(), serde_json::Value::Array(rules));
}

/// Vulnerability counts by severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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

/// Why an uploaded artifact.json is refused: the field (`ci.start`,
/// `stages[1].data.vulnerabilities.high`; empty for the whole file) and
/// what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// Path of the field in the file, as `errors.proto` names it after
    /// `artifact.json.`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl std::fmt::Display for SpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for SpecError {}

/// The JSON Schema of artifact.json, generated from these types; the
/// published copy is `docs/artifact.schema.json`.
pub fn json_schema() -> serde_json::Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    generator.into_root_schema_for::<ArtifactSpec>().to_value()
}

/// A serde path (`stages[1].data`) as a dotted field path.
fn field_path(path: &serde_path_to_error::Path) -> String {
    let mut text = String::new();
    for segment in path.iter() {
        match segment {
            serde_path_to_error::Segment::Seq { index } => text.push_str(&format!("[{index}]")),
            serde_path_to_error::Segment::Map { key } => {
                if !text.is_empty() {
                    text.push('.');
                }
                text.push_str(key);
            }
            serde_path_to_error::Segment::Enum { variant } => {
                if !text.is_empty() {
                    text.push('.');
                }
                text.push_str(variant);
            }
            serde_path_to_error::Segment::Unknown => {}
        }
    }
    text
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

impl ArtifactSpec {
    /// Parses artifact.json; keys this version does not know are kept in
    /// `extra`.
    pub fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Parses an uploaded artifact.json, naming the field of any error
    /// (`ci.start`), and checks the `data` of the stages this version knows
    /// (`stages[2].data.vulnerabilities.high`), as the published schema
    /// says. Unknown keys are kept; [`ArtifactSpec::unknown_keys`] names
    /// them.
    pub fn parse_upload(bytes: &[u8]) -> Result<Self, SpecError> {
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let spec: ArtifactSpec =
            serde_path_to_error::deserialize(&mut deserializer).map_err(|error| SpecError {
                // A syntax error is the file's, whatever key it stopped in.
                field: if error.inner().is_data() {
                    field_path(error.path())
                } else {
                    String::new()
                },
                message: error.inner().to_string(),
            })?;
        deserializer.end().map_err(|error| SpecError {
            field: String::new(),
            message: error.to_string(),
        })?;
        for (index, stage) in spec.stages.iter().enumerate() {
            stage.check_data().map_err(|(path, message)| SpecError {
                field: format!(
                    "stages[{index}].data{}{path}",
                    if path.is_empty() { "" } else { "." }
                ),
                message,
            })?;
        }
        Ok(spec)
    }

    /// Checks an uploaded artifact.json whole: [`ArtifactSpec::parse_upload`],
    /// then what a build needs (`id`, `service`, `application.branch`), the
    /// name rules of [`crate::names`], authors that can sign a commit and
    /// RFC 3339 times. The error names the field.
    pub fn check_upload(bytes: &[u8]) -> Result<Self, SpecError> {
        let spec = Self::parse_upload(bytes)?;
        let bad = |field: &str, message: String| SpecError {
            field: field.to_string(),
            message,
        };
        let name = |field: &str, error: crate::names::NameError| bad(field, error.to_string());
        if spec.service.is_empty() {
            return Err(bad("service", "is missing".into()));
        }
        crate::names::check_service(&spec.service).map_err(|e| name("service", e))?;
        if spec.application.branch.is_empty() {
            return Err(bad("application.branch", "is missing".into()));
        }
        crate::names::check_branch(&spec.application.branch, &[])
            .map_err(|e| name("application.branch", e))?;
        crate::names::check_artifact_id(&spec.id).map_err(|e| name("id", e))?;
        if !spec.namespace.is_empty() {
            crate::names::check_namespace(&spec.namespace).map_err(|e| name("namespace", e))?;
        }
        for (field, value) in [
            ("application.authorName", &spec.application.author_name),
            ("application.authorEmail", &spec.application.author_email),
        ] {
            if value
                .chars()
                .any(|c| crate::names::is_forbidden_char(c) || c == '<' || c == '>')
                || value.len() > 200
            {
                return Err(bad(
                    field,
                    "must be at most 200 bytes, without '<', '>' or control characters (it becomes a commit's author)".into(),
                ));
            }
        }
        // A time that does not parse would make the build date disappear
        // from every answer; unset (left out, empty, or Go's zero time) is
        // fine.
        for (field, value) in [("ci.start", &spec.ci.start), ("ci.end", &spec.ci.end)] {
            if !is_unset_time(value) && !is_rfc3339(value) {
                return Err(bad(
                    field,
                    format!("{value:?} is not an RFC 3339 time (such as 2026-01-02T03:04:05Z)"),
                ));
            }
        }
        Ok(spec)
    }

    /// Paths of the keys this version does not know (`application.author`,
    /// `stages[0].duration`), in file order.
    pub fn unknown_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        let mut add = |prefix: &str, extra: &UnknownKeys| {
            keys.extend(extra.keys().map(|key| format!("{prefix}{key}")));
        };
        add("", &self.extra);
        add("application.", &self.application.extra);
        add("ci.", &self.ci.extra);
        add("shuttle.", &self.shuttle.extra);
        add("shuttle.plan.", &self.shuttle.plan.extra);
        for (index, stage) in self.stages.iter().enumerate() {
            add(&format!("stages[{index}]."), &stage.extra);
        }
        keys
    }

    /// Parses an artifact.json already in a config repository, as leniently
    /// as is safe: the original release manager rewrote the file without
    /// truncating it, so a shorter file can end in the old one's tail. The
    /// first JSON value counts; the second element says what was ignored
    /// (for a warning). Uploads are parsed whole ([`ArtifactSpec::parse_upload`]).
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

impl Stage {
    /// Checks `data` against the shape of this stage's id, when this
    /// version knows it: the path inside `data` and what is wrong.
    fn check_data(&self) -> Result<(), (String, String)> {
        fn check<T: serde::de::DeserializeOwned>(
            data: &serde_json::Value,
        ) -> Result<(), (String, String)> {
            if data.is_null() {
                return Ok(());
            }
            serde_path_to_error::deserialize::<_, T>(data)
                .map(drop)
                .map_err(|error| (field_path(error.path()), error.inner().to_string()))
        }
        match self.id.as_str() {
            "build" | "push" => check::<DockerStageData>(&self.data),
            "test" => check::<TestStageData>(&self.data),
            "snyk-code" | "snyk-docker" => check::<ScanStageData>(&self.data),
            _ => Ok(()),
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
    fn keeps_unknown_keys_and_names_them() {
        let text = OLD_TOOL
            .replace("\"squad\"", "\"sqad\"")
            .replace("\"jobUrl\"", "\"runner\": {\"os\": \"linux\"}, \"jobUrl\"")
            .replace(
                "\"name\": \"Build\"",
                "\"name\": \"Build\", \"seconds\": 12",
            );
        let spec = ArtifactSpec::parse_upload(text.as_bytes()).unwrap();
        assert_eq!(
            spec.unknown_keys(),
            ["sqad", "ci.runner", "stages[0].seconds"]
        );
        // Written back, they are still there, unchanged.
        let again = ArtifactSpec::parse(spec.to_pretty_json().as_bytes()).unwrap();
        assert_eq!(again, spec);
        assert_eq!(again.ci.extra["runner"], serde_json::json!({"os": "linux"}));
    }

    #[test]
    fn upload_errors_name_the_field() {
        let cases = [
            (
                OLD_TOOL.replace("\"id\": \"master-abc-def\"", "\"id\": 7"),
                "id",
            ),
            (
                OLD_TOOL.replace("\"start\": \"2026", "\"start\": 2026, \"x\": \""),
                "ci.start",
            ),
            (
                OLD_TOOL.replace("\"sha\": \"p\"", "\"sha\": []"),
                "shuttle.plan.sha",
            ),
            (
                OLD_TOOL.replace("\"high\": 1", "\"high\": \"lots\""),
                "stages[1].data.vulnerabilities.high",
            ),
            (
                OLD_TOOL.replace("\"tag\": \"t\"", "\"tag\": 5"),
                "stages[0].data.tag",
            ),
            (format!("{OLD_TOOL} trailing"), ""),
        ];
        for (text, field) in cases {
            let error = ArtifactSpec::parse_upload(text.as_bytes()).unwrap_err();
            assert_eq!(error.field, field, "{error}");
        }
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

    /// Where the published schema and the example files are.
    fn repo_file(path: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
    }

    fn json_files(folder: &str) -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(repo_file(folder))
            .expect("the example folder")
            .map(|entry| entry.expect("an entry").path())
            .filter(|path| path.extension().is_some_and(|e| e == "json"))
            .map(|path| {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&path).expect("readable"))
            })
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no examples in {folder}");
        files
    }

    /// The published schema is what these types generate. After changing
    /// them, `make artifact-schema` writes it anew.
    #[test]
    fn the_published_schema_matches_the_types() {
        let generated = serde_json::to_string_pretty(&json_schema()).unwrap() + "\n";
        let path = repo_file("docs/artifact.schema.json");
        if std::env::var_os("RELEASE_MANAGER_WRITE_SCHEMA").is_some() {
            std::fs::write(&path, &generated).expect("writes the schema");
        }
        let published = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            published == generated,
            "docs/artifact.schema.json is not what src/spec.rs generates: run `make artifact-schema`"
        );
    }

    fn validator() -> jsonschema::Validator {
        let schema: serde_json::Value =
            serde_json::from_slice(&std::fs::read(repo_file("docs/artifact.schema.json")).unwrap())
                .unwrap();
        jsonschema::validator_for(&schema).expect("a valid JSON Schema")
    }

    /// Every era of files the original's CLI wrote is valid; the server's
    /// upload check takes each once `artifact push` has filled in the
    /// service and branch that early files lack.
    #[test]
    fn the_schema_accepts_the_originals_files() {
        let validator = validator();
        for (name, bytes) in json_files("tests/artifact_json/original") {
            let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            let errors: Vec<String> = validator
                .iter_errors(&value)
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{name}: {errors:?}");
            let mut spec = ArtifactSpec::parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(
                spec.unknown_keys().is_empty(),
                "{name}: {:?}",
                spec.unknown_keys()
            );
            if spec.service.is_empty() {
                spec.service = "product-api".into();
            }
            if spec.application.branch.is_empty() {
                spec.application.branch = "master".into();
            }
            ArtifactSpec::check_upload(spec.to_pretty_json().as_bytes())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    /// Bad files are refused by the schema and by the server's check alike.
    #[test]
    fn the_schema_and_the_server_refuse_bad_files() {
        let validator = validator();
        for (name, bytes) in json_files("tests/artifact_json/refused") {
            let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert!(!validator.is_valid(&value), "the schema takes {name}");
            assert!(
                ArtifactSpec::check_upload(&bytes).is_err(),
                "the server takes {name}"
            );
        }
        // Unknown keys are allowed by both.
        let newer =
            br#"{"id": "m-1", "service": "s", "application": {"branch": "m", "x": 1}, "y": []}"#;
        let value: serde_json::Value = serde_json::from_slice(newer).unwrap();
        assert!(validator.is_valid(&value));
        let spec = ArtifactSpec::check_upload(newer).unwrap();
        assert_eq!(spec.unknown_keys(), ["y", "application.x"]);
    }

    #[test]
    fn rfc3339_times() {
        for ok in [
            "2026-01-02T03:04:05Z",
            "2019-02-28T12:43:19.632914+01:00",
            "2026-01-02t03:04:05z",
        ] {
            assert!(is_rfc3339(ok), "{ok}");
        }
        for bad in [
            "yesterday",
            "2026-01-02",
            "2026-13-02T03:04:05Z",
            "2026-01-02T03:04:05",
            "2026-01-02T03:04:05.Z",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
    }
}
