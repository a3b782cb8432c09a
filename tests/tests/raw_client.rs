//! The basic hub round trips through the proxy, seen byte by byte with the
//! raw client: results, void and null, error texts, and a server-to-client call.

use serde_json::{Value, json};
use switchboard_tests::signalr::{self, ClientError, Message};
use switchboard_tests::{AppServer, Proxy, http};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invocations_round_trip_through_the_proxy() -> anyhow::Result<()> {
    let proxy = Proxy::start().await;
    let app = AppServer::testhub(&proxy, None).await;
    let http = http::client();
    let mut alice = signalr::connect(&http, &app.url(), "testhub", Some("alice")).await?;

    let text = "h\u{e9}llo \"quoted\" \u{2603} \\ end";
    assert_eq!(
        alice.invoke("Echo", json!([text])).await?.into_result()?,
        Some(json!(text))
    );
    // Method names match case-insensitively.
    assert_eq!(
        alice
            .invoke("echo", json!(["lower"]))
            .await?
            .into_result()?,
        Some(json!("lower"))
    );
    assert_eq!(
        alice.invoke("GetUserId", json!([])).await?.into_result()?,
        Some(json!("alice"))
    );
    let own_id = alice.connection_id().expect("negotiated").to_owned();
    assert_eq!(
        alice
            .invoke("GetCallerConnectionId", json!([]))
            .await?
            .into_result()?,
        Some(json!(own_id))
    );
    // A void method's completion has no `result`; a null one has `"result": null`.
    assert_eq!(
        alice.invoke("DoNothing", json!([])).await?.into_result()?,
        None
    );
    assert_eq!(
        alice.invoke("ReturnNull", json!([])).await?.into_result()?,
        Some(Value::Null)
    );

    let error = alice
        .invoke("ThrowException", json!(["boom"]))
        .await?
        .into_result();
    assert_hub_error(
        error,
        "An unexpected error occurred invoking 'ThrowException' on the server. HubException: boom",
    );
    let error = alice.invoke("NoSuchMethod", json!([])).await?.into_result();
    assert_hub_error(
        error,
        "Failed to invoke 'NoSuchMethod' due to an error on the server. HubException: Method does not exist.",
    );

    assert_eq!(
        alice
            .invoke("SendToCaller", json!(["to you"]))
            .await?
            .into_result()?,
        None
    );
    assert_eq!(
        alice.expect_invocation("Receive").await?,
        vec![json!("to you")]
    );

    // A non-blocking invocation gets no completion; the next reply is for the next call.
    alice
        .send("SendToCaller", json!(["fire and forget"]))
        .await?;
    assert_eq!(
        alice.expect_invocation("Receive").await?,
        vec![json!("fire and forget")]
    );
    assert_eq!(
        alice
            .invoke("Echo", json!(["after"]))
            .await?
            .into_result()?,
        Some(json!("after"))
    );
    let stray: Vec<Message> = alice.take_queued();
    assert!(stray.is_empty(), "unexpected messages: {stray:?}");

    let mut anonymous = signalr::connect(&http, &app.url(), "testhub", None).await?;
    assert_eq!(
        anonymous
            .invoke("GetUserId", json!([]))
            .await?
            .into_result()?,
        Some(Value::Null)
    );
    anonymous.close().await?;
    alice.close().await?;
    Ok(())
}

fn assert_hub_error(result: Result<Option<Value>, ClientError>, expected: &str) {
    match result {
        Err(ClientError::Hub(error)) => assert_eq!(error, expected),
        other => panic!("expected the hub error {expected:?}, got {other:?}"),
    }
}
