//! `git daemon` serving a bare remote on a loopback port: a network remote
//! (`git://`) the server cannot shortcut through the file system, which a
//! test can stop (SIGSTOP) to play a remote that hangs, or kill to play one
//! that is gone.

use std::path::Path;
use std::time::Duration;

use super::git::{git, git_output};
use super::poll::wait_until_blocking;
use super::process::{free_port, ChildGuard};

/// A running `git daemon`, ended with the test.
pub struct GitDaemon {
    daemon: Option<ChildGuard>,
    /// `git://127.0.0.1:<port>/<name of the remote>`.
    pub url: String,
}

impl GitDaemon {
    /// Serves the folder of the bare repository `remote` (pushes allowed)
    /// and returns once it answers.
    pub fn serve(remote: &Path) -> Self {
        let base = remote.parent().expect("the remote is in a folder");
        let name = remote
            .file_name()
            .and_then(|n| n.to_str())
            .expect("a UTF-8 name");
        let port = free_port();
        // The daemon itself, not `git daemon` (which runs it as a child that
        // a signal to the parent would not reach).
        let exec_path = git(base, &["--exec-path"]);
        let mut command =
            std::process::Command::new(Path::new(exec_path.trim()).join("git-daemon"));
        command
            .args([
                "--export-all",
                "--enable=receive-pack",
                "--reuseaddr",
                "--listen=127.0.0.1",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let daemon = ChildGuard::spawn(&mut command, "git daemon");
        let url = format!("git://127.0.0.1:{port}/{name}");
        wait_until_blocking("git daemon to answer", Duration::from_secs(20), || {
            git_output(base, &["ls-remote", &url]).status.success()
        });
        GitDaemon {
            daemon: Some(daemon),
            url,
        }
    }

    /// Stops the daemon (SIGSTOP): connections are accepted by the kernel
    /// and never answered, as with a hung server.
    pub fn hang(&self) {
        self.daemon().signal(libc::SIGSTOP);
    }

    /// Lets a stopped daemon go on (SIGCONT).
    pub fn resume(&self) {
        self.daemon().signal(libc::SIGCONT);
    }

    /// Ends the daemon: its port refuses connections from now on.
    pub fn kill(&mut self) {
        drop(self.daemon.take());
    }

    fn daemon(&self) -> &ChildGuard {
        self.daemon.as_ref().expect("the daemon runs")
    }
}
