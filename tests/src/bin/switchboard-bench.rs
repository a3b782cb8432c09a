//! `switchboard-bench`: the load generator. Each scenario starts a proxy and
//! the `benchhub` app server from a build directory, runs for a bounded
//! time, and prints a JSON report and a one-line summary; see
//! `BENCHMARKS.md` for one command per scenario.
//!
//! ```text
//! cargo build --release -p switchboard-proxy --bin switchboard -p switchboard-sdk --example benchhub -p switchboard-tests --bin switchboard-bench
//! target/release/switchboard-bench broadcast --subscribers 10000
//! ```

#[path = "../bench.rs"]
mod bench;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    bench::main().await
}
