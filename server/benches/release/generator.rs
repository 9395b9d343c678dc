//! A generator of realistic, deterministic config repositories: builds per
//! service and branch (four manifests per environment), one feature branch
//! per service, release history in every environment with falling
//! probability, and auto-release policies for half the services.
//!
//! The history is written into a pack directly (`packgen`), so that even
//! the xl tier's 300,000 commits take well under a minute; `git
//! fast-import` (minutes for that many: it searches deltas of every large
//! tree) appends the commits "others" push later.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use super::packgen::PackSink;

pub const ENVS: [&str; 3] = ["dev", "staging", "prod"];
const FILES: [&str; 4] = [
    "01-configmap.yaml",
    "02-db-configmap.yaml",
    "40-deployment.yaml",
    "50-service.yaml",
];

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub services: usize,
    pub builds: usize,
    pub feature_branches: usize,
    pub seed: u64,
}

/// A summary of what was generated.
pub struct Generated {
    pub commits: usize,
    pub files: usize,
}

/// splitmix64: small, fast and deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64) / ((1u64 << 53) as f64) < p
    }
}

pub fn service_name(i: usize) -> String {
    format!("svc-{i:04}")
}

fn fake_sha(parts: &str) -> String {
    // Two rounds of FNV-1a, widened to 40 hex digits.
    let mut out = String::with_capacity(40);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for round in 0..3u8 {
        for b in parts.bytes().chain([round]) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        out.push_str(&format!("{h:016x}"));
    }
    out.truncate(40);
    out
}

/// The artifact id of build `n` of a service branch.
pub fn artifact_id(service: &str, branch: &str, n: usize) -> String {
    let app = fake_sha(&format!("{service}/{branch}/{n}/app"));
    let plan = fake_sha(&format!("{service}/{branch}/{n}/plan"));
    format!("{branch}-{}-{}", &app[..10], &plan[..10])
}

fn artifact_json(service: &str, branch: &str, n: usize, ts: u64) -> String {
    let id = artifact_id(service, branch, n);
    let app = fake_sha(&format!("{service}/{branch}/{n}/app"));
    let author = format!("dev{}", n % 7);
    let spec = serde_json::json!({
        "id": id,
        "service": service,
        "application": {
            "sha": app, "branch": branch, "authorName": author, "authorEmail": format!("{author}@example.com"),
            "committerName": author, "committerEmail": format!("{author}@example.com"),
            "message": format!("change {n} of {service}"), "name": service,
            "url": format!("https://git.example.com/acme/{service}/commit/{app}"), "provider": "GitHub"
        },
        "ci": {"jobUrl": format!("https://ci.example.com/job/{service}/{n}"),
               "start": format!("2026-01-01T00:{:02}:{:02}Z", (ts / 60) % 60, ts % 60),
               "end": format!("2026-01-01T00:{:02}:{:02}Z", (ts / 60) % 60, ts % 60)},
        "squad": format!("squad-{}", service.len() % 5),
        "stages": [
            {"id": "build", "name": "Build", "data": {"image": format!("registry.example.com/acme/{service}"), "tag": id, "dockerVersion": "24.0.7"}},
            {"id": "test", "name": "Test", "data": {"url": format!("https://ci.example.com/job/{service}/{n}/tests"), "results": {"passed": 120 + n % 9, "failed": 0, "skipped": n % 3}}},
            {"id": "snyk-code", "name": "Security Scan - Code", "data": {"snykVersion": "1.1", "url": "https://snyk.example.com", "language": "go", "vulnerabilities": {"high": 0, "medium": n % 2, "low": n % 4}}}
        ]
    });
    serde_json::to_string_pretty(&spec).expect("json") + "\n"
}

fn manifest(name: &str, service: &str, env: &str, id: &str) -> String {
    let image = format!("registry.example.com/acme/{service}:{id}");
    match name {
        "40-deployment.yaml" => format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {service}\n  namespace: {env}\n  labels:\n    app: {service}\n    artifact: {id}\nspec:\n  replicas: {}\n  selector:\n    matchLabels:\n      app: {service}\n  template:\n    metadata:\n      labels:\n        app: {service}\n    spec:\n      containers:\n        - name: {service}\n          image: {image}\n          ports:\n            - containerPort: 8080\n",
            if env == "prod" { 2 } else { 1 }
        ),
        "50-service.yaml" => format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {service}\n  namespace: {env}\nspec:\n  selector:\n    app: {service}\n  ports:\n    - port: 80\n      targetPort: 8080\n"
        ),
        _ => format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {service}-{}\n  namespace: {env}\ndata:\n  ENVIRONMENT: {env}\n  SERVICE: {service}\n  ARTIFACT: {id}\n",
            if name.starts_with("02") { "db" } else { "app" }
        ),
    }
}

/// One change of a commit: a file put at a path, or a path removed.
pub enum Op<B> {
    /// The file at the path becomes this blob.
    Put(String, B),
    /// The file or folder at the path goes.
    Delete(String),
}

/// Where generated history goes.
pub trait Sink {
    /// A handle on a stored blob.
    type Blob: Clone;
    /// Stores a file's contents.
    fn blob(&mut self, data: &str) -> std::io::Result<Self::Blob>;
    /// Commits `ops` on master.
    fn commit(
        &mut self,
        message: &str,
        author: &str,
        ops: Vec<Op<Self::Blob>>,
    ) -> std::io::Result<()>;
}

struct FastImport<W: Write> {
    out: W,
    mark: usize,
    ts: u64,
    commits: usize,
    /// The parent of the first commit, when appending to a branch.
    from: Option<String>,
}

impl<W: Write> Sink for FastImport<W> {
    type Blob = usize;

    fn blob(&mut self, data: &str) -> std::io::Result<usize> {
        self.mark += 1;
        write!(
            self.out,
            "blob\nmark :{}\ndata {}\n{data}\n",
            self.mark,
            data.len()
        )?;
        Ok(self.mark)
    }

    fn commit(&mut self, message: &str, author: &str, ops: Vec<Op<usize>>) -> std::io::Result<()> {
        self.ts += 17;
        self.commits += 1;
        write!(
            self.out,
            "commit refs/heads/master\nauthor {author} <{author}@example.com> {ts} +0000\ncommitter release-manager <rm@example.com> {ts} +0000\ndata {}\n{message}\n",
            message.len(),
            ts = self.ts
        )?;
        if let Some(from) = self.from.take() {
            writeln!(self.out, "from {from}")?;
        }
        for op in ops {
            match op {
                Op::Put(path, mark) => writeln!(self.out, "M 644 :{mark} {path}")?,
                Op::Delete(path) => writeln!(self.out, "D {path}")?,
            }
        }
        writeln!(self.out)
    }
}

/// The first commit's time, seconds since the epoch; each commit is 17 s
/// after the one before.
pub const FIRST_COMMIT_TIME: u64 = 1_767_225_600;

/// Writes a new bare repository at `dest` with branch master.
pub fn generate(dest: &Path, shape: Shape) -> std::io::Result<Generated> {
    let status = Command::new("git")
        .args(["init", "-q", "--bare", "-b", "master"])
        .arg(dest)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .status()?;
    assert!(status.success(), "git init failed");
    let mut sink = PackSink::new(FIRST_COMMIT_TIME);
    history(&mut sink, shape)?;
    let commits = sink.commits();
    sink.finish(dest)?;
    let files = Command::new("git")
        .args(["ls-tree", "-r", "--name-only", "master"])
        .current_dir(dest)
        .output()?
        .stdout
        .iter()
        .filter(|b| **b == b'\n')
        .count();
    Ok(Generated { commits, files })
}

/// The build commit of `branch` of `service`, numbered `n`.
fn build<S: Sink>(
    sink: &mut S,
    service: &str,
    branch: &str,
    n: usize,
    ts: u64,
) -> std::io::Result<String> {
    let id = artifact_id(service, branch, n);
    let spec = artifact_json(service, branch, n, ts);
    let mut ops = vec![Op::Delete(format!("builds/{service}/{branch}"))];
    ops.push(Op::Put(
        format!("builds/{service}/{branch}/artifact.json"),
        sink.blob(&spec)?,
    ));
    for env in ENVS {
        for file in FILES {
            let blob = sink.blob(&manifest(file, service, env, &id))?;
            ops.push(Op::Put(
                format!("builds/{service}/{branch}/{env}/{file}"),
                blob,
            ));
        }
    }
    sink.commit(&format!("[{service}] build tag {id}"), "ci", ops)?;
    Ok(spec)
}

/// The whole history of `shape`, oldest first.
fn history<S: Sink>(sink: &mut S, shape: Shape) -> std::io::Result<()> {
    let mut rng = Rng(shape.seed);
    let mut ops = vec![Op::Put(
        "README.md".to_string(),
        sink.blob("# cluster configuration (test)\n")?,
    )];
    for env in ENVS {
        ops.push(Op::Put(
            format!("{env}/provisioning/README.md"),
            sink.blob("provisioning")?,
        ));
    }
    sink.commit("initial layout", "admin", ops)?;
    let services: Vec<String> = (0..shape.services).map(service_name).collect();
    for service in &services {
        if rng.chance(0.5) {
            let policy = serde_json::json!({"service": service, "autoReleases": [{"id": "auto-release-master-dev", "branch": "master", "environment": "dev"}], "branchRestrictions": []});
            let blob = sink.blob(&(serde_json::to_string_pretty(&policy).expect("json") + "\n"))?;
            sink.commit(
                &format!("[{service}] policy update: apply auto-release from 'master' to 'dev'"),
                "admin",
                vec![Op::Put(format!("policies/{service}.json"), blob)],
            )?;
        }
    }
    let mut latest: Vec<Option<(String, usize)>> = vec![None; services.len()];
    let mut ts = FIRST_COMMIT_TIME;
    for n in 0..shape.builds {
        for (s, service) in services.iter().enumerate() {
            let mut branches = vec!["master".to_string()];
            if n < shape.feature_branches {
                branches.push(format!("feature-{n}"));
            }
            for branch in &branches {
                ts += 17;
                let spec = build(sink, service, branch, n, ts)?;
                if branch == "master" {
                    latest[s] = Some((spec, n));
                }
            }
            let (spec, built) = latest[s].clone().expect("a master build exists");
            let id = artifact_id(service, "master", built);
            for (env, p) in ENVS.iter().zip([0.9, 0.4, 0.2]) {
                if rng.chance(p) || (n + 1 == shape.builds && *env == "dev") {
                    let base = format!("{env}/releases/{env}/{service}");
                    let mut ops = vec![Op::Delete(base.clone())];
                    ops.push(Op::Put(format!("{base}/artifact.json"), sink.blob(&spec)?));
                    for file in FILES {
                        let blob = sink.blob(&manifest(file, service, env, &id))?;
                        ops.push(Op::Put(format!("{base}/{file}"), blob));
                    }
                    // Titles only, as older tools wrote them.
                    sink.commit(&format!("[{env}/{service}] release {id}"), "dev0", ops)?;
                }
            }
        }
    }
    Ok(())
}

/// Appends `count` build commits to master of the repository at `dest`, as
/// CI jobs of other teams would while the server is down: builds of the
/// first services' master branch, numbered from `first_build`.
pub fn append_builds(
    dest: &Path,
    services: usize,
    first_build: usize,
    count: usize,
) -> std::io::Result<()> {
    let git = |args: &[&str]| -> std::io::Result<String> {
        let out = Command::new("git")
            .args(args)
            .current_dir(dest)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let tip = git(&["rev-parse", "master"])?;
    let ts: u64 = git(&["log", "-1", "--format=%ct", "master"])?
        .parse()
        .unwrap_or(FIRST_COMMIT_TIME);
    let mut child = Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(dest)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdin(Stdio::piped())
        .spawn()?;
    let stdin = std::io::BufWriter::with_capacity(1 << 20, child.stdin.take().expect("piped"));
    let mut fi = FastImport {
        out: stdin,
        mark: 0,
        ts,
        commits: 0,
        from: Some(tip),
    };
    for i in 0..count {
        let service = service_name(i % services);
        let n = first_build + i / services;
        let ts = fi.ts;
        build(&mut fi, &service, "master", n, ts)?;
    }
    fi.out.flush()?;
    drop(fi);
    let status = child.wait()?;
    assert!(status.success(), "git fast-import failed");
    Ok(())
}
