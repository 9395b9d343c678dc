//! What separates two environments of a service, computed once for the
//! dashboard's comparison page, the `CompareEnvironments` RPC and `hamctl
//! diff`, so that the three agree: the artifact each environment runs, the
//! builds between the two (of the newer one's branch), the source
//! repository's compare link when the artifacts' commit links allow one,
//! and how the two release folders differ as git diffs them, with the lines
//! that differ beyond the artifact id marked.
//!
//! The diff reads "what `to` would become": `-` lines are the `to`
//! environment's folder, `+` lines the `from` environment's, as `git diff
//! <to folder> <from folder>` prints them. It reads at the published tip
//! and never writes.

use git2::{Oid, Repository, Tree};
use release_manager::spec::ArtifactSpec;

use crate::domain::catalog::unknown_service_at;
use crate::domain::{git, FlowError, Settings};
use crate::engine::reads::Reader;
use crate::repo::diff::{diff_trees, FileDiff, Hunk, LineKind};
use crate::repo::index::{BuildRecord, ReleaseDetails, Signature, View};
use crate::repo::tree::{blob_at, tree_at};

/// Most builds listed between the two artifacts.
pub(crate) const MAX_BUILDS: usize = 100;
/// Most diff lines returned, all files together.
pub(crate) const MAX_DIFF_LINES: usize = 5_000;

/// What runs in one environment.
#[derive(Debug, Clone)]
pub(crate) struct Running {
    /// Its artifact.json.
    pub(crate) spec: ArtifactSpec,
    /// Its branch.
    pub(crate) branch: String,
    /// The build commit, when the index knows the build.
    pub(crate) build_commit: Option<Oid>,
    /// The release commit, when the index knows it.
    pub(crate) release_commit: Option<Oid>,
    /// When it was released (seconds since the epoch; 0 when unknown).
    pub(crate) released_at: i64,
    /// Who released it, when known.
    pub(crate) released_by: Option<Signature>,
}

/// One of the two environments compared.
#[derive(Debug, Clone)]
pub(crate) struct Side {
    /// The environment.
    pub(crate) environment: String,
    /// The namespace folder its release was found in (the environment's
    /// name when nothing runs there).
    pub(crate) namespace: String,
    /// What runs there; `None` when the service was never released there.
    pub(crate) running: Option<Running>,
}

impl Side {
    /// The artifact id running there, if any.
    pub(crate) fn artifact_id(&self) -> Option<&str> {
        self.running.as_ref().map(|r| r.spec.id.as_str())
    }
}

/// Which of the two runs the newer build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Newer {
    /// One of them runs nothing the index knows as a build.
    Unknown,
    /// `from` runs the newer build (a promotion would move `to` forward).
    From,
    /// `to` runs the newer build (a promotion would move it back).
    To,
    /// Both run the same artifact.
    Same,
}

/// One build between the two artifacts.
#[derive(Debug, Clone)]
pub(crate) struct Build {
    /// Its artifact.json (only the id when it cannot be read).
    pub(crate) spec: ArtifactSpec,
    /// The branch folder it was stored in.
    pub(crate) branch: String,
    /// The build commit.
    pub(crate) commit: Oid,
    /// When it was committed.
    pub(crate) time: i64,
}

/// What separates two environments of a service.
#[derive(Debug, Clone)]
pub(crate) struct Comparison {
    /// The service.
    pub(crate) service: String,
    /// The environment whose artifact would be promoted.
    pub(crate) from: Side,
    /// The environment it would go to.
    pub(crate) to: Side,
    /// Which runs the newer build.
    pub(crate) newer: Newer,
    /// The builds of the newer artifact's branch made after the older
    /// artifact's build, up to and including the newer one, newest first.
    pub(crate) builds: Vec<Build>,
    /// More builds than [`MAX_BUILDS`] lie between them.
    pub(crate) builds_truncated: bool,
    /// The source repository's comparison of the two builds' commits.
    pub(crate) source_compare_url: Option<String>,
    /// How the `to` folder (old side) differs from the `from` folder (new
    /// side); lines that differ beyond the artifact id are `notable`.
    pub(crate) files: Vec<FileDiff>,
    /// Lines were left out past [`MAX_DIFF_LINES`].
    pub(crate) diff_truncated: bool,
    /// How many changed lines differ beyond the artifact id (the build's
    /// own artifact.json left out).
    pub(crate) lines_beyond_artifact_id: usize,
}

/// The file of a release folder that describes the build rather than
/// deploys it: its differences are the builds' own, listed with them.
pub(crate) const DESCRIPTION_FILE: &str = "artifact.json";

impl Reader {
    /// Compares `from` with `to` for `service` at the published tip, in
    /// `namespace` (else each environment's own, else wherever the service
    /// runs there). Names are checked here, so every caller refuses the
    /// same requests with the same words.
    pub(crate) fn compare(
        &self,
        service: &str,
        from: &str,
        to: &str,
        namespace: Option<&str>,
    ) -> Result<Comparison, FlowError> {
        release_manager::names::check_service(service)?;
        check_environment(self.settings(), "from_environment", from)?;
        check_environment(self.settings(), "to_environment", to)?;
        if from == to {
            return Err(FlowError::invalid(
                "to_environment",
                format!("from and to are both {from:?}: compare two different environments"),
            ));
        }
        if let Some(namespace) = namespace {
            release_manager::names::check_namespace(namespace)?;
        }
        self.with_published(|repo, published, _| {
            let view = View::published(&published.index);
            let root =
                crate::repo::tree::tree_of(repo, published.tip).map_err(git("read the tip"))?;
            let (from, from_folder) = side(repo, &root, view, from, service, namespace)?;
            let (to, to_folder) = side(repo, &root, view, to, service, namespace)?;
            if from_folder.is_none() && to_folder.is_none() && view.builds(service).next().is_none()
            {
                return Err(unknown_service_at(repo, &root, service));
            }
            let (newer, builds, builds_truncated) = builds_between(repo, view, service, &from, &to);
            let source_compare_url = match newer {
                Newer::From => source_compare_url(&to, &from),
                Newer::To => source_compare_url(&from, &to),
                Newer::Same | Newer::Unknown => None,
            };
            let diff = diff_trees(
                repo,
                to_folder.as_ref(),
                from_folder.as_ref(),
                MAX_DIFF_LINES,
            )
            .map_err(git("diff two release folders"))?;
            let mut files = diff.files;
            let replacements = id_replacements(&to, &from);
            let mut lines_beyond_artifact_id = 0;
            for file in files.iter_mut().filter(|f| f.path != DESCRIPTION_FILE) {
                for hunk in &mut file.hunks {
                    lines_beyond_artifact_id += mark_notable(hunk, &replacements);
                }
            }
            Ok(Comparison {
                service: service.to_string(),
                from,
                to,
                newer,
                builds,
                builds_truncated,
                source_compare_url,
                files,
                diff_truncated: diff.truncated,
                lines_beyond_artifact_id,
            })
        })
    }
}

fn check_environment(settings: &Settings, field: &str, environment: &str) -> Result<(), FlowError> {
    let known = settings.environments.iter().any(|e| e == environment);
    if environment.is_empty() || !known {
        let what = if environment.is_empty() {
            "missing".to_string()
        } else {
            format!("unknown environment {environment:?}")
        };
        return Err(FlowError::invalid(
            field,
            format!(
                "invalid {field}: {what}; known environments: {}",
                settings.environments.join(", ")
            ),
        ));
    }
    Ok(())
}

/// What runs of `service` in `environment`, and its release folder: in
/// `namespace` when given, else in the namespace of its latest release,
/// the environment's own, or any (as status looks).
fn side<'r>(
    repo: &'r Repository,
    root: &Tree<'_>,
    view: View<'_>,
    environment: &str,
    service: &str,
    namespace: Option<&str>,
) -> Result<(Side, Option<Tree<'r>>), FlowError> {
    let nothing = |namespace: &str| Side {
        environment: environment.to_string(),
        namespace: namespace.to_string(),
        running: None,
    };
    let Some(releases) =
        tree_at(repo, root, &format!("{environment}/releases")).map_err(git("read a tree"))?
    else {
        return Ok((nothing(namespace.unwrap_or(environment)), None));
    };
    let mut candidates: Vec<String> = Vec::new();
    match namespace {
        Some(namespace) => candidates.push(namespace.to_string()),
        None => {
            if let Some(latest) = view.releases(environment, service).next() {
                candidates.push(latest.namespace.to_string());
            }
            candidates.push(environment.to_string());
            candidates.extend(releases.iter().filter_map(|e| e.name().map(str::to_string)));
        }
    }
    for ns in candidates {
        let Some(folder) =
            tree_at(repo, &releases, &format!("{ns}/{service}")).map_err(git("read a tree"))?
        else {
            continue;
        };
        let Some(bytes) =
            blob_at(repo, &folder, DESCRIPTION_FILE).map_err(git("read artifact.json"))?
        else {
            continue;
        };
        let path = format!("{environment}/releases/{ns}/{service}/{DESCRIPTION_FILE}");
        let running = match crate::repo::read_committed_spec(&bytes, &path) {
            Ok(spec) => Some(running(repo, view, environment, service, &ns, spec)?),
            Err(e) => {
                tracing::warn!(%path, error = %e, "unreadable artifact.json in a release folder");
                None
            }
        };
        let side = Side {
            environment: environment.to_string(),
            namespace: ns,
            running,
        };
        return Ok((side, Some(folder)));
    }
    Ok((nothing(namespace.unwrap_or(environment)), None))
}

fn running(
    repo: &Repository,
    view: View<'_>,
    environment: &str,
    service: &str,
    namespace: &str,
    spec: ArtifactSpec,
) -> Result<Running, FlowError> {
    let build = view.build(service, &spec.id);
    let branch = match (&spec.application.branch, build) {
        (branch, _) if !branch.is_empty() => branch.clone(),
        (_, Some(build)) => build.branch.to_string(),
        _ => String::new(),
    };
    let release = view
        .releases(environment, service)
        .find(|r| *r.namespace == *namespace && *r.artifact_id == *spec.id);
    let released_by = match release {
        Some(record) => Some(
            ReleaseDetails::read(repo, record.commit)
                .map_err(git("read a release commit"))?
                .released_by,
        ),
        None => None,
    };
    Ok(Running {
        branch,
        build_commit: build.map(|b| b.commit),
        release_commit: release.map(|r| r.commit),
        released_at: release.map(|r| r.time).unwrap_or(0),
        released_by,
        spec,
    })
}

/// Which side is newer, and the builds between the two: those of the
/// newer artifact's branch after the older artifact's build (in history
/// order, so across branches too), up to and including the newer one.
fn builds_between(
    repo: &Repository,
    view: View<'_>,
    service: &str,
    from: &Side,
    to: &Side,
) -> (Newer, Vec<Build>, bool) {
    // Newest first.
    let all: Vec<&BuildRecord> = view.builds(service).collect();
    let position = |side: &Side| {
        side.artifact_id()
            .and_then(|id| all.iter().position(|b| *b.artifact_id == *id))
    };
    let (newer, newest, oldest) = match (from.artifact_id(), to.artifact_id()) {
        (Some(a), Some(b)) if a == b => return (Newer::Same, Vec::new(), false),
        _ => match (position(from), position(to), to.running.is_none()) {
            (Some(f), Some(t), _) if f < t => (Newer::From, f, t),
            (Some(f), Some(t), _) if t < f => (Newer::To, t, f),
            (Some(f), None, true) => (Newer::From, f, all.len()),
            (None, Some(t), _) if from.running.is_none() => (Newer::To, t, all.len()),
            _ => return (Newer::Unknown, Vec::new(), false),
        },
    };
    let branch = all[newest].branch.clone();
    let mut between = all[newest..oldest]
        .iter()
        .filter(|b| b.branch == branch)
        .map(|b| Build {
            spec: build_spec(repo, service, b),
            branch: b.branch.to_string(),
            commit: b.commit,
            time: b.time,
        });
    let builds: Vec<Build> = between.by_ref().take(MAX_BUILDS).collect();
    let truncated = between.next().is_some();
    (newer, builds, truncated)
}

/// The artifact.json of a build as its build commit holds it; only its id
/// when it cannot be read (a build of a layout that is gone).
fn build_spec(repo: &Repository, service: &str, build: &BuildRecord) -> ArtifactSpec {
    let path = format!("builds/{service}/{}/{DESCRIPTION_FILE}", build.branch);
    crate::repo::tree::tree_of(repo, build.commit)
        .ok()
        .and_then(|root| blob_at(repo, &root, &path).ok().flatten())
        .and_then(|bytes| crate::repo::read_committed_spec(&bytes, &path).ok())
        .unwrap_or_else(|| ArtifactSpec {
            id: build.artifact_id.to_string(),
            ..Default::default()
        })
}

/// What turns a line of the `old` side into the `new` side's when only
/// the build differs: its artifact id and its source commit.
fn id_replacements(old: &Side, new: &Side) -> Vec<(String, String)> {
    let (Some(old), Some(new)) = (&old.running, &new.running) else {
        return Vec::new();
    };
    let mut pairs = vec![(old.spec.id.clone(), new.spec.id.clone())];
    let (a, b) = (&old.spec.application.sha, &new.spec.application.sha);
    // A short or empty sha would match inside unrelated text.
    if a.len() >= 7 && b.len() >= 7 && a != b {
        pairs.push((a.clone(), b.clone()));
    }
    pairs.retain(|(a, b)| !a.is_empty() && a != b);
    pairs
}

/// Marks the changed lines of `hunk` that differ beyond the artifact id:
/// a removed line is routine when, with the old ids replaced by the new
/// ones, it equals an added line of the same hunk (that added line is then
/// routine too); every other changed line is notable. Returns how many are.
fn mark_notable(hunk: &mut Hunk, replacements: &[(String, String)]) -> usize {
    use std::collections::HashMap;
    let mut added: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, line) in hunk.lines.iter().enumerate() {
        if line.kind == LineKind::Added {
            added.entry(line.text.as_str()).or_default().push(i);
        }
    }
    let mut routine = vec![false; hunk.lines.len()];
    for (i, line) in hunk.lines.iter().enumerate() {
        if line.kind != LineKind::Removed || replacements.is_empty() {
            continue;
        }
        let mut text = line.text.clone();
        for (old, new) in replacements {
            text = text.replace(old.as_str(), new);
        }
        if let Some(j) = added.get_mut(text.as_str()).and_then(Vec::pop) {
            routine[i] = true;
            routine[j] = true;
        }
    }
    let mut notable = 0;
    for (line, routine) in hunk.lines.iter_mut().zip(routine) {
        line.notable = line.kind != LineKind::Context && !routine;
        notable += usize::from(line.notable);
    }
    notable
}

/// The source repository's page comparing the older build's commit with
/// the newer one's, when both builds link their commits in one repository
/// on a known host shape: GitHub (`<repo>/commit/<sha>`), GitLab
/// (`<repo>/-/commit/<sha>`) or Bitbucket (`<repo>/commits/<sha>`).
fn source_compare_url(older: &Side, newer: &Side) -> Option<String> {
    let (older, newer) = (older.running.as_ref()?, newer.running.as_ref()?);
    let (base, shape, old_sha) = commit_link(&older.spec.application.url)?;
    let (new_base, new_shape, new_sha) = commit_link(&newer.spec.application.url)?;
    if base != new_base || shape != new_shape || old_sha == new_sha {
        return None;
    }
    Some(match shape {
        "/commit/" => format!("{base}/compare/{old_sha}...{new_sha}"),
        "/-/commit/" => format!("{base}/-/compare/{old_sha}...{new_sha}"),
        _ => format!("{base}/branches/compare/{new_sha}%0D{old_sha}"),
    })
}

/// A commit link split into its repository, shape and sha.
fn commit_link(url: &str) -> Option<(&str, &'static str, &str)> {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return None;
    }
    let url = url.split(['?', '#']).next()?.trim_end_matches('/');
    // GitLab's shape first: it contains GitHub's.
    for shape in ["/-/commit/", "/commit/", "/commits/"] {
        if let Some((base, sha)) = url.rsplit_once(shape) {
            let hex = sha.len() >= 7 && sha.chars().all(|c| c.is_ascii_hexdigit());
            if hex && !base.ends_with(':') && base.contains("://") {
                return Some((base, shape, sha));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::diff::Line;

    fn line(kind: LineKind, text: &str) -> Line {
        Line {
            kind,
            text: text.into(),
            old_line: 0,
            new_line: 0,
            notable: false,
        }
    }

    #[test]
    fn only_what_differs_beyond_the_artifact_id_is_notable() {
        let mut hunk = Hunk {
            header: "@@".into(),
            lines: vec![
                line(LineKind::Context, "kind: Deployment"),
                line(LineKind::Removed, "image: shop:master-1-aaaaaaa"),
                line(LineKind::Removed, "replicas: 3"),
                line(LineKind::Removed, "sha: 1111111111"),
                line(LineKind::Added, "image: shop:master-2-bbbbbbb"),
                line(LineKind::Added, "replicas: 1"),
                line(LineKind::Added, "sha: 2222222222"),
            ],
        };
        let replacements = vec![
            (
                "master-1-aaaaaaa".to_string(),
                "master-2-bbbbbbb".to_string(),
            ),
            ("1111111111".to_string(), "2222222222".to_string()),
        ];
        assert_eq!(mark_notable(&mut hunk, &replacements), 2);
        let notable: Vec<&str> = hunk
            .lines
            .iter()
            .filter(|l| l.notable)
            .map(|l| l.text.as_str())
            .collect();
        assert_eq!(notable, ["replicas: 3", "replicas: 1"]);
        // Without ids to replace (nothing ran on one side), every change is.
        assert_eq!(mark_notable(&mut hunk, &[]), 6);
    }

    fn side_with(url: &str) -> Side {
        let mut spec = ArtifactSpec::default();
        spec.application.url = url.into();
        Side {
            environment: "e".into(),
            namespace: "e".into(),
            running: Some(Running {
                spec,
                branch: "master".into(),
                build_commit: None,
                release_commit: None,
                released_at: 0,
                released_by: None,
            }),
        }
    }

    #[test]
    fn compare_links_for_the_hosts_shapes() {
        let link = |a: &str, b: &str| source_compare_url(&side_with(a), &side_with(b));
        assert_eq!(
            link(
                "https://github.com/acme/shop/commit/1111111",
                "https://github.com/acme/shop/commit/2222222"
            )
            .as_deref(),
            Some("https://github.com/acme/shop/compare/1111111...2222222")
        );
        assert_eq!(
            link(
                "https://gitlab.com/acme/shop/-/commit/1111111",
                "https://gitlab.com/acme/shop/-/commit/2222222"
            )
            .as_deref(),
            Some("https://gitlab.com/acme/shop/-/compare/1111111...2222222")
        );
        assert_eq!(
            link(
                "https://bitbucket.org/acme/shop/commits/1111111",
                "https://bitbucket.org/acme/shop/commits/2222222"
            )
            .as_deref(),
            Some("https://bitbucket.org/acme/shop/branches/compare/2222222%0D1111111")
        );
        // Two repositories, no commit links, or not web links: none.
        assert_eq!(
            link(
                "https://github.com/acme/shop/commit/1111111",
                "https://github.com/acme/cart/commit/2222222"
            ),
            None
        );
        assert_eq!(
            link(
                "https://git.example.com/shop",
                "https://git.example.com/shop"
            ),
            None
        );
        assert_eq!(
            link("javascript:/commit/1111111", "javascript:/commit/2222222"),
            None
        );
    }
}
