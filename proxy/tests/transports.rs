//! Server-sent events and long polling against an in-process proxy and a
//! scripted app server, with raw HTTP: the status-code table, exact SSE
//! framing, and the long-polling answers.

mod common;

use std::time::{Duration, Instant};

use common::{AppServer, Streamed, negotiate, proxy, request};
use serde_json::{Value, json};
use switchboard_proto::{self as pb, proxy_message::Kind as Down, server_message::Kind as Up};
use switchboard_proxy::config::{Transport, Transports};

const HANDSHAKE: &[u8] = b"{\"protocol\":\"json\",\"version\":1}\x1e";
const SSE: &str = "Accept: text/event-stream\r\n";

fn opened(m: Down) -> pb::ConnectionOpened {
    match m {
        Down::ConnectionOpened(o) => o,
        other => panic!("expected ConnectionOpened, got {other:?}"),
    }
}

fn url(token: &str) -> String {
    format!("/client/?hub=chat&id={token}")
}

#[tokio::test]
async fn status_codes_follow_the_reference_server() {
    let p = proxy(|c| c.max_message_size = 1024).await;
    let _app = AppServer::linked(&p, &["chat"]).await;
    let addr = p.client_addr;
    let no_id = "/client/?hub=chat";

    // No id: 400 for every method but a WebSocket upgrade.
    for (method, headers) in [("GET", ""), ("GET", SSE), ("POST", ""), ("DELETE", "")] {
        let a = request(addr, method, no_id, headers, b"").await;
        assert_eq!(
            (a.status, a.text()),
            (400, "Connection ID required"),
            "{method} {headers}"
        );
    }
    // Unknown id: 404.
    for (method, headers) in [("GET", ""), ("GET", SSE), ("POST", ""), ("DELETE", "")] {
        let a = request(addr, method, &url("nope"), headers, b"").await;
        assert_eq!(a.status, 404, "{method} {headers}");
    }
    // A DELETE before any transport, or on a non-long-polling connection: 400.
    let (token, body) = negotiate(&p, "chat", "u").await;
    let names: Vec<&str> = body["availableTransports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["transport"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["WebSockets", "ServerSentEvents", "LongPolling"]);
    let a = request(addr, "DELETE", &url(&token), "", b"").await;
    assert_eq!(
        (a.status, a.text()),
        (
            400,
            "Cannot terminate this connection using the DELETE endpoint."
        )
    );

    // An active event stream: a second one is 409, switching is 400.
    let mut sse = Streamed::get(addr, &url(&token), SSE).await;
    assert_eq!(sse.status, 200);
    assert_eq!(sse.chunk().await, b":\r\n");
    assert_eq!(
        request(addr, "GET", &url(&token), SSE, b"").await.status,
        409
    );
    let a = request(addr, "GET", &url(&token), "", b"").await;
    assert_eq!(
        (a.status, a.text()),
        (400, "Cannot change transports mid-connection")
    );
    assert_eq!(
        request(addr, "DELETE", &url(&token), "", b"").await.status,
        400
    );
    // POST bodies are bounded (several messages' worth, never unbounded).
    let big = vec![b' '; 8 * 1024];
    let a = request(addr, "POST", &url(&token), "", &big).await;
    assert_eq!(a.status, 413);
    let a = request(addr, "POST", &url(&token), "", HANDSHAKE).await;
    assert_eq!((a.status, a.body.len()), (200, 0));
    assert_eq!(sse.chunk().await, b"data: {}\x1e\r\n\r\n");

    // A WebSocket connection refuses POSTs (405) and a second socket (409).
    let (token, _) = negotiate(&p, "chat", "w").await;
    let ws_url = format!("ws://{addr}{}", url(&token));
    let (_ws, _) = tokio_tungstenite::connect_async(&ws_url).await.unwrap();
    let a = request(addr, "POST", &url(&token), "", b"x").await;
    assert_eq!(
        (a.status, a.text()),
        (
            405,
            "POST requests are not allowed for WebSocket connections."
        )
    );
    match tokio_tungstenite::connect_async(&ws_url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 409),
        other => panic!("expected 409, got {other:?}"),
    }
    let a = request(addr, "GET", &url(&token), SSE, b"").await;
    assert_eq!(a.status, 400);
    p.shutdown().await;
}

#[tokio::test]
async fn disabled_transports_are_not_offered_and_refused() {
    let p = proxy(|c| {
        c.hub_transports = vec![(
            "chat".into(),
            Transports::parse("websockets,longpolling").unwrap(),
        )]
    })
    .await;
    let _app = AppServer::linked(&p, &["chat"]).await;
    let (token, body) = negotiate(&p, "chat", "u").await;
    assert_eq!(
        body["availableTransports"],
        json!([
            {"transport": "WebSockets", "transferFormats": ["Text", "Binary"]},
            {"transport": "LongPolling", "transferFormats": ["Text", "Binary"]}
        ])
    );
    let a = request(p.client_addr, "GET", &url(&token), SSE, b"").await;
    assert_eq!(
        (a.status, a.text()),
        (
            404,
            "ServerSentEvents transport not supported by this end point type"
        )
    );
    assert!(
        !p.shared
            .config
            .transports_for("chat")
            .contains(Transport::ServerSentEvents)
    );
    p.shutdown().await;
}

#[tokio::test]
async fn server_sent_events_frame_exactly_and_end_with_the_stream() {
    let p = proxy(|_| {}).await;
    let mut app = AppServer::linked(&p, &["chat"]).await;
    let addr = p.client_addr;
    let (token, _) = negotiate(&p, "chat", "sam").await;
    let mut sse = Streamed::get(addr, &url(&token), SSE).await;
    assert_eq!(sse.status, 200);
    assert_eq!(sse.header("content-type"), Some("text/event-stream"));
    assert_eq!(sse.header("cache-control"), Some("no-cache,no-store"));
    assert_eq!(sse.chunk().await, b":\r\n");

    // The handshake and a first invocation in one POST.
    let mut body = HANDSHAKE.to_vec();
    body.extend_from_slice(
        b"{\"type\":1,\"invocationId\":\"1\",\"target\":\"Echo\",\"arguments\":[\"a\\nb\"]}\x1e",
    );
    assert_eq!(
        request(addr, "POST", &url(&token), "", &body).await.status,
        200
    );
    assert_eq!(sse.chunk().await, b"data: {}\x1e\r\n\r\n");
    let o = opened(app.next().await);
    assert_eq!(
        (o.user_id.as_str(), o.transport.as_str()),
        ("sam", "ServerSentEvents")
    );
    let Down::ClientInvocation(inv) = app.next().await else {
        panic!("expected an invocation")
    };
    app.send(Up::InvocationResult(pb::InvocationResult {
        connection: inv.connection.clone(),
        invocation_id: "1".into(),
        outcome: Some(pb::invocation_result::Outcome::Value(pb::Payload::json(
            "\"a\\nb\"",
        ))),
    }))
    .await;
    assert_eq!(
        sse.chunk().await,
        b"data: {\"type\":3,\"invocationId\":\"1\",\"result\":\"a\\nb\"}\x1e\r\n\r\n"
    );
    app.send_all("chat", "Tick", "[1]").await;
    assert_eq!(
        sse.chunk().await,
        b"data: {\"type\":1,\"target\":\"Tick\",\"arguments\":[1]}\x1e\r\n\r\n"
    );

    // Dropping the stream ends the connection.
    drop(sse);
    let Down::ConnectionClosed(c) = app.next().await else {
        panic!("expected ConnectionClosed")
    };
    assert_eq!((c.connection, c.reason.as_str()), (o.connection, "normal"));
    let a = request(addr, "POST", &url(&token), "", b"{\"type\":6}\x1e").await;
    assert_eq!(a.status, 404, "the connection left the table");
    p.shutdown().await;
}

#[tokio::test]
async fn server_sent_events_refuse_messagepack() {
    let p = proxy(|_| {}).await;
    let _app = AppServer::linked(&p, &["chat"]).await;
    let (token, _) = negotiate(&p, "chat", "m").await;
    let mut sse = Streamed::get(p.client_addr, &url(&token), SSE).await;
    assert_eq!(sse.chunk().await, b":\r\n");
    let hs = b"{\"protocol\":\"messagepack\",\"version\":1}\x1e";
    request(p.client_addr, "POST", &url(&token), "", hs).await;
    let expected = "data: {\"error\":\"Cannot use the 'messagepack' protocol on the current transport. The transport does not support 'Binary' transfer format.\"}\u{1e}\r\n\r\n";
    assert_eq!(String::from_utf8(sse.chunk().await).unwrap(), expected);
    assert!(
        sse.ended().await,
        "the stream ends after a refused handshake"
    );
    p.shutdown().await;
}

/// Starts a poll in the background.
fn poll(p: &switchboard_proxy::Running, token: &str) -> tokio::task::JoinHandle<common::Answer> {
    let addr = p.client_addr;
    let path = url(token);
    tokio::spawn(async move { request(addr, "GET", &path, "", b"").await })
}

#[tokio::test]
async fn long_polling_delivers_buffers_times_out_and_ends() {
    let p = proxy(|c| c.long_poll_timeout = Duration::from_millis(400)).await;
    let mut app = AppServer::linked(&p, &["chat"]).await;
    let addr = p.client_addr;
    let (token, _) = negotiate(&p, "chat", "lp").await;

    // The handshake POSTed before the first poll is answered on the second.
    let a = request(addr, "POST", &url(&token), "", HANDSHAKE).await;
    assert_eq!((a.status, a.body.len()), (200, 0));
    let first = request(addr, "GET", &url(&token), "", b"").await;
    assert_eq!((first.status, first.body.len()), (200, 0));
    let second = request(addr, "GET", &url(&token), "", b"").await;
    assert_eq!((second.status, second.text()), (200, "{}\u{1e}"));
    assert_eq!(second.header("content-type"), Some("text/plain"));
    let o = opened(app.next().await);
    assert_eq!(o.transport, "LongPolling");

    // Everything queued between polls arrives in one answer.
    app.send_all("chat", "A", "[1]").await;
    app.send_all("chat", "B", "[2]").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let a = request(addr, "GET", &url(&token), "", b"").await;
    assert_eq!(
        a.text(),
        "{\"type\":1,\"target\":\"A\",\"arguments\":[1]}\u{1e}{\"type\":1,\"target\":\"B\",\"arguments\":[2]}\u{1e}"
    );

    // A waiting poll is answered as soon as something arrives.
    let waiting = poll(&p, &token);
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.send_all("chat", "C", "[]").await;
    let a = waiting.await.unwrap();
    assert_eq!(
        a.text(),
        "{\"type\":1,\"target\":\"C\",\"arguments\":[]}\u{1e}"
    );

    // Nothing to send: 200 empty after the poll timeout.
    let started = Instant::now();
    let a = request(addr, "GET", &url(&token), "", b"").await;
    assert_eq!((a.status, a.body.len()), (200, 0));
    assert!(started.elapsed() >= Duration::from_millis(350));

    // A newer poll replaces a waiting one (204); DELETE ends the connection
    // (202, empty) and the waiting poll gets 204.
    let older = poll(&p, &token);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let newer = poll(&p, &token);
    assert_eq!(older.await.unwrap().status, 204);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let a = request(addr, "DELETE", &url(&token), "", b"").await;
    assert_eq!((a.status, a.body.len()), (202, 0));
    assert_eq!(newer.await.unwrap().status, 204);
    let Down::ConnectionClosed(c) = app.next().await else {
        panic!("expected ConnectionClosed")
    };
    assert_eq!(c.connection, o.connection);
    // A late poll learns the connection ended.
    assert_eq!(
        request(addr, "GET", &url(&token), "", b"").await.status,
        204
    );
    p.shutdown().await;
}

#[tokio::test]
async fn long_polling_client_that_stops_polling_is_disconnected() {
    let p = proxy(|c| c.disconnect_timeout = Duration::from_millis(300)).await;
    let mut app = AppServer::linked(&p, &["chat"]).await;
    let addr = p.client_addr;
    let (token, _) = negotiate(&p, "chat", "gone").await;
    assert_eq!(
        request(addr, "GET", &url(&token), "", b"").await.status,
        200
    );
    request(addr, "POST", &url(&token), "", HANDSHAKE).await;
    let o = opened(app.next().await);
    let Down::ConnectionClosed(c) = app.next().await else {
        panic!("expected ConnectionClosed")
    };
    assert_eq!(c.connection, o.connection);
    p.shutdown().await;
}

#[tokio::test]
async fn long_polling_close_is_delivered_then_polls_get_204() {
    let p = proxy(|_| {}).await;
    let mut app = AppServer::linked(&p, &["chat"]).await;
    let addr = p.client_addr;
    let (token, _) = negotiate(&p, "chat", "c").await;
    request(addr, "GET", &url(&token), "", b"").await;
    request(addr, "POST", &url(&token), "", HANDSHAKE).await;
    assert_eq!(
        request(addr, "GET", &url(&token), "", b"").await.text(),
        "{}\u{1e}"
    );
    let _ = opened(app.next().await);
    // A protocol error closes the connection with a Close message.
    request(
        addr,
        "POST",
        &url(&token),
        "",
        b"{\"type\":1,\"target\":5}\x1e",
    )
    .await;
    let a = request(addr, "GET", &url(&token), "", b"").await;
    let close: Value = serde_json::from_str(a.text().trim_end_matches('\u{1e}')).unwrap();
    assert_eq!(close["type"], 7, "{}", a.text());
    assert!(matches!(app.next().await, Down::ConnectionClosed(_)));
    assert_eq!(
        request(addr, "GET", &url(&token), "", b"").await.status,
        204
    );
    p.shutdown().await;
}

#[tokio::test]
async fn server_sent_events_ping_and_time_out_a_silent_client() {
    let p = proxy(|c| {
        c.keep_alive_interval = Duration::from_millis(200);
        c.client_timeout = Duration::from_millis(700);
    })
    .await;
    let mut app = AppServer::linked(&p, &["chat"]).await;
    let (token, _) = negotiate(&p, "chat", "quiet").await;
    let mut sse = Streamed::get(p.client_addr, &url(&token), SSE).await;
    assert_eq!(sse.chunk().await, b":\r\n");
    request(p.client_addr, "POST", &url(&token), "", HANDSHAKE).await;
    assert_eq!(sse.chunk().await, b"data: {}\x1e\r\n\r\n");
    let o = opened(app.next().await);
    // Nothing to send: a ping per keep-alive interval.
    assert_eq!(sse.chunk().await, b"data: {\"type\":6}\x1e\r\n\r\n");
    // Silent past the client timeout: a Close allowing reconnects, then the end.
    let close = loop {
        let chunk = sse.chunk().await;
        if chunk != b"data: {\"type\":6}\x1e\r\n\r\n" {
            break chunk;
        }
    };
    let text = String::from_utf8(close).unwrap();
    let record = text
        .strip_prefix("data: ")
        .and_then(|t| t.strip_suffix("\u{1e}\r\n\r\n"))
        .unwrap();
    let close: Value = serde_json::from_str(record).unwrap();
    assert_eq!(
        (close["type"].as_u64(), close["allowReconnect"].as_bool()),
        (Some(7), Some(true))
    );
    assert!(sse.ended().await);
    let Down::ConnectionClosed(c) = app.next().await else {
        panic!("expected ConnectionClosed")
    };
    assert_eq!(
        (c.connection, c.reason.as_str()),
        (o.connection, "ping timeout")
    );
    p.shutdown().await;
}
