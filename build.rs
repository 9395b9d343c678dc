//! Generates the gRPC stubs from `proto/` without a system `protoc`: `protox`
//! parses the schema in process, `tonic-prost-build` writes the Rust code, and
//! the encoded descriptor set is written to `OUT_DIR` for server reflection.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/releasemanager/v1/common.proto",
        "proto/releasemanager/v1/errors.proto",
        "proto/releasemanager/v1/release_service.proto",
        "proto/releasemanager/v1/policy_service.proto",
        "proto/releasemanager/v1/access_service.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(files, ["proto"])?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    // protox does not write the descriptor set itself; reflection needs it.
    std::fs::write(
        out_dir.join("releasemanager_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    // Type names (`prost::Name`) let a client find a message's descriptor by
    // its full name, for the canonical proto3 JSON (`release_manager::json`).
    let mut config = tonic_prost_build::Config::new();
    config.enable_type_names();
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds_with_config(descriptors, config)?;
    Ok(())
}
