//! Exact values on the dashboard's pages: every age is a `<time>` with its
//! absolute time (on hover, and on focus through the page script), every
//! artifact id is whole in the page (shortened only by the stylesheet,
//! keeping its distinctive end) and a button that copies it, the marks
//! that colour also says (promotable, another branch) carry an icon (drawn
//! by the stylesheet, so a thousand cells do not repeat it) with a label, and a release links to its config repository commit when
//! `--config-repo-web-url` gives the URL's shape. Markup only; no reads.

use maud::{html, Markup};

use super::pages::age;

/// How the config repository shows a commit on the web: a URL template
/// holding `{commit}`, e.g. `https://github.com/acme/k8s/commit/{commit}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitLinks(String);

impl CommitLinks {
    /// The placeholder the template must hold.
    pub const PLACEHOLDER: &'static str = "{commit}";

    /// Checks a template: an http(s) URL holding `{commit}`.
    pub fn parse(template: &str) -> Result<CommitLinks, String> {
        let template = template.trim();
        if !(template.starts_with("https://") || template.starts_with("http://")) {
            return Err(format!(
                "{template:?} is not an http(s) URL; e.g. https://github.com/acme/k8s-config/commit/{{commit}}"
            ));
        }
        if !template.contains(Self::PLACEHOLDER) {
            return Err(format!(
                "{template:?} has no {} where the commit goes; e.g. https://github.com/acme/k8s-config/commit/{{commit}}",
                Self::PLACEHOLDER
            ));
        }
        Ok(CommitLinks(template.to_string()))
    }

    /// The page of `commit` (a full hex sha; anything else has none).
    pub(crate) fn url(&self, commit: &str) -> Option<String> {
        (!commit.is_empty() && commit.chars().all(|c| c.is_ascii_hexdigit()))
            .then(|| self.0.replace(Self::PLACEHOLDER, commit))
    }
}

/// What every renderer of a page needs besides the data: the time the
/// page is rendered at, and the commit links, if any.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context<'a> {
    /// Seconds since the epoch.
    pub(crate) now: i64,
    /// How to link a config repository commit.
    pub(crate) commit_links: Option<&'a CommitLinks>,
}

impl Context<'_> {
    /// The web page of config repository commit `commit`, when configured.
    pub(crate) fn commit_url(&self, commit: &str) -> Option<String> {
        self.commit_links.and_then(|links| links.url(commit))
    }
}

/// `seconds` since the epoch as a UTC date and time: (year, month, day,
/// hour, minute, second). Computed by hand (days to a civil date, as in
/// Howard Hinnant's `civil_from_days`): a matrix formats thousands of
/// times, and a general formatter costs more than the rest of the page.
fn civil(seconds: i64) -> (i64, u32, u32, u32, u32, u32) {
    let (days, rest) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    let rest = rest as u32;
    (year, month, day, rest / 3600, rest / 60 % 60, rest % 60)
}

/// `seconds` since the epoch as people read it, in UTC.
pub(crate) fn absolute(seconds: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(seconds);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} UTC")
}

/// `seconds` since the epoch in RFC 3339, as `<time datetime>` takes it.
fn rfc3339(seconds: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(seconds);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// An age ("3 h ago") as a `<time>` with its exact time: in `datetime`, and
/// in the title shown on hover (and by the page script on focus). Nothing
/// for an unknown time (0).
pub(crate) fn when(seconds: i64, now: i64) -> Markup {
    time_element(seconds, now, true)
}

/// An age that links to its release commit, when commit links are
/// configured (the link then takes the focus, not the time).
pub(crate) fn release_when(seconds: i64, release_commit: &str, cx: &Context<'_>) -> Markup {
    match cx.commit_url(release_commit) {
        Some(url) if seconds != 0 => html! {
            a.commit href=(url) rel="noopener noreferrer" {
                (time_element(seconds, cx.now, false))
            }
        },
        _ => when(seconds, cx.now),
    }
}

fn time_element(seconds: i64, now: i64, focusable: bool) -> Markup {
    if seconds == 0 {
        return html! {};
    }
    html! {
        time.age datetime=(rfc3339(seconds)) title=(absolute(seconds)) tabindex=[focusable.then_some("0")] {
            (age(seconds, now))
        }
    }
}

/// A config repository commit as its short sha, linked when configured.
pub(crate) fn commit(commit: &str, cx: &Context<'_>) -> Markup {
    let short = commit.get(..10).unwrap_or(commit);
    html! {
        @match cx.commit_url(commit) {
            Some(url) => a.sha href=(url) rel="noopener noreferrer" title=(commit) { (short) },
            None => code.sha title=(commit) { (short) },
        }
    }
}

/// Where an artifact id is cut by the stylesheet when it does not fit:
/// before its last two dash-separated parts (the distinctive end), when
/// there are more.
fn split_id(id: &str) -> (&str, &str) {
    let mut dashes = id.rmatch_indices('-');
    match (dashes.next(), dashes.next()) {
        (Some(_), Some((at, _))) => id.split_at(at + 1),
        _ => ("", id),
    }
}

/// A whole artifact id (what screen readers read), whose start the
/// stylesheet may shorten with an ellipsis in a narrow cell while its end
/// stays. It is a button: one click (or Enter) copies it, through the page
/// script; its title says so and shows it whole.
pub(crate) fn artifact_id(id: &str) -> Markup {
    let (head, tail) = split_id(id);
    html! {
        button.id type="button" title={ "Copy " (id) } {
            @if !head.is_empty() { span.head { (head) } }
            span.tail { (tail) }
        }
    }
}

/// The mark of a cell whose artifact differs from the environment before:
/// an arrow that opens the comparison of the two, labelled for those who
/// do not see it.
pub(crate) fn promotable_mark(service: &str, from: &str, to: &str) -> Markup {
    html! {
        a.mark.promotable
            href={ "/service/" (service) "/compare?from=" (from) "&to=" (to) }
            aria-label={ "promotable from " (from) ": compare " (from) " with " (to) }
            title={ "promotable: compare with " (from) } {
            span.mark-text { "promotable" }
        }
    }
}

/// The mark of a build of a branch other than the default one.
pub(crate) fn branch_mark(default_branch: &str) -> Markup {
    let label = format!("not the default branch ({default_branch})");
    html! {
        span.mark.branch role="img" aria-label=(label) title=(label) {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_link_templates() {
        let links = CommitLinks::parse("https://github.com/acme/k8s/commit/{commit}").unwrap();
        assert_eq!(
            links.url("0123abcd").as_deref(),
            Some("https://github.com/acme/k8s/commit/0123abcd")
        );
        assert_eq!(links.url(""), None);
        assert_eq!(links.url("x\"><script>"), None, "only a sha goes in a link");
        let gitlab = CommitLinks::parse("https://gitlab.com/acme/k8s/-/commit/{commit}").unwrap();
        assert!(gitlab.url("ab12").unwrap().ends_with("/-/commit/ab12"));
        let error = CommitLinks::parse("https://github.com/acme/k8s/commit/").unwrap_err();
        assert!(error.contains("{commit}"), "{error}");
        let error = CommitLinks::parse("javascript:{commit}").unwrap_err();
        assert!(error.contains("http(s)"), "{error}");
    }

    #[test]
    fn dates_are_chronos() {
        for seconds in [
            0,
            951_782_400,
            1_700_000_000,
            4_102_444_799,
            -86_400,
            1_709_164_800,
        ] {
            let expected = chrono::DateTime::from_timestamp(seconds, 0).unwrap();
            assert_eq!(
                absolute(seconds),
                expected.format("%Y-%m-%d %H:%M:%S UTC").to_string()
            );
            assert_eq!(
                rfc3339(seconds),
                expected.format("%Y-%m-%dT%H:%M:%SZ").to_string()
            );
        }
    }

    #[test]
    fn times_carry_their_exact_value() {
        let html = when(1_700_000_000, 1_700_000_000 + 7200).into_string();
        assert!(
            html.contains(r#"datetime="2023-11-14T22:13:20Z""#),
            "{html}"
        );
        assert!(
            html.contains(r#"title="2023-11-14 22:13:20 UTC""#),
            "{html}"
        );
        assert!(html.contains(">2 h ago</time>"), "{html}");
        assert_eq!(when(0, 5).into_string(), "");
    }

    #[test]
    fn ids_are_whole_in_the_page() {
        assert_eq!(
            split_id("master-1a2b3c4d5e-6f7a8b9c0d"),
            ("master-", "1a2b3c4d5e-6f7a8b9c0d")
        );
        assert_eq!(split_id("master-1"), ("", "master-1"));
        let html = artifact_id("master-1a2b3c4d5e-6f7a8b9c0d").into_string();
        assert_eq!(
            html,
            r#"<button class="id" type="button" title="Copy master-1a2b3c4d5e-6f7a8b9c0d"><span class="head">master-</span><span class="tail">1a2b3c4d5e-6f7a8b9c0d</span></button>"#
        );
    }
}
