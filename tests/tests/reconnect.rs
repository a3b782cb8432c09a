//! Stateful reconnect with the official JavaScript client under Node: the
//! scenarios in `tests/js/reconnect.test.mjs`, JSON and MessagePack, against
//! a proxy with a short disconnect timeout.

use std::time::Duration;

use switchboard_tests::{AppServer, Proxy, node};

/// The proxy's `--disconnect-timeout`, kept short so the expiry scenario is quick.
const DISCONNECT_TIMEOUT_MS: u64 = 1500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_js_client_resumes_or_falls_back_to_automatic_reconnect() {
    let timeout = format!("{DISCONNECT_TIMEOUT_MS}ms");
    let proxy = Proxy::start_with(&["--disconnect-timeout", &timeout]).await;
    let app = AppServer::testhub(&proxy, None).await;
    let env = [
        ("APP_URL", app.url()),
        ("PROTOCOLS", "json,messagepack".to_owned()),
        ("DISCONNECT_TIMEOUT_MS", DISCONNECT_TIMEOUT_MS.to_string()),
    ];
    node::run_suite("reconnect.test.mjs", &env, Duration::from_secs(180)).await;
}
