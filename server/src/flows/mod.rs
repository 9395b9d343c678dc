//! Write flows as intents: pure decisions over the current tree of the
//! default branch that end in at most one new commit in the object
//! database. They never push and never touch shared state; the writer runs
//! them, and runs them again on a new tip when a push is rejected.

mod promote;
mod release;
mod rollback;

use git2::{Oid, Repository};

use crate::error::{git, FlowError};
use crate::repo::index::{ReleaseKind, Signature, View};
use crate::repo::message::trailer;

/// Server-wide settings the flows need.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Environments in promotion order.
    pub environments: Vec<String>,
    /// The branch the first environment is promoted from, and the branch of
    /// the config repository that is written.
    pub default_branch: String,
}

/// Where a release takes its build from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildSource {
    /// The latest build of a branch.
    Branch(String),
    /// One artifact by id.
    Artifact(String),
}

/// A validated write request.
#[derive(Debug, Clone)]
pub enum Intent {
    /// Release a build to an environment.
    Release {
        /// Service.
        service: String,
        /// Target environment.
        environment: String,
        /// Which build.
        source: BuildSource,
        /// Explicit namespace.
        namespace: Option<String>,
        /// Why (branch, artifact, auto-release).
        kind: ReleaseKind,
    },
    /// Promote from the previous environment.
    Promote {
        /// Service.
        service: String,
        /// Target environment.
        environment: String,
        /// Explicit namespace.
        namespace: Option<String>,
    },
    /// Roll back to an earlier release.
    Rollback {
        /// Service.
        service: String,
        /// Environment.
        environment: String,
        /// The earlier artifact, or the one before the current.
        artifact_id: Option<String>,
        /// Explicit namespace.
        namespace: Option<String>,
    },
}

/// A write request: the intent, who asks, and an optional idempotency key.
#[derive(Debug, Clone)]
pub struct WriteRequest {
    /// What to do.
    pub intent: Intent,
    /// The person asking: the commit's committer.
    pub committer: Signature,
    /// Makes a retried request apply once.
    pub request_id: Option<String>,
}

/// Whether a commit was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A commit was made.
    Applied,
    /// Nothing to change.
    AlreadyUpToDate,
}

/// What a release-like write did.
#[derive(Debug, Clone)]
pub struct ReleaseDone {
    /// Commit made or not.
    pub outcome: Outcome,
    /// Service.
    pub service: String,
    /// Environment.
    pub environment: String,
    /// Namespace folder.
    pub namespace: String,
    /// Artifact now running.
    pub artifact_id: String,
    /// Its branch.
    pub branch: String,
    /// The release commit (or the tip when nothing changed).
    pub commit: Oid,
    /// Why.
    pub kind: ReleaseKind,
    /// Promote: the environment the artifact came from.
    pub from_environment: Option<String>,
    /// Rollback: the artifact that ran before.
    pub previous_artifact_id: Option<String>,
    /// Whether `commit` is a new commit on the tip the flow was given (not a
    /// no-op, and not a request id answered from history).
    pub created: bool,
}

/// Everything a flow reads: the repository, the index, the tip to build on.
pub struct FlowContext<'a> {
    /// The mirror (object database only).
    pub repo: &'a Repository,
    /// Published index plus this batch's commits.
    pub view: View<'a>,
    /// Server settings.
    pub settings: &'a Settings,
    /// The commit to build on.
    pub tip: Oid,
}

/// Runs one write request on `ctx.tip`. `Ok` with `outcome == Applied`
/// carries the new commit, whose parent is `ctx.tip`.
pub fn apply(ctx: &FlowContext<'_>, request: &WriteRequest) -> Result<ReleaseDone, FlowError> {
    if let Some(request_id) = &request.request_id {
        if let Some(commit) = ctx.view.request(request_id) {
            return replayed(ctx, request, commit);
        }
    }
    match &request.intent {
        Intent::Release {
            service,
            environment,
            source,
            namespace,
            kind,
        } => release::release(
            ctx,
            request,
            service,
            environment,
            source,
            namespace.as_deref(),
            *kind,
        ),
        Intent::Promote {
            service,
            environment,
            namespace,
        } => promote::promote(ctx, request, service, environment, namespace.as_deref()),
        Intent::Rollback {
            service,
            environment,
            artifact_id,
            namespace,
        } => rollback::rollback(
            ctx,
            request,
            service,
            environment,
            artifact_id.as_deref(),
            namespace.as_deref(),
        ),
    }
}

/// The answer to a request id that is already in history: what its commit
/// did, with no new commit.
fn replayed(
    ctx: &FlowContext<'_>,
    request: &WriteRequest,
    commit: Oid,
) -> Result<ReleaseDone, FlowError> {
    let found = ctx.repo.find_commit(commit).map_err(git("read a commit"))?;
    let message = String::from_utf8_lossy(found.message_bytes()).into_owned();
    let field = |key: &str| trailer(&message, key).unwrap_or_default().to_string();
    let (service, environment) = match &request.intent {
        Intent::Release {
            service,
            environment,
            ..
        }
        | Intent::Promote {
            service,
            environment,
            ..
        }
        | Intent::Rollback {
            service,
            environment,
            ..
        } => (service.clone(), environment.clone()),
    };
    if field("Service") != service || field("Environment") != environment {
        return Err(FlowError::InvalidArgument(format!(
            "request_id {:?} was already used for another request",
            request.request_id.as_deref().unwrap_or_default()
        )));
    }
    Ok(ReleaseDone {
        outcome: Outcome::Applied,
        service,
        environment,
        namespace: field("Namespace"),
        artifact_id: field("Artifact-ID"),
        branch: field("Branch"),
        commit,
        kind: ReleaseKind::Unknown,
        from_environment: None,
        previous_artifact_id: None,
        created: false,
    })
}

/// Checks that an environment is configured; the error lists the known ones.
pub fn check_environment_known(settings: &Settings, environment: &str) -> Result<(), FlowError> {
    if settings.environments.iter().any(|e| e == environment) {
        Ok(())
    } else {
        Err(FlowError::InvalidArgument(format!(
            "unknown environment {environment:?}; known environments: {}",
            settings.environments.join(", ")
        )))
    }
}
