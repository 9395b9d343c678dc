//! What a controller's words name: Kubernetes objects as Flux and Argo CD
//! write them (`Deployment/dev/svc-0009`, `apps/Deployment/svc-0009`,
//! `batch/Job/db-migrate`, `Namespace/dev`) and release folders in paths
//! of build errors (`.../releases/dev/svc-0009/...`). Only reading text:
//! which service an object belongs to is `manifests`' to say.

use std::sync::OnceLock;

use regex::Regex;

/// An object a message names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct NamedObject {
    /// Its kind (`Deployment`).
    pub(crate) kind: String,
    /// Its namespace, when the words give one.
    pub(crate) namespace: Option<String>,
    /// Its name.
    pub(crate) name: String,
}

/// A release folder a message names: `<namespace>/<service>` of
/// `releases/<namespace>/<service>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct NamedFolder {
    /// The namespace folder.
    pub(crate) namespace: String,
    /// The service folder.
    pub(crate) service: String,
}

/// Everything a message names.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Named {
    /// Objects, in the order named, each once.
    pub(crate) objects: Vec<NamedObject>,
    /// Release folders, each once.
    pub(crate) folders: Vec<NamedFolder>,
}

fn object_pattern() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN.get_or_init(|| {
        // <Kind>/<name> or <Kind>/<namespace>/<name>: a kind is a
        // capitalised word, the rest DNS names. Argo CD puts the API group
        // first (`apps/Deployment/x`, `/Pod/x`), which the check of the
        // character before the kind lets through.
        Regex::new(r"([A-Z][A-Za-z0-9]*)/([a-z0-9][a-z0-9.-]*)(?:/([a-z0-9][a-z0-9.-]*))?")
            .expect("a valid pattern")
    })
}

fn folder_pattern() -> &'static Regex {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN.get_or_init(|| {
        Regex::new(r"releases/([a-z0-9][a-z0-9-]*)/([a-z0-9][a-z0-9-]*)").expect("a valid pattern")
    })
}

/// What `message` names.
pub(crate) fn named_in(message: &str) -> Named {
    let mut named = Named::default();
    for found in object_pattern().captures_iter(message) {
        let whole = found.get(0).expect("a match has its whole");
        // A kind starts a word (or follows an API group's `/`): `xDeployment/a`
        // is not one.
        let before = message[..whole.start()].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.') {
            continue;
        }
        let trim = |text: &str| text.trim_end_matches(['.', '-']).to_string();
        let kind = found[1].to_string();
        let object = match found.get(3) {
            Some(name) => NamedObject {
                kind,
                namespace: Some(trim(&found[2])),
                name: trim(name.as_str()),
            },
            None => NamedObject {
                kind,
                namespace: None,
                name: trim(&found[2]),
            },
        };
        if !object.name.is_empty() && !named.objects.contains(&object) {
            named.objects.push(object);
        }
    }
    for found in folder_pattern().captures_iter(message) {
        let whole = found.get(0).expect("a match has its whole");
        let before = message[..whole.start()].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.') {
            continue;
        }
        let folder = NamedFolder {
            namespace: found[1].to_string(),
            service: found[2].to_string(),
        };
        if !named.folders.contains(&folder) {
            named.folders.push(folder);
        }
    }
    named
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(kind: &str, namespace: Option<&str>, name: &str) -> NamedObject {
        NamedObject {
            kind: kind.into(),
            namespace: namespace.map(str::to_string),
            name: name.into(),
        }
    }

    #[test]
    fn flux_health_check_failures_name_their_objects() {
        // kustomize-controller: "health check failed after %s: %w", the
        // error of fluxcd/pkg/ssa's WaitForSetWithContext.
        let named = named_in(
            "health check failed after 5m0.012s: timeout waiting for: [Deployment/dev/svc-0009 status: 'InProgress', StatefulSet/dev/svc-0010 status: 'Failed']",
        );
        assert_eq!(
            named.objects,
            vec![
                object("Deployment", Some("dev"), "svc-0009"),
                object("StatefulSet", Some("dev"), "svc-0010")
            ]
        );
        assert!(named.folders.is_empty());
    }

    #[test]
    fn flux_change_sets_and_cluster_objects() {
        // The change set of an apply (ssa.ChangeSetEntry.String()).
        let named = named_in("Deployment/dev/svc-0008 configured\nService/dev/svc-0008 created\nNamespace/dev unchanged");
        assert_eq!(
            named.objects,
            vec![
                object("Deployment", Some("dev"), "svc-0008"),
                object("Service", Some("dev"), "svc-0008"),
                object("Namespace", None, "dev"),
            ]
        );
    }

    #[test]
    fn argo_cd_names_group_kind_name() {
        let named =
            named_in("waiting for completion of hook batch/Job/db-migrate and 1 more resources");
        assert_eq!(named.objects, vec![object("Job", None, "db-migrate")]);
        let named = named_in("waiting for completion of hook /Pod/hook-1");
        assert_eq!(named.objects, vec![object("Pod", None, "hook-1")]);
    }

    #[test]
    fn build_errors_name_release_folders() {
        let named = named_in(
            "kustomize build failed: accumulating resources: accumulation err='accumulating resources from './dev/releases/dev/svc-0009': read /tmp/kustomization-1/dev/releases/dev/svc-0009/deployment.yaml: yaml: line 3: mapping values are not allowed in this context'",
        );
        assert_eq!(
            named.folders,
            vec![NamedFolder {
                namespace: "dev".into(),
                service: "svc-0009".into()
            }]
        );
    }

    #[test]
    fn words_that_name_nothing() {
        for text in [
            "Reconciliation finished in 1.2s, next run in 10m0s",
            "dependency 'flux-system/infra' is not ready",
            "main@sha1:0123456789abcdef",
            "",
        ] {
            assert_eq!(named_in(text), Named::default(), "{text}");
        }
    }
}
