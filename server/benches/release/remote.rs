//! The remote tier: the large repository served by a real `git daemon`,
//! reached through a TCP proxy in this process that delays every byte by a
//! one-way delay in each direction, and a new connection's first bytes by
//! one more round trip (what a TCP handshake costs). The server runs
//! against `git://` through the proxy; the git command line's push of one
//! commit through the same proxy, to a copy of the same repository, is the
//! baseline, and `git ls-remote` (one connection, the ref advertisement)
//! the bare round trip.
//!
//! It measures sequential release latency, releases per second with 64
//! clients, and commits per push. Printed, never asserted.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::generator::{self, service_name, Shape};
use super::{
    batch_sizes, client, free_port, git_out, ms, percentile, reflog_len, release, Plan,
    ServerProcess,
};

/// One-way delay between the server and the remote.
pub const ONE_WAY: Duration = Duration::from_millis(20);

/// What the remote tier measured.
pub struct RemoteReport {
    commits: usize,
    first_start: Duration,
    seq: Vec<Duration>,
    throughput: f64,
    batches: Vec<usize>,
    /// Through the delay.
    git: GitTimes,
    /// Straight to the daemon: what the remote and git's processes cost
    /// without the network.
    git_direct: GitTimes,
    memory: super::extras::Memory,
}

/// `git daemon` serving the folder `base`, ended when dropped.
struct Daemon {
    child: Child,
    addr: SocketAddr,
}

impl Daemon {
    fn start(base: &Path) -> Daemon {
        let port = free_port();
        // The daemon itself, not `git daemon` (which runs it as a child that
        // ending the parent would leave behind).
        let exec_path = git(base, &["--exec-path"]);
        let child = Command::new(Path::new(&exec_path).join("git-daemon"))
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg("--reuseaddr")
            .arg("--export-all")
            .arg("--enable=receive-pack")
            .arg("--informative-errors")
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon starts");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "git daemon did not listen");
            std::thread::sleep(Duration::from_millis(10));
        }
        Daemon { child, addr }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the delaying proxy in front of `upstream`; returns its address.
/// It runs until the runtime ends.
async fn start_proxy(upstream: SocketAddr, one_way: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            tokio::spawn(relay(inbound, upstream, one_way));
        }
    });
    addr
}

async fn relay(inbound: TcpStream, upstream: SocketAddr, one_way: Duration) {
    // The handshake: nothing the client sends arrives before a round trip
    // has passed (bytes it sends meanwhile wait in the socket, and are
    // stamped when read).
    tokio::time::sleep(2 * one_way).await;
    let Ok(outbound) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (in_read, in_write) = inbound.into_split();
    let (out_read, out_write) = outbound.into_split();
    tokio::join!(
        delayed(in_read, out_write, one_way),
        delayed(out_read, in_write, one_way)
    );
}

/// Copies `from` to `to`, each chunk written `delay` after it was read; the
/// end of the stream is passed on the same way.
async fn delayed(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let due = tokio::time::Instant::now() + delay;
                    if tx.send((due, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
        tokio::time::Instant::now() + delay
    };
    let writer = async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&bytes).await.is_err() {
                return None;
            }
        }
        Some(to)
    };
    let (closed_at, to) = tokio::join!(reader, writer);
    if let Some(mut to) = to {
        tokio::time::sleep_until(closed_at).await;
        let _ = to.shutdown().await;
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The git command line: `runs` pushes of one commit each (a new file) to
/// each of `urls` in turn, from a bare clone of `served`, and as many `git
/// ls-remote`. Only the push and the ls-remote are timed.
fn git_baseline(served: &Path, urls: [&str; 2], runs: usize, scratch: &Path) -> [GitTimes; 2] {
    let clone = scratch.join("remote-baseline-clone.git");
    git(
        scratch,
        &[
            "clone",
            "-q",
            "--bare",
            served.to_str().expect("utf-8 path"),
            clone.to_str().expect("utf-8 path"),
        ],
    );
    let mut times = [GitTimes::default(), GitTimes::default()];
    // Through the delay and straight to the daemon, in turn.
    for i in 0..2 * runs {
        let which = i % 2;
        let url = urls[which];
        let began = Instant::now();
        git(&clone, &["ls-remote", url, "refs/heads/master"]);
        times[which].ls_remote.push(began.elapsed());
        // A commit that adds one small file at the root.
        let tree = git(&clone, &["rev-parse", "master^{tree}"]);
        let listing = git(&clone, &["ls-tree", &tree]);
        let blob = git_with_input(
            &clone,
            &["hash-object", "-w", "--stdin"],
            &format!("push {i}\n"),
        );
        let entries = format!("{listing}\n100644 blob {blob}\tbench-push-{i}\n");
        let new_tree = git_with_input(&clone, &["mktree"], &entries);
        let commit = git(
            &clone,
            &["commit-tree", &new_tree, "-p", "master", "-m", "one commit"],
        );
        git(&clone, &["update-ref", "refs/heads/master", &commit]);
        let began = Instant::now();
        git(&clone, &["push", "-q", url, "master"]);
        times[which].push.push(began.elapsed());
    }
    let _ = std::fs::remove_dir_all(&clone);
    times
}

/// The git command line's times against one address.
#[derive(Default)]
struct GitTimes {
    /// `git push` of one commit.
    push: Vec<Duration>,
    /// `git ls-remote`: one connection and the ref advertisement.
    ls_remote: Vec<Duration>,
}

/// `git args` with `input` on its standard input; its output, trimmed.
fn git_with_input(dir: &Path, args: &[&str], input: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("git runs");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(input.as_bytes())
        .expect("write to git");
    let out = child.wait_with_output().expect("git runs");
    assert!(out.status.success(), "git {args:?} failed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub async fn run(plan: &Plan, shape: Shape, scratch: &Path) -> RemoteReport {
    let served_dir = scratch.join("served");
    std::fs::create_dir_all(&served_dir).expect("mkdir");
    let served = served_dir.join("large.git");
    eprintln!(
        "[remote] generating {} services x {} builds ...",
        shape.services, shape.builds
    );
    let generated = generator::generate(&served, shape).expect("generator runs");
    // Every push leaves one reflog entry: commits per push.
    git_out(&served, &["config", "core.logAllRefUpdates", "true"]);
    let for_git = served_dir.join("large-git.git");
    super::copy_repo(&served, &for_git);
    let daemon = Daemon::start(&served_dir);
    let proxy = start_proxy(daemon.addr, ONE_WAY).await;

    let runs = if plan.quick { 10 } else { 30 };
    eprintln!("[remote] git push of one commit through the delay x {runs} ...");
    let delayed = format!("git://{proxy}/large-git.git");
    let direct = format!("git://{}/large-git.git", daemon.addr);
    let [git, git_direct] = {
        let served = for_git.clone();
        let scratch = scratch.to_path_buf();
        tokio::task::spawn_blocking(move || {
            git_baseline(&served, [&delayed, &direct], runs, &scratch)
        })
        .await
        .expect("baseline runs")
    };

    let url = format!("git://{proxy}/large.git");
    let data = scratch.join("remote-data");
    let log_dir = std::env::var_os("BENCH_LOG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| scratch.to_path_buf());
    let log = log_dir.join("remote-server.log");
    eprintln!("[remote] first start: clone through the delay ...");
    let began = Instant::now();
    let server = ServerProcess::spawn(&url, &data, &log);
    server.wait_ready().await;
    let first_start = began.elapsed();
    let mut c = client(&server.url).await;
    eprintln!("[remote] {} sequential releases ...", plan.sequential);
    let mut seq = Vec::with_capacity(plan.sequential);
    for i in 0..plan.sequential {
        seq.push(
            release(
                &mut c,
                service_name(i % shape.services),
                "dev",
                "feature-0",
                "",
            )
            .await,
        );
    }

    eprintln!(
        "[remote] {} releases from {} concurrent clients ...",
        plan.concurrent_total, plan.clients
    );
    let mut per_client: Vec<Vec<(String, &'static str)>> = vec![Vec::new(); plan.clients];
    let combos = ["staging", "prod"]
        .into_iter()
        .flat_map(|env| (0..shape.services).map(move |s| (service_name(s), env)))
        .take(plan.concurrent_total);
    let mut total = 0;
    for (i, combo) in combos.enumerate() {
        per_client[i % plan.clients].push(combo);
        total += 1;
    }
    let head_before = git_out(&served, &["rev-parse", "master"]);
    let reflog_before = reflog_len(&served);
    let mut clients = Vec::new();
    for _ in 0..plan.clients {
        clients.push(client(&server.url).await);
    }
    let began = Instant::now();
    let mut tasks = Vec::new();
    for (mut c, work) in clients.into_iter().zip(per_client) {
        tasks.push(tokio::spawn(async move {
            for (service, env) in work {
                release(&mut c, service, env, "feature-0", "").await;
            }
        }));
    }
    for task in tasks {
        task.await.expect("client task");
    }
    let throughput = total as f64 / began.elapsed().as_secs_f64();
    let added: usize = git_out(
        &served,
        &[
            "rev-list",
            "--count",
            &format!("{}..master", head_before.trim()),
        ],
    )
    .trim()
    .parse()
    .unwrap_or(0);
    assert_eq!(added, total, "every release is its own commit");
    let batches = batch_sizes(&served, reflog_before);
    let memory = server.memory.take();
    server.stop();
    drop(daemon);
    let _ = std::fs::remove_dir_all(&served_dir);
    let _ = std::fs::remove_dir_all(&data);
    RemoteReport {
        commits: generated.commits,
        first_start,
        seq,
        throughput,
        batches,
        git,
        git_direct,
        memory,
    }
}

pub fn print(r: &RemoteReport) {
    println!();
    println!(
        "## remote: the large repository ({} commits) behind git daemon, {} ms each way",
        r.commits,
        ONE_WAY.as_millis()
    );
    println!();
    println!("| measure | p50 | p99 |");
    println!("|---|---|---|");
    println!(
        "| release, sequential ({}) | {} | {} |",
        r.seq.len(),
        ms(percentile(&r.seq, 50.0)),
        ms(percentile(&r.seq, 99.0))
    );
    for (what, times) in [("", &r.git), (", no delay", &r.git_direct)] {
        println!(
            "| baseline: git push of one commit{what} ({}) | {} | {} |",
            times.push.len(),
            ms(percentile(&times.push, 50.0)),
            ms(percentile(&times.push, 99.0))
        );
        println!(
            "| bare round trip: git ls-remote{what} ({}) | {} | {} |",
            times.ls_remote.len(),
            ms(percentile(&times.ls_remote, 50.0)),
            ms(percentile(&times.ls_remote, 99.0))
        );
    }
    println!();
    println!(
        "- 64 concurrent clients: {:.0} releases/s; {}",
        r.throughput,
        crate::pushes_line(&r.batches)
    );
    println!(
        "- first start (clone through the delay): {}; peak RSS {}",
        ms(r.first_start),
        r.memory.describe()
    );
    let p50 = percentile(&r.seq, 50.0).as_secs_f64();
    let push = percentile(&r.git.push, 50.0).as_secs_f64();
    println!();
    println!("| target (remote) | measured | |");
    println!("|---|---|---|");
    super::check(
        "release p50 <= git push of one commit",
        p50 <= push,
        format!("{:.2}x", p50 / push),
    );
    super::check(
        ">= 600 releases/s, 64 clients",
        r.throughput >= 600.0,
        format!("{:.0}/s", r.throughput),
    );
}
