//! Single sign-on against a real OpenID Connect provider (npm's
//! `oidc-provider`, run by the test): identity tokens verified by the
//! server, access rules per action and environment, the releaser taken from
//! the token, CI tokens pushing builds by their claims, tokens that do not
//! fit refused with the check that failed, `hamctl login` in both flows,
//! `whoami`, refresh and logout, and static token lists beside it all.

use std::time::Duration;

use crate::support::oidc::{claims, Provider, CI_AUDIENCE};
use crate::support::webdriver::Browser;
use crate::support::*;
use release_manager::pb;
use tonic::Code;

/// The rules of the issue's example: developers in dev and staging, SREs
/// everywhere, and acme's CI pipelines pushing builds.
fn access_file(dir: &std::path::Path, ci_issuer: &str) -> std::path::PathBuf {
    let path = dir.join("access.yaml");
    std::fs::write(
        &path,
        format!(
            r#"rules:
  - name: sre
    groups: [sre]
    environments: ["*"]
    actions: [release, promote, rollback, policy]
  - name: developers
    groups: [dev-team]
    environments: [dev, staging]
    actions: [release, promote, rollback]
  - name: ci
    claims: {{iss: "{ci_issuer}", repository_owner: acme}}
    actions: [push-artifact, report-deployment]
"#
        ),
    )
    .unwrap();
    path
}

fn fixture() -> ConfigRepo {
    let mut repo = ConfigRepo::new();
    repo.add_build("shop", "master", 1);
    repo.push();
    repo
}

/// A server that trusts `people` (audience `hamctl`, the client hamctl
/// signs in with) and, if given, `ci` (audience [`CI_AUDIENCE`]), with the
/// rules above and a static hamctl token beside them.
async fn start(
    repo: &ConfigRepo,
    people: &Provider,
    ci: Option<&Provider>,
    rules_dir: &std::path::Path,
) -> TestServer {
    let mut issuers = vec![server_api::TrustedIssuer {
        url: people.issuer.clone(),
        audience: "hamctl".into(),
    }];
    if let Some(ci) = ci {
        issuers.push(server_api::TrustedIssuer {
            url: ci.issuer.clone(),
            audience: CI_AUDIENCE.into(),
        });
    }
    let access = access_file(rules_dir, &ci.unwrap_or(people).issuer);
    TestServer::start_with(&repo.remote, move |config| {
        config.auth.unauthenticated = false;
        config.auth.hamctl_token = Some("ops-token".into());
        config.auth.oidc = server_api::OidcSettings {
            issuers,
            client_id: Some("hamctl".into()),
            leeway: Duration::from_secs(0),
        };
        config.auth.access_file = Some(access);
        config.http_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await
}

/// hamctl as a person would run it: their git identity claims to be the
/// CEO, and the token (if any) is theirs.
fn hamctl_as(url: &str, token: Option<&str>, config_dir: &std::path::Path) -> Cli {
    let cli = Cli::hamctl()
        .committer("The CEO", "ceo@example.com")
        .env("HAMCTL_URL", url)
        .env("HAMCTL_CONFIG_DIR", config_dir);
    match token {
        Some(token) => cli.env("HAMCTL_AUTH_TOKEN", token),
        None => cli,
    }
}

#[tokio::test]
async fn developers_release_to_dev_not_prod_and_the_commit_names_the_token_s_person() {
    let repo = fixture();
    let people = Provider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(&repo, &people, None, dir.path()).await;
    let dana = people.id_token("dev").await;
    let hamctl = hamctl_as(&server.url, Some(&dana), dir.path());

    let run = hamctl
        .run(&[
            "release",
            "--service",
            "shop",
            "--env",
            "dev",
            "--branch",
            "master",
        ])
        .await;
    assert_eq!(run.code, 0, "{}", run.err);
    let release = commit_info(&repo, "master");
    assert_eq!(
        release.subject,
        "[dev/shop] release master-shop-001 by dana@example.com"
    );
    assert_eq!(release.committer, "Dana Developer <dana@example.com>");
    assert!(
        release
            .body
            .contains("Released-by: Dana Developer <dana@example.com>"),
        "{}",
        release.body
    );
    assert!(
        release
            .body
            .contains("Artifact-released-by: Dana Developer <dana@example.com>"),
        "{}",
        release.body
    );
    assert!(
        !release.body.contains("ceo@example.com"),
        "{}",
        release.body
    );

    let head = repo.remote_head();
    let refused = hamctl
        .run(&[
            "release",
            "--service",
            "shop",
            "--env",
            "prod",
            "--branch",
            "master",
        ])
        .await;
    assert_eq!(refused.code, 1);
    assert!(
        refused.err.contains("permission denied")
            && refused.err.contains("release in prod")
            && refused.err.contains("dana@example.com"),
        "{}",
        refused.err
    );
    assert_eq!(repo.remote_head(), head, "nothing was pushed");
    let denied = client_with_token(&server.url, Some(&dana))
        .await
        .release(release_branch("shop", "prod", "master"))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert_eq!(
        error_info(&denied).unwrap().0,
        "ACCESS_DENIED",
        "{denied:?}"
    );

    // Reads need any valid identity: a person no rule names reads.
    let nora = people.id_token("nobody").await;
    let status = hamctl_as(&server.url, Some(&nora), dir.path())
        .run(&["status", "--service", "shop"])
        .await;
    assert_eq!(status.code, 0, "{}", status.err);
    assert!(status.out.contains("master-shop-001"), "{}", status.out);

    // An SRE releases to prod, as themselves.
    let sam = people.id_token("sre").await;
    let run = hamctl_as(&server.url, Some(&sam), dir.path())
        .run(&[
            "release",
            "--service",
            "shop",
            "--env",
            "prod",
            "--branch",
            "master",
        ])
        .await;
    assert_eq!(run.code, 0, "{}", run.err);
    assert_eq!(
        commit_info(&repo, "master").committer,
        "Sam Reliability <sam@example.com>"
    );

    // The refusals are counted.
    let metrics = http::get(server.http_addr(), "/metrics").await.text();
    assert!(
        metrics.contains(
            "release_manager_access_denied_total{action=\"release\",environment=\"prod\"} 2"
        ),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn tokens_that_do_not_fit_are_refused_naming_the_check() {
    let repo = fixture();
    let people = Provider::start().await;
    let stranger = Provider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(&repo, &people, None, dir.path()).await;
    let head = repo.remote_head();
    let refused = |token: Option<String>| {
        let url = server.url.clone();
        async move {
            client_with_token(&url, token.as_deref())
                .await
                .release(release_branch("shop", "dev", "master"))
                .await
                .unwrap_err()
        }
    };

    let none = refused(None).await;
    assert_eq!(none.code(), Code::Unauthenticated);
    assert!(none.message().contains("missing token"), "{none:?}");

    let elsewhere = stranger.id_token("dev").await;
    let other_issuer = refused(Some(elsewhere.clone())).await;
    assert_eq!(other_issuer.code(), Code::Unauthenticated);
    assert!(
        other_issuer.message().contains("not trusted")
            && other_issuer.message().contains(&stranger.issuer),
        "{other_issuer:?}"
    );
    assert!(!other_issuer.message().contains(&elsewhere));

    // A token of the trusted issuer, but minted for another audience.
    let ci = people.ci_token("ci-acme").await;
    let other_audience = refused(Some(ci)).await;
    assert_eq!(other_audience.code(), Code::Unauthenticated);
    assert!(
        other_audience.message().contains("audience")
            && other_audience.message().contains("\"hamctl\""),
        "{other_audience:?}"
    );
    assert_eq!(error_info(&other_audience).unwrap().0, "TOKEN_INVALID");

    // A token whose payload was changed (an SRE's groups pasted in).
    let dana = people.id_token("dev").await;
    let sam = people.id_token("sre").await;
    let mut parts: Vec<&str> = dana.split('.').collect();
    parts[1] = sam.split('.').nth(1).unwrap();
    let forged = refused(Some(parts.join("."))).await;
    assert!(forged.message().contains("signature"), "{forged:?}");

    // An expired token (the server allows no clock leeway here).
    let brief = people.id_token("brief").await;
    let exp = claims(&brief)["exp"].as_i64().unwrap();
    wait_until("the brief token to expire", Duration::from_secs(10), || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            > exp
    })
    .await;
    let expired = refused(Some(brief)).await;
    assert_eq!(expired.code(), Code::Unauthenticated);
    assert!(expired.message().contains("expired"), "{expired:?}");
    assert_eq!(error_info(&expired).unwrap().0, "TOKEN_EXPIRED");
    assert_eq!(repo.remote_head(), head, "nothing was pushed");

    let metrics = http::get(server.http_addr(), "/metrics").await.text();
    assert!(
        metrics.contains("release_manager_auth_refused_total{reason=\"TOKEN_EXPIRED\"} 1"),
        "{metrics}"
    );
    server.stop().await;
}

/// Writes a finished build folder for the artifact CLI.
async fn build_folder(id: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("dev")).unwrap();
    std::fs::write(
        root.path().join("dev/deployment.yaml"),
        "kind: Deployment\n",
    )
    .unwrap();
    let at = root.path().to_str().unwrap().to_string();
    for step in [
        vec![
            "init",
            "--artifact-id",
            id,
            "--service",
            "shop",
            "--git-branch",
            "master",
            "--git-sha",
            "abc123",
            "--git-author-name",
            "Ci Author",
            "--git-author-email",
            "author@example.com",
            "--git-message",
            "Faster",
            "--ci-job-url",
            "https://ci.example.com/1",
        ],
        vec!["end"],
    ] {
        let mut argv = vec!["--root", at.as_str()];
        argv.extend(step);
        let run = Cli::artifact().run(&argv).await;
        assert_eq!(run.code, 0, "{}", run.err);
    }
    root
}

#[tokio::test]
async fn a_ci_token_with_the_right_claims_pushes_a_build_and_others_are_refused() {
    let repo = fixture();
    let people = Provider::start().await;
    let ci = Provider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(&repo, &people, Some(&ci), dir.path()).await;
    let push = |root: String, token: String| {
        let url = server.url.clone();
        async move {
            Cli::artifact()
                .run(&[
                    "--root",
                    &root,
                    "push",
                    "--server",
                    &url,
                    "--auth-token",
                    &token,
                ])
                .await
        }
    };

    let acme = ci.ci_token("ci-acme").await;
    let build = build_folder("master-ci-2").await;
    let run = push(build.path().to_str().unwrap().into(), acme).await;
    assert_eq!(run.code, 0, "{}", run.err);
    assert_eq!(
        commit_info(&repo, "master").subject,
        "[shop] build tag master-ci-2"
    );

    let head = repo.remote_head();
    let other = ci.ci_token("ci-other").await;
    let build = build_folder("master-ci-3").await;
    let run = push(build.path().to_str().unwrap().into(), other).await;
    assert_eq!(run.code, 1);
    assert!(
        run.err.contains("permission denied") && run.err.contains("push-artifact"),
        "{}",
        run.err
    );
    // A person's token is no CI token either.
    let dana = people.id_token("dev").await;
    let run = push(build.path().to_str().unwrap().into(), dana).await;
    assert_eq!(run.code, 1);
    assert!(run.err.contains("push-artifact"), "{}", run.err);
    assert_eq!(repo.remote_head(), head, "nothing was pushed");
    server.stop().await;
}

#[tokio::test]
async fn hamctl_logs_in_with_a_browser_and_then_needs_no_token() {
    let repo = fixture();
    let people = Provider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config_dir = dir.path().join("config");
    let server = start(&repo, &people, None, dir.path()).await;
    let hamctl = hamctl_as(&server.url, None, &config_dir);

    let before = hamctl.run(&["whoami"]).await;
    assert_eq!(before.code, 1);
    assert!(before.err.contains("hamctl login"), "{}", before.err);

    let mut login = hamctl.spawn(&["login", "--no-browser"]);
    let issuer = people.issuer.clone();
    login
        .err_until(|line| line.trim().starts_with(&format!("{issuer}/auth?")))
        .await;
    // The test is the person: it opens the printed URL in a browser.
    let url = login
        .err_read()
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(&people.issuer))
        .expect("the sign-in URL")
        .to_string();
    let browser = Browser::start().await;
    assert!(url.contains("code_challenge="), "{url}");
    browser.open(&url).await;
    let done = login.finish(Duration::from_secs(30)).await;
    assert_eq!(done.code, 0, "{}", done.err);
    assert!(
        done.out.contains("Signed in to") && done.out.contains("Dana Developer <dana@example.com>"),
        "{}",
        done.out
    );
    let kept: Vec<_> = std::fs::read_dir(config_dir.join("tokens"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&kept[0]).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");

    let who = hamctl.run(&["whoami"]).await;
    assert_eq!(who.code, 0, "{}", who.err);
    assert!(
        who.out.contains("Dana Developer <dana@example.com>"),
        "{}",
        who.out
    );
    assert!(
        who.out.contains("dev-team") && who.out.contains("developers"),
        "{}",
        who.out
    );
    let dev_line = who
        .out
        .lines()
        .find(|l| l.starts_with("dev "))
        .unwrap_or_default();
    assert!(
        dev_line.contains("release, promote, rollback"),
        "{}",
        who.out
    );
    let prod_line = who
        .out
        .lines()
        .find(|l| l.starts_with("prod"))
        .unwrap_or_default();
    assert!(!prod_line.contains("release"), "{}", who.out);

    let run = hamctl
        .run(&[
            "release",
            "--service",
            "shop",
            "--env",
            "dev",
            "--branch",
            "master",
        ])
        .await;
    assert_eq!(run.code, 0, "{}", run.err);
    assert_eq!(
        commit_info(&repo, "master").committer,
        "Dana Developer <dana@example.com>"
    );

    let out = hamctl.run(&["logout"]).await;
    assert_eq!(out.code, 0, "{}", out.err);
    assert!(!kept[0].exists());
    let after = hamctl.run(&["whoami"]).await;
    assert_eq!(after.code, 1);
    assert!(after.err.contains("hamctl login"), "{}", after.err);
    server.stop().await;
}

#[tokio::test]
async fn hamctl_logs_in_with_the_device_flow_and_refreshes_its_token() {
    let repo = fixture();
    let people = Provider::start().await;
    // Bree's ID tokens live one second: every call after the sign-in
    // needs the refresh token.
    people.sign_in_as("brief").await;
    let dir = tempfile::tempdir().unwrap();
    let config_dir = dir.path().join("config");
    let server = start(&repo, &people, None, dir.path()).await;
    let hamctl = hamctl_as(&server.url, None, &config_dir);

    let mut login = hamctl.spawn(&["login", "--device"]);
    login
        .err_until(|line| line.trim().starts_with("code: "))
        .await;
    let url = login
        .err_read()
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(&people.issuer))
        .expect("the verification URL")
        .to_string();
    let browser = Browser::start().await;
    browser.open(&url).await;
    browser
        .wait_for(
            "the confirmation page",
            Duration::from_secs(10),
            "return !!document.getElementById('continue');",
        )
        .await;
    browser
        .run(
            "document.getElementById('continue').click(); return true;",
            serde_json::json!([]),
        )
        .await;
    let done = login.finish(Duration::from_secs(60)).await;
    assert_eq!(done.code, 0, "{}", done.err);
    assert!(
        done.out.contains("Bree Brief <bree@example.com>"),
        "{}",
        done.out
    );

    let kept = std::fs::read_dir(config_dir.join("tokens"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let first: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&kept).unwrap()).unwrap();
    // Once the kept token has expired (the server would refuse it), hamctl
    // gets a new one with the refresh token.
    let exp = claims(first["id_token"].as_str().unwrap())["exp"]
        .as_i64()
        .unwrap();
    wait_until("the kept token to expire", Duration::from_secs(10), || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            > exp
    })
    .await;
    let who = hamctl.run(&["whoami", "--output", "json"]).await;
    assert_eq!(who.code, 0, "{}", who.err);
    let answer: serde_json::Value = serde_json::from_str(&who.out).unwrap();
    assert_eq!(answer["email"], "bree@example.com");
    assert_eq!(answer["kind"], "CREDENTIAL_KIND_IDENTITY_TOKEN");
    let second: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&kept).unwrap()).unwrap();
    assert_ne!(
        first["id_token"], second["id_token"],
        "the expired token was refreshed"
    );
    server.stop().await;
}

#[tokio::test]
async fn comma_separated_static_tokens_all_work() {
    let repo = fixture();
    let server = TestServer::start_with(&repo.remote, |config| {
        config.auth.unauthenticated = false;
        config.auth.hamctl_token = Some("first, second,third".into());
        config.auth.artifact_token = Some("ci".into());
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    for token in ["first", "second", "third", "second,first"] {
        let run = hamctl_as(&server.url, Some(token), dir.path())
            .run(&["status", "--service", "shop"])
            .await;
        assert_eq!(run.code, 0, "{token}: {}", run.err);
        let who = hamctl_as(&server.url, Some(token), dir.path())
            .run(&["whoami"])
            .await;
        assert!(who.out.contains("static token"), "{}", who.out);
    }
    for token in ["fourth", "first, second"] {
        let mut client = client_with_token(&server.url, Some(token)).await;
        let refused = client
            .status(pb::StatusRequest {
                service: "shop".into(),
                namespace: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated, "{token}");
    }
    server.stop().await;
}

#[tokio::test]
async fn keys_the_issuer_rotates_are_fetched_again() {
    let repo = fixture();
    let before = Provider::start().await;
    let port = before.port();
    let dir = tempfile::tempdir().unwrap();
    let server = start(&repo, &before, None, dir.path()).await;
    let status = |token: String| {
        let url = server.url.clone();
        async move {
            client_with_token(&url, Some(&token))
                .await
                .status(pb::StatusRequest {
                    service: "shop".into(),
                    namespace: String::new(),
                })
                .await
        }
    };
    let old = before.id_token("dev").await;
    status(old.clone())
        .await
        .expect("a token of the first keys");
    // The issuer restarts at the same address with new keys (new key ids).
    drop(before);
    let after = Provider::start_on(port).await;
    let token = after.id_token("dev").await;
    let kid = |token: &str| {
        use base64::Engine;
        let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&header).unwrap()["kid"].clone()
    };
    assert_ne!(kid(&token), kid(&old), "the keys were rotated");
    wait_for(
        "the server to fetch the new keys",
        Duration::from_secs(10),
        || {
            let token = token.clone();
            let status = &status;
            async move { status(token).await.ok() }
        },
    )
    .await;
    server.stop().await;
}
