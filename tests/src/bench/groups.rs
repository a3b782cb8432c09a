//! `groups`: every connection joins one group of each size; for each size
//! in turn, `benchhub` sends to random groups of that size.

use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use super::cli::Groups;
use super::publish::{self, Request};

/// Stream ids of one phase start at `phase * PHASE_STREAMS`.
const PHASE_STREAMS: u64 = 1_000_000;

pub(super) async fn run(args: Groups) -> Result<()> {
    let common = &args.common;
    let mut stack = common.stack(&[]).await?;
    let sizes = args.group_sizes.clone();
    let (mut pool, connected) = common
        .pool(&stack, args.connections, |job| {
            job.group_sizes.clone_from(&sizes)
        })
        .await?;
    super::all_connected(&connected, args.connections)?;
    let drain = Duration::from_secs_f64(args.publishing.drain_seconds);
    let mut phases = Vec::new();
    let mut summary = Vec::new();
    for (phase, &size) in args.group_sizes.iter().enumerate() {
        let groups = args.connections.div_ceil(size);
        let base = (phase as u64 + 1) * PHASE_STREAMS;
        let request = Request {
            rate: args.rate,
            seconds: args.publishing.step_seconds,
            size: args.size,
            stream: base,
            groups: (0..groups).map(|k| format!("s{size}-{k}")).collect(),
        };
        // Group k holds clients k*size .. (k+1)*size; the last may be short.
        let members = |stream: u64| {
            let k = stream - base;
            size.min(args.connections - k * size)
        };
        let (step, _) = publish::step(&mut stack, &mut pool, &request, drain, members).await?;
        summary.push(format!(
            "groups of {size}: {:.0} deliveries/s, p50 {:.2} / p99 {:.2} ms, lost {}{}",
            step.deliveries_per_second,
            step.latency_ms.p50,
            step.latency_ms.p99,
            step.lost,
            step.redis
                .as_ref()
                .map_or_else(String::new, |redis| format!(
                    ", Redis {:.0} msgs/s, {:.3} CPU-s",
                    redis.messages_published as f64 / step.publish_seconds.max(1e-3),
                    redis.cpu_seconds
                )),
        ));
        phases.push(json!({"group_size": size, "groups": groups, "step": step}));
    }
    let report = json!({
        "scenario": "groups",
        "connections": connected.ok,
        "settings": common.describe(),
        "system": stack.about(),
        "phases": phases,
        "replicas": stack.replicas_report().await?,
    });
    super::print(
        &report,
        &format!(
            "groups: {} connections ({}{}), {} msgs/s of {} B to random groups; {}",
            connected.ok,
            common.label(),
            super::broadcast::spread(&stack).await?,
            args.rate,
            args.size,
            summary.join("; ")
        ),
    )
}
