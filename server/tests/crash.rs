//! A crash at every step of a push: the real server binary (built for tests
//! with its crash points) aborts at the named step, and a plain restart on
//! the same data dir recovers with no manual step: it starts, no write that
//! was acknowledged before is lost, the write that crashed can be made
//! again, history stays linear and `git fsck` clean, and neither the mirror
//! nor the remote keeps a lock, a temporary file or a pack without index.

mod support;

use std::time::Duration;

use support::*;

/// Every crash point of a push to a local remote, in order.
const STEPS: &[&str] = &[
    "mirror-pack-renamed",
    "mirror-index-renamed",
    "remote-pack-renamed",
    "remote-index-renamed",
    "remote-branch-moved",
    "tracking-ref-moved",
];

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
        let mut crashing = server;
        let status = crashing.process.wait_timeout(Duration::from_secs(60));
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
