//! Browsers on other origins: a page served from its own origin calls
//! `Status` over gRPC-Web with connect-web (the example of docs/api.md,
//! bundled from tests/node_client/browser/) in headless Chromium. With the
//! page's origin in `--cors-allowed-origins` the call works and the
//! preflight is answered; without, the browser refuses it, as CORS means.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::http::request;
use crate::support::server_api::CorsPolicy;
use crate::support::webdriver::Browser;
use crate::support::*;

/// The bundled example page's script.
const PAGE_SCRIPT: &str = include_str!("browser/status_page.js");

/// Serves the example page on a loopback port of its own (another origin
/// than the gRPC port); the task ends with the test's runtime.
async fn serve_page() -> SocketAddr {
    use axum::routing::get;
    let routes = axum::Router::new()
        .route(
            "/",
            get(|| async {
                axum::response::Html(
                    "<!doctype html><html><head><title>status</title></head>\
                     <body><script src=\"/status_page.js\"></script></body></html>",
                )
            }),
        )
        .route(
            "/status_page.js",
            get(|| async { ([("content-type", "text/javascript")], PAGE_SCRIPT) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("an address");
    tokio::spawn(async move { axum::serve(listener, routes).await });
    addr
}

/// Opens the page against `server` and waits for what it shows: the
/// result, or the error.
async fn page_answer(browser: &Browser, page: SocketAddr, server: &str) -> (Value, Value) {
    browser
        .open(&format!("http://{page}/?server={server}&service=shop"))
        .await;
    browser
        .wait_for(
            "the page's answer",
            Duration::from_secs(20),
            "return 'result' in document.body.dataset || 'error' in document.body.dataset;",
        )
        .await;
    let shown = browser
        .run(
            "return [document.body.dataset.result || null, document.body.dataset.error || null];",
            json!([]),
        )
        .await;
    let parse = |value: &Value| {
        value.as_str().map_or(Value::Null, |text| {
            serde_json::from_str(text).expect("JSON")
        })
    };
    (parse(&shown[0]), parse(&shown[1]))
}

#[tokio::test]
async fn a_page_on_another_origin_calls_status_in_chromium() {
    let mut repo = ConfigRepo::new();
    let id = repo.add_build("shop", "master", 1);
    repo.push();
    let page = serve_page().await;
    let origin = format!("http://{page}");
    let allowed = CorsPolicy::parse(&origin, false).expect("an origin");
    let open = TestServer::start_with(&repo.remote, |config| config.cors = allowed).await;
    open.client()
        .await
        .release(release_branch("shop", "dev", "master"))
        .await
        .expect("released");
    let closed = TestServer::start(&repo.remote).await;

    // The preflight a browser sends first is answered for the allowed
    // origin, and the gRPC status headers are exposed to the page.
    let grpc_addr: SocketAddr = open.url.trim_start_matches("http://").parse().unwrap();
    let preflight = request(
        grpc_addr,
        "OPTIONS",
        "/releasemanager.v1.ReleaseService/Status",
        &[
            ("Origin", origin.clone()),
            ("Access-Control-Request-Method", "POST".into()),
            (
                "Access-Control-Request-Headers",
                "content-type,x-grpc-web,authorization".into(),
            ),
        ],
        b"",
    )
    .await;
    let head = preflight.head.to_ascii_lowercase();
    assert_eq!(preflight.status, 200, "{}", preflight.whole());
    assert!(
        head.contains(&format!("access-control-allow-origin: {origin}")),
        "{head}"
    );
    assert!(head.contains("x-grpc-web"), "{head}");
    let foreign = request(
        grpc_addr,
        "OPTIONS",
        "/releasemanager.v1.ReleaseService/Status",
        &[
            ("Origin", "http://elsewhere.example".into()),
            ("Access-Control-Request-Method", "POST".into()),
        ],
        b"",
    )
    .await;
    assert!(
        !foreign
            .head
            .to_ascii_lowercase()
            .contains("access-control-allow-origin"),
        "another origin is not allowed: {}",
        foreign.whole()
    );

    let browser = Browser::start().await;
    let (result, error) = page_answer(&browser, page, &open.url).await;
    assert_eq!(error, Value::Null, "the call works: {error}");
    let dev = result
        .as_array()
        .and_then(|rows| rows.iter().find(|row| row["environment"] == "dev"))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(dev["artifactId"], json!(id), "{result}");

    // A server that allows no origin: the browser refuses the call.
    let (result, error) = page_answer(&browser, page, &closed.url).await;
    assert_eq!(result, Value::Null, "{result}");
    assert!(error["message"].is_string(), "{error}");
    open.stop().await;
    closed.stop().await;
}
