//! The Python SignalR clients `pysignalr` and `signalrcore` against the proxy
//! and the testhub app server: the scenarios in `tests/python`.

use std::time::Duration;

use switchboard_tests::{AppServer, Proxy, python};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_clients() {
    let proxy = Proxy::start().await;
    let app = AppServer::testhub(&proxy, None).await;
    let env = [("APP_URL", app.url()), ("PROTOCOLS", "json,messagepack".to_owned())];
    python::run_suite(&env, Duration::from_secs(300)).await;
}
