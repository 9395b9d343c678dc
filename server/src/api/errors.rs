//! The one place where errors become `tonic::Status` (`From<FlowError>`). The match over
//! [`FlowError`] is exhaustive so that a new error variant forces a
//! decision here. Every status carries structured details, as the public
//! schema promises (errors.proto): `INVALID_ARGUMENT` a
//! `google.rpc.BadRequest` naming the field, every other code a
//! `google.rpc.ErrorInfo` with a stable reason. Internal causes are logged
//! with their whole chain and never sent to the client.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::domain::{chain, FlowError, Reason};
use crate::repo::RepoError;

/// The `domain` of every `google.rpc.ErrorInfo` the server sends.
pub(crate) const DOMAIN: &str = "releasemanager.v1";

/// `INVALID_ARGUMENT` for request field `field`, with a
/// `google.rpc.BadRequest` that names it.
pub(crate) fn invalid(field: &str, message: impl Into<String>) -> Status {
    let message = message.into();
    Status::with_error_details(
        Code::InvalidArgument,
        message.clone(),
        ErrorDetails::with_bad_request_violation(field, message),
    )
}

/// An error of `code` for `reason`, with a `google.rpc.ErrorInfo`.
pub(crate) fn failure(code: Code, reason: Reason, message: impl Into<String>) -> Status {
    failure_with(code, reason, message, &[])
}

/// An error of `code` for `reason`, with a `google.rpc.ErrorInfo` whose
/// metadata holds `details` (errors.proto lists the keys).
pub(crate) fn failure_with(
    code: Code,
    reason: Reason,
    message: impl Into<String>,
    details: &[(&'static str, String)],
) -> Status {
    let metadata: HashMap<String, String> = details
        .iter()
        .map(|(key, value)| ((*key).to_string(), value.clone()))
        .collect();
    Status::with_error_details(
        code,
        message,
        ErrorDetails::with_error_info(reason.as_str(), DOMAIN, metadata),
    )
}

/// A limit reached: RESOURCE_EXHAUSTED for `reason`, the limit in the
/// metadata.
pub(crate) fn limit_reached(
    reason: Reason,
    limit: impl ToString,
    message: impl Into<String>,
) -> Status {
    failure_with(
        Code::ResourceExhausted,
        reason,
        message,
        &[("limit", limit.to_string())],
    )
}

impl From<FlowError> for Status {
    fn from(error: FlowError) -> Self {
        to_status(error)
    }
}

/// Converts a flow error into the status the client sees.
pub(crate) fn to_status(error: FlowError) -> Status {
    let no_details = Vec::new();
    let mut details = &no_details;
    let (code, reason) = match &error {
        FlowError::InvalidArgument { field, message } => return invalid(field, message.clone()),
        FlowError::NotFound {
            reason,
            details: known,
            ..
        } => {
            details = known;
            (Code::NotFound, *reason)
        }
        FlowError::FailedPrecondition {
            reason,
            details: known,
            ..
        } => {
            details = known;
            (Code::FailedPrecondition, *reason)
        }
        FlowError::Unauthenticated { reason, .. } => (Code::Unauthenticated, *reason),
        FlowError::PermissionDenied { reason, .. } => (Code::PermissionDenied, *reason),
        FlowError::AlreadyExists(_) => (Code::AlreadyExists, Reason::ArtifactExists),
        FlowError::QueueFull => (Code::ResourceExhausted, Reason::QueueFull),
        FlowError::DeadlineExceeded => (Code::DeadlineExceeded, Reason::DeadlinePassed),
        FlowError::WriterStopped => (Code::Unavailable, Reason::ShuttingDown),
        FlowError::Conflict { .. } => (Code::Aborted, Reason::PushConflict),
        FlowError::BatchTimedOut { .. } => (Code::Unavailable, Reason::BatchTimeout),
        FlowError::RemoteUnavailable(cause) => (Code::Unavailable, remote_reason(cause)),
        FlowError::DiskFull { .. } => (Code::ResourceExhausted, Reason::DiskFull),
        FlowError::NotPermitted { .. } => (Code::Unavailable, Reason::WriteDenied),
        FlowError::Internal(_) => (Code::Internal, Reason::InternalError),
    };
    if matches!(
        error,
        FlowError::RemoteUnavailable(_)
            | FlowError::Internal(_)
            | FlowError::Conflict { .. }
            | FlowError::BatchTimedOut { .. }
    ) {
        tracing::error!(error = %chain(&error), "request failed");
    }
    failure_with(code, reason, error.to_string(), details)
}

/// Why the remote is unavailable: it hung, it is locked, or it cannot be
/// reached.
fn remote_reason(cause: &RepoError) -> Reason {
    match cause {
        RepoError::RemoteLocked { .. } => Reason::RemoteLocked,
        other if other.timed_out() => Reason::RemoteTimeout,
        _ => Reason::RemoteUnavailable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_arguments_name_their_field() {
        let status = to_status(FlowError::invalid(
            "environment",
            "unknown environment \"qa\"",
        ));
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let violation = &details
            .bad_request()
            .expect("a BadRequest")
            .field_violations[0];
        assert_eq!(violation.field, "environment");
        assert!(violation.description.contains("qa"));
    }

    #[test]
    fn every_reason_is_one_of_the_schema() {
        use release_manager::pb::ErrorReason;
        for reason in Reason::ALL {
            let schema = ErrorReason::from_str_name(reason.as_str());
            assert!(
                schema.is_some_and(|r| r != ErrorReason::Unspecified),
                "{reason:?} is not in errors.proto"
            );
        }
        // And every reason of the schema is one the server knows.
        let known = (1..200)
            .filter_map(|n| ErrorReason::try_from(n).ok())
            .filter(|r| {
                Reason::ALL
                    .iter()
                    .all(|ours| ours.as_str() != r.as_str_name())
            })
            .collect::<Vec<_>>();
        assert!(known.is_empty(), "not in domain::Reason: {known:?}");
    }

    #[test]
    fn other_errors_carry_a_reason() {
        let status = to_status(FlowError::precondition(Reason::BranchRestricted, "no"));
        assert_eq!(status.code(), Code::FailedPrecondition);
        let details = status.get_error_details();
        let info = details.error_info().expect("an ErrorInfo");
        assert_eq!(info.reason, "BRANCH_RESTRICTED");
        assert_eq!(info.domain, DOMAIN);
        let queue = to_status(FlowError::QueueFull).get_error_details();
        assert_eq!(queue.error_info().unwrap().reason, "QUEUE_FULL");
    }
}
