//! The vocabulary and rules every layer shares: the errors a request can
//! meet (and their stable reasons), the server-wide settings, the policy
//! file and its rules, and the catalog of services. Above `repo` only: it
//! reads trees, it never writes, queues or serves.

pub(crate) mod catalog;
pub(crate) mod deployment;
pub(crate) mod duration;
pub(crate) mod error;
pub(crate) mod policy_file;
mod settings;

pub(crate) use error::{chain, git, FlowError, Reason};
pub(crate) use settings::Settings;
