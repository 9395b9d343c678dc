//! The one reader of history: what a commit *is*, decided from what it
//! changed, never from its title. A commit that changes
//! `builds/<service>/<branch>/artifact.json` (or, as the original release
//! manager stored builds from April 2019 to mid-2020,
//! `artifacts/<service>/<branch>/artifact.json`) is a build of the id in
//! that file; one that changes a release folder
//! `<env>/releases/<namespace>/<service>/` so that it holds another
//! artifact is a release of the id in its artifact.json; one that changes
//! the folder and leaves its artifact as it was (a hand edit such as
//! scaling replicas, or a revert of one) is an edit of that release, not a
//! release, unless its message says it releases that artifact (a
//! re-release after an edit); one that changes `policies/<service>.json`
//! changes that service's policies. That holds for
//! commits of this server, of the original release manager in any era, of
//! CI jobs and of people editing by hand alike. Messages only enrich (see
//! `message`).
//!
//! The start-up index, the incremental update after a fetch or push, the
//! rebuild after a rewritten history and the event stream all ask
//! [`HistoryReader`]. It compares each commit's trees with its first
//! parent's, descending only into subtrees that differ, and keeps the
//! trees of the commit it read last: walking history oldest first, a
//! commit's parent is usually that commit, so each large tree (`builds`, a
//! namespace folder with thousands of services) is read once, not twice.

use git2::{Commit, ObjectType, Oid, Repository};

use super::raw_tree::{changes, Change, RawTree};

/// The top-level folder a build is stored under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum BuildFolder {
    /// `builds/`: this server, and the original release manager until
    /// April 2019.
    Builds,
    /// `artifacts/`: the original release manager from April 2019 until it
    /// moved builds to S3 in mid-2020.
    Artifacts,
}

impl BuildFolder {
    /// Both, newest convention first.
    pub(crate) const ALL: [BuildFolder; 2] = [BuildFolder::Builds, BuildFolder::Artifacts];

    /// The folder's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            BuildFolder::Builds => "builds",
            BuildFolder::Artifacts => "artifacts",
        }
    }

    /// The folder of a top-level name, if it holds builds.
    fn of(name: &str) -> Option<Self> {
        BuildFolder::ALL.into_iter().find(|f| f.name() == name)
    }

    /// A compact code, for the snapshot.
    pub(crate) fn code(self) -> u8 {
        match self {
            BuildFolder::Builds => 0,
            BuildFolder::Artifacts => 1,
        }
    }

    /// The folder of a [`BuildFolder::code`].
    pub(crate) fn from_code(code: u8) -> Option<Self> {
        BuildFolder::ALL.into_iter().find(|f| f.code() == code)
    }
}

/// A build a commit added or replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BuildFact {
    /// Where it is stored.
    pub(crate) folder: BuildFolder,
    /// Service (the folder under `builds/` or `artifacts/`).
    pub(crate) service: String,
    /// Branch (the folder path below the service, `feature/x` nested).
    pub(crate) branch: String,
    /// The id in its artifact.json.
    pub(crate) artifact_id: String,
    /// The artifact.json blob.
    pub(crate) spec: Oid,
}

/// A release a commit made: a release folder's artifact.json changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReleaseFact {
    /// Environment (the top-level folder).
    pub(crate) environment: String,
    /// Namespace folder.
    pub(crate) namespace: String,
    /// Service folder.
    pub(crate) service: String,
    /// The id in the release folder's artifact.json.
    pub(crate) artifact_id: String,
    /// The artifact.json blob.
    pub(crate) spec: Oid,
}

/// What one commit changed that the release manager cares about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CommitFacts {
    /// Builds added or replaced.
    pub(crate) builds: Vec<BuildFact>,
    /// Releases made.
    pub(crate) releases: Vec<ReleaseFact>,
    /// Release folders changed with their artifact left as it was.
    pub(crate) edits: Vec<ReleaseFact>,
    /// Services whose policy file was added, changed or removed.
    pub(crate) policies: Vec<String>,
}

impl CommitFacts {
    /// Whether the commit changed nothing the release manager follows.
    pub(crate) fn is_empty(&self) -> bool {
        self.builds.is_empty()
            && self.releases.is_empty()
            && self.edits.is_empty()
            && self.policies.is_empty()
    }
}

/// Reads what commits changed, reusing the trees of the commit read last.
pub(crate) struct HistoryReader<'r> {
    repo: &'r Repository,
    odb: git2::Odb<'r>,
    /// Trees loaded while reading the previous commit.
    previous: Vec<RawTree>,
    /// Trees loaded while reading the current commit.
    current: Vec<RawTree>,
    /// The commit read last and its root tree.
    last: Option<(Oid, Oid)>,
}

impl<'r> HistoryReader<'r> {
    /// A reader over `repo`.
    pub(crate) fn new(repo: &'r Repository) -> Result<Self, git2::Error> {
        Ok(HistoryReader {
            repo,
            odb: repo.odb()?,
            previous: Vec::new(),
            current: Vec::new(),
            last: None,
        })
    }

    /// What `commit` changed, compared with its first parent (a root commit
    /// with the empty tree). In a merge, a change counts only when no parent
    /// already had it: what a merge brings from its other side was read
    /// with the commits of that side.
    pub(crate) fn read(&mut self, commit: &Commit<'_>) -> Result<CommitFacts, git2::Error> {
        self.previous = std::mem::take(&mut self.current);
        let new_root = self.tree(commit.tree_id())?;
        let old_root = match commit.parent_ids().next() {
            Some(parent) => Some(self.tree(self.root_of(parent)?)?),
            None => None,
        };
        self.last = Some((commit.id(), commit.tree_id()));
        let mut facts = CommitFacts::default();
        self.diff_root(old_root.as_ref(), &new_root, &mut facts)?;
        if commit.parent_count() > 1 && !facts.is_empty() {
            self.drop_merged(commit, &mut facts)?;
        }
        if !facts.edits.is_empty() {
            let message = String::from_utf8_lossy(commit.message_bytes());
            let (releases, edits): (Vec<_>, Vec<_>) =
                std::mem::take(&mut facts.edits).into_iter().partition(|e| {
                    super::message::names_release(
                        &message,
                        &e.environment,
                        &e.service,
                        &e.artifact_id,
                    )
                });
            facts.releases.extend(releases);
            facts.edits = edits;
        }
        Ok(facts)
    }

    fn root_of(&self, commit: Oid) -> Result<Oid, git2::Error> {
        match self.last {
            Some((last, root)) if last == commit => Ok(root),
            _ => Ok(self.repo.find_commit(commit)?.tree_id()),
        }
    }

    /// The tree `oid`, from what the last two commits loaded if it is there.
    fn tree(&mut self, oid: Oid) -> Result<RawTree, git2::Error> {
        if let Some(tree) = self.current.iter().find(|t| t.id == oid) {
            return Ok(tree.clone());
        }
        let tree = match self.previous.iter().find(|t| t.id == oid) {
            Some(tree) => tree.clone(),
            None => {
                let object = self.odb.read(oid)?;
                if object.kind() != ObjectType::Tree {
                    return Err(git2::Error::from_str(&format!("{oid} is not a tree")));
                }
                RawTree::new(oid, object.data())
            }
        };
        self.current.push(tree.clone());
        Ok(tree)
    }

    fn subtree(&mut self, entry: Option<(Oid, bool)>) -> Result<Option<RawTree>, git2::Error> {
        match entry {
            Some((oid, true)) => self.tree(oid).map(Some),
            _ => Ok(None),
        }
    }

    fn diff_root(
        &mut self,
        old: Option<&RawTree>,
        new: &RawTree,
        facts: &mut CommitFacts,
    ) -> Result<(), git2::Error> {
        for change in changes(old, new) {
            let Some(name) = change.name.as_deref() else {
                continue;
            };
            match name {
                "builds" | "artifacts" => {
                    let folder = BuildFolder::of(name).expect("a build folder");
                    let old = self.subtree(change.old)?;
                    if let Some(new) = self.subtree(change.new)? {
                        self.diff_builds(folder, old.as_ref(), &new, facts)?;
                    }
                }
                "policies" => {
                    let old = self.subtree(change.old)?;
                    let new = self.subtree(change.new)?;
                    diff_policies(old.as_ref(), new.as_ref(), facts);
                }
                environment => {
                    let old = self.subtree(change.old)?;
                    if let Some(new) = self.subtree(change.new)? {
                        self.diff_environment(environment, old.as_ref(), &new, facts)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn diff_builds(
        &mut self,
        folder: BuildFolder,
        old: Option<&RawTree>,
        new: &RawTree,
        facts: &mut CommitFacts,
    ) -> Result<(), git2::Error> {
        for change in changes(old, new) {
            let Some(service) = change.name else { continue };
            let old = self.subtree(change.old)?;
            if let Some(new) = self.subtree(change.new)? {
                self.diff_branches(folder, &service, "", old.as_ref(), &new, facts)?;
            }
        }
        Ok(())
    }

    /// Below `builds/<service>/<prefix>` (or `artifacts/`): a folder whose artifact.json is new
    /// or changed is a build of the branch named by its path. The search goes
    /// on below such a folder too, since branch `feature` may hold the folder
    /// of branch `feature/x`.
    fn diff_branches(
        &mut self,
        folder: BuildFolder,
        service: &str,
        prefix: &str,
        old: Option<&RawTree>,
        new: &RawTree,
        facts: &mut CommitFacts,
    ) -> Result<(), git2::Error> {
        if !prefix.is_empty() {
            if let Some(spec) = changed_spec(old, new) {
                if let Some(artifact_id) = self.artifact_id(spec)? {
                    facts.builds.push(BuildFact {
                        folder,
                        service: service.to_string(),
                        branch: prefix.to_string(),
                        artifact_id,
                        spec,
                    });
                }
            }
        }
        for change in changes(old, new) {
            let Some(name) = change.name else { continue };
            let old_sub = self.subtree(change.old)?;
            let Some(new_sub) = self.subtree(change.new)? else {
                continue;
            };
            let path = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            self.diff_branches(folder, service, &path, old_sub.as_ref(), &new_sub, facts)?;
        }
        Ok(())
    }

    /// Below a top-level folder: `releases/<namespace>/<service>/` folders
    /// whose artifact.json is new or changed are releases. A folder without
    /// `releases/` (provisioning, documentation) is not an environment.
    fn diff_environment(
        &mut self,
        environment: &str,
        old: Option<&RawTree>,
        new: &RawTree,
        facts: &mut CommitFacts,
    ) -> Result<(), git2::Error> {
        let new_releases = self.subtree(entry_named(new, "releases"))?;
        let Some(new_releases) = new_releases else {
            return Ok(());
        };
        let old_releases = match old {
            Some(old) => self.subtree(entry_named(old, "releases"))?,
            None => None,
        };
        for namespace in changes(old_releases.as_ref(), &new_releases) {
            let Some(namespace_name) = namespace.name else {
                continue;
            };
            let old_ns = self.subtree(namespace.old)?;
            let Some(new_ns) = self.subtree(namespace.new)? else {
                continue;
            };
            for service in changes(old_ns.as_ref(), &new_ns) {
                let Some(service_name) = service.name else {
                    continue;
                };
                let Some(new_folder) = self.subtree(service.new)? else {
                    continue;
                };
                let Some(spec) = new_folder
                    .get("artifact.json")
                    .filter(|e| !e.is_tree)
                    .map(|e| e.id)
                else {
                    continue;
                };
                let Some(artifact_id) = self.artifact_id(spec)? else {
                    continue;
                };
                // The artifact the folder held before: the same one means
                // the commit edited the release (or re-released it, which
                // its message says; see `read`).
                let before = match self.subtree(service.old)? {
                    Some(old_folder) => match old_folder
                        .get("artifact.json")
                        .filter(|e| !e.is_tree)
                        .map(|e| e.id)
                    {
                        Some(old_spec) if old_spec == spec => Some(artifact_id.clone()),
                        Some(old_spec) => self.artifact_id(old_spec)?,
                        None => None,
                    },
                    None => None,
                };
                let fact = ReleaseFact {
                    environment: environment.to_string(),
                    namespace: namespace_name.clone(),
                    service: service_name,
                    artifact_id,
                    spec,
                };
                if before.as_deref() == Some(fact.artifact_id.as_str()) {
                    facts.edits.push(fact);
                } else {
                    facts.releases.push(fact);
                }
            }
        }
        Ok(())
    }

    /// The id in an artifact.json blob; `None` when it has none.
    fn artifact_id(&self, spec: Oid) -> Result<Option<String>, git2::Error> {
        let blob = self.odb.read(spec)?;
        let id = release_manager::spec::committed_id(blob.data());
        if id.is_none() {
            tracing::debug!(blob = %spec, "an artifact.json without a readable id; not a build or release");
        }
        Ok(id)
    }

    /// Keeps only the facts of a merge that no parent had already.
    fn drop_merged(
        &mut self,
        commit: &Commit<'_>,
        facts: &mut CommitFacts,
    ) -> Result<(), git2::Error> {
        let mut others = Vec::new();
        for parent in commit.parent_ids().skip(1) {
            others.push(self.repo.find_commit(parent)?.tree()?);
        }
        let had = |path: &str, spec: Oid| {
            others.iter().any(|tree| {
                tree.get_path(std::path::Path::new(path))
                    .is_ok_and(|e| e.id() == spec)
            })
        };
        facts.builds.retain(|b| {
            !had(
                &format!(
                    "{}/{}/{}/artifact.json",
                    b.folder.name(),
                    b.service,
                    b.branch
                ),
                b.spec,
            )
        });
        let release_path =
            |r: &ReleaseFact| format!("{}/releases/{}/{}", r.environment, r.namespace, r.service);
        facts
            .releases
            .retain(|r| !had(&format!("{}/artifact.json", release_path(r)), r.spec));
        // An edit a parent already had came from that side: the folder as
        // the merge has it is that parent's.
        let ours = commit.tree()?;
        let folder = |tree: &git2::Tree<'_>, path: &str| {
            tree.get_path(std::path::Path::new(path))
                .ok()
                .map(|e| e.id())
        };
        facts.edits.retain(|e| {
            let path = release_path(e);
            let now = folder(&ours, &path);
            !others.iter().any(|tree| folder(tree, &path) == now)
        });
        // A policy file as the merge has it (or its absence) that another
        // parent already had came from that side.
        let policy = |tree: &git2::Tree<'_>, service: &str| {
            tree.get_path(std::path::Path::new(&format!("policies/{service}.json")))
                .ok()
                .map(|e| e.id())
        };
        facts.policies.retain(|service| {
            let now = policy(&ours, service);
            !others.iter().any(|tree| policy(tree, service) == now)
        });
        Ok(())
    }
}

fn diff_policies(old: Option<&RawTree>, new: Option<&RawTree>, facts: &mut CommitFacts) {
    let changed: Vec<Change> = match (old, new) {
        (_, Some(new)) => changes(old, new),
        // The whole folder went away: every file in it changed.
        (Some(old), None) => old
            .entries()
            .map(|e| Change {
                name: std::str::from_utf8(e.name).ok().map(str::to_string),
                old: Some((e.id, e.is_tree)),
                new: None,
            })
            .collect(),
        (None, None) => Vec::new(),
    };
    for change in changed {
        let is_file = |e: &Option<(Oid, bool)>| e.is_some_and(|(_, folder)| !folder);
        if !(is_file(&change.old) || is_file(&change.new)) {
            continue;
        }
        if let Some(service) = change.name.as_deref().and_then(|n| n.strip_suffix(".json")) {
            facts.policies.push(service.to_string());
        }
    }
}

/// The artifact.json blob of `new` when it differs from `old`'s (or `old`
/// has none).
fn changed_spec(old: Option<&RawTree>, new: &RawTree) -> Option<Oid> {
    let spec = new.get("artifact.json").filter(|e| !e.is_tree)?;
    let before = old.and_then(|o| o.get("artifact.json")).map(|e| e.id);
    (before != Some(spec.id)).then_some(spec.id)
}

fn entry_named(tree: &RawTree, name: &str) -> Option<(Oid, bool)> {
    tree.get(name).map(|e| (e.id, e.is_tree))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::tree::replace_at;
    use git2::{FileMode, Signature};

    struct Fixture {
        _dir: tempfile::TempDir,
        repo: Repository,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let repo = Repository::init_bare(dir.path()).unwrap();
            Fixture { _dir: dir, repo }
        }

        /// Commits `files` (path, content; `None` removes) on `parent`.
        fn commit(&self, parents: &[Oid], files: &[(&str, Option<&str>)]) -> Oid {
            self.commit_saying(parents, files, "whatever the title says")
        }

        /// [`Fixture::commit`] with a message.
        fn commit_saying(
            &self,
            parents: &[Oid],
            files: &[(&str, Option<&str>)],
            message: &str,
        ) -> Oid {
            let parent_commits: Vec<Commit<'_>> = parents
                .iter()
                .map(|p| self.repo.find_commit(*p).unwrap())
                .collect();
            let mut root = parent_commits.first().map(|c| c.tree_id());
            for (path, content) in files {
                let parts: Vec<&str> = path.split('/').collect();
                let new = content.map(|c| (self.repo.blob(c.as_bytes()).unwrap(), FileMode::Blob));
                let current = root.map(|o| self.repo.find_tree(o).unwrap());
                root = replace_at(&self.repo, current.as_ref(), &parts, new).unwrap();
            }
            let tree = self
                .repo
                .find_tree(
                    root.unwrap_or_else(|| crate::repo::tree::empty_tree(&self.repo).unwrap()),
                )
                .unwrap();
            let sig = Signature::new("t", "t@example.com", &git2::Time::new(0, 0)).unwrap();
            let refs: Vec<&Commit<'_>> = parent_commits.iter().collect();
            self.repo
                .commit(None, &sig, &sig, message, &tree, &refs)
                .unwrap()
        }

        fn facts(&self, commit: Oid) -> CommitFacts {
            let commit = self.repo.find_commit(commit).unwrap();
            HistoryReader::new(&self.repo)
                .unwrap()
                .read(&commit)
                .unwrap()
        }
    }

    fn spec(id: &str) -> String {
        format!("{{\n  \"id\": \"{id}\"\n}}\n")
    }

    #[test]
    fn a_changed_build_folder_is_a_build_whatever_the_title() {
        let f = Fixture::new();
        let base = f.commit(&[], &[("README.md", Some("x"))]);
        let a = spec("master-1");
        let build = f.commit(
            &[base],
            &[
                ("builds/svc/master/artifact.json", Some(&a)),
                ("builds/svc/master/dev/d.yaml", Some("d")),
            ],
        );
        let facts = f.facts(build);
        assert_eq!(facts.builds.len(), 1);
        assert_eq!(facts.builds[0].service, "svc");
        assert_eq!(facts.builds[0].branch, "master");
        assert_eq!(facts.builds[0].artifact_id, "master-1");
        assert!(facts.releases.is_empty());
        // A manifest-only change is not a new build.
        let edit = f.commit(&[build], &[("builds/svc/master/dev/d.yaml", Some("e"))]);
        assert!(f.facts(edit).is_empty());
    }

    #[test]
    fn nested_branches_and_several_services_in_one_commit() {
        let f = Fixture::new();
        let base = f.commit(
            &[],
            &[("builds/svc/feature/artifact.json", Some(&spec("f-1")))],
        );
        let both = f.commit(
            &[base],
            &[
                ("builds/svc/feature/x/artifact.json", Some(&spec("fx-1"))),
                ("builds/other/master/artifact.json", Some(&spec("m-1"))),
            ],
        );
        let mut builds: Vec<(String, String)> = f
            .facts(both)
            .builds
            .into_iter()
            .map(|b| (b.service, b.branch))
            .collect();
        builds.sort();
        assert_eq!(
            builds,
            vec![
                ("other".to_string(), "master".to_string()),
                ("svc".to_string(), "feature/x".to_string())
            ]
        );
    }

    #[test]
    fn a_changed_release_folder_is_a_release() {
        let f = Fixture::new();
        let base = f.commit(&[], &[("dev/provisioning/c.yaml", Some("c"))]);
        let release = f.commit(
            &[base],
            &[
                ("dev/releases/dev/svc/artifact.json", Some(&spec("m-1"))),
                ("dev/releases/dev/svc/d.yaml", Some("d")),
                ("dev/provisioning/c.yaml", Some("changed")),
            ],
        );
        let facts = f.facts(release);
        assert_eq!(
            facts.releases,
            vec![ReleaseFact {
                environment: "dev".into(),
                namespace: "dev".into(),
                service: "svc".into(),
                artifact_id: "m-1".into(),
                spec: facts.releases[0].spec,
            }]
        );
        let other_ns = f.commit(
            &[release],
            &[(
                "prod/releases/payments/svc/artifact.json",
                Some(&spec("m-1")),
            )],
        );
        let facts = f.facts(other_ns);
        assert_eq!(facts.releases[0].environment, "prod");
        assert_eq!(facts.releases[0].namespace, "payments");
        // A manifest edited in a release folder (replicas scaled by hand)
        // leaves its artifact in place: an edit, not a release.
        let edited = f.commit(
            &[other_ns],
            &[("prod/releases/payments/svc/d.yaml", Some("e"))],
        );
        let facts = f.facts(edited);
        assert!(facts.releases.is_empty(), "{facts:?}");
        assert_eq!(facts.edits[0].artifact_id, "m-1");
        assert_eq!(facts.edits[0].namespace, "payments");
        let other_ns = edited;
        // Removing a release folder releases nothing.
        let removed = f.commit(&[other_ns], &[("dev/releases/dev/svc/artifact.json", None)]);
        assert!(f.facts(removed).releases.is_empty());
    }

    #[test]
    fn a_re_release_after_an_edit_is_a_release_when_its_message_says_so() {
        let f = Fixture::new();
        let release = f.commit(
            &[],
            &[
                ("dev/releases/dev/svc/artifact.json", Some(&spec("m-1"))),
                ("dev/releases/dev/svc/d.yaml", Some("replicas: 1")),
            ],
        );
        let edit = f.commit(
            &[release],
            &[("dev/releases/dev/svc/d.yaml", Some("replicas: 3"))],
        );
        assert_eq!(f.facts(edit).edits.len(), 1);
        // Ours: the Artifact-ID trailer names the artifact.
        let ours = f.commit_saying(
            &[edit],
            &[("dev/releases/dev/svc/d.yaml", Some("replicas: 1"))],
            "[dev/svc] release m-1 by olga@example.com\n\nService: svc\nEnvironment: dev\nArtifact-ID: m-1\n",
        );
        let facts = f.facts(ours);
        assert_eq!(facts.releases.len(), 1, "{facts:?}");
        assert!(facts.edits.is_empty());
        // A trailer naming another service is not about this folder.
        let other = f.commit_saying(
            &[ours],
            &[("dev/releases/dev/svc/d.yaml", Some("replicas: 2"))],
            "x\n\nService: other\nArtifact-ID: m-1\n",
        );
        assert_eq!(f.facts(other).edits.len(), 1);
        // A revert of the edit is an edit too.
        let revert = f.commit_saying(
            &[other],
            &[("dev/releases/dev/svc/d.yaml", Some("replicas: 1"))],
            "Revert \"scale up\"\n\nThis reverts commit 0123.\n",
        );
        assert_eq!(f.facts(revert).edits.len(), 1);
        // Putting another artifact in the folder by hand is a release.
        let by_hand = f.commit(
            &[revert],
            &[("dev/releases/dev/svc/artifact.json", Some(&spec("m-2")))],
        );
        assert_eq!(f.facts(by_hand).releases[0].artifact_id, "m-2");
        // The same id rewritten (another formatting) is still an edit.
        let reformatted = f.commit(
            &[by_hand],
            &[(
                "dev/releases/dev/svc/artifact.json",
                Some("{\"id\": \"m-2\"}"),
            )],
        );
        assert_eq!(f.facts(reformatted).edits.len(), 1);
    }

    #[test]
    fn builds_under_the_originals_artifacts_folder_are_builds() {
        let f = Fixture::new();
        let build = f.commit(
            &[],
            &[
                ("artifacts/svc/feature/x/artifact.json", Some(&spec("fx-1"))),
                ("artifacts/svc/feature/x/dev/d.yaml", Some("d")),
            ],
        );
        let facts = f.facts(build);
        assert_eq!(facts.builds.len(), 1);
        assert_eq!(facts.builds[0].folder, BuildFolder::Artifacts);
        assert_eq!(facts.builds[0].branch, "feature/x");
        assert!(facts.releases.is_empty(), "artifacts/ is no environment");
    }

    #[test]
    fn policy_files_added_changed_and_removed() {
        let f = Fixture::new();
        let base = f.commit(&[], &[("policies/a.json", Some("{}"))]);
        let change = f.commit(
            &[base],
            &[
                ("policies/a.json", Some("{ }")),
                ("policies/b.json", Some("{}")),
            ],
        );
        assert_eq!(f.facts(change).policies, vec!["a", "b"]);
        let gone = f.commit(
            &[change],
            &[("policies/a.json", None), ("policies/b.json", None)],
        );
        assert_eq!(f.facts(gone).policies, vec!["a", "b"]);
    }

    #[test]
    fn a_merge_reports_only_its_own_changes() {
        let f = Fixture::new();
        let base = f.commit(&[], &[("README.md", Some("x"))]);
        let left = f.commit(
            &[base],
            &[("builds/a/master/artifact.json", Some(&spec("a-1")))],
        );
        let right = f.commit(
            &[base],
            &[
                ("builds/b/master/artifact.json", Some(&spec("b-1"))),
                ("policies/b.json", Some("{}")),
            ],
        );
        let merge = f.commit(
            &[left, right],
            &[
                ("builds/b/master/artifact.json", Some(&spec("b-1"))),
                ("policies/b.json", Some("{}")),
            ],
        );
        assert!(
            f.facts(merge).is_empty(),
            "b-1 and b's policy came from the right side"
        );
        let resolved = f.commit(
            &[left, right],
            &[("builds/b/master/artifact.json", Some(&spec("b-2")))],
        );
        assert_eq!(f.facts(resolved).builds[0].artifact_id, "b-2");
    }

    #[test]
    fn a_branch_named_like_an_environment_is_found_in_any_read_order() {
        let f = Fixture::new();
        let release = f.commit(
            &[],
            &[("dev/releases/dev/svc/artifact.json", Some(&spec("m-1")))],
        );
        let build = f.commit(
            &[release],
            &[("builds/svc/dev/artifact.json", Some(&spec("dev-1")))],
        );
        let mut reader = HistoryReader::new(&f.repo).unwrap();
        for oid in [release, build] {
            let commit = f.repo.find_commit(oid).unwrap();
            let facts = reader.read(&commit).unwrap();
            if oid == build {
                assert_eq!(facts.builds[0].branch, "dev");
            }
        }
        assert_eq!(f.facts(build).builds[0].branch, "dev");
    }

    #[test]
    fn reading_in_order_reuses_the_parents_trees() {
        let f = Fixture::new();
        let mut tip = f.commit(&[], &[("README.md", Some("x"))]);
        let mut commits = Vec::new();
        for n in 0..5 {
            tip = f.commit(
                &[tip],
                &[(
                    &format!("builds/s{n}/master/artifact.json"),
                    Some(&spec(&format!("id-{n}"))),
                )],
            );
            commits.push(tip);
        }
        let mut reader = HistoryReader::new(&f.repo).unwrap();
        for (n, oid) in commits.iter().enumerate() {
            let commit = f.repo.find_commit(*oid).unwrap();
            let facts = reader.read(&commit).unwrap();
            assert_eq!(facts.builds[0].artifact_id, format!("id-{n}"));
        }
    }
}
