//! `/metrics` on the admin port during a real session: the connection gauge,
//! close reasons, app-server links and fan-out move as clients come and go.

use std::time::Duration;

use serde_json::json;
use switchboard_tests::{AppServer, Proxy, http, signalr};

/// The value of the sample whose name and labels start with `prefix`.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

async fn scrape(http: &reqwest::Client, proxy: &Proxy) -> String {
    let response = http
        .get(format!("{}/metrics", proxy.admin_url()))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.text().await.unwrap()
}

/// Polls until `prefix` has `value` (metrics are updated as connections end,
/// which is asynchronous to the client).
async fn expect(http: &reqwest::Client, proxy: &Proxy, prefix: &str, value: f64) {
    let mut last = String::new();
    for _ in 0..50 {
        last = scrape(http, proxy).await;
        if sample(&last, prefix) == Some(value) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{prefix} never became {value}:\n{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_a_session() -> anyhow::Result<()> {
    let proxy = Proxy::start().await;
    let app = AppServer::testhub(&proxy, None).await;
    let http = http::client();
    expect(
        &http,
        &proxy,
        "switchboard_app_server_links{hub=\"testhub\"}",
        1.0,
    )
    .await;

    let mut alice = signalr::connect(&http, &app.url(), "testhub", Some("alice")).await?;
    let bob = signalr::connect(&http, &app.url(), "testhub", Some("bob")).await?;
    let gauge =
        "switchboard_connections{hub=\"testhub\",transport=\"WebSockets\",protocol=\"json\"}";
    expect(&http, &proxy, gauge, 2.0).await;

    let before = sample(
        &scrape(&http, &proxy).await,
        "switchboard_fanout_deliveries_total",
    )
    .unwrap_or(0.0);
    alice
        .invoke("SendToAll", json!(["hi"]))
        .await?
        .into_result()?;
    let text = scrape(&http, &proxy).await;
    assert_eq!(
        sample(&text, "switchboard_fanout_deliveries_total"),
        Some(before + 2.0),
        "{text}"
    );
    assert!(
        sample(&text, "switchboard_fanout_duration_seconds_count").unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    assert!(
        sample(&text, "switchboard_invocation_duration_seconds_count").unwrap_or(0.0) >= 1.0,
        "{text}"
    );

    bob.close().await?;
    expect(&http, &proxy, gauge, 1.0).await;
    expect(
        &http,
        &proxy,
        "switchboard_connections_closed_total{hub=\"testhub\",reason=\"normal\"}",
        1.0,
    )
    .await;
    Ok(())
}
