//! Converting one payload value (an argument array, a stream item, a result) between the
//! JSON and MessagePack encodings, for sends where the app server's encoding differs from
//! the client's hub protocol.
//!
//! JSON to MessagePack:
//! - `null`, booleans and strings map to nil, booleans and strings; arrays and objects to
//!   arrays and maps, keeping member order.
//! - Integers use the shortest MessagePack integer form; numbers with a fraction or an
//!   exponent become float64. Integers beyond the 64-bit range become float64 as well,
//!   losing precision, as they would in the clients' own JSON parsers.
//! - Nesting deeper than 128 levels (serde_json's limit) is an error.
//!
//! MessagePack to JSON:
//! - Integers of any width become JSON integers; float32 and float64 become JSON numbers
//!   (NaN and infinities have no JSON form and are errors).
//! - Strings must be UTF-8 and are escaped as JSON requires.
//! - Binary data becomes a base64 string (standard alphabet, padded), which is how the
//!   JSON hub protocol of the reference clients and server carries byte arrays.
//! - A timestamp extension (type -1, in any of its 4, 8 or 12 byte forms) becomes an
//!   ISO-8601 UTC string, `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, with the fraction trimmed of
//!   trailing zeros; years outside 0000..=9999 are errors. Other extensions are errors.
//! - Map keys must be strings, since JSON object keys are.
//! - Nesting deeper than 64 levels is an error.

use base64::Engine;
use bytes::Bytes;

use super::messagepack::value::{Head, Invalid, MAX_DEPTH, Reader, TIMESTAMP_EXT};

/// Why a value could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranscodeError {
    /// The input is not one well-formed JSON value.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// The input is not one well-formed MessagePack value.
    #[error("invalid MessagePack: {0}")]
    InvalidMessagePack(String),
    /// The MessagePack value is valid but JSON has no form for it.
    #[error("MessagePack value has no JSON form: {0}")]
    Unrepresentable(String),
}

/// Converts one JSON value to MessagePack.
pub fn json_to_messagepack(json: &[u8]) -> Result<Bytes, TranscodeError> {
    let invalid = |e: &dyn std::fmt::Display| TranscodeError::InvalidJson(e.to_string());
    let mut from = serde_json::Deserializer::from_slice(json);
    // MessagePack is rarely larger than the JSON it comes from.
    let mut out = Vec::with_capacity(json.len());
    serde_transcode::transcode(&mut from, &mut rmp_serde::Serializer::new(&mut out))
        .map_err(|e| invalid(&e))?;
    from.end().map_err(|e| invalid(&e))?;
    Ok(Bytes::from(out))
}

/// Converts one MessagePack value to JSON.
pub fn messagepack_to_json(msgpack: &[u8]) -> Result<Bytes, TranscodeError> {
    let mut reader = Reader::new(msgpack);
    let mut out = Vec::with_capacity(msgpack.len() + msgpack.len() / 2);
    write_value(&mut reader, &mut out, 0)?;
    if !reader.is_at_end() {
        return Err(TranscodeError::InvalidMessagePack(
            "unexpected bytes after the value".into(),
        ));
    }
    Ok(Bytes::from(out))
}

fn write_value(
    reader: &mut Reader<'_>,
    out: &mut Vec<u8>,
    depth: usize,
) -> Result<(), TranscodeError> {
    match reader.head().map_err(invalid)? {
        Head::Nil => out.extend_from_slice(b"null"),
        Head::Bool(true) => out.extend_from_slice(b"true"),
        Head::Bool(false) => out.extend_from_slice(b"false"),
        Head::Uint(n) => write_json(out, &n)?,
        Head::Int(n) => write_json(out, &n)?,
        Head::F32(f) if f.is_finite() => write_json(out, &f)?,
        Head::F64(f) if f.is_finite() => write_json(out, &f)?,
        Head::F32(_) | Head::F64(_) => return Err(unrepresentable("NaN or infinite number")),
        Head::Str(len) => write_json(out, read_str(reader, len)?)?,
        Head::Bin(len) => {
            let data = reader.take(len).map_err(invalid)?;
            out.push(b'"');
            let start = out.len();
            let engine = base64::engine::general_purpose::STANDARD;
            out.resize(start + base64::encoded_len(len, true).unwrap_or(0), 0);
            let written = engine
                .encode_slice(data, &mut out[start..])
                .map_err(|e| unrepresentable(&e.to_string()))?;
            out.truncate(start + written);
            out.push(b'"');
        }
        Head::Array(count) => {
            nest(count, depth)?;
            out.push(b'[');
            for i in 0..count {
                if i > 0 {
                    out.push(b',');
                }
                write_value(reader, out, depth + 1)?;
            }
            out.push(b']');
        }
        Head::Map(count) => {
            nest(count, depth)?;
            out.push(b'{');
            for i in 0..count {
                if i > 0 {
                    out.push(b',');
                }
                let Head::Str(len) = reader.head().map_err(invalid)? else {
                    return Err(unrepresentable("map key is not a string"));
                };
                write_json(out, read_str(reader, len)?)?;
                out.push(b':');
                write_value(reader, out, depth + 1)?;
            }
            out.push(b'}');
        }
        Head::Ext(TIMESTAMP_EXT, len) => {
            let data = reader.take(len).map_err(invalid)?;
            let (seconds, nanos) = timestamp(data)?;
            out.push(b'"');
            write_iso8601(seconds, nanos, out)?;
            out.push(b'"');
        }
        Head::Ext(kind, _) => {
            return Err(unrepresentable(&format!("extension type {kind}")));
        }
    }
    Ok(())
}

fn nest(count: usize, depth: usize) -> Result<(), TranscodeError> {
    if count > 0 && depth >= MAX_DEPTH {
        return Err(invalid(Invalid("values are nested too deeply")));
    }
    Ok(())
}

fn read_str<'a>(reader: &mut Reader<'a>, len: usize) -> Result<&'a str, TranscodeError> {
    let bytes = reader.take(len).map_err(invalid)?;
    std::str::from_utf8(bytes)
        .map_err(|_| TranscodeError::InvalidMessagePack("string is not valid UTF-8".into()))
}

/// Writes a number or string with serde_json's formatting and escaping.
fn write_json<T: serde::Serialize + ?Sized>(
    out: &mut Vec<u8>,
    value: &T,
) -> Result<(), TranscodeError> {
    serde_json::to_writer(out, value).map_err(|e| unrepresentable(&e.to_string()))
}

/// Seconds since the Unix epoch and nanoseconds from one of the three timestamp forms.
fn timestamp(data: &[u8]) -> Result<(i64, u32), TranscodeError> {
    let be = |bytes: &[u8]| bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    let (seconds, nanos) = match data.len() {
        4 => (be(data) as i64, 0),
        8 => {
            let packed = be(data);
            // 30 bits of nanoseconds above 34 bits of seconds.
            ((packed & 0x3_ffff_ffff) as i64, (packed >> 34) as u32)
        }
        12 => (be(&data[4..]) as i64, be(&data[..4]) as u32),
        other => {
            return Err(TranscodeError::InvalidMessagePack(format!(
                "a timestamp cannot have {other} bytes"
            )));
        }
    };
    if nanos >= 1_000_000_000 {
        return Err(TranscodeError::InvalidMessagePack(
            "timestamp nanoseconds exceed one second".into(),
        ));
    }
    Ok((seconds, nanos))
}

/// Writes `YYYY-MM-DDTHH:MM:SS[.fraction]Z` for a UTC instant.
fn write_iso8601(seconds: i64, nanos: u32, out: &mut Vec<u8>) -> Result<(), TranscodeError> {
    let days = seconds.div_euclid(86_400);
    let time = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_date(days);
    if !(0..=9999).contains(&year) {
        return Err(unrepresentable("timestamp year outside 0000..=9999"));
    }
    let mut text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        time / 3600,
        time % 3600 / 60,
        time % 60
    );
    if nanos > 0 {
        let fraction = format!("{nanos:09}");
        text.push('.');
        text.push_str(fraction.trim_end_matches('0'));
    }
    text.push('Z');
    out.extend_from_slice(text.as_bytes());
    Ok(())
}

/// The proleptic Gregorian (year, month, day) of a count of days since 1970-01-01.
fn civil_date(days: i64) -> (i64, i64, i64) {
    // Count from 0000-03-01 so that leap days fall at the end of each year, and work
    // in 400-year cycles of 146 097 days, which repeat exactly.
    let from_march = days + 719_468;
    let cycle = from_march.div_euclid(146_097);
    let day_of_cycle = from_march.rem_euclid(146_097);
    let year_of_cycle =
        (day_of_cycle - day_of_cycle / 1460 + day_of_cycle / 36_524 - day_of_cycle / 146_096) / 365;
    let day_of_year =
        day_of_cycle - (365 * year_of_cycle + year_of_cycle / 4 - year_of_cycle / 100);
    // Months from March, using the 153-days-per-5-months pattern.
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_cycle + cycle * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn invalid(error: Invalid) -> TranscodeError {
    TranscodeError::InvalidMessagePack(error.0.to_owned())
}

fn unrepresentable(what: &str) -> TranscodeError {
    TranscodeError::Unrepresentable(what.to_owned())
}

#[cfg(test)]
mod tests {
    use rmpv::Value;
    use serde_json::json;

    use super::*;

    fn msgpack(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, value).unwrap();
        out
    }

    fn from_msgpack(bytes: &[u8]) -> Value {
        let mut rest = bytes;
        let value = rmpv::decode::read_value(&mut rest).unwrap();
        assert!(rest.is_empty());
        value
    }

    fn to_json(value: &Value) -> serde_json::Value {
        serde_json::from_slice(&messagepack_to_json(&msgpack(value)).unwrap()).unwrap()
    }

    fn json_error(value: &Value) -> TranscodeError {
        messagepack_to_json(&msgpack(value)).unwrap_err()
    }

    #[test]
    fn json_round_trips_through_messagepack() {
        let documents = [
            "null",
            "true",
            "false",
            "0",
            "-1",
            "127",
            "128",
            "-33",
            "18446744073709551615",
            "-9223372036854775808",
            "1.5",
            "-0.25",
            "1e300",
            "3.0",
            r#""""#,
            r#""plain""#,
            r#""quote\" backslash\\ \n\t\u0001 \u00e9 \ud83d\ude00 \u001e""#,
            "[]",
            "{}",
            r#"[1,"two",[3,[4,{"five":null}]],{"z":1,"a":[true,false]}]"#,
            r#"{"nested":{"deeper":{"list":[1.25,-7,"x"]}},"empty":[]}"#,
        ];
        for json in documents {
            let packed = json_to_messagepack(json.as_bytes()).unwrap();
            let back = messagepack_to_json(&packed).unwrap();
            let original: serde_json::Value = serde_json::from_str(json).unwrap();
            let returned: serde_json::Value = serde_json::from_slice(&back).unwrap();
            assert_eq!(returned, original, "{json} came back as {back:?}");
        }
    }

    #[test]
    fn json_becomes_compact_typed_messagepack() {
        let packed =
            json_to_messagepack(br#" {"b":[1,-1,300,1.5,"s",null,true],"a":{}} "#).unwrap();
        assert_eq!(
            from_msgpack(&packed),
            Value::Map(vec![
                (
                    "b".into(),
                    Value::Array(vec![
                        1.into(),
                        Value::from(-1),
                        300.into(),
                        Value::F64(1.5),
                        "s".into(),
                        Value::Nil,
                        true.into(),
                    ])
                ),
                ("a".into(), Value::Map(vec![])),
            ])
        );
        // Shortest integer forms.
        assert_eq!(&json_to_messagepack(b"5").unwrap()[..], &[0x05]);
        assert_eq!(&json_to_messagepack(b"-5").unwrap()[..], &[0xfb]);
        assert_eq!(&json_to_messagepack(b"200").unwrap()[..], &[0xcc, 200]);
    }

    #[test]
    fn invalid_json_is_an_error() {
        for json in ["", "[1,", "{\"a\"}", "[1] [2]", "nul", "\"\\x\""] {
            assert!(
                matches!(
                    json_to_messagepack(json.as_bytes()),
                    Err(TranscodeError::InvalidJson(_))
                ),
                "{json}"
            );
        }
    }

    #[test]
    fn messagepack_scalars_and_containers_to_json() {
        let value = Value::Array(vec![
            Value::Nil,
            true.into(),
            Value::from(u64::MAX),
            Value::from(i64::MIN),
            Value::F32(0.1),
            Value::F64(-2.5e-8),
            "\u{1}\"\\ é".into(),
            Value::Map(vec![("k".into(), Value::Array(vec![]))]),
        ]);
        assert_eq!(
            to_json(&value),
            json!([null, true, u64::MAX, i64::MIN, 0.1, -2.5e-8, "\u{1}\"\\ é", {"k": []}])
        );
        // float32 keeps its short form rather than its float64 expansion.
        assert_eq!(
            &messagepack_to_json(&msgpack(&Value::F32(0.1))).unwrap()[..],
            b"0.1"
        );
    }

    #[test]
    fn binary_becomes_base64() {
        assert_eq!(
            to_json(&Value::Binary(b"hello world".to_vec())),
            json!("aGVsbG8gd29ybGQ=")
        );
        assert_eq!(to_json(&Value::Binary(vec![])), json!(""));
        assert_eq!(
            to_json(&Value::Array(vec![Value::Binary(vec![0xff, 0xfe])])),
            json!(["//4="])
        );
    }

    #[test]
    fn timestamps_become_iso8601() {
        let ts32 = |seconds: u32| Value::Ext(-1, seconds.to_be_bytes().to_vec());
        let ts64 = |seconds: u64, nanos: u64| {
            Value::Ext(-1, ((nanos << 34) | seconds).to_be_bytes().to_vec())
        };
        let ts96 = |seconds: i64, nanos: u32| {
            let mut data = nanos.to_be_bytes().to_vec();
            data.extend(seconds.to_be_bytes());
            Value::Ext(-1, data)
        };
        let cases = [
            (ts32(0), "1970-01-01T00:00:00Z"),
            (ts32(951_782_400), "2000-02-29T00:00:00Z"),
            (ts32(u32::MAX), "2106-02-07T06:28:15Z"),
            (ts64(1_700_000_000, 123_000_000), "2023-11-14T22:13:20.123Z"),
            (ts64(0, 1), "1970-01-01T00:00:00.000000001Z"),
            (ts96(-1, 500_000_000), "1969-12-31T23:59:59.5Z"),
            (ts96(-62_135_596_800, 0), "0001-01-01T00:00:00Z"),
            (ts96(-62_167_219_200, 0), "0000-01-01T00:00:00Z"),
            (
                ts96(253_402_300_799, 999_999_999),
                "9999-12-31T23:59:59.999999999Z",
            ),
            (ts96(4_107_542_400, 0), "2100-03-01T00:00:00Z"),
        ];
        for (value, text) in cases {
            assert_eq!(to_json(&value), json!(text), "{value}");
        }
        assert!(matches!(
            json_error(&ts96(253_402_300_800, 0)),
            TranscodeError::Unrepresentable(_)
        ));
        assert!(matches!(
            json_error(&ts96(-62_167_219_201, 0)),
            TranscodeError::Unrepresentable(_)
        ));
        assert!(matches!(
            json_error(&ts96(0, 1_000_000_000)),
            TranscodeError::InvalidMessagePack(_)
        ));
        assert!(matches!(
            json_error(&Value::Ext(-1, vec![0; 6])),
            TranscodeError::InvalidMessagePack(_)
        ));
    }

    #[test]
    fn values_without_a_json_form_are_errors() {
        let cases = [
            Value::Ext(1, vec![1, 2, 3]),
            Value::Array(vec![Value::Ext(-2, vec![0])]),
            Value::Map(vec![(1.into(), "one".into())]),
            Value::Map(vec![(Value::Nil, Value::Nil)]),
            Value::F64(f64::NAN),
            Value::F32(f32::INFINITY),
        ];
        for value in cases {
            assert!(
                matches!(json_error(&value), TranscodeError::Unrepresentable(_)),
                "{value}"
            );
        }
    }

    #[test]
    fn malformed_messagepack_is_an_error() {
        let full = msgpack(&Value::Array(vec!["abc".into(), Value::Binary(vec![1; 4])]));
        for end in 0..full.len() {
            assert!(
                matches!(
                    messagepack_to_json(&full[..end]),
                    Err(TranscodeError::InvalidMessagePack(_))
                ),
                "cut at {end}"
            );
        }
        for bytes in [&[0xc1][..], &[0xc0, 0xc0], &[0xa1, 0xff]] {
            assert!(
                matches!(
                    messagepack_to_json(bytes),
                    Err(TranscodeError::InvalidMessagePack(_))
                ),
                "{bytes:02x?}"
            );
        }
        let mut deep = vec![0x91; MAX_DEPTH + 1];
        deep.push(0xc0);
        assert!(matches!(
            messagepack_to_json(&deep),
            Err(TranscodeError::InvalidMessagePack(_))
        ));
        deep.remove(0);
        assert_eq!(messagepack_to_json(&deep).unwrap().len(), 2 * MAX_DEPTH + 4);
    }
}
