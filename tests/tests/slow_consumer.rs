//! A client that stops reading must not hold up anyone else: the proxy
//! closes it once its outbound queue passes the bound, while a reading
//! client gets the whole broadcast.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use switchboard_tests::signalr::{self, ConnectOptions, Ended, Message};
use switchboard_tests::{AppServer, Proxy, http};

/// The default bound. A reading client must absorb a burst that arrives
/// faster than it parses messages; the bound is the slack it gets.
const OUTBOX_LIMIT: &str = "1048576";
const MESSAGES: u64 = 2000;
/// Large enough that the flood (8 MB) is far beyond what the kernel's socket
/// buffers soak up for a client that does not read (about 2 MB on loopback,
/// even with a small receive buffer), so only the proxy can stop it.
const MESSAGE_SIZE: usize = 4096;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_is_closed_and_the_others_get_everything() -> anyhow::Result<()> {
    // A long client timeout, so that only the outbox bound can close the stalled client.
    let proxy =
        Proxy::start_with(&["--outbox-limit", OUTBOX_LIMIT, "--client-timeout", "5m"]).await;
    let app = AppServer::testhub(&proxy, None).await;
    let http = http::client();

    // A small receive buffer keeps the kernel from soaking up the backlog.
    let stalled_options = ConnectOptions {
        receive_buffer: Some(4096),
    };
    let mut stalled = signalr::connect_with(
        &http,
        &app.url(),
        "testhub",
        Some("stalled"),
        &stalled_options,
    )
    .await?;
    let mut reader = signalr::connect(&http, &app.url(), "testhub", Some("reader")).await?;

    // From here on nothing is read from `stalled` until the flood is over.
    reader.set_timeout(Duration::from_secs(60));
    let flood_started = Instant::now();
    let completion = reader
        .invoke("Flood", json!([MESSAGES, MESSAGE_SIZE]))
        .await;
    let flood_time = flood_started.elapsed();
    let received = reader.take_queued();
    let completion = completion.with_context(|| {
        format!(
            "Flood({MESSAGES}, {MESSAGE_SIZE}) failed for the client that kept reading \
             (outbox limit {OUTBOX_LIMIT}) after it had received {} messages",
            received.len()
        )
    })?;
    assert_eq!(completion.into_result()?, Some(json!(MESSAGES)));
    let payload = json!("x".repeat(MESSAGE_SIZE));
    let floods = received
        .iter()
        .filter(|m| matches!(m, Message::Invocation { target, arguments, .. } if target == "Receive" && arguments.as_slice() == [payload.clone()]))
        .count();
    assert_eq!(
        floods as u64, MESSAGES,
        "the reading client got {floods} of {MESSAGES} messages"
    );
    assert_eq!(
        floods,
        received.len(),
        "the reading client got other messages too"
    );
    eprintln!("the reading client got all {MESSAGES} messages in {flood_time:?}");

    // The stalled client resumes reading: what was queued for it before the
    // proxy gave up, then the end of the connection, soon.
    stalled.set_timeout(Duration::from_secs(15));
    let (messages, ended) = stalled.read_to_end().await?;
    let delivered = messages
        .iter()
        .filter(|m| matches!(m, Message::Invocation { .. }))
        .count();
    let close = messages.iter().find_map(|m| match m {
        Message::Close { error, .. } => Some(error.clone()),
        _ => None,
    });
    eprintln!("the stalled client got {delivered} messages, close message {close:?}, then {ended}");
    assert!(
        (delivered as u64) < MESSAGES,
        "the stalled client got all {delivered} messages: its outbox never passed the bound"
    );
    if let Some(error) = close {
        let error = error.unwrap_or_default();
        assert!(
            error.contains("slow consumer"),
            "Close message error {error:?} should say slow consumer"
        );
    }
    if let Ended::Closed { code, reason } = &ended {
        assert_eq!(*code, Some(1011), "close frame code");
        assert!(
            reason.contains("slow consumer"),
            "close frame reason {reason:?} should say slow consumer"
        );
    }
    Ok(())
}
