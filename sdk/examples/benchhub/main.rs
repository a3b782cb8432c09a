//! `benchhub`: the app server `switchboard-bench` measures the proxy with.
//!
//! It serves hub `benchhub` with two methods, `Echo(value)` (returns its
//! argument) and `JoinGroups(names)`, the negotiate route (the user comes
//! from the `user` query parameter), `GET /health`, and `POST /publish`,
//! which sends paced `Bench` messages through the sdk's [`HubContext`] to
//! every client or to random groups, so the load generator can offer a
//! precise message rate without one HTTP request per message.
//!
//! Every `Bench` message carries `[stream, seq, sentMicros, pad]`: the
//! stream it belongs to (one per publish, or one per group), its sequence
//! number in that stream from 0, the wall-clock send time in microseconds
//! since the Unix epoch, and `size` bytes of padding. Receivers on the same
//! machine compute latency, loss, duplicates and reordering from them.
//!
//! ```text
//! SWITCHBOARD_CONNECTION_STRING='Endpoint=http://127.0.0.1:8080;AccessKey=...' \
//!     benchhub --listen 127.0.0.1:5002
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde::{Deserialize, Serialize};
use switchboard_sdk::{
    ConnectionString, Context, Hub, HubContext, HubError, NegotiateOptions, Server,
};

/// The hub every bench client connects to.
const HUB: &str = "benchhub";
/// The client method publishes invoke.
const TARGET: &str = "Bench";
/// Longest publish accepted, so a mistyped request cannot run for hours.
const MAX_PUBLISH: Duration = Duration::from_secs(600);
/// How often the publisher wakes up to send what is due: short enough that
/// messages leave close to their scheduled time, long enough not to spin.
const PACING_TICK: Duration = Duration::from_millis(1);

/// The bench app server.
#[derive(Debug, Parser)]
struct Args {
    /// Address for the HTTP routes (negotiate, publish, health).
    #[arg(long)]
    listen: SocketAddr,
    /// Messages the link to the proxy may queue before sends wait; large so
    /// a fast publisher measures the proxy, not this queue. [default: 65536]
    #[arg(long, default_value_t = 65_536)]
    queue_capacity: usize,
    /// The proxy's connection string.
    #[arg(long, env = "SWITCHBOARD_CONNECTION_STRING", hide_env_values = true)]
    connection_string: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    let conn = ConnectionString::parse(&args.connection_string)
        .context("SWITCHBOARD_CONNECTION_STRING")?;
    let server = Server::builder(conn)
        .server_id("benchhub")
        .queue_capacity(args.queue_capacity)
        .hub(bench_hub())
        .start();
    // Bench users are named by the generator; nothing here is secret.
    let negotiate = server.negotiate_routes(|request| async move {
        let mut options = NegotiateOptions::new();
        if let Some(user) = request.query_param("user").filter(|user| !user.is_empty()) {
            options = options.user_id(user);
        }
        Ok(options)
    });
    let app = Router::new()
        .route("/health", get(health))
        .route("/publish", post(publish))
        .with_state(server.clone())
        .merge(negotiate);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(addr = %listener.local_addr()?, "benchhub listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    server.shutdown().await;
    Ok(())
}

fn bench_hub() -> Hub {
    Hub::builder(HUB)
        .method(
            "Echo",
            |_ctx: Context, (value,): (serde_json::Value,)| async move { Ok::<_, HubError>(value) },
        )
        .method(
            "JoinGroups",
            |ctx: Context, (groups,): (Vec<String>,)| async move {
                for group in &groups {
                    ctx.groups().join(group).await?;
                }
                Ok::<_, switchboard_sdk::Error>(groups.len())
            },
        )
        .build()
}

async fn health(State(server): State<Server>) -> impl IntoResponse {
    if server.is_ready() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "linking to the proxy")
    }
}

/// `POST /publish`: what to send, how fast and for how long.
#[derive(Debug, Deserialize)]
struct Publish {
    /// Messages per second, spread evenly over the run.
    rate: f64,
    /// How long to publish.
    seconds: f64,
    /// Padding bytes per message.
    size: usize,
    /// Stream id of the first (or only) stream.
    stream: u64,
    /// Groups to send to, one picked at random per message, group `i` being
    /// stream `stream + i`; empty sends every message to all clients.
    #[serde(default)]
    groups: Vec<String>,
}

/// The answer to `POST /publish`.
#[derive(Debug, Serialize)]
struct Published {
    /// Messages handed to the link.
    sent: u64,
    /// Messages the link refused (it was down).
    failed: u64,
    /// Messages sent per stream id, as `[stream, count]`.
    streams: Vec<(u64, u64)>,
    /// From the first send to the last.
    seconds: f64,
}

async fn publish(
    State(server): State<Server>,
    Json(request): Json<Publish>,
) -> Result<Json<Published>, (StatusCode, String)> {
    let bad = |why: String| (StatusCode::BAD_REQUEST, why);
    if !(request.rate > 0.0 && request.rate.is_finite()) {
        return Err(bad(format!(
            "rate must be a positive number, not {}",
            request.rate
        )));
    }
    if !(request.seconds > 0.0 && request.seconds <= MAX_PUBLISH.as_secs_f64()) {
        return Err(bad(format!(
            "seconds must be in (0, {}], not {}",
            MAX_PUBLISH.as_secs(),
            request.seconds
        )));
    }
    let hub = server.hub(HUB).ok_or_else(|| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("hub {HUB} is not served"),
        )
    })?;
    Ok(Json(run_publish(&hub, &request).await))
}

/// Sends what is due every [`PACING_TICK`], so the offered rate holds even
/// when single sends are slow to be queued.
async fn run_publish(hub: &HubContext, request: &Publish) -> Published {
    let padding = "x".repeat(request.size);
    let total = (request.rate * request.seconds).round().max(1.0) as u64;
    let mut seqs: BTreeMap<u64, u64> = BTreeMap::new();
    let (mut sent, mut failed) = (0u64, 0u64);
    let started = Instant::now();
    // Not the thread-local generator: this future moves between threads.
    let mut rng = StdRng::from_rng(&mut rand::rng());
    while sent + failed < total {
        let due = ((started.elapsed().as_secs_f64() * request.rate) as u64 + 1).min(total);
        while sent + failed < due {
            let (stream, audience) = if request.groups.is_empty() {
                (request.stream, hub.clients().all())
            } else {
                let i = rng.random_range(0..request.groups.len());
                (
                    request.stream + i as u64,
                    hub.clients().group(request.groups[i].clone()),
                )
            };
            let seq = seqs.entry(stream).or_default();
            let args = (stream, *seq, unix_micros(), padding.as_str());
            match audience.send(TARGET, args).await {
                Ok(()) => {
                    *seq += 1;
                    sent += 1;
                }
                Err(error) => {
                    tracing::warn!(%error, "publish send failed");
                    failed += 1;
                }
            }
        }
        tokio::time::sleep(PACING_TICK).await;
    }
    Published {
        sent,
        failed,
        streams: seqs.into_iter().collect(),
        seconds: started.elapsed().as_secs_f64(),
    }
}

fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default()
}
