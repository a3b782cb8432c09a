//! What can go wrong while talking to the proxy or an app server.

use super::connection::Ended;

/// A failed client step, with enough detail to say what was sent and what came back.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The HTTP request itself failed (connection refused, timeout, bad body).
    #[error("HTTP request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// A server answered with an unexpected status (negotiate or WebSocket upgrade).
    #[error("{method} {url} answered {status}: {body:?}")]
    Status {
        /// `POST` for negotiate, `GET` for a WebSocket upgrade.
        method: &'static str,
        /// The request URL.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The response body as text.
        body: String,
    },
    /// The WebSocket layer failed.
    #[error("WebSocket error: {0}")]
    WebSocket(Box<tokio_tungstenite::tungstenite::Error>),
    /// The server answered the handshake with an error.
    #[error("handshake rejected: {0}")]
    HandshakeRejected(String),
    /// The server sent something that is not valid hub protocol.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// A hub invocation completed with an error.
    #[error("hub error: {0}")]
    Hub(String),
    /// A message other than the one expected arrived.
    #[error("expected {expected}, got {got}")]
    Unexpected {
        /// What the caller waited for.
        expected: String,
        /// What arrived instead.
        got: String,
    },
    /// The connection ended while a reply was awaited.
    #[error("connection ended: {0}")]
    Ended(Ended),
    /// Nothing arrived in time.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(std::time::Duration, String),
    /// A URL could not be built.
    #[error("bad URL {0:?}: {1}")]
    Url(String, String),
}

impl From<tokio_tungstenite::tungstenite::Error> for ClientError {
    fn from(error: tokio_tungstenite::tungstenite::Error) -> Self {
        Self::WebSocket(Box::new(error))
    }
}
