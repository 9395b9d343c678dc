//! Which service a Kubernetes object belongs to: the service whose release
//! folder (`<env>/releases/<namespace>/<service>/`) holds its manifest.
//! Read from the manifests themselves (`kind`, `metadata.namespace`,
//! `metadata.name`), lazily, and kept per folder tree: a folder that did
//! not change is not read again. A manifest without a namespace is taken
//! to be in its folder's, and failing that in whichever the controller
//! put it (a Kustomization's `targetNamespace`).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use git2::{ObjectType, Oid, Repository, Tree};
use serde::Deserialize;

use super::named::{Named, NamedObject};

/// An object a manifest declares.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Declared {
    kind: String,
    /// As the manifest says; `None` when it leaves it to the controller.
    namespace: Option<String>,
    /// The namespace folder it is in.
    folder_namespace: String,
    name: String,
}

/// The objects of each release folder read so far, by the folder's tree.
#[derive(Default)]
pub(crate) struct Manifests {
    by_folder: Mutex<HashMap<Oid, Arc<Vec<Declared>>>>,
}

/// Most folders' objects kept; past it the cache starts over.
const MOST_FOLDERS: usize = 20_000;

impl Manifests {
    /// The services of `environment` (at the tree `root`) that `named`
    /// points at: by the objects their manifests declare, or by their
    /// release folder.
    pub(crate) fn services_named(
        &self,
        repo: &Repository,
        root: &Tree<'_>,
        environment: &str,
        named: &Named,
    ) -> Result<BTreeSet<String>, git2::Error> {
        let mut services = BTreeSet::new();
        let Some(releases) =
            crate::repo::tree::tree_at(repo, root, &format!("{environment}/releases"))?
        else {
            return Ok(services);
        };
        let mut folders = Vec::new();
        for namespace in releases.iter() {
            let (Some(namespace_name), Some(ObjectType::Tree)) =
                (namespace.name(), namespace.kind())
            else {
                continue;
            };
            let namespace_tree = repo.find_tree(namespace.id())?;
            for service in namespace_tree.iter() {
                let (Some(service_name), Some(ObjectType::Tree)) = (service.name(), service.kind())
                else {
                    continue;
                };
                folders.push((
                    namespace_name.to_string(),
                    service_name.to_string(),
                    service.id(),
                ));
            }
        }
        for folder in &named.folders {
            if folders
                .iter()
                .any(|(ns, service, _)| *ns == folder.namespace && *service == folder.service)
            {
                services.insert(folder.service.clone());
            }
        }
        if named.objects.is_empty() {
            return Ok(services);
        }
        let mut declared: Vec<(String, Arc<Vec<Declared>>)> = Vec::with_capacity(folders.len());
        for (namespace, service, tree) in folders {
            declared.push((service, self.objects_of(repo, tree, &namespace)?));
        }
        for object in &named.objects {
            let exact: Vec<&String> = declared
                .iter()
                .filter(|(_, objects)| objects.iter().any(|d| matches(d, object, true)))
                .map(|(service, _)| service)
                .collect();
            let found = if exact.is_empty() {
                // Words without a namespace (Argo CD's), or a manifest that
                // left its namespace to the controller.
                declared
                    .iter()
                    .filter(|(_, objects)| objects.iter().any(|d| matches(d, object, false)))
                    .map(|(service, _)| service)
                    .collect()
            } else {
                exact
            };
            services.extend(found.into_iter().cloned());
        }
        Ok(services)
    }

    /// The objects the manifests of the folder `tree` (in `namespace`)
    /// declare.
    fn objects_of(
        &self,
        repo: &Repository,
        tree: Oid,
        namespace: &str,
    ) -> Result<Arc<Vec<Declared>>, git2::Error> {
        if let Some(known) = self.by_folder.lock().expect("manifests lock").get(&tree) {
            return Ok(known.clone());
        }
        let mut declared = Vec::new();
        let mut pending = vec![repo.find_tree(tree)?];
        while let Some(folder) = pending.pop() {
            for entry in folder.iter() {
                let name = entry.name().unwrap_or_default();
                match entry.kind() {
                    Some(ObjectType::Tree) => pending.push(repo.find_tree(entry.id())?),
                    Some(ObjectType::Blob)
                        if name != "artifact.json"
                            && [".yaml", ".yml", ".json"].iter().any(|e| name.ends_with(e)) =>
                    {
                        let blob = repo.find_blob(entry.id())?;
                        declared.extend(declared_in(blob.content(), namespace));
                    }
                    _ => {}
                }
            }
        }
        let declared = Arc::new(declared);
        let mut cache = self.by_folder.lock().expect("manifests lock");
        if cache.len() >= MOST_FOLDERS {
            cache.clear();
        }
        cache.insert(tree, declared.clone());
        Ok(declared)
    }
}

/// Whether `declared` is the object named: exactly (a manifest without a
/// namespace in its folder's), or loosely (either side without one).
fn matches(declared: &Declared, object: &NamedObject, exactly: bool) -> bool {
    if declared.kind != object.kind || declared.name != object.name {
        return false;
    }
    let Some(named) = object.namespace.as_deref() else {
        return !exactly;
    };
    match (&declared.namespace, exactly) {
        (Some(declared), _) => declared == named,
        (None, true) => declared.folder_namespace == named,
        (None, false) => true,
    }
}

/// The part of a manifest read here.
#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    metadata: Option<Metadata>,
    /// A `List`'s items.
    #[serde(default)]
    items: Vec<serde_yaml::Value>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
}

/// The objects one file declares (every YAML document of it; JSON is YAML
/// too). What cannot be read declares nothing.
fn declared_in(bytes: &[u8], folder_namespace: &str) -> Vec<Declared> {
    let mut declared = Vec::new();
    for document in serde_yaml::Deserializer::from_slice(bytes) {
        let Ok(value) = serde_yaml::Value::deserialize(document) else {
            // A document that does not parse ends the reading of the file
            // (the parser cannot resume after it).
            break;
        };
        collect(value, folder_namespace, &mut declared, 0);
    }
    declared
}

fn collect(value: serde_yaml::Value, folder_namespace: &str, into: &mut Vec<Declared>, depth: u8) {
    let Ok(manifest) = serde_yaml::from_value::<Manifest>(value) else {
        return;
    };
    if let (Some(kind), Some(name)) = (
        manifest.kind.as_deref(),
        manifest.metadata.as_ref().and_then(|m| m.name.as_deref()),
    ) {
        into.push(Declared {
            kind: kind.to_string(),
            namespace: manifest.metadata.as_ref().and_then(|m| m.namespace.clone()),
            folder_namespace: folder_namespace.to_string(),
            name: name.to_string(),
        });
    }
    if depth < 2 {
        for item in manifest.items {
            collect(item, folder_namespace, into, depth + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_declare_kind_namespace_and_name() {
        let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: svc-0009\n---\n\
                    apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-0009\n  namespace: edge\n---\n\
                    # a comment only\n---\n\
                    apiVersion: v1\nkind: List\nitems:\n- kind: ConfigMap\n  metadata:\n    name: svc-0009-config\n";
        let declared = declared_in(text.as_bytes(), "dev");
        let as_text: Vec<String> = declared
            .iter()
            .map(|d| {
                let namespace = d.namespace.as_deref().unwrap_or(&d.folder_namespace);
                format!("{}/{}/{}", d.kind, namespace, d.name)
            })
            .collect();
        assert_eq!(
            as_text,
            [
                "Deployment/dev/svc-0009",
                "Service/edge/svc-0009",
                "ConfigMap/dev/svc-0009-config"
            ]
        );
        assert!(declared_in(b"kind: [unclosed", "dev").is_empty());
    }

    #[test]
    fn objects_map_to_the_services_whose_folders_declare_them() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let mut root = None;
        for (path, text) in [
            (
                "dev/releases/dev/svc-0008/deployment.yaml",
                "kind: Deployment\nmetadata:\n  name: svc-0008\n",
            ),
            (
                "dev/releases/dev/svc-0009/deployment.yaml",
                "kind: Deployment\nmetadata:\n  name: svc-0009\n  namespace: dev\n",
            ),
            (
                "dev/releases/dev/svc-0009/artifact.json",
                "{\"kind\": \"Deployment\", \"metadata\": {\"name\": \"svc-0008\"}}",
            ),
            (
                "dev/releases/jobs/migrations/job.yaml",
                "kind: Job\nmetadata:\n  name: db-migrate\n",
            ),
        ] {
            let blob = repo.blob(text.as_bytes()).unwrap();
            let current = root.map(|oid| repo.find_tree(oid).unwrap());
            let parts: Vec<&str> = path.split('/').collect();
            root = crate::repo::tree::replace_at(
                &repo,
                current.as_ref(),
                &parts,
                Some((blob, git2::FileMode::Blob)),
            )
            .unwrap();
        }
        let root = repo.find_tree(root.unwrap()).unwrap();
        let manifests = Manifests::default();
        let services = |message: &str| {
            manifests
                .services_named(&repo, &root, "dev", &super::super::named::named_in(message))
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>()
        };
        assert_eq!(
            services("timeout waiting for: [Deployment/dev/svc-0009 status: 'InProgress']"),
            ["svc-0009"],
            "artifact.json declares nothing"
        );
        assert_eq!(
            services("waiting for completion of hook batch/Job/db-migrate"),
            ["migrations"]
        );
        assert_eq!(
            services("read dev/releases/dev/svc-0008/deployment.yaml: bad"),
            ["svc-0008"]
        );
        assert!(services("Deployment/dev/unknown configured").is_empty());
        assert!(
            services("Deployment/prod/svc-0009 configured").is_empty(),
            "another namespace's"
        );
        assert_eq!(
            services("Deployment/apps/svc-0008 configured"),
            ["svc-0008"],
            "a manifest without a namespace, put in another by the controller"
        );
    }
}
