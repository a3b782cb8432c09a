//! Command-line interface: one subcommand per scenario, each bounded in
//! time, plus the hidden `worker` the generator runs its clients in.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use super::client::Auth;
use super::peers::System;
use super::wire::Protocol;

/// Load generator for Switchboard: starts a proxy and the `benchhub` app
/// server, drives them with real SignalR WebSocket clients, prints a JSON
/// report and a one-line summary.
#[derive(Debug, Parser)]
#[command(name = "switchboard-bench")]
pub struct Cli {
    /// The scenario.
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// The scenarios.
#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// Idle density: proxy memory, kernel slab and idle CPU per connection.
    Idle(Idle),
    /// Broadcast fan-out at stepped rates: the highest deliveries/s with p99
    /// under the limit, latency at half that rate, CPU per delivery.
    Broadcast(Broadcast),
    /// Sends to random groups (of each size): deliveries/s and latency.
    Groups(Groups),
    /// Round trips through the app server (`Echo`): rate and latency.
    Echo(Echo),
    /// Connect storm: connections/s and connect-time percentiles.
    Connect(Connect),
    /// A broadcast while some clients stop reading: healthy latency before
    /// and during, proxy memory over time, how the slow ones end.
    Slow(Slow),
    /// Runs one scenario against Switchboard and each peer in turn and
    /// prints Switchboard / peer ratios beside the absolute figures.
    Compare(Compare),
    /// Runs one worker (started by the other commands).
    #[command(hide = true)]
    Worker,
}

/// Settings every scenario shares.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// What the clients connect to: Switchboard or a peer (idle, broadcast,
    /// groups and connect run against every one).
    #[arg(long, value_enum, default_value_t = System::Switchboard)]
    pub target: System,
    /// Directory holding `switchboard` and `examples/benchhub`.
    /// [default: target/release of this workspace]
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Worker processes the clients are spread over; raised when needed so
    /// no worker holds more than 19 000 clients (open files are limited
    /// per process).
    #[arg(long, default_value_t = 2)]
    pub workers: u64,
    /// Switchboard replicas, each its own process. More than one share a
    /// `redis-server` started on a free loopback port as their bus;
    /// clients are spread over them round robin and benchhub links to
    /// every one. Not with `slow` or a peer.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub replicas: u64,
    /// Source addresses 127.0.0.2 ..= 127.0.0.(1+N) the clients' sockets
    /// bind to (each gives about 28 000 ports); 0 lets the kernel choose.
    #[arg(long, default_value_t = 8)]
    pub sources: u8,
    /// Hub protocol of the clients.
    #[arg(long, default_value_t = Protocol::Json)]
    pub protocol: Protocol,
    /// How clients get their token: through the app server's negotiate, or
    /// minted here with the access key.
    #[arg(long, value_enum, default_value_t = Auth::Token)]
    pub auth: Auth,
    /// Connects in flight at once, per worker.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// `RUST_LOG` of the Switchboard processes. `info` (the proxy's own
    /// default) records a span per connection, which idle memory then
    /// includes.
    #[arg(long, default_value = "warn")]
    pub proxy_log: String,
}

/// `idle`.
#[derive(Debug, Args)]
pub struct Idle {
    /// Connections to hold.
    #[arg(long, default_value_t = 10_000)]
    pub connections: u64,
    /// Wait after connecting before measuring, and again for idle CPU.
    #[arg(long, default_value_t = 5.0)]
    pub settle_seconds: f64,
    #[command(flatten)]
    pub common: Common,
}

/// Publishing settings shared by `broadcast`, `groups` and `slow`.
#[derive(Debug, Clone, Args)]
pub struct Publishing {
    /// Seconds each rate step publishes for.
    #[arg(long, default_value_t = 5.0)]
    pub step_seconds: f64,
    /// After a step, how long to wait for deliveries still in flight.
    #[arg(long, default_value_t = 3.0)]
    pub drain_seconds: f64,
}

/// `broadcast`.
#[derive(Debug, Args)]
pub struct Broadcast {
    /// Subscribers.
    #[arg(long, default_value_t = 1000)]
    pub subscribers: u64,
    /// Payload sizes in bytes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,2048")]
    pub sizes: Vec<usize>,
    /// Messages per second of the first step.
    #[arg(long, default_value_t = 50.0)]
    pub start_rate: f64,
    /// Each step offers this many times the previous rate.
    #[arg(long, default_value_t = 2.0)]
    pub factor: f64,
    /// Steps per size at most.
    #[arg(long, default_value_t = 8)]
    pub max_steps: u32,
    /// Once a step failed, this many more steps bisect between the last
    /// passing rate and the failing one.
    #[arg(long, default_value_t = 2)]
    pub refine: u32,
    /// A step passes when its p99 stays under this (and nothing is lost and
    /// at least 90 % of the offered rate was delivered).
    #[arg(long, default_value_t = 100.0)]
    pub p99_limit_ms: f64,
    #[command(flatten)]
    pub publishing: Publishing,
    #[command(flatten)]
    pub common: Common,
}

/// `groups`.
#[derive(Debug, Args)]
pub struct Groups {
    /// Connections; each joins one group of every size.
    #[arg(long, default_value_t = 1000)]
    pub connections: u64,
    /// Group sizes, comma-separated; one phase each.
    #[arg(long, value_delimiter = ',', default_value = "10,100")]
    pub group_sizes: Vec<u64>,
    /// Messages per second, each to one random group.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Payload bytes.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    #[command(flatten)]
    pub publishing: Publishing,
    #[command(flatten)]
    pub common: Common,
}

/// `echo`.
#[derive(Debug, Args)]
pub struct Echo {
    /// Clients invoking back to back.
    #[arg(long, default_value_t = 32)]
    pub clients: u64,
    /// How long.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Payload bytes.
    #[arg(long, default_value_t = 32)]
    pub size: usize,
    #[command(flatten)]
    pub common: Common,
}

/// `connect`.
#[derive(Debug, Args)]
pub struct Connect {
    /// Connections to open.
    #[arg(long, default_value_t = 5000)]
    pub connections: u64,
    #[command(flatten)]
    pub common: Common,
}

/// `slow`.
#[derive(Debug, Args)]
pub struct Slow {
    /// Subscribers.
    #[arg(long, default_value_t = 1000)]
    pub subscribers: u64,
    /// Share of subscribers that stop reading, percent.
    #[arg(long, default_value_t = 1.0)]
    pub slow_percent: f64,
    /// Messages per second.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Payload bytes.
    #[arg(long, default_value_t = 2048)]
    pub size: usize,
    /// The proxy's `--outbox-limit` (bytes queued per client).
    #[arg(long, default_value_t = 1_048_576)]
    pub outbox_limit: u64,
    #[command(flatten)]
    pub publishing: Publishing,
    #[command(flatten)]
    pub common: Common,
}

/// `compare`.
#[derive(Debug, Args)]
pub struct Compare {
    /// Systems to run, comma-separated; ratios are Switchboard / each other.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "switchboard,pushpin,socketio"
    )]
    pub targets: Vec<System>,
    /// Where to write the JSON with every report and the ratios.
    /// [default: target/bench/compare-SCENARIO.json in this workspace]
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The scenario and its options, after `--`, as for a single run (no
    /// `--target`): `idle`, `broadcast`, `groups` or `connect`.
    #[arg(last = true, required = true)]
    pub scenario: Vec<String>,
}
