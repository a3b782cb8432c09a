//! Property tests for the sans-IO hub protocol parsers: the JSON and MessagePack
//! decoders and the handshake reader get random, mutated and randomly chunked input.
//!
//! Checked for every input: no panic, buffering bounded by the size limit plus one push,
//! and the same results however the bytes are split. Valid streams must decode without
//! errors. Runs are deterministic: `SWITCHBOARD_FUZZ_CASES` (default 3000 per property)
//! sets the number of cases and `SWITCHBOARD_FUZZ_SEED` the starting seed; a failure
//! names the seed of its case.

use bytes::Bytes;
use serde_json::{Map, Value, json};
use switchboard_proxy::protocol::{
    HubMessage, ProtocolError, handshake, json as json_protocol, messagepack, transcode,
};

/// xorshift64*: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // Zero is the one state xorshift never leaves.
        Self(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: usize) -> usize {
        ((self.next() >> 16) % n as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    fn byte(&mut self) -> u8 {
        (self.next() >> 24) as u8
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `property` once per case, each with its own seed.
fn cases(property: impl Fn(&mut Rng, u64)) {
    let count = env_number("SWITCHBOARD_FUZZ_CASES", 3000);
    let first = env_number("SWITCHBOARD_FUZZ_SEED", 0x5eed_0000_0000_0001);
    for case in 0..count {
        let seed = first.wrapping_add(case.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        property(&mut Rng::new(seed), seed);
    }
}

fn random_string(rng: &mut Rng) -> String {
    const PIECES: &[&str] = &[
        "a",
        "Send",
        "é",
        "日本",
        "\u{1f600}",
        "\"",
        "\\",
        "\n",
        "\u{1}",
        "\u{1e}",
        " ",
        "{",
        "]",
    ];
    (0..rng.below(6)).map(|_| *rng.pick(PIECES)).collect()
}

fn random_json(rng: &mut Rng, depth: usize) -> Value {
    let leaf = depth >= 3 || rng.chance(2);
    match rng.below(if leaf { 6 } else { 8 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(2)),
        2 => json!(rng.next() >> rng.below(64)),
        3 => json!(-((rng.next() >> (1 + rng.below(63))) as i64)),
        4 => json!((rng.next() >> 11) as f64 / 1024.0),
        5 => Value::String(random_string(rng)),
        6 => Value::Array(
            (0..rng.below(4))
                .map(|_| random_json(rng, depth + 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..rng.below(4))
                .map(|_| (random_string(rng), random_json(rng, depth + 1)))
                .collect::<Map<_, _>>(),
        ),
    }
}

fn random_arguments(rng: &mut Rng) -> Value {
    Value::Array((0..rng.below(4)).map(|_| random_json(rng, 1)).collect())
}

fn id(rng: &mut Rng) -> String {
    if rng.chance(4) {
        random_string(rng)
    } else {
        rng.below(1000).to_string()
    }
}

/// One encoded record in either protocol, chosen at random among every message type.
trait Protocol {
    /// Bytes a length prefix may add to a record beyond the size limit.
    const PREFIX: usize;
    type Decoder;
    fn decoder(max: usize) -> Self::Decoder;
    fn push(decoder: &mut Self::Decoder, data: &[u8]) -> Result<(), ProtocolError>;
    fn next(decoder: &mut Self::Decoder) -> Result<Option<HubMessage>, ProtocolError>;
    fn buffered(decoder: &Self::Decoder) -> usize;
    fn record(rng: &mut Rng) -> Bytes;
}

struct Json;

impl Protocol for Json {
    const PREFIX: usize = 0;
    type Decoder = json_protocol::Decoder;

    fn decoder(max: usize) -> Self::Decoder {
        json_protocol::Decoder::new(max)
    }
    fn push(decoder: &mut Self::Decoder, data: &[u8]) -> Result<(), ProtocolError> {
        decoder.push(data)
    }
    fn next(decoder: &mut Self::Decoder) -> Result<Option<HubMessage>, ProtocolError> {
        decoder.next_message()
    }
    fn buffered(decoder: &Self::Decoder) -> usize {
        decoder.buffered()
    }

    fn record(rng: &mut Rng) -> Bytes {
        use json_protocol as j;
        let payload = |rng: &mut Rng| random_json(rng, 0).to_string();
        match rng.below(12) {
            0 => {
                let id = rng.chance(2).then(|| id(rng));
                let args = random_arguments(rng).to_string();
                j::invocation(id.as_deref(), &random_string(rng), args.as_bytes())
            }
            1 => j::stream_item(&id(rng), payload(rng).as_bytes()),
            2 => j::completion_void(&id(rng)),
            3 => j::completion_value(&id(rng), payload(rng).as_bytes()),
            4 => j::completion_error(&id(rng), &random_string(rng)),
            5 => j::ping(),
            6 => {
                let error = rng.chance(2).then(|| random_string(rng));
                j::close(error.as_deref(), rng.chance(2))
            }
            7 => j::ack(rng.next()),
            8 => j::sequence(rng.next()),
            9 => {
                let mut text = json!({
                    "type": 4,
                    "invocationId": id(rng),
                    "target": random_string(rng),
                    "arguments": random_arguments(rng),
                    "streamIds": [id(rng)],
                    "headers": {"Authorization": "Bearer x"},
                })
                .to_string();
                text.push('\x1e');
                Bytes::from(text)
            }
            10 => Bytes::from(format!(
                "{{\"type\":{},\"x\":{}}}\x1e",
                10 + rng.below(100),
                payload(rng)
            )),
            _ => Bytes::from(json!({"type": 5, "invocationId": id(rng)}).to_string() + "\x1e"),
        }
    }
}

struct MessagePack;

impl MessagePack {
    fn frame(body: &[u8]) -> Bytes {
        let mut out = Vec::new();
        let mut len = body.len();
        while len >= 0x80 {
            out.push((len as u8 & 0x7f) | 0x80);
            len >>= 7;
        }
        out.push(len as u8);
        out.extend_from_slice(body);
        Bytes::from(out)
    }

    fn value(json: &Value) -> Bytes {
        transcode::json_to_messagepack(json.to_string().as_bytes()).expect("valid JSON")
    }
}

impl Protocol for MessagePack {
    const PREFIX: usize = 5;
    type Decoder = messagepack::Decoder;

    fn decoder(max: usize) -> Self::Decoder {
        messagepack::Decoder::new(max)
    }
    fn push(decoder: &mut Self::Decoder, data: &[u8]) -> Result<(), ProtocolError> {
        decoder.push(data)
    }
    fn next(decoder: &mut Self::Decoder) -> Result<Option<HubMessage>, ProtocolError> {
        decoder.next_message()
    }
    fn buffered(decoder: &Self::Decoder) -> usize {
        decoder.buffered()
    }

    fn record(rng: &mut Rng) -> Bytes {
        use messagepack as m;
        let payload = |rng: &mut Rng| Self::value(&random_json(rng, 0));
        match rng.below(13) {
            0 => {
                let id = rng.chance(2).then(|| id(rng));
                let args = Self::value(&random_arguments(rng));
                m::invocation(id.as_deref(), &random_string(rng), &args)
            }
            1 => m::stream_item(&id(rng), &payload(rng)),
            2 => m::completion_void(&id(rng)),
            3 => m::completion_value(&id(rng), &payload(rng)),
            4 => m::completion_error(&id(rng), &random_string(rng)),
            5 => m::ping(),
            6 => {
                let error = rng.chance(2).then(|| random_string(rng));
                m::close(error.as_deref(), rng.chance(2))
            }
            7 => m::ack(rng.next()),
            8 => m::sequence(rng.next()),
            // What clients send: five-element invocations with headers, two-element closes.
            9 => Self::frame(&Self::value(&json!([
                1,
                {"Authorization": "Bearer x"},
                null,
                random_string(rng),
                random_arguments(rng),
            ]))),
            10 => Self::frame(&Self::value(&json!([7, null]))),
            11 => Self::frame(&Self::value(&json!([
                10 + rng.below(100),
                random_json(rng, 0)
            ]))),
            _ => Self::frame(&Self::value(&json!([5, {}, id(rng)]))),
        }
    }
}

/// What a connection observes: each decoded message or error, in order.
#[derive(Debug, PartialEq)]
enum Event {
    Message(HubMessage),
    BadRecord(ProtocolError),
    StreamFailed(ProtocolError),
}

/// Feeds `chunks` to a fresh decoder as a connection would, draining after every push,
/// and checks that buffering stays bounded.
fn run<P: Protocol>(max: usize, chunks: &[&[u8]], seed: u64) -> Vec<Event> {
    let mut decoder = P::decoder(max);
    let mut events = Vec::new();
    for chunk in chunks {
        if let Err(error) = P::push(&mut decoder, chunk) {
            // The stream is unusable now: take what came before, then stop.
            drain::<P>(&mut decoder, &mut events);
            assert_eq!(P::push(&mut decoder, b"\x1e"), Err(error.clone()));
            events.push(Event::StreamFailed(error));
            assert_eq!(P::buffered(&decoder), 0, "seed {seed:#x}");
            return events;
        }
        assert!(
            P::buffered(&decoder) <= max + P::PREFIX + chunk.len(),
            "seed {seed:#x}: {} buffered after a push of {}",
            P::buffered(&decoder),
            chunk.len()
        );
        drain::<P>(&mut decoder, &mut events);
        assert!(
            P::buffered(&decoder) <= max + P::PREFIX,
            "seed {seed:#x}: {} left buffered",
            P::buffered(&decoder)
        );
    }
    events
}

fn drain<P: Protocol>(decoder: &mut P::Decoder, events: &mut Vec<Event>) {
    loop {
        match P::next(decoder) {
            Ok(Some(message)) => events.push(Event::Message(message)),
            Ok(None) => return,
            Err(error) => events.push(Event::BadRecord(error)),
        }
    }
}

/// Splits `data` at random points, with empty chunks now and then.
fn chunks<'a>(rng: &mut Rng, data: &'a [u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    let widest = 1 + rng.below(64);
    while !rest.is_empty() {
        let at = rng.below(widest.min(rest.len()) + 1);
        let (chunk, tail) = rest.split_at(at);
        out.push(chunk);
        rest = tail;
    }
    out
}

fn mutate(rng: &mut Rng, data: &mut Vec<u8>) {
    const SPECIAL: &[u8] = &[
        0x00, 0x1e, 0x7f, 0x80, 0x91, 0xc0, 0xc1, 0xdd, 0xff, b'{', b'"',
    ];
    for _ in 0..1 + rng.below(4) {
        let len = data.len();
        match rng.below(7) {
            0 if len > 0 => data[rng.below(len)] ^= 1 << rng.below(8),
            1 if len > 0 => data[rng.below(len)] = rng.byte(),
            2 => {
                let at = rng.below(len + 1);
                let byte = if rng.chance(2) {
                    *rng.pick(SPECIAL)
                } else {
                    rng.byte()
                };
                data.insert(at, byte);
            }
            3 if len > 0 => {
                let from = rng.below(len);
                let to = from + rng.below(len - from + 1);
                data.drain(from..to);
            }
            4 => data.truncate(rng.below(len + 1)),
            5 if len > 0 => {
                let from = rng.below(len);
                let to = from + rng.below((len - from).min(32) + 1);
                let copy = data[from..to].to_vec();
                let at = rng.below(data.len() + 1);
                data.splice(at..at, copy);
            }
            _ => data.extend((0..rng.below(8)).map(|_| rng.byte())),
        }
    }
}

fn stream<P: Protocol>(rng: &mut Rng) -> Vec<u8> {
    (0..1 + rng.below(8)).flat_map(|_| P::record(rng)).collect()
}

fn valid_streams_decode_the_same_under_any_chunking<P: Protocol>() {
    cases(|rng, seed| {
        let data = stream::<P>(rng);
        let whole = run::<P>(1 << 20, &[&data], seed);
        assert!(
            whole.iter().all(|e| matches!(e, Event::Message(_))),
            "seed {seed:#x}: valid stream gave {whole:?}"
        );
        for _ in 0..4 {
            let split = chunks(rng, &data);
            assert_eq!(run::<P>(1 << 20, &split, seed), whole, "seed {seed:#x}");
        }
    });
}

fn mutated_streams_are_handled_the_same_under_any_chunking<P: Protocol>() {
    cases(|rng, seed| {
        let mut data = stream::<P>(rng);
        mutate(rng, &mut data);
        let max = *rng.pick(&[0, 8, 40, 200, 1 << 16]);
        let whole = run::<P>(max, &[&data], seed);
        for _ in 0..3 {
            let split = chunks(rng, &data);
            assert_eq!(run::<P>(max, &split, seed), whole, "seed {seed:#x}");
        }
    });
}

fn random_bytes_never_panic<P: Protocol>() {
    cases(|rng, seed| {
        let data: Vec<u8> = (0..rng.below(300)).map(|_| rng.byte()).collect();
        let max = *rng.pick(&[0, 16, 100, 1 << 16]);
        let split = chunks(rng, &data);
        run::<P>(max, &split, seed);
    });
}

#[test]
fn json_valid_streams_decode_the_same_under_any_chunking() {
    valid_streams_decode_the_same_under_any_chunking::<Json>();
}

#[test]
fn messagepack_valid_streams_decode_the_same_under_any_chunking() {
    valid_streams_decode_the_same_under_any_chunking::<MessagePack>();
}

#[test]
fn json_mutated_streams_are_handled_the_same_under_any_chunking() {
    mutated_streams_are_handled_the_same_under_any_chunking::<Json>();
}

#[test]
fn messagepack_mutated_streams_are_handled_the_same_under_any_chunking() {
    mutated_streams_are_handled_the_same_under_any_chunking::<MessagePack>();
}

#[test]
fn json_random_bytes_never_panic() {
    random_bytes_never_panic::<Json>();
}

#[test]
fn messagepack_random_bytes_never_panic() {
    random_bytes_never_panic::<MessagePack>();
}

/// A valid handshake request at random, with hub protocol bytes after it.
fn handshake_bytes(rng: &mut Rng) -> (Vec<u8>, usize, handshake::HandshakeRequest) {
    let protocol = rng.pick(&["json", "messagepack", "Json", "x"]).to_string();
    let version = rng.below(3) as u32;
    let mut object = Map::new();
    object.insert("protocol".into(), protocol.clone().into());
    object.insert("version".into(), version.into());
    if rng.chance(3) {
        object.insert("extra".into(), random_json(rng, 1));
    }
    let mut data = Value::Object(object).to_string().into_bytes();
    data.push(0x1e);
    let consumed = data.len();
    data.extend(MessagePack::record(rng));
    (
        data,
        consumed,
        handshake::HandshakeRequest { protocol, version },
    )
}

#[test]
fn handshake_is_read_the_same_at_every_arrival_point() {
    cases(|rng, seed| {
        let (data, consumed, request) = handshake_bytes(rng);
        // Transports call the parser on all bytes received so far.
        for end in 0..=data.len() {
            let got = handshake::parse_request(&data[..end], 1024);
            if end < consumed {
                assert_eq!(got, Ok(None), "seed {seed:#x}, end {end}");
            } else {
                assert_eq!(
                    got,
                    Ok(Some((request.clone(), consumed))),
                    "seed {seed:#x}, end {end}"
                );
            }
        }
    });
}

#[test]
fn handshake_survives_mutated_and_random_input() {
    cases(|rng, seed| {
        let mut data = if rng.chance(3) {
            (0..rng.below(200)).map(|_| rng.byte()).collect()
        } else {
            handshake_bytes(rng).0
        };
        mutate(rng, &mut data);
        let max = *rng.pick(&[0, 10, 1024]);
        let separator = data.iter().position(|&b| b == 0x1e);
        match handshake::parse_request(&data, max) {
            Ok(None) => {
                assert!(separator.is_none() && data.len() <= max, "seed {seed:#x}")
            }
            Ok(Some((_, consumed))) => {
                assert_eq!(Some(consumed - 1), separator, "seed {seed:#x}");
                assert!(consumed - 1 <= max, "seed {seed:#x}");
            }
            Err(handshake::HandshakeError::TooLarge { .. }) => {
                assert!(separator.unwrap_or(data.len()) > max, "seed {seed:#x}")
            }
            Err(handshake::HandshakeError::Malformed(_)) => {
                assert!(separator.is_some(), "seed {seed:#x}")
            }
        }
    });
}
