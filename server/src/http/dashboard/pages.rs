//! The dashboard's HTML, rendered on the server with `maud`: the matrix, a
//! service's page, the login form, and the fragments the page script swaps
//! in when an event says something changed (a row, a service's sections).
//! Every cell has a fixed size, so an update never moves the page. It owns
//! markup only; what is shown comes from `model`.

use maud::{html, Markup, DOCTYPE};

use super::model::{Cell, Matrix, Row, ServicePage};

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

/// An artifact id short enough for a cell: its last two dash-separated
/// parts, when there are more.
fn short_id(id: &str) -> &str {
    let mut dashes = id.rmatch_indices('-');
    match (dashes.next(), dashes.next()) {
        (Some(_), Some((at, _))) if id.len() > 24 => &id[at + 1..],
        _ => id,
    }
}

fn page(title: &str, live: &str, body: Markup) -> Markup {
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

fn cell(cell: &Cell, now: i64) -> Markup {
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
    html! {
        td class=(classes.join(" ")) data-artifact=(cell.artifact_id) {
            @if cell.artifact_id.is_empty() {
                span.none { "–" }
            } @else {
                // The id's distinctive end, and what the cluster said.
                span.id {
                    (short_id(&cell.artifact_id))
                    @if let Some((word, message)) = &cell.deployment {
                        " " span class={ "deploy " (word) } title=(message) { (word) }
                    }
                }
                span {
                    span { (cell.branch) }
                    @if let Some((high, medium, low)) = cell.vulnerabilities {
                        span class=(if high > 0 { "vuln high" } else { "vuln" }) {
                            "vulns " (high) "H " (medium) "M " (low) "L"
                        }
                    }
                }
                span {
                    span { (cell.released_by) }
                    span.age data-time=(cell.released_at) { (age(cell.released_at, now)) }
                }
            }
        }
    }
}

/// One row of the matrix (also the fragment swapped in on a change).
pub(crate) fn row(row: &Row, now: i64) -> Markup {
    html! {
        tr id={ "row-" (row.service) } data-service=(row.service) {
            th scope="row" { a href={ "/service/" (row.service) } { (row.service) } }
            @for c in &row.cells { (cell(c, now)) }
        }
    }
}

/// The rows of the matrix.
pub(crate) fn rows(matrix: &Matrix, now: i64) -> Markup {
    html! { @for r in &matrix.rows { (row(r, now)) } }
}

/// The matrix page.
pub(crate) fn matrix(matrix: &Matrix, now: i64) -> Markup {
    let body = html! {
        div.toolbar {
            label for="filter" { "Filter services" }
            input #filter type="search" placeholder="name…" autocomplete="off" accesskey="f";
            span.legend {
                span.swatch.promotable {} "differs from the environment before (promotable)"
                span.swatch.branch {} "not the default branch"
                span.key { "Each cell: artifact; branch, vulnerabilities (high, medium, low); released by, when" }
            }
        }
        table #matrix {
            thead {
                tr {
                    th scope="col" { "service" }
                    @for environment in &matrix.environments { th scope="col" { (environment) } }
                }
            }
            tbody #rows { (rows(matrix, now)) }
        }
        @if matrix.rows.is_empty() {
            p.none { "No services yet: push a build." }
        }
    };
    page("what runs where", "matrix", body)
}

/// The sections of a service's page (also the fragment swapped in).
pub(crate) fn service_sections(page: &ServicePage, history_page: usize, now: i64) -> Markup {
    html! {
        section #state {
            h2 { "What runs where" }
            table.states {
                thead { tr { th scope="col" { "environment" } th scope="col" { "artifact" } th scope="col" { "branch" } th scope="col" { "released" } th scope="col" { "in the cluster" } th scope="col" { "links" } } }
                tbody {
                    @for (environment, c) in page.environments.iter().zip(&page.row.cells) {
                        tr data-environment=(environment) {
                            th scope="row" { (environment) }
                            td.artifact { @if c.artifact_id.is_empty() { "–" } @else { (c.artifact_id) } }
                            td { (c.branch) }
                            td { (c.released_by) " " span.age data-time=(c.released_at) { (age(c.released_at, now)) } }
                            td {
                                @match &c.deployment {
                                    Some((word, message)) => {
                                        span class={ "deploy " (word) } { (word) }
                                        @if !message.is_empty() { " " span.message { (message) } }
                                    }
                                    None => span.none { "not reported" },
                                }
                            }
                            td { (links(&c.build_url, &c.source_url)) }
                        }
                    }
                }
            }
        }
        section #history {
            h2 { "Releases" }
            @if page.history.is_empty() { p.none { "Never released." } }
            @else {
                table.history {
                    thead { tr { th scope="col" { "when" } th scope="col" { "environment" } th scope="col" { "artifact" } th scope="col" { "why" } th scope="col" { "by" } } }
                    tbody {
                        @for entry in &page.history {
                            tr {
                                td.age data-time=(entry.released_at) { (age(entry.released_at, now)) }
                                td { (entry.environment) }
                                td title=(entry.commit) { (entry.artifact_id) }
                                td { (entry.intent) }
                                td { (entry.released_by) }
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
                                td title=(build.artifact_id) { (build.artifact_id) }
                                td.age data-time=(build.time) { (age(build.time, now)) }
                                td { (build.author) }
                                td.stages { @for (name, said) in &build.stages { span.stage { b { (name) } " " (said) } } }
                                td { (links(&build.build_url, &build.source_url)) }
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

fn links(build_url: &str, source_url: &str) -> Markup {
    html! {
        @if is_web_link(build_url) { a href=(build_url) rel="noopener noreferrer" { "CI job" } " " }
        @if is_web_link(source_url) { a href=(source_url) rel="noopener noreferrer" { "source" } }
    }
}

/// Only http(s) links are links: a `javascript:` URL in someone's
/// artifact.json must not run in the dashboard.
fn is_web_link(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

/// A service's page.
pub(crate) fn service(page_data: &ServicePage, history_page: usize, now: i64) -> Markup {
    let body = html! {
        h1 { (page_data.service) }
        div #sections data-service=(page_data.service) data-page=(history_page) {
            (service_sections(page_data, history_page, now))
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
    fn long_ids_keep_their_distinguishing_end() {
        assert_eq!(
            short_id("master-1a2b3c4d5e-6f7a8b9c0d"),
            "1a2b3c4d5e-6f7a8b9c0d"
        );
        assert_eq!(short_id("master-1"), "master-1");
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
        let html = row(&r, 0).into_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
    }
}
