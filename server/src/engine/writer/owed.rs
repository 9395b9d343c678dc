//! Auto-release bookkeeping: builds whose auto-releases are still to be
//! made, because the remote moved or failed before they were pushed. The
//! writer's loop owns it and hands it down; a later batch pays what is
//! owed.

use super::NewBuild;

/// Builds `(service, branch)` with auto-releases still to make.
#[derive(Debug, Default)]
pub(super) struct Owed(Vec<NewBuild>);

impl Owed {
    /// Adds builds.
    pub(super) fn extend(&mut self, builds: impl IntoIterator<Item = NewBuild>) {
        self.0.extend(builds);
    }

    /// Takes every build owed, each once, leaving nothing.
    pub(super) fn take(&mut self) -> Vec<NewBuild> {
        let mut builds = std::mem::take(&mut self.0);
        builds.sort();
        builds.dedup();
        builds
    }

    /// Whether nothing is owed.
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
