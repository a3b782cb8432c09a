//! The WebSocket transport: handshake, then one task that reads client
//! frames, drains the outbox into batched writes, and runs the keep-alive and
//! client-timeout timers.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::SinkExt;
use tokio::time::{Instant, sleep};

use crate::Shared;
use crate::connection::close::{Close, CloseReason};
use crate::connection::handle::Protocol;
use crate::connection::outbox::Frame;
use crate::connection::{Accepted, Flow, Session};
use crate::protocol::{handshake, json};

/// Initial read buffer. tungstenite allocates it for every connection up
/// front (its default is 128 KiB) and grows it to fit larger frames, so it is
/// kept small for idle density: 4 KiB here measured 4.8 KB more resident
/// memory per idle connection than 1 KiB.
const READ_BUFFER: usize = 1024;
/// Writes are flushed once this much is buffered (and after every batch).
const WRITE_BUFFER: usize = 16 * 1024;

/// Protocols and the highest version of each this proxy speaks.
const SUPPORTED: &[(&str, u32)] = &[("json", 1)];

const NORMAL: u16 = 1000;
const INTERNAL_ERROR: u16 = 1011;

/// Upgrades the request and runs the connection.
pub fn upgrade(ws: WebSocketUpgrade, shared: Arc<Shared>, accepted: Accepted) -> Response {
    let max = shared.config.max_message_size;
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(shared.config.outbox_limit + WRITE_BUFFER + max)
        // Frames larger than a hub message can never be valid; tungstenite
        // refuses them before buffering. Several records may share a frame.
        .max_message_size(max.saturating_mul(4))
        .max_frame_size(max.saturating_mul(4))
        .on_upgrade(move |socket| run(socket, shared, accepted))
}

async fn run(mut ws: WebSocket, shared: Arc<Shared>, accepted: Accepted) {
    let id = accepted.id.clone();
    let Some(rest) = handshake_phase(&mut ws, &shared).await else {
        return;
    };
    let mut session = match Session::open(shared.clone(), accepted, Protocol::Json).await {
        Ok(session) => session,
        Err(error) => {
            tracing::info!(connection = %id, %error, "handshake refused");
            let _ = ws.send(text(handshake::error_response(&error))).await;
            let _ = ws.send(close_frame(INTERNAL_ERROR, "no app server")).await;
            return;
        }
    };
    tracing::debug!(connection = %id, hub = %session.handle.hub, "connected");
    if ws.send(text(handshake::ok_response())).await.is_err() {
        let close = Close::new(CloseReason::TransportError, None, false);
        session.finish(&close).await;
        return;
    }
    let close = match session.receive(&rest).await {
        Ok(Flow::Continue) => serve(&mut ws, &shared, &mut session).await,
        Ok(Flow::ClientClosed) => Close::new(CloseReason::Normal, None, false),
        Err(close) => {
            write_close(&mut ws, &close).await;
            close
        }
    };
    session.finish(&close).await;
}

/// Reads until a complete handshake request; answers errors itself. Returns
/// the bytes that followed the handshake.
async fn handshake_phase(ws: &mut WebSocket, shared: &Shared) -> Option<Vec<u8>> {
    let deadline = sleep(shared.config.handshake_timeout);
    tokio::pin!(deadline);
    let mut buf = Vec::new();
    let limit = shared.config.max_message_size;
    loop {
        let message = tokio::select! {
            _ = &mut deadline => {
                let _ = ws.send(close_frame(INTERNAL_ERROR, "handshake timeout")).await;
                return None;
            }
            m = ws.recv() => m,
        };
        match message {
            Some(Ok(Message::Text(t))) => buf.extend_from_slice(t.as_bytes()),
            // MessagePack clients may send the JSON handshake in a binary frame.
            Some(Ok(Message::Binary(b))) => buf.extend_from_slice(&b),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
        }
        let error = match handshake::parse_request(&buf, limit) {
            Ok(None) => continue,
            Ok(Some((request, used))) => match handshake::check(&request, SUPPORTED) {
                Ok(()) => return Some(buf.split_off(used)),
                Err(text) => text,
            },
            Err(e) => e.response_text(false),
        };
        tracing::debug!(%error, "handshake failed");
        let _ = ws.send(text(handshake::error_response(&error))).await;
        let _ = ws
            .send(close_frame(INTERNAL_ERROR, "handshake error"))
            .await;
        return None;
    }
}

/// The connection's main loop; returns why it ended.
async fn serve(ws: &mut WebSocket, shared: &Shared, session: &mut Session) -> Close {
    let config = &shared.config;
    let handle = session.handle.clone();
    let keep_alive = sleep(config.keep_alive_interval);
    let client_timeout = sleep(config.client_timeout);
    tokio::pin!(keep_alive, client_timeout);
    let mut batch: Vec<Frame> = Vec::new();
    loop {
        tokio::select! {
            biased;
            _ = handle.outbox.ready() => {
                let close = handle.outbox.drain(&mut batch);
                let written = tokio::select! {
                    r = write_batch(ws, &mut batch) => r,
                    _ = handle.outbox.aborted() => Err(()),
                };
                batch.clear();
                // A close requested while writing (an overflow, usually) wins too.
                if let Some(close) = close.or_else(|| handle.outbox.close_request()) {
                    write_close(ws, &close).await;
                    return close;
                }
                if written.is_err() {
                    return Close::new(CloseReason::TransportError, None, false);
                }
                keep_alive.as_mut().reset(Instant::now() + config.keep_alive_interval);
            }
            message = ws.recv() => {
                client_timeout.as_mut().reset(Instant::now() + config.client_timeout);
                let data = match message {
                    Some(Ok(Message::Text(t))) => t.as_bytes().to_vec(),
                    Some(Ok(Message::Binary(b))) => b.to_vec(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | None => return Close::new(CloseReason::Normal, None, false),
                    Some(Err(e)) => {
                        tracing::debug!(connection = %handle.id, error = %e, "websocket read failed");
                        return Close::new(CloseReason::TransportError, None, false);
                    }
                };
                match session.receive(&data).await {
                    Ok(Flow::Continue) => {}
                    Ok(Flow::ClientClosed) => return Close::new(CloseReason::Normal, None, false),
                    Err(close) => handle.outbox.close(close),
                }
            }
            _ = &mut keep_alive => {
                if ws.send(text(json::ping())).await.is_err() {
                    return Close::new(CloseReason::TransportError, None, false);
                }
                keep_alive.as_mut().reset(Instant::now() + config.keep_alive_interval);
            }
            _ = &mut client_timeout => {
                handle.outbox.close(Close::new(
                    CloseReason::PingTimeout,
                    Some("Connection closed with an error. The client sent nothing within the client timeout.".into()),
                    true,
                ));
            }
        }
    }
}

/// Writes every frame, flushing once at the end.
async fn write_batch(ws: &mut WebSocket, batch: &mut Vec<Frame>) -> Result<(), ()> {
    for frame in batch.drain(..) {
        ws.feed(message(frame)).await.map_err(|_| ())?;
    }
    ws.flush().await.map_err(|_| ())
}

/// Best effort: the hub Close message, then the WebSocket close frame.
async fn write_close(ws: &mut WebSocket, close: &Close) {
    let message = json::close(close.error.as_deref(), close.allow_reconnect);
    let code = if close.error.is_some() {
        INTERNAL_ERROR
    } else {
        NORMAL
    };
    let write = async {
        ws.feed(text(message)).await?;
        ws.feed(close_frame(code, close.reason.as_str())).await?;
        ws.flush().await
    };
    // A client that stopped reading must not keep the task alive.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), write).await;
}

fn close_frame(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

fn message(frame: Frame) -> Message {
    match frame {
        Frame::Text(t) => Message::Text(t),
        Frame::Binary(b) => Message::Binary(b),
    }
}

/// A text message from codec output.
fn text(bytes: bytes::Bytes) -> Message {
    message(Frame::text(bytes))
}
