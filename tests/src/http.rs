//! Plain HTTP for tests: one client setup and readiness polling.

use std::time::{Duration, Instant};

use crate::process::Process;

/// An HTTP client for loopback servers: no proxies from the environment, a
/// per-request timeout so a hung server fails the test instead of stalling it.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("build an HTTP client")
}

/// Polls `GET url` until it answers 200, panicking with a clear message when
/// `process` exits first or `timeout` passes.
pub async fn wait_until_ok(url: &str, process: &mut Process, timeout: Duration) {
    let http = client();
    let started = Instant::now();
    let mut last = String::from("no answer yet");
    loop {
        if let Some(status) = process.exit_status() {
            panic!(
                "{} exited ({status}) before {url} answered 200; last answer: {last}",
                process.name()
            );
        }
        match http.get(url).timeout(Duration::from_secs(2)).send().await {
            Ok(response) if response.status() == reqwest::StatusCode::OK => return,
            Ok(response) => last = format!("HTTP {}", response.status()),
            Err(error) => last = error.to_string(),
        }
        if started.elapsed() > timeout {
            panic!(
                "{} was not ready within {timeout:?}: GET {url} last gave: {last}",
                process.name()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
