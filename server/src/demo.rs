//! The embedded demo: a local bare config repository, created once under the
//! data dir, with a few services, builds and releases, so that
//! `release-manager start` works with no setup at all.

use std::path::{Path, PathBuf};

use git2::{FileMode, Oid, Repository, Signature, Time};
use release_manager::spec::{ArtifactSpec, Ci, Repository as Source, Stage};

use crate::repo::message::compose;
use crate::repo::tree::replace_at;
use crate::repo::RepoError;

/// Services of the demo, and the branches they have builds of.
pub const DEMO_SERVICES: &[(&str, &[&str])] = &[
    ("product-api", &["master", "master", "feature/fast-search"]),
    ("checkout-web", &["master", "master"]),
];

const ENVIRONMENTS: &[&str] = &["dev", "staging", "prod"];

/// Creates the demo repository under `data_dir` unless it exists; returns
/// its path.
pub(crate) fn ensure_demo_repo(data_dir: &Path) -> Result<PathBuf, RepoError> {
    let path = data_dir.join("demo-config.git");
    if Repository::open_bare(&path).is_ok() {
        return Ok(path);
    }
    std::fs::create_dir_all(&path).map_err(|source| RepoError::Io {
        path: path.clone(),
        source,
    })?;
    let repo =
        Repository::init_bare(&path).map_err(RepoError::git("create the demo repository"))?;
    repo.set_head("refs/heads/master")
        .map_err(RepoError::git("create the demo repository"))?;
    let mut demo = DemoWriter {
        repo: &repo,
        tip: None,
        time: 1_767_225_600,
    };
    let mut files: Vec<(String, String)> = vec![(
        "README.md".into(),
        "# Demo config repository\n\nManaged by the release manager.\n".into(),
    )];
    for env in ENVIRONMENTS {
        files.push((
            format!("{env}/provisioning/README.md"),
            "Cluster provisioning; never touched by the release manager.\n".into(),
        ));
    }
    demo.commit("initial layout", "admin", &files)?;
    let mut latest_master = Vec::new();
    for (n, (service, branches)) in DEMO_SERVICES.iter().enumerate() {
        for (build, branch) in branches.iter().enumerate() {
            let (id, files) = build_files(service, branch, n * 10 + build);
            demo.commit(&format!("[{service}] build tag {id}"), "ci", &files)?;
            if *branch == "master" {
                latest_master.push((service.to_string(), branch.to_string(), files));
            }
        }
    }
    // Release the latest master build of the first service to dev.
    if let Some((service, _, files)) = latest_master
        .iter()
        .rev()
        .find(|(s, _, _)| s == DEMO_SERVICES[0].0)
    {
        let artifact = files
            .iter()
            .find(|(p, _)| p.ends_with("artifact.json"))
            .expect("a build has artifact.json");
        let spec = ArtifactSpec::parse(artifact.1.as_bytes()).expect("the demo writes valid specs");
        let release: Vec<(String, String)> = files
            .iter()
            .filter_map(|(p, c)| {
                let rest = p.split("/dev/").nth(1)?;
                Some((format!("dev/releases/dev/{service}/{rest}"), c.clone()))
            })
            .chain(std::iter::once((
                format!("dev/releases/dev/{service}/artifact.json"),
                artifact.1.clone(),
            )))
            .collect();
        let title = format!("[dev/{service}] release {}", spec.id);
        let message = compose(
            &title,
            &[
                ("Artifact-ID", &spec.id),
                ("Service", service),
                ("Environment", "dev"),
                ("Namespace", "dev"),
                ("Branch", "master"),
                ("Release-intent", "release-branch"),
                ("Released-by", "Demo Admin <admin@example.com>"),
            ],
        );
        demo.commit(&message, "admin", &release)?;
    }
    Ok(path)
}

fn build_files(service: &str, branch: &str, n: usize) -> (String, Vec<(String, String)>) {
    let hash = (n as u128 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
    let sha = format!("{hash:032x}{:08x}", (hash >> 17) as u32);
    let id = format!("{}-{}-{}", branch.replace('/', "-"), &sha[..10], &sha[30..]);
    let author = ["Ada Lovelace", "Grace Hopper", "Alan Turing"][n % 3];
    let email = format!(
        "{}@example.com",
        author.split(' ').next().unwrap_or("dev").to_lowercase()
    );
    let spec = ArtifactSpec {
        id: id.clone(),
        service: service.into(),
        namespace: String::new(),
        squad: "demo".into(),
        application: Source {
            sha: sha.clone(),
            branch: branch.into(),
            author_name: author.into(),
            author_email: email.clone(),
            committer_name: author.into(),
            committer_email: email,
            message: format!("Change number {n} of {service}"),
            name: service.into(),
            url: format!("https://git.example.com/acme/{service}/commit/{sha}"),
            provider: "GitHub".into(),
            ..Default::default()
        },
        ci: Ci {
            job_url: format!("https://ci.example.com/{service}/{n}"),
            start: format!("2026-01-01T10:{:02}:00Z", n % 60),
            end: format!("2026-01-01T10:{:02}:30Z", n % 60),
            ..Default::default()
        },
        stages: vec![Stage {
            id: "build".into(),
            name: "Build".into(),
            data: serde_json::json!({"image": format!("registry.example.com/acme/{service}"), "tag": id, "dockerVersion": "27.0"}),
            ..Default::default()
        }],
        ..Default::default()
    };
    let base = format!("builds/{service}/{branch}");
    let mut files = vec![(format!("{base}/artifact.json"), spec.to_pretty_json())];
    for env in ENVIRONMENTS {
        let replicas = if *env == "prod" { 2 } else { 1 };
        files.push((
            format!("{base}/{env}/40-deployment.yaml"),
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {service}\n  namespace: {env}\nspec:\n  replicas: {replicas}\n  template:\n    spec:\n      containers:\n        - name: {service}\n          image: registry.example.com/acme/{service}:{id}\n"
            ),
        ));
        files.push((
            format!("{base}/{env}/50-service.yaml"),
            format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: {service}\n  namespace: {env}\nspec:\n  ports:\n    - port: 80\n"),
        ));
    }
    (id, files)
}

struct DemoWriter<'r> {
    repo: &'r Repository,
    tip: Option<Oid>,
    time: i64,
}

impl DemoWriter<'_> {
    fn commit(
        &mut self,
        message: &str,
        who: &str,
        files: &[(String, String)],
    ) -> Result<(), RepoError> {
        let err = RepoError::git("write the demo repository");
        let parent = self
            .tip
            .map(|t| self.repo.find_commit(t))
            .transpose()
            .map_err(&err)?;
        let mut root = match &parent {
            Some(p) => Some(p.tree().map_err(&err)?.id()),
            None => None,
        };
        for (path, content) in files {
            let blob = self.repo.blob(content.as_bytes()).map_err(&err)?;
            let tree = root
                .map(|r| self.repo.find_tree(r))
                .transpose()
                .map_err(&err)?;
            let parts: Vec<&str> = path.split('/').collect();
            root = replace_at(
                self.repo,
                tree.as_ref(),
                &parts,
                Some((blob, FileMode::Blob)),
            )
            .map_err(&err)?;
        }
        let tree = self
            .repo
            .find_tree(root.expect("the demo writes files"))
            .map_err(&err)?;
        self.time += 60;
        let sig = Signature::new(who, &format!("{who}@example.com"), &Time::new(self.time, 0))
            .map_err(&err)?;
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        let oid = self
            .repo
            .commit(
                Some("refs/heads/master"),
                &sig,
                &sig,
                message,
                &tree,
                &parents,
            )
            .map_err(&err)?;
        self.tip = Some(oid);
        Ok(())
    }
}
