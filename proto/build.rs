//! Compiles `proto/switchboard/v1/upstream.proto` (the app-server contract)
//! and `proto/switchboard/bus/v1/bus.proto` (messages between the nodes of a
//! cluster) with protox, so building needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/switchboard/v1/upstream.proto",
        "proto/switchboard/bus/v1/bus.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    // `bytes` fields become `bytes::Bytes` so payloads are shared, not copied.
    tonic_prost_build::configure().bytes(".").compile_fds(fds)?;
    Ok(())
}
