//! The server-sent events transport: a `text/event-stream` response carries
//! server messages, client data arrives by POST. One task per connection
//! feeds the response body, so the stream's end is the connection's end.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use http::{HeaderValue, StatusCode, header};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_stream::wrappers::ReceiverStream;
use tracing::Instrument as _;

use super::table::{Entry, Input, PollAnswer, Release};
use super::{Request, refused};
use crate::Shared;
use crate::config::Transport;
use crate::connection::close::{Close, CloseReason};
use crate::connection::handshake::{Handshake, Step, TransferFormats};
use crate::connection::outbox::Frame;
use crate::connection::timers::Timers;
use crate::connection::{Accepted, Flow, Session};
use crate::protocol::{handshake, json};

/// POSTs queued for the task before a POST waits.
const INPUT_QUEUE: usize = 4;
/// Chunks queued for the response body before the task waits for the client.
const BODY_QUEUE: usize = 2;

/// Claims the connection and answers with the event stream.
pub(super) fn start(request: Request, entry: Arc<Entry>) -> Response {
    if let Err(rejection) = request.check_enabled(Transport::ServerSentEvents) {
        return rejection.into_response();
    }
    let (input, inputs) = mpsc::channel(INPUT_QUEUE);
    let claim = match entry.claim(Transport::ServerSentEvents, Some(input)) {
        Ok(claim) => claim,
        Err(refusal) => return refused(refusal),
    };
    let early = claim.early;
    let shared = request.shared.clone();
    let release = Release::new(shared.clone(), entry.token.clone(), None);
    let accepted = request.accepted(
        entry.id.clone(),
        claim.identity,
        Transport::ServerSentEvents,
    );
    let (body, chunks) = mpsc::channel(BODY_QUEUE);
    // A comment line first, so clients see the stream open at once.
    let _ = body.try_send(Bytes::from_static(b":\r\n"));
    let span = accepted.span();
    tokio::spawn(
        async move {
            let _release = release;
            run(Io { body, inputs }, shared, accepted, early).await;
        }
        .instrument(span),
    );
    let stream = ReceiverStream::new(chunks).map(Ok::<_, Infallible>);
    let mut response = Response::new(Body::from_stream(stream));
    *response.status_mut() = StatusCode::OK;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache,no-store"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    // Proxies in front must neither compress nor buffer the stream.
    h.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Appends one record as an event: `data: <line>\r\n` per line, then `\r\n`.
pub fn push_event(out: &mut BytesMut, record: &[u8]) {
    for line in record.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        out.put_slice(b"data: ");
        out.put_slice(line);
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"\r\n");
}

fn event(record: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(record.len() + 10);
    push_event(&mut out, record);
    out.freeze()
}

/// The connection's two ends.
struct Io {
    body: mpsc::Sender<Bytes>,
    inputs: mpsc::Receiver<Input>,
}

async fn run(mut io: Io, shared: Arc<Shared>, accepted: Accepted, early: Vec<u8>) {
    let Some((protocol, rest)) = handshake_phase(&mut io, &shared, early).await else {
        return;
    };
    let mut session = match Session::open(shared.clone(), accepted, protocol).await {
        Ok(session) => session,
        Err(error) => {
            tracing::info!(%error, "handshake refused");
            let _ = io
                .body
                .send(event(&handshake::error_response(&error)))
                .await;
            return;
        }
    };
    tracing::debug!("connected");
    if io
        .body
        .send(event(&handshake::ok_response()))
        .await
        .is_err()
    {
        drop(io);
        let close = Close::quiet(CloseReason::TransportError);
        session.finish(&close).await;
        return;
    }
    let close = match session.receive(&rest).await {
        Ok(Flow::Continue) => serve(&mut io, &shared, &mut session).await,
        Ok(Flow::ClientClosed) => Close::quiet(CloseReason::Normal),
        Err(close) => {
            write_close(&io, &close).await;
            close
        }
    };
    // Ends the response stream before telling the app server.
    drop(io);
    session.finish(&close).await;
}

/// Reads POSTed bytes until a complete handshake request; answers errors
/// itself. Returns the protocol and the bytes that followed the handshake.
async fn handshake_phase(
    io: &mut Io,
    shared: &Shared,
    early: Vec<u8>,
) -> Option<(crate::connection::handle::Protocol, Vec<u8>)> {
    let deadline = sleep(shared.config.handshake_timeout);
    tokio::pin!(deadline);
    let mut handshake = Handshake::new(shared.config.max_message_size, TransferFormats::Text);
    let mut step = handshake.push(&early);
    loop {
        match step {
            Step::NeedMore => {}
            Step::Done { protocol, rest, .. } => return Some((protocol, rest)),
            Step::Failed { error } => {
                tracing::debug!(%error, "handshake failed");
                let _ = io
                    .body
                    .send(event(&handshake::error_response(&error)))
                    .await;
                return None;
            }
        }
        step = tokio::select! {
            _ = &mut deadline => return None,
            _ = io.body.closed() => return None,
            input = io.inputs.recv() => match input {
                Some(Input::Data(data)) => handshake.push(&data),
                Some(other) => { ignore(other); Step::NeedMore }
                None => return None,
            },
        };
    }
}

/// Polls and DELETEs never reach a server-sent events connection (the table
/// refuses them); answer defensively anyway.
fn ignore(input: Input) {
    if let Input::Poll(answer) = input {
        let _ = answer.send(PollAnswer::Gone);
    }
}

/// The connection's main loop; returns why it ended.
async fn serve(io: &mut Io, shared: &Shared, session: &mut Session) -> Close {
    let handle = session.handle.clone();
    let mut timers = Timers::for_config(Instant::now(), &shared.config);
    let timer = sleep_until(timers.next());
    tokio::pin!(timer);
    let mut batch: Vec<Frame> = Vec::new();
    let mut chunk = BytesMut::new();
    loop {
        tokio::select! {
            biased;
            _ = handle.outbox.ready() => {
                let close = handle.outbox.drain(&mut batch);
                let bytes = batch.iter().map(Frame::len).sum();
                shared.metrics.sent(batch.len(), bytes);
                for frame in batch.drain(..) {
                    match &frame {
                        Frame::Text(t) => push_event(&mut chunk, t),
                        // Binary protocols are refused at the handshake.
                        Frame::Binary(_) => {}
                    }
                }
                let written = if chunk.is_empty() {
                    Ok(())
                } else {
                    let data = chunk.split().freeze();
                    tokio::select! {
                        r = io.body.send(data) => r.map_err(|_| ()),
                        _ = handle.outbox.aborted() => Err(()),
                    }
                };
                if let Some(close) = close.or_else(|| handle.outbox.close_request()) {
                    write_close(io, &close).await;
                    return close;
                }
                if written.is_err() {
                    return Close::quiet(CloseReason::TransportError);
                }
                timers.wrote(Instant::now());
            }
            // The client dropped the event stream.
            _ = io.body.closed() => return Close::quiet(CloseReason::Normal),
            input = io.inputs.recv() => {
                let data = match input {
                    Some(Input::Data(data)) => data,
                    Some(other) => { ignore(other); continue; }
                    None => return Close::quiet(CloseReason::Normal),
                };
                timers.received(Instant::now());
                match session.receive(&data).await {
                    Ok(Flow::Continue) => {}
                    Ok(Flow::ClientClosed) => return Close::quiet(CloseReason::Normal),
                    Err(close) => handle.outbox.close(close),
                }
            }
            () = &mut timer => {
                let due = timers.expire(Instant::now());
                if due.keep_alive {
                    let ping = json::ping();
                    shared.metrics.sent(1, ping.len());
                    if io.body.send(event(&ping)).await.is_err() {
                        return Close::quiet(CloseReason::TransportError);
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

/// Best effort: the hub Close message as the stream's last event.
async fn write_close(io: &Io, close: &Close) {
    let message = json::close(close.error.as_deref(), close.allow_reconnect);
    // A client that stopped reading must not keep the task alive.
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(1),
        io.body.send(event(&message)),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_becomes_a_data_field() {
        assert_eq!(
            &event(b"{\"type\":6}\x1e")[..],
            b"data: {\"type\":6}\x1e\r\n\r\n"
        );
        assert_eq!(
            &event(b"a\nb\r\nc")[..],
            b"data: a\r\ndata: b\r\ndata: c\r\n\r\n"
        );
    }
}
