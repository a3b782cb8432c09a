//! Binding a client's encoded argument array to a method's typed arguments.

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

/// Why arguments could not be bound; each maps to a reference error text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BindError {
    /// The array holds `provided` values but the method takes `expected`.
    Count { provided: usize, expected: usize },
    /// The payload is not an array, or a value has the wrong type.
    Type,
}

/// The typed argument list of a hub method: `()` or a tuple of up to twelve
/// [`DeserializeOwned`] values, bound position by position from the client's
/// argument array.
///
/// A one-argument method takes a one-element tuple: `(name,): (String,)`.
pub trait Arguments: Sized + Send + 'static {
    /// How many values the client must send.
    const COUNT: usize;

    /// Deserializes the values; `raw.len()` equals [`Self::COUNT`].
    #[doc(hidden)]
    fn from_raw(raw: &[&RawValue]) -> serde_json::Result<Self>;
}

impl Arguments for () {
    const COUNT: usize = 0;

    fn from_raw(_: &[&RawValue]) -> serde_json::Result<Self> {
        Ok(())
    }
}

macro_rules! tuple_arguments {
    ($count:expr; $($name:ident $index:tt),+) => {
        impl<$($name),+> Arguments for ($($name,)+)
        where
            $($name: DeserializeOwned + Send + 'static),+
        {
            const COUNT: usize = $count;

            fn from_raw(raw: &[&RawValue]) -> serde_json::Result<Self> {
                Ok(($(serde_json::from_str::<$name>(raw[$index].get())?,)+))
            }
        }
    };
}

tuple_arguments!(1; A 0);
tuple_arguments!(2; A 0, B 1);
tuple_arguments!(3; A 0, B 1, C 2);
tuple_arguments!(4; A 0, B 1, C 2, D 3);
tuple_arguments!(5; A 0, B 1, C 2, D 3, E 4);
tuple_arguments!(6; A 0, B 1, C 2, D 3, E 4, F 5);
tuple_arguments!(7; A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_arguments!(8; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
tuple_arguments!(9; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);
tuple_arguments!(10; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9);
tuple_arguments!(11; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10);
tuple_arguments!(12; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11);

/// Binds a JSON argument array to `A`, checking the count first so a wrong
/// count is reported as such rather than as a type error.
pub(crate) fn bind_json<A: Arguments>(data: &[u8]) -> Result<A, BindError> {
    let raw: Vec<&RawValue> = serde_json::from_slice(data).map_err(|_| BindError::Type)?;
    if raw.len() != A::COUNT {
        return Err(BindError::Count {
            provided: raw.len(),
            expected: A::COUNT,
        });
    }
    A::from_raw(&raw).map_err(|_| BindError::Type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_tuples_and_unit() {
        assert_eq!(bind_json::<()>(b"[]"), Ok(()));
        assert_eq!(bind_json::<(String,)>(br#"["a"]"#), Ok(("a".to_owned(),)));
        assert_eq!(
            bind_json::<(u32, Vec<String>, Option<bool>)>(br#"[7, ["x"], null]"#),
            Ok((7, vec!["x".to_owned()], None))
        );
    }

    #[test]
    fn reports_wrong_count_before_types() {
        assert_eq!(
            bind_json::<(String, String)>(br#"[1]"#),
            Err(BindError::Count {
                provided: 1,
                expected: 2
            })
        );
        assert_eq!(
            bind_json::<()>(br#"["extra"]"#),
            Err(BindError::Count {
                provided: 1,
                expected: 0
            })
        );
    }

    #[test]
    fn reports_type_mismatch_and_non_arrays() {
        assert_eq!(bind_json::<(u32,)>(br#"["nope"]"#), Err(BindError::Type));
        assert_eq!(bind_json::<(u32,)>(br#"{"a":1}"#), Err(BindError::Type));
        assert_eq!(bind_json::<(u32,)>(b"not json"), Err(BindError::Type));
    }
}
