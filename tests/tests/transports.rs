//! The official JavaScript client (`@microsoft/signalr` 10 and 8) under Node over
//! WebSockets, server-sent events and long polling against the proxy and the
//! testhub app server: the scenarios in `tests/js/transports.test.mjs`.

use std::time::Duration;

use switchboard_tests::{AppServer, Proxy, node};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_js_client_over_every_transport() {
    let proxy = Proxy::start().await;
    let app = AppServer::testhub(&proxy, None).await;
    let env = [("APP_URL", app.url()), ("PROXY_URL", proxy.url())];
    node::run_suite("transports.test.mjs", &env, Duration::from_secs(240)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_js_client_8_over_every_transport() {
    let proxy = Proxy::start().await;
    let app = AppServer::testhub(&proxy, None).await;
    let env = [
        ("APP_URL", app.url()),
        ("PROXY_URL", proxy.url()),
        ("SIGNALR_PACKAGE", "signalr8".to_owned()),
    ];
    node::run_suite("transports.test.mjs", &env, Duration::from_secs(240)).await;
}
