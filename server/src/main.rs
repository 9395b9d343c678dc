//! `release-manager start`: parse flags, set up logging, pick the demo or the
//! configured repository, serve until SIGINT/SIGTERM, then shut down
//! gracefully (finish and push the batch in flight).

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use release_manager_server::auth::Auth;
use release_manager_server::config::{
    resolve_auth, Cli, Command, LogFormat, ServerConfig, StartArgs, TlsFiles,
};
use release_manager_server::demo::{ensure_demo_repo, DEMO_SERVICES};
use release_manager_server::domain::Settings;
use release_manager_server::repo::remote::{known_hosts_file, GitCredentials, RemoteLocation};
use release_manager_server::service::upload::UploadLimits;
use release_manager_server::domain::chain;
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
    // Colour only for a person at a terminal (see <https://no-color.org>).
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
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
    let auth = resolve_auth(&args, demo, listen)?;
    let config = ServerConfig {
        config_repo,
        data_dir: args.data_dir.clone(),
        config_branch: args.config_branch.clone(),
        settings: Settings {
            environments: args.environments.clone(),
            default_branch: args.default_branch.clone(),
            global_restrictions: release_manager_server::domain::policy::parse_global(
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
        auth: auth.clone(),
        writer: WriterConfig {
            queue_capacity: args.queue_capacity,
            max_push_attempts: args.max_push_attempts,
            batch_timeout: args.batch_timeout,
            ..WriterConfig::default()
        },
        uploads: UploadLimits {
            max_bytes: args.max_upload_bytes,
            max_files: args.max_upload_files,
            memory_budget: args.upload_memory,
            idle_timeout: args.upload_idle_timeout,
            total_timeout: args.upload_timeout,
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
        github_webhook_secret: args.github_webhook_secret.clone().filter(|s| !s.is_empty()),
        deployment_webhook_secret: args
            .deployment_webhook_secret
            .clone()
            .filter(|s| !s.is_empty()),
        deployment_sources: args.deployment_sources.clone(),
        notifications: match &args.notifications {
            Some(path) => Some(
                release_manager_server::notify::config::Notifications::load(path)
                    .map_err(anyhow::Error::msg)?,
            ),
            None => None,
        },
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
    warn_about_closed_roles(&auth, listen);
    if demo {
        print_demo_help(server.addr, server.http_addr, &auth);
    }
    shutdown_signal().await;
    tracing::info!("shutting down: finishing the writes in flight");
    server.shutdown().await;
    Ok(())
}

/// Says at start which calls no one can make, so a missing token flag is
/// found before the first refused call.
fn warn_about_closed_roles(auth: &Auth, listen: SocketAddr) {
    if auth.unauthenticated {
        if auth.hamctl_token.is_some() || auth.artifact_token.is_some() {
            tracing::warn!("--unauthenticated: calls of the role without a token need no token");
        } else if listen.ip().is_loopback() {
            tracing::info!("no authentication: loopback only");
        } else {
            tracing::warn!(%listen, "no authentication: anyone who reaches this address can release");
        }
        return;
    }
    if auth.hamctl_token.is_none() {
        tracing::warn!(
            "no --hamctl-auth-token: hamctl calls (release, status, policies) are refused"
        );
    }
    if auth.artifact_token.is_none() {
        tracing::warn!("no --artifact-auth-token: build uploads (artifact push) are refused");
    }
}

fn print_demo_help(addr: SocketAddr, http_addr: Option<SocketAddr>, auth: &Auth) {
    let (service, _) = DEMO_SERVICES[0];
    // Listening on every address: loopback reaches it from this machine.
    let reachable = |addr: SocketAddr| {
        if addr.ip().is_unspecified() {
            SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
        } else {
            addr
        }
    };
    let url = format!("http://{}", reachable(addr));
    let hamctl = sibling_command("hamctl");
    let scope = if addr.ip().is_loopback() {
        "loopback only"
    } else {
        "all addresses"
    };
    let auth_line = if auth.unauthenticated && auth.hamctl_token.is_none() {
        "no authentication".to_string()
    } else {
        "hamctl needs its token".to_string()
    };
    let mut lines = vec![
        String::new(),
        format!(
            "Release manager demo: serving a local demo config repository on {url} ({scope}, {auth_line})."
        ),
        "Try, in another terminal:".to_string(),
        String::new(),
        format!("  export HAMCTL_URL={url}"),
    ];
    if auth.hamctl_token.is_some() {
        lines.push("  export HAMCTL_AUTH_TOKEN=<the --hamctl-auth-token this server got>".into());
    }
    for command in [
        format!("status --service {service}"),
        format!("release --service {service} --env dev --branch feature/fast-search"),
        format!("promote --service {service} --env staging"),
        format!("describe release --service {service} --env dev"),
        format!("rollback --service {service} --env dev"),
    ] {
        lines.push(format!("  {hamctl} {command}"));
    }
    if let Some(http) = http_addr {
        lines.push(String::new());
        lines.push(format!(
            "The dashboard, live as you release: http://{}/",
            reachable(http)
        ));
    }
    lines.push(String::new());
    use std::io::Write;
    // A closed stdout (piped into `head`, say) must not stop the server.
    let _ = writeln!(std::io::stdout(), "{}", lines.join("\n"));
}

/// How to run a program of this project from where the user is: the binary
/// beside this one (`./dist/hamctl` after `make build`), the bare name when
/// that folder is on PATH, else through cargo.
fn sibling_command(name: &str) -> String {
    let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
    else {
        return format!("cargo run -q --release --bin {name} --");
    };
    if !dir.join(name).is_file() {
        return format!("cargo run -q --release --bin {name} --");
    }
    let on_path = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .any(|entry| entry.canonicalize().ok() == dir.canonicalize().ok())
    });
    if on_path {
        return name.to_string();
    }
    let cwd = std::env::current_dir().ok();
    match cwd.and_then(|cwd| dir.strip_prefix(&cwd).ok().map(Path::to_path_buf)) {
        Some(relative) => format!("./{}", relative.join(name).display()),
        None => dir.join(name).display().to_string(),
    }
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
