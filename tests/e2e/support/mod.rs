//! What the end-to-end tests share, each helper in one place: hermetic git
//! and config repositories, the real server in process, the real CLIs as
//! child processes, raw HTTP, webhook signatures, bounded polling, and
//! guards that end every process a test starts.

pub mod api;
pub mod cli;
pub mod config_repo;
pub mod controllers;
pub mod git;
pub mod git_daemon;
pub mod http;
pub mod oidc;
pub mod original_commitinfo;
pub mod poll;
pub mod process;
pub mod s3;
pub mod server;
pub mod shop;
pub mod signing;
pub mod webdriver;

pub use api::{
    alice, chunks, client_with_token, error_info, push, release_artifact, release_branch, spec,
};
pub use cli::{Cli, CliOutput, RunningCli};
pub use config_repo::{artifact_id, commit_info, subjects, ConfigRepo, ENVS};
pub use git::git;
pub use poll::{wait_for, wait_until};
pub use process::free_port;
pub use server::{server_api, TestServer};

/// Runs hamctl (the real binary, as [`Cli::hamctl`] sets it up) to the end:
/// exit code, stdout, stderr.
pub async fn hamctl(args: &[&str]) -> (i32, String, String) {
    let run = Cli::hamctl().run(args).await;
    (run.code, run.out, run.err)
}
