//! Config repositories built as CI and people build them: a bare remote in
//! a temp dir and a work clone that commits builds with plain git, plus
//! what the tests read back from the remote with git itself.

use std::path::{Path, PathBuf};

use tempfile::TempDir;

use super::git::{git, git_output};

/// The environments of every test server, in promotion order.
pub const ENVS: [&str; 3] = ["dev", "staging", "prod"];

/// A bare remote plus a work clone used to write builds the way CI does.
pub struct ConfigRepo {
    _dir: TempDir,
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
            &[
                "remote",
                "add",
                "origin",
                remote.to_str().expect("a UTF-8 path"),
            ],
        );
        write(&work.join("README.md"), "# config\n");
        for env in ENVS {
            write(
                &work.join(env).join("provisioning/cluster.yaml"),
                "kind: Cluster\n",
            );
        }
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", "initial layout"]);
        git(&work, &["push", "-q", "origin", "master"]);
        ConfigRepo {
            _dir: dir,
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
        let id = artifact_id(service, branch, n);
        let manifests: Vec<(String, String)> = files
            .iter()
            .map(|file| {
                (
                    file.to_string(),
                    format!("# {file} of {service} in {{env}}\nartifact: {id}\n"),
                )
            })
            .collect();
        self.write_build(service, branch, n, &manifests, "")
    }

    /// A build whose manifests are Kubernetes objects named after the
    /// service (a Deployment and a Service, no namespace: the folder's), as
    /// a controller applies them.
    pub fn add_kube_build(&mut self, service: &str, branch: &str, n: usize) -> String {
        let id = artifact_id(service, branch, n);
        let manifests = vec![
            (
                "deployment.yaml".to_string(),
                format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {service}\n  labels:\n    artifact: {id}\nspec:\n  replicas: 1\n"),
            ),
            (
                "service.yaml".to_string(),
                format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {service}\nspec:\n  ports:\n  - port: 80\n"),
            ),
        ];
        self.write_build(service, branch, n, &manifests, "")
    }

    /// Writes (and commits, not pushed) build `n` of `service`/`branch`
    /// with `manifests` (name, content) in every environment's folder.
    fn write_build(
        &mut self,
        service: &str,
        branch: &str,
        n: usize,
        manifests: &[(String, String)],
        message: &str,
    ) -> String {
        self.stage_build(service, branch, n, manifests, message);
        let id = artifact_id(service, branch, n);
        git(&self.work, &["add", "-A"]);
        git(
            &self.work,
            &["commit", "-q", "-m", &format!("[{service}] build tag {id}")],
        );
        id
    }

    /// Writes the files of build `n` of `service`/`branch` without
    /// committing them (several builds then go in one commit); `{env}` in a
    /// manifest is its environment.
    fn stage_build(
        &mut self,
        service: &str,
        branch: &str,
        n: usize,
        manifests: &[(String, String)],
        message: &str,
    ) {
        self.counter += 1;
        let id = artifact_id(service, branch, n);
        let base = self.work.join("builds").join(service).join(branch);
        if base.exists() {
            std::fs::remove_dir_all(&base).expect("the old build folder goes");
        }
        for env in ENVS {
            for (file, content) in manifests {
                write(&base.join(env).join(file), &content.replace("{env}", env));
            }
        }
        let message = if message.is_empty() {
            format!("change {n} of {service}")
        } else {
            message.to_string()
        };
        let author = format!("Dev {}", n % 3);
        let spec = serde_json::json!({
            "id": id,
            "application": {
                "sha": format!("{:040}", self.counter),
                "authorName": author,
                "authorEmail": format!("dev{}@example.com", n % 3),
                "committerName": author,
                "committerEmail": format!("dev{}@example.com", n % 3),
                "message": message,
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
        write(
            &base.join("artifact.json"),
            &(serde_json::to_string_pretty(&spec).expect("JSON") + "\n"),
        );
    }

    /// A build with the usual two manifests.
    pub fn add_build(&mut self, service: &str, branch: &str, n: usize) -> String {
        self.add_build_files(service, branch, n, &["deployment.yaml", "service.yaml"])
    }

    /// Commits `files` (path, content) in the work clone as someone editing
    /// by hand would (not pushed).
    pub fn commit_files(&self, message: &str, files: &[(&str, &str)]) {
        for (path, content) in files {
            write(&self.work.join(path), content);
        }
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "-m", message]);
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
        let out = git_output(&self.remote, &["show", &format!("master:{path}")]);
        out.status
            .success()
            .then(|| String::from_utf8(out.stdout).expect("UTF-8 files"))
    }

    /// File names at `path` on master.
    pub fn remote_ls(&self, path: &str) -> Vec<String> {
        self.remote_git(&["ls-tree", "--name-only", &format!("master:{path}")])
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// Writes `content` to `path`, making its folders.
fn write(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().expect("a file in a folder")).expect("mkdir");
    std::fs::write(path, content).expect("write");
}

/// What `git log` says of one commit on the remote.
pub struct CommitInfo {
    pub subject: String,
    pub body: String,
    pub author: String,
    pub committer: String,
    pub parents: Vec<String>,
    pub changed: Vec<String>,
}

/// Reads commit `rev` of the remote with git.
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

/// Subjects of the commits on the remote's master, newest first.
pub fn subjects(repo: &ConfigRepo) -> Vec<String> {
    repo.remote_git(&["log", "--format=%s", "master"])
        .lines()
        .map(str::to_string)
        .collect()
}
