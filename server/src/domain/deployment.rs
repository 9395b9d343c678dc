//! What a controller says about a release: its state in the cluster, and
//! the report that said so; and what it says about a whole environment
//! when its words name no service (a reconciliation error).

use serde::{Deserialize, Serialize};

/// How far a release got in the cluster, as a report says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum State {
    /// Being applied.
    Progressing,
    /// Applied and healthy.
    Succeeded,
    /// Failed to apply, or unhealthy.
    Failed,
}

impl State {
    /// The word used in metrics, logs and the generic route: the API's
    /// (`DEPLOYMENT_STATE_DEPLOYED` is `deployed`).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            State::Progressing => "progressing",
            State::Succeeded => "deployed",
            State::Failed => "failed",
        }
    }

    /// The state a word names (`progressing`, `deployed`, `failed`; also
    /// the proto's names, and `succeeded`, the word before v1).
    pub(crate) fn parse(word: &str) -> Option<State> {
        match word.trim().to_ascii_lowercase().as_str() {
            "progressing" | "deployment_state_progressing" => Some(State::Progressing),
            "deployed"
            | "succeeded"
            | "deployment_state_deployed"
            | "deployment_state_succeeded" => Some(State::Succeeded),
            "failed" | "deployment_state_failed" => Some(State::Failed),
            _ => None,
        }
    }
}

/// The latest report on one release, as watchers and status see it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Deployment {
    /// The state reported.
    pub(crate) state: State,
    /// The controller's words.
    pub(crate) message: String,
    /// The config repository commit it applied.
    pub(crate) revision: String,
    /// When it was reported, in seconds since the epoch.
    pub(crate) reported_at: i64,
    /// When the controller observed it (its event's own time), in
    /// nanoseconds since the epoch, if the report said.
    pub(crate) observed_at: Option<i64>,
    /// Who reported.
    pub(crate) source: String,
}

/// A controller object failed to reconcile an environment, and its words
/// named no service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ReconciliationError {
    /// Who reported (`flux:<namespace>/<name>`, ...).
    pub(crate) source: String,
    /// The controller's words.
    pub(crate) message: String,
    /// The config repository commit it tried to apply.
    pub(crate) revision: String,
    /// When it was reported, in seconds since the epoch.
    pub(crate) reported_at: i64,
    /// When the controller observed it, in nanoseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) observed_at: Option<i64>,
}
