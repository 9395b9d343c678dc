//! The release manager server: a tonic gRPC server in front of a single
//! writer that owns a persistent mirror of the config repository.
//!
//! [`start`] opens (or clones) the mirror, reads history into the index,
//! starts the writer thread and serves gRPC on a listener the caller bound,
//! so tests can bind `127.0.0.1:0` first and never sleep.

mod api;
mod auth;
mod commit_flags;
pub mod config;
mod demo;
mod deployments;
mod domain;
mod engine;
mod flows;
mod health;
mod http;
mod import;
mod listen;
mod notify;
pub mod original;
mod repo;
mod start;

// The facade: what `main`, the tests and the benchmark use. Everything
// else is crate-private, so the compiler reports what nothing uses.
pub use auth::{Auth, OidcSettings, TrustedIssuer};
pub use config::{CorsPolicy, ServerConfig, TlsFiles};
pub use demo::DEMO_SERVICES;
pub use domain::error::chain;
pub use domain::policy_file::parse_global as parse_global_restrictions;
pub use engine::writer::stats::WriterStats;
pub use http::dashboard::values::CommitLinks;
pub use http::deployment_hooks::Sources as DeploymentSources;
pub use import::{
    resolve_import, run as import_s3, ImportBucket, ImportConfig, ImportError, ImportReport,
    ImportS3Args,
};
pub use listen::{raise_open_file_limit, ConnectionLimits};
pub use notify::config::Notifications;
pub use repo::commits::{CommitIdentity, CommitSigner};
pub use repo::remote::{GitCredentials, RemoteLocation, SHIPPED_KNOWN_HOSTS};
pub use start::{start, RunningServer, StartError, StartReport};

/// The pack writer, for the benchmark's repository generator.
#[doc(hidden)]
pub mod pack {
    pub use crate::repo::pack::{zlib, Pack, PackWriter};
}
