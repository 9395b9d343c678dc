//! The services a config repository holds, read from one tree: which have
//! builds, where each runs, and the "did you mean" hint for a service name
//! that is not among them.
//!
//! It owns the layout knowledge of "what is a service" (`builds/<service>/`,
//! the original's `artifacts/<service>/`, and
//! `<env>/releases/<namespace>/<service>/artifact.json`) for listing and
//! suggestions. It must not decide whether a request may go on; callers do.

use std::collections::{BTreeMap, BTreeSet};

use git2::{ObjectType, Repository, Tree};

use crate::domain::FlowError;
use crate::repo::tree::tree_at;

/// The top-level folders builds are stored under: ours, and the original
/// release manager's from April 2019 to mid-2020.
const BUILD_FOLDERS: [&str; 2] = ["builds", "artifacts"];

/// Services and the environments each one runs in.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    /// Service name to the environments with a release of it.
    pub(crate) services: BTreeMap<String, BTreeSet<String>>,
}

impl Catalog {
    /// Reads the services of the tree `root`: the folders under `builds/`
    /// (and the original's `artifacts/`) and every service folder with an
    /// `artifact.json` under a top-level `<env>/releases/<namespace>/`.
    pub(crate) fn read(repo: &Repository, root: &Tree<'_>) -> Result<Self, git2::Error> {
        let mut catalog = Catalog::default();
        for folder in BUILD_FOLDERS {
            if let Some(builds) = tree_at(repo, root, folder)? {
                for entry in builds.iter() {
                    if let (Some(name), Some(ObjectType::Tree)) = (entry.name(), entry.kind()) {
                        catalog.services.entry(name.to_string()).or_default();
                    }
                }
            }
        }
        for top in root.iter() {
            let (Some(environment), Some(ObjectType::Tree)) = (top.name(), top.kind()) else {
                continue;
            };
            if BUILD_FOLDERS.contains(&environment) || environment == "policies" {
                continue;
            }
            let Some(releases) = tree_at(repo, root, &format!("{environment}/releases"))? else {
                continue;
            };
            for namespace in releases.iter() {
                if namespace.kind() != Some(ObjectType::Tree) {
                    continue;
                }
                let namespace = repo.find_tree(namespace.id())?;
                for service in namespace.iter() {
                    let Some(name) = service.name() else { continue };
                    if service.kind() != Some(ObjectType::Tree) {
                        continue;
                    }
                    let folder = repo.find_tree(service.id())?;
                    if folder.get_name("artifact.json").is_some() {
                        catalog
                            .services
                            .entry(name.to_string())
                            .or_default()
                            .insert(environment.to_string());
                    }
                }
            }
        }
        Ok(catalog)
    }
}

/// The NOT_FOUND error for a service the repository does not know,
/// suggesting the closest known names.
pub(crate) fn unknown_service<'a>(
    service: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> FlowError {
    let mut text = format!(
        "unknown service {service:?}: no builds and no releases of it in the config repository"
    );
    // Never "did you mean" the very name asked for.
    let suggestions = closest(service, known.into_iter().filter(|k| *k != service));
    match suggestions.as_slice() {
        [] => {}
        [one] => text.push_str(&format!("; did you mean {one:?}?")),
        many => {
            let quoted: Vec<String> = many.iter().map(|s| format!("{s:?}")).collect();
            text.push_str(&format!("; did you mean one of {}?", quoted.join(", ")));
        }
    }
    let error = FlowError::not_found(crate::domain::Reason::ServiceNotFound, text);
    // The closest name, for clients to offer (ErrorInfo `suggestion`).
    match suggestions.first() {
        Some(best) => error.with("suggestion", best.clone()),
        None => error,
    }
}

/// Most suggestions offered at once.
const MAX_SUGGESTIONS: usize = 3;

/// The known names closest to `wanted`, best first: those within a small
/// edit distance (a typo, a missing suffix) or containing it.
fn closest<'a>(wanted: &str, known: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let wanted_lower = wanted.to_lowercase();
    let mut scored: Vec<(f64, &str)> = known
        .into_iter()
        .filter_map(|name| {
            let lower = name.to_lowercase();
            let similarity = strsim::normalized_damerau_levenshtein(&wanted_lower, &lower);
            let contains = wanted_lower.len() >= 3
                && (lower.contains(&wanted_lower) || wanted_lower.contains(&lower));
            let score = if contains {
                similarity.max(0.7)
            } else {
                similarity
            };
            (score >= 0.6).then_some((score, name))
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored
        .into_iter()
        .take(MAX_SUGGESTIONS)
        .map(|(_, name)| name.to_string())
        .collect()
}

/// The NOT_FOUND error for `service`, suggesting the services of `root`.
pub(crate) fn unknown_service_at(
    repo: &Repository,
    root: &git2::Tree<'_>,
    service: &str,
) -> FlowError {
    match Catalog::read(repo, root) {
        Ok(catalog) => match catalog.services.get(service) {
            // It runs somewhere: known, only its builds are missing.
            Some(running) if !running.is_empty() => no_readable_build(service, running),
            _ => unknown_service(service, catalog.services.keys().map(String::as_str)),
        },
        Err(_) => unknown_service(service, []),
    }
}

/// The NOT_FOUND error for a service that has releases but none of whose
/// builds the repository holds (its builds were kept elsewhere, such as
/// the original release manager's S3 bucket).
pub(crate) fn no_readable_build(service: &str, running: &BTreeSet<String>) -> FlowError {
    FlowError::not_found(
        crate::domain::Reason::ArtifactNotFound,
        format!(
            "service {service:?} has releases (in {}) but no readable build in builds/ or \
             artifacts/ of the config repository; builds the original release manager kept \
             in S3 can be brought in with `release-manager import-s3` (docs/migration.md), \
             or built again",
            running.iter().cloned().collect::<Vec<_>>().join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &[&str] = &["product-api", "checkout-web", "product-worker", "search"];

    fn message(service: &str) -> String {
        unknown_service(service, KNOWN.iter().copied()).to_string()
    }

    #[test]
    fn a_typo_suggests_the_name() {
        let text = message("prodcut-api");
        assert!(text.contains("did you mean \"product-api\"?"), "{text}");
    }

    #[test]
    fn a_prefix_suggests_every_service_it_starts() {
        let text = message("product");
        assert!(text.contains("\"product-api\""), "{text}");
        assert!(text.contains("\"product-worker\""), "{text}");
        assert!(!text.contains("checkout-web"), "{text}");
    }

    #[test]
    fn the_name_asked_for_is_never_suggested() {
        let text = unknown_service("search", KNOWN.iter().copied()).to_string();
        assert!(!text.contains("did you mean"), "{text}");
    }

    #[test]
    fn nothing_close_suggests_nothing() {
        let text = message("billing");
        assert!(!text.contains("did you mean"), "{text}");
        assert!(text.starts_with("unknown service \"billing\""), "{text}");
    }
}
