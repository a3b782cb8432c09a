//! The proxy in-process against a scripted app server (a raw gRPC link) and
//! raw WebSocket clients: invocations, sends, groups, failover between app
//! servers, link authentication.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{AppServer, HubSocket, STEP, proxy, token};
use futures_util::SinkExt;
use serde_json::{Value, json};
use switchboard_proto::{self as pb, proxy_message::Kind as Down, server_message::Kind as Up};
use switchboard_proxy::{Running, auth};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// POSTs negotiate; returns status and body.
async fn negotiate(addr: SocketAddr, query: &str, bearer: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let auth = bearer
        .map(|b| format!("Authorization: Bearer {b}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "POST /client/negotiate?{query} HTTP/1.1\r\nHost: test\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A raw JSON-protocol client.
struct Client {
    socket: HubSocket,
}

impl Client {
    async fn connect(p: &Running, hub: &str, user: &str) -> Self {
        Self::connect_with(p, hub, user, None).await
    }

    /// `recv_buffer` shrinks the socket's receive buffer, so a client that
    /// stops reading is noticed quickly.
    async fn connect_with(p: &Running, hub: &str, user: &str, recv_buffer: Option<u32>) -> Self {
        let aud = auth::client_audience(&p.shared.config.public_url, hub);
        let t = token(&aud, json!({"nameid": user}));
        let (status, body) = negotiate(
            p.client_addr,
            &format!("hub={hub}&negotiateVersion=1"),
            Some(&t),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        let conn_token = body["connectionToken"].as_str().unwrap();
        let url = format!("ws://{}/client/?hub={hub}&id={conn_token}", p.client_addr);
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size).unwrap();
        }
        let stream = socket.connect(p.client_addr).await.unwrap();
        let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
        let (ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
        let mut socket = HubSocket::new(ws);
        socket.send(json!({"protocol": "json", "version": 1})).await;
        assert_eq!(socket.next().await, json!({}));
        Self { socket }
    }

    async fn next(&mut self) -> Value {
        self.socket.next().await
    }

    async fn invoke(&mut self, id: &str, target: &str, args: Value) {
        let m = json!({"type": 1, "invocationId": id, "target": target, "arguments": args});
        self.socket.send(m).await;
    }
}

fn opened(m: Down) -> pb::ConnectionOpened {
    match m {
        Down::ConnectionOpened(o) => o,
        other => panic!("expected ConnectionOpened, got {other:?}"),
    }
}

#[tokio::test]
async fn invocation_round_trip_and_fan_out() {
    let p = proxy(|_| {}).await;
    let mut app = AppServer::linked(&p, &["Chat"]).await;
    let mut a = Client::connect(&p, "chat", "alice").await;
    let o = opened(app.next().await);
    assert_eq!(
        (
            o.hub.as_str(),
            o.user_id.as_str(),
            o.protocol.as_str(),
            o.migrated
        ),
        ("chat", "alice", "json", false)
    );
    assert_eq!(
        o.claims.get("nameid").map(String::as_str),
        Some("\"alice\"")
    );

    a.invoke("7", "Echo", json!(["hi", {"n": 1}])).await;
    let Down::ClientInvocation(inv) = app.next().await else {
        panic!("expected an invocation")
    };
    assert_eq!(
        (inv.invocation_id.as_str(), inv.target.as_str()),
        ("7", "Echo")
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&inv.arguments.unwrap().data).unwrap(),
        json!(["hi", {"n": 1}])
    );
    app.send(Up::InvocationResult(pb::InvocationResult {
        connection: inv.connection.clone(),
        invocation_id: "7".into(),
        outcome: Some(pb::invocation_result::Outcome::Value(pb::Payload::json(
            "\"hi\"",
        ))),
    }))
    .await;
    assert_eq!(
        a.next().await,
        json!({"type": 3, "invocationId": "7", "result": "hi"})
    );

    let mut b = Client::connect(&p, "chat", "bob").await;
    let ob = opened(app.next().await);
    // Group membership, acknowledged.
    app.send(Up::GroupChange(pb::GroupChange {
        hub: "chat".into(),
        group: "room".into(),
        member: Some(pb::group_change::Member::Connection(ob.connection.clone())),
        action: pb::group_change::Action::Add as i32,
        ack_id: 41,
        ttl_seconds: 0,
    }))
    .await;
    let Down::Ack(ack) = app.next().await else {
        panic!("expected an ack")
    };
    assert_eq!((ack.ack_id, ack.status), (41, pb::ack::Status::Ok as i32));
    app.send(Up::Send(pb::Send {
        hub: "chat".into(),
        audience: Some(pb::Audience {
            target: Some(pb::audience::Target::Group("room".into())),
        }),
        excluded: vec![],
        target: "Room".into(),
        arguments: Some(pb::Payload::json("[1]")),
        ack_id: 0,
        local_only: false,
    }))
    .await;
    app.send_all("chat", "All", "[\"x\"]").await;
    assert_eq!(
        b.next().await,
        json!({"type": 1, "target": "Room", "arguments": [1]})
    );
    assert_eq!(
        b.next().await,
        json!({"type": 1, "target": "All", "arguments": ["x"]})
    );
    assert_eq!(
        a.next().await,
        json!({"type": 1, "target": "All", "arguments": ["x"]}),
        "a is not in the group"
    );

    // A group change for a connection that does not exist is NOT_FOUND.
    app.send(Up::GroupChange(pb::GroupChange {
        hub: "chat".into(),
        group: "room".into(),
        member: Some(pb::group_change::Member::Connection("nope".into())),
        action: pb::group_change::Action::Add as i32,
        ack_id: 42,
        ttl_seconds: 0,
    }))
    .await;
    let Down::Ack(ack) = app.next().await else {
        panic!("expected an ack")
    };
    assert_eq!(ack.status, pb::ack::Status::NotFound as i32);

    // Closing a socket tells the app server.
    drop(a);
    let Down::ConnectionClosed(c) = app.next().await else {
        panic!("expected ConnectionClosed")
    };
    assert_eq!(c.connection, o.connection);
    p.shutdown().await;
}

#[tokio::test]
async fn connections_move_to_a_surviving_app_server_then_close_with_reconnect() {
    let p = proxy(|_| {}).await;
    let mut first = AppServer::linked(&p, &["chat"]).await;
    let mut c = Client::connect(&p, "chat", "carol").await;
    let o = opened(first.next().await);
    let mut second = AppServer::linked(&p, &["chat"]).await;

    // An invocation in flight on the first app server when it dies fails.
    c.invoke("1", "Slow", json!([])).await;
    assert!(matches!(first.next().await, Down::ClientInvocation(_)));
    drop(first);
    let moved = opened(second.next().await);
    assert_eq!(moved.connection, o.connection);
    assert!(moved.migrated);
    let failed = c.next().await;
    assert_eq!(failed["invocationId"], "1");
    assert!(
        failed["error"].as_str().unwrap().contains("went away"),
        "{failed}"
    );

    // The connection keeps working through the second app server.
    c.invoke("2", "Echo", json!(["still here"])).await;
    let Down::ClientInvocation(inv) = second.next().await else {
        panic!("expected an invocation")
    };
    assert_eq!(inv.invocation_id, "2");

    // With no app server left, the pending invocation fails and the client
    // is told to reconnect.
    drop(second);
    let failed = c.next().await;
    assert_eq!(
        (failed["type"].as_i64(), failed["invocationId"].as_str()),
        (Some(3), Some("2"))
    );
    let close = c.next().await;
    assert_eq!(close["type"], 7, "{close}");
    assert_eq!(close["allowReconnect"], true);
    p.shutdown().await;
}

#[tokio::test]
async fn links_without_a_valid_token_are_refused() {
    let p = proxy(|_| {}).await;
    let err = AppServer::connect(&p, &["chat"], None)
        .await
        .err()
        .expect("refused");
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let client_token = token(
        &auth::client_audience(&p.shared.config.public_url, "chat"),
        json!({}),
    );
    let err = AppServer::connect(&p, &["chat"], Some(client_token))
        .await
        .err()
        .expect("refused");
    assert_eq!(
        err.code(),
        tonic::Code::Unauthenticated,
        "a client token is not a server token"
    );
    p.shutdown().await;
}

#[tokio::test]
async fn negotiate_edges() {
    let p = proxy(|_| {}).await;
    let aud = auth::client_audience(&p.shared.config.public_url, "chat");
    let t = token(&aud, json!({}));
    // No app server yet: 503 with a message, not a hang.
    let (status, body) = negotiate(p.client_addr, "hub=chat&negotiateVersion=1", Some(&t)).await;
    assert_eq!(
        (status, body.as_str()),
        (503, "No app server is connected for hub 'chat'.")
    );
    let _app = AppServer::linked(&p, &["chat"]).await;
    // Bad token: 401, empty body.
    let (status, body) =
        negotiate(p.client_addr, "hub=chat&negotiateVersion=1", Some("x.y.z")).await;
    assert_eq!((status, body.as_str()), (401, ""));
    // Token for another hub.
    let (status, _) = negotiate(p.client_addr, "hub=other&negotiateVersion=1", Some(&t)).await;
    assert_eq!(status, 401);
    // v0 has no connectionToken; a version above 1 is answered with 1.
    let (_, body) = negotiate(p.client_addr, "hub=chat", Some(&t)).await;
    let v0: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v0["negotiateVersion"], 0);
    assert!(v0.get("connectionToken").is_none());
    let (_, body) = negotiate(p.client_addr, "HUB=Chat&negotiateVersion=5", Some(&t)).await;
    let v1: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v1["negotiateVersion"], 1);
    assert_eq!(v1["availableTransports"][0]["transport"], "WebSockets");
    let (status, body) = negotiate(p.client_addr, "hub=chat&negotiateVersion=abc", Some(&t)).await;
    assert_eq!(status, 200);
    assert!(body.contains("\"error\""), "{body}");
    p.shutdown().await;
}

#[tokio::test]
async fn slow_consumer_is_closed_without_holding_back_others() {
    let p = proxy(|c| c.outbox_limit = 64 * 1024).await;
    let mut app = AppServer::linked(&p, &["chat"]).await;
    let mut slow = Client::connect_with(&p, "chat", "slow", Some(4096)).await;
    opened(app.next().await);
    let mut fast = Client::connect(&p, "chat", "fast").await;
    opened(app.next().await);
    // The fast client keeps reading and gets everything.
    let reader = tokio::spawn(async move {
        for _ in 0..4000 {
            let m = fast.next().await;
            assert_eq!(m["target"], "Big");
        }
    });
    // 8 MB in all (more than loopback socket buffers hold), paced so that a reading client keeps up with it while a
    // client that reads nothing exceeds its 64 KiB bound.
    let payload = format!("[\"{}\"]", "x".repeat(2000));
    for i in 0..4000 {
        app.send_all("chat", "Big", &payload).await;
        if i % 10 == 9 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    reader.await.unwrap();
    // The slow one, reading only now, finds its connection closed.
    let mut seen = 0;
    let close = loop {
        let m = slow.next().await;
        if m["type"] != 1 {
            break m;
        }
        seen += 1;
    };
    assert!(
        seen < 4000,
        "the slow client must not have been sent everything"
    );
    assert!(
        close.is_null()
            || close["error"]
                .as_str()
                .unwrap_or_default()
                .contains("slow consumer"),
        "{close}"
    );
    p.shutdown().await;
}

#[tokio::test]
async fn shutdown_tells_clients_to_reconnect_and_ends_links() {
    let p = proxy(|_| {}).await;
    let mut app = AppServer::linked(&p, &["chat"]).await;
    let mut c = Client::connect(&p, "chat", "dave").await;
    opened(app.next().await);
    let shared = p.shared.clone();
    let stopping = tokio::spawn(p.shutdown());
    let close = c.next().await;
    assert_eq!(
        (close["type"].as_i64(), close["allowReconnect"].as_bool()),
        (Some(7), Some(true)),
        "{close}"
    );
    assert!(shared.is_draining());
    let Down::ConnectionClosed(closed) = app.next().await else {
        panic!("expected ConnectionClosed")
    };
    assert_eq!(closed.reason, "shutdown");
    // Then the link itself ends.
    let end = tokio::time::timeout(STEP, app.next_frame())
        .await
        .expect("link should end");
    assert!(!matches!(end, Ok(Some(_))), "{end:?}");
    stopping.await.unwrap();
}

#[tokio::test]
async fn shutdown_spreads_closes_over_the_drain_window() {
    let p = proxy(|c| {
        c.drain_window = Duration::from_millis(1000);
        c.shutdown_timeout = Duration::from_secs(3);
    })
    .await;
    let mut app = AppServer::linked(&p, &["chat"]).await;
    let mut clients = Vec::new();
    for i in 0..20 {
        clients.push(Client::connect(&p, "chat", &format!("u{i}")).await);
        opened(app.next().await);
    }
    let started = std::time::Instant::now();
    let stopping = tokio::spawn(p.shutdown());
    let mut arrivals = Vec::new();
    for mut c in clients {
        arrivals.push(tokio::spawn(async move {
            let close = c.next().await;
            assert_eq!(close["allowReconnect"], true, "{close}");
            std::time::Instant::now()
        }));
    }
    let mut times = Vec::new();
    for a in arrivals {
        times.push(a.await.unwrap().duration_since(started));
    }
    times.sort();
    assert!(
        times[0] < Duration::from_millis(300),
        "first close after {:?}",
        times[0]
    );
    assert!(
        times[19] > Duration::from_millis(700),
        "last close after {:?}: not spread",
        times[19]
    );
    assert!(
        times[19] < Duration::from_millis(2000),
        "last close after {:?}",
        times[19]
    );
    stopping.await.unwrap();
}

#[tokio::test]
async fn configured_headers_reach_the_app_server_but_credentials_never_do() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let p = proxy(|c| c.forward_headers = vec!["cookie".into(), "x-trace".into()]).await;
    let mut app = AppServer::linked(&p, &["chat"]).await;
    let aud = auth::client_audience(&p.shared.config.public_url, "chat");
    let bearer = token(&aud, json!({"nameid": "erin"}));
    // skipNegotiation: the token travels on the WebSocket request itself.
    let url = format!("ws://{}/client/?hub=chat", p.client_addr);
    let mut request = url.into_client_request().unwrap();
    let h = request.headers_mut();
    h.insert("cookie", "session=abc".parse().unwrap());
    h.insert("x-trace", "t-1".parse().unwrap());
    h.insert("user-agent", "not-forwarded".parse().unwrap());
    h.insert("authorization", format!("Bearer {bearer}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    ws.send(Message::text("{\"protocol\":\"json\",\"version\":1}\u{1e}"))
        .await
        .unwrap();
    let o = opened(app.next().await);
    assert_eq!(o.user_id, "erin");
    let mut headers: Vec<_> = o.headers.into_iter().collect();
    headers.sort();
    assert_eq!(
        headers,
        vec![
            ("cookie".into(), "session=abc".into()),
            ("x-trace".into(), "t-1".into())
        ]
    );
    p.shutdown().await;
}
