//! `switchboard-bench`: measurements against a release proxy and the
//! `testhub` app server, both started by this command on loopback.
//!
//! ```text
//! cargo build --release -p switchboard-proxy --bin switchboard -p switchboard-sdk --example testhub -p switchboard-tests --bin switchboard-bench
//! target/release/switchboard-bench idle --connections 10000
//! target/release/switchboard-bench echo --clients 32 --seconds 10
//! ```
//!
//! `idle` opens N connections (negotiated through the app server, handshake
//! done) and reports the proxy's resident memory per connection and the
//! kernel's TCP memory; `echo` runs clients that invoke `Echo` back to back
//! through the app server and reports round trips per second and latency
//! percentiles.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::json;
use switchboard_tests::{http, ports, signalr, workspace};

const KEY: &str = "switchboard-bench-access-key-0123456789";

struct Stack {
    proxy: Child,
    app: Child,
    app_url: String,
}

impl Drop for Stack {
    fn drop(&mut self) {
        for child in [&mut self.proxy, &mut self.app] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn release(path: &str) -> Result<PathBuf> {
    let p = workspace::root().join("target/release").join(path);
    if !p.exists() {
        bail!(
            "{} is missing: build it with `cargo build --release -p switchboard-proxy --bin switchboard -p switchboard-sdk --example testhub`",
            p.display()
        );
    }
    Ok(p)
}

/// Starts the release proxy (with `proxy_args`) and the testhub app server.
async fn start(proxy_args: &[&str]) -> Result<Stack> {
    let [client, upstream, admin, app] = [
        ports::free_port(),
        ports::free_port(),
        ports::free_port(),
        ports::free_port(),
    ];
    let proxy = Command::new(release("switchboard")?)
        .args(["--listen", &format!("127.0.0.1:{client}")])
        .args(["--upstream-listen", &format!("127.0.0.1:{upstream}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
        .args(["--access-key", KEY])
        .args(proxy_args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .context("starting the proxy")?;
    let conn = format!(
        "Endpoint=http://127.0.0.1:{client};AccessKey={KEY};Version=1.0;ServerEndpoint=http://127.0.0.1:{upstream}"
    );
    let app_child = Command::new(release("examples/testhub")?)
        .args(["--listen", &format!("127.0.0.1:{app}")])
        .env("SWITCHBOARD_CONNECTION_STRING", conn)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .context("starting testhub")?;
    let stack = Stack {
        proxy,
        app: app_child,
        app_url: format!("http://127.0.0.1:{app}"),
    };
    let http = http::client();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ok = http
            .get(format!("{}/health", stack.app_url))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            return Ok(stack);
        }
        if Instant::now() > deadline {
            bail!("testhub did not link to the proxy within 20s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    field(&status, "VmRSS:").context("no VmRSS")
}

fn field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(name))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Kernel memory charged to TCP sockets, in KiB (from /proc/net/sockstat).
fn tcp_kib() -> Result<u64> {
    let s = std::fs::read_to_string("/proc/net/sockstat")?;
    let line = s
        .lines()
        .find(|l| l.starts_with("TCP:"))
        .context("no TCP line")?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let pages: u64 = words
        .iter()
        .position(|w| *w == "mem")
        .and_then(|i| words.get(i + 1)?.parse().ok())
        .unwrap_or(0);
    Ok(pages * 4)
}

fn slab_kib() -> Result<u64> {
    field(&std::fs::read_to_string("/proc/meminfo")?, "Slab:").context("no Slab")
}

fn arg(args: &[String], name: &str, default: u64) -> Result<u64> {
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .context("missing value")?
            .parse()
            .with_context(|| format!("{name} takes a number")),
        None => Ok(default),
    }
}

async fn idle(args: &[String]) -> Result<()> {
    let n = arg(args, "--connections", 10_000)? as usize;
    let settle = arg(args, "--settle-secs", 5)?;
    // Idle means idle: no keep-alive traffic during the measurement.
    let stack = start(&["--keep-alive-interval", "10m", "--client-timeout", "20m"]).await?;
    let pid = stack.proxy.id();
    let http = http::client();
    // One warm-up connection so lazily initialised state is not counted.
    let warm = signalr::connect(&http, &stack.app_url, "testhub", None).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rss0, slab0, tcp0) = (rss_kib(pid)?, slab_kib()?, tcp_kib()?);
    let started = Instant::now();
    let mut held = Vec::with_capacity(n);
    let mut tasks = tokio::task::JoinSet::new();
    let concurrency = 64;
    for i in 0..n {
        if tasks.len() >= concurrency {
            held.push(tasks.join_next().await.unwrap()??);
        }
        let (http, url) = (http.clone(), stack.app_url.clone());
        tasks.spawn(async move {
            signalr::connect(&http, &url, "testhub", Some(&format!("u{i}"))).await
        });
    }
    while let Some(c) = tasks.join_next().await {
        held.push(c??);
    }
    let connect_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(settle)).await;
    let (rss1, slab1, tcp1) = (rss_kib(pid)?, slab_kib()?, tcp_kib()?);
    let per = |a: u64, b: u64| (b.saturating_sub(a)) as f64 * 1024.0 / n as f64;
    let report = json!({
        "scenario": "idle",
        "connections": held.len(),
        "connect_seconds": connect_secs,
        "connects_per_second": n as f64 / connect_secs,
        "proxy_rss_kib_before": rss0,
        "proxy_rss_kib_after": rss1,
        "proxy_rss_bytes_per_connection": per(rss0, rss1),
        "slab_bytes_per_connection_both_ends": per(slab0, slab1),
        "tcp_kernel_bytes_per_connection_both_ends": per(tcp0, tcp1),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    println!(
        "idle: {} connections held; proxy RSS {:.0} B/connection; kernel slab {:.0} B/connection (client and proxy ends together); {:.0} connects/s",
        held.len(),
        per(rss0, rss1),
        per(slab0, slab1),
        n as f64 / connect_secs
    );
    drop(warm);
    Ok(())
}

async fn echo(args: &[String]) -> Result<()> {
    let clients = arg(args, "--clients", 32)? as usize;
    let seconds = arg(args, "--seconds", 10)?;
    let stack = start(&[]).await?;
    let http = http::client();
    let mut tasks = tokio::task::JoinSet::new();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    for _ in 0..clients {
        let mut c = signalr::connect(&http, &stack.app_url, "testhub", None).await?;
        tasks.spawn(async move {
            let mut samples: Vec<u32> = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let r = c
                    .invoke("Echo", json!(["0123456789abcdef0123456789abcdef"]))
                    .await?
                    .into_result()?;
                samples.push(t.elapsed().as_micros() as u32);
                anyhow::ensure!(
                    r == Some(json!("0123456789abcdef0123456789abcdef")),
                    "wrong echo {r:?}"
                );
            }
            anyhow::Ok(samples)
        });
    }
    let mut all = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r??);
    }
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() - 1) as f64 * p) as usize] as f64 / 1000.0;
    let report = json!({
        "scenario": "echo",
        "clients": clients,
        "seconds": seconds,
        "round_trips": all.len(),
        "round_trips_per_second": all.len() as f64 / seconds as f64,
        "latency_ms": {"p50": pct(0.5), "p99": pct(0.99), "p999": pct(0.999), "max": pct(1.0)},
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    println!(
        "echo: {} clients, {:.0} round trips/s, p50 {:.2} ms, p99 {:.2} ms",
        clients,
        all.len() as f64 / seconds as f64,
        pct(0.5),
        pct(0.99)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    match args.first().map(String::as_str) {
        Some("idle") => idle(&args).await,
        Some("echo") => echo(&args).await,
        _ => bail!(
            "usage: switchboard-bench idle [--connections N] [--settle-secs S] | echo [--clients N] [--seconds S]"
        ),
    }
}
