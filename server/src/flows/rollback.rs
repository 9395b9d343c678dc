//! Rollback: put back the release before the current one (or a named
//! earlier one) by restoring the release folder exactly as that release
//! commit left it.

use super::release::{commit_release_folder, read_spec, ReleaseCommit};
use super::{FlowContext, Outcome, ReleaseDone, WriteRequest};
use crate::domain::{git, FlowError, Reason};
use crate::repo::index::{ReleaseKind, Signature};
use crate::repo::tree::tree_at;

pub(super) fn rollback(
    ctx: &FlowContext<'_>,
    request: &WriteRequest,
    service: &str,
    environment: &str,
    artifact_id: Option<&str>,
    namespace: Option<&str>,
) -> Result<ReleaseDone, FlowError> {
    let mut history = ctx.view.releases(environment, service).peekable();
    let Some(latest) = history.peek() else {
        return Err(FlowError::precondition(
            Reason::NothingToRollBack,
            format!(
            "service {service:?} has never been released to {environment}: nothing to roll back"
        ),
        ));
    };
    let namespace = namespace.unwrap_or(&latest.namespace).to_string();
    let path = format!("{environment}/releases/{namespace}/{service}");
    let root = crate::repo::tree::tree_of(ctx.repo, ctx.tip).map_err(git("read the tip"))?;
    let current = match tree_at(ctx.repo, &root, &path).map_err(git("read a tree"))? {
        Some(folder) => read_spec(ctx.repo, &folder, service, &path)?.id,
        None => String::new(),
    };
    let mut history = history.filter(|r| *r.namespace == *namespace && *r.artifact_id != *current);
    let target = match artifact_id {
        Some(wanted) if wanted == current => {
            return Err(FlowError::precondition(Reason::NothingToRollBack, format!(
                "artifact {wanted} is what runs in {environment} now: nothing to roll back"
            )))
        }
        Some(wanted) => history.find(|r| &*r.artifact_id == wanted).ok_or_else(|| {
            FlowError::not_found(Reason::ReleaseNotFound, format!(
                "artifact {wanted:?} was never released to {environment} (namespace {namespace}) for service {service:?}"
            ))
        })?,
        None => history.next().ok_or_else(|| {
            FlowError::precondition(Reason::NothingToRollBack, format!(
                "no earlier release of service {service:?} in {environment} (namespace {namespace}) to roll back to"
            ))
        })?,
    };
    let then = crate::repo::tree::tree_of(ctx.repo, target.commit)
        .map_err(git("read a release commit"))?;
    let folder = tree_at(ctx.repo, &then, &path)
        .map_err(git("read a tree"))?
        .ok_or_else(|| {
            FlowError::precondition(
                Reason::ArtifactUnreadable,
                format!(
                    "release commit {} of {} has no {path} folder",
                    target.commit, target.artifact_id
                ),
            )
        })?;
    let spec = read_spec(ctx.repo, &folder, service, &path)?;
    let branch = if spec.application.branch.is_empty() {
        ctx.view
            .build(service, &spec.id)
            .map(|b| release_manager::names::branch_of_folder(&b.branch))
            .unwrap_or_default()
    } else {
        spec.application.branch.clone()
    };
    super::policy_change::check_branch_allowed(ctx, service, environment, &branch)?;
    let author = Signature {
        name: spec.application.author_name.clone(),
        email: spec.application.author_email.clone(),
    };
    let commit = commit_release_folder(
        ctx,
        request,
        ReleaseCommit {
            service,
            environment,
            namespace: &namespace,
            folder: folder.id(),
            artifact_id: &spec.id,
            branch: &branch,
            kind: ReleaseKind::Rollback,
            author: &author,
            from_environment: None,
            previous_artifact_id: Some(current.as_str()).filter(|c| !c.is_empty()),
            // The Flux Kustomization that release put in clusters/, if any.
            cluster_file: crate::repo::tree::entry_at(
                ctx.repo,
                &then,
                &super::kustomization::cluster_path(environment, &namespace, service),
            )
            .map_err(git("read a tree"))?
            .map(|(oid, _)| oid),
        },
    )?;
    let commit_sha = commit.unwrap_or_else(|| {
        super::release::holding_commit(ctx, environment, &namespace, service, &spec.id)
    });
    Ok(ReleaseDone {
        outcome: if commit.is_some() {
            Outcome::Applied
        } else {
            Outcome::AlreadyUpToDate
        },
        service: service.to_string(),
        environment: environment.to_string(),
        namespace,
        artifact_id: spec.id,
        branch,
        created: commit.is_some(),
        replayed: false,
        commit: commit_sha,
        kind: ReleaseKind::Rollback,
        from_environment: None,
        previous_artifact_id: Some(current).filter(|c| !c.is_empty()),
    })
}
