//! The web dashboard in a real browser (Debian's headless Chromium, through
//! ChromeDriver) against the real server: the matrix shows what runs in
//! every cell, a release made with hamctl appears without a reload, the
//! page recovers after the server restarts (dimmed, saying since when,
//! while it is away), and without the token nothing
//! of the repository is served. Screenshots of the matrix and of a service
//! page are written where the test prints.

use std::time::Duration;

use crate::support::webdriver::Browser;
use crate::support::*;
use release_manager::pb;
use serde_json::{json, Value};

const SERVICES: [&str; 4] = ["cart", "checkout", "search", "shop"];

/// Four services with builds on master and a feature branch, released
/// here and there.
fn fixture() -> ConfigRepo {
    let mut repo = ConfigRepo::new();
    for service in SERVICES {
        for n in 1..=2 {
            repo.add_build(service, "master", n);
        }
        repo.add_build(service, "feature/fast", 1);
    }
    repo.push();
    repo
}

async fn releases(server: &TestServer, token: &str) {
    let mut client = client_with_token(&server.url, (!token.is_empty()).then_some(token)).await;
    for (service, env, source) in [
        ("cart", "dev", "master"),
        ("cart", "staging", "master"),
        ("checkout", "dev", "feature/fast"),
        ("search", "dev", "master"),
        ("search", "staging", "master"),
        ("search", "prod", "master"),
    ] {
        client
            .release(release_branch(service, env, source))
            .await
            .unwrap();
    }
}

async fn start(
    repo: &ConfigRepo,
    data: Option<tempfile::TempDir>,
    http_port: u16,
    token: Option<&str>,
) -> TestServer {
    let data = data.unwrap_or_else(|| tempfile::tempdir().unwrap());
    let token = token.map(str::to_string);
    TestServer::start_in(&repo.remote, data, move |config| {
        config.http_listen = Some(format!("127.0.0.1:{http_port}").parse().unwrap());
        if let Some(token) = token {
            config.auth.hamctl_token = Some(token);
            config.auth.artifact_token = Some("ci".into());
            config.auth.unauthenticated = false;
        }
    })
    .await
}

/// What the page shows: service -> artifact id per environment.
async fn shown(browser: &Browser) -> Value {
    browser
        .run(
            "return Object.fromEntries([...document.querySelectorAll('#rows tr')].map(tr => \
             [tr.dataset.service, [...tr.querySelectorAll('td')].map(td => td.dataset.artifact)]));",
            json!([]),
        )
        .await
}

/// What the server says runs, as the page should show it.
async fn running(server: &TestServer, token: &str) -> Value {
    let mut client = client_with_token(&server.url, (!token.is_empty()).then_some(token)).await;
    let mut all = serde_json::Map::new();
    for service in SERVICES {
        let status = client
            .status(pb::StatusRequest {
                service: service.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let cells: Vec<Value> = status
            .environments
            .iter()
            .map(|e| {
                json!(e
                    .artifact
                    .as_ref()
                    .map(|a| a.artifact_id.clone())
                    .unwrap_or_default())
            })
            .collect();
        all.insert(service.to_string(), Value::Array(cells));
    }
    Value::Object(all)
}

const LIVE: &str = "return document.getElementById('connection').dataset.state === 'live';";

#[tokio::test]
async fn the_matrix_shows_every_cell_and_follows_releases_live() {
    let repo = fixture();
    let port = free_port();
    let server = start(&repo, None, port, None).await;
    releases(&server, "").await;
    let browser = Browser::start().await;
    let base = format!("http://127.0.0.1:{port}");
    browser.open(&format!("{base}/")).await;
    browser
        .wait_for("the event stream", Duration::from_secs(10), LIVE)
        .await;
    assert_eq!(shown(&browser).await, running(&server, "").await);
    let highlighted = browser
        .run(
            "return [...document.querySelectorAll('#row-checkout td.branch, #row-search td.promotable')].length;",
            json!([]),
        )
        .await;
    assert_eq!(
        highlighted,
        json!(1),
        "checkout's feature build is marked; search runs one artifact everywhere"
    );
    let matrix = browser.screenshot("dashboard-matrix").await;
    println!("screenshot of the matrix: {}", matrix.display());

    // A release with hamctl shows up in the open page, without a reload.
    browser
        .run("window.notReloaded = true; return true;", json!([]))
        .await;
    const CART_HEIGHT: &str =
        "return document.getElementById('row-cart').getBoundingClientRect().height;";
    let height_before = browser.run(CART_HEIGHT, json!([])).await;
    let (code, _, err) = hamctl(&[
        "--server",
        &server.url,
        "promote",
        "--service",
        "cart",
        "--env",
        "prod",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let took = browser
        .wait_for(
            "the release in the page",
            Duration::from_secs(2),
            "return window.notReloaded === true && document.querySelectorAll('#row-cart td')[2].dataset.artifact !== '';",
        )
        .await;
    println!("the release appeared in the page after {took:?}");
    assert_eq!(shown(&browser).await, running(&server, "").await);
    assert_eq!(
        browser.run(CART_HEIGHT, json!([])).await,
        height_before,
        "a filled cell takes the room an empty one had"
    );

    // What the cluster reports shows in the cells, live too.
    let mut client = server.client().await;
    let tip = client
        .status(pb::StatusRequest {
            service: "cart".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .environments[2]
        .release_commit_sha
        .clone();
    for (env, state, message) in [
        ("dev", pb::DeploymentState::Deployed, ""),
        ("prod", pb::DeploymentState::Failed, "ImagePullBackOff"),
    ] {
        client
            .report_deployment(pb::ReportDeploymentRequest {
                environment: env.into(),
                revision: tip.clone(),
                state: state as i32,
                message: message.into(),
                source: "test".into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    browser
        .wait_for(
            "the deployment states in the page",
            Duration::from_secs(5),
            "return window.notReloaded === true && \
             document.querySelector('#row-cart td:nth-of-type(1) .deploy.deployed') !== null && \
             document.querySelector('#row-cart td:nth-of-type(3) .deploy.failed')?.title === 'ImagePullBackOff';",
        )
        .await;
    assert_eq!(
        browser.run(CART_HEIGHT, json!([])).await,
        height_before,
        "a state takes no extra room"
    );
    browser.prefer_dark().await;
    let background = browser
        .run(
            "return getComputedStyle(document.body).backgroundColor;",
            json!([]),
        )
        .await;
    assert_eq!(background, json!("rgb(15, 18, 22)"), "the dark palette");
    // Cells fade between colours; the screenshot waits for the fade.
    browser
        .wait_for(
            "the highlighted cells in dark colours",
            Duration::from_secs(5),
            "return getComputedStyle(document.querySelector('#row-checkout td.branch')).backgroundColor === 'rgb(21, 35, 64)';",
        )
        .await;
    let dark = browser.screenshot("dashboard-matrix-dark").await;
    println!("screenshot of the matrix, dark: {}", dark.display());

    // The filter keeps the rows that match, from the keyboard.
    let visible = browser
        .run(
            "const f = document.getElementById('filter'); f.focus(); f.value = 'chec'; \
             f.dispatchEvent(new Event('input')); \
             return [...document.querySelectorAll('#rows tr')].filter(tr => !tr.hidden).map(tr => tr.dataset.service);",
            json!([]),
        )
        .await;
    assert_eq!(visible, json!(["checkout"]));

    browser.open(&format!("{base}/service/search")).await;
    browser
        .wait_for("the event stream", Duration::from_secs(10), LIVE)
        .await;
    let text = browser
        .run("return document.body.innerText;", json!([]))
        .await;
    let text = text.as_str().unwrap();
    for expected in [
        "What runs where",
        "Releases",
        "Recent builds",
        "feature/fast",
        "master-search-002",
        "failed ImagePullBackOff",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} on the service page: {text}"
        );
    }
    let page = browser.screenshot("dashboard-service").await;
    println!("screenshot of a service page: {}", page.display());
    server.stop().await;
}

#[tokio::test]
async fn the_page_recovers_after_the_server_restarts() {
    let repo = fixture();
    let port = free_port();
    let server = start(&repo, None, port, None).await;
    let browser = Browser::start().await;
    browser.open(&format!("http://127.0.0.1:{port}/")).await;
    browser
        .wait_for("the event stream", Duration::from_secs(10), LIVE)
        .await;
    let data = server.stop().await;
    browser
        .wait_for(
            "the page to say it is disconnected",
            Duration::from_secs(10),
            "return document.getElementById('connection').dataset.state === 'disconnected';",
        )
        .await;
    // What it shows may be stale: dimmed (it fades), and it says since when.
    browser
        .wait_for(
            "the page to dim",
            Duration::from_secs(5),
            "return Number(getComputedStyle(document.querySelector('main')).opacity) < 0.5;",
        )
        .await;
    let stale = browser
        .run(
            "return [document.body.classList.contains('stale'), \
             document.getElementById('connection').textContent];",
            json!([]),
        )
        .await;
    assert_eq!(stale[0], json!(true), "{stale}");
    assert!(
        stale[1]
            .as_str()
            .unwrap()
            .starts_with("disconnected since "),
        "{stale}"
    );
    let shot = browser.screenshot("dashboard-disconnected").await;
    println!("screenshot while disconnected: {}", shot.display());
    let server = start(&repo, Some(data), port, None).await;
    releases(&server, "").await;
    browser
        .wait_for("the page to reconnect", Duration::from_secs(20), LIVE)
        .await;
    assert_eq!(
        browser
            .run(
                "return document.body.classList.contains('stale');",
                json!([])
            )
            .await,
        json!(false),
        "no longer dimmed"
    );
    browser
        .wait_for(
            "what changed while it was away",
            Duration::from_secs(10),
            "return document.querySelectorAll('#row-search td')[2].dataset.artifact !== '';",
        )
        .await;
    assert_eq!(shown(&browser).await, running(&server, "").await);
    server.stop().await;
}

#[tokio::test]
async fn without_the_token_nothing_of_the_repository_is_served() {
    let repo = fixture();
    let port = free_port();
    let server = start(&repo, None, port, Some("ops-secret")).await;
    releases(&server, "ops-secret").await;
    for path in [
        "/",
        "/service/cart",
        "/fragment/rows",
        "/fragment/row/cart",
        "/events",
    ] {
        let whole = http::get(std::net::SocketAddr::from(([127, 0, 0, 1], port)), path)
            .await
            .whole();
        let status_line = whole.lines().next().unwrap_or_default().to_string();
        // A page's refusal sends the browser to the sign-in with the page
        // it asked for (which it knew already); nothing else may name it.
        let answer: String = whole
            .lines()
            .filter(|line| !line.to_ascii_lowercase().starts_with("location:"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            status_line.contains("303") || status_line.contains("401"),
            "{path}: {status_line}"
        );
        for secret in ["cart", "master-", "checkout"] {
            assert!(
                !answer.contains(secret),
                "{path} gave away {secret:?}: {answer}"
            );
        }
    }
    // Signing in with the hamctl token opens it.
    let browser = Browser::start().await;
    browser.open(&format!("http://127.0.0.1:{port}/")).await;
    let text = browser
        .run("return document.body.innerText;", json!([]))
        .await;
    assert!(text.as_str().unwrap().contains("hamctl token"), "{text}");
    browser
        .run(
            "document.getElementById('token').value = 'wrong'; document.querySelector('form').submit(); return true;",
            json!([]),
        )
        .await;
    browser
        .wait_for(
            "the refusal",
            Duration::from_secs(10),
            "return document.body.innerText.includes('not the hamctl token');",
        )
        .await;
    browser
        .run(
            "document.getElementById('token').value = 'ops-secret'; document.querySelector('form').submit(); return true;",
            json!([]),
        )
        .await;
    browser
        .wait_for("the matrix", Duration::from_secs(10), LIVE)
        .await;
    assert_eq!(shown(&browser).await, running(&server, "ops-secret").await);
    let cookie = browser.run("return document.cookie;", json!([])).await;
    assert_eq!(cookie, json!(""), "the session cookie is HttpOnly");
    server.stop().await;
}
