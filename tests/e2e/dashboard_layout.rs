//! The dashboard's layout in a real browser (headless Chromium) at a
//! phone's width (390 CSS pixels) and a laptop's (1400): on the phone no
//! element of the matrix, a service's page or the comparison is cut off
//! (no element's content is wider than its box: `scrollWidth >
//! clientWidth`), nothing scrolls sideways and every deployment badge is in
//! sight; at 1400 none of the pages scrolls sideways. Screenshots of every
//! page at both widths, light and dark, are written where the test prints.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::webdriver::Browser;
use crate::support::*;

/// Services with the long names, branches and ids that used to be cut off.
const LONG: [&str; 3] = [
    "payments-reconciliation-worker",
    "search-indexer",
    "notification-dispatcher-eu-west",
];

fn fixture() -> ConfigRepo {
    let mut repo = ConfigRepo::new();
    for service in LONG {
        for n in 1..=2 {
            repo.add_build(service, "master", n);
        }
        repo.add_build(service, "renovate/aws-sdk-go-v2-monorepo", 1);
    }
    repo.push();
    repo
}

async fn releases(server: &TestServer) {
    let mut client = server.client().await;
    for (service, env, branch) in [
        (LONG[0], "dev", "renovate/aws-sdk-go-v2-monorepo"),
        (LONG[0], "staging", "master"),
        (LONG[0], "prod", "master"),
        (LONG[1], "dev", "master"),
        (LONG[1], "staging", "master"),
        (LONG[2], "dev", "master"),
    ] {
        client
            .release(release_branch(service, env, branch))
            .await
            .unwrap();
    }
    shop::push_and_release(&server.url, None, None).await;
    // The cluster's word on every release so far: badges in dev and prod.
    let tip = server.status(shop::SERVICE).await.environments[2]
        .release_commit_sha
        .clone();
    for (environment, state, message) in [
        ("dev", release_manager::pb::DeploymentState::Deployed, ""),
        (
            "prod",
            release_manager::pb::DeploymentState::Failed,
            "ImagePullBackOff: back-off pulling image registry.example.com/shop",
        ),
    ] {
        client
            .report_deployment(release_manager::pb::ReportDeploymentRequest {
                environment: environment.into(),
                revision: tip.clone(),
                state: state as i32,
                message: message.into(),
                source: "test".into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
}

/// Every element whose content is wider than its box, and the page's own
/// width against the viewport's.
const MEASURE: &str = "
const describe = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
  (typeof e.className === 'string' && e.className ? '.' + e.className.trim().split(/\\s+/).join('.') : '');
const cut = [...document.querySelectorAll('*')]
  .filter((e) => e.scrollWidth > e.clientWidth)
  .map((e) => describe(e) + ' ' + e.scrollWidth + '>' + e.clientWidth + ' ' + (e.textContent || '').trim().slice(0, 40));
return { cut, page: document.documentElement.scrollWidth, viewport: document.documentElement.clientWidth,
         scrollable: document.documentElement.scrollWidth > document.documentElement.clientWidth };";

/// Every deployment badge: whether it is in the viewport and inside every
/// ancestor that clips, and how many cells have a state.
const BADGES: &str = "
const badges = [...document.querySelectorAll('.deploy')];
const seen = badges.filter((b) => {
  const r = b.getBoundingClientRect();
  if (r.width === 0 || r.left < 0 || r.right > document.documentElement.clientWidth) return false;
  for (let a = b.parentElement; a; a = a.parentElement) {
    const s = getComputedStyle(a);
    if (s.overflowX === 'visible' && s.overflowY === 'visible') continue;
    const c = a.getBoundingClientRect();
    if (r.left < c.left - 0.5 || r.right > c.right + 0.5 || r.top < c.top - 0.5 || r.bottom > c.bottom + 0.5) return false;
  }
  return true;
});
return { badges: badges.length, seen: seen.length,
         states: document.querySelectorAll('td[data-state]:not([data-state=\"\"])').length };";

const LIVE: &str = "return document.getElementById('connection').dataset.state === 'live';";

#[tokio::test]
async fn a_phone_sees_everything_and_nothing_scrolls_sideways() {
    let repo = fixture();
    let port = free_port();
    let server = TestServer::start_with(&repo.remote, |config| {
        config.http_listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
    })
    .await;
    releases(&server).await;
    let base = format!("http://127.0.0.1:{port}");
    let pages = [
        ("matrix", "/".to_string()),
        ("service", format!("/service/{}", shop::SERVICE)),
        (
            "compare",
            format!("/service/{}/compare?from=staging&to=prod", shop::SERVICE),
        ),
    ];
    let browser = Browser::start().await;
    for (width, height, phone) in [(390u64, 844, true), (1400, 900, false)] {
        browser.viewport(width as u32, height, phone).await;
        for (name, path) in &pages {
            browser.prefer_light().await;
            browser.open(&format!("{base}{path}")).await;
            browser
                .wait_for("the event stream", Duration::from_secs(10), LIVE)
                .await;
            let measured = browser.run(MEASURE, json!([])).await;
            // A laptop's vertical scrollbar takes its width from the page.
            let viewport = measured["viewport"].as_u64().unwrap_or(0);
            assert!(
                (width - 20..=width).contains(&viewport),
                "{name}: {measured}"
            );
            assert_eq!(
                measured["scrollable"],
                json!(false),
                "{name} at {width} px scrolls sideways: {measured}"
            );
            if phone {
                assert_eq!(
                    measured["cut"],
                    json!([]),
                    "{name} at {width} px cuts these off"
                );
                let badges = browser.run(BADGES, json!([])).await;
                assert_eq!(badges["seen"], badges["badges"], "{name}: {badges}");
                if *name == "matrix" {
                    assert_eq!(badges["badges"], badges["states"], "{badges}");
                    assert_eq!(badges["badges"], json!(6), "4 in dev, 2 in prod: {badges}");
                }
            }
            for scheme in ["light", "dark"] {
                if scheme == "dark" {
                    browser.prefer_dark().await;
                }
                // Highlighted cells fade between colours; wait for the fade.
                browser
                    .wait_for(
                        "the colours to settle",
                        Duration::from_secs(5),
                        "return [...document.querySelectorAll('.cell')].every(c => \
                         c.getAnimations().length === 0);",
                    )
                    .await;
                let shot = browser
                    .screenshot_page(&format!("{name}-{width}-{scheme}"))
                    .await;
                println!("screenshot: {}", shot.display());
            }
        }
    }
    let value: Value = browser.run("return document.title;", json!([])).await;
    assert!(
        value.as_str().unwrap_or("").contains("staging → prod"),
        "{value}"
    );
    server.stop().await;
}
