//! Add a build: store an uploaded build (artifact.json plus one folder per
//! environment) as `builds/<service>/<branch>/`, replacing what was there,
//! in one `[<service>] build tag <artifact-id>` commit.
//!
//! An artifact id names one build forever, so that what was tested in one
//! environment is what reaches the next: an id already in history is
//! stored again only never. Pushed again with the same manifests (a re-run
//! pipeline, whose artifact.json differs only in CI times, stage results
//! or formatting) it changes nothing and answers with the build commit that
//! holds it; with other manifests it is refused (`ALREADY_EXISTS`).

use git2::FileMode;

use super::{BuildDone, FlowContext, Outcome, WriteRequest};
use crate::domain::{git, FlowError};
use crate::repo::message::compose;
use crate::repo::tree::{replace_at, tree_at};

/// A validated build upload.
#[derive(Debug, Clone)]
pub(crate) struct BuildUpload {
    /// Service (from artifact.json).
    pub(crate) service: String,
    /// Branch (from artifact.json).
    pub(crate) branch: String,
    /// Artifact id (from artifact.json).
    pub(crate) artifact_id: String,
    /// Files relative to the build folder, `artifact.json` among them, with
    /// their blobs (already in the object database).
    pub(crate) files: Vec<(String, git2::Oid)>,
    /// The build's source author: the commit's author.
    pub(crate) author_name: String,
    /// The build's source author's email.
    pub(crate) author_email: String,
    /// Where an imported build came from (`s3://bucket/key`): written as
    /// the `Imported-from` trailer, which tells later readers that the
    /// build is history brought in, not news to auto-release.
    pub(crate) imported_from: Option<String>,
    /// Where the files' objects wait until the writer links them into the
    /// mirror (see [`crate::repo::staging`]); `None` when they were
    /// written into the mirror already (an import).
    pub(crate) staged: Option<std::sync::Arc<crate::repo::staging::StagedObjects>>,
}

/// `new` plus every subfolder of `old` that is not an environment folder
/// (those belong to branches nested below this one).
fn keep_nested_branches(
    ctx: &FlowContext<'_>,
    old: &git2::Tree<'_>,
    new: git2::Oid,
) -> Result<git2::Oid, FlowError> {
    let repo = ctx.repo;
    let new_tree = repo.find_tree(new).map_err(git("read a tree"))?;
    let mut builder = repo
        .treebuilder(Some(&new_tree))
        .map_err(git("build a tree"))?;
    let mut kept = false;
    for entry in old.iter() {
        let Some(name) = entry.name() else { continue };
        let nested_branch = entry.kind() == Some(git2::ObjectType::Tree)
            && !ctx.settings.environments.iter().any(|e| e == name)
            && new_tree.get_name(name).is_none();
        if nested_branch {
            builder
                .insert(name, entry.id(), entry.filemode())
                .map_err(git("build a tree"))?;
            kept = true;
        }
    }
    if !kept {
        return Ok(new);
    }
    builder.write().map_err(git("write a tree"))
}

/// Who commits builds: the server itself, on behalf of CI.
const BUILD_COMMITTER: (&str, &str) = ("Release Manager", "release-manager@localhost");

/// The manifests of a build folder: every entry but artifact.json and the
/// folders of nested branches (those not named after an environment).
fn manifests(ctx: &FlowContext<'_>, folder: &git2::Tree<'_>) -> Vec<(String, git2::Oid)> {
    let mut entries: Vec<(String, git2::Oid)> = folder
        .iter()
        .filter_map(|entry| {
            let name = entry.name()?;
            let nested_branch = entry.kind() == Some(git2::ObjectType::Tree)
                && !ctx.settings.environments.iter().any(|e| e == name);
            (name != "artifact.json" && !nested_branch).then(|| (name.to_string(), entry.id()))
        })
        .collect();
    entries.sort();
    entries
}

/// What to answer for an upload of an artifact id that history already
/// holds: nothing to do when its manifests are those of the stored build,
/// else a refusal naming the build.
fn existing_build(
    ctx: &FlowContext<'_>,
    upload: &BuildUpload,
    uploaded: git2::Oid,
    done: impl Fn(Outcome, git2::Oid, bool) -> BuildDone,
) -> Result<Option<BuildDone>, FlowError> {
    let Some(record) = ctx.view.build(&upload.service, &upload.artifact_id) else {
        return Ok(None);
    };
    let repo = ctx.repo;
    let root =
        crate::repo::tree::tree_of(repo, record.commit).map_err(git("read a build commit"))?;
    let stored = tree_at(
        repo,
        &root,
        &format!(
            "{}/{}/{}",
            record.folder.name(),
            upload.service,
            record.branch
        ),
    )
    .map_err(git("read a tree"))?;
    let uploaded = repo.find_tree(uploaded).map_err(git("read a tree"))?;
    let same = stored.is_some_and(|stored| manifests(ctx, &stored) == manifests(ctx, &uploaded));
    if same {
        return Ok(Some(done(Outcome::AlreadyUpToDate, record.commit, false)));
    }
    Err(FlowError::AlreadyExists(format!(
        "artifact {:?} of service {:?} already exists (build commit {} on branch {:?}) with other manifests; an artifact id names one build: give this build a new id",
        upload.artifact_id, upload.service, record.commit, record.branch
    )))
}

/// The answer to an upload whose request id a build commit in history
/// carries: that commit, if it stored this build; else the id was used
/// for something else.
pub(super) fn replayed(
    ctx: &FlowContext<'_>,
    request: &WriteRequest,
    upload: &BuildUpload,
    commit: git2::Oid,
) -> Result<BuildDone, FlowError> {
    let found = ctx.repo.find_commit(commit).map_err(git("read a commit"))?;
    let message = String::from_utf8_lossy(found.message_bytes()).into_owned();
    let field = |key: &str| {
        crate::repo::message::trailer(&message, key)
            .unwrap_or_default()
            .to_string()
    };
    if field("Service") != upload.service || field("Artifact-ID") != upload.artifact_id {
        return Err(FlowError::invalid(
            "request_id",
            format!(
                "request_id {:?} was already used for another request",
                request.request_id.as_deref().unwrap_or_default()
            ),
        ));
    }
    Ok(BuildDone {
        outcome: Outcome::Applied,
        service: upload.service.clone(),
        branch: field("Branch"),
        artifact_id: upload.artifact_id.clone(),
        commit,
        created: false,
        file_count: upload.files.len(),
        auto_releases: Vec::new(),
        replayed: true,
    })
}

pub(super) fn add_build(
    ctx: &FlowContext<'_>,
    request: &WriteRequest,
    upload: &BuildUpload,
) -> Result<BuildDone, FlowError> {
    let repo = ctx.repo;
    let mut folder = None;
    for (path, blob) in &upload.files {
        let blob = *blob;
        let parts: Vec<&str> = path.split('/').collect();
        let current = folder
            .map(|oid| repo.find_tree(oid))
            .transpose()
            .map_err(git("read a tree"))?;
        folder = replace_at(repo, current.as_ref(), &parts, Some((blob, FileMode::Blob)))
            .map_err(git("write a tree"))?;
    }
    let folder = folder.ok_or_else(|| FlowError::invalid("path", "the upload holds no files"))?;
    // `upload.branch` is the branch's folder; replies and trailers name
    // the branch as git does.
    let branch = release_manager::names::branch_of_folder(&upload.branch);
    let done = |outcome, commit, created| BuildDone {
        outcome,
        service: upload.service.clone(),
        branch: branch.clone(),
        artifact_id: upload.artifact_id.clone(),
        commit,
        created,
        file_count: upload.files.len(),
        auto_releases: Vec::new(),
        replayed: false,
    };
    if let Some(answer) = existing_build(ctx, upload, folder, done)? {
        return Ok(answer);
    }
    let parent = repo.find_commit(ctx.tip).map_err(git("read the tip"))?;
    let root = parent.tree().map_err(git("read the tip"))?;
    let base = format!("builds/{}/{}", upload.service, upload.branch);
    // The folder of branch `feature` may hold the folder of branch
    // `feature/x`: a new build of `feature` replaces its own files and
    // environment folders, never another branch's.
    let folder = match tree_at(repo, &root, &base).map_err(git("read a tree"))? {
        Some(old) => keep_nested_branches(ctx, &old, folder)?,
        None => folder,
    };
    if tree_at(repo, &root, &base)
        .map_err(git("read a tree"))?
        .is_some_and(|t| t.id() == folder)
    {
        return Ok(done(Outcome::AlreadyUpToDate, ctx.tip, false));
    }
    let mut path = vec!["builds", upload.service.as_str()];
    path.extend(upload.branch.split('/'));
    let new_root = replace_at(repo, Some(&root), &path, Some((folder, FileMode::Tree)))
        .map_err(git("write a tree"))?
        .expect("a tree holding a build is not empty");
    let new_root = repo.find_tree(new_root).map_err(git("read a tree"))?;
    let message = compose(
        &format!("[{}] build tag {}", upload.service, upload.artifact_id),
        &[
            ("Artifact-ID", &upload.artifact_id),
            ("Service", &upload.service),
            ("Branch", &branch),
            (
                "Request-ID",
                request.request_id.as_deref().unwrap_or_default(),
            ),
            (
                "Imported-from",
                upload.imported_from.as_deref().unwrap_or_default(),
            ),
        ],
    );
    let committer = git2::Signature::now(BUILD_COMMITTER.0, BUILD_COMMITTER.1)
        .map_err(git("make a signature"))?;
    let author = git2::Signature::new(&upload.author_name, &upload.author_email, &committer.when())
        .unwrap_or_else(|_| committer.clone());
    let oid = crate::repo::commits::write_commit(
        repo,
        ctx.commits,
        &author,
        &committer,
        &message,
        &new_root,
        &[&parent],
    )
    .map_err(git("write a commit"))?;
    Ok(done(Outcome::Applied, oid, true))
}
