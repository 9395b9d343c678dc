//! The original artifact CLI's sign-on (2023 on), against a real OpenID
//! Connect provider (npm's `oidc-provider`): `artifact push --idp-url
//! --client-id --client-secret [--artifact-scope]` gets an access token by
//! the client-credentials grant and pushes with it; the server verifies it
//! as any identity token (issuer, audience) and its access rules decide.
//! Also: the same through the environment, a client that sends its secret
//! as form fields, a wrong secret (a clear error that never shows it),
//! incomplete flags, and a token the server does not trust.

use crate::support::oidc::{Provider, CI_AUDIENCE};
use crate::support::*;

/// Its owner's pipelines may push builds with a token of the original's
/// scope, and nothing else.
fn access_file(dir: &std::path::Path, issuer: &str) -> std::path::PathBuf {
    let path = dir.join("access.yaml");
    std::fs::write(
        &path,
        format!(
            r#"rules:
  - name: acme-ci
    claims: {{iss: "{issuer}", repository_owner: acme, scope: release_artifact}}
    actions: [push-artifact]
"#
        ),
    )
    .unwrap();
    path
}

/// A server that trusts `ci`'s tokens for `audience`, with no static
/// artifact token at all.
async fn start(
    repo: &ConfigRepo,
    ci: &Provider,
    audience: &str,
    dir: &std::path::Path,
) -> TestServer {
    let issuers = vec![server_api::TrustedIssuer {
        url: ci.issuer.clone(),
        audience: audience.into(),
    }];
    let access = access_file(dir, &ci.issuer);
    TestServer::start_with(&repo.remote, move |config| {
        config.auth.unauthenticated = false;
        config.auth.hamctl_token = Some("ops-token".into());
        config.auth.oidc = server_api::OidcSettings {
            issuers,
            client_id: None,
            leeway: std::time::Duration::from_secs(0),
        };
        config.auth.access_file = Some(access);
    })
    .await
}

fn fixture() -> ConfigRepo {
    let mut repo = ConfigRepo::new();
    repo.add_build("shop", "master", 1);
    repo.push();
    repo
}

/// A finished build folder of shop: artifact.json and dev/.
fn build_folder(id: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("dev")).unwrap();
    std::fs::write(
        root.path().join("artifact.json"),
        spec("shop", "master", id),
    )
    .unwrap();
    std::fs::write(
        root.path().join("dev/deployment.yaml"),
        "kind: Deployment\n",
    )
    .unwrap();
    root
}

#[tokio::test]
async fn the_original_s_oauth_push_line_pushes_a_build() {
    let repo = fixture();
    let ci = Provider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(&repo, &ci, CI_AUDIENCE, dir.path()).await;

    // The line of the original's Makefiles and pipelines, unchanged.
    let build = build_folder("master-oauth-1");
    let run = Cli::artifact()
        .run(&[
            "push",
            "--root",
            build.path().to_str().unwrap(),
            "--http-base-url",
            &server.url,
            "--idp-url",
            &ci.issuer,
            "--client-id",
            "ci-acme",
            "--client-secret",
            "ci-acme-secret",
        ])
        .await;
    assert_eq!(run.code, 0, "{}", run.err);
    assert!(
        run.out.contains("Stored build master-oauth-1"),
        "{}",
        run.out
    );
    assert_eq!(
        commit_info(&repo, "master").subject,
        "[shop] build tag master-oauth-1"
    );

    // The same from the environment, with a client that takes its secret
    // as form fields only, and the scope named.
    let build = build_folder("master-oauth-2");
    let run = Cli::artifact()
        .env("ARTIFACT_URL", &server.url)
        .env("ARTIFACT_IDP_URL", &ci.issuer)
        .env("ARTIFACT_CLIENT_ID", "ci-acme-post")
        .env("ARTIFACT_CLIENT_SECRET", "ci-acme-post-secret")
        .env("ARTIFACT_SCOPE", "release_artifact")
        .run(&["push", "--root", build.path().to_str().unwrap()])
        .await;
    assert_eq!(run.code, 0, "{}", run.err);
    assert_eq!(
        commit_info(&repo, "master").subject,
        "[shop] build tag master-oauth-2"
    );

    // The access rules see the token's claims: without the scope the rule
    // asks for, and for another owner's pipeline, the push is refused.
    let head = repo.remote_head();
    let build = build_folder("master-oauth-3");
    let root = build.path().to_str().unwrap();
    for (client, scope) in [("ci-acme", ""), ("ci-other", "release_artifact")] {
        let secret = format!("{client}-secret");
        let run = Cli::artifact()
            .run(&[
                "push",
                "--root",
                root,
                "--server",
                &server.url,
                "--idp-url",
                &ci.issuer,
                "--client-id",
                client,
                "--client-secret",
                &secret,
                "--artifact-scope",
                scope,
            ])
            .await;
        assert_eq!(run.code, 1, "{client}: {}", run.out);
        assert!(
            run.err.contains("permission denied") && run.err.contains("push-artifact"),
            "{client}: {}",
            run.err
        );
    }
    assert_eq!(repo.remote_head(), head, "nothing was pushed");
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_secret_fails_clearly_and_never_shows_it() {
    let repo = fixture();
    let ci = Provider::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(&repo, &ci, CI_AUDIENCE, dir.path()).await;
    let head = repo.remote_head();
    let build = build_folder("master-oauth-9");
    let root = build.path().to_str().unwrap();
    const WRONG: &str = "not-the-secret-5f3a9c";

    let by_flag = Cli::artifact()
        .run(&[
            "push",
            "--root",
            root,
            "--http-base-url",
            &server.url,
            "--idp-url",
            &ci.issuer,
            "--client-id",
            "ci-acme",
            "--client-secret",
            WRONG,
        ])
        .await;
    let by_variable = Cli::artifact()
        .env("ARTIFACT_CLIENT_SECRET", WRONG)
        .run(&[
            "push",
            "--root",
            root,
            "--http-base-url",
            &server.url,
            "--idp-url",
            &ci.issuer,
            "--client-id",
            "ci-acme",
        ])
        .await;
    for run in [by_flag, by_variable] {
        assert_eq!(run.code, 1, "{}", run.out);
        let expected = format!(
            "error: cannot get a token with the client credentials: the identity provider \
             refused client \"ci-acme\" at {}/token: invalid_client: client authentication \
             failed (check --client-id and --client-secret)\n",
            ci.issuer
        );
        assert_eq!(run.err, expected);
        assert!(
            !run.err.contains(WRONG) && !run.out.contains(WRONG),
            "the secret is never shown: {} {}",
            run.out,
            run.err
        );
    }

    // Incomplete credentials are a usage error naming what is missing.
    let run = Cli::artifact()
        .run(&[
            "push",
            "--root",
            root,
            "--server",
            &server.url,
            "--client-id",
            "ci-acme",
            "--client-secret",
            WRONG,
        ])
        .await;
    assert_eq!(run.code, 2, "{}", run.out);
    assert!(
        run.err
            .contains("--client-id, --client-secret given without --idp-url (ARTIFACT_IDP_URL)"),
        "{}",
        run.err
    );
    assert!(!run.err.contains(WRONG), "{}", run.err);
    assert_eq!(repo.remote_head(), head, "nothing was pushed");
    server.stop().await;
}

#[tokio::test]
async fn a_token_the_server_does_not_trust_names_the_setting_that_would() {
    let repo = fixture();
    let ci = Provider::start().await;
    let dir = tempfile::tempdir().unwrap();
    // The server expects another audience than the provider's tokens carry.
    let server = start(&repo, &ci, "https://another.test", dir.path()).await;
    let head = repo.remote_head();
    let build = build_folder("master-oauth-5");
    let run = Cli::artifact()
        .env("ARTIFACT_CLIENT_SECRET", "ci-acme-secret")
        .run(&[
            "push",
            "--root",
            build.path().to_str().unwrap(),
            "--server",
            &server.url,
            "--idp-url",
            &ci.issuer,
            "--client-id",
            "ci-acme",
        ])
        .await;
    assert_eq!(run.code, 1, "{}", run.out);
    assert!(
        run.err.starts_with("error: unauthenticated: ")
            && run.err.contains("audience")
            && run.err.contains(&format!(
                "(the token of client \"ci-acme\" from {}: the server must trust that issuer, \
                 with the audience of its tokens: --oidc-issuer ISSUER=AUDIENCE)",
                ci.issuer
            )),
        "{}",
        run.err
    );
    assert!(!run.err.contains("ARTIFACT_AUTH_TOKEN"), "{}", run.err);
    assert_eq!(repo.remote_head(), head, "nothing was pushed");
    server.stop().await;
}
