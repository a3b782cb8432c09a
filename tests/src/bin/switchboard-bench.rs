//! `switchboard-bench`: the load generator. Each scenario starts a proxy and
//! the `benchhub` app server from a build directory, runs for a bounded
//! time, and prints a JSON report and a one-line summary; see
//! `BENCHMARKS.md` for one command per scenario. `--target pushpin|socketio`
//! runs a scenario against a peer instead, and `compare -- SCENARIO ...`
//! runs it against each system and prints Switchboard / peer ratios.
//!
//! ```text
//! cargo build --release -p switchboard-proxy --bin switchboard -p switchboard-sdk --example benchhub -p switchboard-tests --bin switchboard-bench
//! target/release/switchboard-bench broadcast --subscribers 10000
//! target/release/switchboard-bench broadcast --subscribers 10000 --replicas 4
//! target/release/switchboard-bench compare -- broadcast --subscribers 10000 --start-rate 5
//! ```

#[path = "../bench.rs"]
mod bench;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    bench::main().await
}
