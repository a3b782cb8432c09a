//! Framing of the client's byte stream into length-prefixed MessagePack records.
//!
//! Each record is a VarInt length then that many bytes. The decoder reads the prefixes
//! as bytes arrive, so a record that announces more than the limit is refused before
//! any of its body is buffered, and it holds no memory once drained.

use bytes::BytesMut;

use super::record;
use crate::protocol::{HubMessage, ProtocolError};

/// A length prefix has at most 5 bytes (35 bits, of which the format allows 31).
const MAX_PREFIX_LEN: u32 = 5;

/// Where the reader stands in the record at the end of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Partial {
    /// Reading the length prefix: its value so far and how many bytes were read.
    Prefix { length: u64, read: u32 },
    /// Inside the body: bytes still to come.
    Body { remaining: usize },
}

const FRESH: Partial = Partial::Prefix { length: 0, read: 0 };

/// Splits a byte stream into hub messages. Call [`next_message`](Decoder::next_message)
/// until it returns `Ok(None)` after every [`push`](Decoder::push).
#[derive(Debug, Clone)]
pub struct Decoder {
    buf: BytesMut,
    /// Length of the incomplete record (prefix included) at the end of `buf`.
    tail: usize,
    partial: Partial,
    max_message_size: usize,
    /// Set once framing failed: the stream cannot be resynchronised after that.
    failed: Option<ProtocolError>,
}

impl Decoder {
    /// A decoder rejecting records whose body is longer than `max_message_size` bytes.
    pub fn new(max_message_size: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            tail: 0,
            partial: FRESH,
            max_message_size,
            failed: None,
        }
    }

    /// Appends bytes from the transport.
    ///
    /// Fails with [`ProtocolError::MessageTooLarge`] as soon as a length prefix announces
    /// more than the limit, and with [`ProtocolError::Malformed`] for a length prefix longer
    /// than 5 bytes or above 2^31 - 1. Complete records before the offending one stay
    /// available to [`next_message`](Decoder::next_message); the offending bytes are not
    /// buffered and every later push fails the same way.
    pub fn push(&mut self, data: &[u8]) -> Result<(), ProtocolError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let mut partial = self.partial;
        // Bytes of `data` up to the end of its last complete record.
        let mut complete = 0;
        let mut at = 0;
        loop {
            match partial {
                Partial::Prefix { length, read } => {
                    let Some(&byte) = data.get(at) else { break };
                    at += 1;
                    if read == MAX_PREFIX_LEN - 1 && byte > 0x07 {
                        let error = ProtocolError::Malformed(
                            "message length prefix is longer than 5 bytes or above 2 GiB".into(),
                        );
                        return Err(self.fail(&data[..complete], error));
                    }
                    let length = length | u64::from(byte & 0x7f) << (7 * read);
                    if byte & 0x80 != 0 {
                        partial = Partial::Prefix {
                            length,
                            read: read + 1,
                        };
                        continue;
                    }
                    let length = usize::try_from(length)
                        .ok()
                        .filter(|&length| length <= self.max_message_size);
                    let Some(length) = length else {
                        let error = ProtocolError::MessageTooLarge {
                            limit: self.max_message_size,
                        };
                        return Err(self.fail(&data[..complete], error));
                    };
                    partial = Partial::Body { remaining: length };
                }
                Partial::Body { remaining } => {
                    let take = remaining.min(data.len() - at);
                    at += take;
                    if take < remaining {
                        partial = Partial::Body {
                            remaining: remaining - take,
                        };
                        break;
                    }
                    complete = at;
                    partial = FRESH;
                }
            }
        }
        self.tail = if complete == 0 {
            self.tail + data.len()
        } else {
            data.len() - complete
        };
        self.partial = partial;
        if self.buf.is_empty() {
            // Sized to the data: an idle decoder then holds nothing and a busy one
            // gets one allocation per push.
            self.buf = BytesMut::from(data);
        } else {
            self.buf.extend_from_slice(data);
        }
        Ok(())
    }

    /// Keeps the complete records in `data`, drops the offending one, and stays failed.
    fn fail(&mut self, complete: &[u8], error: ProtocolError) -> ProtocolError {
        if complete.is_empty() {
            // The buffered tail is the start of the offending record.
            let keep = self.buf.len() - self.tail;
            self.buf.truncate(keep);
        } else {
            self.buf.extend_from_slice(complete);
        }
        self.tail = 0;
        self.partial = FRESH;
        self.failed = Some(error.clone());
        error
    }

    /// The next complete message; `Ok(None)` when more bytes are needed.
    ///
    /// Records of an unknown message type are skipped. A malformed record is consumed,
    /// so the caller may go on after reporting it.
    pub fn next_message(&mut self) -> Result<Option<HubMessage>, ProtocolError> {
        loop {
            if self.buf.len() == self.tail {
                return Ok(None);
            }
            // `push` checked this prefix, and the whole record is buffered.
            let (length, prefix) = read_prefix(&self.buf);
            let mut record = self.buf.split_to(prefix + length).freeze();
            if self.buf.is_empty() {
                // Let go of the shared buffer; decoded payloads keep what they use.
                self.buf = BytesMut::new();
            }
            let body = record.split_off(prefix);
            if let Some(message) = record::parse(&body)? {
                return Ok(Some(message));
            }
        }
    }

    /// Bytes buffered and not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

/// The body length and prefix length of a record known to start with a valid prefix.
fn read_prefix(buf: &[u8]) -> (usize, usize) {
    let mut length = 0usize;
    for (i, &byte) in buf.iter().enumerate().take(MAX_PREFIX_LEN as usize) {
        length |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return (length, i + 1);
        }
    }
    unreachable!("push only buffers complete records behind valid prefixes")
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use rmpv::Value;

    use super::*;
    use crate::protocol::{Invocation, Outcome};

    /// One framed record holding `value`.
    fn record(value: &Value) -> Vec<u8> {
        let mut body = Vec::new();
        rmpv::encode::write_value(&mut body, value).unwrap();
        let mut out = Vec::new();
        let mut len = body.len();
        while len >= 0x80 {
            out.push((len as u8 & 0x7f) | 0x80);
            len >>= 7;
        }
        out.push(len as u8);
        out.extend(body);
        out
    }

    fn drain(decoder: &mut Decoder) -> Vec<HubMessage> {
        let mut out = Vec::new();
        while let Some(message) = decoder.next_message().expect("valid stream") {
            out.push(message);
        }
        out
    }

    fn stream() -> Vec<u8> {
        let empty = || Value::Map(vec![]);
        [
            Value::Array(vec![
                1.into(),
                Value::Map(vec![("k".into(), "v".into())]),
                Value::Nil,
                "A".into(),
                Value::Array(vec![1.into()]),
            ]),
            Value::Array(vec![6.into()]),
            Value::Array(vec![
                3.into(),
                empty(),
                "x".into(),
                3.into(),
                "\u{e9}\u{1e}".into(),
            ]),
            Value::Array(vec![42.into(), "future".into()]),
            Value::Array(vec![8.into(), 3.into()]),
            Value::Array(vec![7.into(), Value::Nil]),
        ]
        .iter()
        .flat_map(record)
        .collect()
    }

    fn stream_messages() -> Vec<HubMessage> {
        vec![
            HubMessage::Invocation(Invocation {
                invocation_id: None,
                target: "A".into(),
                arguments: Bytes::from_static(&[0x91, 0x01]),
                stream_ids: vec![],
            }),
            HubMessage::Ping,
            HubMessage::Completion {
                invocation_id: "x".into(),
                outcome: Outcome::Value(Bytes::from_static(b"\xa3\xc3\xa9\x1e")),
            },
            HubMessage::Ack { sequence_id: 3 },
            HubMessage::Close {
                error: None,
                allow_reconnect: false,
            },
        ]
    }

    #[test]
    fn several_records_in_one_push() {
        let mut decoder = Decoder::new(1024);
        decoder.push(&stream()).unwrap();
        assert_eq!(drain(&mut decoder), stream_messages());
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn split_at_every_byte_position() {
        let stream = stream();
        for at in 0..=stream.len() {
            let mut decoder = Decoder::new(1024);
            decoder.push(&stream[..at]).unwrap();
            let mut got = drain(&mut decoder);
            decoder.push(&stream[at..]).unwrap();
            got.extend(drain(&mut decoder));
            assert_eq!(got, stream_messages(), "split at {at}");
            assert_eq!(decoder.buffered(), 0);
        }
    }

    #[test]
    fn byte_by_byte() {
        let mut decoder = Decoder::new(1024);
        let mut got = Vec::new();
        for byte in stream() {
            decoder.push(&[byte]).unwrap();
            got.extend(drain(&mut decoder));
        }
        assert_eq!(got, stream_messages());
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn partial_record_waits_for_its_body() {
        let mut decoder = Decoder::new(1024);
        decoder.push(&[2, 0x91]).unwrap();
        assert_eq!(decoder.next_message(), Ok(None));
        assert_eq!(decoder.buffered(), 2);
        decoder.push(&[6, 2]).unwrap();
        assert_eq!(decoder.next_message(), Ok(Some(HubMessage::Ping)));
        assert_eq!(decoder.next_message(), Ok(None));
        assert_eq!(decoder.buffered(), 1);
    }

    /// A Ping record padded with a binary element to a body of exactly `len` bytes.
    fn padded_ping(len: usize) -> Vec<u8> {
        let pad = |n: usize| Value::Array(vec![6.into(), Value::Binary(vec![7; n])]);
        // [6, bin] costs 2 bytes plus the bin header (2, 3 or 5 bytes) plus the data.
        let header = match len {
            0..0x104 => 2,
            0x104..0x1_0005 => 3,
            _ => 5,
        };
        let mut body = Vec::new();
        rmpv::encode::write_value(&mut body, &pad(len - 2 - header)).unwrap();
        assert_eq!(body.len(), len);
        record(&pad(len - 2 - header))
    }

    #[test]
    fn length_prefixes_of_one_to_four_bytes() {
        for (len, prefix) in [
            (4, 1),
            (0x7f, 1),
            (0x80, 2),
            (0x3fff, 2),
            (0x4000, 3),
            (0x1f_ffff, 3),
            (0x20_0000, 4),
        ] {
            let bytes = padded_ping(len);
            assert_eq!(bytes.len(), prefix + len, "length {len}");
            let mut decoder = Decoder::new(len);
            decoder.push(&bytes).unwrap();
            assert_eq!(drain(&mut decoder), vec![HubMessage::Ping], "length {len}");
            // One byte under the limit is too little.
            let mut decoder = Decoder::new(len - 1);
            assert_eq!(
                decoder.push(&bytes),
                Err(ProtocolError::MessageTooLarge { limit: len - 1 })
            );
        }
    }

    #[test]
    fn five_byte_and_overlong_prefixes() {
        // Non-minimal prefixes are accepted, up to five bytes.
        let mut decoder = Decoder::new(16);
        decoder
            .push(&[0x82, 0x80, 0x80, 0x80, 0x00, 0x91, 0x06])
            .unwrap();
        decoder.push(&[0x82, 0x00, 0x91, 0x06]).unwrap();
        assert_eq!(
            drain(&mut decoder),
            vec![HubMessage::Ping, HubMessage::Ping]
        );
        // The largest length the format allows is refused by the size limit, at once.
        let mut decoder = Decoder::new(16);
        assert_eq!(
            decoder.push(&[0xff, 0xff, 0xff, 0xff, 0x07]),
            Err(ProtocolError::MessageTooLarge { limit: 16 })
        );
        assert_eq!(decoder.buffered(), 0);
        // A fifth byte above 0x07 (over 2^31 - 1, or a sixth byte announced) is malformed.
        for fifth in [0x08, 0x0f, 0x80, 0xff] {
            let mut decoder = Decoder::new(usize::MAX);
            decoder.push(&[2, 0x91, 6, 0x80, 0x80]).unwrap();
            let err = decoder.push(&[0x80, 0x80, fifth]).unwrap_err();
            assert!(matches!(err, ProtocolError::Malformed(_)), "{fifth:#x}");
            assert_eq!(decoder.buffered(), 3);
            assert_eq!(decoder.push(&[2, 0x91, 6]), Err(err));
            assert_eq!(drain(&mut decoder), vec![HubMessage::Ping]);
            assert_eq!(decoder.buffered(), 0);
        }
    }

    #[test]
    fn oversized_record_is_rejected_before_its_body_arrives() {
        let mut decoder = Decoder::new(100);
        decoder.push(&[2, 0x91, 6]).unwrap();
        // A prefix announcing 1000 bytes fails with the prefix alone.
        decoder.push(&[0xe8]).unwrap();
        assert_eq!(decoder.buffered(), 4);
        assert_eq!(
            decoder.push(&[0x07]),
            Err(ProtocolError::MessageTooLarge { limit: 100 })
        );
        // The prefix start was dropped; the complete record survives.
        assert_eq!(decoder.buffered(), 3);
        assert_eq!(drain(&mut decoder), vec![HubMessage::Ping]);
        assert_eq!(
            decoder.push(&[2, 0x91, 6]),
            Err(ProtocolError::MessageTooLarge { limit: 100 })
        );
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn records_before_an_oversized_one_in_the_same_push_survive() {
        let mut decoder = Decoder::new(8);
        decoder.push(&[2, 0x91]).unwrap();
        let mut data = vec![6, 2, 0x91, 6];
        data.extend(padded_ping(9));
        assert_eq!(
            decoder.push(&data),
            Err(ProtocolError::MessageTooLarge { limit: 8 })
        );
        assert_eq!(decoder.buffered(), 6);
        assert_eq!(
            drain(&mut decoder),
            vec![HubMessage::Ping, HubMessage::Ping]
        );
    }

    #[test]
    fn malformed_and_empty_records_are_reported_and_consumed() {
        let mut decoder = Decoder::new(1024);
        decoder
            .push(&[2, 0x91, 6, 0, 1, 0xc1, 2, 0x91, 1, 2, 0x91, 6])
            .unwrap();
        assert_eq!(decoder.next_message(), Ok(Some(HubMessage::Ping)));
        assert_eq!(
            decoder.next_message(),
            Err(ProtocolError::Malformed("record is empty".into()))
        );
        assert!(matches!(
            decoder.next_message(),
            Err(ProtocolError::Malformed(_))
        ));
        assert_eq!(
            decoder.next_message(),
            Err(ProtocolError::Malformed(
                "message has 1 elements, expected at least 5".into()
            ))
        );
        assert_eq!(decoder.next_message(), Ok(Some(HubMessage::Ping)));
        assert_eq!(decoder.next_message(), Ok(None));
    }

    #[test]
    fn drained_decoder_releases_its_buffer() {
        let mut decoder = Decoder::new(1024);
        assert_eq!(decoder.buf.capacity(), 0);
        decoder.push(&stream()).unwrap();
        let messages = drain(&mut decoder);
        assert_eq!(decoder.buf.capacity(), 0);
        // Payloads still refer to the received bytes.
        assert_eq!(messages, stream_messages());
    }
}
