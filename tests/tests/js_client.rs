//! The official JavaScript client (`@microsoft/signalr`) under Node against
//! the proxy and the testhub app server: the scenarios in
//! `tests/js/testhub.test.mjs`.

use std::time::Duration;

use switchboard_tests::{AppServer, Proxy, node};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_js_client_under_node() {
    let proxy = Proxy::start().await;
    let app = AppServer::testhub(&proxy, None).await;
    let env = [("APP_URL", app.url()), ("PROXY_URL", proxy.url())];
    node::run_suite("testhub.test.mjs", &env, Duration::from_secs(240)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_js_client_streams_and_client_results_on_every_transport_and_protocol() {
    let proxy = Proxy::start().await;
    let app = AppServer::testhub(&proxy, None).await;
    let env = [
        ("APP_URL", app.url()),
        ("PROTOCOLS", "json,messagepack".to_owned()),
        (
            "TRANSPORTS",
            "WebSockets,ServerSentEvents,LongPolling".to_owned(),
        ),
    ];
    node::run_suite("streams.test.mjs", &env, Duration::from_secs(240)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_js_client_8_under_node() {
    let proxy = Proxy::start().await;
    let app = AppServer::testhub(&proxy, None).await;
    let env = [
        ("APP_URL", app.url()),
        ("PROXY_URL", proxy.url()),
        ("SIGNALR_PACKAGE", "signalr8".to_owned()),
    ];
    node::run_suite("testhub.test.mjs", &env, Duration::from_secs(240)).await;
}
