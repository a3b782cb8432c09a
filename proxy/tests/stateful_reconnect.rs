//! Stateful reconnect over real sockets with a raw WebSocket client and a
//! scripted app server: negotiate and handshake, numbering and Acks, a TCP
//! drop mid-stream with sends during the outage, the resume (Sequence, then
//! the replay, nothing lost or duplicated), the replay bound, and expiry.

mod common;

use std::time::Duration;

use common::{AppServer, HubSocket, proxy, request, token};
use serde_json::{Value, json};
use switchboard_proto::{self as pb, proxy_message::Kind as Down, server_message::Kind as Up};
use switchboard_proxy::{Running, auth};
use tokio_tungstenite::tungstenite;

const HUB: &str = "chat";

/// POSTs negotiate, asking for stateful reconnect when `stateful`.
async fn negotiate(p: &Running, stateful: bool) -> Value {
    let aud = auth::client_audience(&p.shared.config.public_url, HUB);
    let t = token(&aud, json!({"nameid": "u"}));
    let extra = if stateful {
        "&useStatefulReconnect=true"
    } else {
        ""
    };
    let a = request(
        p.client_addr,
        "POST",
        &format!("/client/negotiate?hub={HUB}&negotiateVersion=1{extra}"),
        &format!("Authorization: Bearer {t}\r\n"),
        b"",
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    serde_json::from_slice(&a.body).unwrap()
}

fn url(p: &Running, token: &str) -> String {
    format!("ws://{}/client/?hub={HUB}&id={token}", p.client_addr)
}

/// A raw JSON-protocol client on one socket.
struct Client {
    socket: HubSocket,
}

impl Client {
    async fn open(p: &Running, token: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(url(p, token))
            .await
            .unwrap();
        Self {
            socket: HubSocket::new(ws),
        }
    }

    /// Opens a socket and handshakes with `version`; returns the answer.
    async fn handshake(p: &Running, token: &str, version: u32) -> (Self, Value) {
        let mut c = Self::open(p, token).await;
        c.send(json!({"protocol": "json", "version": version}))
            .await;
        let answer = c.next().await;
        (c, answer)
    }

    async fn send(&mut self, v: Value) {
        self.socket.send(v).await;
    }

    /// Next hub message, skipping pings; `Null` when the socket closed.
    async fn next(&mut self) -> Value {
        self.socket.next().await
    }

    /// The argument of the next Invocation of `m`.
    async fn message(&mut self) -> i64 {
        let v = self.next().await;
        assert_eq!(
            (v["type"].as_i64(), v["target"].as_str()),
            (Some(1), Some("m")),
            "{v}"
        );
        v["arguments"][0].as_i64().unwrap()
    }

    /// Drops the TCP connection without any close handshake.
    fn drop_socket(self) {
        drop(self.socket.ws.into_inner());
    }
}

async fn send_all(app: &AppServer, n: i64) {
    app.send(Up::Send(pb::Send {
        hub: HUB.into(),
        audience: Some(pb::Audience {
            target: Some(pb::audience::Target::All(pb::All {})),
        }),
        excluded: vec![],
        target: "m".into(),
        arguments: Some(pb::Payload::json(format!("[{n}]"))),
        ack_id: 0,
        local_only: false,
    }))
    .await;
}

fn invoke(id: &str) -> Value {
    json!({"type": 1, "invocationId": id, "target": "echo", "arguments": [id]})
}

async fn invoked(app: &mut AppServer) -> String {
    match app.next().await {
        Down::ClientInvocation(i) => i.invocation_id,
        other => panic!("expected ClientInvocation, got {other:?}"),
    }
}

/// Asserts the app server hears nothing (no ConnectionClosed, no repeat).
async fn quiet(app: &mut AppServer) {
    if let Some(m) = app.next_within(Duration::from_millis(300)).await {
        panic!("the app server heard {m:?}");
    }
}

#[tokio::test]
async fn negotiate_and_handshake_offer_it_only_when_asked_and_enabled() {
    let p = proxy(|_| {}).await;
    let _app = AppServer::linked(&p, &[HUB]).await;
    assert_eq!(
        negotiate(&p, true).await["useStatefulReconnect"],
        json!(true)
    );
    let plain = negotiate(&p, false).await;
    assert!(plain.get("useStatefulReconnect").is_none(), "{plain}");
    // Version 2 only on a connection that negotiated stateful reconnect.
    let token = plain["connectionToken"].as_str().unwrap();
    let (_c, answer) = Client::handshake(&p, token, 2).await;
    assert_eq!(
        answer["error"],
        "The server does not support version 2 of the 'json' protocol."
    );

    let off = proxy(|c| c.stateful_reconnect = false).await;
    let _app = AppServer::linked(&off, &[HUB]).await;
    let body = negotiate(&off, true).await;
    assert!(body.get("useStatefulReconnect").is_none(), "{body}");
}

#[tokio::test]
async fn a_dropped_socket_resumes_without_loss_or_duplicates_then_expires() {
    let p = proxy(|c| c.disconnect_timeout = Duration::from_secs(2)).await;
    let mut app = AppServer::linked(&p, &[HUB]).await;
    let body = negotiate(&p, true).await;
    let token = body["connectionToken"].as_str().unwrap().to_owned();
    let (mut c, answer) = Client::handshake(&p, &token, 2).await;
    assert_eq!(answer, json!({}));
    assert!(matches!(app.next().await, Down::ConnectionOpened(_)));

    // Server to client: 1..=3, the client acknowledges 2.
    for n in 1..=3 {
        send_all(&app, n).await;
    }
    for n in 1..=3 {
        assert_eq!(c.message().await, n);
    }
    c.send(json!({"type": 8, "sequenceId": 2})).await;
    // Client to server: invocation 1, which the proxy acknowledges within
    // about a second.
    c.send(invoke("a")).await;
    assert_eq!(invoked(&mut app).await, "a");
    assert_eq!(c.next().await, json!({"type": 8, "sequenceId": 1}));

    // The socket dies; the app server keeps sending meanwhile.
    c.drop_socket();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for n in 4..=5 {
        send_all(&app, n).await;
    }
    quiet(&mut app).await;
    assert_eq!(p.shared.router.connection_count(), 1);

    // The reconnect: no handshake. Sequence first, then 3 (unacknowledged),
    // then what was sent during the outage.
    let mut c = Client::open(&p, &token).await;
    assert_eq!(c.next().await, json!({"type": 9, "sequenceId": 3}));
    for n in 3..=5 {
        assert_eq!(c.message().await, n);
    }
    // The client replays from 1: "a" is a duplicate, "b" is new.
    c.send(json!({"type": 9, "sequenceId": 1})).await;
    c.send(invoke("a")).await;
    c.send(invoke("b")).await;
    assert_eq!(invoked(&mut app).await, "b");
    quiet(&mut app).await;
    assert_eq!(c.next().await, json!({"type": 8, "sequenceId": 2}));
    send_all(&app, 6).await;
    assert_eq!(c.message().await, 6);

    // A client that reconnects while the proxy still holds the old socket
    // takes over: the replay comes on the new socket.
    let mut c2 = Client::open(&p, &token).await;
    assert_eq!(c2.next().await, json!({"type": 9, "sequenceId": 3}));
    for n in 3..=6 {
        assert_eq!(c2.message().await, n);
    }
    assert_eq!(c.next().await, Value::Null);

    // No reconnect within the disconnect timeout: the connection ends.
    c2.drop_socket();
    let closed = match app.next().await {
        Down::ConnectionClosed(closed) => closed,
        other => panic!("expected ConnectionClosed, got {other:?}"),
    };
    assert_eq!(closed.hub, HUB);
    match tokio_tungstenite::connect_async(url(&p, &token)).await {
        Err(tungstenite::Error::Http(r)) => assert_eq!(r.status(), 404),
        other => panic!("expected 404, got {other:?}"),
    }
}

#[tokio::test]
async fn sequence_beyond_what_was_received_closes() {
    let p = proxy(|_| {}).await;
    let mut app = AppServer::linked(&p, &[HUB]).await;
    let body = negotiate(&p, true).await;
    let token = body["connectionToken"].as_str().unwrap();
    let (mut c, _) = Client::handshake(&p, token, 2).await;
    assert!(matches!(app.next().await, Down::ConnectionOpened(_)));
    c.send(invoke("a")).await;
    assert_eq!(invoked(&mut app).await, "a");
    // Received 1, so 2 is the most the client may announce.
    c.send(json!({"type": 9, "sequenceId": 3})).await;
    let close = c.next().await;
    assert_eq!(close["type"], 7, "{close}");
    assert_eq!(
        close["error"],
        "Connection closed with an error. Sequence ID greater than amount of messages we've received."
    );
    assert!(matches!(app.next().await, Down::ConnectionClosed(_)));
}

#[tokio::test]
async fn the_replay_buffer_bounds_unacknowledged_bytes() {
    let p = proxy(|c| c.stateful_reconnect_buffer = 200).await;
    let app = AppServer::linked(&p, &[HUB]).await;
    let body = negotiate(&p, true).await;
    let token = body["connectionToken"].as_str().unwrap();
    let (mut c, _) = Client::handshake(&p, token, 2).await;
    // Each message is about 50 bytes: four fit before the bound.
    for n in 1..=10 {
        send_all(&app, n).await;
    }
    let mut seen = Vec::new();
    loop {
        let wait = tokio::time::timeout(Duration::from_millis(500), c.next()).await;
        let Ok(v) = wait else { break };
        seen.push(v["arguments"][0].as_i64().unwrap());
    }
    assert!(
        (3..10).contains(&seen.len()),
        "the proxy did not wait for an Ack: {seen:?}"
    );
    // Acknowledging what arrived lets more through, in order.
    while seen.len() < 10 {
        c.send(json!({"type": 8, "sequenceId": seen.len()})).await;
        seen.push(c.message().await);
    }
    assert_eq!(seen, (1..=10).collect::<Vec<_>>());
}

#[tokio::test]
async fn without_stateful_reconnect_a_drop_ends_the_connection() {
    let p = proxy(|_| {}).await;
    let mut app = AppServer::linked(&p, &[HUB]).await;
    let body = negotiate(&p, true).await;
    let token = body["connectionToken"].as_str().unwrap();
    // Negotiated, but the handshake asked for version 1.
    let (c, _) = Client::handshake(&p, token, 1).await;
    assert!(matches!(app.next().await, Down::ConnectionOpened(_)));
    c.drop_socket();
    assert!(matches!(app.next().await, Down::ConnectionClosed(_)));
    match tokio_tungstenite::connect_async(url(&p, token)).await {
        Err(tungstenite::Error::Http(r)) => assert_eq!(r.status(), 404),
        other => panic!("expected 404, got {other:?}"),
    }
}
