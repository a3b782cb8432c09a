//! `echo`: clients invoke `Echo` back to back; every round trip crosses
//! client → proxy → link → app server → link → proxy → client.

use anyhow::Result;
use serde_json::json;

use super::cli::Echo;
use super::worker::Command;

pub(super) async fn run(args: Echo) -> Result<()> {
    let common = &args.common;
    common.target.check_hub("echo")?;
    let mut stack = common.stack(&[]).await?;
    let (mut pool, connected) = common
        .pool(&stack, args.clients, |job| job.echo = true)
        .await?;
    super::all_connected(&connected, args.clients)?;
    let before = stack.proxy_usage()?;
    let window = pool
        .command(&Command::Echo {
            seconds: args.seconds,
            size: args.size,
        })
        .await?;
    let after = stack.proxy_usage()?;
    let part = &window.healthy;
    let trips = part.latency.count();
    let rate = trips as f64 / args.seconds;
    let latency = part.latency.summary_ms();
    let report = json!({
        "scenario": "echo",
        "clients": connected.ok,
        "settings": common.describe(),
        "seconds": args.seconds,
        "payload_bytes": args.size,
        "round_trips": trips,
        "round_trips_per_second": rate,
        "errors": part.errors,
        "first_error": part.first_error,
        "latency_ms": latency,
        "proxy_cpu_seconds": after.cpu_seconds - before.cpu_seconds,
    });
    super::print(
        &report,
        &format!(
            "echo: {} clients ({}), {rate:.0} round trips/s, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, {} errors",
            connected.ok, common.protocol, latency.p50, latency.p99, latency.p999, part.errors
        ),
    )
}
