//! Whom a report is about: the current releases of an environment that the
//! report's revision holds, narrowed to one service or to the services the
//! controller's words name. Read at the published tip; nothing here judges
//! or keeps a state.

use std::collections::HashSet;

use git2::{Oid, Repository};

use super::manifests::Manifests;
use super::named::Named;
use super::{About, Report};
use crate::domain::{FlowError, Reason};
use crate::engine::published::Published;

/// A current release a report is about.
pub(super) struct Target {
    pub(super) service: String,
    pub(super) release_commit: Oid,
    pub(super) artifact_id: String,
    pub(super) namespace: String,
}

/// What a report is about, read at the published tip.
pub(super) struct Targets {
    pub(super) releases: Vec<Target>,
    /// The report names objects or folders, none of which is a service's.
    pub(super) named_nobody: bool,
}

/// The current releases `report` is about, at `published`'s tip, that
/// `revision` holds; `named` is what its words name (for [`About::Named`]).
pub(super) fn targets_at(
    repo: &Repository,
    published: &Published,
    report: &Report,
    revision: Oid,
    named: Option<&Named>,
    manifests: &Manifests,
) -> Result<Targets, FlowError> {
    let pending = not_in(repo, published.tip, revision)?;
    let environment = report.environment.as_str();
    let current = |service: &str, namespace: Option<&str>| {
        published.index.services.get(service).and_then(|history| {
            history
                .releases
                .get(environment)
                .and_then(|r| {
                    r.iter()
                        .rev()
                        .find(|r| namespace.is_none_or(|ns| *r.namespace == *ns))
                })
                .cloned()
        })
    };
    let mut wanted: Vec<String> = Vec::new();
    let mut named_nobody = false;
    match &report.about {
        About::Everything => {
            for service in published.index.services.keys() {
                wanted.push(service.to_string());
            }
        }
        About::Service { name, namespace } => {
            if current(name, namespace.as_deref()).is_none() {
                return Err(FlowError::not_found(
                    Reason::ReleaseNotFound,
                    match namespace {
                        Some(ns) => format!(
                            "service {name:?} has no release in namespace {ns:?} of {environment}"
                        ),
                        None => format!("service {name:?} has no release in {environment}"),
                    },
                ));
            }
            wanted.push(name.clone());
        }
        About::Named => {
            let named = named.expect("named words were read");
            let root = crate::repo::tree::tree_of(repo, published.tip)
                .map_err(crate::domain::git("read the tip"))?;
            let services = manifests
                .services_named(repo, &root, environment, named)
                .map_err(crate::domain::git("read the manifests"))?;
            named_nobody = services.is_empty();
            wanted.extend(services);
        }
    }
    let mut releases = Vec::new();
    for service in wanted {
        let namespace = match &report.about {
            About::Service { namespace, .. } => namespace.as_deref(),
            _ => None,
        };
        let Some(latest) = current(&service, namespace) else {
            continue;
        };
        if pending.contains(&latest.commit) {
            continue;
        }
        releases.push(Target {
            service,
            release_commit: latest.commit,
            artifact_id: latest.artifact_id.to_string(),
            namespace: latest.namespace.to_string(),
        });
    }
    releases.sort_by(|a, b| a.service.cmp(&b.service));
    Ok(Targets {
        releases,
        named_nobody,
    })
}

/// The commit a controller names: a full sha, alone or after `@sha1:` (Flux
/// 2), `/` (Flux before 2.0) or `:`.
pub(super) fn parse_revision(text: &str) -> Result<Oid, FlowError> {
    let text = text.trim();
    let sha = text.rsplit(['@', '/', ':']).next().unwrap_or(text);
    let sha = sha.strip_prefix("sha1:").unwrap_or(sha);
    if sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        if let Ok(oid) = Oid::from_str(sha) {
            return Ok(oid);
        }
    }
    Err(FlowError::invalid(
        "revision",
        format!("{text:?} is not a config repository commit (a full 40-hex sha, or <branch>@sha1:<sha>)"),
    ))
}

/// Commits of the tip's history that `revision` does not hold; NOT_FOUND
/// when the mirror lacks `revision`, FAILED_PRECONDITION when it is not in
/// the tip's history.
fn not_in(repo: &Repository, tip: Oid, revision: Oid) -> Result<HashSet<Oid>, FlowError> {
    if repo.find_commit(revision).is_err() {
        return Err(FlowError::not_found(
            Reason::RevisionNotFound,
            format!("revision {revision} is not in the config repository"),
        ));
    }
    if revision == tip {
        return Ok(Default::default());
    }
    let git = crate::domain::git("walk the history a revision lacks");
    if !repo.graph_descendant_of(tip, revision).map_err(&git)? {
        if repo.graph_descendant_of(revision, tip).map_err(&git)? {
            return Err(FlowError::not_found(
                Reason::RevisionNotFound,
                format!("revision {revision} is newer than the config branch the server has"),
            ));
        }
        return Err(FlowError::precondition(
            Reason::RevisionNotOnBranch,
            format!("revision {revision} is not in the history of the config branch (a rewritten or other branch?)"),
        ));
    }
    let mut walk = repo.revwalk().map_err(&git)?;
    walk.push(tip).map_err(&git)?;
    walk.hide(revision).map_err(&git)?;
    walk.map(|oid| oid.map_err(&git)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_as_controllers_write_them() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        for text in [
            sha.to_string(),
            format!("main@sha1:{sha}"),
            format!("main/{sha}"),
            format!(" {sha}\n"),
        ] {
            assert_eq!(parse_revision(&text).unwrap().to_string(), sha, "{text}");
        }
        for bad in [
            "",
            "main",
            "main@sha1:0123",
            "sha256:abc",
            "zz23456789abcdef0123456789abcdef01234567",
        ] {
            assert!(parse_revision(bad).is_err(), "{bad}");
        }
    }
}
