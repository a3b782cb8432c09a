//! Binding a client's encoded argument array to a method's typed arguments.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeOwned, DeserializeSeed, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::upload::{UploadStream, Uploads};

/// Why arguments could not be bound; each maps to a reference error text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BindError {
    /// The array holds `provided` values but the method takes `expected`.
    Count { provided: usize, expected: usize },
    /// The payload is not an array, or a value has the wrong type.
    Type,
}

/// The typed argument list of a hub method: `()` or a tuple of up to twelve
/// values, bound position by position from the client's argument array.
/// Each element is a [`DeserializeOwned`] value or an
/// [`UploadStream`] the client feeds while the method runs; upload streams
/// take no place in the argument array, as in SignalR.
///
/// A one-argument method takes a one-element tuple: `(name,): (String,)`.
pub trait Arguments: Sized + Send + 'static {
    /// How many values the client must send in the argument array.
    const COUNT: usize;
    /// How many upload streams the client must open.
    const STREAMS: usize;

    /// Binds from JSON values; `raw.len()` equals [`Self::COUNT`].
    #[doc(hidden)]
    fn from_json(raw: &[&RawValue], uploads: &mut Uploads) -> serde_json::Result<Self>;

    /// Binds from a sequence holding [`Self::COUNT`] values.
    #[doc(hidden)]
    fn from_seq<'de, S: SeqAccess<'de>>(
        seq: &mut S,
        uploads: &mut Uploads,
    ) -> Result<Self, S::Error>;
}

/// One element of an [`Arguments`] tuple.
pub trait Argument: Sized + Send + 'static {
    /// Whether this is an upload stream rather than an array value.
    const STREAM: bool;

    fn from_json<'a>(
        raw: &mut impl Iterator<Item = &'a RawValue>,
        uploads: &mut Uploads,
    ) -> serde_json::Result<Self>;

    fn from_seq<'de, S: SeqAccess<'de>>(
        seq: &mut S,
        uploads: &mut Uploads,
    ) -> Result<Self, S::Error>;
}

impl<T: DeserializeOwned + Send + 'static> Argument for T {
    const STREAM: bool = false;

    fn from_json<'a>(
        raw: &mut impl Iterator<Item = &'a RawValue>,
        _: &mut Uploads,
    ) -> serde_json::Result<Self> {
        let value = raw
            .next()
            .ok_or_else(|| <serde_json::Error as de::Error>::custom("missing argument"))?;
        serde_json::from_str(value.get())
    }

    fn from_seq<'de, S: SeqAccess<'de>>(seq: &mut S, _: &mut Uploads) -> Result<Self, S::Error> {
        seq.next_element()?
            .ok_or_else(|| <S::Error as de::Error>::custom("missing argument"))
    }
}

impl<T: DeserializeOwned + Send + 'static> Argument for UploadStream<T> {
    const STREAM: bool = true;

    fn from_json<'a>(
        _: &mut impl Iterator<Item = &'a RawValue>,
        uploads: &mut Uploads,
    ) -> serde_json::Result<Self> {
        take_upload(uploads)
    }

    fn from_seq<'de, S: SeqAccess<'de>>(
        _: &mut S,
        uploads: &mut Uploads,
    ) -> Result<Self, S::Error> {
        take_upload(uploads)
    }
}

fn take_upload<T, E: de::Error>(uploads: &mut Uploads) -> Result<UploadStream<T>, E> {
    // The stream count is checked before binding; this is only a guard.
    uploads
        .take()
        .map(UploadStream::new)
        .ok_or_else(|| E::custom("missing upload stream"))
}

impl Arguments for () {
    const COUNT: usize = 0;
    const STREAMS: usize = 0;

    fn from_json(_: &[&RawValue], _: &mut Uploads) -> serde_json::Result<Self> {
        Ok(())
    }

    fn from_seq<'de, S: SeqAccess<'de>>(_: &mut S, _: &mut Uploads) -> Result<Self, S::Error> {
        Ok(())
    }
}

macro_rules! tuple_arguments {
    ($($name:ident),+) => {
        impl<$($name),+> Arguments for ($($name,)+)
        where
            $($name: Argument),+
        {
            const COUNT: usize = 0 $(+ (!<$name as Argument>::STREAM) as usize)+;
            const STREAMS: usize = 0 $(+ (<$name as Argument>::STREAM) as usize)+;

            fn from_json(raw: &[&RawValue], uploads: &mut Uploads) -> serde_json::Result<Self> {
                let mut values = raw.iter().copied();
                Ok(($(<$name as Argument>::from_json(&mut values, uploads)?,)+))
            }

            fn from_seq<'de, S: SeqAccess<'de>>(
                seq: &mut S,
                uploads: &mut Uploads,
            ) -> Result<Self, S::Error> {
                Ok(($(<$name as Argument>::from_seq(seq, uploads)?,)+))
            }
        }
    };
}

tuple_arguments!(A);
tuple_arguments!(A, B);
tuple_arguments!(A, B, C);
tuple_arguments!(A, B, C, D);
tuple_arguments!(A, B, C, D, E);
tuple_arguments!(A, B, C, D, E, F);
tuple_arguments!(A, B, C, D, E, F, G);
tuple_arguments!(A, B, C, D, E, F, G, H);
tuple_arguments!(A, B, C, D, E, F, G, H, I);
tuple_arguments!(A, B, C, D, E, F, G, H, I, J);
tuple_arguments!(A, B, C, D, E, F, G, H, I, J, K);
tuple_arguments!(A, B, C, D, E, F, G, H, I, J, K, L);

/// Binds a JSON argument array to `A`, checking the count first so a wrong
/// count is reported as such rather than as a type error.
pub(crate) fn bind_json<A: Arguments>(data: &[u8], uploads: &mut Uploads) -> Result<A, BindError> {
    let raw: Vec<&RawValue> = serde_json::from_slice(data).map_err(|_| BindError::Type)?;
    if raw.len() != A::COUNT {
        return Err(BindError::Count {
            provided: raw.len(),
            expected: A::COUNT,
        });
    }
    A::from_json(&raw, uploads).map_err(|_| BindError::Type)
}

/// Binds a MessagePack argument array (the client's own bytes) to `A`,
/// with the same count-before-types rule.
pub(crate) fn bind_msgpack<A: Arguments>(
    data: &[u8],
    uploads: &mut Uploads,
) -> Result<A, BindError> {
    let mut deserializer = rmp_serde::Deserializer::from_read_ref(data);
    let seed = ArgumentsSeed::<A> {
        uploads,
        arguments: PhantomData,
    };
    match seed.deserialize(&mut deserializer) {
        Ok(bound) => bound,
        Err(_) => Err(BindError::Type),
    }
}

struct ArgumentsSeed<'u, A> {
    uploads: &'u mut Uploads,
    arguments: PhantomData<A>,
}

impl<'de, A: Arguments> DeserializeSeed<'de> for ArgumentsSeed<'_, A> {
    type Value = Result<A, BindError>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, A: Arguments> Visitor<'de> for ArgumentsSeed<'_, A> {
    type Value = Result<A, BindError>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an array of {} arguments", A::COUNT)
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
        // MessagePack arrays announce their length up front.
        let provided = seq.size_hint().unwrap_or(A::COUNT);
        if provided != A::COUNT {
            // The decoder insists every element is read.
            while seq.next_element::<de::IgnoredAny>()?.is_some() {}
            return Ok(Err(BindError::Count {
                provided,
                expected: A::COUNT,
            }));
        }
        A::from_seq(&mut seq, self.uploads).map(Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_tuples_and_unit() {
        assert_eq!(bind_json::<()>(b"[]", &mut Uploads::default()), Ok(()));
        assert_eq!(
            bind_json::<(String,)>(br#"["a"]"#, &mut Uploads::default()),
            Ok(("a".to_owned(),))
        );
        assert_eq!(
            bind_json::<(u32, Vec<String>, Option<bool>)>(
                br#"[7, ["x"], null]"#,
                &mut Uploads::default()
            ),
            Ok((7, vec!["x".to_owned()], None))
        );
    }

    #[test]
    fn reports_wrong_count_before_types() {
        assert_eq!(
            bind_json::<(String, String)>(br#"[1]"#, &mut Uploads::default()),
            Err(BindError::Count {
                provided: 1,
                expected: 2
            })
        );
        assert_eq!(
            bind_json::<()>(br#"["extra"]"#, &mut Uploads::default()),
            Err(BindError::Count {
                provided: 1,
                expected: 0
            })
        );
    }

    #[test]
    fn reports_type_mismatch_and_non_arrays() {
        assert_eq!(
            bind_json::<(u32,)>(br#"["nope"]"#, &mut Uploads::default()),
            Err(BindError::Type)
        );
        assert_eq!(
            bind_json::<(u32,)>(br#"{"a":1}"#, &mut Uploads::default()),
            Err(BindError::Type)
        );
        assert_eq!(
            bind_json::<(u32,)>(b"not json", &mut Uploads::default()),
            Err(BindError::Type)
        );
    }

    #[test]
    fn upload_streams_take_no_place_in_the_array() {
        type WithStream = (String, UploadStream<u32>, bool);
        assert_eq!(<WithStream as Arguments>::COUNT, 2);
        assert_eq!(<WithStream as Arguments>::STREAMS, 1);
        let (_feed, upload) = super::super::upload::channel();
        let mut uploads = Uploads::new(vec![upload]);
        let (name, _stream, flag) =
            bind_json::<WithStream>(br#"["n", true]"#, &mut uploads).unwrap();
        assert_eq!((name.as_str(), flag), ("n", true));
        assert_eq!(uploads.len(), 0);
    }

    #[test]
    fn binds_messagepack_arrays() {
        let data = rmp_serde::to_vec(&("a", 7u8, vec!["x"])).unwrap();
        assert_eq!(
            bind_msgpack::<(String, u64, Vec<String>)>(&data, &mut Uploads::default()),
            Ok(("a".to_owned(), 7, vec!["x".to_owned()]))
        );
        assert_eq!(
            bind_msgpack::<(String,)>(&data, &mut Uploads::default()),
            Err(BindError::Count {
                provided: 3,
                expected: 1
            })
        );
        assert_eq!(
            bind_msgpack::<(u32, u32, u32)>(&data, &mut Uploads::default()),
            Err(BindError::Type)
        );
        assert_eq!(
            bind_msgpack::<(u32,)>(b"\xc1", &mut Uploads::default()),
            Err(BindError::Type)
        );
    }
}
