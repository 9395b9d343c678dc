//! A real browser for the dashboard's tests: Debian's headless Chromium,
//! driven through its ChromeDriver over the W3C WebDriver protocol. The
//! client is the few commands the tests use (open a page, run a script,
//! take a screenshot), spoken as plain HTTP/1.1 on loopback.
//!
//! ChromeDriver runs in a process group of its own, and the browser it
//! starts (with its zygotes, renderers and crash handler) in that group
//! too: when the test ends, passed or failed, the session is quit and the
//! whole group killed, so no browser outlives its test.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::http;
use super::poll::wait_for;
use super::process::{free_port, ChildGuard};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A ChromeDriver process and one browser session.
pub struct Browser {
    /// Declared first: the session is quit before the group is killed and
    /// the profile removed.
    session: Session,
    _driver: ChildGuard,
    _home: tempfile::TempDir,
}

/// One WebDriver session, quit when dropped.
struct Session {
    driver: SocketAddr,
    id: String,
}

impl Drop for Session {
    fn drop(&mut self) {
        // A plain blocking request: Drop may run while a test panics, with
        // or without a runtime.
        use std::io::{Read, Write};
        let request = format!(
            "DELETE /session/{} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.id, self.driver
        );
        if let Ok(mut stream) =
            std::net::TcpStream::connect_timeout(&self.driver, Duration::from_secs(2))
        {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = stream.write_all(request.as_bytes());
            let _ = stream.read(&mut [0u8; 1024]);
        }
    }
}

async fn call(driver: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Value {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let headers = [("Content-Type", "application/json".to_string())];
    let answer = http::request(driver, method, path, &headers, body.as_bytes()).await;
    let text = answer.text();
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium, with a window big
    /// enough for a wall screen's worth of matrix.
    pub async fn start() -> Browser {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(binary).exists(),
                "{binary} is missing: apt-get install chromium chromium-driver (.ci/install-deps does)"
            );
        }
        // The browser's profile, and a home of its own: nothing of the
        // machine's user (crash reports, caches) is read or written.
        let home = tempfile::tempdir().expect("temp dir");
        let profile = home.path().join("profile");
        let port = free_port();
        let mut command = Command::new(CHROMEDRIVER);
        command
            .arg(format!("--port={port}"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", home.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let driver_process = ChildGuard::spawn(&mut command, "chromedriver");
        let driver = SocketAddr::from(([127, 0, 0, 1], port));
        wait_for(
            "chromedriver to listen",
            Duration::from_secs(30),
            || async { tokio::net::TcpStream::connect(driver).await.ok().map(drop) },
        )
        .await;
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                // The machine's network is closed: no background traffic.
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-crash-reporter",
                    "--window-size=1400,900",
                    format!("--user-data-dir={}", profile.display()),
                ]
            }
        }}});
        let created = call(driver, "POST", "/session", Some(&capabilities)).await;
        let id = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        Browser {
            session: Session { driver, id },
            _driver: driver_process,
            _home: home,
        }
    }

    async fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session.id);
        let answer = call(self.session.driver, method, &path, body.as_ref()).await;
        if let Some(error) = answer["value"].get("error") {
            panic!("webdriver {path}: {error}: {}", answer["value"]["message"]);
        }
        answer["value"].clone()
    }

    /// Opens `url` and waits for the page to load.
    pub async fn open(&self, url: &str) {
        self.command("POST", "/url", Some(json!({ "url": url })))
            .await;
    }

    /// The URL of the page the browser shows.
    pub async fn url(&self) -> String {
        self.command("GET", "/url", None)
            .await
            .as_str()
            .expect("a URL")
            .to_string()
    }

    /// The value of cookie `name` of the current page's site (HttpOnly
    /// ones too), if it has one.
    pub async fn cookie(&self, name: &str) -> Option<String> {
        let path = format!("/session/{}/cookie", self.session.id);
        let all = call(self.session.driver, "GET", &path, None).await;
        all["value"].as_array()?.iter().find_map(|cookie| {
            (cookie["name"] == name)
                .then(|| cookie["value"].as_str().unwrap_or_default().to_string())
        })
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page
    /// and returns what it returns.
    pub async fn run(&self, script: &str, args: Value) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// Polls `script` until it returns `true`, for at most `timeout`;
    /// returns how long that took.
    pub async fn wait_for(&self, what: &str, timeout: Duration, script: &str) -> Duration {
        let began = Instant::now();
        wait_for(what, timeout, || async {
            (self.run(script, json!([])).await == Value::Bool(true)).then_some(())
        })
        .await;
        began.elapsed()
    }

    /// Makes the page see `prefers-color-scheme: dark` (through
    /// ChromeDriver's DevTools passthrough).
    pub async fn prefer_dark(&self) {
        let features = json!([{ "name": "prefers-color-scheme", "value": "dark" }]);
        self.command(
            "POST",
            "/goog/cdp/execute",
            Some(
                json!({ "cmd": "Emulation.setEmulatedMedia", "params": { "features": features } }),
            ),
        )
        .await;
    }

    /// Makes the page see `prefers-color-scheme: light` again.
    pub async fn prefer_light(&self) {
        let features = json!([{ "name": "prefers-color-scheme", "value": "light" }]);
        self.command(
            "POST",
            "/goog/cdp/execute",
            Some(
                json!({ "cmd": "Emulation.setEmulatedMedia", "params": { "features": features } }),
            ),
        )
        .await;
    }

    /// Makes the page's viewport `width` × `height` CSS pixels, as a phone's
    /// (touch, the page's viewport meta honoured) when `phone`.
    pub async fn viewport(&self, width: u32, height: u32, phone: bool) {
        let params = json!({
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": phone,
        });
        self.command(
            "POST",
            "/goog/cdp/execute",
            Some(json!({ "cmd": "Emulation.setDeviceMetricsOverride", "params": params })),
        )
        .await;
    }

    /// Clicks the first element matching `css` as a person would (a
    /// trusted click, through the driver).
    pub async fn click(&self, css: &str) {
        let found = self
            .command(
                "POST",
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        let id = found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_string();
        self.command("POST", &format!("/element/{id}/click"), Some(json!({})))
            .await;
    }

    /// Saves a screenshot of the whole page (not only what the viewport
    /// shows; at most 8,000 pixels tall) as `name`.png beside
    /// [`Browser::screenshot`]'s, and returns its path.
    pub async fn screenshot_page(&self, name: &str) -> PathBuf {
        use base64::Engine;
        let size = self
            .run(
                "return [document.documentElement.clientWidth, document.documentElement.scrollHeight];",
                json!([]),
            )
            .await;
        let width = size[0].as_u64().unwrap_or(1400);
        let height = size[1].as_u64().unwrap_or(900).min(8000);
        let params = json!({
            "format": "png", "captureBeyondViewport": true,
            "clip": { "x": 0, "y": 0, "width": width, "height": height, "scale": 1 },
        });
        let shot = self
            .command(
                "POST",
                "/goog/cdp/execute",
                Some(json!({ "cmd": "Page.captureScreenshot", "params": params })),
            )
            .await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("a base64 PNG"))
            .expect("base64");
        let dir = std::env::temp_dir().join("release-manager-screenshots");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, bytes).expect("write");
        path
    }

    /// Saves a screenshot of the window as `name`.png in a folder the test
    /// run keeps, and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine;
        let png = self.command("GET", "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("a base64 PNG"))
            .expect("base64");
        let dir = std::env::temp_dir().join("release-manager-screenshots");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, bytes).expect("write");
        path
    }
}
