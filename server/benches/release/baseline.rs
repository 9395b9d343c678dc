//! The obvious alternatives to the server, implemented with the plain git
//! command line: release the latest build of a branch to an environment,
//! one commit and one push per release.
//!
//! - `Clone`: a fresh clone per release (what the original tool did);
//! - `Persistent`: one clone, fetch + hard reset before each release;
//! - `Plumbing`: one bare mirror, commits built with read-tree/write-tree/
//!   commit-tree and no work tree: the floor for anything that shells out.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Clone,
    Persistent,
    Plumbing,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Clone => "git clone per release",
            Mode::Persistent => "git persistent clone",
            Mode::Plumbing => "git plumbing",
        }
    }
}

fn git(dir: &Path, envs: &[(&str, &Path)], args: &[&str]) -> String {
    let mut command = Command::new("git");
    command
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "release-manager")
        .env("GIT_COMMITTER_EMAIL", "rm@example.com");
    for (key, value) in envs {
        command.env(key, value);
    }
    let out = command.output().expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn artifact_id_of(spec: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(spec).expect("artifact.json parses");
    value["id"].as_str().expect("an id").to_string()
}

fn release_in_worktree(work: &Path, service: &str, env: &str, branch: &str) {
    let src = work.join("builds").join(service).join(branch);
    let dst_rel = format!("{env}/releases/{env}/{service}");
    let dst = work.join(&dst_rel);
    let id = artifact_id_of(&std::fs::read_to_string(src.join("artifact.json")).expect("a build"));
    let _ = std::fs::remove_dir_all(&dst);
    std::fs::create_dir_all(&dst).expect("mkdir");
    for entry in std::fs::read_dir(src.join(env)).expect("env folder") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), dst.join(entry.file_name())).expect("copy");
    }
    std::fs::copy(src.join("artifact.json"), dst.join("artifact.json")).expect("copy");
    git(work, &[], &["add", "-A", &dst_rel]);
    git(
        work,
        &[],
        &[
            "commit",
            "-q",
            "-m",
            &format!("[{env}/{service}] release {id}"),
        ],
    );
    git(work, &[], &["push", "-q", "origin", "HEAD:master"]);
}

/// Runs one release per service (in order) and returns each one's time.
/// Set-up (the persistent clone, the mirror) is not counted.
pub fn run(
    mode: Mode,
    remote: &Path,
    services: &[String],
    env: &str,
    branch: &str,
) -> Vec<Duration> {
    let scratch = tempfile::tempdir().expect("temp dir");
    let remote_str = remote.to_str().expect("utf-8 path");
    let mut times = Vec::with_capacity(services.len());
    match mode {
        Mode::Clone => {
            for service in services {
                let began = Instant::now();
                let work = scratch.path().join("c");
                let _ = std::fs::remove_dir_all(&work);
                git(scratch.path(), &[], &["clone", "-q", remote_str, "c"]);
                release_in_worktree(&work, service, env, branch);
                times.push(began.elapsed());
            }
        }
        Mode::Persistent => {
            git(scratch.path(), &[], &["clone", "-q", remote_str, "c"]);
            let work = scratch.path().join("c");
            for service in services {
                let began = Instant::now();
                git(&work, &[], &["fetch", "-q", "origin"]);
                git(&work, &[], &["reset", "-q", "--hard", "origin/master"]);
                release_in_worktree(&work, service, env, branch);
                times.push(began.elapsed());
            }
        }
        Mode::Plumbing => {
            git(
                scratch.path(),
                &[],
                &["clone", "-q", "--bare", remote_str, "m.git"],
            );
            let git_dir: PathBuf = scratch.path().join("m.git");
            let index: PathBuf = scratch.path().join("index");
            let work_tree: PathBuf = scratch.path().join("wt");
            std::fs::create_dir_all(&work_tree).expect("mkdir");
            let envs = [
                ("GIT_DIR", git_dir.as_path()),
                ("GIT_INDEX_FILE", index.as_path()),
                ("GIT_WORK_TREE", work_tree.as_path()),
            ];
            let dir = scratch.path();
            for service in services {
                let began = Instant::now();
                git(dir, &envs, &["fetch", "-q", "origin", "master:master"]);
                let src = format!("builds/{service}/{branch}");
                let dst = format!("{env}/releases/{env}/{service}");
                let id = artifact_id_of(&git(
                    dir,
                    &envs,
                    &["cat-file", "-p", &format!("master:{src}/artifact.json")],
                ));
                git(dir, &envs, &["read-tree", "master"]);
                git(
                    dir,
                    &envs,
                    &["rm", "-r", "-q", "--cached", "--ignore-unmatch", &dst],
                );
                git(
                    dir,
                    &envs,
                    &[
                        "read-tree",
                        &format!("--prefix={dst}/"),
                        &format!("master:{src}/{env}"),
                    ],
                );
                let blob = git(
                    dir,
                    &envs,
                    &["rev-parse", &format!("master:{src}/artifact.json")],
                );
                git(
                    dir,
                    &envs,
                    &[
                        "update-index",
                        "--add",
                        "--cacheinfo",
                        &format!("100644,{},{dst}/artifact.json", blob.trim()),
                    ],
                );
                let tree = git(dir, &envs, &["write-tree"]);
                let commit = git(
                    dir,
                    &envs,
                    &[
                        "commit-tree",
                        tree.trim(),
                        "-p",
                        "master",
                        "-m",
                        &format!("[{env}/{service}] release {id}"),
                    ],
                );
                git(
                    dir,
                    &envs,
                    &["update-ref", "refs/heads/master", commit.trim()],
                );
                git(dir, &envs, &["push", "-q", "origin", "master"]);
                times.push(began.elapsed());
            }
        }
    }
    times
}
