//! The real hamctl CLI, run in process against a real server: what a person
//! types and reads.

mod common;

use common::*;

fn set_identity() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // hamctl resolves the committer the way git does; give it one.
    ONCE.call_once(|| {
        std::env::set_var("GIT_COMMITTER_NAME", "Olga Operator");
        std::env::set_var("GIT_COMMITTER_EMAIL", "olga@example.com");
    });
}

async fn hamctl(args: &[&str]) -> (i32, String, String) {
    set_identity();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut argv = vec!["hamctl"];
    argv.extend_from_slice(args);
    let code = hamctl::run_with_output(argv, &mut out, &mut err).await;
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

fn fixture() -> (ConfigRepo, Vec<String>) {
    let mut repo = ConfigRepo::new();
    let ids = (1..=2)
        .map(|n| repo.add_build("shop", "master", n))
        .collect();
    repo.push();
    (repo, ids)
}

#[tokio::test]
async fn release_status_describe_and_rollback_from_the_command_line() {
    let (repo, ids) = fixture();
    let server = TestServer::start(&repo.remote).await;
    let url = server.url.as_str();

    let (code, out, err) = hamctl(&[
        "--server",
        url,
        "release",
        "--service",
        "shop",
        "--env",
        "dev",
        "--artifact",
        &ids[0],
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("Released {}", ids[0])) && out.contains("dev"),
        "{out}"
    );
    assert!(commit_info(&repo, "master")
        .committer
        .contains("Olga Operator <olga@example.com>"));

    // Global flags after the subcommand work too.
    let (code, out, _) = hamctl(&[
        "release",
        "--service",
        "shop",
        "--env",
        "dev",
        "--branch",
        "master",
        "--server",
        url,
    ])
    .await;
    assert_eq!(code, 0);
    assert!(out.contains(&ids[1]), "{out}");

    let (code, out, _) = hamctl(&[
        "release",
        "--service",
        "shop",
        "--env",
        "dev",
        "--branch",
        "master",
        "--server",
        url,
    ])
    .await;
    assert_eq!(code, 0);
    assert!(out.contains("already"), "{out}");

    let (code, out, _) = hamctl(&["--server", url, "status", "--service", "shop"]).await;
    assert_eq!(code, 0);
    let dev_line = out
        .lines()
        .find(|l| l.starts_with("dev"))
        .expect("a dev row");
    assert!(
        dev_line.contains(&ids[1]) && dev_line.contains("Olga Operator"),
        "{out}"
    );
    assert!(out.lines().any(|l| l.starts_with("prod")), "{out}");

    let (code, out, _) = hamctl(&[
        "--server",
        url,
        "--output",
        "json",
        "status",
        "--service",
        "shop",
    ])
    .await;
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    assert_eq!(json["service"], "shop");
    assert_eq!(json["environments"][0]["environment"], "dev");
    assert_eq!(
        json["environments"][0]["artifact"]["artifact_id"],
        ids[1].as_str()
    );
    assert_eq!(
        json["environments"][0]["released_by"]["email"],
        "olga@example.com"
    );
    assert!(json["environments"][2]["artifact"].is_null());

    let (code, out, _) = hamctl(&[
        "--server",
        url,
        "describe",
        "release",
        "--service",
        "shop",
        "--env",
        "dev",
    ])
    .await;
    assert_eq!(code, 0);
    let first = out.find(&ids[1]).expect("newest listed");
    let second = out.find(&ids[0]).expect("older listed");
    assert!(first < second, "newest first:\n{out}");

    let (code, out, err) = hamctl(&[
        "--server",
        url,
        "rollback",
        "--service",
        "shop",
        "--env",
        "dev",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&ids[0]), "{out}");
    assert!(repo
        .remote_file("dev/releases/dev/shop/deployment.yaml")
        .unwrap()
        .contains(&ids[0]));

    let (code, out, err) = hamctl(&[
        "--server",
        url,
        "promote",
        "--service",
        "shop",
        "--env",
        "staging",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&ids[0]) && out.contains("staging"), "{out}");
    server.stop().await;
}

#[tokio::test]
async fn errors_are_one_line_with_a_non_zero_exit() {
    let (repo, _) = fixture();
    let server = TestServer::start(&repo.remote).await;
    let url = server.url.as_str();
    let head = repo.remote_head();

    let (code, out, err) = hamctl(&[
        "--server",
        url,
        "release",
        "--service",
        "shop",
        "--env",
        "qa",
        "--branch",
        "master",
    ])
    .await;
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: ") && err.contains("unknown environment \"qa\""),
        "{err}"
    );

    let (code, _, err) = hamctl(&[
        "--server",
        url,
        "release",
        "--service",
        "ghost",
        "--env",
        "dev",
        "--branch",
        "master",
    ])
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("unknown service \"ghost\""), "{err}");

    // Both or neither of --branch / --artifact is a usage error.
    let (code, _, _) = hamctl(&[
        "--server",
        url,
        "release",
        "--service",
        "shop",
        "--env",
        "dev",
        "--branch",
        "master",
        "--artifact",
        "x",
    ])
    .await;
    assert_eq!(code, 2);
    let (code, _, _) = hamctl(&[
        "--server",
        url,
        "release",
        "--service",
        "shop",
        "--env",
        "dev",
    ])
    .await;
    assert_eq!(code, 2);

    let (code, _, err) = hamctl(&[
        "--server",
        "http://127.0.0.1:1",
        "status",
        "--service",
        "shop",
    ])
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("cannot reach server"), "{err}");
    assert_eq!(repo.remote_head(), head);
    server.stop().await;
}

#[tokio::test]
async fn the_token_is_sent_from_the_flag() {
    let (repo, _) = fixture();
    let server = TestServer::start_with(&repo.remote, |config| {
        config.auth.hamctl_token = Some("t0ken".into());
        config.auth.unauthenticated = false;
    })
    .await;
    let url = server.url.as_str();
    let (code, _, err) = hamctl(&["--server", url, "status", "--service", "shop"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("unauthenticated"), "{err}");
    let (code, _, err) = hamctl(&[
        "--server",
        url,
        "--auth-token",
        "t0ken",
        "status",
        "--service",
        "shop",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    server.stop().await;
}
