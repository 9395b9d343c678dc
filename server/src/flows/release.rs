//! Release: find the build (latest of a branch, or one artifact by id in
//! history), graft its `<env>` tree plus its artifact.json into
//! `<env>/releases/<namespace>/<service>`, and commit. Also the graft and
//! commit helpers that promote and rollback share.

use git2::{FileMode, Oid, Tree};
use release_manager::spec::ArtifactSpec;

use super::{BuildSource, FlowContext, Outcome, ReleaseDone, WriteRequest};
use crate::domain::{git, FlowError, Reason};
use crate::repo::commits::write_commit;
use crate::repo::index::{BuildFolder, ReleaseKind, Signature};
use crate::repo::message::{compose, compose_release_title, intent_value};
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
    release_build(
        ctx,
        request,
        service,
        environment,
        &build,
        namespace,
        kind,
        None,
    )
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
            let Some((path, tree)) = branch_build_folder(ctx, &root, service, branch)? else {
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
            let path = format!("{}/{service}/{}", record.folder.name(), record.branch);
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

/// The folder at the tip holding the latest build of `branch`:
/// `builds/<service>/<branch>`, or the original's
/// `artifacts/<service>/<branch>` (April 2019 to mid-2020). When both hold
/// one, the one built last wins.
pub(crate) fn branch_build_folder<'r>(
    ctx: &FlowContext<'r>,
    root: &Tree<'r>,
    service: &str,
    branch: &str,
) -> Result<Option<(String, Tree<'r>)>, FlowError> {
    let newest = ctx
        .view
        .builds(service)
        .find(|b| &*b.branch == branch)
        .map(|b| b.folder);
    let mut order = BuildFolder::ALL.to_vec();
    if let Some(newest) = newest {
        order.retain(|f| *f != newest);
        order.insert(0, newest);
    }
    for folder in order {
        let path = format!("{}/{service}/{branch}", folder.name());
        if let Some(tree) = tree_at(ctx.repo, root, &path).map_err(git("read a tree"))? {
            if tree.get_name("artifact.json").is_some() {
                return Ok(Some((path, tree)));
            }
        }
    }
    Ok(None)
}

fn unknown_build(
    ctx: &FlowContext<'_>,
    root: &Tree<'_>,
    service: &str,
    reason: Reason,
    what: &str,
) -> FlowError {
    if ctx.view.builds(service).next().is_some() {
        return FlowError::not_found(reason, format!("{what} for service {service:?}"));
    }
    let released_in: std::collections::BTreeSet<String> = ctx
        .settings
        .environments
        .iter()
        .filter(|e| ctx.view.releases(e, service).next().is_some())
        .cloned()
        .collect();
    if !released_in.is_empty() {
        // Known by its releases, but none of its builds is in the
        // repository: never "unknown service" (it runs).
        return crate::domain::catalog::no_readable_build(service, &released_in);
    }
    crate::domain::catalog::unknown_service_at(ctx.repo, root, service)
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

/// Releases a found build: graft and commit. (Each argument is one fact of
/// the release; bundling them would only rename them.)
#[allow(clippy::too_many_arguments)]
pub(crate) fn release_build(
    ctx: &FlowContext<'_>,
    request: &WriteRequest,
    service: &str,
    environment: &str,
    build: &Build<'_>,
    namespace: Option<&str>,
    kind: ReleaseKind,
    from_environment: Option<&str>,
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
    let mut env_tree = repo.find_tree(env_tree).map_err(git("read a tree"))?;
    // A Flux Kustomization among the files goes to clusters/, as the
    // original moves it (see `kustomization`).
    let cluster_file =
        match super::kustomization::find(repo, &env_tree).map_err(git("read the build's files"))? {
            Some((path, blob)) => {
                let parts: Vec<&str> = path.split('/').collect();
                let without =
                    replace_at(repo, Some(&env_tree), &parts, None).map_err(git("write a tree"))?;
                env_tree = match without {
                    Some(oid) => repo.find_tree(oid).map_err(git("read a tree"))?,
                    // The Kustomization was the only file.
                    None => {
                        let empty = repo
                            .treebuilder(None)
                            .and_then(|b| b.write())
                            .map_err(git("write a tree"))?;
                        repo.find_tree(empty).map_err(git("read a tree"))?
                    }
                };
                Some(blob)
            }
            None => None,
        };
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
    let commit = commit_release_folder(
        ctx,
        request,
        ReleaseCommit {
            service,
            environment,
            namespace: &namespace,
            folder,
            artifact_id: &artifact_id,
            branch: &release_manager::names::branch_of_folder(&build.branch),
            kind,
            author: &author,
            from_environment,
            previous_artifact_id: None,
            cluster_file,
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
    pub(crate) artifact_id: &'a str,
    pub(crate) branch: &'a str,
    pub(crate) kind: ReleaseKind,
    /// The build's source author; the requester when unknown.
    pub(crate) author: &'a Signature,
    /// A promotion: the environment the artifact came from.
    pub(crate) from_environment: Option<&'a str>,
    /// A rollback: the artifact that ran before.
    pub(crate) previous_artifact_id: Option<&'a str>,
    /// A Flux Kustomization to put at `clusters/<env>/<namespace>/<service>.yaml`;
    /// `None` leaves that file as it is.
    pub(crate) cluster_file: Option<Oid>,
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
    let cluster_path =
        super::kustomization::cluster_path(release.environment, release.namespace, release.service);
    let cluster_current = crate::repo::tree::entry_at(repo, &root, &cluster_path)
        .map_err(git("read a tree"))?
        .map(|(oid, _)| oid);
    let cluster_unchanged = release
        .cluster_file
        .is_none_or(|blob| cluster_current == Some(blob));
    if current.is_some_and(|t| t.id() == release.folder) && cluster_unchanged {
        return Ok(None);
    }
    let mut new_root = replace_at(
        repo,
        Some(&root),
        &path,
        Some((release.folder, FileMode::Tree)),
    )
    .map_err(git("write a tree"))?
    .expect("a tree with a release folder is not empty");
    if let Some(blob) = release.cluster_file {
        let with_cluster = repo.find_tree(new_root).map_err(git("read a tree"))?;
        let parts: Vec<&str> = cluster_path.split('/').collect();
        new_root = replace_at(
            repo,
            Some(&with_cluster),
            &parts,
            Some((blob, FileMode::Blob)),
        )
        .map_err(git("write a tree"))?
        .expect("a tree with a file is not empty");
    }
    let new_root = repo.find_tree(new_root).map_err(git("read a tree"))?;
    let committer_line = format!("{} <{}>", request.committer.name, request.committer.email);
    let author_line = format!("{} <{}>", release.author.name, release.author.email);
    // Written for the original release manager too (its
    // `internal/commitinfo` reads the title, `Artifact-released-by`,
    // `Artifact-created-by` and `Release-intent` with its detail fields),
    // then what only this server reads.
    let title = compose_release_title(
        release.kind,
        release.environment,
        release.service,
        release.artifact_id,
        &request.committer.email,
    );
    let (detail_key, detail) = match release.kind {
        ReleaseKind::Branch => ("Release-of-branch", release.branch),
        ReleaseKind::Promote => (
            "Promoted-from-environment",
            release.from_environment.unwrap_or_default(),
        ),
        ReleaseKind::Rollback => (
            "Rollback-of-artifact-id",
            release.previous_artifact_id.unwrap_or_default(),
        ),
        _ => ("", ""),
    };
    let message = compose(
        &title,
        &[
            ("Service", release.service),
            ("Environment", release.environment),
            ("Artifact-ID", release.artifact_id),
            ("Artifact-released-by", &committer_line),
            (
                "Artifact-created-by",
                if release.author.email.is_empty() {
                    ""
                } else {
                    &author_line
                },
            ),
            ("Release-intent", intent_value(release.kind)),
            (detail_key, detail),
            ("Namespace", release.namespace),
            ("Branch", release.branch),
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
    // With a committer of the server's own, the person releasing is the
    // author, so that git's own fields still name them.
    let author = if ctx.commits.fixed_committer()
        || release.author.name.is_empty()
        || release.author.email.is_empty()
    {
        committer.clone()
    } else {
        git2::Signature::new(
            &release.author.name,
            &release.author.email,
            &committer.when(),
        )
        .unwrap_or_else(|_| committer.clone())
    };
    let oid = write_commit(
        repo,
        ctx.commits,
        &author,
        &committer,
        &message,
        &new_root,
        &[&parent],
    )
    .map_err(git("write a commit"))?;
    Ok(Some(oid))
}
