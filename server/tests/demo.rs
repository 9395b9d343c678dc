//! The README's run command: `release-manager start` with no flags but a data
//! dir and a free port serves the embedded demo, and hamctl works against it
//! with no other setup.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn hamctl(args: &[&str]) -> (i32, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut argv = vec!["hamctl"];
    argv.extend_from_slice(args);
    let code = hamctl::run_with_output(argv, &mut out, &mut err).await;
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[tokio::test]
async fn the_demo_server_works_with_hamctl_out_of_the_box() {
    std::env::set_var("GIT_COMMITTER_NAME", "Demo User");
    std::env::set_var("GIT_COMMITTER_EMAIL", "demo@example.com");
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_release-manager"))
        .args([
            "start",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data.path())
        .env_remove("HAMCTL_AUTH_TOKEN")
        .env_remove("RELEASE_MANAGER_CONFIG_REPO")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the server binary starts");
    let stdout = child.stdout.take().unwrap();
    let _guard = KillOnDrop(child);
    // The demo prints its URL once it serves; wait for that line (bounded).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // Keep reading to the end: the server's stdout stays open.
            if let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) {
                let _ = tx.send(url.trim_end_matches(['.', ',']).to_string());
            }
        }
    });
    let started = Instant::now();
    let url = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("no URL printed after {:?}", started.elapsed()));
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let (code, out, err) = hamctl(&["--server", &url, "status", "--service", "product-api"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("dev") && l.contains("master-")),
        "{out}"
    );

    let (code, out, err) = hamctl(&[
        "--server",
        &url,
        "release",
        "--service",
        "checkout-web",
        "--env",
        "dev",
        "--branch",
        "master",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Released"), "{out}");

    let (code, out, err) = hamctl(&[
        "--server",
        &url,
        "release",
        "--service",
        "product-api",
        "--env",
        "dev",
        "--branch",
        "feature/fast-search",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("feature-fast-search"), "{out}");
}
