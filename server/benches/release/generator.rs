//! A generator of realistic, deterministic config repositories, written with
//! `git fast-import` so that tens of thousands of commits take seconds:
//! builds per service and branch (four manifests per environment), one
//! feature branch per service, release history in every environment with
//! falling probability, and auto-release policies for half the services.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

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

struct FastImport<W: Write> {
    out: W,
    mark: usize,
    ts: u64,
    commits: usize,
}

impl<W: Write> FastImport<W> {
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

    fn commit(&mut self, message: &str, author: &str, ops: &[String]) -> std::io::Result<()> {
        self.commit_from(message, author, ops, None)
    }

    /// A commit on master; `from` names its parent when fast-import does
    /// not know it (the first commit appended to an existing branch).
    fn commit_from(
        &mut self,
        message: &str,
        author: &str,
        ops: &[String],
        from: Option<&str>,
    ) -> std::io::Result<()> {
        self.ts += 17;
        self.commits += 1;
        write!(
            self.out,
            "commit refs/heads/master\nauthor {author} <{author}@example.com> {ts} +0000\ncommitter release-manager <rm@example.com> {ts} +0000\ndata {}\n{message}\n",
            message.len(),
            ts = self.ts
        )?;
        if let Some(from) = from {
            writeln!(self.out, "from {from}")?;
        }
        for op in ops {
            writeln!(self.out, "{op}")?;
        }
        writeln!(self.out)
    }
}

/// Writes a new bare repository at `dest` with branch master.
pub fn generate(dest: &Path, shape: Shape) -> std::io::Result<Generated> {
    let status = Command::new("git")
        .args(["init", "-q", "--bare", "-b", "master"])
        .arg(dest)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .status()?;
    assert!(status.success(), "git init failed");
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
        ts: 1_767_225_600,
        commits: 0,
    };
    let mut rng = Rng(shape.seed);
    let mut ops = vec![
        "M 644 inline README.md".to_string(),
        "data 31\n# cluster configuration (test)".to_string(),
    ];
    for env in ENVS {
        ops.push(format!(
            "M 644 inline {env}/provisioning/README.md\ndata 12\nprovisioning"
        ));
    }
    fi.commit("initial layout", "admin", &ops)?;
    let services: Vec<String> = (0..shape.services).map(service_name).collect();
    for service in &services {
        if rng.chance(0.5) {
            let policy = serde_json::json!({"service": service, "autoReleases": [{"id": "auto-release-master-dev", "branch": "master", "environment": "dev"}], "branchRestrictions": []});
            let blob = fi.blob(&(serde_json::to_string_pretty(&policy).expect("json") + "\n"))?;
            fi.commit(
                &format!("[{service}] policy update: apply auto-release from 'master' to 'dev'"),
                "admin",
                &[format!("M 644 :{blob} policies/{service}.json")],
            )?;
        }
    }
    let mut latest: Vec<Option<(String, usize)>> = vec![None; services.len()];
    for n in 0..shape.builds {
        for (s, service) in services.iter().enumerate() {
            let mut branches = vec!["master".to_string()];
            if n < shape.feature_branches {
                branches.push(format!("feature-{n}"));
            }
            for branch in &branches {
                let id = artifact_id(service, branch, n);
                let spec = artifact_json(service, branch, n, fi.ts);
                let mut ops = vec![format!("D builds/{service}/{branch}")];
                let blob = fi.blob(&spec)?;
                ops.push(format!(
                    "M 644 :{blob} builds/{service}/{branch}/artifact.json"
                ));
                for env in ENVS {
                    for file in FILES {
                        let blob = fi.blob(&manifest(file, service, env, &id))?;
                        ops.push(format!(
                            "M 644 :{blob} builds/{service}/{branch}/{env}/{file}"
                        ));
                    }
                }
                fi.commit(&format!("[{service}] build tag {id}"), "ci", &ops)?;
                if branch == "master" {
                    latest[s] = Some((spec, n));
                }
            }
            let (spec, built) = latest[s].clone().expect("a master build exists");
            let id = artifact_id(service, "master", built);
            for (env, p) in ENVS.iter().zip([0.9, 0.4, 0.2]) {
                if rng.chance(p) || (n + 1 == shape.builds && *env == "dev") {
                    let base = format!("{env}/releases/{env}/{service}");
                    let mut ops = vec![format!("D {base}")];
                    let blob = fi.blob(&spec)?;
                    ops.push(format!("M 644 :{blob} {base}/artifact.json"));
                    for file in FILES {
                        let blob = fi.blob(&manifest(file, service, env, &id))?;
                        ops.push(format!("M 644 :{blob} {base}/{file}"));
                    }
                    // Titles only, as older tools wrote them.
                    fi.commit(&format!("[{env}/{service}] release {id}"), "dev0", &ops)?;
                }
            }
        }
    }
    let commits = fi.commits;
    fi.out.flush()?;
    drop(fi);
    let status = child.wait()?;
    assert!(status.success(), "git fast-import failed");
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

/// Appends `count` build commits to master of the repository at `dest`, as
/// CI jobs of other teams would while the server is down: builds of the
/// first services' master branch, numbered from `first_build`.
pub fn append_builds(
    dest: &Path,
    services: usize,
    first_build: usize,
    count: usize,
) -> std::io::Result<()> {
    let tip = Command::new("git")
        .args(["rev-parse", "master"])
        .current_dir(dest)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()?;
    let tip = String::from_utf8_lossy(&tip.stdout).trim().to_string();
    let when = Command::new("git")
        .args(["log", "-1", "--format=%ct", "master"])
        .current_dir(dest)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()?;
    let ts: u64 = String::from_utf8_lossy(&when.stdout)
        .trim()
        .parse()
        .unwrap_or(1_767_225_600);
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
    };
    for i in 0..count {
        let service = service_name(i % services);
        let n = first_build + i / services;
        let id = artifact_id(&service, "master", n);
        let spec = artifact_json(&service, "master", n, fi.ts);
        let mut ops = vec![format!("D builds/{service}/master")];
        let blob = fi.blob(&spec)?;
        ops.push(format!(
            "M 644 :{blob} builds/{service}/master/artifact.json"
        ));
        for env in ENVS {
            for file in FILES {
                let blob = fi.blob(&manifest(file, &service, env, &id))?;
                ops.push(format!(
                    "M 644 :{blob} builds/{service}/master/{env}/{file}"
                ));
            }
        }
        let from = (i == 0).then_some(tip.as_str());
        fi.commit_from(&format!("[{service}] build tag {id}"), "ci", &ops, from)?;
    }
    fi.out.flush()?;
    drop(fi);
    let status = child.wait()?;
    assert!(status.success(), "git fast-import failed");
    Ok(())
}
