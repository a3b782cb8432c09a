//! The SignalR hub protocol, sans-IO: the handshake, the JSON and MessagePack hub protocol
//! codecs, and payload transcoding between the two.
//!
//! Bytes go in and messages come out; nothing here touches sockets, clocks or tasks, so
//! every transport (WebSockets, server-sent events, long polling) drives the same code.

pub mod handshake;
pub mod json;
mod message;
pub mod messagepack;
pub mod transcode;

pub use message::{HubMessage, Invocation, Outcome, ProtocolError};
