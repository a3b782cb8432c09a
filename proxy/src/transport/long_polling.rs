//! The long-polling transport: client data arrives by POST, server messages
//! leave as answers to polls. One task per connection holds the session and
//! the one waiting poll; between polls the outbox simply fills.
//!
//! The first poll is answered empty at once. Later polls get everything
//! queued, or an empty answer after `--long-poll-timeout`, or 204 when the
//! connection ended or a newer poll replaced them. A client that does not
//! poll again within `--disconnect-timeout` is disconnected.

use std::sync::Arc;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use http::{StatusCode, header};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, Sleep, sleep};
use tracing::Instrument as _;

use super::table::{Entry, Input, PollAnswer, Refusal, Release};
use super::{Request, refused, text};
use crate::Shared;
use crate::config::Transport;
use crate::connection::close::{Close, CloseReason};
use crate::connection::handle::Protocol;
use crate::connection::handshake::{Handshake, Step, TransferFormats};
use crate::connection::outbox::Frame;
use crate::connection::{Accepted, Flow, Session};
use crate::protocol::handshake;
use crate::router::frames;

/// Requests queued for the task before a POST or poll waits.
const INPUT_QUEUE: usize = 4;

/// `GET ?id=TOKEN` without an event-stream `Accept` or an upgrade.
pub(super) async fn poll(request: Request, entry: Arc<Entry>) -> Response {
    if let Err(rejection) = request.check_enabled(Transport::LongPolling) {
        return rejection.into_response();
    }
    let (input, inputs) = mpsc::channel(INPUT_QUEUE);
    match entry.claim(Transport::LongPolling, Some(input)) {
        Ok(claim) => {
            let early = claim.early;
            let shared = request.shared.clone();
            let linger = Some(shared.config.disconnect_timeout);
            let release = Release::new(shared.clone(), entry.token.clone(), linger);
            let accepted =
                request.accepted(entry.id.clone(), claim.identity, Transport::LongPolling);
            let span = accepted.span();
            tokio::spawn(
                async move {
                    let _release = release;
                    run(inputs, shared, accepted, early).await;
                }
                .instrument(span),
            );
            // The first poll only establishes the connection.
            text(StatusCode::OK, "")
        }
        Err(Refusal::AlreadyActive) => match entry.input(Transport::LongPolling) {
            Ok(input) => wait(input).await,
            Err(_) => gone(),
        },
        Err(Refusal::Ended) => gone(),
        Err(refusal) => refused(refusal),
    }
}

/// Hands a poll to the connection's task and waits for its answer.
async fn wait(input: mpsc::Sender<Input>) -> Response {
    let (answer, answered) = oneshot::channel();
    if input.send(Input::Poll(answer)).await.is_err() {
        return gone();
    }
    match answered.await {
        Ok(PollAnswer::Data { body, binary }) => {
            let content_type = if binary {
                "application/octet-stream"
            } else {
                "text/plain"
            };
            (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        Ok(PollAnswer::Gone) | Err(_) => gone(),
    }
}

fn gone() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// What happened between polls.
enum Event {
    Data(Bytes),
    /// A new poll is waiting.
    Poll,
    Deleted,
    /// No poll came within the disconnect timeout.
    Disconnected,
}

/// The waiting poll and the timer that goes with it: the poll timeout while
/// a poll waits, the disconnect timeout while none does.
struct Polls {
    waiting: Option<oneshot::Sender<PollAnswer>>,
    timer: std::pin::Pin<Box<Sleep>>,
    poll_timeout: Duration,
    disconnect_timeout: Duration,
    binary: bool,
}

impl Polls {
    fn new(shared: &Shared) -> Self {
        let disconnect_timeout = shared.config.disconnect_timeout;
        Self {
            waiting: None,
            timer: Box::pin(sleep(disconnect_timeout)),
            poll_timeout: shared.config.long_poll_timeout,
            disconnect_timeout,
            binary: false,
        }
    }

    /// Whether a poll waits whose client is still there.
    fn has_poll(&mut self) -> bool {
        if self.waiting.as_ref().is_some_and(|w| w.is_closed()) {
            self.waiting = None;
            self.timer
                .as_mut()
                .reset(Instant::now() + self.disconnect_timeout);
        }
        self.waiting.is_some()
    }

    /// Answers the waiting poll with `body`.
    fn answer(&mut self, body: Bytes) {
        if let Some(waiting) = self.waiting.take() {
            let _ = waiting.send(PollAnswer::Data {
                body,
                binary: self.binary,
            });
        }
        self.timer
            .as_mut()
            .reset(Instant::now() + self.disconnect_timeout);
    }

    /// Answers the waiting poll, if any, with 204.
    fn end(&mut self) {
        if let Some(waiting) = self.waiting.take() {
            let _ = waiting.send(PollAnswer::Gone);
        }
    }

    async fn next(&mut self, inputs: &mut mpsc::Receiver<Input>) -> Event {
        loop {
            tokio::select! {
                input = inputs.recv() => match input {
                    Some(Input::Data(data)) => return Event::Data(data),
                    Some(Input::Poll(poll)) => {
                        if let Some(old) = self.waiting.replace(poll) {
                            let _ = old.send(PollAnswer::Gone);
                        }
                        self.timer.as_mut().reset(Instant::now() + self.poll_timeout);
                        return Event::Poll;
                    }
                    Some(Input::Delete) | None => return Event::Deleted,
                },
                _ = &mut self.timer => {
                    if self.waiting.is_none() {
                        return Event::Disconnected;
                    }
                    self.answer(Bytes::new());
                }
            }
        }
    }

    /// Delivers `last` (a handshake error or a Close message) to the next
    /// poll, waiting at most the disconnect timeout for one.
    async fn deliver_last(&mut self, inputs: &mut mpsc::Receiver<Input>, last: Bytes) {
        loop {
            if self.has_poll() {
                self.answer(last);
                return;
            }
            match self.next(inputs).await {
                Event::Data(_) | Event::Poll => {}
                Event::Deleted | Event::Disconnected => return,
            }
        }
    }
}

async fn run(
    mut inputs: mpsc::Receiver<Input>,
    shared: Arc<Shared>,
    accepted: Accepted,
    early: Vec<u8>,
) {
    let mut polls = Polls::new(&shared);
    let deadline = sleep(shared.config.handshake_timeout);
    tokio::pin!(deadline);
    let mut handshake = Handshake::new(
        shared.config.max_message_size,
        TransferFormats::TextAndBinary,
    );
    let mut step = handshake.push(&early);
    let (protocol, rest) = loop {
        match step {
            Step::NeedMore => {}
            Step::Done { protocol, rest, .. } => break (protocol, rest),
            Step::Failed { error } => {
                tracing::debug!(%error, "handshake failed");
                let answer = handshake::error_response(&error);
                polls.deliver_last(&mut inputs, answer).await;
                return;
            }
        }
        step = tokio::select! {
            _ = &mut deadline => { polls.end(); return; }
            event = polls.next(&mut inputs) => match event {
                Event::Data(data) => handshake.push(&data),
                Event::Poll => Step::NeedMore,
                Event::Deleted | Event::Disconnected => { polls.end(); return; }
            },
        };
    };
    let mut session = match Session::open(shared.clone(), accepted, protocol).await {
        Ok(session) => session,
        Err(error) => {
            tracing::info!(%error, "handshake refused");
            let answer = handshake::error_response(&error);
            polls.deliver_last(&mut inputs, answer).await;
            return;
        }
    };
    tracing::debug!("connected");
    polls.binary = session.handle.protocol != Protocol::Json;
    // The handshake answer leads the next poll's answer.
    let mut out = BytesMut::from(&handshake::ok_response()[..]);
    let close = match session.receive(&rest).await {
        Ok(Flow::Continue) => serve(&mut inputs, &mut polls, &mut session, &mut out).await,
        Ok(Flow::ClientClosed) => Close::quiet(CloseReason::Normal),
        Err(close) => {
            let message = frames::close(
                session.handle.protocol,
                close.error.as_deref(),
                close.allow_reconnect,
            );
            out.extend_from_slice(message.as_bytes());
            polls.deliver_last(&mut inputs, out.freeze()).await;
            close
        }
    };
    polls.end();
    drop(inputs);
    session.finish(&close).await;
}

/// The connection's main loop; returns why it ended. `out` holds what the
/// next poll answer starts with.
async fn serve(
    inputs: &mut mpsc::Receiver<Input>,
    polls: &mut Polls,
    session: &mut Session,
    out: &mut BytesMut,
) -> Close {
    let handle = session.handle.clone();
    let mut batch: Vec<Frame> = Vec::new();
    loop {
        let polling = polls.has_poll();
        if polling && !out.is_empty() {
            // Whatever else is queued rides along with what `out` holds.
            if let Some(close) = take_outbox(session, &mut batch, out) {
                polls.deliver_last(inputs, out.split().freeze()).await;
                return close;
            }
            polls.answer(out.split().freeze());
            continue;
        }
        tokio::select! {
            biased;
            // Frames wait in the outbox until a poll can take them.
            _ = handle.outbox.ready(), if polling => {
                if let Some(close) = take_outbox(session, &mut batch, out) {
                    polls.deliver_last(inputs, out.split().freeze()).await;
                    return close;
                }
            }
            event = polls.next(inputs) => match event {
                Event::Data(data) => match session.receive(&data).await {
                    Ok(Flow::Continue) => {}
                    Ok(Flow::ClientClosed) => return Close::quiet(CloseReason::Normal),
                    Err(close) => handle.outbox.close(close),
                },
                Event::Poll => {}
                Event::Deleted => return Close::quiet(CloseReason::Normal),
                Event::Disconnected => {
                    tracing::debug!("client stopped polling");
                    return Close::quiet(CloseReason::TransportError);
                }
            },
        }
    }
}

/// Moves everything queued into `out`; on a close request, appends the Close
/// message and returns the request.
fn take_outbox(session: &Session, batch: &mut Vec<Frame>, out: &mut BytesMut) -> Option<Close> {
    let handle = &session.handle;
    let close = handle.outbox.drain(batch);
    let bytes = batch.iter().map(Frame::len).sum();
    session.metrics().sent(batch.len(), bytes);
    for frame in batch.drain(..) {
        out.extend_from_slice(frame.as_bytes());
    }
    let close = close.or_else(|| handle.outbox.close_request())?;
    let message = frames::close(
        handle.protocol,
        close.error.as_deref(),
        close.allow_reconnect,
    );
    out.extend_from_slice(message.as_bytes());
    Some(close)
}
