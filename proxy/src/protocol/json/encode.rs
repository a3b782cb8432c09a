//! Server-to-client JSON frames, written straight into one exactly sized buffer.
//!
//! Fan-out encodes each frame once and clones the `Bytes` per recipient, so these
//! functions compute the final length first and allocate once.

use bytes::Bytes;

use super::RECORD_SEPARATOR;

/// One piece of a frame.
pub(crate) enum Part<'a> {
    /// Bytes copied verbatim: JSON syntax, or JSON text produced elsewhere.
    Raw(&'a [u8]),
    /// A quoted, escaped JSON string.
    Str(&'a str),
    /// A JSON integer.
    Num(u64),
}

impl Part<'_> {
    fn len(&self) -> usize {
        match self {
            Part::Raw(raw) => raw.len(),
            Part::Str(s) => 2 + s.bytes().map(escaped_len).sum::<usize>(),
            Part::Num(n) => digits(*n),
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Part::Raw(raw) => out.extend_from_slice(raw),
            Part::Str(s) => write_str(s, out),
            Part::Num(n) => write_num(*n, out),
        }
    }
}

/// Joins `parts` and appends the record separator, in a single allocation.
pub(crate) fn frame(parts: &[Part<'_>]) -> Bytes {
    let len = parts.iter().map(Part::len).sum::<usize>() + 1;
    let mut out = Vec::with_capacity(len);
    for part in parts {
        part.write(&mut out);
    }
    out.push(RECORD_SEPARATOR);
    // Exact capacity lets `Bytes` take the buffer over without reallocating.
    debug_assert_eq!(out.len(), len);
    Bytes::from(out)
}

/// Type 1. With an id, the client must answer with a Completion (client results).
pub fn invocation(invocation_id: Option<&str>, target: &str, arguments: &[u8]) -> Bytes {
    use Part::{Raw, Str};
    match invocation_id {
        Some(id) => frame(&[
            Raw(b"{\"type\":1,\"invocationId\":"),
            Str(id),
            Raw(b",\"target\":"),
            Str(target),
            Raw(b",\"arguments\":"),
            Raw(arguments),
            Raw(b"}"),
        ]),
        None => frame(&[
            Raw(b"{\"type\":1,\"target\":"),
            Str(target),
            Raw(b",\"arguments\":"),
            Raw(arguments),
            Raw(b"}"),
        ]),
    }
}

/// Type 2: one item of a server-to-client stream.
pub fn stream_item(invocation_id: &str, item: &[u8]) -> Bytes {
    use Part::{Raw, Str};
    frame(&[
        Raw(b"{\"type\":2,\"invocationId\":"),
        Str(invocation_id),
        Raw(b",\"item\":"),
        Raw(item),
        Raw(b"}"),
    ])
}

/// Type 3 without `result`: a void method returned, or a stream ended.
pub fn completion_void(invocation_id: &str) -> Bytes {
    use Part::{Raw, Str};
    frame(&[
        Raw(b"{\"type\":3,\"invocationId\":"),
        Str(invocation_id),
        Raw(b"}"),
    ])
}

/// Type 3 with `result` (which may be `null`).
pub fn completion_value(invocation_id: &str, value: &[u8]) -> Bytes {
    use Part::{Raw, Str};
    frame(&[
        Raw(b"{\"type\":3,\"invocationId\":"),
        Str(invocation_id),
        Raw(b",\"result\":"),
        Raw(value),
        Raw(b"}"),
    ])
}

/// Type 3 with `error`.
pub fn completion_error(invocation_id: &str, error: &str) -> Bytes {
    use Part::{Raw, Str};
    frame(&[
        Raw(b"{\"type\":3,\"invocationId\":"),
        Str(invocation_id),
        Raw(b",\"error\":"),
        Str(error),
        Raw(b"}"),
    ])
}

/// Type 6: keep-alive.
pub fn ping() -> Bytes {
    Bytes::from_static(b"{\"type\":6}\x1e")
}

/// Type 7. `allowReconnect` is written only when true, as the reference server does.
pub fn close(error: Option<&str>, allow_reconnect: bool) -> Bytes {
    use Part::{Raw, Str};
    let reconnect = if allow_reconnect {
        Raw(b",\"allowReconnect\":true}")
    } else {
        Raw(b"}")
    };
    match error {
        Some(error) => frame(&[Raw(b"{\"type\":7,\"error\":"), Str(error), reconnect]),
        None => frame(&[Raw(b"{\"type\":7"), reconnect]),
    }
}

/// Type 8: the last sequence id received from the client.
pub fn ack(sequence_id: u64) -> Bytes {
    frame(&[
        Part::Raw(b"{\"type\":8,\"sequenceId\":"),
        Part::Num(sequence_id),
        Part::Raw(b"}"),
    ])
}

/// Type 9: the sequence id of the next message the server sends.
pub fn sequence(sequence_id: u64) -> Bytes {
    frame(&[
        Part::Raw(b"{\"type\":9,\"sequenceId\":"),
        Part::Num(sequence_id),
        Part::Raw(b"}"),
    ])
}

fn escaped_len(byte: u8) -> usize {
    match byte {
        b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
        0x00..=0x1f => 6,
        _ => 1,
    }
}

fn write_str(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    // Copy runs that need no escaping in one go.
    let mut run = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        let short = match byte {
            b'"' => b'"',
            b'\\' => b'\\',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0x08 => b'b',
            0x0c => b'f',
            0x00..=0x1f => 0,
            _ => continue,
        };
        out.extend_from_slice(&bytes[run..i]);
        run = i + 1;
        if short == 0 {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0xf)]);
        } else {
            out.push(b'\\');
            out.push(short);
        }
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

fn digits(mut n: u64) -> usize {
    let mut count = 1;
    while n >= 10 {
        n /= 10;
        count += 1;
    }
    count
}

fn write_num(n: u64, out: &mut Vec<u8>) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    let mut rest = n;
    loop {
        at -= 1;
        buf[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[at..]);
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    use super::*;

    /// Parses one frame, checking the terminator, and returns its JSON object.
    fn parse(frame: &Bytes) -> Map<String, Value> {
        let (last, body) = frame.split_last().expect("empty frame");
        assert_eq!(*last, RECORD_SEPARATOR, "frame must end with the separator");
        assert!(!body.contains(&RECORD_SEPARATOR), "separator inside frame");
        match serde_json::from_slice(body).expect("frame is not JSON") {
            Value::Object(map) => map,
            other => panic!("frame is not an object: {other}"),
        }
    }

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn invocation_with_and_without_id() {
        let with = invocation(Some("7"), "Send", br#"[1,"two",{"three":3}]"#);
        assert_eq!(
            parse(&with),
            object(
                json!({"type":1,"invocationId":"7","target":"Send","arguments":[1,"two",{"three":3}]})
            )
        );
        let without = invocation(None, "Send", b"[]");
        assert_eq!(
            parse(&without),
            object(json!({"type":1,"target":"Send","arguments":[]}))
        );
    }

    #[test]
    fn stream_item_and_completions() {
        assert_eq!(
            parse(&stream_item("s1", br#"{"a":[1,2]}"#)),
            object(json!({"type":2,"invocationId":"s1","item":{"a":[1,2]}}))
        );
        assert_eq!(
            parse(&completion_void("1")),
            object(json!({"type":3,"invocationId":"1"}))
        );
        assert_eq!(
            parse(&completion_value("1", b"null")),
            object(json!({"type":3,"invocationId":"1","result":null}))
        );
        assert_eq!(
            parse(&completion_value("1", b"42")),
            object(json!({"type":3,"invocationId":"1","result":42}))
        );
        assert_eq!(
            parse(&completion_error("1", "boom")),
            object(json!({"type":3,"invocationId":"1","error":"boom"}))
        );
    }

    #[test]
    fn ping_close_ack_sequence() {
        assert_eq!(parse(&ping()), object(json!({"type":6})));
        assert_eq!(parse(&close(None, false)), object(json!({"type":7})));
        assert_eq!(
            parse(&close(None, true)),
            object(json!({"type":7,"allowReconnect":true}))
        );
        assert_eq!(
            parse(&close(Some("Connection closed with an error."), false)),
            object(json!({"type":7,"error":"Connection closed with an error."}))
        );
        assert_eq!(
            parse(&close(Some("x"), true)),
            object(json!({"type":7,"error":"x","allowReconnect":true}))
        );
        for n in [0, 1, 9, 10, 99, 100, 12345, u64::MAX] {
            assert_eq!(parse(&ack(n)), object(json!({"type":8,"sequenceId":n})));
            assert_eq!(
                parse(&sequence(n)),
                object(json!({"type":9,"sequenceId":n}))
            );
        }
    }

    #[test]
    fn strings_are_escaped() {
        let nasty: String = (0u8..0x20).map(char::from).collect::<String>()
            + "quote\" backslash\\ slash/ é 日本 \u{1f600} \u{7f} \u{2028}";
        let frame = completion_error(&nasty, &nasty);
        let map = parse(&frame);
        assert_eq!(map["invocationId"], Value::String(nasty.clone()));
        assert_eq!(map["error"], Value::String(nasty.clone()));
        let frame = invocation(Some(&nasty), &nasty, b"[]");
        let map = parse(&frame);
        assert_eq!(map["target"], Value::String(nasty.clone()));
        let map = parse(&close(Some(&nasty), false));
        assert_eq!(map["error"], Value::String(nasty));
    }

    #[test]
    fn escapes_use_short_forms_where_json_has_them() {
        let frame = completion_error("\u{1}\"", "line\nbreak\ttab");
        assert_eq!(
            &frame[..],
            b"{\"type\":3,\"invocationId\":\"\\u0001\\\"\",\"error\":\"line\\nbreak\\ttab\"}\x1e"
        );
    }
}
