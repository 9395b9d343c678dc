//! Nobody who reaches a port can stall the server: the real server binary,
//! held to 1,024 open files, gets more half-open connections on each port
//! than it may have files (HTTP/2 prefaces and HTTP/1.1 headers that never
//! end), and still releases and answers `/metrics`; every one of those
//! connections is closed within the configured header timeout, and the
//! bound is logged.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::*;

/// The server's open-file limit, as the issue that found the stall had it.
const OPEN_FILES: u64 = 1024;
/// Half-open connections per port: more than the server has files.
const HALF_OPEN: usize = 1100;
/// The header timeout the server is given.
const HEADER_TIMEOUT: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_half_open_connections_than_files_do_not_stop_releases() {
    let dir = tempfile::tempdir().unwrap();
    let remote = config_repo(dir.path());
    let server = launch_with(
        &[
            "--unauthenticated",
            "--config-repo",
            remote.to_str().unwrap(),
            "--header-timeout",
            "3s",
            "--idle-timeout",
            "3s",
        ],
        &dir.path().join("data"),
        &[],
        Some(OPEN_FILES),
        "serving gRPC",
    );
    let grpc: SocketAddr = server.url.trim_start_matches("http://").parse().unwrap();
    let http = server.http_addr();
    assert!(
        server.logged("max_connections=384"),
        "{:?}",
        server.log.lock().unwrap()
    );

    let opened = Instant::now();
    let mut held = Vec::with_capacity(2 * HALF_OPEN);
    for _ in 0..HALF_OPEN {
        // An HTTP/2 preface cut short, and HTTP/1.1 headers never ended.
        held.push(half_open(grpc, b"PRI * HTTP/2.0\r\n"));
        held.push(half_open(http, b"GET /metrics HTTP/1.1\r\nHost: x\r\n"));
    }

    // Releases and metrics still work while they are held.
    let released = release(&server.url, "master-shop-1")
        .await
        .expect("a release while the ports are flooded");
    assert_eq!(released.result.unwrap().artifact_id, "master-shop-1");
    let metrics = get(http, "/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    let released = release(&server.url, "master-shop-2")
        .await
        .expect("a second release");
    assert_eq!(released.result.unwrap().artifact_id, "master-shop-2");

    // Every half-open connection is closed by the server, each within the
    // header timeout of its opening (the last opened latest), with slack
    // for a loaded machine.
    let deadline = opened.elapsed() + HEADER_TIMEOUT + Duration::from_secs(5);
    for stream in &held {
        stream.set_nonblocking(true).unwrap();
    }
    let mut open = held;
    let began = Instant::now();
    while !open.is_empty() {
        open.retain(still_open);
        assert!(
            began.elapsed() < deadline,
            "{} connections still open after {:?}",
            open.len(),
            opened.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        server.logged("connection limit reached"),
        "the bound is logged"
    );
}

/// A connection that sent `bytes` and then nothing.
fn half_open(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    // Refused at once (closed) is fine too: the write may then fail.
    let _ = stream.write_all(bytes);
    stream
}

/// Whether the server has not closed `stream` yet (nothing arrives on a
/// half-open one but the close).
fn still_open(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 64];
    match (&*stream).read(&mut byte) {
        Ok(0) => false,
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => true,
        Err(_) => false,
    }
}

/// A plain HTTP/1.1 GET, its whole answer.
fn get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}
