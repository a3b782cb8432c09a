//! The WebSocket transport: the upgrade, the handshake phase over frames,
//! then one task that reads client frames, drains the outbox into batched writes, and runs the keep-alive and
//! client-timeout timers.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use futures_util::SinkExt;
use tokio::time::{Instant, sleep};

use super::table::{Entry, Release};
use super::{Request, refused};
use crate::Shared;
use crate::auth::Identity;
use crate::config::Transport;
use crate::connection::close::{Close, CloseReason};
use crate::connection::handle::Protocol;
use crate::connection::handshake::{Handshake, Step, TransferFormats};
use crate::connection::outbox::Frame;
use crate::connection::{Accepted, Flow, Session};
use crate::ids::ConnectionId;
use crate::protocol::handshake;
use crate::router::frames;

/// Initial read buffer. tungstenite allocates it for every connection up
/// front (its default is 128 KiB) and grows it to fit larger frames, so it is
/// kept small for idle density: 4 KiB here measured 4.8 KB more resident
/// memory per idle connection than 1 KiB.
const READ_BUFFER: usize = 1024;
/// Writes are flushed once this much is buffered (and after every batch).
const WRITE_BUFFER: usize = 16 * 1024;

const NORMAL: u16 = 1000;
const INTERNAL_ERROR: u16 = 1011;

/// Claims the connection (or starts a skipNegotiation one) and upgrades.
pub(super) fn start(
    request: Request,
    entry: Option<Arc<Entry>>,
    identity: Identity,
    ws: WebSocketUpgrade,
) -> Response {
    if let Err(rejection) = request.check_enabled(Transport::WebSockets) {
        return rejection.into_response();
    }
    let (id, early, release) = match entry {
        Some(entry) => match entry.claim(Transport::WebSockets, None) {
            Ok(early) => {
                let release = Release::new(request.shared.clone(), entry.token.clone(), None);
                (entry.id.clone(), early, Some(release))
            }
            Err(refusal) => return refused(refusal),
        },
        None => (ConnectionId::random(), Vec::new(), None),
    };
    let accepted = request.accepted(id, identity, Transport::WebSockets);
    let shared = request.shared;
    let max = shared.config.max_message_size;
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(shared.config.outbox_limit + WRITE_BUFFER + max)
        // Frames larger than a hub message can never be valid; tungstenite
        // refuses them before buffering. Several records may share a frame.
        .max_message_size(max.saturating_mul(4))
        .max_frame_size(max.saturating_mul(4))
        .on_upgrade(move |socket| async move {
            let _release = release;
            run(socket, shared, accepted, early).await;
        })
}

async fn run(mut ws: WebSocket, shared: Arc<Shared>, accepted: Accepted, early: Vec<u8>) {
    let id = accepted.id.clone();
    let Some((protocol, rest)) = handshake_phase(&mut ws, &shared, early).await else {
        return;
    };
    let mut session = match Session::open(shared.clone(), accepted, protocol).await {
        Ok(session) => session,
        Err(error) => {
            tracing::info!(connection = %id, %error, "handshake refused");
            let _ = ws.send(text(handshake::error_response(&error))).await;
            let _ = ws.send(close_frame(INTERNAL_ERROR, "no app server")).await;
            return;
        }
    };
    tracing::debug!(connection = %id, hub = %session.handle.hub, "connected");
    let answer = frames::wrap(protocol, handshake::ok_response());
    if ws.send(message(answer)).await.is_err() {
        let close = Close::new(CloseReason::TransportError, None, false);
        session.finish(&close).await;
        return;
    }
    let close = match session.receive(&rest).await {
        Ok(Flow::Continue) => serve(&mut ws, &shared, &mut session).await,
        Ok(Flow::ClientClosed) => Close::new(CloseReason::Normal, None, false),
        Err(close) => {
            write_close(&mut ws, protocol, &close).await;
            close
        }
    };
    session.finish(&close).await;
}

/// Reads until a complete handshake request; answers errors itself. Returns
/// the protocol and the bytes that followed the handshake.
async fn handshake_phase(
    ws: &mut WebSocket,
    shared: &Shared,
    early: Vec<u8>,
) -> Option<(Protocol, Vec<u8>)> {
    let deadline = sleep(shared.config.handshake_timeout);
    tokio::pin!(deadline);
    let mut handshake = Handshake::new(
        shared.config.max_message_size,
        TransferFormats::TextAndBinary,
    );
    let mut step = handshake.push(&early);
    loop {
        match step {
            Step::NeedMore => {}
            Step::Done { protocol, rest } => return Some((protocol, rest)),
            Step::Failed { error } => {
                tracing::debug!(%error, "handshake failed");
                let _ = ws.send(text(handshake::error_response(&error))).await;
                let _ = ws
                    .send(close_frame(INTERNAL_ERROR, "handshake error"))
                    .await;
                return None;
            }
        }
        let message = tokio::select! {
            _ = &mut deadline => {
                let _ = ws.send(close_frame(INTERNAL_ERROR, "handshake timeout")).await;
                return None;
            }
            m = ws.recv() => m,
        };
        step = match message {
            Some(Ok(Message::Text(t))) => handshake.push(t.as_bytes()),
            // MessagePack clients may send the JSON handshake in a binary frame.
            Some(Ok(Message::Binary(b))) => handshake.push(&b),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => Step::NeedMore,
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
        };
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
                    write_close(ws, handle.protocol, &close).await;
                    return close;
                }
                if written.is_err() {
                    return Close::new(CloseReason::TransportError, None, false);
                }
                keep_alive.as_mut().reset(Instant::now() + config.keep_alive_interval);
            }
            received = ws.recv() => {
                client_timeout.as_mut().reset(Instant::now() + config.client_timeout);
                let received = match received {
                    Some(Ok(m)) => m,
                    None => return Close::new(CloseReason::Normal, None, false),
                    Some(Err(e)) => {
                        tracing::debug!(connection = %handle.id, error = %e, "websocket read failed");
                        return Close::new(CloseReason::TransportError, None, false);
                    }
                };
                let data: &[u8] = match &received {
                    Message::Text(t) => t.as_bytes(),
                    Message::Binary(b) => b,
                    Message::Ping(_) | Message::Pong(_) => continue,
                    Message::Close(_) => {
                        // Sends the close reply tungstenite queued, so the
                        // client's close handshake completes at once.
                        let _ = ws.flush().await;
                        return Close::new(CloseReason::Normal, None, false);
                    }
                };
                match session.receive(data).await {
                    Ok(Flow::Continue) => {}
                    Ok(Flow::ClientClosed) => return Close::new(CloseReason::Normal, None, false),
                    Err(close) => handle.outbox.close(close),
                }
            }
            _ = &mut keep_alive => {
                if ws.send(message(frames::ping(handle.protocol))).await.is_err() {
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
async fn write_close(ws: &mut WebSocket, protocol: Protocol, close: &Close) {
    let hub_close = frames::close(protocol, close.error.as_deref(), close.allow_reconnect);
    let code = if close.error.is_some() {
        INTERNAL_ERROR
    } else {
        NORMAL
    };
    let write = async {
        ws.feed(message(hub_close)).await?;
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
