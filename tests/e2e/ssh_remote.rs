//! The config repository over SSH, as production runs it: a real sshd on
//! loopback, a private key file, host keys checked against a known_hosts
//! file. Needs OpenSSH's server (`sshd`), which `.ci/run` installs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::poll::wait_until_blocking;
use crate::support::process::ChildGuard;
use crate::support::server::{local_config, start_on};
use crate::support::server_api::{GitCredentials, RemoteLocation, SHIPPED_KNOWN_HOSTS};
use crate::support::*;
use release_manager::pb;

/// A real sshd on a loopback port, in a folder with its host key, a client
/// key and the authorized_keys naming it; ended with the test.
struct Sshd {
    _daemon: ChildGuard,
    port: u16,
    dir: tempfile::TempDir,
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen runs");
    assert!(status.success());
}

fn user() -> String {
    let out = Command::new("id").arg("-un").output().expect("id runs");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn start_sshd() -> Sshd {
    let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("OpenSSH's sshd is installed (apt-get install openssh-server; .ci/run does it)");
    let dir = tempfile::tempdir().unwrap();
    keygen(&dir.path().join("host_key"));
    keygen(&dir.path().join("client_key"));
    std::fs::copy(
        dir.path().join("client_key.pub"),
        dir.path().join("authorized_keys"),
    )
    .unwrap();
    // sshd insists on its privilege separation directory.
    let _ = std::fs::create_dir_all("/run/sshd");
    let port = free_port();
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {dir}/host_key\nAuthorizedKeysFile {dir}/authorized_keys\n\
         PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nStrictModes no\n\
         UsePAM no\nPermitRootLogin yes\nPidFile {dir}/sshd.pid\nAllowUsers {user}\n",
        dir = dir.path().display(),
        user = user()
    );
    std::fs::write(dir.path().join("sshd_config"), config).unwrap();
    let mut command = Command::new(sshd);
    command
        .args(["-D", "-e", "-f"])
        .arg(dir.path().join("sshd_config"))
        .env_clear()
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let daemon = ChildGuard::spawn(&mut command, "sshd");
    wait_until_blocking(
        &format!("sshd to listen on {port}"),
        Duration::from_secs(20),
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
    );
    Sshd {
        _daemon: daemon,
        port,
        dir,
    }
}

impl Sshd {
    fn url(&self, repo: &Path) -> String {
        format!("ssh://{}@127.0.0.1:{}{}", user(), self.port, repo.display())
    }

    fn known_hosts(&self, key_file: &str) -> PathBuf {
        let key = std::fs::read_to_string(self.dir.path().join(key_file)).unwrap();
        let mut fields = key.split_whitespace();
        let line = format!(
            "[127.0.0.1]:{} {} {}\n",
            self.port,
            fields.next().unwrap(),
            fields.next().unwrap()
        );
        let path = self.dir.path().join(format!("known_hosts-{key_file}"));
        std::fs::write(&path, line).unwrap();
        path
    }

    fn credentials(&self, known_hosts: PathBuf) -> GitCredentials {
        GitCredentials {
            ssh_private_key: Some(self.dir.path().join("client_key")),
            ssh_known_hosts: Some(known_hosts),
            ..GitCredentials::default()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releases_over_ssh_with_a_checked_host_key() {
    let sshd = start_sshd();
    let mut repo = ConfigRepo::new();
    let first = repo.add_build("shop", "master", 1);
    repo.push();
    let url = sshd.url(&repo.remote);
    let credentials = sshd.credentials(sshd.known_hosts("host_key.pub"));
    let server = TestServer::start_with(&repo.remote, |config| {
        config.config_repo = RemoteLocation::Network(url.clone());
        config.credentials = credentials;
    })
    .await;
    let mut client = server.client().await;
    let released = client
        .release(release_branch("shop", "dev", "master"))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!(released.artifact_id, first);
    assert_eq!(released.commit_sha, repo.remote_head(), "pushed over SSH");

    // Someone else pushes meanwhile: the SSH push is rejected, the server
    // fetches over SSH and replays on top.
    let second = repo.add_build("shop", "master", 2);
    repo.push();
    let theirs = repo.remote_head();
    let released = client
        .release(release_branch("shop", "staging", "master"))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!(released.artifact_id, second);
    assert_eq!(commit_info(&repo, "master").parents, vec![theirs]);
    let status = client
        .status(pb::StatusRequest {
            service: "shop".into(),
            namespace: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.environments[1]
            .artifact
            .as_ref()
            .unwrap()
            .artifact_id,
        second
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_host_key_is_refused() {
    let sshd = start_sshd();
    let repo = ConfigRepo::new();
    let url = sshd.url(&repo.remote);
    // known_hosts names another key for this host.
    let credentials = sshd.credentials(sshd.known_hosts("client_key.pub"));
    let data = tempfile::tempdir().unwrap();
    let mut config = local_config(&repo.remote, data.path());
    config.config_repo = RemoteLocation::Network(url.clone());
    config.credentials = credentials;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = match start_on(config, listener).await {
        Ok(_) => panic!("the server must not trust an unknown host key"),
        Err(e) => e,
    };
    assert!(
        error.contains("host key") || error.contains("hostkey"),
        "{error}"
    );

    // Without a known_hosts file only the shipped keys count: this host is
    // not among them, and is refused (the log says how to add it; libgit2
    // puts its own words in the error).
    let data = tempfile::tempdir().unwrap();
    let mut config = local_config(&repo.remote, data.path());
    config.config_repo = RemoteLocation::Network(url);
    config.credentials = GitCredentials {
        ssh_private_key: Some(sshd.dir.path().join("client_key")),
        ssh_known_hosts: None,
        ..GitCredentials::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = match start_on(config, listener).await {
        Ok(_) => panic!("no known_hosts: refuse"),
        Err(e) => e,
    };
    assert!(error.contains("hostkey"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_only_a_key_the_shipped_host_keys_are_checked() {
    // The seed installation: the secret holds only `identity`. A host whose
    // key is in the shipped list is trusted; here a test copy of that list
    // with the loopback sshd's key added stands in for github.com.
    let sshd = start_sshd();
    let mut repo = ConfigRepo::new();
    repo.add_build("shop", "master", 1);
    repo.push();
    let url = sshd.url(&repo.remote);
    let host_line = std::fs::read_to_string(sshd.known_hosts("host_key.pub")).unwrap();
    let shipped = SHIPPED_KNOWN_HOSTS;
    let with_test_host = format!("{shipped}{host_line}");
    let server = TestServer::start_with(&repo.remote, |config| {
        config.config_repo = RemoteLocation::Network(url.clone());
        config.credentials = GitCredentials {
            ssh_private_key: Some(sshd.dir.path().join("client_key")),
            ssh_known_hosts: None,
            shipped_known_hosts: with_test_host.into(),
            ..GitCredentials::default()
        };
    })
    .await;
    let mut client = server.client().await;
    client
        .release(release_branch("shop", "dev", "master"))
        .await
        .unwrap();
    assert!(repo
        .remote_file("dev/releases/dev/shop/artifact.json")
        .is_some());
    server.stop().await;
}

#[test]
fn the_shipped_host_keys_are_the_published_ones() {
    let shipped = SHIPPED_KNOWN_HOSTS;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("known_hosts");
    std::fs::write(&path, shipped).unwrap();
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&path)
        .output()
        .unwrap();
    let listed = String::from_utf8(out.stdout).unwrap();
    // SHA256 fingerprints as GitHub, GitLab and Bitbucket publish them.
    for fingerprint in [
        "SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU github.com (ED25519)",
        "SHA256:p2QAMXNIC1TJYWeIOttrVc98/R1BUFWu3/LiyKgUfQM github.com (ECDSA)",
        "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s github.com (RSA)",
        "SHA256:eUXGGm1YGsMAS7vkcx6JOJdOGHPem5gQp4taiCfCLB8 gitlab.com (ED25519)",
        "SHA256:HbW3g8zUjNSksFbqTiUWPWg2Bq1x8xdGUrliXFzSnUw gitlab.com (ECDSA)",
        "SHA256:ROQFvPThGrW4RuWLoL9tq9I9zJ42fK4XywyRtbOz/EQ gitlab.com (RSA)",
        "SHA256:ybgmFkzwOSotHTHLJgHO0QN8L0xErw6vd0VhFA9m3SM bitbucket.org (ED25519)",
        "SHA256:FC73VB6C4OQLSCrjEayhMp9UMxS97caD/Yyi2bhW/J0 bitbucket.org (ECDSA)",
        "SHA256:46OSHA1Rmj8E8ERTC6xkNcmGOw9oFxYr0WF6zWW8l1E bitbucket.org (RSA)",
    ] {
        assert!(
            listed.contains(fingerprint),
            "{fingerprint} missing from:\n{listed}"
        );
    }
}
