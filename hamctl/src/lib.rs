//! `hamctl`, the operator CLI of the release manager, as a library.
//!
//! This module owns the entry points and the exit-code contract: it parses
//! the command line, dispatches to one module per command, and turns every
//! failure into one `error: ...` line on stderr. It must not talk to the
//! server or format responses itself; the command modules do that through
//! `client`, `present` and `output`.
//!
//! Exit codes: 0 on success (also for `--help`, `--version`, a stdout
//! closed early, e.g. by `| head`, and a `watch` ended by Ctrl-C), 1 when
//! the operation failed (also a `watch` whose server went away, and a
//! `--wait` whose environment reported the release failed), 2 for usage
//! errors, 3 when `--wait` timed out, 4 when `--wait` cannot wait because
//! the server takes no deployment reports.
//!
//! The library form exists so that end-to-end tests can run the real CLI in
//! process and capture what it prints:
//!
//! ```no_run
//! # async fn demo() {
//! let (mut out, mut err) = (Vec::new(), Vec::new());
//! let code = hamctl::run_with_output(
//!     ["hamctl", "--server", "127.0.0.1:8080", "status", "--service", "product-api"],
//!     &mut out,
//!     &mut err,
//! )
//! .await;
//! assert_eq!(code, 0);
//! # }
//! ```

mod cli;
mod client;
mod completions;
mod credentials;
mod describe;
mod diff;
mod error;
mod global;
mod identity;
mod login;
mod obsolete;
mod output;
mod policy;
mod present;
mod promote;
mod release;
mod retry;
mod rollback;
mod services;
mod shuttle;
mod sign_in;
mod status;
mod wait;
mod watch;
mod whoami;

use std::ffi::OsString;
use std::io::{IsTerminal, Write};

use clap::CommandFactory;
use cli_support::{self, is_broken_pipe, report_clap_error, report_outcome, Colour};

use crate::cli::{Cli, Command};
use crate::error::CliError;
use crate::output::Printer;

/// Exit code of a successful run.
pub const EXIT_SUCCESS: i32 = cli_support::EXIT_SUCCESS;
/// Exit code when the operation failed (server error, unreachable server,
/// unknown committer, ...).
pub const EXIT_FAILURE: i32 = cli_support::EXIT_FAILURE;
/// Exit code of a usage error (unknown flag, missing argument, ...).
pub const EXIT_USAGE: i32 = cli_support::EXIT_USAGE;
/// Exit code of `--wait` when no report settled the release in time.
pub const EXIT_WAIT_TIMEOUT: i32 = 3;
/// Exit code of `--wait` on a server that takes no deployment reports.
pub const EXIT_NO_REPORTS: i32 = 4;

/// Runs hamctl with the process's stdout and stderr and returns the exit code.
///
/// `args` is the whole command line, program name first, as
/// [`std::env::args_os`] gives it. Tables are coloured when stdout is a
/// terminal and `NO_COLOR` is unset or empty.
pub async fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let colour = colour_allowed();
    let style = Colour {
        out: colour && std::io::stdout().is_terminal(),
        err: colour && std::io::stderr().is_terminal(),
    };
    // Not the locked handles: those are not `Send`, and the future may be.
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    run_styled(args, &mut out, &mut err, style).await
}

/// Runs hamctl writing to `out` and `err` instead of the process's streams,
/// and returns the exit code. Nothing is coloured.
///
/// `args` is the whole command line, program name first (e.g.
/// `["hamctl", "status", "--service", "product-api"]`).
pub async fn run_with_output<I, T>(
    args: I,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    run_styled(args, out, err, Colour::default()).await
}

/// Whether colour may be used at all (see <https://no-color.org>).
fn colour_allowed() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}

async fn run_styled<I, T>(
    args: I,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
    style: Colour,
) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let argv: Vec<String> = args
        .iter()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    let cli = match Cli::parse_checked(args) {
        Ok(cli) => cli,
        Err(clap_error) => return report_clap_error(&clap_error, out, err, style),
    };
    let outcome = {
        let format = cli.global.output;
        let mut printer = Printer::new(out, format, style.out).with_notes(err);
        dispatch(cli, &mut printer)
            .await
            .map_err(|error| error.with_command_line(&argv))
    };
    match &outcome {
        Err(CliError::WaitTimedOut(why)) => {
            let _ = writeln!(err, "error: {why}");
            return EXIT_WAIT_TIMEOUT;
        }
        Err(CliError::NoReports(why)) => {
            let _ = writeln!(err, "error: {why}");
            return EXIT_NO_REPORTS;
        }
        _ => {}
    }
    report_outcome(
        outcome,
        |error| matches!(error, CliError::Output(io) if is_broken_pipe(io)),
        err,
    )
}

async fn dispatch(cli: Cli, printer: &mut Printer<'_>) -> Result<(), CliError> {
    let global = &cli.global;
    match cli.command {
        Command::Release(args) => release::run(args, global, printer).await,
        Command::Promote(args) => promote::run(args, global, printer).await,
        Command::Rollback(args) => rollback::run(args, global, printer).await,
        Command::Status(args) => status::run(args, global, printer).await,
        Command::Services(args) => services::run(args, global, printer).await,
        Command::Describe(args) => describe::run(args, global, printer).await,
        Command::Diff(args) => diff::run(args, global, printer).await,
        Command::Policy(args) => policy::run(args, global, printer).await,
        Command::Watch(args) => watch::run(args, global, printer).await,
        Command::Login(args) => login::login(args, global, printer).await,
        Command::Logout(args) => login::logout(args, global, printer).await,
        Command::Whoami(args) => whoami::run(args, global, printer).await,
        Command::Completions(args) => completions::run(args, Cli::command(), printer),
        Command::Version => Ok(printer.line(&format!("hamctl {}", env!("CARGO_PKG_VERSION")))?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run_captured(args: &[&str]) -> (i32, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run_with_output(args.iter().copied(), &mut out, &mut err).await;
        (
            code,
            String::from_utf8(out).expect("utf-8 stdout"),
            String::from_utf8(err).expect("utf-8 stderr"),
        )
    }

    #[test]
    fn the_run_futures_are_send() {
        fn assert_send<T: Send>(_: &T) {}
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let args = vec!["hamctl".to_owned(), "--help".to_owned()];
        assert_send(&run_with_output(args.clone(), &mut out, &mut err));
        assert_send(&run(args));
    }

    #[tokio::test]
    async fn help_goes_to_stdout_with_exit_zero() {
        let (code, out, err) = run_captured(&["hamctl", "--help"]).await;
        assert_eq!(code, 0);
        assert!(out.contains("Usage:"), "{out}");
        assert!(err.is_empty());
    }

    #[tokio::test]
    async fn subcommand_help_goes_to_stdout_with_exit_zero() {
        let (code, out, _) = run_captured(&["hamctl", "release", "--help"]).await;
        assert_eq!(code, 0);
        assert!(out.contains("--artifact"), "{out}");
    }

    #[tokio::test]
    async fn version_exits_zero() {
        let (code, out, _) = run_captured(&["hamctl", "--version"]).await;
        assert_eq!(code, 0);
        assert!(out.contains(env!("CARGO_PKG_VERSION")), "{out}");
    }

    #[tokio::test]
    async fn usage_errors_exit_two_on_stderr() {
        let (code, out, err) =
            run_captured(&["hamctl", "release", "--service", "a", "--env", "dev"]).await;
        assert_eq!(code, 2);
        assert!(out.is_empty());
        assert!(err.contains("--branch"), "{err}");
    }

    #[tokio::test]
    async fn missing_subcommand_is_a_usage_error() {
        let (code, _, err) = run_captured(&["hamctl"]).await;
        assert_eq!(code, 2);
        assert!(err.contains("Usage:"), "{err}");
    }

    #[tokio::test]
    async fn unreachable_server_is_one_error_line() {
        // Port 1 on loopback: nothing listens there, the connect fails fast.
        let (code, out, err) = run_captured(&[
            "hamctl",
            "status",
            "--service",
            "product-api",
            "--server",
            "127.0.0.1:1",
        ])
        .await;
        assert_eq!(code, 1);
        assert!(out.is_empty());
        assert!(
            err.starts_with("error: cannot reach server at http://127.0.0.1:1: "),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}
