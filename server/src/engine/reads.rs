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

/// What a release history page token is bound to (besides its kind).
pub(crate) fn release_query(service: &str, environment: &str) -> String {
    format!("{service} {environment}")
}

/// What a build listing page token is bound to: the service and the
/// branch filter (its folder).
pub(crate) fn build_query(service: &str, branch: Option<&str>) -> String {
    format!("{service} {}", branch.unwrap_or_default())
}

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
                let candidates: Vec<String> = match namespace {
                    Some(ns) => vec![ns.to_string()],
                    None => match tree_at(repo, &root, &format!("{environment}/releases"))
                        .map_err(git("read a tree"))?
                    {
                        Some(releases) => releases
                            .iter()
                            .filter_map(|e| e.name().map(str::to_string))
                            .collect(),
                        None => Vec::new(),
                    },
                };
                let mut namespaces = Vec::new();
                for ns in candidates {
                    if let Some(found) =
                        namespace_status(repo, &root, &view, &environment, &ns, service)?
                    {
                        namespaces.push(found);
                    }
                }
                found_any |= !namespaces.is_empty();
                // The release described at the top: the namespace asked for,
                // else the one released to most recently.
                let latest = view.releases(&environment, service).next();
                let primary = latest
                    .and_then(|record| {
                        namespaces
                            .iter()
                            .find(|n| n.namespace == *record.namespace)
                    })
                    .or_else(|| namespaces.iter().find(|n| n.namespace == environment))
                    .or_else(|| namespaces.first())
                    .cloned();
                let mut status = pb::EnvironmentStatus {
                    environment: environment.clone(),
                    namespace: namespace.unwrap_or(&environment).to_string(),
                    ..Default::default()
                };
                if let Some(primary) = primary {
                    status.namespace = primary.namespace;
                    status.artifact = primary.artifact;
                    status.released_at = primary.released_at;
                    status.released_by = primary.released_by;
                    status.release_commit_sha = primary.release_commit_sha;
                }
                status.namespaces = namespaces;
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

    /// One page of the services with builds or releases, by name: where
    /// each runs and which branches have builds. A page continues after the
    /// last name of the one before, so services added or removed meanwhile
    /// never shift it.
    pub(crate) fn list_services(&self, page: &Page) -> Result<pb::ListServicesResponse, FlowError> {
        self.with_repo(|repo| {
            let published = self.shared.read().expect("state lock not poisoned");
            let root =
                crate::repo::tree::tree_of(repo, published.tip).map_err(git("read the tip"))?;
            let catalog = Catalog::read(repo, &root).map_err(git("read the services"))?;
            let view = View::published(&published.index);
            let mut names = catalog
                .services
                .into_iter()
                .filter(|(name, _)| {
                    page.after
                        .as_deref()
                        .is_none_or(|after| name.as_str() > after)
                })
                .peekable();
            let mut chosen = Vec::new();
            while chosen.len() < page.size {
                match names.next() {
                    Some(entry) => chosen.push(entry),
                    None => break,
                }
            }
            let next_page_token = match (names.peek(), chosen.last()) {
                (Some(_), Some((last, _))) => paging::token("service", last),
                _ => String::new(),
            };
            let services = chosen
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
                    let branches: BTreeSet<String> = view
                        .builds(&name)
                        .map(|b| release_manager::names::branch_of_folder(&b.branch))
                        .collect();
                    pb::ServiceSummary {
                        name,
                        environments,
                        branches: branches.into_iter().collect(),
                    }
                })
                .collect();
            Ok(pb::ListServicesResponse {
                services,
                next_page_token,
            })
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
            let query = release_query(service, environment);
            let (records, next_page_token) =
                paging::take_of_query(entries, page, "release", &query)?;
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
                    let branches: BTreeSet<String> = view
                        .builds(service)
                        .map(|b| release_manager::names::branch_of_folder(&b.branch))
                        .collect();
                    return Err(FlowError::not_found(Reason::BranchNotFound, format!(
                        "no builds of branch {:?} for service {service:?}; branches with builds: {}",
                        release_manager::names::branch_of_folder(wanted),
                        branches.into_iter().collect::<Vec<_>>().join(", ")
                    )));
                }
            }
            let entries = view
                .builds(service)
                .filter(|b| branch.is_none_or(|wanted| &*b.branch == wanted))
                .map(|b| (format!("{}:{}", b.commit, b.artifact_id), b.clone()));
            let query = build_query(service, branch);
            let (builds, next_page_token) = paging::take_of_query(entries, page, "build", &query)?;
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

/// The release of `service` in one namespace folder of `environment`, if
/// that folder holds one (the deployment is joined by the gRPC edge).
fn namespace_status(
    repo: &Repository,
    root: &git2::Tree<'_>,
    view: &View<'_>,
    environment: &str,
    namespace: &str,
    service: &str,
) -> Result<Option<pb::NamespaceStatus>, FlowError> {
    let path = format!("{environment}/releases/{namespace}/{service}/artifact.json");
    let Some(bytes) = blob_at(repo, root, &path).map_err(git("read artifact.json"))? else {
        return Ok(None);
    };
    let mut status = pb::NamespaceStatus {
        namespace: namespace.to_string(),
        ..Default::default()
    };
    match crate::repo::read_committed_spec(&bytes, &path) {
        Ok(spec) => {
            let build = view.build(service, &spec.id);
            let branch = build.map(|b| b.branch.to_string()).unwrap_or_default();
            status.artifact = Some(convert::artifact_summary(
                &spec,
                service,
                &branch,
                build.map(|b| b.commit),
            ));
            if let Some(record) = view
                .releases(environment, service)
                .find(|r| *r.namespace == *namespace && *r.artifact_id == *spec.id)
            {
                status.released_at = Some(convert::timestamp(record.time));
                // Who released is in the commit's message: reading its tree
                // (the author of the artifact.json it released) would parse
                // the large trees of an old root for nothing here.
                let details = ReleaseDetails::read(repo, record.commit)
                    .map_err(git("read a release commit"))?;
                status.released_by = Some(convert::person(&details.released_by));
                status.release_commit_sha = record.commit.to_string();
            }
        }
        Err(e) => {
            tracing::warn!(%path, error = %e, "unreadable artifact.json in a release folder");
        }
    }
    Ok(Some(status))
}
