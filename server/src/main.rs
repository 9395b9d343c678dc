//! `release-manager start`: parse flags, set up logging, pick the demo or the
//! configured repository, serve until SIGINT/SIGTERM, then shut down
//! gracefully (finish and push the batch in flight).

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use release_manager_server::config::{self, Cli, Command, LogFormat, Resolved, StartArgs};
use release_manager_server::{chain, original, Auth, DEMO_SERVICES};

fn main() -> ExitCode {
    // The original release manager's settings that mean nothing here stop
    // the start, each named with what replaces it (before clap, which
    // would call them unknown).
    let argv = original::with_start(std::env::args_os().collect());
    let env = |key: &str| std::env::var(key).ok();
    let configured = original::repository_configured(&argv, &env);
    let refused = original::refusals(&argv, &env, configured);
    if !refused.is_empty() {
        eprintln!(
            "error: settings of the original release manager that this server does not take:"
        );
        for line in &refused {
            eprintln!("  {line}");
        }
        eprintln!("(docs/migration.md maps each of them)");
        return ExitCode::from(2);
    }
    let cli = Cli::parse_from(argv);
    let args = match cli.command {
        Command::Start(args) => args,
        Command::ImportS3(args) => return import_s3(&args),
    };
    init_logging(args.log_format, args.log_level.as_deref());
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

fn init_logging(format: LogFormat, original_level: Option<&str>) {
    // RUST_LOG, else the original's --log.level / LOG_LEVEL, else info.
    let level = original_level
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .unwrap_or("info");
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
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
    // Every connection holds a file; the default bound on connections
    // follows what the system allows.
    let open_files = release_manager_server::raise_open_file_limit();
    tracing::debug!(open_files, "open-file limit");
    let Resolved {
        config,
        listen,
        demo,
    } = config::resolve(&args)?;
    let auth = config.auth.clone();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let server = release_manager_server::start(config, listener).await?;
    warn_about_closed_roles(&auth, listen);
    if demo {
        print_demo_help(server.addr, server.http_addr, &auth);
    }
    shutdown_signal(&server).await;
    tracing::info!("shutting down: finishing the writes in flight");
    server.shutdown().await;
    Ok(())
}

/// `release-manager import-s3`: one run of the import, reported on stdout.
fn import_s3(args: &release_manager_server::ImportS3Args) -> ExitCode {
    init_logging(LogFormat::Text, None);
    let config = match release_manager_server::resolve_import(args, &|key| std::env::var(key).ok())
    {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let dry_run = config.dry_run;
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(release_manager_server::import_s3(config)) {
        Ok(report) => {
            let verb = if dry_run { "would import" } else { "imported" };
            for key in &report.imported {
                println!("{verb} {key}");
            }
            for why in &report.skipped {
                println!("skipped {why}");
            }
            println!(
                "{} objects listed: {} {verb}, {} already in the config repository, {} skipped",
                report.listed,
                report.imported.len(),
                report.already_there,
                report.skipped.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            ExitCode::FAILURE
        }
    }
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
    if auth.has_oidc() {
        if auth.access_file.is_none() {
            tracing::warn!("no --access: identity tokens may only read");
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
        "No config repository is configured (--config-repo, RELEASE_MANAGER_CONFIG_REPO or CONFIG_REPO), so this is the demo.".to_string(),
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

/// Waits for SIGINT or SIGTERM; on SIGHUP in the meantime, reads the
/// access rules again.
async fn shutdown_signal(server: &release_manager_server::RunningServer) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut hangup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return,
                _ = term.recv() => return,
                _ = hangup.recv() => {
                    // Logged by the server: the count, or why the old rules stay.
                    let _ = server.reload_access();
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = server;
        let _ = tokio::signal::ctrl_c().await;
    }
}
