//! The vocabulary and rules every layer shares: the errors a request can
//! meet (and their stable reasons), the server-wide settings, the policy
//! file and its rules, and the catalog of services. Above `repo` only: it
//! reads trees, it never writes, queues or serves.

pub mod catalog;
pub mod deployment;
pub mod duration;
pub mod error;
pub mod policy_file;
mod settings;

pub use error::{chain, git, FlowError, Reason};
pub use settings::Settings;
