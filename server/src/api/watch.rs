//! `WatchEvents`: what a subscriber missed since its cursor (commit events
//! read again from history, then reports read again from the deployment
//! record), a `live` marker, then the bus's events as they come, filtered,
//! converted to the API's messages, each with a cursor holding the
//! subscriber's place among both kinds. A subscriber that fell behind is
//! told where to resume and its stream ends; the bus's stop ends every
//! stream.

use std::collections::HashSet;
use std::pin::Pin;

use git2::Oid;
use release_manager::pb;
use tokio::sync::broadcast;
use tokio_stream::Stream;
use tonic::Status;

use crate::api::errors::to_status;
use crate::domain::FlowError;
use crate::engine::events::{Cursor, Event, Replay, ReportsAt, Signal};
use crate::engine::wire;

/// The stream `WatchEvents` answers with.
pub(crate) type EventStream =
    Pin<Box<dyn Stream<Item = Result<pb::WatchEventsResponse, Status>> + Send>>;

/// The request's `since`, parsed.
pub(super) fn since(text: String) -> Result<Option<Cursor>, Status> {
    if text.is_empty() {
        return Ok(None);
    }
    Cursor::parse(&text).map(Some).ok_or_else(|| {
        to_status(FlowError::invalid(
            "since",
            format!("invalid since {text:?}: not a cursor (<commit>.<n>) or a commit id"),
        ))
    })
}

/// What a resumed subscriber missed: commit events read again from
/// history, and reports read again from the deployment record.
pub(super) struct Replayed {
    /// Commit events, and the commits they were read from.
    pub(super) commits: Replay,
    /// Report events.
    pub(super) reports: Vec<Event>,
    /// The record's commits they were read from.
    pub(super) report_commits: Vec<Oid>,
}

/// A subscriber's place in both kinds of events, as its cursors say it.
struct Places {
    commits: String,
    reports: String,
}

impl Places {
    /// Moves past `event`; its cursor for the subscriber.
    fn pass(&mut self, event: &Event) -> String {
        if event.is_report() {
            self.reports = event.cursor.clone();
        } else {
            self.commits = event.cursor.clone();
        }
        self.cursor()
    }

    fn cursor(&self) -> String {
        Cursor::join(&self.commits, &self.reports)
    }
}

/// One subscriber's stream: `replayed` (what it missed: commit events up to
/// `tip`, then reports up to `reports_end`), the `live` marker, then what
/// `receiver` brings, until the server stops or the subscriber falls
/// behind (a `dropped` message ends the stream: a new subscription from
/// its `resume_from` gets every event once).
pub(super) fn stream(
    receiver: broadcast::Receiver<Signal>,
    replayed: Replayed,
    tip: Oid,
    since: Option<Cursor>,
    reports_end: ReportsAt,
    service: String,
    environment: String,
) -> EventStream {
    let mut places = Places {
        commits: match since {
            Some(cursor) => match cursor.after {
                Some(n) => format!("{}.{n}", cursor.commit),
                None => cursor.commit.to_string(),
            },
            None => tip.to_string(),
        },
        reports: match since {
            Some(cursor) if cursor.reports != ReportsAt::Unknown => cursor.reports.text(),
            _ => reports_end.text(),
        },
    };
    let mut missed = Vec::new();
    for event in replayed.commits.events.iter().chain(&replayed.reports) {
        let cursor = places.pass(event);
        if event.matches(&service, &environment) {
            let mut sent = wire::event(event);
            sent.cursor = cursor;
            missed.push(sent);
        }
    }
    let live = pb::WatchEventsResponse {
        event: Some(pb::watch_events_response::Event::Live(
            pb::SubscriptionLive {
                replayed: missed.len() as u32,
            },
        )),
        cursor: places.cursor(),
        ..Default::default()
    };
    let replayed_commits: HashSet<String> = replayed
        .commits
        .commits
        .iter()
        .chain(&replayed.report_commits)
        .map(|c| c.to_string())
        .collect();
    let signals = tokio_stream::wrappers::BroadcastStream::new(receiver);
    let mut ended = false;
    let live_events = tokio_stream::StreamExt::map_while(signals, move |signal| {
        if ended {
            return None;
        }
        match signal {
            // The server is stopping: the stream ends.
            Ok(Signal::Stop) => None,
            Ok(Signal::Event(event)) => {
                // Sent from history (or the record) already.
                let from = if event.is_report() {
                    event.cursor.split('.').next().unwrap_or_default()
                } else {
                    event.commit.as_str()
                };
                if replayed_commits.contains(from) {
                    return Some(None);
                }
                let cursor = places.pass(&event);
                if !event.matches(&service, &environment) {
                    return Some(None);
                }
                let mut sent = wire::event(&event);
                sent.cursor = cursor;
                Some(Some(Ok(sent)))
            }
            // A watcher that fell behind lost the oldest events: it is told
            // so, with where to resume, and the stream ends there, so that
            // nothing after the gap arrives twice.
            Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(missed)) => {
                tracing::debug!(missed, "watcher fell behind");
                ended = true;
                let resume_from = places.cursor();
                Some(Some(Ok(pb::WatchEventsResponse {
                    event: Some(pb::watch_events_response::Event::Dropped(
                        pb::EventsDropped {
                            missed,
                            resume_from: resume_from.clone(),
                        },
                    )),
                    cursor: resume_from,
                    ..Default::default()
                })))
            }
        }
    });
    let live_events = tokio_stream::StreamExt::filter_map(live_events, |item| item);
    Box::pin(tokio_stream::StreamExt::chain(
        tokio_stream::iter(missed.into_iter().map(Ok).chain(std::iter::once(Ok(live)))),
        live_events,
    ))
}
