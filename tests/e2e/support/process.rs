//! Child processes of the tests (sshd, git daemon, ChromeDriver and its
//! browser, the server binary, hamctl, artifact), and the binaries of the
//! workspace they run.
//!
//! Every child starts in a process group of its own and is held by a
//! [`ChildGuard`]: dropping the guard (the test ended, passed or failed,
//! panicked included) kills the whole group, so nothing a test started
//! outlives it, grandchildren included (the browser's renderers, git
//! daemon's connections). It must not look for processes by name.
//!
//! Shared by the integration tests of several packages (included with
//! `#[path]`): std, libc and tokio only.
#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant, SystemTime};

/// A child process in its own process group, killed with that group when
/// dropped.
pub struct ChildGuard {
    child: Child,
    what: String,
}

impl ChildGuard {
    /// Starts `command` as the leader of a new process group. `what` names
    /// it in messages.
    pub fn spawn(command: &mut Command, what: &str) -> ChildGuard {
        let child = command
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{what} does not start: {e}"));
        ChildGuard {
            child,
            what: what.to_string(),
        }
    }

    /// The child's pipes, to be taken once.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Sends `signal` to the process itself (not its group).
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on the pid of a child this guard has not reaped
        // yet: the pid cannot have been reused.
        let sent = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(sent, 0, "cannot signal {}", self.what);
    }

    /// Its exit status if it has ended.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("the child can be waited for")
    }

    /// Waits (bounded by `timeout`, polling) for it to end by itself.
    pub fn wait_timeout(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not end within {timeout:?}",
                self.what
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// [`ChildGuard::wait_timeout`] without blocking the async runtime.
    pub async fn wait_timeout_async(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not end within {timeout:?}",
                self.what
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Kills the whole process group now and reaps the child.
    pub fn kill(&mut self) {
        // SAFETY: the group was made for this child (process_group(0)), so
        // its id is the child's pid, not yet reaped: nothing else is hit.
        unsafe {
            libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The workspace root: the nearest folder above the including package that
/// holds `Cargo.lock`.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").exists())
        .expect("the package is inside the workspace")
        .to_path_buf()
}

/// The binary `name` (`hamctl`, `artifact`, `release-manager`) of the
/// workspace, as cargo built it for this test run: `target/<profile>/<name>`,
/// beside the `deps/` folder this test runs from. `cargo test --workspace`
/// (`make test`) builds it, for the tests of its own package; a test never
/// runs cargo itself. Panics with what to run when it is missing or older
/// than its sources (a partial `cargo test -p ...` does not build it).
pub fn workspace_binary(name: &str) -> PathBuf {
    let (package, package_dir) = match name {
        "hamctl" => ("hamctl", "hamctl"),
        "artifact" => ("artifact", "artifact"),
        "release-manager" => ("release-manager-server", "server"),
        other => panic!("{other} is not a binary of the workspace"),
    };
    let exe = std::env::current_exe().expect("the test knows where it runs from");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps");
    let binary = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let build = format!(
        "run `cargo test --workspace` (as `make test` does), or `cargo build -p {package}` first"
    );
    let built = std::fs::metadata(&binary)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("{} is missing: {build}", binary.display()));
    let root = workspace_root();
    for sources in [root.join(package_dir).join("src"), root.join("src")] {
        if let Some((path, changed)) = newest_rust_file(&sources) {
            assert!(
                changed <= built,
                "{} is older than {}: {build}",
                binary.display(),
                path.display()
            );
        }
    }
    binary
}

/// The most recently modified `.rs` file under `dir`.
fn newest_rust_file(dir: &Path) -> Option<(PathBuf, SystemTime)> {
    let mut newest: Option<(PathBuf, SystemTime)> = None;
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).ok()?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let changed = entry.metadata().and_then(|m| m.modified()).ok()?;
                if newest.as_ref().is_none_or(|(_, n)| changed > *n) {
                    newest = Some((path, changed));
                }
            }
        }
    }
    newest
}

/// A loopback port nobody listens on right now (for a listener a test
/// starts, stops and starts again on the same port).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a loopback port")
        .local_addr()
        .expect("a bound address")
        .port()
}
