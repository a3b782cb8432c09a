//! The official JavaScript client (`@microsoft/signalr` 10 and 8) under Node
//! over WebSockets, server-sent events and long polling against the proxy
//! and the testhub app server: the scenarios in `tests/js/transports.test.mjs`.

use switchboard_tests::node::run_against_testhub;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_js_client_over_every_transport() {
    run_against_testhub("transports.test.mjs", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_js_client_8_over_every_transport() {
    run_against_testhub("transports.test.mjs", &[("SIGNALR_PACKAGE", "signalr8")]).await;
}
