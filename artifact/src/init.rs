//! `artifact init`: starts artifact.json for a build from the CI job's flags
//! and records when the build started.
//!
//! It owns the command's flags and how they map onto the spec. It must not
//! touch an existing file's contents: init always writes a fresh spec (a
//! re-run of the CI job starts over).

use std::io::Write;

use clap::builder::NonEmptyStringValueParser;
use clap::Args;
use release_manager::names;
use release_manager::spec::{ArtifactSpec, Ci, Repository, Shuttle};

use crate::clock::Clock;
use crate::error::CliError;
use crate::spec_file::SpecFile;

/// Start artifact.json for a build, recording now as the CI start time
///
/// Writes a fresh <root>/<file> (replacing any existing one, so a re-run of
/// the job starts over) and creates the build folder if it is missing. The
/// committer defaults to the author, for the application and for the shuttle
/// plan. Set ARTIFACT_FIXED_TIME (RFC 3339, e.g. 2026-01-02T03:04:05Z) to
/// record a fixed time instead of now.
#[derive(Debug, Clone, Args)]
pub(crate) struct InitArgs {
    /// Artifact id, unique per service, e.g. master-1a2b3c4d5e-6f7a8b9c0d.
    #[arg(long, value_name = "ID", value_parser = artifact_id)]
    pub(crate) artifact_id: String,

    /// Service name, e.g. product-api [default: given to `push`].
    #[arg(long, value_parser = service)]
    pub(crate) service: Option<String>,

    /// Namespace to release into [default: the environment's name].
    #[arg(long, value_parser = namespace)]
    pub(crate) namespace: Option<String>,

    /// Squad owning the service.
    #[arg(long)]
    pub(crate) squad: Option<String>,

    /// Source branch the build was made from, e.g. master or feature/x
    /// [default: found by `push`: its flag, the CI system, the checkout].
    #[arg(long, value_name = "BRANCH", value_parser = branch)]
    pub(crate) git_branch: Option<String>,

    /// Source commit sha.
    #[arg(long, value_name = "SHA", value_parser = NonEmptyStringValueParser::new())]
    pub(crate) git_sha: String,

    /// Author name of the source commit.
    #[arg(long, value_name = "NAME", value_parser = NonEmptyStringValueParser::new())]
    pub(crate) git_author_name: String,

    /// Author email of the source commit.
    #[arg(long, value_name = "EMAIL", value_parser = NonEmptyStringValueParser::new())]
    pub(crate) git_author_email: String,

    /// Committer name of the source commit [default: the author's].
    #[arg(long, value_name = "NAME", requires = "git_committer_email")]
    pub(crate) git_committer_name: Option<String>,

    /// Committer email of the source commit [default: the author's].
    #[arg(long, value_name = "EMAIL", requires = "git_committer_name")]
    pub(crate) git_committer_email: Option<String>,

    /// Commit message of the source commit.
    #[arg(long, value_name = "MESSAGE")]
    pub(crate) git_message: Option<String>,

    /// Link to the source commit.
    #[arg(long)]
    pub(crate) url: Option<String>,

    /// Name of the source repository.
    #[arg(long)]
    pub(crate) name: Option<String>,

    /// Hosting provider of the source repository, e.g. GitHub.
    #[arg(long)]
    pub(crate) provider: Option<String>,

    /// Link to the CI job.
    #[arg(long, value_name = "URL")]
    pub(crate) ci_job_url: Option<String>,

    /// Commit sha of the shuttle plan.
    #[arg(long, value_name = "SHA", help_heading = SHUTTLE_HEADING)]
    pub(crate) shuttle_plan_sha: Option<String>,

    /// Branch of the shuttle plan.
    #[arg(long, value_name = "BRANCH", help_heading = SHUTTLE_HEADING)]
    pub(crate) shuttle_plan_branch: Option<String>,

    /// Commit message of the shuttle plan.
    #[arg(long, value_name = "MESSAGE", help_heading = SHUTTLE_HEADING)]
    pub(crate) shuttle_plan_message: Option<String>,

    /// Link to the shuttle plan commit.
    #[arg(long, value_name = "URL", help_heading = SHUTTLE_HEADING)]
    pub(crate) shuttle_plan_url: Option<String>,

    /// Author name of the shuttle plan commit.
    #[arg(long, value_name = "NAME", help_heading = SHUTTLE_HEADING)]
    pub(crate) shuttle_plan_author_name: Option<String>,

    /// Author email of the shuttle plan commit.
    #[arg(long, value_name = "EMAIL", help_heading = SHUTTLE_HEADING)]
    pub(crate) shuttle_plan_author_email: Option<String>,

    /// Committer name of the shuttle plan commit [default: its author's].
    #[arg(
        long,
        value_name = "NAME",
        requires = "shuttle_plan_committer_email",
        help_heading = SHUTTLE_HEADING
    )]
    pub(crate) shuttle_plan_committer_name: Option<String>,

    /// Committer email of the shuttle plan commit [default: its author's].
    #[arg(
        long,
        value_name = "EMAIL",
        requires = "shuttle_plan_committer_name",
        help_heading = SHUTTLE_HEADING
    )]
    pub(crate) shuttle_plan_committer_email: Option<String>,

    /// Version of shuttle that ran the plan.
    #[arg(long, value_name = "VERSION", help_heading = SHUTTLE_HEADING)]
    pub(crate) shuttle_version: Option<String>,
}

/// Where `--help` lists the shuttle flags.
const SHUTTLE_HEADING: &str = "Shuttle plan";

pub(crate) fn run(
    args: InitArgs,
    file: &SpecFile,
    clock: &Clock,
    out: &mut (dyn Write + Send),
) -> Result<(), CliError> {
    let spec = build_spec(args, clock);
    file.create_folder()?;
    file.save(&spec)?;
    let or_later = |value: &str| {
        if value.is_empty() {
            "(set at push)".to_string()
        } else {
            value.to_string()
        }
    };
    writeln!(
        out,
        "Started {} for build {} of {} (branch {}) at {}",
        file.shown(),
        spec.id,
        or_later(&spec.service),
        or_later(&spec.application.branch),
        spec.ci.start
    )?;
    Ok(())
}

/// The fresh spec the flags describe, started now.
fn build_spec(args: InitArgs, clock: &Clock) -> ArtifactSpec {
    let (committer_name, committer_email) = committer(
        args.git_committer_name,
        args.git_committer_email,
        &args.git_author_name,
        &args.git_author_email,
    );
    let plan_author_name = args.shuttle_plan_author_name.unwrap_or_default();
    let plan_author_email = args.shuttle_plan_author_email.unwrap_or_default();
    let (plan_committer_name, plan_committer_email) = committer(
        args.shuttle_plan_committer_name,
        args.shuttle_plan_committer_email,
        &plan_author_name,
        &plan_author_email,
    );
    ArtifactSpec {
        id: args.artifact_id,
        service: args.service.unwrap_or_default(),
        namespace: args.namespace.unwrap_or_default(),
        squad: args.squad.unwrap_or_default(),
        application: Repository {
            sha: args.git_sha,
            branch: args.git_branch.unwrap_or_default(),
            author_name: args.git_author_name,
            author_email: args.git_author_email,
            committer_name,
            committer_email,
            message: args.git_message.unwrap_or_default(),
            name: args.name.unwrap_or_default(),
            url: args.url.unwrap_or_default(),
            provider: args.provider.unwrap_or_default(),
            ..Default::default()
        },
        ci: Ci {
            job_url: args.ci_job_url.unwrap_or_default(),
            start: clock.timestamp(),
            end: String::new(),
            ..Default::default()
        },
        shuttle: Shuttle {
            plan: Repository {
                sha: args.shuttle_plan_sha.unwrap_or_default(),
                branch: args.shuttle_plan_branch.unwrap_or_default(),
                author_name: plan_author_name,
                author_email: plan_author_email,
                committer_name: plan_committer_name,
                committer_email: plan_committer_email,
                message: args.shuttle_plan_message.unwrap_or_default(),
                name: String::new(),
                url: args.shuttle_plan_url.unwrap_or_default(),
                provider: String::new(),
                ..Default::default()
            },
            shuttle_version: args.shuttle_version.unwrap_or_default(),
            ..Default::default()
        },
        stages: Vec::new(),
        extra: Default::default(),
    }
}

/// The committer given (clap makes name and email come together), else the
/// author.
fn committer(
    name: Option<String>,
    email: Option<String>,
    author_name: &str,
    author_email: &str,
) -> (String, String) {
    match (name, email) {
        (Some(name), Some(email)) => (name, email),
        (name, email) => (
            name.unwrap_or_else(|| author_name.to_owned()),
            email.unwrap_or_else(|| author_email.to_owned()),
        ),
    }
}

// Value parsers: the names the server will check anyway, checked here so a
// pipeline fails at its first step rather than at the push.

fn artifact_id(value: &str) -> Result<String, String> {
    names::check_artifact_id(value).map_err(|error| error.to_string())?;
    Ok(value.to_owned())
}

fn service(value: &str) -> Result<String, String> {
    names::check_service(value).map_err(|error| error.to_string())?;
    Ok(value.to_owned())
}

fn namespace(value: &str) -> Result<String, String> {
    names::check_namespace(value).map_err(|error| error.to_string())?;
    Ok(value.to_owned())
}

fn branch(value: &str) -> Result<String, String> {
    // The environments are the server's to know; it checks the collisions.
    names::check_branch(value, &[]).map_err(|error| error.to_string())?;
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: InitArgs,
    }

    const REQUIRED: [&str; 13] = [
        "init",
        "--artifact-id",
        "master-abc-def",
        "--service",
        "product-api",
        "--git-branch",
        "master",
        "--git-sha",
        "abc",
        "--git-author-name",
        "Jane Doe",
        "--git-author-email",
        "jane@example.com",
    ];

    fn parse(extra: &[&str]) -> Result<InitArgs, clap::Error> {
        Wrapper::try_parse_from(REQUIRED.iter().chain(extra)).map(|w| w.args)
    }

    fn fixed() -> Clock {
        Clock::fixed(
            chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
                .expect("time")
                .into(),
        )
    }

    #[test]
    fn committer_defaults_to_the_author() {
        let spec = build_spec(parse(&[]).expect("parses"), &fixed());
        assert_eq!(spec.application.committer_name, "Jane Doe");
        assert_eq!(spec.application.committer_email, "jane@example.com");
        assert_eq!(spec.ci.start, "2026-01-02T03:04:05Z");
        assert_eq!(spec.ci.end, "");
        assert!(spec.stages.is_empty());
    }

    #[test]
    fn committer_given_is_kept() {
        let args = parse(&[
            "--git-committer-name",
            "Bot",
            "--git-committer-email",
            "bot@example.com",
        ])
        .expect("parses");
        let spec = build_spec(args, &fixed());
        assert_eq!(spec.application.committer_name, "Bot");
        assert_eq!(spec.application.committer_email, "bot@example.com");
    }

    #[test]
    fn committer_name_needs_its_email() {
        let error = parse(&["--git-committer-name", "Bot"]).expect_err("rejected");
        assert_eq!(error.kind(), ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn bad_names_are_usage_errors() {
        for (flag, value) in [
            ("--service", "../etc"),
            ("--artifact-id", ""),
            ("--git-branch", "a//b"),
            ("--namespace", "a/b"),
            ("--git-sha", ""),
        ] {
            let mut args: Vec<&str> = REQUIRED.to_vec();
            match args.iter().position(|arg| *arg == flag) {
                Some(at) => args[at + 1] = value,
                None => args.extend([flag, value]),
            }
            let error = Wrapper::try_parse_from(args).expect_err(flag);
            assert!(
                matches!(
                    error.kind(),
                    ErrorKind::ValueValidation | ErrorKind::InvalidValue
                ),
                "{flag}: {error}"
            );
            assert_eq!(error.exit_code(), 2, "{flag}");
        }
    }
}
