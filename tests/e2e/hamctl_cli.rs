//! The real hamctl binary against the real server: what a person types
//! and reads, what goes into the config repository (committer, request
//! ids), one-line errors and exit codes, policies, JSON output, and the
//! command lines of the original hamctl. (Tables with fixed times, and what
//! goes over the wire: `hamctl/tests`.)

use std::time::{Duration, Instant};

use crate::support::cli::{OPERATOR_EMAIL, OPERATOR_NAME as OPERATOR};
use crate::support::*;

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
        json["environments"][0]["artifact"]["artifactId"],
        ids[1].as_str()
    );
    assert_eq!(
        json["environments"][0]["releasedBy"]["email"],
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

#[tokio::test]
async fn services_are_listed_and_a_typo_gets_a_suggestion() {
    let (mut repo, ids) = fixture();
    repo.add_build("shop-worker", "master", 1);
    repo.push();
    let server = TestServer::start(&repo.remote).await;
    let url = server.url.as_str();
    let release = ["--service", "shop", "--env", "dev", "--artifact", &ids[1]];
    let (code, _, err) = hamctl(&[&["--server", url, "release"][..], &release[..]].concat()).await;
    assert_eq!(code, 0, "{err}");

    let (code, out, err) = hamctl(&["--server", url, "services"]).await;
    assert_eq!(code, 0, "{err}");
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["SERVICE", "RUNS", "IN", "BRANCHES"], "{out}");
    assert_eq!(rows[1], ["shop", "dev", "master"], "{out}");
    assert_eq!(rows[2], ["shop-worker", "-", "master"], "{out}");

    let (code, out, err) = hamctl(&["--server", url, "--output", "json", "services"]).await;
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["services"][0]["name"], "shop");
    assert_eq!(json["services"][0]["environments"][0], "dev");

    let (code, out, err) = hamctl(&["--server", url, "status", "--service", "shpo"]).await;
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert!(
        err.starts_with("error: not found: unknown service \"shpo\"")
            && err.contains("did you mean \"shop\"?"),
        "{err}"
    );
    let (code, _, err) = hamctl(&[
        "--server",
        url,
        "release",
        "--service",
        "shop-wrker",
        "--env",
        "dev",
        "--branch",
        "master",
    ])
    .await;
    assert_eq!(code, 1);
    assert!(
        err.contains("did you mean one of \"shop-worker\", \"shop\"?"),
        "{err}"
    );
}

/// Every key of a JSON document, recursively.
fn keys(value: &serde_json::Value, into: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(fields) => {
            for (key, value) in fields {
                into.push(key.clone());
                keys(value, into);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| keys(v, into)),
        _ => {}
    }
}

#[tokio::test]
async fn json_output_uses_the_api_field_names() {
    let (repo, _) = fixture();
    let server = TestServer::start(&repo.remote).await;
    let url = server.url.as_str();
    let commands: &[&[&str]] = &[
        &[
            "release",
            "--service",
            "shop",
            "--env",
            "dev",
            "--branch",
            "master",
        ],
        &["promote", "--service", "shop", "--env", "staging"],
        &["status", "--service", "shop"],
        &["describe", "release", "--service", "shop", "--env", "dev"],
        &["describe", "artifact", "--service", "shop"],
        &[
            "policy",
            "--service",
            "shop",
            "apply",
            "auto-release",
            "--branch",
            "master",
            "--env",
            "dev",
        ],
        &["policy", "--service", "shop", "list"],
        &["services"],
    ];
    let mut seen = Vec::new();
    for command in commands {
        let (code, out, err) =
            hamctl(&[&["--server", url, "--output", "json"][..], command].concat()).await;
        assert_eq!(code, 0, "{command:?}: {err}");
        let json: serde_json::Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("{command:?} prints JSON ({e}): {out}"));
        keys(&json, &mut seen);
        // Absent values are null, never empty strings.
        assert!(!out.contains("\"\""), "{command:?}: {out}");
    }
    seen.sort();
    seen.dedup();
    for key in &seen {
        assert!(
            !key.contains('_') && key.chars().next().is_some_and(|c| c.is_ascii_lowercase()),
            "{key} is not lowerCamelCase (all keys: {seen:?})"
        );
    }
    for expected in [
        "artifactId",
        "releasedAt",
        "releasedBy",
        "commitSha",
        "autoReleases",
    ] {
        assert!(
            seen.iter().any(|k| k == expected),
            "{expected} missing: {seen:?}"
        );
    }
}

#[tokio::test]
async fn an_invalid_regex_error_keeps_its_caret_under_the_pattern() {
    let (repo, _) = fixture();
    let server = TestServer::start(&repo.remote).await;
    let (code, _, err) = hamctl(&[
        "--server",
        &server.url,
        "policy",
        "--service",
        "shop",
        "apply",
        "branch-restriction",
        "--env",
        "prod",
        "--branch-regex",
        "ma(ster",
    ])
    .await;
    assert_eq!(code, 1);
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines[0].starts_with("error: invalid argument: invalid branch regex"),
        "{err}"
    );
    let pattern = lines
        .iter()
        .position(|line| line.trim() == "ma(ster")
        .unwrap_or_else(|| panic!("the pattern on a line of its own: {err}"));
    assert_eq!(
        lines[pattern + 1].find('^'),
        lines[pattern].find('('),
        "{err}"
    );
    assert!(err.contains("unclosed group"), "{err}");
}

#[tokio::test]
async fn the_original_hamctl_command_lines_still_work() {
    let (repo, _) = fixture();
    let server = TestServer::start(&repo.remote).await;
    let (code, out, err) = hamctl(&[
        "--http-base-url",
        &server.url,
        "--http-timeout",
        "20s",
        "status",
        "--service",
        "shop",
        "--config-repo",
        "git@github.com:acme/k8s-config.git",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("ENV"), "{out}");
    assert_eq!(
        err,
        "warning: --config-repo is ignored: the server reads its own config repository\n"
    );
}

#[tokio::test]
async fn hamctl_gives_up_on_a_server_that_never_answers() {
    // A port that accepts connections and never says a word, as a stopped
    // (SIGSTOP) server does once the kernel has accepted for it.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let began = Instant::now();
    let (code, out, err) = tokio::time::timeout(
        Duration::from_secs(30),
        hamctl(&[
            "--server",
            &url,
            "--request-timeout",
            "1s",
            "release",
            "--service",
            "shop",
            "--env",
            "dev",
            "--branch",
            "master",
        ]),
    )
    .await
    .expect("hamctl gives up by itself");
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        began.elapsed() < Duration::from_secs(15),
        "{:?}",
        began.elapsed()
    );
    assert!(
        err.starts_with("error: timed out") && err.contains("--request-timeout"),
        "{err}"
    );
    held.abort();
}

/// The `Request-ID:` trailer of commit `rev` on the remote.
fn request_id_of(repo: &ConfigRepo, rev: &str) -> String {
    let body = commit_info(repo, rev).body;
    body.lines()
        .find_map(|line| line.strip_prefix("Request-ID: "))
        .unwrap_or_else(|| panic!("no Request-ID trailer in {body:?}"))
        .to_string()
}

#[tokio::test]
async fn a_release_prints_one_line_and_commits_as_the_operator_with_its_own_request_id() {
    let (repo, ids) = fixture();
    let server = TestServer::start(&repo.remote).await;
    // A bare host:port, as people type it.
    let address = server.url.trim_start_matches("http://").to_string();
    let (code, out, err) = hamctl(&[
        "--server",
        &address,
        "release",
        "--service",
        "shop",
        "--env",
        "dev",
        "--branch",
        "master",
    ])
    .await;
    assert_eq!((code, err.as_str()), (0, ""));
    let commit = repo.remote_head();
    assert_eq!(
        out,
        format!(
            "Released {} of shop to dev (namespace dev), commit {}\n",
            ids[1],
            &commit[..7]
        )
    );
    let info = commit_info(&repo, "master");
    assert_eq!(info.committer, format!("{OPERATOR} <{OPERATOR_EMAIL}>"));
    assert!(
        info.body.contains("Release-intent: ReleaseBranch"),
        "released by branch: {}",
        info.body
    );
    let first = request_id_of(&repo, "master");
    assert_eq!(first.len(), 36, "a UUID: {first}");

    // Every write gets its own request id; --namespace is sent.
    let (code, _, err) = hamctl(&[
        "--server",
        &address,
        "release",
        "--service",
        "shop",
        "--env",
        "dev",
        "--artifact",
        &ids[0],
        "--namespace",
        "team",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(commit_info(&repo, "master")
        .body
        .contains("Namespace: team"));
    assert!(repo
        .remote_file("dev/releases/team/shop/artifact.json")
        .is_some());
    let second = request_id_of(&repo, "master");
    assert_eq!(second.len(), 36, "a UUID: {second}");
    assert_ne!(first, second);
    server.stop().await;
}

#[tokio::test]
async fn releasing_what_already_runs_says_there_is_no_change() {
    let (repo, ids) = fixture();
    let server = TestServer::start(&repo.remote).await;
    let release = |id: &str| {
        [
            "--server",
            &server.url,
            "release",
            "--service",
            "shop",
            "--env",
            "dev",
            "--artifact",
            id,
            "--namespace",
            "dev",
        ]
        .map(str::to_string)
    };
    let args = release(&ids[1]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, _, err) = hamctl(&args).await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = hamctl(&args).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!("shop in dev is already at {} (no change)\n", ids[1])
    );
    server.stop().await;
}

#[tokio::test]
async fn a_write_as_json_reports_its_outcome_and_artifact() {
    let (repo, ids) = fixture();
    let server = TestServer::start(&repo.remote).await;
    let (code, out, err) = hamctl(&[
        "--server",
        &server.url,
        "--output",
        "json",
        "release",
        "--service",
        "shop",
        "--env",
        "dev",
        "--branch",
        "master",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let value: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(value["result"]["outcome"], "OUTCOME_APPLIED");
    assert_eq!(value["result"]["artifactId"], ids[1].as_str());
    server.stop().await;
}

#[tokio::test]
async fn a_server_error_is_one_line_with_its_code_word() {
    let (repo, _) = fixture();
    let server = TestServer::start(&repo.remote).await;
    let (code, out, err) = hamctl(&[
        "--server",
        &server.url,
        "release",
        "--service",
        "shop",
        "--env",
        "dev",
        "--branch",
        "x",
    ])
    .await;
    assert_eq!(code, 1);
    assert_eq!(out, "");
    assert_eq!(
        err,
        "error: not found: no build of branch \"x\" for service \"shop\"\n"
    );
    server.stop().await;
}

#[tokio::test]
async fn promote_and_rollback_say_what_moved_where_in_one_line() {
    let (repo, ids) = fixture();
    let server = TestServer::start(&repo.remote).await;
    let url = server.url.as_str();
    for id in &ids {
        let (code, _, err) = hamctl(&[
            "--server",
            url,
            "release",
            "--service",
            "shop",
            "--env",
            "prod",
            "--artifact",
            id,
        ])
        .await;
        assert_eq!(code, 0, "{err}");
    }
    let (code, _, err) = hamctl(&[
        "--server",
        url,
        "release",
        "--service",
        "shop",
        "--env",
        "dev",
        "--artifact",
        &ids[1],
    ])
    .await;
    assert_eq!(code, 0, "{err}");

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
    assert_eq!(
        out,
        format!(
            "Promoted {} of shop from dev to staging (namespace staging), commit {}\n",
            ids[1],
            &repo.remote_head()[..7]
        )
    );

    let (code, out, err) = hamctl(&[
        "--server",
        url,
        "rollback",
        "--service",
        "shop",
        "--env",
        "prod",
        "--artifact",
        &ids[0],
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        format!(
            "Rolled back shop in prod from {} to {} (namespace prod), commit {}\n",
            ids[1],
            ids[0],
            &repo.remote_head()[..7]
        )
    );
    assert!(commit_info(&repo, "master")
        .subject
        .starts_with(&format!("[prod/shop] rollback {}", ids[0])));
    server.stop().await;
}

#[tokio::test]
async fn a_missing_token_is_refused_with_a_hint_where_to_give_it() {
    let (repo, _) = fixture();
    let server = TestServer::start_with(&repo.remote, |config| {
        config.auth.hamctl_token = Some("t0ken".into());
        config.auth.unauthenticated = false;
    })
    .await;
    let (code, _, err) = hamctl(&["status", "--service", "shop", "--server", &server.url]).await;
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "error: unauthenticated: missing token: this call needs the hamctl token, sent as \
         \"authorization: Bearer <token>\" (pass --auth-token or set HAMCTL_AUTH_TOKEN)\n"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_closed_stdout_is_not_an_error() {
    let (repo, _) = fixture();
    let server = TestServer::start(&repo.remote).await;
    let (code, err) = Cli::hamctl()
        .run_with_closed_stdout(&["--server", &server.url, "status", "--service", "shop"])
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "{err}");
    server.stop().await;
}

#[tokio::test]
async fn policy_list_shows_a_table_with_the_server_wide_restrictions() {
    let (repo, _) = fixture();
    let server = TestServer::start_with(&repo.remote, |config| {
        config.settings.global_restrictions =
            server_api::parse_global_restrictions("prod=^master$").unwrap();
    })
    .await;
    let url = server.url.as_str();
    let (code, _, err) = hamctl(&[
        "--server",
        url,
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
    let (code, out, err) = hamctl(&["--server", url, "policy", "--service", "shop", "list"]).await;
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(
        out,
        "\
ID                        TYPE                 BRANCH / REGEX   ENV    SCOPE
auto-release-master-dev   auto-release         master           dev    service
branch-restriction-prod   branch-restriction   ^master$         prod   server-wide
"
    );
    // --service after the subcommand, JSON output.
    let (code, out, err) = hamctl(&[
        "--server",
        url,
        "policy",
        "list",
        "--service",
        "shop",
        "--output",
        "json",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let value: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(value["branchRestrictions"][0]["serverWide"], true);
    assert_eq!(value["autoReleases"][0]["id"], "auto-release-master-dev");
    // A service with no policies of its own still has the server's.
    let (code, out, err) = hamctl(&["--server", url, "policy", "--service", "quiet", "list"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("branch-restriction-prod") && !out.contains("auto-release-master-dev"),
        "{out}"
    );
    // No --service: a usage error, before any call.
    let (code, _, err) = hamctl(&["--server", url, "policy", "list"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("--service <SERVICE>"), "{err}");
    server.stop().await;
}

#[tokio::test]
async fn a_service_without_policies_says_so() {
    let (repo, _) = fixture();
    let server = TestServer::start(&repo.remote).await;
    let (code, out, err) = hamctl(&[
        "--server",
        &server.url,
        "policy",
        "--service",
        "quiet",
        "list",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "No policies for quiet\n");
    server.stop().await;
}

#[tokio::test]
async fn applying_a_policy_again_changes_nothing() {
    let (repo, _) = fixture();
    let server = TestServer::start(&repo.remote).await;
    let url = server.url.as_str();
    let apply = [
        "--server",
        url,
        "policy",
        "--service",
        "shop",
        "apply",
        "auto-release",
        "--branch",
        "master",
        "--env",
        "dev",
    ];
    let (code, out, err) = hamctl(&apply).await;
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(
        out,
        "Applied auto-release-master-dev: every new build of master of shop is released to dev\n"
    );
    let info = commit_info(&repo, "master");
    assert_eq!(info.committer, format!("{OPERATOR} <{OPERATOR_EMAIL}>"));
    let head = repo.remote_head();
    let (code, out, _) = hamctl(&apply).await;
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "auto-release-master-dev is already in place (no change)\n"
    );
    assert_eq!(repo.remote_head(), head, "no commit");

    let restrict = [
        "policy",
        "--service",
        "shop",
        "apply",
        "branch-restriction",
        "--env",
        "prod",
        "--branch-regex",
        "^master$",
    ];
    let (code, out, err) = hamctl(&[&["--server", url][..], &restrict[..]].concat()).await;
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(
        out,
        "Applied branch-restriction-prod: only branches matching ^master$ may be released to prod\n"
    );
    let (code, out, _) =
        hamctl(&[&["--server", url, "--output", "json"][..], &restrict[..]].concat()).await;
    assert_eq!(code, 0);
    let value: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(value["outcome"], "OUTCOME_ALREADY_UP_TO_DATE");
    assert_eq!(value["id"], "branch-restriction-prod");
    server.stop().await;
}

#[tokio::test]
async fn deleting_policies_says_how_many_went() {
    let (repo, _) = fixture();
    let server = TestServer::start(&repo.remote).await;
    let url = server.url.as_str();
    for (branch, env) in [("master", "dev"), ("x", "staging"), ("master", "prod")] {
        let (code, _, err) = hamctl(&[
            "--server",
            url,
            "policy",
            "--service",
            "shop",
            "apply",
            "auto-release",
            "--branch",
            branch,
            "--env",
            env,
        ])
        .await;
        assert_eq!(code, 0, "{err}");
    }
    let delete = |ids: &[&str]| {
        let mut args = vec!["--server", url, "policy", "--service", "shop", "delete"];
        args.extend_from_slice(ids);
        args.iter().map(|a| a.to_string()).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        hamctl(&args).await
    };
    let (code, out, err) = run(delete(&[
        "auto-release-master-dev",
        "auto-release-x-staging",
    ]))
    .await;
    assert_eq!(
        (code, out.as_str()),
        (0, "Deleted 2 policies of shop\n"),
        "{err}"
    );
    let info = commit_info(&repo, "master");
    assert_eq!(
        info.subject,
        "[shop] policy update: delete policies auto-release-master-dev, auto-release-x-staging"
    );
    assert_eq!(info.committer, format!("{OPERATOR} <{OPERATOR_EMAIL}>"));
    let (_, out, _) = run(delete(&["auto-release-master-prod"])).await;
    assert_eq!(out, "Deleted 1 policy of shop\n");
    let (_, out, _) = run(delete(&["branch-restriction-prod"])).await;
    assert_eq!(out, "No policies deleted\n");
    server.stop().await;
}

#[tokio::test]
async fn a_release_without_an_answer_prints_how_to_retry_it_and_the_retry_lands_once() {
    let (repo, ids) = fixture();
    let server = TestServer::start(&repo.remote).await;
    // No answer: a port that accepts and never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            open.push(socket);
        }
    });
    let args = [
        "release",
        "--service",
        "shop",
        "--env",
        "dev",
        "--artifact",
        &ids[0],
    ];
    let mut first = vec!["--server", &silent_url, "--request-timeout", "1s"];
    first.extend(args);
    let (code, _, err) = hamctl(&first).await;
    held.abort();
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    let id = err
        .split("(request id ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no request id in {err:?}"))
        .to_string();
    let retry = err
        .split("run: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no command in {err:?}"))
        .trim();
    let mut expected = vec!["hamctl"];
    expected.extend(first.iter().copied());
    expected.extend(["--request-id", &id]);
    assert_eq!(retry, expected.join(" "), "the same command, with the id");

    // That command, against the server that is there now, lands once however
    // often it is run.
    let mut again = vec!["--server", server.url.as_str(), "--output", "json"];
    again.extend(args);
    again.extend(["--request-id", &id]);
    let (code, landed, err) = hamctl(&again).await;
    assert_eq!(code, 0, "{err}");
    let (code, replayed, err) = hamctl(&again).await;
    assert_eq!(code, 0, "{err}");
    let landed: serde_json::Value = serde_json::from_str(&landed).unwrap();
    let replayed: serde_json::Value = serde_json::from_str(&replayed).unwrap();
    assert_eq!(
        landed["result"]["commitSha"], replayed["result"]["commitSha"],
        "{replayed}"
    );
    assert_eq!(replayed["result"]["replayed"], true, "{replayed}");
    let carrying = repo.remote_git(&[
        "log",
        "--format=%H",
        &format!("--grep=^Request-ID: {id}$"),
        "master",
    ]);
    assert_eq!(carrying.lines().count(), 1, "{carrying}");
    server.stop().await;
}
