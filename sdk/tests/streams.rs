//! Server-to-client streams, upload streams, client results and
//! MessagePack payloads against the in-process fake proxy.

#[path = "support/fake_proxy.rs"]
mod fake_proxy;

use std::sync::Arc;
use std::time::Duration;

use fake_proxy::{Harness, Link, WAIT};
use futures_util::{StreamExt, stream};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use switchboard_proto::server_message::Kind as Out;
use switchboard_proto::{
    CancelInvocation, ClientInvocation, ClientResult, ClientStreamCompletion, ClientStreamItem,
    ConnectionClosed, Encoding, Payload, client_result, invocation_result, proxy_message,
};
use switchboard_sdk::{Context, ErrorKind, Hub, HubError, UploadStream};

/// Logs when dropped: shows the producer of a stream was stopped.
struct Stopped(Arc<Mutex<Vec<String>>>);

impl Drop for Stopped {
    fn drop(&mut self) {
        self.0.lock().push("producer stopped".into());
    }
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Point {
    x: i32,
    label: String,
}

fn stream_hub(log: Arc<Mutex<Vec<String>>>) -> Hub {
    Hub::builder("testhub")
        .stream_method("Letters", |_ctx: Context, (): ()| async {
            Ok::<_, HubError>(stream::iter(["a", "b", "c"].map(Ok::<_, HubError>)))
        })
        .stream_method("Empty", |_ctx: Context, (): ()| async {
            Ok::<_, HubError>(stream::empty::<Result<u32, HubError>>())
        })
        .stream_method("Infinite", move |_ctx: Context, (): ()| {
            let guard = Stopped(log.clone());
            async move {
                let items = stream::unfold((0u64, guard), |(n, guard)| async move {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    Some((Ok::<_, HubError>(n), (n + 1, guard)))
                });
                Ok::<_, HubError>(items)
            }
        })
        .stream_method("FailMidway", |_ctx: Context, (): ()| async {
            let items = stream::iter([Ok(1), Err(HubError::new("broke"))]);
            Ok::<_, HubError>(items)
        })
        .stream_method("FailHidden", |_ctx: Context, (): ()| async {
            let err: HubError = std::io::Error::other("secret").into();
            Ok::<_, HubError>(stream::iter([Ok(1), Err(err)]))
        })
        .stream_method("FailBefore", |_ctx: Context, (): ()| async {
            Err::<stream::Empty<Result<u32, HubError>>, _>(HubError::new("nope"))
        })
        .stream_method("Points", |_ctx: Context, (n,): (i32,)| async move {
            let points = (0..n).map(|x| {
                Ok::<_, HubError>(Point {
                    x,
                    label: format!("p{x}"),
                })
            });
            Ok::<_, HubError>(stream::iter(points))
        })
        .method(
            "Concat",
            |_ctx: Context, (prefix, mut parts): (String, UploadStream<String>)| async move {
                let mut text = prefix;
                while let Some(part) = parts.next().await {
                    text.push_str(&part?);
                }
                Ok::<_, HubError>(text)
            },
        )
        .method("Echo", |_ctx: Context, (s,): (String,)| async move {
            Ok::<_, HubError>(s)
        })
        .method("Add", |_ctx: Context, (a, b): (i64, i64)| async move {
            Ok::<_, HubError>(a + b)
        })
        .method("EchoPoint", |_ctx: Context, (p,): (Point,)| async move {
            Ok::<_, HubError>(p)
        })
        .method("Slow", |_ctx: Context, (ms,): (u64,)| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        })
        .build()
}

async fn linked() -> (Harness, Link) {
    let mut harness = Harness::start(stream_hub).await;
    let link = harness.linked().await;
    (harness, link)
}

async fn stream_call(link: &Link, connection: &str, id: &str, target: &str, args: Payload) {
    link.send(proxy_message::Kind::ClientInvocation(ClientInvocation {
        connection: connection.into(),
        hub: "testhub".into(),
        invocation_id: id.into(),
        target: target.into(),
        arguments: Some(args),
        streaming: true,
        ..ClientInvocation::default()
    }))
    .await;
}

/// Reads stream items of `id` until its result; returns the items' bytes
/// as text and the outcome.
async fn collect(link: &mut Link, id: &str) -> (Vec<String>, invocation_result::Outcome) {
    let mut items = Vec::new();
    loop {
        match link.next().await {
            Out::StreamItem(item) => {
                assert_eq!(item.invocation_id, id);
                assert_eq!(item.connection, "c1");
                let payload = item.item.expect("item without payload");
                items.push(String::from_utf8(payload.data.to_vec()).unwrap());
            }
            Out::InvocationResult(result) => {
                assert_eq!(result.invocation_id, id);
                return (items, result.outcome.expect("result without outcome"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn void() -> invocation_result::Outcome {
    invocation_result::Outcome::Void(Default::default())
}

fn error(text: &str) -> invocation_result::Outcome {
    invocation_result::Outcome::Error(text.into())
}

fn msgpack(data: Vec<u8>) -> Payload {
    Payload {
        encoding: Encoding::Messagepack as i32,
        data: data.into(),
    }
}

#[tokio::test]
async fn streams_send_items_then_a_completion_with_reference_texts() {
    let (_harness, mut link) = linked().await;
    link.open("c1", "").await;

    stream_call(&link, "c1", "1", "letters", Payload::json("[]")).await;
    assert_eq!(
        collect(&mut link, "1").await,
        (
            vec![r#""a""#.into(), r#""b""#.into(), r#""c""#.into()],
            void()
        )
    );

    stream_call(&link, "c1", "2", "Empty", Payload::json("[]")).await;
    assert_eq!(collect(&mut link, "2").await, (vec![], void()));

    stream_call(&link, "c1", "3", "FailMidway", Payload::json("[]")).await;
    assert_eq!(
        collect(&mut link, "3").await,
        (
            vec!["1".into()],
            error("An error occurred on the server while streaming results. HubException: broke")
        )
    );

    stream_call(&link, "c1", "4", "FailHidden", Payload::json("[]")).await;
    assert_eq!(
        collect(&mut link, "4").await.1,
        error("An error occurred on the server while streaming results.")
    );

    stream_call(&link, "c1", "5", "FailBefore", Payload::json("[]")).await;
    assert_eq!(
        collect(&mut link, "5").await,
        (
            vec![],
            error(
                "An unexpected error occurred invoking 'FailBefore' on the server. HubException: nope"
            )
        )
    );

    assert_eq!(
        link.call("6", "Letters", "[]").await,
        error(
            "The client attempted to invoke the streaming 'Letters' method with a non-streaming invocation."
        )
    );
    stream_call(&link, "c1", "7", "Echo", Payload::json(r#"["x"]"#)).await;
    assert_eq!(
        collect(&mut link, "7").await.1,
        error(
            "The client attempted to invoke the non-streaming 'Echo' method with a streaming invocation."
        )
    );
    stream_call(&link, "c1", "8", "Points", Payload::json("[]")).await;
    assert_eq!(
        collect(&mut link, "8").await.1,
        error(
            "Failed to invoke 'Points' due to an error on the server. InvalidDataException: Invocation provides 0 argument(s) but target expects 1."
        )
    );
}

#[tokio::test]
async fn cancelling_stops_the_producer_and_still_completes() {
    let (harness, mut link) = linked().await;
    link.open("c1", "").await;

    stream_call(&link, "c1", "s", "Infinite", Payload::json("[]")).await;
    for expected in ["0", "1"] {
        let Out::StreamItem(item) = link.next().await else {
            panic!("expected a stream item");
        };
        assert_eq!(item.item.unwrap().data, expected);
    }
    assert!(harness.log.lock().is_empty());
    // A second stream under the same id is refused; the first runs on.
    stream_call(&link, "c1", "s", "Infinite", Payload::json("[]")).await;
    let (_, outcome) = collect(&mut link, "s").await;
    assert_eq!(outcome, error("Invocation ID 's' is already in use."));
    let Out::StreamItem(_) = link.next().await else {
        panic!("the first stream stopped");
    };
    assert!(harness.log.lock().is_empty());
    link.send(proxy_message::Kind::CancelInvocation(CancelInvocation {
        connection: "c1".into(),
        invocation_id: "s".into(),
    }))
    .await;
    let (_, outcome) = collect(&mut link, "s").await;
    assert_eq!(outcome, void());
    // The producer was dropped before the completion went out.
    assert_eq!(*harness.log.lock(), ["producer stopped"]);

    // The stream ran beside the connection's queue: other calls were served.
    stream_call(&link, "c1", "t", "Infinite", Payload::json("[]")).await;
    let Out::StreamItem(_) = link.next().await else {
        panic!("expected a stream item");
    };
    link.invoke("c1", "e", "Echo", r#"["meanwhile"]"#).await;
    loop {
        match link.next().await {
            Out::StreamItem(_) => {}
            Out::InvocationResult(result) => {
                assert_eq!(result.invocation_id, "e");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    // A connection that closes stops its streams too.
    link.send(proxy_message::Kind::ConnectionClosed(ConnectionClosed {
        connection: "c1".into(),
        hub: "testhub".into(),
        reason: "normal".into(),
        error: String::new(),
    }))
    .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while harness.log.lock().len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "stream kept running"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn upload_item(stream_id: &str, json: &str) -> proxy_message::Kind {
    proxy_message::Kind::ClientStreamItem(ClientStreamItem {
        connection: "c1".into(),
        stream_id: stream_id.into(),
        item: Some(Payload::json(json.to_owned())),
    })
}

fn upload_end(stream_id: &str, error: &str) -> proxy_message::Kind {
    proxy_message::Kind::ClientStreamCompletion(ClientStreamCompletion {
        connection: "c1".into(),
        stream_id: stream_id.into(),
        error: error.into(),
    })
}

async fn upload_call(link: &Link, id: &str, args: &str, stream_ids: &[&str]) {
    link.send(proxy_message::Kind::ClientInvocation(ClientInvocation {
        connection: "c1".into(),
        hub: "testhub".into(),
        invocation_id: id.into(),
        target: "Concat".into(),
        arguments: Some(Payload::json(args.to_owned())),
        stream_ids: stream_ids.iter().map(|s| (*s).to_owned()).collect(),
        streaming: false,
    }))
    .await;
}

#[tokio::test]
async fn upload_items_reach_the_method_in_order_and_the_completion_ends_it() {
    let (_harness, mut link) = linked().await;
    link.open("c1", "").await;

    // Items may overtake an invocation still queued behind a slow one.
    link.invoke("c1", "slow", "Slow", "[200]").await;
    upload_call(&link, "1", r#"[">"]"#, &["s1"]).await;
    for item in [r#""a""#, r#""b""#, r#""c""#] {
        link.send(upload_item("s1", item)).await;
    }
    assert_eq!(link.result("slow").await, void());
    // No result before the completion, and the connection is not blocked.
    link.invoke("c1", "2", "Echo", r#"["free"]"#).await;
    assert_eq!(
        link.result("2").await,
        invocation_result::Outcome::Value(Payload::json(r#""free""#))
    );
    assert!(link.try_next(Duration::from_millis(200)).await.is_none());
    link.send(upload_end("s1", "")).await;
    assert_eq!(
        link.result("1").await,
        invocation_result::Outcome::Value(Payload::json(r#"">abc""#))
    );

    // A failed upload surfaces in the method as an error, which `?` turns
    // into a hub error carrying the client's own message.
    upload_call(&link, "3", r#"[""]"#, &["s2"]).await;
    link.send(upload_item("s2", r#""x""#)).await;
    link.send(upload_end("s2", "client gave up")).await;
    assert_eq!(
        link.result("3").await,
        error(
            "An unexpected error occurred invoking 'Concat' on the server. HubException: client gave up"
        )
    );

    upload_call(&link, "4", r#"[""]"#, &[]).await;
    assert_eq!(
        link.result("4").await,
        error(
            "An unexpected error occurred invoking 'Concat' on the server. HubException: Client sent 0 stream(s), Hub method expects 1."
        )
    );
    upload_call(&link, "5", r#"[""]"#, &["s3", "s4"]).await;
    assert_eq!(
        link.result("5").await,
        error(
            "An unexpected error occurred invoking 'Concat' on the server. HubException: Client sent 2 stream(s), Hub method expects 1."
        )
    );
    // Items of a refused invocation's streams are dropped quietly.
    link.send(upload_item("s3", r#""late""#)).await;
    assert!(link.try_next(Duration::from_millis(100)).await.is_none());
}

#[tokio::test]
async fn client_results_return_values_errors_and_time_out() {
    let (harness, mut link) = linked().await;
    link.open("c1", "").await;
    let hub = harness.server.hub("testhub").unwrap();

    let asking = tokio::spawn({
        let hub = hub.clone();
        async move {
            hub.clients()
                .client("c1")
                .invoke::<i64>("Result", ("q",))
                .await
        }
    });
    let Out::InvokeClient(invoke) = link.next().await else {
        panic!("expected InvokeClient");
    };
    assert_eq!(invoke.connection, "c1");
    assert_eq!(invoke.target, "Result");
    assert_eq!(invoke.arguments.unwrap().data, r#"["q"]"#);
    // The proxy gets a little more time than the app server waits.
    assert_eq!(invoke.timeout_ms, 31_000);
    link.send(proxy_message::Kind::ClientResult(ClientResult {
        request_id: invoke.request_id,
        outcome: Some(client_result::Outcome::Value(Payload::json("42"))),
    }))
    .await;
    assert_eq!(asking.await.unwrap().unwrap(), 42);

    let asking = tokio::spawn({
        let hub = hub.clone();
        async move { hub.clients().client("c1").invoke::<i64>("Result", ()).await }
    });
    let Out::InvokeClient(invoke) = link.next().await else {
        panic!("expected InvokeClient");
    };
    let text = "Client didn't provide a result.";
    link.send(proxy_message::Kind::ClientResult(ClientResult {
        request_id: invoke.request_id,
        outcome: Some(client_result::Outcome::Error(text.into())),
    }))
    .await;
    let err = asking.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Client);
    assert_eq!(err.to_string(), text);

    // A void answer is `None`; a value of the wrong type is a decode error.
    for (answer, expected) in [
        (client_result::Outcome::Void(Default::default()), Ok(None)),
        (
            client_result::Outcome::Value(msgpack(rmp_serde::to_vec(&7).unwrap())),
            Ok(Some(7)),
        ),
        (
            client_result::Outcome::Value(Payload::json(r#""seven""#)),
            Err(ErrorKind::Decode),
        ),
    ] {
        let asking = tokio::spawn({
            let hub = hub.clone();
            async move {
                hub.clients()
                    .client("c1")
                    .invoke::<Option<u8>>("Result", ())
                    .await
            }
        });
        let Out::InvokeClient(invoke) = link.next().await else {
            panic!("expected InvokeClient");
        };
        link.send(proxy_message::Kind::ClientResult(ClientResult {
            request_id: invoke.request_id,
            outcome: Some(answer),
        }))
        .await;
        assert_eq!(asking.await.unwrap().map_err(|e| e.kind()), expected);
    }

    let started = tokio::time::Instant::now();
    let err = hub
        .clients()
        .client("c1")
        .invoke_with_timeout::<i64>("Result", (), Duration::from_millis(200))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(started.elapsed() >= Duration::from_millis(200));
    let Out::InvokeClient(invoke) = link.next().await else {
        panic!("expected InvokeClient");
    };
    assert_eq!(invoke.timeout_ms, 1_200);
    // A late answer is ignored.
    link.send(proxy_message::Kind::ClientResult(ClientResult {
        request_id: invoke.request_id,
        outcome: Some(client_result::Outcome::Value(Payload::json("1"))),
    }))
    .await;
    assert!(link.try_next(Duration::from_millis(100)).await.is_none());
}

#[tokio::test]
async fn messagepack_arguments_are_decoded_and_answers_encoded_in_messagepack() {
    let (_harness, mut link) = linked().await;
    link.open_with("c1", "", "messagepack").await;

    let invoke = |id: &str, target: &str, args: Vec<u8>, streaming: bool| {
        proxy_message::Kind::ClientInvocation(ClientInvocation {
            connection: "c1".into(),
            hub: "testhub".into(),
            invocation_id: id.into(),
            target: target.into(),
            arguments: Some(msgpack(args)),
            streaming,
            ..ClientInvocation::default()
        })
    };
    let value = |outcome| match outcome {
        invocation_result::Outcome::Value(payload) => {
            assert_eq!(payload.encoding(), Encoding::Messagepack);
            payload.data.to_vec()
        }
        other => panic!("expected a value, got {other:?}"),
    };

    link.send(invoke(
        "1",
        "Add",
        rmp_serde::to_vec(&(2, 40)).unwrap(),
        false,
    ))
    .await;
    assert_eq!(
        value(link.result("1").await),
        rmp_serde::to_vec(&42).unwrap()
    );

    let point = Point {
        x: -3,
        label: "p".into(),
    };
    let args = rmp_serde::to_vec_named(&(&point,)).unwrap();
    link.send(invoke("2", "EchoPoint", args, false)).await;
    let answer = value(link.result("2").await);
    assert_eq!(answer, rmp_serde::to_vec_named(&point).unwrap());
    assert_eq!(rmp_serde::from_slice::<Point>(&answer).unwrap(), point);

    link.send(invoke("3", "Add", rmp_serde::to_vec(&(1,)).unwrap(), false))
        .await;
    assert_eq!(
        link.result("3").await,
        error(
            "Failed to invoke 'Add' due to an error on the server. InvalidDataException: Invocation provides 1 argument(s) but target expects 2."
        )
    );

    link.send(invoke(
        "4",
        "Points",
        rmp_serde::to_vec(&(2,)).unwrap(),
        true,
    ))
    .await;
    for x in 0..2 {
        let Out::StreamItem(item) = link.next().await else {
            panic!("expected a stream item");
        };
        let item = item.item.unwrap();
        assert_eq!(item.encoding(), Encoding::Messagepack);
        assert_eq!(
            rmp_serde::from_slice::<Point>(&item.data).unwrap(),
            Point {
                x,
                label: format!("p{x}")
            }
        );
    }
    assert_eq!(link.result("4").await, void());

    // Upload items from a MessagePack client arrive in MessagePack.
    link.send(proxy_message::Kind::ClientInvocation(ClientInvocation {
        connection: "c1".into(),
        hub: "testhub".into(),
        invocation_id: "5".into(),
        target: "Concat".into(),
        arguments: Some(msgpack(rmp_serde::to_vec(&("#",)).unwrap())),
        stream_ids: vec!["up".into()],
        streaming: false,
    }))
    .await;
    for part in ["x", "y"] {
        link.send(proxy_message::Kind::ClientStreamItem(ClientStreamItem {
            connection: "c1".into(),
            stream_id: "up".into(),
            item: Some(msgpack(rmp_serde::to_vec(part).unwrap())),
        }))
        .await;
    }
    link.send(upload_end("up", "")).await;
    assert_eq!(
        value(link.result("5").await),
        rmp_serde::to_vec("#xy").unwrap()
    );
}
