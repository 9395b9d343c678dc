//! The release benchmark: the real server (its release binary, as a separate
//! process) against config repositories built by the project's generator,
//! driven through the real gRPC client, side by side with the git
//! command-line baselines on copies of the same repositories.
//!
//!   cargo bench -p release-manager-server --bench release [-- --quick] [-- --size small|large|remote]
//!   cargo bench -p release-manager-server --bench release -- --size xl
//!
//! `BENCH_SERVER_BIN=path` runs another build of the server instead of
//! this one's, for before/after comparisons on the same repositories.
//!
//! The `xl` tier (2,000 services, about 300,000 commits) runs only when
//! asked for: it measures starting on a long history (first start, restart
//! with the persisted index, restart after 1,000 commits by others), peak
//! RSS of each, and release and status latency once serving.
//!
//! The `remote` tier (`--size remote`, also part of the default run) serves
//! the large repository through `git daemon` behind a delay of 20 ms each
//! way, beside the git command line's push through the same delay.
//!
//! It prints latencies, throughput, batch sizes, start-up time, peak RSS and
//! the ratios against each baseline. Figures are measurements, not
//! assertions: nothing here fails on a slow machine.

mod baseline;
mod extras;
mod generator;
mod packgen;
mod remote;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use release_manager::pb;
use release_manager::pb::release_service_client::ReleaseServiceClient;
use tonic::transport::Channel;

use generator::{artifact_id, service_name, Shape};

struct Plan {
    quick: bool,
    sequential: usize,
    by_id: usize,
    status_idle: usize,
    concurrent_total: usize,
    clients: usize,
    clone_runs: usize,
    persistent_runs: usize,
    plumbing_runs: usize,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Plan {
                quick,
                sequential: 40,
                by_id: 20,
                status_idle: 100,
                concurrent_total: 256,
                clients: 64,
                clone_runs: 1,
                persistent_runs: 4,
                plumbing_runs: 8,
            }
        } else {
            Plan {
                quick,
                sequential: 200,
                by_id: 100,
                status_idle: 400,
                concurrent_total: 640,
                clients: 64,
                clone_runs: 3,
                persistent_runs: 15,
                plumbing_runs: 30,
            }
        }
    }
}

#[derive(Default)]
struct Report {
    name: String,
    commits: usize,
    files: usize,
    services: usize,
    seq: Vec<Duration>,
    by_id: Vec<Duration>,
    status_idle: Vec<Duration>,
    status_load: Vec<Duration>,
    throughput: f64,
    concurrent_commits: usize,
    batches: Vec<usize>,
    cold_start: Duration,
    warm_start: Duration,
    peak_rss_kb: u64,
    /// Peaks of both parts of memory over the whole run.
    memory: extras::Memory,
    dashboard: Option<extras::Dashboard>,
    /// 8 uploads of 31 MiB at once: how long, and memory meanwhile.
    uploads: Option<(Duration, extras::Memory)>,
    baselines: Vec<(baseline::Mode, Vec<Duration>)>,
}

fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank]
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else if ms >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

fn copy_repo(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("cp runs");
    assert!(status.success());
    // Each contender starts with nothing of the previous one's writes left
    // to flush: the baselines write gigabytes, and a server measured right
    // after them would pay for their write-back.
    let _ = Command::new("sync").status();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

struct ServerProcess {
    child: Child,
    url: String,
    /// The dashboard and the other HTTP routes.
    http_url: String,
    /// Memory, by part, every 20 ms.
    memory: extras::Sampler,
}

impl ServerProcess {
    fn spawn(remote: impl AsRef<std::ffi::OsStr>, data: &Path, log: &Path) -> Self {
        let port = free_port();
        let http_port = free_port();
        // BENCH_SERVER_BIN measures another build of the server (an
        // earlier commit's, say) against the same repositories.
        let binary = std::env::var_os("BENCH_SERVER_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_release-manager").into());
        let child = Command::new(binary)
            .args([
                "start",
                "--unauthenticated",
                "--http-listen",
                &format!("127.0.0.1:{http_port}"),
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--config-repo",
            ])
            .arg(remote)
            .arg("--data-dir")
            .arg(data)
            .env(
                "RUST_LOG",
                std::env::var("BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                    .expect("log file"),
            )
            .spawn()
            .expect("server starts");
        let memory = extras::Sampler::start(child.id());
        ServerProcess {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http_url: format!("http://127.0.0.1:{http_port}"),
            memory,
        }
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Ok(channel) = Channel::from_shared(self.url.clone())
                .expect("url")
                .connect()
                .await
            {
                let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
                let request = tonic_health::pb::HealthCheckRequest {
                    service: "releasemanager.v1.ReleaseService".into(),
                };
                // The port answers while the server starts: ready means
                // SERVING, not merely an answer.
                let serving = tonic_health::pb::health_check_response::ServingStatus::Serving;
                if health
                    .check(request)
                    .await
                    .is_ok_and(|r| r.into_inner().status() == serving)
                {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "server did not become ready");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn peak_rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

async fn client(url: &str) -> ReleaseServiceClient<Channel> {
    ReleaseServiceClient::connect(url.to_string())
        .await
        .expect("connects")
}

fn operator() -> Option<pb::Person> {
    Some(pb::Person {
        name: "Bench Operator".into(),
        email: "bench@example.com".into(),
    })
}

async fn release(
    client: &mut ReleaseServiceClient<Channel>,
    service: String,
    env: &str,
    branch: &str,
    artifact: &str,
) -> Duration {
    let request = pb::ReleaseRequest {
        service,
        environment: env.into(),
        source: Some(if artifact.is_empty() {
            pb::release_request::Source::Branch(branch.into())
        } else {
            pb::release_request::Source::ArtifactId(artifact.into())
        }),
        committer: operator(),
        ..Default::default()
    };
    let began = Instant::now();
    let result = client
        .release(request)
        .await
        .expect("release succeeds")
        .into_inner()
        .result
        .expect("a result");
    let took = began.elapsed();
    assert_eq!(
        result.outcome(),
        pb::Outcome::Applied,
        "each benchmark release changes something"
    );
    took
}

async fn status(client: &mut ReleaseServiceClient<Channel>, service: String) -> Duration {
    let began = Instant::now();
    client
        .status(pb::StatusRequest {
            service,
            namespace: String::new(),
        })
        .await
        .expect("status works");
    began.elapsed()
}

fn git_out(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Commits per push, from the remote's reflog entries after `skip`.
fn batch_sizes(remote: &Path, skip: usize) -> Vec<usize> {
    let log = std::fs::read_to_string(remote.join("logs/refs/heads/master")).unwrap_or_default();
    log.lines()
        .skip(skip)
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let (old, new) = (parts.next()?, parts.next()?);
            git_out(remote, &["rev-list", "--count", &format!("{old}..{new}")])
                .trim()
                .parse()
                .ok()
        })
        .collect()
}

fn reflog_len(remote: &Path) -> usize {
    std::fs::read_to_string(remote.join("logs/refs/heads/master"))
        .map(|l| l.lines().count())
        .unwrap_or(0)
}

async fn run_size(name: &str, shape: Shape, plan: &Plan, scratch: &Path) -> Report {
    let mut report = Report {
        name: name.to_string(),
        services: shape.services,
        ..Default::default()
    };
    let pristine = scratch.join(format!("{name}.git"));
    eprintln!(
        "[{name}] generating {} services x {} builds ...",
        shape.services, shape.builds
    );
    let began = Instant::now();
    let generated = generator::generate(&pristine, shape).expect("generator runs");
    report.commits = generated.commits;
    report.files = generated.files;
    eprintln!(
        "[{name}] {} commits, {} files in {:.1?}",
        generated.commits,
        generated.files,
        began.elapsed()
    );

    // The server, on its own copy, with the remote's reflog on so that
    // every push (one batch) leaves one entry.
    let remote = scratch.join(format!("{name}-server.git"));
    copy_repo(&pristine, &remote);
    git_out(&remote, &["config", "core.logAllRefUpdates", "true"]);
    let data = scratch.join(format!("{name}-data"));
    // The server's log; BENCH_LOG_DIR keeps it (with BENCH_SERVER_LOG=debug
    // it shows each batch's apply and push times).
    let log_dir = std::env::var_os("BENCH_LOG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| scratch.to_path_buf());
    let log = log_dir.join(format!("{name}-server.log"));
    let began = Instant::now();
    let server = ServerProcess::spawn(&remote, &data, &log);
    server.wait_ready().await;
    report.cold_start = began.elapsed();
    let url = server.url.clone();
    let mut c = client(&url).await;

    eprintln!(
        "[{name}] server: {} sequential releases ...",
        plan.sequential
    );
    for i in 0..plan.sequential {
        report.seq.push(
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
        "[{name}] server: {} releases of old artifacts by id ...",
        plan.by_id
    );
    // The first master build of each service exists only in history; dev
    // now runs feature-0 (released just above), so each one is a change.
    for i in 0..plan.by_id.min(plan.sequential) {
        let service = service_name(i % shape.services);
        let old = artifact_id(&service, "master", 0);
        report
            .by_id
            .push(release(&mut c, service, "dev", "", &old).await);
    }
    for i in 0..plan.status_idle {
        report
            .status_idle
            .push(status(&mut c, service_name(i % shape.services)).await);
    }

    eprintln!(
        "[{name}] server: {} releases from {} concurrent clients ...",
        plan.concurrent_total, plan.clients
    );
    let mut combos: Vec<(String, &'static str)> = Vec::new();
    for env in ["staging", "prod"] {
        for s in 0..shape.services {
            combos.push((service_name(s), env));
        }
    }
    combos.truncate(plan.concurrent_total);
    let total = combos.len();
    let mut per_client: Vec<Vec<(String, &'static str)>> = vec![Vec::new(); plan.clients];
    for (i, combo) in combos.into_iter().enumerate() {
        per_client[i % plan.clients].push(combo);
    }
    let head_before = git_out(&remote, &["rev-parse", "master"])
        .trim()
        .to_string();
    let reflog_before = reflog_len(&remote);
    let loading = Arc::new(AtomicBool::new(true));
    let status_task = {
        let loading = loading.clone();
        let url = url.clone();
        let services = shape.services;
        tokio::spawn(async move {
            let mut c = client(&url).await;
            let mut samples = Vec::new();
            let mut i = 0;
            while loading.load(Ordering::Relaxed) {
                samples.push(status(&mut c, service_name(i % services)).await);
                i += 1;
            }
            samples
        })
    };
    let mut clients = Vec::new();
    for work in &per_client {
        clients.push(client(&url).await);
        let _ = work;
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
    let elapsed = began.elapsed();
    loading.store(false, Ordering::Relaxed);
    report.status_load = status_task.await.expect("status task");
    report.throughput = total as f64 / elapsed.as_secs_f64();
    report.concurrent_commits = git_out(
        &remote,
        &["rev-list", "--count", &format!("{head_before}..master")],
    )
    .trim()
    .parse()
    .unwrap_or(0);
    let merges = git_out(
        &remote,
        &[
            "rev-list",
            "--merges",
            "--count",
            &format!("{head_before}..master"),
        ],
    );
    assert_eq!(
        report.concurrent_commits, total,
        "every release is its own commit"
    );
    assert_eq!(merges.trim(), "0", "history stays linear");
    report.batches = batch_sizes(&remote, reflog_before);
    eprintln!("[{name}] dashboard ...");
    report.dashboard = Some(extras::dashboard(&server.http_url, 20).await);
    report.memory = server.memory.take();
    if name == "small" {
        eprintln!(
            "[{name}] {} uploads of {} MiB at once ...",
            extras::UPLOADS,
            extras::UPLOAD_MIB
        );
        let services: Vec<String> = (0..extras::UPLOADS).map(service_name).collect();
        let took = extras::uploads(&url, &services).await;
        report.uploads = Some((took, server.memory.take()));
    }
    report.peak_rss_kb = server.peak_rss_kb();
    server.stop();

    eprintln!("[{name}] restart with the existing mirror ...");
    let began = Instant::now();
    let server = ServerProcess::spawn(&remote, &data, &log);
    server.wait_ready().await;
    report.warm_start = began.elapsed();
    report.peak_rss_kb = report.peak_rss_kb.max(server.peak_rss_kb());
    report.memory = report.memory.max(server.memory.take());
    server.stop();
    let _ = std::fs::remove_dir_all(&remote);
    let _ = std::fs::remove_dir_all(&data);

    report
}

/// The git command-line baselines on copies of the size's repository. Run
/// after every server measurement: they create and delete hundreds of
/// thousands of files, which slows file creation for whoever runs next.
fn run_baselines(report: &mut Report, plan: &Plan, scratch: &Path) {
    let name = report.name.clone();
    let pristine = scratch.join(format!("{name}.git"));
    let modes = [
        (baseline::Mode::Plumbing, plan.plumbing_runs),
        (baseline::Mode::Persistent, plan.persistent_runs),
        (
            baseline::Mode::Clone,
            if name == "small" { plan.clone_runs } else { 0 },
        ),
    ];
    for (mode, runs) in modes {
        if runs == 0 {
            continue;
        }
        let copy = scratch.join(format!("{name}-{mode:?}.git"));
        copy_repo(&pristine, &copy);
        let services: Vec<String> = (0..runs).map(service_name).collect();
        eprintln!("[{name}] baseline {} x {runs} ...", mode.name());
        let times = baseline::run(mode, &copy, &services, "dev", "feature-0");
        report.baselines.push((mode, times));
        let _ = std::fs::remove_dir_all(&copy);
    }
}

fn print_report(r: &Report) {
    println!();
    println!(
        "## {}: {} services, {} commits, {} files at master",
        r.name, r.services, r.commits, r.files
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
    println!(
        "| release of an old artifact by id ({}) | {} | {} |",
        r.by_id.len(),
        ms(percentile(&r.by_id, 50.0)),
        ms(percentile(&r.by_id, 99.0))
    );
    println!(
        "| status, idle ({}) | {} | {} |",
        r.status_idle.len(),
        ms(percentile(&r.status_idle, 50.0)),
        ms(percentile(&r.status_idle, 99.0))
    );
    println!(
        "| status, under the write load below ({}) | {} | {} |",
        r.status_load.len(),
        ms(percentile(&r.status_load, 50.0)),
        ms(percentile(&r.status_load, 99.0))
    );
    for (mode, times) in &r.baselines {
        println!(
            "| baseline: {} ({}) | {} | {} |",
            mode.name(),
            times.len(),
            ms(percentile(times, 50.0)),
            ms(percentile(times, 99.0))
        );
    }
    println!();
    println!(
        "- 64 concurrent clients: {:.0} releases/s; {} commits, linear; {}",
        r.throughput,
        r.concurrent_commits,
        pushes_line(&r.batches)
    );
    println!(
        "- start-up: cold (clone + index) {}, with the existing mirror {}",
        ms(r.cold_start),
        ms(r.warm_start)
    );
    println!(
        "- peak RSS of the server: {:.1} MB; sampled every 20 ms: {}",
        r.peak_rss_kb as f64 / 1024.0,
        r.memory.describe()
    );
    if let Some(dashboard) = &r.dashboard {
        println!(
            "- dashboard matrix ({} services x 3 environments): {}",
            r.services,
            dashboard.describe()
        );
    }
    if let Some((took, memory)) = &r.uploads {
        println!(
            "- {} uploads of {} MiB at once: {}; peak memory meanwhile {}",
            extras::UPLOADS,
            extras::UPLOAD_MIB,
            ms(*took),
            memory.describe()
        );
    }
    let p50 = percentile(&r.seq, 50.0);
    for (mode, times) in &r.baselines {
        let base = percentile(times, 50.0);
        println!(
            "- {}: {:.0}x slower per release than the server (p50 {} vs {})",
            mode.name(),
            base.as_secs_f64() / p50.as_secs_f64(),
            ms(base),
            ms(p50)
        );
    }
}

fn check(label: &str, ok: bool, detail: String) {
    println!(
        "| {label} | {detail} | {} |",
        if ok { "met" } else { "NOT met" }
    );
}

fn print_targets(reports: &[Report]) {
    println!();
    println!("## Targets");
    println!();
    println!("| target | measured | |");
    println!("|---|---|---|");
    for r in reports {
        let p50 = percentile(&r.seq, 50.0);
        if let Some((_, plumbing)) = r
            .baselines
            .iter()
            .find(|(m, _)| *m == baseline::Mode::Plumbing)
        {
            let base = percentile(plumbing, 50.0);
            check(
                &format!("{}: release p50 <= 1/10 of plumbing", r.name),
                p50 * 10 <= base,
                format!(
                    "{} vs {} (1/{:.0})",
                    ms(p50),
                    ms(base),
                    base.as_secs_f64() / p50.as_secs_f64()
                ),
            );
        }
        let by_id = percentile(&r.by_id, 50.0);
        check(
            &format!("{}: old artifact by id <= 1.5x latest", r.name),
            by_id.as_secs_f64() <= 1.5 * p50.as_secs_f64(),
            format!(
                "{} vs {} ({:.2}x)",
                ms(by_id),
                ms(p50),
                by_id.as_secs_f64() / p50.as_secs_f64()
            ),
        );
        check(
            &format!("{}: >= 300 releases/s, 64 clients", r.name),
            r.throughput >= 300.0,
            format!("{:.0}/s", r.throughput),
        );
        let idle = percentile(&r.status_idle, 50.0);
        let load = percentile(&r.status_load, 50.0);
        check(
            &format!("{}: status p50 < 3 ms idle", r.name),
            idle < Duration::from_millis(3),
            ms(idle),
        );
        check(
            &format!("{}: status p50 under load <= 2x idle", r.name),
            load <= idle * 2,
            format!(
                "{} ({:.2}x)",
                ms(load),
                load.as_secs_f64() / idle.as_secs_f64()
            ),
        );
        check(
            &format!("{}: start-up with mirror < 5 s", r.name),
            r.warm_start < Duration::from_secs(5),
            ms(r.warm_start),
        );
        check(
            &format!("{}: peak RSS < 200 MB", r.name),
            r.peak_rss_kb < 200 * 1024,
            format!("{:.1} MB", r.peak_rss_kb as f64 / 1024.0),
        );
    }
    if let [small, large] = reports {
        let a = percentile(&small.seq, 50.0).as_secs_f64();
        let b = percentile(&large.seq, 50.0).as_secs_f64();
        check(
            "growth: large p50 <= 1.5x small p50",
            b <= 1.5 * a,
            format!("{:.2}x", b / a),
        );
        let plumbing = |r: &Report| {
            r.baselines
                .iter()
                .find(|(m, _)| *m == baseline::Mode::Plumbing)
                .map(|(_, t)| percentile(t, 50.0).as_secs_f64())
        };
        if let (Some(pa), Some(pb)) = (plumbing(small), plumbing(large)) {
            println!(
                "\n(plumbing baseline growth in the same run: {:.2}x)",
                pb / pa
            );
        }
    }
}

/// What the `xl` tier measures.
struct XlReport {
    commits: usize,
    generated_in: Duration,
    /// Each start: what it was, time to SERVING, peak memory of the start
    /// and the few seconds after it (sampled).
    starts: Vec<(&'static str, Duration, extras::Memory)>,
    seq: Vec<Duration>,
    status: Vec<Duration>,
    /// Peak memory while serving the releases and status reads.
    serving: extras::Memory,
}

/// What follows a start on its own (auto-releases a restart owes, the
/// snapshot): sampled for this long after SERVING.
const AFTER_START: Duration = Duration::from_secs(3);

/// Starts the server on `remote`/`data` and waits until it is SERVING.
async fn timed_start(remote: &Path, data: &Path, log: &Path) -> (ServerProcess, Duration) {
    let began = Instant::now();
    let server = ServerProcess::spawn(remote, data, log);
    server.wait_ready().await;
    (server, began.elapsed())
}

/// The xl tier: a few years of a busy organisation's config repository.
const XL: Shape = Shape {
    services: 2000,
    builds: 60,
    feature_branches: 1,
    seed: 1,
};

async fn run_xl(plan: &Plan, scratch: &Path) -> XlReport {
    let shape = XL;
    let remote = scratch.join("xl.git");
    eprintln!(
        "[xl] generating {} services x {} builds ...",
        shape.services, shape.builds
    );
    let began = Instant::now();
    let generated = generator::generate(&remote, shape).expect("generator runs");
    let generated_in = began.elapsed();
    eprintln!("[xl] {} commits in {generated_in:.1?}", generated.commits);
    let data = scratch.join("xl-data");
    let log_dir = std::env::var_os("BENCH_LOG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| scratch.to_path_buf());
    let log = log_dir.join("xl-server.log");
    let mut report = XlReport {
        commits: generated.commits,
        generated_in,
        starts: Vec::new(),
        seq: Vec::new(),
        status: Vec::new(),
        serving: extras::Memory::default(),
    };

    eprintln!("[xl] first start (clone, whole history) ...");
    let (server, took) = timed_start(&remote, &data, &log).await;
    tokio::time::sleep(AFTER_START).await;
    report.starts.push((
        "first start: clone + whole history",
        took,
        server.memory.take(),
    ));
    let mut c = client(&server.url).await;
    for i in 0..plan.sequential {
        report.seq.push(
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
    for i in 0..plan.status_idle {
        report
            .status
            .push(status(&mut c, service_name(i % shape.services)).await);
    }
    report.serving = server.memory.take();
    server.stop();

    eprintln!("[xl] restart with the mirror and the snapshot ...");
    let (server, took) = timed_start(&remote, &data, &log).await;
    tokio::time::sleep(AFTER_START).await;
    report
        .starts
        .push(("restart: mirror + snapshot", took, server.memory.take()));
    server.stop();

    eprintln!("[xl] 1,000 commits by others, then a restart ...");
    generator::append_builds(&remote, shape.services, shape.builds, 1000).expect("append");
    let (server, took) = timed_start(&remote, &data, &log).await;
    tokio::time::sleep(AFTER_START).await;
    report.starts.push((
        "restart after 1,000 commits by others",
        took,
        server.memory.take(),
    ));
    server.stop();
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_dir_all(&remote);
    report
}

fn print_xl(r: &XlReport) {
    println!();
    println!(
        "## xl: 2000 services, {} commits (generated in {})",
        r.commits,
        ms(r.generated_in)
    );
    println!();
    println!(
        "| start | to SERVING | peak RSS, sampled every 20 ms until {} s after |",
        AFTER_START.as_secs()
    );
    println!("|---|---|---|");
    for (what, took, memory) in &r.starts {
        println!("| {what} | {} | {} |", ms(*took), memory.describe());
    }
    println!();
    println!("| once serving | p50 | p99 |");
    println!("|---|---|---|");
    println!(
        "| release, sequential ({}) | {} | {} |",
        r.seq.len(),
        ms(percentile(&r.seq, 50.0)),
        ms(percentile(&r.seq, 99.0))
    );
    println!(
        "| status, idle ({}) | {} | {} |",
        r.status.len(),
        ms(percentile(&r.status, 50.0)),
        ms(percentile(&r.status, 99.0))
    );
    println!(
        "\n- peak RSS while serving those releases and reads: {}",
        r.serving.describe()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only = args
        .iter()
        .position(|a| a == "--size")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let plan = Plan::new(quick);
    let sizes = [
        (
            "small",
            Shape {
                services: 200,
                builds: 10,
                feature_branches: 1,
                seed: 1,
            },
        ),
        (
            "large",
            Shape {
                services: 1000,
                builds: 10,
                feature_branches: 1,
                seed: 1,
            },
        ),
    ];
    let scratch = tempfile::tempdir().expect("temp dir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let began = Instant::now();
    // `--generate DIR` only writes the size's repository there (a bare
    // repository, branch master), to try the server on.
    if let Some(dest) = args
        .iter()
        .position(|a| a == "--generate")
        .and_then(|i| args.get(i + 1))
    {
        let shape = match only.as_deref() {
            Some("xl") => XL,
            Some("small") => sizes[0].1,
            _ => sizes[1].1,
        };
        let generated = generator::generate(Path::new(dest), shape).expect("generator runs");
        println!(
            "{dest}: {} services, {} commits, {} files at master, in {:.1?}",
            shape.services,
            generated.commits,
            generated.files,
            began.elapsed()
        );
        return;
    }
    // `--append DIR N` adds N build commits to the repository at DIR, as
    // other teams' CI would while a server is stopped.
    if let Some(i) = args.iter().position(|a| a == "--append") {
        let dest = Path::new(args.get(i + 1).expect("--append DIR N"));
        let count: usize = args
            .get(i + 2)
            .and_then(|n| n.parse().ok())
            .expect("--append DIR N");
        let shape = if only.as_deref() == Some("xl") {
            XL
        } else {
            sizes[1].1
        };
        generator::append_builds(dest, shape.services, shape.builds, count).expect("append");
        println!(
            "{}: {count} build commits added in {:.1?}",
            dest.display(),
            began.elapsed()
        );
        return;
    }
    if only.as_deref() == Some("xl") {
        let report = runtime.block_on(run_xl(&plan, scratch.path()));
        println!(
            "# Release benchmark, xl tier{}",
            if plan.quick { " (--quick)" } else { "" }
        );
        println!(
            "\nDisk: {}",
            extras::describe_flushes(&extras::flush_cost(scratch.path(), 50))
        );
        print_xl(&report);
        println!("\n(total {:.0?})", began.elapsed());
        return;
    }
    let mut reports = Vec::new();
    for (name, shape) in sizes {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        reports.push(runtime.block_on(run_size(name, shape, &plan, scratch.path())));
    }
    let remote_report = only
        .as_deref()
        .is_none_or(|o| o == "remote")
        .then(|| runtime.block_on(remote::run(&plan, sizes[1].1, scratch.path())));
    for report in &mut reports {
        run_baselines(report, &plan, scratch.path());
    }
    println!(
        "# Release benchmark{} ({} cores)",
        if plan.quick { " (--quick)" } else { "" },
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!(
        "\nDisk: {}",
        extras::describe_flushes(&extras::flush_cost(scratch.path(), 50))
    );
    for report in &reports {
        print_report(report);
    }
    if !reports.is_empty() {
        print_targets(&reports);
    }
    if let Some(report) = &remote_report {
        remote::print(report);
    }
    println!("\n(total {:.0?})", began.elapsed());
}

/// How the writer grouped a run's commits into pushes: "N pushes, commits
/// per push mean M, max X".
fn pushes_line(batches: &[usize]) -> String {
    let mean = if batches.is_empty() {
        0.0
    } else {
        batches.iter().sum::<usize>() as f64 / batches.len() as f64
    };
    format!(
        "{} pushes, commits per push mean {mean:.1}, max {}",
        batches.len(),
        batches.iter().max().copied().unwrap_or(0)
    )
}
