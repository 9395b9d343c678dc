//! gRPC over TLS: the server serves a certificate given by file, hamctl
//! talks `https://` and trusts the CA named by RELEASE_MANAGER_CA_CERT (in
//! its own environment).

use std::process::Command;

use crate::support::server_api::TlsFiles;
use crate::support::*;

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("openssl runs (apt-get install openssl; .ci/install-deps does it)");
    assert!(status.success(), "openssl {args:?}");
}

/// A test CA and a server certificate it signed for 127.0.0.1 and
/// localhost, made with the openssl command line. Returns (CA, cert, key).
fn certificates(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "key.pem",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "cert.pem",
        ],
    );
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
}

#[tokio::test]
async fn hamctl_talks_to_a_tls_server() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    let mut repo = ConfigRepo::new();
    let id = repo.add_build("shop", "master", 1);
    repo.push();
    let tls = TlsFiles {
        cert: std::fs::read(&cert).unwrap(),
        key: std::fs::read(&key).unwrap(),
    };
    let server = TestServer::start_with(&repo.remote, |config| config.tls = Some(tls)).await;
    let https = server.url.replace("http://", "https://");

    // Without trusting the certificate, the connection is refused.
    let (code, _, err) = hamctl(&["--server", &https, "status", "--service", "shop"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("cannot reach server"), "{err}");

    let trusting = Cli::hamctl().env("RELEASE_MANAGER_CA_CERT", &ca);
    let CliOutput { code, out, err } = trusting
        .run(&[
            "--server",
            &https,
            "release",
            "--service",
            "shop",
            "--env",
            "dev",
            "--branch",
            "master",
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&id), "{out}");
    let CliOutput { code, out, err } = trusting
        .run(&["--server", &https, "status", "--service", "shop"])
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&id), "{out}");

    // Plain HTTP/2 to a TLS listener does not work.
    let (code, _, _) = hamctl(&["--server", &server.url, "status", "--service", "shop"]).await;
    assert_eq!(code, 1);
    server.stop().await;
}

/// A certificate made the usual self-signed way (`openssl req -x509`), used
/// as the server's own: a CA certificate, which rustls refuses as a leaf.
fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            "self.key",
            "-out",
            "self.pem",
        ],
    );
    (dir.join("self.pem"), dir.join("self.key"))
}

/// A client on the wrong port or scheme, or trusting a self-signed
/// certificate that TLS refuses, is told what is wrong and what to do.
#[tokio::test]
async fn wrong_ports_schemes_and_certificates_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = certificates(dir.path());
    let mut repo = ConfigRepo::new();
    repo.add_build("shop", "master", 1);
    repo.push();
    let tls = TlsFiles {
        cert: std::fs::read(&cert).unwrap(),
        key: std::fs::read(&key).unwrap(),
    };
    let secure = TestServer::start_with(&repo.remote, |config| config.tls = Some(tls)).await;
    let plain = TestServer::start_with(&repo.remote, |config| {
        config.http_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let status = |url: String| async move {
        let (code, _, err) = hamctl(&["--server", &url, "status", "--service", "shop"]).await;
        assert_eq!(code, 1, "{err}");
        err
    };
    let err = status(secure.url.clone()).await;
    assert!(
        err.contains("use https://"),
        "http:// to the TLS port: {err}"
    );
    let err = status(plain.url.replace("http://", "https://")).await;
    assert!(
        err.contains("does not speak TLS on this port: use http://"),
        "https:// to a plaintext port: {err}"
    );
    let err = status(format!("http://{}", plain.http_addr())).await;
    // The HTTP port closes a connection that speaks HTTP/2 at once (or a
    // plain HTTP server answers 404): either way the gRPC port is named.
    assert!(
        err.contains("--listen") && err.contains("gRPC"),
        "the HTTP port: {err}"
    );

    // `openssl req -x509` as the server's certificate, trusted by the
    // client: refused, and the error says why and what works instead.
    let (self_cert, self_key) = self_signed(dir.path());
    let tls = TlsFiles {
        cert: std::fs::read(&self_cert).unwrap(),
        key: std::fs::read(&self_key).unwrap(),
    };
    let selfish = TestServer::start_with(&repo.remote, |config| config.tls = Some(tls)).await;
    let https = selfish.url.replace("http://", "https://");
    let CliOutput { code, err, .. } = Cli::hamctl()
        .env("RELEASE_MANAGER_CA_CERT", &self_cert)
        .run(&["--server", &https, "status", "--service", "shop"])
        .await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("is a CA certificate") && err.contains("a small CA of your own"),
        "{err}"
    );
    for server in [secure, plain, selfish] {
        server.stop().await;
    }
}
