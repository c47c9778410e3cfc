//! Compiles `proto/strata.proto` with protox (a pure-Rust protobuf compiler, so protoc is not a
//! prerequisite), generates the tonic client and server, and writes the descriptor set that the
//! daemon serves through gRPC reflection.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("proto");
    let proto = proto_dir.join("strata.proto");
    println!("cargo:rerun-if-changed={}", proto.display());

    let descriptors = protox::compile([&proto], [&proto_dir])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("strata_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // An epoch's extra scalars in name order, wherever they are read or printed.
        .btree_map(".strata.v1.EpochRecord.extra")
        .compile_fds(descriptors)?;
    Ok(())
}
