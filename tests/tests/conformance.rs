//! The negotiate and connection edges of the SignalR client conformance
//! suites, with the official JavaScript client under Node
//! (`tests/js/conformance.test.mjs`): redirects, failed negotiates, the app's
//! own auth in front of `authorizedhub`, per-hub transports, CORS at the
//! proxy and keep-alive pings.

use std::time::Duration;

use switchboard_tests::{AppServer, Proxy, node};

/// The testhub's hub that must never be offered WebSockets.
const NO_WEBSOCKETS: &str = "testhub-nowebsockets=sse,longpolling";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_js_client_negotiate_and_connection_edges() {
    let proxy = Proxy::start_with(&["--hub-transports", NO_WEBSOCKETS]).await;
    let app = AppServer::testhub(&proxy, None).await;
    // Short keep-alive settings on a proxy of their own, so that the other
    // scenarios keep the defaults.
    let keep_alive_proxy = Proxy::start_with(&[
        "--hub-transports",
        NO_WEBSOCKETS,
        "--keep-alive-interval",
        "1s",
        "--client-timeout",
        "3s",
    ])
    .await;
    let keep_alive_app = AppServer::testhub(&keep_alive_proxy, Some("keep-alive")).await;
    let env = [
        ("APP_URL", app.url()),
        ("PROXY_URL", proxy.url()),
        ("KEEPALIVE_APP_URL", keep_alive_app.url()),
    ];
    node::run_suite("conformance.test.mjs", &env, Duration::from_secs(300)).await;
}
