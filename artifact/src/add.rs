//! `artifact add <stage>`: records one build stage (build, push, test,
//! snyk-code, snyk-docker) in artifact.json.
//!
//! It owns the stage flags, each stage's id, display name and data layout,
//! and the rule that a stage added again replaces the earlier one in place.
//! It must not change anything else in the spec.

use std::io::Write;

use clap::{Args, Subcommand};
use release_manager::spec::Stage;
use serde_json::json;

use crate::error::CliError;
use crate::spec_file::SpecFile;

/// Record a build stage in artifact.json
///
/// Adds the stage at the end, or replaces the stage with the same id where it
/// is (a re-run of a CI step records its latest result). artifact.json must
/// exist: run `artifact init` first.
#[derive(Debug, Clone, Args)]
pub(crate) struct AddArgs {
    #[command(subcommand)]
    pub(crate) stage: StageCommand,
}

// Each stage's help text is the doc comment of its `Args` struct.
#[derive(Debug, Clone, Subcommand)]
pub(crate) enum StageCommand {
    Build(BuildArgs),
    Push(PushArgs),
    Test(TestArgs),
    SnykCode(SnykCodeArgs),
    SnykDocker(SnykDockerArgs),
}

/// Record the docker build: image, tag and docker version
#[derive(Debug, Clone, Args)]
pub(crate) struct BuildArgs {
    #[command(flatten)]
    pub(crate) image: ImageArgs,
}

/// Record the docker push: image, tag and docker version
#[derive(Debug, Clone, Args)]
pub(crate) struct PushArgs {
    #[command(flatten)]
    pub(crate) image: ImageArgs,
}

/// The flags of the build and push stages.
#[derive(Debug, Clone, Args)]
pub(crate) struct ImageArgs {
    /// Image name, e.g. quay.io/org/product-api.
    #[arg(long)]
    pub(crate) image: String,

    /// Image tag.
    #[arg(long)]
    pub(crate) tag: String,

    /// Docker version used.
    #[arg(long, value_name = "VERSION")]
    pub(crate) docker_version: String,
}

/// Record the test results: passed, failed and skipped counts
#[derive(Debug, Clone, Args)]
pub(crate) struct TestArgs {
    /// Number of tests that passed.
    #[arg(long, value_name = "N")]
    pub(crate) passed: u32,

    /// Number of tests that failed.
    #[arg(long, value_name = "N")]
    pub(crate) failed: u32,

    /// Number of tests skipped.
    #[arg(long, value_name = "N")]
    pub(crate) skipped: u32,

    /// Link to the test report.
    #[arg(long)]
    pub(crate) url: Option<String>,
}

/// Record a Snyk code scan: language and vulnerability counts
///
/// Every flag is optional, with the original release manager's defaults:
/// empty texts, the Snyk web app as the URL, zero counts.
#[derive(Debug, Clone, Args)]
pub(crate) struct SnykCodeArgs {
    /// Language scanned, e.g. go.
    #[arg(long, default_value = "")]
    pub(crate) language: String,

    /// Snyk version used.
    #[arg(long, value_name = "VERSION", default_value = "")]
    pub(crate) snyk_version: String,

    /// Link to the scan report.
    #[arg(long, default_value = SNYK_URL)]
    pub(crate) url: String,

    #[command(flatten)]
    pub(crate) counts: CountArgs,
}

/// The report URL when none is given, as the original CLI recorded it.
const SNYK_URL: &str = "https://app.snyk.io";

/// Record a Snyk docker image scan: base image and vulnerability counts
///
/// Every flag is optional, with the original release manager's defaults.
#[derive(Debug, Clone, Args)]
pub(crate) struct SnykDockerArgs {
    /// Base image of the scanned image.
    #[arg(long, value_name = "IMAGE", default_value = "")]
    pub(crate) base_image: String,

    /// Snyk version used.
    #[arg(long, value_name = "VERSION", default_value = "")]
    pub(crate) snyk_version: String,

    /// Tag of the scanned image.
    #[arg(long, default_value = "")]
    pub(crate) tag: String,

    /// Link to the scan report.
    #[arg(long, default_value = SNYK_URL)]
    pub(crate) url: String,

    #[command(flatten)]
    pub(crate) counts: CountArgs,
}

/// Vulnerability counts of a scan (0 when not given).
#[derive(Debug, Clone, Copy, Args)]
pub(crate) struct CountArgs {
    /// Number of high-severity vulnerabilities.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) high: u32,

    /// Number of medium-severity vulnerabilities.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) medium: u32,

    /// Number of low-severity vulnerabilities.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) low: u32,
}

pub(crate) fn run(
    args: AddArgs,
    file: &SpecFile,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let stage = stage(args.stage);
    let mut spec = file.load()?;
    let id = stage.id.clone();
    let replaced = upsert(&mut spec.stages, stage);
    file.save(&spec)?;
    let verb = if replaced { "Replaced" } else { "Added" };
    writeln!(out, "{verb} stage {id} in {}", file.shown())?;
    Ok(())
}

/// The stage the flags describe.
fn stage(command: StageCommand) -> Stage {
    let (id, name, data) = match command {
        StageCommand::Build(args) => ("build", "Build", image_data(args.image)),
        StageCommand::Push(args) => ("push", "Push", image_data(args.image)),
        StageCommand::Test(args) => (
            "test",
            "Test",
            json!({
                "url": args.url.unwrap_or_default(),
                "results": {
                    "passed": args.passed,
                    "failed": args.failed,
                    "skipped": args.skipped,
                },
            }),
        ),
        StageCommand::SnykCode(args) => (
            "snyk-code",
            "Security Scan - Code",
            json!({
                "snykVersion": args.snyk_version,
                "url": args.url,
                "language": args.language,
                "vulnerabilities": counts(args.counts),
            }),
        ),
        StageCommand::SnykDocker(args) => (
            "snyk-docker",
            "Security Scan - Docker",
            json!({
                "tag": args.tag,
                "snykVersion": args.snyk_version,
                "url": args.url,
                "baseImage": args.base_image,
                "vulnerabilities": counts(args.counts),
            }),
        ),
    };
    Stage {
        id: id.to_owned(),
        name: name.to_owned(),
        data,
        ..Default::default()
    }
}

fn image_data(args: ImageArgs) -> serde_json::Value {
    json!({
        "image": args.image,
        "tag": args.tag,
        "dockerVersion": args.docker_version,
    })
}

fn counts(args: CountArgs) -> serde_json::Value {
    json!({ "high": args.high, "medium": args.medium, "low": args.low })
}

/// Replaces the stage with the same id where it is (dropping any later
/// duplicates an older tool left), or appends it. Returns whether one was
/// replaced.
fn upsert(stages: &mut Vec<Stage>, stage: Stage) -> bool {
    match stages.iter().position(|s| s.id == stage.id) {
        Some(at) => {
            let id = stage.id.clone();
            stages[at] = stage;
            let mut index = 0;
            stages.retain(|s| {
                let keep = index <= at || s.id != id;
                index += 1;
                keep
            });
            true
        }
        None => {
            stages.push(stage);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(id: &str, name: &str) -> Stage {
        Stage {
            id: id.into(),
            name: name.into(),
            data: serde_json::Value::Null,
            ..Default::default()
        }
    }

    fn ids(stages: &[Stage]) -> Vec<(&str, &str)> {
        stages
            .iter()
            .map(|s| (s.id.as_str(), s.name.as_str()))
            .collect()
    }

    #[test]
    fn new_stages_are_appended() {
        let mut stages = vec![named("build", "1")];
        assert!(!upsert(&mut stages, named("test", "2")));
        assert_eq!(ids(&stages), [("build", "1"), ("test", "2")]);
    }

    #[test]
    fn a_stage_added_again_replaces_in_place() {
        let mut stages = vec![named("build", "1"), named("test", "2"), named("push", "3")];
        assert!(upsert(&mut stages, named("test", "new")));
        assert_eq!(
            ids(&stages),
            [("build", "1"), ("test", "new"), ("push", "3")]
        );
    }

    #[test]
    fn later_duplicates_are_dropped() {
        let mut stages = vec![named("test", "1"), named("build", "2"), named("test", "3")];
        assert!(upsert(&mut stages, named("test", "new")));
        assert_eq!(ids(&stages), [("test", "new"), ("build", "2")]);
    }

    #[test]
    fn scan_stages_are_read_back_as_vulnerabilities() {
        let spec = release_manager::spec::ArtifactSpec {
            stages: vec![
                stage(StageCommand::SnykCode(SnykCodeArgs {
                    language: "go".into(),
                    snyk_version: "1".into(),
                    url: "u".into(),
                    counts: CountArgs {
                        high: 1,
                        medium: 2,
                        low: 3,
                    },
                })),
                stage(StageCommand::SnykDocker(SnykDockerArgs {
                    base_image: "alpine".into(),
                    snyk_version: "1".into(),
                    tag: "t".into(),
                    url: "u".into(),
                    counts: CountArgs {
                        high: 10,
                        medium: 20,
                        low: 30,
                    },
                })),
            ],
            ..Default::default()
        };
        let sum = spec.vulnerabilities().expect("readable");
        assert_eq!((sum.high, sum.medium, sum.low), (11, 22, 33));
    }
}
