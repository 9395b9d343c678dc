//! Plain HTTP/1.1 over loopback, spoken by hand: the webhook routes,
//! `/metrics`, the dashboard's routes, gRPC-Web and ChromeDriver. Written
//! out rather than taken from a client library so that a test sees exactly
//! the bytes the server answers with (status line, headers, chunked body).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The longest a request may take before the test fails.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// What the server answered.
#[derive(Debug)]
pub struct HttpResponse {
    /// The status code (0 when the answer had no status line).
    pub status: u16,
    /// The status line and headers.
    pub head: String,
    /// The body, its chunked encoding undone.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The whole answer as text: head, blank line, body.
    pub fn whole(&self) -> String {
        format!("{}\r\n\r\n{}", self.head, self.text())
    }
}

/// Sends one request to `addr` and reads the answer: up to the end of the
/// body its `Content-Length` announces, or to the end of its chunks, or to
/// the end of the connection.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> HttpResponse {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("nothing answers on {addr}: {e}"));
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let exchange = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        read_response(&mut stream).await
    };
    tokio::time::timeout(ANSWER_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} {path} on {addr}: no answer in time"))
        .unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"))
}

/// `GET path`.
pub async fn get(addr: SocketAddr, path: &str) -> HttpResponse {
    request(addr, "GET", path, &[], b"").await
}

/// `POST path` of a JSON body with extra `headers`.
pub async fn post_json(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> HttpResponse {
    let mut all = vec![("Content-Type", "application/json".to_string())];
    all.extend(headers.iter().cloned());
    request(addr, "POST", path, &all, body.as_bytes()).await
}

async fn read_response(stream: &mut tokio::net::TcpStream) -> std::io::Result<HttpResponse> {
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        if let Some(response) = complete_response(&bytes) {
            return Ok(response);
        }
        let n = stream.read(&mut buffer).await?;
        if n == 0 {
            return Ok(parse(&bytes, bytes.len()));
        }
        bytes.extend_from_slice(&buffer[..n]);
    }
}

/// The response in `bytes` if all of it is there (by its Content-Length
/// or its last chunk); `None` while more is to come.
fn complete_response(bytes: &[u8]) -> Option<HttpResponse> {
    let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..end]).to_ascii_lowercase();
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
    };
    if let Some(length) = header("content-length:").and_then(|v| v.parse::<usize>().ok()) {
        return (bytes.len() >= end + 4 + length).then(|| parse(bytes, end + 4 + length));
    }
    if header("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
        return bytes
            .ends_with(b"0\r\n\r\n")
            .then(|| parse(bytes, bytes.len()));
    }
    None
}

fn parse(bytes: &[u8], len: usize) -> HttpResponse {
    let bytes = &bytes[..len];
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(bytes.len());
    let head = String::from_utf8_lossy(&bytes[..split]).to_string();
    let rest = bytes.get(split + 4..).unwrap_or_default();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        unchunk(rest)
    } else {
        rest.to_vec()
    };
    HttpResponse { status, head, body }
}

/// Undoes HTTP/1.1's chunked transfer encoding.
fn unchunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = std::str::from_utf8(&body[..line_end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .unwrap_or(0);
        body = &body[line_end + 2..];
        if size == 0 || body.len() < size {
            return out;
        }
        out.extend_from_slice(&body[..size]);
        body = body.get(size + 2..).unwrap_or_default();
    }
}
