//! The handshake that opens every hub connection: always JSON text terminated by 0x1e,
//! whatever hub protocol it selects.
//!
//! Error texts match the reference ASP.NET Core server, since clients show them to users
//! and tests match on them.

use bytes::Bytes;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::json::{Part, RECORD_SEPARATOR, frame, starts_object};

/// What the client asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeRequest {
    /// Hub protocol name as sent, e.g. `json` or `messagepack`.
    pub protocol: String,
    /// For JSON and MessagePack, 2 asks for stateful reconnect.
    pub version: u32,
}

/// Why a handshake request could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The request is not JSON or lacks a well-typed `protocol` or `version`.
    #[error("malformed handshake request: {0}")]
    Malformed(String),
    /// No terminator within the size limit.
    #[error("handshake request exceeds the maximum size of {limit} bytes")]
    TooLarge { limit: usize },
}

impl HandshakeError {
    /// The text for [`error_response`], as the reference server words it. With
    /// `detailed` (the reference's "detailed errors" option) the cause is appended.
    pub fn response_text(&self, detailed: bool) -> String {
        match self {
            // The reference server cancels a handshake that outgrows its buffer.
            HandshakeError::TooLarge { .. } => "Handshake was canceled.".to_owned(),
            HandshakeError::Malformed(detail) if detailed => format!(
                "An unexpected error occurred during connection handshake. InvalidDataException: {detail}"
            ),
            HandshakeError::Malformed(_) => {
                "An unexpected error occurred during connection handshake.".to_owned()
            }
        }
    }
}

#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    protocol: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    version: Option<&'a RawValue>,
}

/// `Some` for a present property even when it is `null`, so `null` gets a type error.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Reads the handshake request at the start of `buf`.
///
/// `Ok(None)`: need more bytes. `Ok(Some((request, consumed)))`: bytes after
/// `consumed` already belong to the hub protocol and must be fed to the decoder.
/// `max_size` bounds the request without its terminator.
pub fn parse_request(
    buf: &[u8],
    max_size: usize,
) -> Result<Option<(HandshakeRequest, usize)>, HandshakeError> {
    let Some(end) = buf.iter().position(|&b| b == RECORD_SEPARATOR) else {
        if buf.len() > max_size {
            return Err(HandshakeError::TooLarge { limit: max_size });
        }
        return Ok(None);
    };
    if end > max_size {
        return Err(HandshakeError::TooLarge { limit: max_size });
    }
    if !starts_object(&buf[..end]) {
        return Err(malformed("Expected a JSON object."));
    }
    let fields: Fields<'_> = serde_json::from_slice(&buf[..end])
        .map_err(|e| HandshakeError::Malformed(format!("Invalid handshake JSON: {e}.")))?;
    let protocol = fields
        .protocol
        .ok_or_else(|| malformed("Missing required property 'protocol'."))?;
    let protocol: String = serde_json::from_str(protocol.get())
        .map_err(|_| malformed("Expected 'protocol' to be of type String."))?;
    let version = fields
        .version
        .ok_or_else(|| malformed("Missing required property 'version'."))?;
    let version: u32 = version
        .get()
        .parse()
        .map_err(|_| malformed("Expected 'version' to be a non-negative integer."))?;
    Ok(Some((HandshakeRequest { protocol, version }, end + 1)))
}

fn malformed(detail: &str) -> HandshakeError {
    HandshakeError::Malformed(detail.to_owned())
}

/// The successful handshake answer.
pub fn ok_response() -> Bytes {
    Bytes::from_static(b"{}\x1e")
}

/// A failed handshake answer; the connection closes after it.
pub fn error_response(error: &str) -> Bytes {
    frame(&[Part::Raw(b"{\"error\":"), Part::Str(error), Part::Raw(b"}")])
}

/// Checks the request against the server's `(protocol, highest version)` pairs and
/// returns the reference server's error text when it cannot be served.
///
/// Protocol names compare case-insensitively and every version up to the highest is
/// accepted (Python clients send 0), as in the reference server.
pub fn check(request: &HandshakeRequest, supported: &[(&str, u32)]) -> Result<(), String> {
    let Some(&(_, max_version)) = supported
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(&request.protocol))
    else {
        return Err(format!(
            "The protocol '{}' is not supported.",
            request.protocol
        ));
    };
    if request.version > max_version {
        return Err(format!(
            "The server does not support version {} of the '{}' protocol.",
            request.version, request.protocol
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const SUPPORTED: &[(&str, u32)] = &[("json", 2), ("messagepack", 2)];

    fn request(protocol: &str, version: u32) -> HandshakeRequest {
        HandshakeRequest {
            protocol: protocol.into(),
            version,
        }
    }

    #[test]
    fn complete_request() {
        let buf = b"{\"protocol\":\"json\",\"version\":1}\x1e";
        assert_eq!(
            parse_request(buf, 1024),
            Ok(Some((request("json", 1), buf.len())))
        );
    }

    #[test]
    fn split_at_every_position() {
        let buf = b"{\"version\":2, \"protocol\":\"messagepack\"}\x1e";
        for at in 0..buf.len() {
            assert_eq!(parse_request(&buf[..at], 1024), Ok(None), "prefix {at}");
        }
        assert_eq!(
            parse_request(buf, 1024),
            Ok(Some((request("messagepack", 2), buf.len())))
        );
    }

    #[test]
    fn trailing_bytes_belong_to_the_hub_protocol() {
        let handshake = b"{\"protocol\":\"json\",\"version\":1}\x1e";
        let mut buf = handshake.to_vec();
        buf.extend_from_slice(b"{\"type\":6}\x1e{\"type\"");
        let (req, consumed) = parse_request(&buf, 1024).unwrap().unwrap();
        assert_eq!(req, request("json", 1));
        assert_eq!(consumed, handshake.len());
        assert_eq!(&buf[consumed..], b"{\"type\":6}\x1e{\"type\"");
    }

    #[test]
    fn unknown_fields_and_escapes() {
        let buf = b"{\"extra\":[1,{}],\"protocol\":\"\\u006aso\\u006e\",\"version\":0}\x1e";
        assert_eq!(
            parse_request(buf, 1024),
            Ok(Some((request("json", 0), buf.len())))
        );
    }

    #[test]
    fn malformed_requests() {
        let cases: &[(&[u8], &str)] = &[
            (
                b"{\"version\":1}\x1e",
                "Missing required property 'protocol'.",
            ),
            (
                b"{\"protocol\":\"json\"}\x1e",
                "Missing required property 'version'.",
            ),
            (
                b"{\"protocol\":1,\"version\":1}\x1e",
                "Expected 'protocol' to be of type String.",
            ),
            (
                b"{\"protocol\":null,\"version\":1}\x1e",
                "Expected 'protocol' to be of type String.",
            ),
            (
                b"{\"protocol\":\"json\",\"version\":\"1\"}\x1e",
                "Expected 'version' to be a non-negative integer.",
            ),
            (
                b"{\"protocol\":\"json\",\"version\":-1}\x1e",
                "Expected 'version' to be a non-negative integer.",
            ),
            (
                b"{\"protocol\":\"json\",\"version\":1.5}\x1e",
                "Expected 'version' to be a non-negative integer.",
            ),
        ];
        for (buf, detail) in cases {
            assert_eq!(
                parse_request(buf, 1024),
                Err(HandshakeError::Malformed((*detail).to_owned())),
                "{}",
                String::from_utf8_lossy(buf)
            );
        }
        for buf in [&b"[\"json\",1]\x1e"[..], b"not json\x1e", b"\x1e"] {
            assert_eq!(
                parse_request(buf, 1024),
                Err(malformed("Expected a JSON object.")),
            );
        }
        for buf in [
            &b"{\"protocol\":\"json\",\"version\":1\x1e"[..],
            b"{\"protocol\":\"json\",\"version\":1,}\x1e",
        ] {
            assert!(
                matches!(parse_request(buf, 1024), Err(HandshakeError::Malformed(d)) if d.starts_with("Invalid handshake JSON")),
                "{}",
                String::from_utf8_lossy(buf)
            );
        }
    }

    #[test]
    fn oversized_request() {
        assert_eq!(
            parse_request(&[b' '; 33], 32),
            Err(HandshakeError::TooLarge { limit: 32 })
        );
        assert_eq!(parse_request(&[b' '; 32], 32), Ok(None));
        let mut long = b"{\"protocol\":\"json\",\"version\":1,\"pad\":\"xxxx\"}".to_vec();
        long.push(RECORD_SEPARATOR);
        assert_eq!(
            parse_request(&long, 32),
            Err(HandshakeError::TooLarge { limit: 32 })
        );
    }

    #[test]
    fn response_texts() {
        let malformed = HandshakeError::Malformed("Missing required property 'version'.".into());
        assert_eq!(
            malformed.response_text(false),
            "An unexpected error occurred during connection handshake."
        );
        assert_eq!(
            malformed.response_text(true),
            "An unexpected error occurred during connection handshake. InvalidDataException: Missing required property 'version'."
        );
        assert_eq!(
            HandshakeError::TooLarge { limit: 1 }.response_text(true),
            "Handshake was canceled."
        );
    }

    #[test]
    fn check_protocol_and_version() {
        assert_eq!(check(&request("json", 1), SUPPORTED), Ok(()));
        assert_eq!(check(&request("json", 2), SUPPORTED), Ok(()));
        assert_eq!(check(&request("json", 0), SUPPORTED), Ok(()));
        assert_eq!(check(&request("MessagePack", 1), SUPPORTED), Ok(()));
        assert_eq!(
            check(&request("xml", 1), SUPPORTED),
            Err("The protocol 'xml' is not supported.".to_owned())
        );
        assert_eq!(
            check(&request("messagepack", 1), &[("json", 2)]),
            Err("The protocol 'messagepack' is not supported.".to_owned())
        );
        assert_eq!(
            check(&request("Json", 3), SUPPORTED),
            Err("The server does not support version 3 of the 'Json' protocol.".to_owned())
        );
    }

    #[test]
    fn responses() {
        assert_eq!(&ok_response()[..], b"{}\x1e");
        let answer = error_response("The protocol 'x\"y' is not supported.");
        let (last, body) = answer.split_last().unwrap();
        assert_eq!(*last, RECORD_SEPARATOR);
        assert_eq!(
            serde_json::from_slice::<Value>(body).unwrap(),
            json!({"error": "The protocol 'x\"y' is not supported."})
        );
    }
}
