//! socket.io as a peer: `tests/peers/socketio/server.js` under Node (the
//! server also serves `POST /publish`), and the Engine.IO v4 + socket.io
//! protocol its clients speak over a WebSocket: the open packet (`0{...}`),
//! connecting the default namespace (`40`), answering pings (`2` → `3`),
//! joining rooms with an acknowledged `join` event, and `bench` events
//! (`42["bench",stream,seq,sentMicros,pad]`).

use std::borrow::Cow;
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use serde::de::IgnoredAny;
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as Frame;

use super::super::stack::{Server, Stack};
use super::super::wire::Incoming;
use super::{System, first_line, peers_dir, program};
use switchboard_tests::ports::free_port;

/// Where clients open their WebSocket (no long-polling first).
pub const PATH: &str = "/socket.io/?EIO=4&transport=websocket";

/// Starts the server and waits until it answers `/health`.
pub async fn start() -> Result<Stack> {
    let node = program("node")?;
    let dir = peers_dir().join("socketio");
    let package = dir.join("node_modules/socket.io/package.json");
    let version = std::fs::read_to_string(&package)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|value| value["version"].as_str().map(str::to_owned))
        .with_context(|| {
            format!(
                "{} is missing: run tests/peers/install.sh",
                package.display()
            )
        })?;
    let port = free_port();
    let mut command = Command::new(&node);
    command.arg(dir.join("server.js")).arg(port.to_string());
    let mut server = Server::spawn("the socket.io server", command)?;
    let url = format!("http://127.0.0.1:{port}");
    server.wait_until_ok(&format!("{url}/health")).await?;
    Ok(Stack {
        _app: None,
        measured: vec![server],
        system: System::Socketio,
        proxy_url: url.clone(),
        app_url: url,
        admin_url: None,
        replicas: Vec::new(),
        redis: None,
        about: json!({
            "system": "socketio",
            "version": version,
            "node": first_line(&node, &["--version"])?,
            "settings": {
                "transports": ["websocket"],
                "perMessageDeflate": false,
                "native_addons": ["bufferutil", "utf-8-validate"],
                "initial_request": "discarded once connected",
                "adapter": "in-memory (one process)",
                "note": "the server process also publishes: its CPU includes the publisher's",
            },
        }),
        _scratch: None,
    })
}

/// Reads the open packet and connects the default namespace.
pub async fn handshake(ws: &mut WebSocketStream<TcpStream>) -> Result<()> {
    let open = next_text(ws).await?;
    if !open.starts_with('0') {
        bail!("expected the Engine.IO open packet, got {open:?}");
    }
    ws.send(Frame::Text("40".into())).await?;
    loop {
        let text = next_text(ws).await?;
        if text.starts_with("40") {
            return Ok(());
        }
        if text.starts_with("44") {
            bail!("namespace refused: {text}");
        }
        answer_ping(ws, &text).await?;
    }
}

/// Joins `rooms` and waits for the server's acknowledgement.
pub async fn join(ws: &mut WebSocketStream<TcpStream>, rooms: &[String]) -> Result<()> {
    ws.send(Frame::Text(format!("421{}", json!(["join", rooms])).into()))
        .await?;
    loop {
        let text = next_text(ws).await?;
        if text.starts_with("431") {
            return Ok(());
        }
        answer_ping(ws, &text).await?;
    }
}

async fn answer_ping(ws: &mut WebSocketStream<TcpStream>, text: &str) -> Result<()> {
    if text == "2" {
        ws.send(Frame::Text("3".into())).await?;
    }
    Ok(())
}

async fn next_text(ws: &mut WebSocketStream<TcpStream>) -> Result<String> {
    loop {
        match ws.next().await.context("the connection ended")?? {
            Frame::Text(text) => return Ok(text.as_str().to_owned()),
            Frame::Close(close) => bail!("closed: {close:?}"),
            _ => {}
        }
    }
}

/// Decodes one text frame (one Engine.IO packet).
pub fn decode(bytes: &[u8], out: &mut Vec<Incoming>) -> Result<(), String> {
    let bad = |e: serde_json::Error| {
        format!(
            "unexpected socket.io packet {:?}: {e}",
            String::from_utf8_lossy(bytes)
        )
    };
    out.push(match bytes {
        b"2" => Incoming::Answer("3".to_owned()),
        [b'1', ..] | [b'4', b'1', ..] => Incoming::Close {
            error: Some(String::from_utf8_lossy(bytes).into_owned()),
        },
        // The server emits nothing but `bench` events.
        [b'4', b'2', event @ ..] => {
            let (name, stream, seq, sent_us, _): (Cow<'_, str>, u64, u64, u64, IgnoredAny) =
                serde_json::from_slice(event).map_err(bad)?;
            if name != "bench" {
                return Err(format!("unexpected socket.io event {name:?}"));
            }
            Incoming::Bench {
                stream,
                seq,
                sent_us,
            }
        }
        _ => Incoming::Other,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_events_and_disconnects() {
        let mut out = Vec::new();
        decode(b"2", &mut out).unwrap();
        decode(br#"42["bench",3,9,1700000000000000,"xx"]"#, &mut out).unwrap();
        decode(b"41", &mut out).unwrap();
        decode(b"6", &mut out).unwrap();
        assert_eq!(
            out,
            vec![
                Incoming::Answer("3".to_owned()),
                Incoming::Bench {
                    stream: 3,
                    seq: 9,
                    sent_us: 1_700_000_000_000_000
                },
                Incoming::Close {
                    error: Some("41".to_owned())
                },
                Incoming::Other,
            ]
        );
        assert!(decode(br#"42["chat","hi"]"#, &mut out).is_err());
    }
}
