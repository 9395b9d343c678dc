//! Policies end to end: auto-release of builds pushed straight to the
//! remote (poll, webhook, restart) exactly once, branch restrictions on
//! every release path, policy file parsing, and watching events.

mod common;

use std::time::Duration;

use common::*;
use release_manager::pb;
use release_manager::pb::policy_service_client::PolicyServiceClient;
use tonic::Code;

fn fixture() -> ConfigRepo {
    let mut repo = ConfigRepo::new();
    repo.add_build("shop", "master", 1);
    repo.add_build("shop", "feature/x", 1);
    repo.push();
    repo
}

async fn policy_client(server: &TestServer) -> PolicyServiceClient<tonic::transport::Channel> {
    PolicyServiceClient::connect(server.url.clone())
        .await
        .unwrap()
}

fn released(repo: &ConfigRepo, env: &str, id: &str) -> usize {
    let wanted = format!("[{env}/shop] release {id}");
    subjects(repo).iter().filter(|s| **s == wanted).count()
}

fn sign(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Posts a GitHub push webhook; returns the HTTP status code.
async fn webhook(server: &TestServer, signature: Option<&str>) -> u16 {
    let header = signature.map(|s| format!("X-Hub-Signature-256: {s}"));
    post_webhook(server, "github", header.as_deref()).await
}

/// The Prometheus text of `GET /metrics`.
async fn get_metrics(server: &TestServer) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = server
        .server
        .as_ref()
        .unwrap()
        .http_addr
        .expect("HTTP listener");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .expect("metrics answer")
    .unwrap();
    response
}

/// Posts a push webhook to `/webhook/<kind>` with one extra header.
async fn post_webhook(server: &TestServer, kind: &str, header: Option<&str>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = server
        .server
        .as_ref()
        .unwrap()
        .http_addr
        .expect("HTTP listener");
    let body = br#"{"ref":"refs/heads/master"}"#;
    let mut request = format!(
        "POST /webhook/{kind} HTTP/1.1\r\nHost: {addr}\r\nX-GitHub-Event: push\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(header) = header {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .expect("the webhook answers")
    .unwrap();
    response.split_whitespace().nth(1).unwrap().parse().unwrap()
}

const SECRET: &str = "hook-secret";

async fn start(repo: &ConfigRepo, data: Option<tempfile::TempDir>, poll: Duration) -> TestServer {
    let tweak = move |config: &mut release_manager_server::ServerConfig| {
        config.poll_interval = poll;
        config.http_listen = Some("127.0.0.1:0".parse().unwrap());
        config.github_webhook_secret = Some(SECRET.into());
    };
    match data {
        Some(data) => TestServer::start_in(&repo.remote, data, tweak).await,
        None => TestServer::start_with(&repo.remote, tweak).await,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builds_pushed_by_ci_are_auto_released_once() {
    let mut repo = fixture();
    let server = start(&repo, None, Duration::from_millis(50)).await;
    let url = server.url.clone();
    let (code, out, err) = hamctl(&[
        "--server",
        &url,
        "policy",
        "--service",
        "shop",
        "apply",
        "auto-release",
        "--branch",
        "master",
        "--env",
        "dev",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("auto-release-master-dev"), "{out}");
    assert_eq!(
        repo.remote_file("policies/shop.json").unwrap(),
        "{\n  \"service\": \"shop\",\n  \"autoReleases\": [\n    {\n      \"id\": \"auto-release-master-dev\",\n      \"branch\": \"master\",\n      \"environment\": \"dev\"\n    }\n  ]\n}\n"
    );
    let info = commit_info(&repo, "master");
    assert_eq!(
        info.subject,
        "[shop] policy update: apply auto-release from 'master' to 'dev'"
    );
    assert_eq!(info.author, "Olga Operator <olga@example.com>");
    assert_eq!(info.committer, "Olga Operator <olga@example.com>");

    // CI pushes a build with plain git; the poll notices it.
    let build2 = repo.add_build("shop", "master", 2);
    let feature = repo.add_build("shop", "feature/x", 2);
    repo.push();
    wait_until(
        "the auto-release of build 2",
        Duration::from_secs(20),
        || released(&repo, "dev", &build2) == 1,
    )
    .await;
    let release = repo
        .remote_git(&[
            "log",
            "-1",
            "--format=%H",
            "--grep",
            &format!("release {build2}"),
            "master",
        ])
        .trim()
        .to_string();
    let info = commit_info(&repo, &release);
    assert!(
        info.body.contains("Release-intent: auto-release"),
        "{}",
        info.body
    );
    assert_eq!(info.author, "Dev 2 <dev2@example.com>");

    // The webhook fires for the same push: nothing more happens.
    assert_eq!(
        webhook(
            &server,
            Some(&sign(SECRET, br#"{"ref":"refs/heads/master"}"#))
        )
        .await,
        202
    );
    server.server.as_ref().unwrap().sync().await.unwrap();
    assert_eq!(released(&repo, "dev", &build2), 1, "released exactly once");

    // The server restarts; builds pushed meanwhile are caught up, old
    // ones are not released again.
    let data = server.stop().await;
    let build3 = repo.add_build("shop", "master", 3);
    repo.push();
    let server = start(&repo, Some(data), Duration::ZERO).await;
    server.server.as_ref().unwrap().sync().await.unwrap();
    assert_eq!(released(&repo, "dev", &build3), 1, "caught up at start-up");
    assert_eq!(released(&repo, "dev", &build2), 1);
    assert_eq!(
        released(&repo, "dev", &feature),
        0,
        "another branch is not released"
    );
    assert_eq!(released(&repo, "staging", &build3), 0);

    // A second policy: the next build goes to both environments.
    let mut policies = policy_client(&server).await;
    policies
        .apply_auto_release(pb::ApplyAutoReleaseRequest {
            service: "shop".into(),
            branch: "master".into(),
            environment: "staging".into(),
            committer: alice(),
        })
        .await
        .unwrap();
    let build4 = repo.add_build("shop", "master", 4);
    repo.push();
    assert_eq!(
        webhook(
            &server,
            Some(&sign(SECRET, br#"{"ref":"refs/heads/master"}"#))
        )
        .await,
        202
    );
    wait_until(
        "build 4 in dev and staging",
        Duration::from_secs(20),
        || released(&repo, "dev", &build4) == 1 && released(&repo, "staging", &build4) == 1,
    )
    .await;
    server.server.as_ref().unwrap().sync().await.unwrap();
    assert_eq!(released(&repo, "dev", &build4), 1);
    assert_eq!(
        released(&repo, "staging", &build3),
        0,
        "only new builds go to staging"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_badly_signed_webhook_is_refused_and_releases_nothing() {
    let mut repo = fixture();
    let server = start(&repo, None, Duration::ZERO).await;
    let mut policies = policy_client(&server).await;
    policies
        .apply_auto_release(pb::ApplyAutoReleaseRequest {
            service: "shop".into(),
            branch: "master".into(),
            environment: "dev".into(),
            committer: alice(),
        })
        .await
        .unwrap();
    let build = repo.add_build("shop", "master", 2);
    repo.push();
    let head = repo.remote_head();
    assert_eq!(
        webhook(
            &server,
            Some(&sign("wrong-secret", br#"{"ref":"refs/heads/master"}"#))
        )
        .await,
        401
    );
    assert_eq!(webhook(&server, None).await, 401);
    assert_eq!(webhook(&server, Some("sha256=00")).await, 401);
    assert_eq!(
        post_webhook(&server, "gitlab", Some("X-Gitlab-Token: guess")).await,
        401
    );
    assert_eq!(post_webhook(&server, "gitlab", None).await, 401);
    // A wrongly accepted webhook would have queued a fetch before this
    // (no-op) write; writes are applied in order, so once it is answered
    // any auto-release that fetch caused would be on the remote.
    let again = policies
        .apply_auto_release(pb::ApplyAutoReleaseRequest {
            service: "shop".into(),
            branch: "master".into(),
            environment: "dev".into(),
            committer: alice(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.outcome(), pb::Outcome::AlreadyUpToDate);
    assert_eq!(repo.remote_head(), head, "nothing was released");
    assert_eq!(
        webhook(
            &server,
            Some(&sign(SECRET, br#"{"ref":"refs/heads/master"}"#))
        )
        .await,
        202
    );
    wait_until(
        "the release after a good webhook",
        Duration::from_secs(20),
        || released(&repo, "dev", &build) == 1,
    )
    .await;
    // The writer counts a batch once its push is done, a moment after the
    // remote shows it.
    let began = std::time::Instant::now();
    let mut metrics = get_metrics(&server).await;
    let counted = |metrics: &str| {
        metrics.contains("release_manager_commits_total 2")
            && metrics.contains(
                "release_manager_releases_total{environment=\"dev\",outcome=\"applied\"} 1",
            )
    };
    while !counted(&metrics) && began.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        metrics = get_metrics(&server).await;
    }
    assert!(
        metrics
            .contains("release_manager_releases_total{environment=\"dev\",outcome=\"applied\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("release_manager_commits_total 2"),
        "a policy and a release: {metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn branch_restrictions_guard_every_release_path() {
    let repo = fixture();
    let server = TestServer::start_with(&repo.remote, |config| {
        config.settings.global_restrictions =
            release_manager_server::parse_global_restrictions("staging=^(master|release/.*)$")
                .unwrap();
    })
    .await;
    let mut policies = policy_client(&server).await;
    let mut client = server.client().await;
    let restrict = |env: &str, regex: &str| pb::ApplyBranchRestrictionRequest {
        service: "shop".into(),
        environment: env.into(),
        branch_regex: regex.into(),
        committer: alice(),
    };
    let auto = |branch: &str, env: &str| pb::ApplyAutoReleaseRequest {
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
async fn an_auto_release_a_restriction_forbids_fails_alone() {
    let mut repo = fixture();
    // A policies file written by hand: auto-releases of feature/x to dev
    // and to prod, while the server forbids feature branches in prod.
    let policies = r#"{"service":"shop","autoReleases":[{"id":"auto-release-feature/x-prod","branch":"feature/x","environment":"prod"},{"id":"auto-release-feature/x-dev","branch":"feature/x","environment":"dev"}],"branchRestrictions":[]}"#;
    std::fs::create_dir_all(repo.work.join("policies")).unwrap();
    std::fs::write(repo.work.join("policies/shop.json"), policies).unwrap();
    git(&repo.work, &["add", "-A"]);
    git(
        &repo.work,
        &["commit", "-q", "-m", "[shop] policy update: by hand"],
    );
    repo.push();
    let server = TestServer::start_with(&repo.remote, |config| {
        config.settings.global_restrictions =
            release_manager_server::parse_global_restrictions("prod=^master$").unwrap();
    })
    .await;
    let build = repo.add_build("shop", "feature/x", 2);
    repo.push();
    server.server.as_ref().unwrap().sync().await.unwrap();
    assert_eq!(released(&repo, "dev", &build), 1, "dev got it");
    assert_eq!(released(&repo, "prod", &build), 0, "prod refused it");
    server.stop().await;
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
    server.server.as_ref().unwrap().sync().await.unwrap();
    let (code, out, err) = hamctl(&["--server", &url, "policy", "--service", "shop", "list"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("No policies for shop"), "{out}");

    write("this is not json");
    server.server.as_ref().unwrap().sync().await.unwrap();
    let (code, _, err) = hamctl(&["--server", &url, "policy", "--service", "shop", "list"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("policies/shop.json cannot be read"), "{err}");

    write(r#"{"service":"shop","autoReleases":[],"extra":1}"#);
    server.server.as_ref().unwrap().sync().await.unwrap();
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
    server.server.as_ref().unwrap().sync().await.unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hamctl_watch_sees_a_release_made_by_another_client() {
    let mut repo = fixture();
    let second = repo.add_build("shop", "master", 2);
    repo.push();
    let server = TestServer::start(&repo.remote).await;
    let url = server.url.clone();
    let watch = tokio::spawn({
        let url = url.clone();
        async move {
            hamctl(&[
                "--server",
                &url,
                "watch",
                "--service",
                "shop",
                "--env",
                "dev",
                "--max-events",
                "1",
            ])
            .await
        }
    });
    // The watcher subscribes at some point; release until it has seen one.
    let mut client = server.client().await;
    let ids = [artifact_id("shop", "master", 1), second.clone()];
    for round in 0..200 {
        if watch.is_finished() {
            break;
        }
        client
            .release(release_artifact("shop", "dev", &ids[round % 2]))
            .await
            .unwrap();
        // A release to another environment must not show up.
        client
            .release(release_artifact("shop", "prod", &ids[round % 2]))
            .await
            .unwrap();
    }
    let (code, out, err) = tokio::time::timeout(Duration::from_secs(20), watch)
        .await
        .expect("watch ends")
        .unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("released") && out.contains(" to dev"), "{out}");
    assert!(!out.contains(" to prod"), "{out}");
    server.stop().await;
}

#[tokio::test]
async fn stopping_the_server_ends_open_event_streams() {
    let repo = fixture();
    let server = TestServer::start(&repo.remote).await;
    let mut client = server.client().await;
    let mut stream = client
        .watch_events(pb::WatchEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let live = stream.message().await.unwrap().unwrap();
    assert!(matches!(
        live.event,
        Some(pb::watch_events_response::Event::Live(_))
    ));
    tokio::time::timeout(Duration::from_secs(20), server.stop())
        .await
        .expect("shutdown does not wait for watchers");
    let end = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("the stream ends");
    assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
}

#[tokio::test]
async fn a_build_seen_while_replaying_a_push_is_auto_released() {
    let mut repo = fixture();
    repo.add_build("cart", "master", 1);
    repo.push();
    let server = TestServer::start(&repo.remote).await;
    let mut policies = policy_client(&server).await;
    policies
        .apply_auto_release(pb::ApplyAutoReleaseRequest {
            service: "shop".into(),
            branch: "master".into(),
            environment: "dev".into(),
            committer: alice(),
        })
        .await
        .unwrap();
    // CI pushes a build; no poll, no webhook: the server learns of it only
    // because its next push is rejected and it fetches to replay.
    let build = repo.add_build("shop", "master", 2);
    repo.push();
    let mut client = server.client().await;
    client
        .release(release_branch("cart", "dev", "master"))
        .await
        .unwrap();
    wait_until(
        "the auto-release of the build seen while replaying",
        Duration::from_secs(20),
        || released(&repo, "dev", &build) == 1,
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn policies_can_be_set_before_a_service_has_builds() {
    let repo = ConfigRepo::new();
    let server = start(&repo, None, Duration::ZERO).await;
    let mut policies = policy_client(&server).await;
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
    server.server.as_ref().unwrap().sync().await.unwrap();
    let released = work
        .remote_file("dev/releases/dev/newcomer/artifact.json")
        .expect("the first build was auto-released");
    assert!(released.contains(&id), "{released}");
    // And the policy can be deleted again.
    let deleted = policies
        .delete_policies(pb::DeletePoliciesRequest {
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
