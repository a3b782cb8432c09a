//! The gRPC contract between a Switchboard proxy and application servers.
//!
//! The source of truth is `proto/switchboard/v1/upstream.proto`, documented
//! message by message; this crate only compiles it (with `protox`, so no
//! system `protoc` is needed) and re-exports the generated types. The
//! proxy's internal node-to-node messages live in [`bus`].

/// Generated types and gRPC stubs for `switchboard.v1`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("switchboard.v1");
}

pub use v1::*;

/// Messages between the nodes of one cluster (`switchboard.bus.v1`), carried
/// by the cluster's bus. Internal to the proxy; not part of the app-server
/// contract.
#[allow(clippy::all, missing_docs)]
pub mod bus {
    pub mod v1 {
        tonic::include_proto!("switchboard.bus.v1");
    }
}

impl Payload {
    /// A JSON payload.
    pub fn json(data: impl Into<bytes::Bytes>) -> Self {
        Self {
            encoding: Encoding::Json as i32,
            data: data.into(),
        }
    }
}

impl ServerFrame {
    /// A frame holding one message.
    pub fn one(kind: server_message::Kind) -> Self {
        Self {
            messages: vec![ServerMessage { kind: Some(kind) }],
        }
    }
}

impl ProxyFrame {
    /// A frame holding one message.
    pub fn one(kind: proxy_message::Kind) -> Self {
        Self {
            messages: vec![ProxyMessage { kind: Some(kind) }],
        }
    }
}
