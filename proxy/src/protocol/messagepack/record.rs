//! One MessagePack record body to one hub message.
//!
//! A record is an array whose first element is the message type. Payloads (`arguments`,
//! `item`, result values) are located by skipping over them and returned as zero-copy
//! slices of the received buffer; headers are skipped the same way.

use bytes::Bytes;

use super::value::{Head, Invalid, Reader};
use crate::protocol::{HubMessage, Invocation, Outcome, ProtocolError};

/// Completion result kinds.
const RESULT_ERROR: u64 = 1;
const RESULT_VOID: u64 = 2;
const RESULT_VALUE: u64 = 3;

/// Decodes one record body. `Ok(None)` for a message type this protocol does not know.
pub(super) fn parse(body: &Bytes) -> Result<Option<HubMessage>, ProtocolError> {
    let mut fields = Fields::new(body)?;
    fields.advance();
    let kind = match fields.reader.head().map_err(invalid)? {
        Head::Uint(kind) => kind,
        // A negative type is no type this protocol knows.
        Head::Int(_) => return Ok(None),
        _ => return Err(malformed("expected the message type to be an integer")),
    };
    let message = match kind {
        1 => HubMessage::Invocation(invocation(&mut fields, false)?),
        2 => {
            fields.require(4)?;
            fields.headers()?;
            HubMessage::StreamItem {
                invocation_id: fields.string("invocationId")?,
                item: fields.raw()?,
            }
        }
        3 => completion(&mut fields)?,
        4 => HubMessage::StreamInvocation(invocation(&mut fields, true)?),
        5 => {
            fields.require(3)?;
            fields.headers()?;
            HubMessage::CancelInvocation {
                invocation_id: fields.string("invocationId")?,
            }
        }
        6 => HubMessage::Ping,
        7 => {
            fields.require(2)?;
            // Clients send two elements; the server's third one is optional for them.
            let error = fields.optional_string("error")?;
            let allow_reconnect = if fields.remaining() > 0 {
                fields.advance();
                match fields.reader.head().map_err(invalid)? {
                    Head::Bool(allow) => allow,
                    Head::Nil => false,
                    _ => return Err(malformed("expected 'allowReconnect' to be a boolean")),
                }
            } else {
                false
            };
            HubMessage::Close {
                error,
                allow_reconnect,
            }
        }
        8 => {
            fields.require(2)?;
            HubMessage::Ack {
                sequence_id: fields.uint("sequenceId")?,
            }
        }
        9 => {
            fields.require(2)?;
            HubMessage::Sequence {
                sequence_id: fields.uint("sequenceId")?,
            }
        }
        _ => return Ok(None),
    };
    fields.finish()?;
    Ok(Some(message))
}

fn invocation(fields: &mut Fields<'_>, streaming: bool) -> Result<Invocation, ProtocolError> {
    fields.require(5)?;
    fields.headers()?;
    let invocation_id = if streaming {
        // A stream without an id could never be cancelled or completed.
        Some(fields.string("invocationId")?)
    } else {
        fields.optional_string("invocationId")?
    };
    let target = fields.string("target")?;
    if !matches!(fields.reader.peek().map_err(invalid)?, Head::Array(_)) {
        return Err(malformed("expected 'arguments' to be an array"));
    }
    let arguments = fields.raw()?;
    let stream_ids = if fields.remaining() > 0 {
        fields.stream_ids()?
    } else {
        Vec::new()
    };
    Ok(Invocation {
        invocation_id,
        target,
        arguments,
        stream_ids,
    })
}

fn completion(fields: &mut Fields<'_>) -> Result<HubMessage, ProtocolError> {
    fields.require(4)?;
    fields.headers()?;
    let invocation_id = fields.string("invocationId")?;
    let outcome = match fields.uint("resultKind")? {
        RESULT_ERROR => {
            fields.require(5)?;
            Outcome::Error(fields.string("error")?)
        }
        RESULT_VOID => Outcome::Void,
        RESULT_VALUE => {
            fields.require(5)?;
            Outcome::Value(fields.raw()?)
        }
        other => {
            return Err(ProtocolError::Malformed(format!(
                "invalid completion result kind {other}"
            )));
        }
    };
    Ok(HubMessage::Completion {
        invocation_id,
        outcome,
    })
}

/// The elements of the message array, read in order.
struct Fields<'a> {
    body: &'a Bytes,
    reader: Reader<'a>,
    /// Elements in the array, the type included.
    count: usize,
    /// Elements read (or being read) so far, the type included.
    read: usize,
}

impl<'a> Fields<'a> {
    fn new(body: &'a Bytes) -> Result<Self, ProtocolError> {
        if body.is_empty() {
            return Err(malformed("record is empty"));
        }
        let mut reader = Reader::new(body);
        let count = match reader.head() {
            Ok(Head::Array(count)) if count > 0 => count,
            Ok(Head::Array(_)) => return Err(malformed("message array is empty")),
            _ => return Err(malformed("expected the message to be an array")),
        };
        Ok(Self {
            body,
            reader,
            count,
            read: 0,
        })
    }

    /// Elements not yet read.
    fn remaining(&self) -> usize {
        self.count.saturating_sub(self.read)
    }

    /// Fails unless the array has at least `min` elements.
    fn require(&self, min: usize) -> Result<(), ProtocolError> {
        if self.count < min {
            return Err(ProtocolError::Malformed(format!(
                "message has {} elements, expected at least {min}",
                self.count
            )));
        }
        Ok(())
    }

    /// Notes that one more element is read.
    fn advance(&mut self) {
        self.read += 1;
    }

    /// The headers map: required, and ignored (clients copy their HTTP headers into it).
    fn headers(&mut self) -> Result<(), ProtocolError> {
        self.advance();
        if !matches!(self.reader.peek().map_err(invalid)?, Head::Map(_)) {
            return Err(malformed("expected 'headers' to be a map"));
        }
        self.reader.skip_value().map_err(invalid)
    }

    fn string(&mut self, name: &str) -> Result<String, ProtocolError> {
        self.optional_string(name)?
            .ok_or_else(|| ProtocolError::Malformed(format!("expected '{name}' to be a string")))
    }

    /// A string, or nil for none.
    fn optional_string(&mut self, name: &str) -> Result<Option<String>, ProtocolError> {
        self.advance();
        let expected = || ProtocolError::Malformed(format!("expected '{name}' to be a string"));
        match self.reader.head().map_err(invalid)? {
            Head::Nil => Ok(None),
            Head::Str(len) => {
                let bytes = self.reader.take(len).map_err(invalid)?;
                let text = std::str::from_utf8(bytes).map_err(|_| {
                    ProtocolError::Malformed(format!("'{name}' is not valid UTF-8"))
                })?;
                Ok(Some(text.to_owned()))
            }
            _ => Err(expected()),
        }
    }

    fn uint(&mut self, name: &str) -> Result<u64, ProtocolError> {
        self.advance();
        match self.reader.head().map_err(invalid)? {
            Head::Uint(value) => Ok(value),
            _ => Err(ProtocolError::Malformed(format!(
                "expected '{name}' to be a non-negative integer"
            ))),
        }
    }

    /// The next element's bytes as a zero-copy slice of the record.
    fn raw(&mut self) -> Result<Bytes, ProtocolError> {
        self.advance();
        let raw = self.reader.raw_value().map_err(invalid)?;
        Ok(self.body.slice_ref(raw))
    }

    fn stream_ids(&mut self) -> Result<Vec<String>, ProtocolError> {
        self.advance();
        let expected = || malformed("expected 'streamIds' to be an array of strings");
        let count = match self.reader.head().map_err(invalid)? {
            Head::Nil => return Ok(Vec::new()),
            Head::Array(count) => count,
            _ => return Err(expected()),
        };
        // Bounded by the record size: every id takes at least one byte.
        let mut ids = Vec::with_capacity(count.min(self.body.len()));
        for _ in 0..count {
            let Head::Str(len) = self.reader.head().map_err(invalid)? else {
                return Err(expected());
            };
            let bytes = self.reader.take(len).map_err(invalid)?;
            let id = std::str::from_utf8(bytes).map_err(|_| expected())?;
            ids.push(id.to_owned());
        }
        Ok(ids)
    }

    /// Skips elements newer senders may add, and checks nothing follows the array.
    fn finish(mut self) -> Result<(), ProtocolError> {
        for _ in 0..self.remaining() {
            self.advance();
            self.reader.skip_value().map_err(invalid)?;
        }
        if !self.reader.is_at_end() {
            return Err(malformed("unexpected bytes after the message"));
        }
        Ok(())
    }
}

fn invalid(error: Invalid) -> ProtocolError {
    ProtocolError::Malformed(format!("invalid MessagePack: {}", error.0))
}

fn malformed(what: &str) -> ProtocolError {
    ProtocolError::Malformed(what.to_owned())
}

#[cfg(test)]
mod tests {
    use rmpv::Value;

    use super::*;

    fn body(value: &Value) -> Bytes {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, value).unwrap();
        Bytes::from(out)
    }

    fn array(items: Vec<Value>) -> Value {
        Value::Array(items)
    }

    fn headers() -> Value {
        Value::Map(vec![(
            Value::from("Authorization"),
            Value::from("Bearer secret"),
        )])
    }

    fn message(value: Value) -> HubMessage {
        parse(&body(&value)).expect("valid").expect("known type")
    }

    fn malformed_text(value: Value) -> String {
        malformed_bytes(&body(&value))
    }

    fn malformed_bytes(bytes: &[u8]) -> String {
        match parse(&Bytes::copy_from_slice(bytes)) {
            Err(ProtocolError::Malformed(text)) => text,
            other => panic!("expected Malformed for {bytes:02x?}, got {other:?}"),
        }
    }

    fn raw(value: &Value) -> Bytes {
        body(value)
    }

    #[test]
    fn invocation_from_clients_has_five_elements() {
        let args = array(vec![Value::from("a"), Value::Map(vec![])]);
        let msg = message(array(vec![
            1.into(),
            headers(),
            Value::Nil,
            "Send".into(),
            args.clone(),
        ]));
        assert_eq!(
            msg,
            HubMessage::Invocation(Invocation {
                invocation_id: None,
                target: "Send".into(),
                arguments: raw(&args),
                stream_ids: vec![],
            })
        );
    }

    #[test]
    fn invocation_with_id_stream_ids_and_extra_elements() {
        let args = array(vec![Value::from(10)]);
        let msg = message(array(vec![
            4.into(),
            Value::Map(vec![]),
            "9".into(),
            "Counter".into(),
            args.clone(),
            array(vec!["s1".into(), "s2".into()]),
            "added by a newer client".into(),
        ]));
        assert_eq!(
            msg,
            HubMessage::StreamInvocation(Invocation {
                invocation_id: Some("9".into()),
                target: "Counter".into(),
                arguments: raw(&args),
                stream_ids: vec!["s1".into(), "s2".into()],
            })
        );
        let HubMessage::Invocation(inv) = message(array(vec![
            1.into(),
            Value::Map(vec![]),
            "1".into(),
            "T".into(),
            array(vec![]),
            Value::Nil,
        ])) else {
            panic!("not an invocation");
        };
        assert_eq!(inv.invocation_id.as_deref(), Some("1"));
        assert!(inv.stream_ids.is_empty());
    }

    #[test]
    fn specification_example_with_headers() {
        let record =
            Bytes::from_static(b"\x96\x01\x82\xa1x\xa1y\xa1z\xa1z\xa3xyz\xa6method\x91\x2a\x90");
        assert_eq!(
            parse(&record),
            Ok(Some(HubMessage::Invocation(Invocation {
                invocation_id: Some("xyz".into()),
                target: "method".into(),
                arguments: Bytes::from_static(&[0x91, 0x2a]),
                stream_ids: vec![],
            })))
        );
    }

    #[test]
    fn payloads_are_zero_copy_slices_of_the_record() {
        let record = body(&array(vec![
            2.into(),
            Value::Map(vec![]),
            "s".into(),
            array(vec![Value::Binary(vec![1, 2, 3])]),
        ]));
        let Some(HubMessage::StreamItem { item, .. }) = parse(&record).unwrap() else {
            panic!("not a stream item");
        };
        assert_eq!(&item[..], &[0x91, 0xc4, 3, 1, 2, 3]);
        let received = record.as_ptr_range();
        let item = item.as_ptr_range();
        assert!(received.start <= item.start && item.end <= received.end);
    }

    #[test]
    fn completion_kinds() {
        let completion = |rest: Vec<Value>| {
            let mut items = vec![3.into(), headers(), "5".into()];
            items.extend(rest);
            match message(array(items)) {
                HubMessage::Completion {
                    invocation_id,
                    outcome,
                } => {
                    assert_eq!(invocation_id, "5");
                    outcome
                }
                other => panic!("not a completion: {other:?}"),
            }
        };
        assert_eq!(
            completion(vec![1.into(), "boom".into()]),
            Outcome::Error("boom".into())
        );
        assert_eq!(completion(vec![2.into()]), Outcome::Void);
        assert_eq!(
            completion(vec![3.into(), Value::Nil]),
            Outcome::Value(Bytes::from_static(&[0xc0]))
        );
        assert_eq!(
            completion(vec![3.into(), Value::from(300)]),
            Outcome::Value(Bytes::from_static(&[0xcd, 0x01, 0x2c]))
        );
    }

    #[test]
    fn stream_item_cancel_ping_close_ack_sequence() {
        assert_eq!(
            message(array(vec![
                2.into(),
                Value::Map(vec![]),
                "s1".into(),
                "x".into()
            ])),
            HubMessage::StreamItem {
                invocation_id: "s1".into(),
                item: Bytes::from_static(b"\xa1x"),
            }
        );
        assert_eq!(
            message(array(vec![5.into(), headers(), "3".into()])),
            HubMessage::CancelInvocation {
                invocation_id: "3".into()
            }
        );
        assert_eq!(message(array(vec![6.into()])), HubMessage::Ping);
        assert_eq!(
            message(array(vec![6.into(), "extra".into()])),
            HubMessage::Ping
        );
        assert_eq!(
            message(array(vec![7.into(), Value::Nil])),
            HubMessage::Close {
                error: None,
                allow_reconnect: false
            }
        );
        assert_eq!(
            message(array(vec![7.into(), "bye".into()])),
            HubMessage::Close {
                error: Some("bye".into()),
                allow_reconnect: false
            }
        );
        assert_eq!(
            message(array(vec![7.into(), Value::Nil, true.into()])),
            HubMessage::Close {
                error: None,
                allow_reconnect: true
            }
        );
        assert_eq!(
            message(array(vec![8.into(), Value::from(u64::MAX)])),
            HubMessage::Ack {
                sequence_id: u64::MAX
            }
        );
        assert_eq!(
            message(array(vec![9.into(), 1.into()])),
            HubMessage::Sequence { sequence_id: 1 }
        );
    }

    #[test]
    fn unknown_types_are_not_messages() {
        for value in [
            array(vec![0.into()]),
            array(vec![10.into(), "whatever".into()]),
            array(vec![Value::from(-3)]),
            array(vec![Value::from(u64::MAX), Value::Nil]),
        ] {
            assert_eq!(parse(&body(&value)), Ok(None), "{value}");
        }
    }

    #[test]
    fn malformed_records_say_what_is_wrong() {
        let empty = || Value::Map(vec![]);
        let cases = [
            (Value::from(6), "expected the message to be an array"),
            (array(vec![]), "message array is empty"),
            (
                array(vec!["1".into()]),
                "expected the message type to be an integer",
            ),
            (
                array(vec![1.into(), empty(), Value::Nil, "T".into()]),
                "message has 4 elements, expected at least 5",
            ),
            (
                array(vec![
                    1.into(),
                    Value::Nil,
                    Value::Nil,
                    "T".into(),
                    array(vec![]),
                ]),
                "expected 'headers' to be a map",
            ),
            (
                array(vec![1.into(), empty(), Value::Nil, 5.into(), array(vec![])]),
                "expected 'target' to be a string",
            ),
            (
                array(vec![1.into(), empty(), Value::Nil, "T".into(), empty()]),
                "expected 'arguments' to be an array",
            ),
            (
                array(vec![1.into(), empty(), 3.into(), "T".into(), array(vec![])]),
                "expected 'invocationId' to be a string",
            ),
            (
                array(vec![
                    4.into(),
                    empty(),
                    Value::Nil,
                    "T".into(),
                    array(vec![]),
                ]),
                "expected 'invocationId' to be a string",
            ),
            (
                array(vec![
                    1.into(),
                    empty(),
                    Value::Nil,
                    "T".into(),
                    array(vec![]),
                    array(vec![1.into()]),
                ]),
                "expected 'streamIds' to be an array of strings",
            ),
            (
                array(vec![2.into(), empty(), "s".into()]),
                "message has 3 elements, expected at least 4",
            ),
            (
                array(vec![3.into(), empty(), "1".into(), 4.into()]),
                "invalid completion result kind 4",
            ),
            (
                array(vec![3.into(), empty(), "1".into(), 1.into()]),
                "message has 4 elements, expected at least 5",
            ),
            (
                array(vec![3.into(), empty(), "1".into(), 3.into()]),
                "message has 4 elements, expected at least 5",
            ),
            (
                array(vec![3.into(), empty(), "1".into(), 1.into(), 2.into()]),
                "expected 'error' to be a string",
            ),
            (
                array(vec![3.into(), empty(), "1".into(), Value::from(-1)]),
                "expected 'resultKind' to be a non-negative integer",
            ),
            (
                array(vec![7.into()]),
                "message has 1 elements, expected at least 2",
            ),
            (
                array(vec![7.into(), Value::Nil, "yes".into()]),
                "expected 'allowReconnect' to be a boolean",
            ),
            (
                array(vec![8.into(), Value::from(-1)]),
                "expected 'sequenceId' to be a non-negative integer",
            ),
            (
                array(vec![9.into(), Value::F64(1.0)]),
                "expected 'sequenceId' to be a non-negative integer",
            ),
        ];
        for (value, text) in cases {
            assert_eq!(malformed_text(value.clone()), text, "{value}");
        }
        assert_eq!(malformed_bytes(&[]), "record is empty");
        assert_eq!(
            malformed_bytes(&[0x91, 0x06, 0x06]),
            "unexpected bytes after the message"
        );
        assert_eq!(
            malformed_bytes(&[0x92, 0x06]),
            "invalid MessagePack: value is truncated"
        );
        assert_eq!(
            malformed_bytes(&[0x92, 0x06, 0xc1]),
            "invalid MessagePack: 0xc1 is not a valid marker"
        );
        // Invalid UTF-8 in a target.
        assert_eq!(
            malformed_bytes(&[0x95, 0x01, 0x80, 0xc0, 0xa1, 0xff, 0x90]),
            "'target' is not valid UTF-8"
        );
        // Arguments nested beyond the depth limit.
        let mut deep = vec![0x95, 0x01, 0x80, 0xc0, 0xa1, b'T'];
        deep.extend(std::iter::repeat_n(0x91, 100));
        deep.push(0xc0);
        assert_eq!(
            malformed_bytes(&deep),
            "invalid MessagePack: values are nested too deeply"
        );
    }
}
