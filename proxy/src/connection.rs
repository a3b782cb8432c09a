//! One client connection after its handshake, independent of transport.
//!
//! A transport feeds the bytes it reads into [`Session::receive`], writes
//! what the connection's [`Outbox`](outbox::Outbox) yields, and runs the
//! timers; the session decodes hub messages, forwards them to the app server
//! serving the connection, and registers the connection with the router.
//! A connection with stateful reconnect also numbers what it receives and
//! keeps what it wrote until acknowledged ([`stateful`]), so a transport
//! that can resume may hand it a new socket.
//!
//! Each connection's task runs inside the span [`Accepted::span`] makes, so
//! its log lines carry the connection id, hub, transport and protocol
//! without naming them again; logs never carry tokens or message bodies.

pub mod close;
pub mod handle;
pub mod handshake;
pub mod outbox;
pub mod stateful;
pub mod timers;

use std::sync::Arc;

use switchboard_proto::{self as pb, proxy_message::Kind};

use self::close::{Close, CloseReason};
use self::handle::{Handle, Meta, Protocol};
use self::stateful::Stateful;
use crate::Shared;
use crate::auth::Identity;
use crate::ids::ConnectionId;
use crate::metrics::{CloseLabels, ConnectionLabels};
use crate::protocol::{HubMessage, Invocation, Outcome, ProtocolError, json, messagepack};
use crate::upstream::dispatch::client_result;
use crate::upstream::{Link, connection_opened};

/// Text appended to a failed invocation whose app server went away.
const LINK_GONE: &str = "The app server handling this connection went away.";

/// A connection that passed negotiate (or token checks) and is about to
/// handshake.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub id: ConnectionId,
    /// Lower-case hub name.
    pub hub: String,
    pub identity: Identity,
    pub meta: Meta,
}

impl Accepted {
    /// The span a connection's task runs in: `connection`, `hub` and
    /// `transport` now, `protocol` once the handshake named it (recorded by
    /// [`Session::open`]). Instrumenting the task enters it only while the
    /// task is polled; when the level is filtered out it costs nothing.
    pub fn span(&self) -> tracing::Span {
        tracing::info_span!(
            "connection",
            connection = %self.id,
            hub = %self.hub,
            transport = %self.meta.transport,
            protocol = tracing::field::Empty,
        )
    }
}

/// What the transport should do after [`Session::receive`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// The client sent a Close message: end without answering.
    ClientClosed,
}

/// What is left to do after [`Session::dispatch`].
#[expect(
    clippy::large_enum_variant,
    reason = "returned and consumed at once, never stored; boxing would allocate per message"
)]
enum Next {
    Continue,
    ClientClosed,
    /// Send `kind` to the app server on `link`; when that fails, fail the
    /// client's `invocation` (if it awaits a result).
    Forward {
        link: Arc<Link>,
        kind: Kind,
        invocation: Option<String>,
    },
}

/// The decoder for the connection's hub protocol.
enum Decoder {
    Json(json::Decoder),
    MessagePack(messagepack::Decoder),
}

impl Decoder {
    fn new(protocol: Protocol, max_message_size: usize) -> Self {
        match protocol {
            Protocol::Json => Self::Json(json::Decoder::new(max_message_size)),
            Protocol::MessagePack => Self::MessagePack(messagepack::Decoder::new(max_message_size)),
        }
    }

    fn push(&mut self, data: &[u8]) -> Result<(), ProtocolError> {
        match self {
            Self::Json(d) => d.push(data),
            Self::MessagePack(d) => d.push(data),
        }
    }

    fn next_message(&mut self) -> Result<Option<HubMessage>, ProtocolError> {
        match self {
            Self::Json(d) => d.next_message(),
            Self::MessagePack(d) => d.next_message(),
        }
    }
}

/// See the module docs.
pub struct Session {
    shared: Arc<Shared>,
    pub handle: Arc<Handle>,
    decoder: Decoder,
    /// Present once stateful reconnect is on.
    stateful: Option<Stateful>,
}

impl Session {
    /// Registers the connection and assigns it to the least-loaded app server
    /// serving its hub. Fails with the handshake error text when none does.
    /// Records the protocol in the current (the connection's) span.
    pub async fn open(
        shared: Arc<Shared>,
        accepted: Accepted,
        protocol: Protocol,
    ) -> Result<Session, String> {
        let Accepted {
            id,
            hub,
            identity,
            mut meta,
        } = accepted;
        tracing::Span::current().record("protocol", tracing::field::display(protocol.name()));
        meta.claims = identity.claims;
        let user = identity.user_id.map(Arc::from);
        let handle = Arc::new(Handle::new(
            id,
            hub.into(),
            user,
            protocol,
            shared.config.outbox_limit,
            meta,
        ));
        loop {
            let Some(link) = shared.links.pick(&handle.hub) else {
                shared.router.remove(&handle);
                return Err(format!(
                    "No app server is connected for hub '{}'.",
                    handle.hub
                ));
            };
            link.add_load();
            handle.set_link(Some(link.clone()));
            // Registered before the app server hears of it, so on_connected can
            // already address the connection.
            shared.router.add(handle.clone());
            if link.send(connection_opened(&handle, false)).await.is_ok() {
                break;
            }
            link.remove_load();
        }
        let decoder = Decoder::new(protocol, shared.config.max_message_size);
        let labels = connection_labels(&handle);
        shared.metrics.connections.get_or_create(&labels).inc();
        shared
            .metrics
            .connections_opened
            .get_or_create(&labels)
            .inc();
        Ok(Session {
            shared,
            handle,
            decoder,
            stateful: None,
        })
    }

    /// Turns stateful reconnect on (the handshake asked for it), keeping at
    /// most about `buffer` unacknowledged bytes.
    pub fn enable_stateful(&mut self, buffer: usize) {
        self.stateful = Some(Stateful::new(buffer));
    }

    /// Where the connection's figures are counted.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.shared.metrics
    }

    /// The stateful reconnect state, when on.
    pub fn stateful(&mut self) -> Option<&mut Stateful> {
        self.stateful.as_mut()
    }

    /// Decodes and handles every complete message in `data`.
    pub async fn receive(&mut self, data: &[u8]) -> Result<Flow, Close> {
        self.shared.metrics.bytes_received.inc_by(data.len() as u64);
        self.decoder
            .push(data)
            .map_err(|e| self.protocol_error(e))?;
        // Nothing built here is held across the await but the link and the
        // invocation id: match temporaries would be, and this future sits
        // in every idle connection's task.
        loop {
            let message = match self.decoder.next_message() {
                Ok(Some(message)) => message,
                Ok(None) => return Ok(Flow::Continue),
                Err(e) => return Err(self.protocol_error(e)),
            };
            self.shared.metrics.messages_received.inc();
            if !self.sequence(&message)? {
                continue;
            }
            let (link, kind, invocation) = match self.dispatch(message) {
                Next::Continue => continue,
                Next::ClientClosed => return Ok(Flow::ClientClosed),
                Next::Forward {
                    link,
                    kind,
                    invocation,
                } => (link, kind, invocation),
            };
            let sent = link.send(kind);
            if sent.await.is_err()
                && let Some(id) = invocation
            {
                self.handle.fail_invocation(&id, LINK_GONE);
            }
        }
    }

    /// Stateful reconnect's part of receiving: handles Ack and Sequence and
    /// numbers the rest; false for a message to drop (a control message, or
    /// one already handled before a reconnect).
    fn sequence(&mut self, message: &HubMessage) -> Result<bool, Close> {
        let Some(state) = self.stateful.as_mut() else {
            return Ok(true);
        };
        match message {
            HubMessage::Ack { sequence_id } => {
                state.on_ack(*sequence_id);
                Ok(false)
            }
            HubMessage::Sequence { sequence_id } => match state.on_sequence(*sequence_id) {
                Ok(()) => Ok(false),
                Err(e) => Err(Close::new(
                    CloseReason::ProtocolError,
                    Some(format!("Connection closed with an error. {e}")),
                    false,
                )),
            },
            HubMessage::Invocation(_)
            | HubMessage::StreamInvocation(_)
            | HubMessage::StreamItem { .. }
            | HubMessage::Completion { .. }
            | HubMessage::CancelInvocation { .. } => Ok(state.admit()),
            HubMessage::Ping | HubMessage::Close { .. } => Ok(true),
        }
    }

    fn protocol_error(&self, e: ProtocolError) -> Close {
        match e {
            ProtocolError::MessageTooLarge { limit } => Close::new(
                CloseReason::MessageTooLarge,
                Some(format!(
                    "Connection closed with an error. InvalidDataException: The maximum message size of {limit}B was exceeded."
                )),
                false,
            ),
            other => Close::new(
                CloseReason::ProtocolError,
                Some(format!(
                    "Connection closed with an error. InvalidDataException: {other}"
                )),
                false,
            ),
        }
    }

    /// Handles one message without waiting: what is left is at most one
    /// send to the app server, which [`receive`](Self::receive) awaits. Kept
    /// synchronous so the messages built here are not part of the future
    /// every idle connection holds.
    fn dispatch(&mut self, message: HubMessage) -> Next {
        let connection = self.handle.id.to_string();
        let kind = match message {
            HubMessage::Invocation(inv) => return self.invoke(inv, false),
            HubMessage::StreamInvocation(inv) => return self.invoke(inv, true),
            HubMessage::StreamItem {
                invocation_id,
                item,
            } => Kind::ClientStreamItem(pb::ClientStreamItem {
                connection,
                stream_id: invocation_id,
                item: Some(self.payload(item)),
            }),
            HubMessage::Completion {
                invocation_id,
                outcome,
            } => {
                // The answer to a client result the app server awaits.
                if let Some((request_id, link)) = self.handle.finish_client_call(&invocation_id) {
                    use pb::client_result::Outcome as Answer;
                    let outcome = match outcome {
                        Outcome::Value(v) => Answer::Value(self.payload(v)),
                        Outcome::Void => Answer::Void(pb::Void {}),
                        Outcome::Error(e) => Answer::Error(e),
                    };
                    return Next::Forward {
                        link,
                        kind: client_result(request_id, outcome),
                        invocation: None,
                    };
                }
                // Otherwise the end of an upload stream.
                let error = match outcome {
                    Outcome::Error(e) => e,
                    Outcome::Void | Outcome::Value(_) => String::new(),
                };
                Kind::ClientStreamCompletion(pb::ClientStreamCompletion {
                    connection,
                    stream_id: invocation_id,
                    error,
                })
            }
            HubMessage::CancelInvocation { invocation_id } => {
                Kind::CancelInvocation(pb::CancelInvocation {
                    connection,
                    invocation_id,
                })
            }
            HubMessage::Close { .. } => return Next::ClientClosed,
            // Pings only keep the connection alive. Ack and Sequence were
            // handled already when stateful reconnect is on, and mean
            // nothing otherwise.
            HubMessage::Ping | HubMessage::Ack { .. } | HubMessage::Sequence { .. } => {
                return Next::Continue;
            }
        };
        match self.handle.link() {
            Some(link) => Next::Forward {
                link,
                kind,
                invocation: None,
            },
            None => Next::Continue,
        }
    }

    fn invoke(&mut self, inv: Invocation, streaming: bool) -> Next {
        let link = self
            .handle
            .begin_invocation(inv.invocation_id.as_deref(), &inv.target);
        let Some(link) = link else {
            if let Some(id) = &inv.invocation_id {
                self.handle.fail_invocation(id, LINK_GONE);
            }
            return Next::Continue;
        };
        let kind = Kind::ClientInvocation(pb::ClientInvocation {
            connection: self.handle.id.to_string(),
            hub: self.handle.hub.to_string(),
            invocation_id: inv.invocation_id.clone().unwrap_or_default(),
            target: inv.target,
            arguments: Some(self.payload(inv.arguments)),
            stream_ids: inv.stream_ids,
            streaming,
        });
        Next::Forward {
            link,
            kind,
            invocation: inv.invocation_id,
        }
    }

    /// Client bytes tagged with this connection's encoding, for the app server.
    fn payload(&self, data: bytes::Bytes) -> pb::Payload {
        pb::Payload {
            encoding: self.handle.protocol.encoding() as i32,
            data,
        }
    }

    /// Unregisters the connection and tells its app server why it ended.
    pub async fn finish(self, close: &Close) {
        self.shared.router.remove(&self.handle);
        let metrics = &self.shared.metrics;
        metrics
            .connections
            .get_or_create(&connection_labels(&self.handle))
            .dec();
        let closed = CloseLabels {
            hub: self.handle.hub.to_string(),
            reason: close.reason.as_str(),
        };
        metrics.connections_closed.get_or_create(&closed).inc();
        for (request_id, link) in self.handle.take_client_calls() {
            let text = "The connection closed before the client returned a result.".to_owned();
            let _ = link
                .send(client_result(
                    request_id,
                    pb::client_result::Outcome::Error(text),
                ))
                .await;
        }
        if let Some(link) = self.handle.set_link(None) {
            link.remove_load();
            let closed = Kind::ConnectionClosed(pb::ConnectionClosed {
                connection: self.handle.id.to_string(),
                hub: self.handle.hub.to_string(),
                reason: close.reason.as_str().to_owned(),
                error: close.error.clone().unwrap_or_default(),
            });
            let _ = link.send(closed).await;
        }
        tracing::debug!(reason = %close.reason, "connection closed");
    }
}

fn connection_labels(handle: &Handle) -> ConnectionLabels {
    ConnectionLabels {
        hub: handle.hub.to_string(),
        transport: handle.meta.transport,
        protocol: handle.protocol.name(),
    }
}
