//! `broadcast`: N subscribers, `benchhub` publishing to all of them at
//! stepped rates for each payload size. Finds the highest delivery rate
//! whose step passed (p99 under the limit, nothing lost, at least 90 % of
//! the offered rate delivered), then measures latency at half that rate.

use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use super::cli::Broadcast;
use super::publish::{self, Request, Step};
use super::stack::Stack;
use super::worker::Pool;

/// Share of the offered delivery rate a step must reach to pass.
const KEEP_UP: f64 = 0.9;

/// With several replicas, how many connections each holds, for summaries.
pub(super) async fn spread(stack: &Stack) -> Result<String> {
    if stack.replica_count() < 2 {
        return Ok(String::new());
    }
    let held = stack.replica_connections().await?;
    Ok(format!(
        ", held {}",
        held.iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" + ")
    ))
}

/// Whether a step kept up within the latency limit.
pub(super) fn passed(step: &Step, p99_limit_ms: f64) -> bool {
    step.lost == 0
        && step.send_failures == 0
        && step.latency_ms.p99 < p99_limit_ms
        && step.deliveries_per_second >= KEEP_UP * step.offered_deliveries_per_second
}

pub(super) async fn run(args: Broadcast) -> Result<()> {
    let common = &args.common;
    let mut stack = common.stack(&[]).await?;
    let (mut pool, connected) = common.pool(&stack, args.subscribers, |_| {}).await?;
    super::all_connected(&connected, args.subscribers)?;
    let drain = Duration::from_secs_f64(args.publishing.drain_seconds);
    let receivers = |_stream: u64| args.subscribers;
    let mut stream = 0;
    let mut sizes = Vec::new();
    let mut summary = Vec::new();
    for &size in &args.sizes {
        let mut steps: Vec<Step> = Vec::new();
        let mut offer = async |rate: f64, stack: &mut Stack, pool: &mut Pool| -> Result<bool> {
            stream += 1;
            let request = Request {
                rate,
                seconds: args.publishing.step_seconds,
                size,
                stream,
                groups: Vec::new(),
            };
            let (step, _) = publish::step(stack, pool, &request, drain, receivers).await?;
            let ok = passed(&step, args.p99_limit_ms);
            steps.push(step);
            Ok(ok)
        };
        // Steps up by `factor` until a step fails, then bisects (geometric
        // mean) between the last rate that passed and the first that failed.
        let (mut passing, mut failing) = (None, None);
        let mut rate = args.start_rate;
        for _ in 0..args.max_steps {
            if offer(rate, &mut stack, &mut pool).await? {
                passing = Some(rate);
                rate *= args.factor;
            } else {
                failing = Some(rate);
                break;
            }
        }
        if let (Some(mut low), Some(mut high)) = (passing, failing) {
            for _ in 0..args.refine {
                let middle = (low * high).sqrt();
                if offer(middle, &mut stack, &mut pool).await? {
                    low = middle;
                } else {
                    high = middle;
                }
            }
        }
        let best = steps
            .iter()
            .filter(|step| passed(step, args.p99_limit_ms))
            .max_by(|a, b| a.deliveries_per_second.total_cmp(&b.deliveries_per_second))
            .cloned();
        let half = match &best {
            Some(best) => {
                stream += 1;
                let request = Request {
                    rate: best.rate / 2.0,
                    seconds: args.publishing.step_seconds,
                    size,
                    stream,
                    groups: Vec::new(),
                };
                Some(
                    publish::step(&mut stack, &mut pool, &request, drain, receivers)
                        .await?
                        .0,
                )
            }
            None => None,
        };
        let max_rate = best.as_ref().map_or(0.0, |b| b.deliveries_per_second);
        let lost: u64 = steps.iter().chain(half.as_ref()).map(|s| s.lost).sum();
        summary.push(match &half {
            Some(half) => format!(
                "{size} B: max {max_rate:.0} deliveries/s with p99 < {} ms; at half: p50 {:.2} / p99 {:.2} / p99.9 {:.2} / max {:.2} ms, {:.2} proxy CPU-s per million{}",
                args.p99_limit_ms,
                half.latency_ms.p50,
                half.latency_ms.p99,
                half.latency_ms.p999,
                half.latency_ms.max,
                half.proxy_cpu_seconds_per_million,
                half.redis.as_ref().map_or_else(String::new, |redis| format!(
                    // Over the publishing time, as the delivery rate is.
                    ", Redis {:.0} msgs/s and {:.0} commands/s, {:.3} CPU-s",
                    redis.messages_published as f64 / half.publish_seconds.max(1e-3),
                    redis.commands as f64 / half.publish_seconds.max(1e-3),
                    redis.cpu_seconds
                )),
            ),
            None => format!("{size} B: no step passed (p99 < {} ms, no loss)", args.p99_limit_ms),
        });
        sizes.push(json!({
            "size": size,
            "max_deliveries_per_second": max_rate,
            "steps": steps,
            "half_rate": half,
            "lost": lost,
        }));
    }
    let report = json!({
        "scenario": "broadcast",
        "subscribers": connected.ok,
        "settings": common.describe(),
        "system": stack.about(),
        "p99_limit_ms": args.p99_limit_ms,
        "sizes": sizes,
        "replicas": stack.replicas_report().await?,
    });
    super::print(
        &report,
        &format!(
            "broadcast: {} subscribers ({}{}); {}",
            connected.ok,
            common.label(),
            spread(&stack).await?,
            summary.join("; ")
        ),
    )
}
