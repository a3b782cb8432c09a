//! The system under test: a proxy and the `benchhub` app server started
//! from a build directory on free loopback ports, plus what the kernel
//! tells about the proxy process (CPU time, resident memory) and the
//! machine (slab memory).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use super::client::{Auth, Target};
use super::wire::Protocol;
use switchboard_tests::http::client as http_client;
use switchboard_tests::ports::free_port;

/// The access key the bench proxy is started with.
const ACCESS_KEY: &str = "switchboard-bench-access-key-0123456789";
/// How long the proxy and app server may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running proxy and app server; both are killed on drop.
pub struct Stack {
    // Declared first so it stops first: the proxy going away first would
    // make it log a lost link.
    _app: Server,
    proxy: Server,
    proxy_url: String,
    app_url: String,
    admin_url: String,
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
            proxy,
            _app: app_server,
            proxy_url,
            app_url,
            admin_url,
        })
    }

    /// Where clients connect, with the given token path and protocol.
    pub fn target(&self, auth: Auth, protocol: Protocol) -> Target {
        Target {
            proxy_url: self.proxy_url.clone(),
            app_url: self.app_url.clone(),
            access_key: ACCESS_KEY.to_owned(),
            auth,
            protocol,
        }
    }

    /// The app server's URL.
    pub fn app_url(&self) -> &str {
        &self.app_url
    }

    /// CPU time and memory of the proxy now.
    pub fn proxy_usage(&mut self) -> Result<Usage> {
        if let Some(status) = self.proxy.child.try_wait()? {
            bail!("the proxy exited ({status}); its log is above");
        }
        Usage::of(self.proxy.child.id())
    }

    /// A counter from the proxy's `/metrics` (see [`metric`]).
    pub async fn metric(&self, name: &str) -> Result<f64> {
        metric(&self.admin_url, name).await
    }

    /// The proxy's process id.
    pub fn proxy_pid(&self) -> u32 {
        self.proxy.child.id()
    }

    /// The proxy's admin URL (`/metrics`, `/readyz`).
    pub fn admin_url(&self) -> &str {
        &self.admin_url
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

fn binary(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    if !path.is_file() {
        bail!(
            "{} is missing: build it with `cargo build [--release] -p switchboard-proxy --bin switchboard -p switchboard-sdk --example benchhub` and pass that build's directory as --bin-dir",
            path.display()
        );
    }
    Ok(path)
}

/// A server process; its log goes to the generator's stderr. Killed on drop.
struct Server {
    name: &'static str,
    child: Child,
}

impl Server {
    fn spawn(name: &'static str, mut command: Command) -> Result<Self> {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Self { name, child })
    }

    /// Polls `url` until it answers 200.
    async fn wait_until_ok(&mut self, url: &str) -> Result<()> {
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
