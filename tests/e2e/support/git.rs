//! Hermetic git on the command line: no global or system configuration,
//! fixed identities and dates, so a repository a test builds is the same on
//! every machine, and a failing git command fails the test with git's own
//! words.
//!
//! Shared by the integration tests of several packages (included with
//! `#[path]`): std only.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// The identity and date of every commit the tests make with git.
pub const CI_NAME: &str = "CI Bot";
pub const CI_EMAIL: &str = "ci@example.com";
const FIXED_DATE: &str = "2026-01-01T00:00:00Z";

/// `git` in `dir`, with nothing of the machine's configuration and fixed
/// identities and dates.
fn git_command(dir: &Path) -> Command {
    let mut command = Command::new("git");
    command
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", CI_NAME)
        .env("GIT_AUTHOR_EMAIL", CI_EMAIL)
        .env("GIT_COMMITTER_NAME", CI_NAME)
        .env("GIT_COMMITTER_EMAIL", CI_EMAIL)
        .env("GIT_AUTHOR_DATE", FIXED_DATE)
        .env("GIT_COMMITTER_DATE", FIXED_DATE);
    command
}

/// Runs hermetic git; panics with git's stderr on failure. Returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_output(dir, args);
    assert!(
        out.status.success(),
        "git {args:?} in {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("git prints UTF-8")
}

/// Runs hermetic git and returns whatever happened (for commands that may
/// fail).
pub fn git_output(dir: &Path, args: &[&str]) -> Output {
    git_command(dir).args(args).output().expect("git runs")
}
