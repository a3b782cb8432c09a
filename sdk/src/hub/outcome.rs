//! What a hub method's return value becomes: a value, void, or an error the
//! client sees (hub errors) or does not see the detail of (everything else).

use std::any::{Any, TypeId};
use std::fmt;

use serde::Serialize;
use switchboard_proto::{Encoding, Payload};

use super::encoding::encode;
use super::upload::UploadError;

/// An error returned by a hub method.
///
/// [`HubError::new`] makes an error whose message the client sees
/// (`... HubException: {message}`). An upload stream the client ended with an error
/// ([`UploadError::Client`]), propagated with `?`, is a hub error with the
/// client's message, as in SignalR. Any other error converted with `?`
/// (every `std::error::Error`, including the SDK's own [`Error`](crate::Error))
/// is logged on the server and reported to the client only as
/// `An unexpected error occurred invoking '{method}' on the server.`
///
/// Like `anyhow::Error`, this type does not implement `std::error::Error`
/// itself, which is what lets `?` convert any error into it.
pub struct HubError {
    repr: Repr,
}

enum Repr {
    Hub(String),
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl HubError {
    /// An error whose message is shown to the calling client.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            repr: Repr::Hub(message.into()),
        }
    }

    /// The client-visible message, if this is a hub error.
    pub fn hub_message(&self) -> Option<&str> {
        match &self.repr {
            Repr::Hub(message) => Some(message),
            Repr::Internal(_) => None,
        }
    }

    fn internal(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            repr: Repr::Internal(Box::new(err)),
        }
    }
}

impl<E> From<E> for HubError
where
    E: std::error::Error + Send + Sync + 'static,
{
    fn from(err: E) -> Self {
        // A client's own error ending an upload stream is its to see again,
        // which is what the reference server does with it.
        if let Some(UploadError::Client(message)) = (&err as &dyn Any).downcast_ref() {
            return Self::new(message.clone());
        }
        Self::internal(err)
    }
}

impl fmt::Debug for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Hub(message) => f.debug_tuple("HubError").field(message).finish(),
            Repr::Internal(err) => f.debug_tuple("HubError").field(err).finish(),
        }
    }
}

impl fmt::Display for HubError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Hub(message) => write!(f, "hub error: {message}"),
            Repr::Internal(err) => fmt::Display::fmt(err, f),
        }
    }
}

/// The result of running a hub method, before it is put on the link.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A value (possibly `null`) in the caller's encoding.
    Value(Payload),
    /// No value.
    Void,
    /// A hub error; the message goes to the client.
    HubError(String),
    /// Any other failure; the detail is only logged.
    Failed(String),
}

pub(crate) mod sealed {
    /// Keeps [`MethodResult`](super::MethodResult) implementable only here.
    pub trait Sealed {
        /// Maps the return value, encoding a value in `encoding`.
        fn into_outcome(self, encoding: super::Encoding) -> super::Outcome;
    }
}

/// What a hub method (or connect/disconnect handler) may return.
///
/// - `()`: the client gets a completion without a result (void).
/// - `Result<T, E>` with `T: Serialize` and `E: Into<HubError>`: `Ok(())` is
///   void, any other `Ok(value)` is sent as the result (`None` becomes
///   `null`), `Err` is mapped as [`HubError`] describes.
pub trait MethodResult: sealed::Sealed + Send + 'static {}

impl sealed::Sealed for () {
    fn into_outcome(self, _: Encoding) -> Outcome {
        Outcome::Void
    }
}

impl MethodResult for () {}

impl<T, E> sealed::Sealed for Result<T, E>
where
    T: Serialize + Send + 'static,
    E: Into<HubError> + Send + 'static,
{
    fn into_outcome(self, encoding: Encoding) -> Outcome {
        match self {
            // `()` serializes as `null`, same as `None`; only the type tells
            // a void method apart from one that returned null.
            Ok(_) if TypeId::of::<T>() == TypeId::of::<()>() => Outcome::Void,
            Ok(value) => value_outcome(&value, encoding),
            Err(err) => error_outcome(err.into()),
        }
    }
}

impl<T, E> MethodResult for Result<T, E>
where
    T: Serialize + Send + 'static,
    E: Into<HubError> + Send + 'static,
{
}

/// A value encoded for the caller, or a failure when it cannot be encoded.
pub(crate) fn value_outcome<T: Serialize + ?Sized>(value: &T, encoding: Encoding) -> Outcome {
    match encode(value, encoding) {
        Ok(payload) => Outcome::Value(payload),
        Err(err) => Outcome::Failed(format!("cannot serialize the result: {err}")),
    }
}

/// A hub error keeps its message for the client; anything else is detail
/// for the log only.
pub(crate) fn error_outcome(err: HubError) -> Outcome {
    match err.repr {
        Repr::Hub(message) => Outcome::HubError(message),
        Repr::Internal(err) => Outcome::Failed(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::sealed::Sealed;
    use super::*;

    #[test]
    fn unit_and_ok_unit_are_void() {
        assert_eq!(().into_outcome(Encoding::Json), Outcome::Void);
        assert_eq!(
            Ok::<(), HubError>(()).into_outcome(Encoding::Messagepack),
            Outcome::Void
        );
    }

    #[test]
    fn none_is_a_null_value() {
        assert_eq!(
            Ok::<Option<u8>, HubError>(None).into_outcome(Encoding::Json),
            Outcome::Value(Payload::json("null"))
        );
        assert_eq!(
            Ok::<_, HubError>("hi").into_outcome(Encoding::Json),
            Outcome::Value(Payload::json("\"hi\""))
        );
    }

    #[test]
    fn values_use_the_callers_encoding() {
        let Outcome::Value(payload) =
            Ok::<_, HubError>(("hi", 7)).into_outcome(Encoding::Messagepack)
        else {
            panic!("expected a value");
        };
        assert_eq!(payload.encoding(), Encoding::Messagepack);
        assert_eq!(payload.data.as_ref(), b"\x92\xa2hi\x07".as_slice());
        assert_eq!(
            Ok::<Option<u8>, HubError>(None).into_outcome(Encoding::Messagepack),
            Outcome::Value(Payload {
                encoding: Encoding::Messagepack as i32,
                data: bytes::Bytes::from_static(b"\xc0"),
            })
        );
    }

    #[test]
    fn errors_keep_hub_messages_and_hide_others() {
        assert_eq!(
            Err::<(), _>(HubError::new("boom")).into_outcome(Encoding::Json),
            Outcome::HubError("boom".into())
        );
        let io = std::io::Error::other("disk on fire");
        assert_eq!(
            Err::<(), HubError>(io.into()).into_outcome(Encoding::Json),
            Outcome::Failed("disk on fire".into())
        );
    }

    #[test]
    fn a_clients_upload_error_is_a_hub_error_and_other_upload_errors_are_not() {
        let client: HubError = UploadError::Client("Something bad".into()).into();
        assert_eq!(
            Err::<(), _>(client).into_outcome(Encoding::Json),
            Outcome::HubError("Something bad".into())
        );
        let closed: HubError = UploadError::Closed.into();
        assert_eq!(
            Err::<(), _>(closed).into_outcome(Encoding::Json),
            Outcome::Failed("the connection ended before the stream completed".into())
        );
    }
}
