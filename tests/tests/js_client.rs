//! The official JavaScript client (`@microsoft/signalr` 10, and 8 for the
//! core scenarios) under Node against the proxy and the testhub app server:
//! `tests/js/testhub.test.mjs` and `tests/js/streams.test.mjs`.

use switchboard_tests::node::run_against_testhub;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_js_client_under_node() {
    run_against_testhub("testhub.test.mjs", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_js_client_streams_and_client_results_on_every_transport_and_protocol() {
    let env = [
        ("PROTOCOLS", "json,messagepack"),
        ("TRANSPORTS", "WebSockets,ServerSentEvents,LongPolling"),
    ];
    run_against_testhub("streams.test.mjs", &env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_js_client_8_under_node() {
    run_against_testhub("testhub.test.mjs", &[("SIGNALR_PACKAGE", "signalr8")]).await;
}
