//! The one mapping from domain errors to HTTP status codes, exhaustive so
//! that a new error variant forces a decision here (the gRPC edge has its
//! own in `api::errors`).

use axum::http::StatusCode;

use crate::domain::FlowError;

/// The HTTP status of an error.
pub(crate) fn status_of(error: &FlowError) -> StatusCode {
    match error {
        FlowError::InvalidArgument { .. } => StatusCode::BAD_REQUEST,
        FlowError::NotFound { .. } => StatusCode::NOT_FOUND,
        FlowError::FailedPrecondition { .. } | FlowError::AlreadyExists(_) => StatusCode::CONFLICT,
        FlowError::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
        FlowError::PermissionDenied { .. } => StatusCode::FORBIDDEN,
        FlowError::QueueFull => StatusCode::TOO_MANY_REQUESTS,
        FlowError::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        FlowError::DiskFull { .. } => StatusCode::INSUFFICIENT_STORAGE,
        FlowError::WriterStopped
        | FlowError::Conflict { .. }
        | FlowError::BatchTimedOut { .. }
        | FlowError::RemoteUnavailable(_)
        | FlowError::NotPermitted { .. } => StatusCode::SERVICE_UNAVAILABLE,
        FlowError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
