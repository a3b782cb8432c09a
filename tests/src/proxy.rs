//! The proxy under test: the `switchboard` binary on free loopback ports.

use std::process::Command;
use std::time::Duration;

use crate::http::wait_until_ok;
use crate::ports::free_port;
use crate::process::{Process, isolate_env};
use crate::workspace;

/// The access key every test proxy is started with and every app server signs with.
pub const TEST_ACCESS_KEY: &str = "switchboard-test-access-key-5f1c9a7e";

/// How long a proxy may take to answer `/readyz` after it was started.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running proxy; killed on drop.
pub struct Proxy {
    process: Process,
    /// `https` when the client port serves TLS (`--tls-cert`), else `http`.
    scheme: &'static str,
    /// Likewise for the upstream port (`--upstream-tls-cert`).
    upstream_scheme: &'static str,
    client_port: u16,
    upstream_port: u16,
    admin_port: u16,
}

impl Proxy {
    /// Starts a proxy with default settings and waits until it is ready.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts a proxy with extra command-line flags (e.g.
    /// `["--outbox-limit", "65536"]`) and waits until `GET /readyz` is 200.
    pub async fn start_with(extra_args: &[&str]) -> Self {
        Self::start_behind(None, extra_args).await
    }

    /// Like [`Proxy::start_with`], with `--public-url` set to `public_url`
    /// when given: the address clients use (a load balancer in front of
    /// several proxies), which is also the audience of their tokens.
    pub async fn start_behind(public_url: Option<&str>, extra_args: &[&str]) -> Self {
        let (client_port, upstream_port, admin_port) = (free_port(), free_port(), free_port());
        let scheme_for = |flag: &str| {
            if extra_args.contains(&flag) {
                "https"
            } else {
                "http"
            }
        };
        let (scheme, upstream_scheme) =
            (scheme_for("--tls-cert"), scheme_for("--upstream-tls-cert"));
        let public_url = public_url.map_or_else(
            || format!("{scheme}://127.0.0.1:{client_port}"),
            ToOwned::to_owned,
        );
        let mut command = Command::new(workspace::proxy_binary());
        isolate_env(&mut command);
        command
            .args(["--listen", &format!("127.0.0.1:{client_port}")])
            .args(["--upstream-listen", &format!("127.0.0.1:{upstream_port}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
            .args(["--access-key", TEST_ACCESS_KEY])
            .args(["--public-url", &public_url])
            .args(extra_args);
        let mut process = Process::spawn("switchboard proxy", command).expect("start the proxy");
        let readyz = format!("http://127.0.0.1:{admin_port}/readyz");
        wait_until_ok(&readyz, &mut process, READY_TIMEOUT).await;
        Self {
            process,
            scheme,
            upstream_scheme,
            client_port,
            upstream_port,
            admin_port,
        }
    }

    /// The client URL, `http://127.0.0.1:PORT` (`https` with TLS).
    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.client_port)
    }

    /// The client URL of a hub, `{endpoint}/client/?hub={hub}`.
    pub fn client_url(&self, hub: &str) -> String {
        format!("{}/client/?hub={hub}", self.url())
    }

    /// The admin URL, `http://127.0.0.1:PORT`.
    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    /// `SWITCHBOARD_CONNECTION_STRING` for app servers linking to this proxy.
    pub fn connection_string(&self) -> String {
        connection_string(&self.url(), &[self])
    }

    /// `ServerEndpoint` of this proxy's upstream port.
    pub fn server_endpoint(&self) -> String {
        format!(
            "{}://127.0.0.1:{}",
            self.upstream_scheme, self.upstream_port
        )
    }

    /// The proxy's process id, for suites that signal or kill it themselves.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The proxy process (its captured output, whether it still runs).
    pub fn process(&mut self) -> &mut Process {
        &mut self.process
    }
}

/// `SWITCHBOARD_CONNECTION_STRING` for app servers linking to every proxy in
/// `proxies`, whose clients use `endpoint` (their shared public URL).
pub fn connection_string(endpoint: &str, proxies: &[&Proxy]) -> String {
    let servers: Vec<String> = proxies.iter().map(|p| p.server_endpoint()).collect();
    format!(
        "Endpoint={endpoint};AccessKey={TEST_ACCESS_KEY};Version=1.0;ServerEndpoint={}",
        servers.join(",")
    )
}
