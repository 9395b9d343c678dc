//! `artifact`, the CI CLI of the release manager, as a library.
//!
//! This module owns the entry points and the exit-code contract: it parses
//! the command line, dispatches to one module per command, and turns every
//! failure into one `error: ...` line on stderr. It must not read or write
//! artifact.json, talk to the server or format results itself; the command
//! modules do that through `spec_file`, `error` and `cli_support` (which
//! also prints clap's messages and the final error line).
//!
//! Exit codes: 0 on success (also for `--help` and `--version`), 1 when the
//! operation failed, 2 for usage errors.
//!
//! The library form exists so that tests can run the real CLI in process and
//! capture what it prints. Times come from a [`Clock`]: [`run`] and
//! [`run_with_output`] use the system clock unless `ARTIFACT_FIXED_TIME`
//! names a fixed one; [`run_with_clock`] takes the clock explicitly.
//!
//! ```no_run
//! # async fn demo() {
//! let (mut out, mut err) = (Vec::new(), Vec::new());
//! let code = artifact::run_with_output(
//!     ["artifact", "--root", "build", "end"],
//!     &mut out,
//!     &mut err,
//! )
//! .await;
//! assert_eq!(code, 0);
//! # }
//! ```

mod add;
mod cli;
mod clock;
mod end;
mod error;
mod global;
mod identity;
mod init;
mod outcome;
mod push;
mod spec_file;

use std::ffi::OsString;
use std::io::Write;

use clap::Parser;
use cli_support::{self, is_broken_pipe, report_clap_error, report_outcome, Colour};

pub use crate::clock::{Clock, FIXED_TIME_ENV};

use crate::cli::{Cli, Command};
use crate::error::CliError;

/// Exit code of a successful run.
pub const EXIT_SUCCESS: i32 = cli_support::EXIT_SUCCESS;
/// Exit code when the operation failed (missing or invalid artifact.json,
/// unreadable build folder, server error, unreachable server, ...).
pub const EXIT_FAILURE: i32 = cli_support::EXIT_FAILURE;
/// Exit code of a usage error (unknown flag, missing argument, ...).
pub const EXIT_USAGE: i32 = cli_support::EXIT_USAGE;

/// Runs artifact with the process's stdout and stderr and returns the exit
/// code.
///
/// `args` is the whole command line, program name first, as
/// [`std::env::args_os`] gives it. Times are read from the system clock,
/// unless `ARTIFACT_FIXED_TIME` is set (see [`Clock::from_env`]).
pub async fn run<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    // Not the locked handles: those are not `Send`, and the future may be.
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    run_inner(args, &mut out, &mut err, None).await
}

/// Runs artifact writing to `out` and `err` instead of the process's
/// streams, and returns the exit code.
///
/// `args` is the whole command line, program name first (e.g.
/// `["artifact", "end"]`). Times are read as in [`run`].
pub async fn run_with_output<I, T>(
    args: I,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    run_inner(args, out, err, None).await
}

/// Like [`run_with_output`], with the times `init` and `end` record taken
/// from `clock` (`ARTIFACT_FIXED_TIME` is not consulted).
pub async fn run_with_clock<I, T>(
    args: I,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
    clock: &Clock,
) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    run_inner(args, out, err, Some(clock)).await
}

async fn run_inner<I, T>(
    args: I,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
    clock: Option<&Clock>,
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
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        // Nothing artifact prints is coloured.
        Err(clap_error) => return report_clap_error(&clap_error, out, err, Colour::default()),
    };
    if let Some(refused) = cli::refused_push_flags(&cli) {
        return report_clap_error(&refused, out, err, Colour::default());
    }
    let outcome = dispatch(cli, out, err, clock)
        .await
        .map_err(|error| error.with_command_line(&argv));
    report_outcome(
        outcome,
        |error| matches!(error, CliError::Output(io) if is_broken_pipe(io)),
        err,
    )
}

async fn dispatch(
    cli: Cli,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
    clock: Option<&Clock>,
) -> Result<(), CliError> {
    let file = spec_file::SpecFile::new(&cli.global.root, &cli.global.file);
    let message_file = cli.global.root.join(
        cli.global
            .slack
            .message_file
            .as_deref()
            .unwrap_or(outcome::DEFAULT_MESSAGE_FILE),
    );
    match cli.command {
        Command::Version => Ok(writeln!(out, "artifact {}", env!("CARGO_PKG_VERSION"))?),
        Command::Successful(_) => {
            outcome::run(outcome::Outcome::Succeeded, &message_file, out, err)
        }
        Command::Failure(args) => outcome::run(
            outcome::Outcome::Failed(args.error_message),
            &message_file,
            out,
            err,
        ),
        Command::Init(args) => init::run(*args, &file, &resolve_clock(clock)?, out),
        Command::Add(args) => add::run(args, &file, out),
        Command::End(args) => end::run(args, &file, &resolve_clock(clock)?, out),
        Command::Push(args) => push::run(args, &cli.global, &file, out).await,
    }
}

/// The clock given by the caller, else the one the environment names.
fn resolve_clock(given: Option<&Clock>) -> Result<Clock, CliError> {
    match given {
        Some(clock) => Ok(clock.clone()),
        None => Clock::from_env().map_err(CliError::Clock),
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
        let args = vec!["artifact".to_owned(), "--help".to_owned()];
        assert_send(&run_with_output(args.clone(), &mut out, &mut err));
        let clock = Clock::system();
        assert_send(&run_with_clock(args.clone(), &mut out, &mut err, &clock));
        assert_send(&run(args));
    }

    #[tokio::test]
    async fn help_goes_to_stdout_and_documents_the_fixed_time() {
        let (code, out, err) = run_captured(&["artifact", "--help"]).await;
        assert_eq!(code, 0);
        assert!(out.contains("Usage:"), "{out}");
        assert!(out.contains(FIXED_TIME_ENV), "{out}");
        assert!(err.is_empty());
    }

    #[tokio::test]
    async fn version_exits_zero() {
        let (code, out, _) = run_captured(&["artifact", "--version"]).await;
        assert_eq!(code, 0);
        assert!(out.contains(env!("CARGO_PKG_VERSION")), "{out}");
    }

    #[tokio::test]
    async fn missing_subcommand_is_a_usage_error() {
        let (code, out, err) = run_captured(&["artifact"]).await;
        assert_eq!(code, 2);
        assert!(out.is_empty());
        assert!(err.contains("Usage:"), "{err}");
    }
}
