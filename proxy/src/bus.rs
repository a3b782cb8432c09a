//! The seam between app-server sends and the nodes that hold their targets.
//!
//! A send enters the bus in its neutral form (hub, audience, exclusions,
//! target, encoded arguments) exactly as an app server expressed it. On one
//! node, [`LocalBus`] delivers it straight to the local [`Router`]. A
//! clustered bus carries the same message to the other nodes, each of which
//! encodes it once per local wire protocol.

use std::sync::Arc;

use switchboard_proto as pb;

use crate::connection::handle::Protocol;
use crate::metrics::Metrics;
use crate::router::frames::{self, FrameError};
use crate::router::{Audience, Delivery, Encoded, Router};

/// Why a send could not be delivered at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("send has no audience")]
    NoAudience,
    #[error("send has no arguments payload")]
    NoArguments,
    #[error(transparent)]
    Arguments(#[from] FrameError),
}

/// Delivers sends to their audience wherever it is connected.
pub trait Bus: Send + Sync + 'static {
    fn publish(&self, send: &pb::Send) -> Result<Delivery, SendError>;
}

/// The single-node bus: everything is local.
pub struct LocalBus {
    router: Arc<Router>,
    metrics: Arc<Metrics>,
}

impl LocalBus {
    pub fn new(router: Arc<Router>, metrics: Arc<Metrics>) -> Self {
        Self { router, metrics }
    }
}

impl Bus for LocalBus {
    fn publish(&self, send: &pb::Send) -> Result<Delivery, SendError> {
        let started = std::time::Instant::now();
        let delivery = deliver_local(&self.router, send)?;
        let m = &self.metrics;
        m.fanout_seconds.observe(started.elapsed().as_secs_f64());
        m.fanout_deliveries.inc_by(delivery.delivered as u64);
        m.outbox_overflows.inc_by(delivery.overflowed as u64);
        m.unencodable.inc_by(delivery.unencodable as u64);
        Ok(delivery)
    }
}

/// Encodes `send` once per protocol present among the local targets and
/// queues it for each of them.
pub fn deliver_local(router: &Router, send: &pb::Send) -> Result<Delivery, SendError> {
    use pb::audience::Target;
    let target = send
        .audience
        .as_ref()
        .and_then(|a| a.target.as_ref())
        .ok_or(SendError::NoAudience)?;
    let args = send.arguments.as_ref().ok_or(SendError::NoArguments)?;
    frames::check_arguments(args)?;
    let audience = match target {
        Target::All(_) => Audience::All,
        Target::Connection(id) => Audience::Connection(id),
        Target::Connections(l) => Audience::Connections(&l.ids),
        Target::Group(g) => Audience::Group(g),
        Target::Groups(l) => Audience::Groups(&l.ids),
        Target::User(u) => Audience::User(u),
        Target::Users(l) => Audience::Users(&l.ids),
    };
    let encode = |p: Protocol| match frames::invocation(p, None, &send.target, args) {
        Ok(frame) => Some(frame),
        Err(e) => {
            tracing::warn!(hub = %send.hub, target = %send.target, protocol = p.name(), error = %e, "send cannot reach clients of this protocol");
            None
        }
    };
    let hub = send.hub.to_ascii_lowercase();
    Ok(router.send(&hub, audience, &send.excluded, &mut Encoded::new(&encode)))
}
