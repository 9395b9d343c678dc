//! Concurrent writers: parallel releases become one commit each on a linear
//! history, commits pushed by someone else meanwhile are kept with the
//! server's commits replayed on top of them, two replicas share a remote,
//! and the packs written per batch are merged.

use crate::support::*;

const SERVICES: usize = 32;

fn many_services() -> ConfigRepo {
    let mut repo = ConfigRepo::new();
    for s in 0..SERVICES {
        repo.add_build(&format!("svc-{s:02}"), "master", 1);
    }
    repo.push();
    repo
}

fn assert_linear(repo: &ConfigRepo, from: &str, expected_commits: usize) {
    let range = format!("{from}..master");
    let count: usize = repo
        .remote_git(&["rev-list", "--count", &range])
        .trim()
        .parse()
        .unwrap();
    assert_eq!(count, expected_commits);
    let merges = repo.remote_git(&["rev-list", "--merges", &range]);
    assert!(merges.trim().is_empty(), "history must stay linear");
    let first_parent: usize = repo
        .remote_git(&["rev-list", "--count", "--first-parent", &range])
        .trim()
        .parse()
        .unwrap();
    assert_eq!(first_parent, expected_commits);
}

async fn release_all_in_parallel(server: &TestServer) {
    let mut tasks = Vec::new();
    for s in 0..SERVICES {
        let mut client = server.client().await;
        tasks.push(tokio::spawn(async move {
            client
                .release(release_branch(&format!("svc-{s:02}"), "dev", "master"))
                .await
        }));
    }
    for task in tasks {
        let result = task.await.unwrap().expect("every release succeeds");
        assert_eq!(
            result.into_inner().result.unwrap().outcome(),
            release_manager::pb::Outcome::Applied
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_releases_land_as_one_commit_each_on_a_linear_history() {
    let repo = many_services();
    let server = TestServer::start(&repo.remote).await;
    let before = repo.remote_head();
    release_all_in_parallel(&server).await;
    assert_linear(&repo, &before, SERVICES);
    for s in 0..SERVICES {
        let svc = format!("svc-{s:02}");
        assert!(repo
            .remote_file(&format!("dev/releases/dev/{svc}/artifact.json"))
            .is_some());
        let subjects = repo.remote_git(&["log", "--format=%s", &format!("{before}..master")]);
        assert_eq!(
            subjects
                .lines()
                .filter(|l| l.starts_with(&format!("[dev/{svc}] release")))
                .count(),
            1
        );
    }
    let commits = server
        .stats()
        .commits
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(commits, SERVICES as u64);
    server.stop().await;
}

#[tokio::test]
async fn a_commit_pushed_by_someone_else_is_kept_and_the_release_replayed_on_it() {
    let mut repo = many_services();
    let server = TestServer::start(&repo.remote).await;
    let mut client = server.client().await;
    // CI pushes a build straight to the remote; the server has not seen it.
    let ci_build = repo.add_build("svc-00", "master", 2);
    repo.push();
    let theirs = repo.remote_head();

    let result = client
        .release(release_branch("svc-01", "dev", "master"))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    let info = commit_info(&repo, "master");
    assert_eq!(
        info.parents,
        vec![theirs.clone()],
        "replayed on top of their commit"
    );
    assert_eq!(result.commit_sha, repo.remote_head());
    assert_eq!(
        info.changed,
        [
            "dev/releases/dev/svc-01/artifact.json",
            "dev/releases/dev/svc-01/deployment.yaml",
            "dev/releases/dev/svc-01/service.yaml"
        ]
    );
    // The server now knows the new build too.
    let released = client
        .release(release_branch("svc-00", "dev", "master"))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!(released.artifact_id, ci_build);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pushes_racing_with_parallel_releases_are_all_kept() {
    let mut repo = many_services();
    let server = TestServer::start(&repo.remote).await;
    let before = repo.remote_head();
    // Prepare three CI commits locally, then push them while releases run.
    let mut ci_subjects = Vec::new();
    for n in 2..5 {
        let id = repo.add_build("svc-31", "master", n);
        ci_subjects.push(format!("[svc-31] build tag {id}"));
    }
    let work = repo.work.clone();
    let pusher = std::thread::spawn(move || {
        // git refuses a non-fast-forward push; rebase and retry, as CI does.
        for _ in 0..50 {
            git(&work, &["fetch", "-q", "origin"]);
            git(&work, &["rebase", "-q", "origin/master"]);
            let pushed =
                crate::support::git::git_output(&work, &["push", "-q", "origin", "master"]);
            if pushed.status.success() {
                return true;
            }
        }
        false
    });
    release_all_in_parallel(&server).await;
    assert!(pusher.join().unwrap(), "the CI push eventually lands");
    assert_linear(&repo, &before, SERVICES + ci_subjects.len());
    let subjects = repo.remote_git(&["log", "--format=%s", &format!("{before}..master")]);
    for subject in &ci_subjects {
        assert!(subjects.lines().any(|l| l == subject), "{subject} was kept");
    }
    server.stop().await;
}

fn pack_count(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("objects/pack"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".pack")
        })
        .count()
}

#[tokio::test]
async fn packs_written_per_batch_are_merged_and_reads_keep_working() {
    let repo = many_services();
    let server = TestServer::start_with(&repo.remote, |config| {
        config.writer.packs_between_merges = 4;
    })
    .await;
    let mut client = server.client().await;
    for s in 0..10 {
        client
            .release(release_branch(&format!("svc-{s:02}"), "dev", "master"))
            .await
            .unwrap();
        // Reads between writes keep pooled handles across merges.
        let status = client
            .status(release_manager::pb::StatusRequest {
                service: format!("svc-{s:02}"),
                namespace: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(status.environments[0].artifact.is_some());
    }
    let mirror = server.data.path().join("mirror.git");
    assert!(
        pack_count(&mirror) < 10,
        "ten batches were merged into fewer packs, found {}",
        pack_count(&mirror)
    );
    // The remote's packs are merged too, but a merge there races with the
    // pushes still landing; what must hold is that nothing is lost.
    repo.remote_git(&["fsck", "--no-progress", "--connectivity-only"]);
    git(
        &server.data.path().join("mirror.git"),
        &["fsck", "--no-progress", "--connectivity-only"],
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_sharing_one_remote_lose_nothing() {
    let repo = many_services();
    let first = TestServer::start(&repo.remote).await;
    let second = TestServer::start(&repo.remote).await;
    let before = repo.remote_head();
    let mut tasks = Vec::new();
    for s in 0..SERVICES {
        // Alternate replicas: each push races with the other's.
        let mut client = if s % 2 == 0 {
            first.client().await
        } else {
            second.client().await
        };
        tasks.push(tokio::spawn(async move {
            client
                .release(release_branch(&format!("svc-{s:02}"), "dev", "master"))
                .await
        }));
    }
    for task in tasks {
        task.await
            .unwrap()
            .expect("every release lands, on either replica");
    }
    assert_linear(&repo, &before, SERVICES);
    for s in 0..SERVICES {
        assert!(repo
            .remote_file(&format!("dev/releases/dev/svc-{s:02}/artifact.json"))
            .is_some());
    }
    let conflicts = first
        .stats()
        .conflicts
        .load(std::sync::atomic::Ordering::Relaxed)
        + second
            .stats()
            .conflicts
            .load(std::sync::atomic::Ordering::Relaxed);
    assert!(conflicts > 0, "the replicas did contend for the remote");
    first.stop().await;
    second.stop().await;
}
