//! Compiles `proto/switchboard/v1/upstream.proto` with protox, so building
//! needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/switchboard/v1/upstream.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"])?;
    // `bytes` fields become `bytes::Bytes` so payloads are shared, not copied.
    tonic_prost_build::configure().bytes(".").compile_fds(fds)?;
    Ok(())
}
