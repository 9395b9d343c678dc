//! What a start does with states kept elsewhere: carries over those an
//! earlier version kept in the data dir to the remote, and journals for
//! notifications the reports other replicas took while this one was down.

use serde::Deserialize;

use super::state::{Change, ServiceState};
use super::Deployments;
use crate::engine::events::ReportsAt;
use std::collections::BTreeMap;

/// The file an earlier version kept the states in.
pub(super) const LEGACY_FILE: &str = "deployments.json";

/// That file's contents.
#[derive(Deserialize)]
struct Legacy {
    version: u32,
    environments: BTreeMap<String, BTreeMap<String, ServiceState>>,
}

impl Deployments {
    /// Writes the states an earlier version kept in the data dir to the
    /// remote, when the remote has none yet; the file is removed once they
    /// are there.
    pub(super) fn migrate(&self, path: &std::path::Path) {
        let Ok(bytes) = std::fs::read(path) else {
            return;
        };
        if self.store.head().is_some() {
            tracing::info!(path = %path.display(), "the remote holds the deployment states; the data dir's copy is no longer read");
            let _ = std::fs::remove_file(path);
            return;
        }
        let legacy = match serde_json::from_slice::<Legacy>(&bytes) {
            Ok(legacy) if legacy.version == 1 => legacy,
            Ok(_) | Err(_) => {
                tracing::warn!(path = %path.display(), "unreadable deployment states in the data dir; not carried over");
                return;
            }
        };
        let mut changes = Vec::new();
        for (environment, services) in legacy.environments {
            for (service, state) in services {
                changes.push(Change::Service {
                    environment: environment.clone(),
                    service,
                    state,
                });
            }
        }
        match self.store.publish(&changes, "deployment states carried over from the data dir") {
            Ok(Some(_)) => {
                tracing::info!(path = %path.display(), states = changes.len(), "deployment states carried over to the remote");
                let _ = std::fs::remove_file(path);
            }
            Ok(None) => tracing::info!("another replica wrote the deployment states first; the data dir's copy is not carried over"),
            Err(e) => tracing::warn!(error = %crate::domain::chain(&e), "cannot carry the deployment states over to the remote; trying at the next start"),
        }
    }

    /// Journals the reports recorded after the journal's last one (taken
    /// by another replica while this one was down).
    pub(super) fn catch_up_journal(&self) {
        let Some(journal) = &self.journal else { return };
        let Some(cursor) = journal.last_report_cursor() else {
            return;
        };
        let Some(at) = ReportsAt::parse(&cursor) else {
            tracing::warn!(%cursor, "the notification journal's last report is unreadable; notifying reports from now on");
            return;
        };
        let recorded = match self.recorded_since(at) {
            Ok(Some(recorded)) => recorded,
            Ok(None) => {
                tracing::warn!(%cursor, "the notification journal's last report is not in the deployment record; notifying reports from now on");
                return;
            }
            Err(e) => {
                tracing::warn!(%cursor, error = %crate::domain::chain(&e), "cannot read the deployment record; notifying reports from now on");
                return;
            }
        };
        let mut told = 0;
        for (commit, from) in &recorded {
            for event in self.events_of(commit, *from) {
                crate::notify::journal_report(journal, &self.reader, &event);
                told += 1;
            }
        }
        if told > 0 {
            tracing::info!(
                reports = told,
                "notifications catching up with the deployment record"
            );
        }
    }
}
