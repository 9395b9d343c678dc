//! The demo and the container image, as the real binary runs them:
//! `release-manager start` with no flags but a data dir and a free port
//! serves the embedded demo and hamctl works against it; the auth rule
//! (explicitly unauthenticated, or every role needs its own token) holds
//! for every way the demo can be started; the image's ENTRYPOINT, CMD and
//! ENV, read from the Dockerfile, ask for every address and tokens, and
//! refuse to start without the tokens.
//!
//! Every server these tests start listens on loopback only. A start that
//! asks for every address (`0.0.0.0:P`) is either refused by the auth rule
//! before it listens, or, when the rule lets it through, finds its port
//! taken by a loopback listener the test holds and stops there: the rule's
//! decision is checked without ever listening on every address. The image's
//! defaults are then served with their host replaced by 127.0.0.1.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use release_manager::pb;
use release_manager::pb::release_service_client::ReleaseServiceClient;
use support::cli::Cli;
use support::ChildGuard;
use tonic::Code;

/// A demo server process and the first line of its banner.
struct Demo {
    process: ChildGuard,
    url: String,
    banner: String,
    stderr: Option<std::thread::JoinHandle<String>>,
    _data: tempfile::TempDir,
}

impl Demo {
    /// Stops the server (SIGTERM, a graceful stop) and returns its log.
    fn stop(mut self) -> String {
        self.process.signal(libc::SIGTERM);
        self.process.wait_timeout(Duration::from_secs(60));
        self.stderr.take().unwrap().join().unwrap()
    }
}

/// How a start ended when it did not serve: exit code and stderr.
#[derive(Debug)]
struct Refused {
    code: Option<i32>,
    stderr: String,
}

/// Runs the server binary with `args` and exactly the environment `envs`
/// (with `PATH`, and a fresh data dir) and waits, bounded, for the demo
/// banner or for the process to exit.
fn start(args: &[&str], envs: &[(&str, &str)]) -> Result<Demo, Refused> {
    let data = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_release-manager"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RELEASE_MANAGER_DATA_DIR", data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in envs {
        command.env(key, value);
    }
    let mut process = ChildGuard::spawn(&mut command, "the server binary");
    let stdout = process.child_mut().stdout.take().unwrap();
    let mut stderr = process.child_mut().stderr.take().unwrap();
    // stderr is drained in the background so the server never blocks on it.
    let stderr_text = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
        let banner = lines
            .by_ref()
            .find(|line| line.starts_with("Release manager demo"));
        let _ = tx.send(banner);
        // Keep reading to the end: the server's stdout stays open.
        lines.for_each(drop);
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(Some(banner)) => {
            let url = banner
                .split_whitespace()
                .find(|w| w.starts_with("http://"))
                .expect("the banner names the URL")
                .trim_end_matches(['.', ','])
                .to_string();
            Ok(Demo {
                process,
                url,
                banner,
                stderr: Some(stderr_text),
                _data: data,
            })
        }
        // stdout closed without a banner: the process ended.
        Ok(None) => {
            let status = process.wait_timeout(Duration::from_secs(60));
            Err(Refused {
                code: status.code(),
                stderr: stderr_text.join().unwrap(),
            })
        }
        Err(_) => panic!("no banner and no exit within 60 s"),
    }
}

/// A loopback listener on a free port, held while a server is told to
/// listen on every address on that port: the server gets past the auth
/// rule and then cannot listen, and says so.
fn held_port() -> (std::net::TcpListener, u16) {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    (held, port)
}

/// Asserts that a start on every address got past the auth rule: it ended
/// only because port `port` was taken.
fn assert_passed_the_auth_rule(refused: &Refused, port: u16) {
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert!(
        refused
            .stderr
            .contains(&format!("cannot listen on 0.0.0.0:{port}")),
        "the auth rule let it through: {}",
        refused.stderr
    );
}

const LOOPBACK: &[&str] = &[
    "start",
    "--listen",
    "127.0.0.1:0",
    "--http-listen",
    "127.0.0.1:0",
];

/// The real hamctl binary, committing as the demo's user.
async fn hamctl(args: &[&str]) -> (i32, String, String) {
    let run = Cli::hamctl()
        .committer("Demo User", "demo@example.com")
        .run(args)
        .await;
    (run.code, run.out, run.err)
}

/// Calls PushArtifact with an empty upload and `token`, returning the
/// refusal's code and message (the auth check comes before the upload).
async fn push_refusal(url: &str, token: Option<&str>) -> (Code, String) {
    let mut client = ReleaseServiceClient::connect(url.to_string())
        .await
        .unwrap();
    let mut request =
        tonic::Request::new(tokio_stream::iter(Vec::<pb::PushArtifactRequest>::new()));
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    let status = client.push_artifact(request).await.unwrap_err();
    (status.code(), status.message().to_string())
}

/// Calls Status for the demo's first service with `token`.
async fn status_code(url: &str, token: Option<&str>) -> Code {
    let mut client = ReleaseServiceClient::connect(url.to_string())
        .await
        .unwrap();
    let mut request = tonic::Request::new(pb::StatusRequest {
        service: "product-api".into(),
        ..Default::default()
    });
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    match client.status(request).await {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

#[tokio::test]
async fn the_demo_server_works_with_hamctl_out_of_the_box() {
    let demo = start(LOOPBACK, &[]).expect("the demo starts");
    assert!(demo.url.starts_with("http://127.0.0.1:"), "{}", demo.url);
    assert!(
        demo.banner.contains("loopback only, no authentication"),
        "{}",
        demo.banner
    );
    let url = demo.url.as_str();

    let (code, out, err) = hamctl(&["--server", url, "status", "--service", "product-api"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("dev") && l.contains("master-")),
        "{out}"
    );
    for (service, branch, shows) in [
        ("checkout-web", "master", "Released"),
        ("product-api", "feature/fast-search", "feature-fast-search"),
    ] {
        let (code, out, err) = hamctl(&[
            "--server",
            url,
            "release",
            "--service",
            service,
            "--env",
            "dev",
            "--branch",
            branch,
        ])
        .await;
        assert_eq!(code, 0, "{err}");
        assert!(out.contains(shows), "{out}");
    }
    // Uploads are as open as everything else on the loopback demo: an empty
    // upload gets past the auth check to the upload's own validation.
    let (code, message) = push_refusal(url, None).await;
    assert_eq!(code, Code::InvalidArgument, "{message}");

    // The log, read from a pipe: no colour codes, no Rust debug shapes, no
    // empty fields.
    // (Stopped off the runtime: the test's client connections must go on
    // being driven, so that they close when the server says goodbye.)
    let log = tokio::task::spawn_blocking(move || demo.stop())
        .await
        .unwrap();
    assert!(log.contains("write done"), "{log}");
    assert!(
        log.contains("intent=release branch master of checkout-web to dev"),
        "{log}"
    );
    assert!(
        !log.contains('\x1b'),
        "colour in a log that is not a terminal: {log}"
    );
    assert!(!log.contains("Branch(\""), "{log}");
    assert!(!log.contains("request_id=\"\""), "{log}");
}

#[tokio::test]
async fn one_token_never_leaves_the_other_role_open() {
    // The case that used to leave uploads open: the demo with only the
    // hamctl token, on loopback and (as far as the auth rule goes) on every
    // address.
    let (_held, port) = held_port();
    let everywhere = format!("0.0.0.0:{port}");
    let refused = start(
        &[
            "start",
            "--listen",
            &everywhere,
            "--http-listen",
            "127.0.0.1:0",
            "--hamctl-auth-token",
            "h-token",
        ],
        &[],
    )
    .err()
    .expect("the port is taken");
    assert_passed_the_auth_rule(&refused, port);
    {
        let listen = "127.0.0.1:0";
        let args = [
            "start",
            "--listen",
            listen,
            "--http-listen",
            "127.0.0.1:0",
            "--hamctl-auth-token",
            "h-token",
        ];
        let demo = start(&args, &[]).expect("starts with a token");
        let url = demo.url.clone();
        assert!(
            demo.banner.contains("hamctl needs its token"),
            "{}",
            demo.banner
        );
        assert_eq!(status_code(&url, None).await, Code::Unauthenticated);
        assert_eq!(status_code(&url, Some("h-token")).await, Code::Ok);
        for token in [None, Some("h-token"), Some("anything")] {
            let (code, message) = push_refusal(&url, token).await;
            assert_eq!(
                code,
                Code::PermissionDenied,
                "{listen} {token:?}: {message}"
            );
            assert!(message.contains("--artifact-auth-token"), "{message}");
        }
    }
    // And the other way round.
    let args = [LOOPBACK, &["--artifact-auth-token", "a-token"]].concat();
    let demo = start(&args, &[]).expect("starts with a token");
    assert_eq!(status_code(&demo.url, None).await, Code::PermissionDenied);
    assert_eq!(
        status_code(&demo.url, Some("a-token")).await,
        Code::PermissionDenied
    );
    let (code, message) = push_refusal(&demo.url, None).await;
    assert_eq!(code, Code::Unauthenticated, "{message}");
    let (code, message) = push_refusal(&demo.url, Some("a-token")).await;
    assert_eq!(code, Code::InvalidArgument, "{message}");
}

#[tokio::test]
async fn without_tokens_only_loopback_or_unauthenticated_serve() {
    // (Were the rule to let it through, the held port would stop it.)
    let (_held, port) = held_port();
    let listen = format!("0.0.0.0:{port}");
    let everywhere = ["start", "--listen", &listen, "--http-listen", "127.0.0.1:0"];
    let refused = start(&everywhere, &[])
        .err()
        .expect("no token on every address: refused");
    assert_eq!(refused.code, Some(1), "{refused:?}");
    for flag in [
        "--hamctl-auth-token",
        "--artifact-auth-token",
        "--unauthenticated",
    ] {
        assert!(refused.stderr.contains(flag), "{flag}: {}", refused.stderr);
    }
    // --unauthenticated lets it through (the port, held here, stops it).
    let args = [&everywhere[..], &["--unauthenticated"]].concat();
    let refused = start(&args, &[]).err().expect("the port is taken");
    assert_passed_the_auth_rule(&refused, port);
    let args = [LOOPBACK, &["--unauthenticated"]].concat();
    let demo = start(&args, &[]).expect("--unauthenticated serves");
    assert!(demo.banner.contains("no authentication"), "{}", demo.banner);
    assert_eq!(status_code(&demo.url, None).await, Code::Ok);
}

/// The last stage's `ENV` variables, `ENTRYPOINT` and `CMD` of the
/// Dockerfile (exec form, one instruction per logical line).
fn image_defaults() -> (Vec<(String, String)>, Vec<String>) {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Dockerfile"))
        .expect("the Dockerfile");
    let joined = text.replace("\\\n", " ");
    let last_stage = joined.rsplit("\nFROM ").next().unwrap();
    let mut envs = Vec::new();
    let mut entrypoint = Vec::new();
    let mut cmd = Vec::new();
    for line in last_stage.lines() {
        let exec_form = |rest: &str| -> Vec<String> {
            serde_json::from_str(rest.trim()).expect("exec form: a JSON array")
        };
        if let Some(rest) = line.strip_prefix("ENV ") {
            for pair in rest.split_whitespace() {
                let (key, value) = pair.split_once('=').expect("ENV key=value");
                envs.push((key.to_string(), value.to_string()));
            }
        } else if let Some(rest) = line.strip_prefix("ENTRYPOINT ") {
            entrypoint = exec_form(rest);
        } else if let Some(rest) = line.strip_prefix("CMD ") {
            cmd = exec_form(rest);
        }
    }
    assert_eq!(entrypoint, ["release-manager"], "the image runs the server");
    (envs, cmd)
}

#[tokio::test]
async fn the_container_image_defaults_serve_on_every_address_with_tokens() {
    let (envs, cmd) = image_defaults();
    // The image's own values, but for the ports (the gRPC one held here, so
    // a start that passes the auth rule stops before it listens) and the
    // data dir (a temp dir): the host part must stay the image's.
    let (_held, port) = held_port();
    let envs: Vec<(String, String)> = envs
        .into_iter()
        .filter(|(key, _)| key != "RELEASE_MANAGER_DATA_DIR")
        .map(|(key, value)| {
            if key.ends_with("_LISTEN") {
                let host = value.rsplit_once(':').expect("host:port").0.to_string();
                assert_eq!(
                    host, "0.0.0.0",
                    "{key}: a container listens on every address"
                );
                let port = if key == "RELEASE_MANAGER_LISTEN" {
                    port
                } else {
                    0
                };
                (key, format!("{host}:{port}"))
            } else {
                (key, value)
            }
        })
        .collect();
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    let mut image_env: Vec<(&str, &str)> =
        envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert!(
        image_env
            .iter()
            .any(|(key, _)| *key == "RELEASE_MANAGER_LISTEN"),
        "the image names its gRPC address: {image_env:?}"
    );

    // `docker run release-manager` with no token: refused, saying what to pass.
    let refused = start(&cmd, &image_env).err().expect("no tokens: refused");
    assert!(
        refused.stderr.contains("HAMCTL_AUTH_TOKEN"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains("ARTIFACT_AUTH_TOKEN"),
        "{}",
        refused.stderr
    );

    // `docker run -e HAMCTL_AUTH_TOKEN=... -e ARTIFACT_AUTH_TOKEN=...`: the
    // auth rule lets it serve on every address, each role with its own
    // token (served here on loopback).
    image_env.extend([("HAMCTL_AUTH_TOKEN", "h"), ("ARTIFACT_AUTH_TOKEN", "a")]);
    let refused = start(&cmd, &image_env).err().expect("the port is taken");
    assert_passed_the_auth_rule(&refused, port);
    let on_loopback: Vec<(&str, String)> = image_env
        .iter()
        .map(|(key, value)| {
            let value = if key.ends_with("_LISTEN") {
                "127.0.0.1:0".to_string()
            } else {
                value.to_string()
            };
            (*key, value)
        })
        .collect();
    let on_loopback: Vec<(&str, &str)> =
        on_loopback.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let demo = start(&cmd, &on_loopback).expect("serves with tokens");
    assert!(
        demo.banner.contains("hamctl needs its token"),
        "{}",
        demo.banner
    );
    let url = demo.url.clone();
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "reachable from here: {url}"
    );
    assert_eq!(status_code(&url, Some("h")).await, Code::Ok);
    assert_eq!(status_code(&url, None).await, Code::Unauthenticated);
    let (code, message) = push_refusal(&url, Some("a")).await;
    assert_eq!(code, Code::InvalidArgument, "{message}");
    let (code, _) = push_refusal(&url, Some("h")).await;
    assert_eq!(code, Code::Unauthenticated);
}
