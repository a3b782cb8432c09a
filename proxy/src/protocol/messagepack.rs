//! The MessagePack hub protocol: each record is a VarInt length prefix, then that many
//! bytes holding one MessagePack array whose first element is the message type.
//!
//! [`Decoder`] turns client bytes into [`HubMessage`](super::HubMessage)s, with payloads
//! left as raw MessagePack; the free functions encode server-to-client frames, each one
//! complete record, prefix included.

mod decode;
mod encode;
mod record;
pub(super) mod value;

pub use decode::Decoder;
pub use encode::{
    ack, close, completion_error, completion_value, completion_void, invocation, ping, sequence,
    stream_item,
};
