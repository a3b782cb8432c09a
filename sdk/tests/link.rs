//! The SDK's link, invocations, sends, groups and lifecycle against the
//! in-process fake proxy.

#[path = "support/fake_proxy.rs"]
mod fake_proxy;

use std::sync::Arc;
use std::time::Duration;

use fake_proxy::{ENDPOINT, Harness, KEY, WAIT};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parking_lot::Mutex;
use serde_json::{Map, Value};
use switchboard_proto::server_message::Kind as Out;
use switchboard_proto::{
    Ack, ClientInvocation, ConnectionClosed, Payload, Welcome, ack, audience, group_change,
    invocation_result, proxy_message, query,
};
use switchboard_sdk::{Context, Disconnect, ErrorKind, Hub, HubError};

fn test_hub(log: Arc<Mutex<Vec<String>>>) -> Hub {
    let connected_log = log.clone();
    let disconnected_log = log.clone();
    Hub::builder("testhub")
        .on_connected(move |ctx: Context| {
            connected_log
                .lock()
                .push(format!("connected {}", ctx.connection_id()));
            async {}
        })
        .on_disconnected(move |ctx: Context, disconnect: Disconnect| {
            disconnected_log.lock().push(format!(
                "disconnected {} {}",
                ctx.connection_id(),
                disconnect.reason
            ));
            async {}
        })
        .method("Echo", |_ctx: Context, (s,): (String,)| async move {
            Ok::<_, HubError>(s)
        })
        .method("DoNothing", |_ctx: Context, (): ()| async {})
        .method("ReturnNull", |_ctx: Context, (): ()| async {
            Ok::<Option<u32>, HubError>(None)
        })
        .method("Add", |_ctx: Context, (a, b): (i64, i64)| async move {
            Ok::<_, HubError>(a + b)
        })
        .method("Throw", |_ctx: Context, (msg,): (String,)| async move {
            Err::<(), _>(HubError::new(msg))
        })
        .method("Broken", |_ctx: Context, (): ()| async {
            Err::<(), HubError>(std::io::Error::other("secret detail").into())
        })
        .method("Panics", |_ctx: Context, (msg,): (String,)| async move {
            if !msg.is_empty() {
                panic!("{msg}");
            }
        })
        .method("WhoAmI", |ctx: Context, (): ()| async move {
            Ok::<_, HubError>((
                ctx.user_id().map(str::to_owned),
                ctx.claims().get("role").cloned(),
            ))
        })
        .method("Record", move |_ctx: Context, (n, delay_ms): (u32, u64)| {
            let log = log.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
                log.lock().push(format!("record {n}"));
                Ok::<_, HubError>(n)
            }
        })
        .method("ToOthers", |ctx: Context, (msg,): (String,)| async move {
            ctx.clients().others().send("Receive", (msg,)).await
        })
        .method("Join", |ctx: Context, (group,): (String,)| async move {
            ctx.groups().join(&group).await
        })
        .build()
}

async fn wait_for_log(log: &Mutex<Vec<String>>, entry: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !log.lock().iter().any(|e| e == entry) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no '{entry}' in {:?}",
            log.lock()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn value(outcome: invocation_result::Outcome) -> String {
    match outcome {
        invocation_result::Outcome::Value(payload) => {
            String::from_utf8(payload.data.to_vec()).unwrap()
        }
        other => panic!("expected a value, got {other:?}"),
    }
}

fn error(outcome: invocation_result::Outcome) -> String {
    match outcome {
        invocation_result::Outcome::Error(text) => text,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn link_authenticates_with_a_bearer_token_and_says_hello() {
    let mut harness = Harness::start(test_hub).await;
    let mut link = harness.accept().await;
    assert!(!harness.server.is_ready());

    let authorization = link
        .authorization
        .clone()
        .expect("no authorization metadata");
    let token = authorization
        .strip_prefix("Bearer ")
        .expect("not a bearer token");
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, Algorithm::HS256);
    assert_eq!(header.kid, Some(switchboard_sdk::key_id(KEY)));
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&[format!("{ENDPOINT}/server/")]);
    let claims = jsonwebtoken::decode::<Map<String, Value>>(
        token,
        &DecodingKey::from_secret(KEY.as_bytes()),
        &validation,
    )
    .expect("link token does not verify")
    .claims;
    assert_eq!(claims["sub"], "app-under-test");

    let Out::Hello(hello) = link.next().await else {
        panic!("the first message was not Hello");
    };
    assert_eq!(hello.server_id, "app-under-test");
    assert_eq!(hello.hubs, vec!["testhub".to_owned()]);
    assert_eq!(hello.protocol_version, 1);

    link.send(proxy_message::Kind::Welcome(Welcome::default()))
        .await;
    tokio::time::timeout(WAIT, harness.server.wait_ready())
        .await
        .expect("not ready after Welcome")
        .unwrap();
    assert!(harness.server.is_ready());
}

#[tokio::test]
async fn invocations_get_values_void_null_and_reference_error_texts() {
    let mut harness = Harness::start(test_hub).await;
    let mut link = harness.linked().await;
    link.open("c1", "alice").await;

    assert_eq!(value(link.call("1", "Echo", r#"["hi"]"#).await), r#""hi""#);
    assert_eq!(
        value(link.call("2", "eChO", r#"["case"]"#).await),
        r#""case""#
    );
    assert_eq!(value(link.call("3", "Add", "[2, 40]").await), "42");
    assert_eq!(
        link.call("4", "DoNothing", "[]").await,
        invocation_result::Outcome::Void(Default::default())
    );
    assert_eq!(value(link.call("5", "ReturnNull", "[]").await), "null");
    assert_eq!(
        value(link.call("6", "WhoAmI", "[]").await),
        r#"["alice","admin"]"#
    );
    assert_eq!(
        error(link.call("7", "Missing", "[]").await),
        "Failed to invoke 'Missing' due to an error on the server. HubException: Method does not exist."
    );
    assert_eq!(
        error(link.call("8", "Add", "[1]").await),
        "Failed to invoke 'Add' due to an error on the server. InvalidDataException: Invocation provides 1 argument(s) but target expects 2."
    );
    assert_eq!(
        error(link.call("9", "Add", r#"["one", 2]"#).await),
        "Failed to invoke 'Add' due to an error on the server. InvalidDataException: Error binding arguments. Make sure that the types of the provided values match the types of the hub method being invoked."
    );
    assert_eq!(
        error(link.call("10", "Throw", r#"["boom"]"#).await),
        "An unexpected error occurred invoking 'Throw' on the server. HubException: boom"
    );
    assert_eq!(
        error(link.call("11", "Broken", "[]").await),
        "An unexpected error occurred invoking 'Broken' on the server."
    );
    assert_eq!(
        error(link.call("12", "Panics", r#"["handler bug"]"#).await),
        "An unexpected error occurred invoking 'Panics' on the server."
    );

    link.send(proxy_message::Kind::ClientInvocation(ClientInvocation {
        connection: "c1".into(),
        hub: "testhub".into(),
        invocation_id: "13".into(),
        target: "Echo".into(),
        arguments: Some(Payload::json(r#"["x"]"#)),
        streaming: true,
        ..ClientInvocation::default()
    }))
    .await;
    assert_eq!(
        error(link.result("13").await),
        "The client attempted to invoke the non-streaming 'Echo' method with a streaming invocation."
    );

    // Without an id there is no result: the next one seen is for "15".
    link.invoke("c1", "", "Echo", r#"["quiet"]"#).await;
    link.invoke("c1", "", "Missing", "[]").await;
    assert_eq!(
        value(link.call("15", "Echo", r#"["loud"]"#).await),
        r#""loud""#
    );
    assert!(link.try_next(Duration::from_millis(200)).await.is_none());
}

#[tokio::test]
async fn sends_carry_audience_exclusions_and_a_json_array() {
    let mut harness = Harness::start(test_hub).await;
    let mut link = harness.linked().await;
    link.open("c1", "").await;
    link.invoke("c1", "1", "ToOthers", r#"["hello"]"#).await;
    let Out::Send(send) = link.next().await else {
        panic!("expected a Send");
    };
    assert_eq!(send.hub, "testhub");
    assert_eq!(send.target, "Receive");
    assert_eq!(send.excluded, vec!["c1".to_owned()]);
    assert!(matches!(
        send.audience.and_then(|a| a.target),
        Some(audience::Target::All(_))
    ));
    assert_eq!(send.arguments.unwrap().data, r#"["hello"]"#);
    assert_eq!(send.ack_id, 0);
    assert_eq!(
        link.result("1").await,
        invocation_result::Outcome::Void(Default::default())
    );
}

#[tokio::test]
async fn one_connection_runs_in_order_while_connections_run_concurrently() {
    let mut harness = Harness::start(test_hub).await;
    let mut link = harness.linked().await;
    link.open("c1", "").await;
    link.open("c2", "").await;

    // c1's first call is slow; if c1 ran concurrently "2" would finish first.
    link.invoke("c1", "a", "Record", "[1, 300]").await;
    link.invoke("c1", "b", "Record", "[2, 0]").await;
    // c2 must not wait for c1.
    link.invoke("c2", "c", "Record", "[3, 0]").await;

    assert_eq!(value(link.result("c").await), "3");
    assert_eq!(value(link.result("a").await), "1");
    assert_eq!(value(link.result("b").await), "2");
    let log = harness.log.lock().clone();
    let records: Vec<_> = log.iter().filter(|e| e.starts_with("record")).collect();
    assert_eq!(records, ["record 3", "record 1", "record 2"]);
    // on_connected ran before anything else of its connection.
    assert_eq!(log[0], "connected c1");
}

#[tokio::test]
async fn group_join_waits_for_the_proxy_ack() {
    let mut harness = Harness::start(test_hub).await;
    let mut link = harness.linked().await;
    link.open("c1", "").await;

    link.invoke("c1", "1", "Join", r#"["room"]"#).await;
    let Out::GroupChange(change) = link.next().await else {
        panic!("expected a GroupChange");
    };
    assert_eq!(change.group, "room");
    assert_eq!(change.hub, "testhub");
    assert_eq!(
        change.member,
        Some(group_change::Member::Connection("c1".into()))
    );
    assert_eq!(change.action(), group_change::Action::Add);
    assert_ne!(change.ack_id, 0);
    // No result before the ack.
    assert!(link.try_next(Duration::from_millis(300)).await.is_none());
    link.send(proxy_message::Kind::Ack(Ack {
        ack_id: change.ack_id,
        status: ack::Status::Ok as i32,
        message: String::new(),
    }))
    .await;
    assert_eq!(
        link.result("1").await,
        invocation_result::Outcome::Void(Default::default())
    );

    // A NOT_FOUND ack fails the method.
    link.invoke("c1", "2", "Join", r#"["room"]"#).await;
    let Out::GroupChange(change) = link.next().await else {
        panic!("expected a GroupChange");
    };
    link.send(proxy_message::Kind::Ack(Ack {
        ack_id: change.ack_id,
        status: ack::Status::NotFound as i32,
        message: "no such connection".into(),
    }))
    .await;
    assert_eq!(
        error(link.result("2").await),
        "An unexpected error occurred invoking 'Join' on the server."
    );
}

#[tokio::test]
async fn link_reconnects_after_the_proxy_drops_the_stream() {
    let mut harness = Harness::start(test_hub).await;
    let link = harness.linked().await;
    link.open("c1", "").await;
    let hub = harness.server.hub("TESTHUB").expect("hub handle");

    drop(link);
    // The app server dials again with a fresh Hello; until Welcome, sends
    // fail fast instead of piling up.
    let mut second = harness.accept().await;
    assert!(second.authorization.is_some());
    let Out::Hello(hello) = second.next().await else {
        panic!("the first message on the new link was not Hello");
    };
    assert_eq!(hello.hubs, vec!["testhub".to_owned()]);
    assert!(!harness.server.is_ready());
    let err = hub
        .clients()
        .all()
        .send("Receive", ("lost",))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LinkDown);
    // Connections of the lost link ended here.
    wait_for_log(&harness.log, "disconnected c1 link lost").await;

    second
        .send(proxy_message::Kind::Welcome(Welcome::default()))
        .await;
    tokio::time::timeout(WAIT, harness.server.wait_ready())
        .await
        .expect("not ready after reconnecting")
        .unwrap();
    hub.clients()
        .all()
        .send("Receive", ("back",))
        .await
        .unwrap();
    let Out::Send(send) = second.next().await else {
        panic!("expected a Send on the new link");
    };
    assert_eq!(send.arguments.unwrap().data, r#"["back"]"#);
}

#[tokio::test]
async fn closed_connections_run_the_disconnect_handler_and_shutdown_ends_the_link() {
    let mut harness = Harness::start(test_hub).await;
    let mut link = harness.linked().await;
    link.open("c1", "").await;
    link.send(proxy_message::Kind::ConnectionClosed(ConnectionClosed {
        connection: "c1".into(),
        hub: "testhub".into(),
        reason: "normal".into(),
        error: String::new(),
    }))
    .await;
    wait_for_log(&harness.log, "disconnected c1 normal").await;

    tokio::time::timeout(WAIT, harness.server.shutdown())
        .await
        .expect("shutdown hangs");
    assert!(!harness.server.is_ready());
    // The app server half-closed its side of the stream.
    let end = tokio::time::timeout(WAIT, link.inbound.message()).await;
    assert!(matches!(end, Ok(Ok(None)) | Ok(Err(_))));
    let err = harness.server.wait_ready().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Shutdown);
}

#[tokio::test]
async fn shutdown_lets_running_invocations_deliver_their_results() {
    let mut harness = Harness::start(test_hub).await;
    let mut link = harness.linked().await;
    link.open("c1", "").await;
    link.invoke("c1", "slow", "Record", "[7, 300]").await;
    // Let the invocation start before shutting down.
    wait_for_log(&harness.log, "connected c1").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let server = harness.server.clone();
    let shutdown = tokio::spawn(async move { server.shutdown().await });
    assert_eq!(value(link.result("slow").await), "7");
    tokio::time::timeout(WAIT, shutdown)
        .await
        .expect("shutdown hangs")
        .unwrap();
    wait_for_log(&harness.log, "disconnected c1 link lost").await;
}

#[tokio::test]
async fn hub_context_queries_and_closes_through_acknowledged_requests() {
    let mut harness = Harness::start(test_hub).await;
    let mut link = harness.linked().await;
    let hub = harness.server.hub("testhub").expect("hub handle");

    let asking = tokio::spawn({
        let hub = hub.clone();
        async move { hub.user_exists("alice").await }
    });
    let Out::Query(asked) = link.next().await else {
        panic!("expected a Query");
    };
    assert_eq!(asked.subject, Some(query::Subject::User("alice".into())));
    assert_ne!(asked.ack_id, 0);
    link.send(proxy_message::Kind::Ack(Ack {
        ack_id: asked.ack_id,
        status: ack::Status::NotFound as i32,
        message: String::new(),
    }))
    .await;
    assert!(!asking.await.unwrap().unwrap());

    let closing = tokio::spawn({
        let hub = hub.clone();
        async move { hub.close_connection("c9", "bye", true).await }
    });
    let Out::CloseConnection(close) = link.next().await else {
        panic!("expected a CloseConnection");
    };
    assert_eq!(close.connection, "c9");
    assert_eq!(close.reason, "bye");
    assert!(close.allow_reconnect);
    link.send(proxy_message::Kind::Ack(Ack {
        ack_id: close.ack_id,
        status: ack::Status::Error as i32,
        message: "draining".into(),
    }))
    .await;
    let err = closing.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Rejected);
    assert!(err.to_string().contains("draining"), "{err}");
}
