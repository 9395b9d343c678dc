//! The dashboard's HTML, rendered on the server with `maud`: the matrix, a
//! service's page, the login form, and the fragments the page script swaps
//! in when an event says something changed (a row, a service's sections).
//! Every cell has a fixed size, so an update never moves the page. It owns
//! markup only; what is shown comes from `model`.

use maud::{html, Markup, DOCTYPE};

use super::glance::{self, EnvironmentGlance, Filter};
use super::model::{Cell, Matrix, Row, ServicePage};
use super::values::{self, Context};

/// "3 h ago" for a time `seconds` since the epoch, seen at `now`.
pub(crate) fn age(seconds: i64, now: i64) -> String {
    if seconds == 0 {
        return String::new();
    }
    let elapsed = (now - seconds).max(0);
    match elapsed {
        0..=59 => "just now".to_string(),
        60..=3599 => format!("{} min ago", elapsed / 60),
        3600..=86_399 => format!("{} h ago", elapsed / 3600),
        _ => format!("{} d ago", elapsed / 86_400),
    }
}

pub(crate) fn page(title: &str, live: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · release manager" }
                link rel="stylesheet" href="/static/dashboard.css";
                script src="/static/dashboard.js" defer {}
                script src="/static/signin.js" defer {}
            }
            body data-live=(live) {
                header {
                    a.home href="/" { "release manager" }
                    span #connection role="status" aria-live="polite" data-state="connecting" { "connecting…" }
                }
                main { (body) }
            }
        }
    }
}

/// One environment of one service: what runs (the whole id, shortened by
/// the stylesheet in a narrow cell, and a button that copies it), what the
/// cluster said, the marks (promotable, another branch) with their labels;
/// its branch and findings; who released it and when. On a phone the cell
/// is a line of the service's card, named by its environment.
fn cell(cell: &Cell, at: Column<'_>, service: &str, cx: &Context<'_>) -> Markup {
    let mut classes = vec!["cell"];
    if cell.artifact_id.is_empty() {
        classes.push("empty");
    }
    if cell.promotable {
        classes.push("promotable");
    }
    if cell.off_default_branch {
        classes.push("branch");
    }
    let state = cell.deployment.as_ref().map(|(word, _)| *word);
    html! {
        td class=(classes.join(" ")) data-artifact=(cell.artifact_id) data-state=[state] data-environment=(at.environment) {
            span.env { (at.environment) }
            @if cell.artifact_id.is_empty() {
                span.line.first {
                    span.none { "–" span.none-text { " not released" } }
                    // Nothing runs here yet, something does before: promotable.
                    @if let (true, Some(before)) = (cell.promotable, at.before) {
                        (values::promotable_mark(service, before, at.environment))
                    }
                }
            } @else {
                span.line.first {
                    (values::artifact_id(&cell.artifact_id))
                    @if let Some((word, message)) = &cell.deployment {
                        span class={ "deploy " (word) } title=(message) { (word) }
                    }
                    @if let (true, Some(before)) = (cell.promotable, at.before) {
                        (values::promotable_mark(service, before, at.environment))
                    }
                }
                span.line {
                    @if cell.off_default_branch { (values::branch_mark(at.default_branch)) }
                    span { (cell.branch) }
                    @if let Some((high, medium, low)) = cell.vulnerabilities {
                        span class=(if high > 0 { "vuln high" } else { "vuln" }) {
                            "vulns " (high) "H " (medium) "M " (low) "L"
                        }
                    }
                }
                span.line {
                    span { (cell.released_by) }
                    (values::release_when(cell.released_at, &cell.release_commit, cx))
                }
            }
        }
    }
}

/// Where a cell is: its environment, the one before it, the default
/// branch.
#[derive(Clone, Copy)]
struct Column<'a> {
    environment: &'a str,
    before: Option<&'a str>,
    default_branch: &'a str,
}

fn columns<'a>(
    environments: &'a [String],
    default_branch: &'a str,
) -> impl Iterator<Item = Column<'a>> {
    environments
        .iter()
        .enumerate()
        .map(move |(i, environment)| Column {
            environment,
            before: i.checked_sub(1).map(|b| environments[b].as_str()),
            default_branch,
        })
}

/// One row of the matrix (also the fragment swapped in on a change);
/// `hidden` when the filter leaves it out.
pub(crate) fn row(matrix: &Matrix, row: &Row, hidden: bool, cx: &Context<'_>) -> Markup {
    html! {
        tr id={ "row-" (row.service) } data-service=(row.service) hidden[hidden] {
            th scope="row" { a href={ "/service/" (row.service) } { (row.service) } }
            @for (c, at) in row.cells.iter().zip(columns(&matrix.environments, &matrix.default_branch)) {
                (cell(c, at, &row.service, cx))
            }
        }
    }
}

/// The rows of the matrix, those the filter leaves out hidden.
pub(crate) fn rows(matrix: &Matrix, filter: &Filter, cx: &Context<'_>) -> Markup {
    html! {
        @for r in &matrix.rows {
            (row(matrix, r, !filter.matches(r, &matrix.environments), cx))
        }
    }
}

/// The matrix page.
pub(crate) fn matrix(
    matrix: &Matrix,
    glance: &[EnvironmentGlance],
    filter: &Filter,
    cx: &Context<'_>,
) -> Markup {
    let body = html! {
        (glance::controls(filter, &matrix.environments))
        p.legend {
            span.key { "Each cell: artifact (a click copies it) and what the cluster reports; branch, vulnerabilities (high, medium, low); released by, when." }
            span.key { span.swatch.promotable {} span.mark.promotable aria-hidden="true" {} " differs from the environment before: promotable (opens the comparison)" }
            span.key { span.swatch.branch {} span.mark.branch aria-hidden="true" {} " not the default branch (" (matrix.default_branch) ")" }
        }
        table #matrix {
            thead {
                tr {
                    th scope="col" { "service" }
                    @for environment in glance { (glance::header(environment)) }
                }
            }
            tbody #rows { (rows(matrix, filter, cx)) }
        }
        @if matrix.rows.is_empty() {
            p.none { "No services yet: push a build." }
        }
    };
    page("what runs where", "matrix", body)
}

/// The sections of a service's page (also the fragment swapped in). On a
/// phone every table becomes a list, each value named by its column.
pub(crate) fn service_sections(
    page: &ServicePage,
    history_page: usize,
    cx: &Context<'_>,
) -> Markup {
    let service = &page.service;
    html! {
        section #state {
            h2 { "What runs where" }
            table.states {
                thead { tr { th scope="col" { "environment" } th scope="col" { "artifact" } th scope="col" { "branch" } th scope="col" { "released" } th scope="col" { "in the cluster" } th scope="col" { "links" } } }
                tbody {
                    @for (c, at) in page.row.cells.iter().zip(columns(&page.environments, &page.default_branch)) {
                        tr data-environment=(at.environment) {
                            th scope="row" { (at.environment) }
                            td.artifact data-label="artifact" {
                                @if c.artifact_id.is_empty() { "–" } @else {
                                    (values::artifact_id(&c.artifact_id))
                                    @if let (true, Some(before)) = (c.promotable, at.before) {
                                        " " (values::promotable_mark(service, before, at.environment))
                                    }
                                }
                            }
                            td data-label="branch" {
                                @if c.off_default_branch { (values::branch_mark(at.default_branch)) " " }
                                (c.branch)
                            }
                            td data-label="released" {
                                (c.released_by) " " (values::release_when(c.released_at, &c.release_commit, cx))
                            }
                            td data-label="in the cluster" {
                                @match &c.deployment {
                                    Some((word, message)) => {
                                        span class={ "deploy " (word) } { (word) }
                                        @if !message.is_empty() { " " span.message { (message) } }
                                    }
                                    None => span.none { "not reported" },
                                }
                            }
                            td.links data-label="links" {
                                (links(&c.build_url, &c.source_url))
                                @if !c.release_commit.is_empty() { " " (values::commit(&c.release_commit, cx)) }
                                @if let Some(before) = at.before {
                                    " " a.compare href={ "/service/" (service) "/compare?from=" (before) "&to=" (at.environment) } {
                                        "compare with " (before)
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (compare_form(service, &page.environments, None))
        }
        section #history {
            h2 { "Releases" }
            @if page.history.is_empty() { p.none { "Never released." } }
            @else {
                table.history {
                    thead { tr { th scope="col" { "when" } th scope="col" { "environment" } th scope="col" { "artifact" } th scope="col" { "why" } th scope="col" { "by" } th scope="col" { "commit" } } }
                    tbody {
                        @for entry in &page.history {
                            tr {
                                td data-label="when" { (values::when(entry.released_at, cx.now)) }
                                td data-label="environment" { (entry.environment) }
                                td data-label="artifact" { (values::artifact_id(&entry.artifact_id)) }
                                td data-label="why" { (entry.intent) }
                                td data-label="by" { (entry.released_by) }
                                td data-label="commit" { (values::commit(&entry.commit, cx)) }
                            }
                        }
                    }
                }
                nav.pages {
                    @if history_page > 0 { a href={ "?page=" (history_page - 1) } { "← newer" } }
                    @if page.more_history { a href={ "?page=" (history_page + 1) } { "older →" } }
                }
            }
        }
        section #builds {
            h2 { "Recent builds" }
            @if page.builds.is_empty() { p.none { "No builds." } }
            @for (branch, builds) in &page.builds {
                h3 { (branch) }
                table.builds {
                    tbody {
                        @for build in builds {
                            tr {
                                td data-label="artifact" { (values::artifact_id(&build.artifact_id)) }
                                td data-label="built" { (values::when(build.time, cx.now)) }
                                td data-label="author" { (build.author) }
                                td.stages data-label="stages" { @for (name, said) in &build.stages { span.stage { b { (name) } " " (said) } " " } }
                                td.links data-label="links" { (links(&build.build_url, &build.source_url)) }
                            }
                        }
                    }
                }
            }
        }
        section #policies {
            h2 { "Policies" }
            @if page.auto_releases.is_empty() && page.restrictions.is_empty() { p.none { "None." } }
            ul {
                @for (branch, environment) in &page.auto_releases { li { "auto-release " b { (branch) } " to " b { (environment) } } }
                @for (environment, regex, global) in &page.restrictions {
                    li { "only branches matching " code { (regex) } " to " b { (environment) } @if *global { " (server-wide)" } }
                }
            }
        }
    }
}

/// A form that opens the comparison of two environments of `service`
/// (`chosen`: the pair shown now, if any; else the last two).
pub(crate) fn compare_form(
    service: &str,
    environments: &[String],
    chosen: Option<(&str, &str)>,
) -> Markup {
    let last = environments.len().saturating_sub(1);
    let (from, to) = chosen.unwrap_or((
        environments
            .get(last.saturating_sub(1))
            .map(String::as_str)
            .unwrap_or(""),
        environments.get(last).map(String::as_str).unwrap_or(""),
    ));
    html! {
        form.compare-form method="get" action={ "/service/" (service) "/compare" } {
            label for="compare-from" { "Compare" }
            select #compare-from name="from" {
                @for e in environments { option value=(e) selected[e == from] { (e) } }
            }
            label for="compare-to" { "with" }
            select #compare-to name="to" {
                @for e in environments { option value=(e) selected[e == to] { (e) } }
            }
            button type="submit" { "Compare" }
        }
    }
}

pub(crate) fn links(build_url: &str, source_url: &str) -> Markup {
    html! {
        @if is_web_link(build_url) { a href=(build_url) rel="noopener noreferrer" { "CI job" } " " }
        @if is_web_link(source_url) { a href=(source_url) rel="noopener noreferrer" { "source" } }
    }
}

/// Only http(s) links are links: a `javascript:` URL in someone's
/// artifact.json must not run in the dashboard.
pub(crate) fn is_web_link(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

/// A service's page.
pub(crate) fn service(page_data: &ServicePage, history_page: usize, cx: &Context<'_>) -> Markup {
    let body = html! {
        h1 { (page_data.service) }
        div #sections data-service=(page_data.service) data-page=(history_page) {
            (service_sections(page_data, history_page, cx))
        }
    };
    page(&page_data.service, "service", body)
}

/// The sign-in page (no data of the repository on it): the hamctl token
/// form where the server has one, the identity provider's link where it
/// trusts one; both return to `next`.
pub(crate) fn login(problem: Option<&str>, next: &str, token_form: bool, sso: bool) -> Markup {
    let body = html! {
        form.login method="post" action="/login" {
            h1 { "Sign in" }
            @if let Some(problem) = problem { p.error role="alert" { (problem) } }
            @if sso {
                a.sso #sso href={ "/login/sso?next=" (percent(next)) } { "Sign in with single sign-on" }
            }
            @if sso && token_form { p.or { "or" } }
            @if token_form {
                label for="token" { "hamctl token" }
                input #token name="token" type="password" autocomplete="current-password" required autofocus[!sso];
                input type="hidden" name="next" value=(next);
                button type="submit" { "Sign in" }
            }
        }
    };
    page("sign in", "none", body)
}

/// Percent-encodes a path for a query value.
fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A page that says the dashboard is not available, and why.
pub(crate) fn unavailable(message: &str) -> Markup {
    page("unavailable", "none", html! { p.error { (message) } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_people_say_them() {
        assert_eq!(age(0, 100), "");
        assert_eq!(age(100, 130), "just now");
        assert_eq!(age(100, 100 + 3 * 60), "3 min ago");
        assert_eq!(age(100, 100 + 3 * 3600 + 5), "3 h ago");
        assert_eq!(age(100, 100 + 2 * 86_400), "2 d ago");
    }

    #[test]
    fn only_web_links_are_links() {
        let html = links("javascript:alert(1)", "https://git.example.com/x").into_string();
        assert!(!html.contains("javascript"), "{html}");
        assert!(html.contains("https://git.example.com/x"));
    }

    #[test]
    fn names_are_escaped() {
        let r = Row {
            service: "<script>".into(),
            cells: vec![Cell {
                artifact_id: "a\"b".into(),
                ..Default::default()
            }],
        };
        let matrix = Matrix {
            environments: vec!["dev\"".into()],
            default_branch: "master".into(),
            rows: Vec::new(),
            tip: git2::Oid::zero(),
        };
        let cx = Context {
            now: 0,
            commit_links: None,
        };
        let html = row(&matrix, &r, false, &cx).into_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("dev\""), "{html}");
    }

    #[test]
    fn promotable_and_other_branch_cells_say_so_in_words() {
        let matrix = Matrix {
            environments: vec!["staging".into(), "prod".into()],
            default_branch: "master".into(),
            rows: Vec::new(),
            tip: git2::Oid::zero(),
        };
        let cell = |id: &str, promotable| Cell {
            artifact_id: id.into(),
            branch: "feature/x".into(),
            off_default_branch: true,
            promotable,
            released_at: 100,
            release_commit: "0123456789abcdef0123456789abcdef01234567".into(),
            ..Default::default()
        };
        let r = Row {
            service: "shop".into(),
            cells: vec![cell("feature-x-2", false), cell("feature-x-1", true)],
        };
        let links =
            values::CommitLinks::parse("https://github.com/acme/k8s/commit/{commit}").unwrap();
        let cx = Context {
            now: 200,
            commit_links: Some(&links),
        };
        let html = row(&matrix, &r, false, &cx).into_string();
        assert!(
            html.contains(r#"aria-label="promotable from staging: compare staging with prod""#),
            "{html}"
        );
        assert!(html.contains(r#"href="/service/shop/compare?from=staging&amp;to=prod""#));
        assert!(html.contains(r#"aria-label="not the default branch (master)""#));
        assert!(html.contains(
            r#"href="https://github.com/acme/k8s/commit/0123456789abcdef0123456789abcdef01234567""#
        ));
        assert_eq!(html.matches("<time ").count(), 2, "{html}");
    }
}
