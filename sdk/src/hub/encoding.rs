//! Hub values on the link: encoding results and stream items in the
//! caller's protocol, and decoding what clients sent in either encoding.

use serde::Serialize;
use serde::de::DeserializeOwned;
use switchboard_proto::{Encoding, Payload};

/// Encodes one value. MessagePack objects become maps with named fields,
/// which is how SignalR's MessagePack clients expect them.
pub(crate) fn encode<T: Serialize + ?Sized>(
    value: &T,
    encoding: Encoding,
) -> Result<Payload, String> {
    let data = match encoding {
        Encoding::Messagepack => rmp_serde::to_vec_named(value).map_err(|err| err.to_string())?,
        Encoding::Json | Encoding::Unspecified => {
            serde_json::to_vec(value).map_err(|err| err.to_string())?
        }
    };
    Ok(Payload {
        encoding: encoding_or_json(encoding) as i32,
        data: data.into(),
    })
}

/// Decodes one value from a payload in whatever encoding it carries.
pub(crate) fn decode<T: DeserializeOwned>(payload: &Payload) -> Result<T, String> {
    match payload.encoding() {
        Encoding::Messagepack => rmp_serde::from_slice(&payload.data).map_err(|e| e.to_string()),
        Encoding::Json | Encoding::Unspecified => {
            serde_json::from_slice(&payload.data).map_err(|e| e.to_string())
        }
    }
}

/// An unspecified encoding means JSON on this link.
pub(crate) fn encoding_or_json(encoding: Encoding) -> Encoding {
    match encoding {
        Encoding::Unspecified => Encoding::Json,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, serde::Deserialize, PartialEq)]
    struct Point {
        x: i32,
        label: String,
    }

    #[test]
    fn round_trips_in_both_encodings() {
        let point = Point {
            x: 3,
            label: "p".into(),
        };
        for encoding in [Encoding::Json, Encoding::Messagepack] {
            let payload = encode(&point, encoding).unwrap();
            assert_eq!(payload.encoding(), encoding);
            assert_eq!(decode::<Point>(&payload).unwrap(), point);
        }
        let json = encode(&point, Encoding::Unspecified).unwrap();
        assert_eq!(json.encoding(), Encoding::Json);
        assert_eq!(json.data, r#"{"x":3,"label":"p"}"#);
    }

    #[test]
    fn messagepack_objects_are_maps_with_field_names() {
        let payload = encode(
            &Point {
                x: 1,
                label: "a".into(),
            },
            Encoding::Messagepack,
        )
        .unwrap();
        // fixmap of 2, "x" => 1, "label" => "a"
        assert_eq!(
            payload.data.as_ref(),
            b"\x82\xa1x\x01\xa5label\xa1a".as_slice()
        );
    }
}
