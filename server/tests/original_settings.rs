//! The original release manager's Deployment, run against the real server
//! binary: its `CONFIG_REPO` names the repository served (never the
//! demo), comma-separated tokens each work, its probes' `GET /ping`
//! answers on the gRPC port (where its HTTP API was) and on the HTTP
//! listener, and its flags and variables that mean nothing here stop the
//! start, each named with what replaces it.

mod support;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use release_manager::pb;
use release_manager::pb::release_service_client::ReleaseServiceClient;
use support::*;

/// `GET path` over HTTP/1.1 on `addr`: status line and body.
fn http_get(addr: &str, path: &str) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.lines().next().unwrap_or_default().to_string();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The HTTP listener's address, from the server's log.
fn http_addr(server: &Server) -> String {
    let log = server.log.lock().unwrap();
    let line = log
        .iter()
        .find(|l| l.contains("HTTP listener open"))
        .expect("the HTTP listener is logged");
    line.split("http_addr=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("with its address")
        .to_string()
}

async fn status(url: &str, token: &str) -> Result<pb::StatusResponse, tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = ReleaseServiceClient::new(channel);
    let mut request = tonic::Request::new(pb::StatusRequest {
        service: "shop".into(),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    client.status(request).await.map(|r| r.into_inner())
}

#[tokio::test]
async fn the_originals_deployment_environment_serves_its_repository() {
    let dir = tempfile::tempdir().unwrap();
    let remote = config_repo(dir.path());
    // As the original's Deployment sets them: the repository and the
    // comma-separated tokens in the environment, no --config-repo.
    let server = launch_with(
        &[],
        &dir.path().join("data"),
        &[
            ("CONFIG_REPO", remote.to_str().unwrap()),
            ("HAMCTL_AUTH_TOKEN", "old-token,new-token"),
            ("ARTIFACT_AUTH_TOKEN", "ci-token"),
        ],
        None,
        "serving gRPC",
    );
    // `shop` lives in that repository, not in the demo's.
    for token in ["old-token", "new-token"] {
        let found = status(&server.url, token).await.expect(token);
        assert_eq!(found.service, "shop");
    }
    let refused = status(&server.url, "ci-token").await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    assert!(!server.logged("demo"), "{:?}", server.log.lock().unwrap());

    let grpc_addr = server.url.trim_start_matches("http://").to_string();
    for addr in [grpc_addr, http_addr(&server)] {
        let (line, body) = http_get(&addr, "/ping");
        assert!(line.contains(" 200"), "{addr}: {line}");
        assert_eq!(body, "pong", "{addr}");
    }
}

/// Runs the binary with `args` after `start` and exactly `env`; it must
/// stop before serving. Returns its exit code and stderr.
fn refused_start(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let data = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_release-manager"));
    command
        .args([
            "start",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .args(args)
        .arg("--data-dir")
        .arg(data.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut process = ChildGuard::spawn(&mut command, "the server binary");
    let mut stderr = process.child_mut().stderr.take().unwrap();
    let status = process.wait_timeout(Duration::from_secs(60));
    let mut text = String::new();
    stderr.read_to_string(&mut text).unwrap();
    (status.code(), text)
}

#[test]
fn the_originals_flags_and_variables_are_refused_naming_the_replacement() {
    let dir = tempfile::tempdir().unwrap();
    let remote = config_repo(dir.path());
    let remote = remote.to_str().unwrap();
    // The args of the original's own Deployment (e2e-test/release-manager.yaml).
    let (code, err) = refused_start(
        &[
            "--timeout",
            "300s",
            "--amqp-user",
            "lunar",
            "--amqp-password",
            "lunar",
            "--amqp-host",
            "rabbitmq",
            "--broker-type",
            "amqp",
        ],
        &[
            ("CONFIG_REPO", remote),
            ("HAMCTL_AUTH_TOKEN", "hamctl-auth-token"),
            ("DAEMON_AUTH_TOKEN", "daemon-auth-token"),
        ],
    );
    assert_eq!(code, Some(2), "{err}");
    for named in [
        "--timeout",
        "--batch-timeout",
        "--amqp-user",
        "--broker-type",
        "DAEMON_AUTH_TOKEN",
        "DEPLOYMENT_WEBHOOK_SECRET",
        "docs/migration.md",
    ] {
        assert!(err.contains(named), "{named} missing in: {err}");
    }
    // A repository named but empty is an error, never the demo.
    let (code, err) = refused_start(&["--unauthenticated"], &[("CONFIG_REPO", "")]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("CONFIG_REPO") && err.contains("empty"),
        "{err}"
    );
    assert!(!err.contains("demo config repository on"), "{err}");
}
