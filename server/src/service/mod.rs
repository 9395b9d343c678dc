//! tonic handlers: check the token, validate and convert the request, call a
//! read query or the writer, convert the answer. No git here.

pub mod convert;
pub mod policy;
pub mod release;
pub mod upload;

use tonic::Status;
use tracing::Instrument;

use crate::flows::{WriteDone, WriteRequest};
use crate::status::to_status;
use crate::writer::WriterHandle;

/// Sends a write to the writer inside a span carrying the request id, and
/// logs the outcome.
pub(crate) async fn write(
    writer: &WriterHandle,
    request: WriteRequest,
) -> Result<WriteDone, Status> {
    // A request without an id logs none, rather than `request_id=""`.
    let span = tracing::info_span!("write", request_id = tracing::field::Empty);
    if let Some(id) = &request.request_id {
        span.record("request_id", id.as_str());
    }
    async {
        let intent = request.intent.summary();
        match writer.submit(request).await {
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
