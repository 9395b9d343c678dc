//! `release-manager start`: parse flags, set up logging, pick the demo or the
//! configured repository, serve until SIGINT/SIGTERM, then shut down
//! gracefully (finish and push the batch in flight).

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use release_manager_server::auth::Auth;
use release_manager_server::config::{Cli, Command, LogFormat, ServerConfig, StartArgs, TlsFiles};
use release_manager_server::demo::{ensure_demo_repo, DEMO_SERVICES};
use release_manager_server::flows::Settings;
use release_manager_server::repo::remote::{GitCredentials, RemoteLocation};
use release_manager_server::service::upload::UploadLimits;
use release_manager_server::status::chain;
use release_manager_server::writer::WriterConfig;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let Command::Start(args) = cli.command;
    init_logging(args.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stderr; stdout carries only the demo's instructions.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(args: StartArgs) -> Result<(), Box<dyn std::error::Error>> {
    for env in &args.environments {
        release_manager::names::check_environment(env)?;
    }
    let demo = args.config_repo.is_none();
    let config_repo = match &args.config_repo {
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
    let has_token = args
        .hamctl_auth_token
        .as_deref()
        .is_some_and(|t| !t.is_empty());
    if demo && !listen.ip().is_loopback() && !has_token {
        return Err("the demo runs unauthenticated and listens on loopback only; give --hamctl-auth-token to listen on another address".into());
    }
    if !demo && !has_token && !args.unauthenticated {
        return Err("no --hamctl-auth-token (HAMCTL_AUTH_TOKEN) given: pass one, or --unauthenticated to run without authentication".into());
    }
    let config = ServerConfig {
        config_repo,
        data_dir: args.data_dir.clone(),
        settings: Settings {
            environments: args.environments.clone(),
            default_branch: args.default_branch.clone(),
            global_restrictions: release_manager_server::policy::parse_global(
                args.policy_branch_restrictions
                    .as_deref()
                    .unwrap_or_default(),
            )
            .map_err(|e| format!("--policy-branch-restrictions: {e}"))?,
        },
        credentials: GitCredentials {
            ssh_private_key: Some(args.ssh_private_key.clone()).filter(|p| p.exists()),
            ssh_known_hosts: args.ssh_known_hosts.clone(),
            https_token: args.git_https_token.clone(),
        },
        auth: Auth {
            hamctl_token: args.hamctl_auth_token.clone().filter(|t| !t.is_empty()),
            artifact_token: args.artifact_auth_token.clone().filter(|t| !t.is_empty()),
            unauthenticated: args.unauthenticated || demo,
        },
        writer: WriterConfig {
            queue_capacity: args.queue_capacity,
            max_push_attempts: args.max_push_attempts,
            ..WriterConfig::default()
        },
        uploads: UploadLimits {
            max_bytes: args.max_upload_bytes,
            max_files: args.max_upload_files,
        },
        poll_interval: args.poll_interval,
        http_listen: Some(args.http_listen.unwrap_or_else(|| {
            let default = if demo {
                "127.0.0.1:8081"
            } else {
                "0.0.0.0:8081"
            };
            default.parse().expect("a valid default address")
        })),
        github_webhook_secret: args.github_webhook_secret.clone().filter(|s| !s.is_empty()),
        tls: match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: std::fs::read(cert)
                    .map_err(|e| format!("cannot read --tls-cert {}: {e}", cert.display()))?,
                key: std::fs::read(key)
                    .map_err(|e| format!("cannot read --tls-key {}: {e}", key.display()))?,
            }),
            _ => None,
        },
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let server = release_manager_server::start(config, listener).await?;
    if demo {
        print_demo_help(server.addr);
    }
    shutdown_signal().await;
    tracing::info!("shutting down: finishing the writes in flight");
    server.shutdown().await;
    Ok(())
}

fn print_demo_help(addr: SocketAddr) {
    let (service, _) = DEMO_SERVICES[0];
    let url = format!("http://{addr}");
    use std::io::Write;
    // A closed stdout (piped into `head`, say) must not stop the server.
    let _ = writeln!(
        std::io::stdout(),
        "\nRelease manager demo: serving a local demo config repository on {url} (loopback only, no authentication).\n\
         Try, in another terminal:\n\n  \
         export HAMCTL_URL={url}\n  \
         cargo run -q --bin hamctl -- status --service {service}\n  \
         cargo run -q --bin hamctl -- release --service {service} --env dev --branch master\n  \
         cargo run -q --bin hamctl -- promote --service {service} --env staging\n  \
         cargo run -q --bin hamctl -- describe release --service {service} --env dev\n  \
         cargo run -q --bin hamctl -- rollback --service {service} --env dev\n"
    );
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
