//! The end-to-end tests of the whole system, in one test binary (one link,
//! one process): the real server in process on loopback, bare git
//! repositories as remotes, the real CLIs as child processes, real browsers
//! and daemons where the feature needs them. Each module names what it
//! tests; `support` holds what they share.

mod support;

mod access_file;
mod api_contract;
mod artifact_cli;
mod auth;
mod auto_release;
mod bad_input;
mod build_uploads;
mod ci_client_credentials;
mod concurrent_writers;
mod dashboard;
mod dashboard_compare;
mod dashboard_glance;
mod dashboard_layout;
mod dashboard_sign_in;
mod deployment_events;
mod deployments;
mod error_reasons;
mod fault_tolerance;
mod grpc_web;
mod hamctl_cli;
mod index_snapshot;
mod legacy_history;
mod names;
mod notifications;
mod original_cli_lines;
mod original_eras;
mod policies;
mod push_pipeline;
mod reflection;
mod release_flows;
mod replicas;
mod s3_import;
mod signed_commits;
mod single_sign_on;
mod ssh_remote;
mod tls;
mod watch;
