//! The way out to the proxy: a bounded queue into the current link session,
//! batching into frames, and acknowledged requests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::Stream;
use parking_lot::{Mutex, RwLock};
use prost::Message as _;
use switchboard_proto::server_message::Kind;
use switchboard_proto::{
    Ack, ClientResult, InvokeClient, Payload, ServerFrame, ServerMessage, ack, client_result,
};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Repr, Result};

/// At most this many messages go into one frame.
const MAX_BATCH_MESSAGES: usize = 256;
/// Stop adding messages to a frame once it holds this many bytes, well
/// under gRPC's default 4 MiB message limit.
const MAX_BATCH_BYTES: usize = 1 << 20;

/// The proxy waits a little longer than the app server for a client's
/// answer, so the app server's own timeout decides and reports it.
const CLIENT_RESULT_MARGIN: Duration = Duration::from_secs(1);

/// Sends to the proxy while a link session is up; fails fast otherwise.
pub(crate) struct Outbox {
    session: RwLock<Option<mpsc::Sender<ServerMessage>>>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Ack>>>,
    next_ack: AtomicU64,
    ack_timeout: Duration,
    /// Client-result invocations waiting for the client's answer.
    results: Mutex<HashMap<u64, oneshot::Sender<client_result::Outcome>>>,
    next_request: AtomicU64,
}

impl Outbox {
    pub(crate) fn new(ack_timeout: Duration) -> Self {
        Self {
            session: RwLock::new(None),
            pending: Mutex::new(HashMap::new()),
            next_ack: AtomicU64::new(1),
            ack_timeout,
            results: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(1),
        }
    }

    /// Routes sends into a freshly established session.
    pub(crate) fn attach(&self, sender: mpsc::Sender<ServerMessage>) {
        *self.session.write() = Some(sender);
    }

    /// The session ended: later sends fail, and requests still waiting for
    /// an acknowledgement fail with "link lost".
    pub(crate) fn detach(&self) {
        self.session.write().take();
        // Dropping the reply senders wakes every waiter.
        self.pending.lock().clear();
        self.results.lock().clear();
    }

    /// Queues one message, waiting while the queue is full.
    pub(crate) async fn send(&self, kind: Kind) -> Result<()> {
        let sender = self.session.read().clone().ok_or(Repr::LinkDown)?;
        sender
            .send(ServerMessage { kind: Some(kind) })
            .await
            .map_err(|_| Error::from(Repr::LinkLost))
    }

    /// Sends a message carrying a fresh ack id and waits for the proxy's
    /// answer.
    pub(crate) async fn request(&self, build: impl FnOnce(u64) -> Kind) -> Result<AckReply> {
        let ack_id = self.next_ack.fetch_add(1, Ordering::Relaxed);
        let (reply_tx, reply_rx) = oneshot::channel();
        // Register before sending so a fast answer is never missed.
        self.pending.lock().insert(ack_id, reply_tx);
        let _forget = ForgetOnDrop {
            outbox: self,
            ack_id,
        };
        self.send(build(ack_id)).await?;
        match tokio::time::timeout(self.ack_timeout, reply_rx).await {
            Ok(Ok(ack)) => Ok(AckReply(ack)),
            Ok(Err(_)) => Err(Repr::LinkLost.into()),
            Err(_) => Err(Repr::Timeout(self.ack_timeout).into()),
        }
    }

    /// Hands an acknowledgement to whoever waits for it.
    pub(crate) fn acknowledge(&self, ack: Ack) {
        let waiter = self.pending.lock().remove(&ack.ack_id);
        match waiter {
            Some(waiter) => {
                // The waiter may have timed out meanwhile; nothing to do then.
                let _ = waiter.send(ack);
            }
            None => tracing::debug!(ack_id = ack.ack_id, "acknowledgement nobody waits for"),
        }
    }
}

impl Outbox {
    /// Invokes `target` on one client and waits up to `timeout` for its
    /// answer (client results).
    pub(crate) async fn invoke_client(
        &self,
        connection: &str,
        target: &str,
        arguments: Payload,
        timeout: Duration,
    ) -> Result<client_result::Outcome> {
        let request_id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (reply_tx, reply_rx) = oneshot::channel();
        self.results.lock().insert(request_id, reply_tx);
        let _forget = ForgetResultOnDrop {
            outbox: self,
            request_id,
        };
        let proxy_timeout = timeout.saturating_add(CLIENT_RESULT_MARGIN);
        self.send(Kind::InvokeClient(InvokeClient {
            connection: connection.to_owned(),
            request_id,
            target: target.to_owned(),
            arguments: Some(arguments),
            timeout_ms: u32::try_from(proxy_timeout.as_millis()).unwrap_or(u32::MAX),
        }))
        .await?;
        match tokio::time::timeout(timeout, reply_rx).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(_)) => Err(Repr::LinkLost.into()),
            Err(_) => Err(Repr::ClientTimeout(timeout).into()),
        }
    }

    /// Hands a client's answer to whoever waits for it.
    pub(crate) fn client_result(&self, result: ClientResult) {
        let waiter = self.results.lock().remove(&result.request_id);
        match (waiter, result.outcome) {
            (Some(waiter), Some(outcome)) => {
                let _ = waiter.send(outcome);
            }
            (Some(waiter), None) => {
                let _ = waiter.send(client_result::Outcome::Error(
                    "the proxy sent a client result without an outcome".into(),
                ));
            }
            (None, _) => {
                tracing::debug!(
                    request_id = result.request_id,
                    "client result nobody waits for"
                );
            }
        }
    }
}

/// Forgets a client-result request when its caller stops waiting.
struct ForgetResultOnDrop<'a> {
    outbox: &'a Outbox,
    request_id: u64,
}

impl Drop for ForgetResultOnDrop<'_> {
    fn drop(&mut self) {
        self.outbox.results.lock().remove(&self.request_id);
    }
}

/// Removes a pending request when its caller stops waiting (timeout,
/// cancellation or error), so the map does not grow.
struct ForgetOnDrop<'a> {
    outbox: &'a Outbox,
    ack_id: u64,
}

impl Drop for ForgetOnDrop<'_> {
    fn drop(&mut self) {
        self.outbox.pending.lock().remove(&self.ack_id);
    }
}

/// The proxy's answer to an acknowledged request.
#[derive(Debug)]
pub(crate) struct AckReply(Ack);

impl AckReply {
    /// OK is success; NOT_FOUND and ERROR become errors naming `subject`.
    pub(crate) fn into_result(self, subject: impl FnOnce() -> String) -> Result<()> {
        match self.0.status() {
            ack::Status::Ok => Ok(()),
            ack::Status::NotFound => Err(Repr::NotFound(detail(self.0.message, subject)).into()),
            ack::Status::Error | ack::Status::Unspecified => {
                Err(Repr::Rejected(detail(self.0.message, subject)).into())
            }
        }
    }

    /// OK means yes, NOT_FOUND means no, anything else is an error.
    pub(crate) fn exists(self) -> Result<bool> {
        match self.0.status() {
            ack::Status::Ok => Ok(true),
            ack::Status::NotFound => Ok(false),
            ack::Status::Error | ack::Status::Unspecified => {
                Err(Repr::Rejected(self.0.message).into())
            }
        }
    }
}

fn detail(message: String, subject: impl FnOnce() -> String) -> String {
    if message.is_empty() {
        subject()
    } else {
        format!("{}: {message}", subject())
    }
}

/// Turns the session queue into a stream of frames, packing whatever is
/// already queued into one frame. Ends when every sender is gone.
pub(crate) fn frames(receiver: mpsc::Receiver<ServerMessage>) -> impl Stream<Item = ServerFrame> {
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        let first = receiver.recv().await?;
        let mut bytes = first.encoded_len();
        let mut messages = vec![first];
        while messages.len() < MAX_BATCH_MESSAGES && bytes < MAX_BATCH_BYTES {
            match receiver.try_recv() {
                Ok(message) => {
                    bytes += message.encoded_len();
                    messages.push(message);
                }
                Err(_) => break,
            }
        }
        Some((ServerFrame { messages }, receiver))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use switchboard_proto::Ping;

    fn ack(ack_id: u64, status: ack::Status) -> Ack {
        Ack {
            ack_id,
            status: status as i32,
            message: String::new(),
        }
    }

    #[tokio::test]
    async fn sends_fail_fast_while_detached() {
        let outbox = Outbox::new(Duration::from_secs(1));
        let err = outbox.send(Kind::Ping(Ping {})).await.unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::LinkDown);
    }

    #[tokio::test]
    async fn requests_resolve_on_ack_and_fail_on_detach() {
        let outbox = std::sync::Arc::new(Outbox::new(Duration::from_secs(5)));
        let (tx, mut rx) = mpsc::channel(8);
        outbox.attach(tx);

        let waiting = tokio::spawn({
            let outbox = outbox.clone();
            async move {
                outbox
                    .request(|_| Kind::Ping(Ping {}))
                    .await
                    .map(|r| r.exists())
            }
        });
        rx.recv().await.unwrap();
        outbox.acknowledge(ack(1, ack::Status::NotFound));
        assert!(!waiting.await.unwrap().unwrap().unwrap());

        let waiting = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.request(|_| Kind::Ping(Ping {})).await.map(|_| ()) }
        });
        rx.recv().await.unwrap();
        outbox.detach();
        let err = waiting.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::LinkLost);
        assert!(outbox.pending.lock().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn unanswered_requests_time_out_and_are_forgotten() {
        let outbox = Outbox::new(Duration::from_secs(3));
        let (tx, _rx) = mpsc::channel(8);
        outbox.attach(tx);
        let err = outbox.request(|_| Kind::Ping(Ping {})).await.unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Timeout);
        assert!(outbox.pending.lock().is_empty());
    }

    #[tokio::test]
    async fn queued_messages_are_batched_into_one_frame() {
        let (tx, rx) = mpsc::channel(8);
        for _ in 0..3 {
            tx.send(ServerMessage {
                kind: Some(Kind::Ping(Ping {})),
            })
            .await
            .unwrap();
        }
        drop(tx);
        let frames: Vec<_> = frames(rx).collect().await;
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].messages.len(), 3);
    }
}
