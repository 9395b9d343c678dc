//! A real OpenID Connect provider for a test: npm's `oidc-provider` (OpenID
//! certified), run by node from `tests/oidc/provider.mjs` on a loopback
//! port, with its fixture people (dev, sre, nobody, brief), the public
//! client `hamctl` and two CI clients (`ci-acme`, `ci-other`). It signs real
//! tokens with keys it makes at start; nothing here makes or checks a token.
//!
//! The provider is installed from npm into `.tools/` by `make test` (as
//! `buf` is); the test says how when it is missing. It is killed with its
//! process group when the test ends.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::http;
use super::process::{workspace_root, ChildGuard};

/// The audience the CI clients' tokens are minted for.
pub const CI_AUDIENCE: &str = "https://release-manager.test";

/// A running provider.
pub struct Provider {
    /// Its issuer URL (`http://127.0.0.1:<port>`).
    pub issuer: String,
    addr: std::net::SocketAddr,
    _process: ChildGuard,
}

/// Where `make test` installs the provider's npm packages.
fn modules() -> PathBuf {
    let modules = workspace_root().join(".tools").join("node_modules");
    assert!(
        modules.join("oidc-provider").exists(),
        "{} has no oidc-provider: run `make test` (or `npm install --prefix .tools oidc-provider@9`)",
        modules.display()
    );
    modules
}

impl Provider {
    /// Starts a provider and waits until it listens.
    pub async fn start() -> Provider {
        Provider::start_on(0).await
    }

    /// Starts a provider on loopback port `port` (0: any), with new keys.
    pub async fn start_on(port: u16) -> Provider {
        let script = workspace_root().join("tests/oidc/provider.mjs");
        let mut command = Command::new("node");
        command
            .arg(&script)
            .arg(modules())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("OIDC_PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut process = ChildGuard::spawn(&mut command, "the OpenID Connect provider");
        let stdout = process.child_mut().stdout.take().expect("piped stdout");
        let line = tokio::time::timeout(
            Duration::from_secs(30),
            tokio::task::spawn_blocking(move || {
                use std::io::BufRead;
                let mut line = String::new();
                std::io::BufReader::new(stdout)
                    .read_line(&mut line)
                    .map(|_| line)
            }),
        )
        .await
        .expect("the provider says where it listens within 30 s")
        .expect("the reader thread")
        .expect("its stdout");
        let said: serde_json::Value = serde_json::from_str(line.trim())
            .unwrap_or_else(|e| panic!("the provider did not start ({e}): {line:?}"));
        let issuer = said["issuer"].as_str().expect("an issuer").to_string();
        let addr = issuer
            .trim_start_matches("http://")
            .parse()
            .expect("a loopback address");
        Provider {
            issuer,
            addr,
            _process: process,
        }
    }

    /// Its loopback port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// A person's real ID token (audience `hamctl`), got through the
    /// authorization code flow (the provider runs it against itself).
    pub async fn id_token(&self, person: &str) -> String {
        let answer = http::get(self.addr, &format!("/test/token?user={person}")).await;
        assert_eq!(answer.status, 200, "{}", answer.whole());
        let tokens: serde_json::Value = serde_json::from_str(&answer.text()).expect("JSON");
        tokens["id_token"]
            .as_str()
            .expect("an ID token")
            .to_string()
    }

    /// A CI pipeline's access token (a JWT for [`CI_AUDIENCE`], with the
    /// pipeline's `repository_owner`), by the client credentials grant.
    pub async fn ci_token(&self, client: &str) -> String {
        use base64::Engine;
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("{client}:{client}-secret"));
        let answer = http::request(
            self.addr,
            "POST",
            "/token",
            &[
                ("Authorization", format!("Basic {basic}")),
                (
                    "Content-Type",
                    "application/x-www-form-urlencoded".to_string(),
                ),
            ],
            b"grant_type=client_credentials",
        )
        .await;
        assert_eq!(answer.status, 200, "{}", answer.whole());
        let tokens: serde_json::Value = serde_json::from_str(&answer.text()).expect("JSON");
        tokens["access_token"]
            .as_str()
            .expect("an access token")
            .to_string()
    }

    /// Makes the sign-in screens approve as `person` from now on.
    pub async fn sign_in_as(&self, person: &str) {
        let answer = http::get(self.addr, &format!("/test/login-as?user={person}")).await;
        assert_eq!(answer.status, 200, "{}", answer.whole());
    }
}

/// The claims of a JWT, read without verifying it (to know its `exp`).
pub fn claims(token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON claims")
}
