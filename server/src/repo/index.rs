//! The in-memory index of builds and releases, read from the history of the
//! default branch once at start and then kept up to date commit by commit.
//! It answers "where is artifact X", "what ran before" and history queries
//! without walking the log per request. Commits the writer has made but not
//! yet pushed live in a separate pending index, seen through [`View`], so a
//! rejected push simply drops them.

use std::collections::HashMap;

use git2::{ObjectType, Oid, Repository, Sort, Tree};

use super::message::{parse_title, trailer, Title};
use super::tree::tree_at;
use super::RepoError;

/// Why a release commit was made (its `Release-intent:` trailer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseKind {
    /// Written by another tool, or without a trailer.
    Unknown,
    /// The latest build of a branch.
    Branch,
    /// One artifact by id.
    Artifact,
    /// A promotion.
    Promote,
    /// A rollback.
    Rollback,
    /// An auto-release policy.
    AutoRelease,
}

impl ReleaseKind {
    /// The trailer value.
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseKind::Unknown => "unknown",
            ReleaseKind::Branch => "release-branch",
            ReleaseKind::Artifact => "release-artifact",
            ReleaseKind::Promote => "promote",
            ReleaseKind::Rollback => "rollback",
            ReleaseKind::AutoRelease => "auto-release",
        }
    }

    /// Reads a `Release-intent:` trailer value.
    pub fn parse_trailer(value: Option<&str>, rollback_title: bool) -> Self {
        match value {
            Some("release-branch") => ReleaseKind::Branch,
            Some("release-artifact") => ReleaseKind::Artifact,
            Some("promote") => ReleaseKind::Promote,
            Some("rollback") => ReleaseKind::Rollback,
            Some("auto-release") => ReleaseKind::AutoRelease,
            _ if rollback_title => ReleaseKind::Rollback,
            _ => ReleaseKind::Unknown,
        }
    }
}

/// A name and email as git records them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signature {
    /// Name.
    pub name: String,
    /// Email.
    pub email: String,
}

impl Signature {
    fn of(sig: &git2::Signature<'_>) -> Self {
        Signature {
            name: String::from_utf8_lossy(sig.name_bytes()).into_owned(),
            email: String::from_utf8_lossy(sig.email_bytes()).into_owned(),
        }
    }
}

/// One build commit.
#[derive(Debug, Clone)]
pub struct BuildRecord {
    /// Artifact id.
    pub artifact_id: String,
    /// Branch folder the build was stored in.
    pub branch: String,
    /// The build commit.
    pub commit: Oid,
    /// Commit time (seconds since the epoch).
    pub time: i64,
}

/// One release commit.
#[derive(Debug, Clone)]
pub struct ReleaseRecord {
    /// Artifact id released.
    pub artifact_id: String,
    /// Namespace folder.
    pub namespace: String,
    /// Why.
    pub kind: ReleaseKind,
    /// The release commit.
    pub commit: Oid,
    /// Committer time (seconds since the epoch).
    pub time: i64,
    /// Who released (the committer).
    pub committer: Signature,
    /// The build's source author (the commit author).
    pub author: Signature,
    /// Commit title.
    pub title: String,
}

/// Builds and releases by service, oldest first.
#[derive(Debug, Default)]
pub struct Index {
    builds: HashMap<String, Vec<BuildRecord>>,
    build_positions: HashMap<(String, String), usize>,
    releases: HashMap<(String, String), Vec<ReleaseRecord>>,
    requests: HashMap<String, Oid>,
    commits: usize,
}

impl Index {
    /// Reads every commit reachable from `to` and not from `from`, oldest
    /// first, into the index.
    pub fn ingest_range(
        &mut self,
        repo: &Repository,
        from: Option<Oid>,
        to: Oid,
    ) -> Result<(), RepoError> {
        if from == Some(to) {
            return Ok(());
        }
        let mut walk = repo.revwalk().map_err(RepoError::git("walk history"))?;
        walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)
            .map_err(RepoError::git("walk history"))?;
        walk.push(to).map_err(RepoError::git("walk history"))?;
        if let Some(from) = from {
            walk.hide(from).map_err(RepoError::git("walk history"))?;
        }
        for oid in walk {
            let oid = oid.map_err(RepoError::git("walk history"))?;
            self.ingest_commit(repo, oid)?;
        }
        Ok(())
    }

    /// Adds one commit, if it is a build, release or request-id carrier.
    pub fn ingest_commit(&mut self, repo: &Repository, oid: Oid) -> Result<(), RepoError> {
        self.commits += 1;
        let commit = repo
            .find_commit(oid)
            .map_err(RepoError::git("read a commit"))?;
        let message = String::from_utf8_lossy(commit.message_bytes());
        if let Some(request_id) = trailer(&message, "Request-ID") {
            self.requests.insert(request_id.to_string(), oid);
        }
        match parse_title(&message) {
            Some(Title::Build {
                service,
                artifact_id,
            }) => {
                let branch = match trailer(&message, "Branch") {
                    Some(branch) => Some(branch.to_string()),
                    None => changed_build_branch(repo, &commit, &service)?,
                };
                if let Some(branch) = branch {
                    self.add_build(
                        service,
                        BuildRecord {
                            artifact_id,
                            branch,
                            commit: oid,
                            time: commit.time().seconds(),
                        },
                    );
                }
            }
            Some(Title::Release {
                environment,
                service,
                artifact_id,
                rollback,
            }) => {
                let namespace = trailer(&message, "Namespace")
                    .unwrap_or(&environment)
                    .to_string();
                let record = ReleaseRecord {
                    artifact_id,
                    namespace,
                    kind: ReleaseKind::parse_trailer(trailer(&message, "Release-intent"), rollback),
                    commit: oid,
                    time: commit.committer().when().seconds(),
                    committer: Signature::of(&commit.committer()),
                    author: Signature::of(&commit.author()),
                    title: message.lines().next().unwrap_or_default().to_string(),
                };
                self.releases
                    .entry((environment, service))
                    .or_default()
                    .push(record);
            }
            Some(Title::Policy { .. }) | None => {}
        }
        Ok(())
    }

    fn add_build(&mut self, service: String, record: BuildRecord) {
        let list = self.builds.entry(service.clone()).or_default();
        self.build_positions
            .insert((service, record.artifact_id.clone()), list.len());
        list.push(record);
    }

    /// Moves everything in `pending` into this index (after a push).
    pub fn absorb(&mut self, pending: Index) {
        for (service, builds) in pending.builds {
            for build in builds {
                self.add_build(service.clone(), build);
            }
        }
        for (key, releases) in pending.releases {
            self.releases.entry(key).or_default().extend(releases);
        }
        self.requests.extend(pending.requests);
        self.commits += pending.commits;
    }

    /// The `(service, branch)` pairs that have builds in this index.
    pub fn new_builds(&self) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = self
            .builds
            .iter()
            .flat_map(|(service, builds)| {
                builds
                    .iter()
                    .map(move |b| (service.clone(), b.branch.clone()))
            })
            .collect();
        pairs.sort();
        pairs.dedup();
        pairs
    }

    /// Number of commits read so far.
    pub fn commit_count(&self) -> usize {
        self.commits
    }
}

/// The published index seen together with the writer's pending commits.
#[derive(Clone, Copy)]
pub struct View<'a> {
    /// Commits on the remote.
    pub base: &'a Index,
    /// Commits of the batch in progress, if any.
    pub pending: Option<&'a Index>,
}

impl<'a> View<'a> {
    /// A view of the published index alone.
    pub fn published(base: &'a Index) -> Self {
        View {
            base,
            pending: None,
        }
    }

    fn layers(&self) -> impl Iterator<Item = &'a Index> {
        self.pending.into_iter().chain(std::iter::once(self.base))
    }

    /// The build commit of an artifact.
    pub fn build(&self, service: &str, artifact_id: &str) -> Option<&'a BuildRecord> {
        let key = (service.to_string(), artifact_id.to_string());
        self.layers().find_map(|index| {
            let position = *index.build_positions.get(&key)?;
            index.builds.get(service)?.get(position)
        })
    }

    /// Builds of a service, newest first.
    pub fn builds(&self, service: &str) -> impl Iterator<Item = &'a BuildRecord> {
        let service = service.to_string();
        self.layers()
            .flat_map(move |index| index.builds.get(&service).into_iter().flatten().rev())
    }

    /// Releases of a service to an environment, newest first.
    pub fn releases(
        &self,
        environment: &str,
        service: &str,
    ) -> impl Iterator<Item = &'a ReleaseRecord> {
        let key = (environment.to_string(), service.to_string());
        self.layers()
            .flat_map(move |index| index.releases.get(&key).into_iter().flatten().rev())
    }

    /// The commit that carried a request id, if any.
    pub fn request(&self, request_id: &str) -> Option<Oid> {
        self.layers()
            .find_map(|index| index.requests.get(request_id).copied())
    }
}

/// Finds the branch folder under `builds/<service>/` whose artifact.json a
/// build commit changed: descends only into subtrees that differ from the
/// first parent, and stops at a folder holding `artifact.json`.
pub(crate) fn changed_build_branch(
    repo: &Repository,
    commit: &git2::Commit<'_>,
    service: &str,
) -> Result<Option<String>, RepoError> {
    let path = format!("builds/{service}");
    let tree = commit.tree().map_err(RepoError::git("read a tree"))?;
    let Some(new) = tree_at(repo, &tree, &path).map_err(RepoError::git("read a tree"))? else {
        return Ok(None);
    };
    let old = match commit.parent(0) {
        Ok(parent) => {
            let parent_tree = parent.tree().map_err(RepoError::git("read a tree"))?;
            tree_at(repo, &parent_tree, &path).map_err(RepoError::git("read a tree"))?
        }
        Err(_) => None,
    };
    find_changed_branch(repo, &new, old.as_ref(), "").map_err(RepoError::git("read a tree"))
}

fn find_changed_branch(
    repo: &Repository,
    new: &Tree<'_>,
    old: Option<&Tree<'_>>,
    prefix: &str,
) -> Result<Option<String>, git2::Error> {
    // A folder whose artifact.json changed is the branch; one whose
    // artifact.json did not may still hold a nested branch (`feature` and
    // `feature/x`), so the search goes on below it.
    if !prefix.is_empty() {
        if let Some(spec) = new.get_name("artifact.json") {
            let before = old
                .and_then(|o| o.get_name("artifact.json"))
                .map(|e| e.id());
            if before != Some(spec.id()) {
                return Ok(Some(prefix.to_string()));
            }
        }
    }
    for entry in new.iter() {
        if entry.kind() != Some(ObjectType::Tree) {
            continue;
        }
        let previous = old.and_then(|o| o.get_name_bytes(entry.name_bytes()));
        if previous.as_ref().is_some_and(|p| p.id() == entry.id()) {
            continue;
        }
        let Some(name) = entry.name() else { continue };
        let sub = repo.find_tree(entry.id())?;
        let old_sub = match previous {
            Some(p) if p.kind() == Some(ObjectType::Tree) => Some(repo.find_tree(p.id())?),
            _ => None,
        };
        let path = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        };
        if let Some(found) = find_changed_branch(repo, &sub, old_sub.as_ref(), &path)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}
