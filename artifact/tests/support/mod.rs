//! Helpers shared by the integration tests: running the CLI in process or as
//! the real binary, and listing a build folder.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

use artifact::Clock;

/// What one run printed and returned.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub out: String,
    pub err: String,
}

/// A clock fixed at `rfc3339`.
pub fn clock(rfc3339: &str) -> Clock {
    Clock::fixed(
        chrono::DateTime::parse_from_rfc3339(rfc3339)
            .expect("valid time")
            .into(),
    )
}

/// Runs the CLI in process with `--root root` appended and the given clock.
pub async fn run_in(root: &Path, args: &[&str], clock: &Clock) -> Outcome {
    let mut argv: Vec<String> = std::iter::once("artifact")
        .chain(args.iter().copied())
        .map(str::to_owned)
        .collect();
    argv.push("--root".to_owned());
    argv.push(root.display().to_string());
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = artifact::run_with_clock(argv, &mut out, &mut err, clock).await;
    Outcome {
        code,
        out: String::from_utf8(out).expect("utf-8 stdout"),
        err: String::from_utf8(err).expect("utf-8 stderr"),
    }
}

/// Runs the CLI in process with the given arguments exactly (program name
/// added) and the clock `ARTIFACT_FIXED_TIME` or the system names.
pub async fn run_args(args: &[&str]) -> Outcome {
    let argv = std::iter::once("artifact").chain(args.iter().copied());
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = artifact::run_with_output(argv, &mut out, &mut err).await;
    Outcome {
        code,
        out: String::from_utf8(out).expect("utf-8 stdout"),
        err: String::from_utf8(err).expect("utf-8 stderr"),
    }
}

/// Runs the real binary with `--root root` appended, in an environment of
/// `PATH` only (no CI variables, no git configuration of the machine) and,
/// when given, `ARTIFACT_FIXED_TIME`.
pub fn run_binary(root: &Path, args: &[&str], fixed_time: Option<&str>) -> Outcome {
    let mut command = Command::new(env!("CARGO_BIN_EXE_artifact"));
    command
        .args(args)
        .arg("--root")
        .arg(root)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1");
    if let Some(time) = fixed_time {
        command.env(artifact::FIXED_TIME_ENV, time);
    }
    let output = command.output().expect("binary runs");
    Outcome {
        code: output.status.code().expect("exit code"),
        out: String::from_utf8(output.stdout).expect("utf-8 stdout"),
        err: String::from_utf8(output.stderr).expect("utf-8 stderr"),
    }
}

/// The names in `dir`, sorted.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("readable folder")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// The flags `init` needs and nothing more.
pub const INIT_MINIMAL: [&str; 13] = [
    "init",
    "--artifact-id",
    "master-abc-def",
    "--service",
    "product-api",
    "--git-branch",
    "master",
    "--git-sha",
    "abc",
    "--git-author-name",
    "Jane Doe",
    "--git-author-email",
    "jane@example.com",
];
