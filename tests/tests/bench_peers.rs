//! A few seconds of the load generator against each peer (Pushpin and
//! socket.io, installed by `tests/peers/install.sh`) with tens of
//! connections, and one `compare` across Switchboard and both peers, so
//! the peer clients, servers and the comparison keep working.

use std::path::{Path, PathBuf};

use serde_json::Value;
use switchboard_tests::bench_report::{self, number};
use switchboard_tests::workspace;

/// Runs `switchboard-bench ARGS` and returns its stdout, failing on a
/// non-zero exit.
async fn run(args: &[&str]) -> String {
    let exe = Path::new(env!("CARGO_BIN_EXE_switchboard-bench"));
    bench_report::run(
        exe,
        args,
        "; run tests/peers/install.sh if a peer is missing",
    )
    .await
}

/// Runs one scenario against `target` and returns its JSON report.
async fn scenario(target: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--target", target, "--workers", "1"]);
    let stdout = run(&all).await;
    let summary = stdout.trim_end().rsplit('\n').next().unwrap_or_default();
    assert!(summary.contains(target), "summary line {summary:?}");
    let report = bench_report::report(&stdout, args[0]);
    assert_eq!(report["system"]["system"], target, "{report:#}");
    report
}

/// Groups, idle density and a connect storm against one peer.
async fn groups_idle_and_connect(target: &str) {
    let report = scenario(
        target,
        &[
            "groups",
            "--connections",
            "60",
            "--group-sizes",
            "10,30",
            "--rate",
            "50",
            "--step-seconds",
            "1",
        ],
    )
    .await;
    let phases = report["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 2);
    for phase in phases {
        let step = &phase["step"];
        assert_eq!(number(step, "lost"), 0.0, "{phase:#}");
        assert_eq!(number(step, "duplicates"), 0.0, "{phase:#}");
        assert_eq!(number(step, "delivered"), number(step, "expected"));
        assert!(number(step, "delivered") >= number(step, "sent") * 10.0);
    }

    let report = scenario(
        target,
        &["idle", "--connections", "60", "--settle-seconds", "1"],
    )
    .await;
    assert_eq!(number(&report, "connections"), 60.0);
    assert!(number(&report, "proxy_rss_kib_after") > 0.0, "{report:#}");

    let report = scenario(target, &["connect", "--connections", "60"]).await;
    assert_eq!(number(&report, "connections"), 60.0, "{report:#}");
    assert_eq!(number(&report, "failed"), 0.0);
    assert!(number(&report, "connect_ms.p99") >= number(&report, "connect_ms.p50"));
}

#[tokio::test]
async fn pushpin_groups_idle_and_connect() {
    groups_idle_and_connect("pushpin").await;
}

#[tokio::test]
async fn socketio_groups_idle_and_connect() {
    groups_idle_and_connect("socketio").await;
}

#[tokio::test]
async fn compare_broadcast_across_switchboard_and_peers() {
    // Fails with a clear message when the test script did not build them.
    workspace::proxy_binary();
    workspace::example_binary("benchhub");
    let out: PathBuf = std::env::temp_dir().join(format!(
        "switchboard-bench-compare-{}.json",
        std::process::id()
    ));
    let debug = workspace::debug_dir();
    let stdout = run(&[
        "compare",
        "--out",
        out.to_str().unwrap(),
        "--",
        "broadcast",
        "--bin-dir",
        debug.to_str().unwrap(),
        "--workers",
        "1",
        "--subscribers",
        "100",
        "--sizes",
        "100",
        // Enough deliveries at half rate (50 msgs/s to 100) that every
        // server's CPU time shows in its ticks.
        "--start-rate",
        "50",
        "--max-steps",
        "2",
        "--refine",
        "0",
        "--step-seconds",
        "1",
        // Debug builds on a shared machine: the point is the path, not the limit.
        "--p99-limit-ms",
        "5000",
    ])
    .await;
    eprintln!("{stdout}");
    let summary = stdout.trim_end().lines().last().unwrap();
    assert!(summary.starts_with("compare: broadcast"), "{summary:?}");
    let document: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let _ = std::fs::remove_file(&out);
    assert_eq!(document["failures"], serde_json::json!({}));
    for target in ["switchboard", "pushpin", "socketio"] {
        let size = &document["reports"][target]["sizes"][0];
        assert_eq!(number(size, "lost"), 0.0, "{target}: {size:#}");
        assert!(
            number(size, "max_deliveries_per_second") > 0.0,
            "{target}: {size:#}"
        );
        let half = &size["half_rate"];
        assert_eq!(
            number(half, "delivered"),
            number(half, "expected"),
            "{target}"
        );
        assert!(
            number(half, "proxy_cpu_seconds") > 0.0,
            "{target}: {half:#}"
        );
        assert!(stdout.contains(target));
    }
    let rows = document["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 6, "one row per broadcast figure: {rows:#?}");
    // Every figure has a value and a ratio against each peer.
    for row in rows {
        for peer in ["pushpin", "socketio"] {
            let ratio = number(row, &format!("switchboard_over.{peer}"));
            assert!(ratio > 0.0 && ratio.is_finite(), "{row:#}");
        }
    }
}
