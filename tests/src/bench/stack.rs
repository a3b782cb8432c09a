//! The system under test: a proxy and the `benchhub` app server started
//! from a build directory on free loopback ports (or a peer, see
//! [`super::peers`]), plus what the kernel tells about the measured server
//! processes (CPU time, resident memory) and the machine (slab memory).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use super::client::{Auth, Target};
use super::peers::System;
use super::wire::Protocol;
use switchboard_tests::http::client as http_client;
use switchboard_tests::ports::free_port;

/// The access key the bench proxy is started with.
const ACCESS_KEY: &str = "switchboard-bench-access-key-0123456789";
/// How long the proxy and app server may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running proxy and app server (or a peer and its origin); all are
/// killed on drop.
pub struct Stack {
    // Declared first so it stops first: the proxy going away first would
    // make it log a lost link.
    pub(super) _app: Option<Server>,
    /// The processes whose CPU and memory the reports call the proxy's,
    /// each with its descendants.
    pub(super) measured: Vec<Server>,
    pub(super) system: System,
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
    /// Starts `switchboard` (with `proxy_args`) and `examples/benchhub` from
    /// `bin_dir` and waits until the hub is served.
    pub async fn start(bin_dir: &Path, proxy_args: &[&str]) -> Result<Self> {
        let [client, upstream, admin, app] = [free_port(), free_port(), free_port(), free_port()];
        let proxy_url = format!("http://127.0.0.1:{client}");
        let mut command = Command::new(binary(bin_dir, "switchboard")?);
        command
            .args(["--listen", &format!("127.0.0.1:{client}")])
            .args(["--upstream-listen", &format!("127.0.0.1:{upstream}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
            .args(["--access-key", ACCESS_KEY])
            .args(["--public-url", &proxy_url])
            .args(proxy_args)
            .env("RUST_LOG", "warn");
        let mut proxy = Server::spawn("the proxy", command)?;
        let admin_url = format!("http://127.0.0.1:{admin}");
        proxy.wait_until_ok(&format!("{admin_url}/readyz")).await?;
        let mut command = Command::new(binary(bin_dir, "examples/benchhub")?);
        command
            .args(["--listen", &format!("127.0.0.1:{app}")])
            .env(
                "SWITCHBOARD_CONNECTION_STRING",
                format!(
                    "Endpoint={proxy_url};AccessKey={ACCESS_KEY};Version=1.0;ServerEndpoint=http://127.0.0.1:{upstream}"
                ),
            )
            .env("RUST_LOG", "warn");
        let app_url = format!("http://127.0.0.1:{app}");
        let mut app_server = Server::spawn("benchhub", command)?;
        app_server
            .wait_until_ok(&format!("{app_url}/health"))
            .await?;
        Ok(Self {
            _app: Some(app_server),
            measured: vec![proxy],
            system: System::Switchboard,
            proxy_url,
            app_url,
            admin_url: Some(admin_url),
            about: serde_json::json!({
                "system": "switchboard",
                "proxy": bin_dir.join("switchboard"),
                "proxy_args": proxy_args,
            }),
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

    /// The proxy's admin URL (`/metrics`, `/readyz`); Switchboard only.
    pub fn admin_url(&self) -> Result<&str> {
        self.admin_url
            .as_deref()
            .with_context(|| format!("{} has no admin server", self.system))
    }
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
    name: &'static str,
    child: Child,
    /// It starts processes of its own: stopped with SIGTERM so it stops
    /// them (SIGKILL would orphan them), and what remains is killed.
    runner: bool,
}

impl Server {
    pub(super) fn spawn(name: &'static str, mut command: Command) -> Result<Self> {
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
