//! A real S3 API on loopback for the import tests: `moto`'s server mode
//! (PyPI `moto[server]`, installed into `.tools/moto` by `make
//! test-tools`, which `make test` runs), started per test and killed with
//! it, and objects put there as the original release manager wrote them:
//! zips made the way Go's `archive/zip` writes them (its `zipFiles`: one
//! deflated entry per file, a data descriptor after each).

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::http::request;
use super::process::{free_port, workspace_root, ChildGuard};

/// A moto S3 server, killed when dropped.
pub struct S3Server {
    _process: ChildGuard,
    pub addr: SocketAddr,
}

impl S3Server {
    /// Starts moto on a free loopback port and waits (bounded) until it
    /// answers.
    pub async fn start() -> S3Server {
        let program = workspace_root().join(".tools/moto/bin/moto_server");
        assert!(
            program.exists(),
            "{} is missing: run `make test-tools` (as `make test` does) to install moto",
            program.display()
        );
        let port = free_port();
        let mut command = Command::new(&program);
        command
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let process = ChildGuard::spawn(&mut command, "moto_server");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        super::poll::wait_until("moto to listen", Duration::from_secs(60), || {
            std::net::TcpStream::connect(addr).is_ok()
        })
        .await;
        S3Server {
            _process: process,
            addr,
        }
    }

    /// The endpoint URL clients are given.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Creates `bucket`.
    pub async fn create_bucket(&self, bucket: &str) {
        let answer = request(self.addr, "PUT", &format!("/{bucket}"), &[], b"").await;
        assert_eq!(answer.status, 200, "{}", answer.whole());
    }

    /// Puts `body` at `key` of `bucket`.
    pub async fn put(&self, bucket: &str, key: &str, body: &[u8]) {
        let answer = request(self.addr, "PUT", &format!("/{bucket}/{key}"), &[], body).await;
        assert_eq!(answer.status, 200, "{}", answer.whole());
    }
}

/// A zip archive as Go's `archive/zip` `Writer.Create` writes it, with the
/// files in the order given (the original's `zipFiles` over
/// `filepath.Walk`: lexical order, files only).
pub fn go_zip(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut directory = Vec::new();
    for (name, data) in files {
        let mut deflater =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        deflater.write_all(data).unwrap();
        let packed = deflater.finish().unwrap();
        let crc = crc32fast::hash(data);
        let offset = out.len() as u32;
        // Local header: sizes and CRC left to the data descriptor (flag 8).
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&20u16.to_le_bytes());
        out.extend_from_slice(&0x0008u16.to_le_bytes());
        out.extend_from_slice(&8u16.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&[0; 12]);
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&packed);
        out.extend_from_slice(&0x0807_4b50u32.to_le_bytes());
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&(packed.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        directory.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        directory.extend_from_slice(&20u16.to_le_bytes());
        directory.extend_from_slice(&20u16.to_le_bytes());
        directory.extend_from_slice(&0x0008u16.to_le_bytes());
        directory.extend_from_slice(&8u16.to_le_bytes());
        directory.extend_from_slice(&[0; 4]);
        directory.extend_from_slice(&crc.to_le_bytes());
        directory.extend_from_slice(&(packed.len() as u32).to_le_bytes());
        directory.extend_from_slice(&(data.len() as u32).to_le_bytes());
        directory.extend_from_slice(&(name.len() as u16).to_le_bytes());
        directory.extend_from_slice(&[0; 8]);
        directory.extend_from_slice(&(0o100644u32 << 16).to_le_bytes());
        directory.extend_from_slice(&offset.to_le_bytes());
        directory.extend_from_slice(name.as_bytes());
    }
    let start = out.len() as u32;
    out.extend_from_slice(&directory);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(files.len() as u16).to_le_bytes());
    out.extend_from_slice(&(files.len() as u16).to_le_bytes());
    out.extend_from_slice(&(directory.len() as u32).to_le_bytes());
    out.extend_from_slice(&start.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}
