//! The SignalR hub protocol, sans-IO: the handshake and the JSON hub protocol codec.
//!
//! Bytes go in and messages come out; nothing here touches sockets, clocks or tasks, so
//! every transport (WebSockets, server-sent events, long polling) drives the same code.

pub mod handshake;
pub mod json;
mod message;

pub use message::{HubMessage, Invocation, Outcome, ProtocolError};
