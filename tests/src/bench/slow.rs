//! `slow`: a broadcast to N subscribers, first with everyone reading, then
//! with 1 % (by default) of them no longer reading. Reports the healthy
//! clients' latency in both phases, the proxy's memory and slow-consumer
//! closes over time, and how the slow clients saw their connection end once
//! they read again.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;
use serde_json::json;

use super::cli::Slow;
use super::publish::{self, Request};
use tokio::sync::oneshot;

use super::stack::{Usage, metric};
use super::worker::Command;

/// How often proxy memory and closes are sampled while slow clients stall.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// The proxy's counter of clients closed for a full outbox.
const OVERFLOWS: &str = "switchboard_outbox_overflows_total";

#[derive(Debug, Clone, Serialize)]
struct Sample {
    seconds: f64,
    proxy_rss_kib: u64,
    slow_consumers_closed: f64,
}

pub(super) async fn run(args: Slow) -> Result<()> {
    let common = &args.common;
    common.target.check_hub("slow")?;
    let limit = args.outbox_limit.to_string();
    // Its timeline reads one proxy's metrics.
    if common.replicas > 1 {
        anyhow::bail!("slow runs against one replica (--replicas 1)");
    }
    let mut stack = common.stack(&["--outbox-limit", &limit]).await?;
    let every = (100.0 / args.slow_percent).round().max(1.0) as u64;
    let (mut pool, connected) = common
        .pool(&stack, args.subscribers, |job| job.slow_every = Some(every))
        .await?;
    super::all_connected(&connected, args.subscribers)?;
    let slow = args.subscribers.div_ceil(every);
    let healthy = args.subscribers - slow;
    let drain = Duration::from_secs_f64(args.publishing.drain_seconds);
    let request = |stream| Request {
        rate: args.rate,
        seconds: args.publishing.step_seconds,
        size: args.size,
        stream,
        groups: Vec::new(),
    };
    // Memory and closes are sampled over all three phases: everyone
    // reading, slow clients stopped, slow clients reading again.
    let started = Instant::now();
    let (stop, stopped) = oneshot::channel();
    let sampler = tokio::spawn(sample(
        stack.proxy_pid(),
        stack.admin_url()?.to_owned(),
        started,
        stopped,
    ));
    let (before, _) = publish::step(&mut stack, &mut pool, &request(1), drain, |_| healthy).await?;
    pool.command(&Command::Pause).await?;
    let paused_at = started.elapsed().as_secs_f64();
    let (during, _) = publish::step(&mut stack, &mut pool, &request(2), drain, |_| healthy).await?;
    pool.command(&Command::Resume).await?;
    let resumed_at = started.elapsed().as_secs_f64();
    // Slow clients now read what reached them and then see how they ended.
    tokio::time::sleep(drain).await;
    let after = pool.command(&Command::Collect).await?;
    let _ = stop.send(());
    let timeline = sampler.await?;
    let closed = stack.metric(OVERFLOWS).await?;
    let first_close = timeline
        .iter()
        .find(|s| s.slow_consumers_closed > 0.0)
        .map(|s| s.seconds - paused_at);
    let peak_rss = timeline.iter().map(|s| s.proxy_rss_kib).max().unwrap_or(0);
    let p99_change = if before.latency_ms.p99 > 0.0 {
        during.latency_ms.p99 / before.latency_ms.p99 - 1.0
    } else {
        0.0
    };
    let report = json!({
        "scenario": "slow",
        "subscribers": connected.ok,
        "slow_clients": slow,
        "settings": common.describe(),
        "outbox_limit": args.outbox_limit,
        "before": before,
        "during": during,
        "healthy_p99_change": p99_change,
        "slow_consumers_closed": closed,
        "stopped_reading_at_seconds": paused_at,
        "resumed_reading_at_seconds": resumed_at,
        "first_close_seconds_after_stop": first_close,
        "slow_clients_ended": after.slow_ended,
        "healthy_clients_ended": after.ended,
        "proxy_rss_kib_peak": peak_rss,
        "timeline": timeline,
    });
    super::print(
        &report,
        &format!(
            "slow: {} subscribers, {slow} stop reading; healthy p99 {:.2} ms before, {:.2} ms during ({:+.0} %), lost {}; {closed} closed as slow consumers (first after {}), proxy RSS peak {peak_rss} KiB",
            connected.ok,
            before.latency_ms.p99,
            during.latency_ms.p99,
            p99_change * 100.0,
            before.lost + during.lost,
            first_close.map_or("-".to_owned(), |s| format!("{s:.2} s")),
        ),
    )
}

/// Samples proxy memory and slow-consumer closes until `stop` fires.
async fn sample(
    pid: u32,
    admin_url: String,
    since: Instant,
    mut stop: oneshot::Receiver<()>,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    loop {
        let rss = Usage::of(pid).map(|u| u.rss_kib).unwrap_or_default();
        let closed = metric(&admin_url, OVERFLOWS).await.unwrap_or_default();
        samples.push(Sample {
            seconds: since.elapsed().as_secs_f64(),
            proxy_rss_kib: rss,
            slow_consumers_closed: closed,
        });
        tokio::select! {
            _ = &mut stop => return samples,
            () = tokio::time::sleep(SAMPLE_EVERY) => {}
        }
    }
}
