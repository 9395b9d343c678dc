//! Flux Kustomizations in a build: since 2021 the original release manager
//! moves a `kustomize.toolkit.fluxcd.io` Kustomization found among a
//! release's files out of the release folder, to
//! `clusters/<env>/<namespace>/<service>.yaml`, where Flux's cluster
//! Kustomization picks it up (`internal/flow/kustomization.go`). Releases
//! here do the same, so a repository laid out for it keeps working.
//!
//! As there: the first file, in path order, whose first YAML document has
//! `kind: Kustomization` and an `apiVersion` starting with
//! `kustomize.toolkit.fluxcd.io/`, is moved; the clusters file is replaced
//! on every release that carries one and left alone by one that does not.
//! Unlike there, a file that is not YAML is skipped rather than failing
//! the release. It owns only finding the file and the path it moves to.

use git2::{ObjectType, Oid, Repository, Tree};
use serde::Deserialize;

/// Files larger than this are not read (manifests are small; a build may
/// carry large data files that are no Kustomization).
const MAX_MANIFEST_BYTES: usize = 1 << 20;

/// Where a release of `service` to `environment` / `namespace` puts its
/// Flux Kustomization.
pub(crate) fn cluster_path(environment: &str, namespace: &str, service: &str) -> String {
    format!("clusters/{environment}/{namespace}/{service}.yaml")
}

/// The path (relative to `tree`) and blob of the first Flux Kustomization
/// below `tree`, if any.
pub(crate) fn find(
    repo: &Repository,
    tree: &Tree<'_>,
) -> Result<Option<(String, Oid)>, git2::Error> {
    find_below(repo, tree, "")
}

fn find_below(
    repo: &Repository,
    tree: &Tree<'_>,
    prefix: &str,
) -> Result<Option<(String, Oid)>, git2::Error> {
    // Git orders a folder `a` as `a/`; the original walked names in plain
    // lexical order. Sort by name to visit what it visited first.
    let mut entries: Vec<_> = tree.iter().collect();
    entries.sort_by(|a, b| a.name_bytes().cmp(b.name_bytes()));
    for entry in entries {
        let Some(name) = entry.name() else { continue };
        let path = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        };
        match entry.kind() {
            Some(ObjectType::Tree) => {
                let sub = repo.find_tree(entry.id())?;
                if let Some(found) = find_below(repo, &sub, &path)? {
                    return Ok(Some(found));
                }
            }
            Some(ObjectType::Blob) if path != "artifact.json" => {
                let blob = repo.find_blob(entry.id())?;
                if blob.size() <= MAX_MANIFEST_BYTES && is_flux_kustomization(blob.content()) {
                    return Ok(Some((path, entry.id())));
                }
            }
            _ => {}
        }
    }
    Ok(None)
}

/// The fields the original decodes from a file's first YAML document.
#[derive(Deserialize)]
struct Head {
    #[serde(rename = "apiVersion", default)]
    api_version: Option<serde_yaml::Value>,
    #[serde(default)]
    kind: Option<serde_yaml::Value>,
}

/// The API group every Flux Kustomization names.
const FLUX_GROUP: &[u8] = b"kustomize.toolkit.fluxcd.io/";

/// Whether the first YAML document of `bytes` is a Flux Kustomization.
pub(crate) fn is_flux_kustomization(bytes: &[u8]) -> bool {
    // Every release looks at every file of its build: most are no
    // Kustomization, and a byte search says so without parsing YAML.
    if memchr::memmem::find(bytes, FLUX_GROUP).is_none() {
        return false;
    }
    let Some(document) = serde_yaml::Deserializer::from_slice(bytes).next() else {
        return false;
    };
    let Ok(head) = Head::deserialize(document) else {
        return false;
    };
    let text = |v: Option<serde_yaml::Value>| match v {
        Some(serde_yaml::Value::String(s)) => s,
        _ => String::new(),
    };
    text(head.kind) == "Kustomization"
        && text(head.api_version).starts_with("kustomize.toolkit.fluxcd.io/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fluxs_kustomization_counts() {
        assert!(is_flux_kustomization(
            b"apiVersion: kustomize.toolkit.fluxcd.io/v1beta1\nkind: Kustomization\nmetadata:\n  name: x\nspec:\n  interval: 1m\n"
        ));
        assert!(is_flux_kustomization(
            b"---\nkind: Kustomization\napiVersion: \"kustomize.toolkit.fluxcd.io/v1\"\n---\nkind: Other\n"
        ));
        // kustomize's own kustomization.yaml is left where it is.
        assert!(!is_flux_kustomization(
            b"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [a.yaml]\n"
        ));
        // Only the first document counts, as in the original.
        assert!(!is_flux_kustomization(
            b"kind: ConfigMap\napiVersion: v1\n---\napiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\n"
        ));
        for other in [&b""[..], b"not: [yaml", b"\x00\x01binary", b"- a\n- b\n"] {
            assert!(!is_flux_kustomization(other));
        }
    }
}
