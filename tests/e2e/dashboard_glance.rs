//! The matrix at a glance, in a real browser against the real server: the
//! per-environment counts of deployed, progressing, failed, pending and
//! promotable services and the filter by state (kept in the URL) agree
//! with what Status says of every service; every age is a `<time
//! datetime>` with its exact time on hover and on focus; promotable and
//! other-branch cells say so in words; ids are whole in the page and one
//! click copies them; releases link to their config repository commit.

use std::collections::BTreeMap;
use std::time::Duration;

use release_manager::pb;
use serde_json::{json, Value};

use crate::support::webdriver::Browser;
use crate::support::*;

const SERVICES: [&str; 5] = ["cart", "checkout", "search", "shop", "stock"];
const COMMIT_PAGE: &str = "https://github.com/acme/k8s-config/commit/";

/// Releases everywhere but the same everywhere; reports in dev (deployed)
/// and prod (failed), none in staging; later releases no report covers
/// (pending); promotable cells, one running nothing.
async fn fixture(repo: &mut ConfigRepo, server: &TestServer) {
    let mut client = server.client().await;
    for (service, env, branch) in [
        ("search", "dev", "master"),
        ("search", "staging", "master"),
        ("search", "prod", "master"),
        ("cart", "dev", "master"),
        ("cart", "staging", "master"),
        ("checkout", "dev", "feature/fast"),
        ("stock", "dev", "master"),
        ("stock", "staging", "master"),
        ("stock", "prod", "master"),
    ] {
        client
            .release(release_branch(service, env, branch))
            .await
            .unwrap();
    }
    let tip = server.status("stock").await.environments[2]
        .release_commit_sha
        .clone();
    for (env, state) in [
        ("dev", pb::DeploymentState::Deployed),
        ("prod", pb::DeploymentState::Failed),
    ] {
        client
            .report_deployment(pb::ReportDeploymentRequest {
                environment: env.into(),
                revision: tip.clone(),
                state: state as i32,
                message: "as the controller says".into(),
                source: "test".into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    // After the reports: a new build of cart in dev, shop released.
    repo.add_build("cart", "master", 3);
    repo.push();
    server.sync().await;
    for (service, env) in [("cart", "dev"), ("shop", "dev"), ("shop", "prod")] {
        client
            .release(release_branch(service, env, "master"))
            .await
            .unwrap();
    }
}

/// Per environment, what Status says: counts of each state as the
/// dashboard counts them (states only where a controller reports).
async fn expected_counts(server: &TestServer, reporting: &[&str]) -> Value {
    let mut counts: BTreeMap<String, BTreeMap<&str, u64>> = BTreeMap::new();
    for service in SERVICES {
        let status = server.status(service).await;
        let mut before: Option<String> = None;
        for env in &status.environments {
            let entry = counts.entry(env.environment.clone()).or_insert_with(|| {
                ["deployed", "progressing", "failed", "pending", "promotable"]
                    .into_iter()
                    .map(|s| (s, 0))
                    .collect()
            });
            let artifact = env.artifact.as_ref().map(|a| a.artifact_id.clone());
            if let Some(previous) = &before {
                if artifact.as_ref() != Some(previous) {
                    *entry.get_mut("promotable").unwrap() += 1;
                }
            }
            before = artifact.clone();
            let state = env.deployment.as_ref().map(|d| d.state);
            if artifact.is_some() && !reporting.contains(&env.environment.as_str()) {
                assert_eq!(
                    state,
                    Some(pb::DeploymentState::Pending as i32),
                    "no reports in {}",
                    env.environment
                );
                continue;
            }
            let word = match state.and_then(|s| pb::DeploymentState::try_from(s).ok()) {
                Some(pb::DeploymentState::Deployed) => "deployed",
                Some(pb::DeploymentState::Failed) => "failed",
                Some(pb::DeploymentState::Progressing) => "progressing",
                Some(pb::DeploymentState::Pending) if artifact.is_some() => "pending",
                _ => continue,
            };
            *entry.get_mut(word).unwrap() += 1;
        }
    }
    json!(counts)
}

/// Services Status shows in `state` (in `env`, or anywhere).
async fn expected_rows(server: &TestServer, state: &str, env: Option<&str>) -> Value {
    let wanted = match state {
        "deployed" => pb::DeploymentState::Deployed,
        "failed" => pb::DeploymentState::Failed,
        _ => pb::DeploymentState::Pending,
    };
    let mut rows = Vec::new();
    for service in SERVICES {
        let status = server.status(service).await;
        let hit = status.environments.iter().any(|e| {
            env.is_none_or(|env| e.environment == env)
                && e.artifact.is_some()
                && e.environment != "staging"
                && e.deployment.as_ref().map(|d| d.state) == Some(wanted as i32)
        });
        if hit {
            rows.push(service);
        }
    }
    json!(rows)
}

const COUNTS: &str =
    "return Object.fromEntries([...document.querySelectorAll('#matrix thead th[data-environment]')]
  .map(th => [th.dataset.environment, Object.fromEntries([...th.querySelectorAll('.count')]
    .map(c => [c.dataset.state, Number(c.dataset.count)]))]));";
const SHOWN: &str =
    "return [...document.querySelectorAll('#rows tr')].filter(tr => !tr.hidden).map(tr => tr.dataset.service);";
const LIVE: &str = "return document.getElementById('connection').dataset.state === 'live';";

#[tokio::test]
async fn counts_and_the_state_filter_agree_with_status() {
    let mut repo = ConfigRepo::new();
    for service in SERVICES {
        for n in 1..=2 {
            repo.add_build(service, "master", n);
        }
    }
    repo.add_build("checkout", "feature/fast", 1);
    repo.push();
    let port = free_port();
    let server = TestServer::start_with(&repo.remote, |config| {
        config.http_listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
        config.config_repo_web_url =
            Some(server_api::CommitLinks::parse(&format!("{COMMIT_PAGE}{{commit}}")).unwrap());
    })
    .await;
    fixture(&mut repo, &server).await;
    let base = format!("http://127.0.0.1:{port}");
    let browser = Browser::start().await;

    // Counts, against Status.
    browser.open(&format!("{base}/")).await;
    browser
        .wait_for("the event stream", Duration::from_secs(10), LIVE)
        .await;
    let expected = expected_counts(&server, &["dev", "prod"]).await;
    assert_eq!(browser.run(COUNTS, json!([])).await, expected);
    for (env, state) in [
        ("dev", "deployed"),
        ("dev", "pending"),
        ("prod", "failed"),
        ("prod", "pending"),
        ("staging", "promotable"),
        ("prod", "promotable"),
    ] {
        assert!(
            expected[env][state].as_u64() > Some(0),
            "the fixture has {state} in {env}: {expected}"
        );
    }
    let staging = browser
        .run(
            "const th = document.querySelector('th[data-environment=\"staging\"]'); \
             return [th.dataset.reporting, th.querySelector('.unreported').hidden, \
                     [...th.querySelectorAll('.count:not([hidden])')].map(c => c.dataset.state)];",
            json!([]),
        )
        .await;
    assert_eq!(staging, json!(["false", false, ["promotable"]]));

    // The filter from the URL, rendered by the server.
    browser
        .open(&format!("{base}/?state=pending&env=dev"))
        .await;
    assert_eq!(
        browser.run(SHOWN, json!([])).await,
        expected_rows(&server, "pending", Some("dev")).await
    );
    // Changed in the page: the URL keeps it, and a reload shows the same.
    browser
        .run(
            "const s = document.getElementById('state'); s.value = 'failed'; \
             document.getElementById('state-env').value = ''; \
             s.dispatchEvent(new Event('change')); return true;",
            json!([]),
        )
        .await;
    let failed = expected_rows(&server, "failed", None).await;
    assert_eq!(browser.run(SHOWN, json!([])).await, failed);
    assert_eq!(
        browser.run("return location.search;", json!([])).await,
        json!("?state=failed")
    );
    browser.open(&format!("{base}/?state=failed")).await;
    assert_eq!(browser.run(SHOWN, json!([])).await, failed);
    // A count is a link to its filter.
    browser
        .click("th[data-environment='dev'] a.count.deployed")
        .await;
    assert_eq!(
        browser.run("return location.search;", json!([])).await,
        json!("?state=deployed&env=dev")
    );
    assert_eq!(
        browser.run(SHOWN, json!([])).await,
        expected_rows(&server, "deployed", Some("dev")).await
    );

    // A release while the page is open: counts and filter follow.
    browser.open(&format!("{base}/?state=pending")).await;
    browser
        .wait_for("the event stream", Duration::from_secs(10), LIVE)
        .await;
    let (code, _, err) = hamctl(&[
        "--server",
        &server.url,
        "promote",
        "--service",
        "cart",
        "--env",
        "staging",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let expected = expected_counts(&server, &["dev", "prod"]).await;
    wait_for(
        "the counts after the promotion",
        Duration::from_secs(5),
        || async { (browser.run(COUNTS, json!([])).await == expected).then_some(()) },
    )
    .await;
    assert_eq!(
        browser.run(SHOWN, json!([])).await,
        expected_rows(&server, "pending", None).await
    );
    server.stop().await;
}

#[tokio::test]
async fn values_are_exact_labelled_and_copyable() {
    let mut repo = ConfigRepo::new();
    for service in SERVICES {
        for n in 1..=2 {
            repo.add_build(service, "master", n);
        }
    }
    repo.add_build("checkout", "feature/fast", 1);
    repo.push();
    let port = free_port();
    let server = TestServer::start_with(&repo.remote, |config| {
        config.http_listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
        config.config_repo_web_url =
            Some(server_api::CommitLinks::parse(&format!("{COMMIT_PAGE}{{commit}}")).unwrap());
    })
    .await;
    fixture(&mut repo, &server).await;
    let browser = Browser::start().await;
    browser.open(&format!("http://127.0.0.1:{port}/")).await;
    browser
        .wait_for("the event stream", Duration::from_secs(10), LIVE)
        .await;

    // Every cell that runs something: a <time datetime> whose title and
    // focus tip are the exact time, linked to the release commit.
    let cells = browser
        .run(
            "return [...document.querySelectorAll('#rows td[data-artifact]:not([data-artifact=\"\"])')].map(td => {
               const time = td.querySelector('time[datetime]');
               return { service: td.closest('tr').dataset.service, env: td.dataset.environment,
                 id: td.querySelector('button.id').textContent, title: td.querySelector('button.id').title,
                 seconds: Date.parse(time.getAttribute('datetime')) / 1000,
                 // The same time as people read it.
                 exact: (() => { const iso = time.getAttribute('datetime');
                   return /^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ$/.test(iso)
                     && time.title === iso.slice(0, 10) + ' ' + iso.slice(11, 19) + ' UTC'; })(),
                 commit: td.querySelector('a.commit').getAttribute('href') };
             });",
            json!([]),
        )
        .await;
    let mut checked = 0;
    for service in SERVICES {
        for env in server.status(service).await.environments {
            let Some(artifact) = env.artifact else {
                continue;
            };
            let cell = cells
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["service"] == service && c["env"] == env.environment.as_str())
                .unwrap_or_else(|| panic!("{service} in {}: {cells}", env.environment));
            let released = env.released_at.as_ref().unwrap().seconds;
            assert_eq!(
                cell["id"],
                json!(artifact.artifact_id),
                "the whole id is in the page"
            );
            assert_eq!(
                cell["title"],
                json!(format!("Copy {}", artifact.artifact_id))
            );
            assert_eq!(cell["seconds"], json!(released));
            assert_eq!(cell["exact"], json!(true), "{cell}");
            assert_eq!(
                cell["commit"],
                json!(format!("{COMMIT_PAGE}{}", env.release_commit_sha))
            );
            checked += 1;
        }
    }
    assert_eq!(cells.as_array().unwrap().len(), checked);
    let tip = browser
        .run(
            "const link = document.querySelector('#rows a.commit'); link.focus(); \
             const tip = document.getElementById('tip'); \
             return [tip.hidden, tip.textContent, link.querySelector('time').title];",
            json!([]),
        )
        .await;
    assert_eq!(tip[0], json!(false), "{tip}");
    assert_eq!(tip[1], tip[2], "{tip}");

    // Promotable and other-branch cells say so, not only by colour.
    let marks = browser
        .run(
            "return [...document.querySelectorAll('#rows td.promotable, #rows td.branch')].map(td => [
               td.closest('tr').dataset.service + '/' + td.dataset.environment,
               td.classList.contains('promotable') ? td.querySelector('a.mark.promotable')?.getAttribute('aria-label') : null,
               td.classList.contains('branch') ? td.querySelector('.mark.branch[role=img]')?.getAttribute('aria-label') : null]);",
            json!([]),
        )
        .await;
    let marks = marks.as_array().unwrap();
    assert!(marks.len() >= 4, "{marks:?}");
    for mark in marks {
        let (at, promotable, branch) = (mark[0].as_str().unwrap(), &mark[1], &mark[2]);
        let env = at.split('/').nth(1).unwrap();
        if !promotable.is_null() {
            let before = if env == "prod" { "staging" } else { "dev" };
            assert_eq!(
                promotable,
                &json!(format!(
                    "promotable from {before}: compare {before} with {env}"
                )),
                "{at}"
            );
        }
        if !branch.is_null() {
            assert_eq!(branch, &json!("not the default branch (master)"), "{at}");
        }
        assert!(
            !promotable.is_null() || !branch.is_null(),
            "{at} says nothing in words"
        );
    }

    // One click copies the whole id.
    browser
        .click("#row-checkout td[data-environment='dev'] button.id")
        .await;
    browser
        .wait_for(
            "the copy to be confirmed",
            Duration::from_secs(5),
            "return document.getElementById('toast')?.textContent === 'Copied feature-fast-checkout-001';",
        )
        .await;
    server.stop().await;
}
