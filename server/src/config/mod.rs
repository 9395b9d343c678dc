//! Command-line flags and environment variables of `release-manager start`,
//! parsed once in `main` into a typed [`ServerConfig`].

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::api::upload::UploadLimits;
pub use crate::api::web::CorsPolicy;
use crate::auth::{Auth, OidcSettings, TrustedIssuer};
use crate::commit_flags::resolve_commits;
use crate::demo::ensure_demo_repo;
use crate::domain::Settings;
use crate::engine::writer::WriterConfig;
use crate::listen::ConnectionLimits;
use crate::repo::remote::{GitCredentials, RemoteLocation};

mod flags;
pub use flags::{LogFormat, StartArgs};

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
        credentials: GitCredentials::from_flags(
            &args.ssh_private_key,
            args.ssh_known_hosts.as_deref(),
            args.git_https_token.clone(),
        ),
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
