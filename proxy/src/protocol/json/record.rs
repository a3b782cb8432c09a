//! One JSON record (without its separator) to one hub message.
//!
//! Every property is captured as borrowed raw JSON first, so payloads (`arguments`,
//! `item`, `result`) become zero-copy slices of the received buffer and each field's
//! type can be checked with an error that names the field.

use bytes::Bytes;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::protocol::{HubMessage, Invocation, Outcome, ProtocolError};

/// The properties of a hub message; anything else (such as `headers`) is skipped.
#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(rename = "type", default, borrow, deserialize_with = "present")]
    kind: Option<&'a RawValue>,
    #[serde(rename = "invocationId", default, borrow, deserialize_with = "present")]
    invocation_id: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    target: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    arguments: Option<&'a RawValue>,
    #[serde(rename = "streamIds", default, borrow, deserialize_with = "present")]
    stream_ids: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    item: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    error: Option<&'a RawValue>,
    #[serde(
        rename = "allowReconnect",
        default,
        borrow,
        deserialize_with = "present"
    )]
    allow_reconnect: Option<&'a RawValue>,
    #[serde(rename = "sequenceId", default, borrow, deserialize_with = "present")]
    sequence_id: Option<&'a RawValue>,
}

/// `Some` whenever the property is present, even when its value is `null`: a Completion
/// with `"result": null` differs from one without `result`.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Decodes one record. `Ok(None)` for a message type this protocol does not know.
pub(super) fn parse(record: &Bytes) -> Result<Option<HubMessage>, ProtocolError> {
    // Serde would also read a struct from an array of its fields; hub messages are objects.
    if !starts_object(record) {
        return Err(malformed("expected a JSON object"));
    }
    let fields: Fields<'_> = serde_json::from_slice(record)
        .map_err(|e| ProtocolError::Malformed(format!("invalid JSON: {e}")))?;
    let kind = required(fields.kind, "type")?;
    let kind: i64 = kind
        .get()
        .parse()
        .map_err(|_| malformed("expected 'type' to be an integer"))?;
    let message = match kind {
        1 => HubMessage::Invocation(invocation(record, &fields, false)?),
        2 => HubMessage::StreamItem {
            invocation_id: string(
                required(fields.invocation_id, "invocationId")?,
                "invocationId",
            )?,
            item: payload(record, required(fields.item, "item")?),
        },
        3 => completion(record, &fields)?,
        4 => HubMessage::StreamInvocation(invocation(record, &fields, true)?),
        5 => HubMessage::CancelInvocation {
            invocation_id: string(
                required(fields.invocation_id, "invocationId")?,
                "invocationId",
            )?,
        },
        6 => HubMessage::Ping,
        7 => HubMessage::Close {
            error: optional_string(fields.error, "error")?,
            allow_reconnect: match fields.allow_reconnect {
                Some(raw) => serde_json::from_str::<Option<bool>>(raw.get())
                    .map_err(|_| malformed("expected 'allowReconnect' to be true or false"))?
                    .unwrap_or(false),
                None => false,
            },
        },
        8 => HubMessage::Ack {
            sequence_id: sequence_id(&fields)?,
        },
        9 => HubMessage::Sequence {
            sequence_id: sequence_id(&fields)?,
        },
        _ => return Ok(None),
    };
    Ok(Some(message))
}

fn invocation(
    record: &Bytes,
    fields: &Fields<'_>,
    streaming: bool,
) -> Result<Invocation, ProtocolError> {
    let invocation_id = if streaming {
        // A stream without an id could never be cancelled or completed.
        Some(string(
            required(fields.invocation_id, "invocationId")?,
            "invocationId",
        )?)
    } else {
        optional_string(fields.invocation_id, "invocationId")?
    };
    let target = string(required(fields.target, "target")?, "target")?;
    let arguments = required(fields.arguments, "arguments")?;
    if !arguments.get().starts_with('[') {
        return Err(malformed("expected 'arguments' to be an array"));
    }
    let stream_ids = match fields.stream_ids {
        Some(raw) => serde_json::from_str::<Option<Vec<String>>>(raw.get())
            .map_err(|_| malformed("expected 'streamIds' to be an array of strings"))?
            .unwrap_or_default(),
        None => Vec::new(),
    };
    Ok(Invocation {
        invocation_id,
        target,
        arguments: payload(record, arguments),
        stream_ids,
    })
}

fn completion(record: &Bytes, fields: &Fields<'_>) -> Result<HubMessage, ProtocolError> {
    let invocation_id = string(
        required(fields.invocation_id, "invocationId")?,
        "invocationId",
    )?;
    // Some clients write `"error": null` next to a result; only a real error text counts.
    let error = optional_string(fields.error, "error")?;
    let outcome = match (error, fields.result) {
        (Some(_), Some(_)) => {
            return Err(malformed("'error' and 'result' cannot both be present"));
        }
        (Some(error), None) => Outcome::Error(error),
        (None, Some(result)) => Outcome::Value(payload(record, result)),
        (None, None) => Outcome::Void,
    };
    Ok(HubMessage::Completion {
        invocation_id,
        outcome,
    })
}

fn sequence_id(fields: &Fields<'_>) -> Result<u64, ProtocolError> {
    required(fields.sequence_id, "sequenceId")?
        .get()
        .parse()
        .map_err(|_| malformed("expected 'sequenceId' to be a non-negative integer"))
}

/// The raw JSON of a property as a slice of the record, without copying.
fn payload(record: &Bytes, raw: &RawValue) -> Bytes {
    record.slice_ref(raw.get().as_bytes())
}

fn required<'a>(raw: Option<&'a RawValue>, name: &str) -> Result<&'a RawValue, ProtocolError> {
    raw.ok_or_else(|| ProtocolError::Malformed(format!("missing required property '{name}'")))
}

/// Decodes a JSON string, including its escapes.
fn string(raw: &RawValue, name: &str) -> Result<String, ProtocolError> {
    serde_json::from_str(raw.get())
        .map_err(|_| ProtocolError::Malformed(format!("expected '{name}' to be a string")))
}

/// Absent and `null` both mean "none".
fn optional_string(raw: Option<&RawValue>, name: &str) -> Result<Option<String>, ProtocolError> {
    match raw {
        Some(raw) => serde_json::from_str(raw.get()).map_err(|_| {
            ProtocolError::Malformed(format!("expected '{name}' to be a string or null"))
        }),
        None => Ok(None),
    }
}

/// Whether the first non-whitespace byte opens a JSON object.
pub(crate) fn starts_object(json: &[u8]) -> bool {
    json.iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .is_some_and(|&b| b == b'{')
}

fn malformed(what: &str) -> ProtocolError {
    ProtocolError::Malformed(what.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(json: &str) -> Result<Option<HubMessage>, ProtocolError> {
        parse(&Bytes::copy_from_slice(json.as_bytes()))
    }

    fn message(json: &str) -> HubMessage {
        decode(json).expect("valid").expect("known type")
    }

    fn malformed_text(json: &str) -> String {
        match decode(json) {
            Err(ProtocolError::Malformed(text)) => text,
            other => panic!("expected Malformed for {json}, got {other:?}"),
        }
    }

    #[test]
    fn invocation_in_any_property_order_with_headers() {
        let expected = HubMessage::Invocation(Invocation {
            invocation_id: Some("1".into()),
            target: "Send".into(),
            arguments: Bytes::from_static(br#"[ "a", {"b": [1, 2]} ]"#),
            stream_ids: vec![],
        });
        let json = [
            r#"{"type":1,"invocationId":"1","target":"Send","arguments":[ "a", {"b": [1, 2]} ]}"#,
            r#"{"arguments":[ "a", {"b": [1, 2]} ],"target":"Send","invocationId":"1","type":1}"#,
            r#"{"headers":{"Authorization":"Bearer x","k":"v"},"target":"Send","type":1,"invocationId":"1","arguments":[ "a", {"b": [1, 2]} ],"extra":[{"nested":true}]}"#,
            " \n{ \"type\" : 1 , \"invocationId\" : \"1\", \"target\": \"Send\",\r\n \"arguments\" :  [ \"a\", {\"b\": [1, 2]} ]  } \t",
        ];
        for json in json {
            assert_eq!(message(json), expected, "{json}");
        }
    }

    #[test]
    fn arguments_are_a_zero_copy_slice_of_the_record() {
        let record = Bytes::from_static(br#"{"type":1,"target":"T","arguments":[1,2,3]}"#);
        let Some(HubMessage::Invocation(inv)) = parse(&record).unwrap() else {
            panic!("not an invocation");
        };
        assert_eq!(&inv.arguments[..], b"[1,2,3]");
        let received = record.as_ptr_range();
        let arguments = inv.arguments.as_ptr_range();
        assert!(received.start <= arguments.start && arguments.end <= received.end);
    }

    #[test]
    fn invocation_id_absent_or_null_means_non_blocking() {
        for json in [
            r#"{"type":1,"target":"T","arguments":[]}"#,
            r#"{"type":1,"invocationId":null,"target":"T","arguments":[]}"#,
        ] {
            let HubMessage::Invocation(inv) = message(json) else {
                panic!("not an invocation");
            };
            assert_eq!(inv.invocation_id, None);
        }
    }

    #[test]
    fn stream_invocation_with_stream_ids() {
        let msg = message(
            r#"{"type":4,"invocationId":"9","target":"Counter","arguments":[10],"streamIds":["s1","s2"]}"#,
        );
        assert_eq!(
            msg,
            HubMessage::StreamInvocation(Invocation {
                invocation_id: Some("9".into()),
                target: "Counter".into(),
                arguments: Bytes::from_static(b"[10]"),
                stream_ids: vec!["s1".into(), "s2".into()],
            })
        );
        assert_eq!(
            malformed_text(r#"{"type":4,"target":"Counter","arguments":[]}"#),
            "missing required property 'invocationId'"
        );
    }

    #[test]
    fn escapes_are_decoded() {
        let HubMessage::Invocation(inv) = message(
            r#"{"type":1,"invocationId":"\u0031\"x","target":"S\u00e9nd\n\ud83d\ude00","arguments":["\u0041"]}"#,
        ) else {
            panic!("not an invocation");
        };
        assert_eq!(inv.invocation_id.as_deref(), Some("1\"x"));
        assert_eq!(inv.target, "Sénd\n\u{1f600}");
        // Payloads stay as the client wrote them.
        assert_eq!(&inv.arguments[..], br#"["\u0041"]"#);
        assert_eq!(
            message(r#"{"type":3,"invocationId":"1","error":"bad \u0022thing\u0022"}"#),
            HubMessage::Completion {
                invocation_id: "1".into(),
                outcome: Outcome::Error("bad \"thing\"".into()),
            }
        );
    }

    #[test]
    fn completion_outcomes() {
        let completion = |json| match message(json) {
            HubMessage::Completion {
                invocation_id,
                outcome,
            } => {
                assert_eq!(invocation_id, "5");
                outcome
            }
            other => panic!("not a completion: {other:?}"),
        };
        assert_eq!(
            completion(r#"{"type":3,"invocationId":"5"}"#),
            Outcome::Void
        );
        assert_eq!(
            completion(r#"{"type":3,"invocationId":"5","result":null}"#),
            Outcome::Value(Bytes::from_static(b"null"))
        );
        assert_eq!(
            completion(r#"{"type":3,"invocationId":"5","result":{"x":[1]}}"#),
            Outcome::Value(Bytes::from_static(br#"{"x":[1]}"#))
        );
        assert_eq!(
            completion(r#"{"type":3,"invocationId":"5","result":7,"error":null}"#),
            Outcome::Value(Bytes::from_static(b"7"))
        );
        assert_eq!(
            completion(r#"{"type":3,"invocationId":"5","error":"nope"}"#),
            Outcome::Error("nope".into())
        );
        assert_eq!(
            malformed_text(r#"{"type":3,"invocationId":"5","error":"e","result":1}"#),
            "'error' and 'result' cannot both be present"
        );
        assert_eq!(
            malformed_text(r#"{"type":3,"result":1}"#),
            "missing required property 'invocationId'"
        );
    }

    #[test]
    fn stream_item_cancel_ping_close_ack_sequence() {
        assert_eq!(
            message(r#"{"type":2,"invocationId":"s1","item":"x"}"#),
            HubMessage::StreamItem {
                invocation_id: "s1".into(),
                item: Bytes::from_static(b"\"x\""),
            }
        );
        assert_eq!(
            message(r#"{"type":2,"invocationId":"s1","item":null}"#),
            HubMessage::StreamItem {
                invocation_id: "s1".into(),
                item: Bytes::from_static(b"null"),
            }
        );
        assert_eq!(
            malformed_text(r#"{"type":2,"invocationId":"s1"}"#),
            "missing required property 'item'"
        );
        assert_eq!(
            message(r#"{"type":5,"invocationId":"3"}"#),
            HubMessage::CancelInvocation {
                invocation_id: "3".into()
            }
        );
        assert_eq!(message(r#"{"type":6}"#), HubMessage::Ping);
        assert_eq!(
            message(r#"{"type":7}"#),
            HubMessage::Close {
                error: None,
                allow_reconnect: false
            }
        );
        assert_eq!(
            message(r#"{"type":7,"error":"bye","allowReconnect":true}"#),
            HubMessage::Close {
                error: Some("bye".into()),
                allow_reconnect: true
            }
        );
        assert_eq!(
            message(r#"{"type":7,"error":null,"allowReconnect":null}"#),
            HubMessage::Close {
                error: None,
                allow_reconnect: false
            }
        );
        assert_eq!(
            message(r#"{"type":8,"sequenceId":18446744073709551615}"#),
            HubMessage::Ack {
                sequence_id: u64::MAX
            }
        );
        assert_eq!(
            message(r#"{"sequenceId":1,"type":9}"#),
            HubMessage::Sequence { sequence_id: 1 }
        );
    }

    #[test]
    fn unknown_types_are_not_messages() {
        for json in [
            r#"{"type":0}"#,
            r#"{"type":10,"whatever":[1]}"#,
            r#"{"type":-3}"#,
            r#"{"type":99999999999}"#,
        ] {
            assert_eq!(decode(json), Ok(None), "{json}");
        }
    }

    #[test]
    fn malformed_records_say_what_is_wrong() {
        let cases = [
            (
                r#"{"target":"T","arguments":[]}"#,
                "missing required property 'type'",
            ),
            (r#"{"type":"1"}"#, "expected 'type' to be an integer"),
            (r#"{"type":1.5}"#, "expected 'type' to be an integer"),
            (r#"{"type":null}"#, "expected 'type' to be an integer"),
            (
                r#"{"type":1,"arguments":[]}"#,
                "missing required property 'target'",
            ),
            (
                r#"{"type":1,"target":"T"}"#,
                "missing required property 'arguments'",
            ),
            (
                r#"{"type":1,"target":5,"arguments":[]}"#,
                "expected 'target' to be a string",
            ),
            (
                r#"{"type":1,"target":"T","arguments":{"a":1}}"#,
                "expected 'arguments' to be an array",
            ),
            (
                r#"{"type":1,"target":"T","arguments":"[]"}"#,
                "expected 'arguments' to be an array",
            ),
            (
                r#"{"type":1,"target":"T","arguments":null}"#,
                "expected 'arguments' to be an array",
            ),
            (
                r#"{"type":1,"invocationId":3,"target":"T","arguments":[]}"#,
                "expected 'invocationId' to be a string or null",
            ),
            (
                r#"{"type":1,"target":"T","arguments":[],"streamIds":[1]}"#,
                "expected 'streamIds' to be an array of strings",
            ),
            (
                r#"{"type":7,"allowReconnect":"yes"}"#,
                "expected 'allowReconnect' to be true or false",
            ),
            (r#"{"type":8}"#, "missing required property 'sequenceId'"),
            (
                r#"{"type":8,"sequenceId":-1}"#,
                "expected 'sequenceId' to be a non-negative integer",
            ),
        ];
        for (json, text) in cases {
            assert_eq!(malformed_text(json), text, "{json}");
        }
        for json in [
            "{",
            r#"{"type":1,}"#,
            r#"{"type":6} {"type":6}"#,
            r#"{"type":6,"type":6}"#,
        ] {
            assert!(malformed_text(json).starts_with("invalid JSON: "), "{json}");
        }
        for json in ["[1]", "null", "", "6", "\"{}\""] {
            assert_eq!(malformed_text(json), "expected a JSON object", "{json}");
        }
        let invalid_utf8 = parse(&Bytes::from_static(
            b"{\"type\":1,\"target\":\"\xff\",\"arguments\":[]}",
        ));
        assert!(matches!(invalid_utf8, Err(ProtocolError::Malformed(_))));
    }
}
