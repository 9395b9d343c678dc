//! Command-line flags and environment variables of `release-manager start`,
//! parsed once in `main` into a typed [`ServerConfig`].

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::api::upload::UploadLimits;
pub use crate::api::web::CorsPolicy;
use crate::auth::{Auth, OidcSettings, TrustedIssuer};
use crate::commit_flags::{resolve_commits, CommitArgs};
use crate::demo::ensure_demo_repo;
use crate::domain::duration::parse as parse_duration;
use crate::domain::Settings;
use crate::engine::writer::WriterConfig;
use crate::listen::ConnectionLimits;
use crate::repo::remote::{known_hosts_file, GitCredentials, RemoteLocation};

/// The release manager server.
#[derive(Debug, Parser)]
#[command(name = "release-manager", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Run the server. Without --config-repo it serves a local demo config
    /// repository, created once under the data dir, on loopback only.
    Start(StartArgs),
    /// Copy the builds the original release manager kept in S3 into the
    /// config repository (builds/<service>/<branch>/, one build commit
    /// each, oldest first). Builds already in its history are skipped, so
    /// it can run again to bring in what is new.
    ImportS3(crate::import::ImportS3Args),
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

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

/// Everything the server needs, typed.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the config repository is.
    pub config_repo: RemoteLocation,
    /// Data dir holding the mirror.
    pub data_dir: PathBuf,
    /// The config repository's branch; `None`: the remote's HEAD.
    pub config_branch: Option<String>,
    /// Environments and default branch.
    pub settings: Settings,
    /// Remote credentials.
    pub credentials: GitCredentials,
    /// Tokens.
    pub auth: Auth,
    /// Writer tunables.
    pub writer: WriterConfig,
    /// Bounds on build uploads.
    pub uploads: UploadLimits,
    /// Period of the fetch that notices builds pushed straight to the
    /// remote; zero disables it.
    pub poll_interval: std::time::Duration,
    /// Bound on each network step of a fetch or push.
    pub remote_timeout: std::time::Duration,
    /// Flush writes to disk before answering.
    pub fsync: bool,
    /// HTTP listener for the dashboard, webhooks and metrics, if any.
    pub http_listen: Option<SocketAddr>,
    /// The config repository's commit pages, for the dashboard's links.
    pub config_repo_web_url: Option<crate::http::dashboard::values::CommitLinks>,
    /// Secret of the GitHub push webhook.
    pub github_webhook_secret: Option<String>,
    /// Secret of the deployment routes.
    pub deployment_webhook_secret: Option<String>,
    /// Which controller object deploys which environment.
    pub deployment_sources: crate::http::deployment_hooks::Sources,
    /// Where notifications go, if anywhere.
    pub notifications: Option<crate::notify::config::Notifications>,
    /// How long the notification lease lasts without renewal.
    pub notifications_lease: std::time::Duration,
    /// PEM certificate and key to serve gRPC over TLS.
    pub tls: Option<TlsFiles>,
    /// Which browser origins may call the gRPC port.
    pub cors: CorsPolicy,
    /// Bounds on both ports' connections.
    pub connections: ConnectionLimits,
}

/// The contents of the TLS certificate and key files.
#[derive(Clone)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: Vec<u8>,
    /// PEM private key.
    pub key: Vec<u8>,
}

impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsFiles(<redacted>)")
    }
}

impl ServerConfig {
    /// A config for a local repository with the default environments, no
    /// tokens and `--unauthenticated`: what tests and the demo start from.
    pub fn local(config_repo: impl Into<PathBuf>, data_dir: impl Into<PathBuf>) -> Self {
        ServerConfig {
            config_repo: RemoteLocation::Local(config_repo.into()),
            data_dir: data_dir.into(),
            config_branch: None,
            settings: Settings {
                environments: vec!["dev".into(), "staging".into(), "prod".into()],
                default_branch: "master".into(),
                global_restrictions: Vec::new(),
            },
            credentials: GitCredentials::default(),
            auth: Auth {
                unauthenticated: true,
                ..Auth::default()
            },
            writer: WriterConfig::default(),
            uploads: UploadLimits::default(),
            poll_interval: std::time::Duration::ZERO,
            remote_timeout: std::time::Duration::from_secs(30),
            fsync: true,
            http_listen: None,
            config_repo_web_url: None,
            github_webhook_secret: None,
            deployment_webhook_secret: None,
            deployment_sources: Default::default(),
            notifications: None,
            notifications_lease: std::time::Duration::from_secs(30),
            tls: None,
            cors: CorsPolicy::default(),
            connections: ConnectionLimits::default(),
        }
    }
}

/// What `release-manager start` runs: the typed config, where gRPC
/// listens, and whether it is the demo.
pub struct Resolved {
    /// Everything the server needs.
    pub config: ServerConfig,
    /// The gRPC listen address.
    pub listen: SocketAddr,
    /// Whether no repository was configured (the local demo).
    pub demo: bool,
}

/// Turns the flags into a config: checks names, picks the demo or the
/// configured repository, reads the files the flags name.
pub fn resolve(args: &StartArgs) -> Result<Resolved, Box<dyn std::error::Error>> {
    resolve_with_env(args, &|key| std::env::var(key).ok())
}

/// [`resolve`] with the original release manager's variables read from
/// `env` (tests give it; `resolve` gives the process environment).
pub fn resolve_with_env(
    args: &StartArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Resolved, Box<dyn std::error::Error>> {
    for env in &args.environments {
        release_manager::names::check_environment(env)?;
    }
    let configured = config_repo_setting(args, env)?;
    let demo = configured.is_none();
    let config_repo = match &configured {
        Some(url) => RemoteLocation::parse(url),
        None => RemoteLocation::Local(ensure_demo_repo(&args.data_dir)?),
    };
    let listen = args.listen.unwrap_or_else(|| {
        let default = if demo {
            "127.0.0.1:8080"
        } else {
            "0.0.0.0:8080"
        };
        default.parse().expect("a valid default address")
    });
    let auth = resolve_auth(args, demo, listen)?;
    let config = ServerConfig {
        config_repo,
        data_dir: args.data_dir.clone(),
        config_branch: args.config_branch.clone(),
        settings: Settings {
            environments: args.environments.clone(),
            default_branch: args.default_branch.clone(),
            global_restrictions: crate::domain::policy_file::parse_global(
                args.policy_branch_restrictions
                    .as_deref()
                    .unwrap_or_default(),
            )
            .map_err(|e| format!("--policy-branch-restrictions: {e}"))?,
        },
        credentials: GitCredentials {
            ssh_private_key: Some(args.ssh_private_key.clone()).filter(|p| p.exists()),
            ssh_known_hosts: known_hosts_file(
                args.ssh_known_hosts.as_deref(),
                &args.ssh_private_key,
            ),
            https_token: args.git_https_token.clone(),
            ..GitCredentials::default()
        },
        auth,
        writer: WriterConfig {
            queue_capacity: args.queue_capacity,
            max_push_attempts: args.max_push_attempts,
            batch_timeout: args.batch_timeout,
            commits: resolve_commits(&args.commits)?,
            ..WriterConfig::default()
        },
        uploads: UploadLimits {
            max_bytes: args.max_upload_bytes,
            max_files: args.max_upload_files,
            memory_budget: args.upload_memory,
            idle_timeout: args.upload_idle_timeout,
            total_timeout: args.upload_timeout,
            min_rate: args.upload_min_rate,
            ..UploadLimits::default()
        },
        poll_interval: args.poll_interval,
        remote_timeout: args.remote_timeout,
        fsync: args.fsync,
        http_listen: Some(args.http_listen.unwrap_or_else(|| {
            let default = if demo {
                "127.0.0.1:8081"
            } else {
                "0.0.0.0:8081"
            };
            default.parse().expect("a valid default address")
        })),
        config_repo_web_url: args.config_repo_web_url.clone(),
        github_webhook_secret: args.github_webhook_secret.clone().filter(|s| !s.is_empty()),
        deployment_webhook_secret: args
            .deployment_webhook_secret
            .clone()
            .filter(|s| !s.is_empty()),
        deployment_sources: args.deployment_sources.clone(),
        notifications: match &args.notifications {
            Some(path) => {
                Some(crate::notify::config::Notifications::load(path).map_err(|e| e.to_string())?)
            }
            None => None,
        },
        notifications_lease: args.notifications_lease,
        tls: match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: std::fs::read(cert)
                    .map_err(|e| format!("cannot read --tls-cert {}: {e}", cert.display()))?,
                key: std::fs::read(key)
                    .map_err(|e| format!("cannot read --tls-key {}: {e}", key.display()))?,
            }),
            _ => None,
        },
        cors: CorsPolicy::parse(&args.cors_allowed_origins, args.cors_allow_credentials)?,
        connections: connection_limits(args)?,
    };
    Ok(Resolved {
        config,
        listen,
        demo,
    })
}

/// The config repository the settings name: `--config-repo`
/// (`RELEASE_MANAGER_CONFIG_REPO`), else the original's `CONFIG_REPO`;
/// `None` only when none of them is set, which is the one case the demo
/// runs. A setting that is present but empty is an error, never the demo.
fn config_repo_setting(
    args: &StartArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, String> {
    let given = match &args.config_repo {
        Some(url) => Some(("--config-repo (RELEASE_MANAGER_CONFIG_REPO)", url.clone())),
        None => env(crate::original::CONFIG_REPO_VARIABLE)
            .map(|url| ("CONFIG_REPO (the original release manager's)", url)),
    };
    match given {
        Some((name, url)) if url.trim().is_empty() => Err(format!(
            "{name} is set but empty: name the config repository (a path, file://, ssh or \
             https URL), or unset it to run the local demo"
        )),
        Some((_, url)) => Ok(Some(url.trim().to_string())),
        None => Ok(None),
    }
}

/// How the server authenticates, decided from the flags before it starts.
///
/// The rule: a server is either explicitly unauthenticated (`--unauthenticated`,
/// or the demo on loopback with no token at all), or every role needs its
/// own token, and the calls of a role with no token configured are refused.
/// There is no configuration in which one role is open because another one
/// has a token.
pub fn resolve_auth(args: &StartArgs, demo: bool, listen: SocketAddr) -> Result<Auth, String> {
    // Each a comma-separated list of tokens, as the original took them: a
    // list of nothing but separators is no token.
    let some_token = |setting: &Option<String>| {
        setting
            .clone()
            .filter(|t| t.split(',').any(|token| !token.trim().is_empty()))
    };
    let hamctl_token = some_token(&args.hamctl_auth_token);
    let artifact_token = some_token(&args.artifact_auth_token);
    let oidc = resolve_oidc(args)?;
    let no_token = hamctl_token.is_none() && artifact_token.is_none() && oidc.issuers.is_empty();
    let unauthenticated = args.unauthenticated || (demo && no_token && listen.ip().is_loopback());
    if no_token && !unauthenticated {
        let why = if demo {
            format!("the demo listens on {listen}, which is not loopback, and no token is set")
        } else {
            "no token is set".to_string()
        };
        return Err(format!(
            "{why}: give --hamctl-auth-token (HAMCTL_AUTH_TOKEN) and \
             --artifact-auth-token (ARTIFACT_AUTH_TOKEN), or --oidc-issuer, or \
             --unauthenticated to accept calls without a token"
        ));
    }
    if args.access.is_some() && oidc.issuers.is_empty() {
        return Err("--access needs --oidc-issuer: its rules are for identity tokens".into());
    }
    if let Some(path) = &args.access {
        crate::auth::rules::Rules::load(path)?;
    }
    Ok(Auth {
        hamctl_token,
        artifact_token,
        unauthenticated,
        oidc,
        access_file: args.access.clone(),
    })
}

/// The trusted issuers of `--oidc-issuer URL[=AUDIENCE]`.
fn resolve_oidc(args: &StartArgs) -> Result<OidcSettings, String> {
    let default_audience = args
        .oidc_audience
        .clone()
        .or_else(|| args.oidc_client_id.clone())
        .filter(|a| !a.is_empty());
    let mut issuers = Vec::new();
    for given in args.oidc_issuers.iter().filter(|i| !i.trim().is_empty()) {
        let (url, audience) = match given.split_once('=') {
            Some((url, audience)) => (url.trim(), Some(audience.trim().to_string())),
            None => (given.trim(), default_audience.clone()),
        };
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(format!(
                "--oidc-issuer {url:?}: an issuer is an http(s) URL, exactly as its tokens' iss says"
            ));
        }
        let audience = audience.filter(|a| !a.is_empty()).ok_or_else(|| {
            format!(
                "--oidc-issuer {url}: give the audience its tokens must name \
                 ({url}=AUDIENCE, --oidc-audience or --oidc-client-id)"
            )
        })?;
        issuers.push(TrustedIssuer {
            url: url.to_string(),
            audience,
        });
    }
    if args.oidc_client_id.is_some() && issuers.is_empty() {
        return Err("--oidc-client-id needs --oidc-issuer".into());
    }
    Ok(OidcSettings {
        issuers,
        client_id: args.oidc_client_id.clone().filter(|c| !c.is_empty()),
        leeway: args.oidc_leeway,
    })
}

/// The bounds on both ports' connections; zero durations are refused (a
/// zero would close every connection at once).
fn connection_limits(args: &StartArgs) -> Result<ConnectionLimits, String> {
    for (flag, value) in [
        ("--header-timeout", args.header_timeout),
        ("--body-timeout", args.body_timeout),
        ("--idle-timeout", args.idle_timeout),
        ("--keepalive-interval", args.keepalive_interval),
        ("--keepalive-timeout", args.keepalive_timeout),
    ] {
        if value.is_zero() {
            return Err(format!("{flag} must be longer than 0"));
        }
    }
    if args.max_connections == Some(0) {
        return Err("--max-connections must be at least 1".into());
    }
    Ok(ConnectionLimits {
        max_connections: args.max_connections.unwrap_or_else(|| {
            crate::listen::max_connections_for(crate::listen::open_file_limit())
        }),
        header_timeout: args.header_timeout,
        body_timeout: args.body_timeout,
        idle_timeout: args.idle_timeout,
        keepalive_interval: args.keepalive_interval,
        keepalive_timeout: args.keepalive_timeout,
    })
}

fn parse_commit_links(text: &str) -> Result<crate::http::dashboard::values::CommitLinks, String> {
    crate::http::dashboard::values::CommitLinks::parse(text)
}

fn parse_sources(text: &str) -> Result<crate::http::deployment_hooks::Sources, String> {
    crate::http::deployment_hooks::Sources::parse(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    fn args(extra: &[&str]) -> StartArgs {
        let mut argv = vec!["release-manager", "start"];
        argv.extend_from_slice(extra);
        let Command::Start(args) = Cli::try_parse_from(argv).expect("parses").command else {
            panic!("start");
        };
        args
    }

    fn loopback() -> SocketAddr {
        "127.0.0.1:8080".parse().unwrap()
    }

    fn everywhere() -> SocketAddr {
        "0.0.0.0:8080".parse().unwrap()
    }

    /// Whether a call of `role` without any token is accepted.
    fn open(auth: &Auth, role: Role) -> bool {
        auth.role_open(role)
    }

    #[test]
    fn the_demo_on_loopback_without_tokens_is_open() {
        let auth = resolve_auth(&args(&[]), true, loopback()).unwrap();
        assert!(open(&auth, Role::Operator) && open(&auth, Role::ArtifactPusher));
    }

    #[test]
    fn without_tokens_elsewhere_the_server_refuses_to_start() {
        let error = resolve_auth(&args(&[]), true, everywhere()).unwrap_err();
        assert!(error.contains("0.0.0.0:8080"), "{error}");
        assert!(error.contains("--artifact-auth-token"), "{error}");
        assert!(error.contains("--unauthenticated"), "{error}");
        let error = resolve_auth(&args(&[]), false, loopback()).unwrap_err();
        assert!(error.contains("--hamctl-auth-token"), "{error}");
    }

    #[test]
    fn one_token_never_opens_the_other_role() {
        for demo in [true, false] {
            for listen in [loopback(), everywhere()] {
                let auth =
                    resolve_auth(&args(&["--hamctl-auth-token", "h"]), demo, listen).unwrap();
                assert!(!open(&auth, Role::Operator), "demo {demo}, {listen}");
                assert!(!open(&auth, Role::ArtifactPusher), "demo {demo}, {listen}");
                let auth =
                    resolve_auth(&args(&["--artifact-auth-token", "a"]), demo, listen).unwrap();
                assert!(!open(&auth, Role::Operator), "demo {demo}, {listen}");
                assert!(!open(&auth, Role::ArtifactPusher), "demo {demo}, {listen}");
            }
        }
    }

    #[test]
    fn unauthenticated_is_explicit() {
        let auth = resolve_auth(&args(&["--unauthenticated"]), true, everywhere()).unwrap();
        assert!(open(&auth, Role::Operator) && open(&auth, Role::ArtifactPusher));
        // Asked for explicitly: a role with a token still needs it.
        let auth = resolve_auth(
            &args(&["--unauthenticated", "--hamctl-auth-token", "h"]),
            false,
            everywhere(),
        )
        .unwrap();
        assert!(!open(&auth, Role::Operator));
        assert!(open(&auth, Role::ArtifactPusher));
    }

    #[test]
    fn the_originals_config_repo_variable_is_honoured_and_never_the_demo() {
        let data = tempfile::tempdir().unwrap();
        let data_dir = data.path().to_str().unwrap();
        let original =
            |key: &str| (key == "CONFIG_REPO").then(|| "git@github.com:acme/k8s.git".to_string());
        let resolved = resolve_with_env(
            &args(&[
                "--data-dir",
                data_dir,
                "--hamctl-auth-token",
                "h",
                "--artifact-auth-token",
                "a",
            ]),
            &original,
        )
        .unwrap();
        assert!(!resolved.demo);
        assert!(
            matches!(&resolved.config.config_repo, RemoteLocation::Network(url) if url == "git@github.com:acme/k8s.git"),
            "{:?}",
            resolved.config.config_repo
        );
        // The flag wins over the original's variable.
        let resolved = resolve_with_env(
            &args(&[
                "--data-dir",
                data_dir,
                "--config-repo",
                "/srv/k8s",
                "--unauthenticated",
            ]),
            &original,
        )
        .unwrap();
        assert!(
            matches!(&resolved.config.config_repo, RemoteLocation::Local(p) if p.ends_with("k8s"))
        );
        // Set but empty: an error, never the demo.
        let empty = |key: &str| (key == "CONFIG_REPO").then(String::new);
        let error = resolve_with_env(&args(&["--data-dir", data_dir]), &empty)
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("CONFIG_REPO") && error.contains("empty"),
            "{error}"
        );
        // Nothing at all: the demo.
        let resolved = resolve_with_env(&args(&["--data-dir", data_dir]), &|_| None).unwrap();
        assert!(resolved.demo);
    }

    #[test]
    fn several_comma_separated_tokens_each_open_their_role() {
        let auth = resolve_auth(
            &args(&[
                "--hamctl-auth-token",
                "old, new",
                "--artifact-auth-token",
                "ci",
            ]),
            false,
            everywhere(),
        )
        .unwrap();
        for token in ["old", "new"] {
            assert!(auth.static_token_matches(token, Role::Operator), "{token}");
            assert!(
                !auth.static_token_matches(token, Role::ArtifactPusher),
                "{token}"
            );
        }
        assert!(!auth.static_token_matches("old, new", Role::Operator));
        let error =
            resolve_auth(&args(&["--hamctl-auth-token", " , "]), false, everywhere()).unwrap_err();
        assert!(error.contains("no token is set"), "{error}");
    }

    #[test]
    fn empty_tokens_count_as_none() {
        let error =
            resolve_auth(&args(&["--hamctl-auth-token", ""]), false, everywhere()).unwrap_err();
        assert!(error.contains("no token is set"), "{error}");
    }

    #[test]
    fn a_config_repo_web_url_needs_the_commit_placeholder() {
        let parsed = args(&[
            "--config-repo-web-url",
            "https://gitlab.com/acme/k8s/-/commit/{commit}",
        ]);
        let links = parsed.config_repo_web_url.expect("a template");
        assert_eq!(
            links.url("abc123").as_deref(),
            Some("https://gitlab.com/acme/k8s/-/commit/abc123")
        );
        let error = Cli::try_parse_from([
            "release-manager",
            "start",
            "--config-repo-web-url",
            "https://gitlab.com/acme/k8s/-/commit/",
        ])
        .expect_err("refused")
        .to_string();
        assert!(error.contains("--config-repo-web-url"), "{error}");
        assert!(error.contains("{commit}"), "{error}");
    }
}
