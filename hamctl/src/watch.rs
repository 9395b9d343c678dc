//! `hamctl watch`: follow the events the server commits (builds added,
//! releases, policy changes) and print each one as it arrives.
//!
//! It owns the command's flags, the event line and the per-event JSON, and
//! when the watch ends: Ctrl-C is a normal end; the server closing the
//! stream or the connection breaking is a failure, said on stderr, unless
//! `--reconnect` asked to keep watching. It must not filter events itself; the
//! server filters by service and environment.

use std::future::Future;
use std::time::Duration;

use clap::Args;
use cli_support::{one_line, ConnectError};
use release_manager::pb::watch_events_response::Event;
use release_manager::pb::{WatchEventsRequest, WatchEventsResponse};
use tonic::Code;

use crate::error::CliError;
use crate::global::GlobalArgs;
use crate::output::{OutputFormat, Printer};
use crate::{client, present};

/// Print events as they happen: builds added, releases, policy changes
///
/// One line per event, printed as soon as its commit is on the remote; with
/// --output json, one JSON object per line (JSON Lines). Runs until you
/// press Ctrl-C. When the server stops or the connection breaks, it says so
/// and exits 1, or, with --reconnect, reconnects and goes on from the last
/// event it printed, so that nothing committed meanwhile is missed.
#[derive(Debug, Clone, Args)]
pub(crate) struct WatchArgs {
    /// Only events of this service: the global `--service` [default: all
    /// services; shuttle.yaml is not read for watch].
    #[arg(skip)]
    pub(crate) service: Option<String>,

    /// Only releases to this environment (builds and policy changes, which
    /// belong to no environment, are left out) [default: every event].
    #[arg(long)]
    pub(crate) env: Option<String>,

    /// Keep watching when the server stops or the connection breaks:
    /// reconnect, waiting up to 10 s between attempts, and show what was
    /// committed while disconnected first.
    #[arg(long)]
    pub(crate) reconnect: bool,

    /// Start with the events after this cursor (the `cursor` of an event
    /// printed with --output json) or commit, then go on live.
    #[arg(long, value_name = "CURSOR")]
    pub(crate) since: Option<String>,

    /// Stop after this many events (for tests and scripts).
    #[arg(long, hide = true, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) max_events: Option<u64>,
}

/// Width of the event kind column (`released` is the longest).
const KIND_WIDTH: usize = 8;

/// Width of a `2024-05-01 12:34:56 UTC` time, so lines stay aligned when
/// the server sends none.
const TIME_WIDTH: usize = 23;

pub(crate) async fn run(
    args: WatchArgs,
    global: &GlobalArgs,
    printer: &mut Printer<'_>,
) -> Result<(), CliError> {
    watch_until(args, global, printer, interrupted()).await
}

/// Watches until the stream ends, `max_events` were printed, or `stop`
/// completes (Ctrl-C in real use), whichever comes first.
async fn watch_until(
    args: WatchArgs,
    global: &GlobalArgs,
    printer: &mut Printer<'_>,
    stop: impl Future<Output = ()>,
) -> Result<(), CliError> {
    tokio::select! {
        // Stop first: once the user asked to stop, no further event prints.
        biased;
        () = stop => Ok(()),
        result = follow(args, global, printer) => result,
    }
}

/// Completes at the first Ctrl-C. Never completes when no handler can be
/// installed: the default action (the process ends) then still applies.
async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Why one subscription ended.
enum StreamEnd {
    /// `max_events` were printed.
    Enough,
    /// The server closed the stream (it is stopping or restarting).
    ClosedByServer,
    /// The server dropped events this watcher could not keep up with; a new
    /// subscription from the cursor given gets them.
    FellBehind,
}

/// Longest wait between two reconnect attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(10);

async fn follow(
    args: WatchArgs,
    global: &GlobalArgs,
    printer: &mut Printer<'_>,
) -> Result<(), CliError> {
    let mut printed: u64 = 0;
    let mut delay = Duration::from_millis(250);
    // Where the next subscription starts: after the last event printed.
    let mut cursor = args.since.clone();
    loop {
        let before = printed;
        let lost = match subscribe(&args, global, printer, &mut printed, &mut cursor).await {
            Ok(StreamEnd::Enough) => return Ok(()),
            Ok(StreamEnd::FellBehind) => {
                printer
                    .note("watch: fell behind the server; catching up from the last event shown")?;
                continue;
            }
            Ok(StreamEnd::ClosedByServer) => {
                "the server ended the event stream (it is stopping or restarting)".to_string()
            }
            // A broken stream always counts as lost (said below, or
            // reconnected); a failed connect only when reconnecting.
            Err(error @ CliError::Server(_)) if is_transient(&error) => {
                format!("lost the event stream: {error}")
            }
            Err(error) if args.reconnect && is_transient(&error) => {
                format!("lost the event stream: {error}")
            }
            Err(error) => return Err(error),
        };
        if !args.reconnect {
            return Err(CliError::WatchEnded(lost));
        }
        if printed > before {
            // The last subscription worked for a while: start over quickly.
            delay = Duration::from_millis(250);
        }
        printer.note(&format!(
            "watch: {lost}; reconnecting in {} ms",
            delay.as_millis()
        ))?;
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_RECONNECT_DELAY);
    }
}

/// Whether an error may go away by itself (the server restarting, a broken
/// connection), so that `--reconnect` tries again rather than giving up.
pub(crate) fn is_transient(error: &CliError) -> bool {
    match error {
        CliError::Connect(ConnectError::Unreachable { .. }) => true,
        CliError::Server(status) => matches!(
            status.code(),
            Code::Unavailable | Code::Unknown | Code::Internal | Code::Cancelled
        ),
        _ => false,
    }
}

/// One subscription, from `cursor` when set: prints its events until it
/// ends, keeping `cursor` at the last one printed.
async fn subscribe(
    args: &WatchArgs,
    global: &GlobalArgs,
    printer: &mut Printer<'_>,
    printed: &mut u64,
    cursor: &mut Option<String>,
) -> Result<StreamEnd, CliError> {
    let request = WatchEventsRequest {
        service: args.service.clone().unwrap_or_default(),
        environment: args.env.clone().unwrap_or_default(),
        since: cursor.clone().unwrap_or_default(),
    };
    let mut client = client::streaming_release_client(global).await?;
    let mut stream = client.watch_events(request).await?.into_inner();
    loop {
        if args.max_events.is_some_and(|max| *printed >= max) {
            return Ok(StreamEnd::Enough);
        }
        let Some(event) = stream.message().await? else {
            return Ok(StreamEnd::ClosedByServer);
        };
        match &event.event {
            // The replay of what was missed is done: nothing to print.
            Some(Event::Live(_)) => continue,
            Some(Event::Dropped(dropped)) => {
                if !dropped.resume_from.is_empty() {
                    *cursor = Some(dropped.resume_from.clone());
                }
                return Ok(StreamEnd::FellBehind);
            }
            _ => {}
        }
        if !event.cursor.is_empty() {
            *cursor = Some(event.cursor.clone());
        }
        match printer.format() {
            OutputFormat::Json => printer.json_line(&present::api_json(&event))?,
            OutputFormat::Table => printer.line(&event_line(&event))?,
        }
        *printed += 1;
    }
}

/// One event as one line:
///
/// ```text
/// 2024-05-01 12:34:56 UTC  build    shop  master-abc (branch master) by Dana Dev
/// 2024-05-01 12:34:56 UTC  released shop  master-abc to dev (namespace dev, auto-release) commit 1a2b3c4
/// 2024-05-01 12:34:56 UTC  policy   shop  [shop] policy update: ...
/// ```
///
/// Control characters (from commit titles, names) become spaces.
fn event_line(event: &WatchEventsResponse) -> String {
    let time = present::time_seconds_cell(event.time.as_ref());
    let (kind, service, detail) = match &event.event {
        Some(Event::BuildAdded(artifact)) => {
            let mut detail = format!("{} (branch {})", artifact.artifact_id, artifact.branch);
            let by = present::person_cell(artifact.author.as_ref().or(artifact.committer.as_ref()));
            if !by.is_empty() {
                detail.push_str(&format!(" by {by}"));
            }
            ("build", artifact.service.as_str(), detail)
        }
        Some(Event::Released(result)) => {
            let intent = present::intent_word(result.intent());
            let mut detail = format!("{} to {} (", result.artifact_id, result.environment);
            if !result.namespace.is_empty() {
                detail.push_str(&format!("namespace {}, ", result.namespace));
            }
            detail.push_str(intent);
            detail.push(')');
            let sha = if result.commit_sha.is_empty() {
                &event.commit_sha
            } else {
                &result.commit_sha
            };
            if !sha.is_empty() {
                detail.push_str(&format!(" commit {}", present::short_sha(sha)));
            }
            ("released", result.service.as_str(), detail)
        }
        Some(Event::PolicyChanged(change)) => {
            ("policy", change.service.as_str(), change.title.clone())
        }
        Some(Event::DeploymentReported(report)) => {
            let deployment = report.deployment.as_ref();
            let mut detail = format!(
                "{} in {}: {}",
                report.artifact_id,
                report.environment,
                present::deployment_cell(deployment)
            );
            if let Some(d) = deployment.filter(|d| !d.source.is_empty()) {
                detail.push_str(&format!(" (by {})", d.source));
            }
            ("deploy", report.service.as_str(), detail)
        }
        Some(Event::ReconciliationError(changed)) => {
            let error = changed.error.clone().unwrap_or_default();
            let detail = if changed.cleared {
                format!("reconciled again (by {})", error.source)
            } else {
                present::reconciliation_error_line(&error)
            };
            ("env", "-", detail)
        }
        // Stream markers are handled before printing; an event kind newer
        // than this hamctl has no line of its own.
        Some(Event::Live(_) | Event::Dropped(_)) | None => (
            "unknown",
            "-",
            format!("commit {}", present::short_sha(&event.commit_sha)),
        ),
    };
    let time = if time.is_empty() { "-" } else { time.as_str() };
    one_line(&format!(
        "{time:<TIME_WIDTH$}  {kind:<KIND_WIDTH$} {service}  {detail}"
    ))
}

#[cfg(test)]
mod tests {
    use prost_types::Timestamp;
    use release_manager::pb::{
        ArtifactSummary, Outcome, Person, PolicyChanged, ReleaseIntent, ReleaseResult,
    };

    use super::*;

    fn at(event: Event) -> WatchEventsResponse {
        WatchEventsResponse {
            commit_sha: "fedcba9876543210".into(),
            time: Some(Timestamp {
                seconds: 1_767_323_045,
                nanos: 0,
            }),
            event: Some(event),
            cursor: "fedcba9876543210.0".into(),
        }
    }

    fn build() -> Event {
        Event::BuildAdded(ArtifactSummary {
            artifact_id: "master-abc".into(),
            service: "shop".into(),
            branch: "master".into(),
            author: Some(Person {
                name: "Dana Dev".into(),
                email: "dana@example.com".into(),
            }),
            ..Default::default()
        })
    }

    fn released() -> Event {
        Event::Released(ReleaseResult {
            outcome: Outcome::Applied.into(),
            service: "shop".into(),
            environment: "dev".into(),
            namespace: "dev".into(),
            artifact_id: "master-abc".into(),
            branch: "master".into(),
            commit_sha: "1a2b3c4d5e6f".into(),
            intent: ReleaseIntent::AutoRelease.into(),
            replayed: false,
        })
    }

    fn policy() -> Event {
        Event::PolicyChanged(PolicyChanged {
            service: "shop".into(),
            title: "[shop] policy update: auto-release master to dev".into(),
        })
    }

    #[test]
    fn build_line() {
        assert_eq!(
            event_line(&at(build())),
            "2026-01-02 03:04:05 UTC  build    shop  master-abc (branch master) by Dana Dev"
        );
    }

    #[test]
    fn release_line() {
        assert_eq!(
            event_line(&at(released())),
            "2026-01-02 03:04:05 UTC  released shop  master-abc to dev (namespace dev, auto-release) commit 1a2b3c4"
        );
    }

    #[test]
    fn release_line_without_namespace_uses_the_event_commit() {
        let mut event = at(released());
        if let Some(Event::Released(result)) = &mut event.event {
            result.namespace.clear();
            result.commit_sha.clear();
            result.intent = ReleaseIntent::Promote.into();
        }
        assert_eq!(
            event_line(&event),
            "2026-01-02 03:04:05 UTC  released shop  master-abc to dev (promote) commit fedcba9"
        );
    }

    #[test]
    fn policy_line_is_sanitised() {
        let mut event = at(policy());
        if let Some(Event::PolicyChanged(change)) = &mut event.event {
            change.title.push_str("\n\x1b[31mbody");
        }
        assert_eq!(
            event_line(&event),
            "2026-01-02 03:04:05 UTC  policy   shop  [shop] policy update: auto-release master to dev  [31mbody"
        );
    }

    #[test]
    fn build_line_without_author_or_time() {
        let mut event = at(Event::BuildAdded(ArtifactSummary {
            artifact_id: "feature-x-1".into(),
            service: "shop".into(),
            branch: "feature/x".into(),
            ..Default::default()
        }));
        event.time = None;
        assert_eq!(
            event_line(&event),
            "-                        build    shop  feature-x-1 (branch feature/x)"
        );
    }

    #[test]
    fn unknown_events_still_print() {
        let mut event = at(build());
        event.event = None;
        assert_eq!(
            event_line(&event),
            "2026-01-02 03:04:05 UTC  unknown  -  commit fedcba9"
        );
        let value = present::api_json(&event);
        assert_eq!(value["commitSha"], "fedcba9876543210");
        assert_eq!(value.get("buildAdded"), None);
    }

    #[test]
    fn json_is_the_apis_event() {
        let value = present::api_json(&at(released()));
        assert_eq!(value["time"], "2026-01-02T03:04:05Z");
        assert_eq!(value["commitSha"], "fedcba9876543210");
        assert_eq!(value["released"]["intent"], "RELEASE_INTENT_AUTO_RELEASE");
        assert_eq!(value["released"]["artifactId"], "master-abc");

        let value = present::api_json(&at(build()));
        assert_eq!(value["buildAdded"]["author"]["name"], "Dana Dev");

        let value = present::api_json(&at(policy()));
        assert_eq!(value["policyChanged"]["service"], "shop");
    }

    #[tokio::test]
    async fn stop_ends_the_watch_quietly() {
        let global = GlobalArgs {
            server: "http://127.0.0.1:1".into(),
            auth_token: None,
            output: OutputFormat::Table,
            request_timeout: std::time::Duration::ZERO,
            service: None,
            user_email: None,
        };
        let args = WatchArgs {
            service: None,
            env: None,
            reconnect: false,
            since: None,
            max_events: None,
        };
        let mut out = Vec::new();
        let mut printer = Printer::new(&mut out, OutputFormat::Table, false);
        // The stop future wins before the (failing) connect is even tried.
        let result = watch_until(args, &global, &mut printer, std::future::ready(())).await;
        assert!(result.is_ok(), "{result:?}");
        assert!(out.is_empty());
    }
}
