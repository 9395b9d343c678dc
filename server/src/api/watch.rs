//! `WatchEvents`: what a subscriber missed since its cursor (read again
//! from history), a `live` marker, then the bus's events as they come,
//! filtered, converted to the API's messages, and told of what it lost
//! when it fell behind. The bus's stop ends every stream.

use std::collections::HashSet;
use std::pin::Pin;

use git2::Oid;
use release_manager::pb;
use tokio::sync::broadcast;
use tokio_stream::Stream;
use tonic::Status;

use crate::api::errors::to_status;
use crate::domain::FlowError;
use crate::engine::events::{Cursor, Replay, Signal};
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

/// One subscriber's stream: `replay` (what it missed, read up to `tip`),
/// the `live` marker, then what `receiver` brings.
pub(super) fn stream(
    receiver: broadcast::Receiver<Signal>,
    replay: Replay,
    tip: Oid,
    since: Option<Cursor>,
    service: String,
    environment: String,
) -> EventStream {
    let missed: Vec<pb::WatchEventsResponse> = replay
        .events
        .iter()
        .filter(|event| event.matches(&service, &environment))
        .map(wire::event)
        .collect();
    // Where a subscriber that falls behind resumes: after the last event
    // it got, else where it started.
    let mut last_cursor = missed
        .last()
        .map(|event| event.cursor.clone())
        .unwrap_or_else(|| match since {
            Some(cursor) => cursor.commit.to_string(),
            None => tip.to_string(),
        });
    let live = pb::WatchEventsResponse {
        event: Some(pb::watch_events_response::Event::Live(
            pb::SubscriptionLive {
                replayed: missed.len() as u32,
            },
        )),
        cursor: last_cursor.clone(),
        ..Default::default()
    };
    let replayed: HashSet<String> = replay.commits.iter().map(|c| c.to_string()).collect();
    let signals = tokio_stream::wrappers::BroadcastStream::new(receiver);
    let live_events = tokio_stream::StreamExt::map_while(signals, move |signal| match signal {
        // The server is stopping: the stream ends.
        Ok(Signal::Stop) => None,
        // Sent from history already (a deployment report is no commit: its
        // commit is the revision reported).
        Ok(Signal::Event(event)) if !event.is_report() && replayed.contains(&event.commit) => {
            Some(None)
        }
        Ok(Signal::Event(event)) if event.matches(&service, &environment) => {
            if !event.cursor.is_empty() {
                last_cursor = event.cursor.clone();
            }
            Some(Some(Ok(wire::event(&event))))
        }
        Ok(Signal::Event(_)) => Some(None),
        // A watcher that fell behind lost the oldest events: it is told
        // so, with where to resume, instead of missing them silently.
        Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(missed)) => {
            tracing::debug!(missed, "watcher fell behind");
            Some(Some(Ok(pb::WatchEventsResponse {
                event: Some(pb::watch_events_response::Event::Dropped(
                    pb::EventsDropped {
                        missed,
                        resume_from: last_cursor.clone(),
                    },
                )),
                cursor: last_cursor.clone(),
                ..Default::default()
            })))
        }
    });
    let live_events = tokio_stream::StreamExt::filter_map(live_events, |item| item);
    Box::pin(tokio_stream::StreamExt::chain(
        tokio_stream::iter(missed.into_iter().map(Ok).chain(std::iter::once(Ok(live)))),
        live_events,
    ))
}
