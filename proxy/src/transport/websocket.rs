//! The WebSocket transport: the upgrade, the handshake phase over frames,
//! then one task that reads client frames, drains the outbox into batched
//! writes, and runs the keep-alive and client-timeout timers.
//!
//! With stateful reconnect the same task outlives its socket: when the
//! socket drops without a Close message it holds the connection (still
//! registered, still queueing) for the disconnect timeout, and a reconnect
//! with the same `id` hands it a new socket, on which it writes Sequence and
//! replays what the client has not acknowledged. Unacknowledged bytes are
//! bounded by the stateful-reconnect buffer: at the bound the task stops
//! taking from the outbox until an Ack, so the outbox bound then closes a
//! client that falls too far behind as a slow consumer.

mod frame;
mod socket;
mod upgrade;

use std::sync::Arc;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use tokio::time::{Instant, sleep, sleep_until};

pub use upgrade::{ClientSocket, NotAnUpgrade, Upgrade};

use super::handover::Handover;
use super::table::{Entry, Release, WebSocketClaim};
use super::{Request, refused};
use crate::Shared;
use crate::auth::Identity;
use crate::config::Transport;
use crate::connection::close::{Close, CloseReason};
use crate::connection::handle::Protocol;
use crate::connection::handshake::{Handshake, Step, TransferFormats};
use crate::connection::outbox::Frame;
use crate::connection::timers::Timers;
use crate::connection::{Accepted, Flow, Session};
use crate::ids::ConnectionId;
use crate::protocol::handshake;
use crate::router::frames;

use frame::{INTERNAL_ERROR, NORMAL};

/// Claims the connection (or starts a skipNegotiation one) and upgrades. A
/// reconnect of a stateful-reconnect connection hands its socket to the
/// task that holds the connection instead.
pub(super) fn start(request: Request, opening: Opening, ws: Upgrade) -> Response {
    if let Err(rejection) = request.check_enabled(Transport::WebSockets) {
        return rejection.into_response();
    }
    let limit = frame_limit(&request.shared);
    let (id, early, identity, entry, release) = match opening {
        Opening::Negotiated(entry) => match entry.claim_websocket() {
            Ok(WebSocketClaim::New(claim)) => {
                let release = Release::new(request.shared.clone(), entry.token.clone(), None);
                let id = entry.id.clone();
                (id, claim.early, claim.identity, Some(entry), Some(release))
            }
            Ok(WebSocketClaim::Resume) => {
                return ws.on_upgrade(limit, tracing::Span::none(), move |socket| async move {
                    // Short-lived: the connection's own task logs the rest.
                    tracing::debug!(connection = %entry.id, "stateful reconnect");
                    entry.handover.offer(socket);
                });
            }
            Err(refusal) => return refused(refusal),
        },
        Opening::Direct(identity) => {
            let id = ConnectionId::random(&request.shared.node_id);
            (id, Vec::new(), identity, None, None)
        }
    };
    let accepted = request.accepted(id, identity, Transport::WebSockets);
    let span = accepted.span();
    let start = Box::new(Start {
        shared: request.shared,
        accepted,
        early,
        entry,
        _release: release,
    });
    ws.on_upgrade(limit, span, move |socket| run(socket, start))
}

/// How a WebSocket request names its connection.
pub(super) enum Opening {
    /// By the connection token negotiate issued.
    Negotiated(Arc<Entry>),
    /// skipNegotiation: a new connection for the request's own token.
    Direct(Identity),
}

/// What a connection's task starts from. Boxed, like its socket: the
/// upgrade task keeps the callback and the future it returns side by side,
/// and each async layer keeps its own copy of what it was handed, so
/// whatever is moved in by value sits in every idle connection's task
/// several times.
struct Start {
    shared: Arc<Shared>,
    accepted: Accepted,
    /// Bytes POSTed before the upgrade.
    early: Vec<u8>,
    entry: Option<Arc<Entry>>,
    /// Takes the connection out of the table once the task is done.
    _release: Option<Release>,
}

/// The largest client message read: several hub messages may share one, and
/// anything larger can never be valid, so it is refused from its header.
fn frame_limit(shared: &Shared) -> usize {
    shared.config.max_message_size.saturating_mul(4)
}

async fn run(mut ws: Box<ClientSocket>, mut start: Box<Start>) {
    let shared = start.shared.clone();
    let allow_stateful = start.entry.as_ref().is_some_and(|e| e.stateful);
    let early = std::mem::take(&mut start.early);
    let Some((protocol, stateful, rest)) =
        handshake_phase(&mut ws, &shared, early, allow_stateful).await
    else {
        return;
    };
    let mut session = match Session::open(shared.clone(), start.accepted, protocol).await {
        Ok(session) => session,
        Err(error) => {
            tracing::info!(%error, "handshake refused");
            refuse_handshake(&mut ws, &error, "no app server").await;
            return;
        }
    };
    // Only a connection reachable by its token can be resumed.
    let handover = match start.entry.as_deref() {
        Some(entry) if stateful => {
            session.enable_stateful(shared.config.stateful_reconnect_buffer);
            entry.handover.open();
            Some(&entry.handover)
        }
        _ => None,
    };
    tracing::debug!(stateful, "connected");
    // `if let` drops its scrutinee before `else`: nothing of the opening is
    // held in the task while it serves.
    let first = if let Some(end) = opening(&mut ws, &mut session, rest).await {
        end
    } else {
        serve(&mut ws, &shared, &mut session, handover, false).await
    };
    let close = match handover {
        // Boxed: its state (another socket and another `serve`) would
        // otherwise sit in every connection's task from the start; only
        // connections whose socket ended ever need it.
        Some(handover) => Box::pin(resume_loop(ws, &shared, &mut session, handover, first)).await,
        None => match first {
            End::Closed(close) | End::Dropped(close) => close,
            // Never happens: only a stateful connection is handed sockets.
            End::Replaced(_) => Close::quiet(CloseReason::TransportError),
        },
    };
    session.finish(&close).await;
}

/// Answers the handshake and takes the messages that came with it; `None`
/// when the connection goes on to be served.
async fn opening(ws: &mut ClientSocket, session: &mut Session, rest: Vec<u8>) -> Option<End> {
    let protocol = session.handle.protocol;
    let answer = frames::wrap(protocol, handshake::ok_response());
    if ws.write(&[answer]).await.is_err() {
        return Some(End::Dropped(Close::quiet(CloseReason::TransportError)));
    }
    match session.receive(&rest).await {
        Ok(Flow::Continue) => None,
        Ok(Flow::ClientClosed) => Some(End::Closed(Close::quiet(CloseReason::Normal))),
        Err(close) => {
            write_close(ws, protocol, &close).await;
            Some(End::Closed(close))
        }
    }
}

/// How one socket's service ended.
enum End {
    /// The connection is over.
    Closed(Close),
    /// The socket went away without a Close message; a stateful connection
    /// waits for a reconnect, others end with this.
    Dropped(Close),
    /// A reconnect arrived while the old socket still looked alive.
    Replaced(Box<ClientSocket>),
}

/// Carries a stateful-reconnect connection across sockets until it really
/// ends: after a drop it stays registered for the disconnect timeout and
/// resumes on the socket a reconnect hands over. Returns why it ended.
async fn resume_loop(
    mut ws: Box<ClientSocket>,
    shared: &Shared,
    session: &mut Session,
    handover: &Handover,
    mut end: End,
) -> Close {
    let handle = session.handle.clone();
    loop {
        match end {
            End::Closed(close) => return close,
            End::Replaced(socket) => ws = socket,
            End::Dropped(close) => {
                tracing::debug!(reason = %close.reason, "socket dropped; holding the connection for a reconnect");
                drop(ws);
                let expiry = sleep(shared.config.disconnect_timeout);
                tokio::pin!(expiry);
                ws = loop {
                    tokio::select! {
                        socket = handover.next() => break socket,
                        _ = &mut expiry => {
                            tracing::debug!("no reconnect within the disconnect timeout");
                            shared.metrics.stateful_expiries.inc();
                            return close;
                        }
                        // Producers keep queueing; a close (overflow, server
                        // close, shutdown) ends the connection now.
                        _ = handle.outbox.ready() => {
                            if let Some(close) = handle.outbox.close_request() {
                                return close;
                            }
                        }
                    }
                };
            }
        }
        tracing::debug!("connection resumed");
        shared.metrics.stateful_resumes.inc();
        end = serve(&mut ws, shared, session, Some(handover), true).await;
    }
}

/// Reads until a complete handshake request; answers errors itself. Returns
/// the protocol, whether stateful reconnect is on and the bytes that
/// followed the handshake.
async fn handshake_phase(
    ws: &mut ClientSocket,
    shared: &Shared,
    early: Vec<u8>,
    allow_stateful: bool,
) -> Option<(Protocol, bool, Vec<u8>)> {
    let deadline = sleep(shared.config.handshake_timeout);
    tokio::pin!(deadline);
    let mut handshake = Handshake::new(
        shared.config.max_message_size,
        TransferFormats::TextAndBinary,
    );
    if allow_stateful {
        handshake = handshake.allow_stateful();
    }
    let mut step = handshake.push(&early);
    loop {
        match step {
            Step::NeedMore => {}
            Step::Done {
                protocol,
                stateful,
                rest,
            } => return Some((protocol, stateful, rest)),
            Step::Failed { error } => {
                tracing::debug!(%error, "handshake failed");
                refuse_handshake(ws, &error, "handshake error").await;
                return None;
            }
        }
        let message = tokio::select! {
            _ = &mut deadline => {
                let _ = ws.close(INTERNAL_ERROR, "handshake timeout").await;
                return None;
            }
            m = ws.recv() => m,
        };
        // MessagePack clients may send the JSON handshake in a binary frame.
        step = match message {
            Ok(Some(data)) => handshake.push(&data),
            Ok(None) | Err(_) => {
                let _ = ws.flush().await;
                return None;
            }
        };
    }
}

/// Best effort: the handshake's error answer, then a Close frame saying why.
async fn refuse_handshake(ws: &mut ClientSocket, error: &str, reason: &str) {
    let answer = Frame::text(handshake::error_response(error));
    if ws.write(&[answer]).await.is_ok() {
        let _ = ws.close(INTERNAL_ERROR, reason).await;
    }
}

/// Waits for a reconnect's socket, or forever without stateful reconnect.
async fn reconnected(handover: Option<&Handover>) -> Box<ClientSocket> {
    match handover {
        Some(handover) => handover.next().await,
        None => std::future::pending().await,
    }
}

/// After a reconnect: Sequence with the first unacknowledged id, then every
/// unacknowledged frame again.
async fn replay(ws: &mut ClientSocket, shared: &Shared, session: &mut Session) -> Result<(), ()> {
    let protocol = session.handle.protocol;
    let Some(state) = session.stateful() else {
        return Ok(());
    };
    let (first, unacknowledged) = state.replay();
    let sequence = frames::sequence(protocol, first);
    let batch: Vec<Frame> = std::iter::once(sequence)
        .chain(unacknowledged.cloned())
        .collect();
    shared
        .metrics
        .sent(batch.len() - 1, batch[1..].iter().map(Frame::len).sum());
    ws.write(&batch).await.map_err(|_| ())
}

/// Serves one socket; returns how that ended. `resumed` replays first.
async fn serve(
    ws: &mut ClientSocket,
    shared: &Shared,
    session: &mut Session,
    handover: Option<&Handover>,
    resumed: bool,
) -> End {
    let handle = session.handle.clone();
    let dropped = |reason| End::Dropped(Close::quiet(reason));
    if resumed {
        if replay(ws, shared, session).await.is_err() {
            return dropped(CloseReason::TransportError);
        }
        // Frames queued while the socket was gone.
        handle.outbox.wake();
    }
    let mut timers = Timers::for_config(Instant::now(), &shared.config);
    let timer = sleep_until(timers.next());
    tokio::pin!(timer);
    let mut batch: Vec<Frame> = Vec::new();
    loop {
        tokio::select! {
            biased;
            _ = handle.outbox.ready() => {
                let close = match session.stateful() {
                    None => handle.outbox.drain(&mut batch),
                    Some(state) => {
                        // Frames are numbered as written: keep each for replay.
                        let close = handle.outbox.drain_up_to(&mut batch, state.room());
                        batch.iter().for_each(|f| state.record(f));
                        close
                    }
                };
                let bytes = batch.iter().map(Frame::len).sum();
                shared.metrics.sent(batch.len(), bytes);
                let written = tokio::select! {
                    r = ws.write(&batch) => r.map_err(|_| ()),
                    _ = handle.outbox.aborted() => Err(()),
                };
                let wrote = !batch.is_empty();
                batch.clear();
                // A close requested while writing (an overflow, usually) wins too.
                if let Some(close) = close.or_else(|| handle.outbox.close_request()) {
                    // Boxed: a closing write is rare, and its state would
                    // otherwise widen every idle connection's task.
                    Box::pin(write_close(ws, handle.protocol, &close)).await;
                    return End::Closed(close);
                }
                if written.is_err() {
                    return dropped(CloseReason::TransportError);
                }
                if wrote {
                    timers.wrote(Instant::now());
                }
            }
            socket = reconnected(handover) => return End::Replaced(socket),
            received = ws.recv() => {
                timers.received(Instant::now());
                let data = match received {
                    Ok(Some(data)) => data,
                    Ok(None) => {
                        // Answers the client's Close at once, so its close
                        // handshake completes. Without a hub Close first, a
                        // stateful client will reconnect.
                        let _ = tokio::time::timeout(CLOSE_WRITE, ws.flush()).await;
                        return dropped(CloseReason::Normal);
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "websocket read failed");
                        // Sends the Close frame that names a protocol error.
                        let _ = tokio::time::timeout(CLOSE_WRITE, ws.flush()).await;
                        return dropped(CloseReason::TransportError);
                    }
                };
                let room_before = session.stateful().map(|s| s.room());
                match session.receive(&data).await {
                    Ok(Flow::Continue) => {}
                    Ok(Flow::ClientClosed) => {
                        return End::Closed(Close::quiet(CloseReason::Normal));
                    }
                    Err(close) => handle.outbox.close(close),
                }
                if let Some(state) = session.stateful() {
                    if state.ack_owed() && timers.owe_ack(Instant::now()) {
                        timer.as_mut().reset(timers.next());
                    }
                    // An Ack made room: take what the outbox kept waiting.
                    if room_before.is_some_and(|r| state.room() > r)
                        && handle.outbox.queued_bytes() > 0
                    {
                        handle.outbox.wake();
                    }
                }
            }
            () = &mut timer => {
                let due = timers.expire(Instant::now());
                if due.ack
                    && let Some(id) = session.stateful().and_then(|s| s.take_ack())
                {
                    let ack = frames::ack(handle.protocol, id);
                    shared.metrics.sent(1, ack.len());
                    if ws.write(&[ack]).await.is_err() {
                        return dropped(CloseReason::TransportError);
                    }
                }
                if due.keep_alive {
                    let ping = frames::ping(handle.protocol);
                    shared.metrics.sent(1, ping.len());
                    if ws.write(&[ping]).await.is_err() {
                        return dropped(CloseReason::TransportError);
                    }
                }
                if due.client_timeout {
                    handle.outbox.close(Close::client_timeout());
                }
                timer.as_mut().reset(timers.next());
            }
        }
    }
}

/// Best effort: the hub Close message, then the WebSocket close frame.
async fn write_close(ws: &mut ClientSocket, protocol: Protocol, close: &Close) {
    let hub_close = frames::close(protocol, close.error.as_deref(), close.allow_reconnect);
    let code = if close.error.is_some() {
        INTERNAL_ERROR
    } else {
        NORMAL
    };
    let write = async {
        ws.write(&[hub_close]).await?;
        ws.close(code, close.reason.as_str()).await
    };
    // A client that stopped reading must not keep the task alive.
    let _ = tokio::time::timeout(CLOSE_WRITE, write).await;
}

/// How long closing writes may take: a client that stopped reading must not
/// keep the task alive.
const CLOSE_WRITE: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of what `f` returns, without calling it.
    fn output_size<A, B, R>(_: impl FnOnce(A, B) -> R) -> usize {
        std::mem::size_of::<R>()
    }

    /// Every idle WebSocket connection holds its task's future: a budget
    /// that fails when the connection's state grows by accident (a timer,
    /// a buffer or a copy of the connection's identity held by value).
    #[test]
    fn the_connection_future_stays_small() {
        // 1 216 B now (the layout is the same in debug and release).
        let run = output_size(run);
        assert!(run <= 1280, "the connection future is {run} B");
    }
}
