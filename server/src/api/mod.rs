//! tonic handlers: authenticate the caller, validate and convert the
//! request, check that the caller may do it there, call a read query or the
//! writer, convert the answer. No git here.

pub(crate) mod access_service;
pub(crate) mod errors;
pub(crate) mod ping;
pub(crate) mod policy_service;
pub(crate) mod reflection;
pub(crate) mod release_service;
mod request_fields;
pub(crate) mod starting;
pub(crate) mod upload;
mod upload_slots;
mod watch;
pub(crate) mod web;

use std::time::{Duration, Instant};

use tonic::Status;
use tracing::Instrument;

use crate::api::errors::to_status;
use crate::auth::{Action, Gatekeeper, Identity, Role};
use crate::engine::writer::WriterHandle;
use crate::flows::{WriteDone, WriteRequest};

/// The `authorization` metadata of a call, if it is text.
pub(crate) fn authorization<T>(request: &tonic::Request<T>) -> Option<String> {
    request
        .metadata()
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

/// Who a call of `role` comes from, by its `authorization` metadata.
pub(crate) async fn authenticate<T>(
    gate: &Gatekeeper,
    request: &tonic::Request<T>,
    role: Role,
) -> Result<Identity, Status> {
    gate.authenticate(authorization(request).as_deref(), role)
        .await
        .map_err(to_status)
}

/// Whether `who` may do `action` in `environment`.
pub(crate) fn permit(
    gate: &Gatekeeper,
    who: &Identity,
    action: Action,
    environment: Option<&str>,
) -> Result<(), Status> {
    gate.permit(who, action, environment).map_err(to_status)
}

/// When the caller stops waiting: now plus the `grpc-timeout` it sent, if
/// any. A write not applied by then is not applied at all.
pub(crate) fn deadline_of<T>(request: &tonic::Request<T>) -> Option<Instant> {
    let value = request.metadata().get("grpc-timeout")?.to_str().ok()?;
    Some(Instant::now() + parse_grpc_timeout(value)?)
}

/// Parses a `grpc-timeout` value: at most 8 digits and a unit (`H`, `M`,
/// `S`, `m`, `u`, `n`), as the gRPC wire spec defines it.
fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.checked_mul(3600)?),
        "M" => Duration::from_secs(amount.checked_mul(60)?),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// Sends a write to the writer inside a span carrying the request id, and
/// logs the outcome. `deadline` is when the caller stops waiting.
pub(crate) async fn write(
    writer: &WriterHandle,
    request: WriteRequest,
    deadline: Option<Instant>,
) -> Result<WriteDone, Status> {
    // A request without an id logs none, rather than `request_id=""`.
    let span = tracing::info_span!("write", request_id = tracing::field::Empty);
    if let Some(id) = &request.request_id {
        span.record("request_id", id.as_str());
    }
    async {
        let intent = request.intent.summary();
        match writer.submit(request, deadline).await {
            Ok(done) => {
                tracing::info!(%intent, created = done.created(), commit = %done.commit(), "write done");
                Ok(done)
            }
            Err(error) => {
                tracing::info!(%intent, %error, "write refused");
                Err(to_status(error))
            }
        }
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse_as_the_spec_says() {
        assert_eq!(parse_grpc_timeout("60S"), Some(Duration::from_secs(60)));
        assert_eq!(
            parse_grpc_timeout("1500m"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_grpc_timeout("2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(
            parse_grpc_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        assert_eq!(parse_grpc_timeout("S"), None);
        assert_eq!(parse_grpc_timeout("123456789S"), None);
        assert_eq!(parse_grpc_timeout("10x"), None);
        assert_eq!(parse_grpc_timeout("-1S"), None);
    }
}
