//! `idle`: N connections held with no traffic: the proxy's resident memory
//! and the machine's slab memory per connection, and the proxy's CPU use
//! while they sit idle. With several replicas: the connections each holds,
//! its memory per connection, and the Redis they share.

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
    let replicas0 = stack.replica_usage()?;
    let (_pool, connected) = common
        .pool(&stack, args.connections, |job| job.ping_every_ms = None)
        .await?;
    super::all_connected(&connected, args.connections)?;
    tokio::time::sleep(settle).await;
    let held = stack.proxy_usage()?;
    let replicas1 = stack.replica_usage()?;
    let slab1 = slab_kib()?;
    let redis0 = stack.redis_snapshot().await?;
    tokio::time::sleep(settle).await;
    let later = stack.proxy_usage()?;
    let redis = match (redis0, stack.redis_snapshot().await?) {
        (Some(before), Some(after)) => Some(before.load_until(&after)),
        _ => None,
    };
    let on_replicas = stack.replica_connections().await?;
    let total_held: u64 = on_replicas.iter().sum();
    // Memory per connection of each replica, from what it holds itself.
    let replicas: Vec<_> = on_replicas
        .iter()
        .zip(replicas0.iter().zip(&replicas1))
        .map(|(&held, (before, after))| {
            json!({
                "connections": held,
                "rss_kib_before": before.rss_kib,
                "rss_kib_after": after.rss_kib,
                "rss_bytes_per_connection": after.rss_kib.saturating_sub(before.rss_kib) as f64
                    * 1024.0
                    / held.max(1) as f64,
            })
        })
        .collect();
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
        // Peers have no replicas to ask.
        "connections_held_by_replicas": (stack.replica_count() > 0).then_some(total_held),
        "replicas": replicas,
        "redis_while_idle": redis,
    });
    let spread = if replicas.len() > 1 {
        format!(
            "; {total_held} held across {} replicas ({})",
            replicas.len(),
            on_replicas
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(" + ")
        )
    } else {
        String::new()
    };
    super::print(
        &report,
        &format!(
            "idle: {} connections ({}); server RSS {:.0} B/connection; kernel slab {:.0} B/connection (both ends); idle server CPU {:.2} % of a core{spread}",
            connected.ok,
            common.label(),
            per(rss0, held.rss_kib),
            per(slab0, slab1),
            idle_cpu * 100.0
        ),
    )
}
