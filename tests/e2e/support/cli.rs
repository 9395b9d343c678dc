//! The workspace's command-line programs (`hamctl`, `artifact`) run as the
//! real binaries, each a child process with exactly the environment the
//! test gives it: nothing of the machine's (no `HAMCTL_AUTH_TOKEN`, no CI
//! branch variables, no git identity) leaks in, and no test changes the
//! environment of the test process.
//!
//! Shared by the integration tests of several packages (included with
//! `#[path]`, next to `process.rs`): std and tokio only.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use super::process::{workspace_binary, ChildGuard};

/// The committer identity hamctl sends unless a test names another.
pub const OPERATOR_NAME: &str = "Olga Operator";
pub const OPERATOR_EMAIL: &str = "olga@example.com";

/// Longest any one run may take before the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// A program of the workspace and the environment it runs with.
#[derive(Clone, Debug)]
pub struct Cli {
    program: PathBuf,
    envs: Vec<(String, String)>,
    dir: Option<PathBuf>,
}

/// What one finished run printed and returned.
#[derive(Debug)]
pub struct CliOutput {
    pub code: i32,
    pub out: String,
    pub err: String,
}

impl Cli {
    /// `program` with an environment of `PATH` only (git is found, nothing
    /// else is inherited).
    pub fn new(program: PathBuf) -> Cli {
        let mut envs = Vec::new();
        if let Ok(path) = std::env::var("PATH") {
            envs.push(("PATH".to_string(), path));
        }
        Cli {
            program,
            envs,
            dir: None,
        }
    }

    /// Runs it in `dir` (a service's repository with its shuttle.yaml).
    pub fn current_dir(mut self, dir: &std::path::Path) -> Cli {
        self.dir = Some(dir.to_path_buf());
        self
    }

    /// hamctl, committing as [`OPERATOR_NAME`], with no git configuration
    /// of the machine.
    pub fn hamctl() -> Cli {
        Cli::hamctl_at(workspace_binary("hamctl"))
    }

    /// [`Cli::hamctl`] of the binary at `program` (hamctl's own tests know
    /// it from cargo).
    pub fn hamctl_at(program: PathBuf) -> Cli {
        Cli::new(program)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .committer(OPERATOR_NAME, OPERATOR_EMAIL)
    }

    /// artifact, with no git configuration of the machine.
    pub fn artifact() -> Cli {
        Cli::new(workspace_binary("artifact"))
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
    }

    /// Sets one environment variable of the child.
    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Cli {
        let value = value.as_ref().to_string_lossy().into_owned();
        self.envs.retain(|(k, _)| k != key);
        self.envs.push((key.to_string(), value));
        self
    }

    /// The committer identity hamctl resolves (as git does, from
    /// `GIT_COMMITTER_NAME` / `GIT_COMMITTER_EMAIL`).
    pub fn committer(self, name: &str, email: &str) -> Cli {
        self.env("GIT_COMMITTER_NAME", name)
            .env("GIT_COMMITTER_EMAIL", email)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.program);
        command.args(args).env_clear();
        if let Some(dir) = &self.dir {
            command.current_dir(dir);
        }
        for (key, value) in &self.envs {
            command.env(key, value);
        }
        command
    }

    /// Runs to the end (bounded) and returns what it printed.
    pub async fn run(&self, args: &[&str]) -> CliOutput {
        self.spawn(args).finish(RUN_TIMEOUT).await
    }

    /// Starts it in the background; its output arrives line by line.
    pub fn spawn(&self, args: &[&str]) -> RunningCli {
        let mut command = self.command(args);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let what = format!(
            "{} {}",
            self.program
                .file_name()
                .unwrap_or_default()
                .to_string_lossy(),
            args.join(" ")
        );
        let mut guard = ChildGuard::spawn(&mut command, &what);
        let stdout = guard.child_mut().stdout.take().expect("piped stdout");
        let stderr = guard.child_mut().stderr.take().expect("piped stderr");
        RunningCli {
            guard,
            out: lines_of(stdout),
            err: lines_of(stderr),
            out_read: String::new(),
            err_read: String::new(),
            what,
        }
    }

    /// Starts it with its stdout closed before it writes, as `| head -0`
    /// leaves it; returns its exit code and stderr.
    pub async fn run_with_closed_stdout(&self, args: &[&str]) -> (i32, String) {
        let mut command = self.command(args);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut guard = ChildGuard::spawn(&mut command, "a run with a closed stdout");
        drop(guard.child_mut().stdout.take());
        let mut err = lines_of(guard.child_mut().stderr.take().expect("piped stderr"));
        let status = guard.wait_timeout_async(RUN_TIMEOUT).await;
        let mut text = String::new();
        while let Some(line) = err.recv().await {
            text.push_str(&line);
        }
        (status.code().expect("an exit code"), text)
    }
}

/// Reads `pipe` on a thread of its own (so the child never blocks on a
/// full pipe), handing each line over as soon as it is complete, its line
/// end included (the last one may have none).
fn lines_of(pipe: impl std::io::Read + Send + 'static) -> UnboundedReceiver<String> {
    let (lines_tx, lines_rx) = unbounded_channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    let line = String::from_utf8(line).expect("the program prints UTF-8");
                    if lines_tx.send(line).is_err() {
                        return;
                    }
                }
            }
        }
    });
    lines_rx
}

/// A program running in the background, killed (with its process group)
/// if the test ends first.
pub struct RunningCli {
    guard: ChildGuard,
    out: UnboundedReceiver<String>,
    err: UnboundedReceiver<String>,
    /// What the test has read of each stream so far.
    out_read: String,
    err_read: String,
    what: String,
}

impl RunningCli {
    /// The next line it prints on stdout, if it prints one within
    /// `timeout`.
    pub async fn next_out_line(&mut self, timeout: Duration) -> Option<String> {
        let line = tokio::time::timeout(timeout, self.out.recv())
            .await
            .ok()
            .flatten()?;
        self.out_read.push_str(&line);
        Some(line.trim_end_matches('\n').to_string())
    }

    /// Waits (bounded) for a stderr line that `wanted` accepts.
    pub async fn err_until(&mut self, wanted: impl Fn(&str) -> bool) {
        let found = tokio::time::timeout(RUN_TIMEOUT, async {
            while let Some(line) = self.err.recv().await {
                self.err_read.push_str(&line);
                if wanted(line.trim_end_matches('\n')) {
                    return true;
                }
            }
            false
        })
        .await;
        match found {
            Ok(true) => {}
            Ok(false) => panic!("{} ended without saying it: {}", self.what, self.err_read),
            Err(_) => panic!("{} did not say it in time: {}", self.what, self.err_read),
        }
    }

    /// What it printed on stderr so far, as far as the test has read it.
    pub fn err_read(&self) -> &str {
        &self.err_read
    }

    /// Sends `signal` to it (SIGHUP, say; `SIGSTOP` freezes it, `SIGCONT`
    /// resumes it).
    pub fn signal(&self, signal: libc::c_int) {
        self.guard.signal(signal);
    }

    /// The next line it prints on stderr, if it prints one within
    /// `timeout`.
    pub async fn next_err_line(&mut self, timeout: Duration) -> Option<String> {
        let line = tokio::time::timeout(timeout, self.err.recv())
            .await
            .ok()
            .flatten()?;
        self.err_read.push_str(&line);
        Some(line.trim_end_matches('\n').to_string())
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        self.guard.try_wait().is_none()
    }

    /// Waits (bounded by `timeout`) for it to end; its exit code and
    /// everything it printed, what the test read already included.
    pub async fn finish(mut self, timeout: Duration) -> CliOutput {
        let status = self.guard.wait_timeout_async(timeout).await;
        let mut out = std::mem::take(&mut self.out_read);
        while let Some(line) = self.out.recv().await {
            out.push_str(&line);
        }
        let mut err = std::mem::take(&mut self.err_read);
        while let Some(line) = self.err.recv().await {
            err.push_str(&line);
        }
        CliOutput {
            code: status
                .code()
                .unwrap_or_else(|| panic!("{} ended by a signal: {status:?}", self.what)),
            out,
            err,
        }
    }
}
