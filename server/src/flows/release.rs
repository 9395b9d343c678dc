//! Release: find the build (latest of a branch, or one artifact by id in
//! history), graft its `<env>` tree plus its artifact.json into
//! `<env>/releases/<namespace>/<service>`, and commit. Also the graft and
//! commit helpers that promote and rollback share.

use git2::{FileMode, Oid, Tree};
use release_manager::spec::ArtifactSpec;

use super::{BuildSource, FlowContext, Outcome, ReleaseDone, WriteRequest};
use crate::domain::{git, FlowError, Reason};
use crate::repo::index::{ReleaseKind, Signature};
use crate::repo::message::compose;
use crate::repo::tree::{blob_at, replace_at, tree_at};

/// A build found in the repository.
pub(crate) struct Build<'r> {
    /// `builds/<service>/<branch>` at the build's commit.
    pub(crate) tree: Tree<'r>,
    /// Its parsed artifact.json.
    pub(crate) spec: ArtifactSpec,
    /// Its branch.
    pub(crate) branch: String,
}

pub(super) fn release(
    ctx: &FlowContext<'_>,
    request: &WriteRequest,
    service: &str,
    environment: &str,
    source: &BuildSource,
    namespace: Option<&str>,
    kind: ReleaseKind,
) -> Result<ReleaseDone, FlowError> {
    let build = find_build(ctx, service, source)?;
    release_build(ctx, request, service, environment, &build, namespace, kind)
}

/// Finds a build by branch (at the tip) or by artifact id (in history).
pub(crate) fn find_build<'r>(
    ctx: &FlowContext<'r>,
    service: &str,
    source: &BuildSource,
) -> Result<Build<'r>, FlowError> {
    let repo = ctx.repo;
    match source {
        BuildSource::Branch(branch) => {
            let root = crate::repo::tree::tree_of(repo, ctx.tip).map_err(git("read the tip"))?;
            let path = format!("builds/{service}/{branch}");
            let Some(tree) = tree_at(repo, &root, &path).map_err(git("read a tree"))? else {
                return Err(unknown_build(
                    ctx,
                    &root,
                    service,
                    Reason::BranchNotFound,
                    &format!("no build of branch {branch:?}"),
                ));
            };
            let spec = read_spec(repo, &tree, service, &path)?;
            Ok(Build {
                tree,
                spec,
                branch: branch.clone(),
            })
        }
        BuildSource::Artifact(artifact_id) => {
            let Some(record) = ctx.view.build(service, artifact_id) else {
                let root =
                    crate::repo::tree::tree_of(repo, ctx.tip).map_err(git("read the tip"))?;
                return Err(unknown_build(
                    ctx,
                    &root,
                    service,
                    Reason::ArtifactNotFound,
                    &format!("no artifact {artifact_id:?}"),
                ));
            };
            let root = crate::repo::tree::tree_of(repo, record.commit)
                .map_err(git("read a build commit"))?;
            let path = format!("builds/{service}/{}", record.branch);
            let tree = tree_at(repo, &root, &path)
                .map_err(git("read a tree"))?
                .ok_or_else(|| {
                    FlowError::not_found(Reason::ArtifactNotFound, format!(
                        "artifact {artifact_id:?} of service {service:?}: its build commit {} has no {path} folder",
                        record.commit
                    ))
                })?;
            let spec = read_spec(repo, &tree, service, &path)?;
            Ok(Build {
                tree,
                spec,
                branch: record.branch.to_string(),
            })
        }
    }
}

fn unknown_build(
    ctx: &FlowContext<'_>,
    root: &Tree<'_>,
    service: &str,
    reason: Reason,
    what: &str,
) -> FlowError {
    let known_service = tree_at(ctx.repo, root, &format!("builds/{service}"))
        .ok()
        .flatten()
        .is_some();
    if known_service {
        FlowError::not_found(reason, format!("{what} for service {service:?}"))
    } else {
        crate::domain::catalog::unknown_service_at(ctx.repo, root, service)
    }
}

/// Reads and parses the artifact.json of a build folder.
pub(crate) fn read_spec(
    repo: &git2::Repository,
    tree: &Tree<'_>,
    service: &str,
    path: &str,
) -> Result<ArtifactSpec, FlowError> {
    let bytes = blob_at(repo, tree, "artifact.json")
        .map_err(git("read artifact.json"))?
        .ok_or_else(|| {
            FlowError::precondition(
                Reason::ArtifactUnreadable,
                format!("{path} of service {service:?} has no artifact.json"),
            )
        })?;
    crate::repo::read_committed_spec(&bytes, &format!("{path}/artifact.json")).map_err(|e| {
        FlowError::precondition(
            Reason::ArtifactUnreadable,
            format!("{path}/artifact.json cannot be read: {e}"),
        )
    })
}

/// Releases a found build: graft and commit.
pub(crate) fn release_build(
    ctx: &FlowContext<'_>,
    request: &WriteRequest,
    service: &str,
    environment: &str,
    build: &Build<'_>,
    namespace: Option<&str>,
    kind: ReleaseKind,
) -> Result<ReleaseDone, FlowError> {
    let repo = ctx.repo;
    let artifact_id = build.spec.id.clone();
    super::policy_change::check_branch_allowed(
        ctx,
        service,
        environment,
        &release_manager::names::branch_of_folder(&build.branch),
    )?;
    let env_tree = match build.tree.get_name(environment) {
        Some(entry) if entry.kind() == Some(git2::ObjectType::Tree) => entry.id(),
        _ => {
            return Err(FlowError::precondition(Reason::ManifestsMissing, format!(
                "build {artifact_id} of service {service:?} has no manifests for environment {environment:?}"
            )))
        }
    };
    let artifact_blob = build
        .tree
        .get_name("artifact.json")
        .map(|e| e.id())
        .expect("read_spec checked artifact.json exists");
    let env_tree = repo.find_tree(env_tree).map_err(git("read a tree"))?;
    let mut folder = repo
        .treebuilder(Some(&env_tree))
        .map_err(git("build a tree"))?;
    folder
        .insert("artifact.json", artifact_blob, FileMode::Blob.into())
        .map_err(git("build a tree"))?;
    let folder = folder.write().map_err(git("write a tree"))?;
    let namespace = namespace
        .map(str::to_string)
        .or_else(|| Some(build.spec.namespace.clone()).filter(|n| !n.is_empty()))
        .unwrap_or_else(|| environment.to_string());
    release_manager::names::check_namespace(&namespace)?;
    let author = Signature {
        name: build.spec.application.author_name.clone(),
        email: build.spec.application.author_email.clone(),
    };
    let title = format!("[{environment}/{service}] release {artifact_id}");
    let commit = commit_release_folder(
        ctx,
        request,
        ReleaseCommit {
            service,
            environment,
            namespace: &namespace,
            folder,
            title: &title,
            artifact_id: &artifact_id,
            branch: &release_manager::names::branch_of_folder(&build.branch),
            kind,
            author: &author,
        },
    )?;
    let commit_sha = commit
        .unwrap_or_else(|| holding_commit(ctx, environment, &namespace, service, &artifact_id));
    Ok(ReleaseDone {
        outcome: if commit.is_some() {
            Outcome::Applied
        } else {
            Outcome::AlreadyUpToDate
        },
        service: service.to_string(),
        environment: environment.to_string(),
        namespace,
        artifact_id,
        branch: release_manager::names::branch_of_folder(&build.branch),
        created: commit.is_some(),
        replayed: false,
        commit: commit_sha,
        kind,
        from_environment: None,
        previous_artifact_id: None,
    })
}

/// What a release commit puts where, and says.
pub(crate) struct ReleaseCommit<'a> {
    pub(crate) service: &'a str,
    pub(crate) environment: &'a str,
    pub(crate) namespace: &'a str,
    /// The new `<env>/releases/<namespace>/<service>` tree.
    pub(crate) folder: Oid,
    pub(crate) title: &'a str,
    pub(crate) artifact_id: &'a str,
    pub(crate) branch: &'a str,
    pub(crate) kind: ReleaseKind,
    /// The build's source author; the requester when unknown.
    pub(crate) author: &'a Signature,
}

/// The release commit that put `artifact_id` into the release folder of
/// `service` in `environment`/`namespace`, which already holds it: what an
/// ALREADY_UP_TO_DATE reply names (the tip when history does not say, as
/// for a folder written by hand).
pub(crate) fn holding_commit(
    ctx: &FlowContext<'_>,
    environment: &str,
    namespace: &str,
    service: &str,
    artifact_id: &str,
) -> Oid {
    ctx.view
        .releases(environment, service)
        .find(|r| *r.namespace == *namespace && *r.artifact_id == *artifact_id)
        .map_or(ctx.tip, |r| r.commit)
}

/// Replaces the release folder and commits on `ctx.tip`; `None` when the
/// folder already holds exactly that tree.
pub(crate) fn commit_release_folder(
    ctx: &FlowContext<'_>,
    request: &WriteRequest,
    release: ReleaseCommit<'_>,
) -> Result<Option<Oid>, FlowError> {
    let repo = ctx.repo;
    let parent = repo.find_commit(ctx.tip).map_err(git("read the tip"))?;
    let root = parent.tree().map_err(git("read the tip"))?;
    let path = [
        release.environment,
        "releases",
        release.namespace,
        release.service,
    ];
    let current = tree_at(repo, &root, &path.join("/")).map_err(git("read a tree"))?;
    if current.is_some_and(|t| t.id() == release.folder) {
        return Ok(None);
    }
    let new_root = replace_at(
        repo,
        Some(&root),
        &path,
        Some((release.folder, FileMode::Tree)),
    )
    .map_err(git("write a tree"))?
    .expect("a tree with a release folder is not empty");
    let new_root = repo.find_tree(new_root).map_err(git("read a tree"))?;
    let committer_line = format!("{} <{}>", request.committer.name, request.committer.email);
    let message = compose(
        release.title,
        &[
            ("Artifact-ID", release.artifact_id),
            ("Service", release.service),
            ("Environment", release.environment),
            ("Namespace", release.namespace),
            ("Branch", release.branch),
            ("Release-intent", release.kind.as_str()),
            ("Released-by", &committer_line),
            (
                "Request-ID",
                request.request_id.as_deref().unwrap_or_default(),
            ),
        ],
    );
    let committer = git2::Signature::now(&request.committer.name, &request.committer.email)
        .map_err(|_| {
            FlowError::invalid(
                "committer",
                format!("committer {committer_line:?} is not a valid git identity"),
            )
        })?;
    let author = if release.author.name.is_empty() || release.author.email.is_empty() {
        committer.clone()
    } else {
        git2::Signature::new(
            &release.author.name,
            &release.author.email,
            &committer.when(),
        )
        .unwrap_or_else(|_| committer.clone())
    };
    let oid = repo
        .commit(None, &author, &committer, &message, &new_root, &[&parent])
        .map_err(git("write a commit"))?;
    Ok(Some(oid))
}
