//! App servers under test: the sdk's `testhub` and `chat` examples, linked
//! to a [`Proxy`].

use std::process::Command;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::http::{self, wait_until_ok};
use crate::ports::free_port;
use crate::process::{Process, isolate_env};
use crate::proxy::Proxy;
use crate::signalr;
use crate::workspace;

/// How long an app server may take to link to the proxy.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running example app server; killed on drop.
pub struct AppServer {
    process: Process,
    port: u16,
}

/// One entry of the testhub's `GET /events`: a connect or disconnect the app
/// server was told about, in the order it saw them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HubEvent {
    /// `connected` or `disconnected`.
    pub event: String,
    /// The client's public connection id.
    pub connection_id: String,
    /// The user id from the client's token, if any.
    pub user_id: Option<String>,
}

impl AppServer {
    /// Starts `testhub` (serving hub `testhub`) linked to `proxy`, with
    /// `--server-id` when given, and waits until `GET /health` is 200, which
    /// the example answers once the proxy welcomed its link.
    pub async fn testhub(proxy: &Proxy, server_id: Option<&str>) -> Self {
        Self::testhub_linked(&proxy.connection_string(), server_id).await
    }

    /// Starts `testhub` with the connection string `connection_string`
    /// (e.g. one listing several proxies) and waits until it is linked.
    pub async fn testhub_linked(connection_string: &str, server_id: Option<&str>) -> Self {
        let mut args = Vec::new();
        if let Some(id) = server_id {
            args.extend(["--server-id", id]);
        }
        let mut server = Self::start_testhub(connection_string, &args);
        server.wait_linked().await;
        server
    }

    /// Starts `testhub` with `extra_args` without waiting for its link.
    pub fn start_testhub(connection_string: &str, extra_args: &[&str]) -> Self {
        let id = extra_args
            .iter()
            .position(|a| *a == "--server-id")
            .and_then(|i| extra_args.get(i + 1));
        let name = format!("testhub {}", id.unwrap_or(&"(default id)"));
        Self::spawn(&name, "testhub", free_port(), connection_string, extra_args)
    }

    /// Waits until `GET /health` is 200: the app server is linked.
    pub async fn wait_linked(&mut self) {
        let health = format!("{}/health", self.url());
        wait_until_ok(&health, &mut self.process, READY_TIMEOUT).await;
    }

    /// Starts the `chat` example on 127.0.0.1:`port` (chosen by the caller,
    /// who may need its origin for the proxy's `--allowed-origins`), linked
    /// to `proxy` and run from the workspace root so it finds the SignalR
    /// browser bundle under `sdk/examples/chat/node_modules`. Waits until its
    /// page is served and hub `chat` negotiates through the proxy.
    pub async fn chat(proxy: &Proxy, port: u16) -> Self {
        let bundle = workspace::root()
            .join("sdk/examples/chat/node_modules/@microsoft/signalr/dist/browser/signalr.min.js");
        assert!(
            bundle.is_file(),
            "{} is missing: run scripts/test.sh, which installs the chat page's npm packages",
            bundle.display()
        );
        let mut server = Self::spawn("chat", "chat", port, &proxy.connection_string(), &[]);
        let page = format!("{}/", server.url());
        wait_until_ok(&page, &mut server.process, READY_TIMEOUT).await;
        server.wait_until_hub_reachable("chat", READY_TIMEOUT).await;
        server
    }

    fn spawn(
        name: &str,
        example: &str,
        port: u16,
        connection_string: &str,
        extra_args: &[&str],
    ) -> Self {
        let mut command = Command::new(workspace::example_binary(example));
        isolate_env(&mut command);
        command
            .current_dir(workspace::root())
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(extra_args)
            .env("SWITCHBOARD_CONNECTION_STRING", connection_string);
        let process =
            Process::spawn(name, command).unwrap_or_else(|error| panic!("start {name}: {error}"));
        Self { process, port }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The app server process.
    pub fn process(&mut self) -> &mut Process {
        &mut self.process
    }

    /// Kills the app server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// The testhub's `GET /events`.
    pub async fn events(&self) -> Vec<HubEvent> {
        let url = format!("{}/events", self.url());
        let response = http::client().get(&url).send().await.expect("GET /events");
        assert_eq!(response.status(), reqwest::StatusCode::OK, "GET {url}");
        response
            .json()
            .await
            .expect("GET /events answers a JSON array of events")
    }

    /// Polls `GET /events` until one matches, or panics after `timeout`.
    pub async fn wait_for_event(
        &self,
        matches: impl Fn(&HubEvent) -> bool,
        timeout: Duration,
    ) -> HubEvent {
        let started = Instant::now();
        loop {
            let events = self.events().await;
            if let Some(found) = events.iter().find(|event| matches(event)) {
                return found.clone();
            }
            assert!(
                started.elapsed() < timeout,
                "{} saw no matching event within {timeout:?}; it saw: {events:?}",
                self.process.name()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A client access token from the testhub's `GET /token` with the given
    /// query (`hub`, `user`, `lifetime` in seconds).
    pub async fn token(&self, query: &[(&str, &str)]) -> String {
        let url = format!("{}/token", self.url());
        let response = http::client()
            .get(&url)
            .query(query)
            .send()
            .await
            .expect("GET /token");
        assert_eq!(
            response.status(),
            reqwest::StatusCode::OK,
            "GET {url} {query:?}"
        );
        response
            .text()
            .await
            .expect("GET /token body")
            .trim()
            .to_owned()
    }

    /// Negotiates through this app server and the proxy until the proxy
    /// accepts (it answers 503 until a link serving `hub` is up).
    async fn wait_until_hub_reachable(&mut self, hub: &str, timeout: Duration) {
        let http = http::client();
        let started = Instant::now();
        loop {
            let attempt = async {
                let redirect = signalr::redirect_from_app(&http, &self.url(), hub, None).await?;
                signalr::negotiate_at_proxy(&http, &redirect.url, Some(&redirect.access_token))
                    .await
            };
            let error = match attempt.await {
                Ok(_) => return,
                Err(error) => error,
            };
            if let Some(status) = self.process.exit_status() {
                panic!(
                    "{} exited ({status}) before hub {hub} was reachable: {error}",
                    self.process.name()
                );
            }
            assert!(
                started.elapsed() < timeout,
                "hub {hub} was not reachable through the proxy within {timeout:?}: {error}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
