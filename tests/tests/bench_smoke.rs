//! A few seconds of every load-generator scenario against the debug proxy
//! and `benchhub`, with a few hundred connections, so the generator keeps
//! working: each report must parse, show traffic, and lose nothing where
//! nothing may be lost.

use std::path::Path;

use serde_json::Value;
use switchboard_tests::bench_report::{self, number};
use switchboard_tests::workspace;

/// Runs `switchboard-bench ARGS --bin-dir <debug>` and returns its JSON
/// report, checking the summary line names the scenario.
async fn bench(args: &[&str]) -> Value {
    // Fails with a clear message when the test script did not build them.
    workspace::proxy_binary();
    workspace::example_binary("benchhub");
    let debug = workspace::debug_dir();
    let mut all = args.to_vec();
    all.extend(["--bin-dir", debug.to_str().expect("a UTF-8 path")]);
    let stdout =
        bench_report::run(Path::new(env!("CARGO_BIN_EXE_switchboard-bench")), &all, "").await;
    let report = bench_report::report(&stdout, args[0]);
    assert_eq!(report["scenario"], args[0]);
    report
}

#[tokio::test]
async fn broadcast_over_messagepack_loses_nothing() {
    let report = bench(&[
        "broadcast",
        "--subscribers",
        "200",
        "--sizes",
        "100,2048",
        "--start-rate",
        "20",
        "--max-steps",
        "2",
        "--step-seconds",
        "1",
        // Debug builds on a shared machine: the point is the path, not the limit.
        "--p99-limit-ms",
        "5000",
        "--protocol",
        "messagepack",
    ])
    .await;
    let sizes = report["sizes"].as_array().unwrap();
    assert_eq!(sizes.len(), 2);
    for size in sizes {
        assert_eq!(number(size, "lost"), 0.0, "{size:#}");
        assert!(number(size, "max_deliveries_per_second") > 0.0, "{size:#}");
        let half = &size["half_rate"];
        assert_eq!(number(half, "delivered"), number(half, "expected"));
        assert!(number(half, "expected") >= 200.0);
        assert_eq!(number(half, "duplicates"), 0.0);
        assert!(number(half, "latency_ms.p99") > 0.0);
        assert!(number(half, "proxy_cpu_seconds") > 0.0);
    }
}

#[tokio::test]
async fn groups_of_ten_and_a_hundred_through_negotiate() {
    let report = bench(&[
        "groups",
        "--connections",
        "200",
        "--rate",
        "100",
        "--step-seconds",
        "1",
        "--auth",
        "negotiate",
    ])
    .await;
    let phases = report["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 2);
    assert_eq!(number(&phases[0], "groups"), 20.0);
    assert_eq!(number(&phases[1], "groups"), 2.0);
    for phase in phases {
        let step = &phase["step"];
        assert_eq!(number(step, "lost"), 0.0, "{phase:#}");
        assert!(number(step, "delivered") >= number(step, "sent"));
        assert_eq!(number(step, "duplicates"), 0.0);
    }
}

#[tokio::test]
async fn echo_over_messagepack() {
    let report = bench(&[
        "echo",
        "--clients",
        "8",
        "--seconds",
        "2",
        "--protocol",
        "messagepack",
    ])
    .await;
    assert_eq!(number(&report, "clients"), 8.0);
    assert!(number(&report, "round_trips") > 8.0);
    assert_eq!(number(&report, "errors"), 0.0, "{report:#}");
    assert!(number(&report, "latency_ms.p50") > 0.0);
}

#[tokio::test]
async fn connect_storm_with_negotiate() {
    let report = bench(&["connect", "--connections", "300", "--auth", "negotiate"]).await;
    assert_eq!(number(&report, "connections"), 300.0, "{report:#}");
    assert_eq!(number(&report, "failed"), 0.0);
    assert!(number(&report, "connections_per_second") > 0.0);
    assert!(number(&report, "connect_ms.p99") >= number(&report, "connect_ms.p50"));
}

#[tokio::test]
async fn slow_consumers_do_not_cost_healthy_clients_messages() {
    let report = bench(&[
        "slow",
        "--subscribers",
        "200",
        "--slow-percent",
        "5",
        "--rate",
        "50",
        "--size",
        "2048",
        "--outbox-limit",
        "65536",
        "--step-seconds",
        "2",
    ])
    .await;
    assert_eq!(number(&report, "slow_clients"), 10.0);
    for phase in ["before", "during"] {
        let step = &report[phase];
        assert_eq!(number(step, "lost"), 0.0, "{phase}: {step:#}");
        assert_eq!(number(step, "expected"), number(step, "sent") * 190.0);
    }
    assert!(!report["timeline"].as_array().unwrap().is_empty());
    // Only slow consumers may be closed.
    assert_eq!(report["healthy_clients_ended"], serde_json::json!({}));
}

#[tokio::test]
async fn idle_connections_are_measured() {
    let report = bench(&["idle", "--connections", "300", "--settle-seconds", "1"]).await;
    assert_eq!(number(&report, "connections"), 300.0);
    assert!(number(&report, "proxy_rss_bytes_per_connection") > 0.0);
    assert!(number(&report, "proxy_idle_cpu_share") >= 0.0);
}

#[tokio::test]
async fn broadcast_across_two_replicas_reaches_every_subscriber_once() {
    let report = bench(&[
        "broadcast",
        "--replicas",
        "2",
        "--subscribers",
        "200",
        "--sizes",
        "100",
        "--start-rate",
        "20",
        "--max-steps",
        "2",
        "--step-seconds",
        "1",
        "--p99-limit-ms",
        "5000",
    ])
    .await;
    let replicas = &report["replicas"];
    assert_eq!(number(replicas, "count"), 2.0, "{replicas:#}");
    assert_eq!(number(replicas, "total_connections"), 200.0, "{replicas:#}");
    for replica in replicas["each"].as_array().unwrap() {
        // Round robin: each replica holds half the subscribers.
        assert_eq!(number(replica, "connections"), 100.0, "{replica:#}");
        assert!(number(replica, "rss_kib") > 0.0);
    }
    let size = &report["sizes"][0];
    assert_eq!(number(size, "lost"), 0.0, "{size:#}");
    let half = &size["half_rate"];
    assert_eq!(
        number(half, "delivered"),
        number(half, "expected"),
        "{half:#}"
    );
    assert_eq!(number(half, "expected"), number(half, "sent") * 200.0);
    assert_eq!(number(half, "duplicates"), 0.0);
    assert_eq!(half["replica_cpu_seconds"].as_array().unwrap().len(), 2);
    // benchhub gives each broadcast to one replica, which publishes it once.
    let published = number(half, "redis.messages_published_per_second");
    assert!(published > 0.0, "{half:#}");
    assert!(number(half, "redis.pubsub_channels") > 0.0);
}

#[tokio::test]
async fn idle_connections_across_two_replicas_through_negotiate() {
    let report = bench(&[
        "idle",
        "--replicas",
        "2",
        "--connections",
        "300",
        "--settle-seconds",
        "1",
        "--auth",
        "negotiate",
    ])
    .await;
    assert_eq!(number(&report, "connections"), 300.0);
    assert_eq!(number(&report, "connections_held_by_replicas"), 300.0);
    let replicas = report["replicas"].as_array().unwrap();
    assert_eq!(replicas.len(), 2);
    for replica in replicas {
        assert_eq!(number(replica, "connections"), 150.0, "{replica:#}");
        assert!(
            number(replica, "rss_bytes_per_connection") > 0.0,
            "{replica:#}"
        );
    }
    assert!(number(&report, "redis_while_idle.rss_kib") > 0.0);
}
