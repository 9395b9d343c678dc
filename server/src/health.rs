//! What `grpc.health.v1` says once the server is ready: SERVING, except
//! while the remote's branch is locked by a lock that stays (no write can
//! land then, and a probe should say so), until the lock is gone.

use std::sync::Arc;
use std::time::Duration;

use release_manager::pb::policy_service_server::PolicyServiceServer;
use release_manager::pb::release_service_server::ReleaseServiceServer;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::api::policy_service::PolicyServiceHandler;
use crate::api::release_service::ReleaseServiceHandler;
use crate::engine::writer::WriterStats;

/// Sets the whole server (`""`) and both services to `status`.
pub(crate) async fn set_all(reporter: &HealthReporter, status: ServingStatus) {
    reporter
        .set_service_status(
            <ReleaseServiceServer<ReleaseServiceHandler> as tonic::server::NamedService>::NAME,
            status,
        )
        .await;
    reporter
        .set_service_status(
            <PolicyServiceServer<PolicyServiceHandler> as tonic::server::NamedService>::NAME,
            status,
        )
        .await;
    reporter.set_service_status("", status).await;
}

/// How often a known lock is looked at again.
const LOCK_CHECK: Duration = Duration::from_millis(500);

/// Says NOT_SERVING while the writer reports the remote's branch locked,
/// and SERVING again once the lock is gone; until `stop`.
pub(crate) async fn follow_remote_lock(
    reporter: HealthReporter,
    stats: Arc<WriterStats>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(LOCK_CHECK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut serving = true;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return,
        }
        let locked = stats.remote_locked();
        if locked == serving {
            serving = !locked;
            if locked {
                tracing::warn!("health: NOT_SERVING while the remote's branch is locked");
                set_all(&reporter, ServingStatus::NotServing).await;
            } else {
                tracing::info!("health: SERVING; the remote's branch is no longer locked");
                set_all(&reporter, ServingStatus::Serving).await;
            }
        }
    }
}
