//! What the two CLIs (`hamctl` and `artifact`) share: the accepted forms of
//! the server address, dialling the server with the bearer token attached to
//! every call, the one-line wording of a failed call (`tonic::Status` and
//! transport errors), and the exit-code contract (clap's help, version and
//! usage errors; a closed stdout; the final `error: ...` line), and request
//! ids: making them, and the safe retry of a write that may have landed.
//!
//! It owns only the parts that read the same in both programs; where they
//! differ (the environment variable that holds the token, colour) the caller
//! says. It must not parse a command line, build requests or interpret
//! responses: each CLI does that itself.
//!
//! It is a crate of its own, not part of the API crate, so that a Rust
//! client of the API does not pull in clap.

mod address;
mod dial;
mod exit;
mod request_id;
mod timeout;
mod wording;

pub use crate::address::parse_server_url;
pub use crate::dial::{
    access_client, connect, policy_client, release_client, AccessClient, AuthInterceptor,
    ConnectError, PolicyClient, ReleaseClient, CA_CERT_ENV,
};
pub use crate::exit::{
    is_broken_pipe, report_clap_error, report_outcome, Colour, EXIT_FAILURE, EXIT_SUCCESS,
    EXIT_USAGE,
};
pub use crate::request_id::{
    may_have_been_applied, new_request_id, parse_request_id, retry_command,
};
pub use crate::timeout::{parse_request_timeout, time_limit, DEFAULT_REQUEST_TIMEOUT};
pub use crate::wording::{
    describe_status, describe_unsure_write, error_chain, keep_lines, one_line,
};
