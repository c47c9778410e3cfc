//! Compiles `proto/strata.proto` (the service clients use) and `proto/worker.proto` (how workers
//! and the daemon talk) with protox (a pure-Rust protobuf compiler, so protoc is not a
//! prerequisite), generates the tonic clients and servers, and writes the descriptor set of
//! `strata.proto` that the daemon serves through gRPC reflection.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("proto");
    let protos = [
        proto_dir.join("strata.proto"),
        proto_dir.join("worker.proto"),
    ];
    for proto in &protos {
        println!("cargo:rerun-if-changed={}", proto.display());
    }

    let descriptors = protox::compile(&protos, [&proto_dir])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    // Reflection describes the users' service only: the worker protocol is not served there.
    let public = prost_types::FileDescriptorSet {
        file: descriptors
            .file
            .iter()
            .filter(|file| file.name() == "strata.proto")
            .cloned()
            .collect(),
    };
    std::fs::write(
        out_dir.join("strata_descriptor.bin"),
        prost::Message::encode_to_vec(&public),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // An epoch's extra scalars in name order, wherever they are read or printed.
        .btree_map(".strata.v1.EpochRecord.extra")
        .compile_fds(descriptors)?;
    Ok(())
}
