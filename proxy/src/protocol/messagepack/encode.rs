//! Server-to-client MessagePack frames, each written into one exactly sized buffer.
//!
//! Fan-out encodes each frame once and clones the `Bytes` per recipient, so these
//! functions compute the body length first, then write the length prefix and the body
//! with a single allocation.

use bytes::Bytes;

const NIL: u8 = 0xc0;
const FALSE: u8 = 0xc2;
const TRUE: u8 = 0xc3;
const EMPTY_MAP: u8 = 0x80;
const EMPTY_ARRAY: u8 = 0x90;

/// A fixarray marker for a message array of `n` (< 16) elements.
const fn array(n: u8) -> u8 {
    0x90 | n
}

/// One piece of a message body.
enum Part<'a> {
    /// Bytes copied verbatim: markers, or a MessagePack value produced elsewhere.
    Raw(&'a [u8]),
    /// A MessagePack string.
    Str(&'a str),
    /// A non-negative MessagePack integer, in its shortest form.
    Uint(u64),
}

impl Part<'_> {
    fn len(&self) -> usize {
        match self {
            Part::Raw(raw) => raw.len(),
            Part::Str(s) => str_header_len(s.len()) + s.len(),
            Part::Uint(n) => uint_len(*n),
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Part::Raw(raw) => out.extend_from_slice(raw),
            Part::Str(s) => {
                write_str_header(s.len(), out);
                out.extend_from_slice(s.as_bytes());
            }
            Part::Uint(n) => write_uint(*n, out),
        }
    }
}

/// Prefixes the joined `parts` with their length, in a single allocation.
fn frame(parts: &[Part<'_>]) -> Bytes {
    let body = parts.iter().map(Part::len).sum::<usize>();
    let len = prefix_len(body) + body;
    let mut out = Vec::with_capacity(len);
    write_prefix(body, &mut out);
    for part in parts {
        part.write(&mut out);
    }
    // Exact capacity lets `Bytes` take the buffer over without reallocating.
    debug_assert_eq!(out.len(), len);
    Bytes::from(out)
}

/// Type 1, always with all six elements (an empty `streamIds`): some clients drop
/// five-element invocations. With an id, the client must answer with a Completion.
pub fn invocation(invocation_id: Option<&str>, target: &str, arguments: &[u8]) -> Bytes {
    use Part::{Raw, Str};
    let head = [array(6), 1, EMPTY_MAP];
    match invocation_id {
        Some(id) => frame(&[
            Raw(&head),
            Str(id),
            Str(target),
            Raw(arguments),
            Raw(&[EMPTY_ARRAY]),
        ]),
        None => frame(&[
            Raw(&head),
            Raw(&[NIL]),
            Str(target),
            Raw(arguments),
            Raw(&[EMPTY_ARRAY]),
        ]),
    }
}

/// Type 2: one item of a server-to-client stream.
pub fn stream_item(invocation_id: &str, item: &[u8]) -> Bytes {
    use Part::{Raw, Str};
    frame(&[
        Raw(&[array(4), 2, EMPTY_MAP]),
        Str(invocation_id),
        Raw(item),
    ])
}

/// Type 3 with result kind 2: a void method returned, or a stream ended.
pub fn completion_void(invocation_id: &str) -> Bytes {
    use Part::{Raw, Str};
    frame(&[
        Raw(&[array(4), 3, EMPTY_MAP]),
        Str(invocation_id),
        Raw(&[2]),
    ])
}

/// Type 3 with result kind 3 and the result value (which may be nil).
pub fn completion_value(invocation_id: &str, value: &[u8]) -> Bytes {
    use Part::{Raw, Str};
    frame(&[
        Raw(&[array(5), 3, EMPTY_MAP]),
        Str(invocation_id),
        Raw(&[3]),
        Raw(value),
    ])
}

/// Type 3 with result kind 1 and the error text.
pub fn completion_error(invocation_id: &str, error: &str) -> Bytes {
    use Part::{Raw, Str};
    frame(&[
        Raw(&[array(5), 3, EMPTY_MAP]),
        Str(invocation_id),
        Raw(&[1]),
        Str(error),
    ])
}

/// Type 6: keep-alive.
pub fn ping() -> Bytes {
    const PING: [u8; 3] = [2, array(1), 6];
    Bytes::from_static(&PING)
}

/// Type 7 with all three elements, as the reference server writes it.
pub fn close(error: Option<&str>, allow_reconnect: bool) -> Bytes {
    use Part::{Raw, Str};
    let reconnect = [if allow_reconnect { TRUE } else { FALSE }];
    match error {
        Some(error) => frame(&[Raw(&[array(3), 7]), Str(error), Raw(&reconnect)]),
        None => frame(&[Raw(&[array(3), 7, NIL]), Raw(&reconnect)]),
    }
}

/// Type 8: the last sequence id received from the client.
pub fn ack(sequence_id: u64) -> Bytes {
    frame(&[Part::Raw(&[array(2), 8]), Part::Uint(sequence_id)])
}

/// Type 9: the sequence id of the next message the server sends.
pub fn sequence(sequence_id: u64) -> Bytes {
    frame(&[Part::Raw(&[array(2), 9]), Part::Uint(sequence_id)])
}

fn prefix_len(mut body: usize) -> usize {
    let mut len = 1;
    while body >= 0x80 {
        body >>= 7;
        len += 1;
    }
    len
}

fn write_prefix(mut body: usize, out: &mut Vec<u8>) {
    while body >= 0x80 {
        out.push((body as u8 & 0x7f) | 0x80);
        body >>= 7;
    }
    out.push(body as u8);
}

fn str_header_len(len: usize) -> usize {
    match len {
        0..32 => 1,
        32..0x100 => 2,
        0x100..0x1_0000 => 3,
        _ => 5,
    }
}

fn write_str_header(len: usize, out: &mut Vec<u8>) {
    match len {
        // The match arms bound `len`, so each narrowing is lossless.
        0..32 => out.push(0xa0 | len as u8),
        32..0x100 => out.extend_from_slice(&[0xd9, len as u8]),
        0x100..0x1_0000 => {
            out.push(0xda);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            // Strings are capped far below 4 GiB by the message size limits upstream.
            out.push(0xdb);
            out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
        }
    }
}

fn uint_len(n: u64) -> usize {
    match n {
        0..0x80 => 1,
        0x80..0x100 => 2,
        0x100..0x1_0000 => 3,
        0x1_0000..0x1_0000_0000 => 5,
        _ => 9,
    }
}

fn write_uint(n: u64, out: &mut Vec<u8>) {
    match n {
        // The match arms bound `n`, so each narrowing is lossless.
        0..0x80 => out.push(n as u8),
        0x80..0x100 => out.extend_from_slice(&[0xcc, n as u8]),
        0x100..0x1_0000 => {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..0x1_0000_0000 => {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        _ => {
            out.push(0xcf);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use rmpv::Value;

    use super::*;
    use crate::protocol::messagepack::Decoder;
    use crate::protocol::{HubMessage, Invocation, Outcome};

    /// Checks the prefix of one frame and returns the elements of its message array.
    fn parse(frame: &Bytes) -> Vec<Value> {
        let mut length = 0usize;
        let mut prefix = 0;
        for (i, &byte) in frame.iter().enumerate() {
            length |= usize::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                prefix = i + 1;
                break;
            }
        }
        assert!(prefix > 0, "no length prefix");
        assert_eq!(frame.len(), prefix + length, "prefix must cover the body");
        let mut body = &frame[prefix..];
        let value = rmpv::decode::read_value(&mut body).expect("body is not MessagePack");
        assert!(body.is_empty(), "bytes after the message array");
        match value {
            Value::Array(items) => items,
            other => panic!("body is not an array: {other}"),
        }
    }

    fn msgpack(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, value).unwrap();
        out
    }

    /// What the proxy's own decoder reads back.
    fn decoded(frame: &Bytes) -> HubMessage {
        let mut decoder = Decoder::new(usize::MAX);
        decoder.push(frame).unwrap();
        let message = decoder.next_message().unwrap().expect("a message");
        assert_eq!(decoder.next_message(), Ok(None));
        message
    }

    #[test]
    fn invocation_always_has_six_elements() {
        let args = Value::Array(vec![1.into(), "two".into(), Value::Map(vec![])]);
        let frame = invocation(Some("7"), "Send", &msgpack(&args));
        assert_eq!(
            parse(&frame),
            vec![
                1.into(),
                Value::Map(vec![]),
                "7".into(),
                "Send".into(),
                args.clone(),
                Value::Array(vec![]),
            ]
        );
        let frame = invocation(None, "Send", &msgpack(&args));
        assert_eq!(
            parse(&frame),
            vec![
                1.into(),
                Value::Map(vec![]),
                Value::Nil,
                "Send".into(),
                args.clone(),
                Value::Array(vec![]),
            ]
        );
        assert_eq!(
            decoded(&frame),
            HubMessage::Invocation(Invocation {
                invocation_id: None,
                target: "Send".into(),
                arguments: Bytes::from(msgpack(&args)),
                stream_ids: vec![],
            })
        );
    }

    #[test]
    fn stream_item_and_completions() {
        let item = msgpack(&Value::Map(vec![("a".into(), Value::Binary(vec![1, 2]))]));
        let frame = stream_item("s1", &item);
        assert_eq!(
            parse(&frame),
            vec![
                2.into(),
                Value::Map(vec![]),
                "s1".into(),
                Value::Map(vec![("a".into(), Value::Binary(vec![1, 2]))]),
            ]
        );
        assert_eq!(
            decoded(&frame),
            HubMessage::StreamItem {
                invocation_id: "s1".into(),
                item: Bytes::from(item),
            }
        );
        let frame = completion_void("1");
        assert_eq!(
            parse(&frame),
            vec![3.into(), Value::Map(vec![]), "1".into(), 2.into()]
        );
        assert_eq!(
            decoded(&frame),
            HubMessage::Completion {
                invocation_id: "1".into(),
                outcome: Outcome::Void,
            }
        );
        let frame = completion_value("1", &[0xc0]);
        assert_eq!(
            parse(&frame),
            vec![
                3.into(),
                Value::Map(vec![]),
                "1".into(),
                3.into(),
                Value::Nil
            ]
        );
        assert_eq!(
            decoded(&frame),
            HubMessage::Completion {
                invocation_id: "1".into(),
                outcome: Outcome::Value(Bytes::from_static(&[0xc0])),
            }
        );
        let frame = completion_error("1", "boom");
        assert_eq!(
            parse(&frame),
            vec![
                3.into(),
                Value::Map(vec![]),
                "1".into(),
                1.into(),
                "boom".into()
            ]
        );
        assert_eq!(
            decoded(&frame),
            HubMessage::Completion {
                invocation_id: "1".into(),
                outcome: Outcome::Error("boom".into()),
            }
        );
    }

    #[test]
    fn ping_close_ack_sequence() {
        assert_eq!(parse(&ping()), vec![Value::from(6)]);
        assert_eq!(decoded(&ping()), HubMessage::Ping);
        for (error, allow_reconnect) in [(None, false), (None, true), (Some("bye"), false)] {
            let frame = close(error, allow_reconnect);
            assert_eq!(
                parse(&frame),
                vec![
                    7.into(),
                    error.map_or(Value::Nil, Value::from),
                    allow_reconnect.into()
                ]
            );
            assert_eq!(
                decoded(&frame),
                HubMessage::Close {
                    error: error.map(str::to_owned),
                    allow_reconnect,
                }
            );
        }
        for n in [
            0,
            0x7f,
            0x80,
            0xff,
            0x100,
            0xffff,
            0x1_0000,
            0xffff_ffff,
            1 << 32,
            u64::MAX,
        ] {
            assert_eq!(parse(&ack(n)), vec![8.into(), n.into()]);
            assert_eq!(parse(&sequence(n)), vec![9.into(), n.into()]);
            assert_eq!(decoded(&ack(n)), HubMessage::Ack { sequence_id: n });
            assert_eq!(
                decoded(&sequence(n)),
                HubMessage::Sequence { sequence_id: n }
            );
        }
    }

    #[test]
    fn bytes_match_the_specification_examples() {
        let framed = |body: &[u8]| [&[body.len() as u8][..], body].concat();
        assert_eq!(
            &invocation(Some("xyz"), "method", &[0x91, 0x2a])[..],
            framed(b"\x96\x01\x80\xa3xyz\xa6method\x91\x2a\x90")
        );
        assert_eq!(
            &invocation(None, "method", &[0x91, 0x2a])[..],
            framed(b"\x96\x01\x80\xc0\xa6method\x91\x2a\x90")
        );
        assert_eq!(
            &stream_item("xyz", &[0x2a])[..],
            framed(b"\x94\x02\x80\xa3xyz\x2a")
        );
        assert_eq!(
            &completion_error("xyz", "Error")[..],
            framed(b"\x95\x03\x80\xa3xyz\x01\xa5Error")
        );
        assert_eq!(
            &completion_void("xyz")[..],
            framed(b"\x94\x03\x80\xa3xyz\x02")
        );
        assert_eq!(
            &completion_value("xyz", &[0x2a])[..],
            framed(b"\x95\x03\x80\xa3xyz\x03\x2a")
        );
        assert_eq!(&ping()[..], framed(b"\x91\x06"));
        assert_eq!(
            &close(Some("xyz"), true)[..],
            framed(b"\x93\x07\xa3xyz\xc3")
        );
        assert_eq!(&ack(36)[..], framed(b"\x92\x08\x24"));
        assert_eq!(&sequence(19)[..], framed(b"\x92\x09\x13"));
        // A body of 5248 bytes takes the two-byte prefix 0x80 0x29.
        let long = completion_error("", &"x".repeat(5248 - 8));
        assert_eq!(&long[..2], &[0x80, 0x29]);
        assert_eq!(long.len(), 2 + 5248);
    }

    #[test]
    fn strings_of_every_header_width_and_long_frames() {
        for len in [0, 31, 32, 255, 256, 0xffff, 0x1_0000, 0x30_0000] {
            let text = "é".repeat(len / 2) + &"x".repeat(len % 2);
            assert_eq!(text.len(), len);
            let frame = completion_error(&text, &text);
            assert_eq!(
                parse(&frame),
                vec![
                    3.into(),
                    Value::Map(vec![]),
                    text.as_str().into(),
                    1.into(),
                    text.as_str().into()
                ],
                "length {len}"
            );
        }
    }
}
