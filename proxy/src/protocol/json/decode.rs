//! Framing of the client's byte stream into JSON records.
//!
//! Transports hand over whatever they received (a WebSocket frame, a POST body), which
//! may hold several records or a fraction of one. The decoder keeps the unterminated
//! rest, enforces the size limit before buffering, and holds no memory once drained.

use bytes::BytesMut;

use super::{RECORD_SEPARATOR, record};
use crate::protocol::{HubMessage, ProtocolError};

/// Splits a byte stream into hub messages. Call [`next_message`](Decoder::next_message)
/// until it returns `Ok(None)` after every [`push`](Decoder::push).
#[derive(Debug, Clone)]
pub struct Decoder {
    buf: BytesMut,
    /// Length of the unterminated record at the end of `buf`.
    tail: usize,
    max_message_size: usize,
    /// Set once a record was too large: the stream cannot be resynchronised after that.
    overflowed: bool,
}

impl Decoder {
    /// A decoder rejecting records longer than `max_message_size` bytes.
    pub fn new(max_message_size: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            tail: 0,
            max_message_size,
            overflowed: false,
        }
    }

    /// Appends bytes from the transport.
    ///
    /// Fails with [`ProtocolError::MessageTooLarge`] as soon as the unterminated record
    /// exceeds the limit. Complete records before the offending one stay available to
    /// [`next_message`](Decoder::next_message); the offending bytes are not buffered and
    /// every later push fails the same way.
    pub fn push(&mut self, data: &[u8]) -> Result<(), ProtocolError> {
        let too_large = ProtocolError::MessageTooLarge {
            limit: self.max_message_size,
        };
        if self.overflowed {
            return Err(too_large);
        }
        let mut tail = self.tail;
        // Bytes of `data` up to and including its last separator seen so far.
        let mut complete = 0;
        let mut rest = data;
        while let Some(at) = rest.iter().position(|&b| b == RECORD_SEPARATOR) {
            if tail + at > self.max_message_size {
                return Err(self.overflow(&data[..complete], too_large));
            }
            tail = 0;
            complete += at + 1;
            rest = &rest[at + 1..];
        }
        tail += rest.len();
        if tail > self.max_message_size {
            return Err(self.overflow(&data[..complete], too_large));
        }
        if self.buf.is_empty() {
            // Sized to the data: an idle decoder then holds nothing and a busy one
            // gets one allocation per push.
            self.buf = BytesMut::from(data);
        } else {
            self.buf.extend_from_slice(data);
        }
        self.tail = tail;
        Ok(())
    }

    /// Keeps the complete records in `data` and drops the oversized one.
    fn overflow(&mut self, complete: &[u8], error: ProtocolError) -> ProtocolError {
        if complete.is_empty() {
            // The buffered tail is the start of the oversized record.
            let keep = self.buf.len() - self.tail;
            self.buf.truncate(keep);
        } else {
            self.buf.extend_from_slice(complete);
        }
        self.tail = 0;
        self.overflowed = true;
        error
    }

    /// The next complete message; `Ok(None)` when more bytes are needed.
    ///
    /// Records of an unknown type and records holding only whitespace are skipped. A
    /// malformed record is consumed, so the caller may go on after reporting it.
    pub fn next_message(&mut self) -> Result<Option<HubMessage>, ProtocolError> {
        loop {
            let complete = self.buf.len() - self.tail;
            let Some(end) = self.buf[..complete]
                .iter()
                .position(|&b| b == RECORD_SEPARATOR)
            else {
                return Ok(None);
            };
            let mut record = self.buf.split_to(end + 1).freeze();
            record.truncate(end);
            if self.buf.is_empty() {
                // Let go of the shared buffer; decoded payloads keep what they use.
                self.buf = BytesMut::new();
            }
            if record
                .iter()
                .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
            {
                continue;
            }
            if let Some(message) = record::parse(&record)? {
                return Ok(Some(message));
            }
        }
    }

    /// Bytes buffered and not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::protocol::{Invocation, Outcome};

    fn drain(decoder: &mut Decoder) -> Vec<HubMessage> {
        let mut out = Vec::new();
        while let Some(message) = decoder.next_message().expect("valid stream") {
            out.push(message);
        }
        out
    }

    fn send(target: &str, args: &'static str) -> HubMessage {
        HubMessage::Invocation(Invocation {
            invocation_id: None,
            target: target.into(),
            arguments: Bytes::from_static(args.as_bytes()),
            stream_ids: vec![],
        })
    }

    const STREAM: &[u8] = b"{\"type\":1,\"target\":\"A\",\"arguments\":[1]}\x1e\
        {\"type\":6}\x1e\
        {\"type\":3,\"invocationId\":\"x\",\"result\":\"\\u00e9\\u001e\"}\x1e\
        {\"type\":42,\"future\":true}\x1e\
        \x1e \r\n\t\x1e\
        {\"headers\":{\"a\":\"b\"},\"type\":8,\"sequenceId\":3}\x1e";

    fn stream_messages() -> Vec<HubMessage> {
        vec![
            send("A", "[1]"),
            HubMessage::Ping,
            HubMessage::Completion {
                invocation_id: "x".into(),
                outcome: Outcome::Value(Bytes::from_static(b"\"\\u00e9\\u001e\"")),
            },
            HubMessage::Ack { sequence_id: 3 },
        ]
    }

    #[test]
    fn several_records_in_one_push() {
        let mut decoder = Decoder::new(1024);
        decoder.push(STREAM).unwrap();
        assert_eq!(drain(&mut decoder), stream_messages());
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn split_at_every_byte_position() {
        for at in 0..=STREAM.len() {
            let mut decoder = Decoder::new(1024);
            decoder.push(&STREAM[..at]).unwrap();
            let mut got = drain(&mut decoder);
            decoder.push(&STREAM[at..]).unwrap();
            got.extend(drain(&mut decoder));
            assert_eq!(got, stream_messages(), "split at {at}");
            assert_eq!(decoder.buffered(), 0);
        }
    }

    #[test]
    fn byte_by_byte() {
        let mut decoder = Decoder::new(1024);
        let mut got = Vec::new();
        for byte in STREAM {
            decoder.push(std::slice::from_ref(byte)).unwrap();
            got.extend(drain(&mut decoder));
        }
        assert_eq!(got, stream_messages());
    }

    #[test]
    fn partial_record_waits_for_its_separator() {
        let mut decoder = Decoder::new(1024);
        decoder.push(b"{\"type\":6}").unwrap();
        assert_eq!(decoder.next_message(), Ok(None));
        assert_eq!(decoder.buffered(), 10);
        decoder.push(b"\x1e{\"ty").unwrap();
        assert_eq!(decoder.next_message(), Ok(Some(HubMessage::Ping)));
        assert_eq!(decoder.next_message(), Ok(None));
        assert_eq!(decoder.buffered(), 4);
    }

    #[test]
    fn malformed_record_is_reported_and_consumed() {
        let mut decoder = Decoder::new(1024);
        decoder
            .push(b"{\"type\":6}\x1e{not json}\x1e{\"type\":1}\x1e{\"type\":6}\x1e")
            .unwrap();
        assert_eq!(decoder.next_message(), Ok(Some(HubMessage::Ping)));
        assert!(matches!(
            decoder.next_message(),
            Err(ProtocolError::Malformed(text)) if text.starts_with("invalid JSON")
        ));
        assert_eq!(
            decoder.next_message(),
            Err(ProtocolError::Malformed(
                "missing required property 'target'".into()
            ))
        );
        assert_eq!(decoder.next_message(), Ok(Some(HubMessage::Ping)));
    }

    #[test]
    fn record_at_the_limit_is_accepted() {
        let record = b"{\"type\":6}";
        let mut decoder = Decoder::new(record.len());
        decoder.push(record).unwrap();
        decoder.push(b"\x1e").unwrap();
        decoder.push(b"{\"type\":6}\x1e").unwrap();
        assert_eq!(
            drain(&mut decoder),
            vec![HubMessage::Ping, HubMessage::Ping]
        );
    }

    #[test]
    fn oversized_record_in_one_push_is_rejected_without_buffering() {
        let mut decoder = Decoder::new(16);
        let err = decoder.push(&[b' '; 17]).unwrap_err();
        assert_eq!(err, ProtocolError::MessageTooLarge { limit: 16 });
        assert_eq!(decoder.buffered(), 0);
        // The stream is out of sync now: everything after fails too.
        assert_eq!(decoder.push(b"{\"type\":6}\x1e"), Err(err));
        assert_eq!(decoder.buffered(), 0);
        assert_eq!(decoder.next_message(), Ok(None));
    }

    #[test]
    fn oversized_record_growing_across_pushes_is_dropped() {
        let mut decoder = Decoder::new(16);
        decoder.push(b"{\"type\":6}\x1e{\"type\":").unwrap();
        assert_eq!(decoder.buffered(), 19);
        decoder.push(b"    ").unwrap();
        let err = decoder.push(b"     6}\x1e").unwrap_err();
        assert_eq!(err, ProtocolError::MessageTooLarge { limit: 16 });
        // Only the complete record is left; the oversized start was discarded.
        assert_eq!(decoder.buffered(), 11);
        assert_eq!(drain(&mut decoder), vec![HubMessage::Ping]);
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn records_before_an_oversized_one_in_the_same_push_survive() {
        let mut decoder = Decoder::new(16);
        decoder.push(b"{\"type\":").unwrap();
        let err = decoder
            .push(b"6}\x1e{\"type\":6}\x1e{\"type\":6,\"pad\":\"xxxxxxxx\"}\x1e")
            .unwrap_err();
        assert_eq!(err, ProtocolError::MessageTooLarge { limit: 16 });
        assert_eq!(decoder.buffered(), 22);
        assert_eq!(
            drain(&mut decoder),
            vec![HubMessage::Ping, HubMessage::Ping]
        );
    }

    #[test]
    fn drained_decoder_releases_its_buffer() {
        let mut decoder = Decoder::new(1024);
        assert_eq!(decoder.buf.capacity(), 0);
        decoder.push(STREAM).unwrap();
        let messages = drain(&mut decoder);
        assert_eq!(decoder.buf.capacity(), 0);
        // Payloads still refer to the received bytes.
        assert_eq!(messages, stream_messages());
    }

    /// xorshift64*: deterministic chunkings without a dependency.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
        }
    }

    #[test]
    fn any_chunking_yields_the_same_messages() {
        let mut rng = Rng(0x5eed_1234_abcd_0001);
        let records: Vec<(&[u8], Option<HubMessage>)> = vec![
            (b"{\"type\":6}", Some(HubMessage::Ping)),
            (
                b"{\"type\":1,\"target\":\"Echo\",\"arguments\":[\"\\u001e\",{}]}",
                Some(send("Echo", "[\"\\u001e\",{}]")),
            ),
            (
                b"{\"type\":2,\"invocationId\":\"s\",\"item\":[true]}",
                Some(HubMessage::StreamItem {
                    invocation_id: "s".into(),
                    item: Bytes::from_static(b"[true]"),
                }),
            ),
            (
                b"{\"invocationId\":\"4\",\"type\":3}",
                Some(HubMessage::Completion {
                    invocation_id: "4".into(),
                    outcome: Outcome::Void,
                }),
            ),
            (
                b"{\"type\":5,\"invocationId\":\"\\u0034\"}",
                Some(HubMessage::CancelInvocation {
                    invocation_id: "4".into(),
                }),
            ),
            (
                b"{\"type\":7,\"allowReconnect\":true}",
                Some(HubMessage::Close {
                    error: None,
                    allow_reconnect: true,
                }),
            ),
            (
                b"{\"type\":9,\"sequenceId\":12}",
                Some(HubMessage::Sequence { sequence_id: 12 }),
            ),
            (b"{\"type\":11}", None),
            (b"  ", None),
        ];
        for _ in 0..500 {
            let mut stream = Vec::new();
            let mut expected = Vec::new();
            for _ in 0..rng.below(20) {
                let (bytes, message) = &records[rng.below(records.len())];
                stream.extend_from_slice(bytes);
                stream.push(RECORD_SEPARATOR);
                expected.extend(message.clone());
            }
            let mut decoder = Decoder::new(64);
            let mut got = Vec::new();
            let mut rest = &stream[..];
            while !rest.is_empty() {
                let (chunk, after) = rest.split_at(1 + rng.below(rest.len().min(80)));
                decoder.push(chunk).unwrap();
                got.extend(drain(&mut decoder));
                rest = after;
            }
            assert_eq!(got, expected);
            assert_eq!(decoder.buffered(), 0);
        }
    }
}
