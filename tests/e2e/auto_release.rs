//! Auto-release policies at work: builds pushed straight to the remote by
//! CI are released exactly once, whether the server learns of them by its
//! poll, a push webhook (signed, or refused), a restart, or a push of its
//! own that had to be replayed; a release a restriction forbids fails alone.

use std::time::Duration;

use crate::support::server_api::{parse_global_restrictions, ServerConfig};
use crate::support::signing::signature;
use crate::support::*;
use release_manager::pb;

fn fixture() -> ConfigRepo {
    let mut repo = ConfigRepo::new();
    repo.add_build("shop", "master", 1);
    repo.add_build("shop", "feature/x", 1);
    repo.push();
    repo
}

/// How many commits release build `id` of shop to `env`.
fn released(repo: &ConfigRepo, env: &str, id: &str) -> usize {
    // Titled as the original release manager titles auto-releases.
    let wanted = format!("[{env}/shop] auto release {id} by ");
    subjects(repo)
        .iter()
        .filter(|s| s.starts_with(&wanted))
        .count()
}

const SECRET: &str = "hook-secret";

/// The body of the push webhooks the tests send.
const PUSH: &[u8] = br#"{"ref":"refs/heads/master"}"#;

/// Posts a push webhook to `/webhook/<kind>` with one extra header; the
/// HTTP status code.
async fn post_webhook(server: &TestServer, kind: &str, header: Option<(&str, String)>) -> u16 {
    let mut headers = vec![
        ("X-GitHub-Event", "push".to_string()),
        ("Content-Type", "application/json".to_string()),
    ];
    headers.extend(header);
    http::request(
        server.http_addr(),
        "POST",
        &format!("/webhook/{kind}"),
        &headers,
        PUSH,
    )
    .await
    .status
}

/// Posts a GitHub push webhook with `X-Hub-Signature-256: <signature>`.
async fn webhook(server: &TestServer, signature: Option<&str>) -> u16 {
    let header = signature.map(|s| ("X-Hub-Signature-256", s.to_string()));
    post_webhook(server, "github", header).await
}

/// A server that polls every `poll` (zero: never) and takes signed push
/// webhooks.
async fn start(repo: &ConfigRepo, data: Option<tempfile::TempDir>, poll: Duration) -> TestServer {
    let tweak = move |config: &mut ServerConfig| {
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
            &format!("auto release {build2}"),
            "master",
        ])
        .trim()
        .to_string();
    let info = commit_info(&repo, &release);
    assert!(
        info.body.contains("Release-intent: AutoRelease"),
        "{}",
        info.body
    );
    assert_eq!(info.author, "Dev 2 <dev2@example.com>");

    // The webhook fires for the same push: nothing more happens.
    assert_eq!(webhook(&server, Some(&signature(SECRET, PUSH))).await, 202);
    server.sync().await;
    assert_eq!(released(&repo, "dev", &build2), 1, "released exactly once");

    // The server restarts; builds pushed meanwhile are caught up, old
    // ones are not released again.
    let data = server.stop().await;
    let build3 = repo.add_build("shop", "master", 3);
    repo.push();
    let server = start(&repo, Some(data), Duration::ZERO).await;
    server.sync().await;
    assert_eq!(released(&repo, "dev", &build3), 1, "caught up at start-up");
    assert_eq!(released(&repo, "dev", &build2), 1);
    assert_eq!(
        released(&repo, "dev", &feature),
        0,
        "another branch is not released"
    );
    assert_eq!(released(&repo, "staging", &build3), 0);

    // A second policy: the next build goes to both environments.
    let mut policies = server.policy_client().await;
    policies
        .apply_auto_release(pb::ApplyAutoReleaseRequest {
            request_id: String::new(),
            service: "shop".into(),
            branch: "master".into(),
            environment: "staging".into(),
            committer: alice(),
        })
        .await
        .unwrap();
    let build4 = repo.add_build("shop", "master", 4);
    repo.push();
    assert_eq!(webhook(&server, Some(&signature(SECRET, PUSH))).await, 202);
    wait_until(
        "build 4 in dev and staging",
        Duration::from_secs(20),
        || released(&repo, "dev", &build4) == 1 && released(&repo, "staging", &build4) == 1,
    )
    .await;
    server.sync().await;
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
    let mut policies = server.policy_client().await;
    policies
        .apply_auto_release(pb::ApplyAutoReleaseRequest {
            request_id: String::new(),
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
        webhook(&server, Some(&signature("wrong-secret", PUSH))).await,
        401
    );
    assert_eq!(webhook(&server, None).await, 401);
    assert_eq!(webhook(&server, Some("sha256=00")).await, 401);
    assert_eq!(
        post_webhook(&server, "gitlab", Some(("X-Gitlab-Token", "guess".into()))).await,
        401
    );
    assert_eq!(post_webhook(&server, "gitlab", None).await, 401);
    // A wrongly accepted webhook would have queued a fetch before this
    // (no-op) write; writes are applied in order, so once it is answered
    // any auto-release that fetch caused would be on the remote.
    let again = policies
        .apply_auto_release(pb::ApplyAutoReleaseRequest {
            request_id: String::new(),
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
    assert_eq!(webhook(&server, Some(&signature(SECRET, PUSH))).await, 202);
    wait_until(
        "the release after a good webhook",
        Duration::from_secs(20),
        || released(&repo, "dev", &build) == 1,
    )
    .await;
    // The writer counts a batch once its push is done, a moment after the
    // remote shows it.
    let counted = |metrics: &str| {
        metrics.contains("release_manager_commits_total 2")
            && metrics.contains(
                "release_manager_releases_total{environment=\"dev\",outcome=\"applied\"} 1",
            )
    };
    let metrics = wait_for(
        "the writer to count the policy and the release",
        Duration::from_secs(20),
        || async {
            let metrics = http::get(server.http_addr(), "/metrics").await.text();
            counted(&metrics).then_some(metrics)
        },
    )
    .await;
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
        config.settings.global_restrictions = parse_global_restrictions("prod=^master$").unwrap();
    })
    .await;
    let build = repo.add_build("shop", "feature/x", 2);
    repo.push();
    server.sync().await;
    assert_eq!(released(&repo, "dev", &build), 1, "dev got it");
    assert_eq!(released(&repo, "prod", &build), 0, "prod refused it");
    server.stop().await;
}

#[tokio::test]
async fn a_build_seen_while_replaying_a_push_is_auto_released() {
    let mut repo = fixture();
    repo.add_build("cart", "master", 1);
    repo.push();
    let server = TestServer::start(&repo.remote).await;
    let mut policies = server.policy_client().await;
    policies
        .apply_auto_release(pb::ApplyAutoReleaseRequest {
            request_id: String::new(),
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
