//! Shared helpers of the end-to-end tests: hermetic git, config repositories
//! built with the git command line in temp dirs, an in-process server on an
//! ephemeral loopback port, and a gRPC client.
#![allow(dead_code)]

pub mod webdriver;

use std::path::{Path, PathBuf};
use std::process::Command;

use release_manager::pb;
use release_manager::pb::release_service_client::ReleaseServiceClient;
use release_manager_server::RunningServer;
use release_manager_server::ServerConfig;
use tempfile::TempDir;
use tonic::transport::Channel;

pub const ENVS: [&str; 3] = ["dev", "staging", "prod"];

/// Runs git with no global or system config and fixed identities; panics
/// with git's stderr on failure. Returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "CI Bot")
        .env("GIT_AUTHOR_EMAIL", "ci@example.com")
        .env("GIT_COMMITTER_NAME", "CI Bot")
        .env("GIT_COMMITTER_EMAIL", "ci@example.com")
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("git prints UTF-8")
}

/// A bare remote plus a work clone used to write builds the way CI does.
pub struct ConfigRepo {
    pub dir: TempDir,
    pub remote: PathBuf,
    pub work: PathBuf,
    counter: usize,
}

/// The artifact id of build `n` of a service branch, as the fixture names it.
pub fn artifact_id(service: &str, branch: &str, n: usize) -> String {
    format!("{}-{service}-{n:03}", branch.replace('/', "-"))
}

impl ConfigRepo {
    /// An empty config repository with the layout's fixed folders.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let remote = dir.path().join("config.git");
        let work = dir.path().join("work");
        git(
            dir.path(),
            &["init", "-q", "--bare", "-b", "master", "config.git"],
        );
        git(dir.path(), &["init", "-q", "-b", "master", "work"]);
        git(
            &work,
            &["remote", "add", "origin", remote.to_str().unwrap()],
        );
        std::fs::write(work.join("README.md"), "# config\n").unwrap();
        for env in ENVS {
            std::fs::create_dir_all(work.join(env).join("provisioning")).unwrap();
            std::fs::write(
                work.join(env).join("provisioning/cluster.yaml"),
                "kind: Cluster\n",
            )
            .unwrap();
        }
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", "initial layout"]);
        git(&work, &["push", "-q", "origin", "master"]);
        ConfigRepo {
            dir,
            remote,
            work,
            counter: 0,
        }
    }

    /// Writes a build of `service`/`branch` numbered `n` as CI would and
    /// commits it (not pushed). `files` are the manifest names per env.
    pub fn add_build_files(
        &mut self,
        service: &str,
        branch: &str,
        n: usize,
        files: &[&str],
    ) -> String {
        self.counter += 1;
        let id = artifact_id(service, branch, n);
        let base = self.work.join("builds").join(service).join(branch);
        if base.exists() {
            std::fs::remove_dir_all(&base).unwrap();
        }
        for env in ENVS {
            std::fs::create_dir_all(base.join(env)).unwrap();
            for file in files {
                std::fs::write(
                    base.join(env).join(file),
                    format!("# {file} of {service} in {env}\nartifact: {id}\n"),
                )
                .unwrap();
            }
        }
        let author = format!("Dev {}", n % 3);
        let spec = serde_json::json!({
            "id": id,
            "application": {
                "sha": format!("{:040}", self.counter),
                "authorName": author,
                "authorEmail": format!("dev{}@example.com", n % 3),
                "committerName": author,
                "committerEmail": format!("dev{}@example.com", n % 3),
                "message": format!("change {n} of {service}"),
                "name": service,
                "url": format!("https://git.example.com/{service}"),
                "provider": "GitHub"
            },
            "ci": {"jobUrl": format!("https://ci.example.com/{service}/{n}"), "start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:05:00Z"},
            "squad": "squad-a",
            "stages": [
                {"id": "snyk-code", "name": "Code", "data": {"snykVersion": "1", "url": "u", "language": "go", "vulnerabilities": {"high": 1, "medium": 2, "low": 3}}}
            ]
        });
        std::fs::write(
            base.join("artifact.json"),
            serde_json::to_string_pretty(&spec).unwrap() + "\n",
        )
        .unwrap();
        git(&self.work, &["add", "-A"]);
        git(
            &self.work,
            &["commit", "-q", "-m", &format!("[{service}] build tag {id}")],
        );
        id
    }

    /// A build with the usual two manifests.
    pub fn add_build(&mut self, service: &str, branch: &str, n: usize) -> String {
        self.add_build_files(service, branch, n, &["deployment.yaml", "service.yaml"])
    }

    /// Pushes the work clone to the remote (fetching the server's commits
    /// first, as a CI job would).
    pub fn push(&self) {
        git(&self.work, &["pull", "-q", "--rebase", "origin", "master"]);
        git(&self.work, &["push", "-q", "origin", "master"]);
    }

    /// git in the bare remote.
    pub fn remote_git(&self, args: &[&str]) -> String {
        git(&self.remote, args)
    }

    /// Tip of master on the remote.
    pub fn remote_head(&self) -> String {
        self.remote_git(&["rev-parse", "master"]).trim().to_string()
    }

    /// A file at master on the remote.
    pub fn remote_file(&self, path: &str) -> Option<String> {
        let out = Command::new("git")
            .args(["show", &format!("master:{path}")])
            .current_dir(&self.remote)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8(out.stdout).unwrap())
    }

    /// File names at `path` on master.
    pub fn remote_ls(&self, path: &str) -> Vec<String> {
        self.remote_git(&["ls-tree", "--name-only", &format!("master:{path}")])
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// A server on 127.0.0.1:0 over `repo`, with its data dir.
pub struct TestServer {
    pub server: Option<RunningServer>,
    pub data: TempDir,
    pub url: String,
}

impl TestServer {
    pub async fn start(remote: &Path) -> Self {
        Self::start_with(remote, |_| {}).await
    }

    pub async fn start_with(remote: &Path, tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        Self::start_in(remote, data, tweak).await
    }

    pub async fn start_in(
        remote: &Path,
        data: TempDir,
        tweak: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let mut config = ServerConfig::local(remote, data.path());
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = release_manager_server::start(config, listener)
            .await
            .expect("server starts");
        let url = format!("http://{}", server.addr);
        TestServer {
            server: Some(server),
            data,
            url,
        }
    }

    /// The writer's counters.
    pub fn stats(&self) -> std::sync::Arc<release_manager_server::WriterStats> {
        self.server.as_ref().expect("running").stats.clone()
    }

    /// What runs where for `service` (no token).
    pub async fn status(&self, service: &str) -> pb::StatusResponse {
        self.client()
            .await
            .status(pb::StatusRequest {
                service: service.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn client(&self) -> ReleaseServiceClient<Channel> {
        ReleaseServiceClient::connect(self.url.clone())
            .await
            .expect("connects")
    }

    pub async fn stop(mut self) -> TempDir {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        self.data
    }
}

pub fn alice() -> Option<pb::Person> {
    Some(pb::Person {
        name: "Alice Operator".into(),
        email: "alice@example.com".into(),
    })
}

pub fn release_branch(service: &str, env: &str, branch: &str) -> pb::ReleaseRequest {
    pb::ReleaseRequest {
        service: service.into(),
        environment: env.into(),
        source: Some(pb::release_request::Source::Branch(branch.into())),
        committer: alice(),
        ..Default::default()
    }
}

pub fn release_artifact(service: &str, env: &str, id: &str) -> pb::ReleaseRequest {
    pb::ReleaseRequest {
        service: service.into(),
        environment: env.into(),
        source: Some(pb::release_request::Source::ArtifactId(id.into())),
        committer: alice(),
        ..Default::default()
    }
}

/// Parses `git log -1 --format=...` fields of a commit on the remote.
pub struct CommitInfo {
    pub subject: String,
    pub body: String,
    pub author: String,
    pub committer: String,
    pub parents: Vec<String>,
    pub changed: Vec<String>,
}

pub fn commit_info(repo: &ConfigRepo, rev: &str) -> CommitInfo {
    let format = repo.remote_git(&[
        "log",
        "-1",
        "--format=%s%x00%b%x00%an <%ae>%x00%cn <%ce>%x00%P",
        rev,
    ]);
    let parts: Vec<&str> = format.trim_end().split('\0').collect();
    let changed = repo
        .remote_git(&["diff-tree", "--no-commit-id", "--name-only", "-r", rev])
        .lines()
        .map(str::to_string)
        .collect();
    CommitInfo {
        subject: parts[0].to_string(),
        body: parts[1].to_string(),
        author: parts[2].to_string(),
        committer: parts[3].to_string(),
        parents: parts[4].split_whitespace().map(str::to_string).collect(),
        changed,
    }
}

/// Waits (bounded) until `check` holds, polling; panics with `what` on
/// timeout. For effects of background work such as polls.
pub async fn wait_until(what: &str, timeout: std::time::Duration, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Subjects of the commits on the remote's master, newest first.
pub fn subjects(repo: &ConfigRepo) -> Vec<String> {
    repo.remote_git(&["log", "--format=%s", "master"])
        .lines()
        .map(str::to_string)
        .collect()
}

/// Runs hamctl in process with a fixed committer identity.
pub async fn hamctl(args: &[&str]) -> (i32, String, String) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::env::set_var("GIT_COMMITTER_NAME", "Olga Operator");
        std::env::set_var("GIT_COMMITTER_EMAIL", "olga@example.com");
    });
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

/// An artifact.json for an upload of build `id` of `service` on `branch`.
pub fn spec(service: &str, branch: &str, id: &str) -> String {
    serde_json::to_string_pretty(&serde_json::json!({
        "id": id,
        "service": service,
        "application": {"sha": "abc", "branch": branch, "authorName": "Dana Dev", "authorEmail": "dana@example.com",
                        "committerName": "Dana Dev", "committerEmail": "dana@example.com", "message": "add login"},
        "ci": {"jobUrl": "https://ci.example.com/1", "start": "2026-02-01T10:00:00Z", "end": "2026-02-01T10:05:00Z"},
        "stages": []
    }))
    .unwrap()
}

/// One chunk per file.
pub fn chunks(files: &[(&str, &str)]) -> Vec<pb::PushArtifactRequest> {
    files
        .iter()
        .map(|(path, data)| pb::PushArtifactRequest {
            path: path.to_string(),
            data: data.as_bytes().to_vec(),
        })
        .collect()
}

/// Uploads a build through `PushArtifact`, with the artifact token if given.
pub async fn push(
    url: &str,
    token: Option<&'static str>,
    requests: Vec<pb::PushArtifactRequest>,
) -> Result<pb::PushArtifactResponse, tonic::Status> {
    let channel = tonic::transport::Channel::from_shared(url.to_string())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client =
        ReleaseServiceClient::with_interceptor(channel, move |mut r: tonic::Request<()>| {
            if let Some(token) = token {
                r.metadata_mut()
                    .insert("authorization", format!("Bearer {token}").parse().unwrap());
            }
            Ok(r)
        });
    client
        .push_artifact(tokio_stream::iter(requests))
        .await
        .map(|r| r.into_inner())
}

/// A loopback port nobody listens on (for a listener a test starts, stops
/// and starts again on the same port).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
