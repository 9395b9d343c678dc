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
use release_manager_server::repo::remote::RemoteLocation;
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

fn release(service: &str, env: &str, id: &str) -> tonic::Request<pb::ReleaseRequest> {
    tonic::Request::new(release_artifact(service, env, id))
}

#[tokio::test]
async fn a_hung_remote_fails_writes_in_time_and_nothing_late_is_applied() {
    let mut repo = ConfigRepo::new();
    let ids: Vec<String> = (1..=3)
        .map(|n| repo.add_build("shop", "master", n))
        .collect();
    repo.push();
    let daemon = GitDaemon::serve(&repo.remote);
    let url = daemon.url.clone();
    let server = TestServer::start_with(&repo.remote, |config| {
        config.config_repo = RemoteLocation::Network(url.clone());
        config.remote_timeout = Duration::from_secs(2);
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
