//! Why a connection ended: a fixed vocabulary shared by logs, the
//! `ConnectionClosed` message sent to app servers and (later) metrics labels.

/// The reason a client connection closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The client closed the connection (Close message or transport close).
    Normal,
    /// No handshake arrived within the handshake timeout.
    HandshakeTimeout,
    /// The handshake was malformed or asked for an unsupported protocol.
    HandshakeError,
    /// The client sent nothing within the client timeout.
    PingTimeout,
    /// The client did not read fast enough and its outbox filled up.
    SlowConsumer,
    /// The client sent a message larger than the configured maximum.
    MessageTooLarge,
    /// The client sent bytes that are not valid hub protocol.
    ProtocolError,
    /// An app server closed the connection.
    ClosedByServer,
    /// The app server serving the connection went away and no other serves the hub.
    NoAppServer,
    /// The proxy is shutting down.
    Shutdown,
    /// The transport failed (reset, I/O error).
    TransportError,
}

impl CloseReason {
    /// Stable text used in `ConnectionClosed.reason`, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::HandshakeTimeout => "handshake timeout",
            Self::HandshakeError => "handshake error",
            Self::PingTimeout => "ping timeout",
            Self::SlowConsumer => "slow consumer",
            Self::MessageTooLarge => "message too large",
            Self::ProtocolError => "protocol error",
            Self::ClosedByServer => "closed by server",
            Self::NoAppServer => "no app server",
            Self::Shutdown => "shutdown",
            Self::TransportError => "transport error",
        }
    }
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request to end a connection, with what to tell the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    pub reason: CloseReason,
    /// Error text for the client's Close message; `None` for a clean close.
    pub error: Option<String>,
    pub allow_reconnect: bool,
}

impl Close {
    pub fn new(reason: CloseReason, error: Option<String>, allow_reconnect: bool) -> Self {
        Self {
            reason,
            error,
            allow_reconnect,
        }
    }

    /// An end with nothing to tell the client (it closed, or the transport
    /// failed).
    pub fn quiet(reason: CloseReason) -> Self {
        Self::new(reason, None, false)
    }

    /// The client sent nothing within the client timeout; it may reconnect.
    pub fn client_timeout() -> Self {
        Self::new(
            CloseReason::PingTimeout,
            Some("Connection closed with an error. The client sent nothing within the client timeout.".into()),
            true,
        )
    }
}
