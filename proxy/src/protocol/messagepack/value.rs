//! Reading MessagePack values in place: markers, lengths, and skipping whole values.
//!
//! Payloads are forwarded as raw bytes, so the decoder only needs to find where a value
//! ends, never to build it. Nesting is bounded so hostile input cannot exhaust the stack.

/// How deep arrays and maps may nest inside one value.
pub(crate) const MAX_DEPTH: usize = 64;

/// The MessagePack extension type of timestamps.
pub(crate) const TIMESTAMP_EXT: i8 = -1;

/// Why bytes are not a MessagePack value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Invalid(pub(crate) &'static str);

/// A value's marker with whatever it says about the value's size or contents.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Head {
    Nil,
    Bool(bool),
    /// Any non-negative integer, whatever its width on the wire.
    Uint(u64),
    /// A negative integer.
    Int(i64),
    F32(f32),
    F64(f64),
    /// A string of this many bytes follows.
    Str(usize),
    /// Binary data of this many bytes follows.
    Bin(usize),
    /// This many values follow.
    Array(usize),
    /// This many key/value pairs follow.
    Map(usize),
    /// Extension data of this type and byte length follows.
    Ext(i8, usize),
}

/// A cursor over a buffer holding MessagePack values.
#[derive(Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

const TRUNCATED: Invalid = Invalid("value is truncated");

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn is_at_end(&self) -> bool {
        self.pos == self.buf.len()
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Invalid> {
        let end = self.pos.checked_add(n).ok_or(TRUNCATED)?;
        let bytes = self.buf.get(self.pos..end).ok_or(TRUNCATED)?;
        self.pos = end;
        Ok(bytes)
    }

    fn byte(&mut self) -> Result<u8, Invalid> {
        Ok(self.take(1)?[0])
    }

    /// A big-endian unsigned integer of `n` (at most 8) bytes.
    fn be(&mut self, n: usize) -> Result<u64, Invalid> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0, |acc, &b| (acc << 8) | u64::from(b)))
    }

    /// A big-endian length of `n` bytes.
    fn len(&mut self, n: usize) -> Result<usize, Invalid> {
        // At most 32 bits on the wire, which always fits `usize` on supported targets.
        usize::try_from(self.be(n)?).map_err(|_| TRUNCATED)
    }

    /// Reads a marker and the fixed-size data that goes with it.
    pub(crate) fn head(&mut self) -> Result<Head, Invalid> {
        let marker = self.byte()?;
        let head = match marker {
            0x00..=0x7f => Head::Uint(u64::from(marker)),
            0x80..=0x8f => Head::Map(usize::from(marker & 0x0f)),
            0x90..=0x9f => Head::Array(usize::from(marker & 0x0f)),
            0xa0..=0xbf => Head::Str(usize::from(marker & 0x1f)),
            0xc0 => Head::Nil,
            0xc1 => return Err(Invalid("0xc1 is not a valid marker")),
            0xc2 => Head::Bool(false),
            0xc3 => Head::Bool(true),
            0xc4 => Head::Bin(self.len(1)?),
            0xc5 => Head::Bin(self.len(2)?),
            0xc6 => Head::Bin(self.len(4)?),
            0xc7 => {
                let len = self.len(1)?;
                Head::Ext(self.ext_type()?, len)
            }
            0xc8 => {
                let len = self.len(2)?;
                Head::Ext(self.ext_type()?, len)
            }
            0xc9 => {
                let len = self.len(4)?;
                Head::Ext(self.ext_type()?, len)
            }
            0xca => Head::F32(f32::from_bits(self.be(4)? as u32)),
            0xcb => Head::F64(f64::from_bits(self.be(8)?)),
            0xcc => Head::Uint(self.be(1)?),
            0xcd => Head::Uint(self.be(2)?),
            0xce => Head::Uint(self.be(4)?),
            0xcf => Head::Uint(self.be(8)?),
            0xd0 => signed(i64::from(self.byte()? as i8)),
            0xd1 => signed(i64::from(self.be(2)? as u16 as i16)),
            0xd2 => signed(i64::from(self.be(4)? as u32 as i32)),
            0xd3 => signed(self.be(8)? as i64),
            0xd4 => Head::Ext(self.ext_type()?, 1),
            0xd5 => Head::Ext(self.ext_type()?, 2),
            0xd6 => Head::Ext(self.ext_type()?, 4),
            0xd7 => Head::Ext(self.ext_type()?, 8),
            0xd8 => Head::Ext(self.ext_type()?, 16),
            0xd9 => Head::Str(self.len(1)?),
            0xda => Head::Str(self.len(2)?),
            0xdb => Head::Str(self.len(4)?),
            0xdc => Head::Array(self.len(2)?),
            0xdd => Head::Array(self.len(4)?),
            0xde => Head::Map(self.len(2)?),
            0xdf => Head::Map(self.len(4)?),
            0xe0..=0xff => Head::Int(i64::from(marker as i8)),
        };
        Ok(head)
    }

    /// The next marker, without moving past it.
    pub(crate) fn peek(&self) -> Result<Head, Invalid> {
        self.clone().head()
    }

    fn ext_type(&mut self) -> Result<i8, Invalid> {
        Ok(self.byte()? as i8)
    }

    /// Moves past one whole value without decoding it.
    pub(crate) fn skip_value(&mut self) -> Result<(), Invalid> {
        self.skip_nested(0)
    }

    fn skip_nested(&mut self, depth: usize) -> Result<(), Invalid> {
        match self.head()? {
            Head::Str(len) | Head::Bin(len) | Head::Ext(_, len) => {
                self.take(len)?;
            }
            Head::Array(count) => self.skip_items(count, depth)?,
            Head::Map(count) => {
                // Keys and values alike; the count cannot overflow since it came from 32 bits.
                self.skip_items(count.saturating_mul(2), depth)?;
            }
            Head::Nil
            | Head::Bool(_)
            | Head::Uint(_)
            | Head::Int(_)
            | Head::F32(_)
            | Head::F64(_) => {}
        }
        Ok(())
    }

    fn skip_items(&mut self, count: usize, depth: usize) -> Result<(), Invalid> {
        if count > 0 && depth >= MAX_DEPTH {
            return Err(Invalid("values are nested too deeply"));
        }
        // Each item takes at least one byte, so a lying count runs out of input quickly.
        for _ in 0..count {
            self.skip_nested(depth + 1)?;
        }
        Ok(())
    }

    /// The bytes of the next value, whole.
    pub(crate) fn raw_value(&mut self) -> Result<&'a [u8], Invalid> {
        let start = self.pos;
        self.skip_value()?;
        Ok(&self.buf[start..self.pos])
    }
}

/// Negative values of the signed markers, which writers also use for non-negative ones.
fn signed(value: i64) -> Head {
    match u64::try_from(value) {
        Ok(value) => Head::Uint(value),
        Err(_) => Head::Int(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(value: &rmpv::Value) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, value).unwrap();
        out
    }

    #[test]
    fn heads_of_every_width() {
        use rmpv::Value;
        let cases = [
            (Value::Nil, Head::Nil),
            (Value::Boolean(true), Head::Bool(true)),
            (Value::from(5u64), Head::Uint(5)),
            (Value::from(200u64), Head::Uint(200)),
            (Value::from(70_000u64), Head::Uint(70_000)),
            (Value::from(u64::MAX), Head::Uint(u64::MAX)),
            (Value::from(-3i64), Head::Int(-3)),
            (Value::from(-100i64), Head::Int(-100)),
            (Value::from(-40_000i64), Head::Int(-40_000)),
            (Value::from(i64::MIN), Head::Int(i64::MIN)),
            (Value::F32(1.5), Head::F32(1.5)),
            (Value::F64(-2.25), Head::F64(-2.25)),
            (Value::from("x".repeat(40)), Head::Str(40)),
            (Value::from("x".repeat(300)), Head::Str(300)),
            (Value::Binary(vec![0; 3]), Head::Bin(3)),
            (Value::Array(vec![Value::Nil; 20]), Head::Array(20)),
            (
                Value::Map(vec![(Value::Nil, Value::Nil); 17]),
                Head::Map(17),
            ),
            (Value::Ext(-1, vec![0; 4]), Head::Ext(-1, 4)),
            (Value::Ext(5, vec![0; 3]), Head::Ext(5, 3)),
        ];
        for (value, head) in cases {
            let bytes = encoded(&value);
            let mut reader = Reader::new(&bytes);
            assert_eq!(reader.head(), Ok(head), "{value}");
            let mut reader = Reader::new(&bytes);
            assert_eq!(reader.raw_value(), Ok(&bytes[..]), "{value}");
            assert!(reader.is_at_end());
        }
        // Writers may use signed markers for non-negative numbers.
        assert_eq!(Reader::new(&[0xd0, 0x05]).head(), Ok(Head::Uint(5)));
        assert_eq!(Reader::new(&[0xd1, 0xff, 0xfe]).head(), Ok(Head::Int(-2)));
    }

    #[test]
    fn skipping_stops_at_the_value_end() {
        use rmpv::Value;
        let value = Value::Array(vec![
            Value::Map(vec![(Value::from("k"), Value::Array(vec![Value::from(1)]))]),
            Value::Binary(vec![1, 2, 3]),
            Value::Ext(7, vec![9; 20]),
        ]);
        let mut bytes = encoded(&value);
        let end = bytes.len();
        bytes.extend_from_slice(&[0x06, 0xc0]);
        let mut reader = Reader::new(&bytes);
        assert_eq!(reader.raw_value().map(<[u8]>::len), Ok(end));
        assert_eq!(reader.head(), Ok(Head::Uint(6)));
    }

    #[test]
    fn truncated_and_invalid_values_are_errors() {
        let full = encoded(&rmpv::Value::Array(vec![
            rmpv::Value::from("abc"),
            rmpv::Value::from(1u64 << 40),
        ]));
        for end in 0..full.len() {
            assert_eq!(
                Reader::new(&full[..end]).skip_value(),
                Err(TRUNCATED),
                "cut at {end}"
            );
        }
        assert!(Reader::new(&[0xc1]).skip_value().is_err());
        // A count far larger than the input fails without looping over it.
        assert_eq!(
            Reader::new(&[0xdd, 0xff, 0xff, 0xff, 0xff]).skip_value(),
            Err(TRUNCATED)
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let mut ok = vec![0x91; MAX_DEPTH];
        ok.push(0xc0);
        assert_eq!(Reader::new(&ok).skip_value(), Ok(()));
        let mut deep = vec![0x91; MAX_DEPTH + 1];
        deep.push(0xc0);
        assert_eq!(
            Reader::new(&deep).skip_value(),
            Err(Invalid("values are nested too deeply"))
        );
        // Empty containers at the limit cost nothing and are fine.
        let mut empty = vec![0x91; MAX_DEPTH];
        empty.push(0x90);
        assert_eq!(Reader::new(&empty).skip_value(), Ok(()));
    }
}
