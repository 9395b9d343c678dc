//! A config repository written the ways it really is: by the original
//! release manager in its seed era (CI commits with `build tag <id>`
//! somewhere in the message, releases titled `[<env>/<svc>] release <id> by
//! <email>` and nothing else) and its later era (`[<svc>] artifact <id> by
//! <email>` builds, releases with `Artifact-released-by` and
//! `Release-intent` trailers), by hand, and by this server. Every read and
//! write flow must give the right artifact and files on it, since history
//! is read from what commits changed, not from their titles.

use std::path::Path;

use crate::support::*;
use release_manager::pb;

const SERVICE: &str = "legacy";

/// artifact.json as the original's CLI wrote it in the seed era: no
/// `service`, `namespace` or `application.branch`, a zero `ci.end` (the job
/// never called `end`), every stage kind.
fn seed_spec(id: &str) -> String {
    format!(
        r#"{{
  "id": "{id}",
  "application": {{
    "sha": "1111111111111111111111111111111111111111",
    "authorName": "Seed Dev",
    "authorEmail": "seed@example.com",
    "committerName": "Seed Dev",
    "committerEmail": "seed@example.com",
    "message": "first change",
    "name": "{SERVICE}",
    "url": "https://github.com/acme/{SERVICE}/commit/1111111",
    "provider": "GitHub"
  }},
  "ci": {{
    "jobUrl": "https://jenkins.example.com/job/{SERVICE}/1",
    "start": "2019-03-01T10:00:00Z",
    "end": "0001-01-01T00:00:00Z"
  }},
  "squad": "aura",
  "shuttle": {{
    "plan": {{
      "sha": "2222222222222222222222222222222222222222",
      "message": "plan",
      "url": "https://github.com/acme/plan"
    }},
    "shuttleVersion": "v0.7.2"
  }},
  "stages": [
    {{"id": "build", "name": "Build", "data": {{"image": "acme/{SERVICE}", "tag": "{id}", "dockerVersion": "18.09"}}}},
    {{"id": "test", "name": "Test", "data": {{"url": "https://jenkins.example.com/job/{SERVICE}/1/tests", "results": {{"passed": 10, "failed": 0, "skipped": 1}}}}}},
    {{"id": "push", "name": "Push", "data": {{"image": "acme/{SERVICE}", "tag": "{id}", "dockerVersion": "18.09"}}}},
    {{"id": "snyk-code", "name": "Code", "data": {{"snykVersion": "1.0", "url": "https://snyk.io/x", "language": "go", "vulnerabilities": {{"high": 0, "medium": 1, "low": 2}}}}}},
    {{"id": "snyk-docker", "name": "Docker", "data": {{"tag": "{id}", "snykVersion": "1.0", "url": "https://snyk.io/y", "baseImage": "alpine", "vulnerabilities": {{"high": 1, "medium": 0, "low": 0}}}}}}
  ]
}}
"#
    )
}

/// artifact.json of the original's later versions: with `service` and
/// `application.branch`.
fn later_spec(id: &str, n: usize) -> String {
    format!(
        r#"{{
  "id": "{id}",
  "service": "{SERVICE}",
  "application": {{
    "branch": "master",
    "sha": "{n:040}",
    "authorName": "Later Dev",
    "authorEmail": "later@example.com",
    "committerName": "Later Dev",
    "committerEmail": "later@example.com",
    "message": "change {n}",
    "name": "{SERVICE}",
    "url": "https://github.com/acme/{SERVICE}/commit/{n}",
    "provider": "GitHub"
  }},
  "ci": {{
    "jobUrl": "https://github.com/acme/{SERVICE}/actions/runs/{n}",
    "start": "2023-05-01T10:00:00Z",
    "end": "2023-05-01T10:04:00Z"
  }}
}}
"#
    )
}

fn manifests(id: &str, env: &str) -> Vec<(String, String)> {
    vec![
        (
            "deployment.yaml".to_string(),
            format!("kind: Deployment\n# {env}\nimage: acme/{SERVICE}:{id}\n"),
        ),
        (
            "service.yaml".to_string(),
            format!("kind: Service\n# {env} {id}\n"),
        ),
    ]
}

/// Writes a build folder in the work clone (replacing the old one), as CI
/// jobs did.
fn write_build(work: &Path, branch: &str, id: &str, spec: &str) {
    let base = work.join("builds").join(SERVICE).join(branch);
    if base.exists() {
        std::fs::remove_dir_all(&base).unwrap();
    }
    for env in ENVS {
        std::fs::create_dir_all(base.join(env)).unwrap();
        for (name, text) in manifests(id, env) {
            std::fs::write(base.join(env).join(name), text).unwrap();
        }
    }
    std::fs::write(base.join("artifact.json"), spec).unwrap();
}

/// Writes a release folder in the work clone, as the original did and as a
/// person editing by hand would.
fn write_release(work: &Path, env: &str, id: &str, spec: &str) {
    let base = work.join(env).join("releases").join(env).join(SERVICE);
    if base.exists() {
        std::fs::remove_dir_all(&base).unwrap();
    }
    std::fs::create_dir_all(&base).unwrap();
    for (name, text) in manifests(id, env) {
        std::fs::write(base.join(name), text).unwrap();
    }
    std::fs::write(base.join("artifact.json"), spec).unwrap();
}

fn commit(work: &Path, message: &str) {
    git(work, &["add", "-A"]);
    let file = work.join("../message.txt");
    std::fs::write(&file, message).unwrap();
    git(
        work,
        &[
            "commit",
            "-q",
            "--cleanup=verbatim",
            "-F",
            file.to_str().unwrap(),
        ],
    );
}

/// The original's later-era release message.
fn original_release(env: &str, id: &str, by: &str, intent: &str) -> String {
    format!(
        "[{env}/{SERVICE}] release {id} by {by}@example.com\n\nService: {SERVICE}\nEnvironment: {env}\nArtifact-ID: {id}\nArtifact-released-by: {name} <{by}@example.com>\nArtifact-created-by: Later Dev <later@example.com>\nRelease-intent: {intent}\n",
        name = by[..1].to_uppercase() + &by[1..]
    )
}

const SEED: &str = "master-1a1a1a1a1a-2b2b2b2b2b";
const LATER: &str = "master-3c3c3c3c3c-4d4d4d4d4d";
const NEWEST: &str = "master-5e5e5e5e5e-6f6f6f6f6f";

/// The mixed history, oldest first.
fn mixed_history() -> ConfigRepo {
    let repo = ConfigRepo::new();
    let work = repo.work.clone();
    // Seed era: CI committed the build with "build tag" in a free-form
    // message, and the original released it with a bare title.
    write_build(&work, "master", SEED, &seed_spec(SEED));
    commit(
        &work,
        &format!("Jenkins build #1 of {SERVICE}: build tag {SEED} [skip ci]\n"),
    );
    write_release(&work, "dev", SEED, &seed_spec(SEED));
    commit(
        &work,
        &format!("[dev/{SERVICE}] release {SEED} by carol@example.com\n"),
    );
    // Later era: `[<svc>] artifact <id> by <email>` builds, trailers.
    write_build(&work, "master", LATER, &later_spec(LATER, 2));
    commit(
        &work,
        &format!("[{SERVICE}] artifact {LATER} by ci@example.com\n"),
    );
    write_release(&work, "dev", LATER, &later_spec(LATER, 2));
    commit(
        &work,
        &original_release("dev", LATER, "alice", "ReleaseBranch"),
    );
    write_release(&work, "staging", LATER, &later_spec(LATER, 2));
    commit(
        &work,
        &original_release("staging", LATER, "alice", "Promote"),
    );
    // By hand: someone put the seed build into prod, saying nothing.
    write_release(&work, "prod", SEED, &seed_spec(SEED));
    commit(&work, "hotfix: pin prod to the old build\n");
    repo.push();
    repo
}

async fn status_of(
    client: &mut pb::release_service_client::ReleaseServiceClient<tonic::transport::Channel>,
) -> Vec<pb::EnvironmentStatus> {
    client
        .status(pb::StatusRequest {
            service: SERVICE.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .environments
}

fn running(status: &[pb::EnvironmentStatus], env: &str) -> String {
    status
        .iter()
        .find(|s| s.environment == env)
        .and_then(|s| s.artifact.as_ref())
        .map(|a| a.artifact_id.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_history_written_by_every_era_reads_and_writes_correctly() {
    let repo = mixed_history();
    let server = TestServer::start(&repo.remote).await;
    let mut client = server.client().await;

    // Status: what each era left, with who released it.
    let status = status_of(&mut client).await;
    assert_eq!(running(&status, "dev"), LATER);
    assert_eq!(running(&status, "staging"), LATER);
    assert_eq!(running(&status, "prod"), SEED);
    let dev = status.iter().find(|s| s.environment == "dev").unwrap();
    assert_eq!(
        dev.released_by.as_ref().unwrap().email,
        "alice@example.com",
        "the original's Artifact-released-by trailer names the releaser"
    );
    assert_eq!(dev.artifact.as_ref().unwrap().branch, "master");
    let prod = status.iter().find(|s| s.environment == "prod").unwrap();
    assert_eq!(
        prod.released_by.as_ref().unwrap().email,
        "ci@example.com",
        "a manual commit's releaser is its committer"
    );
    let seed_artifact = prod.artifact.as_ref().unwrap();
    assert_eq!(seed_artifact.branch, "master", "from the build's folder");
    assert_eq!(
        seed_artifact.vulnerabilities,
        Some(pb::Vulnerabilities {
            high: 1,
            medium: 1,
            low: 2
        })
    );
    assert_eq!(
        seed_artifact.build_date.as_ref().map(|t| t.seconds),
        Some(1_551_434_400),
        "a zero ci.end falls back to ci.start (2019-03-01T10:00:00Z)"
    );

    // Release history, newest first, with intents from trailers and titles.
    let history = client
        .describe_release(pb::DescribeReleaseRequest {
            service: SERVICE.into(),
            environment: "dev".into(),
            page_size: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .releases;
    let seen: Vec<(&str, pb::ReleaseIntent, &str)> = history
        .iter()
        .map(|r| {
            (
                r.artifact_id.as_str(),
                r.intent(),
                r.released_by.as_ref().unwrap().email.as_str(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (LATER, pb::ReleaseIntent::ReleaseBranch, "alice@example.com"),
            (SEED, pb::ReleaseIntent::Unspecified, "carol@example.com"),
        ]
    );

    // Builds of both eras, each with the commit that added it.
    let builds = client
        .describe_artifact(pb::DescribeArtifactRequest {
            service: SERVICE.into(),
            page_size: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .artifacts;
    let ids: Vec<&str> = builds.iter().map(|b| b.artifact_id.as_str()).collect();
    assert_eq!(ids, vec![LATER, SEED]);
    for build in &builds {
        let subject = repo.remote_git(&["log", "-1", "--format=%s", &build.build_commit_sha]);
        assert!(
            subject.contains(&build.artifact_id),
            "{} was added by {subject:?}",
            build.artifact_id
        );
    }

    // Promote prod from staging: the later-era build, found through the
    // `[<svc>] artifact` commit, with that build's prod manifests.
    let promoted = client
        .promote(pb::PromoteRequest {
            service: SERVICE.into(),
            environment: "prod".into(),
            committer: alice(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(promoted.result.unwrap().artifact_id, LATER);
    assert_eq!(
        repo.remote_file(&format!("prod/releases/prod/{SERVICE}/deployment.yaml")),
        Some(manifests(LATER, "prod")[0].1.clone())
    );

    // Release by id a seed-era build that is no longer its branch's latest:
    // its files come from its own build commit.
    let released = client
        .release(release_artifact(SERVICE, "staging", SEED))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!(released.artifact_id, SEED);
    assert_eq!(released.branch, "master");
    assert_eq!(
        repo.remote_file(&format!(
            "staging/releases/staging/{SERVICE}/deployment.yaml"
        )),
        Some(manifests(SEED, "staging")[0].1.clone())
    );
    assert_eq!(
        repo.remote_file(&format!("staging/releases/staging/{SERVICE}/artifact.json")),
        Some(seed_spec(SEED)),
        "the build's own artifact.json, byte for byte"
    );

    // Rollback in dev: back to what the seed-era release put there.
    let rolled = client
        .rollback(pb::RollbackRequest {
            service: SERVICE.into(),
            environment: "dev".into(),
            committer: alice(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rolled.result.unwrap().artifact_id, SEED);
    assert_eq!(rolled.previous_artifact_id, LATER);
    assert_eq!(
        repo.remote_file(&format!("dev/releases/dev/{SERVICE}/service.yaml")),
        Some(manifests(SEED, "dev")[1].1.clone())
    );

    // Auto-release: a policy, then a later-era build that CI pushes
    // straight to the remote; the next fetch releases it.
    let mut policies = server.policy_client().await;
    policies
        .apply_auto_release(pb::ApplyAutoReleaseRequest {
            request_id: String::new(),
            service: SERVICE.into(),
            branch: "master".into(),
            environment: "dev".into(),
            committer: alice(),
        })
        .await
        .unwrap();
    let work = repo.work.clone();
    git(&work, &["pull", "-q", "--rebase", "origin", "master"]);
    write_build(&work, "master", NEWEST, &later_spec(NEWEST, 3));
    commit(
        &work,
        &format!("[{SERVICE}] artifact {NEWEST} by ci@example.com\n"),
    );
    repo.push();
    server.sync().await;
    let status = status_of(&mut client).await;
    assert_eq!(running(&status, "dev"), NEWEST, "auto-released");
    let subject = repo.remote_git(&["log", "-1", "--format=%s%n%b", "master"]);
    assert!(subject.contains("Release-intent: AutoRelease"), "{subject}");

    // The whole dev history now mixes every era, ours on top.
    let history = client
        .describe_release(pb::DescribeReleaseRequest {
            service: SERVICE.into(),
            environment: "dev".into(),
            page_size: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .releases;
    let seen: Vec<(&str, pb::ReleaseIntent)> = history
        .iter()
        .map(|r| (r.artifact_id.as_str(), r.intent()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (NEWEST, pb::ReleaseIntent::AutoRelease),
            (SEED, pb::ReleaseIntent::Rollback),
            (LATER, pb::ReleaseIntent::ReleaseBranch),
            (SEED, pb::ReleaseIntent::Unspecified),
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn the_originals_rollback_and_auto_release_titles_carry_their_intent() {
    let repo = ConfigRepo::new();
    let work = repo.work.clone();
    write_build(&work, "master", SEED, &seed_spec(SEED));
    commit(&work, &format!("build tag {SEED}\n"));
    write_release(&work, "dev", SEED, &seed_spec(SEED));
    commit(
        &work,
        &format!("[dev/{SERVICE}] auto release {SEED} by ci@example.com\n"),
    );
    write_build(&work, "master", LATER, &later_spec(LATER, 2));
    commit(&work, &format!("build tag {LATER}\n"));
    write_release(&work, "dev", LATER, &later_spec(LATER, 2));
    commit(
        &work,
        &format!("[dev/{SERVICE}] release {LATER} by bob@example.com\n"),
    );
    write_release(&work, "dev", SEED, &seed_spec(SEED));
    commit(
        &work,
        &format!("[dev/{SERVICE}] rollback {LATER} to {SEED} by bob@example.com\n"),
    );
    repo.push();
    let server = TestServer::start(&repo.remote).await;
    let mut client = server.client().await;
    let history = client
        .describe_release(pb::DescribeReleaseRequest {
            service: SERVICE.into(),
            environment: "dev".into(),
            page_size: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .releases;
    let seen: Vec<(&str, pb::ReleaseIntent)> = history
        .iter()
        .map(|r| (r.artifact_id.as_str(), r.intent()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (SEED, pb::ReleaseIntent::Rollback),
            (LATER, pb::ReleaseIntent::Unspecified),
            (SEED, pb::ReleaseIntent::AutoRelease),
        ]
    );
    // The seed build was auto-released by the original: a policy applied now
    // must not release it again when the server looks at that branch.
    let mut policies = server.policy_client().await;
    policies
        .apply_auto_release(pb::ApplyAutoReleaseRequest {
            request_id: String::new(),
            service: SERVICE.into(),
            branch: "master".into(),
            environment: "dev".into(),
            committer: alice(),
        })
        .await
        .unwrap();
    // A build title that names another id than its file: the file decides.
    git(&work, &["pull", "-q", "--rebase", "origin", "master"]);
    write_build(&work, "master", NEWEST, &later_spec(NEWEST, 3));
    commit(&work, &format!("[{SERVICE}] build tag {SEED}\n"));
    repo.push();
    server.sync().await;
    let status = status_of(&mut client).await;
    assert_eq!(running(&status, "dev"), NEWEST);
    server.stop().await;
}

#[tokio::test]
async fn a_committed_artifact_json_with_an_old_tail_is_read() {
    let repo = ConfigRepo::new();
    let work = repo.work.clone();
    // Rewritten without truncating: the end of a longer, older file stays.
    let spec = format!("{}    }}\n  ]\n}}\n", seed_spec(SEED));
    write_build(&work, "master", SEED, &spec);
    commit(&work, &format!("build tag {SEED}\n"));
    repo.push();
    let server = TestServer::start(&repo.remote).await;
    let mut client = server.client().await;
    let result = client
        .release(release_branch(SERVICE, "dev", "master"))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!(result.artifact_id, SEED);
    let status = status_of(&mut client).await;
    assert_eq!(running(&status, "dev"), SEED);
    server.stop().await;
}
