//! `ComplexObject`, the value of `EchoComplexObject` and `SendComplexObject`:
//! bytes and a UTC time as typed values, in the form each hub protocol gives
//! such values. In JSON the bytes are base64 text and the time ISO-8601 text;
//! in MessagePack they are `bin` and a timestamp (extension type -1), which
//! the official clients turn into a `Uint8Array` and a `Date`. The sdk
//! decodes and encodes with serde_json (human-readable) and rmp-serde (not),
//! which is how each field below tells the protocols apart.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeTuple, Serializer};
use serde::{Deserialize, Serialize};

/// The argument and result of `EchoComplexObject`, named as .NET names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ComplexObject {
    pub string: String,
    pub int_array: Vec<i64>,
    pub byte_array: ByteArray,
    pub guid: String,
    pub date_time: UtcTime,
}

impl ComplexObject {
    /// What `SendComplexObject` returns.
    pub fn sample() -> Self {
        Self {
            string: "hello world".to_owned(),
            int_array: vec![1, 2, 3],
            byte_array: ByteArray(vec![1, 2, 3]),
            guid: "00010203-0405-0607-0706-050403020100".to_owned(),
            // 2000-01-01T00:00:00Z
            date_time: UtcTime {
                seconds: 946_684_800,
                nanos: 0,
            },
        }
    }
}

/// Bytes: base64 text in JSON, `bin` in MessagePack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByteArray(pub Vec<u8>);

impl Serialize for ByteArray {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&base64::encode(&self.0))
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for ByteArray {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            base64::decode(&text)
                .map(Self)
                .ok_or_else(|| de::Error::custom("not base64"))
        } else {
            deserializer.deserialize_byte_buf(BytesVisitor).map(Self)
        }
    }
}

struct BytesVisitor;

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("binary data")
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
        Ok(bytes.to_vec())
    }

    fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(bytes)
    }
}

/// Raw bytes inside the extension tuple rmp-serde writes.
struct Raw<'a>(&'a [u8]);

impl Serialize for Raw<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// A UTC instant: `YYYY-MM-DDTHH:MM:SS[.fraction]Z` in JSON, a timestamp
/// extension in MessagePack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub seconds: i64,
    pub nanos: u32,
}

/// The MessagePack extension type of timestamps.
const TIMESTAMP_EXT: i8 = -1;

impl UtcTime {
    /// The shortest of the three timestamp forms that holds this instant.
    fn to_timestamp(self) -> Vec<u8> {
        match u64::try_from(self.seconds) {
            Ok(seconds) if self.nanos == 0 && seconds <= u64::from(u32::MAX) => {
                (seconds as u32).to_be_bytes().to_vec()
            }
            Ok(seconds) if seconds < 1 << 34 => ((u64::from(self.nanos) << 34) | seconds)
                .to_be_bytes()
                .to_vec(),
            _ => {
                let mut data = self.nanos.to_be_bytes().to_vec();
                data.extend_from_slice(&self.seconds.to_be_bytes());
                data
            }
        }
    }

    fn from_timestamp(data: &[u8]) -> Option<Self> {
        let (seconds, nanos) = match data.len() {
            4 => (i64::from(u32::from_be_bytes(data.try_into().ok()?)), 0),
            8 => {
                let both = u64::from_be_bytes(data.try_into().ok()?);
                ((both & ((1 << 34) - 1)) as i64, (both >> 34) as u32)
            }
            12 => (
                i64::from_be_bytes(data[4..].try_into().ok()?),
                u32::from_be_bytes(data[..4].try_into().ok()?),
            ),
            _ => return None,
        };
        (nanos < 1_000_000_000).then_some(Self { seconds, nanos })
    }

    fn to_iso8601(self) -> String {
        let days = self.seconds.div_euclid(86_400);
        let of_day = self.seconds.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        let mut text = format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            of_day / 3600,
            of_day / 60 % 60,
            of_day % 60
        );
        if self.nanos != 0 {
            let fraction = format!("{:09}", self.nanos);
            text.push('.');
            text.push_str(fraction.trim_end_matches('0'));
        }
        text.push('Z');
        text
    }

    /// Reads `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; no zone means UTC.
    fn from_iso8601(text: &str) -> Option<Self> {
        let number = |s: &str| -> Option<i64> {
            s.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| s.parse().ok())?
        };
        let (date, time) = text.split_once(['T', ' '])?;
        let mut date_parts = date.splitn(3, '-');
        let year = number(date_parts.next()?)?;
        let month = number(date_parts.next()?)?;
        let day = number(date_parts.next()?)?;
        let (time, offset) = if let Some(time) = time.strip_suffix(['Z', 'z']) {
            (time, 0)
        } else if let Some(at) = time.rfind(['+', '-']) {
            let (hours, minutes) = time[at + 1..].split_once(':')?;
            let sign = if time.as_bytes()[at] == b'-' { -1 } else { 1 };
            (
                &time[..at],
                sign * (number(hours)? * 3600 + number(minutes)? * 60),
            )
        } else {
            (time, 0)
        };
        let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
        let mut clock_parts = clock.splitn(3, ':');
        let hour = number(clock_parts.next()?)?;
        let minute = number(clock_parts.next()?)?;
        let second = number(clock_parts.next()?)?;
        if !(1..=12).contains(&month)
            || !(1..=31).contains(&day)
            || hour > 23
            || minute > 59
            || second > 59
            || fraction.len() > 9
        {
            return None;
        }
        let nanos = if fraction.is_empty() {
            0
        } else {
            number(fraction)? * 10_i64.pow(9 - fraction.len() as u32)
        };
        let seconds =
            days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
                - offset;
        Some(Self {
            seconds,
            nanos: u32::try_from(nanos).ok()?,
        })
    }
}

impl Serialize for UtcTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_iso8601())
        } else {
            // rmp-serde writes this newtype as an extension: (type, data).
            serializer.serialize_newtype_struct(
                rmp_serde::MSGPACK_EXT_STRUCT_NAME,
                &Extension(TIMESTAMP_EXT, self.to_timestamp()),
            )
        }
    }
}

struct Extension(i8, Vec<u8>);

impl Serialize for Extension {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(2)?;
        tuple.serialize_element(&self.0)?;
        tuple.serialize_element(&Raw(&self.1))?;
        tuple.end()
    }
}

impl<'de> Deserialize<'de> for UtcTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            Self::from_iso8601(&text)
                .ok_or_else(|| de::Error::custom(format!("not an ISO-8601 time: {text}")))
        } else {
            deserializer.deserialize_newtype_struct(rmp_serde::MSGPACK_EXT_STRUCT_NAME, TimeVisitor)
        }
    }
}

struct TimeVisitor;

impl<'de> Visitor<'de> for TimeVisitor {
    type Value = UtcTime;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a MessagePack timestamp")
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, inner: D) -> Result<UtcTime, D::Error> {
        inner.deserialize_tuple(2, self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<UtcTime, A::Error> {
        let kind: i8 = seq
            .next_element()?
            .ok_or_else(|| de::Error::custom("an extension without a type"))?;
        let data = seq
            .next_element::<RawOwned>()?
            .ok_or_else(|| de::Error::custom("an extension without data"))?;
        if kind != TIMESTAMP_EXT {
            return Err(de::Error::custom(format!(
                "extension type {kind} is not a timestamp"
            )));
        }
        UtcTime::from_timestamp(&data.0).ok_or_else(|| de::Error::custom("a malformed timestamp"))
    }
}

struct RawOwned(Vec<u8>);

impl<'de> Deserialize<'de> for RawOwned {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_byte_buf(BytesVisitor).map(Self)
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (eras of 400 years).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a day counted from 1970-01-01; the inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Standard base64 with padding, which is how SignalR's JSON carries bytes.
mod base64 {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(bytes: &[u8]) -> String {
        let mut text = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let group = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
            for i in 0..4 {
                if i <= chunk.len() {
                    text.push(char::from(ALPHABET[(group >> (18 - 6 * i) & 63) as usize]));
                } else {
                    text.push('=');
                }
            }
        }
        text
    }

    pub fn decode(text: &str) -> Option<Vec<u8>> {
        let text = text.as_bytes();
        if !text.len().is_multiple_of(4) {
            return None;
        }
        let mut bytes = Vec::with_capacity(text.len() / 4 * 3);
        for chunk in text.chunks(4) {
            let padding = chunk.iter().rev().take_while(|&&c| c == b'=').count();
            if padding > 2 {
                return None;
            }
            let mut group = 0u32;
            for (i, &c) in chunk[..4 - padding].iter().enumerate() {
                let value = ALPHABET.iter().position(|&a| a == c)? as u32;
                group |= value << (18 - 6 * i);
            }
            let kept = 3 - padding;
            bytes.extend((0..kept).map(|i| (group >> (16 - 8 * i)) as u8));
        }
        Some(bytes)
    }
}
