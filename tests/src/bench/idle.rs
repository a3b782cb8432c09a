//! `idle`: N connections held with no traffic: the proxy's resident memory
//! and the machine's slab memory per connection, and the proxy's CPU use
//! while they sit idle.

use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use super::cli::Idle;
use super::stack::slab_kib;

pub(super) async fn run(args: Idle) -> Result<()> {
    let common = &args.common;
    // Idle means idle: no keep-alive traffic either way while measuring.
    let mut stack = common
        .stack(&["--keep-alive-interval", "10m", "--client-timeout", "20m"])
        .await?;
    let settle = Duration::from_secs_f64(args.settle_seconds);
    let (rss0, slab0) = (stack.proxy_usage()?.rss_kib, slab_kib()?);
    let (_pool, connected) = common
        .pool(&stack, args.connections, |job| job.ping_every_ms = None)
        .await?;
    super::all_connected(&connected, args.connections)?;
    tokio::time::sleep(settle).await;
    let held = stack.proxy_usage()?;
    let slab1 = slab_kib()?;
    tokio::time::sleep(settle).await;
    let later = stack.proxy_usage()?;
    let n = connected.ok.max(1) as f64;
    let per = |before: u64, after: u64| after.saturating_sub(before) as f64 * 1024.0 / n;
    let idle_cpu = (later.cpu_seconds - held.cpu_seconds) / settle.as_secs_f64();
    let report = json!({
        "scenario": "idle",
        "connections": connected.ok,
        "settings": common.describe(),
        "system": stack.about(),
        "connect_seconds": connected.seconds,
        "generator_rss_kib": connected.rss_kib,
        "proxy_rss_kib_before": rss0,
        "proxy_rss_kib_after": held.rss_kib,
        "proxy_rss_bytes_per_connection": per(rss0, held.rss_kib),
        "slab_bytes_per_connection_both_ends": per(slab0, slab1),
        "proxy_idle_cpu_share": idle_cpu,
        "idle_cpu_window_seconds": settle.as_secs_f64(),
    });
    super::print(
        &report,
        &format!(
            "idle: {} connections ({}); server RSS {:.0} B/connection; kernel slab {:.0} B/connection (both ends); idle server CPU {:.2} % of a core",
            connected.ok,
            common.label(),
            per(rss0, held.rss_kib),
            per(slab0, slab1),
            idle_cpu * 100.0
        ),
    )
}
