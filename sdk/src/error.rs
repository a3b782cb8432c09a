//! The SDK's public error type: opaque, with a [`ErrorKind`] to branch on.

use std::fmt;

/// What went wrong, coarsely, for callers that want to react differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The connection string is malformed or misses a required key.
    ConnectionString,
    /// An access token could not be minted.
    Token,
    /// No link to a proxy is up that could carry the message, so nothing
    /// can be sent right now.
    LinkDown,
    /// The link dropped or the server shut down before the proxy answered.
    LinkLost,
    /// The proxy did not answer an acknowledged request in time, or a
    /// client did not answer an invocation in time.
    Timeout,
    /// The proxy answered that the connection, group or user does not
    /// exist, or no linked proxy node can reach the connection.
    NotFound,
    /// The proxy refused the request.
    Rejected,
    /// Arguments or results could not be encoded.
    Encode,
    /// A client's result could not be decoded as the type asked for.
    Decode,
    /// The client answered an invocation with an error, had no handler
    /// for it, or disconnected first; the message is the proxy's text.
    Client,
    /// The server was shut down.
    Shutdown,
}

/// An error from the Switchboard SDK.
///
/// Opaque on purpose: match on [`Error::kind`] and read the message with
/// `Display`.
pub struct Error {
    inner: Box<Repr>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum Repr {
    #[error("invalid connection string: {0}")]
    ConnectionString(String),
    #[error("cannot mint access token: {0}")]
    Token(#[from] jsonwebtoken::errors::Error),
    #[error("the link to the Switchboard proxy is down")]
    LinkDown,
    #[error("the link to the Switchboard proxy was lost before the proxy answered")]
    LinkLost,
    #[error("the Switchboard proxy did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("rejected by the Switchboard proxy: {0}")]
    Rejected(String),
    #[error("cannot encode: {0}")]
    Encode(String),
    #[error("cannot decode the client's result: {0}")]
    Decode(String),
    #[error("{0}")]
    Client(String),
    #[error("the client did not answer within {0:?}")]
    ClientTimeout(std::time::Duration),
    #[error("the server was shut down")]
    Shutdown,
    /// A failure on one of several links, naming the proxy node or endpoint.
    #[error("{0}: {1}")]
    At(String, Box<Repr>),
}

impl Repr {
    fn kind(&self) -> ErrorKind {
        match self {
            Repr::ConnectionString(_) => ErrorKind::ConnectionString,
            Repr::Token(_) => ErrorKind::Token,
            Repr::LinkDown => ErrorKind::LinkDown,
            Repr::LinkLost => ErrorKind::LinkLost,
            Repr::Timeout(_) | Repr::ClientTimeout(_) => ErrorKind::Timeout,
            Repr::NotFound(_) => ErrorKind::NotFound,
            Repr::Rejected(_) => ErrorKind::Rejected,
            Repr::Encode(_) => ErrorKind::Encode,
            Repr::Decode(_) => ErrorKind::Decode,
            Repr::Client(_) => ErrorKind::Client,
            Repr::Shutdown => ErrorKind::Shutdown,
            Repr::At(_, inner) => inner.kind(),
        }
    }
}

impl Error {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind()
    }

    /// The same error, said to have happened at `place` (a proxy node or
    /// endpoint), for answers combined from several links.
    pub(crate) fn at(self, place: impl Into<String>) -> Self {
        Repr::At(place.into(), self.inner).into()
    }

    pub(crate) fn connection_string(msg: impl Into<String>) -> Self {
        Repr::ConnectionString(msg.into()).into()
    }

    pub(crate) fn encode(msg: impl fmt::Display) -> Self {
        Repr::Encode(msg.to_string()).into()
    }
}

impl From<Repr> for Error {
    fn from(repr: Repr) -> Self {
        Self {
            inner: Box::new(repr),
        }
    }
}

impl From<jsonwebtoken::errors::Error> for Error {
    fn from(err: jsonwebtoken::errors::Error) -> Self {
        Repr::Token(err).into()
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner.source()
    }
}

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
