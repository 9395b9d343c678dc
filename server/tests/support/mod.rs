//! Helpers of the server binary's tests: a small config repository, and the
//! real `release-manager` binary started on it with its log collected.
//! Hermetic git, process guards, bounded polling and the CLI runner are the
//! end-to-end tests' own (tests/e2e/support), included here.
#![allow(dead_code)]

#[path = "../../../tests/e2e/support/cli.rs"]
pub mod cli;
#[path = "../../../tests/e2e/support/git.rs"]
pub mod git;
#[path = "../../../tests/e2e/support/poll.rs"]
pub mod poll;
#[path = "../../../tests/e2e/support/process.rs"]
pub mod process;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use release_manager::pb;
use release_manager::pb::release_service_client::ReleaseServiceClient;

pub use git::git;
pub use process::ChildGuard;

/// A bare remote with builds 1 and 2 of service `shop`, committed the way
/// CI does.
pub fn config_repo(dir: &Path) -> PathBuf {
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

/// The server binary, running until dropped (then killed with its process
/// group).
pub struct Server {
    pub process: ChildGuard,
    pub url: String,
    /// The server's log lines so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Whether a log line so far contains `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(text))
    }

    /// The address of its HTTP port, as its log says (logged before it
    /// serves gRPC).
    pub fn http_addr(&self) -> std::net::SocketAddr {
        let log = self.log.lock().unwrap();
        let line = log
            .iter()
            .find(|l| l.contains("serving HTTP"))
            .unwrap_or_else(|| panic!("no HTTP port in the log: {log:?}"));
        let addr = line
            .split("addr=")
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap();
        addr.parse().unwrap()
    }
}

/// Starts the server binary on `remote` and `data`, crashing at `crash_at`
/// if given; waits (bounded) for it to serve.
pub fn start(remote: &Path, data: &Path, crash_at: Option<&str>) -> Server {
    let env: Vec<(&str, &str)> = crash_at
        .map(|step| ("RELEASE_MANAGER_CRASH_AT", step))
        .into_iter()
        .collect();
    launch(remote, data, &env, "serving gRPC")
}

/// Starts the server binary with exactly the environment `env` (and
/// `PATH`); waits (bounded) for a log line containing `wait_for` and naming
/// its address.
pub fn launch(remote: &Path, data: &Path, env: &[(&str, &str)], wait_for: &str) -> Server {
    let remote = remote.to_str().expect("a UTF-8 path");
    launch_with(
        &["--unauthenticated", "--config-repo", remote],
        data,
        env,
        None,
        wait_for,
    )
}

/// Starts the server binary on loopback with `args` after `start` (and the
/// data dir), exactly the environment `env` (and `PATH`), and at most
/// `open_files` open files (soft and hard limit) when given; waits
/// (bounded) for a log line containing `wait_for` and naming its address.
pub fn launch_with(
    args: &[&str],
    data: &Path,
    env: &[(&str, &str)],
    open_files: Option<u64>,
    wait_for: &str,
) -> Server {
    let mut command = Command::new(env!("CARGO_BIN_EXE_release-manager"));
    if let Some(limit) = open_files {
        use std::os::unix::process::CommandExt;
        // SAFETY: setrlimit is async-signal-safe; nothing else runs between
        // fork and exec.
        unsafe {
            command.pre_exec(move || {
                let limit = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
    command
        .args(["start", "--listen", "127.0.0.1:0"])
        .args(["--http-listen", "127.0.0.1:0", "--poll-interval", "0"])
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut process = ChildGuard::spawn(&mut command, "the server binary");
    let stderr = process.child_mut().stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let log = Arc::new(Mutex::new(Vec::new()));
    let lines = log.clone();
    let wanted = wait_for.to_string();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent && line.contains(&wanted) {
                if let Some(addr) = line.split("addr=").nth(1) {
                    let _ = tx.send(addr.split_whitespace().next().unwrap_or("").to_string());
                    sent = true;
                }
            }
            lines.lock().unwrap().push(line);
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("no {wait_for:?} within 60 s: {:?}", log.lock().unwrap()));
    Server {
        process,
        url: format!("http://{addr}"),
        log,
    }
}

pub async fn release(url: &str, id: &str) -> Result<pb::ReleaseResponse, tonic::Status> {
    let mut client = ReleaseServiceClient::connect(url.to_string())
        .await
        .unwrap();
    client
        .release(pb::ReleaseRequest {
            service: "shop".into(),
            environment: "dev".into(),
            source: Some(pb::release_request::Source::ArtifactId(id.into())),
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
pub fn debris(git_dir: &Path) -> Vec<String> {
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
