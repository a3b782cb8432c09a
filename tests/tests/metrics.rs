//! `/metrics` on the admin port during a real session: the connection gauge,
//! close reasons, app-server links, fan-out, messages and bytes written to
//! clients, and stateful-reconnect resumes move as clients come and go.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use switchboard_tests::{AppServer, Proxy, http, signalr};
use tokio_tungstenite::tungstenite::Message;

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

/// Polls until `prefix` is at least `value`; returns the value seen.
async fn expect_at_least(http: &reqwest::Client, proxy: &Proxy, prefix: &str, value: f64) -> f64 {
    let mut last = String::new();
    for _ in 0..50 {
        last = scrape(http, proxy).await;
        if let Some(v) = sample(&last, prefix).filter(|v| *v >= value) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{prefix} never reached {value}:\n{last}");
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

    let text = scrape(&http, &proxy).await;
    let before = sample(&text, "switchboard_fanout_deliveries_total").unwrap_or(0.0);
    let sent_before = sample(&text, "switchboard_messages_sent_total").unwrap_or(0.0);
    let bytes_before = sample(&text, "switchboard_sent_bytes_total").unwrap_or(0.0);
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
    // Both deliveries and the invocation's completion were written (bob's
    // writer may still be at it when the completion reaches alice).
    expect_at_least(
        &http,
        &proxy,
        "switchboard_messages_sent_total",
        sent_before + 3.0,
    )
    .await;
    let bytes = expect_at_least(
        &http,
        &proxy,
        "switchboard_sent_bytes_total",
        bytes_before + 1.0,
    )
    .await;
    // Each delivery's record alone carries the target and "hi".
    assert!(
        bytes - bytes_before >= 3.0 * 20.0,
        "{bytes} after {bytes_before}"
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

    // A forged token and an unknown connection token are refused and counted.
    let refused = http
        .post(format!("{}/client/negotiate?hub=testhub", proxy.url()))
        .bearer_auth("not-a-token")
        .send()
        .await?;
    assert_eq!(refused.status(), reqwest::StatusCode::UNAUTHORIZED);
    let unknown = http
        .get(format!("{}/client/?hub=testhub&id=nope", proxy.url()))
        .send()
        .await?;
    assert_eq!(unknown.status(), reqwest::StatusCode::NOT_FOUND);
    expect(
        &http,
        &proxy,
        "switchboard_requests_refused_total{reason=\"unauthorized\"}",
        1.0,
    )
    .await;
    expect(
        &http,
        &proxy,
        "switchboard_requests_refused_total{reason=\"not found\"}",
        1.0,
    )
    .await;
    Ok(())
}

/// A JSON-protocol client on a raw WebSocket, for what the official
/// clients do not let a test do at a chosen moment (drop the socket).
struct RawClient {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl RawClient {
    async fn open(url: &reqwest::Url) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap();
        Self { ws }
    }

    async fn send(&mut self, record: Value) {
        let text = format!("{record}\u{1e}");
        self.ws.send(Message::text(text)).await.unwrap();
    }

    /// The next record that is not a Ping.
    async fn next(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("a message within 10 s")
                .expect("the socket is open")
                .unwrap();
            let Message::Text(text) = message else {
                continue;
            };
            let record = text.as_str().trim_end_matches('\u{1e}');
            let value: Value = serde_json::from_str(record).unwrap();
            if value["type"] != 6 {
                return value;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateful_reconnect_is_counted_as_a_resume() -> anyhow::Result<()> {
    let proxy = Proxy::start().await;
    let app = AppServer::testhub(&proxy, None).await;
    let http = http::client();
    let redirect = signalr::redirect_from_app(&http, &app.url(), "testhub", Some("carol")).await?;
    let stateful_url = format!("{}&useStatefulReconnect=true", redirect.url);
    let negotiation =
        signalr::negotiate_at_proxy(&http, &stateful_url, Some(&redirect.access_token)).await?;
    let mut url = signalr::websocket_url(&redirect.url, Some(negotiation.id_for_transport()))?;
    url.query_pairs_mut()
        .append_pair("access_token", &redirect.access_token);

    let mut client = RawClient::open(&url).await;
    client.send(json!({"protocol": "json", "version": 2})).await;
    assert_eq!(client.next().await, json!({}));
    expect(&http, &proxy, "switchboard_stateful_resumes_total", 0.0).await;

    // The TCP connection ends without any close handshake: the proxy holds
    // the connection, and a reconnect with the same token resumes it.
    drop(client);
    let mut resumed = RawClient::open(&url).await;
    let sequence = resumed.next().await;
    // Sequence (type 9) with the first unacknowledged id opens the resumed socket.
    assert_eq!(sequence, json!({"type": 9, "sequenceId": 1}));
    expect(&http, &proxy, "switchboard_stateful_resumes_total", 1.0).await;
    Ok(())
}
