//! The JSON hub protocol: UTF-8 JSON objects, each terminated by [`RECORD_SEPARATOR`].
//!
//! [`Decoder`] turns client bytes into [`HubMessage`](super::HubMessage)s; the free
//! functions encode server-to-client frames, each one complete record.

mod decode;
mod encode;
mod record;

pub use decode::Decoder;
pub(super) use encode::{Part, frame};
pub use encode::{
    ack, close, completion_error, completion_value, completion_void, invocation, ping, sequence,
    stream_item,
};
pub(super) use record::starts_object;

/// Terminates every JSON record (ASCII "record separator").
pub const RECORD_SEPARATOR: u8 = 0x1e;
