//! The release manager's API crate: the generated gRPC stubs of `proto/`, and
//! the types the server and both CLIs share (names rules, the artifact.json
//! spec, the duration grammar, the API's canonical JSON). It never touches git, and a Rust client of
//! the API pulls in no command-line parsing: the plumbing both CLIs share
//! lives in their own crate (`cli-support/`).

pub mod duration;
pub mod json;
pub mod names;
pub mod spec;

/// Generated protobuf messages and gRPC clients/servers of
/// `releasemanager.v1`.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("releasemanager.v1");

    /// Encoded file descriptor set of the schema, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("releasemanager_descriptor");
}
