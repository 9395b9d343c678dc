//! What the dashboard shows, read from the mirror at the published tip: the
//! matrix (every service against every environment: what runs, from which
//! branch, who released it and when, its vulnerabilities) and one service's
//! page (its releases, builds and policies).
//!
//! A matrix of a thousand services reads three thousand release folders;
//! what a folder holds is kept by the folder's tree id, and who released it
//! by the release commit, so that a page after a release reads only what
//! changed. It owns no HTML (see `pages`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use git2::{ObjectType, Oid, Repository};
use release_manager::spec::ArtifactSpec;

use crate::domain::catalog::Catalog;
use crate::domain::Settings;
use crate::domain::{git, FlowError};
use crate::repo::index::{ReleaseDetails, View};
use crate::repo::tree::{blob_at, tree_at};

/// One environment of one service.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Cell {
    /// What runs (empty when nothing does).
    pub(crate) artifact_id: String,
    /// Its branch.
    pub(crate) branch: String,
    /// Namespace folder it runs in.
    pub(crate) namespace: String,
    /// Who released it.
    pub(crate) released_by: String,
    /// When (seconds since the epoch; 0 when unknown).
    pub(crate) released_at: i64,
    /// Vulnerabilities (high, medium, low), when the build was scanned.
    pub(crate) vulnerabilities: Option<(u32, u32, u32)>,
    /// The CI job that built it.
    pub(crate) build_url: String,
    /// The source commit.
    pub(crate) source_url: String,
    /// It differs from what runs in the environment before (promotable).
    pub(crate) promotable: bool,
    /// Its branch is not the default branch.
    pub(crate) off_default_branch: bool,
    /// The release commit (empty when unknown).
    pub(crate) release_commit: String,
    /// What the cluster reported for it (state word, message); none when
    /// the environment's controller reports nothing.
    pub(crate) deployment: Option<(&'static str, String)>,
}

/// One service's row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    /// Service name.
    pub(crate) service: String,
    /// One cell per environment, in promotion order.
    pub(crate) cells: Vec<Cell>,
}

/// Every service against every environment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Matrix {
    /// Environments in promotion order.
    pub(crate) environments: Vec<String>,
    /// The application branch the first environment is promoted from.
    pub(crate) default_branch: String,
    /// Rows by service name.
    pub(crate) rows: Vec<Row>,
    /// The tip it was read at.
    pub(crate) tip: Oid,
}

/// What a release folder holds, as a cell shows it.
#[derive(Debug, Clone)]
struct Held {
    artifact_id: String,
    branch: String,
    vulnerabilities: Option<(u32, u32, u32)>,
    build_url: String,
    source_url: String,
}

/// Most entries each cache keeps before it starts over.
const CACHE_LIMIT: usize = 50_000;

/// Reads the dashboard's models, remembering what it read.
#[derive(Default)]
pub(crate) struct Models {
    /// What a release folder (by tree id) holds.
    held: Mutex<HashMap<Oid, Held>>,
    /// Who released, by release commit.
    released_by: Mutex<HashMap<Oid, String>>,
}

impl Models {
    /// The matrix at the published tip, or one service's row of it.
    pub(crate) fn matrix(
        &self,
        repo: &Repository,
        tip: Oid,
        view: View<'_>,
        settings: &Settings,
        only: Option<&str>,
    ) -> Result<Matrix, FlowError> {
        let root = crate::repo::tree::tree_of(repo, tip).map_err(git("read the tip"))?;
        let services: Vec<String> = match only {
            Some(service) => vec![service.to_string()],
            None => Catalog::read(repo, &root)
                .map_err(git("read the services"))?
                .services
                .into_keys()
                .collect(),
        };
        let mut rows = Vec::with_capacity(services.len());
        for service in services {
            let mut cells: Vec<Cell> = Vec::with_capacity(settings.environments.len());
            for environment in &settings.environments {
                let mut cell = self.cell(repo, &root, view, environment, &service)?;
                cell.off_default_branch =
                    !cell.branch.is_empty() && cell.branch != settings.default_branch;
                if let Some(before) = cells.last() {
                    cell.promotable =
                        !before.artifact_id.is_empty() && before.artifact_id != cell.artifact_id;
                }
                cells.push(cell);
            }
            rows.push(Row { service, cells });
        }
        self.bound();
        Ok(Matrix {
            environments: settings.environments.clone(),
            default_branch: settings.default_branch.clone(),
            rows,
            tip,
        })
    }

    /// What runs of `service` in `environment`: in the namespace of its
    /// latest release, else the environment's own, else any.
    fn cell(
        &self,
        repo: &Repository,
        root: &git2::Tree<'_>,
        view: View<'_>,
        environment: &str,
        service: &str,
    ) -> Result<Cell, FlowError> {
        let latest = view.releases(environment, service).next();
        let mut namespaces: Vec<String> = latest
            .map(|r| r.namespace.to_string())
            .into_iter()
            .collect();
        namespaces.push(environment.to_string());
        let Some(releases) =
            tree_at(repo, root, &format!("{environment}/releases")).map_err(git("read a tree"))?
        else {
            return Ok(Cell::default());
        };
        namespaces.extend(
            releases
                .iter()
                .filter(|e| e.kind() == Some(ObjectType::Tree))
                .filter_map(|e| e.name().map(str::to_string)),
        );
        for namespace in namespaces {
            let Some(folder) = tree_at(repo, &releases, &format!("{namespace}/{service}"))
                .map_err(git("read a tree"))?
            else {
                continue;
            };
            let Some(held) = self.held(repo, &folder, view, service)? else {
                continue;
            };
            let record = view
                .releases(environment, service)
                .find(|r| *r.namespace == *namespace && *r.artifact_id == *held.artifact_id);
            let (released_by, released_at, release_commit) = match record {
                Some(record) => (
                    self.released_by(repo, record.commit)?,
                    record.time,
                    record.commit.to_string(),
                ),
                None => (String::new(), 0, String::new()),
            };
            return Ok(Cell {
                artifact_id: held.artifact_id,
                branch: held.branch,
                namespace,
                released_by,
                released_at,
                vulnerabilities: held.vulnerabilities,
                build_url: held.build_url,
                source_url: held.source_url,
                promotable: false,
                off_default_branch: false,
                release_commit,
                deployment: None,
            });
        }
        Ok(Cell::default())
    }

    fn held(
        &self,
        repo: &Repository,
        folder: &git2::Tree<'_>,
        view: View<'_>,
        service: &str,
    ) -> Result<Option<Held>, FlowError> {
        if let Some(held) = self.held.lock().expect("cache lock").get(&folder.id()) {
            return Ok(Some(held.clone()));
        }
        let Some(bytes) =
            blob_at(repo, folder, "artifact.json").map_err(git("read artifact.json"))?
        else {
            return Ok(None);
        };
        let Ok((spec, _)) = ArtifactSpec::parse_committed(&bytes) else {
            return Ok(None);
        };
        let branch = if spec.application.branch.is_empty() {
            view.build(service, &spec.id)
                .map(|b| release_manager::names::branch_of_folder(&b.branch))
                .unwrap_or_default()
        } else {
            spec.application.branch.clone()
        };
        let held = Held {
            vulnerabilities: spec.vulnerabilities().map(|v| (v.high, v.medium, v.low)),
            build_url: spec.ci.job_url.clone(),
            source_url: spec.application.url.clone(),
            artifact_id: spec.id,
            branch,
        };
        self.held
            .lock()
            .expect("cache lock")
            .insert(folder.id(), held.clone());
        Ok(Some(held))
    }

    fn released_by(&self, repo: &Repository, commit: Oid) -> Result<String, FlowError> {
        if let Some(name) = self.released_by.lock().expect("cache lock").get(&commit) {
            return Ok(name.clone());
        }
        let details = ReleaseDetails::read(repo, commit).map_err(git("read a release commit"))?;
        let name = if details.released_by.name.is_empty() {
            details.released_by.email
        } else {
            details.released_by.name
        };
        self.released_by
            .lock()
            .expect("cache lock")
            .insert(commit, name.clone());
        Ok(name)
    }

    fn bound(&self) {
        for len in [
            self.held.lock().expect("cache lock").len(),
            self.released_by.lock().expect("cache lock").len(),
        ] {
            if len > CACHE_LIMIT {
                self.held.lock().expect("cache lock").clear();
                self.released_by.lock().expect("cache lock").clear();
                return;
            }
        }
    }
}

/// One release of a service's history.
#[derive(Debug, Clone)]
pub(crate) struct HistoryEntry {
    /// Environment.
    pub(crate) environment: String,
    /// Artifact released.
    pub(crate) artifact_id: String,
    /// Why (a word).
    pub(crate) intent: &'static str,
    /// Who.
    pub(crate) released_by: String,
    /// When (seconds since the epoch).
    pub(crate) released_at: i64,
    /// The release commit.
    pub(crate) commit: String,
}

/// One build of a service.
#[derive(Debug, Clone)]
pub(crate) struct BuildEntry {
    /// Artifact id.
    pub(crate) artifact_id: String,
    /// When it was committed (seconds since the epoch).
    pub(crate) time: i64,
    /// Its stages: name and what they say (tests passed, findings).
    pub(crate) stages: Vec<(String, String)>,
    /// The CI job.
    pub(crate) build_url: String,
    /// The source commit.
    pub(crate) source_url: String,
    /// The source change's author.
    pub(crate) author: String,
}

/// One service's page.
#[derive(Debug, Clone)]
pub(crate) struct ServicePage {
    /// The service.
    pub(crate) service: String,
    /// Its row of the matrix.
    pub(crate) row: Row,
    /// Environments, in promotion order.
    pub(crate) environments: Vec<String>,
    /// The application branch the first environment is promoted from.
    pub(crate) default_branch: String,
    /// Releases in every environment, newest first: one page of them.
    pub(crate) history: Vec<HistoryEntry>,
    /// Whether there are older releases than this page shows.
    pub(crate) more_history: bool,
    /// Recent builds by branch, newest first.
    pub(crate) builds: BTreeMap<String, Vec<BuildEntry>>,
    /// Auto-release policies: (branch, environment).
    pub(crate) auto_releases: Vec<(String, String)>,
    /// Branch restrictions: (environment, regex, server-wide).
    pub(crate) restrictions: Vec<(String, String, bool)>,
}

/// Builds shown per branch.
const BUILDS_PER_BRANCH: usize = 5;

impl Models {
    /// A service's page: `page` (from 0) of `per_page` releases.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn service_page(
        &self,
        repo: &Repository,
        tip: Oid,
        view: View<'_>,
        settings: &Settings,
        policies: &crate::domain::policy_file::PolicyFile,
        service: &str,
        page: usize,
        per_page: usize,
    ) -> Result<ServicePage, FlowError> {
        let matrix = self.matrix(repo, tip, view, settings, Some(service))?;
        let row = matrix.rows.into_iter().next().expect("one row asked for");
        let mut all: Vec<(String, &crate::repo::index::ReleaseRecord)> = Vec::new();
        for environment in &settings.environments {
            all.extend(
                view.releases(environment, service)
                    .map(|r| (environment.clone(), r)),
            );
        }
        all.sort_by(|a, b| b.1.time.cmp(&a.1.time).then(b.1.commit.cmp(&a.1.commit)));
        let more_history = all.len() > (page + 1) * per_page;
        let mut history = Vec::new();
        for (environment, record) in all.into_iter().skip(page * per_page).take(per_page) {
            history.push(HistoryEntry {
                environment,
                artifact_id: record.artifact_id.to_string(),
                intent: intent_word(record.kind),
                released_by: self.released_by(repo, record.commit)?,
                released_at: record.time,
                commit: record.commit.to_string(),
            });
        }
        let mut builds: BTreeMap<String, Vec<BuildEntry>> = BTreeMap::new();
        for build in view.builds(service) {
            let list = builds
                .entry(release_manager::names::branch_of_folder(&build.branch))
                .or_default();
            if list.len() >= BUILDS_PER_BRANCH {
                continue;
            }
            let root = crate::repo::tree::tree_of(repo, build.commit)
                .map_err(git("read a build commit"))?;
            let spec = blob_at(
                repo,
                &root,
                &format!(
                    "{}/{service}/{}/artifact.json",
                    build.folder.name(),
                    build.branch
                ),
            )
            .map_err(git("read artifact.json"))?
            .and_then(|bytes| ArtifactSpec::parse_committed(&bytes).ok())
            .map(|(spec, _)| spec)
            .unwrap_or_default();
            list.push(BuildEntry {
                artifact_id: build.artifact_id.to_string(),
                time: build.time,
                stages: spec.stages.iter().map(stage_summary).collect(),
                build_url: spec.ci.job_url.clone(),
                source_url: spec.application.url.clone(),
                author: spec.application.author_name.clone(),
            });
        }
        let auto_releases = policies
            .auto_releases
            .iter()
            .map(|p| (p.branch.clone(), p.environment.clone()))
            .collect();
        let mut restrictions: Vec<(String, String, bool)> = policies
            .branch_restrictions
            .iter()
            .map(|r| (r.environment.clone(), r.branch_regex.clone(), false))
            .collect();
        restrictions.extend(
            settings
                .global_restrictions
                .iter()
                .map(|g| (g.environment.clone(), g.regex.as_str().to_string(), true)),
        );
        Ok(ServicePage {
            service: service.to_string(),
            row,
            environments: settings.environments.clone(),
            default_branch: settings.default_branch.clone(),
            history,
            more_history,
            builds,
            auto_releases,
            restrictions,
        })
    }
}

/// A release intent as one word.
fn intent_word(kind: crate::repo::index::ReleaseKind) -> &'static str {
    use crate::repo::index::ReleaseKind;
    match kind {
        ReleaseKind::Unknown => "release",
        ReleaseKind::Branch => "branch",
        ReleaseKind::Artifact => "artifact",
        ReleaseKind::Promote => "promote",
        ReleaseKind::Rollback => "rollback",
        ReleaseKind::AutoRelease => "auto-release",
        ReleaseKind::Edit => "edit",
    }
}

/// A build stage as its name and what its data says.
fn stage_summary(stage: &release_manager::spec::Stage) -> (String, String) {
    let data = &stage.data;
    let number = |path: &[&str]| -> Option<u64> {
        let mut value = data;
        for key in path {
            value = value.get(key)?;
        }
        value.as_u64()
    };
    let said = match stage.id.as_str() {
        "test" => match (
            number(&["results", "passed"]),
            number(&["results", "failed"]),
            number(&["results", "skipped"]),
        ) {
            (Some(p), Some(f), Some(s)) => format!("{p} passed, {f} failed, {s} skipped"),
            _ => String::new(),
        },
        "snyk-code" | "snyk-docker" => match (
            number(&["vulnerabilities", "high"]),
            number(&["vulnerabilities", "medium"]),
            number(&["vulnerabilities", "low"]),
        ) {
            (Some(h), Some(m), Some(l)) => format!("{h} high, {m} medium, {l} low"),
            _ => String::new(),
        },
        _ => data
            .get("tag")
            .and_then(|t| t.as_str())
            .map(|t| format!("tag {t}"))
            .unwrap_or_default(),
    };
    let name = if stage.name.is_empty() {
        stage.id.clone()
    } else {
        stage.name.clone()
    };
    (name, said)
}
