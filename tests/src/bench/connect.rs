//! `connect`: a connection storm. Every worker opens its share of the
//! connections with `--concurrency` in flight; each connect is timed from
//! the first request (negotiate, or the minted token) through the
//! WebSocket upgrade to the handshake answer.

use std::time::Instant;

use anyhow::Result;
use serde_json::json;

use super::cli::Connect;

pub(super) async fn run(args: Connect) -> Result<()> {
    let common = &args.common;
    let mut stack = common.stack(&[]).await?;
    let before = stack.proxy_usage()?;
    let started = Instant::now();
    let (_pool, connected) = common.pool(&stack, args.connections, |_| {}).await?;
    let wall = started.elapsed().as_secs_f64();
    let after = stack.proxy_usage()?;
    let rate = connected.ok as f64 / connected.seconds.max(1e-3);
    let times = connected.connect_us.summary_ms();
    let report = json!({
        "scenario": "connect",
        "settings": common.describe(),
        "system": stack.about(),
        "concurrency_per_worker": common.concurrency,
        "connections": connected.ok,
        "failed": connected.failed,
        "first_error": connected.first_error,
        "connect_seconds": connected.seconds,
        "generator_rss_kib": connected.rss_kib,
        "seconds_including_worker_start": wall,
        "connections_per_second": rate,
        "connect_ms": times,
        "proxy_cpu_seconds": after.cpu_seconds - before.cpu_seconds,
        "proxy_rss_kib": after.rss_kib,
        "replicas": stack.replicas_report().await?,
    });
    super::print(
        &report,
        &format!(
            "connect: {} connections ({}) in {:.2} s: {rate:.0} connections/s, p50 {:.2} ms, p99 {:.2} ms, {} failed",
            connected.ok,
            common.label(),
            connected.seconds,
            times.p50,
            times.p99,
            connected.failed
        ),
    )
}
