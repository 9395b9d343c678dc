//! A service whose environments differ in known ways, for the comparison
//! of environments and the dashboard's pages: `shop`, four builds of
//! `master` and one of a feature branch pushed through the API, each with
//! a known source commit (a GitHub commit link), author, message, CI job
//! and scan counts, and manifests that differ between staging and prod
//! beyond the artifact id (replicas, a config value, a key only newer
//! builds have). Staging runs master build 3, prod master build 1.

use release_manager::pb;

use super::api::{chunks, client_with_token, push, release_artifact};

/// The service.
pub const SERVICE: &str = "shop";
/// Where its source lives.
pub const SOURCE_REPO: &str = "https://github.com/acme/shop";

/// The source commit of master build `n` (of the feature build: 9).
pub fn sha(n: usize) -> String {
    n.to_string().repeat(40)
}

/// The artifact id of master build `n`.
pub fn master_id(n: usize) -> String {
    format!("master-{}-{n}", &sha(n)[..10])
}

/// The artifact id of the feature branch's build.
pub fn feature_id() -> String {
    format!("feature-cart-{}-1", &sha(9)[..10])
}

/// The manifests of a build for one environment.
fn manifests(id: &str, sha: &str, n: usize, environment: &str) -> Vec<(String, String)> {
    let replicas = if environment == "prod" { 3 } else { 1 };
    let level = if environment == "prod" {
        "info"
    } else {
        "debug"
    };
    let mut config = format!("LOG_LEVEL: {level}\nREGION: eu-west-1\n");
    if n >= 3 {
        config.push_str("FEATURE_FAST_CHECKOUT: \"on\"\n");
    }
    let deployment = format!(
        "kind: Deployment\nmetadata:\n  name: shop\nspec:\n  replicas: {replicas}\n  template:\n    image: registry.example.com/shop:{id}\n    commit: {sha}\n"
    );
    vec![
        (format!("{environment}/deployment.yaml"), deployment),
        (format!("{environment}/config.yaml"), config),
    ]
}

/// The artifact.json of build `n` of `branch` with id `id`.
fn spec(id: &str, branch: &str, n: usize, sha: &str) -> String {
    serde_json::to_string_pretty(&serde_json::json!({
        "id": id,
        "service": SERVICE,
        "application": {
            "sha": sha, "branch": branch,
            "authorName": format!("Dev {n}"), "authorEmail": format!("dev{n}@example.com"),
            "committerName": format!("Dev {n}"), "committerEmail": format!("dev{n}@example.com"),
            "message": format!("shop change {n}\n\nwhy it matters"),
            "name": SERVICE, "url": format!("{SOURCE_REPO}/commit/{sha}"), "provider": "GitHub"
        },
        "ci": {"jobUrl": format!("https://ci.example.com/shop/{n}"), "start": "2026-02-01T10:00:00Z", "end": "2026-02-01T10:05:00Z"},
        "stages": [
            {"id": "snyk-code", "name": "Code scan", "data": {"snykVersion": "1", "url": "https://snyk.example.com", "language": "go",
             "vulnerabilities": {"high": n % 2, "medium": n, "low": 2 * n}}}
        ]
    }))
    .expect("JSON")
}

async fn push_build(url: &str, token: Option<&str>, id: &str, branch: &str, n: usize, sha: &str) {
    let mut files = vec![("artifact.json".to_string(), spec(id, branch, n, sha))];
    for environment in super::ENVS {
        files.extend(manifests(id, sha, n, environment));
    }
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    push(url, token, chunks(&files))
        .await
        .unwrap_or_else(|e| panic!("push {id}: {e}"));
}

/// Pushes the builds (`artifact_token` for the uploads) and releases master
/// build 3 to staging and build 1 to prod (`hamctl_token` for those).
pub async fn push_and_release(url: &str, artifact_token: Option<&str>, hamctl_token: Option<&str>) {
    push_build(url, artifact_token, &master_id(1), "master", 1, &sha(1)).await;
    push_build(url, artifact_token, &master_id(2), "master", 2, &sha(2)).await;
    push_build(
        url,
        artifact_token,
        &feature_id(),
        "feature/cart",
        9,
        &sha(9),
    )
    .await;
    push_build(url, artifact_token, &master_id(3), "master", 3, &sha(3)).await;
    push_build(url, artifact_token, &master_id(4), "master", 4, &sha(4)).await;
    let mut client = client_with_token(url, hamctl_token).await;
    for (environment, n) in [("dev", 4), ("staging", 3), ("prod", 1)] {
        client
            .release(release_artifact(SERVICE, environment, &master_id(n)))
            .await
            .unwrap_or_else(|e| panic!("release {n} to {environment}: {e}"));
    }
}

/// The comparison of staging with prod, as the API answers it.
pub async fn compare(url: &str, token: Option<&str>) -> pb::CompareEnvironmentsResponse {
    client_with_token(url, token)
        .await
        .compare_environments(pb::CompareEnvironmentsRequest {
            service: SERVICE.into(),
            from_environment: "staging".into(),
            to_environment: "prod".into(),
            namespace: String::new(),
        })
        .await
        .expect("compares")
        .into_inner()
}
