//! The system under test: one proxy, or several replicas sharing a Redis
//! bus, and the `benchhub` app server linked to each, started from a build
//! directory on free loopback ports (or a peer, see [`super::peers`]), plus
//! what the kernel tells about the measured server processes (CPU time,
//! resident memory) and the machine (slab memory).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use super::client::{Auth, Target};
use super::peers::System;
use super::redis::{Redis, Snapshot};
use super::wire::Protocol;
use switchboard_tests::http::client as http_client;
use switchboard_tests::ports::free_port;

/// The access key the bench proxy is started with.
const ACCESS_KEY: &str = "switchboard-bench-access-key-0123456789";
/// How long the proxy and app server may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// `--cluster-name` of the replicas.
const CLUSTER: &str = "bench";

/// A running proxy and app server (or a peer and its origin); all are
/// killed on drop.
pub struct Stack {
    // Declared first so it stops first: the proxy going away first would
    // make it log a lost link.
    pub(super) _app: Option<Server>,
    /// The processes whose CPU and memory the reports call the proxy's,
    /// each with its descendants (for Switchboard, one per replica, in the
    /// order of `replicas`).
    pub(super) measured: Vec<Server>,
    /// The Redis the replicas share; stopped after them.
    pub(super) redis: Option<Redis>,
    /// Switchboard's replicas (one without a bus); empty for peers.
    pub(super) replicas: Vec<Replica>,
    pub(super) system: System,
    /// The public URL clients' tokens name (the first replica's).
    pub(super) proxy_url: String,
    /// Where `POST /publish` is served.
    pub(super) app_url: String,
    /// Switchboard's admin server; peers have none.
    pub(super) admin_url: Option<String>,
    /// Name, version and settings of what runs, for reports.
    pub(super) about: serde_json::Value,
    /// Runtime files of the servers, removed on drop (after them).
    pub(super) _scratch: Option<Scratch>,
}

impl Stack {
    /// Starts `replicas` `switchboard` processes (with `proxy_args`) and
    /// `examples/benchhub` from `bin_dir`, and waits until the hub is
    /// served on every replica. More than one replica share a
    /// `redis-server` started here as their bus, and one public URL (the
    /// first replica's), so a token is valid on each; benchhub links to all.
    pub async fn start(
        bin_dir: &Path,
        proxy_args: &[&str],
        replicas: usize,
        log: &str,
    ) -> Result<Self> {
        let replicas = replicas.max(1);
        let redis = if replicas > 1 {
            Some(Redis::start().await?)
        } else {
            None
        };
        let ports: Vec<[u16; 3]> = (0..replicas)
            .map(|_| [free_port(), free_port(), free_port()])
            .collect();
        let proxy_url = format!("http://127.0.0.1:{}", ports[0][0]);
        let mut measured = Vec::with_capacity(replicas);
        let mut nodes = Vec::with_capacity(replicas);
        for (i, &[client, upstream, admin]) in ports.iter().enumerate() {
            let mut command = Command::new(binary(bin_dir, "switchboard")?);
            command
                .args(["--listen", &format!("127.0.0.1:{client}")])
                .args(["--upstream-listen", &format!("127.0.0.1:{upstream}")])
                .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
                .args(["--access-key", ACCESS_KEY])
                .args(["--public-url", &proxy_url])
                .args(proxy_args)
                .env("RUST_LOG", log);
            if let Some(redis) = &redis {
                command
                    .args(["--bus", &redis.url()])
                    .args(["--cluster-name", CLUSTER]);
            }
            let name = if replicas == 1 {
                "the proxy".to_owned()
            } else {
                format!("replica {i}")
            };
            measured.push(Server::spawn(name, command)?);
            nodes.push(Replica {
                client_url: format!("http://127.0.0.1:{client}"),
                upstream_url: format!("http://127.0.0.1:{upstream}"),
                admin_url: format!("http://127.0.0.1:{admin}"),
            });
        }
        for (proxy, node) in measured.iter_mut().zip(&nodes) {
            proxy
                .wait_until_ok(&format!("{}/readyz", node.admin_url))
                .await?;
        }
        let app = free_port();
        let endpoints: Vec<&str> = nodes.iter().map(|n| n.upstream_url.as_str()).collect();
        let mut command = Command::new(binary(bin_dir, "examples/benchhub")?);
        command
            .args(["--listen", &format!("127.0.0.1:{app}")])
            .env(
                "SWITCHBOARD_CONNECTION_STRING",
                format!(
                    "Endpoint={proxy_url};AccessKey={ACCESS_KEY};Version=1.0;ServerEndpoint={}",
                    endpoints.join(",")
                ),
            )
            .env("RUST_LOG", "warn");
        let app_url = format!("http://127.0.0.1:{app}");
        let mut app_server = Server::spawn("benchhub", command)?;
        app_server
            .wait_until_ok(&format!("{app_url}/health"))
            .await?;
        // benchhub is ready with one link; clients of a replica need its own.
        for node in &nodes {
            wait_for_link(&node.admin_url).await?;
        }
        Ok(Self {
            _app: Some(app_server),
            measured,
            system: System::Switchboard,
            proxy_url,
            app_url,
            admin_url: Some(nodes[0].admin_url.clone()),
            about: serde_json::json!({
                "system": "switchboard",
                "proxy": bin_dir.join("switchboard"),
                "proxy_args": proxy_args,
                "proxy_log": log,
                "replicas": replicas,
                "bus": if redis.is_some() { "redis" } else { "local" },
            }),
            replicas: nodes,
            redis,
            _scratch: None,
        })
    }

    /// What runs, with versions and settings, for reports.
    pub fn about(&self) -> &serde_json::Value {
        &self.about
    }

    /// Where clients connect, with the given token path and protocol.
    pub fn target(&self, auth: Auth, protocol: Protocol) -> Target {
        Target {
            proxy_url: self.proxy_url.clone(),
            app_url: self.app_url.clone(),
            access_key: ACCESS_KEY.to_owned(),
            auth,
            protocol,
            system: self.system,
            replicas: if self.replicas.len() > 1 {
                self.replicas.iter().map(|r| r.client_url.clone()).collect()
            } else {
                Vec::new()
            },
        }
    }

    /// The app server's URL.
    pub fn app_url(&self) -> &str {
        &self.app_url
    }

    /// CPU time and memory of the proxy (or the peer's processes, with
    /// their children) now.
    pub fn proxy_usage(&mut self) -> Result<Usage> {
        let mut total = Usage::default();
        for server in &mut self.measured {
            if let Some(status) = server.child.try_wait()? {
                bail!("{} exited ({status}); its log is above", server.name);
            }
            let usage = Usage::of_tree(server.child.id())?;
            total.cpu_seconds += usage.cpu_seconds;
            total.rss_kib += usage.rss_kib;
        }
        Ok(total)
    }

    /// A counter from the proxy's `/metrics` (see [`metric`]).
    pub async fn metric(&self, name: &str) -> Result<f64> {
        metric(self.admin_url()?, name).await
    }

    /// The proxy's process id.
    pub fn proxy_pid(&self) -> u32 {
        self.measured[0].child.id()
    }

    /// How many Switchboard replicas run (0 for a peer).
    pub fn replica_count(&self) -> usize {
        self.replicas.len()
    }

    /// Each replica's CPU time and memory now (with a peer: its processes).
    pub fn replica_usage(&mut self) -> Result<Vec<Usage>> {
        self.measured
            .iter_mut()
            .map(|server| {
                server.check()?;
                Usage::of_tree(server.child.id())
            })
            .collect()
    }

    /// Connections each replica holds now (`switchboard_connections`).
    pub async fn replica_connections(&self) -> Result<Vec<u64>> {
        let mut held = Vec::with_capacity(self.replicas.len());
        for replica in &self.replicas {
            held.push(metric(&replica.admin_url, "switchboard_connections").await? as u64);
        }
        Ok(held)
    }

    /// Per replica: connections held, resident memory, CPU time so far and
    /// messages exchanged over the bus; then their totals. `null` for a peer.
    pub async fn replicas_report(&mut self) -> Result<serde_json::Value> {
        if self.replicas.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        let usage = self.replica_usage()?;
        let held = self.replica_connections().await?;
        let mut each = Vec::with_capacity(self.replicas.len());
        for ((replica, usage), held) in self.replicas.iter().zip(&usage).zip(&held) {
            let admin = &replica.admin_url;
            each.push(serde_json::json!({
                "client_url": replica.client_url,
                "connections": held,
                "rss_kib": usage.rss_kib,
                "cpu_seconds": usage.cpu_seconds,
                "bus_published": metric(admin, "switchboard_bus_published_total").await?,
                "bus_received": metric(admin, "switchboard_bus_received_total").await?,
                "bus_publish_failures": metric(admin, "switchboard_bus_publish_failures_total").await?,
            }));
        }
        Ok(serde_json::json!({
            "count": self.replicas.len(),
            "each": each,
            "total_connections": held.iter().sum::<u64>(),
            "total_rss_kib": usage.iter().map(|u| u.rss_kib).sum::<u64>(),
            "total_cpu_seconds": usage.iter().map(|u| u.cpu_seconds).sum::<f64>(),
        }))
    }

    /// Redis's counters now, when replicas share one.
    pub async fn redis_snapshot(&mut self) -> Result<Option<Snapshot>> {
        match &mut self.redis {
            Some(redis) => Ok(Some(redis.snapshot().await?)),
            None => Ok(None),
        }
    }

    /// The proxy's admin URL (`/metrics`, `/readyz`); Switchboard only.
    pub fn admin_url(&self) -> Result<&str> {
        self.admin_url
            .as_deref()
            .with_context(|| format!("{} has no admin server", self.system))
    }
}

/// One Switchboard replica's addresses.
pub(super) struct Replica {
    /// Where its clients connect.
    pub(super) client_url: String,
    /// Where app servers link.
    upstream_url: String,
    /// `/metrics`, `/readyz`.
    admin_url: String,
}

/// Waits until the proxy at `admin_url` has an app-server link.
async fn wait_for_link(admin_url: &str) -> Result<()> {
    let started = Instant::now();
    while metric(admin_url, "switchboard_app_server_links").await? < 1.0 {
        if started.elapsed() > READY_TIMEOUT {
            bail!("benchhub did not link to the proxy at {admin_url} within {READY_TIMEOUT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// A directory for a server's runtime files, removed on drop.
pub(super) struct Scratch(pub(super) PathBuf);

impl Scratch {
    /// Creates a fresh directory under the system's temporary directory.
    pub(super) fn new(name: &str) -> Result<Self> {
        let path =
            std::env::temp_dir().join(format!("{name}-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A metric from the `/metrics` of the admin server at `admin_url`, summed
/// over its label sets (0 when absent).
pub async fn metric(admin_url: &str, name: &str) -> Result<f64> {
    let text = http_client()
        .get(format!("{admin_url}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

pub(super) fn binary(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    if !path.is_file() {
        bail!(
            "{} is missing: build it with `cargo build [--release] -p switchboard-proxy --bin switchboard -p switchboard-sdk --example benchhub` and pass that build's directory as --bin-dir",
            path.display()
        );
    }
    Ok(path)
}

/// How long a runner may take to stop its children after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// A server process; its log goes to the generator's stderr. Killed on drop.
pub(super) struct Server {
    name: String,
    child: Child,
    /// It starts processes of its own: stopped with SIGTERM so it stops
    /// them (SIGKILL would orphan them), and what remains is killed.
    runner: bool,
}

impl Server {
    pub(super) fn spawn(name: impl Into<String>, mut command: Command) -> Result<Self> {
        let name = name.into();
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Self {
            name,
            child,
            runner: false,
        })
    }

    /// The process id.
    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails when the process has exited.
    pub(super) fn check(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited ({status}); its log is above", self.name);
        }
        Ok(())
    }

    /// Marks this server as one that starts child processes (see `runner`).
    pub(super) fn runner(mut self) -> Self {
        self.runner = true;
        self
    }

    /// SIGTERM, a wait of up to [`STOP_TIMEOUT`], then SIGKILL for the
    /// children it started that are still there (same pid, same name).
    fn stop_runner(&mut self) {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let pid = self.child.id();
        let comm = |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/comm")).ok();
        let children: Vec<(u32, Option<String>)> =
            descendants(pid).into_iter().map(|c| (c, comm(c))).collect();
        let as_pid = |pid: u32| Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
        let _ = kill(as_pid(pid), Signal::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        for (child, name) in children {
            if name.is_some() && comm(child) == name {
                let _ = kill(as_pid(child), Signal::SIGKILL);
            }
        }
    }

    /// Polls `url` until it answers 200.
    pub(super) async fn wait_until_ok(&mut self, url: &str) -> Result<()> {
        let http = http_client();
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited ({status}) before {url} answered", self.name);
            }
            let answer = http.get(url).timeout(Duration::from_secs(2)).send().await;
            if answer.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!(
                    "{} was not ready within {READY_TIMEOUT:?} ({url})",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.runner {
            self.stop_runner();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time and resident memory of one process.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Usage {
    /// User plus system CPU time, seconds, all threads.
    pub cpu_seconds: f64,
    /// Resident set size, KiB.
    pub rss_kib: u64,
}

impl Usage {
    /// Reads `/proc/PID/stat` (utime, stime) and `/proc/PID/status` (VmRSS).
    pub fn of(pid: u32) -> Result<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // Fields after the command name, which may contain spaces, end with ')'.
        let after = stat.rsplit_once(')').context("odd /proc stat")?.1;
        let fields: Vec<&str> = after.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the whole line, 12 and 13 here.
        let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
        let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)?
            .context("no clock tick rate")? as f64;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        Ok(Self {
            cpu_seconds: ticks as f64 / per_second,
            rss_kib: kib_field(&status, "VmRSS:").context("no VmRSS")?,
        })
    }
}

impl Usage {
    /// [`Usage::of`] summed over `pid` and all its descendants (Pushpin
    /// runs its work in child processes).
    pub fn of_tree(pid: u32) -> Result<Self> {
        let mut total = Self::of(pid)?;
        for child in descendants(pid) {
            // A child may be gone between listing and reading.
            if let Ok(usage) = Self::of(child) {
                total.cpu_seconds += usage.cpu_seconds;
                total.rss_kib += usage.rss_kib;
            }
        }
        Ok(total)
    }
}

/// Every process below `root`, from each process's parent in `/proc/PID/stat`.
fn descendants(root: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // The parent is the second field after the command name.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, after)| after.split_whitespace().nth(1)?.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parents.push((pid, ppid));
            }
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// Kernel slab memory of the whole machine, KiB (socket structures live there).
pub fn slab_kib() -> Result<u64> {
    kib_field(&std::fs::read_to_string("/proc/meminfo")?, "Slab:").context("no Slab in meminfo")
}

fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find(|line| line.starts_with(name))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
