//! The flags of `release-manager start` (and their environment
//! variables), as clap reads them; [`super::resolve`] turns them into a
//! typed server configuration.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::ValueEnum;

use crate::commit_flags::CommitArgs;
use crate::domain::duration::parse as parse_duration;

/// Flags of `release-manager start`.
#[derive(Debug, Clone, clap::Args)]
pub struct StartArgs {
    /// The config repository: a local path, file://, ssh (git@host:org/repo.git,
    /// ssh://...) or https URL [also read from CONFIG_REPO, the original
    /// release manager's variable]. Without any, the local demo runs.
    #[arg(long, env = "RELEASE_MANAGER_CONFIG_REPO")]
    pub config_repo: Option<String>,
    /// Where the persistent mirror (and the demo repository) live.
    #[arg(
        long,
        env = "RELEASE_MANAGER_DATA_DIR",
        default_value = ".release-manager-data"
    )]
    pub data_dir: PathBuf,
    /// gRPC listen address [default: 0.0.0.0:8080; the demo: 127.0.0.1:8080].
    #[arg(long, env = "RELEASE_MANAGER_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Environments in promotion order.
    #[arg(
        long,
        env = "RELEASE_MANAGER_ENVIRONMENTS",
        value_delimiter = ',',
        default_value = "dev,staging,prod"
    )]
    pub environments: Vec<String>,
    /// Branch of the config repository to read and write [default: the one
    /// the remote's HEAD names].
    #[arg(long, env = "RELEASE_MANAGER_CONFIG_BRANCH")]
    pub config_branch: Option<String>,
    /// Application branch whose latest build the first environment is
    /// promoted from.
    #[arg(long, env = "RELEASE_MANAGER_DEFAULT_BRANCH", default_value = "master")]
    pub default_branch: String,
    /// SSH private key for ssh remotes.
    #[arg(
        long,
        env = "RELEASE_MANAGER_SSH_PRIVATE_KEY",
        default_value = "/etc/release-manager/ssh/identity"
    )]
    pub ssh_private_key: PathBuf,
    /// known_hosts file that SSH host keys are checked against [default:
    /// known_hosts beside the SSH key if there is one, else the shipped keys
    /// of github.com, gitlab.com and bitbucket.org].
    #[arg(long, env = "RELEASE_MANAGER_SSH_KNOWN_HOSTS")]
    pub ssh_known_hosts: Option<PathBuf>,
    /// Token for https remotes (sent as the password).
    #[arg(long, env = "RELEASE_MANAGER_GIT_HTTPS_TOKEN", hide_env_values = true)]
    pub git_https_token: Option<String>,
    /// Token hamctl users must present; a comma-separated list accepts each
    /// of its tokens (to rotate one without a gap).
    #[arg(long, env = "HAMCTL_AUTH_TOKEN", hide_env_values = true)]
    pub hamctl_auth_token: Option<String>,
    /// Token artifact pushers (CI) must present; a comma-separated list
    /// accepts each of its tokens.
    #[arg(long, env = "ARTIFACT_AUTH_TOKEN", hide_env_values = true)]
    pub artifact_auth_token: Option<String>,
    /// Accept calls without a token for every role that has no credential
    /// (no token, no identity provider); the demo on loopback implies it
    /// when none is set. Without it, calls of a role with none are refused.
    #[arg(long)]
    pub unauthenticated: bool,
    /// An OpenID Connect issuer whose identity tokens are accepted, as
    /// `URL` or `URL=AUDIENCE` (the `aud` its tokens must name; default
    /// --oidc-audience, else --oidc-client-id). Give it once per issuer:
    /// the people's provider first (hamctl and the dashboard sign in
    /// there), then CI's (GitHub Actions, GitLab).
    #[arg(
        long = "oidc-issuer",
        env = "RELEASE_MANAGER_OIDC_ISSUER",
        value_delimiter = ',',
        value_name = "URL[=AUDIENCE]"
    )]
    pub oidc_issuers: Vec<String>,
    /// The audience of issuers given without one.
    #[arg(long, env = "RELEASE_MANAGER_OIDC_AUDIENCE", value_name = "AUDIENCE")]
    pub oidc_audience: Option<String>,
    /// The public client (PKCE, no secret) hamctl and the dashboard sign in
    /// with at the first issuer; the server tells hamctl about it.
    #[arg(long, env = "RELEASE_MANAGER_OIDC_CLIENT_ID", value_name = "ID")]
    pub oidc_client_id: Option<String>,
    /// Clock skew allowed on identity tokens' `exp` and `nbf`.
    #[arg(long, env = "RELEASE_MANAGER_OIDC_LEEWAY", default_value = "60s", value_parser = parse_duration)]
    pub oidc_leeway: std::time::Duration,
    /// Access rules for identity tokens (YAML): which claims may do which
    /// actions in which environments. Checked at start, read again on
    /// SIGHUP. Without it identities may only read.
    #[arg(long, env = "RELEASE_MANAGER_ACCESS", value_name = "FILE")]
    pub access: Option<PathBuf>,
    /// Who commits, and what signs (--signing-key, --committer-name,
    /// --committer-email).
    #[command(flatten)]
    pub commits: CommitArgs,
    /// Log format.
    #[arg(
        long,
        env = "RELEASE_MANAGER_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// The original release manager's log level (`debug`, `info`,
    /// `error`): the level of every log line unless RUST_LOG says more.
    #[arg(
        long = "log.level",
        env = "LOG_LEVEL",
        hide = true,
        value_name = "LEVEL"
    )]
    pub log_level: Option<String>,
    /// The original release manager's human-readable logs: text lines,
    /// which are the default here.
    #[arg(long = "log.development", env = "LOG_DEVELOPMENT", hide = true, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub log_development: Option<String>,
    /// Writes that may wait in the queue before callers are told to retry.
    #[arg(long, default_value_t = 1024)]
    pub queue_capacity: usize,
    /// Push attempts per batch when others keep pushing first.
    #[arg(long, default_value_t = 8)]
    pub max_push_attempts: u32,
    /// Longest wait for the remote at each network step of a fetch or push
    /// (connecting, and each read or write); a remote that hangs fails the
    /// step with UNAVAILABLE after it.
    #[arg(long, env = "RELEASE_MANAGER_REMOTE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub remote_timeout: std::time::Duration,
    /// Flush every write to disk (pack, index, ref update) before answering,
    /// so an acknowledged write survives a power loss; `false` is faster.
    #[arg(long, env = "RELEASE_MANAGER_FSYNC", default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub fsync: bool,
    /// Longest one batch of writes may take, replays after rejected pushes
    /// included; its writes then fail with UNAVAILABLE.
    #[arg(long, env = "RELEASE_MANAGER_BATCH_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub batch_timeout: std::time::Duration,
    /// Server-wide branch restrictions for every service, as
    /// `env=regex,...` (e.g. `prod=^master$`). Listed by ListPolicies; they
    /// cannot be deleted through the API.
    #[arg(long, env = "RELEASE_MANAGER_POLICY_BRANCH_RESTRICTIONS")]
    pub policy_branch_restrictions: Option<String>,
    /// How often to fetch the config repository to notice builds pushed
    /// straight to it (`500ms`, `30s`, `5m`; `0` disables).
    #[arg(long, env = "RELEASE_MANAGER_POLL_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub poll_interval: std::time::Duration,
    /// HTTP listen address of the dashboard, the webhooks (GitHub and GitLab
    /// pushes, Flux and Argo CD deployment reports) and `GET /metrics`
    /// [default: 0.0.0.0:8081; the demo: 127.0.0.1:8081].
    #[arg(long, env = "RELEASE_MANAGER_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    /// The config repository's commit page on the web, with `{commit}`
    /// where the sha goes (e.g.
    /// `https://github.com/acme/k8s-config/commit/{commit}`): the dashboard
    /// links every release to its commit.
    #[arg(long, env = "RELEASE_MANAGER_CONFIG_REPO_WEB_URL", value_name = "URL", value_parser = parse_commit_links)]
    pub config_repo_web_url: Option<crate::http::dashboard::values::CommitLinks>,
    /// Secret of the GitHub push webhook (HMAC-SHA256 of X-Hub-Signature-256).
    #[arg(long, env = "GITHUB_WEBHOOK_SECRET", hide_env_values = true)]
    pub github_webhook_secret: Option<String>,
    /// Secret of the deployment routes (`/webhook/flux`, `/webhook/argocd`,
    /// `/webhook/deployment`): the body's HMAC-SHA256 in `X-Signature:
    /// sha256=<hex>`, or `Authorization: Bearer <secret>`.
    #[arg(long, env = "DEPLOYMENT_WEBHOOK_SECRET", hide_env_values = true)]
    pub deployment_webhook_secret: Option<String>,
    /// Which Flux Kustomization or Argo CD Application deploys which
    /// environment: `dev=flux-system/dev,prod=argocd/{service}-prod`
    /// (`<env>=<namespace>/<name>`; a `{service}` in the name maps one
    /// object per service; `*=` takes the environment from the event's
    /// `env` metadata; one whose name is an environment's needs no entry).
    #[arg(long, env = "RELEASE_MANAGER_DEPLOYMENT_SOURCES", default_value = "", value_parser = parse_sources)]
    pub deployment_sources: crate::http::deployment_hooks::Sources,
    /// Notifications: Slack and CloudEvents webhooks, routed per
    /// environment and service (a YAML or JSON file; docs/controllers.md:
    /// Notifications).
    #[arg(long, env = "RELEASE_MANAGER_NOTIFICATIONS")]
    pub notifications: Option<PathBuf>,
    /// How long the notification lease lasts without renewal: of several
    /// replicas sharing the config repository, only its holder sends, and
    /// another takes over this long after the holder died.
    #[arg(long, env = "RELEASE_MANAGER_NOTIFICATIONS_LEASE", default_value = "30s", value_parser = parse_duration)]
    pub notifications_lease: std::time::Duration,
    /// PEM certificate (chain) to serve gRPC over TLS; needs --tls-key.
    #[arg(long, env = "RELEASE_MANAGER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "RELEASE_MANAGER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Largest build upload (all files together), in bytes.
    #[arg(long, env = "RELEASE_MANAGER_MAX_UPLOAD_BYTES", default_value_t = 32 << 20)]
    pub max_upload_bytes: usize,
    /// Most files in one build upload.
    #[arg(long, env = "RELEASE_MANAGER_MAX_UPLOAD_FILES", default_value_t = 1000)]
    pub max_upload_files: usize,
    /// Bytes of uploads received but not yet written to disk, all uploads
    /// together; a chunk past it is refused with RESOURCE_EXHAUSTED.
    #[arg(long, env = "RELEASE_MANAGER_UPLOAD_MEMORY", default_value_t = 256 << 20)]
    pub upload_memory: usize,
    /// Longest silence between two chunks of an upload before it is dropped.
    #[arg(long, env = "RELEASE_MANAGER_UPLOAD_IDLE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub upload_idle_timeout: std::time::Duration,
    /// Longest one upload may take.
    #[arg(long, env = "RELEASE_MANAGER_UPLOAD_TIMEOUT", default_value = "5m", value_parser = parse_duration)]
    pub upload_timeout: std::time::Duration,
    /// Origins whose browser pages may call the gRPC port (gRPC-Web):
    /// `https://app.example.com,http://localhost:3000`, or `*` for any
    /// [default: none, so browsers refuse cross-origin calls].
    #[arg(long, env = "RELEASE_MANAGER_CORS_ALLOWED_ORIGINS", default_value = "")]
    pub cors_allowed_origins: String,
    /// Let those pages send credentials (cookies, client certificates); not
    /// with `*`. The API's token is a header and needs none.
    #[arg(long, env = "RELEASE_MANAGER_CORS_ALLOW_CREDENTIALS")]
    pub cors_allow_credentials: bool,
    /// Least average rate of an upload, in bytes per second, after its
    /// first 15 s; a slower one is dropped (0: no least rate).
    #[arg(long, env = "RELEASE_MANAGER_UPLOAD_MIN_RATE", default_value_t = 32 << 10)]
    pub upload_min_rate: u64,
    /// Most connections open at once on each port; at the bound a new one
    /// takes the place of the longest idle, or is refused when none is
    /// idle [default: from the open-file limit: (limit - 256) / 2].
    #[arg(long, env = "RELEASE_MANAGER_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Longest time from accepting a connection to its first request's
    /// headers (HTTP/1.1: to each request's headers).
    #[arg(long, env = "RELEASE_MANAGER_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: std::time::Duration,
    /// Longest silence while a request's body is being read.
    #[arg(long, env = "RELEASE_MANAGER_BODY_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub body_timeout: std::time::Duration,
    /// How long a connection with no request in progress stays open.
    #[arg(long, env = "RELEASE_MANAGER_IDLE_TIMEOUT", default_value = "2m", value_parser = parse_duration)]
    pub idle_timeout: std::time::Duration,
    /// How often the gRPC port pings an HTTP/2 connection.
    #[arg(long, env = "RELEASE_MANAGER_KEEPALIVE_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    pub keepalive_interval: std::time::Duration,
    /// How long a ping may go unanswered before the connection is closed.
    #[arg(long, env = "RELEASE_MANAGER_KEEPALIVE_TIMEOUT", default_value = "20s", value_parser = parse_duration)]
    pub keepalive_timeout: std::time::Duration,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn parse_commit_links(text: &str) -> Result<crate::http::dashboard::values::CommitLinks, String> {
    crate::http::dashboard::values::CommitLinks::parse(text)
}

fn parse_sources(text: &str) -> Result<crate::http::deployment_hooks::Sources, String> {
    crate::http::deployment_hooks::Sources::parse(text)
}
