//! Policies as the API and hamctl manage them: branch restrictions on every
//! release path (service and server-wide), conflicts between policies,
//! policy files parsed strictly, and policies set before a service's first
//! build. (What auto-release policies do: `auto_release`.)

use crate::support::server_api::parse_global_restrictions;
use crate::support::*;
use release_manager::pb;
use tonic::Code;

fn fixture() -> ConfigRepo {
    let mut repo = ConfigRepo::new();
    repo.add_build("shop", "master", 1);
    repo.add_build("shop", "feature/x", 1);
    repo.push();
    repo
}

#[tokio::test]
async fn branch_restrictions_guard_every_release_path() {
    let repo = fixture();
    let server = TestServer::start_with(&repo.remote, |config| {
        config.settings.global_restrictions =
            parse_global_restrictions("staging=^(master|release/.*)$").unwrap();
    })
    .await;
    let mut policies = server.policy_client().await;
    let mut client = server.client().await;
    let restrict = |env: &str, regex: &str| pb::ApplyBranchRestrictionRequest {
        request_id: String::new(),
        service: "shop".into(),
        environment: env.into(),
        branch_regex: regex.into(),
        committer: alice(),
    };
    let auto = |branch: &str, env: &str| pb::ApplyAutoReleaseRequest {
        request_id: String::new(),
        service: "shop".into(),
        branch: branch.into(),
        environment: env.into(),
        committer: alice(),
    };

    // Invalid regex: the regex's own error.
    let err = policies
        .apply_branch_restriction(restrict("prod", "ma(ster"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("unclosed group"),
        "{}",
        err.message()
    );

    // Conflict on apply, both ways.
    policies
        .apply_auto_release(auto("feature/x", "prod"))
        .await
        .unwrap();
    let err = policies
        .apply_branch_restriction(restrict("prod", "^master$"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("auto-release-feature/x-prod"),
        "{}",
        err.message()
    );
    let deleted = policies
        .delete_policies(pb::DeletePoliciesRequest {
            request_id: String::new(),
            service: "shop".into(),
            ids: vec!["auto-release-feature/x-prod".into()],
            committer: alice(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.deleted, 1);
    assert!(
        repo.remote_file("policies/shop.json").is_none(),
        "a file with no policies left is removed"
    );
    let applied = policies
        .apply_branch_restriction(restrict("prod", "^master$"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(applied.id, "branch-restriction-prod");
    let again = policies
        .apply_branch_restriction(restrict("prod", "^master$"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.outcome(), pb::Outcome::AlreadyUpToDate);
    let err = policies
        .apply_auto_release(auto("feature/x", "prod"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("branch-restriction-prod"),
        "{}",
        err.message()
    );

    // Denied on manual release by branch and by artifact id (its branch).
    let head = repo.remote_head();
    let err = client
        .release(release_branch("shop", "prod", "feature/x"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("branch-restriction-prod"),
        "{}",
        err.message()
    );
    let err = client
        .release(release_artifact(
            "shop",
            "prod",
            &artifact_id("shop", "feature/x", 1),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    // The server-wide restriction holds for staging.
    let err = client
        .release(release_branch("shop", "staging", "feature/x"))
        .await
        .unwrap_err();
    assert!(err.message().contains("server-wide"), "{}", err.message());
    // Promote carries the branch of what it promotes.
    client
        .release(release_branch("shop", "dev", "feature/x"))
        .await
        .unwrap();
    let err = client
        .promote(pb::PromoteRequest {
            service: "shop".into(),
            environment: "staging".into(),
            committer: alice(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(
        subjects(&repo).len(),
        subjects_len_after(&repo, &head) + 1,
        "only the dev release landed"
    );

    // Loose vs anchored regex.
    policies
        .apply_branch_restriction(restrict("dev", "x"))
        .await
        .unwrap();
    client
        .release(release_branch("shop", "dev", "master"))
        .await
        .expect_err("master has no x");
    client
        .release(release_artifact(
            "shop",
            "dev",
            &artifact_id("shop", "feature/x", 1),
        ))
        .await
        .expect("loose regex matches feature/x");

    // Listed, server-wide included; server-wide cannot be deleted.
    let list = policies
        .list_policies(pb::ListPoliciesRequest {
            service: "shop".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<(String, bool)> = list
        .branch_restrictions
        .iter()
        .map(|r| (r.id.clone(), r.server_wide))
        .collect();
    assert!(
        ids.contains(&("branch-restriction-staging".into(), true)),
        "{ids:?}"
    );
    assert!(
        ids.contains(&("branch-restriction-prod".into(), false)),
        "{ids:?}"
    );
    let err = policies
        .delete_policies(pb::DeletePoliciesRequest {
            request_id: String::new(),
            service: "shop".into(),
            ids: vec!["branch-restriction-staging".into()],
            committer: alice(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("server-wide"), "{}", err.message());
    server.stop().await;
}

fn subjects_len_after(repo: &ConfigRepo, head: &str) -> usize {
    repo.remote_git(&["rev-list", "--count", head])
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn policy_files_are_parsed_strictly() {
    let repo = fixture();
    let server = TestServer::start(&repo.remote).await;
    let url = server.url.clone();
    let write = |content: &str| {
        std::fs::create_dir_all(repo.work.join("policies")).unwrap();
        std::fs::write(repo.work.join("policies/shop.json"), content).unwrap();
        git(&repo.work, &["add", "-A"]);
        git(&repo.work, &["commit", "-q", "-m", "edit policies by hand"]);
        repo.push();
    };
    write("");
    server.sync().await;
    let (code, out, err) = hamctl(&["--server", &url, "policy", "--service", "shop", "list"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("No policies for shop"), "{out}");

    write("this is not json");
    server.sync().await;
    let (code, _, err) = hamctl(&["--server", &url, "policy", "--service", "shop", "list"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("policies/shop.json cannot be read"), "{err}");

    write(r#"{"service":"shop","autoReleases":[],"extra":1}"#);
    server.sync().await;
    let (code, _, err) = hamctl(&["--server", &url, "policy", "--service", "shop", "list"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("unknown field `extra`"), "{err}");
    // A broken policies file blocks releases of that service (restrictions
    // could not be checked), with the reason.
    let (code, _, err) = hamctl(&[
        "--server",
        &url,
        "release",
        "--service",
        "shop",
        "--env",
        "dev",
        "--branch",
        "master",
    ])
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("policies/shop.json"), "{err}");

    write(
        r#"{"service":"shop","autoReleases":[{"id":"auto-release-master-dev","branch":"master","environment":"dev"}]}"#,
    );
    server.sync().await;
    let (code, out, _) = hamctl(&[
        "--server",
        &url,
        "--output",
        "json",
        "policy",
        "--service",
        "shop",
        "list",
    ])
    .await;
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["autoReleases"][0]["id"], "auto-release-master-dev");
    let (code, out, _) = hamctl(&[
        "--server",
        &url,
        "policy",
        "--service",
        "shop",
        "delete",
        "auto-release-master-dev",
    ])
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        repo.remote_file("policies/shop.json").is_none(),
        "no policies left: file removed"
    );
    server.stop().await;
}

#[tokio::test]
async fn policies_can_be_set_before_a_service_has_builds() {
    let repo = ConfigRepo::new();
    let server = TestServer::start(&repo.remote).await;
    let mut policies = server.policy_client().await;
    // Onboarding: the auto-release first, for a service with no builds.
    let listed = policies
        .list_policies(pb::ListPoliciesRequest {
            service: "newcomer".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.auto_releases.is_empty() && listed.branch_restrictions.is_empty());
    policies
        .apply_auto_release(pb::ApplyAutoReleaseRequest {
            request_id: String::new(),
            service: "newcomer".into(),
            branch: "master".into(),
            environment: "dev".into(),
            committer: alice(),
        })
        .await
        .unwrap();
    // Written without empty lists, as the original release manager reads it.
    let file = repo.remote_file("policies/newcomer.json").unwrap();
    assert!(!file.contains("branchRestrictions"), "{file}");
    // The first build, pushed by CI, releases itself.
    let mut work = repo;
    let id = work.add_build("newcomer", "master", 1);
    work.push();
    server.sync().await;
    let released = work
        .remote_file("dev/releases/dev/newcomer/artifact.json")
        .expect("the first build was auto-released");
    assert!(released.contains(&id), "{released}");
    // And the policy can be deleted again.
    let deleted = policies
        .delete_policies(pb::DeletePoliciesRequest {
            request_id: String::new(),
            service: "newcomer".into(),
            ids: vec!["auto-release-master-dev".into()],
            committer: alice(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.deleted, 1);
    server.stop().await;
}
