//! Read queries (status, release and build history), served from the mirror
//! and the published index without waiting for the writer. Each query reads
//! at the published tip, so it sees every write acknowledged before it.
//! Repository handles are pooled: opening one per request costs more than
//! the query.

use std::path::PathBuf;
use std::sync::Mutex;

use git2::{ObjectType, Repository};
use release_manager::pb;
use release_manager::spec::ArtifactSpec;

use std::collections::BTreeSet;

use crate::domain::catalog::{unknown_service_at, Catalog};
use crate::domain::Settings;
use crate::domain::{git, FlowError, Reason};
use crate::engine::paging::{self, Page};
use crate::engine::published::SharedState;
use crate::engine::wire as convert;
use crate::repo::index::{ReleaseDetails, View};
use crate::repo::tree::{blob_at, tree_at};

/// Serves read queries.
pub(crate) struct Reader {
    path: PathBuf,
    /// Handles, with the mirror generation they were opened at.
    pool: Mutex<(u64, Vec<Repository>)>,
    shared: SharedState,
    settings: Settings,
}

impl Reader {
    /// A reader over the mirror at `path`.
    pub(crate) fn new(path: PathBuf, shared: SharedState, settings: Settings) -> Self {
        Reader {
            path,
            pool: Mutex::new((0, Vec::new())),
            shared,
            settings,
        }
    }

    /// The settings reads go by.
    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    fn with_repo<T>(
        &self,
        f: impl FnOnce(&Repository) -> Result<T, FlowError>,
    ) -> Result<T, FlowError> {
        let generation = self
            .shared
            .read()
            .expect("state lock not poisoned")
            .generation;
        let pooled = {
            let mut pool = self.pool.lock().expect("pool lock not poisoned");
            if pool.0 != generation {
                // The mirror's packs were merged: old handles keep checking
                // packs that are gone.
                *pool = (generation, Vec::new());
            }
            pool.1.pop()
        };
        let repo = match pooled {
            Some(repo) => repo,
            None => Repository::open_bare(&self.path).map_err(git("open the mirror"))?,
        };
        let result = f(&repo);
        let mut pool = self.pool.lock().expect("pool lock not poisoned");
        if pool.0 == generation {
            pool.1.push(repo);
        }
        result
    }

    /// Runs `f` on a pooled handle of the mirror, the published state (tip
    /// and index, read-locked while `f` runs) and the settings: for reads
    /// that build their own answers (the dashboard).
    pub(crate) fn with_published<T>(
        &self,
        f: impl FnOnce(
            &Repository,
            &crate::engine::published::Published,
            &Settings,
        ) -> Result<T, FlowError>,
    ) -> Result<T, FlowError> {
        self.with_repo(|repo| {
            let published = self.shared.read().expect("state lock not poisoned");
            f(repo, &published, &self.settings)
        })
    }

    /// What runs where for a service.
    pub(crate) fn status(
        &self,
        service: &str,
        namespace: Option<&str>,
    ) -> Result<pb::StatusResponse, FlowError> {
        self.with_repo(|repo| {
            let published = self.shared.read().expect("state lock not poisoned");
            let view = View::published(&published.index);
            let root = crate::repo::tree::tree_of(repo, published.tip)
                .map_err(git("read the tip"))?;
            let known_service = view.builds(service).next().is_some()
                || tree_at(repo, &root, &format!("builds/{service}"))
                    .map_err(git("read a tree"))?
                    .is_some();
            let mut environments = self.settings.environments.clone();
            for entry in root.iter() {
                let Some(name) = entry.name() else { continue };
                if entry.kind() == Some(ObjectType::Tree)
                    && !environments.iter().any(|e| e == name)
                    && tree_at(repo, &root, &format!("{name}/releases"))
                        .map_err(git("read a tree"))?
                        .is_some()
                {
                    environments.push(name.to_string());
                }
            }
            let mut found_any = false;
            let mut statuses = Vec::with_capacity(environments.len());
            for environment in environments {
                let latest = view.releases(&environment, service).next();
                let mut candidates: Vec<String> = Vec::new();
                match namespace {
                    Some(ns) => candidates.push(ns.to_string()),
                    None => {
                        if let Some(record) = latest {
                            candidates.push(record.namespace.to_string());
                        }
                        candidates.push(environment.clone());
                        if let Some(releases) = tree_at(repo, &root, &format!("{environment}/releases"))
                            .map_err(git("read a tree"))?
                        {
                            candidates.extend(releases.iter().filter_map(|e| e.name().map(str::to_string)));
                        }
                    }
                }
                let mut status = pb::EnvironmentStatus {
                    environment: environment.clone(),
                    namespace: namespace.unwrap_or(&environment).to_string(),
                    ..Default::default()
                };
                for ns in candidates {
                    let path = format!("{environment}/releases/{ns}/{service}/artifact.json");
                    let Some(bytes) = blob_at(repo, &root, &path).map_err(git("read artifact.json"))? else {
                        continue;
                    };
                    found_any = true;
                    status.namespace = ns.clone();
                    match crate::repo::read_committed_spec(&bytes, &path) {
                        Ok(spec) => {
                            let branch = view
                                .build(service, &spec.id)
                                .map(|b| b.branch.to_string())
                                .unwrap_or_default();
                            let build_commit = view.build(service, &spec.id).map(|b| b.commit);
                            status.artifact =
                                Some(convert::artifact_summary(&spec, service, &branch, build_commit));
                            if let Some(record) = view
                                .releases(&environment, service)
                                .find(|r| *r.namespace == *ns && *r.artifact_id == *spec.id)
                            {
                                status.released_at = Some(convert::timestamp(record.time));
                                let folder = format!("{environment}/releases/{ns}/{service}");
                                let details = ReleaseDetails::read_folder(repo, record.commit, &folder)
                                    .map_err(git("read a release commit"))?;
                                status.released_by = Some(convert::person(&details.released_by));
                                status.release_commit_sha = record.commit.to_string();
                            }
                        }
                        Err(e) => {
                            tracing::warn!(%path, error = %e, "unreadable artifact.json in a release folder");
                        }
                    }
                    break;
                }
                statuses.push(status);
            }
            if !known_service && !found_any {
                return Err(unknown_service_at(repo, &root, service));
            }
            if let (Some(ns), false) = (namespace, found_any) {
                let mut namespaces = BTreeSet::new();
                for status in &statuses {
                    if let Some(releases) =
                        tree_at(repo, &root, &format!("{}/releases", status.environment))
                            .map_err(git("read a tree"))?
                    {
                        for entry in releases.iter() {
                            let Some(name) = entry.name() else { continue };
                            let holds = tree_at(repo, &root, &format!("{}/releases/{name}/{service}", status.environment))
                                .map_err(git("read a tree"))?
                                .is_some();
                            if holds {
                                namespaces.insert(name.to_string());
                            }
                        }
                    }
                }
                let known: Vec<String> = namespaces.into_iter().collect();
                return Err(FlowError::not_found(Reason::NamespaceNotFound, match known.as_slice() {
                    [] => format!(
                        "service {service:?} is not released to namespace {ns:?} in any environment"
                    ),
                    _ => format!(
                        "service {service:?} is not released to namespace {ns:?} in any environment; it is released to {}",
                        known.join(", ")
                    ),
                }));
            }
            Ok(pb::StatusResponse {
                service: service.to_string(),
                environments: statuses,
            })
        })
    }

    /// Every service with builds or releases, where it runs and which
    /// branches have builds.
    pub(crate) fn list_services(&self) -> Result<pb::ListServicesResponse, FlowError> {
        self.with_repo(|repo| {
            let published = self.shared.read().expect("state lock not poisoned");
            let root =
                crate::repo::tree::tree_of(repo, published.tip).map_err(git("read the tip"))?;
            let catalog = Catalog::read(repo, &root).map_err(git("read the services"))?;
            let view = View::published(&published.index);
            let services = catalog
                .services
                .into_iter()
                .map(|(name, running)| {
                    let mut environments: Vec<String> = self
                        .settings
                        .environments
                        .iter()
                        .filter(|e| running.contains(*e))
                        .cloned()
                        .collect();
                    environments.extend(
                        running
                            .into_iter()
                            .filter(|e| !self.settings.environments.contains(e)),
                    );
                    let branches: BTreeSet<String> =
                        view.builds(&name).map(|b| b.branch.to_string()).collect();
                    pb::ServiceSummary {
                        name,
                        environments,
                        branches: branches.into_iter().collect(),
                    }
                })
                .collect();
            Ok(pb::ListServicesResponse { services })
        })
    }

    /// The events after `cursor` (none without one), and the published tip
    /// they end at.
    pub(crate) fn events_since(
        &self,
        cursor: Option<crate::engine::events::Cursor>,
    ) -> Result<(crate::engine::events::Replay, git2::Oid), FlowError> {
        let tip = self.shared.read().expect("state lock not poisoned").tip;
        let Some(cursor) = cursor else {
            return Ok((crate::engine::events::Replay::default(), tip));
        };
        self.with_repo(|repo| match crate::engine::events::since(repo, cursor, tip) {
            Ok(Some(replay)) => Ok((replay, tip)),
            Ok(None) => Err(FlowError::not_found(Reason::CursorNotFound, format!(
                "cursor {}: its commit is not in the config repository's history (was it rewritten?); subscribe without `since`",
                cursor.commit
            ))),
            Err(e) if e.message() == "too many commits to replay" => Err(FlowError::invalid("since", format!(
                "invalid since: more than {} commits were made after it; subscribe without `since`",
                crate::engine::events::MAX_REPLAY_COMMITS
            ))),
            Err(e) => Err(git("read the history to replay")(e)),
        })
    }

    /// The NOT_FOUND error for an unknown service, with suggestions read
    /// at the published tip.
    fn unknown_service(&self, service: &str) -> FlowError {
        let tip = self.shared.read().expect("state lock not poisoned").tip;
        self.with_repo(|repo| {
            let root = crate::repo::tree::tree_of(repo, tip).map_err(git("read the tip"))?;
            Ok(unknown_service_at(repo, &root, service))
        })
        .unwrap_or_else(|e| e)
    }

    /// The policies file of a service at the published tip; empty for a
    /// service without one (also one with no builds yet).
    pub(crate) fn policies(
        &self,
        service: &str,
    ) -> Result<crate::domain::policy_file::PolicyFile, FlowError> {
        self.with_repo(|repo| {
            let tip = self.shared.read().expect("state lock not poisoned").tip;
            let root = crate::repo::tree::tree_of(repo, tip).map_err(git("read the tip"))?;
            crate::domain::policy_file::read_at(repo, &root, service)
        })
    }

    /// One page of the release history of a service in an environment,
    /// newest first.
    pub(crate) fn describe_release(
        &self,
        service: &str,
        environment: &str,
        page: &Page,
    ) -> Result<pb::DescribeReleaseResponse, FlowError> {
        let found = self.with_repo(|repo| {
            let published = self.shared.read().expect("state lock not poisoned");
            let view = View::published(&published.index);
            let known = view.releases(environment, service).next().is_some()
                || view.builds(service).next().is_some();
            if !known {
                return Ok(None);
            }
            let entries = view
                .release_history(environment, service)
                .map(|record| (record.commit.to_string(), record.clone()));
            let (records, next_page_token) = paging::take(entries, page, "release")?;
            // Reading the commits can take a while for a long page: the
            // writer must not wait for it to publish.
            drop(published);
            let mut releases = Vec::with_capacity(records.len());
            for record in &records {
                // Who released and the title live in the commit, not the index.
                let folder = format!("{environment}/releases/{}/{service}", record.namespace);
                let details = ReleaseDetails::read_folder(repo, record.commit, &folder)
                    .map_err(git("read a release commit"))?;
                releases.push(convert::release_record(record, &details));
            }
            Ok(Some((releases, next_page_token)))
        })?;
        let Some((releases, next_page_token)) = found else {
            return Err(self.unknown_service(service));
        };
        Ok(pb::DescribeReleaseResponse {
            service: service.to_string(),
            environment: environment.to_string(),
            releases,
            next_page_token,
        })
    }

    /// One page of the builds of a service (optionally of one branch),
    /// newest first.
    pub(crate) fn describe_artifact(
        &self,
        service: &str,
        branch: Option<&str>,
        page: &Page,
    ) -> Result<pb::DescribeArtifactResponse, FlowError> {
        self.with_repo(|repo| {
            let published = self.shared.read().expect("state lock not poisoned");
            let view = View::published(&published.index);
            if view.builds(service).next().is_none() {
                let root = crate::repo::tree::tree_of(repo, published.tip)
                    .map_err(git("read the tip"))?;
                return Err(unknown_service_at(repo, &root, service));
            }
            if let Some(wanted) = branch {
                if !view.builds(service).any(|b| &*b.branch == wanted) {
                    let branches: BTreeSet<String> =
                        view.builds(service).map(|b| b.branch.to_string()).collect();
                    return Err(FlowError::not_found(Reason::BranchNotFound, format!(
                        "no builds of branch {wanted:?} for service {service:?}; branches with builds: {}",
                        branches.into_iter().collect::<Vec<_>>().join(", ")
                    )));
                }
            }
            let entries = view
                .builds(service)
                .filter(|b| branch.is_none_or(|wanted| &*b.branch == wanted))
                .map(|b| (format!("{}:{}", b.commit, b.artifact_id), b.clone()));
            let (builds, next_page_token) = paging::take(entries, page, "build")?;
            drop(published);
            let mut artifacts = Vec::with_capacity(builds.len());
            for build in builds {
                let root = crate::repo::tree::tree_of(repo, build.commit)
                    .map_err(git("read a build commit"))?;
                let path = format!(
                    "{}/{service}/{}/artifact.json",
                    build.folder.name(),
                    build.branch
                );
                let spec = blob_at(repo, &root, &path)
                    .map_err(git("read artifact.json"))?
                    .and_then(|bytes| crate::repo::read_committed_spec(&bytes, &path).ok())
                    .unwrap_or_else(|| ArtifactSpec {
                        id: build.artifact_id.to_string(),
                        ..Default::default()
                    });
                artifacts.push(convert::artifact_summary(
                    &spec,
                    service,
                    &build.branch,
                    Some(build.commit),
                ));
            }
            Ok(pb::DescribeArtifactResponse {
                service: service.to_string(),
                artifacts,
                next_page_token,
            })
        })
    }
}
