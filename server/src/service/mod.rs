//! tonic handlers: check the token, validate and convert the request, call a
//! read query or the writer, convert the answer. No git here.

pub mod convert;
pub mod policy;
pub mod release;
