//! The Redis that replicas share in a multi-replica run: a `redis-server`
//! started on a free loopback port without persistence, and what it says
//! about its load (`INFO stats`, `INFO commandstats`) plus its CPU time and
//! resident memory from `/proc`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

use super::stack::{Server, Usage};
use switchboard_tests::ports::free_port;

/// Where Debian's `redis-server` package installs the server.
const REDIS_SERVER: &str = "/usr/bin/redis-server";
/// How long Redis may take to answer `PING`.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `redis-server`, killed on drop.
pub struct Redis {
    server: Server,
    port: u16,
}

/// Redis's counters at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    /// `total_commands_processed` of `INFO stats`.
    commands: u64,
    /// Calls of `PUBLISH` (`cmdstat_publish` of `INFO commandstats`).
    publishes: u64,
    /// `instantaneous_ops_per_sec` of `INFO stats` (Redis's own recent rate).
    ops_per_second: u64,
    /// `pubsub_channels` of `INFO stats`: channels with a subscriber.
    channels: u64,
    /// CPU time and memory of the process.
    usage: Usage,
    taken: Option<Instant>,
}

/// What Redis did between two [`Snapshot`]s (for a publish step: from
/// before the publishing until its drain ended, so rates per second are
/// over that whole window).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Load {
    /// Seconds between the snapshots.
    pub seconds: f64,
    /// `PUBLISH` calls: messages the replicas published to each other.
    pub messages_published: u64,
    /// Commands of any kind.
    pub commands: u64,
    /// `PUBLISH` calls per second (messages the replicas published).
    pub messages_published_per_second: f64,
    /// Commands of any kind per second.
    pub commands_per_second: f64,
    /// Redis's own `instantaneous_ops_per_sec` at the end.
    pub instantaneous_ops_per_sec: u64,
    /// Channels with a subscriber at the end.
    pub pubsub_channels: u64,
    /// Redis CPU time (user + system) between the snapshots.
    pub cpu_seconds: f64,
    /// That as a share of one core.
    pub cpu_share: f64,
    /// Resident memory at the end, KiB.
    pub rss_kib: u64,
}

impl Redis {
    /// Starts `redis-server` on a free loopback port and waits until it
    /// answers `PING`.
    pub async fn start() -> Result<Self> {
        if !Path::new(REDIS_SERVER).is_file() {
            bail!(
                "{REDIS_SERVER} is missing: several replicas share a Redis; install it with `apt-get install redis-server` (scripts/test.sh does) or run with --replicas 1"
            );
        }
        let port = free_port();
        let mut command = Command::new(REDIS_SERVER);
        command.args(["--bind", "127.0.0.1", "--port", &port.to_string()]);
        command.args(["--save", "", "--appendonly", "no"]);
        let mut redis = Self {
            server: Server::spawn("redis-server", command)?,
            port,
        };
        let started = Instant::now();
        loop {
            if redis
                .command("PING")
                .await
                .is_ok_and(|reply| reply == "PONG")
            {
                return Ok(redis);
            }
            redis.server.check()?;
            if started.elapsed() > READY_TIMEOUT {
                bail!("redis-server did not answer PING within {READY_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `redis://127.0.0.1:PORT`, for `--bus`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The counters now.
    pub async fn snapshot(&mut self) -> Result<Snapshot> {
        self.server.check()?;
        let stats = fields(&self.command("INFO stats").await?);
        let commands = fields(&self.command("INFO commandstats").await?);
        let stat = |name: &str| stats.get(name).and_then(|v| v.parse().ok()).unwrap_or(0);
        // `cmdstat_publish:calls=N,usec=...`
        let publishes = commands
            .get("cmdstat_publish")
            .and_then(|v| v.split(',').find_map(|kv| kv.strip_prefix("calls=")))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        Ok(Snapshot {
            commands: stat("total_commands_processed"),
            publishes,
            ops_per_second: stat("instantaneous_ops_per_sec"),
            channels: stat("pubsub_channels"),
            usage: Usage::of(self.server.pid())?,
            taken: Some(Instant::now()),
        })
    }

    /// Sends one inline command and returns its reply: the text of a
    /// status or bulk reply (errors are errors).
    async fn command(&self, command: &str) -> Result<String> {
        let stream = TcpStream::connect(("127.0.0.1", self.port))
            .await
            .with_context(|| format!("connecting to Redis on port {}", self.port))?;
        let mut stream = BufReader::new(stream);
        stream
            .get_mut()
            .write_all(format!("{command}\r\n").as_bytes())
            .await?;
        let mut first = String::new();
        stream.read_line(&mut first).await?;
        let first = first.trim_end();
        if let Some(status) = first.strip_prefix('+') {
            return Ok(status.to_owned());
        }
        let Some(length) = first.strip_prefix('$') else {
            bail!("Redis answered {command:?} with {first:?}");
        };
        let length: usize = length.parse().context("odd Redis bulk length")?;
        let mut body = vec![0; length + 2];
        stream.read_exact(&mut body).await?;
        body.truncate(length);
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}

impl Snapshot {
    /// What Redis did from `self` until `later`.
    pub fn load_until(&self, later: &Self) -> Load {
        let seconds = match (self.taken, later.taken) {
            (Some(a), Some(b)) => b.duration_since(a).as_secs_f64().max(1e-3),
            _ => 1e-3,
        };
        let cpu_seconds = later.usage.cpu_seconds - self.usage.cpu_seconds;
        let messages_published = later.publishes.saturating_sub(self.publishes);
        let commands = later.commands.saturating_sub(self.commands);
        Load {
            seconds,
            messages_published,
            commands,
            messages_published_per_second: messages_published as f64 / seconds,
            commands_per_second: commands as f64 / seconds,
            instantaneous_ops_per_sec: later.ops_per_second,
            pubsub_channels: later.channels,
            cpu_seconds,
            cpu_share: cpu_seconds / seconds,
            rss_kib: later.usage.rss_kib,
        }
    }
}

/// `name:value` lines of an `INFO` reply.
fn fields(info: &str) -> BTreeMap<String, String> {
    info.lines()
        .filter_map(|line| line.trim_end().split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}
