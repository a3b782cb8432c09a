//! What the proxy's logs say about a connection, in text and JSON: every
//! line a connection's task writes carries its id, hub, transport and
//! protocol from the connection's span, the link's lines carry the link and
//! app server, and no token, access key or message body is ever written.
//!
//! One test in its own binary: it installs the process-wide subscriber.

mod common;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{AppServer, HubSocket, KEY, STEP, proxy, request, token};
use jsonwebtoken::{EncodingKey, Header, encode};
use parking_lot::Mutex;
use serde_json::{Value, json};
use switchboard_proto::{self as pb, proxy_message::Kind as Down};
use switchboard_proxy::auth;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// Argument text the client sends; must never be logged.
const CLIENT_BODY: &str = "client-body-b7e1";
/// Argument text the app server sends; must never be logged.
const SERVER_BODY: &str = "server-body-42c9";

/// Everything a formatter wrote.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().clone()).unwrap()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs text and JSON formatters at the level an operator debugging
/// connections would use (the proxy at debug, everything else at info).
fn capture() -> (Captured, Captured) {
    let (text, json) = (Captured::default(), Captured::default());
    let filter = || EnvFilter::new("info,switchboard_proxy=debug");
    let (t, j) = (text.clone(), json.clone());
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || t.clone())
                .with_filter(filter()),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_span_list(false)
                .with_writer(move || j.clone())
                .with_filter(filter()),
        );
    tracing::subscriber::set_global_default(subscriber).unwrap();
    (text, json)
}

/// Waits until some line of `log` contains `needle`.
async fn logged(log: &Captured, needle: &str) {
    let deadline = Instant::now() + STEP;
    while !log.text().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no log line with {needle:?}:\n{}",
            log.text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The text lines containing `needle`.
fn lines_with(log: &Captured, needle: &str) -> Vec<String> {
    log.text()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

fn opened(m: Down) -> pb::ConnectionOpened {
    match m {
        Down::ConnectionOpened(o) => o,
        other => panic!("expected ConnectionOpened, got {other:?}"),
    }
}

/// Negotiates with `jwt`; the connection token, or the refusal status.
async fn negotiate(p: &switchboard_proxy::Running, jwt: &str) -> Result<String, u16> {
    let a = request(
        p.client_addr,
        "POST",
        "/client/negotiate?hub=chat&negotiateVersion=1",
        &format!("Authorization: Bearer {jwt}\r\n"),
        b"",
    )
    .await;
    if a.status != 200 {
        return Err(a.status);
    }
    let body: Value = serde_json::from_slice(&a.body).unwrap();
    Ok(body["connectionToken"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn connection_lines_carry_id_and_hub_and_never_secrets() {
    let (text, json_log) = capture();
    let p = proxy(|_| {}).await;
    let app_jwt = token(
        &auth::server_audience(&p.shared.config.public_url),
        json!({"sub": "test"}),
    );
    let mut app = AppServer::connect(&p, &["chat"], Some(app_jwt.clone()))
        .await
        .unwrap();
    let aud = auth::client_audience(&p.shared.config.public_url, "chat");

    // A refused token is logged as refused, without the token.
    let forged = encode(
        &Header {
            kid: Some(auth::key_id(KEY)),
            ..Default::default()
        },
        &json!({"aud": aud, "exp": 4_000_000_000u64, "nameid": "mallory"}),
        &EncodingKey::from_secret(b"not-the-access-key-0123456789abcdef"),
    )
    .unwrap();
    assert_eq!(negotiate(&p, &forged).await, Err(401));

    // A WebSocket client with its token in the header and in the query,
    // as browsers send it.
    let jwt = token(&aud, json!({"nameid": "alice"}));
    let connection_token = negotiate(&p, &jwt).await.unwrap();
    let url = format!(
        "ws://{}/client/?hub=chat&id={connection_token}&access_token={jwt}",
        p.client_addr
    );
    let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut client = HubSocket::new(ws);
    client.send(json!({"protocol": "json", "version": 1})).await;
    assert_eq!(client.next().await, json!({}));
    let id = opened(app.next().await).connection;

    // Message bodies both ways.
    client
        .send(json!({"type": 1, "invocationId": "1", "target": "Say", "arguments": [CLIENT_BODY]}))
        .await;
    let Down::ClientInvocation(inv) = app.next().await else {
        panic!("expected the client's invocation");
    };
    assert_eq!(inv.connection, id);
    app.send_all("chat", "Said", &format!("[\"{SERVER_BODY}\"]"))
        .await;
    assert_eq!(client.next().await["arguments"][0], SERVER_BODY);

    // The client leaves.
    client.send(json!({"type": 7})).await;
    logged(&text, "connection closed").await;

    // Text: the span names the connection on each of its lines.
    let span = format!("connection{{connection={id} hub=chat transport=WebSockets protocol=json}}");
    for message in [": connected", ": connection closed"] {
        let found = lines_with(&text, message);
        assert!(
            found.iter().any(|l| l.contains(&span)),
            "no {message:?} line in span {span}:\n{}",
            text.text()
        );
    }
    // The link's lines name the link and its app server.
    let linked = lines_with(&text, "app server linked");
    assert!(
        linked
            .iter()
            .any(|l| l.contains("link{link=") && l.contains("server=")),
        "{linked:?}"
    );

    // JSON: the same as structured fields.
    let closed: Vec<Value> = json_log
        .text()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["fields"]["message"] == "connection closed")
        .collect();
    let ours = closed
        .iter()
        .find(|v| v["span"]["connection"] == id.as_str())
        .unwrap_or_else(|| panic!("no JSON close line for {id}: {closed:?}"));
    assert_eq!(ours["span"]["name"], "connection");
    assert_eq!(ours["span"]["hub"], "chat");
    assert_eq!(ours["span"]["transport"], "WebSockets");
    assert_eq!(ours["span"]["protocol"], "json");
    assert_eq!(ours["fields"]["reason"], "normal");

    // Secrets and bodies, in either format.
    let signature = |t: &str| t.rsplit('.').next().unwrap().to_owned();
    for log in [text.text(), json_log.text()] {
        for (what, secret) in [
            ("client token", jwt.as_str()),
            ("client token signature", &signature(&jwt)),
            ("refused token signature", &signature(&forged)),
            ("app-server token signature", &signature(&app_jwt)),
            ("connection token", &connection_token),
            ("access key", KEY),
            ("client message body", CLIENT_BODY),
            ("server message body", SERVER_BODY),
        ] {
            assert!(!log.contains(secret), "the {what} was logged:\n{log}");
        }
    }
    drop(app);
}
