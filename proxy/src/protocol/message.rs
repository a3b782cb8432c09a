//! Hub messages as the proxy sees them, independent of the wire encoding.
//!
//! Payloads (arguments, stream items, results) stay as the raw encoded bytes the client
//! sent: the proxy forwards them to app servers without ever interpreting them.

use bytes::Bytes;

/// A message received from a client after the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubMessage {
    /// Type 1: call a hub method.
    Invocation(Invocation),
    /// Type 4: call a streaming hub method.
    StreamInvocation(Invocation),
    /// Type 2: one item of an upload stream (or of a client-result stream).
    StreamItem {
        invocation_id: String,
        /// The item's raw JSON value.
        item: Bytes,
    },
    /// Type 3: the end of an invocation or of an upload stream.
    Completion {
        invocation_id: String,
        outcome: Outcome,
    },
    /// Type 5: stop a server-to-client stream.
    CancelInvocation { invocation_id: String },
    /// Type 6: keep-alive.
    Ping,
    /// Type 7: the client is closing.
    Close {
        error: Option<String>,
        allow_reconnect: bool,
    },
    /// Type 8: stateful reconnect, the last sequence id the client received.
    Ack { sequence_id: u64 },
    /// Type 9: stateful reconnect, the sequence id of the next message the client sends.
    Sequence { sequence_id: u64 },
}

/// A hub method call (types 1 and 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// `None` for a non-blocking invocation, which gets no reply.
    pub invocation_id: Option<String>,
    pub target: String,
    /// The client's JSON array of arguments, byte for byte.
    pub arguments: Bytes,
    /// Upload streams the client will feed with StreamItem messages; empty when absent.
    pub stream_ids: Vec<String>,
}

/// How an invocation or a stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Completed without a result (a void method, or the end of a stream).
    Void,
    /// Completed with a result: raw JSON, possibly `null`.
    Value(Bytes),
    /// Failed with an error text.
    Error(String),
}

/// Why received bytes could not be turned into hub messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A record (without its terminator) is longer than the configured limit.
    #[error("message exceeds the maximum size of {limit} bytes")]
    MessageTooLarge { limit: usize },
    /// The record is not a valid hub message; the text says what is wrong.
    #[error("malformed hub message: {0}")]
    Malformed(String),
}
