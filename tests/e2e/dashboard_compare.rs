//! The comparison of two environments, one answer served three ways: the
//! `CompareEnvironments` RPC, `hamctl diff` and the dashboard's comparison
//! page (in a real browser), on a fixture whose answer is known
//! (`support::shop`: staging runs master build 3, prod build 1, and their
//! manifests differ in replicas and configuration). The manifest diff is
//! checked against `git diff` of the two release folders in the remote.

use std::time::Duration;

use release_manager::pb;
use serde_json::{json, Value};

use crate::support::webdriver::Browser;
use crate::support::*;

/// A build as the comparison lists it: id, source commit, author, first
/// line of the message, CI job, scan counts.
type BuildRow = (
    String,
    String,
    String,
    String,
    String,
    Option<(u32, u32, u32)>,
);

/// `+`, `-` or ` ` and the text of every line of every file, by path.
type Lines = Vec<(String, Vec<String>)>;

fn rpc_lines(answer: &pb::CompareEnvironmentsResponse, only_beyond: bool) -> Lines {
    answer
        .manifest_diff
        .iter()
        .map(|file| {
            let lines = file
                .hunks
                .iter()
                .flat_map(|h| &h.lines)
                .filter(|l| !only_beyond || l.beyond_artifact_id)
                .map(|l| {
                    let sign = match pb::DiffLineKind::try_from(l.kind) {
                        Ok(pb::DiffLineKind::Added) => '+',
                        Ok(pb::DiffLineKind::Removed) => '-',
                        _ => ' ',
                    };
                    format!("{sign}{}", l.text)
                })
                .collect();
            (file.path.clone(), lines)
        })
        .collect()
}

/// What `git diff` prints for two trees, read back into [`Lines`].
fn git_lines(diff: &str) -> Lines {
    let mut files: Lines = Vec::new();
    let mut in_hunk = false;
    for line in diff.lines() {
        if let Some(rest) = line.strip_prefix("diff --git a/") {
            let path = rest.split(" b/").next().unwrap_or(rest).to_string();
            files.push((path, Vec::new()));
            in_hunk = false;
        } else if line.starts_with("@@") {
            in_hunk = true;
        } else if in_hunk && (line.starts_with([' ', '+', '-'])) {
            files.last_mut().expect("a file").1.push(line.to_string());
        }
    }
    files
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

const LIVE: &str = "return document.getElementById('connection').dataset.state === 'live';";

/// What the comparison page shows, read from the DOM.
const PAGE: &str = "return {
  verdict: document.querySelector('.verdict').textContent,
  sides: [...document.querySelectorAll('.side')].map(s => [s.dataset.environment, s.querySelector('.artifact .id')?.textContent ?? '']),
  builds: [...document.querySelectorAll('table.between tbody tr')].map(tr => tr.dataset.artifact),
  sourceCompare: document.querySelector('a.source-compare')?.getAttribute('href') ?? '',
  files: [...document.querySelectorAll('details.file')].map(d => [d.dataset.path,
    [...d.querySelectorAll('.line')].map(l => l.querySelector('.sign').textContent + l.querySelector('.text').textContent)]),
  beyond: [...document.querySelectorAll('details.file')].map(d => [d.dataset.path,
    [...d.querySelectorAll('.line.beyond')].map(l => l.querySelector('.sign').textContent + l.querySelector('.text').textContent)]),
};";

#[tokio::test]
async fn the_rpc_hamctl_and_the_page_give_the_known_answer() {
    let repo = ConfigRepo::new();
    let port = free_port();
    let server = TestServer::start_with(&repo.remote, |config| {
        config.http_listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
    })
    .await;
    shop::push_and_release(&server.url, None, None).await;
    let answer = shop::compare(&server.url, None).await;

    // The known answer.
    let id = |s: &Option<pb::EnvironmentStatus>| {
        s.as_ref()
            .and_then(|s| s.artifact.as_ref())
            .map(|a| a.artifact_id.clone())
    };
    assert_eq!(id(&answer.from_environment), Some(shop::master_id(3)));
    assert_eq!(id(&answer.to_environment), Some(shop::master_id(1)));
    assert_eq!(answer.newer, pb::NewerEnvironment::From as i32);
    let builds: Vec<BuildRow> = answer
        .builds
        .iter()
        .map(|b| {
            (
                b.artifact_id.clone(),
                b.source_sha.clone(),
                b.author
                    .as_ref()
                    .map(|a| a.name.clone())
                    .unwrap_or_default(),
                b.message.lines().next().unwrap_or("").to_string(),
                b.build_url.clone(),
                b.vulnerabilities
                    .as_ref()
                    .map(|v| (v.high, v.medium, v.low)),
            )
        })
        .collect();
    let build = |n: usize| {
        (
            shop::master_id(n),
            shop::sha(n),
            format!("Dev {n}"),
            format!("shop change {n}"),
            format!("https://ci.example.com/shop/{n}"),
            Some(((n % 2) as u32, n as u32, 2 * n as u32)),
        )
    };
    assert_eq!(
        builds,
        [build(3), build(2)],
        "master's builds after prod's up to staging's: not the feature branch's, not the newer build 4"
    );
    assert_eq!(
        answer.source_compare_url,
        format!(
            "{}/compare/{}...{}",
            shop::SOURCE_REPO,
            shop::sha(1),
            shop::sha(3)
        )
    );
    assert_eq!(
        rpc_lines(&answer, true),
        [
            ("artifact.json".to_string(), vec![]),
            (
                "config.yaml".to_string(),
                strings(&[
                    "-LOG_LEVEL: info",
                    "+LOG_LEVEL: debug",
                    "+FEATURE_FAST_CHECKOUT: \"on\""
                ])
            ),
            (
                "deployment.yaml".to_string(),
                strings(&["-  replicas: 3", "+  replicas: 1"])
            ),
        ],
        "what differs beyond the artifact id (the image tag and the commit are the build's)"
    );
    assert_eq!(answer.lines_beyond_artifact_id, 5);

    // As git computes it.
    let diff = repo.remote_git(&[
        "diff",
        "master:prod/releases/prod/shop",
        "master:staging/releases/staging/shop",
    ]);
    let every_line = rpc_lines(&answer, false);
    assert_eq!(every_line, git_lines(&diff), "git's diff:\n{diff}");
    assert!(every_line[2].1.contains(&format!(
        "+    image: registry.example.com/shop:{}",
        shop::master_id(3)
    )));

    // hamctl diff: the same answer, as text and as JSON.
    let (code, out, err) = hamctl(&[
        "--server",
        &server.url,
        "diff",
        "--service",
        "shop",
        "--from",
        "staging",
        "--to",
        "prod",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with("staging is 2 builds of master ahead of prod.\n"),
        "{out}"
    );
    let (at3, at2) = (
        out.find(&shop::master_id(3)).expect("build 3"),
        out.rfind(&shop::master_id(2)).expect("build 2"),
    );
    assert!(at3 < at2, "newest first: {out}");
    assert!(!out.contains(&shop::feature_id()), "{out}");
    assert!(
        out.contains("  deployment.yaml:5: +  replicas: 1\n"),
        "{out}"
    );
    assert!(
        out.contains("  config.yaml:3: +FEATURE_FAST_CHECKOUT: \"on\"\n"),
        "{out}"
    );
    assert!(
        out.contains("--- prod/deployment.yaml\n+++ staging/deployment.yaml\n"),
        "{out}"
    );
    let (code, out, err) = hamctl(&[
        "--server",
        &server.url,
        "--output",
        "json",
        "diff",
        "--service",
        "shop",
        "--from",
        "staging",
        "--to",
        "prod",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    let json: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(json["newer"], "NEWER_ENVIRONMENT_FROM");
    assert_eq!(
        json["builds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["artifactId"].as_str().unwrap())
            .collect::<Vec<_>>(),
        [shop::master_id(3), shop::master_id(2)]
    );
    let json_lines: Lines = json["manifestDiff"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| {
            let lines = file["hunks"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|h| h["lines"].as_array().unwrap())
                .map(|l| {
                    let sign = match l["kind"].as_str().unwrap() {
                        "DIFF_LINE_KIND_ADDED" => '+',
                        "DIFF_LINE_KIND_REMOVED" => '-',
                        _ => ' ',
                    };
                    format!("{sign}{}", l["text"].as_str().unwrap())
                })
                .collect();
            (file["path"].as_str().unwrap().to_string(), lines)
        })
        .collect();
    assert_eq!(json_lines, every_line);

    // The page: reached from the matrix's promotable cell.
    let base = format!("http://127.0.0.1:{port}");
    let browser = Browser::start().await;
    browser.open(&format!("{base}/")).await;
    browser
        .wait_for("the event stream", Duration::from_secs(10), LIVE)
        .await;
    browser
        .click("#row-shop td[data-environment='prod'] a.mark.promotable")
        .await;
    browser
        .wait_for(
            "the comparison page",
            Duration::from_secs(10),
            "return location.pathname === '/service/shop/compare' && location.search === '?from=staging&to=prod' \
             && document.querySelector('.verdict') !== null;",
        )
        .await;
    let page = browser.run(PAGE, json!([])).await;
    assert_eq!(
        page["verdict"],
        json!("staging is 2 builds of master ahead of prod.")
    );
    assert_eq!(
        page["sides"],
        json!([
            ["staging", shop::master_id(3)],
            ["prod", shop::master_id(1)]
        ])
    );
    assert_eq!(
        page["builds"],
        json!([shop::master_id(3), shop::master_id(2)])
    );
    assert_eq!(page["sourceCompare"], json!(answer.source_compare_url));
    assert_eq!(page["files"], json!(every_line));
    assert_eq!(page["beyond"], json!(rpc_lines(&answer, true)));

    // The service page links to it too.
    browser.open(&format!("{base}/service/shop")).await;
    let href = browser
        .run(
            "return document.querySelector('#state tr[data-environment=\"prod\"] a.compare').getAttribute('href');",
            json!([]),
        )
        .await;
    assert_eq!(href, json!("/service/shop/compare?from=staging&to=prod"));

    // A promotion shows on the open comparison page without a reload.
    browser
        .open(&format!("{base}/service/shop/compare?from=staging&to=prod"))
        .await;
    browser
        .wait_for("the event stream", Duration::from_secs(10), LIVE)
        .await;
    browser
        .run("window.notReloaded = true; return true;", json!([]))
        .await;
    let (code, _, err) = hamctl(&[
        "--server",
        &server.url,
        "promote",
        "--service",
        "shop",
        "--env",
        "prod",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    browser
        .wait_for(
            "the promotion in the comparison",
            Duration::from_secs(5),
            &format!(
                "return window.notReloaded === true && document.querySelector('.verdict').textContent === \
                 'staging and prod run the same artifact, {}.';",
                shop::master_id(3)
            ),
        )
        .await;
    server.stop().await;
}

#[tokio::test]
async fn every_way_refuses_the_same_bad_comparisons() {
    let repo = ConfigRepo::new();
    let port = free_port();
    let server = TestServer::start_with(&repo.remote, |config| {
        config.http_listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
    })
    .await;
    shop::push_and_release(&server.url, None, None).await;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    for (service, from, to, code, status, says) in [
        (
            "shop",
            "prod",
            "prod",
            tonic::Code::InvalidArgument,
            400,
            "from and to are both \"prod\"",
        ),
        (
            "shop",
            "staging",
            "mars",
            tonic::Code::InvalidArgument,
            400,
            "unknown environment \"mars\"; known environments: dev, staging, prod",
        ),
        (
            "shopp",
            "staging",
            "prod",
            tonic::Code::NotFound,
            404,
            "unknown service \"shopp\": no builds and no releases of it in the config repository; did you mean \"shop\"?",
        ),
    ] {
        let refused = client_with_token(&server.url, None)
            .await
            .compare_environments(pb::CompareEnvironmentsRequest {
                service: service.into(),
                from_environment: from.into(),
                to_environment: to.into(),
                namespace: String::new(),
            })
            .await
            .expect_err("refused");
        assert_eq!(refused.code(), code, "{refused:?}");
        assert!(refused.message().contains(says), "{refused:?}");
        let (exit, _, err) = hamctl(&[
            "--server",
            &server.url,
            "diff",
            "--service",
            service,
            "--from",
            from,
            "--to",
            to,
        ])
        .await;
        assert_eq!(exit, 1, "{err}");
        assert!(err.starts_with("error: ") && err.contains(says), "{err}");
        let page = http::get(
            addr,
            &format!("/service/{service}/compare?from={from}&to={to}"),
        )
        .await;
        assert_eq!(page.status, status, "{}", page.whole());
        let text = page.text().replace("&quot;", "\"");
        assert!(text.contains(says), "{text}");
    }
    server.stop().await;
}
