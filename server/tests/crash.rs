//! A crash at every step of a push: the real server binary (built for tests
//! with its crash points) aborts at the named step, and a plain restart on
//! the same data dir recovers with no manual step: it starts, no write that
//! was acknowledged before is lost, the write that crashed can be made
//! again, history stays linear and `git fsck` clean, and neither the mirror
//! nor the remote keeps a lock, a temporary file or a pack without index.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use release_manager::pb;
use release_manager::pb::release_service_client::ReleaseServiceClient;

/// Every crash point of a push to a local remote, in order.
const STEPS: &[&str] = &[
    "mirror-pack-renamed",
    "mirror-index-renamed",
    "remote-pack-renamed",
    "remote-index-renamed",
    "remote-branch-moved",
    "tracking-ref-moved",
];

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "CI Bot")
        .env("GIT_AUTHOR_EMAIL", "ci@example.com")
        .env("GIT_COMMITTER_NAME", "CI Bot")
        .env("GIT_COMMITTER_EMAIL", "ci@example.com")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A bare remote with builds 1 and 2 of service `shop`, committed the way
/// CI does.
fn config_repo(dir: &Path) -> PathBuf {
    let remote = dir.join("config.git");
    let work = dir.join("work");
    git(dir, &["init", "-q", "--bare", "-b", "master", "config.git"]);
    git(dir, &["init", "-q", "-b", "master", "work"]);
    for n in 1..=2 {
        let id = format!("master-shop-{n}");
        let base = work.join("builds/shop/master");
        std::fs::create_dir_all(base.join("dev")).unwrap();
        std::fs::write(
            base.join("dev/deployment.yaml"),
            format!("kind: Deployment\nimage: shop:{n}\n"),
        )
        .unwrap();
        std::fs::write(
            base.join("artifact.json"),
            serde_json::json!({
                "id": id, "service": "shop",
                "application": {"sha": "abc", "branch": "master",
                                "authorName": "Dana Dev", "authorEmail": "dana@example.com"},
                "ci": {"jobUrl": "", "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:01:00Z"},
                "stages": []
            })
            .to_string(),
        )
        .unwrap();
        git(&work, &["add", "-A"]);
        git(
            &work,
            &["commit", "-q", "-m", &format!("[shop] build tag {id}")],
        );
    }
    git(&work, &["push", "-q", remote.to_str().unwrap(), "master"]);
    remote
}

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the server binary on `remote` and `data`, crashing at `crash_at`
/// if given; waits (bounded) for it to serve.
fn start(remote: &Path, data: &Path, crash_at: Option<&str>) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_release-manager"));
    command
        .args(["start", "--unauthenticated", "--listen", "127.0.0.1:0"])
        .args(["--http-listen", "127.0.0.1:0", "--poll-interval", "0"])
        .arg("--config-repo")
        .arg(remote)
        .arg("--data-dir")
        .arg(data)
        .env_remove("RELEASE_MANAGER_CRASH_AT")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(step) = crash_at {
        command.env("RELEASE_MANAGER_CRASH_AT", step);
    }
    let mut child = command.spawn().expect("the server binary starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent && line.contains("serving gRPC") {
                if let Some(addr) = line.split("addr=").nth(1) {
                    let _ = tx.send(addr.trim().to_string());
                    sent = true;
                }
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the server serves within 60 s");
    Server {
        child,
        url: format!("http://{addr}"),
    }
}

async fn release(url: &str, id: &str) -> Result<pb::ReleaseResponse, tonic::Status> {
    let mut client = ReleaseServiceClient::connect(url.to_string())
        .await
        .unwrap();
    client
        .release(pb::ReleaseRequest {
            service: "shop".into(),
            environment: "dev".into(),
            artifact_id: id.into(),
            committer: Some(pb::Person {
                name: "Olga Operator".into(),
                email: "olga@example.com".into(),
            }),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

/// Files a crashed write may leave that must not survive a restart.
fn debris(git_dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut visit = vec![git_dir.to_path_buf()];
    while let Some(dir) = visit.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                visit.push(path);
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let orphan_pack = name.ends_with(".pack") && !path.with_extension("idx").exists();
            if name.ends_with(".lock") || name.starts_with("tmp_") || orphan_pack {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

#[tokio::test]
async fn a_crash_at_any_step_of_a_push_recovers_by_itself() {
    for step in STEPS {
        let dir = tempfile::tempdir().unwrap();
        let remote = config_repo(dir.path());
        let data = dir.path().join("data");

        // An acknowledged release, then a crash in the middle of the next
        // push (the step's second hit).
        let server = start(&remote, &data, Some(&format!("{step}#2")));
        let acknowledged = release(&server.url, "master-shop-1")
            .await
            .unwrap_or_else(|e| panic!("{step}: the first push crashed early: {e:?}"));
        let acknowledged = acknowledged.result.unwrap().commit_sha;
        let crashed = release(&server.url, "master-shop-2").await;
        assert!(crashed.is_err(), "{step}: the push did not crash");
        let mut child = server;
        let status = child.child.wait().unwrap();
        assert!(!status.success(), "{step}: {status:?}");

        // A plain restart: no manual step.
        let server = start(&remote, &data, None);
        let log = git(&remote, &["log", "--format=%H %s", "master"]);
        assert!(
            log.contains(&acknowledged),
            "{step}: the acknowledged release is gone: {log}"
        );
        let again = release(&server.url, "master-shop-2")
            .await
            .unwrap_or_else(|e| panic!("{step}: the write cannot be made again: {e:?}"));
        let result = again.result.unwrap();
        assert_eq!(result.artifact_id, "master-shop-2");
        let head = git(&remote, &["rev-parse", "master"]);
        assert_eq!(result.commit_sha, head.trim(), "{step}");
        let merges = git(&remote, &["rev-list", "--merges", "master"]);
        assert!(merges.is_empty(), "{step}: history is not linear");
        git(&remote, &["fsck", "--no-progress", "--strict"]);
        let mirror = data.join("mirror.git");
        git(&mirror, &["fsck", "--no-progress"]);
        for repo in [&remote, &mirror] {
            let left = debris(repo);
            assert!(left.is_empty(), "{step}: left behind: {left:?}");
        }
        drop(server);
    }
}
