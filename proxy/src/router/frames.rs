//! Client frames built from app-server payloads.
//!
//! App servers send arguments, results and stream items in one encoding
//! (JSON or MessagePack). Each client speaks one hub protocol; when the two
//! differ, the payload is transcoded first. Every function here runs once per
//! protocol per message, never once per recipient.

use bytes::Bytes;
use switchboard_proto::{self as pb, invocation_result::Outcome};

use crate::connection::handle::Protocol;
use crate::connection::outbox::Frame;
use crate::protocol::transcode::{self, TranscodeError};
use crate::protocol::{json, messagepack};

/// Why a payload cannot be turned into a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("payload encoding {0} is not supported; use ENCODING_JSON or ENCODING_MESSAGEPACK")]
    Encoding(i32),
    #[error("arguments must be one encoded array")]
    NotAnArray,
    #[error(transparent)]
    Transcode(#[from] TranscodeError),
}

/// The payload's bytes in `protocol`'s encoding: shared when the encodings
/// match, transcoded otherwise.
pub fn data_for(protocol: Protocol, payload: &pb::Payload) -> Result<Bytes, FrameError> {
    match (pb::Encoding::try_from(payload.encoding), protocol) {
        (Ok(pb::Encoding::Json), Protocol::Json)
        | (Ok(pb::Encoding::Messagepack), Protocol::MessagePack) => Ok(payload.data.clone()),
        (Ok(pb::Encoding::Json), Protocol::MessagePack) => {
            Ok(transcode::json_to_messagepack(&payload.data)?)
        }
        (Ok(pb::Encoding::Messagepack), Protocol::Json) => {
            Ok(transcode::messagepack_to_json(&payload.data)?)
        }
        _ => Err(FrameError::Encoding(payload.encoding)),
    }
}

/// Checks that arguments are one array in their declared encoding.
pub fn check_arguments(payload: &pb::Payload) -> Result<(), FrameError> {
    let first = payload
        .data
        .iter()
        .copied()
        .find(|b| !b.is_ascii_whitespace());
    let is_array = match pb::Encoding::try_from(payload.encoding) {
        Ok(pb::Encoding::Json) => first == Some(b'['),
        // fixarray, array 16, array 32
        Ok(pb::Encoding::Messagepack) => {
            matches!(payload.data.first(), Some(0x90..=0x9f | 0xdc | 0xdd))
        }
        _ => return Err(FrameError::Encoding(payload.encoding)),
    };
    if is_array {
        Ok(())
    } else {
        Err(FrameError::NotAnArray)
    }
}

/// Wraps codec output for `protocol`: text frames for JSON, binary for MessagePack.
pub fn wrap(protocol: Protocol, bytes: Bytes) -> Frame {
    match protocol {
        Protocol::Json => Frame::text(bytes),
        Protocol::MessagePack => Frame::Binary(bytes),
    }
}

/// Runs the encoder of `protocol` and wraps its output.
fn build(
    protocol: Protocol,
    json: impl FnOnce() -> Bytes,
    messagepack: impl FnOnce() -> Bytes,
) -> Frame {
    match protocol {
        Protocol::Json => Frame::text(json()),
        Protocol::MessagePack => Frame::Binary(messagepack()),
    }
}

/// An Invocation of `target` (with an id when a result is awaited).
pub fn invocation(
    protocol: Protocol,
    invocation_id: Option<&str>,
    target: &str,
    arguments: &pb::Payload,
) -> Result<Frame, FrameError> {
    let args = data_for(protocol, arguments)?;
    Ok(build(
        protocol,
        || json::invocation(invocation_id, target, &args),
        || messagepack::invocation(invocation_id, target, &args),
    ))
}

/// One item of a server-to-client stream.
pub fn stream_item(
    protocol: Protocol,
    invocation_id: &str,
    item: &pb::Payload,
) -> Result<Frame, FrameError> {
    let item = data_for(protocol, item)?;
    Ok(build(
        protocol,
        || json::stream_item(invocation_id, &item),
        || messagepack::stream_item(invocation_id, &item),
    ))
}

/// The Completion for an app server's result. A value that cannot be
/// converted to the client's protocol completes with an error instead.
pub fn completion(protocol: Protocol, invocation_id: &str, outcome: Option<&Outcome>) -> Frame {
    match outcome {
        Some(Outcome::Value(v)) => match data_for(protocol, v) {
            Ok(value) => build(
                protocol,
                || json::completion_value(invocation_id, &value),
                || messagepack::completion_value(invocation_id, &value),
            ),
            Err(e) => {
                let text = format!("The app server's result cannot be sent to this client: {e}");
                completion_error(protocol, invocation_id, &text)
            }
        },
        Some(Outcome::Error(e)) => completion_error(protocol, invocation_id, e),
        Some(Outcome::Void(_)) | None => build(
            protocol,
            || json::completion_void(invocation_id),
            || messagepack::completion_void(invocation_id),
        ),
    }
}

/// A Completion carrying an error text.
pub fn completion_error(protocol: Protocol, invocation_id: &str, error: &str) -> Frame {
    build(
        protocol,
        || json::completion_error(invocation_id, error),
        || messagepack::completion_error(invocation_id, error),
    )
}

/// The hub Close message.
pub fn close(protocol: Protocol, error: Option<&str>, allow_reconnect: bool) -> Frame {
    build(
        protocol,
        || json::close(error, allow_reconnect),
        || messagepack::close(error, allow_reconnect),
    )
}

/// A keep-alive Ping.
pub fn ping(protocol: Protocol) -> Frame {
    build(protocol, json::ping, messagepack::ping)
}

/// A stateful-reconnect Ack of everything up to `sequence_id`.
pub fn ack(protocol: Protocol, sequence_id: u64) -> Frame {
    build(
        protocol,
        || json::ack(sequence_id),
        || messagepack::ack(sequence_id),
    )
}

/// A stateful-reconnect Sequence: replay starts at `sequence_id`.
pub fn sequence(protocol: Protocol, sequence_id: u64) -> Frame {
    build(
        protocol,
        || json::sequence(sequence_id),
        || messagepack::sequence(sequence_id),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(data: &'static str) -> pb::Payload {
        pb::Payload {
            encoding: pb::Encoding::Json as i32,
            data: Bytes::from_static(data.as_bytes()),
        }
    }

    #[test]
    fn json_arguments_reach_both_protocols() {
        let args = json("[1,\"a\"]");
        let Frame::Text(t) = invocation(Protocol::Json, None, "T", &args).unwrap() else {
            panic!("text")
        };
        assert_eq!(
            std::str::from_utf8(&t).unwrap(),
            "{\"type\":1,\"target\":\"T\",\"arguments\":[1,\"a\"]}\u{1e}"
        );
        let Frame::Binary(b) = invocation(Protocol::MessagePack, None, "T", &args).unwrap() else {
            panic!("binary")
        };
        // length prefix, then [1, {}, nil, "T", [1, "a"], []]
        assert_eq!(
            &b[1..],
            &[0x96, 1, 0x80, 0xc0, 0xa1, b'T', 0x92, 1, 0xa1, b'a', 0x90]
        );
    }

    #[test]
    fn messagepack_results_reach_json_clients() {
        let value = pb::Payload {
            encoding: pb::Encoding::Messagepack as i32,
            data: Bytes::from_static(&[0xa2, b'h', b'i']),
        };
        let Frame::Text(t) = completion(Protocol::Json, "1", Some(&Outcome::Value(value))) else {
            panic!("text")
        };
        assert_eq!(
            std::str::from_utf8(&t).unwrap(),
            "{\"type\":3,\"invocationId\":\"1\",\"result\":\"hi\"}\u{1e}"
        );
    }

    #[test]
    fn arguments_must_be_arrays() {
        assert_eq!(check_arguments(&json(" [1]")), Ok(()));
        assert_eq!(check_arguments(&json("{}")), Err(FrameError::NotAnArray));
        let mp = |d: &'static [u8]| pb::Payload {
            encoding: pb::Encoding::Messagepack as i32,
            data: Bytes::from_static(d),
        };
        assert_eq!(check_arguments(&mp(&[0x91, 1])), Ok(()));
        assert_eq!(check_arguments(&mp(&[0x01])), Err(FrameError::NotAnArray));
        let none = pb::Payload {
            encoding: 0,
            data: Bytes::new(),
        };
        assert_eq!(check_arguments(&none), Err(FrameError::Encoding(0)));
    }

    #[test]
    fn untranslatable_results_complete_with_an_error() {
        let bad = pb::Payload {
            encoding: pb::Encoding::Json as i32,
            data: Bytes::from_static(b"{oops"),
        };
        let Frame::Text(t) = completion(Protocol::Json, "1", Some(&Outcome::Value(json("{oops"))))
        else {
            panic!()
        };
        assert!(
            std::str::from_utf8(&t)
                .unwrap()
                .contains("\"result\":{oops"),
            "same encoding is passed through unchecked"
        );
        let Frame::Binary(b) = completion(Protocol::MessagePack, "1", Some(&Outcome::Value(bad)))
        else {
            panic!()
        };
        // [3, {}, "1", 1 (error), "..."]
        assert_eq!(b[6], 1, "error result kind");
    }
}
