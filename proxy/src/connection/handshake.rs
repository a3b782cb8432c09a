//! The handshake phase every transport shares, sans-IO: bytes in until the
//! handshake request is complete, then the protocol chosen (and the bytes
//! that followed it) or the error text to answer with.
//!
//! The list of hub protocols this proxy serves lives here.

use super::handle::Protocol;
use crate::protocol::handshake;

/// Protocols and the highest version of each this proxy serves.
const SUPPORTED: &[(&str, u32)] = &[("json", 1), ("messagepack", 1)];

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
    Done { protocol: Protocol, rest: Vec<u8> },
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
}

impl Handshake {
    /// `limit` bounds the request (the maximum message size).
    pub fn new(limit: usize, formats: TransferFormats) -> Self {
        Self {
            buf: Vec::new(),
            limit,
            formats,
        }
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
        if let Err(error) = handshake::check(&request, SUPPORTED) {
            return Step::Failed { error };
        }
        let rest = self.buf.split_off(used);
        self.buf = Vec::new();
        let protocol = if request.protocol.eq_ignore_ascii_case("messagepack") {
            Protocol::MessagePack
        } else {
            Protocol::Json
        };
        Step::Done { protocol, rest }
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
                rest: b"{\"type\":6}\x1e".to_vec()
            }
        );
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
