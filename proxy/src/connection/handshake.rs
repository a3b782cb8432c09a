//! The handshake phase every transport shares, sans-IO: bytes in until the
//! handshake request is complete, then the protocol chosen (and the bytes
//! that followed it) or the error text to answer with.
//!
//! The list of hub protocols this proxy serves lives here.

use super::handle::Protocol;
use crate::protocol::handshake;

/// Protocols and the highest version of each this proxy serves.
const SUPPORTED: &[(&str, u32)] = &[("json", 1), ("messagepack", 1)];

/// The same on a connection that negotiated stateful reconnect: version 2
/// asks for it.
const SUPPORTED_STATEFUL: &[(&str, u32)] = &[("json", 2), ("messagepack", 2)];

/// The protocol version that turns stateful reconnect on.
const STATEFUL_VERSION: u32 = 2;

/// Hub protocols that need a binary-capable transport.
const BINARY: &[&str] = &["messagepack"];

/// What a transport can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferFormats {
    /// Text only (server-sent events).
    Text,
    /// Text and binary (WebSockets, long polling).
    TextAndBinary,
}

/// The outcome of feeding bytes to a [`Handshake`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The request is not complete yet.
    NeedMore,
    /// The request was accepted; `rest` already belongs to the hub protocol.
    /// `stateful` when the client asked for stateful reconnect (only ever on
    /// a handshake that allowed it).
    Done {
        protocol: Protocol,
        stateful: bool,
        rest: Vec<u8>,
    },
    /// The request was refused: answer `error` with a handshake error
    /// response, then close.
    Failed { error: String },
}

/// See the module docs.
#[derive(Debug)]
pub struct Handshake {
    buf: Vec<u8>,
    limit: usize,
    formats: TransferFormats,
    stateful: bool,
}

impl Handshake {
    /// `limit` bounds the request (the maximum message size).
    pub fn new(limit: usize, formats: TransferFormats) -> Self {
        Self {
            buf: Vec::new(),
            limit,
            formats,
            stateful: false,
        }
    }

    /// Also accepts the protocol version that asks for stateful reconnect
    /// (the connection negotiated it and its transport can resume).
    pub fn allow_stateful(mut self) -> Self {
        self.stateful = true;
        self
    }

    /// Adds bytes read from the client.
    pub fn push(&mut self, data: &[u8]) -> Step {
        self.buf.extend_from_slice(data);
        let (request, used) = match handshake::parse_request(&self.buf, self.limit) {
            Ok(None) => return Step::NeedMore,
            Ok(Some(parsed)) => parsed,
            Err(e) => {
                return Step::Failed {
                    error: e.response_text(false),
                };
            }
        };
        if self.formats == TransferFormats::Text
            && BINARY
                .iter()
                .any(|p| p.eq_ignore_ascii_case(&request.protocol))
        {
            return Step::Failed {
                error: format!(
                    "Cannot use the '{}' protocol on the current transport. The transport does not support 'Binary' transfer format.",
                    request.protocol.to_ascii_lowercase()
                ),
            };
        }
        let supported = if self.stateful {
            SUPPORTED_STATEFUL
        } else {
            SUPPORTED
        };
        if let Err(error) = handshake::check(&request, supported) {
            return Step::Failed { error };
        }
        let rest = self.buf.split_off(used);
        self.buf = Vec::new();
        let protocol = if request.protocol.eq_ignore_ascii_case("messagepack") {
            Protocol::MessagePack
        } else {
            Protocol::Json
        };
        Step::Done {
            protocol,
            stateful: self.stateful && request.version >= STATEFUL_VERSION,
            rest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: &[u8] = b"{\"protocol\":\"json\",\"version\":1}\x1e";

    #[test]
    fn completes_across_pushes_and_keeps_what_follows() {
        let mut h = Handshake::new(1024, TransferFormats::TextAndBinary);
        assert_eq!(h.push(&REQUEST[..10]), Step::NeedMore);
        let mut tail = REQUEST[10..].to_vec();
        tail.extend_from_slice(b"{\"type\":6}\x1e");
        assert_eq!(
            h.push(&tail),
            Step::Done {
                protocol: Protocol::Json,
                stateful: false,
                rest: b"{\"type\":6}\x1e".to_vec()
            }
        );
    }

    #[test]
    fn version_two_only_where_stateful_reconnect_was_negotiated() {
        let v2 = b"{\"protocol\":\"messagepack\",\"version\":2}\x1e";
        let mut h = Handshake::new(1024, TransferFormats::TextAndBinary);
        assert_eq!(
            h.push(v2),
            Step::Failed {
                error: "The server does not support version 2 of the 'messagepack' protocol."
                    .into()
            }
        );
        let mut h = Handshake::new(1024, TransferFormats::TextAndBinary).allow_stateful();
        assert_eq!(
            h.push(v2),
            Step::Done {
                protocol: Protocol::MessagePack,
                stateful: true,
                rest: Vec::new()
            }
        );
        let mut h = Handshake::new(1024, TransferFormats::TextAndBinary).allow_stateful();
        assert!(matches!(
            h.push(REQUEST),
            Step::Done {
                stateful: false,
                ..
            }
        ));
    }

    #[test]
    fn refusals_use_the_reference_texts() {
        let mut h = Handshake::new(1024, TransferFormats::TextAndBinary);
        assert_eq!(
            h.push(b"{\"protocol\":\"xml\",\"version\":1}\x1e"),
            Step::Failed {
                error: "The protocol 'xml' is not supported.".into()
            }
        );
        let mut h = Handshake::new(1024, TransferFormats::Text);
        assert_eq!(
            h.push(b"{\"protocol\":\"messagepack\",\"version\":1}\x1e"),
            Step::Failed {
                error: "Cannot use the 'messagepack' protocol on the current transport. The transport does not support 'Binary' transfer format.".into()
            }
        );
        let mut h = Handshake::new(16, TransferFormats::Text);
        assert_eq!(
            h.push(&[b' '; 17]),
            Step::Failed {
                error: "Handshake was canceled.".into()
            }
        );
    }
}
