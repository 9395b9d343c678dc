//! Faults the server must survive without a human: a remote that hangs, a
//! remote rewritten under it, a second server on the same data dir, locks
//! left by a crash, uploads that stall or crowd one connection, debris.
//!
//! Its own test binary: the remote timeout is a process-wide libgit2
//! setting, and these tests set it short.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use release_manager::pb;
use release_manager_server::RemoteLocation;
use release_manager_server::ServerConfig;
use tonic::Code;

/// `git daemon` serving the folder of a bare remote on a loopback port, as a
/// network remote (`git://`) the server cannot shortcut through the file
/// system. Stopped (and continued) with signals to play a hung server.
struct GitDaemon {
    child: Child,
    url: String,
}

impl GitDaemon {
    fn serve(remote: &Path) -> Self {
        let base = remote.parent().unwrap();
        let name = remote.file_name().unwrap().to_str().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // The daemon itself, not `git daemon` (which runs it as a child that
        // a signal to the parent would not reach).
        let exec_path = Command::new("git").arg("--exec-path").output().unwrap();
        let exec_path = String::from_utf8(exec_path.stdout).unwrap();
        let child = Command::new(Path::new(exec_path.trim()).join("git-daemon"))
            .args([
                "--export-all",
                "--enable=receive-pack",
                "--reuseaddr",
                "--listen=127.0.0.1",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon starts");
        let url = format!("git://127.0.0.1:{port}/{name}");
        // Ready once `git ls-remote` answers (bounded).
        let began = Instant::now();
        loop {
            let probe = Command::new("git")
                .args(["ls-remote", &url])
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .output()
                .expect("git runs");
            if probe.status.success() {
                break;
            }
            assert!(
                began.elapsed() < Duration::from_secs(20),
                "git daemon never answered"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        GitDaemon { child, url }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        self.signal("-CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The remote timeout of every server here. It is a process-wide libgit2
/// setting, so every test of this binary must use the same one.
const REMOTE_TIMEOUT: Duration = Duration::from_secs(2);

/// A server with this binary's remote timeout.
async fn start(remote: &Path, tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
    TestServer::start_with(remote, |config| {
        config.remote_timeout = REMOTE_TIMEOUT;
        tweak(config);
    })
    .await
}

/// Restarts a server with this binary's remote timeout on `data`.
async fn restart(remote: &Path, data: tempfile::TempDir) -> TestServer {
    TestServer::start_in(remote, data, |config| {
        config.remote_timeout = REMOTE_TIMEOUT
    })
    .await
}

/// A config repository with builds 1..=n of `shop` on master, pushed.
fn repo_with_builds(n: usize) -> (ConfigRepo, Vec<String>) {
    let mut repo = ConfigRepo::new();
    let ids = (1..=n)
        .map(|n| repo.add_build("shop", "master", n))
        .collect();
    repo.push();
    (repo, ids)
}

fn release(service: &str, env: &str, id: &str) -> tonic::Request<pb::ReleaseRequest> {
    tonic::Request::new(release_artifact(service, env, id))
}

#[tokio::test]
async fn a_hung_remote_fails_writes_in_time_and_nothing_late_is_applied() {
    let (repo, ids) = repo_with_builds(3);
    let daemon = GitDaemon::serve(&repo.remote);
    let url = daemon.url.clone();
    let server = start(&repo.remote, |config| {
        config.config_repo = RemoteLocation::Network(url.clone());
        config.writer.batch_timeout = Duration::from_secs(4);
    })
    .await;
    let mut client = server.client().await;
    client
        .release(release("shop", "dev", &ids[0]))
        .await
        .unwrap();

    daemon.signal("-STOP");
    let head_before = repo.remote_head();

    // A release against the hung remote answers within the bound, saying
    // which remote and which step.
    let began = Instant::now();
    let refused = tokio::time::timeout(
        Duration::from_secs(30),
        client.release(release("shop", "dev", &ids[1])),
    )
    .await
    .expect("answered, not hung")
    .unwrap_err();
    assert!(
        began.elapsed() < Duration::from_secs(15),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(
        refused.message().contains(&url) && refused.message().contains("did not answer in time"),
        "{}",
        refused.message()
    );

    // While the writer waits on the hung remote with a write, a caller that
    // gives up first (a 1 s deadline) gets DEADLINE_EXCEEDED, and its write
    // is never applied, even after the remote answers again.
    let stats = server.stats();
    let started = stats.batches_started.load(Ordering::SeqCst);
    let mut blocker = server.client().await;
    let blocked = tokio::spawn(async move {
        blocker
            .release(release("shop", "staging", "master-shop-001"))
            .await
    });
    wait_until(
        "the writer works on the blocking write",
        Duration::from_secs(10),
        || stats.batches_started.load(Ordering::SeqCst) > started,
    )
    .await;
    let mut impatient = release("shop", "prod", &ids[2]);
    impatient.set_timeout(Duration::from_secs(1));
    let gave_up = client.release(impatient).await.unwrap_err();
    assert!(
        matches!(gave_up.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{gave_up:?}"
    );
    let blocked = tokio::time::timeout(Duration::from_secs(30), blocked)
        .await
        .expect("the blocked write is answered in time")
        .unwrap();
    assert_eq!(blocked.unwrap_err().code(), Code::Unavailable);

    daemon.signal("-CONT");
    // Writes work again without a restart.
    let done = client
        .release(release("shop", "dev", &ids[1]))
        .await
        .unwrap();
    assert_eq!(
        done.into_inner().result.unwrap().outcome(),
        pb::Outcome::Applied
    );
    let log = repo.remote_git(&["log", "--format=%s", &format!("{head_before}..master")]);
    assert!(log.contains(&ids[1]), "{log}");
    assert!(
        !log.contains(&ids[2]),
        "the write whose caller gave up was applied: {log}"
    );
    assert!(repo
        .remote_file("prod/releases/prod/shop/artifact.json")
        .is_none());
    assert_eq!(
        stats.abandoned.load(Ordering::SeqCst),
        1,
        "skipped, not applied"
    );
    server.stop().await;
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

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_is_refused() {
    let (repo, _) = repo_with_builds(1);
    let first = start(&repo.remote, |_| {}).await;
    let config = release_manager_server::ServerConfig::local(&repo.remote, first.data.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refused = release_manager_server::start(config, listener)
        .await
        .err()
        .expect("the second server does not start");
    let message = refused.to_string();
    assert!(
        message.contains("another release manager is using the data dir")
            && message.contains(&first.data.path().display().to_string())
            && message.contains("--data-dir"),
        "{message}"
    );
    // The first one is unharmed.
    let mut client = first.client().await;
    client
        .status(pb::StatusRequest {
            service: "shop".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    // Once it stops, the data dir is free again.
    let data = first.stop().await;
    let again = restart(&repo.remote, data).await;
    again.stop().await;
}

#[tokio::test]
async fn locks_a_crash_left_in_the_mirror_are_cleared_at_start() {
    let (repo, ids) = repo_with_builds(2);
    let server = start(&repo.remote, |_| {}).await;
    let data = server.stop().await;
    // What a SIGKILL in the middle of a write leaves behind.
    let mirror = data.path().join("mirror.git");
    let debris = [
        mirror.join("refs/remotes/origin/master.lock"),
        mirror.join("packed-refs.lock"),
        mirror.join("objects/pack/tmp_rm_4242_abc"),
        mirror.join("objects/pack/pack-0123456789abcdef0123456789abcdef01234567.pack"),
    ];
    for path in &debris {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"left by a crash").unwrap();
    }
    let server = restart(&repo.remote, data).await;
    for path in &debris {
        assert!(!path.exists(), "{} is still there", path.display());
    }
    let mut client = server.client().await;
    client
        .release(release("shop", "dev", &ids[1]))
        .await
        .unwrap();
    assert_eq!(subjects(&repo)[0], format!("[dev/shop] release {}", ids[1]));
    let fsck = repo.remote_git(&["fsck", "--no-progress"]);
    assert!(!fsck.contains("error"), "{fsck}");
    server.stop().await;
}

#[tokio::test]
async fn a_lock_left_on_the_remote_is_reported_not_retried() {
    let (repo, ids) = repo_with_builds(2);
    let server = start(&repo.remote, |_| {}).await;
    let lock = repo.remote.join("refs/heads/master.lock");
    std::fs::write(&lock, b"left by a crashed git").unwrap();
    let packs = |repo: &ConfigRepo| {
        std::fs::read_dir(repo.remote.join("objects/pack")).map_or(0, |d| d.count())
    };
    let packs_before = packs(&repo);
    let mut client = server.client().await;
    let refused = client
        .release(release("shop", "dev", &ids[0]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(
        refused.message().contains(&lock.display().to_string())
            && refused
                .message()
                .contains("if no git process is running, remove it"),
        "{}",
        refused.message()
    );
    assert_eq!(
        server.stats().conflicts.load(Ordering::SeqCst),
        0,
        "not a conflict"
    );
    assert_eq!(
        packs(&repo),
        packs_before,
        "nothing written to the locked remote"
    );
    std::fs::remove_file(&lock).unwrap();
    client
        .release(release("shop", "dev", &ids[0]))
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn a_force_push_on_the_remote_is_followed() {
    let (repo, ids) = repo_with_builds(3);
    let server = start(&repo.remote, |_| {}).await;
    let mut client = server.client().await;
    let with_id = |id: &str, request_id: &str| {
        let mut request = release_artifact("shop", "dev", id);
        request.request_id = request_id.into();
        tonic::Request::new(request)
    };
    client.release(with_id(&ids[0], "first")).await.unwrap();
    let good = repo.remote_head();
    let dropped = client
        .release(with_id(&ids[1], "dropped"))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap()
        .commit_sha;
    // An administrator removes the last release from the remote's history.
    repo.remote_git(&["update-ref", "refs/heads/master", &good]);
    server.server.as_ref().unwrap().sync().await.unwrap();

    // History no longer lists the dropped release.
    let history = client
        .describe_release(pb::DescribeReleaseRequest {
            service: "shop".into(),
            environment: "dev".into(),
            page_size: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        history.releases.iter().all(|r| r.commit_sha != dropped),
        "{history:?}"
    );
    assert_eq!(history.releases[0].artifact_id, ids[0]);
    // A replay of the dropped request is applied anew, not answered with a
    // commit the remote no longer has.
    let replay = client
        .release(with_id(&ids[1], "dropped"))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    // (The same commit can come out again: same parent, tree and time.)
    assert_eq!(
        repo.remote_head(),
        replay.commit_sha,
        "the replay is on the remote"
    );
    assert_eq!(replay.outcome(), pb::Outcome::Applied);
    // Rollback goes back to what the new history ran before.
    let rolled = client
        .rollback(pb::RollbackRequest {
            service: "shop".into(),
            environment: "dev".into(),
            committer: alice(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rolled.result.unwrap().artifact_id, ids[0]);
    server.stop().await;
}

fn upload(files: &[(&str, &[u8])]) -> Vec<pb::PushArtifactRequest> {
    files
        .iter()
        .map(|(path, data)| pb::PushArtifactRequest {
            path: path.to_string(),
            data: data.to_vec(),
        })
        .collect()
}

fn spec(service: &str, id: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": id,
        "service": service,
        "application": {"sha": "abc", "branch": "master", "authorName": "Dana Dev",
                        "authorEmail": "dana@example.com"},
        "ci": {"jobUrl": "https://ci.example.com/1", "start": "2026-02-01T10:00:00Z",
               "end": "2026-02-01T10:05:00Z"},
        "stages": []
    }))
    .unwrap()
}

#[tokio::test]
async fn an_upload_with_a_file_that_is_also_a_folder_is_refused() {
    let repo = ConfigRepo::new();
    let server = start(&repo.remote, |_| {}).await;
    let head = repo.remote_head();
    let mut client = server.client().await;
    let spec = spec("shop", "master-1");
    let refused = client
        .push_artifact(tokio_stream::iter(upload(&[
            ("artifact.json", &spec),
            ("dev/a", b"one"),
            ("dev/a/b", b"two"),
        ])))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().contains("\"dev/a\"") && refused.message().contains("\"dev/a/b\""),
        "{}",
        refused.message()
    );
    assert_eq!(repo.remote_head(), head);
    server.stop().await;
}

#[tokio::test]
async fn a_branch_regex_with_a_control_character_is_refused() {
    let (repo, _) = repo_with_builds(1);
    let server = start(&repo.remote, |_| {}).await;
    let head = repo.remote_head();
    let mut policies = release_manager::pb::policy_service_client::PolicyServiceClient::connect(
        server.url.clone(),
    )
    .await
    .unwrap();
    let refused = policies
        .apply_branch_restriction(pb::ApplyBranchRestrictionRequest {
            service: "shop".into(),
            environment: "prod".into(),
            branch_regex: "^master$\n[shop] forged title".into(),
            committer: alice(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused.message().contains("control characters"),
        "{}",
        refused.message()
    );
    assert_eq!(repo.remote_head(), head);
    server.stop().await;
}

fn build_upload(service: &str, id: &str) -> Vec<pb::PushArtifactRequest> {
    let manifest = format!("kind: ConfigMap\nmetadata:\n  name: {service}\n").into_bytes();
    upload(&[
        ("artifact.json", &spec(service, id)),
        ("dev/configmap.yaml", &manifest),
    ])
}

#[tokio::test]
async fn uploads_never_wait_on_each_other_and_stalled_ones_are_dropped() {
    let repo = ConfigRepo::new();
    let idle = Duration::from_secs(1);
    let server = start(&repo.remote, |config| config.uploads.idle_timeout = idle).await;
    // Every upload below shares one HTTP/2 connection.
    let client = server.client().await;

    // Eight uploads that send their first chunk and then nothing.
    let mut stalled = Vec::new();
    let mut senders = Vec::new();
    for n in 0..8 {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let first = build_upload(&format!("stalled-{n}"), "master-1").remove(0);
        tx.send(first).await.unwrap();
        senders.push(tx);
        let mut client = client.clone();
        stalled.push(tokio::spawn(async move {
            let began = Instant::now();
            let result = client
                .push_artifact(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await;
            (result, began.elapsed())
        }));
    }
    // Twelve complete uploads meanwhile, all at once: each is stored.
    let mut complete = Vec::new();
    for n in 0..12 {
        let mut client = client.clone();
        complete.push(tokio::spawn(async move {
            client
                .push_artifact(tokio_stream::iter(build_upload(
                    &format!("svc-{n}"),
                    "master-1",
                )))
                .await
        }));
    }
    for upload in complete {
        let stored = tokio::time::timeout(Duration::from_secs(30), upload)
            .await
            .expect("a complete upload is not held up by stalled ones")
            .unwrap()
            .unwrap()
            .into_inner();
        assert_eq!(stored.outcome(), pb::Outcome::Applied);
    }
    for upload in stalled {
        let (result, waited) = tokio::time::timeout(Duration::from_secs(30), upload)
            .await
            .expect("a stalled upload is dropped")
            .unwrap();
        let refused = result.unwrap_err();
        assert_eq!(refused.code(), Code::DeadlineExceeded, "{refused:?}");
        assert!(
            refused.message().contains("--upload-idle-timeout"),
            "{}",
            refused.message()
        );
        assert!(waited < idle * 10, "{waited:?}");
    }
    drop(senders);
    for n in 0..12 {
        assert!(
            repo.remote_file(&format!("builds/svc-{n}/master/dev/configmap.yaml"))
                .is_some(),
            "svc-{n} stored"
        );
    }
    assert!(repo
        .remote_file("builds/stalled-0/master/artifact.json")
        .is_none());
    server.stop().await;
}

#[tokio::test]
async fn a_chunk_larger_than_the_upload_memory_is_refused_at_once() {
    let repo = ConfigRepo::new();
    let server = start(&repo.remote, |config| config.uploads.memory_budget = 64).await;
    let mut client = server.client().await;
    let began = Instant::now();
    let refused = client
        .push_artifact(tokio_stream::iter(build_upload("shop", "master-1")))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(
        refused.message().contains("--upload-memory"),
        "{}",
        refused.message()
    );
    assert!(began.elapsed() < Duration::from_secs(5));
    server.stop().await;
}

#[tokio::test]
async fn builds_in_a_rewritten_history_are_auto_released() {
    let (mut repo, ids) = repo_with_builds(1);
    let server = start(&repo.remote, |_| {}).await;
    let mut policies = release_manager::pb::policy_service_client::PolicyServiceClient::connect(
        server.url.clone(),
    )
    .await
    .unwrap();
    policies
        .apply_auto_release(pb::ApplyAutoReleaseRequest {
            service: "shop".into(),
            branch: "master".into(),
            environment: "staging".into(),
            committer: alice(),
        })
        .await
        .unwrap();
    let good = repo.remote_head();
    let mut client = server.client().await;
    client
        .release(release("shop", "dev", &ids[0]))
        .await
        .unwrap();
    // An administrator rewrites the remote: the release is dropped, and a
    // new build sits where it was.
    git(&repo.work, &["fetch", "-q", "origin"]);
    git(&repo.work, &["reset", "-q", "--hard", &good]);
    let rebuilt = repo.add_build("shop", "master", 2);
    git(&repo.work, &["push", "-q", "-f", "origin", "master"]);
    server.server.as_ref().unwrap().sync().await.unwrap();
    let staged = repo
        .remote_file("staging/releases/staging/shop/artifact.json")
        .expect("the new build was auto-released");
    assert!(staged.contains(&rebuilt), "{staged}");
    server.stop().await;
}
