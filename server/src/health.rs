//! What `grpc.health.v1` says once the server is ready: SERVING, except
//! that the two services (`releasemanager.v1.ReleaseService`,
//! `PolicyService`: what readiness probes ask) say NOT_SERVING while the
//! remote's branch is locked by a lock that stays (no write can land
//! then), until the lock is gone. The server's overall health (`""`, what
//! liveness probes ask) stays SERVING: a restart would not remove a lock
//! the server did not make.

use std::sync::Arc;
use std::time::Duration;

use release_manager::pb::policy_service_server::PolicyServiceServer;
use release_manager::pb::release_service_server::ReleaseServiceServer;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::api::policy_service::PolicyServiceHandler;
use crate::api::release_service::ReleaseServiceHandler;
use crate::engine::writer::WriterStats;

/// How often a known lock is looked at again.
const LOCK_CHECK: Duration = Duration::from_millis(500);

/// Sets both services to `status`, leaving the overall health as it is.
async fn set_services(reporter: &HealthReporter, status: ServingStatus) {
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
}

/// Says NOT_SERVING (for both services) while the writer reports the
/// remote's branch locked, and SERVING again once the lock is gone; until
/// `stop`.
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
                set_services(&reporter, ServingStatus::NotServing).await;
            } else {
                tracing::info!("health: SERVING; the remote's branch is no longer locked");
                set_services(&reporter, ServingStatus::Serving).await;
            }
        }
    }
}
