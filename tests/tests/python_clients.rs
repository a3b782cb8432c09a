//! The Python SignalR clients `pysignalr` and `signalrcore` against the proxy
//! and the testhub app server: the scenarios in `tests/python`.

use std::time::Duration;

use switchboard_tests::{AppServer, Proxy, python};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_clients() {
    // signalrcore's stop() waits for its reader thread, which only wakes when
    // the next message arrives: frequent pings keep each test short.
    let proxy = Proxy::start_with(&["--keep-alive-interval", "1s"]).await;
    let app = AppServer::testhub(&proxy, None).await;
    let env = [
        ("APP_URL", app.url()),
        ("PROTOCOLS", "json,messagepack".to_owned()),
    ];
    python::run_suite(&env, Duration::from_secs(300)).await;
}
