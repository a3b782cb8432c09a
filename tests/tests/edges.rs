//! Negotiate and transport edge cases, checked with raw HTTP and the raw
//! client: what a misbehaving or unauthorised client gets back.

use reqwest::StatusCode;
use serde_json::json;
use switchboard_tests::signalr::{self, ClientError, ConnectOptions, Connection, Ended, Message};
use switchboard_tests::{AppServer, Proxy, http};

#[tokio::test]
async fn negotiate_without_a_token_is_401_with_an_empty_body() -> anyhow::Result<()> {
    let proxy = Proxy::start().await;
    let _app = AppServer::testhub(&proxy, None).await;
    let url = signalr::negotiate_url(&proxy.client_url("testhub"))?;
    let response = http::client().post(url.clone()).send().await?;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "POST {url} without a token"
    );
    // The official client turns an empty 401 into "Unauthorized: Status code '401'".
    assert_eq!(
        response.text().await?,
        "",
        "POST {url} without a token: body"
    );
    Ok(())
}

#[tokio::test]
async fn negotiate_answers_version_1_with_distinct_ids_and_websockets() -> anyhow::Result<()> {
    let proxy = Proxy::start().await;
    let app = AppServer::testhub(&proxy, None).await;
    let http = http::client();
    let redirect = signalr::redirect_from_app(&http, &app.url(), "testhub", Some("alice")).await?;
    assert_eq!(
        redirect.url,
        proxy.client_url("testhub"),
        "the app server's redirect URL"
    );
    let first =
        signalr::negotiate_at_proxy(&http, &redirect.url, Some(&redirect.access_token)).await?;
    let second =
        signalr::negotiate_at_proxy(&http, &redirect.url, Some(&redirect.access_token)).await?;
    assert_eq!(first.negotiate_version, 1);
    let token = first
        .connection_token
        .as_deref()
        .expect("a version 1 answer has a connectionToken");
    assert_ne!(
        token, first.connection_id,
        "the secret token must differ from the public id"
    );
    assert_ne!(
        first.connection_id, second.connection_id,
        "each negotiate makes a new connection"
    );
    let websockets = first
        .available_transports
        .iter()
        .find(|transport| transport["transport"] == "WebSockets")
        .unwrap_or_else(|| panic!("no WebSockets in {:?}", first.available_transports));
    let formats = websockets["transferFormats"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        formats.contains(&json!("Text")),
        "WebSockets formats {formats:?} lack Text"
    );
    Ok(())
}

#[tokio::test]
async fn negotiate_with_get_is_405() -> anyhow::Result<()> {
    let proxy = Proxy::start().await;
    let app = AppServer::testhub(&proxy, None).await;
    let token = app.token(&[]).await;
    let url = signalr::negotiate_url(&proxy.client_url("testhub"))?;
    let response = http::client()
        .get(url.clone())
        .bearer_auth(token)
        .send()
        .await?;
    assert_eq!(
        response.status(),
        StatusCode::METHOD_NOT_ALLOWED,
        "GET {url} with a valid token"
    );
    Ok(())
}

#[tokio::test]
async fn negotiate_for_a_hub_without_an_app_server_is_503() -> anyhow::Result<()> {
    let proxy = Proxy::start().await;
    let app = AppServer::testhub(&proxy, None).await;
    let token = app.token(&[("hub", "nohub")]).await;
    let url = signalr::negotiate_url(&proxy.client_url("nohub"))?;
    let response = http::client()
        .post(url.clone())
        .bearer_auth(token)
        .send()
        .await?;
    assert_eq!(
        response.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "POST {url} with a valid token"
    );
    assert_eq!(
        response.text().await?.trim_end(),
        "No app server is connected for hub 'nohub'."
    );
    Ok(())
}

#[tokio::test]
async fn websocket_without_id_or_token_is_401() -> anyhow::Result<()> {
    let proxy = Proxy::start().await;
    let _app = AppServer::testhub(&proxy, None).await;
    let url = signalr::websocket_url(&proxy.client_url("testhub"), None)?;
    let refused = Connection::open(&url, None, &ConnectOptions::default()).await;
    assert_status(refused, 401);
    Ok(())
}

#[tokio::test]
async fn websocket_with_an_unknown_id_is_404() -> anyhow::Result<()> {
    let proxy = Proxy::start().await;
    let app = AppServer::testhub(&proxy, None).await;
    let token = app.token(&[]).await;
    let url = signalr::websocket_url(
        &proxy.client_url("testhub"),
        Some("bm8tc3VjaC1jb25uZWN0aW9u"),
    )?;
    let refused = Connection::open(&url, Some(&token), &ConnectOptions::default()).await;
    assert_status(refused, 404);
    Ok(())
}

#[tokio::test]
async fn handshake_with_an_unknown_protocol_gets_the_error_reply() -> anyhow::Result<()> {
    let proxy = Proxy::start().await;
    let app = AppServer::testhub(&proxy, None).await;
    let http = http::client();
    let redirect = signalr::redirect_from_app(&http, &app.url(), "testhub", None).await?;
    let negotiation =
        signalr::negotiate_at_proxy(&http, &redirect.url, Some(&redirect.access_token)).await?;
    let url = signalr::websocket_url(&redirect.url, Some(negotiation.id_for_transport()))?;
    let mut connection = Connection::open(
        &url,
        Some(&redirect.access_token),
        &ConnectOptions::default(),
    )
    .await?;
    match connection.handshake_with("foo", 1).await {
        Err(ClientError::HandshakeRejected(error)) => {
            assert_eq!(error, "The protocol 'foo' is not supported.");
        }
        other => panic!("expected the handshake to be rejected, got {other:?}"),
    }
    let (messages, ended) = connection.read_to_end().await?;
    assert!(
        messages.is_empty(),
        "messages after a failed handshake: {messages:?}"
    );
    assert!(
        !matches!(ended, Ended::Error(_)),
        "the proxy should close after a failed handshake, not fail: {ended}"
    );
    Ok(())
}

#[tokio::test]
async fn a_message_over_the_size_limit_gets_a_close_with_an_error() -> anyhow::Result<()> {
    let proxy = Proxy::start_with(&["--max-message-size", "4096"]).await;
    let app = AppServer::testhub(&proxy, None).await;
    let http = http::client();
    let mut connection = signalr::connect(&http, &app.url(), "testhub", None).await?;
    assert_eq!(
        connection
            .invoke("Echo", json!(["small"]))
            .await?
            .into_result()?,
        Some(json!("small"))
    );

    let oversized = signalr::invocation_record(Some("big"), "Echo", &json!(["x".repeat(8192)]));
    connection.send_text(oversized).await?;
    let (messages, ended) = connection.read_to_end().await?;
    match messages.as_slice() {
        [
            Message::Close {
                error: Some(error), ..
            },
        ] => {
            assert!(!error.is_empty(), "the Close carries an empty error");
        }
        _ => panic!("expected exactly one Close with an error, got {messages:?} then {ended}"),
    }
    Ok(())
}

fn assert_status(result: Result<Connection, ClientError>, expected: u16) {
    match result {
        Err(ClientError::Status { status, .. }) if status == expected => {}
        Err(error) => panic!("expected the upgrade to be refused with {expected}, got: {error}"),
        Ok(_) => panic!("expected the upgrade to be refused with {expected}, but it was accepted"),
    }
}
