//! The SignalR hub protocols as the load generator needs them, without IO:
//! the handshake, pings, invocations out, and `Bench` messages, completions,
//! pings and closes in, for JSON (text records ending in 0x1E) and
//! MessagePack (binary, each message prefixed by its varint length).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use rmpv::{Value as Pack, ValueRef as PackRef};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

/// Ends every JSON record and the handshake.
const SEPARATOR: u8 = 0x1e;

/// A hub protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// `json`: text frames.
    Json,
    /// `messagepack`: binary frames.
    Messagepack,
}

impl FromStr for Protocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Ok(Self::Json),
            "messagepack" | "msgpack" => Ok(Self::Messagepack),
            _ => Err(format!("unknown protocol '{s}': use json or messagepack")),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Json => "json",
            Self::Messagepack => "messagepack",
        })
    }
}

/// A frame to send: text for JSON, binary for MessagePack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
}

/// What the server sent that the generator cares about.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// An invocation of `Bench` with `[stream, seq, sentMicros, ...]`.
    Bench {
        /// The publish stream.
        stream: u64,
        /// Sequence number within the stream.
        seq: u64,
        /// Wall-clock send time, microseconds since the Unix epoch.
        sent_us: u64,
    },
    /// The completion of invocation `id`; `Err` with the hub error.
    Completion {
        /// The invocation id.
        id: u64,
        /// The result (`Null` for void), or the error text.
        result: Result<Value, String>,
    },
    /// Keep-alive.
    Ping,
    /// A frame the client must send back at once (Engine.IO's pong).
    Answer(String),
    /// The server closes the connection.
    Close {
        /// The error text, if any.
        error: Option<String>,
    },
    /// Anything else (another invocation target, a stream item...).
    Other,
}

impl Protocol {
    /// The handshake request, always a JSON record in a text frame.
    pub fn handshake(self) -> String {
        let mut text = serde_json::json!({"protocol": self.to_string(), "version": 1}).to_string();
        text.push(SEPARATOR as char);
        text
    }

    /// A ping message.
    pub fn ping(self) -> Outgoing {
        match self {
            Self::Json => Outgoing::Text("{\"type\":6}\u{1e}".to_owned()),
            Self::Messagepack => Outgoing::Binary(pack_frame(&Pack::Array(vec![6.into()]))),
        }
    }

    /// An invocation of `target` with `arguments`, expecting a completion
    /// when `id` is given.
    pub fn invocation(self, id: Option<u64>, target: &str, arguments: &[Value]) -> Outgoing {
        match self {
            Self::Json => {
                let mut message = serde_json::json!({
                    "type": 1,
                    "target": target,
                    "arguments": arguments,
                });
                if let Some(id) = id {
                    message["invocationId"] = id.to_string().into();
                }
                let mut text = message.to_string();
                text.push(SEPARATOR as char);
                Outgoing::Text(text)
            }
            Self::Messagepack => {
                let id = id.map_or(Pack::Nil, |id| Pack::from(id.to_string()));
                let message = Pack::Array(vec![
                    1.into(),
                    Pack::Map(Vec::new()),
                    id,
                    target.into(),
                    Pack::Array(arguments.iter().map(to_pack).collect()),
                    Pack::Array(Vec::new()),
                ]);
                Outgoing::Binary(pack_frame(&message))
            }
        }
    }

    /// Decodes every complete message in `bytes` (one frame's payload)
    /// into `out`.
    pub fn decode(self, bytes: &[u8], out: &mut Vec<Incoming>) -> Result<(), String> {
        match self {
            Self::Json => {
                for record in bytes.split(|b| *b == SEPARATOR) {
                    if !record.is_empty() {
                        out.push(decode_json(record)?);
                    }
                }
                Ok(())
            }
            Self::Messagepack => {
                let mut rest = bytes;
                while !rest.is_empty() {
                    let (len, used) = varint(rest)?;
                    let end = used + len;
                    let body = rest
                        .get(used..end)
                        .ok_or("MessagePack message longer than its frame")?;
                    let value = rmpv::decode::read_value_ref(&mut &body[..])
                        .map_err(|e| format!("bad MessagePack: {e}"))?;
                    out.push(decode_pack(&value)?);
                    rest = &rest[end..];
                }
                Ok(())
            }
        }
    }
}

/// Splits the handshake response off the start of `bytes`: `Ok(Some(rest))`
/// once a whole record arrived and it accepted, `Ok(None)` when more bytes
/// are needed, `Err` with the server's error text.
pub fn handshake_response(bytes: &[u8]) -> Result<Option<&[u8]>, String> {
    let Some(end) = bytes.iter().position(|b| *b == SEPARATOR) else {
        return Ok(None);
    };
    let answer: Value = serde_json::from_slice(&bytes[..end])
        .map_err(|e| format!("handshake response is not JSON: {e}"))?;
    match answer.get("error") {
        Some(error) => Err(format!("handshake refused: {error}")),
        None => Ok(Some(&bytes[end + 1..])),
    }
}

/// A JSON message, borrowing from the record: `Bench` arguments are read
/// without building values (the padding is skipped, not copied).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonMessage<'a> {
    #[serde(rename = "type")]
    kind: u8,
    #[serde(default, borrow)]
    target: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    arguments: Option<&'a RawValue>,
    #[serde(default, borrow)]
    invocation_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    result: Option<&'a RawValue>,
    #[serde(default)]
    error: Option<String>,
}

/// `Bench` arguments: stream, sequence number, send time, padding.
type BenchArguments = (u64, u64, u64, IgnoredAny);

fn decode_json(record: &[u8]) -> Result<Incoming, String> {
    let bad = |e: serde_json::Error| {
        format!(
            "bad JSON message {:?}: {e}",
            String::from_utf8_lossy(record)
        )
    };
    let m: JsonMessage<'_> = serde_json::from_slice(record).map_err(bad)?;
    Ok(match m.kind {
        1 if m.target.as_deref() == Some("Bench") => {
            let arguments = m.arguments.map_or("null", RawValue::get);
            let (stream, seq, sent_us, _): BenchArguments =
                serde_json::from_str(arguments).map_err(bad)?;
            Incoming::Bench {
                stream,
                seq,
                sent_us,
            }
        }
        3 => Incoming::Completion {
            id: invocation_id(m.invocation_id.as_deref())?,
            result: match m.error {
                Some(error) => Err(error),
                None => match m.result {
                    Some(raw) => Ok(serde_json::from_str(raw.get()).map_err(bad)?),
                    None => Ok(Value::Null),
                },
            },
        },
        6 => Incoming::Ping,
        7 => Incoming::Close { error: m.error },
        _ => Incoming::Other,
    })
}

fn decode_pack(value: &PackRef<'_>) -> Result<Incoming, String> {
    let items = value
        .as_array()
        .ok_or("MessagePack message is not an array")?;
    let nil = PackRef::Nil;
    let field = |i: usize| items.get(i).unwrap_or(&nil);
    let text = |v: &PackRef<'_>| match v {
        PackRef::String(s) => s.as_str().map(str::to_owned),
        _ => None,
    };
    Ok(match field(0).as_u64() {
        Some(1) if text(field(3)).as_deref() == Some("Bench") => {
            let args = field(4)
                .as_array()
                .ok_or("Bench arguments are not an array")?;
            bench(args.iter().map(PackRef::as_u64))?
        }
        Some(3) => {
            let id = invocation_id(text(field(2)).as_deref())?;
            // Result kind: 1 error, 2 void, 3 value.
            let result = match field(3).as_u64() {
                Some(1) => Err(text(field(4)).unwrap_or_else(|| "(no text)".to_owned())),
                Some(3) => Ok(from_pack(&field(4).to_owned())),
                _ => Ok(Value::Null),
            };
            Incoming::Completion { id, result }
        }
        Some(6) => Incoming::Ping,
        Some(7) => Incoming::Close {
            error: text(field(1)),
        },
        _ => Incoming::Other,
    })
}

fn bench(mut args: impl Iterator<Item = Option<u64>>) -> Result<Incoming, String> {
    let mut next = |name: &str| {
        args.next()
            .flatten()
            .ok_or_else(|| format!("Bench message without a numeric {name}"))
    };
    Ok(Incoming::Bench {
        stream: next("stream")?,
        seq: next("sequence number")?,
        sent_us: next("send time")?,
    })
}

fn invocation_id(id: Option<&str>) -> Result<u64, String> {
    id.and_then(|id| id.parse().ok())
        .ok_or_else(|| format!("completion with an unexpected invocation id {id:?}"))
}

fn pack_frame(value: &Pack) -> Vec<u8> {
    let mut body = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = rmpv::encode::write_value(&mut body, value);
    let mut frame = Vec::with_capacity(body.len() + 5);
    let mut len = body.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            frame.push(byte);
            break;
        }
        frame.push(byte | 0x80);
    }
    frame.extend_from_slice(&body);
    frame
}

/// The length prefix: up to 5 bytes, 7 bits each, low bits first.
fn varint(bytes: &[u8]) -> Result<(usize, usize), String> {
    let mut len = 0usize;
    for (i, byte) in bytes.iter().take(5).enumerate() {
        len |= usize::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok((len, i + 1));
        }
    }
    Err("bad MessagePack length prefix".to_owned())
}

fn to_pack(value: &Value) -> Pack {
    match value {
        Value::Null => Pack::Nil,
        Value::Bool(b) => Pack::from(*b),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Pack::from(u),
            (None, Some(i)) => Pack::from(i),
            _ => Pack::from(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => Pack::from(s.as_str()),
        Value::Array(items) => Pack::Array(items.iter().map(to_pack).collect()),
        Value::Object(map) => Pack::Map(
            map.iter()
                .map(|(k, v)| (Pack::from(k.as_str()), to_pack(v)))
                .collect(),
        ),
    }
}

fn from_pack(value: &Pack) -> Value {
    match value {
        Pack::Boolean(b) => Value::from(*b),
        Pack::Integer(i) => i
            .as_u64()
            .map(Value::from)
            .or_else(|| i.as_i64().map(Value::from))
            .unwrap_or(Value::Null),
        Pack::F32(f) => Value::from(f64::from(*f)),
        Pack::F64(f) => Value::from(*f),
        Pack::String(s) => s.as_str().map_or(Value::Null, Value::from),
        Pack::Array(items) => Value::Array(items.iter().map(from_pack).collect()),
        Pack::Map(pairs) => Value::Object(
            pairs
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), from_pack(v))))
                .collect(),
        ),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_bench_completion_ping_close() {
        let bytes = b"{\"type\":1,\"target\":\"Bench\",\"arguments\":[7,3,1000,\"xx\"]}\x1e{\"type\":6}\x1e{\"type\":3,\"invocationId\":\"5\",\"result\":[1]}\x1e{\"type\":7,\"error\":\"slow\"}\x1e";
        let mut out = Vec::new();
        Protocol::Json.decode(bytes, &mut out).unwrap();
        assert_eq!(
            out,
            vec![
                Incoming::Bench {
                    stream: 7,
                    seq: 3,
                    sent_us: 1000
                },
                Incoming::Ping,
                Incoming::Completion {
                    id: 5,
                    result: Ok(json!([1]))
                },
                Incoming::Close {
                    error: Some("slow".into())
                },
            ]
        );
    }

    #[test]
    fn messagepack_round_trip_of_an_invocation() {
        let Outgoing::Binary(frame) = Protocol::Messagepack.invocation(
            None,
            "Bench",
            &[json!(1), json!(2), json!(3), json!("pad")],
        ) else {
            panic!("MessagePack invocations are binary");
        };
        let mut twice = frame.clone();
        twice.extend_from_slice(&frame);
        let mut out = Vec::new();
        Protocol::Messagepack.decode(&twice, &mut out).unwrap();
        let expected = Incoming::Bench {
            stream: 1,
            seq: 2,
            sent_us: 3,
        };
        assert_eq!(out, vec![expected.clone(), expected]);
    }

    #[test]
    fn long_messagepack_lengths_use_several_prefix_bytes() {
        let pad = "x".repeat(3000);
        let Outgoing::Binary(frame) =
            Protocol::Messagepack.invocation(Some(9), "Echo", &[json!(pad)])
        else {
            panic!("binary");
        };
        let (len, used) = varint(&frame).unwrap();
        assert_eq!(used, 2);
        assert_eq!(len + used, frame.len());
    }

    #[test]
    fn handshake_response_splits_off_what_follows() {
        assert_eq!(handshake_response(b"{}").unwrap(), None);
        assert_eq!(
            handshake_response(b"{}\x1e{\"type\":6}\x1e").unwrap(),
            Some(&b"{\"type\":6}\x1e"[..])
        );
        assert!(handshake_response(b"{\"error\":\"no\"}\x1e").is_err());
    }
}
