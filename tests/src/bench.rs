//! The load generator behind `switchboard-bench`: starts a proxy (or
//! several replicas sharing a Redis) and the `benchhub` app server, spreads
//! SignalR WebSocket clients (JSON or MessagePack) over worker processes and
//! source addresses, runs one bounded scenario and prints a JSON report
//! followed by a one-line summary.
//!
//! Data path: [`cli`] picks the scenario; [`stack`] starts the servers
//! (Switchboard's replicas and their [`redis`], or a peer from [`peers`]);
//! [`worker`] runs [`client`]s speaking [`wire`] and counting into
//! [`stats`]; [`publish`] drives `POST /publish` and sums up a step;
//! [`compare`] runs one scenario against every system and sets the figures
//! side by side.

// The binary loads this file by path (it is not part of the library), so
// each submodule is named by path too.
#[path = "bench/broadcast.rs"]
mod broadcast;
#[path = "bench/cli.rs"]
pub mod cli;
#[path = "bench/client.rs"]
pub mod client;
#[path = "bench/compare.rs"]
mod compare;
#[path = "bench/connect.rs"]
mod connect;
#[path = "bench/echo.rs"]
mod echo;
#[path = "bench/groups.rs"]
mod groups;
#[path = "bench/idle.rs"]
mod idle;
#[path = "bench/peers.rs"]
pub mod peers;
#[path = "bench/publish.rs"]
pub mod publish;
#[path = "bench/redis.rs"]
pub mod redis;
#[path = "bench/slow.rs"]
mod slow;
#[path = "bench/stack.rs"]
pub mod stack;
#[path = "bench/stats.rs"]
pub mod stats;
#[path = "bench/wire.rs"]
pub mod wire;
#[path = "bench/worker.rs"]
pub mod worker;

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Parser as _;
use serde_json::Value;

use cli::{Cli, Common, Scenario};
use peers::System;
use stack::Stack;
use worker::{Connected, Job, Pool};

/// Clients ping this often while receiving (the proxy's default client
/// timeout is 30 s).
const PING_EVERY_MS: u64 = 15_000;

/// Clients one worker holds at most: each is an open file, and a process
/// may have 20 000 here; the rest is left for the worker's own files.
const CLIENTS_PER_WORKER: u64 = 19_000;

/// Parses the command line and runs the scenario (or the worker).
pub async fn main() -> Result<()> {
    // Each worker holds thousands of sockets.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    match Cli::parse().scenario {
        Scenario::Worker => worker::run().await,
        Scenario::Idle(args) => idle::run(args).await,
        Scenario::Broadcast(args) => broadcast::run(args).await,
        Scenario::Groups(args) => groups::run(args).await,
        Scenario::Echo(args) => echo::run(args).await,
        Scenario::Connect(args) => connect::run(args).await,
        Scenario::Slow(args) => slow::run(args).await,
        Scenario::Compare(args) => compare::run(args).await,
    }
}

impl Common {
    fn bin_dir(&self) -> PathBuf {
        self.bin_dir
            .clone()
            .unwrap_or_else(|| switchboard_tests::workspace::root().join("target/release"))
    }

    /// Starts the servers: Switchboard with `proxy_args`, or the peer.
    async fn stack(&self, proxy_args: &[&str]) -> Result<Stack> {
        if self.replicas > 1 && self.target != System::Switchboard {
            anyhow::bail!("--replicas is for Switchboard; {} runs as one", self.target);
        }
        match self.target {
            System::Switchboard => {
                let replicas = self.replicas as usize;
                Stack::start(&self.bin_dir(), proxy_args, replicas, &self.proxy_log).await
            }
            System::Pushpin => peers::pushpin::start().await,
            System::Socketio => peers::socketio::start().await,
        }
    }

    /// Spreads `total` clients over the workers (each job adjusted by
    /// `adjust`), starts them and waits until they are connected.
    async fn pool(
        &self,
        stack: &Stack,
        total: u64,
        adjust: impl Fn(&mut Job),
    ) -> Result<(Pool, Connected)> {
        let workers = self
            .workers
            .max(total.div_ceil(CLIENTS_PER_WORKER))
            .clamp(1, total.max(1));
        let target = stack.target(self.auth, self.protocol);
        let jobs: Vec<Job> = (0..workers)
            .map(|w| {
                let first = total * w / workers;
                let mut job = Job {
                    target: target.clone(),
                    first,
                    count: total * (w + 1) / workers - first,
                    sources: self.sources,
                    concurrency: self.concurrency,
                    // Peers keep connections alive themselves (socket.io's
                    // server pings; Pushpin needs nothing).
                    ping_every_ms: (self.target == System::Switchboard).then_some(PING_EVERY_MS),
                    group_sizes: Vec::new(),
                    slow_every: None,
                    echo: false,
                };
                adjust(&mut job);
                job
            })
            .collect();
        let exe = std::env::current_exe().context("locating this binary for the workers")?;
        let started = Pool::start(&exe, &jobs).await?;
        if self.target == System::Pushpin {
            tokio::time::sleep(peers::pushpin::SETTLE).await;
        }
        Ok(started)
    }

    /// What the clients talk to, for summary lines: the system, and for
    /// Switchboard the hub protocol and how tokens are obtained.
    fn label(&self) -> String {
        match self.target {
            System::Switchboard => format!(
                "switchboard{}, {}, {}",
                if self.replicas > 1 {
                    format!(" × {} replicas", self.replicas)
                } else {
                    String::new()
                },
                self.protocol,
                serde_json::to_value(self.auth)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            ),
            peer => peer.to_string(),
        }
    }

    /// The settings to put in a report.
    fn describe(&self) -> Value {
        serde_json::json!({
            "target": self.target,
            "replicas": self.replicas,
            "workers": self.workers,
            "source_addresses": self.sources,
            "protocol": self.protocol,
            "auth": self.auth,
        })
    }
}

/// Fails when some clients did not connect: every scenario's figures
/// assume all of them are there.
fn all_connected(connected: &Connected, wanted: u64) -> Result<()> {
    if connected.ok < wanted {
        anyhow::bail!(
            "{} of {wanted} clients failed to connect; first error: {}",
            connected.failed,
            connected.first_error.as_deref().unwrap_or("(none)")
        );
    }
    Ok(())
}

/// Prints the JSON report, then the one-line summary as the last line.
fn print(report: &Value, summary: &str) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(report)?);
    println!("{summary}");
    Ok(())
}
