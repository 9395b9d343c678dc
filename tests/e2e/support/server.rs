//! The real server, started in process on an ephemeral loopback port over
//! a config repository of the test, and the few paths of the server crate
//! the tests need.
//!
//! Every path of `release_manager_server` the tests use is named in
//! [`server_api`] and nowhere else, so a change of the server's layout is
//! one edit here.

use std::path::Path;
use std::time::Duration;

use release_manager::pb;
use release_manager::pb::policy_service_client::PolicyServiceClient;
use release_manager::pb::release_service_client::ReleaseServiceClient;
use tempfile::TempDir;
use tonic::transport::Channel;

/// The server crate's public paths the tests use.
pub mod server_api {
    pub use release_manager_server::chain as error_chain;
    pub use release_manager_server::{
        parse_global_restrictions, start, CommitIdentity, CommitLinks, CommitSigner, CorsPolicy,
        DeploymentSources, GitCredentials, Notifications, OidcSettings, RemoteLocation,
        RunningServer, ServerConfig, TlsFiles, TrustedIssuer, WriterStats, SHIPPED_KNOWN_HOSTS,
    };
}

use server_api::{RunningServer, ServerConfig, WriterStats};

/// How long the server waits for a remote that does not answer, for every
/// server of this test binary. It is a process-wide libgit2 setting (each
/// start sets it), so servers running side by side must agree on it; the
/// fault tests need it short.
pub const REMOTE_TIMEOUT: Duration = Duration::from_secs(2);

/// The config every test server starts from: `remote` (a local path), the
/// data dir `data`, the default environments, no tokens, and
/// [`REMOTE_TIMEOUT`].
pub fn local_config(remote: &Path, data: &Path) -> ServerConfig {
    let mut config = ServerConfig::local(remote, data);
    config.remote_timeout = REMOTE_TIMEOUT;
    config
}

/// Starts the server on `listener` with `config`, keeping the remote
/// timeout every server of this binary shares; the start's error if it
/// does not start.
pub async fn start_on(
    mut config: ServerConfig,
    listener: tokio::net::TcpListener,
) -> Result<RunningServer, String> {
    config.remote_timeout = REMOTE_TIMEOUT;
    server_api::start(config, listener)
        .await
        .map_err(|e| server_api::error_chain(&e))
}

/// A server on 127.0.0.1:0 over a config repository, with its data dir.
pub struct TestServer {
    pub server: Option<RunningServer>,
    pub data: TempDir,
    pub url: String,
}

impl TestServer {
    /// A server with the default config.
    pub async fn start(remote: &Path) -> Self {
        Self::start_with(remote, |_| {}).await
    }

    /// A server with the config `tweak` makes of the default one.
    pub async fn start_with(remote: &Path, tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        Self::start_in(remote, data, tweak).await
    }

    /// A server on the data dir `data` (of a server stopped before).
    pub async fn start_in(
        remote: &Path,
        data: TempDir,
        tweak: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let mut config = local_config(remote, data.path());
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let server = start_on(config, listener)
            .await
            .unwrap_or_else(|e| panic!("the server does not start: {e}"));
        let url = format!("http://{}", server.addr);
        TestServer {
            server: Some(server),
            data,
            url,
        }
    }

    /// The running server.
    pub fn running(&self) -> &RunningServer {
        self.server.as_ref().expect("running")
    }

    /// Whether this start loaded the index snapshot of the data dir, and
    /// how many commits of history it read besides.
    pub fn started_from_snapshot(&self) -> (bool, u64) {
        let started = self.running().started;
        (started.from_snapshot, started.commits_read)
    }

    /// The writer's counters.
    pub fn stats(&self) -> std::sync::Arc<WriterStats> {
        self.running().stats.clone()
    }

    /// The address of the HTTP listener (webhooks, metrics, dashboard).
    pub fn http_addr(&self) -> std::net::SocketAddr {
        self.running().http_addr.expect("an HTTP listener")
    }

    /// Fetches the remote now and runs the auto-releases that makes due.
    pub async fn sync(&self) {
        self.running().sync().await.expect("the sync succeeds");
    }

    /// What runs where for `service` (no token).
    pub async fn status(&self, service: &str) -> pb::StatusResponse {
        self.client()
            .await
            .status(pb::StatusRequest {
                service: service.into(),
                ..Default::default()
            })
            .await
            .expect("status answers")
            .into_inner()
    }

    /// A release client without a token.
    pub async fn client(&self) -> ReleaseServiceClient<Channel> {
        ReleaseServiceClient::connect(self.url.clone())
            .await
            .expect("connects")
    }

    /// A policy client without a token.
    pub async fn policy_client(&self) -> PolicyServiceClient<Channel> {
        PolicyServiceClient::connect(self.url.clone())
            .await
            .expect("connects")
    }

    /// Stops the server gracefully; its data dir, for a restart.
    pub async fn stop(mut self) -> TempDir {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        self.data
    }
}
