//! WebSocket framing (RFC 6455 §5), server side and sans-IO: decodes client
//! frames from bytes the caller read, writes the headers of server frames.
//!
//! Client frames must be masked; extensions are never negotiated, so the
//! reserved bits must be clear. Fragmented messages are reassembled here, so
//! the caller only sees whole messages and the control frames that need an
//! answer.

use thiserror::Error;

const CONTINUATION: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// Longest header a server frame needs: 2 bytes and a 64-bit length.
pub const MAX_HEADER: usize = 10;

/// Status codes of RFC 6455 §7.4.1.
pub const NORMAL: u16 = 1000;
pub const PROTOCOL_ERROR: u16 = 1002;
pub const INVALID_DATA: u16 = 1007;
pub const TOO_BIG: u16 = 1009;
pub const INTERNAL_ERROR: u16 = 1011;

/// Why a client's frames cannot be read any further. Each maps to the close
/// code the connection is failed with.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("websocket protocol error: {0}")]
    Protocol(&'static str),
    #[error("websocket message of {size} bytes exceeds the limit of {limit} bytes")]
    TooBig { size: u64, limit: usize },
    #[error("websocket text message is not valid UTF-8")]
    InvalidUtf8,
}

impl FrameError {
    pub fn close_code(&self) -> u16 {
        match self {
            Self::Protocol(_) => PROTOCOL_ERROR,
            Self::TooBig { .. } => TOO_BIG,
            Self::InvalidUtf8 => INVALID_DATA,
        }
    }
}

/// What a decoded frame means to the connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A whole text or binary message.
    Message(Vec<u8>),
    /// The client asks for a Pong with this payload.
    Ping(Vec<u8>),
    Pong,
    /// The client closes, with its status code when it gave one.
    Close(Option<u16>),
}

/// Decoding state between frames: a fragmented message being reassembled.
pub struct Decoder {
    /// Largest message (and so frame) accepted, in bytes.
    limit: usize,
    fragments: Option<Fragments>,
}

struct Fragments {
    text: bool,
    data: Vec<u8>,
}

impl Decoder {
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            fragments: None,
        }
    }

    /// Decodes the frame at the front of `input` (unmasking it in place).
    /// `Ok(None)` means the frame is not complete yet; otherwise the bytes it
    /// took and what it means, if anything yet (a fragment only adds to the
    /// message being reassembled).
    pub fn decode(
        &mut self,
        input: &mut [u8],
    ) -> Result<Option<(usize, Option<Event>)>, FrameError> {
        let Some(header) = Header::parse(input)? else {
            return Ok(None);
        };
        let reassembled = match (&self.fragments, header.opcode) {
            (Some(fragments), CONTINUATION) => fragments.data.len() as u64,
            _ => 0,
        };
        let size = header.len.saturating_add(reassembled);
        if size > self.limit as u64 {
            return Err(FrameError::TooBig {
                size,
                limit: self.limit,
            });
        }
        // Fits in usize: bounded by the limit above.
        let end = header.size + header.len as usize;
        let Some(frame) = input.get_mut(..end) else {
            return Ok(None);
        };
        let payload = &mut frame[header.size..];
        unmask(payload, header.mask);
        let event = self.frame(&header, payload)?;
        Ok(Some((end, event)))
    }

    fn frame(&mut self, header: &Header, payload: &[u8]) -> Result<Option<Event>, FrameError> {
        match header.opcode {
            TEXT | BINARY if self.fragments.is_some() => Err(FrameError::Protocol(
                "a new message started before the fragmented one ended",
            )),
            TEXT | BINARY if header.fin => {
                let text = header.opcode == TEXT;
                message(text, payload.to_vec()).map(Some)
            }
            TEXT | BINARY => {
                self.fragments = Some(Fragments {
                    text: header.opcode == TEXT,
                    data: payload.to_vec(),
                });
                Ok(None)
            }
            CONTINUATION => {
                let Some(fragments) = self.fragments.as_mut() else {
                    return Err(FrameError::Protocol("continuation frame without a message"));
                };
                fragments.data.extend_from_slice(payload);
                if !header.fin {
                    return Ok(None);
                }
                let Fragments { text, data } = self.fragments.take().expect("checked above");
                message(text, data).map(Some)
            }
            PING => Ok(Some(Event::Ping(payload.to_vec()))),
            PONG => Ok(Some(Event::Pong)),
            CLOSE => close_code(payload).map(|code| Some(Event::Close(code))),
            _ => Err(FrameError::Protocol("unknown opcode")),
        }
    }
}

fn message(text: bool, data: Vec<u8>) -> Result<Event, FrameError> {
    if text && std::str::from_utf8(&data).is_err() {
        return Err(FrameError::InvalidUtf8);
    }
    Ok(Event::Message(data))
}

/// The status code of a Close frame's payload (§5.5.1).
fn close_code(payload: &[u8]) -> Result<Option<u16>, FrameError> {
    match payload {
        [] => Ok(None),
        [_] => Err(FrameError::Protocol("close frame with a one-byte payload")),
        [hi, lo, reason @ ..] => {
            if std::str::from_utf8(reason).is_err() {
                return Err(FrameError::InvalidUtf8);
            }
            Ok(Some(u16::from_be_bytes([*hi, *lo])))
        }
    }
}

struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    /// Header length in bytes.
    size: usize,
    /// Payload length.
    len: u64,
}

impl Header {
    fn parse(input: &[u8]) -> Result<Option<Self>, FrameError> {
        let [b0, b1, rest @ ..] = input else {
            return Ok(None);
        };
        if b0 & 0x70 != 0 {
            return Err(FrameError::Protocol(
                "reserved bits set without an extension",
            ));
        }
        if b1 & 0x80 == 0 {
            return Err(FrameError::Protocol("client frame not masked"));
        }
        let (fin, opcode) = (b0 & 0x80 != 0, b0 & 0x0F);
        let (len, extended) = match b1 & 0x7F {
            126 => match rest {
                [a, b, ..] => (u64::from(u16::from_be_bytes([*a, *b])), 2),
                _ => return Ok(None),
            },
            127 => match rest.get(..8) {
                Some(bytes) => {
                    let len = u64::from_be_bytes(bytes.try_into().expect("eight bytes"));
                    if len >> 63 != 0 {
                        return Err(FrameError::Protocol("payload length with the top bit set"));
                    }
                    (len, 8)
                }
                None => return Ok(None),
            },
            short => (u64::from(short), 0),
        };
        if opcode & 0x8 != 0 && (!fin || len > 125) {
            return Err(FrameError::Protocol(
                "control frames must be whole and at most 125 bytes",
            ));
        }
        let Some(mask) = rest.get(extended..extended + 4) else {
            return Ok(None);
        };
        Ok(Some(Self {
            fin,
            opcode,
            mask: mask.try_into().expect("four bytes"),
            size: 2 + extended + 4,
            len,
        }))
    }
}

fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = payload.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let masked = u32::from_ne_bytes(chunk.try_into().expect("four bytes")) ^ word;
        chunk.copy_from_slice(&masked.to_ne_bytes());
    }
    for (byte, key) in chunks.into_remainder().iter_mut().zip(mask) {
        *byte ^= key;
    }
}

/// Writes the header of an unmasked, final server frame carrying `len`
/// bytes; returns its length.
pub fn header(opcode: u8, len: usize, out: &mut [u8; MAX_HEADER]) -> usize {
    out[0] = 0x80 | opcode;
    if len < 126 {
        out[1] = len as u8;
        2
    } else if let Ok(short) = u16::try_from(len) {
        out[1] = 126;
        out[2..4].copy_from_slice(&short.to_be_bytes());
        4
    } else {
        out[1] = 127;
        out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
        10
    }
}

/// A whole server control frame (Ping, Pong or Close payload of at most 125
/// bytes), appended to `out`.
pub fn control(opcode: u8, payload: &[u8], out: &mut Vec<u8>) {
    let payload = &payload[..payload.len().min(125)];
    let mut head = [0; MAX_HEADER];
    let size = header(opcode, payload.len(), &mut head);
    out.extend_from_slice(&head[..size]);
    out.extend_from_slice(payload);
}

/// A Close frame with a status code and a short reason, appended to `out`.
pub fn close(code: u16, reason: &str, out: &mut Vec<u8>) {
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(reason.as_bytes());
    control(CLOSE, &payload, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame as a browser would send it.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut out = vec![(u8::from(fin) << 7) | opcode];
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        out
    }

    fn decode_all(decoder: &mut Decoder, mut input: Vec<u8>) -> Result<Vec<Event>, FrameError> {
        let mut events = Vec::new();
        let mut at = 0;
        while at < input.len() {
            let (used, event) = decoder.decode(&mut input[at..])?.expect("a whole frame");
            at += used;
            events.extend(event);
        }
        Ok(events)
    }

    #[test]
    fn decodes_masked_messages_of_every_length_form() {
        for len in [0, 5, 125, 126, 1000, 65_535, 65_536, 100_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut decoder = Decoder::new(1 << 20);
            let events = decode_all(&mut decoder, client_frame(true, BINARY, &payload)).unwrap();
            assert_eq!(events, vec![Event::Message(payload)], "length {len}");
        }
    }

    #[test]
    fn waits_for_the_whole_frame_at_every_split() {
        let frame = client_frame(true, TEXT, "{\"type\":6}\u{1e}".as_bytes());
        for cut in 0..frame.len() {
            let mut decoder = Decoder::new(1024);
            let mut part = frame[..cut].to_vec();
            assert_eq!(decoder.decode(&mut part), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn reassembles_fragments_with_control_frames_between() {
        let mut input = client_frame(false, TEXT, b"hel");
        input.extend(client_frame(true, PING, b"p"));
        input.extend(client_frame(false, CONTINUATION, b"lo "));
        input.extend(client_frame(true, CONTINUATION, "w\u{f6}rld".as_bytes()));
        let events = decode_all(&mut Decoder::new(1024), input).unwrap();
        assert_eq!(
            events,
            vec![
                Event::Ping(b"p".to_vec()),
                Event::Message("hello w\u{f6}rld".as_bytes().to_vec())
            ]
        );
    }

    #[test]
    fn refuses_what_the_rfc_forbids_with_the_right_code() {
        let unmasked = vec![0x81, 0x01, b'x'];
        let reserved = {
            let mut f = client_frame(true, TEXT, b"x");
            f[0] |= 0x40;
            f
        };
        let cases = [
            (unmasked, PROTOCOL_ERROR),
            (reserved, PROTOCOL_ERROR),
            (client_frame(true, 0x3, b""), PROTOCOL_ERROR),
            (client_frame(false, PING, b""), PROTOCOL_ERROR),
            (client_frame(true, PING, &[0; 126]), PROTOCOL_ERROR),
            (client_frame(true, CONTINUATION, b"x"), PROTOCOL_ERROR),
            (client_frame(true, CLOSE, &[3]), PROTOCOL_ERROR),
            (client_frame(true, TEXT, &[0xff, 0xfe]), INVALID_DATA),
            (client_frame(true, BINARY, &[0; 2000]), TOO_BIG),
        ];
        for (input, code) in cases {
            let error = decode_all(&mut Decoder::new(1024), input).unwrap_err();
            assert_eq!(error.close_code(), code, "{error}");
        }
        let mut started = client_frame(false, TEXT, b"a");
        started.extend(client_frame(true, TEXT, b"b"));
        let error = decode_all(&mut Decoder::new(1024), started).unwrap_err();
        assert_eq!(error.close_code(), PROTOCOL_ERROR);
    }

    #[test]
    fn a_huge_length_is_refused_before_its_payload_arrives() {
        let mut header = vec![0x82, 0x80 | 127];
        header.extend_from_slice(&(u64::MAX >> 1).to_be_bytes());
        header.extend_from_slice(&[1, 2, 3, 4]);
        let error = Decoder::new(1024).decode(&mut header).unwrap_err();
        assert_eq!(error.close_code(), TOO_BIG);
        // Reassembly counts toward the limit too.
        let mut input = client_frame(false, BINARY, &[0; 600]);
        input.extend(client_frame(true, CONTINUATION, &[0; 600]));
        let error = decode_all(&mut Decoder::new(1024), input).unwrap_err();
        assert_eq!(error.close_code(), TOO_BIG);
    }

    #[test]
    fn close_frames_carry_their_code() {
        let mut payload = 1001u16.to_be_bytes().to_vec();
        payload.extend_from_slice(b"going away");
        let events = decode_all(&mut Decoder::new(1024), client_frame(true, CLOSE, &payload));
        assert_eq!(events.unwrap(), vec![Event::Close(Some(1001))]);
        let events = decode_all(&mut Decoder::new(1024), client_frame(true, CLOSE, b""));
        assert_eq!(events.unwrap(), vec![Event::Close(None)]);
    }

    #[test]
    fn arbitrary_input_is_decoded_or_refused_never_overrun() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(6455);
        for _ in 0..20_000 {
            let len = rng.random_range(0..48);
            let mut input: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            // Mostly masked, so that decoding gets past the first check.
            if let Some(b1) = input.get_mut(1) {
                *b1 |= 0x80;
            }
            let mut decoder = Decoder::new(64);
            let mut at = 0;
            while at < input.len() {
                match decoder.decode(&mut input[at..]) {
                    Ok(Some((used, _))) => {
                        assert!(used > 0 && at + used <= input.len());
                        at += used;
                    }
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }

    #[test]
    fn server_headers_use_the_shortest_length_form() {
        let mut out = [0; MAX_HEADER];
        assert_eq!(header(TEXT, 5, &mut out), 2);
        assert_eq!(out[..2], [0x81, 5]);
        assert_eq!(header(BINARY, 300, &mut out), 4);
        assert_eq!(out[..4], [0x82, 126, 1, 44]);
        assert_eq!(header(BINARY, 70_000, &mut out), 10);
        assert_eq!(out[..10], [0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
        let mut close_frame = Vec::new();
        close(NORMAL, "bye", &mut close_frame);
        assert_eq!(close_frame, [0x88, 5, 0x03, 0xe8, b'b', b'y', b'e']);
    }
}
