//! The one place where domain errors become `tonic::Status`. The match is
//! exhaustive so that a new error variant forces a decision here. Internal
//! causes are logged with their whole chain and never sent to the client.

use tonic::{Code, Status};

use crate::error::FlowError;

/// Converts a flow error into the status the client sees.
pub fn to_status(error: FlowError) -> Status {
    let code = match &error {
        FlowError::InvalidArgument(_) => Code::InvalidArgument,
        FlowError::NotFound(_) => Code::NotFound,
        FlowError::FailedPrecondition(_) => Code::FailedPrecondition,
        FlowError::AlreadyExists(_) => Code::AlreadyExists,
        FlowError::QueueFull => Code::ResourceExhausted,
        FlowError::DeadlineExceeded => Code::DeadlineExceeded,
        FlowError::WriterStopped => Code::Unavailable,
        FlowError::Conflict { .. } => Code::Aborted,
        FlowError::BatchTimedOut { .. } => Code::Unavailable,
        FlowError::RemoteUnavailable(_) => Code::Unavailable,
        FlowError::DiskFull { .. } => Code::ResourceExhausted,
        FlowError::NotPermitted { .. } => Code::Unavailable,
        FlowError::Internal(_) => Code::Internal,
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
    Status::new(code, error.to_string())
}

/// An error and all its sources on one line, for logs.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
