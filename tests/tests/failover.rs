//! App-server failover: when the app server serving a client dies, the
//! proxy moves the client to another app server serving the hub, without the
//! client noticing; when none is left, clients are closed and told they may
//! reconnect.

use std::time::Duration;

use serde_json::json;
use switchboard_tests::signalr::{self, Connection, Message};
use switchboard_tests::{AppServer, Proxy, http};

const CLIENTS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_move_to_a_surviving_app_server_and_are_closed_when_none_is_left()
-> anyhow::Result<()> {
    let proxy = Proxy::start().await;
    let mut a = AppServer::testhub(&proxy, Some("a")).await;
    let mut b = AppServer::testhub(&proxy, Some("b")).await;
    let http = http::client();

    let mut clients = Vec::with_capacity(CLIENTS);
    for n in 0..CLIENTS {
        let user = format!("user{n}");
        let mut client = signalr::connect(&http, &a.url(), "testhub", Some(&user)).await?;
        let serving = server_id(&mut client).await?;
        clients.push((client, serving));
    }
    let placement: Vec<&str> = clients
        .iter()
        .map(|(_, serving)| serving.as_str())
        .collect();
    eprintln!("app servers serving the clients: {placement:?}");

    // Kill the app server serving the first client, as a crash would.
    let victim_id = clients[0].1.clone();
    let (victim, survivor, survivor_id) = match victim_id.as_str() {
        "a" => (&mut a, &mut b, "b"),
        "b" => (&mut b, &mut a, "a"),
        other => panic!("GetServerId answered {other:?}, expected \"a\" or \"b\""),
    };
    victim.kill();

    for (client, serving) in &mut clients {
        let connection_id = client.connection_id().expect("negotiated").to_owned();
        if *serving == victim_id {
            let event = survivor
                .wait_for_event(
                    |event| event.event == "connected" && event.connection_id == connection_id,
                    Duration::from_secs(10),
                )
                .await;
            assert!(
                event.user_id.is_some(),
                "the moved connection lost its user: {event:?}"
            );
        }
        assert_eq!(
            server_id(client).await?,
            survivor_id,
            "connection {connection_id} (served by {serving} before) should now be served by {survivor_id}"
        );
        let echoed = client
            .invoke("Echo", json!(["still here"]))
            .await?
            .into_result()?;
        assert_eq!(echoed, Some(json!("still here")));
        let stray = client.take_queued();
        assert!(
            stray.is_empty(),
            "connection {connection_id} got unexpected messages: {stray:?}"
        );
    }

    // With no app server left for the hub, clients are closed and may reconnect.
    survivor.kill();
    for (client, _) in &mut clients {
        let connection_id = client.connection_id().expect("negotiated").to_owned();
        let (messages, ended) = client.read_to_end().await?;
        let closes: Vec<&Message> = messages
            .iter()
            .filter(|m| matches!(m, Message::Close { .. }))
            .collect();
        assert!(
            matches!(
                closes.as_slice(),
                [Message::Close {
                    allow_reconnect: true,
                    ..
                }]
            ),
            "connection {connection_id} should get one Close with allowReconnect: true; got {messages:?} then {ended}"
        );
    }
    Ok(())
}

async fn server_id(client: &mut Connection) -> anyhow::Result<String> {
    let id = client
        .invoke("GetServerId", json!([]))
        .await?
        .into_result()?;
    match id {
        Some(serde_json::Value::String(id)) => Ok(id),
        other => anyhow::bail!("GetServerId answered {other:?}"),
    }
}
