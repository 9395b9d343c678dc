//! Signing in to the dashboard, in a real browser where a person would:
//! a deep link survives the sign-in (with the hamctl token, and with single
//! sign-on at a real OpenID Connect provider), the page shows who is signed
//! in and a sign-out button that works, and the session's cookie is dead
//! after sign-out. Over raw HTTP: a client address that keeps guessing the
//! token is held off with 429, and every page forbids framing.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::oidc::Provider;
use crate::support::webdriver::Browser;
use crate::support::*;
use serde_json::json;

fn fixture() -> ConfigRepo {
    let mut repo = ConfigRepo::new();
    repo.add_build("cart", "master", 1);
    repo.push();
    repo
}

async fn start(repo: &ConfigRepo, people: Option<&Provider>) -> TestServer {
    let issuer = people.map(|p| p.issuer.clone());
    TestServer::start_with(&repo.remote, move |config| {
        config.http_listen = Some("127.0.0.1:0".parse().unwrap());
        config.auth.unauthenticated = false;
        config.auth.hamctl_token = Some("ops-secret".into());
        config.auth.artifact_token = Some("ci".into());
        if let Some(issuer) = issuer {
            config.auth.oidc = server_api::OidcSettings {
                issuers: vec![server_api::TrustedIssuer {
                    url: issuer,
                    audience: "hamctl".into(),
                }],
                client_id: Some("hamctl".into()),
                ..Default::default()
            };
        }
    })
    .await
}

/// `GET path` with the dashboard's cookie set to `session`.
async fn get_with_session(addr: SocketAddr, path: &str, session: &str) -> http::HttpResponse {
    http::request(
        addr,
        "GET",
        path,
        &[("Cookie", format!("rm_dashboard={session}"))],
        b"",
    )
    .await
}

/// Waits for the page header to say who is signed in; returns the text.
async fn signed_in_as(browser: &Browser) -> String {
    browser
        .wait_for(
            "the header to say who is signed in",
            Duration::from_secs(10),
            "const v = document.getElementById('viewer'); \
             const b = document.getElementById('sign-out'); \
             return !!v && !!b && b.offsetWidth > 0 && b.offsetHeight > 0;",
        )
        .await;
    browser
        .run(
            "return document.getElementById('viewer').innerText;",
            json!([]),
        )
        .await
        .as_str()
        .unwrap()
        .to_string()
}

/// Signs out with the header's button and checks that the session's
/// cookie no longer opens a page.
async fn sign_out(browser: &Browser, addr: SocketAddr) {
    let session = browser
        .cookie("rm_dashboard")
        .await
        .expect("a session cookie");
    assert_eq!(
        get_with_session(addr, "/service/cart", &session)
            .await
            .status,
        200
    );
    browser
        .run(
            "document.getElementById('sign-out').click(); return true;",
            json!([]),
        )
        .await;
    browser
        .wait_for(
            "the sign-in page after signing out",
            Duration::from_secs(10),
            "return location.pathname === '/login';",
        )
        .await;
    let after = get_with_session(addr, "/service/cart", &session).await;
    assert_eq!(after.status, 303, "{}", after.whole());
    assert!(after.head.contains("/login"), "{}", after.head);
    let fragment = get_with_session(addr, "/fragment/rows", &session).await;
    assert_eq!(fragment.status, 401, "{}", fragment.whole());
}

#[tokio::test]
async fn a_deep_link_survives_the_token_sign_in_and_sign_out_ends_the_session() {
    let repo = fixture();
    let server = start(&repo, None).await;
    let addr = server.http_addr();
    let browser = Browser::start().await;
    browser.open(&format!("http://{addr}/service/cart")).await;
    assert!(
        browser.url().await.contains("/login?next="),
        "{}",
        browser.url().await
    );
    browser
        .run(
            "document.getElementById('token').value = 'ops-secret'; document.querySelector('form.login').submit(); return true;",
            json!([]),
        )
        .await;
    browser
        .wait_for(
            "the service page",
            Duration::from_secs(10),
            "return location.pathname === '/service/cart' && document.body.innerText.includes('master-cart-001');",
        )
        .await;
    let header = signed_in_as(&browser).await;
    assert!(
        header.contains("hamctl token") && header.contains("Sign out"),
        "{header}"
    );
    sign_out(&browser, addr).await;
    server.stop().await;
}

#[tokio::test]
async fn single_sign_on_returns_to_the_deep_link_and_shows_who_is_signed_in() {
    let repo = fixture();
    let people = Provider::start().await;
    let server = start(&repo, Some(&people)).await;
    let addr = server.http_addr();
    let browser = Browser::start().await;
    browser
        .open(&format!("http://{addr}/service/cart?page=0"))
        .await;
    browser
        .wait_for(
            "the single sign-on link",
            Duration::from_secs(10),
            "return !!document.getElementById('sso');",
        )
        .await;
    browser
        .run(
            "document.getElementById('sso').click(); return true;",
            json!([]),
        )
        .await;
    browser
        .wait_for(
            "the service page after the provider",
            Duration::from_secs(20),
            "return location.pathname === '/service/cart' && location.search === '?page=0' \
             && document.body.innerText.includes('master-cart-001');",
        )
        .await;
    let header = signed_in_as(&browser).await;
    assert!(header.contains("Dana Developer"), "{header}");
    let shot = browser.screenshot("dashboard-signed-in").await;
    println!("screenshot: {}", shot.display());
    sign_out(&browser, addr).await;
    server.stop().await;
}

/// POST /login with `token` from a client bound to `source`; the status.
async fn sign_in_from(source: std::net::Ipv4Addr, addr: SocketAddr, token: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    let body = format!("token={token}&next=%2F");
    let request = format!(
        "POST /login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("an answer in time")
        .unwrap();
    let text = String::from_utf8_lossy(&answer);
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn sixty_wrong_sign_ins_get_429_and_pages_forbid_framing() {
    let repo = fixture();
    let server = start(&repo, None).await;
    let addr = server.http_addr();
    let guesser = std::net::Ipv4Addr::new(127, 0, 0, 1);
    let mut statuses = Vec::new();
    for n in 0..60 {
        statuses.push(sign_in_from(guesser, addr, &format!("guess-{n}")).await);
    }
    let limited = statuses.iter().filter(|s| **s == 429).count();
    let refused = statuses.iter().filter(|s| **s == 401).count();
    assert_eq!(limited + refused, 60, "{statuses:?}");
    assert!(limited >= 49, "{limited} of 60 held off: {statuses:?}");
    // The right token from the same address waits too; another address
    // is not held off.
    assert_eq!(sign_in_from(guesser, addr, "ops-secret").await, 429);
    assert_eq!(
        sign_in_from(std::net::Ipv4Addr::new(127, 0, 0, 2), addr, "ops-secret").await,
        303
    );

    for path in ["/login", "/", "/service/cart"] {
        let answer = http::get(addr, path).await;
        let head = answer.head.to_ascii_lowercase();
        assert!(
            head.contains("content-security-policy: default-src 'self'")
                && head.contains("frame-ancestors 'none'"),
            "{path}: {}",
            answer.head
        );
        assert!(
            head.contains("x-frame-options: deny"),
            "{path}: {}",
            answer.head
        );
    }
    server.stop().await;
}
