//! What the benchmark measures beside releases: the server's memory in its
//! two parts (anonymous, the heap; file-backed, mapped pack files the kernel
//! can drop), sampled every 20 ms; the dashboard's matrix page (time to
//! answer, bytes on the wire with gzip and without); and memory while 8
//! builds of 31 MiB are uploaded at once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use release_manager::pb;
use release_manager::pb::release_service_client::ReleaseServiceClient;

use super::{ms, percentile};

/// How often memory is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// Peaks of a process's resident memory, by part, in kB.
#[derive(Debug, Default, Clone, Copy)]
pub struct Memory {
    pub anon_kb: u64,
    pub file_kb: u64,
    /// The largest sum of both seen in one sample.
    pub total_kb: u64,
}

impl Memory {
    pub fn max(self, other: Memory) -> Memory {
        Memory {
            anon_kb: self.anon_kb.max(other.anon_kb),
            file_kb: self.file_kb.max(other.file_kb),
            total_kb: self.total_kb.max(other.total_kb),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "{:.0} MB (anonymous {:.0} MB, file-backed {:.0} MB)",
            self.total_kb as f64 / 1024.0,
            self.anon_kb as f64 / 1024.0,
            self.file_kb as f64 / 1024.0
        )
    }
}

/// Samples `/proc/<pid>/status` every [`SAMPLE_EVERY`] until dropped.
pub struct Sampler {
    peaks: Arc<[AtomicU64; 3]>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn read_status(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Some((field("RssAnon:"), field("RssFile:") + field("RssShmem:")))
}

impl Sampler {
    pub fn start(pid: u32) -> Sampler {
        let peaks: Arc<[AtomicU64; 3]> = Arc::new(Default::default());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (peaks, stop) = (peaks.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Some((anon, file)) = read_status(pid) else {
                        return;
                    };
                    peaks[0].fetch_max(anon, Ordering::Relaxed);
                    peaks[1].fetch_max(file, Ordering::Relaxed);
                    peaks[2].fetch_max(anon + file, Ordering::Relaxed);
                    std::thread::sleep(SAMPLE_EVERY);
                }
            })
        };
        Sampler {
            peaks,
            stop,
            thread: Some(thread),
        }
    }

    /// The peaks since the start or the last call, and a fresh start.
    pub fn take(&self) -> Memory {
        Memory {
            anon_kb: self.peaks[0].swap(0, Ordering::Relaxed),
            file_kb: self.peaks[1].swap(0, Ordering::Relaxed),
            total_kb: self.peaks[2].swap(0, Ordering::Relaxed),
        }
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The dashboard's matrix page, as a browser gets it.
pub struct Dashboard {
    pub times: Vec<Duration>,
    pub gzip_bytes: usize,
    pub html_bytes: usize,
}

/// One GET of `url`, with `Accept-Encoding: gzip` or without; the body's
/// length on the wire.
async fn get(client: &reqwest::Client, url: &str, gzip: bool) -> usize {
    let mut request = client.get(url);
    if gzip {
        request = request.header("accept-encoding", "gzip");
    }
    let response = request.send().await.expect("the dashboard answers");
    assert!(response.status().is_success(), "{}", response.status());
    response.bytes().await.expect("a body").len()
}

/// Fetches the matrix page `runs` times (gzip, as browsers ask) and once
/// without compression.
pub async fn dashboard(http_url: &str, runs: usize) -> Dashboard {
    let client = reqwest::Client::new();
    let url = format!("{http_url}/");
    let mut times = Vec::with_capacity(runs);
    let mut gzip_bytes = 0;
    for _ in 0..runs {
        let began = Instant::now();
        gzip_bytes = get(&client, &url, true).await;
        times.push(began.elapsed());
    }
    let html_bytes = get(&client, &url, false).await;
    Dashboard {
        times,
        gzip_bytes,
        html_bytes,
    }
}

impl Dashboard {
    pub fn describe(&self) -> String {
        format!(
            "p50 {} over {} requests; {:.0} KB on the wire with gzip, {:.2} MB of HTML",
            ms(percentile(&self.times, 50.0)),
            self.times.len(),
            self.gzip_bytes as f64 / 1024.0,
            self.html_bytes as f64 / (1024.0 * 1024.0)
        )
    }
}

/// Uploads of this many builds at once...
pub const UPLOADS: usize = 8;
/// ...of this many MiB each (in files of 1 MiB, chunks of 64 KiB).
pub const UPLOAD_MIB: usize = 31;

/// Text that does not compress (what large manifests with keys and
/// certificates look like to zlib), deterministic.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|i| {
            if i % 77 == 76 {
                return b'\n';
            }
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            LETTERS[(state & 63) as usize]
        })
        .collect()
}

/// Uploads [`UPLOADS`] builds of [`UPLOAD_MIB`] MiB at once (each a new
/// build of one of `services`); returns how long they took.
pub async fn uploads(url: &str, services: &[String]) -> Duration {
    let began = Instant::now();
    let mut tasks = Vec::new();
    for (n, service) in services.iter().take(UPLOADS).enumerate() {
        let url = url.to_string();
        let service = service.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("upload-{service}-{n}");
            let spec = serde_json::json!({
                "id": id,
                "service": service,
                "application": {"sha": "abc", "branch": "uploads", "authorName": "Bench", "authorEmail": "bench@example.com",
                                "committerName": "Bench", "committerEmail": "bench@example.com", "message": "a large build"},
                "ci": {"jobUrl": "https://ci.example.com/1", "start": "2026-02-01T10:00:00Z", "end": "2026-02-01T10:05:00Z"},
                "stages": []
            });
            let mut requests = vec![pb::PushArtifactRequest {
                path: "artifact.json".into(),
                data: serde_json::to_vec_pretty(&spec).expect("JSON"),
                ..Default::default()
            }];
            for file in 0..UPLOAD_MIB {
                let data = noise((n * 1000 + file) as u64, 1 << 20);
                for chunk in data.chunks(64 << 10) {
                    requests.push(pb::PushArtifactRequest {
                        path: format!("dev/large-{file:02}.yaml"),
                        data: chunk.to_vec(),
                        ..Default::default()
                    });
                }
            }
            let mut client = ReleaseServiceClient::connect(url)
                .await
                .expect("connects")
                .max_decoding_message_size(64 << 20);
            client
                .push_artifact(tokio_stream::iter(requests))
                .await
                .expect("the upload is stored");
        }));
    }
    for task in tasks {
        task.await.expect("upload task");
    }
    began.elapsed()
}

/// What one flush to disk costs here: `runs` times a new 4 KiB file in
/// `dir`, written and flushed (`fsync`), then its folder flushed, as a
/// durable write does. Every release flushes several files (docs/
/// performance.md counts them), so this bounds release latency from below.
pub fn flush_cost(dir: &std::path::Path, runs: usize) -> Vec<Duration> {
    use std::io::Write;
    let folder = dir.join("flush-cost");
    std::fs::create_dir_all(&folder).expect("mkdir");
    let mut times = Vec::with_capacity(runs);
    for i in 0..runs {
        let began = Instant::now();
        let path = folder.join(format!("f{i}"));
        let mut file = std::fs::File::create(&path).expect("create");
        file.write_all(&[b'x'; 4096]).expect("write");
        file.sync_all().expect("fsync");
        std::fs::File::open(&folder)
            .and_then(|d| d.sync_all())
            .expect("fsync the folder");
        times.push(began.elapsed() / 2);
    }
    let _ = std::fs::remove_dir_all(&folder);
    times
}

pub fn describe_flushes(times: &[Duration]) -> String {
    format!(
        "one flush (fsync of a new 4 KiB file, then of its folder, halved): p50 {}, p90 {}",
        ms(percentile(times, 50.0)),
        ms(percentile(times, 90.0))
    )
}
