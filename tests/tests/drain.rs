//! Graceful drain across proxies: an app server linked to proxies A and B,
//! 200 official JavaScript clients on A through a failover balancer; SIGTERM
//! to A moves every client to B within A's drain window, and no invocation
//! a client saw acknowledged is lost (`tests/js/drain.test.mjs`).

use std::time::Duration;

use switchboard_tests::proxy::connection_string;
use switchboard_tests::{AppServer, Balancer, Proxy, node};

const CLIENTS: usize = 200;
const DRAIN_WINDOW_MS: u64 = 3_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_moves_every_client_to_the_other_proxy_within_the_drain_window() {
    let balancer = Balancer::start_failover().await;
    let drain = ["--drain-window", "3s", "--shutdown-timeout", "5s"];
    let mut a = Proxy::start_behind(Some(&balancer.url()), &drain).await;
    let b = Proxy::start_behind(Some(&balancer.url()), &drain).await;
    balancer.add(&a.url(), &a.admin_url());
    balancer.add(&b.url(), &b.admin_url());
    balancer.wait_ready(2).await;
    let app = AppServer::testhub_linked(&connection_string(&balancer.url(), &[&a, &b]), None).await;

    let env = [
        ("PROXY_A_URL", a.url()),
        ("PROXY_B_URL", b.url()),
        ("PROXY_A_PID", a.pid().to_string()),
        ("LB_URL", balancer.url()),
        ("APP_URL", app.url()),
        ("DRAIN_WINDOW_MS", DRAIN_WINDOW_MS.to_string()),
        ("CLIENTS", CLIENTS.to_string()),
    ];
    node::run_suite("drain.test.mjs", &env, Duration::from_secs(180)).await;

    let status = a
        .process()
        .wait(Duration::from_secs(10))
        .await
        .expect("proxy A exits after draining");
    assert!(
        status.success(),
        "proxy A exited with {status} after SIGTERM"
    );
}
