//! Every `ErrorReason` of the public schema (errors.proto) that a client
//! can meet, provoked over real gRPC against the real server, read back
//! from the `google.rpc.ErrorInfo` in the status details as a client in any
//! language reads it.
//!
//! [`expected`] is the table: for each reason the status code it comes
//! with, or why no client ever sees it. Its match is exhaustive, so a new
//! reason in the schema does not compile until it has a row here. The
//! scenarios below provoke the reasons; the test checks that every reason
//! of the table was provoked, with its code and its ErrorInfo.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use release_manager::pb;
use release_manager::pb::ErrorReason;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::support::git_daemon::GitDaemon;
use crate::support::server::{local_config, start_on};
use crate::support::server_api::{parse_global_restrictions, RemoteLocation, ServerConfig};
use crate::support::*;

/// The `domain` of every ErrorInfo the server sends.
const DOMAIN: &str = "releasemanager.v1";

/// The table: the code each reason comes with, or why no client can see it.
fn expected(reason: ErrorReason) -> Result<Code, &'static str> {
    use ErrorReason as R;
    Ok(match reason {
        R::Unspecified => return Err("the schema's zero value: never sent"),
        R::ServiceNotFound
        | R::BranchNotFound
        | R::ArtifactNotFound
        | R::NamespaceNotFound
        | R::ReleaseNotFound
        | R::CursorNotFound
        | R::RevisionNotFound => Code::NotFound,
        R::BranchRestricted
        | R::NothingToPromote
        | R::NothingToRollBack
        | R::ManifestsMissing
        | R::ArtifactUnreadable
        | R::PolicyConflict
        | R::PolicyFileInvalid
        | R::ServerWidePolicy
        | R::RevisionNotOnBranch => Code::FailedPrecondition,
        R::ArtifactExists => Code::AlreadyExists,
        R::TokenMissing
        | R::TokenWrong
        | R::TokenInvalid
        | R::TokenExpired
        | R::IssuerUnavailable => Code::Unauthenticated,
        R::RoleNotEnabled | R::AccessDenied => Code::PermissionDenied,
        R::QueueFull | R::UploadsBusy | R::ChunkTooLarge | R::UploadTooLarge | R::TooManyFiles => {
            Code::ResourceExhausted
        }
        R::DiskFull => {
            return Err(
                "needs a disk that fills up under the server: a test cannot make one \
                        without mounting a file system; the mapping of ENOSPC to DISK_FULL is \
                        unit-tested in the server (error.rs)",
            )
        }
        R::DeadlinePassed => {
            return Err(
                "the writer sends it only after the caller's deadline has passed, and by \
                        then the call is over: the client's own deadline, and tonic's \
                        grpc-timeout layer in the server, end it at the deadline (the client \
                        sees CANCELLED or DEADLINE_EXCEEDED with no details): no client ever \
                        receives DEADLINE_PASSED",
            )
        }
        R::UploadStalled | R::UploadTooSlow => Code::DeadlineExceeded,
        R::Starting
        | R::ShuttingDown
        | R::RemoteUnavailable
        | R::RemoteTimeout
        | R::RemoteLocked
        | R::WriteDenied
        | R::BatchTimeout => Code::Unavailable,
        R::PushConflict => Code::Aborted,
        R::InternalError => Code::Internal,
    })
}

/// Every value of the enum, in schema order.
fn all_reasons() -> Vec<ErrorReason> {
    (0..=i32::from(u8::MAX))
        .filter_map(|value| ErrorReason::try_from(value).ok())
        .collect()
}

/// What the scenarios provoked: the reason each status was provoked for.
type Provoked = BTreeMap<i32, Status>;

fn note(
    provoked: &mut Provoked,
    reason: ErrorReason,
    result: Result<impl std::fmt::Debug, Status>,
) {
    let status = result.expect_err(&format!("{} was provoked", reason.as_str_name()));
    provoked.insert(reason as i32, status);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_reason_a_client_can_meet_arrives_in_its_error_info() {
    let mut provoked = Provoked::new();
    reasons_of_reads_and_flows(&mut provoked).await;
    reasons_of_tokens(&mut provoked).await;
    reasons_of_identity_tokens(&mut provoked).await;
    reasons_of_a_network_remote(&mut provoked).await;
    reasons_of_pushes_that_keep_being_rejected(&mut provoked).await;
    reasons_of_a_local_remote_that_refuses_writes(&mut provoked).await;
    reasons_of_uploads(&mut provoked).await;
    reason_of_a_rewritten_branch(&mut provoked).await;
    reason_of_a_broken_data_dir(&mut provoked).await;
    reason_of_a_stopping_server(&mut provoked).await;

    let mut missing = Vec::new();
    for reason in all_reasons() {
        let name = reason.as_str_name();
        match (expected(reason), provoked.get(&(reason as i32))) {
            (Ok(code), Some(status)) => {
                assert_eq!(status.code(), code, "{name}: {status:?}");
                assert_eq!(
                    error_info(status),
                    Some((name.to_string(), DOMAIN.to_string())),
                    "{name}: {status:?}"
                );
            }
            (Ok(_), None) => missing.push(name),
            (Err(why), Some(status)) => {
                panic!("{name} was provoked ({status:?}) but the table says: {why}")
            }
            (Err(_), None) => {}
        }
    }
    assert!(missing.is_empty(), "never provoked: {missing:?}");

    // The machine-readable parts of the messages (errors.proto).
    use ErrorReason as R;
    for (reason, key) in [
        (R::ChunkTooLarge, "limit"),
        (R::UploadTooLarge, "limit"),
        (R::TooManyFiles, "limit"),
        (R::UploadsBusy, "limit"),
        (R::UploadStalled, "limit"),
        (R::UploadTooSlow, "limit"),
        (R::BranchRestricted, "policy_id"),
        (R::BranchRestricted, "environment"),
        (R::NothingToPromote, "environment"),
        (R::NothingToRollBack, "environment"),
        (R::PolicyConflict, "policy_id"),
        (R::ServerWidePolicy, "policy_id"),
    ] {
        let status = &provoked[&(reason as i32)];
        let details = status.get_error_details();
        let metadata = &details.error_info().expect("an ErrorInfo").metadata;
        assert!(
            metadata.get(key).is_some_and(|v| !v.is_empty()),
            "{} carries no {key}: {metadata:?}",
            reason.as_str_name()
        );
    }
}

/// A service whose policy file cannot be parsed, one whose artifact.json
/// cannot be, and one whose build has only dev manifests, beside shop.
fn repository_with_oddities() -> (ConfigRepo, Vec<String>) {
    let mut repo = ConfigRepo::new();
    let ids = vec![
        repo.add_build("shop", "master", 1),
        repo.add_build("shop", "master", 2),
        repo.add_build("shop", "feature/x", 1),
    ];
    repo.add_build("strict", "master", 1);
    repo.commit_files(
        "policies by hand",
        &[("policies/strict.json", "this is not json")],
    );
    repo.commit_files(
        "CI: a build whose artifact.json was cut short",
        &[
            ("builds/cut/master/artifact.json", "{\"id\": "),
            (
                "builds/cut/master/dev/deployment.yaml",
                "kind: Deployment\n",
            ),
        ],
    );
    let thin = spec("thin", "master", "master-thin-1");
    repo.commit_files(
        "CI: a build with manifests for dev only",
        &[
            ("builds/thin/master/artifact.json", &thin),
            (
                "builds/thin/master/dev/deployment.yaml",
                "kind: Deployment\n",
            ),
        ],
    );
    repo.push();
    (repo, ids)
}

/// NOT_FOUND and FAILED_PRECONDITION reasons of reads and release flows,
/// ALREADY_EXISTS of uploads: one server with a server-wide restriction.
async fn reasons_of_reads_and_flows(provoked: &mut Provoked) {
    use ErrorReason as R;
    let (repo, ids) = repository_with_oddities();
    let server = TestServer::start_with(&repo.remote, |config| {
        config.settings.global_restrictions = parse_global_restrictions("prod=^master$").unwrap();
    })
    .await;
    let mut client = server.client().await;
    let mut policies = server.policy_client().await;
    client
        .release(release_artifact("shop", "dev", &ids[0]))
        .await
        .unwrap();

    let status = |service: &str, namespace: &str| pb::StatusRequest {
        service: service.into(),
        namespace: namespace.into(),
    };
    note(
        provoked,
        R::ServiceNotFound,
        client.status(status("ghost", "")).await,
    );
    note(
        provoked,
        R::NamespaceNotFound,
        client.status(status("shop", "nope")).await,
    );
    note(
        provoked,
        R::BranchNotFound,
        client.release(release_branch("shop", "dev", "nope")).await,
    );
    note(
        provoked,
        R::ArtifactNotFound,
        client
            .release(release_artifact("shop", "dev", "master-zzz"))
            .await,
    );
    let rollback = |environment: &str, artifact_id: &str| pb::RollbackRequest {
        service: "shop".into(),
        environment: environment.into(),
        artifact_id: artifact_id.into(),
        committer: alice(),
        ..Default::default()
    };
    note(
        provoked,
        R::ReleaseNotFound,
        client.rollback(rollback("dev", &ids[1])).await,
    );
    note(
        provoked,
        R::NothingToRollBack,
        client.rollback(rollback("staging", "")).await,
    );
    note(
        provoked,
        R::NothingToPromote,
        client
            .promote(pb::PromoteRequest {
                service: "shop".into(),
                environment: "prod".into(),
                committer: alice(),
                ..Default::default()
            })
            .await,
    );
    note(
        provoked,
        R::BranchRestricted,
        client
            .release(release_branch("shop", "prod", "feature/x"))
            .await,
    );
    note(
        provoked,
        R::ManifestsMissing,
        client
            .release(release_branch("thin", "prod", "master"))
            .await,
    );
    note(
        provoked,
        R::ArtifactUnreadable,
        client.release(release_branch("cut", "dev", "master")).await,
    );
    note(
        provoked,
        R::PolicyFileInvalid,
        policies
            .list_policies(pb::ListPoliciesRequest {
                service: "strict".into(),
            })
            .await,
    );
    note(
        provoked,
        R::PolicyConflict,
        policies
            .apply_auto_release(pb::ApplyAutoReleaseRequest {
                request_id: String::new(),
                service: "shop".into(),
                branch: "feature/x".into(),
                environment: "prod".into(),
                committer: alice(),
            })
            .await,
    );
    note(
        provoked,
        R::ServerWidePolicy,
        policies
            .delete_policies(pb::DeletePoliciesRequest {
                request_id: String::new(),
                service: "shop".into(),
                ids: vec!["branch-restriction-prod".into()],
                committer: alice(),
            })
            .await,
    );
    let cursor_of_no_commit = "0123456789abcdef0123456789abcdef01234567.0";
    note(
        provoked,
        R::CursorNotFound,
        client
            .watch_events(pb::WatchEventsRequest {
                since: cursor_of_no_commit.into(),
                ..Default::default()
            })
            .await
            .map(drop),
    );
    note(
        provoked,
        R::RevisionNotFound,
        client
            .report_deployment(pb::ReportDeploymentRequest {
                environment: "dev".into(),
                revision: "0123456789abcdef0123456789abcdef01234567".into(),
                state: pb::DeploymentState::Deployed as i32,
                ..Default::default()
            })
            .await,
    );
    let build = |deployment: &str| {
        chunks(&[
            ("artifact.json", &spec("shop", "master", "master-once")),
            ("dev/deployment.yaml", deployment),
        ])
    };
    push(&server.url, None, build("kind: Deployment\n"))
        .await
        .expect("the first upload of the id is stored");
    note(
        provoked,
        R::ArtifactExists,
        push(&server.url, None, build("kind: Deployment\nreplicas: 2\n")).await,
    );
    server.stop().await;
}

/// UNAUTHENTICATED and PERMISSION_DENIED: a server with a hamctl token and
/// no artifact token.
async fn reasons_of_tokens(provoked: &mut Provoked) {
    use ErrorReason as R;
    let repo = ConfigRepo::new();
    let server = TestServer::start_with(&repo.remote, |config| {
        config.auth.hamctl_token = Some("ops".into());
        config.auth.artifact_token = None;
        config.auth.unauthenticated = false;
    })
    .await;
    let status = pb::StatusRequest {
        service: "shop".into(),
        ..Default::default()
    };
    note(
        provoked,
        R::TokenMissing,
        client_with_token(&server.url, None)
            .await
            .status(status.clone())
            .await,
    );
    note(
        provoked,
        R::TokenWrong,
        client_with_token(&server.url, Some("guess"))
            .await
            .status(status)
            .await,
    );
    note(
        provoked,
        R::RoleNotEnabled,
        push(&server.url, Some("ops"), Vec::new()).await,
    );
    server.stop().await;
}

/// UNAUTHENTICATED and PERMISSION_DENIED of identity tokens, from a real
/// OpenID Connect provider: a changed token, an expired one, one of a
/// trusted issuer that cannot be reached, and a person no rule allows.
async fn reasons_of_identity_tokens(provoked: &mut Provoked) {
    use ErrorReason as R;
    let mut repo = ConfigRepo::new();
    repo.add_build("shop", "master", 1);
    repo.push();
    let people = crate::support::oidc::Provider::start().await;
    let unreachable = format!("http://127.0.0.1:{}", free_port());
    let dir = tempfile::tempdir().unwrap();
    let access = dir.path().join("access.yaml");
    std::fs::write(
        &access,
        "rules:\n  - name: developers\n    groups: [dev-team]\n    environments: [dev]\n    actions: [release]\n",
    )
    .unwrap();
    let issuers = vec![
        crate::support::server_api::TrustedIssuer {
            url: people.issuer.clone(),
            audience: "hamctl".into(),
        },
        crate::support::server_api::TrustedIssuer {
            url: unreachable.clone(),
            audience: "hamctl".into(),
        },
    ];
    let server = TestServer::start_with(&repo.remote, move |config| {
        config.auth.unauthenticated = false;
        config.auth.oidc = crate::support::server_api::OidcSettings {
            issuers,
            client_id: Some("hamctl".into()),
            leeway: Duration::ZERO,
        };
        config.auth.access_file = Some(access);
    })
    .await;
    let release = |token: String, env: &'static str| {
        let url = server.url.clone();
        async move {
            client_with_token(&url, Some(&token))
                .await
                .release(release_branch("shop", env, "master"))
                .await
        }
    };
    let dana = people.id_token("dev").await;
    note(
        provoked,
        R::AccessDenied,
        release(dana.clone(), "prod").await,
    );
    let mut changed = dana.clone();
    changed.push_str("AA");
    note(provoked, R::TokenInvalid, release(changed, "dev").await);
    // The same token, but naming the trusted issuer nobody answers for.
    use base64::Engine;
    let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = dana.split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&url_safe.decode(parts[1]).unwrap()).unwrap();
    claims["iss"] = unreachable.clone().into();
    let elsewhere = format!(
        "{}.{}.{}",
        parts[0],
        url_safe.encode(claims.to_string()),
        parts[2]
    );
    note(
        provoked,
        R::IssuerUnavailable,
        release(elsewhere, "dev").await,
    );
    let brief = people.id_token("brief").await;
    let exp = crate::support::oidc::claims(&brief)["exp"]
        .as_i64()
        .unwrap();
    wait_until("the brief token to expire", Duration::from_secs(10), || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            > exp
    })
    .await;
    note(provoked, R::TokenExpired, release(brief, "dev").await);
    server.stop().await;
}

/// UNAVAILABLE and RESOURCE_EXHAUSTED of a network remote (git daemon):
/// hung while the server starts, hung while the writer waits on it with a
/// full queue behind, and gone.
async fn reasons_of_a_network_remote(provoked: &mut Provoked) {
    use ErrorReason as R;
    let repo = ConfigRepo::new();
    let mut daemon = GitDaemon::serve(&repo.remote);
    let daemon_url = daemon.url.clone();
    let network = move |config: &mut ServerConfig| {
        config.config_repo = RemoteLocation::Network(daemon_url.clone());
    };

    // A start whose first fetch hangs: the port answers, the server is not
    // ready. (The start then fails with the remote's timeout.)
    daemon.hang();
    let data = tempfile::tempdir().unwrap();
    let mut config = local_config(&repo.remote, data.path());
    network(&mut config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let starting = tokio::spawn(start_on(config, listener));
    let mut client = wait_for(
        "the starting server to answer",
        Duration::from_secs(20),
        || async {
            pb::release_service_client::ReleaseServiceClient::connect(url.clone())
                .await
                .ok()
        },
    )
    .await;
    note(
        provoked,
        R::Starting,
        client
            .release(release_branch("shop", "dev", "master"))
            .await,
    );
    let failed_start = tokio::time::timeout(Duration::from_secs(60), starting)
        .await
        .expect("the start gives up on the hung remote")
        .unwrap();
    assert!(failed_start.is_err(), "the remote never answered");
    daemon.resume();

    // The writer waits on the hung remote with one write in flight; one
    // write waits on top of it (batches of one here), one more fits in the
    // queue, the next is refused at once; the one in flight fails with the
    // remote's timeout.
    let server = TestServer::start_with(&repo.remote, |config| {
        network(config);
        config.writer.queue_capacity = 1;
        config.writer.max_batch = 1;
    })
    .await;
    let stats = server.stats();
    let started = stats.batches_started.load(Ordering::SeqCst);
    daemon.hang();
    let blocked = spawn_policy_write(&server.url, "dev");
    wait_until(
        "the writer to work on the blocked write",
        Duration::from_secs(20),
        || stats.batches_started.load(Ordering::SeqCst) > started,
    )
    .await;
    let queued = [
        spawn_policy_write(&server.url, "staging"),
        spawn_policy_write(&server.url, "prod"),
        spawn_policy_write(&server.url, "prod"),
    ];
    let mut queued_results = Vec::new();
    for write in queued {
        queued_results.push(
            tokio::time::timeout(Duration::from_secs(60), write)
                .await
                .expect("answered in time")
                .unwrap(),
        );
    }
    let full = queued_results
        .into_iter()
        .find(|result| matches!(result, Err(status) if status.code() == Code::ResourceExhausted))
        .expect("one write found the queue full");
    note(provoked, R::QueueFull, full);
    let timed_out = tokio::time::timeout(Duration::from_secs(60), blocked)
        .await
        .expect("answered in time")
        .unwrap();
    note(provoked, R::RemoteTimeout, timed_out);
    daemon.resume();

    // The remote is gone: its port refuses.
    daemon.kill();
    note(
        provoked,
        R::RemoteUnavailable,
        apply_auto_release(&server.url, "dev").await,
    );
    server.stop().await;
}

/// Applies the auto-release of shop's master to `env` (a write that needs
/// no build).
async fn apply_auto_release(url: &str, env: &str) -> Result<pb::ApplyAutoReleaseResponse, Status> {
    pb::policy_service_client::PolicyServiceClient::connect(url.to_string())
        .await
        .unwrap()
        .apply_auto_release(pb::ApplyAutoReleaseRequest {
            request_id: String::new(),
            service: "shop".into(),
            branch: "master".into(),
            environment: env.into(),
            committer: alice(),
        })
        .await
        .map(|r| r.into_inner())
}

/// [`apply_auto_release`] in the background.
fn spawn_policy_write(
    url: &str,
    env: &'static str,
) -> tokio::task::JoinHandle<Result<pb::ApplyAutoReleaseResponse, Status>> {
    let url = url.to_string();
    tokio::spawn(async move { apply_auto_release(&url, env).await })
}

/// ABORTED and UNAVAILABLE of a writer whose push is rejected because CI
/// pushed first: out of attempts, or out of time.
async fn reasons_of_pushes_that_keep_being_rejected(provoked: &mut Provoked) {
    use ErrorReason as R;
    for (reason, tweak) in [
        (
            R::PushConflict,
            (|config: &mut ServerConfig| config.writer.max_push_attempts = 1)
                as fn(&mut ServerConfig),
        ),
        (R::BatchTimeout, |config| {
            config.writer.batch_timeout = Duration::ZERO
        }),
    ] {
        let mut repo = ConfigRepo::new();
        repo.add_build("shop", "master", 1);
        repo.push();
        let server = TestServer::start_with(&repo.remote, tweak).await;
        // CI pushes; the server has not seen it, so its push is rejected.
        repo.add_build("cart", "master", 1);
        repo.push();
        note(
            provoked,
            reason,
            apply_auto_release(&server.url, "dev").await,
        );
        server.stop().await;
    }
}

/// UNAVAILABLE of a local remote that cannot be written: a lock file that
/// stays, and a pack folder nobody may write to.
async fn reasons_of_a_local_remote_that_refuses_writes(provoked: &mut Provoked) {
    use ErrorReason as R;
    let repo = ConfigRepo::new();
    let server = TestServer::start(&repo.remote).await;
    std::fs::write(
        repo.remote.join("refs/heads/master.lock"),
        b"left by a crashed git",
    )
    .unwrap();
    note(
        provoked,
        R::RemoteLocked,
        apply_auto_release(&server.url, "dev").await,
    );
    server.stop().await;

    // The remote's objects stay readable (loose), but its pack folder is
    // sysfs, where no one may create a file (EACCES, or EROFS where /sys is
    // mounted read-only).
    let repo = ConfigRepo::new();
    let packs = repo.remote.join("objects/pack");
    let leftover = std::fs::read_dir(&packs)
        .map(|entries| entries.count())
        .unwrap_or(0);
    assert_eq!(leftover, 0, "the remote's objects are loose");
    let _ = std::fs::remove_dir(&packs);
    std::os::unix::fs::symlink("/sys", &packs).unwrap();
    let server = TestServer::start(&repo.remote).await;
    note(
        provoked,
        R::WriteDenied,
        apply_auto_release(&server.url, "dev").await,
    );
    server.stop().await;
}

/// RESOURCE_EXHAUSTED and DEADLINE_EXCEEDED of uploads.
async fn reasons_of_uploads(provoked: &mut Provoked) {
    use ErrorReason as R;
    let repo = ConfigRepo::new();
    let first_chunk = || chunks(&[("artifact.json", &spec("shop", "master", "master-1"))]);

    // One chunk larger than the largest upload (plus its framing).
    let server =
        TestServer::start_with(&repo.remote, |config| config.uploads.max_bytes = 1000).await;
    let big = "x".repeat(200 << 10);
    note(
        provoked,
        R::ChunkTooLarge,
        push(&server.url, None, chunks(&[("dev/big.yaml", &big)])).await,
    );
    // Chunks that fit, of an upload that does not.
    let part = "y".repeat(600);
    note(
        provoked,
        R::UploadTooLarge,
        push(
            &server.url,
            None,
            chunks(&[("dev/a.yaml", &part), ("dev/b.yaml", &part)]),
        )
        .await,
    );
    server.stop().await;

    // More files than allowed.
    let server = TestServer::start_with(&repo.remote, |config| config.uploads.max_files = 2).await;
    note(
        provoked,
        R::TooManyFiles,
        push(
            &server.url,
            None,
            chunks(&[
                ("dev/a.yaml", "a"),
                ("dev/b.yaml", "b"),
                ("dev/c.yaml", "c"),
            ]),
        )
        .await,
    );
    server.stop().await;

    // An upload that sends one chunk and then nothing: dropped when idle
    // for too long, or when it takes too long in all.
    for (reason, idle, total) in [
        (
            R::UploadStalled,
            Duration::from_secs(1),
            Duration::from_secs(300),
        ),
        (
            R::UploadTooSlow,
            Duration::from_secs(60),
            Duration::from_secs(1),
        ),
    ] {
        let server = TestServer::start_with(&repo.remote, |config| {
            config.uploads.idle_timeout = idle;
            config.uploads.total_timeout = total;
        })
        .await;
        let (chunks_tx, chunks_rx) = tokio::sync::mpsc::channel(1);
        chunks_tx.send(first_chunk().remove(0)).await.unwrap();
        let mut client = server.client().await;
        let stalled = tokio::time::timeout(
            Duration::from_secs(60),
            client.push_artifact(tokio_stream::wrappers::ReceiverStream::new(chunks_rx)),
        )
        .await
        .expect("the server drops the upload");
        note(provoked, reason, stalled);
        drop(chunks_tx);
        server.stop().await;
    }

    // Every upload slot taken by uploads that wait: the next is refused at
    // once. (Slots are taken as their calls arrive: try until one is. The
    // waiting uploads must not be dropped as idle meanwhile, however slow
    // the machine.)
    let server = TestServer::start_with(&repo.remote, |config| {
        config.uploads.idle_timeout = Duration::from_secs(300);
    })
    .await;
    let client = server.client().await;
    // Uploads that send a first chunk and wait, one more at a time, until
    // one is refused: however many slots there are, and however long each
    // waiting upload takes to reach the server.
    let mut waiting = Vec::new();
    let mut busy = None;
    for _ in 0..200 {
        let (chunks_tx, chunks_rx) = tokio::sync::mpsc::channel(1);
        chunks_tx.send(first_chunk().remove(0)).await.unwrap();
        let mut client = client.clone();
        let mut call = tokio::spawn(async move {
            client
                .push_artifact(tokio_stream::wrappers::ReceiverStream::new(chunks_rx))
                .await
        });
        match tokio::time::timeout(Duration::from_millis(100), &mut call).await {
            Ok(Ok(Err(refused))) if refused.code() == Code::ResourceExhausted => {
                busy = Some(refused);
                break;
            }
            Ok(other) => panic!("a waiting upload ended: {other:?}"),
            Err(_) => waiting.push((chunks_tx, call)),
        }
    }
    let busy = busy.expect("an upload refused for want of a slot within 200 uploads");
    note(provoked, R::UploadsBusy, Err::<(), _>(busy));
    for (chunks_tx, call) in waiting {
        drop(chunks_tx);
        let _ = tokio::time::timeout(Duration::from_secs(30), call).await;
    }
    server.stop().await;
}

/// FAILED_PRECONDITION of a deployment report naming a commit the config
/// branch dropped (an administrator rewound it, then the server wrote on).
async fn reason_of_a_rewritten_branch(provoked: &mut Provoked) {
    let mut repo = ConfigRepo::new();
    let ids: Vec<String> = (1..=3)
        .map(|n| repo.add_build("shop", "master", n))
        .collect();
    repo.push();
    let server = TestServer::start(&repo.remote).await;
    let mut client = server.client().await;
    let release = |id: &str| {
        let request = release_artifact("shop", "dev", id);
        let mut client = client.clone();
        async move {
            client
                .release(request)
                .await
                .unwrap()
                .into_inner()
                .result
                .unwrap()
                .commit_sha
        }
    };
    let kept = release(&ids[0]).await;
    let dropped = release(&ids[1]).await;
    repo.remote_git(&["update-ref", "refs/heads/master", &kept]);
    server.sync().await;
    release(&ids[2]).await;
    note(
        provoked,
        ErrorReason::RevisionNotOnBranch,
        client
            .report_deployment(pb::ReportDeploymentRequest {
                environment: "dev".into(),
                revision: dropped,
                state: pb::DeploymentState::Deployed as i32,
                ..Default::default()
            })
            .await,
    );
    server.stop().await;
}

/// INTERNAL: the server's own data dir is broken under it (where uploads
/// are staged is a file), and an upload cannot be stored.
async fn reason_of_a_broken_data_dir(provoked: &mut Provoked) {
    let repo = ConfigRepo::new();
    let server = TestServer::start(&repo.remote).await;
    // Where uploads are staged is a file, not a folder: no OS error a
    // person can act on (a full or read-only disk), so an internal one.
    let staging = server.data.path().join("upload-staging");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::write(&staging, b"not a folder").unwrap();
    note(
        provoked,
        ErrorReason::InternalError,
        push(
            &server.url,
            None,
            chunks(&[
                ("artifact.json", &spec("shop", "master", "master-1")),
                ("dev/deployment.yaml", "kind: Deployment\n"),
            ]),
        )
        .await,
    );
    std::fs::remove_file(&staging).unwrap();
    server.stop().await;
}

/// UNAVAILABLE of a call that arrives while the server stops. The stop is
/// held open by an HTTP request whose body never arrives (the HTTP
/// listener's graceful stop waits for it), so the call is sure to arrive
/// while the server says it is stopping and still answers.
async fn reason_of_a_stopping_server(provoked: &mut Provoked) {
    use tokio::io::AsyncWriteExt;
    let repo = ConfigRepo::new();
    let server = TestServer::start_with(&repo.remote, |config| {
        config.http_listen = Some("127.0.0.1:0".parse().unwrap());
        config.github_webhook_secret = Some("hook-secret".into());
    })
    .await;
    let client = server.client().await;
    let mut unfinished = tokio::net::TcpStream::connect(server.http_addr())
        .await
        .unwrap();
    // `Expect: 100-continue`: the server answers `100 Continue` when the
    // handler starts reading the body, so the stop below surely finds the
    // request under way (not still in the socket, where a stop would
    // close it unread).
    unfinished
        .write_all(
            b"POST /webhook/github HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\n\
              Content-Type: application/json\r\nContent-Length: 100\r\n\
              Expect: 100-continue\r\n\r\n",
        )
        .await
        .unwrap();
    let mut continued = [0u8; 25];
    tokio::time::timeout(
        Duration::from_secs(30),
        tokio::io::AsyncReadExt::read_exact(&mut unfinished, &mut continued),
    )
    .await
    .expect("the server reads the body")
    .unwrap();
    assert!(
        continued.starts_with(b"HTTP/1.1 100 Continue"),
        "{}",
        String::from_utf8_lossy(&continued)
    );
    unfinished.write_all(b"{").await.unwrap();
    let stopping = tokio::spawn(server.stop());
    let refused = wait_for(
        "a watch refused while stopping",
        Duration::from_secs(30),
        || {
            let mut client = client.clone();
            async move {
                client
                    .watch_events(pb::WatchEventsRequest::default())
                    .await
                    .err()
            }
        },
    )
    .await;
    note(provoked, ErrorReason::ShuttingDown, Err::<(), _>(refused));
    drop(unfinished);
    drop(client);
    tokio::time::timeout(Duration::from_secs(60), stopping)
        .await
        .expect("the server stops once the request is gone")
        .unwrap();
}
