//! Generates the CRI types, clients and server traits from `proto/api.proto`.
//!
//! The proto is parsed with `protox` (pure Rust), so building needs no `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read when the script runs, not when it was compiled: a script built for one
    // checkout may run for another.
    let proto_dir = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("proto");
    let api = proto_dir.join("api.proto");
    println!("cargo:rerun-if-changed={}", api.display());
    let descriptors = protox::compile([&api], [&proto_dir])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .generate_default_stubs(true)
        .compile_fds(descriptors)?;
    Ok(())
}
