//! One measured publish: asks `benchhub` to publish at a rate for a while,
//! collects what the workers received until every expected delivery
//! arrived (or the drain time passed), and sums it up with the proxy's CPU
//! time over the step (each replica's, and the load on their Redis).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

use super::redis::Load;
use super::stack::Stack;
use super::stats::{Percentiles, Window};
use super::worker::{Command, Pool};

/// How often the parent asks workers for their counts while draining.
const POLL: Duration = Duration::from_millis(100);

/// The body of `POST /publish` (see `sdk/examples/benchhub`).
#[derive(Debug, Clone, Serialize)]
pub struct Request {
    /// Messages per second.
    pub rate: f64,
    /// How long.
    pub seconds: f64,
    /// Padding bytes per message.
    pub size: usize,
    /// First stream id.
    pub stream: u64,
    /// Groups (stream `stream + i` for group `i`); empty for all clients.
    pub groups: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Published {
    sent: u64,
    failed: u64,
    streams: Vec<(u64, u64)>,
    seconds: f64,
}

/// The outcome of one step.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// Offered messages per second.
    pub rate: f64,
    /// Payload bytes.
    pub size: usize,
    /// Messages published.
    pub sent: u64,
    /// Messages the app server's link refused.
    pub send_failures: u64,
    /// Seconds from the first publish to the last.
    pub publish_seconds: f64,
    /// Deliveries expected to healthy receivers.
    pub expected: u64,
    /// Distinct deliveries to healthy receivers.
    pub delivered: u64,
    /// Expected deliveries that never arrived.
    pub lost: u64,
    /// Deliveries of a message a receiver already had.
    pub duplicates: u64,
    /// Deliveries after a later message of the same stream.
    pub reordered: u64,
    /// Offered deliveries per second (rate × receivers).
    pub offered_deliveries_per_second: f64,
    /// Distinct deliveries over the publishing time.
    pub deliveries_per_second: f64,
    /// Send-to-receive latency of healthy receivers.
    pub latency_ms: Percentiles,
    /// Proxy CPU time (user + system) over the step and its drain.
    pub proxy_cpu_seconds: f64,
    /// Proxy CPU-seconds per million distinct deliveries.
    pub proxy_cpu_seconds_per_million: f64,
    /// With several replicas: each one's CPU time over the step, in
    /// replica order (they add up to `proxy_cpu_seconds`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replica_cpu_seconds: Vec<f64>,
    /// With several replicas: what their Redis did over the step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<Load>,
}

/// Runs one publish. `receivers(stream)` is how many healthy clients each
/// message of `stream` should reach.
pub async fn step(
    stack: &mut Stack,
    pool: &mut Pool,
    request: &Request,
    drain: Duration,
    receivers: impl Fn(u64) -> u64,
) -> Result<(Step, Window)> {
    // Starts the window afresh: late arrivals of an earlier step are not counted here.
    pool.command(&Command::Collect).await?;
    let before = stack.proxy_usage()?;
    let replicas_before = stack.replica_usage()?;
    let redis_before = stack.redis_snapshot().await?;
    let published = publish(stack.app_url(), request).await?;
    let expected: u64 = published
        .streams
        .iter()
        .map(|(stream, sent)| sent * receivers(*stream))
        .sum();
    let per_stream: BTreeMap<u64, u64> = published.streams.iter().copied().collect();
    // Streams of other steps (late arrivals) are not this step's deliveries.
    let delivered = |window: &Window| -> u64 {
        window
            .healthy
            .streams
            .iter()
            .filter(|(stream, _)| per_stream.contains_key(stream))
            .map(|(_, counts)| counts.unique())
            .sum()
    };
    let mut window = Window::default();
    let deadline = Instant::now() + drain;
    loop {
        window.merge(&pool.command(&Command::Collect).await?);
        if delivered(&window) >= expected || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let after = stack.proxy_usage()?;
    let replicas_after = stack.replica_usage()?;
    let redis = match (redis_before, stack.redis_snapshot().await?) {
        (Some(before), Some(after)) => Some(before.load_until(&after)),
        _ => None,
    };
    let replica_cpu_seconds = if stack.replica_count() > 1 {
        replicas_before
            .iter()
            .zip(&replicas_after)
            .map(|(b, a)| a.cpu_seconds - b.cpu_seconds)
            .collect()
    } else {
        Vec::new()
    };
    let totals = window.healthy.totals();
    let delivered = delivered(&window);
    let cpu = after.cpu_seconds - before.cpu_seconds;
    let receivers_per_message = if published.sent > 0 {
        expected as f64 / published.sent as f64
    } else {
        0.0
    };
    let step = Step {
        rate: request.rate,
        size: request.size,
        sent: published.sent,
        send_failures: published.failed,
        publish_seconds: published.seconds,
        expected,
        delivered,
        lost: expected.saturating_sub(delivered),
        duplicates: totals.duplicates,
        reordered: totals.reordered,
        offered_deliveries_per_second: request.rate * receivers_per_message,
        deliveries_per_second: delivered as f64 / published.seconds.max(1e-3),
        latency_ms: window.healthy.latency.summary_ms(),
        proxy_cpu_seconds: cpu,
        proxy_cpu_seconds_per_million: if delivered > 0 {
            cpu * 1e6 / delivered as f64
        } else {
            0.0
        },
        replica_cpu_seconds,
        redis,
    };
    Ok((step, window))
}

async fn publish(app_url: &str, request: &Request) -> Result<Published> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs_f64(request.seconds + 60.0))
        .build()?;
    let response = http
        .post(format!("{app_url}/publish"))
        .json(request)
        .send()
        .await
        .context("POST /publish")?;
    let status = response.status();
    let body = response.text().await?;
    if !status.is_success() {
        bail!("POST /publish answered {status}: {body}");
    }
    serde_json::from_str(&body).with_context(|| format!("POST /publish answered {body:?}"))
}
