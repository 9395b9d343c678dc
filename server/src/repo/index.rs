//! The in-memory index of builds and releases, read from the history of the
//! config branch (or loaded from a snapshot, see `snapshot`) and then kept
//! up to date commit by commit. It answers "where is artifact X", "what ran
//! before" and history queries without walking the log per request.
//! Commits the writer has made but not yet pushed live in a separate pending
//! index, seen through [`View`], so a rejected push simply drops them.
//!
//! What a commit is comes from [`HistoryReader`] alone. The index keeps
//! what flows and reads must find fast (ids, branches, namespaces, intents,
//! commits, times) and nothing that one commit lookup can give back when a
//! read needs it (who released, titles): memory grows with the number of
//! builds and releases, at about 100 bytes each, not with their messages.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use git2::{Oid, Repository, Sort};

pub(crate) use super::history::BuildFolder;
use super::history::{CommitFacts, HistoryReader};
use super::message;
use super::RepoError;

/// Why a release commit was made (its `Release-intent:` trailer, or its
/// title when it has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReleaseKind {
    /// Written by another tool or by hand, saying nothing about why.
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
    /// Not a release: a change of a release folder that left its artifact
    /// in place (a hand edit, a revert of one). Listed in the release
    /// history as what it is, never taken for who released what runs.
    Edit,
}

impl ReleaseKind {
    /// A compact code, for the snapshot.
    pub(crate) fn code(self) -> u8 {
        match self {
            ReleaseKind::Unknown => 0,
            ReleaseKind::Branch => 1,
            ReleaseKind::Artifact => 2,
            ReleaseKind::Promote => 3,
            ReleaseKind::Rollback => 4,
            ReleaseKind::AutoRelease => 5,
            ReleaseKind::Edit => 6,
        }
    }

    /// The kind of a [`ReleaseKind::code`]; unknown codes are `Unknown`.
    pub(crate) fn from_code(code: u8) -> Self {
        match code {
            1 => ReleaseKind::Branch,
            2 => ReleaseKind::Artifact,
            3 => ReleaseKind::Promote,
            4 => ReleaseKind::Rollback,
            5 => ReleaseKind::AutoRelease,
            6 => ReleaseKind::Edit,
            _ => ReleaseKind::Unknown,
        }
    }
}

/// A name and email as git records them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Signature {
    /// Name.
    pub(crate) name: String,
    /// Email.
    pub(crate) email: String,
}

impl Signature {
    /// A git signature's name and email (lossily decoded).
    pub(crate) fn of(sig: &git2::Signature<'_>) -> Self {
        Signature {
            name: String::from_utf8_lossy(sig.name_bytes()).into_owned(),
            email: String::from_utf8_lossy(sig.email_bytes()).into_owned(),
        }
    }
}

/// One build commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BuildRecord {
    /// Artifact id.
    pub(crate) artifact_id: Arc<str>,
    /// The top-level folder it is stored under.
    pub(crate) folder: BuildFolder,
    /// Branch folder the build was stored in.
    pub(crate) branch: Arc<str>,
    /// The build commit.
    pub(crate) commit: Oid,
    /// Commit time (seconds since the epoch).
    pub(crate) time: i64,
}

/// One release commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReleaseRecord {
    /// Artifact id released.
    pub(crate) artifact_id: Arc<str>,
    /// Namespace folder.
    pub(crate) namespace: Arc<str>,
    /// Why.
    pub(crate) kind: ReleaseKind,
    /// The release commit.
    pub(crate) commit: Oid,
    /// Committer time (seconds since the epoch).
    pub(crate) time: i64,
}

/// Builds and releases of one service.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ServiceHistory {
    /// Builds, oldest first.
    pub(crate) builds: Vec<BuildRecord>,
    /// Position in `builds` of the latest build of each artifact id.
    pub(crate) by_id: HashMap<Arc<str>, u32>,
    /// Releases by environment, oldest first.
    pub(crate) releases: HashMap<Arc<str>, Vec<ReleaseRecord>>,
}

/// Builds and releases by service, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Index {
    pub(crate) services: HashMap<Arc<str>, ServiceHistory>,
    pub(crate) requests: HashMap<Box<str>, Oid>,
    pub(crate) commits: u64,
    /// Commits that imported builds from elsewhere (an `Imported-from`
    /// trailer): their builds are history, not news for auto-releases.
    /// Only the indexes of newly arrived commits need it, so snapshots
    /// leave it out.
    pub(crate) imports: HashSet<Oid>,
    /// Shares the text of names and ids that recur (a branch, a namespace,
    /// the id a build and its releases have in common).
    strings: HashSet<Arc<str>>,
}

impl PartialEq for Index {
    fn eq(&self, other: &Self) -> bool {
        self.services == other.services
            && self.requests == other.requests
            && self.commits == other.commits
    }
}

/// How often a long read of history says how far it got.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Counts commits read, and logs how far a long read got.
struct Progress {
    total: usize,
    done: std::sync::atomic::AtomicUsize,
    began: Instant,
    reported: std::sync::Mutex<Instant>,
}

impl Progress {
    fn new(total: usize) -> Self {
        let now = Instant::now();
        Progress {
            total,
            done: 0.into(),
            began: now,
            reported: std::sync::Mutex::new(now),
        }
    }

    fn one_more(&self) {
        let done = self.done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if !done.is_multiple_of(1024) {
            return;
        }
        let Ok(mut reported) = self.reported.try_lock() else {
            return;
        };
        if reported.elapsed() < PROGRESS_EVERY {
            return;
        }
        *reported = Instant::now();
        let rate = done as f64 / self.began.elapsed().as_secs_f64().max(0.001);
        let left = (self.total - done.min(self.total)) as f64 / rate.max(1.0);
        tracing::info!(
            read = done,
            total = self.total,
            per_second = rate as u64,
            remaining_s = left as u64,
            "reading the history of the config repository"
        );
    }
}

impl Index {
    /// Reads every commit reachable from `to` and not from `from`, oldest
    /// first, into the index. A long read logs its progress.
    pub(crate) fn ingest_range(
        &mut self,
        repo: &Repository,
        from: Option<Oid>,
        to: Oid,
    ) -> Result<(), RepoError> {
        if from == Some(to) {
            return Ok(());
        }
        let walk_error = RepoError::git("walk history");
        let mut walk = repo.revwalk().map_err(&walk_error)?;
        walk.set_sorting(Sort::TOPOLOGICAL | Sort::REVERSE)
            .map_err(&walk_error)?;
        walk.push(to).map_err(&walk_error)?;
        if let Some(from) = from {
            walk.hide(from).map_err(&walk_error)?;
        }
        let commits: Vec<Oid> = walk
            .by_ref()
            .collect::<Result<_, _>>()
            .map_err(&walk_error)?;
        // The walk holds a node per commit of the history: free it before
        // the index grows.
        drop(walk);
        // One thread: libgit2 serialises reads of one pack file, so more
        // readers only contend (measured: 2 threads, 15% faster at best).
        let progress = Progress::new(commits.len());
        self.ingest_list(repo, &commits, &progress)
    }

    /// Reads `commits` (oldest first) into the index.
    fn ingest_list(
        &mut self,
        repo: &Repository,
        commits: &[Oid],
        progress: &Progress,
    ) -> Result<(), RepoError> {
        let mut reader =
            HistoryReader::new(repo).map_err(RepoError::git("open the object database"))?;
        for &oid in commits {
            self.ingest_with(repo, &mut reader, oid)?;
            progress.one_more();
        }
        Ok(())
    }

    /// Adds one commit (its parents' trees are read afresh).
    pub(crate) fn ingest_commit(&mut self, repo: &Repository, oid: Oid) -> Result<(), RepoError> {
        let mut reader =
            HistoryReader::new(repo).map_err(RepoError::git("open the object database"))?;
        self.ingest_with(repo, &mut reader, oid)
    }

    fn ingest_with<'r>(
        &mut self,
        repo: &'r Repository,
        reader: &mut HistoryReader<'r>,
        oid: Oid,
    ) -> Result<(), RepoError> {
        self.commits += 1;
        let commit = repo
            .find_commit(oid)
            .map_err(RepoError::git("read a commit"))?;
        let facts = reader
            .read(&commit)
            .map_err(RepoError::git("read what a commit changed"))?;
        let message = String::from_utf8_lossy(commit.message_bytes());
        self.add_facts(&facts, &message, oid, commit.time().seconds());
        Ok(())
    }

    /// Records what one commit did.
    fn add_facts(&mut self, facts: &CommitFacts, message: &str, oid: Oid, time: i64) {
        if let Some(request_id) = message::trailer(message, "Request-ID") {
            self.requests.insert(request_id.into(), oid);
        }
        if !facts.builds.is_empty() && message::trailer(message, "Imported-from").is_some() {
            self.imports.insert(oid);
        }
        for build in &facts.builds {
            let record = BuildRecord {
                artifact_id: self.intern(&build.artifact_id),
                folder: build.folder,
                branch: self.intern(&build.branch),
                commit: oid,
                time,
            };
            let service = self.intern(&build.service);
            self.add_build(service, record);
        }
        if facts.releases.is_empty() && facts.edits.is_empty() {
            return;
        }
        let kind = message::release_kind(message);
        let releases = facts.releases.iter().map(|r| (r, kind));
        let edits = facts.edits.iter().map(|e| (e, ReleaseKind::Edit));
        for (release, kind) in releases.chain(edits) {
            let record = ReleaseRecord {
                artifact_id: self.intern(&release.artifact_id),
                namespace: self.intern(&release.namespace),
                kind,
                commit: oid,
                time,
            };
            let service = self.intern(&release.service);
            let environment = self.intern(&release.environment);
            self.add_release(service, environment, record);
        }
    }

    /// The shared copy of `text`.
    pub(crate) fn intern(&mut self, text: &str) -> Arc<str> {
        if let Some(shared) = self.strings.get(text) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(text);
        self.strings.insert(shared.clone());
        shared
    }

    pub(crate) fn add_build(&mut self, service: Arc<str>, record: BuildRecord) {
        let history = self.services.entry(service).or_default();
        let position = u32::try_from(history.builds.len()).unwrap_or(u32::MAX);
        history.by_id.insert(record.artifact_id.clone(), position);
        history.builds.push(record);
    }

    pub(crate) fn add_release(
        &mut self,
        service: Arc<str>,
        environment: Arc<str>,
        record: ReleaseRecord,
    ) {
        self.services
            .entry(service)
            .or_default()
            .releases
            .entry(environment)
            .or_default()
            .push(record);
    }

    /// Moves everything in `pending` into this index (after a push).
    pub(crate) fn absorb(&mut self, pending: Index) {
        for (service, history) in pending.services {
            let service = self.intern(&service);
            for build in history.builds {
                self.add_build(service.clone(), build);
            }
            for (environment, releases) in history.releases {
                let environment = self.intern(&environment);
                for release in releases {
                    self.add_release(service.clone(), environment.clone(), release);
                }
            }
        }
        self.requests.extend(pending.requests);
        self.commits += pending.commits;
        self.imports.extend(pending.imports);
    }

    /// The `(service, branch)` pairs that have builds in this index, but
    /// for builds imported from elsewhere (old builds brought in, not new
    /// ones).
    pub(crate) fn new_builds(&self) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = self
            .services
            .iter()
            .flat_map(|(service, history)| {
                history
                    .builds
                    .iter()
                    .filter(|b| !self.imports.contains(&b.commit))
                    .map(move |b| (service.to_string(), b.branch.to_string()))
            })
            .collect();
        pairs.sort();
        pairs.dedup();
        pairs
    }

    /// Number of commits read so far.
    pub(crate) fn commit_count(&self) -> u64 {
        self.commits
    }

    /// Builds and releases held.
    pub(crate) fn record_count(&self) -> usize {
        self.services
            .values()
            .map(|h| h.builds.len() + h.releases.values().map(Vec::len).sum::<usize>())
            .sum()
    }
}

/// The published index seen together with the writer's pending commits.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    /// Commits on the remote.
    pub(crate) base: &'a Index,
    /// Commits of the batch in progress, if any.
    pub(crate) pending: Option<&'a Index>,
}

impl<'a> View<'a> {
    /// A view of the published index alone.
    pub(crate) fn published(base: &'a Index) -> Self {
        View {
            base,
            pending: None,
        }
    }

    fn layers(&self) -> impl Iterator<Item = &'a Index> {
        self.pending.into_iter().chain(std::iter::once(self.base))
    }

    /// The build commit of an artifact (its latest, if built twice).
    pub(crate) fn build(&self, service: &str, artifact_id: &str) -> Option<&'a BuildRecord> {
        self.layers().find_map(|index| {
            let history = index.services.get(service)?;
            let position = *history.by_id.get(artifact_id)?;
            history.builds.get(position as usize)
        })
    }

    /// Builds of a service, newest first.
    pub(crate) fn builds(&self, service: &str) -> impl Iterator<Item = &'a BuildRecord> {
        let service = service.to_string();
        self.layers().flat_map(move |index| {
            index
                .services
                .get(service.as_str())
                .into_iter()
                .flat_map(|h| h.builds.iter().rev())
        })
    }

    /// Releases of a service to an environment, newest first; edits of a
    /// release folder are not releases and are left out.
    pub(crate) fn releases(
        &self,
        environment: &str,
        service: &str,
    ) -> impl Iterator<Item = &'a ReleaseRecord> {
        self.release_history(environment, service)
            .filter(|r| r.kind != ReleaseKind::Edit)
    }

    /// Releases and edits of a service's release folders in an
    /// environment, newest first: what `describe release` lists.
    pub(crate) fn release_history(
        &self,
        environment: &str,
        service: &str,
    ) -> impl Iterator<Item = &'a ReleaseRecord> {
        let (environment, service) = (environment.to_string(), service.to_string());
        self.layers().flat_map(move |index| {
            index
                .services
                .get(service.as_str())
                .and_then(|h| h.releases.get(environment.as_str()))
                .into_iter()
                .flat_map(|list| list.iter().rev())
        })
    }

    /// The commit that carried a request id, if any.
    pub(crate) fn request(&self, request_id: &str) -> Option<Oid> {
        self.layers()
            .find_map(|index| index.requests.get(request_id).copied())
    }
}

/// What reads show of a release beyond the index: who released it, whose
/// change it carries, its title. Read from the commit when asked.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReleaseDetails {
    /// Who released: the message's `Released-by` (or the original's
    /// `Artifact-released-by`, or `by <email>` in its title), else the
    /// committer.
    pub(crate) released_by: Signature,
    /// The build's source author: from the released artifact.json when
    /// read with [`ReleaseDetails::read_folder`] and it names one, else the
    /// commit's author (which is the same for releases this server and the
    /// original made, and not for hand-made ones).
    pub(crate) author: Signature,
    /// Commit title.
    pub(crate) title: String,
}

impl ReleaseDetails {
    /// The details of release commit `commit`.
    pub(crate) fn read(repo: &Repository, commit: Oid) -> Result<Self, git2::Error> {
        let commit = repo.find_commit(commit)?;
        let text = String::from_utf8_lossy(commit.message_bytes()).into_owned();
        let committer = Signature::of(&commit.committer());
        let released_by = match message::released_by(&text) {
            // A title names only an email: the committer's name goes with
            // it when the addresses agree.
            Some(person) if person.name.is_empty() && person.email == committer.email => committer,
            Some(person) => person,
            None => committer,
        };
        let author = Signature::of(&commit.author());
        Ok(ReleaseDetails {
            released_by,
            author,
            title: message::title(&text).to_string(),
        })
    }

    /// The details of release commit `commit` of the release folder at
    /// `folder` (`<env>/releases/<namespace>/<service>`), its author read
    /// from the artifact.json it released, as status reads it.
    pub(crate) fn read_folder(
        repo: &Repository,
        commit: Oid,
        folder: &str,
    ) -> Result<Self, git2::Error> {
        let mut details = ReleaseDetails::read(repo, commit)?;
        let path = format!("{folder}/artifact.json");
        let tree = repo.find_commit(commit)?.tree()?;
        let spec = match tree.get_path(std::path::Path::new(&path)) {
            Ok(entry) => repo
                .find_blob(entry.id())
                .ok()
                .and_then(|blob| super::read_committed_spec(blob.content(), &path).ok()),
            Err(_) => None,
        };
        if let Some(app) = spec.map(|s| s.application) {
            if !app.author_email.is_empty() || !app.author_name.is_empty() {
                details.author = Signature {
                    name: app.author_name,
                    email: app.author_email,
                };
            }
        }
        Ok(details)
    }
}
