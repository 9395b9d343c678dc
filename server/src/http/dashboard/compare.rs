//! The comparison page, `/service/<name>/compare?from=<env>&to=<env>`
//! (optionally `&namespace=<ns>`): what runs in the two environments, the
//! builds between them and the manifest diff of their release folders,
//! highlighting what differs beyond the artifact id. The answer is the
//! read side's comparison (`engine::compare`), the one `hamctl diff` and
//! the `CompareEnvironments` RPC give; this module only renders it, and
//! the fragment the page script swaps in when the service changes.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup};

use super::pages::{self, compare_form, is_web_link, links};
use super::values::{self, Context};
use super::{admitted, failed, fresh, DashboardState};
use crate::domain::deployment::State as Deployed;
use crate::engine::compare::{Comparison, Newer, Side, DESCRIPTION_FILE};
use crate::repo::diff::{Change, FileDiff, LineKind};

/// A comparison with what the cluster reported of each side (`None` when
/// its controller reports nothing).
struct Shown {
    comparison: Comparison,
    from_state: Option<&'static str>,
    to_state: Option<&'static str>,
}

/// The whole page.
pub(crate) async fn page(
    State(state): State<DashboardState>,
    Path(service): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    view(&state, service, &query, &headers, Some(&uri)).await
}

/// Its sections, for the page script.
pub(crate) async fn fragment(
    State(state): State<DashboardState>,
    Path(service): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    view(&state, service, &query, &headers, None).await
}

async fn view(
    state: &DashboardState,
    service: String,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    page: Option<&Uri>,
) -> Response {
    let whole = page.is_some();
    if let Err(refused) = admitted(state, headers, page).await {
        return refused;
    }
    let environments = state.reader.settings().environments.clone();
    // By default the last environment, compared with the one before it.
    let to = query
        .get("to")
        .cloned()
        .or_else(|| environments.last().cloned())
        .unwrap_or_default();
    let from = query.get("from").cloned().unwrap_or_else(|| {
        let at = environments.iter().position(|e| *e == to).unwrap_or(0);
        environments
            .get(at.saturating_sub(1))
            .cloned()
            .unwrap_or_default()
    });
    let namespace = query.get("namespace").filter(|n| !n.is_empty()).cloned();
    let reader = state.reader.clone();
    let asked = (service.clone(), from.clone(), to.clone());
    let read = tokio::task::spawn_blocking(move || {
        reader.compare(&asked.0, &asked.1, &asked.2, namespace.as_deref())
    })
    .await;
    let comparison = match read {
        Ok(Ok(comparison)) => comparison,
        Ok(Err(e)) => {
            let status = crate::http::status_of(&e);
            if !matches!(status, StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND) {
                return failed(e);
            }
            let body = html! { p.error role="alert" { (e.to_string()) } };
            let html = if whole {
                pages::page("comparison", "none", body).into_string()
            } else {
                body.into_string()
            };
            return (status, Html(html)).into_response();
        }
        Err(e) => return failed(e),
    };
    let state_of = |side: &Side| {
        let running = side.running.as_ref()?;
        if !state.deployments.reporting(&side.environment) {
            return None;
        }
        let commit = running.release_commit.map(|c| c.to_string());
        let reported = state.deployments.of(
            &side.environment,
            &comparison.service,
            commit.as_deref().unwrap_or(""),
        );
        Some(match reported.map(|d| d.state) {
            Some(Deployed::Succeeded) => "deployed",
            Some(Deployed::Failed) => "failed",
            Some(Deployed::Progressing) => "progressing",
            None => "pending",
        })
    };
    let shown = Shown {
        from_state: state_of(&comparison.from),
        to_state: state_of(&comparison.to),
        comparison,
    };
    let cx = state.context();
    if !whole {
        return fresh(sections(&shown, &cx).into_string());
    }
    let body = html! {
        h1 {
            a href={ "/service/" (service) } { (service) } ": "
            (from) " → " (to)
        }
        (compare_form(&service, &environments, Some((&from, &to))))
        div #sections data-service=(service) data-from=(from) data-to=(to)
            data-namespace=(query.get("namespace").map(String::as_str).unwrap_or("")) {
            (sections(&shown, &cx))
        }
    };
    fresh(pages::page(&format!("{service}: {from} → {to}"), "compare", body).into_string())
}

/// What the comparison says in one sentence.
fn verdict(c: &Comparison) -> String {
    let (from, to) = (&c.from.environment, &c.to.environment);
    let count = |n: usize| {
        let more = if c.builds_truncated { " or more" } else { "" };
        match n {
            1 => format!("1 build{more}"),
            n => format!("{n} builds{more}"),
        }
    };
    let branch = c.builds.first().map(|b| b.branch.as_str()).unwrap_or("");
    match (c.newer, c.from.artifact_id(), c.to.artifact_id()) {
        (Newer::Same, Some(id), _) => format!("{from} and {to} run the same artifact, {id}."),
        (_, None, None) => format!("Nothing runs in {from} or {to}."),
        (Newer::From, Some(_), None) => format!(
            "Nothing runs in {to} yet; {from} runs the latest of {} of {branch}.",
            count(c.builds.len())
        ),
        (Newer::From, _, _) => format!(
            "{from} is {} of {branch} ahead of {to}.",
            count(c.builds.len())
        ),
        (Newer::To, None, Some(_)) => format!("Nothing runs in {from}."),
        (Newer::To, _, _) => format!(
            "{to} runs a newer build than {from}: {} of {branch} ahead.",
            count(c.builds.len())
        ),
        (_, None, Some(_)) => format!("Nothing runs in {from}."),
        (_, Some(_), None) => format!("Nothing runs in {to}."),
        _ => "One of the two builds is not in the repository's history: the builds between them are unknown.".to_string(),
    }
}

fn sections(shown: &Shown, cx: &Context<'_>) -> Markup {
    let c = &shown.comparison;
    html! {
        section #sides {
            h2 { "What runs" }
            p.verdict { (verdict(c)) }
            div.sides {
                (side(&c.service, "from", &c.from, shown.from_state, cx))
                (side(&c.service, "to", &c.to, shown.to_state, cx))
            }
        }
        section #between {
            h2 { "Builds between (" (c.builds.len()) @if c.builds_truncated { "+" } ")" }
            @if let Some(url) = c.source_compare_url.as_deref().filter(|u| is_web_link(u)) {
                p { a.source-compare href=(url) rel="noopener noreferrer" { "Compare the source commits in their repository" } }
            }
            @if c.builds.is_empty() { p.none { "None." } }
            @else {
                table.between {
                    thead { tr { th scope="col" { "artifact" } th scope="col" { "source commit" } th scope="col" { "author" } th scope="col" { "message" } th scope="col" { "scans" } th scope="col" { "built" } th scope="col" { "links" } } }
                    tbody {
                        @for build in &c.builds {
                            @let app = &build.spec.application;
                            tr data-artifact=(build.spec.id) {
                                td data-label="artifact" { (values::artifact_id(&build.spec.id)) }
                                td data-label="source commit" { code title=(app.sha) { (app.sha.get(..10).unwrap_or(&app.sha)) } }
                                td data-label="author" { (app.author_name) }
                                td.message data-label="message" { (app.message.lines().next().unwrap_or("")) }
                                td data-label="scans" {
                                    @match build.spec.vulnerabilities() {
                                        Some(v) => span class=(if v.high > 0 { "vuln high" } else { "vuln" }) { (v.high) "H " (v.medium) "M " (v.low) "L" },
                                        None => span.none { "no scan" },
                                    }
                                }
                                td data-label="built" { (values::when(build.time, cx.now)) }
                                td.links data-label="links" { (links(&build.spec.ci.job_url, &app.url)) }
                            }
                        }
                    }
                }
            }
        }
        section #manifests {
            h2 { "Manifest changes" }
            p.summary {
                @if c.files.is_empty() { "The two release folders are the same." }
                @else if c.lines_beyond_artifact_id == 0 { "Only the artifact id (and the build's description) differ." }
                @else { (c.lines_beyond_artifact_id) " changed lines differ beyond the artifact id: they are marked." }
                " Removed lines are " (c.to.environment) "'s, added lines " (c.from.environment) "'s."
            }
            @if c.diff_truncated { p.error { "The diff is longer than the page shows: lines are left out." } }
            @for file in &c.files { (file_diff(file)) }
        }
    }
}

fn side(
    service: &str,
    role: &str,
    side: &Side,
    state: Option<&'static str>,
    cx: &Context<'_>,
) -> Markup {
    html! {
        div.side data-environment=(side.environment) {
            h3 { span.role { (role) } " " (side.environment) }
            @match &side.running {
                None => p.none { "Nothing runs here." },
                Some(running) => {
                    @let app = &running.spec.application;
                    p.artifact { (values::artifact_id(&running.spec.id)) }
                    dl {
                        dt { "branch" } dd { (running.branch) }
                        dt { "released" } dd {
                            @if let Some(by) = &running.released_by { (by.name) " " }
                            (values::release_when(running.released_at, &running.release_commit.map(|c| c.to_string()).unwrap_or_default(), cx))
                        }
                        @if let Some(word) = state {
                            dt { "in the cluster" } dd { span class={ "deploy " (word) } { (word) } }
                        }
                        dt { "source" } dd { (app.author_name) ": " (app.message.lines().next().unwrap_or("")) }
                        dt { "links" } dd {
                            (links(&running.spec.ci.job_url, &app.url))
                            @if let Some(commit) = running.release_commit { " " (values::commit(&commit.to_string(), cx)) }
                            " " a href={ "/service/" (service) } { "service page" }
                        }
                    }
                }
            }
        }
    }
}

fn file_diff(file: &FileDiff) -> Markup {
    let change = match file.change {
        Change::Added => "added",
        Change::Deleted => "removed",
        Change::Modified => "changed",
        Change::Renamed => "renamed",
    };
    let beyond = file
        .hunks
        .iter()
        .flat_map(|h| &h.lines)
        .filter(|l| l.notable)
        .count();
    let description = file.path == DESCRIPTION_FILE;
    html! {
        details.file open[!description] data-path=(file.path) {
            summary {
                span class={ "change " (change) } { (change) } " "
                code.path {
                    @if file.change == Change::Renamed { (file.old_path) " → " }
                    (file.path)
                }
                @if description { span.note { " the build's description" } }
                @if beyond > 0 { " " span.beyond-count { (beyond) " beyond the artifact id" } }
            }
            @if file.binary { p.none { "A binary file." } }
            div.diff {
                @for hunk in &file.hunks {
                    div.hunk { (hunk.header) }
                    @for line in &hunk.lines {
                        @let (class, sign) = match line.kind {
                            LineKind::Added => ("line add", "+"),
                            LineKind::Removed => ("line del", "-"),
                            LineKind::Context => ("line ctx", " "),
                        };
                        div class={ (class) @if line.notable { " beyond" } } {
                            span.ln aria-hidden="true" { @if line.old_line > 0 { (line.old_line) } }
                            span.ln aria-hidden="true" { @if line.new_line > 0 { (line.new_line) } }
                            span.sign { (sign) }
                            code.text { (line.text) }
                            @if line.notable {
                                span.beyond-mark role="img" aria-label="differs beyond the artifact id" title="differs beyond the artifact id" { "!" }
                            }
                        }
                    }
                }
            }
        }
    }
}
