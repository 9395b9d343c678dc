//! Write flows as intents: pure decisions over the current tree of the
//! default branch that end in at most one new commit in the object
//! database. They never push and never touch shared state; the writer runs
//! them, and runs them again on a new tip when a push is rejected.

pub(crate) mod auto_release;
mod build;
mod kustomization;
mod policy_change;
mod promote;
mod release;
mod rollback;

use git2::{Oid, Repository};

pub(crate) use build::BuildUpload;
pub(crate) use policy_change::{read_policies, PolicyChange, PolicyDone};

use crate::domain::{git, FlowError, Settings};
use crate::repo::commits::CommitIdentity;
use crate::repo::index::{ReleaseKind, Signature, View};
use crate::repo::message::trailer;

/// Where a release takes its build from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BuildSource {
    /// The latest build of a branch.
    Branch(String),
    /// One artifact by id.
    Artifact(String),
}

impl std::fmt::Display for BuildSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildSource::Branch(branch) => write!(f, "branch {branch}"),
            BuildSource::Artifact(id) => write!(f, "artifact {id}"),
        }
    }
}

/// A validated write request.
#[derive(Debug, Clone)]
pub(crate) enum Intent {
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
        /// Another environment to promote from than the one before.
        from_environment: Option<String>,
    },
    /// Store an uploaded build.
    AddBuild(BuildUpload),
    /// Change a service's policies.
    Policy {
        /// Service.
        service: String,
        /// The change.
        change: PolicyChange,
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

impl Intent {
    /// The staged objects of an uploaded build, which must be in the
    /// mirror while it is applied.
    pub(crate) fn staged(&self) -> Option<&crate::repo::staging::StagedObjects> {
        match self {
            Intent::AddBuild(upload) => upload.staged.as_deref(),
            _ => None,
        }
    }

    /// A one-line description for logs (never file contents).
    pub(crate) fn summary(&self) -> String {
        match self {
            Intent::Release {
                service,
                environment,
                source,
                ..
            } => format!("release {source} of {service} to {environment}"),
            Intent::Promote {
                service,
                environment,
                ..
            } => format!("promote {service} to {environment}"),
            Intent::Rollback {
                service,
                environment,
                ..
            } => format!("rollback {service} in {environment}"),
            Intent::AddBuild(upload) => format!(
                "add build {} of {} ({} files)",
                upload.artifact_id,
                upload.service,
                upload.files.len()
            ),
            Intent::Policy { service, change } => format!("policy change of {service}: {change}"),
        }
    }
}

/// A write request: the intent, who asks, and an optional idempotency key.
#[derive(Debug, Clone)]
pub(crate) struct WriteRequest {
    /// What to do.
    pub(crate) intent: Intent,
    /// The person asking: the commit's committer.
    pub(crate) committer: Signature,
    /// Makes a retried request apply once.
    pub(crate) request_id: Option<String>,
}

/// Whether a commit was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A commit was made.
    Applied,
    /// Nothing to change.
    AlreadyUpToDate,
}

/// What a release-like write did.
#[derive(Debug, Clone)]
pub(crate) struct ReleaseDone {
    /// Commit made or not.
    pub(crate) outcome: Outcome,
    /// Service.
    pub(crate) service: String,
    /// Environment.
    pub(crate) environment: String,
    /// Namespace folder.
    pub(crate) namespace: String,
    /// Artifact now running.
    pub(crate) artifact_id: String,
    /// Its branch.
    pub(crate) branch: String,
    /// The release commit (or the tip when nothing changed).
    pub(crate) commit: Oid,
    /// Why.
    pub(crate) kind: ReleaseKind,
    /// Promote: the environment the artifact came from.
    pub(crate) from_environment: Option<String>,
    /// Rollback: the artifact that ran before.
    pub(crate) previous_artifact_id: Option<String>,
    /// Whether `commit` is a new commit on the tip the flow was given (not a
    /// no-op, and not a request id answered from history).
    pub(crate) created: bool,
    /// Whether the request id was already in history and this answers from
    /// the commit that carries it.
    pub(crate) replayed: bool,
}

/// What adding a build did.
#[derive(Debug, Clone)]
pub(crate) struct BuildDone {
    /// Commit made or not.
    pub(crate) outcome: Outcome,
    /// Service.
    pub(crate) service: String,
    /// Branch.
    pub(crate) branch: String,
    /// Artifact id.
    pub(crate) artifact_id: String,
    /// The build commit (or the tip when nothing changed).
    pub(crate) commit: Oid,
    /// Whether `commit` is new.
    pub(crate) created: bool,
    /// Files stored.
    pub(crate) file_count: usize,
    /// Releases its auto-release policies made (filled in by the writer).
    pub(crate) auto_releases: Vec<ReleaseDone>,
    /// Whether the request id was already in history and this answers from
    /// the build commit that carries it.
    pub(crate) replayed: bool,
}

/// What a write did.
#[derive(Debug, Clone)]
pub(crate) enum WriteDone {
    /// A release, promotion or rollback.
    Release(ReleaseDone),
    /// A build was stored.
    Build(BuildDone),
    /// Policies changed.
    Policy(PolicyDone),
}

impl WriteDone {
    /// Whether the write made a new commit on the tip it was given.
    pub(crate) fn created(&self) -> bool {
        match self {
            WriteDone::Release(done) => done.created,
            WriteDone::Build(done) => done.created,
            WriteDone::Policy(done) => done.created,
        }
    }

    /// Whether this answers from history for a request id seen before
    /// (so it claims a commit the writer did not push just now).
    pub(crate) fn replayed(&self) -> bool {
        match self {
            WriteDone::Release(done) => done.replayed,
            WriteDone::Build(done) => done.replayed,
            WriteDone::Policy(_) => false,
        }
    }

    /// The commit that carries the write (or the tip when nothing changed).
    pub(crate) fn commit(&self) -> Oid {
        match self {
            WriteDone::Release(done) => done.commit,
            WriteDone::Build(done) => done.commit,
            WriteDone::Policy(done) => done.commit,
        }
    }
}

/// Everything a flow reads: the repository, the index, the tip to build on.
pub(crate) struct FlowContext<'a> {
    /// The mirror (object database only).
    pub(crate) repo: &'a Repository,
    /// Published index plus this batch's commits.
    pub(crate) view: View<'a>,
    /// Server settings.
    pub(crate) settings: &'a Settings,
    /// The commit to build on.
    pub(crate) tip: Oid,
    /// Who commits, and what signs.
    pub(crate) commits: &'a CommitIdentity,
}

/// Runs one write request on `ctx.tip`. `Ok` with `outcome == Applied`
/// carries the new commit, whose parent is `ctx.tip`.
pub(crate) fn apply(ctx: &FlowContext<'_>, request: &WriteRequest) -> Result<WriteDone, FlowError> {
    match &request.intent {
        Intent::AddBuild(upload) => {
            if let Some(commit) = request
                .request_id
                .as_ref()
                .and_then(|id| ctx.view.request(id))
            {
                return build::replayed(ctx, request, upload, commit).map(WriteDone::Build);
            }
            return build::add_build(ctx, request, upload).map(WriteDone::Build);
        }
        Intent::Policy { service, change } => {
            return policy_change::change_policies(ctx, request, service, change)
                .map(WriteDone::Policy)
        }
        _ => {}
    }
    if let Some(request_id) = &request.request_id {
        if let Some(commit) = ctx.view.request(request_id) {
            return replayed(ctx, request, commit).map(WriteDone::Release);
        }
    }
    let done = match &request.intent {
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
            from_environment,
        } => promote::promote(
            ctx,
            request,
            service,
            environment,
            namespace.as_deref(),
            from_environment.as_deref(),
        ),
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
        Intent::AddBuild(_) | Intent::Policy { .. } => unreachable!("handled above"),
    };
    // Every error of a release names its environment (ErrorInfo metadata).
    let environment = match &request.intent {
        Intent::Release { environment, .. }
        | Intent::Promote { environment, .. }
        | Intent::Rollback { environment, .. } => environment.as_str(),
        Intent::AddBuild(_) | Intent::Policy { .. } => "",
    };
    done.map(WriteDone::Release)
        .map_err(|error| error.with("environment", environment))
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
        Intent::AddBuild(upload) => (upload.service.clone(), String::new()),
        Intent::Policy { service, .. } => (service.clone(), String::new()),
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
        return Err(FlowError::invalid(
            "request_id",
            format!(
                "request_id {:?} was already used for another request",
                request.request_id.as_deref().unwrap_or_default()
            ),
        ));
    }
    Ok(ReleaseDone {
        outcome: Outcome::Applied,
        service,
        environment,
        namespace: field("Namespace"),
        artifact_id: field("Artifact-ID"),
        branch: field("Branch"),
        commit,
        kind: crate::repo::message::release_kind(&message),
        from_environment: None,
        previous_artifact_id: None,
        created: false,
        replayed: true,
    })
}

/// Checks an environment name and that it is configured (the error lists
/// the known ones); returns it.
pub(crate) fn known_environment(
    settings: &Settings,
    environment: &str,
) -> Result<String, FlowError> {
    release_manager::names::check_environment(environment)?;
    if settings.environments.iter().any(|e| e == environment) {
        Ok(environment.to_string())
    } else {
        Err(FlowError::invalid(
            "environment",
            format!(
                "unknown environment {environment:?}; known environments: {}",
                settings.environments.join(", ")
            ),
        ))
    }
}
