//! The push pipeline over the network (`git daemon`): while one push is in
//! flight, the next batch is built on top of it and pushed once the first
//! landed; when the first is refused because the remote moved, both are
//! replayed on what the remote holds. A `pre-receive` hook holds the first
//! push on the remote until the test lets it go, so that the second write
//! arrives while it is in flight. Nothing is answered before it is on the
//! remote.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::support::git_daemon::GitDaemon;
use crate::support::server_api::RemoteLocation;
use crate::support::*;
use release_manager::pb;
use release_manager::pb::release_service_client::ReleaseServiceClient;
use tonic::transport::Channel;

/// A hook on the remote that holds the next push (once `hold` exists) until
/// `go` exists, saying so with `arrived`; bounded, like every wait here.
struct Gate {
    dir: PathBuf,
}

impl Gate {
    fn install(remote: &Path) -> Gate {
        let dir = remote.join("gate");
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.display();
        let script = format!(
            "#!/bin/sh\n\
             if [ -e {d}/hold ]; then\n\
               rm -f {d}/hold\n\
               touch {d}/arrived\n\
               i=0\n\
               while [ ! -e {d}/go ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done\n\
             fi\n\
             exit 0\n"
        );
        let hook = remote.join("hooks/pre-receive");
        std::fs::write(&hook, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
        Gate { dir }
    }

    fn hold_next(&self) {
        std::fs::write(self.dir.join("hold"), "").unwrap();
    }

    async fn wait_arrived(&self) {
        let arrived = self.dir.join("arrived");
        wait_until(
            "the push to reach the remote",
            Duration::from_secs(20),
            || arrived.exists(),
        )
        .await;
    }

    fn open(&self) {
        std::fs::write(self.dir.join("go"), "").unwrap();
    }
}

fn is_on_remote(repo: &ConfigRepo, commit: &str) -> bool {
    std::process::Command::new("git")
        .args(["merge-base", "--is-ancestor", commit, "master"])
        .current_dir(&repo.remote)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .status()
        .unwrap()
        .success()
}

/// Starts the server on `repo` through `git daemon`, and returns it with a
/// gate on the remote.
async fn served(repo: &ConfigRepo) -> (GitDaemon, TestServer, Gate) {
    let daemon = GitDaemon::serve(&repo.remote);
    let url = daemon.url.clone();
    let server = TestServer::start_with(&repo.remote, |config| {
        config.config_repo = RemoteLocation::Network(url.clone());
    })
    .await;
    let gate = Gate::install(&repo.remote);
    (daemon, server, gate)
}

/// Sends a release in a task of its own; its answer comes with whether its
/// commit was on the remote at the moment it was answered.
fn release_in_background(
    client: &mut ReleaseServiceClient<Channel>,
    repo: &ConfigRepo,
    service: &str,
) -> tokio::task::JoinHandle<(String, bool)> {
    let mut client = client.clone();
    let remote = repo.remote.clone();
    let request = release_branch(service, "dev", "master");
    tokio::spawn(async move {
        let answer = client.release(request).await.expect("the release succeeds");
        let result = answer.into_inner().result.unwrap();
        assert_eq!(result.outcome(), pb::Outcome::Applied);
        let on_remote = std::process::Command::new("git")
            .args(["merge-base", "--is-ancestor", &result.commit_sha, "master"])
            .current_dir(&remote)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .status()
            .unwrap()
            .success();
        (result.commit_sha, on_remote)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_next_batch_is_built_on_the_push_in_flight_and_pushed_after_it() {
    let mut repo = ConfigRepo::new();
    repo.add_build("shop", "master", 1);
    repo.add_build("cart", "master", 1);
    repo.push();
    let (_daemon, server, gate) = served(&repo).await;
    let stats = server.stats();
    let mut client = server.client().await;
    let before = repo.remote_head();

    gate.hold_next();
    let first = release_in_background(&mut client, &repo, "shop");
    gate.wait_arrived().await;
    let started = stats.batches_started.load(Ordering::SeqCst);
    let second = release_in_background(&mut client, &repo, "cart");
    wait_until(
        "the second write to be built on top of the push in flight",
        Duration::from_secs(20),
        || stats.batches_started.load(Ordering::SeqCst) > started,
    )
    .await;
    assert!(!second.is_finished(), "answered before its push");
    gate.open();

    let (first_commit, first_on_remote) = first.await.unwrap();
    let (second_commit, second_on_remote) = second.await.unwrap();
    assert!(
        first_on_remote && second_on_remote,
        "answered before its push landed"
    );
    assert_eq!(
        commit_info(&repo, &second_commit).parents,
        vec![first_commit.clone()],
        "built on the commit in flight"
    );
    assert_eq!(repo.remote_head(), second_commit);
    assert_eq!(
        commit_info(&repo, &first_commit).parents,
        vec![before],
        "linear"
    );
    assert_eq!(stats.batches.load(Ordering::SeqCst), 2, "two pushes");
    assert_eq!(stats.conflicts.load(Ordering::SeqCst), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_the_push_in_flight_is_refused_both_batches_are_replayed() {
    let mut repo = ConfigRepo::new();
    repo.add_build("shop", "master", 1);
    repo.add_build("cart", "master", 1);
    repo.push();
    let (_daemon, server, gate) = served(&repo).await;
    let stats = server.stats();
    let mut client = server.client().await;

    gate.hold_next();
    let first = release_in_background(&mut client, &repo, "shop");
    gate.wait_arrived().await;
    let started = stats.batches_started.load(Ordering::SeqCst);
    let second = release_in_background(&mut client, &repo, "cart");
    wait_until(
        "the second write to be built on top of the push in flight",
        Duration::from_secs(20),
        || stats.batches_started.load(Ordering::SeqCst) > started,
    )
    .await;
    // Someone else pushes while the first push waits on the remote: when
    // it goes on, the branch is no longer where it expects, and the remote
    // refuses it.
    let theirs_id = repo.add_build("shop", "master", 2);
    repo.push();
    let theirs = repo.remote_head();
    gate.open();

    let (first_commit, first_on_remote) = first.await.unwrap();
    let (second_commit, second_on_remote) = second.await.unwrap();
    assert!(
        first_on_remote && second_on_remote,
        "answered before its push landed"
    );
    assert!(
        stats.conflicts.load(Ordering::SeqCst) >= 1,
        "the first push was refused"
    );
    // Both replayed on top of theirs, in order, nothing lost, linear.
    assert_eq!(
        commit_info(&repo, &first_commit).parents,
        vec![theirs.clone()]
    );
    assert_eq!(
        commit_info(&repo, &second_commit).parents,
        vec![first_commit.clone()]
    );
    assert_eq!(repo.remote_head(), second_commit);
    assert!(is_on_remote(&repo, &theirs));
    let subjects = repo.remote_git(&["log", "--format=%s", "-3", "master"]);
    assert!(subjects.contains(&theirs_id), "{subjects}");
    assert!(
        repo.remote_git(&["rev-list", "--merges", "master"])
            .trim()
            .is_empty(),
        "history stays linear"
    );
    server.stop().await;
}
