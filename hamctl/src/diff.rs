//! `hamctl diff`: what separates two environments of a service, as the
//! server's `CompareEnvironments` answers it (the dashboard's comparison
//! page shows the same answer): the two artifacts, the builds between
//! them, and the manifest diff of their release folders.
//!
//! It owns the command's flags, its text and its JSON. It must not compute
//! anything of the comparison itself.

use clap::Args;
use release_manager::pb::{
    CompareEnvironmentsRequest, CompareEnvironmentsResponse, DiffLineKind, EnvironmentStatus,
    FileChange, ManifestFileDiff, NewerEnvironment,
};

use crate::error::CliError;
use crate::global::GlobalArgs;
use crate::output::{OutputFormat, Printer, Table};
use crate::{client, present};

/// Show what separates two environments of a service
///
/// The artifact each runs, the builds between the two (source commit,
/// author, message, scan counts, CI job) and how their release folders
/// differ, as git diffs them: `-` lines are the --to environment's, `+`
/// lines the --from environment's, and the lines that differ beyond the
/// artifact id are listed first.
#[derive(Debug, Clone, Args)]
pub(crate) struct DiffArgs {
    /// Filled in from the global `--service` (or shuttle.yaml) by
    /// `Cli::parse_checked`.
    #[arg(skip)]
    pub(crate) service: String,

    /// The environment whose artifact would be promoted, e.g. staging.
    #[arg(long)]
    pub(crate) from: String,

    /// The environment it would go to, e.g. prod.
    #[arg(long)]
    pub(crate) to: String,

    /// Namespace to compare in both environments [default: each
    /// environment's own namespace, else wherever the service is released].
    #[arg(long)]
    pub(crate) namespace: Option<String>,
}

pub(crate) async fn run(
    args: DiffArgs,
    global: &GlobalArgs,
    printer: &mut Printer<'_>,
) -> Result<(), CliError> {
    let request = CompareEnvironmentsRequest {
        service: args.service,
        from_environment: args.from,
        to_environment: args.to,
        namespace: args.namespace.unwrap_or_default(),
    };
    let mut client = client::release_client(global).await?;
    let response = client.compare_environments(request).await?.into_inner();
    match printer.format() {
        OutputFormat::Json => printer.json(&present::api_json(&response))?,
        OutputFormat::Table => {
            for block in diff_text(&response) {
                match block {
                    Block::Line(text) => printer.line(&text)?,
                    Block::Table(table) => printer.table(&table)?,
                }
            }
        }
    }
    Ok(())
}

/// What the text output is made of.
#[derive(Debug)]
enum Block {
    Line(String),
    Table(Table),
}

fn side(status: &Option<EnvironmentStatus>) -> (&str, Option<&EnvironmentStatus>) {
    let environment = status.as_ref().map_or("", |s| s.environment.as_str());
    (environment, status.as_ref())
}

/// One sentence on which side is ahead.
fn verdict(response: &CompareEnvironmentsResponse) -> String {
    let (from, from_status) = side(&response.from_environment);
    let (to, to_status) = side(&response.to_environment);
    let id = |s: Option<&EnvironmentStatus>| {
        s.and_then(|s| s.artifact.as_ref())
            .map(|a| a.artifact_id.clone())
    };
    let more = if response.builds_truncated {
        " or more"
    } else {
        ""
    };
    let builds = match response.builds.len() {
        1 => format!("1 build{more}"),
        n => format!("{n} builds{more}"),
    };
    let branch = response
        .builds
        .first()
        .map(|b| b.branch.as_str())
        .unwrap_or("");
    match (
        NewerEnvironment::try_from(response.newer).unwrap_or(NewerEnvironment::Unspecified),
        id(from_status),
        id(to_status),
    ) {
        (NewerEnvironment::Same, Some(id), _) => {
            format!("{from} and {to} run the same artifact, {id}.")
        }
        (_, None, None) => format!("Nothing runs in {from} or {to}."),
        (NewerEnvironment::From, Some(_), None) => {
            format!("Nothing runs in {to} yet; {from} runs the latest of {builds} of {branch}.")
        }
        (NewerEnvironment::From, _, _) => format!("{from} is {builds} of {branch} ahead of {to}."),
        (NewerEnvironment::To, _, Some(_)) if id(from_status).is_some() => {
            format!("{to} runs a newer build than {from}: {builds} of {branch} ahead.")
        }
        (_, None, Some(_)) => format!("Nothing runs in {from}."),
        (_, Some(_), None) => format!("Nothing runs in {to}."),
        _ => "One of the two builds is not in the repository's history: the builds between them are unknown.".to_string(),
    }
}

fn line_sign(kind: i32) -> char {
    match DiffLineKind::try_from(kind).unwrap_or(DiffLineKind::Unspecified) {
        DiffLineKind::Added => '+',
        DiffLineKind::Removed => '-',
        _ => ' ',
    }
}

/// A manifest's text as one printable line: control characters (but tabs)
/// become spaces, so a file cannot drive the terminal.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() && c != '\t' { ' ' } else { c })
        .collect()
}

/// A file's diff as git prints it, the `to` folder as `a/`, the `from`
/// folder as `b/`.
fn file_lines(file: &ManifestFileDiff, from: &str, to: &str, out: &mut Vec<Block>) {
    let change = FileChange::try_from(file.change).unwrap_or(FileChange::Unspecified);
    let old = match change {
        FileChange::Added => "/dev/null".to_string(),
        _ => format!("{to}/{}", printable(&file.old_path)),
    };
    let new = match change {
        FileChange::Deleted => "/dev/null".to_string(),
        _ => format!("{from}/{}", printable(&file.path)),
    };
    out.push(Block::Line(format!("--- {old}")));
    out.push(Block::Line(format!("+++ {new}")));
    if file.binary {
        out.push(Block::Line("Binary files differ".to_string()));
    }
    for hunk in &file.hunks {
        out.push(Block::Line(printable(&hunk.header)));
        for line in &hunk.lines {
            out.push(Block::Line(format!(
                "{}{}",
                line_sign(line.kind),
                printable(&line.text)
            )));
        }
    }
}

fn diff_text(response: &CompareEnvironmentsResponse) -> Vec<Block> {
    let (from, from_status) = side(&response.from_environment);
    let (to, to_status) = side(&response.to_environment);
    let mut out = vec![Block::Line(verdict(response)), Block::Line(String::new())];

    let mut sides = Table::new(&["", "ENV", "ARTIFACT", "BRANCH", "RELEASED", "BY"]);
    for (role, status) in [("from", from_status), ("to", to_status)] {
        let mut row = vec![
            role.to_string(),
            status.map(|s| s.environment.clone()).unwrap_or_default(),
        ];
        if let Some(status) = status {
            if let Some(artifact) = &status.artifact {
                row.extend([
                    artifact.artifact_id.clone(),
                    artifact.branch.clone(),
                    present::time_cell(status.released_at.as_ref()),
                    present::person_cell(status.released_by.as_ref()),
                ]);
            }
        }
        sides.push(row);
    }
    out.push(Block::Table(sides));

    out.push(Block::Line(String::new()));
    out.push(Block::Line(format!(
        "Builds between: {}{}",
        response.builds.len(),
        if response.builds_truncated { "+" } else { "" }
    )));
    if !response.builds.is_empty() {
        let mut builds = Table::new(&[
            "ARTIFACT",
            "SOURCE",
            "AUTHOR",
            "MESSAGE",
            "VULNS(h/m/l)",
            "CI",
        ]);
        for build in &response.builds {
            builds.push(vec![
                build.artifact_id.clone(),
                present::short_sha(&build.source_sha).to_string(),
                present::person_cell(build.author.as_ref()),
                present::message_cell(&build.message, 50),
                present::vulnerabilities_cell(build.vulnerabilities.as_ref()),
                build.build_url.clone(),
            ]);
        }
        out.push(Block::Table(builds));
    }
    if !response.source_compare_url.is_empty() {
        out.push(Block::Line(format!(
            "Source changes: {}",
            response.source_compare_url
        )));
    }

    out.push(Block::Line(String::new()));
    let files = &response.manifest_diff;
    if files.is_empty() {
        out.push(Block::Line(format!(
            "Manifests: the release folders of {from} and {to} are the same."
        )));
        return out;
    }
    out.push(Block::Line(format!(
        "Manifests: {} changed lines differ beyond the artifact id (- {to}, + {from}){}",
        response.lines_beyond_artifact_id,
        if response.lines_beyond_artifact_id > 0 {
            ":"
        } else {
            "."
        }
    )));
    for file in files {
        for line in file.hunks.iter().flat_map(|h| &h.lines) {
            if line.beyond_artifact_id {
                let number = line.new_line.max(line.old_line);
                out.push(Block::Line(format!(
                    "  {}:{number}: {}{}",
                    printable(&file.path),
                    line_sign(line.kind),
                    printable(&line.text)
                )));
            }
        }
    }
    if response.manifest_diff_truncated {
        out.push(Block::Line(
            "(the diff is longer than the server sends: lines are left out)".to_string(),
        ));
    }
    out.push(Block::Line(String::new()));
    for file in files {
        file_lines(file, from, to, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use release_manager::pb::{ArtifactSummary, DiffHunk, DiffLine};

    use super::*;

    fn status(environment: &str, artifact: &str) -> Option<EnvironmentStatus> {
        Some(EnvironmentStatus {
            environment: environment.into(),
            namespace: environment.into(),
            artifact: Some(ArtifactSummary {
                artifact_id: artifact.into(),
                branch: "master".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn line(kind: DiffLineKind, text: &str, old: u32, new: u32, beyond: bool) -> DiffLine {
        DiffLine {
            kind: kind as i32,
            text: text.into(),
            old_line: old,
            new_line: new,
            beyond_artifact_id: beyond,
        }
    }

    fn response() -> CompareEnvironmentsResponse {
        CompareEnvironmentsResponse {
            service: "shop".into(),
            from_environment: status("staging", "master-3"),
            to_environment: status("prod", "master-1"),
            newer: NewerEnvironment::From as i32,
            builds: vec![
                ArtifactSummary {
                    artifact_id: "master-3".into(),
                    branch: "master".into(),
                    source_sha: "3333333333".into(),
                    message: "faster search\n\nbody".into(),
                    ..Default::default()
                },
                ArtifactSummary {
                    artifact_id: "master-2".into(),
                    branch: "master".into(),
                    ..Default::default()
                },
            ],
            source_compare_url: "https://github.com/acme/shop/compare/1...3".into(),
            manifest_diff: vec![ManifestFileDiff {
                path: "deployment.yaml".into(),
                old_path: "deployment.yaml".into(),
                change: FileChange::Modified as i32,
                hunks: vec![DiffHunk {
                    header: "@@ -1,2 +1,2 @@".into(),
                    lines: vec![
                        line(DiffLineKind::Removed, "replicas: 3\u{1b}[2J", 1, 0, true),
                        line(DiffLineKind::Added, "replicas: 1", 0, 1, true),
                        line(DiffLineKind::Context, "image: shop", 2, 2, false),
                    ],
                }],
                ..Default::default()
            }],
            lines_beyond_artifact_id: 2,
            ..Default::default()
        }
    }

    fn text(response: &CompareEnvironmentsResponse) -> String {
        diff_text(response)
            .into_iter()
            .map(|block| match block {
                Block::Line(line) => line + "\n",
                Block::Table(table) => table.render(false),
            })
            .collect()
    }

    #[test]
    fn text_says_who_is_ahead_lists_builds_and_prints_a_git_diff() {
        let text = text(&response());
        assert!(
            text.starts_with("staging is 2 builds of master ahead of prod.\n"),
            "{text}"
        );
        assert!(text.contains("faster search"), "{text}");
        assert!(
            !text.contains("body"),
            "only a message's first line: {text}"
        );
        assert!(
            text.contains("Source changes: https://github.com/acme/shop/compare/1...3"),
            "{text}"
        );
        assert!(
            text.contains("  deployment.yaml:1: +replicas: 1\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "--- prod/deployment.yaml\n+++ staging/deployment.yaml\n@@ -1,2 +1,2 @@\n-replicas: 3 [2J\n+replicas: 1\n image: shop\n"
            ),
            "{text}"
        );
        assert!(!text.contains('\u{1b}'), "no escape reaches the terminal");
    }

    #[test]
    fn json_names_every_part() {
        let value = present::api_json(&response());
        assert_eq!(value["newer"], "NEWER_ENVIRONMENT_FROM");
        assert_eq!(
            value["fromEnvironment"]["artifact"]["artifactId"],
            "master-3"
        );
        assert_eq!(value["builds"][1]["artifactId"], "master-2");
        assert_eq!(
            value["manifestDiff"][0]["hunks"][0]["lines"][1]["kind"],
            "DIFF_LINE_KIND_ADDED"
        );
        assert_eq!(
            value["manifestDiff"][0]["hunks"][0]["lines"][1]["beyondArtifactId"],
            true
        );
        assert_eq!(value["linesBeyondArtifactId"], 2);
    }

    #[test]
    fn the_same_artifact_says_so() {
        let mut same = response();
        same.newer = NewerEnvironment::Same as i32;
        same.to_environment = status("prod", "master-3");
        same.builds.clear();
        same.manifest_diff.clear();
        let text = text(&same);
        assert!(
            text.starts_with("staging and prod run the same artifact, master-3."),
            "{text}"
        );
        assert!(text.contains("are the same"), "{text}");
    }
}
