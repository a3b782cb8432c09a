//! Scale-out: three proxy replicas sharing a real Redis, behind a load
//! balancer, with two testhub app servers linked to every replica; the
//! official JavaScript client checks delivery across replicas, a killed
//! replica and a Redis restart (`tests/js/scaleout.test.mjs`).

use std::time::Duration;

use switchboard_tests::proxy::connection_string;
use switchboard_tests::{AppServer, Balancer, Proxy, Redis, node};

const REPLICAS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_behave_as_one_service() {
    let redis = Redis::start().await;
    let balancer = Balancer::start().await;
    let bus = ["--bus", &redis.url()];
    let mut proxies = Vec::with_capacity(REPLICAS);
    for _ in 0..REPLICAS {
        proxies.push(Proxy::start_behind(Some(&balancer.url()), &bus).await);
    }
    for proxy in &proxies {
        balancer.add(&proxy.url(), &proxy.admin_url());
    }
    balancer.wait_ready(REPLICAS).await;
    let linked = connection_string(&balancer.url(), &proxies.iter().collect::<Vec<_>>());
    let a = AppServer::testhub_linked(&linked, Some("a")).await;
    let _b = AppServer::testhub_linked(&linked, Some("b")).await;

    let join = |f: fn(&Proxy) -> String| proxies.iter().map(f).collect::<Vec<_>>().join(",");
    let env = [
        ("PROXY_URLS", join(|p| p.url())),
        ("PROXY_PIDS", join(|p| p.pid().to_string())),
        ("LB_URL", balancer.url()),
        ("APP_URL", a.url()),
        ("REDIS_PORT", redis.port().to_string()),
        (
            "REDIS_PID",
            redis.pid().expect("redis is running").to_string(),
        ),
    ];
    node::run_suite("scaleout.test.mjs", &env, Duration::from_secs(240)).await;
}
